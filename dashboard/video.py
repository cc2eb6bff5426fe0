"""A video on the review page: a frame scrubber showing the covered frame, and each person
(track) with its time range; the switches are the face table's, one row per track."""

from __future__ import annotations

import streamlit as st

from core import video_review
from core.pipeline import Settings
from core.review import render
from core.workspace import ImageRecord
from dashboard.state import workspace
from dashboard.text import plain


@st.cache_resource(max_entries=4, show_spinner=False)
def scan(sha256: str) -> video_review.Scan:
    return video_review.load_scan(workspace().files, sha256)


def video_view(record: ImageRecord, settings: Settings, outline: bool) -> None:
    clip = scan(record.sha256)
    tracks = video_review.covered_tracks(clip.tracks, record.faces, settings.threshold)
    index = st.slider("Frame", 0, max(0, clip.frames - 1), key=f"frame-{record.id}",
                      help="Every frame is covered on export: drag to check any of them.")
    frame = video_review.frame_at(workspace().files.object_path(record.sha256), clip, index)
    faces = video_review.frame_faces(tracks, index)
    st.image(render(frame, record.width, faces, settings, outline), output_format="JPEG", width="stretch",
             caption=f"frame {index + 1} of {clip.frames} at {clip.times[index]:.2f} s, covered as exported "
                     f"({len(faces)} cover(s) in this frame)")
    by_id = {f"{video_review.TRACK}{t.id}": t for t in clip.tracks}
    rows = [{"track": face.detector, "covered": face.covered_at(settings.threshold),
             "from s": round(clip.times[by_id[face.detector].first], 2),
             "to s": round(clip.times[by_id[face.detector].last], 2),
             "frames seen": len(by_id[face.detector].frames), "confidence": round(face.score, 2)}
            for face in record.faces if face.detector in by_id and
            (face.covered_at(settings.threshold) or face.score >= settings.threshold - 0.1)]
    st.caption(plain(f"{clip.info.name}: {clip.frames} frames, {clip.info.duration:.1f} s, sound: "
                     f"{clip.info.audio or 'none'}. Each row of the face table is one person's appearance "
                     "(a track), switched for the whole clip; a cover is held a few frames past each end."))
    st.dataframe(rows, hide_index=True)
