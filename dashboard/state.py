"""What every page shares: the engine and workspace (loaded once per server), and the review
session and reviewer this browser tab has open."""

from __future__ import annotations

import streamlit as st

from core.pipeline import Engine
from core.workspace import Workspace, default_root


@st.cache_resource(show_spinner="Loading the face detectors…")
def engine() -> Engine:
    return Engine()


def workspace() -> Workspace:
    """The workspace of FACE_PRIVACY_WORKSPACE (or the user's data folder), opened once."""
    return _workspace(str(default_root()))


@st.cache_resource
def _workspace(root: str) -> Workspace:
    return Workspace(root)


def open_session(session_id: int, reviewer: str) -> None:
    st.session_state["session_id"] = session_id
    st.session_state["reviewer"] = reviewer


def current_session() -> tuple[int, str] | None:
    """(session id, reviewer) of this tab, or None before Start."""
    if "session_id" not in st.session_state:
        return None
    return st.session_state["session_id"], st.session_state["reviewer"]


def require_session() -> tuple[int, str]:
    """Stop the page with a pointer to Start when no session is open."""
    opened = current_session()
    if opened is None:
        st.info("Open or start a review session first.")
        st.page_link("pages/start.py", label="Go to Start", icon=":material/play_arrow:")
        st.stop()
    return opened


def review(image_id: int) -> None:
    """Open one image on the review page."""
    st.session_state["image_id"] = image_id
    st.switch_page("pages/review.py")
