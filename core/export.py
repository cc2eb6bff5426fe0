"""The zip a reviewer takes away: approved images only, anonymised at full resolution with the
settings each was approved with, and manifests that prove it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .faces import selected
from .images import DEFAULT_MAX_PIXELS, decode_photo, encode_photo, output_format
from .pipeline import OutputNamer, anonymize, check_output, engine_versions
from .workspace import ImageRecord, Workspace, private_file

MANIFEST_FIELDS = [
    "original_name", "output_name", "original_sha256", "output_sha256", "width", "height",
    "faces_found", "faces_disabled", "faces_added_by_hand", "threshold", "mode", "strength",
    "padding", "shape", "reviewer", "decision", "decided_at", "comment", "engine_version",
]


def face_counts(record: ImageRecord, threshold: float) -> dict:
    """Detected faces at the threshold, how many of those the reviewer switched off, and how
    many the reviewer drew."""
    detected = [f for f in record.faces or [] if not f.manual and f.score >= threshold]
    return {
        "faces_found": len(detected),
        "faces_disabled": sum(not f.enabled for f in detected),
        "faces_added_by_hand": sum(f.manual for f in record.faces or []),
    }


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exported: list[str]
    held_back: list[str]


def export_approved(workspace: Workspace, session_id: int, actor: str, detector,
                    progress: Callable[[int, int, str], None] | None = None,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> ExportResult:
    """Write the session's zip into the workspace's exports folder.

    Each output is checked once more by `detector` (the residual check; once per distinct
    output, the result is kept): a photo on which a face is still found is held back, and
    flagged, until the reviewer confirms it. The zip is
    written under a temporary name and renamed when complete, so a crash never leaves a
    half-written zip where the dashboard would offer it."""
    session = workspace.session(session_id)
    batch = workspace.batch_settings(session_id)
    approved = [r for r in workspace.images(session_id) if r.approval_current(batch)]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = workspace.exports / f"{OutputNamer.safe_stem(session['name'])}-{stamp}.zip"
    partial = target.with_name(f"{target.name}.partial")
    versions = engine_versions()
    rows, held_back, exported_ids = [], [], {}
    namer = OutputNamer(folder=None)
    try:
        with private_file(partial) as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for index, record in enumerate(approved, 1):
                if progress:
                    progress(index, len(approved), record.name)
                settings = record.settings(batch)
                known = record.residual_result(batch)
                if known:  # found on this exact output before, not confirmed: nothing to make
                    held_back.append(record.name)
                    continue
                original = workspace.read(record.sha256)
                if hashlib.sha256(original).hexdigest() != record.sha256:
                    raise RuntimeError(f"{record.name}: the stored original is damaged (SHA-256 differs)")
                photo = decode_photo(original, record.name, max_pixels)
                pixels = anonymize(photo.pixels, record.faces, settings)
                regions = settings.regions(record.faces, photo.width, photo.height)
                fmt = output_format(photo)
                data = encode_photo(pixels, fmt, settings.jpeg_quality)
                if known is None:  # this output was never checked: check it once, as it leaves
                    found = check_output(detector, photo, data, selected(record.faces, settings.threshold), settings)
                    workspace.save_residual(record.id, found)
                    if found:
                        held_back.append(record.name)
                        continue
                name = namer.name_for(record.name, fmt)
                archive.writestr(f"images/{name}", data)
                exported_ids[record.id] = record.name
                rows.append({
                    "original_name": record.name, "output_name": f"images/{name}",
                    "original_sha256": record.sha256, "output_sha256": hashlib.sha256(data).hexdigest(),
                    "width": photo.width, "height": photo.height,
                    **face_counts(record, settings.threshold),
                    "threshold": settings.threshold, "mode": settings.mode, "strength": settings.strength,
                    "padding": settings.padding, "shape": settings.shape,
                    "reviewer": record.decided_by, "decision": record.status, "decided_at": record.decided_at,
                    "comment": record.comment, "engine_version": versions["engine"],
                    "regions": [list(r) for r in regions],
                })
            table = io.StringIO()
            writer = csv.DictWriter(table, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            archive.writestr("manifest.csv", table.getvalue())
            # Every recorded step of each exported photo, from upload to approval.
            trail = [{"at": a["at"], "actor": a["actor"], "action": a["action"],
                      "image": exported_ids[a["image_id"]], "detail": a["detail"]}
                     for a in workspace.audit(session_id) if a["image_id"] in exported_ids]
            archive.writestr("manifest.json", json.dumps({
                "session": session["name"], "exported_by": actor,
                "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "versions": versions, "images": rows, "audit": trail}, indent=2))
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    with open(target, "rb") as handle:  # in chunks: the zip may be larger than memory allows
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    workspace.log(session_id, actor, "exported", file=target.name, images=len(rows), held_back=held_back,
                  sha256=digest)
    return ExportResult(target, [row["original_name"] for row in rows], held_back)
