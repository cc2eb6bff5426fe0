"""A video in a review session: each track is one row the reviewer decides on, for the whole clip.

The session stores one `Face` per track (its surest frame's box and its highest score, named
`track N`), so switching, near misses, fingerprints, approvals and the audit log work for a
video as they do for a photo. The tracks themselves (every frame's box) are kept beside the
original in the file store; the export re-renders the clip from them with the reviewer's
switches and checks the written file at sampled frames.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .faces import Face
from .store import FileStore
from .tracks import HOLD, Track
from .video import Scan, VideoInfo, _open, _upright

TRACK = "track "


def track_faces(tracks: list[Track]) -> list[Face]:
    """One face per track, as the review table lists it."""
    faces = []
    for track in tracks:
        _, best = track.best
        faces.append(Face(best.x, best.y, best.w, best.h, track.score, f"{TRACK}{track.id}"))
    return faces


def covered_tracks(tracks: list[Track], faces: list[Face], threshold: float) -> list[Track]:
    """The tracks the reviewer's faces cover at `threshold`; their frames' faces are marked
    as chosen (`forced`), so that covering a frame needs no threshold again."""
    covered = {f.detector for f in faces if f.detector.startswith(TRACK) and f.covered_at(threshold)}
    return [replace(t, faces=[replace(f, forced=True) for f in t.faces])
            for t in tracks if f"{TRACK}{t.id}" in covered]


def save_scan(files: FileStore, sha256: str, scan: Scan) -> None:
    data = {"info": scan.info.to_dict() | {"name": scan.info.name}, "times": scan.times,
            "tracks": [t.to_dict() for t in scan.tracks]}
    files.save_previews(sha256, {"tracks": json.dumps(data).encode()})


def load_scan(files: FileStore, sha256: str) -> Scan:
    data = json.loads(files.preview(sha256, "tracks"))
    info = VideoInfo(**{k: data["info"][k] for k in ("name", "width", "height", "rotation", "codec", "frames",
                                                     "duration", "audio")})
    return Scan(info, sha256, [Track.from_dict(t) for t in data["tracks"]], data["times"])


def frame_at(path: Path, scan: Scan, index: int) -> np.ndarray:
    """Frame `index`, upright: seek to the key frame before it, decode forward to it."""
    container, stream = _open(path)
    with container:
        target = scan.times[index]
        container.seek(max(0, int((target - 1.0) / stream.time_base)), stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.pts is not None and float(frame.pts * frame.time_base) >= target - 1e-4:
                break
        if last is None:
            raise ValueError(f"{path}: frame {index} cannot be decoded")
        return _upright(last, scan.info.rotation)


def frame_faces(tracks: list[Track], index: int) -> list[Face]:
    """What the given tracks cover in frame `index`."""
    return [face for t in tracks if (face := t.face_at(index, HOLD)) is not None]


def best_frame(scan: Scan) -> int:
    """The frame the overview shows: where the surest face is surest (else the first)."""
    return max(scan.tracks, key=lambda t: t.score).best[0] if scan.tracks else 0

