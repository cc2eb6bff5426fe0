"""The settings widgets, used for the batch (Settings page) and for one photo (review page).

A tab shows settings as it last read them. When they changed elsewhere meanwhile (another tab,
another reviewer), its widgets are reset to what is stored before they are drawn, so a stale tab
never writes back values it did not change."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from core.anonymizers import MODES, SHAPES
from core.pipeline import Settings
from core.times import read_spans, read_time, said_span, said_time
from dashboard.text import plain

_FIELDS = ("threshold", "strength", "mode", "padding", "shape", "sound", "start", "end", "silence")


# What the strength slider changes, by mode (a solid cover has none).
STRENGTH_SAID = {"blur": "Blur strength", "pixelate": "Mosaic block size"}


def settings_controls(current: Settings, key: str, videos: bool = True, duration: float | None = None) -> Settings:
    """Sliders and choices for the settings, showing `current`; returns what the reviewer set.
    Returns `current` itself (nothing to write) whenever `current` is not what this tab showed
    the last time. `videos`: whether the settings only videos use are shown (not for a photo's
    own settings); `duration`: a clip's length in seconds, for one clip's own settings, which
    may export only part of it."""
    seen_key = f"{key}-seen"
    if st.session_state.get(seen_key) != current.to_dict():
        for field in _FIELDS:
            st.session_state.pop(f"{key}-{field}", None)
        st.session_state[seen_key] = current.to_dict()
    threshold = st.slider("Confidence threshold", 0.05, 0.95, current.threshold, 0.01, key=f"{key}-threshold",
                          help="Lower finds more faces (and more false ones). A missed face is a leak.")
    mode = st.selectbox("Mode", MODES, MODES.index(current.mode), key=f"{key}-mode",
                        help="blur: a strong blur; pixelate: a coarse mosaic; solid: a black box, nothing of the "
                             "face remains.")
    strength = current.strength if mode == "solid" else st.slider(
        STRENGTH_SAID[mode], 0.5, 3.0, current.strength, 0.1, key=f"{key}-strength",
        help="How coarse the cover is, relative to the face: larger hides more. Below 1 some detail survives.")
    padding = st.slider("Padding", 0.0, 1.0, current.padding, 0.05, key=f"{key}-padding",
                        help="How far the covered region reaches beyond the face box, on each side.")
    shape = st.selectbox("Shape", SHAPES, SHAPES.index(current.shape), key=f"{key}-shape")
    sound = st.checkbox("Keep the sound of videos", current.sound, key=f"{key}-sound",
                        help="Faces are covered, voices are not: leave the sound out where what is said "
                             "(a name, a voice) would identify someone, or keep it and silence only those parts "
                             "in a clip's own settings on its review page.") if videos else current.sound
    start, end = _part_controls(current, key, duration) if duration else (current.start, current.end)
    silence = _silence_controls(current, key, duration) if duration and sound else current.silence
    return replace(current, threshold=threshold, strength=strength, mode=mode, padding=padding, shape=shape,
                   sound=sound, start=start, end=end, silence=silence)


def _silence_controls(current: Settings, key: str, duration: float) -> tuple[tuple[float, float], ...]:
    """Parts of a clip's sound to silence, one a line ("1:02 to 1:05"), from its first frame as
    its frames are captioned."""
    text = st.text_area("Silence the sound", "\n".join(said_span(a, b) for a, b in current.silence),
                        key=f"{key}-silence", placeholder="1:02 to 1:05", height=90,
                        help="Faces are covered, voices are not. Where a name is said or a voice would identify "
                             "someone, give the part, one a line: from and to, as each frame's caption gives the "
                             "time (1:02 to 1:05). Those parts leave silent, and the exported file is checked "
                             "for it.")
    try:
        parts = read_spans(text)  # (in order and joined by the settings)
        late = [said_span(a, b) for a, b in parts if a >= duration]
        if late:
            raise ValueError(f"{'; '.join(late)} starts after the clip ends ({said_time(duration)})")
    except ValueError as exc:
        st.error(plain(f"The sound to silence: {exc}. It is left as it was. Write each part on a line of its own, "
                       "from and to, as each frame's caption gives the time: 1:02 to 1:05."))
        return current.silence
    return parts


def _part_controls(current: Settings, key: str, duration: float) -> tuple[float, float | None]:
    """From and to (from the clip's first frame, as its frames are captioned): only that part of
    a long recording leaves. A "to" at the clip's end is None: to the end, whatever it is."""
    if current.by_clock:  # a batch run's part, named by the recorder's clock: kept as it was asked
        st.caption(plain(f"Exported: from {said_time(current.start)} to "
                         f"{'its end' if current.end is None else said_time(current.end)} by the recorder's clock, "
                         "as the batch run asked."))
        return current.start, current.end
    duration = round(duration, 2)
    left, right = st.columns(2)
    start = left.text_input("Export from", said_time(current.start), key=f"{key}-start",
                            help="Only part of the clip leaves (a request for minutes of a long recording): "
                                 "the time from its first frame, as each frame's caption gives it: seconds (90), "
                                 "minutes and seconds (1:30) or hours, minutes and seconds (1:01:30).")
    end = right.text_input("to", said_time(duration if current.end is None else min(current.end, duration)),
                           key=f"{key}-end", help="The end of the part exported; the clip's length is its end.")
    try:
        start, end = read_time(start), read_time(end)
        if end <= start or start >= duration:
            raise ValueError(f"it must start before the clip ends ({said_time(duration)}) and end after it starts")
    except ValueError as exc:
        st.error(plain(f"The part to export: {exc}. It is left as it was. Times count from the clip's first frame "
                       "(0:00), as each frame's caption gives them, not by a recorder's clock."))
        return current.start, current.end
    return start, None if end >= duration else end


def forget_controls(key: str) -> None:
    """Show the stored settings again on the next run (after Cancel, or a refused change)."""
    for field in (*_FIELDS, "seen"):
        st.session_state.pop(f"{key}-{field}", None)
