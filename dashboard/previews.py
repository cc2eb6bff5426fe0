"""Cached previews: downscaled originals decoded once, anonymised thumbnails rendered once
per face set and settings (re-rendering 50 thumbnails on every rerun costs about a second)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from core.images import decode_photo, encode_photo
from core.faces import selected
from core.review import PREVIEW_SIDE, THUMB_SIDE, attention, render
from core.workspace import ImageRecord, fingerprint
from core.pipeline import Settings, anonymize
from dashboard.state import workspace


@st.cache_resource(max_entries=6, show_spinner=False)
def base(sha256: str, side: int) -> np.ndarray:
    """A downscaled original, decoded once and shared read-only."""
    return decode_photo(workspace().preview(sha256, side), sha256).pixels


@st.cache_data(max_entries=2000, show_spinner=False)
def _thumbnail(sha256: str, key: str, _record: ImageRecord, _settings: Settings) -> bytes:
    pixels = render(base(sha256, THUMB_SIDE), _record.width, _record.faces, _settings)
    return encode_photo(pixels, "JPEG", 85)


def thumbnail(record: ImageRecord, settings: Settings) -> bytes:
    """The anonymised thumbnail, as JPEG bytes."""
    return _thumbnail(record.sha256, fingerprint(settings, record.faces), record, settings)


def preview(record: ImageRecord, settings: Settings, outline: bool, flagged=(), near: bool = False) -> np.ndarray:
    """The anonymised review preview (1600 px), rendered on every change: no detection.
    `flagged` faces (from the residual check) are boxed too, and near misses in grey on demand."""
    return render(base(record.sha256, PREVIEW_SIDE), record.width, record.faces, settings, outline, flagged, near)


@dataclass
class _Overview:
    mark: int = -1
    rows: dict[int, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@st.cache_resource(show_spinner=False)
def _overview(root: str, session_id: int) -> _Overview:
    return _Overview()


def overview_rows(session_id: int) -> list[dict]:
    """Every photo of the session as the overview lists it: state, attention flags, faces
    covered, and the fingerprint a bulk approval names. Derived once, then kept up to date
    from the audit log: after a decision only the photos it touched are derived again (a
    change to the session itself, its settings say, derives all)."""
    ws = workspace()
    cache = _overview(str(ws.root), session_id)
    with cache.lock:
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
        return [cache.rows[k] for k in sorted(cache.rows)]


def _overview_row(record: ImageRecord, batch: Settings) -> dict:
    settings = record.settings(batch)
    return {"id": record.id, "name": record.name, "state": record.state(batch), "status": record.status,
            "detected": record.detected, "flags": [(flag.weight, flag.text) for flag in attention(record, settings)],
            "faces": len(selected(record.faces, settings.threshold)) if record.detected else 0,
            "fingerprint": record.current_fingerprint(batch) if record.detected else None}


def original(record: ImageRecord) -> np.ndarray:
    return base(record.sha256, PREVIEW_SIDE)


@st.cache_resource(max_entries=2, show_spinner="Reading the photo at full resolution…")
def _decoded(sha256: str, name: str) -> np.ndarray:
    return decode_photo(workspace().read(sha256), name).pixels


def full_original(record: ImageRecord) -> np.ndarray:
    """The original at full resolution, upright, decoded once and shared read-only."""
    return _decoded(record.sha256, record.name)


@st.cache_resource(max_entries=2, show_spinner="Anonymising at full resolution…")
def _full(sha256: str, key: str, _record: ImageRecord, _settings: Settings) -> np.ndarray:
    return anonymize(full_original(_record), _record.faces, _settings)


def full_resolution(record: ImageRecord, settings: Settings) -> np.ndarray:
    """The photo anonymised at full resolution exactly as the export makes it (cached for the
    state shown: walking its faces costs one anonymisation)."""
    return _full(record.sha256, fingerprint(settings, record.faces), record, settings)
