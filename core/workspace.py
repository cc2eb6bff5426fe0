"""Review sessions on disk: an SQLite database and a content-addressed file store.

Everything a reviewer does is written here at once, with an append-only audit log, so that
reloading the page or restarting the server loses nothing. An approval binds to a
fingerprint of the exact settings and faces approved: changing either sends the image back
to pending.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .faces import Face
from .pipeline import Settings, write_atomically

PENDING, APPROVED, REJECTED, FAILED = "pending", "approved", "rejected", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    reviewer TEXT NOT NULL,
    created TEXT NOT NULL,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    faces TEXT,                -- JSON list of Face; NULL until detected
    error TEXT,                -- why the file cannot be processed
    status TEXT NOT NULL DEFAULT 'pending',
    override TEXT,             -- JSON Settings for this image only, or NULL
    approved_fingerprint TEXT,
    comment TEXT NOT NULL DEFAULT '',
    decided_by TEXT,
    decided_at TEXT,
    added_at TEXT NOT NULL,
    residual TEXT,             -- JSON {fingerprint, faces} of the last residual check
    residual_confirmed TEXT    -- fingerprint the reviewer confirmed the residual check for
);
CREATE INDEX IF NOT EXISTS images_session ON images(session_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    session_id INTEGER,
    image_id INTEGER,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def fingerprint(settings: Settings, faces: list[Face]) -> str:
    """What an approval binds to: the settings and every face with its on/off state."""
    canonical = json.dumps([settings.to_dict(), [f.to_dict() for f in faces]], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ImageRecord:
    id: int
    session_id: int
    name: str
    sha256: str
    width: int | None
    height: int | None
    faces: list[Face] | None
    error: str | None
    status: str
    override: Settings | None
    approved_fingerprint: str | None
    comment: str
    decided_by: str | None
    decided_at: str | None
    residual: dict | None = None
    residual_confirmed: str | None = None

    @property
    def detected(self) -> bool:
        return self.faces is not None

    def settings(self, batch: Settings) -> Settings:
        """The settings that apply: this image's own, or the batch's."""
        return self.override or batch

    def current_fingerprint(self, batch: Settings) -> str:
        """The fingerprint of this image's output as it would be made now."""
        return fingerprint(self.settings(batch), self.faces or [])

    def approval_current(self, batch: Settings) -> bool:
        """Approved, and nothing changed since: the only state in which it is exported."""
        return (self.status == APPROVED and self.faces is not None
                and self.approved_fingerprint == self.current_fingerprint(batch))

    def residual_result(self, batch: Settings) -> list[Face] | None:
        """What the residual check says of this image's current output: None when it has not
        looked at this exact output, [] when clean or confirmed by the reviewer, else the
        faces it found."""
        current = self.current_fingerprint(batch)
        if self.residual_confirmed == current:
            return []
        if not self.residual or self.residual["fingerprint"] != current:
            return None
        return [Face.from_dict(f) for f in self.residual["faces"]]

    def residual_open(self, batch: Settings) -> list[Face]:
        """Faces found again on the current output and not yet confirmed ([] if none known)."""
        return self.residual_result(batch) or []


class Workspace:
    """One folder: `review.sqlite`, `objects/` (originals, named by their SHA-256),
    `previews/` (their downscaled copies) and `exports/` (the zips)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.exports = self.root / "exports"
        self.previews = self.root / "previews"
        for folder in (self.root, self.objects, self.exports, self.previews):
            private_dir(folder)
        # The originals and their previews are the most sensitive files this tool touches: only
        # the user who runs it may read them, whatever the umask or an earlier version left.
        tighten(self.root)
        # A zip still named *.partial was cut short by a crash: it is never offered.
        for stale in self.exports.glob("*.partial"):
            stale.unlink()
        self.db_path = self.root / "review.sqlite"
        # SQLite gives its -wal and -shm files the database file's mode: create it private.
        os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            present = {row[1] for row in db.execute("PRAGMA table_info(images)")}
            for column in ("residual", "residual_confirmed"):  # added after the first release
                if column not in present:
                    db.execute(f"ALTER TABLE images ADD COLUMN {column} TEXT")
            db.commit()
        finally:
            db.close()

    @contextlib.contextmanager
    def _connect(self, write: bool = True):
        """A short-lived connection per operation: Streamlit runs each browser tab in its own
        thread, and a transaction either lands whole or not at all. Only writers take the
        write lock; readers see a consistent snapshot beside them (WAL)."""
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA synchronous=FULL")
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    @staticmethod
    def _log(db, actor: str, action: str, session_id=None, image_id=None, **detail) -> None:
        db.execute("INSERT INTO audit (at, session_id, image_id, actor, action, detail) VALUES (?,?,?,?,?,?)",
                   (now(), session_id, image_id, actor, action, json.dumps(detail, sort_keys=True)))

    # Sessions -----------------------------------------------------------------------------

    def create_session(self, name: str, reviewer: str, settings: Settings | None = None) -> int:
        name, reviewer = name.strip(), reviewer.strip()
        if not name or not reviewer:
            raise ValueError("a review session needs a name and a reviewer")
        settings = settings or Settings()
        with self._connect() as db:
            if db.execute("SELECT 1 FROM sessions WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"a session named {name!r} exists already: open it instead")
            cursor = db.execute("INSERT INTO sessions (name, reviewer, created, settings) VALUES (?,?,?,?)",
                                (name, reviewer, now(), json.dumps(settings.to_dict())))
            self._log(db, reviewer, "session created", cursor.lastrowid, name=name)
            return cursor.lastrowid

    def sessions(self) -> list[dict]:
        with self._connect(write=False) as db:
            rows = db.execute("""
                SELECT s.id, s.name, s.reviewer, s.created, COUNT(i.id) AS images,
                       SUM(i.status = 'approved') AS approved, SUM(i.status = 'rejected') AS rejected
                FROM sessions s LEFT JOIN images i ON i.session_id = s.id
                GROUP BY s.id ORDER BY s.created DESC, s.id DESC""").fetchall()
        return [dict(r) for r in rows]

    def session(self, session_id: int) -> dict:
        """A session's row, with its batch settings as `Settings`."""
        row = dict(self._read_one("SELECT * FROM sessions WHERE id = ?", session_id, "review session"))
        return row | {"settings": Settings(**json.loads(row["settings"]))}

    def batch_settings(self, session_id: int) -> Settings:
        return self.session(session_id)["settings"]

    def set_batch_settings(self, session_id: int, settings: Settings, actor: str) -> None:
        with self._connect() as db:
            old = db.execute("SELECT settings FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
            if json.loads(old) == settings.to_dict():
                return
            db.execute("UPDATE sessions SET settings = ? WHERE id = ?", (json.dumps(settings.to_dict()), session_id))
            self._log(db, actor, "batch settings changed", session_id, **settings.to_dict())
            for row in db.execute("SELECT id FROM images WHERE session_id = ? AND status = 'approved'",
                                  (session_id,)).fetchall():
                self._unapprove_if_changed(db, row["id"], actor)

    # Files --------------------------------------------------------------------------------

    def store(self, data: bytes) -> str:
        """Keep bytes under their SHA-256; the same photo uploaded twice is stored once."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.object_path(digest)
        if not path.exists():
            private_dir(path.parent)
            write_atomically(path, data)
        return digest

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def read(self, sha256: str) -> bytes:
        return self.object_path(sha256).read_bytes()

    def save_previews(self, sha256: str, bases: dict[int, bytes]) -> None:
        """Downscaled copies of an original (largest side -> encoded bytes), for the dashboard."""
        for side, data in bases.items():
            write_atomically(self.previews / f"{sha256}-{side}", data)

    def preview(self, sha256: str, side: int) -> bytes:
        return (self.previews / f"{sha256}-{side}").read_bytes()

    # Images -------------------------------------------------------------------------------

    def add_image(self, session_id: int, name: str, data: bytes, actor: str) -> int:
        """Store an original and queue it for detection."""
        digest = self.store(data)
        with self._connect() as db:
            cursor = db.execute("INSERT INTO images (session_id, name, sha256, added_at) VALUES (?,?,?,?)",
                                (session_id, name, digest, now()))
            same = db.execute("SELECT name FROM images WHERE session_id = ? AND sha256 = ? AND id != ?",
                              (session_id, digest, cursor.lastrowid)).fetchall()
            extra = {"same_bytes_as": [r["name"] for r in same]} if same else {}
            self._log(db, actor, "image added", session_id, cursor.lastrowid, name=name, sha256=digest,
                      bytes=len(data), **extra)
            return cursor.lastrowid

    def add_refused(self, session_id: int, name: str, reason: str, actor: str, data: bytes = b"") -> int:
        """Record a file that will not be processed (its bytes are not kept), with the reason."""
        digest = hashlib.sha256(data).hexdigest()
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO images (session_id, name, sha256, error, status, added_at) VALUES (?,?,?,?,?,?)",
                (session_id, name, digest, reason, FAILED, now()))
            self._log(db, actor, "file refused", session_id, cursor.lastrowid, name=name, reason=reason)
            return cursor.lastrowid

    def awaiting_detection(self, session_id: int) -> list[ImageRecord]:
        """Images added but not yet detected: after a crash, detection resumes with these.
        Asked on every page view, so the database does the filtering."""
        with self._connect(write=False) as db:
            rows = db.execute("SELECT * FROM images WHERE session_id = ? AND faces IS NULL AND error IS NULL "
                              "ORDER BY id", (session_id,)).fetchall()
        return [_record(r) for r in rows]

    def save_detection(self, image_id: int, width: int, height: int, faces: list[Face]) -> None:
        with self._connect() as db:
            db.execute("UPDATE images SET width = ?, height = ?, faces = ? WHERE id = ?",
                       (width, height, json.dumps([f.to_dict() for f in faces]), image_id))
            session_id = db.execute("SELECT session_id FROM images WHERE id = ?", (image_id,)).fetchone()[0]
            self._log(db, "engine", "faces detected", session_id, image_id, candidates=len(faces))

    def save_failure(self, image_id: int, reason: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE images SET error = ?, status = ? WHERE id = ?", (reason, FAILED, image_id))
            session_id = db.execute("SELECT session_id FROM images WHERE id = ?", (image_id,)).fetchone()[0]
            self._log(db, "engine", "file refused", session_id, image_id, reason=reason)

    def images(self, session_id: int) -> list[ImageRecord]:
        with self._connect(write=False) as db:
            rows = db.execute("SELECT * FROM images WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()
        return [_record(r) for r in rows]

    def image(self, image_id: int) -> ImageRecord:
        return _record(self._read_one("SELECT * FROM images WHERE id = ?", image_id, "image"))

    def set_faces(self, image_id: int, faces: list[Face], actor: str, why: str) -> None:
        """Store the reviewer's face list (faces switched off, faces drawn by hand)."""
        with self._connect() as db:
            db.execute("UPDATE images SET faces = ? WHERE id = ?",
                       (json.dumps([f.to_dict() for f in faces]), image_id))
            self._log(db, actor, "faces changed", self._session_of(db, image_id), image_id, change=why)
            self._unapprove_if_changed(db, image_id, actor)

    def set_override(self, image_id: int, settings: Settings | None, actor: str) -> None:
        """Give one image its own settings (None: follow the batch again)."""
        value = json.dumps(settings.to_dict()) if settings else None
        with self._connect() as db:
            if db.execute("SELECT override FROM images WHERE id = ?", (image_id,)).fetchone()[0] == value:
                return
            db.execute("UPDATE images SET override = ? WHERE id = ?", (value, image_id))
            self._log(db, actor, "image settings changed", self._session_of(db, image_id), image_id,
                      settings=settings.to_dict() if settings else "batch")
            self._unapprove_if_changed(db, image_id, actor)

    def decide(self, image_id: int, decision: str, actor: str, comment: str = "") -> None:
        """Approve, reject or reopen an image. Approval records what exactly was approved."""
        if decision not in (APPROVED, REJECTED, PENDING):
            raise ValueError(f"unknown decision {decision!r}")
        with self._connect() as db:
            record, batch = self._load(db, image_id)
            if record.error or not record.detected:
                raise ValueError(f"{record.name} cannot be {decision}: it has not been processed")
            settings = record.settings(batch)
            mark = record.current_fingerprint(batch) if decision == APPROVED else None
            db.execute("""UPDATE images SET status = ?, approved_fingerprint = ?, comment = ?,
                          decided_by = ?, decided_at = ? WHERE id = ?""",
                       (decision, mark, comment, actor, now(), image_id))
            self._log(db, actor, decision, record.session_id, image_id, comment=comment,
                      fingerprint=mark, settings=settings.to_dict())

    def save_residual(self, image_id: int, faces: list[Face]) -> None:
        """Record what the residual check found on the image's current output."""
        with self._connect() as db:
            record, batch = self._load(db, image_id)
            mark = record.current_fingerprint(batch)
            db.execute("UPDATE images SET residual = ? WHERE id = ?",
                       (json.dumps({"fingerprint": mark, "faces": [f.to_dict() for f in faces]}), image_id))
            if faces:
                self._log(db, "engine", "residual faces found", record.session_id, image_id,
                          faces=[f.to_dict() for f in faces])

    def confirm_residual(self, image_id: int, actor: str) -> None:
        """The reviewer looked at what the residual check found and accepts the output."""
        with self._connect() as db:
            record, batch = self._load(db, image_id)
            mark = record.current_fingerprint(batch)
            db.execute("UPDATE images SET residual_confirmed = ? WHERE id = ?", (mark, image_id))
            self._log(db, actor, "residual check confirmed", record.session_id, image_id, fingerprint=mark)

    def audit(self, session_id: int) -> list[dict]:
        with self._connect(write=False) as db:
            rows = db.execute("SELECT * FROM audit WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    def log(self, session_id: int, actor: str, action: str, image_id: int | None = None, **detail) -> None:
        """Record an event that changes nothing else (an export, a refused folder)."""
        with self._connect() as db:
            self._log(db, actor, action, session_id, image_id, **detail)

    # Internals ----------------------------------------------------------------------------

    def _read_one(self, sql: str, key: int, what: str) -> sqlite3.Row:
        with self._connect(write=False) as db:
            row = db.execute(sql, (key,)).fetchone()
        if row is None:
            raise KeyError(f"no {what} {key}")
        return row

    @staticmethod
    def _session_of(db, image_id: int) -> int:
        return db.execute("SELECT session_id FROM images WHERE id = ?", (image_id,)).fetchone()[0]

    @staticmethod
    def _load(db, image_id: int) -> tuple[ImageRecord, Settings]:
        """An image and its session's batch settings, read in the caller's transaction."""
        record = _record(db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone())
        raw = db.execute("SELECT settings FROM sessions WHERE id = ?", (record.session_id,)).fetchone()[0]
        return record, Settings(**json.loads(raw))

    def _unapprove_if_changed(self, db, image_id: int, actor: str) -> None:
        """An approval covers what was approved, nothing else: anything changed since then
        sends the image back to pending, and the log says so."""
        record, batch = self._load(db, image_id)
        if record.status == APPROVED and not record.approval_current(batch):
            db.execute("UPDATE images SET status = ?, approved_fingerprint = NULL WHERE id = ?",
                       (PENDING, image_id))
            self._log(db, actor, "approval withdrawn", record.session_id, image_id,
                      reason="settings or faces changed after approval")


def _record(row: sqlite3.Row) -> ImageRecord:
    faces = json.loads(row["faces"]) if row["faces"] is not None else None
    override = json.loads(row["override"]) if row["override"] else None
    return ImageRecord(
        id=row["id"], session_id=row["session_id"], name=row["name"], sha256=row["sha256"],
        width=row["width"], height=row["height"],
        faces=[Face.from_dict(f) for f in faces] if faces is not None else None,
        error=row["error"], status=row["status"], override=Settings(**override) if override else None,
        approved_fingerprint=row["approved_fingerprint"], comment=row["comment"],
        decided_by=row["decided_by"], decided_at=row["decided_at"],
        residual=json.loads(row["residual"]) if row["residual"] else None,
        residual_confirmed=row["residual_confirmed"],
    )


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
    under a loose umask. Links are not followed."""
    for parent, dirs, files in os.walk(root, followlinks=False):
        for name in dirs:
            folder = Path(parent) / name
            if not folder.is_symlink() and folder.stat().st_mode & 0o077:
                folder.chmod(0o700)
        for name in files:
            path = Path(parent) / name
            if not path.is_symlink() and path.stat().st_mode & 0o177:
                path.chmod(0o600)


def default_root() -> Path:
    """FACE_PRIVACY_WORKSPACE if set, else the user's data folder (never the source tree)."""
    from platformdirs import user_data_dir

    configured = os.environ.get("FACE_PRIVACY_WORKSPACE")
    return Path(configured) if configured else Path(user_data_dir("face-privacy")) / "workspace"
