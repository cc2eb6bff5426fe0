"""Face privacy review dashboard: `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="Face privacy review", page_icon=":material/shield:", layout="wide")
navigation = st.navigation([
    st.Page("pages/start.py", title="Start", icon=":material/play_arrow:", default=True),
    st.Page("pages/overview.py", title="Overview", icon=":material/grid_view:"),
    st.Page("pages/review.py", title="Review one image", icon=":material/search:"),
    st.Page("pages/export.py", title="Export", icon=":material/archive:"),
])
navigation.run()
