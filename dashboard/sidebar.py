"""The sidebar: which session is open, and the batch's settings."""

from __future__ import annotations

import streamlit as st

from core.pipeline import Settings

from dashboard.controls import settings_controls
from dashboard.state import workspace


def batch_controls(session_id: int, reviewer: str) -> Settings:
    """Draw the session and its batch settings, and return those settings as they now are.
    Each page draws this itself: Streamlit's test harness reruns only the page script."""
    ws = workspace()
    session = ws.session(session_id)
    st.sidebar.markdown(f"**{session['name']}**  \nReviewer: {reviewer}")
    st.sidebar.subheader("Batch settings")
    current = session["settings"]
    with st.sidebar:
        chosen = settings_controls(current, key=f"batch-{session_id}")
    if chosen != current:  # a real change is written, and withdraws the approvals it affects
        ws.set_batch_settings(session_id, chosen, reviewer)
    return chosen
