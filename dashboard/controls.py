"""The settings widgets, used for the batch (sidebar) and for one image (review page)."""

from __future__ import annotations

import streamlit as st

from core.anonymizers import MODES, SHAPES
from core.pipeline import Settings


def settings_controls(current: Settings, key: str) -> Settings:
    """Sliders and choices for the settings; returns what the reviewer set."""
    threshold = st.slider("Confidence threshold", 0.05, 0.95, current.threshold, 0.01, key=f"{key}-threshold",
                          help="Lower finds more faces (and more false ones). A missed face is a leak.")
    strength = st.slider("Blur strength (kernel scale)", 0.5, 3.0, current.strength, 0.1, key=f"{key}-strength",
                         help="Kernel or mosaic block size relative to the face. Below 1 detail survives.")
    mode = st.selectbox("Mode", MODES, MODES.index(current.mode), key=f"{key}-mode")
    padding = st.slider("Padding", 0.0, 1.0, current.padding, 0.05, key=f"{key}-padding",
                        help="How far the covered region reaches beyond the face box, on each side.")
    shape = st.selectbox("Shape", SHAPES, SHAPES.index(current.shape), key=f"{key}-shape")
    return Settings(threshold=threshold, strength=strength, mode=mode, padding=padding, shape=shape,
                    feather=current.feather, jpeg_quality=current.jpeg_quality)
