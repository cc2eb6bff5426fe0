"""The sidebar: which session is open and who is reviewing. Batch settings have their own page."""

from __future__ import annotations

import streamlit as st

from core.pipeline import Settings
from dashboard.state import workspace
from dashboard.text import plain


def session_sidebar(session_id: int, reviewer: str) -> Settings:
    """Show the open session, and return its batch settings as they now are. Each page draws
    this itself: Streamlit's test harness reruns only the page script."""
    session = workspace().session(session_id)
    st.sidebar.markdown(f"**{plain(session['name'])}**  \nReviewer: {plain(reviewer)}")
    return session["settings"]
