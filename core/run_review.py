"""A batch run of the command line or a cluster opened for review: its manifest read, each photo's
original stored with the faces the run found (not detected again), and what the run did not do
detected here (`import_run`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .faces import Face
from .images import DEFAULT_MAX_PIXELS, decode_photo
from .intake import Intake, add_one, inside, typed_path
from .journal import RUN_JOURNAL
from .kinds import readable_name, unreadable_kind
from .pipeline import Settings, failure_reason
from .report import local_time
from .review import preview_bases
from .run_folder import run_manifests
from .store import SourceError
from .workspace import Workspace


@dataclass(frozen=True)
class ImportReport:
    """What became of a cluster run opened for review."""

    session_id: int
    added: int
    refused: list[str]
    videos: list[str]  # detected again here: a run's manifest keeps only the tracks it covered
    not_done: list[str] = field(default_factory=list)  # the run did not do them (stopped, failed): detected here
    chosen: str = ""  # which of a folder's runs was opened, and why, when it holds several (`_folders_run`)


def _record(manifest: Path, allowed: Callable[[Path], Path]) -> dict | None:
    """A run's manifest, read only inside the folders the dashboard may read, or None."""
    try:
        record = json.loads(allowed(manifest).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _described(manifest: Path, record: dict | None) -> str:
    """A run's manifest as a choice between several names it: its files, and whether and when it
    finished."""
    try:
        return (f"{manifest.name}: {len(record['files'])} file(s), "
                f"{'stopped' if record.get('stopped') else 'finished'} {local_time(record['created'])}")
    except (KeyError, TypeError, ValueError, AttributeError):
        return f"{manifest.name}: not a manifest this dashboard can read"


def import_run(workspace: Workspace, manifest_path: Path, session_name: str, reviewer: str,
               roots: list[Path] | None = None, max_pixels: int | None = None) -> tuple[int, ImportReport]:
    """Open a finished batch (a cluster run's, or the local command's) as a review session:
    each photo's original is stored and its faces are taken from the manifest (it is not
    detected again); a file the run did not do (stopped before it, or failed on it) is stored to
    be detected here, as a folder's file is; one changed since, or outside `roots` (when given),
    is listed as refused; a run's residual check (`--check`) is kept as the dashboard's own would
    be. Videos are stored (in chunks) to be detected again here:
    the manifest keeps only the tracks over the threshold, not the near misses, thumbnails and
    frame times their review needs."""
    def allowed(path: Path) -> Path:
        if roots is not None and not inside(path, roots):
            raise ValueError(f"{path} is outside the folders this dashboard may read")
        return path

    manifest_path, chosen = allowed(typed_path(manifest_path)), ""
    if manifest_path.is_dir():  # the run's output folder
        manifest_path, chosen = _folders_run(manifest_path, allowed)
    try:
        manifest = json.loads(manifest_path.read_text())
        files, settings = manifest["files"], Settings(**manifest["settings"])
        sources = [Path(entry["input"]) for entry in files]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{manifest_path} is not a batch manifest ({type(exc).__name__}: {exc})") from None
    session_id = workspace.create_session(session_name, reviewer, settings)
    workspace.log(session_id, reviewer, "batch run opened for review", manifest=str(manifest_path),
                  created=manifest.get("created"), files=len(files))
    added, refused, videos, not_done = 0, [], [], []
    sources = [_located(source, manifest_path.parent) for source in sources]
    # Named by their path in the batch, as a folder added here names them (two sub-folders' IMG_0001.JPG).
    common = Path(os.path.commonpath([s.parent for s in sources])) if sources else None
    for entry, source in zip(files, sources):
        name = readable_name(str(source.relative_to(common)))
        # A file the run did not do (stopped before it, or failed on it there) is detected here, as
        # a folder's file is: the run's reason may be the run's own (its output folder refused it,
        # its node did not have the share, its --max-megapixels), and a file that is damaged fails
        # here with this dashboard's reason. Only what is not a file at all keeps the run's.
        undone = "error" in entry
        try:
            if roots is not None and not inside(source, roots):
                raise ValueError("outside the folders this dashboard may read")
            if undone and not source.is_file():
                raise ValueError(entry["error"])
            if entry.get("kind") == "video" or undone:
                if problem := unreadable_kind(source.name):
                    raise ValueError(problem)
                if add_one(workspace, session_id, Intake(name, path=source), reviewer) is None:
                    (not_done if undone else videos).append(name)
                continue
            data = source.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["input_sha256"]:
                raise ValueError("the file changed after the run; add it again to have it detected")
            photo = decode_photo(data, name, max_pixels or DEFAULT_MAX_PIXELS)
            image_id, same_as = workspace.add_image(session_id, name, data, reviewer)
            if same_as is None:
                workspace.files.save_previews(photo.sha256, preview_bases(photo.pixels))
                workspace.save_detection(image_id, photo.width, photo.height,
                                         [Face.from_dict(f) for f in entry["faces"] + entry.get("near_misses", [])],
                                         source="faces imported from a batch run")
                if "residual_faces" in entry:  # the run checked its output (--check): its verdict, as ours
                    workspace.save_residual(image_id, workspace.image(image_id).current_fingerprint(settings),
                                            entry["output_sha256"],
                                            [Face.from_dict(f) for f in entry["residual_faces"]])
                added += 1
        except Exception as exc:  # noqa: BLE001 - one file's problem is that file's, the rest are opened
            reason = str(exc) if isinstance(exc, (ValueError, SourceError)) else failure_reason(exc)
            workspace.add_refused(session_id, name, reason, reviewer)
            refused.append(name)
    return session_id, ImportReport(session_id, added, refused, videos, not_done, chosen)


def _folders_run(folder: Path, allowed: Callable[[Path], Path]) -> tuple[Path, str]:
    """The manifest of the run to open in a run's output folder, and, when it holds several, why
    that one (`ImportReport.chosen`): its one manifest, or the latest run's when that run finished and did
    every file the earlier ones did (the same command run again after a stop, or after a run was
    killed: their records are in its own); else which is asked, the latest first, each told
    apart. Each is checked as the manifest given would be (a link may lead out). A run into the
    folder that has not written its manifest (going, or killed: its journal is there) is said,
    rather than an earlier run's record opened as the folder's."""
    if (folder / RUN_JOURNAL).is_file():
        raise ValueError(f"{folder}: the last run into it has not written its manifest yet: it is still going, or it "
                         "was killed; let it end, or run the same command again, which writes the killed run's "
                         "record first and finishes its files; then open the folder")
    found = run_manifests(folder)[::-1]
    if len(found) == 1:
        return allowed(found[0]), ""
    records = [_record(manifest, allowed) for manifest in found]
    with contextlib.suppress(KeyError, TypeError, AttributeError):
        if found and None not in records and not records[0].get("stopped") and all(
                {f["input"] for f in record["files"]} <= {f["input"] for f in records[0]["files"]}
                for record in records[1:]):
            return found[0], (f"{found[0].name}, the latest of {len(found)} runs into the folder, which did every file "
                              "the earlier ones did")
    raise ValueError(f"{folder} is a folder; give the manifest of the run to open"
                     + (f" (it holds {'; '.join(map(_described, found, records))})" if found else
                        " (it holds no manifest.json)"))


def _located(source: Path, folder: Path) -> Path:
    """Where a manifest's input is. Manifests name inputs by absolute path; earlier ones named
    them as given, relative to where the command ran: beside the manifest (in `folder`), or (the
    README's commands) the folder the dashboard runs in."""
    if source.is_absolute():
        return source
    beside = folder / source
    return beside if beside.exists() else source.absolute()
