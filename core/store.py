"""Files written safely: atomically (the command line's outputs and manifests too), and the
workspace's files: originals named by their SHA-256, their downscaled previews, and the zips made
from them. Only the user who runs the dashboard may read any of the workspace."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


class NoRoom(Exception):
    """The output disk took no more (full, over quota, read-only), with the system's reason: the
    run stops at once, its manifest written in the room kept for it; raised by a run's
    `anonymize_files` when it cannot start."""

    @classmethod
    def of(cls, exc: OSError | NoRoom) -> NoRoom:
        return exc if isinstance(exc, NoRoom) else cls(exc.strerror or str(exc))


def out_of_room(exc: BaseException) -> bool:
    """Whether a failure is the disk's (full, over quota or read-only: the workspace's, for its
    files or the database, whose shared-memory file a full disk cannot make, "disk I/O error"; or
    a batch's output folder's), not the file in hand's: that file has done nothing wrong, and is
    tried again once there is room."""
    if isinstance(exc, NoRoom):  # a run's journal refused on its output disk
        return True
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (
            sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: a crash leaves no
    half-written file under the real name."""
    _rename(_synced_partial(path.parent, [data]), path)


def _synced_partial(folder: Path, chunks: Iterable[bytes]) -> Path:
    """The chunks in a new private file under a temporary name in `folder`, on the disk when
    this returns; nothing is left of it if writing fails."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".partial-")
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _rename(partial: Path, path: Path) -> None:
    try:
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class Busy(Exception):
    """Another run holds the folder (`only_run`): its process id, when known."""


@contextlib.contextmanager
def only_run(folder: Path, name: str = ".run.lock") -> Iterator[None]:
    """One run at a time writes into `folder`: an exclusive lock on a hidden file in it, held
    while the body runs and removed after; `Busy` at once when another run holds it. (Two runs
    into one folder each named their outputs and manifest as if alone: one's record was written
    over by the other's, its outputs left with no record or replaced under the same names.)"""
    path = folder / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise Busy(holder) from None
        except OSError as exc:  # a shared mount without locks (NFS's `nolock`): the run goes on unguarded
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                os.close(fd)
                raise
            break
        if os.path.exists(path) and os.stat(path).st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the lock of a run that removed its file as this one opened it: take the new one
    try:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)  # unbuffered: nothing left to fail at close
        except OSError:  # a full disk: the lock holds all the same, without its holder's id
            pass
        yield
    finally:
        with contextlib.suppress(OSError):  # a disk gone read-only meanwhile: the lock ends with its process
            path.unlink(missing_ok=True)
        os.close(fd)


class Reserve:
    """Room kept on a disk for a file written last (a run's record), grown as that file's content
    grows and given back just before it is written: a disk that fills meanwhile refuses the
    growth (`OSError`), while there is still room for the file. The room is a hidden file
    beside it, removed by `release`."""

    def __init__(self, path: Path, size: int):
        self.path, self.size = path, 0
        self.handle = open(path, "wb")
        try:
            self.grow(size)
        except BaseException:
            self.release()
            raise

    def grow(self, by: int) -> None:
        """Allocated on the disk, not a sparse promise (on a file system that cannot allocate
        ahead, ext2 for one, the C library writes the blocks instead: tried)."""
        os.posix_fallocate(self.handle.fileno(), 0, self.size + by)
        self.size += by

    def release(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


def private_dir(folder: Path) -> None:
    """A folder only its owner can enter, whatever the umask."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)


def private_file(path: Path, mode: str = "wb"):
    """Open a new file only its owner can read, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode)


def tighten(root: Path) -> None:
    """Folders 0700 and files 0600 under `root`, for a workspace made by an earlier version or
    under a loose umask. Links are not followed. A file that goes while this runs (SQLite's -shm
    file, as another connection closes) has nothing left to tighten."""
    for parent, dirs, files in os.walk(root, followlinks=False):
        for names, private in ((dirs, 0o700), (files, 0o600)):
            for name in names:
                path = Path(parent) / name
                try:
                    mode = path.lstat().st_mode
                    if not stat.S_ISLNK(mode) and mode & 0o777 & ~private:
                        path.chmod(private)
                except FileNotFoundError:
                    pass


DAMAGED = "the stored original is damaged (SHA-256 differs)"


CHUNK = 1024 ** 2


class SourceError(Exception):
    """A file being added cannot be read; the message says why, plainly."""


class StoredFileError(Exception):
    """A stored original is not the file that was added; the message says why, plainly."""


def _unreadable(exc: OSError) -> str:
    return f"the stored original cannot be read ({exc.strerror or exc})"


class FileStore:
    """`objects/` (originals, named by SHA-256), `previews/` and `exports/` under one root."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.exports = self.root / "exports"
        self.previews = self.root / "previews"
        self.derived = self.root / "derived"
        for folder in (self.root, self.objects, self.exports, self.previews, self.derived):
            private_dir(folder)
        # The originals and their previews are the most sensitive files this tool touches: only
        # the user who runs it may read them, whatever the umask or an earlier version left.
        tighten(self.root)
        # A zip still named *.partial was cut short by a crash: it is never offered. A partial
        # copy of an original (a crash while it was added) belongs to no photo: no purge would find it.
        for stale in [*self.exports.glob("*.partial"), *self.objects.glob(".partial-*"),
                      *self.objects.glob("*/.partial-*")]:
            stale.unlink()

    def store(self, source: BinaryIO) -> tuple[str, int]:
        """Keep a file under its SHA-256, copied in chunks while it is hashed (a video may be
        larger than memory allows): (its SHA-256, its size). The same file added twice is
        stored once. A read of `source` that fails raises SourceError with the reason."""
        digest, size = hashlib.sha256(), 0

        def hashed() -> Iterator[bytes]:
            nonlocal size
            while True:
                try:
                    chunk = source.read(CHUNK)
                except OSError as exc:
                    raise SourceError(f"cannot be read ({exc.strerror or exc})") from None
                if not chunk:
                    return
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        partial = _synced_partial(self.objects, hashed())
        path = self.object_path(digest.hexdigest())
        if path.exists():
            partial.unlink()
        else:
            private_dir(path.parent)
            _rename(partial, path)
        return digest.hexdigest(), size

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def read(self, sha256: str) -> bytes:
        return self.object_path(sha256).read_bytes()

    def checked(self, sha256: str) -> bytes:
        """An original's bytes, if they are still the file that was added; else StoredFileError
        says why not (gone from the store or unreadable, or changed)."""
        try:
            data = self.read(sha256)
        except OSError as exc:
            raise StoredFileError(_unreadable(exc)) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoredFileError(DAMAGED)
        return data

    def problem(self, sha256: str) -> str | None:
        """What `checked` would say, read in chunks (a video may be larger than memory allows)."""
        try:
            with open(self.object_path(sha256), "rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() != sha256:
                    return DAMAGED
        except OSError as exc:
            return _unreadable(exc)
        return None

    def save_previews(self, sha256: str, bases: dict[int, bytes]) -> None:
        """Downscaled copies of an original (largest side -> encoded bytes), for the dashboard."""
        for side, data in bases.items():
            write_atomically(self.previews / f"{sha256}-{side}", data)

    def preview(self, sha256: str, side: int) -> bytes:
        return self.preview_path(sha256, side).read_bytes()

    def preview_path(self, sha256: str, side: int | str) -> Path:
        return self.previews / f"{sha256}-{side}"

    def save_derived(self, name: str, data: bytes) -> None:
        """Values derived from the database, kept to spare deriving them again (never a source)."""
        write_atomically(self.derived / Path(name).name, data)

    def read_derived(self, name: str) -> bytes:
        return (self.derived / Path(name).name).read_bytes()

    def delete_derived(self, name: str) -> None:
        (self.derived / Path(name).name).unlink(missing_ok=True)

    def delete_original(self, sha256: str) -> list[Path]:
        """Remove an original and its previews from disk; returns what was removed."""
        removed = [p for p in [self.object_path(sha256), *self.previews.glob(f"{sha256}-*")] if p.exists()]
        for path in removed:
            path.unlink()
        return removed

    def export_path(self, name: str) -> Path:
        return self.exports / Path(name).name
