"""What the review dashboard does, without the dashboard: taking photos in (uploads, zips,
folders), detecting what is pending, previews, and which images need a closer look."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from .anonymizers import OutlineAnnotator
from .faces import Face, near_misses, reviewable, selected
from .images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, decode_photo, encode_photo
from . import video, video_review
from .pipeline import DETECT_EVERY, Engine, Settings, anonymize, failure_reason
from .video import is_video
from .workspace import ImageRecord, Workspace

PREVIEW_SIDE = 1600
THUMB_SIDE = 320
SMALL_FACE = 16

# A zip upload may not unpack to more than this, nor compress better than this ratio.
ZIP_MAX_TOTAL = 2 * 1024 ** 3
ZIP_MAX_RATIO = 100
ZIP_MAX_MEMBERS = 10_000


@dataclass(frozen=True)
class Intake:
    """One file offered to a session: its bytes, or why it cannot be taken."""

    name: str
    data: bytes = b""
    problem: str | None = None


def unpack_zip(data: bytes, zip_name: str) -> Iterator[Intake]:
    """The image files in an uploaded zip, by their base name only (no folder from the
    archive is ever used, so '../' and absolute paths cannot escape). Links, folders and
    anything that unpacks out of proportion (a zip bomb) are refused."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield Intake(zip_name, problem=f"not a readable zip ({exc})")
        return
    if len(members) > ZIP_MAX_MEMBERS:
        yield Intake(zip_name, problem=f"holds {len(members)} entries, more than {ZIP_MAX_MEMBERS}")
        return
    total = 0
    for member in members:
        label = f"{zip_name}/{member.filename}"
        if member.is_dir():
            continue
        if stat.S_ISLNK(member.external_attr >> 16):
            yield Intake(label, problem="a symbolic link inside the zip; refused")
            continue
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > ZIP_MAX_RATIO or total > ZIP_MAX_TOTAL:
            yield Intake(label, problem=f"unpacks to {member.file_size} bytes (ratio {ratio:.0f}:1): "
                                        "a possible zip bomb; refused")
            continue
        try:
            with archive.open(member) as handle:
                content = handle.read(member.file_size + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
            yield Intake(label, problem=f"cannot be unpacked ({exc})")
            continue
        if len(content) > member.file_size:
            yield Intake(label, problem="larger than its zip header says; refused")
            continue
        yield Intake(f"{zip_name}/{Path(member.filename.replace(chr(92), '/')).name}", content)


def intake_upload(name: str, data: bytes) -> Iterator[Intake]:
    """An uploaded file, or the files of an uploaded zip."""
    if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
        yield from unpack_zip(data, name)
    else:
        yield Intake(name, data)


def allowed_roots() -> list[Path]:
    """Folders the dashboard may read from: FACE_PRIVACY_FOLDER_ROOTS (separated by the
    system's path separator), else the user's Pictures, Desktop and Downloads folders (not the
    whole home folder: it holds keys, mail and documents that are no photo batch)."""
    configured = os.environ.get("FACE_PRIVACY_FOLDER_ROOTS")
    if configured:
        roots = configured.split(os.pathsep)
    else:
        from platformdirs import user_desktop_dir, user_downloads_dir, user_pictures_dir

        roots = [user_pictures_dir(), user_desktop_dir(), user_downloads_dir()]
    return [Path(r).resolve() for r in roots if r]


# A file read from a folder may not be larger than this (it is read into memory).
MAX_FILE_BYTES = 2 * 1024 ** 3


def folder_problem(folder: str, roots: list[Path]) -> str | None:
    """Why a folder cannot be read (no such folder, outside the allowed roots, not a folder), or None."""
    try:
        target = Path(folder).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        return "no such folder"
    if not _inside(target, roots):
        return f"outside the folders this dashboard may read ({', '.join(str(r) for r in roots)})"
    if not target.is_dir():
        return "not a folder"
    return None


def intake_folder(folder: str, roots: list[Path], max_files: int = 20_000,
                  max_bytes: int = MAX_FILE_BYTES) -> Iterator[Intake]:
    """The files of a folder on this machine, walked without following links; refuses a
    folder outside the allowed roots, and unreadable, oversized or non-image files one by one."""
    problem = folder_problem(folder, roots)
    if problem:
        yield Intake(folder, problem=problem)
        return
    target = Path(folder).expanduser().resolve(strict=True)
    count = 0
    for parent, dirs, files in os.walk(target, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(parent) / name
            label = str(path.relative_to(target))
            count += 1
            if count > max_files:
                yield Intake(str(target), problem=f"more than {max_files} files; the rest were not read")
                return
            if name.startswith("."):
                continue
            if path.is_symlink():
                yield Intake(label, problem="a symbolic link; refused")
            elif not path.is_file():
                yield Intake(label, problem="not a regular file (a device, pipe or socket); refused")
            elif path.suffix.lower() not in IMAGE_SUFFIXES and not is_video(path):
                yield Intake(label, problem=f"not an image or video file (extension {path.suffix or 'none'})")
            elif path.stat().st_size > max_bytes:
                yield Intake(label, problem=f"larger than {max_bytes // 1024 ** 2} MB; refused")
            else:
                try:
                    yield Intake(label, path.read_bytes())
                except OSError as exc:
                    yield Intake(label, problem=f"cannot be read ({exc.strerror or exc})")


@dataclass(frozen=True)
class IntakeReport:
    """What became of a batch offered to a session."""

    added: int
    refused: list[Intake]
    duplicates: list[tuple[str, str]]  # (name offered, the photo already in the session)


def add_files(workspace: Workspace, session_id: int, intakes: Iterator[Intake], actor: str,
              progress: Callable[[int, str], None] | None = None) -> IntakeReport:
    """Store what can be stored, log what is refused, and name what was there already;
    `progress(files so far, name)` after each file."""
    refused, duplicates, added = [], [], 0
    for count, item in enumerate(intakes, 1):
        if progress:
            progress(count, item.name)
        if item.problem:
            workspace.add_refused(session_id, item.name, item.problem, actor)
            refused.append(item)
        else:
            _, same_as = workspace.add_image(session_id, item.name, item.data, actor)
            if same_as is None:
                added += 1
            else:
                duplicates.append((item.name, same_as))
    return IntakeReport(added, refused, duplicates)


@dataclass(frozen=True)
class ImportReport:
    """What became of a cluster run opened for review."""

    session_id: int
    added: int
    refused: list[str]
    skipped: list[str]  # videos: reviewed with the command line's manifest for now


def import_run(workspace: Workspace, manifest_path: Path, session_name: str, reviewer: str,
               roots: list[Path] | None = None, max_pixels: int | None = None) -> tuple[int, ImportReport]:
    """Open a finished batch (a cluster run's, or the local command's) as a review session:
    each photo's original is stored and its faces are taken from the manifest (nothing is
    detected again); a file that failed in the run, changed since, or lies outside `roots`
    (when given) is listed as refused."""
    manifest_path = Path(manifest_path)
    if roots is not None and not _inside(manifest_path, roots):
        raise ValueError(f"{manifest_path} is outside the folders this dashboard may read")
    try:
        manifest = json.loads(manifest_path.read_text())
        files, settings = manifest["files"], Settings(**manifest["settings"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{manifest_path} is not a batch manifest ({exc})") from None
    session_id = workspace.create_session(session_name, reviewer, settings)
    workspace.log(session_id, reviewer, "batch run opened for review", manifest=str(manifest_path),
                  created=manifest.get("created"), files=len(files))
    added, refused, skipped = 0, [], []
    for entry in files:
        source = Path(entry["input"])
        if not source.is_absolute():
            source = manifest_path.parent / source
        if entry.get("kind") == "video":
            skipped.append(source.name)
            continue
        try:
            if "error" in entry:
                raise ValueError(entry["error"])
            if roots is not None and not _inside(source, roots):
                raise ValueError("outside the folders this dashboard may read")
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["input_sha256"]:
                raise ValueError("the file changed after the run; add it again to have it detected")
            photo = decode_photo(data, source.name, max_pixels or DEFAULT_MAX_PIXELS)
            image_id, same_as = workspace.add_image(session_id, source.name, data, reviewer)
            if same_as is None:
                workspace.save_previews(photo.sha256, _bases(photo.pixels))
                workspace.save_detection(image_id, photo.width, photo.height,
                                         [Face(f["x"], f["y"], f["w"], f["h"], f["score"], f["detector"])
                                          for f in entry["faces"]], source="faces imported from a batch run")
                added += 1
        except Exception as exc:  # noqa: BLE001 - one file's problem is that file's, the rest are opened
            reason = str(exc) if isinstance(exc, ValueError) else failure_reason(exc)
            workspace.add_refused(session_id, source.name, reason, reviewer)
            refused.append(source.name)
    return session_id, ImportReport(session_id, added, refused, skipped)


def _inside(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root) for root in roots)


def detect_pending(workspace: Workspace, engine: Engine, session_id: int,
                   progress: Callable[[int, int, str], None] | None = None) -> None:
    """Detect every image still waiting, saving each result (or failure) at once, so a crash
    loses at most the image in hand."""
    waiting = workspace.awaiting_detection(session_id)
    for index, record in enumerate(waiting, 1):
        try:
            if is_video(record.name):
                _detect_video(workspace, engine, record, progress and (
                    lambda done, frames: progress(index - 1, len(waiting), f"{record.name}: frame {done}/{frames}")))
            else:
                photo = decode_photo(workspace.read(record.sha256), record.name, engine.max_pixels)
                faces = engine.detect(photo)
                workspace.save_previews(record.sha256, _bases(photo.pixels))
                workspace.save_detection(record.id, photo.width, photo.height, faces)
        except Exception as exc:  # noqa: BLE001 - one photo's failure is that photo's error
            workspace.save_failure(record.id, failure_reason(exc))
        if progress:
            progress(index, len(waiting), record.name)


def _detect_video(workspace: Workspace, engine: Engine, record: ImageRecord, progress=None) -> None:
    """A video's tracks, kept beside its original; one face per track for the review."""
    path = workspace.files.object_path(record.sha256)
    scan = video.scan(engine.detect_frame, path, DETECT_EVERY, progress)
    video_review.save_scan(workspace.files, record.sha256, scan, video_review.track_thumbnails(path, scan))
    workspace.save_previews(record.sha256, _bases(video_review.frame_at(path, scan, video_review.best_frame(scan))))
    workspace.save_detection(record.id, scan.info.width, scan.info.height, video_review.track_faces(scan.tracks),
                             source="tracks detected")


def _bases(pixels: np.ndarray) -> dict[int, bytes]:
    """Downscaled copies of the original, made once, for fast previews and thumbnails."""
    out = {}
    for side in (PREVIEW_SIDE, THUMB_SIDE):
        scale = min(1.0, side / max(pixels.shape[:2]))
        small = cv2.resize(pixels, (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA) if scale < 1 else pixels
        out[side] = encode_photo(small, "PNG" if small.shape[2] == 4 else "JPEG", 90)
    return out


SWITCHED_OFF = OutlineAnnotator(color=(255, 210, 0))
FLAGGED = OutlineAnnotator(color=(170, 60, 255))


NEAR = OutlineAnnotator(color=(150, 150, 150))


def render(base: np.ndarray, full_width: int, faces: list[Face], settings: Settings,
           outline: bool = False, flagged: list[Face] = (), near: bool = False) -> np.ndarray:
    """Anonymise a downscaled copy as the full-size export will be: boxes scaled to it. With
    `outline`, every face of the review table is boxed with its number: covered ones in red,
    switched-off ones in yellow. `flagged` faces (the residual check's) are boxed in purple."""
    k = base.shape[1] / full_width

    def scale(found: list[Face]) -> list[Face]:
        return [replace(f, x=f.x * k, y=f.y * k, w=f.w * k, h=f.h * k) for f in found]

    scaled = scale(faces)
    out = anonymize(base, scaled, replace(settings, outline=False))
    height, width = base.shape[:2]
    if outline:
        out = outline_table(out, scaled, settings)
    if near:  # near misses in grey, numbered after the table's covered faces, as in the table
        first = len(reviewable(faces, settings.threshold)) + 1
        shown = [scaled[i] for i in near_misses(faces, settings.threshold)]
        out = NEAR.annotate(out, [f.region(0.0, width, height) for f in shown],
                            [str(first + n) for n in range(len(shown))])
    if flagged:
        out = FLAGGED.annotate(out, [f.region(0.0, width, height) for f in scale(flagged)], ["?"] * len(flagged))
    return out


def outline_table(out: np.ndarray, faces: list[Face], settings: Settings,
                  covered: OutlineAnnotator = OutlineAnnotator()) -> np.ndarray:
    """Box every face of the review table (in `out`'s pixels) with its number: covered ones by
    `covered` (red), switched-off ones in yellow; regions past the edge are cut there."""
    height, width = out.shape[:2]
    for annotator, enabled in ((covered, True), (SWITCHED_OFF, False)):
        shown = [(n + 1, faces[i]) for n, i in enumerate(reviewable(faces, settings.threshold))
                 if faces[i].enabled == enabled]
        out = annotator.annotate(out, [f.region(settings.padding, width, height) for _, f in shown],
                                 [str(n) for n, _ in shown])
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
    """Something a reviewer should look at, weighted for sorting by risk."""

    weight: int
    text: str


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
                               "the export until confirmed"))
    chosen = selected(record.faces, settings.threshold)
    if not chosen:
        flags.append(Flag(40, "no face found"))
    off = [record.faces[i] for i in reviewable(record.faces, settings.threshold) if not record.faces[i].enabled]
    if off:
        flags.append(Flag(30, f"{len(off)} face(s) switched off"))
    near = near_misses(record.faces, settings.threshold)
    if near:
        flags.append(Flag(10, f"{len(near)} candidate(s) just under the threshold"))
    small = [f for f in chosen if f.size < SMALL_FACE]
    if small:
        flags.append(Flag(5, f"{len(small)} very small face(s)"))
    if any(f.manual for f in record.faces):
        flags.append(Flag(3, "faces added by hand"))
    return flags
