"""The review database: one SQLite file (`review.sqlite`) written in short transactions.

Streamlit runs each browser tab in its own thread and the detection and export workers run beside
them: every operation opens its own connection, and a transaction either lands whole or not at all
(WAL, synchronous writes). The audit log is append-only: triggers refuse to change or delete it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

from .pipeline import Settings
from .records import ImageRecord, StaleState, image_record
from .report import utc_now

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    reviewer TEXT NOT NULL,
    created TEXT NOT NULL,
    settings TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,  -- grows with every decision, edit and setting change
    purged_at TEXT
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
    residual TEXT,             -- JSON {fingerprint, output_sha256, faces} of the last residual check
    residual_confirmed TEXT,   -- fingerprint the reviewer confirmed the residual check for
    removed_at TEXT,           -- removed from the session: original and previews deleted
    draft TEXT                 -- a comment being typed, kept across a reload until a decision
);
CREATE INDEX IF NOT EXISTS images_session ON images(session_id);
CREATE INDEX IF NOT EXISTS images_session_sha ON images(session_id, sha256);
CREATE INDEX IF NOT EXISTS images_ready ON images(session_id, id, name, status)
    WHERE removed_at IS NULL AND error IS NULL AND faces IS NOT NULL;
CREATE TABLE IF NOT EXISTS exports (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    started_at TEXT NOT NULL,
    started_by TEXT NOT NULL,
    revision INTEGER NOT NULL, -- the session's revision the export was made from
    status TEXT NOT NULL,      -- building, complete, failed
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    finished_at TEXT,
    file TEXT,                 -- the publication zip, in exports/
    audit_file TEXT,           -- the reviewer's audit package, in exports/
    sha256 TEXT,
    counts TEXT,               -- JSON {exported, held_back, rejected, pending, failed}
    error TEXT,
    working_on TEXT            -- what is being done now ("clip.mp4: frame 250 of 1500 covered")
);
CREATE INDEX IF NOT EXISTS exports_session ON exports(session_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    session_id INTEGER,
    image_id INTEGER,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_session ON audit(session_id, id);
CREATE INDEX IF NOT EXISTS audit_image ON audit(image_id, id);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class ReviewDatabase:
    """The SQLite file, created private and brought up to the current schema on opening, and the
    steps every change shares: a transaction, an audit entry, a session's revision."""

    def __init__(self, path: Path):
        self.path = path
        # SQLite gives its -wal and -shm files the database file's mode: create it private.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # Columns added after the first release, before the indexes that use them.
            for table, column, kind in (("images", "residual", "TEXT"), ("images", "residual_confirmed", "TEXT"),
                                        ("images", "removed_at", "TEXT"), ("images", "draft", "TEXT"),
                                        ("sessions", "revision", "INTEGER NOT NULL DEFAULT 0"),
                                        ("sessions", "purged_at", "TEXT"), ("exports", "working_on", "TEXT")):
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if present and column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            db.executescript(_SCHEMA)
            db.commit()
        finally:
            db.close()
        # One connection held open for the database's life. When the last connection closes,
        # SQLite removes the WAL's shared-memory file, and the next one has to make it again:
        # on a full disk it cannot, and every read failed ("disk I/O error"), so a reviewer could
        # no longer see a session or fetch a zip already built. Kept open, that file stays, and a
        # full disk refuses only the writes, each with its message.
        self._keeper = sqlite3.connect(path, check_same_thread=False)
        self._keeper.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()

    @contextlib.contextmanager
    def transaction(self, write: bool = True):
        """A short-lived connection for one operation. Only writers take the write lock; readers
        see a consistent snapshot beside them (WAL)."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
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

    def read_one(self, sql: str, key: int, what: str) -> sqlite3.Row:
        with self.transaction(write=False) as db:
            row = db.execute(sql, (key,)).fetchone()
        if row is None:
            raise KeyError(f"no {what} {key}")
        return row

    # The steps below run inside the caller's transaction (`db`).

    @staticmethod
    def log(db, actor: str, action: str, session_id=None, image_id=None, **detail) -> None:
        db.execute("INSERT INTO audit (at, session_id, image_id, actor, action, detail) VALUES (?,?,?,?,?,?)",
                   (utc_now(), session_id, image_id, actor, action, json.dumps(detail, sort_keys=True)))

    @staticmethod
    def bump(db, session_id: int) -> None:
        """Something a zip depends on changed: every zip made before is out of date."""
        db.execute("UPDATE sessions SET revision = revision + 1 WHERE id = ?", (session_id,))

    @staticmethod
    def purged(db, session_id: int) -> bool:
        """Whether the session was purged: nothing more is kept for it."""
        return bool(db.execute("SELECT purged_at FROM sessions WHERE id = ?", (session_id,)).fetchone()[0])

    @staticmethod
    def revision(db, session_id: int) -> int:
        return db.execute("SELECT revision FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]

    @staticmethod
    def batch_settings(db, session_id: int) -> Settings:
        raw = db.execute("SELECT settings FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
        return Settings(**json.loads(raw))

    @staticmethod
    def session_of(db, image_id: int) -> int:
        return db.execute("SELECT session_id FROM images WHERE id = ?", (image_id,)).fetchone()[0]

    @classmethod
    def load(cls, db, image_id: int, seen: str | None = None) -> tuple[ImageRecord, Settings]:
        """An image and its session's batch settings; with `seen`, refused unless the image is
        still in the state the reviewer saw."""
        record = image_record(db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone())
        batch = cls.batch_settings(db, record.session_id)
        if record.removed_at:
            raise StaleState(f"{record.name} was removed from the session")
        if seen is not None and record.current_fingerprint(batch) != seen:
            raise StaleState(f"{record.name} changed since this page showed it (in another tab, or by another "
                             "reviewer): nothing was done; it is shown as it is now")
        return record, batch

    @classmethod
    def note_outdated(cls, db, before: ImageRecord, batch: Settings, actor: str, reason: str) -> None:
        """Log that a change put a current approval out of date (the approval itself is kept:
        undoing the change makes it current again)."""
        after, batch_now = cls.load(db, before.id)
        if before.approval_current(batch) and not after.approval_current(batch_now):
            cls.log(db, actor, "approval out of date", before.session_id, before.id, reason=reason)
