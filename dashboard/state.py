"""What every page shares: the engine and workspace (loaded once per server), and the review
session and reviewer this browser tab has open."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import streamlit as st

from core.pipeline import Engine
from core.workspace import Workspace, default_root
from dashboard.text import plain


# Bytes free under which a workspace that cannot be opened is said to be on a full disk.
FULL_DISK = 64 << 20


@st.cache_resource(show_spinner="Loading the face detectors…")
def engine() -> Engine:
    return Engine()


def workspace() -> Workspace:
    """The workspace of FACE_PRIVACY_WORKSPACE (or the user's data folder), opened once; a
    folder that cannot be used stops the page with a message instead of a traceback."""
    root = default_root()
    try:
        return _workspace(str(root))
    except (OSError, sqlite3.Error) as exc:
        free = _free_bytes(root)
        if free is not None and free < FULL_DISK:  # SQLite says only "disk I/O error"
            st.error(f"The workspace folder {plain(root)} cannot be used: its disk is full ({free >> 20} MB free). "
                     "Free space on it, then reload this page: everything saved in it is kept.")
        else:
            st.error(f"The workspace folder {plain(root)} cannot be used: {plain(exc)}. Choose a writable folder "
                     "with space to spare (set FACE_PRIVACY_WORKSPACE) and restart the dashboard.")
        st.stop()


def _free_bytes(root: Path) -> int | None:
    """Free space on the disk holding `root` (or its nearest folder that exists)."""
    try:
        return shutil.disk_usage(next(p for p in (root, *root.parents) if p.exists())).free
    except (OSError, StopIteration):
        return None


def storage_failure(exc: Exception) -> None:
    """Say clearly that saving failed; whatever was saved before is untouched."""
    st.error(f"Saving failed: {plain(exc)}. Nothing saved before was lost, but this last action was not "
             f"recorded. Free disk space or make {default_root()} writable, then try again.")


@st.cache_resource
def _workspace(root: str) -> Workspace:
    return Workspace(root)


def open_session(session_id: int, reviewer: str) -> None:
    st.session_state["session_id"] = session_id
    st.session_state["reviewer"] = reviewer


def current_session() -> tuple[int, str] | None:
    """(session id, reviewer) of this tab, or None before Start. The tab's place (session,
    reviewer, photo) is kept in the address too, so a reload comes back to it: read from there
    when the tab's memory is new, and written there on every page."""
    if "session_id" not in st.session_state:
        _restore_place()
    if "session_id" not in st.session_state:
        return None
    try:
        purged = workspace().session(st.session_state["session_id"])["purged_at"]
    except KeyError:  # not in this workspace (the dashboard was started on another)
        purged = "gone"
    if purged:
        # Purged in another tab, or by another reviewer: nothing more may be added to it or done in it.
        forget_place()
        st.info("This session was purged (in another tab, or by another reviewer): its photos and zips are "
                "gone. Start a new session or reopen another.")
        return None
    place = {"session": str(st.session_state["session_id"]), "reviewer": st.session_state["reviewer"]}
    if "image_id" in st.session_state:
        place["photo"] = str(st.session_state["image_id"])
    if {k: st.query_params.get(k) for k in place} != place:
        st.query_params.update(place)
    return st.session_state["session_id"], st.session_state["reviewer"]


def _restore_place() -> None:
    params = st.query_params
    try:
        session_id = int(params.get("session", ""))
        reviewer = params.get("reviewer", "").strip()
        workspace().session(session_id)
    except (ValueError, KeyError):
        return
    if not reviewer or workspace().session(session_id)["purged_at"]:
        return
    open_session(session_id, reviewer)
    if params.get("photo", "").isdigit():
        st.session_state["image_id"] = int(params["photo"])


def remember_photo(image_id: int) -> None:
    """The photo under review goes into the address, so a reload opens it again."""
    if st.query_params.get("photo") != str(image_id):
        st.query_params["photo"] = str(image_id)


def forget_place() -> None:
    for key in ("session_id", "reviewer", "image_id", "duplicates"):
        st.session_state.pop(key, None)
    st.query_params.clear()


def require_session() -> tuple[int, str]:
    """Stop the page with a pointer to Start when no session is open."""
    opened = current_session()
    if opened is None:
        st.info("Open or start a review session first.")
        st.page_link("app_pages/start.py", label="Go to Start", icon=":material/play_arrow:")
        st.stop()
    return opened


def review(image_id: int) -> None:
    """Open one image on the review page."""
    st.session_state["image_id"] = image_id
    st.switch_page("app_pages/review.py")


def flash(kind: str, text: str) -> None:
    """A message for the next run of the page (actions run in callbacks, before it)."""
    st.session_state.setdefault("flash", []).append((kind, text))


def show_flash() -> None:
    """Show the messages the last action left, where they do not cover any control."""
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(plain(text))  # messages carry file names: text, never Markdown


def act(action, *args, done: str | None = None, **kwargs) -> bool:
    """Run one reviewer action (in a callback); a refusal because the state changed meanwhile
    is said plainly, and the page shows the state as it is now. True when it was done."""
    from core.records import StaleState

    try:
        action(*args, **kwargs)
    except StaleState as exc:
        flash("warning", f"Not done: {exc}")
        return False
    except (OSError, sqlite3.Error) as exc:
        flash("error", f"Saving failed: {exc}. Nothing saved before was lost; free disk space or make "
                       f"{default_root()} writable, then try again.")
        return False
    if done:
        flash("success", done)
    return True
