"""What the review dashboard does, without the dashboard: detecting what is pending, previews,
and which images need a closer look. Taking files in is core.intake's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .anonymizers import OutlineAnnotator
from .faces import Face, near_misses, reviewable, selected
from .images import decode_photo, encode_photo
from . import video, video_review
from .pipeline import DETECT_EVERY, Engine, Settings, anonymize, failure_reason
from .records import ImageRecord
from .store import out_of_room
from .kinds import is_video
from .workspace import Workspace

PREVIEW_SIDE = 1600
THUMB_SIDE = 320
SMALL_FACE = 16


def detect_pending(workspace: Workspace, engine: Engine, session_id: int,
                   progress: Callable[..., None] | None = None) -> None:
    """Detect every image still waiting, saving each result (or failure) at once, so a crash
    loses at most the image in hand. Photos first: a photo takes a fraction of a second and a
    clip minutes, so the reviewer can start on the photos while the clips are detected; photos
    added meanwhile go before the next clip. `progress(done, total, name)` hears each file
    done, and `progress(done, total, name, frame=(frames done, frames))` how a clip goes."""
    while waiting := sorted(workspace.awaiting_detection(session_id), key=lambda record: is_video(record.name)):
        for index, record in enumerate(waiting, 1):
            if is_video(record.name) and any(not is_video(r.name) for r in workspace.awaiting_detection(session_id)):
                break  # every photo of `waiting` is done: these were added since
            _detect_one(workspace, engine, record, progress and (
                lambda done, frames: progress(index - 1, len(waiting), record.name, frame=(done, frames))))
            if progress:
                progress(index, len(waiting), record.name)


def _detect_one(workspace: Workspace, engine: Engine, record: ImageRecord, frames=None) -> None:
    """One photo's faces, or one clip's tracks (`frames(done, total)` hears how it goes), saved;
    any failure is saved as its error, but a full disk's (`out_of_room`), which stops the batch."""
    try:
        if is_video(record.name):
            _detect_video(workspace, engine, record, frames)
        else:
            photo = decode_photo(workspace.files.read(record.sha256), record.name, engine.max_pixels)
            faces = engine.detect(photo)
            workspace.files.save_previews(record.sha256, preview_bases(photo.pixels))
            workspace.save_detection(record.id, photo.width, photo.height, faces)
    except Exception as exc:  # noqa: BLE001 - one photo's failure is that photo's error
        if out_of_room(exc):
            raise  # the workspace's disk, not the file: it stays waiting, and the batch stops here
        workspace.save_failure(record.id, failure_reason(exc))


def _detect_video(workspace: Workspace, engine: Engine, record: ImageRecord, progress=None) -> None:
    """A video's tracks, kept beside its original; one face per track for the review."""
    path = workspace.files.object_path(record.sha256)
    scan = video.scan(engine.detect_frame, path, DETECT_EVERY, progress)
    video_review.save_scan(workspace.files, record.sha256, scan, video_review.track_thumbnails(path, scan))
    best = video_review.frame_at(path, scan, video_review.best_frame(scan))
    workspace.files.save_previews(record.sha256, preview_bases(best))
    workspace.save_detection(record.id, scan.info.width, scan.info.height, video_review.track_faces(scan.tracks),
                             source="tracks detected")


def preview_bases(pixels: np.ndarray) -> dict[int, bytes]:
    """Downscaled copies of the original, made once, for fast previews and thumbnails."""
    out = {}
    for side in (PREVIEW_SIDE, THUMB_SIDE):
        size = base_size(pixels.shape[1], pixels.shape[0], side)
        small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA) if size != pixels.shape[1::-1] else pixels
        out[side] = encode_photo(small, "PNG" if small.shape[2] == 4 else "JPEG", 90)
    return out


def base_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The size of a photo's downscaled copy whose longer side is at most `side`."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


SWITCHED_OFF = OutlineAnnotator(color=(255, 210, 0))
FLAGGED = OutlineAnnotator(color=(170, 60, 255))


NEAR = OutlineAnnotator(color=(150, 150, 150))


def render(base: np.ndarray, full_width: int, faces: list[Face], settings: Settings,
           outline: bool = False, flagged: list[Face] = (), near: bool = False,
           marks: list[Mark] | None = None) -> np.ndarray:
    """Anonymise a downscaled copy as the full-size export will be: boxes scaled to it. With
    `outline`, every face of the review table is boxed with its number: covered ones in red,
    switched-off ones in yellow; with `near`, the near misses in grey. `marks` replaces those
    boxes with the given ones (a video frame's, numbered as its tracks' rows). `flagged` faces
    (the residual check's) are boxed in purple."""
    k = base.shape[1] / full_width

    def scale(found: list[Face]) -> list[Face]:
        return [replace(f, x=f.x * k, y=f.y * k, w=f.w * k, h=f.h * k) for f in found]

    out = anonymize(base, scale(faces), replace(settings, outline=False))
    height, width = base.shape[:2]
    marks = table_marks(faces, settings.threshold, outline, near) if marks is None else marks
    out = outline_marks(out, [(n, scale([f])[0], kind) for n, f, kind in marks], settings)
    if flagged:
        out = FLAGGED.annotate(out, [f.region(0.0, width, height) for f in scale(flagged)], ["?"] * len(flagged))
    return out


# A face boxed on a picture with the number the review table gives it, and what it is:
# COVERED (red), OFF (switched off: yellow) or NEAR (a near miss, not covered: grey).
Mark = tuple[int, Face, str]
COVERED, OFF, NEAR_MISS = "covered", "off", "near"


def table_marks(faces: list[Face], threshold: float, outline: bool = True, near: bool = False) -> list[Mark]:
    """The faces of the review table as the table numbers them: the faces decided on (with
    `outline`), then the near misses (with `near`)."""
    chosen = reviewable(faces, threshold)
    marks = [(n + 1, faces[i], COVERED if faces[i].enabled else OFF) for n, i in enumerate(chosen)] if outline else []
    if near:
        marks += [(len(chosen) + n + 1, faces[i], NEAR_MISS) for n, i in enumerate(near_misses(faces, threshold))]
    return marks


def outline_marks(out: np.ndarray, marks: list[Mark], settings: Settings,
                  covered: OutlineAnnotator = OutlineAnnotator()) -> np.ndarray:
    """Box each mark (in `out`'s pixels) with its number: a face decided on by its covered
    region (regions past the edge are cut there), a near miss by its own box."""
    height, width = out.shape[:2]
    for kind, annotator, padding in ((COVERED, covered, settings.padding), (OFF, SWITCHED_OFF, settings.padding),
                                     (NEAR_MISS, NEAR, 0.0)):
        shown = [(n, f) for n, f, k in marks if k == kind]
        out = annotator.annotate(out, [f.region(padding, width, height) for _, f in shown], [str(n) for n, _ in shown])
    return out


def face_crop(anonymised: np.ndarray, face: Face, settings: Settings, context: float = 1.0,
              least: int = 160) -> np.ndarray:
    """The full-resolution output around one face: its covered region and `context` x the face's
    size beyond it on every side, at least `least` px across, and its region outlined. Nothing
    is scaled down: the reviewer judges the pixels that will leave."""
    height, width = anonymised.shape[:2]
    x, y, w, h = face.region(settings.padding, width, height)
    grow = max(face.w, face.h) * context
    half = max(least / 2, (max(w, h) / 2) + grow)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(width, int(cx + half)), min(height, int(cy + half))
    crop = np.ascontiguousarray(anonymised[y0:y1, x0:x1])
    return OutlineAnnotator(thickness_ratio=0.006).annotate(crop, [(x - x0, y - y0, w, h)])


@dataclass(frozen=True)
class Flag:
    """Something a reviewer should look at, weighted for sorting by risk; `count`, how many faces
    it is about (of two crowds with the same flags, 37 near misses come before 3)."""

    weight: int
    text: str
    count: int = 1


def attention(record: ImageRecord, settings: Settings) -> list[Flag]:
    """Why a reviewer should look closely at this image, most serious first; [] when
    nothing stands out. A face still found after anonymisation, or switched off, is a
    possible leak; a photo with no face at all may be a miss."""
    if record.error:
        return [Flag(20, f"cannot be processed: {record.error}")]
    if not record.detected:
        return [Flag(1, "not yet detected")]
    flags = []
    residual = record.residual_open(settings)
    if residual:
        flags.append(Flag(100, f"{len(residual)} face(s) found again after anonymisation: held out of "
                               "the export until confirmed", len(residual)))
    chosen = selected(record.faces, settings.threshold)
    if not chosen:
        flags.append(Flag(40, "no face found"))
    off = [record.faces[i] for i in reviewable(record.faces, settings.threshold) if not record.faces[i].enabled]
    if off:
        flags.append(Flag(30, f"{len(off)} face(s) switched off", len(off)))
    near = near_misses(record.faces, settings.threshold)
    if near:
        flags.append(Flag(10, f"{len(near)} candidate(s) just under the threshold", len(near)))
    small = [f for f in chosen if f.size < SMALL_FACE]
    if small:
        flags.append(Flag(5, f"{len(small)} very small face(s)", len(small)))
    if any(f.manual for f in record.faces):
        flags.append(Flag(3, "faces added by hand"))
    return flags
