"""Detection in a background thread, one per server, so that it goes on while the reviewer
moves between pages (a Streamlit page's script stops when the reviewer leaves it)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import streamlit as st

from core.review import detect_pending
from dashboard.state import engine, workspace


@dataclass
class DetectionWorker:
    session_id: int | None = None
    done: int = 0
    total: int = 0
    current: str = ""
    error: str | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, session_id: int) -> None:
        """Detect what the session still has waiting (after a restart too), unless running."""
        with self._lock:
            if self.running or not workspace().awaiting_detection(session_id):
                return
            self.session_id, self.done, self.total, self.current, self.error = session_id, 0, 0, "", None
            self._thread = threading.Thread(target=self._run, args=(session_id,), daemon=True,
                                            name=f"detect-{session_id}")
            self._thread.start()

    def _run(self, session_id: int) -> None:
        def advance(done: int, total: int, name: str) -> None:
            self.done, self.total, self.current = done, total, name

        try:
            # Photos added while this ran are picked up by the next round.
            while workspace().awaiting_detection(session_id):
                detect_pending(workspace(), engine(), session_id, advance)
        except Exception as exc:  # noqa: BLE001 - shown to the reviewer, never swallowed
            self.error = f"{type(exc).__name__}: {exc}"


@st.cache_resource
def detection_worker() -> DetectionWorker:
    return DetectionWorker()


def detection_status(session_id: int) -> None:
    """Start detecting what the session has waiting, and follow it while it runs."""
    worker = detection_worker()
    worker.start(session_id)
    if worker.session_id == session_id and worker.error:
        st.error(f"Detection stopped: {worker.error}. Reload the page to try again.")
    elif worker.running and worker.session_id == session_id:
        _progress(session_id)


@st.fragment(run_every=1.0)
def _progress(session_id: int) -> None:
    """Refreshes itself every second while detection runs; reruns the page when it ends."""
    worker = detection_worker()
    if not (worker.running and worker.session_id == session_id):
        st.rerun()
    fraction = worker.done / worker.total if worker.total else 0.0
    st.progress(fraction, text=f"Detecting faces: {worker.done} of {worker.total} done"
                               + (f" (last: {worker.current})" if worker.current else ""))
