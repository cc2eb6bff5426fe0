"""Faces followed through the frames of a video: each frame's detections linked into tracks
(one per person appearance), and the face each track covers in every frame.

A track is the video form of a `Face`: its detections are Faces, and what it covers in a
frame is a Face too (detected there, interpolated between two detections, or held a few
frames past its ends), so covering a frame is the same call as covering a photo. The
reviewer's switch and the threshold apply to the whole track: a face the detector is sure of
in one frame is covered in every frame of its track, also where its score dips, which is what
stops faces flashing through single frames.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from .faces import Face
from .motion import carried

# Candidates below this score are not followed (the detector's floor keeps more, for photos).
TRACK_FLOOR = 0.1
# Two boxes in neighbouring frames are the same face when they overlap this much...
LINK_IOU = 0.3
# ...or when the centre moved less than this x the face size (plus LINK_DRIFT for each frame
# unseen) and the size changed by less than 1.5x.
LINK_DISTANCE = 0.6
LINK_DRIFT = 0.05
# A track unseen for more frames than this ends; a shorter gap is covered by interpolation.
MAX_GAP = 12
# A cover is held this many frames before a track's first and after its last detection.
HOLD = 4


@dataclass
class Track:
    """One person appearance: frame indices (ascending) and the detection in each."""

    id: int
    frames: list[int] = field(default_factory=list)
    faces: list[Face] = field(default_factory=list)
    enabled: bool = True
    # The score of another track on the same face (see `join_same_faces`).
    joined: float = 0.0

    @property
    def first(self) -> int:
        return self.frames[0]

    @property
    def last(self) -> int:
        return self.frames[-1]

    @property
    def score(self) -> float:
        return max(max(f.score for f in self.faces), self.joined)

    @property
    def best(self) -> tuple[int, Face]:
        """The frame where the detector was surest, and its face (the track's thumbnail)."""
        i = int(np.argmax([f.score for f in self.faces]))
        return self.frames[i], self.faces[i]

    def covered_at(self, threshold: float) -> bool:
        return self.enabled and self.score >= threshold

    def face_at(self, frame: int, hold: int = HOLD) -> Face | None:
        """What this track covers in `frame`: its detection, a box interpolated between the
        detections around a gap, or the end box held `hold` frames past either end."""
        if frame < self.first - hold or frame > self.last + hold:
            return None
        i = bisect.bisect_left(self.frames, frame)
        if i < len(self.frames) and self.frames[i] == frame:
            face = self.faces[i]
        elif i == 0 or i == len(self.frames):
            face = self._moving_on(frame)
        else:
            a, b = self.faces[i - 1], self.faces[i]
            t = (frame - self.frames[i - 1]) / (self.frames[i] - self.frames[i - 1])
            face = replace(a, x=a.x + t * (b.x - a.x), y=a.y + t * (b.y - a.y),
                           w=a.w + t * (b.w - a.w), h=a.h + t * (b.h - a.h))
        return replace(face, score=self.score, enabled=self.enabled)

    def predict(self, frame: int) -> tuple[float, float, float, float]:
        """Where the face should be in `frame`, moving as it moved between its last two detections."""
        return self._moving_on(frame).box

    def _moving_on(self, frame: int) -> Face:
        """The end detection nearest `frame` (before the first or after the last), moved on as
        the face moved between the two detections at that end: a face leaving the picture
        keeps moving while its cover is held, and one entering is met where it comes from."""
        end, inner = (-1, -2) if frame > self.last else (0, 1)
        face = self.faces[end]
        if len(self.frames) < 2:
            return face
        before = self.faces[inner]
        k = (frame - self.frames[end]) / (self.frames[end] - self.frames[inner])
        return replace(face, x=face.x + k * (face.x - before.x), y=face.y + k * (face.y - before.y))

    def to_dict(self, times: list[float] | None = None) -> dict:
        return {"id": self.id, "score": round(self.score, 4), "enabled": self.enabled,
                "first": self.first, "last": self.last,
                "frames": [{"index": n, **({"time": round(times[n], 4)} if times else {}),
                            "box": [round(f.x, 1), round(f.y, 1), round(f.w, 1), round(f.h, 1)],
                            "score": round(f.score, 4), "detector": f.detector}
                           for n, f in zip(self.frames, self.faces)]}

    @classmethod
    def from_dict(cls, data: dict) -> Track:
        faces = [Face(*frame["box"], score=frame["score"], detector=frame["detector"]) for frame in data["frames"]]
        return cls(data["id"], [frame["index"] for frame in data["frames"]], faces, data.get("enabled", True),
                   data.get("score", 0.0))


class Linker:
    """Links each frame's detections to the tracks alive, greedily by similarity."""

    def __init__(self, max_gap: int = MAX_GAP):
        self.max_gap = max_gap
        self.tracks: list[Track] = []
        self._alive: list[Track] = []
        self._views: dict[int, np.ndarray] = {}

    def _panned(self, track: Track, frame: int) -> tuple[float, float, float, float]:
        """The track's last box moved as the picture moved since it was seen."""
        return carried(track.faces[-1].box, self._views[frame] @ np.linalg.inv(self._views[track.last]))

    def add(self, frame: int, faces: Iterable[Face], view: np.ndarray | None = None) -> None:
        """`view`: where the camera's picture has moved to since the first frame (`motion.Motion`),
        so that a face the camera pans past is met where the pan took it."""
        faces = [f for f in faces if f.score >= TRACK_FLOOR]
        self._alive = [t for t in self._alive if frame - t.last - 1 <= self.max_gap]
        self._views[frame] = np.eye(3) if view is None else view
        # Where each track's face may be now: where it was heading, where it was, where the pan took it.
        places = [place for t in self._alive for place in (t.predict(frame), t.faces[-1].box, self._panned(t, frame))]
        unseen = np.repeat([frame - t.last for t in self._alive], 3)
        best = _similarities(places, [f.box for f in faces], unseen).reshape(len(self._alive), 3, len(faces)).max(1)
        pairs = sorted(((similarity, ti, fi) for ti, row in enumerate(best.tolist())
                        for fi, similarity in enumerate(row)), reverse=True)
        used_tracks, used_faces = set(), set()
        for similarity, ti, fi in pairs:
            if similarity <= 0:
                break
            if ti in used_tracks or fi in used_faces:
                continue
            used_tracks.add(ti)
            used_faces.add(fi)
            self._alive[ti].frames.append(frame)
            self._alive[ti].faces.append(faces[fi])
        for fi, face in enumerate(faces):
            if fi not in used_faces:
                track = Track(len(self.tracks) + 1, [frame], [face])
                self.tracks.append(track)
                self._alive.append(track)


def _similarities(boxes, faces, unseen) -> np.ndarray:
    """For each box (where a face should be, with the frames it has been unseen) against each face
    (boxes too): their IoU when they overlap enough; else a small positive value when the centre
    moved less than the distance gate at a similar size (small faces panned fast); else 0. One
    array for all pairs: a crowd's 60 tracks against 60 faces a look, pair by pair, took a third
    of the detection's time."""
    b = np.asarray(boxes, dtype=float).reshape(-1, 1, 4)
    f = np.asarray(faces, dtype=float).reshape(1, -1, 4)
    x, y, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    fx, fy, fw, fh = f[..., 0], f[..., 1], f[..., 2], f[..., 3]
    inter = (np.maximum(0.0, np.minimum(x + w, fx + fw) - np.maximum(x, fx))
             * np.maximum(0.0, np.minimum(y + h, fy + fh) - np.maximum(y, fy)))
    iou = inter / np.maximum(1e-6, w * h + fw * fh - inter)
    size = np.maximum(1e-6, np.sqrt(w * h))
    ratio = np.sqrt(np.maximum(fw, 0.0) * np.maximum(fh, 0.0)) / size
    distance = np.hypot(x + w / 2 - fx - fw / 2, y + h / 2 - fy - fh / 2) / size
    gate = LINK_DISTANCE + LINK_DRIFT * np.asarray(unseen, dtype=float).reshape(-1, 1)
    near = (distance < gate) & (1 / 1.5 < ratio) & (ratio < 1.5)
    return np.where(iou >= LINK_IOU, iou, np.where(near, LINK_IOU * (1 - distance / gate), 0.0))


# A face at least this sure, seen in one look and not the next (or the other way round), makes the
# frames between them looked at too (see `video.scan`).
SURE = 0.4


def changed(before: list[Face], after: list[Face], frames: int) -> bool:
    """Whether a sure face of one look has no counterpart in the other, `frames` later (by the
    linker's own measure): a face came or went between them, or the picture jumped (a
    time-lapse, a cut)."""
    sure_after = [f.box for f in after if f.score >= SURE]
    sure_before = [f.box for f in before if f.score >= SURE]
    met = _similarities([o.box for o in before], sure_after, frames) > 0  # before x sure after
    if sure_after and not met.any(axis=0).all():
        return True
    met = _similarities([o.box for o in after], sure_before, frames) > 0  # after x sure before
    return bool(sure_before) and not met.any(axis=0).all()


def link(detections: Iterable[tuple[int, list[Face]]], max_gap: int = MAX_GAP,
         views: dict[int, np.ndarray] | None = None) -> list[Track]:
    """Tracks from (frame index, faces) in frame order; `views`, by frame, as `Linker.add`'s."""
    linker = Linker(max_gap)
    for frame, faces in detections:
        linker.add(frame, faces, (views or {}).get(frame))
    join_same_faces(linker.tracks)
    return linker.tracks


def join_same_faces(tracks: list[Track]) -> None:
    """Give tracks that are one face the same score. The detector sometimes sees a face twice
    at two scales (the face, and its eyes and brow); each box then becomes a track, the
    linker hands the frames between them, and the weaker one may fall under the threshold
    while it is the only box on the face. Two tracks are one face when, in a frame both were
    detected in, the centre of one box lies inside the other."""
    parent = list(range(len(tracks)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_frame: dict[int, list[tuple[int, Face]]] = {}
    for i, track in enumerate(tracks):
        for frame, face in zip(track.frames, track.faces):
            by_frame.setdefault(frame, []).append((i, face))
    for found in by_frame.values():
        if len(found) < 2:
            continue
        boxes = np.array([f.box for _, f in found])
        cx, cy = boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2
        inside = ((cx[:, None] > boxes[None, :, 0]) & (cx[:, None] < boxes[None, :, 0] + boxes[None, :, 2])
                  & (cy[:, None] > boxes[None, :, 1]) & (cy[:, None] < boxes[None, :, 1] + boxes[None, :, 3]))
        for a, b in zip(*np.nonzero(inside)):
            if a != b:
                parent[root(found[a][0])] = root(found[b][0])
    best: dict[int, float] = {}
    for i, track in enumerate(tracks):
        best[root(i)] = max(best.get(root(i), 0.0), track.score)
    for i, track in enumerate(tracks):
        track.joined = best[root(i)]


def faces_by_frame(tracks: list[Track], frames: int, hold: int = HOLD) -> Iterator[list[Face]]:
    """For frame 0, 1, ...: the faces every track covers there (whatever their score: the
    threshold is applied by the caller's settings, as for a photo), in one pass."""
    order = sorted(tracks, key=lambda t: t.first)
    alive: list[Track] = []
    k = 0
    for frame in range(frames):
        while k < len(order) and order[k].first - hold <= frame:
            alive.append(order[k])
            k += 1
        alive = [t for t in alive if t.last + hold >= frame]
        yield [face for t in alive if (face := t.face_at(frame, hold)) is not None]
