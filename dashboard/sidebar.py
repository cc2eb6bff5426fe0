"""The sidebar: which session is open, and the batch's settings."""

from __future__ import annotations

import streamlit as st

from dashboard.controls import settings_controls
from dashboard.state import workspace


def batch_controls(session_id: int, reviewer: str) -> None:
    """Each page draws this itself: Streamlit's test harness reruns only the page script."""
    ws = workspace()
    st.sidebar.markdown(f"**{ws.session(session_id)['name']}**  \nReviewer: {reviewer}")
    st.sidebar.subheader("Batch settings")
    current = ws.batch_settings(session_id)
    with st.sidebar:
        chosen = settings_controls(current, key=f"batch-{session_id}")
    if chosen != current:  # a real change is written, and withdraws the approvals it affects
        ws.set_batch_settings(session_id, chosen, reviewer)
