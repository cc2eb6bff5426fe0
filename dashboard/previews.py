"""Cached previews: downscaled originals decoded once, anonymised thumbnails rendered once
per face set and settings (re-rendering 50 thumbnails on every rerun costs about a second)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from core import video, video_review
from core.faces import Face, selected
from core.images import decode_photo, encode_photo
from core.kinds import is_video
from core.records import ImageRecord, fingerprint
from core.review import PREVIEW_SIDE, THUMB_SIDE, attention, base_size, render
from core.store import StoredFileError
from core.workspace import overview_file
from core.pipeline import Settings, anonymize, failure_reason
from dashboard.state import workspace
from dashboard.text import plain


@st.cache_resource(max_entries=6, show_spinner=False)
def base(sha256: str, side: int) -> np.ndarray:
    """A downscaled original, decoded once and shared read-only."""
    return decode_photo(workspace().files.preview(sha256, side), sha256).pixels


@st.cache_data(max_entries=2000, show_spinner=False)
def _thumbnail(sha256: str, key: str, _record: ImageRecord, _settings: Settings) -> bytes:
    faces, shape = _covered_here(_record, _settings)
    pixels = video.square_pixels(render(base(sha256, THUMB_SIDE), _record.width, faces, _settings), shape)
    return encode_photo(pixels, "JPEG", 85)


def _covered_here(record: ImageRecord, settings: Settings) -> tuple[list[Face], float]:
    """The faces a thumbnail covers, and the shape of its pixels: a photo's faces, or what a
    clip's tracks cover in the frame its thumbnail shows (its best frame), as the export's
    record does, and its pixel shape (a 16:9 DVD's is shown stretched). A clip's rows each hold
    one face from its own best frame: drawn on this frame, some covers fell where nobody was
    and some faces were left bare (4 of 20 faces over a quarter shown in a crowd clip's)."""
    if not is_video(record.name):
        return record.faces, 1.0
    clip, every = video_review.all_tracks(workspace().files, record.sha256, record.id)
    return (video_review.frame_faces(video_review.covered_tracks(every, record.faces, settings.threshold),
                                     video_review.best_frame(clip)), clip.info.pixel_shape)


def thumbnail(record: ImageRecord, settings: Settings) -> bytes:
    """The anonymised thumbnail, as JPEG bytes."""
    return _thumbnail(record.sha256, fingerprint(settings, record.faces), record, settings)


def preview(record: ImageRecord, settings: Settings, outline: bool, flagged=(), near: bool = False) -> np.ndarray:
    """The anonymised review preview (1600 px), rendered on every change: no detection.
    `flagged` faces (from the residual check) are boxed too, and near misses in grey on demand."""
    return render(base(record.sha256, PREVIEW_SIDE), record.width, record.faces, settings, outline, flagged, near)


@st.cache_data(max_entries=32, show_spinner=False)
def _preview_jpeg(sha256: str, key: str, outline: bool, near: bool, flagged_key: tuple,
                  _record: ImageRecord, _settings: Settings, _flagged) -> bytes:
    return encode_photo(preview(_record, _settings, outline, _flagged, near), "JPEG", 90)


def preview_jpeg(record: ImageRecord, settings: Settings, outline: bool, flagged=(), near: bool = False) -> bytes:
    """The preview as JPEG bytes, rendered and encoded once per state shown (a rerun that
    changes nothing, a click on another control, costs neither)."""
    return _preview_jpeg(record.sha256, fingerprint(settings, record.faces), outline, near,
                         tuple(f.box for f in flagged), record, settings, flagged)


@dataclass
class _Overview:
    mark: int = -1
    rows: dict[int, dict] = field(default_factory=dict)
    saved: int = -1  # the mark of the rows last saved
    unsaved: int = 0  # photos derived since
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(show_spinner=False)
def _overview(root: str, session_id: int) -> _Overview:
    return _Overview()


# The saved rows are written again once this many photos changed since they were written.
OVERVIEW_SAVE_EVERY = 50
# What `_overview_row` derives, and how: saved rows of another format are derived again.
OVERVIEW_FORMAT = 2  # 2: each flag says how many faces it is about


def overview_rows(session_id: int) -> list[dict]:
    """Every photo of the session as the overview lists it: state, attention flags, faces
    covered, and the fingerprint a bulk approval names. Derived once, then kept up to date
    from the audit log: after a decision only the photos it touched are derived again (a
    change to the session itself, its settings say, derives all). The rows are also saved
    with the audit mark they stand for, so after a restart only what changed since is derived."""
    ws = workspace()
    cache = _overview(str(ws.root), session_id)
    with cache.lock:
        if cache.mark < 0:
            cache.saved, cache.rows = _saved_rows(session_id)
            cache.mark = cache.saved
        mark = ws.change_mark(session_id)
        if mark != cache.mark:
            changed = ws.changed_since(session_id, cache.mark) if cache.mark >= 0 else None
            batch = ws.batch_settings(session_id)
            if changed is None:
                cache.rows = {r.id: _overview_row(r, batch) for r in ws.images(session_id)}
            else:
                for image_id in changed:
                    record = ws.image(image_id)
                    if record.removed_at:
                        cache.rows.pop(image_id, None)
                    else:
                        cache.rows[image_id] = _overview_row(record, batch)
            cache.mark = mark
            cache.unsaved += len(cache.rows) if changed is None else len(changed)
            if cache.unsaved >= OVERVIEW_SAVE_EVERY or cache.saved < 0:
                _save_rows(session_id, cache)
        return [cache.rows[k] for k in sorted(cache.rows)]


def _saved_rows(session_id: int) -> tuple[int, dict[int, dict]]:
    """The rows saved for this session and the audit mark they stand for, or (-1, {})."""
    try:
        data = json.loads(workspace().files.read_derived(overview_file(session_id)))
    except (OSError, ValueError):
        return -1, {}
    if not isinstance(data, dict) or data.get("format") != OVERVIEW_FORMAT:
        return -1, {}
    return int(data["mark"]), {int(k): v for k, v in data["rows"].items()}


def _save_rows(session_id: int, cache: _Overview) -> None:
    """Save the rows; a failure to save costs only a derivation after the next restart."""
    try:
        workspace().save_overview(session_id, json.dumps(
            {"format": OVERVIEW_FORMAT, "mark": cache.mark, "rows": cache.rows}).encode())
    except (OSError, sqlite3.Error):
        return
    cache.saved, cache.unsaved = cache.mark, 0


def _overview_row(record: ImageRecord, batch: Settings) -> dict:
    settings = record.settings(batch)
    return {"id": record.id, "name": record.name, "state": record.state(batch), "status": record.status,
            "detected": record.detected,
            "flags": [[flag.weight, flag.text, flag.count] for flag in attention(record, settings)],
            "faces": len(selected(record.faces, settings.threshold)) if record.detected else 0,
            "fingerprint": record.current_fingerprint(batch) if record.detected else None}


@st.cache_resource(max_entries=4, show_spinner=False)
def _listing(root: str, session_id: int, mark: int) -> list[tuple[int, str, str]]:
    return workspace().listing(session_id)


def listing(session_id: int) -> list[tuple[int, str, str]]:
    """The session's photos ready for review (id, name, status), read again only after a change
    (every change is in the audit log). Shared: never to be modified."""
    ws = workspace()
    return _listing(str(ws.root), session_id, ws.change_mark(session_id))


# Streamlit shrinks a picture wider than the page to this width (its MAXIMUM_CONTENT_WIDTH).
PAGE_WIDTH = 1460


def too_thin(record: ImageRecord, shown: tuple[int, int] | None = None) -> bool:
    """A strip so thin that the picture shown of it (its preview, or `shown`, a width and
    height), shrunk to the page's width, would be under a pixel tall: Streamlit cannot show it
    (the page stops with "height and width must be > 0")."""
    width, height = shown or base_size(record.width, record.height, PREVIEW_SIDE)
    return width > PAGE_WIDTH and int(height * PAGE_WIDTH / width) < 1


def say_too_thin(record: ImageRecord) -> None:
    st.warning(f"This {'video' if is_video(record.name) else 'photo'} is {record.width} x {record.height} px: a "
               "strip too thin to show on this page (under a pixel tall at the page's width). Look at it in "
               "another program before approving it.")


def original(record: ImageRecord) -> np.ndarray:
    return base(record.sha256, PREVIEW_SIDE)


@st.cache_resource(max_entries=2, show_spinner="Reading the photo at full resolution…")
def _decoded(sha256: str, name: str) -> np.ndarray:
    with _prefetch_lock:
        ahead = _prefetching.get(sha256)
    if ahead is not None:
        try:
            return ahead.result()
        except Exception:  # noqa: BLE001 - decoded again here, where its error is shown
            pass
    return _decode(workspace(), sha256, name)


def _decode(ws, sha256: str, name: str) -> np.ndarray:
    return decode_photo(ws.files.checked(sha256), name).pixels


def full_original(record: ImageRecord) -> np.ndarray:
    """The original at full resolution, upright, decoded once and shared read-only."""
    return _decoded(record.sha256, record.name)


def original_problem(record: ImageRecord) -> str | None:
    """Why the original cannot be shown at full resolution as it was added, if it cannot: gone
    from the store, unreadable or changed since, or no longer decodable. Checked as it is decoded,
    once: the decoded photo is kept."""
    try:
        full_original(record)
    except StoredFileError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - this photo's problem, said on its page
        return failure_reason(exc)
    return None


def say_unreadable(record: ImageRecord, problem: str) -> None:
    st.error(f"{plain(record.name)}: {plain(problem)}. It cannot be shown at full resolution, and the export "
             "will hold it back: remove it from the session and add the file again.")


# The last few originals decoded ahead (each is also what the cache below keeps: one array).
_prefetching: OrderedDict[str, Future] = OrderedDict()
_PREFETCH_KEPT = 2
_prefetch_lock = threading.Lock()


def prefetch_full(record: ImageRecord) -> None:
    """Decode a large original in the background while its page is read, so that zooming in
    does not wait for it (a 12 MP JPEG takes about 0.4 s to decode). The thread calls no
    Streamlit function: the full-resolution view takes its result, or decodes it again."""
    if max(record.width or 0, record.height or 0) <= PREVIEW_SIDE:
        return
    with _prefetch_lock:
        if record.sha256 in _prefetching:
            return
        _prefetching[record.sha256] = ahead = Future()
        while len(_prefetching) > _PREFETCH_KEPT:
            _prefetching.popitem(last=False)
    ws = workspace()

    def decode() -> None:
        try:
            ahead.set_result(_decode(ws, record.sha256, record.name))
        except Exception as exc:  # noqa: BLE001 - the zoom view decodes it again and shows the error
            ahead.set_exception(exc)

    threading.Thread(target=decode, name="prefetch", daemon=True).start()


@st.cache_resource(max_entries=2, show_spinner="Anonymising at full resolution…")
def _full(sha256: str, key: str, _record: ImageRecord, _settings: Settings) -> np.ndarray:
    return anonymize(full_original(_record), _record.faces, _settings)


def full_resolution(record: ImageRecord, settings: Settings) -> np.ndarray:
    """The photo anonymised at full resolution exactly as the export makes it (cached for the
    state shown: walking its faces costs one anonymisation)."""
    return _full(record.sha256, fingerprint(settings, record.faces), record, settings)
