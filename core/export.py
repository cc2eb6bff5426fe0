"""What leaves a review session: a publication zip of the approved photos, anonymised at full
resolution with the settings each was approved with, and an audit package the reviewer keeps.

- The publication zip names photos neutrally (`<session>-0001.jpg`) and carries no original
  file name, hash of an original, comment or reviewer: only the photos and what was done to them.
- The audit package holds a manifest of *every* photo of the session (exported, held back,
  rejected, pending, failed, each with its reason, reviewer and local time), the mapping from
  the published names to the originals, the session's audit log, and a self-contained HTML
  report with each exported photo's anonymised thumbnail and history.

Each photo's approval is read again at the moment its output is written, and the residual check
is bound to the exact output it checked. A zip reflects the session as it was when it started:
any later decision, edit or setting change makes it out of date (see `ExportLog.of_session`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import cv2

from .faces import selected
from .images import DEFAULT_MAX_PIXELS, decode_photo, encode_photo, output_format
from . import times, video, video_review
from .batch import part_record
from .run_folder import safe_name
from .pipeline import VIDEO_FOUND_AGAIN, Settings, anonymize, check_output, engine_versions
from .records import APPROVED, REJECTED, ImageRecord
from .report import audit_report, csv_text, detail_text, local_time, utc_now
from .residual import EXPOSED, residual_faces
from .tracks import HOLD
from .kinds import is_video
from .store import StoredFileError, out_of_room, private_file
from .workspace import Workspace

PUBLIC_FIELDS = [
    "output_name", "output_sha256", "width", "height", "faces_found", "faces_disabled",
    "faces_added_by_hand", "threshold", "mode", "strength", "padding", "shape", "decided_at",
    "engine_version",
]
AUDIT_FIELDS = [
    "original_name", "outcome", "reason", "output_name", "original_sha256", "output_sha256",
    "width", "height", "faces_found", "faces_disabled", "faces_added_by_hand", "threshold", "mode",
    "strength", "padding", "shape", "sound", "left_out", "part", "silenced", "reviewer", "decision", "decided_at", "comment",
    "residual",
    "engine_version",
]


def face_counts(record: ImageRecord, threshold: float) -> dict:
    """Detected faces at the threshold; how many of the faces the reviewer decides on (those
    and every face drawn by hand) are switched off; how many were drawn by hand."""
    faces = record.faces or []
    detected = [f for f in faces if not f.by_hand and f.score >= threshold]
    return {
        "faces_found": len(detected),
        "faces_disabled": sum(not f.enabled for f in faces if f.by_hand or f.score >= threshold),
        "faces_added_by_hand": sum(f.by_hand for f in faces),
    }


@dataclass(frozen=True)
class ExportResult:
    export_id: int
    path: Path
    audit_path: Path
    exported: list[str]
    held_back: list[str]


REMOVED = "removed from the session during the export"


def export_approved(workspace: Workspace, session_id: int, actor: str, detector,
                    progress: Callable[[int, int, str], None] | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS, export_id: int | None = None) -> ExportResult:
    """Build the session's publication zip and audit package in the workspace's exports folder.

    Each output is checked by `detector` (the residual check, on the output as written; once per
    distinct output): a photo whose output still shows a face is held back and flagged until the
    reviewer confirms it. Files are written under temporary names and renamed when complete, so
    a crash never leaves a half-written zip where the dashboard would offer it."""
    if export_id is None:
        export_id = workspace.exports.start(session_id, actor)
    try:
        return _build(workspace, session_id, actor, detector, progress, max_pixels, export_id)
    except BaseException as exc:
        workspace.exports.fail(export_id, f"{type(exc).__name__}: {exc}")
        raise


def published_stem(session_name: str) -> str:
    """What a session's name makes of the names of its zip and of every file published from it
    (`<stem>-0001.jpg`). The name is a title, not a path: "St. Mary's trip 5/B" keeps every part."""
    return safe_name(session_name, "session")


def _build(workspace: Workspace, session_id: int, actor: str, detector, progress, max_pixels: int,
           export_id: int) -> ExportResult:
    session = workspace.session(session_id)
    revision = workspace.exports.get(export_id)["revision"]
    records = workspace.images(session_id)
    stem = published_stem(session["name"])
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = workspace.files.exports / f"{stem}-{stamp}-{export_id}.zip"
    audit_target = workspace.files.exports / f"{stem}-{stamp}-{export_id}-audit.zip"
    partial = target.with_name(f"{target.name}.partial")
    versions = engine_versions()
    photos: list[dict] = []
    try:
        with private_file(partial) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for index, record in enumerate(records, 1):
                def step(text: str, done: int = index - 1) -> None:
                    if progress:
                        progress(done, len(records), text)
                    workspace.exports.progress(export_id, done, len(records), text)

                step(record.name)
                photo = _one(workspace, session_id, record, detector, max_pixels, versions, step)
                if photo["outcome"] == "exported":
                    name = f"{stem}-{sum(p['outcome'] == 'exported' for p in photos) + 1:04d}{photo.pop('suffix')}"
                    photo["output_name"] = f"images/{name}"
                    if "data_path" in photo:  # a video, rendered to a file: streamed in, never held in memory
                        rendered = photo.pop("data_path")
                        try:
                            archive.write(rendered, photo["output_name"])
                        finally:
                            rendered.unlink(missing_ok=True)
                    else:
                        archive.writestr(photo["output_name"], photo.pop("data"))
                photos.append(photo)
            exported = [p for p in photos if p["outcome"] == "exported"]
            exported_at = local_time(utc_now())  # one time for the zip, its audit zip and report
            archive.writestr("manifest.csv", csv_text(exported, PUBLIC_FIELDS))
            archive.writestr("manifest.json", json.dumps({
                "session": session["name"], "exported_at": exported_at, "versions": versions,
                "images": [{k: p.get(k) for k in PUBLIC_FIELDS} | {"regions": p["regions"]} for p in exported],
            }, indent=2))
        _seal(partial, target)
        with open(target, "rb") as handle:  # in chunks: the zip may be larger than memory allows
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        counts = {outcome: sum(p["outcome"] == outcome for p in photos)
                  for outcome in ("exported", "held back", "rejected", "pending", "failed")}
        _write_audit(workspace, session, actor, exported_at, photos, counts, versions, target, digest, audit_target)
        if progress:
            progress(len(records), len(records), "")
        workspace.exports.finish(export_id, actor, target.name, audit_target.name, digest, counts, revision)
    except BaseException:  # an export that failed is never offered: its zips would only take room
        target.unlink(missing_ok=True)
        audit_target.unlink(missing_ok=True)
        raise
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(export_id, target, audit_target, [p["original_name"] for p in exported],
                        [p["original_name"] for p in photos if p["outcome"] == "held back"])


def _one(workspace: Workspace, session_id: int, record: ImageRecord, detector, max_pixels: int,
         versions: dict, step: Callable[[str], None] = lambda text: None) -> dict:
    """One photo's outcome (and, when it is exported, its encoded output as `data`); `step`
    hears how a video's rendering and checking go, frame by frame."""
    row = {"image_id": record.id, "original_name": record.name, "original_sha256": record.sha256,
           "reviewer": record.decided_by or "", "decision": record.status,
           "decided_at": local_time(record.decided_at), "comment": record.comment,
           "engine_version": versions["engine"], "regions": []}
    if record.error:
        return row | {"outcome": "failed", "reason": record.error}
    if record.status == REJECTED:
        return row | {"outcome": "rejected", "reason": record.comment or "rejected by the reviewer"}
    # The approval as it stands now, not as it stood when the export began.
    fresh, batch = workspace.image(record.id), workspace.batch_settings(session_id)
    if fresh.removed_at:
        return row | {"outcome": "rejected", "reason": REMOVED}
    if not fresh.detected:
        return row | {"outcome": "pending", "reason": "waiting for detection"}
    if not fresh.approval_current(batch):
        reason = ("approval out of date: settings or faces changed since" if fresh.approval_outdated(batch)
                  else "rejected during the export" if fresh.status == REJECTED else "not approved")
        return row | {"outcome": "rejected" if fresh.status == REJECTED else "pending", "reason": reason,
                      "decision": fresh.status}
    mark, settings = fresh.current_fingerprint(batch), fresh.settings(batch)
    row |= _settings_row(settings) | face_counts(fresh, settings.threshold) | {
        "reviewer": fresh.decided_by, "decided_at": local_time(fresh.decided_at), "comment": fresh.comment}
    if is_video(record.name):
        return _one_video(workspace, record, fresh, batch, settings, mark, row, detector, step)
    try:
        original = workspace.files.checked(record.sha256)
    except StoredFileError as exc:
        return row | {"outcome": "held back", "reason": str(exc)}
    try:
        photo = decode_photo(original, record.name, max_pixels)
        pixels = anonymize(photo.pixels, fresh.faces, settings)
        data = encode_photo(pixels, output_format(photo), settings.jpeg_quality)
        output_sha = hashlib.sha256(data).hexdigest()
        found = fresh.residual_result(batch, output_sha)
        if found is None:  # this output was never checked: check it once, as it leaves
            found = check_output(detector, photo, data, selected(fresh.faces, settings.threshold), settings)
            workspace.save_residual(record.id, mark, output_sha, found)
    except Exception as exc:  # noqa: BLE001 - one photo's failure is that photo's outcome
        if out_of_room(exc):
            raise  # the disk's, not the photo's: the export fails, and is built again once there is room
        return row | {"outcome": "held back", "reason": f"could not be anonymised ({type(exc).__name__}: {exc})"}
    held = _held(row, found) or _changed(workspace, record, mark, row)
    if held:
        return held
    regions = settings.regions(fresh.faces, photo.width, photo.height)
    return row | {"outcome": "exported", "data": data, "suffix": ".jpg" if output_format(photo) == "JPEG" else ".png",
                  "output_sha256": output_sha, "width": photo.width, "height": photo.height,
                  "decision": APPROVED, "regions": [list(r) for r in regions],
                  "residual": "clean" if fresh.residual_confirmed != mark else "confirmed safe by the reviewer",
                  "thumbnail": _thumbnail(pixels)}


def _one_video(workspace: Workspace, record: ImageRecord, fresh: ImageRecord, batch: Settings, settings: Settings,
               mark: str, row: dict, detector, step: Callable[[str], None]) -> dict:
    """A video's outcome: rendered with the tracks the reviewer covers, checked at sampled
    frames of the written file (each track's ends among them), written into the zip as MP4."""
    source = workspace.files.object_path(record.sha256)
    # Its own name: two exports of the session at once never write or delete each other's.
    target = workspace.files.exports / f".video-{record.id}-{secrets.token_hex(8)}.mp4.partial"
    unsafe = workspace.files.problem(record.sha256)
    if unsafe:
        return row | {"outcome": "held back", "reason": unsafe}
    try:
        clip, every = video_review.all_tracks(workspace.files, record.sha256, record.id)
        tracks = video_review.covered_tracks(every, fresh.faces, settings.threshold)
        cover = lambda pixels, faces: anonymize(pixels, faces, settings)  # noqa: E731
        part = clip.part(settings.start, settings.end, settings.by_clock)
        rendered = video.render(source, target, tracks, cover, settings.video_quality,
                                progress=lambda n, total: step(f"{record.name}: frame {n} of {total or '?'} covered"),
                                sound=settings.sound, part=part, silence=settings.silence)
        with open(target, "rb") as handle:
            output_sha = hashlib.file_digest(handle, "sha256").hexdigest()
        found = fresh.residual_result(batch, output_sha)
        if found is None:
            checked = video.check(source, target, video.Scan(clip.info, clip.sha256, tracks, clip.times),
                                  lambda before, after, faces: residual_faces(
                                      detector, before, after, faces, settings.regions(faces, clip.info.width,
                                                                                       clip.info.height),
                                      outside=VIDEO_FOUND_AGAIN),
                                  progress=lambda n, total: step(f"{record.name}: frame {n} of {total} checked"),
                                  part=part)
            found = [replace(f, detector=f"{f.detector} (frame {n + 1})") for n, faces in checked for f in faces]
            workspace.save_residual(record.id, mark, output_sha, found)
        best = video_review.best_frame(clip, part)
        frame = video_review.frame_at(source, clip, best)
        thumbnail = _thumbnail(cover(frame, video_review.frame_faces(tracks, best)))
    except Exception as exc:  # noqa: BLE001 - one video's failure is that video's outcome
        target.unlink(missing_ok=True)
        if out_of_room(exc):
            raise  # the disk's, not the video's: a zip of the rest would be offered as current
        return row | {"outcome": "held back", "reason": f"could not be anonymised ({type(exc).__name__}: {exc})"}
    held = _held(row, found) or _changed(workspace, record, mark, row)
    if held:
        target.unlink(missing_ok=True)
        return held
    return row | {"outcome": "exported", "data_path": target, "suffix": ".mp4", "output_sha256": output_sha,
                  "width": clip.info.width, "height": clip.info.height, "decision": APPROVED,
                  "regions": _regions(tracks, part, clip.frames),
                  "residual": "clean" if fresh.residual_confirmed != mark else "confirmed safe by the reviewer",
                  "sound": rendered["audio"] or "none", "left_out": rendered["left_out"], "thumbnail": thumbnail,
                  "part": part and _part_said(clip, part), "silenced": _silenced_said(rendered["silenced"])}


def _regions(tracks: list, part: video.Part | None, frames: int) -> list[dict]:
    """Each covered track's frames in the output (its cover held HOLD frames past its ends):
    of a part, counted from the part's first frame, as the exported file numbers them."""
    first, last = (part.first, part.last) if part else (0, frames - 1)
    return [{"track": t.id, "first_frame": max(t.first - HOLD, first) - first,
             "last_frame": min(t.last + HOLD, last) - first}
            for t in tracks if t.first - HOLD <= last and t.last + HOLD >= first]


def _part_said(clip: video.Scan, part: video.Part) -> str:
    """ "1:00.00 to 1:30.00 of 2:00:00.00 (frames 1501 to 2250 of 180000)": times from the first
    frame, frames counted from 1, as the review page says them."""
    said = part_record(clip, part)
    return (f"{times.said_time(said['from'])} to {times.said_time(said['to'])} of {times.said_time(clip.duration)} "
            f"(frames {part.first + 1} to {part.last + 1} of {clip.frames}"
            + (f"; the recording's clock {said['clock'][0]} to {said['clock'][1]}" if "clock" in said else "") + ")")


def _silenced_said(silenced: list) -> str:
    """ "0:12.00 to 0:15.00; 1:02.00 to 1:05.00 of the exported file, checked silent there" """
    if not silenced:
        return ""
    return "; ".join(times.said_span(a, b) for a, b in silenced) + " of the exported file, checked silent there"


def _held(row: dict, found: list) -> dict | None:
    """The row of an output the residual check flagged, else None."""
    if not found:
        return None
    exposed = sum(f.detector.startswith(EXPOSED) for f in found)
    return row | {"outcome": "held back", "residual": f"{len(found)} face(s) flagged",
                  "reason": f"residual check: {exposed} covered face(s) still show, "
                            f"{len(found) - exposed} face(s) found again; the reviewer must look and confirm"}


def _changed(workspace: Workspace, record: ImageRecord, mark: str, row: dict) -> dict | None:
    """The moment of writing: the approval must still stand, for exactly this output."""
    final, batch_now = workspace.image(record.id), workspace.batch_settings(record.session_id)
    if final.approval_current(batch_now) and final.current_fingerprint(batch_now) == mark:
        return None
    if final.removed_at:
        return row | {"outcome": "rejected", "reason": REMOVED}
    return row | {"outcome": "rejected" if final.status == REJECTED else "pending",
                  "reason": "the decision changed while the zip was being built", "decision": final.status}


def _settings_row(settings: Settings) -> dict:
    return {k: getattr(settings, k) for k in ("threshold", "mode", "strength", "padding", "shape")}


def _thumbnail(pixels) -> bytes:
    scale = min(1.0, 320 / max(pixels.shape[:2]))
    small = cv2.resize(pixels[:, :, :3], (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    return encode_photo(small, "JPEG", 75)


def _write_audit(workspace: Workspace, session: dict, actor: str, exported_at: str, photos: list[dict],
                 counts: dict, versions: dict, target: Path, digest: str, audit_target: Path) -> None:
    """The reviewer's package: every photo's outcome, the name mapping, the log, the report."""
    names = {p["image_id"]: p["original_name"] for p in photos}
    trail = [{"at": local_time(a["at"]), "actor": a["actor"], "action": a["action"],
              "photo": names.get(a["image_id"], ""), "image_id": a["image_id"], "detail": a["detail"]}
             for a in workspace.audit(session["id"])]
    history: dict[int, list[dict]] = {}
    for step in trail:
        if step["image_id"] is not None:
            history.setdefault(step["image_id"], []).append(
                step | {"detail": detail_text(step["detail"])})
    rows = [{k: v for k, v in p.items() if k not in ("thumbnail", "data", "suffix")} for p in photos]
    summary = [("session", session["name"]), ("exported by", actor), ("exported at", exported_at),
               ("publication zip", target.name), ("its SHA-256", digest)] + [
               (k, str(v)) for k, v in counts.items()] + [
               ("engine", versions["engine"]),
               ("models (SHA-256)", "; ".join(f"{name}: {sha}" for name, sha in versions["models_sha256"].items()))]
    partial = audit_target.with_name(f"{audit_target.name}.partial")
    try:
        with private_file(partial) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.csv", csv_text(rows, AUDIT_FIELDS))
            archive.writestr("manifest.json", json.dumps({
                "session": session["name"], "exported_by": actor, "exported_at": exported_at,
                "publication_zip": target.name, "publication_zip_sha256": digest, "counts": counts,
                "versions": versions, "photos": rows, "audit": trail}, indent=2, default=str))
            archive.writestr("report.html", audit_report(f"Audit report: {session['name']}", summary, photos, history))
        _seal(partial, audit_target)
    finally:
        partial.unlink(missing_ok=True)


def _seal(partial: Path, target: Path) -> None:
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)


def exported_files(zip_path: Path, audit_path: Path) -> dict[str, str]:
    """The photos and videos a publication zip holds, each with the name of the original it was
    made from (from the audit package's manifest, which maps the two): what the Export page
    shows from the zip itself."""
    with zipfile.ZipFile(audit_path) as audit:
        originals = {p["output_name"]: p["original_name"] for p in json.loads(audit.read("manifest.json"))["photos"]
                     if p.get("output_name")}
    with zipfile.ZipFile(zip_path) as archive:
        return {name: originals[name] for name in archive.namelist() if name in originals}


def exported_member(zip_path: Path, name: str, limit: int) -> bytes | None:
    """One file of a publication zip as it is stored there, or None when it is over `limit` bytes."""
    with zipfile.ZipFile(zip_path) as archive:
        if archive.getinfo(name).file_size > limit:
            return None
        return archive.read(name)
