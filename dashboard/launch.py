"""One dashboard per workspace. `streamlit run app.py` run again while a dashboard serves the
same workspace (a forgotten terminal, a second double-click) says where the running one is and
what to open, and starts nothing: two servers would each run a detection worker over the same
sessions. The running dashboard holds a lock on `dashboard.lock` in the workspace for its whole
life (the system lets it go however the process ends, a crash included) and writes its address
there once it listens.
"""

from __future__ import annotations

import fcntl
import http.client
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

LOCK_NAME = "dashboard.lock"
_held: int | None = None  # the lock file, open for the life of this process once claimed


def claim(root: Path) -> str | None:
    """Take the workspace's lock for this process. Returns None when this process may serve
    the workspace, else what the dashboard holding it wrote: its address and process id, a
    line each ("" while it starts). A workspace where no lock can be made is not refused here:
    its pages say what is wrong."""
    global _held
    if _held is not None:
        return None
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        written = os.pread(fd, 400, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        return written
    except OSError:  # a file system without locks
        os.close(fd)
        return None
    _held = fd
    return None


def record_address(url: str) -> None:
    """Write where this dashboard listens, and its process id, for a second launch to name."""
    if _held is not None:
        try:
            os.ftruncate(_held, 0)
            os.pwrite(_held, f"{url}\n{os.getpid()}\n".encode(), 0)
        except OSError:
            pass


def say_running(running: str, link_file: Path, out=None) -> str:
    """Tell whoever launched a second dashboard what to open instead (`running`: what `claim`
    returned); returns what was said."""
    out = out or sys.stdout
    address, _, pid = running.partition("\n")
    pid = pid.strip()
    try:
        link = link_file.read_text().strip()
    except OSError:
        link = ""
    if not (link.startswith(address + "?token=") and _answer(link) == 303):
        link = ""  # another launch's, or a link the running dashboard does not take
    if not address:
        message = ("Face privacy review is already starting on this workspace: wait a moment, then open the link "
                   "it prints.")
    elif not link and _answer(address) == 200:  # its gate is off (FACE_PRIVACY_TOKEN=off)
        message = f"Face privacy review is already running on this workspace: open {address}"
    elif link and out.isatty():
        message = f"Face privacy review is already running on this workspace: open {link}"
    elif link:
        message = (f"Face privacy review is already running on this workspace, at {address}: the link to open is "
                   f"in {link_file} (readable by you only)")
    else:
        message = (f"Face privacy review is already running on this workspace, at {address}: open the link it "
                   "printed where it was started")
    if address and pid:
        # On a line of its own: a terminal would take a full stop after the link as part of it.
        message += (f"\nIf it does not answer, stop it (Ctrl+C where it was started, or end process {pid}) and "
                    "start it again.")
    print(message, file=out, flush=True)
    return message


def _answer(url: str) -> int | None:
    """The status the running dashboard answers `url` with: a valid token is traded for its
    cookie and the browser sent on (303), anything else without its cookie gets the locked page
    (403), unless its gate is off (200). None if it does not answer."""
    parts = urlsplit(url)
    try:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        try:
            connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
            return connection.getresponse().status
        finally:
            connection.close()
    except (OSError, http.client.HTTPException, ValueError):
        return None
