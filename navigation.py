"""The review dashboard's pages and navigation; `streamlit run app.py` serves it behind the access gate."""

import sqlite3

import streamlit as st

from dashboard.state import storage_failure

# An emoji, drawn in the page: a Material symbol as the tab's icon is fetched from fonts.gstatic.com.
st.set_page_config(page_title="Face privacy review", page_icon="🛡️", layout="wide")
navigation = st.navigation([
    st.Page("app_pages/start.py", title="Start", icon=":material/play_arrow:", default=True),
    st.Page("app_pages/overview.py", title="Overview", icon=":material/grid_view:"),
    st.Page("app_pages/review.py", title="Review one image", icon=":material/search:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/archive:"),
    st.Page("app_pages/settings.py", title="Batch settings", icon=":material/tune:"),
])
try:
    navigation.run()
except (OSError, sqlite3.Error) as exc:  # a full disk or a read-only workspace
    storage_failure(exc)
