"""Taking files into a review session: uploads, zips and folders on this machine (a batch the
command line or a cluster already ran is opened by `core.run_review`). Each file is stored, or
refused with a reason naming it; nothing here detects faces (see core.review.detect_pending)."""

from __future__ import annotations

import getpass
import io
import os
import sqlite3
import stat
import zipfile
from collections.abc import Callable, Iterator
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import cut, times, video
from .images import ImageError
from .store import SourceError, out_of_room
from .kinds import companion, is_video, not_media, not_regular, readable_name, unreadable_kind
from .walk import MANIFEST_HEAD, holds_run, is_record_name, is_run_record
from .workspace import Workspace

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
    path: Path | None = None  # a file on this machine, copied into the store in chunks (not read into `data`)
    companion: bool = False  # a sidecar, thumbnail or index file (`kinds.companion`): passed over, counted
    earlier_run: bool = False  # a folder (or zip) of a run's or an export's outputs (`walk.holds_run`): said


def unpack_zip(data: bytes | Path, zip_name: str, named: bool = True) -> Iterator[Intake]:
    """The files in a zip (uploaded, or a file met in a folder added: read from the disk as its
    members are), taken as the same folder on this machine would be: each
    named by its path inside the zip (a name only: "..", "." and a leading "/" are dropped, and
    nothing is ever written by it), hidden files and the archiver's own (`__MACOSX/`) skipped,
    anything not an image or video refused by its name, a folder holding a batch run's or an
    export's anonymised outputs passed over (`_run_folders`; the whole zip too, when it was met
    in a folder, not `named` itself). Links and anything that unpacks out of proportion (a zip
    bomb) are refused; damaged data is that member's error."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield Intake(zip_name, problem=f"not a readable zip ({exc})")
        return
    with archive:
        yield from _unpacked(archive, zip_name, named)


def _unpacked(archive: zipfile.ZipFile, zip_name: str, named: bool) -> Iterator[Intake]:
    members = archive.infolist()
    if len(members) > ZIP_MAX_MEMBERS:
        yield Intake(zip_name, problem=f"holds {len(members)} entries, more than {ZIP_MAX_MEMBERS}")
        return
    total = 0
    listed = list(_listed(members))
    runs, said = _run_folders(archive, listed, named), set()
    for member, parts in listed:
        label = f"{zip_name}/{'/'.join(parts)}"
        if (run := next((r for r in runs if tuple(parts[:len(r)]) == r), None)) is not None:  # as in a folder
            if run not in said:
                said.add(run)
                yield Intake(f"{zip_name}/{'/'.join(run)}/" if run else zip_name, earlier_run=True)
            continue
        if companion(parts[-1]):
            yield Intake(label, companion=True)
            continue
        if stat.S_ISLNK(member.external_attr >> 16):
            yield Intake(label, problem="a symbolic link inside the zip; refused")
            continue
        if problem := not_media(parts[-1]):
            yield Intake(label, problem=problem)
            continue
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > ZIP_MAX_RATIO:
            yield Intake(label, problem=f"unpacks to {member.file_size} bytes (ratio {ratio:.0f}:1): "
                                        "a possible zip bomb; refused")
            continue
        if total + member.file_size > ZIP_MAX_TOTAL:  # each is read whole: a folder's files are copied in chunks
            yield Intake(label, problem=f"the zip's files pass {ZIP_MAX_TOTAL // 1024 ** 2} MB together from here on; "
                                        "refused: unpack the zip, and add its folder")
            continue
        total += member.file_size
        try:
            with archive.open(member) as handle:
                content = handle.read(member.file_size + 1)
        except Exception as exc:  # noqa: BLE001 - damaged data (zlib.error, EOFError...) is this member's error
            yield Intake(label, problem=f"cannot be unpacked ({exc})")
            continue
        if len(content) > member.file_size:
            yield Intake(label, problem="larger than its zip header says; refused")
            continue
        yield Intake(label, content)


def _listed(members: list[zipfile.ZipInfo]) -> Iterator[tuple[zipfile.ZipInfo, list[str]]]:
    """A zip's files with their paths as names only ("..", "." and a leading "/" dropped), but
    for hidden files and the archiver's own (`__MACOSX/`)."""
    for member in members:
        parts = [p for p in _path(member).replace(chr(92), "/").split("/") if p not in ("", ".", "..")]
        if not member.is_dir() and parts and parts[0] != "__MACOSX" and not any(p.startswith(".") for p in parts):
            yield member, parts


# At most this much of a zip's manifests is unpacked to tell a run's outputs apart (a zip bomb's
# many "manifest.json" are not).
ZIP_MANIFEST_BYTES = 64 << 20


def _path(member: zipfile.ZipInfo) -> str:
    """A member's path as its archiver wrote it. Without the zip's UTF-8 flag, a name is read as
    the format's own code page (cp437, as Windows' archiver writes it); but macOS's writes UTF-8
    names without the flag, and "Fête/École.jpg" read as "F├¬te/├ëcole.jpg": such a name, valid
    UTF-8, is read as UTF-8 (a cp437 name with any letter beyond ASCII almost never is)."""
    if member.flag_bits & 0x800:
        return member.filename
    try:
        return member.filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        return member.filename


def _run_folders(archive: zipfile.ZipFile, listed: list[tuple[zipfile.ZipInfo, list[str]]],
                 named: bool) -> set[tuple[str, ...]]:
    """The folders of a zip that hold a run's or an export's record (`walk.holds_run` for a
    folder on this machine), as their paths' names (the zip's root is `()`), but, the zip `named`
    (uploaded), for one that holds the whole zip: that is the batch added, as a folder named
    itself is read."""
    found, budget = set(), ZIP_MANIFEST_BYTES
    for member, parts in listed:
        if (len(parts) > 1 or not named) and is_record_name(parts[-1]) and budget > 0:
            budget -= MANIFEST_HEAD
            try:
                with archive.open(member) as handle:
                    if is_run_record(parts[-1], handle.read(MANIFEST_HEAD)):
                        found.add(tuple(parts[:-1]))
            except Exception:  # noqa: BLE001 - damaged data: not told a manifest
                continue
    return {run for run in found if not named or any(tuple(parts[:len(run)]) != run for _, parts in listed)}


def intake_upload(name: str, data: bytes) -> Iterator[Intake]:
    """An uploaded file, or the files of an uploaded zip."""
    if name.lower().endswith(".zip") or data[:4] == b"PK\x03\x04":
        yield from unpack_zip(data, name)
    else:
        yield Intake(name, data, problem=unreadable_kind(name))


ROOTS_ENV = "FACE_PRIVACY_FOLDER_ROOTS"
# Where a desktop mounts a camera's card or a USB stick, in a folder of the user's own.
REMOVABLE = (Path("/media"), Path("/run/media"))


def allowed_roots() -> list[Path]:
    """Folders the dashboard may read from: FACE_PRIVACY_FOLDER_ROOTS (separated by the
    system's path separator), else the user's Pictures, Desktop and Downloads folders and the
    cards and sticks the desktop mounted for the user (not the whole home folder: it holds
    keys, mail and documents that are no photo batch)."""
    configured = os.environ.get(ROOTS_ENV)
    if configured:
        roots = configured.split(os.pathsep)
    else:
        from platformdirs import user_desktop_dir, user_downloads_dir, user_pictures_dir

        user = getpass.getuser()
        roots = [user_pictures_dir(), user_desktop_dir(), user_downloads_dir(),
                 *(str(base / user) for base in REMOVABLE if (base / user).is_dir())]
    return [Path(r).resolve() for r in roots if r]


# A photo read from a folder may not be larger than this (a video may: it is copied in chunks).
MAX_FILE_BYTES = 2 * 1024 ** 3


def typed_path(text: str | Path) -> Path:
    """A path as a person gives it: pasted from a file manager in quotes ("Copy as path") or as
    a file:// address, or from the home folder (~/Pictures)."""
    text = str(text).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    if text.startswith("file://"):
        text = unquote(urlsplit(text).path)
    return Path(text).expanduser()


def folder_problem(folder: str, roots: list[Path]) -> str | None:
    """Why a folder cannot be read (no such folder, outside the allowed roots, not a folder), or None."""
    try:
        target = typed_path(folder).resolve(strict=True)
    except (OSError, RuntimeError):
        return "no such folder"
    if not inside(target, roots):
        return (f"outside the folders this dashboard may read ({', '.join(str(r) for r in roots)}); to read it, "
                f"start the dashboard with {ROOTS_ENV} naming it (see the README)")
    if not target.is_dir():
        return "not a folder"
    return None


def intake_folder(folder: str, roots: list[Path], max_files: int = 20_000,
                  max_bytes: int = MAX_FILE_BYTES) -> Iterator[Intake]:
    """The files of a folder on this machine, walked without following links, a zip among them
    unpacked as an uploaded one is; refuses a folder outside the allowed roots, and unreadable,
    oversized or non-image files one by one."""
    problem = folder_problem(folder, roots)
    if problem:
        yield Intake(folder, problem=problem)
        return
    target = typed_path(folder).resolve(strict=True)
    count = 0
    for parent, dirs, files in os.walk(target, followlinks=False):
        if parent != str(target) and holds_run(Path(parent), files):  # added again, each a second copy
            dirs[:] = []
            yield Intake(readable_name(str(Path(parent).relative_to(target))) + "/", earlier_run=True)
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(parent) / name
            label = readable_name(str(path.relative_to(target)))
            count += 1
            if count > max_files:
                yield Intake(str(target), problem=f"more than {max_files} files; the rest were not read")
                return
            if name.startswith("."):
                continue
            if companion(path):
                yield Intake(label, companion=True)
            elif path.is_symlink():
                yield Intake(label, problem="a symbolic link; refused")
            elif problem := not_regular(path):
                yield Intake(label, problem=problem + "; refused")
            elif path.suffix.lower() == ".zip":  # a photographer's delivery: taken as an upload is
                yield from unpack_zip(path, label, named=False)
            elif problem := not_media(path):
                yield Intake(label, problem=problem)
            elif not is_video(path) and path.stat().st_size > max_bytes:
                yield Intake(label, problem=f"larger than {max_bytes // 1024 ** 2} MB; refused")
            else:
                yield Intake(label, path=path)


@dataclass(frozen=True)
class IntakeReport:
    """What became of a batch offered to a session."""

    added: int
    refused: list[Intake]
    duplicates: list[tuple[str, str]]  # (name offered, the photo already in the session)
    companions: list[str]  # sidecars, thumbnails and index files passed over (`kinds.companion`)
    cuts: list[tuple[str, str]] = field(default_factory=list)  # (video offered, the name its part is added as)
    full: str | None = None  # the workspace's disk filled (the system's words): the files from there on not added
    earlier_runs: list[str] = field(default_factory=list)  # folders (or zips) of anonymised outputs passed over


def add_files(workspace: Workspace, session_id: int, intakes: Iterator[Intake], actor: str,
              progress: Callable[[int, str], None] | None = None,
              part: tuple[float, float | None] | None = None, clock: bool = False) -> IntakeReport:
    """Store what can be stored, log what is refused, and name what was there already;
    `progress(files so far, name)` after each file. With a `part` (seconds from, and to or
    None; with `clock`, times of day on the recorder's clock), each video is taken as that part
    of it only (`cut.cut`): minutes of an hours-long recording, detected and reviewed as those
    minutes; photos are taken whole. A disk that fills (`out_of_room`) stops the intake: the
    files added stay, and the report says so (`full`)."""
    refused, duplicates, companions, runs, added, cuts, full = [], [], [], [], 0, [], None
    try:
        for count, item in enumerate(intakes, 1):
            if progress:
                progress(count, item.name)
            if item.companion or item.earlier_run:
                (runs if item.earlier_run else companions).append(item.name)
                continue
            if not item.problem:
                try:
                    if part and is_video(item.name):
                        name, same_as = _store_part(workspace, session_id, item, actor, part, clock)
                        cuts.append((item.name, name))
                    else:
                        same_as = add_one(workspace, session_id, item, actor)
                except (SourceError, ImageError) as exc:
                    item = replace(item, problem=exc.reason if isinstance(exc, ImageError) else str(exc))
            if item.problem:
                workspace.add_refused(session_id, item.name, item.problem, actor)
                refused.append(item)
            elif same_as is None:
                added += 1
            else:
                duplicates.append((item.name, same_as))
    except (OSError, sqlite3.Error) as exc:
        if not out_of_room(exc):
            raise
        full = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
    if companions and not full:
        workspace.log(session_id, actor, "companion files passed over", count=len(companions),
                      names=", ".join(companions))
    if runs and not full:
        workspace.log(session_id, actor, "anonymised outputs passed over", folders=", ".join(runs))
    return IntakeReport(added, refused, duplicates, companions, cuts, full, runs)


def add_one(workspace: Workspace, session_id: int, item: Intake, actor: str) -> str | None:
    """Add one file to the session: None, or the name of the same photo already in it."""
    try:
        source = open(item.path, "rb") if item.path else io.BytesIO(item.data)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror or exc})") from None
    with source:
        return workspace.add_image(session_id, item.name, source, actor)[1]


def asked_part(start: str, end: str, clock: bool = False) -> tuple[tuple[float, float | None] | None, str | None]:
    """The part of each video typed at intake ("1:02:00", "1:04:00"; either may be empty: from
    the start, to the end), or with `clock`, times of day on the recorder's clock ("09:31:00";
    the start is needed, and the end may be past midnight), or why it cannot be: (part or None
    for whole videos, problem)."""
    if clock and not start.strip():
        return None, "give the time of day it starts at, on the recorder's clock"
    try:
        since = times.read_time(start) if start.strip() else 0.0
        until = times.read_time(end) if end.strip() else None
    except ValueError as exc:
        return None, str(exc)
    if clock and (since >= 86400 or (until or 0) >= 86400):
        return None, "times of day on the recorder's clock go from 00:00:00 to 23:59:59"
    if not clock and until is not None and until <= since:
        return None, f"it must end after it starts ({times.said_time(since)})"
    return ((since, until) if clock or since > 0 or until is not None else None), None


def _store_part(workspace: Workspace, session_id: int, item: Intake, actor: str,
                part: tuple[float, float | None], clock: bool = False) -> tuple[str, str | None]:
    """Add the `part` of a video to the session (with `clock`, by the recorder's clock), cut
    from it as `cut.cut` does, named for the part ("corridor (from 25:00.00 to
    27:00.00).mkv"); the log names the video it was cut from (its name, size and SHA-256) and
    the part asked for and taken. (the name added, None or the name of the same video already
    in the session)."""
    start, end = part
    asked = (f"from {times.said_time(start)} to {'its end' if end is None else times.said_time(end)}"
             + (" by its clock" if clock else ""))
    objects = workspace.files.objects
    fd, cut_path = tempfile.mkstemp(dir=objects, prefix=".partial-cut-", suffix=".mkv")  # swept after a crash
    os.close(fd)
    given = None
    try:
        if item.path is None:  # an upload: its bytes on disk for the demuxer to seek in
            fd, given = tempfile.mkstemp(dir=objects, prefix=".partial-upload-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(item.data)
        source = Path(given or item.path)
        try:
            taken = cut.cut(source, Path(cut_path), start, end, clock)
        except video.NotThere as exc:
            if not clock:
                raise ImageError(item.name, exc.reason) from None
            raise ImageError(item.name, f"the part asked for, {asked}, is not in it (its clock starts at "
                                        f"{times.clock_said(exc.first)})") from None
        except ImageError as exc:
            raise ImageError(item.name, exc.reason) from None
        except OSError as exc:
            raise SourceError(f"cannot be read ({exc.strerror or exc})") from None
        except Exception as exc:  # noqa: BLE001 - whatever stops one video's cut is that video's error
            raise ImageError(item.name, f"its part could not be taken ({type(exc).__name__}: {exc}): add it "
                                        "whole") from None
        offered = Path(item.name)  # in the folder it was found in, if any
        name = offered.with_name(f"{offered.stem} ({asked}).mkv").as_posix()
        with open(cut_path, "rb") as handle:
            image_id, same_as = workspace.add_image(session_id, name, handle, actor)
        workspace.log(session_id, actor, "video part taken", image_id, source=item.name,
                      source_bytes=source.stat().st_size, source_sha256=video.file_sha256(source),
                      asked=asked, taken_from=round(taken[0], 3), taken_to=round(taken[1], 3))
        return name, same_as
    finally:
        Path(cut_path).unlink(missing_ok=True)
        if given:
            Path(given).unlink(missing_ok=True)


def inside(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root) for root in roots)
