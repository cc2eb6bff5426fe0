"""An output folder of the command line's runs (local or on a cluster) and the records of the
runs into it: how outputs and manifests are named there, what an earlier run did that can be
kept, what a stopped or killed run leaves and how it is recorded, and the room kept for a
manifest on the folder's disk."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from . import video
from .journal import RUN_JOURNAL, Journal
from .pipeline import Settings
from .report import utc_now
from .store import NoRoom, Reserve, write_atomically

HELD_BACK = "held-back"
STOPPED = "not done: the run was stopped before it (Ctrl-C, its terminal closed, or kill); run again for it"
FULL = "not done: the run was stopped before it (its output disk was full); free space on it and run again for it"
KILLED = ("not done: the run was stopped before it (killed, or the machine went down, before it wrote its manifest); "
          "run again for it")


class ManifestRoom:
    """Room for a run's manifest kept on its output disk as the run goes (a `Reserve` beside it):
    made for every file's entry as a file left (`NoRoom` when there is none, before any work),
    grown by twice each entry as it is recorded (its indent in the manifest, and slack), and
    given back just before the manifest is written."""

    BASE = 64 * 1024  # the manifest's settings, versions and the like

    def __init__(self, manifest: Path, paths: list[Path]):
        try:
            self.reserve = Reserve(manifest.with_name(f".{manifest.name}.room"), self.BASE + sum(
                self._size({"input": str(path), "error": FULL}) for path in paths))
        except OSError as exc:
            raise NoRoom.of(exc) from exc

    def keep(self, entry: dict) -> None:
        """Room for `entry`, or `NoRoom`: the disk is full, and the run stops."""
        try:
            self.reserve.grow(self._size(entry))
        except OSError as exc:
            raise NoRoom.of(exc) from exc

    def release(self) -> None:
        self.reserve.release()

    @staticmethod
    def _size(entry: dict) -> int:
        return 2 * len(json.dumps(entry, indent=2).encode()) + 64


def stop_reason(exc: KeyboardInterrupt | NoRoom) -> str | bool:
    """A stopped run's manifest's `stopped`: true (Ctrl-C, its terminal closed, kill) or why."""
    return True if isinstance(exc, KeyboardInterrupt) else f"its output disk took no more ({exc})"


def not_done(stopped: str | bool) -> str:
    """The error of each file a run was stopped before, for its `stopped`."""
    return STOPPED if stopped is True else FULL


def stopped_before(entry: dict) -> bool:
    """Whether a manifest's entry is a file its run was stopped before (also as earlier versions
    wrote it: "...stopped (Ctrl-C) before it...")."""
    return str(entry.get("error", "")).startswith("not done: the run was stopped")


@dataclass
class OutputNamer:
    """Gives every input its own output name: never the same name twice in a batch (case
    folded), and, given a folder, never an existing file (so never an input, nor an earlier
    run's output)."""

    folder: Path | None
    taken: set[str] = field(default_factory=set)

    def name_for(self, source_name: str, fmt: str) -> str:
        stem = self.safe_stem(source_name)
        suffix = {"JPEG": ".jpg", "PNG": ".png", "MP4": ".mp4", "JSON": ".json"}[fmt]
        candidate, n = f"{stem}{suffix}", 1
        while candidate.lower() in self.taken or (self.folder and (self.folder / candidate).exists()):
            n += 1
            candidate = f"{stem}-{n}{suffix}"
        self.taken.add(candidate.lower())
        return candidate

    @staticmethod
    def safe_stem(name: str) -> str:
        """The stem of a file's name (no folders, no extension), made safe by `safe_name`."""
        return safe_name(Path(name.replace("\\", "/")).stem)


def safe_name(text: str, fallback: str = "image") -> str:
    """Text as part of a file name that cannot climb out of a folder or break a file system:
    letters, digits, '-', '_' and '.', at most 100 characters. Accented letters lose their
    accents ("École Fête" gives "Ecole_Fete"), rather than the whole letter."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)
    return (cleaned.strip("._") or fallback)[:100]


def manifest_path(out_dir: Path) -> Path:
    """Where a run into `out_dir` writes its manifest: `manifest.json`, or `manifest-2.json` and
    on when an earlier run's is there. An earlier run's record is never overwritten."""
    return out_dir / OutputNamer(out_dir).name_for("manifest.json", "JSON")


def earlier_entries(out_dir: Path, settings: Settings, check: bool, versions: dict) -> dict[str, dict]:
    """Each input's entry in the manifests of the runs into `out_dir` made with these settings,
    check and versions (code and models) that wrote its output (the latest run's), by input;
    `unchanged` then says whether it can be kept."""
    wanted = json.loads(json.dumps([settings.to_dict(), check, versions]))
    found: dict[str, dict] = {}
    for path in run_manifests(out_dir):
        try:
            record = json.loads(path.read_text())
            if [record["settings"], record.get("check"), record["versions"]] == wanted:
                found.update((entry["input"], entry) for entry in record["files"]
                             if "output" in entry and "error" not in entry)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a manifest this version can read: its files are done again
    return found


def run_manifests(folder: Path) -> list[Path]:
    """The manifests of the runs into `folder`, the first run's first (`manifest_path` names them:
    `manifest.json`, `manifest-2.json`...)."""
    return sorted(folder.glob("manifest*.json"), key=_run_number)


def _run_number(manifest: Path) -> int:
    number = manifest.stem.rpartition("-")[2]
    return int(number) if number.isdigit() else 1


def unchanged(entry: dict, path: Path, out_dir: Path) -> bool:
    """Whether an earlier run's `entry` for `path` still holds: the input and its output (in
    `out_dir`) have the SHA-256 it records. Then the file need not be done again; one that
    cannot be read is done again, and fails there with its own reason."""
    output = out_dir / entry["output"]
    try:
        return (output.is_file() and video.file_sha256(path) == entry["input_sha256"]
                and video.file_sha256(output) == entry["output_sha256"])
    except OSError:
        return False


def recover(out_dir: Path) -> tuple[Path, int] | None:
    """The manifest of a run into `out_dir` killed before it wrote one (kill -9, the out-of-memory
    killer, a power cut), made from its journal (`core.journal`) as a stopped run's: the files it
    finished with their entries, the rest not done (`KILLED`); an output it named but had not
    recorded is removed (it may be whole, but no record says what it is). Returns that manifest
    and how many files it records done, or None when it had nothing to make (no run was killed
    there, or one was killed before any work or just after it wrote its manifest). Then the same command run again keeps the files it
    finished and does the rest, as after a Ctrl-C; until then the folder's outputs all have a
    record. Only while no other run writes there (`store.only_run`), before the next run names
    its manifest."""
    path = out_dir / RUN_JOURNAL
    if not path.is_file():
        return None
    journal = Journal(path)
    run, made = journal.run, None
    if run and not (out_dir / run["manifest"]).exists():  # else killed before any work, or just after writing it
        manifest, files = out_dir / run["manifest"], []
        for source in run["inputs"]:
            event = journal.done.get(source)
            if not event:
                remove_unrecorded(out_dir, journal.names.get(source))
            files.append(event["entry"] if event else {"input": source, "error": KILLED})
        record = {key: run[key] for key in ("created", "settings", "versions", "check", "passed_over",
                                            "earlier_outputs")}
        (out_dir / f".{manifest.name}.room").unlink(missing_ok=True)  # the killed run's room for it
        write_atomically(manifest, json.dumps(record | {
            "files": files, "resumed": sum(1 for event in journal.done.values() if event.get("kept")),
            "stopped": "killed, or the machine went down, before it wrote its manifest (made from its journal "
                       f"by the next run into the folder, {utc_now()})"}, indent=2).encode())
        made = manifest, sum(1 for entry in files if "output" in entry)
    path.unlink()
    return made


def remove_unrecorded(out_dir: Path, name: str | None) -> None:
    """A file not done when a run stopped may have been written as the run was stopping, after
    its entry was lost: an output no manifest records does not stay."""
    if name:
        for folder in (out_dir, out_dir / HELD_BACK):
            (folder / name).unlink(missing_ok=True)


def remove_unfinished(out_dir: Path) -> None:
    """Remove the outputs an earlier run into `out_dir` left unfinished, under their temporary
    names (`.partial-*`, beside the outputs or held back), when it was killed or lost its power
    as it wrote them. Only while no other run writes there (`store.only_run`, or a cluster run's
    start)."""
    for leftover in [*out_dir.glob(".partial-*"), *out_dir.glob("*/.partial-*")]:
        leftover.unlink(missing_ok=True)
