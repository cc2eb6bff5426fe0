"""What a run takes from the paths it is given: each file to process, or why it cannot be, the
folders walked in name order; what only goes with photos and videos, and the folders of earlier
runs' outputs, passed over and kept for the record (`PassedOver`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .journal import JOURNALS, is_journal
from .kinds import companion, not_media, not_regular, unreadable_kind

COMPANION = "goes with a photo or video (a sidecar, thumbnail or index file): passed over"
EARLIER_RUN = "holds an earlier run's or export's outputs: passed over"


@dataclass
class PassedOver:
    """What a walk of the input folders passes over, for the manifest: the files that only go with
    photos and videos (`kinds.companion`), and the folders holding an earlier run's or export's
    outputs (`holds_run`: anonymised again, each would be a second copy beside the first)."""

    files: list[Path] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)

    def record(self) -> dict:
        return {"passed_over": [str(p) for p in self.files], "earlier_outputs": [str(p) for p in self.runs]}


def holds_run(folder: Path, names: list[str]) -> bool:
    """Whether `folder`, whose files are `names`, holds anonymised outputs: a run's manifest
    (`manifest.json`, `manifest-2.json`...) or an export's (an unzipped publication zip), or the
    journal of a run killed before it wrote one, told by its first bytes (`is_run_record`)."""
    for name in (name for name in names if is_record_name(name)):
        path = folder / name
        try:
            if path.is_file() and not path.is_symlink():  # a pipe so named would never answer; a link not followed
                with open(path, "rb") as handle:
                    if is_run_record(name, handle.read(MANIFEST_HEAD)):
                        return True
        except OSError:
            continue
    return False


def is_record_name(name: str) -> bool:
    """A run's or an export's manifest's name (`run_folder.manifest_path`), or a run's journal's
    (`core.journal`)."""
    return (name.startswith("manifest") and name.endswith(".json")) or name in JOURNALS


# How much of a file named as a manifest is read to tell whether it is a run's: a run writes its
# settings, versions and check first, then its files (`anonymize_files`), and the manifest of a
# batch of thousands of crowd photos runs to a hundred megabytes.
MANIFEST_HEAD = 64 * 1024


def is_run_record(name: str, head: bytes) -> bool:
    """Whether a file named as a run's record (`is_record_name`) is one, by its first bytes: a
    run's manifest is a JSON object that names its settings, versions and files, an export's
    (a review session's publication zip or audit package, `core.export`) its session and when it
    was exported; a journal starts as `core.journal` writes it."""
    if name in JOURNALS:
        return is_journal(name, head)
    return head.lstrip().startswith(b"{") and (
        all(key in head for key in (b'"settings"', b'"versions"', b'"files"'))
        or all(key in head for key in (b'"session"', b'"exported_at"', b'"versions"')))


def expand_paths(paths: list[Path], skip: Path | None = None,
                 passed: PassedOver | None = None) -> Iterator[tuple[Path, str | None]]:
    """Yield (file, None) for every file to process, folders walked in name order, or
    (path, reason) for a path that cannot be processed, so the caller can report it. Paths are
    absolute: a manifest names its inputs wherever it is read from. The folder
    `skip` is not walked: an output folder inside an input folder holds an earlier run's
    outputs and manifest, not photos to anonymise. A file reached twice (named and inside a
    named folder, or two overlapping folders) is yielded once: one output and one manifest entry
    for each input. A folder's sidecars, thumbnails and index files (`kinds.companion`) are
    not yielded; with `passed`, they are added to it, and a folder met inside a named one that
    holds an earlier run's outputs is not walked but added to it too (named itself, it is)."""
    skipped = skip.resolve() if skip else None
    seen: set[Path] = set()
    for path, problem in _walk(paths, skipped, passed is not None):
        if problem is EARLIER_RUN:
            passed.runs.append(path)
            continue
        if problem is COMPANION:
            if passed is not None:
                passed.files.append(path)
            continue
        if problem is None:
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
        yield path, problem


def _walk(paths: list[Path], skipped: Path | None, runs: bool) -> Iterator[tuple[Path, str | None]]:
    for path in (Path(p).absolute() for p in paths):
        if path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                if runs and root != str(path) and holds_run(Path(root), files):
                    dirs[:] = []
                    yield Path(root), EARLIER_RUN
                    continue
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() != skipped)
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    file = Path(root) / name
                    yield file, COMPANION if companion(file) else not_media(file) or not_regular(file)
        elif path.exists():
            yield path, unreadable_kind(path) or not_regular(path)
        else:
            yield path, "no such file or folder"
