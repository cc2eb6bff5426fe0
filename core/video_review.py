"""A video in a review session: each track is one row the reviewer decides on, for the whole clip.

The session stores one `Face` per track (its surest frame's box and its highest score, named
`track N`), so switching, near misses, fingerprints, approvals and the audit log work for a
video as they do for a photo. The tracks themselves (every frame's box) are kept beside the
original in the file store; the export re-renders the clip from them with the reviewer's
switches and checks the written file at sampled frames.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .faces import MANUAL, Face
from .records import StaleState
from .store import FileStore
from .motion import Motion, carried
from .tracks import HOLD, Track
from .video import Part, Scan, VideoInfo, _open, _upright, shown, sound_only

TRACK = "track "


def track_faces(tracks: list[Track]) -> list[Face]:
    """One face per track, as the review table lists it."""
    faces = []
    for track in tracks:
        _, best = track.best
        faces.append(Face(best.x, best.y, best.w, best.h, track.score, f"{TRACK}{track.id}"))
    return faces


def track_id(face: Face) -> int | None:
    """The track a review row stands for (`track 7`, or `track 7 drawn`)."""
    parts = face.detector.split()
    return int(parts[1]) if len(parts) >= 2 and parts[0] == TRACK.strip() and parts[1].isdigit() else None


def covered_tracks(tracks: list[Track], faces: list[Face], threshold: float) -> list[Track]:
    """The tracks the reviewer's faces cover at `threshold`; their frames' faces are marked
    as chosen (`forced`), so that covering a frame needs no threshold again."""
    covered = {track_id(f) for f in faces if f.covered_at(threshold)}
    return [replace(t, faces=[replace(f, forced=True) for f in t.faces]) for t in tracks if t.id in covered]


# A drawn face is followed this far before and after the frame it was drawn on, while the
# picture inside its box still matches this well (normalised correlation).
FOLLOW_SECONDS = 3.0
FOLLOW_MATCH = 0.5
FOLLOW_SIDE = 640


def follow(path: Path, scan: Scan, index: int, box: tuple[float, float, float, float], track: int) -> Track:
    """A box the reviewer drew on frame `index`, followed forward and backward through the
    frames around it by matching its picture in each next frame near where it was (the box
    keeps its size); it stops where the match is lost. The result is a track like a found one."""
    import cv2

    reach = int(FOLLOW_SECONDS * scan.rate)
    first, last = max(0, index - reach), min(scan.frames - 1, index + reach)
    scale = min(1.0, FOLLOW_SIDE / max(scan.info.width, scan.info.height))
    grey: dict[int, np.ndarray] = {}
    for n, frame in _decoded(path, scan, first, last):
        pixels = cv2.cvtColor(_upright(frame, scan.info.rotation), cv2.COLOR_RGB2GRAY)
        grey[n] = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x, y, w, h = (v * scale for v in box)
    boxes = {index: (x, y)}
    for step in (1, -1):
        px, py = x, y
        template = _patch(grey[index], px, py, w, h)
        motion = Motion()
        view = motion.see(index, grey[index])
        n = index + step
        while n in grey and template is not None:
            # Looked for where the picture's move took it: a pan moves a small face further a
            # frame than the search reaches around its last place.
            view, before = motion.see(n, grey[n]), view
            px, py, _, _ = carried((px, py, w, h), view @ np.linalg.inv(before))
            if px < -1 or py < -1 or px + w > grey[n].shape[1] + 1 or py + h > grey[n].shape[0] + 1:
                break  # leaving the picture: matched there, it was put beside the face; its held cover moves on
            found = _match(grey[n], template, px, py, w, h)
            if found is None:
                break
            px, py = found
            boxes[n] = (px, py)
            template = _patch(grey[n], px, py, w, h)
            n += step
    frames = sorted(boxes)
    faces = [Face(boxes[n][0] / scale, boxes[n][1] / scale, box[2], box[3], 1.0, MANUAL if n == index else FOLLOWED)
             for n in frames]
    return Track(track, frames, faces)


FOLLOWED = "followed"


def splice(old: Track, new: Track, index: int) -> Track:
    """A drawn track the reviewer moved on frame `index` (where it drifted): `new` is the box
    as placed there, followed around it. It takes over the frames nearer `index` than any
    other frame the reviewer placed a box on; the old boxes stay on the frames nearer those."""
    placed = [n for n, f in zip(old.frames, old.faces) if f.detector == MANUAL and n != index]
    if not any(f.detector == FOLLOWED for f in old.faces):  # drawn before placements were marked
        placed = []
    before = max((n for n in placed if n < index), default=None)
    after = min((n for n in placed if n > index), default=None)
    low = -1.0 if before is None else (before + index) / 2
    high = float("inf") if after is None else (index + after) / 2
    kept = {n: f for n, f in zip(old.frames, old.faces) if not low < n < high}
    kept |= {n: f for n, f in zip(new.frames, new.faces) if low < n < high}
    frames = sorted(kept)
    return Track(old.id, frames, [kept[n] for n in frames], old.enabled)


def _patch(grey: np.ndarray, x: float, y: float, w: float, h: float) -> np.ndarray | None:
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    patch = grey[y0:y0 + max(2, int(round(h))), x0:x0 + max(2, int(round(w)))]
    return patch if patch.shape[0] >= 2 and patch.shape[1] >= 2 else None


def _match(grey: np.ndarray, template: np.ndarray, x: float, y: float, w: float, h: float) -> tuple[float, float] | None:
    """Where `template` is in `grey` within one box size of (x, y), or None when nowhere near."""
    import cv2

    th, tw = template.shape
    x0, y0 = max(0, int(x - w)), max(0, int(y - h))
    window = grey[y0:min(grey.shape[0], int(y + 2 * h) + 1), x0:min(grey.shape[1], int(x + 2 * w) + 1)]
    if window.shape[0] < th or window.shape[1] < tw:
        return None
    scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
    _, best, _, (bx, by) = cv2.minMaxLoc(scores)
    return (x0 + bx, y0 + by) if best >= FOLLOW_MATCH else None


def save_drawn(files: FileStore, sha256: str, image_id: int, tracks: list[Track]) -> None:
    """Tracks a reviewer drew on one session's copy of a video (kept beside its tracks)."""
    files.save_previews(sha256, {f"drawn-{image_id}": json.dumps([t.to_dict() for t in tracks]).encode()})


def load_drawn(files: FileStore, sha256: str, image_id: int) -> list[Track]:
    try:
        return [Track.from_dict(t) for t in json.loads(files.preview(sha256, f"drawn-{image_id}"))]
    except FileNotFoundError:
        return []


def all_tracks(files: FileStore, sha256: str, image_id: int) -> tuple[Scan, list[Track]]:
    """A video's scan, and its tracks with the ones drawn by the reviewer of this session."""
    scan = load_scan(files, sha256)
    return scan, scan.tracks + load_drawn(files, sha256, image_id)


THUMB_SIDE = 72


def track_thumbnails(path: Path, scan: Scan) -> dict[int, str]:
    """Each track's face at its surest frame (a little context around it), as a small JPEG in
    base64, for the review table; one decoding pass that stops after the last frame needed."""
    from .video import frames

    wanted: dict[int, list[Track]] = {}
    for track in scan.tracks:
        wanted.setdefault(track.best[0], []).append(track)
    thumbs: dict[int, str] = {}
    for n, frame in enumerate(frames(path)) if wanted else ():
        if n in wanted:
            pixels = shown(frame, scan.info.rotation)
            for track in wanted[n]:
                if (thumb := face_thumbnail(pixels, track.best[1])) is not None:
                    thumbs[track.id] = thumb
        if n >= max(wanted):
            break
    return thumbs


def drawn_thumbnail(path: Path, scan: Scan, track: Track) -> str | None:
    """A drawn track's face at its surest frame, as `track_thumbnails` makes a detected one's."""
    index, face = track.best
    return face_thumbnail(frame_at(path, scan, index), face)


def face_thumbnail(pixels: np.ndarray, face: Face) -> str | None:
    """A face with a little context around it, as a small JPEG in base64 (None: nothing there)."""
    import base64

    import cv2

    from .images import encode_photo

    x0, y0 = max(0, int(face.x - 0.3 * face.w)), max(0, int(face.y - 0.3 * face.h))
    crop = pixels[y0:int(face.y + 1.3 * face.h) + 1, x0:int(face.x + 1.3 * face.w) + 1]
    if not crop.size:
        return None
    k = THUMB_SIDE / max(crop.shape[:2])
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * k)), max(1, round(crop.shape[0] * k))),
                       interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    return base64.b64encode(encode_photo(small, "JPEG", 85)).decode()


def save_scan(files: FileStore, sha256: str, scan: Scan, thumbs: dict[int, str] | None = None) -> None:
    data = {"info": scan.info.to_dict() | {"name": scan.info.name, "pixel_shape": scan.info.pixel_shape},
            "times": scan.times,
            "tracks": [t.to_dict() for t in scan.tracks], "thumbs": {str(k): v for k, v in (thumbs or {}).items()}}
    files.save_previews(sha256, {"tracks": json.dumps(data).encode()})


def load_thumbnails(files: FileStore, sha256: str) -> dict[int, str]:
    return {int(k): v for k, v in json.loads(files.preview(sha256, "tracks")).get("thumbs", {}).items()}


def load_scan(files: FileStore, sha256: str) -> Scan:
    """A video's scan as saved. The same file is read once (a day's recording holds two million
    frame times, and the review page asks on every view); saving it again is read anew."""
    path = files.preview_path(sha256, "tracks")
    saved = path.stat()
    return _scan_at(path, saved.st_mtime_ns, saved.st_size, sha256)


@lru_cache(maxsize=8)
def _scan_at(path: Path, _mtime_ns: int, _size: int, sha256: str) -> Scan:
    """The scan saved at `path` (when it had that time and size). Never changed by its callers."""
    data = json.loads(path.read_bytes())
    info = VideoInfo(**{k: data["info"][k] for k in ("name", "width", "height", "rotation", "codec", "frames",
                                                     "duration", "audio")},
                     pixel_shape=data["info"].get("pixel_shape", 1.0),  # a scan saved before it: square
                     left_out=data["info"].get("left_out"))
    return Scan(info, sha256, [Track.from_dict(t) for t in data["tracks"]], data["times"])


def sound_preview(files: FileStore, sha256: str, silence: tuple[tuple[float, float], ...],
                  track: int = 0) -> Path | None:
    """A sound track of the clip as it will leave, `silence` silenced (see `video.sound_only`),
    kept beside its previews (removed with them); None for a clip with no sound that can be read."""
    asked = hashlib.sha256(json.dumps(silence).encode()).hexdigest()[:16]
    path = files.preview_path(sha256, f"sound-{track}-{asked}.m4a")
    if not path.exists() and not sound_only(files.object_path(sha256), path, silence, track):
        return None
    return path


def frame_at(path: Path, scan: Scan, index: int) -> np.ndarray:
    """Frame `index`, upright, as a screen shows it (an HDR frame tone-mapped: `video.shown`)."""
    for _, frame in _decoded(path, scan, index, index):
        return shown(frame, scan.info.rotation)
    raise ValueError(f"frame {index} cannot be decoded")


def _decoded(path: Path, scan: Scan, first: int, last: int) -> Iterator[tuple[int, object]]:
    """Frames `first` to `last` with their indices, decoded from the key frame before `first`;
    where the seek fails, lands nowhere, past `first` (an MPEG-TS clip with few key frames seeks
    by bytes and guesses) or on a frame without a time, from the start instead."""
    import av

    for seek in (True, False) if scan.ascending else (False,):  # a time that starts again names no one frame
        container, stream = _open(path)
        with container:
            if seek:
                try:
                    container.seek(max(0, int((scan.times[first] - 1.0) / stream.time_base)), stream=stream,
                                   backward=True)
                except av.FFmpegError:  # a stream that cannot seek at all
                    continue
            n, landed = None, False
            for frame in container.decode(stream):
                if n is None:  # where it starts: the frame the seek landed on, or the first
                    n = _index_at(frame, scan) if seek else 0
                    landed = n is not None and n <= first
                    if not landed:
                        break
                if n >= first:
                    yield n, frame
                n += 1
                if n > last:
                    return
            if landed:  # the clip ended before `last`
                return


def _index_at(frame, scan: Scan) -> int | None:
    """The index of the scan's frame nearest a decoded frame's time (None: it has no time). The
    times ascend: a binary search, not a pass over every frame on each scrub of a long clip."""
    if frame.pts is None:
        return None
    t = float(frame.pts * frame.time_base)
    after = bisect.bisect_left(scan.times, t)
    return min((k for k in (after - 1, after) if 0 <= k < scan.frames), key=lambda k: abs(scan.times[k] - t))


def frame_faces(tracks: list[Track], index: int) -> list[Face]:
    """What the given tracks cover in frame `index`."""
    return [face for t in tracks if (face := t.face_at(index, HOLD)) is not None]


def frame_marks(tracks: list[Track], marks: list[tuple[int, Face, str]], index: int) -> list[tuple[int, Face, str]]:
    """The review table's marks of a clip's rows (`review.table_marks`) moved onto frame
    `index`: each row's track's face in that frame, with the row's number, so the box a reviewer
    sees numbered 5 is row 5 of the table; a row whose track is not in the frame is left out."""
    by_id = {t.id: t for t in tracks}
    return [(number, seen, kind) for number, face, kind in marks
            if (track := by_id.get(track_id(face))) is not None and (seen := track.face_at(index, HOLD)) is not None]


def best_frame(scan: Scan, part: Part | None = None) -> int:
    """The frame the overview shows: where the surest face is surest (else the first); of a
    `part`, the surest detection in it."""
    if part is None:
        return max(scan.tracks, key=lambda t: t.score).best[0] if scan.tracks else 0
    seen = [(face.score, index) for track in scan.tracks for index, face in zip(track.frames, track.faces)
            if index in part]
    return max(seen)[1] if seen else part.first



def add_drawn(workspace, record, index: int, box: tuple[float, float, float, float], actor: str,
              seen: str | None = None) -> Track:
    """A face the reviewer drew on frame `index`: followed through the frames around it, kept
    as a track of this session's copy, and added to the review as a row covered for its whole
    track. The track is saved before the row exists, so a row never stands for a missing track."""
    files = workspace.files
    scan, tracks = all_tracks(files, record.sha256, record.id)
    track = follow(files.object_path(record.sha256), scan, index, box, max((t.id for t in tracks), default=0) + 1)
    save_drawn(files, record.sha256, record.id, load_drawn(files, record.sha256, record.id) + [track])
    workspace.add_face(record.id, Face(*box, score=1.0, detector=f"{TRACK}{track.id} drawn"), actor, seen=seen)
    workspace.log(record.session_id, actor, "drawn face followed", record.id, track=track.id, drawn_on=index,
                  first_frame=track.first, last_frame=track.last)
    return track


def move_drawn(workspace, record, number: int, index: int, box: tuple[float, float, float, float], actor: str,
               seen: str | None = None) -> Track:
    """The reviewer placed drawn track `number` at `box` on frame `index`, where it drifted:
    followed again from there (see `splice`). Its review row takes the new box first, so an
    approval made before the move goes out of date even if saving the track then fails."""
    files = workspace.files
    scan, _ = all_tracks(files, record.sha256, record.id)
    drawn = load_drawn(files, record.sha256, record.id)
    old = next((t for t in drawn if t.id == number), None)
    row = next((f for f in record.faces if track_id(f) == number), None)
    if old is None or row is None:
        raise StaleState(f"track {number} is no longer a face drawn in this review (changed in another tab?)")
    moved = splice(old, follow(files.object_path(record.sha256), scan, index, box, number), index)
    workspace.move_face(record.id, row, box, actor, seen=seen)
    save_drawn(files, record.sha256, record.id, [moved if t.id == number else t for t in drawn])
    workspace.log(record.session_id, actor, "drawn face moved", record.id, track=number, moved_on=index,
                  first_frame=moved.first, last_frame=moved.last)
    return moved
