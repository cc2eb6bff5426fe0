"""Cached previews: downscaled originals decoded once, anonymised thumbnails rendered once
per face set and settings (re-rendering 50 thumbnails on every rerun costs about a second)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core.images import decode_photo, encode_photo
from core.review import PREVIEW_SIDE, THUMB_SIDE, render
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


def original(record: ImageRecord) -> np.ndarray:
    return base(record.sha256, PREVIEW_SIDE)


@st.cache_resource(max_entries=2, show_spinner="Anonymising at full resolution…")
def _full(sha256: str, key: str, _record: ImageRecord, _settings: Settings) -> np.ndarray:
    photo = decode_photo(workspace().read(sha256), _record.name)
    return anonymize(photo.pixels, _record.faces, _settings)


def full_resolution(record: ImageRecord, settings: Settings) -> np.ndarray:
    """The photo anonymised at full resolution exactly as the export makes it (cached for the
    state shown: walking its faces costs one anonymisation)."""
    return _full(record.sha256, fingerprint(settings, record.faces), record, settings)
