"""Detection in background threads, one per session, so that it goes on while the reviewer
moves between pages (a Streamlit page's script stops when the reviewer leaves it), and a
session's detection goes on while another session's runs (they take turns with the engine,
photo by photo, or frame by frame for a video). The threads call no Streamlit function: the page
that starts one hands it the workspace and the engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import streamlit as st

from core.export import export_approved
from core.pipeline import Engine
from core.review import detect_pending
from core.workspace import Workspace
from dashboard.state import engine, workspace
from dashboard.text import plain


# Seconds of a clip's detection before its time left is estimated.
ETA_AFTER = 5.0


def _said_duration(seconds: float) -> str:
    """ "less than a minute", "12 min", "3 h 05 min"."""
    minutes = round(seconds / 60)
    if minutes < 1:
        return "less than a minute"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


@dataclass
class DetectionWorker:
    session_id: int | None = None
    done: int = 0
    total: int = 0
    current: str = ""
    frame: tuple[int, int] | None = None  # frames done and frames of the clip in hand
    error: str | None = None
    clock: Callable[[], float] = time.monotonic
    _clip: tuple[str, float, int] | None = None  # the clip in hand, when it was first heard of, its frame then
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, session_id: int, again: bool = False) -> None:
        """Detect what the session still has waiting (after a restart too), unless running, or
        stopped on an error (a full disk): then only when the reviewer asks (`again`); started
        on every page view, it failed again each second, and its message was never seen."""
        with self._lock:
            if again:
                self.error = None
            if self.error:
                return
            waiting = 0 if self.running else len(workspace().awaiting_detection(session_id))
            if not waiting:
                return
            self.session_id, self.done, self.total, self.current, self.frame, self.error = \
                session_id, 0, waiting, "", None, None
            self._thread = threading.Thread(target=self._run, args=(session_id, workspace(), engine()), daemon=True,
                                            name=f"detect-{session_id}")
            self._thread.start()

    def heard(self, done: int, total: int, name: str, frame: tuple[int, int] | None = None) -> None:
        """How detection goes: `done` of `total` files, the last one `name`, or the clip in hand
        with its `frame` (frames done, frames)."""
        if frame and (self._clip is None or self._clip[0] != name or frame[0] < self._clip[2]):
            self._clip = (name, self.clock(), frame[0])
        self.done, self.total, self.current, self.frame = done, total, name, frame

    def status(self) -> tuple[float, str]:
        """The progress bar's fraction and text: a clip's frames move it, so that a long clip
        does not hold it still for minutes."""
        done, total, current, frame = self.done, self.total, self.current, self.frame  # the thread moves on
        within = frame[0] / frame[1] if frame and frame[1] else 0.0
        fraction = min(1.0, (done + within) / total) if total else 0.0
        if frame:
            now = f" (now {plain(current)}: frame {frame[0]} of {frame[1] or '?'}{self._left(frame)})"
        else:
            now = f" (last: {plain(current)})" if current else ""
        return fraction, f"Detecting faces: {done} of {total} done{now}"

    def _left(self, frame: tuple[int, int]) -> str:
        """How long the clip in hand has left, at the pace of its frames so far: an hours-long
        recording's bar moves too slowly to tell."""
        clip = self._clip
        if not clip or not frame[1]:
            return ""
        elapsed, moved = self.clock() - clip[1], frame[0] - clip[2]
        if elapsed < ETA_AFTER or moved <= 0:
            return ""
        return f", about {_said_duration((frame[1] - frame[0]) * elapsed / moved)} left"

    def _run(self, session_id: int, ws: Workspace, detector: Engine) -> None:
        try:
            detect_pending(ws, detector, session_id, self.heard)  # and what is added while it runs
        except Exception as exc:  # noqa: BLE001 - shown to the reviewer, never swallowed
            self.error = f"{type(exc).__name__}: {exc}"


@st.cache_resource
def _workers() -> dict[int, DetectionWorker]:
    return {}


_registry = threading.Lock()


def detection_worker(session_id: int) -> DetectionWorker:
    with _registry:
        return _workers().setdefault(session_id, DetectionWorker())


def detecting() -> bool:
    """Whether any session's detection is running."""
    with _registry:
        return any(worker.running for worker in _workers().values())


def detection_status(session_id: int, then: Callable[[], None] | None = None) -> None:
    """Start detecting what the session has waiting, and follow it while it runs; `then` draws
    what depends on it (what is ready for review, what could not be read): under the progress
    bar, drawn again with it every second while detection runs, so that the photos detected
    before a clip are said ready while the clip is detected."""
    worker = detection_worker(session_id)
    worker.start(session_id)
    if worker.session_id == session_id and worker.error:
        st.error(f"Detection stopped: {plain(worker.error)}. The files not yet detected wait, with everything done "
                 "so far; free disk space if it is full, then detect them.")
        st.button("Detect the files left", key=f"detect-again-{session_id}", on_click=worker.start,
                  args=(session_id, True))
    if worker.running and worker.session_id == session_id:
        _progress(session_id, then)
    elif then:
        then()


@st.fragment(run_every=1.0)
def _progress(session_id: int, then: Callable[[], None] | None) -> None:
    """Refreshes itself every second while detection runs (and what `then` draws, without
    drawing the whole page again); reruns the page when it ends."""
    worker = detection_worker(session_id)
    if not (worker.running and worker.session_id == session_id):
        st.rerun()
    fraction, text = worker.status()
    st.progress(fraction, text=text)
    if then:
        then()


@dataclass
class ExportWorker:
    """Exports in background threads, one per export: building goes on while the reviewer moves
    between pages, and an export cut short by a restart is built again when its session's Export
    page is next opened. Progress lives in the database."""

    _threads: dict[int, threading.Thread] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, session_id: int, actor: str) -> int:
        """Build the session's zip; while one of the session's is being built, that one is the
        one (a second tab, or a second click before the page shows the first, builds no second)."""
        with self._lock:
            building = [e for e in workspace().exports.unfinished(session_id) if self.running(e)]
            if building:
                return building[0]
            export_id = workspace().exports.start(session_id, actor)
            self._launch(export_id, session_id, actor)
        return export_id

    def resume(self, session_id: int, actor: str) -> None:
        """Build again what a restart cut short. Finding an export not running and launching it
        is one step under the lock: two tabs opening the page at once build it once."""
        with self._lock:
            for export_id in workspace().exports.unfinished(session_id):
                if not self.running(export_id):
                    workspace().exports.restart(export_id, actor)
                    self._launch(export_id, session_id, actor)

    def running(self, export_id: int) -> bool:
        thread = self._threads.get(export_id)
        return thread is not None and thread.is_alive()

    def _launch(self, export_id: int, session_id: int, actor: str) -> None:
        """Build the export in a thread of its own (the caller holds the lock)."""
        ws, detector = workspace(), engine()

        def build() -> None:
            try:
                export_approved(ws, session_id, actor, detector.detector, None, detector.max_pixels,
                                export_id=export_id)
            except Exception:  # noqa: BLE001 - recorded on the export (fail_export) and shown there
                pass

        thread = threading.Thread(target=build, daemon=True, name=f"export-{export_id}")
        self._threads[export_id] = thread
        thread.start()


@st.cache_resource
def export_worker() -> ExportWorker:
    return ExportWorker()


@st.fragment(run_every=1.0)
def export_progress(export_id: int) -> None:
    """Follows an export while it is built; reruns the page when it ends."""
    row = workspace().exports.get(export_id)
    if row["status"] != "building":
        st.rerun()
    fraction = row["done"] / row["total"] if row["total"] else 0.0
    st.progress(fraction, text=f"Building the zip: {row['done']} of {row['total'] or '?'} done"
                               + (f" (now: {plain(row['working_on'])})" if row["working_on"] else "")
                               + ". You may leave this page; it goes on.")
