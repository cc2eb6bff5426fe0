"""Review sessions on disk: an SQLite database and a content-addressed file store.

Everything a reviewer does is written here at once, with an append-only audit log, so that
reloading the page or restarting the server loses nothing. An approval binds to a fingerprint
of the exact settings and faces approved: it counts only while they are what they were (change
them and the approval is out of date; change them back and it is current again). Every action
carries the fingerprint of the state the reviewer saw, and is refused when that state changed
meanwhile (`StaleState`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from .faces import Face
from .pipeline import Settings
from .store import FileStore

PENDING, APPROVED, REJECTED, FAILED = "pending", "approved", "rejected", "failed"

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
    error TEXT
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


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StaleState(ValueError):
    """The photo or the settings changed since the page that asked showed them."""


def overview_file(session_id: int) -> str:
    """The file of a session's derived overview rows (see dashboard.previews)."""
    return f"overview-{session_id}.json"


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
    removed_at: str | None = None
    draft: str | None = None

    @property
    def detected(self) -> bool:
        return self.faces is not None

    def settings(self, batch: Settings) -> Settings:
        """The settings that apply: this image's own, or the batch's."""
        return self.override or batch

    def current_fingerprint(self, batch: Settings) -> str:
        """The fingerprint of this image's output as it would be made now (computed once per
        batch settings: a record is a snapshot, its faces never change)."""
        known = self.__dict__.setdefault("_fingerprints", {})
        if batch not in known:
            known[batch] = fingerprint(self.settings(batch), self.faces or [])
        return known[batch]

    def approval_current(self, batch: Settings) -> bool:
        """Approved, and nothing changed since: the only state in which it is exported."""
        return (self.status == APPROVED and self.faces is not None
                and self.approved_fingerprint == self.current_fingerprint(batch))

    def approval_outdated(self, batch: Settings) -> bool:
        """Approved, but the settings or faces have changed since: not exported until approved
        again, or until they are back to what was approved."""
        return self.status == APPROVED and not self.approval_current(batch)

    def state(self, batch: Settings) -> str:
        """What the reviewer sees: the decision, or that an approval is out of date."""
        return "approval out of date" if self.approval_outdated(batch) else self.status

    def residual_result(self, batch: Settings, output_sha256: str | None = None) -> list[Face] | None:
        """What the residual check says of this image's current output: None when it has not
        looked at this exact output (same settings and faces and, when given, the same output
        bytes), [] when clean or confirmed by the reviewer, else the faces it found."""
        current = self.current_fingerprint(batch)
        if self.residual_confirmed == current:
            return []
        if not self.residual or self.residual["fingerprint"] != current:
            return None
        if output_sha256 and self.residual.get("output_sha256") not in (None, output_sha256):
            return None
        return [Face.from_dict(f) for f in self.residual["faces"]]

    def residual_open(self, batch: Settings) -> list[Face]:
        """Faces found again on the current output and not yet confirmed ([] if none known)."""
        return self.residual_result(batch) or []


class Workspace:
    """The review repository: sessions, images, decisions, exports and the audit log in
    `review.sqlite`, over the files of a `FileStore` in the same folder."""

    def __init__(self, root: Path):
        self.files = FileStore(root)
        self.root, self.exports = self.files.root, self.files.exports
        self.db_path = self.root / "review.sqlite"
        # SQLite gives its -wal and -shm files the database file's mode: create it private.
        os.close(os.open(self.db_path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(self.db_path, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # Columns added after the first release, before the indexes that use them.
            for table, column, kind in (("images", "residual", "TEXT"), ("images", "residual_confirmed", "TEXT"),
                                        ("images", "removed_at", "TEXT"), ("images", "draft", "TEXT"),
                                        ("sessions", "revision", "INTEGER NOT NULL DEFAULT 0"),
                                        ("sessions", "purged_at", "TEXT")):
                present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if present and column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            db.executescript(_SCHEMA)
            db.commit()
        finally:
            db.close()

    # The files ----------------------------------------------------------------------------

    def read(self, sha256: str) -> bytes:
        return self.files.read(sha256)

    def save_previews(self, sha256: str, bases: dict[int, bytes]) -> None:
        self.files.save_previews(sha256, bases)

    def preview(self, sha256: str, side: int) -> bytes:
        return self.files.preview(sha256, side)

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

    @staticmethod
    def _bump(db, session_id: int) -> None:
        """Something a zip depends on changed: every zip made before is out of date."""
        db.execute("UPDATE sessions SET revision = revision + 1 WHERE id = ?", (session_id,))

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
        """Sessions that can be opened (a purged one cannot), newest first."""
        with self._connect(write=False) as db:
            rows = db.execute("""
                SELECT s.id, s.name, s.reviewer, s.created, COUNT(i.id) AS images,
                       SUM(i.status = 'approved') AS approved, SUM(i.status = 'rejected') AS rejected
                FROM sessions s LEFT JOIN images i ON i.session_id = s.id AND i.removed_at IS NULL
                WHERE s.purged_at IS NULL
                GROUP BY s.id ORDER BY s.created DESC, s.id DESC""").fetchall()
        return [dict(r) for r in rows]

    def session(self, session_id: int) -> dict:
        """A session's row, with its batch settings as `Settings`."""
        row = dict(self._read_one("SELECT * FROM sessions WHERE id = ?", session_id, "review session"))
        return row | {"settings": Settings(**json.loads(row["settings"]))}

    def batch_settings(self, session_id: int) -> Settings:
        return self.session(session_id)["settings"]

    def approvals_affected(self, session_id: int, settings: Settings) -> list[str]:
        """Names of the photos whose current approval these batch settings would put out of date."""
        with self._connect(write=False) as db:
            rows = db.execute("SELECT * FROM images WHERE session_id = ? AND status = 'approved' "
                              "AND removed_at IS NULL AND override IS NULL", (session_id,)).fetchall()
            batch = Settings(**json.loads(db.execute("SELECT settings FROM sessions WHERE id = ?",
                                                     (session_id,)).fetchone()[0]))
        records = [_record(r) for r in rows]
        return [r.name for r in records if r.approval_current(batch) and not r.approval_current(settings)]

    def set_batch_settings(self, session_id: int, settings: Settings, actor: str,
                           seen: Settings | None = None) -> None:
        """Change the batch settings. `seen`: the settings the page showed; if someone changed
        them since, nothing is written (StaleState)."""
        with self._connect() as db:
            old = Settings(**json.loads(db.execute("SELECT settings FROM sessions WHERE id = ?",
                                                   (session_id,)).fetchone()[0]))
            if seen is not None and old != seen:
                raise StaleState("the batch settings were changed meanwhile (in another tab or by another "
                                 "reviewer); they are shown as they are now")
            if old == settings:
                return
            db.execute("UPDATE sessions SET settings = ? WHERE id = ?", (json.dumps(settings.to_dict()), session_id))
            self._bump(db, session_id)
            self._log(db, actor, "batch settings changed", session_id, **settings.to_dict())
            rows = db.execute("SELECT * FROM images WHERE session_id = ? AND status = 'approved' "
                              "AND override IS NULL AND removed_at IS NULL", (session_id,)).fetchall()
            for record in map(_record, rows):
                if record.approval_current(old) and not record.approval_current(settings):
                    self._log(db, actor, "approval out of date", session_id, record.id,
                              reason="batch settings changed after approval")

    def revision(self, session_id: int) -> int:
        return self.session(session_id)["revision"]

    # Images -------------------------------------------------------------------------------

    def add_image(self, session_id: int, name: str, data: bytes, actor: str) -> tuple[int, str | None]:
        """Store an original and queue it for detection: (its id, None). The same bytes already
        in the session are not added again: (that photo's id, its name)."""
        digest = self.files.store(data)
        with self._connect() as db:
            same = db.execute("SELECT id, name FROM images WHERE session_id = ? AND sha256 = ? AND error IS NULL "
                              "AND removed_at IS NULL ORDER BY id LIMIT 1", (session_id, digest)).fetchone()
            if same:
                self._log(db, actor, "duplicate not added", session_id, same["id"], name=name, sha256=digest,
                          same_as=same["name"])
                return same["id"], same["name"]
            cursor = db.execute("INSERT INTO images (session_id, name, sha256, added_at) VALUES (?,?,?,?)",
                                (session_id, name, digest, now()))
            self._log(db, actor, "image added", session_id, cursor.lastrowid, name=name, sha256=digest,
                      bytes=len(data))
            return cursor.lastrowid, None

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
                              "AND removed_at IS NULL ORDER BY id", (session_id,)).fetchall()
        return [_record(r) for r in rows]

    def save_detection(self, image_id: int, width: int, height: int, faces: list[Face],
                       source: str = "faces detected") -> None:
        with self._connect() as db:
            db.execute("UPDATE images SET width = ?, height = ?, faces = ? WHERE id = ?",
                       (width, height, json.dumps([f.to_dict() for f in faces]), image_id))
            self._log(db, "engine", source, self._session_of(db, image_id), image_id, candidates=len(faces))

    def save_failure(self, image_id: int, reason: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE images SET error = ?, status = ? WHERE id = ?", (reason, FAILED, image_id))
            self._log(db, "engine", "file refused", self._session_of(db, image_id), image_id, reason=reason)

    def images(self, session_id: int) -> list[ImageRecord]:
        """The session's images, removed ones left out."""
        with self._connect(write=False) as db:
            rows = db.execute("SELECT * FROM images WHERE session_id = ? AND removed_at IS NULL ORDER BY id",
                              (session_id,)).fetchall()
        return [_record(r) for r in rows]

    def image(self, image_id: int) -> ImageRecord:
        return _record(self._read_one("SELECT * FROM images WHERE id = ?", image_id, "image"))

    def listing(self, session_id: int) -> list[tuple[int, str, str]]:
        """(id, name, status) of the session's images ready for review, in order: what a page
        needs to step through 10,000 photos without reading their faces."""
        with self._connect(write=False) as db:
            return [tuple(row) for row in db.execute(
                # The index holds these columns: the rows themselves (with their faces) are not read.
                "SELECT id, name, status FROM images INDEXED BY images_ready WHERE session_id = ? "
                "AND removed_at IS NULL AND error IS NULL AND faces IS NOT NULL ORDER BY id", (session_id,))]

    def changed_since(self, session_id: int, mark: int) -> set[int] | None:
        """The images changed after `mark` (a `change_mark`), or None when the session itself
        changed (its settings, an export, a purge): then everything may have."""
        with self._connect(write=False) as db:
            ids = {row[0] for row in db.execute("SELECT DISTINCT image_id FROM audit WHERE session_id = ? AND id > ?",
                                                (session_id, mark))}
        return None if None in ids else ids

    def change_mark(self, session_id: int) -> int:
        """Grows with every change to the session that a page shows (each is in the audit log):
        derived values cached under it are never stale."""
        with self._connect(write=False) as db:
            return db.execute("SELECT COALESCE(MAX(id), 0) FROM audit WHERE session_id = ?",
                              (session_id,)).fetchone()[0]

    # What a reviewer does to one image: each names the state it was shown (`seen`, the image's
    # fingerprint as the page rendered it) and is refused if that state is gone.

    def switch_faces(self, image_id: int, changes: list[tuple[Face, bool]], actor: str,
                     seen: str | None = None) -> None:
        """Cover or uncover faces: each (face as shown, covered or not). A face the threshold
        selects (or drawn by hand) is switched on or off; a candidate under the threshold (a near
        miss) is covered by the reviewer's choice, or left to the threshold again."""
        def change(faces: list[Face], threshold: float) -> list[Face]:
            for face, on in changes:
                at = _find(faces, face)
                if faces[at].manual or faces[at].score >= threshold:
                    faces[at] = faces[at].with_enabled(on)
                else:
                    faces[at] = replace(faces[at], forced=on, enabled=True)
            return faces
        why = ", ".join(f"face at {_where(face)} {'covered' if on else 'uncovered'}" for face, on in changes)
        self._edit_faces(image_id, actor, seen, change, why)

    def add_face(self, image_id: int, face: Face, actor: str, seen: str | None = None) -> None:
        """Add a face the reviewer drew."""
        self._edit_faces(image_id, actor, seen, lambda faces, _: faces + [face], f"face drawn at {_where(face)}")

    def remove_face(self, image_id: int, face: Face, actor: str, seen: str | None = None) -> None:
        """Remove a face the reviewer drew (a detected one can only be switched off)."""
        if not face.manual:
            raise ValueError("only a face drawn by hand can be removed; switch a detected face off instead")
        def change(faces: list[Face], _threshold: float) -> list[Face]:
            at = _find(faces, face)
            return faces[:at] + faces[at + 1:]
        self._edit_faces(image_id, actor, seen, change, f"drawn face at {_where(face)} removed")

    def move_face(self, image_id: int, face: Face, box: tuple[float, float, float, float], actor: str,
                  seen: str | None = None) -> None:
        """Move or resize a face the reviewer drew (a detected one can only be switched off)."""
        if not face.by_hand:
            raise ValueError("only a face drawn by hand can be moved; switch a detected face off and draw it")
        moved = replace(face, x=box[0], y=box[1], w=box[2], h=box[3])
        def change(faces: list[Face], _threshold: float) -> list[Face]:
            at = _find(faces, face)
            faces[at] = replace(faces[at], x=moved.x, y=moved.y, w=moved.w, h=moved.h)
            return faces
        self._edit_faces(image_id, actor, seen, change, f"drawn face at {_where(face)} moved to {_where(moved)}")

    def undo_faces(self, image_id: int, actor: str, seen: str | None = None) -> str:
        """Put the faces back as they were before the last change to them not undone yet (an
        undo is itself a change, logged, that names the change it undid). Returns what was undone."""
        undone: set[int] = set()
        with self._connect(write=False) as db:
            rows = db.execute("SELECT id, detail FROM audit WHERE image_id = ? AND action = 'faces changed' "
                              "ORDER BY id DESC", (image_id,)).fetchall()
        for row in rows:
            detail = json.loads(row["detail"])
            if "undoes" in detail:
                undone.add(detail["undoes"])
            elif row["id"] not in undone:
                if "before" not in detail:
                    raise StaleState("the last change to the faces was made before changes could be undone")
                before = [Face.from_dict(f) for f in detail["before"]]
                self._edit_faces(image_id, actor, seen, lambda _faces, _threshold: before,
                                 f"undone: {detail['change']}", undoes=row["id"])
                return detail["change"]
        raise StaleState("there is no change to the faces to undo")

    def _edit_faces(self, image_id: int, actor: str, seen: str | None, change, why: str, **detail) -> None:
        with self._connect() as db:
            record, batch = self._load(db, image_id, seen)
            before = list(record.faces or [])
            faces = change(list(before), record.settings(batch).threshold)
            db.execute("UPDATE images SET faces = ? WHERE id = ?",
                       (json.dumps([f.to_dict() for f in faces]), image_id))
            self._bump(db, record.session_id)
            self._log(db, actor, "faces changed", record.session_id, image_id, change=why,
                      before=[f.to_dict() for f in before], **detail)
            self._note_outdated(db, record, batch, actor, "faces changed after approval")

    def set_override(self, image_id: int, settings: Settings | None, actor: str, seen: str | None = None) -> None:
        """Give one image its own settings (None: follow the batch again)."""
        value = json.dumps(settings.to_dict()) if settings else None
        with self._connect() as db:
            record, batch = self._load(db, image_id, seen)
            if db.execute("SELECT override FROM images WHERE id = ?", (image_id,)).fetchone()[0] == value:
                return
            db.execute("UPDATE images SET override = ? WHERE id = ?", (value, image_id))
            self._bump(db, record.session_id)
            self._log(db, actor, "image settings changed", record.session_id, image_id,
                      settings=settings.to_dict() if settings else "batch")
            self._note_outdated(db, record, batch, actor, "this photo's settings changed after approval")

    def decide(self, image_id: int, decision: str, actor: str, comment: str = "", seen: str | None = None) -> None:
        """Approve, reject or reopen an image. Approval records what exactly was approved: the
        state the reviewer saw (`seen`), which must still be the state stored."""
        if decision not in (APPROVED, REJECTED, PENDING):
            raise ValueError(f"unknown decision {decision!r}")
        with self._connect() as db:
            record, batch = self._load(db, image_id, seen)
            if record.error or not record.detected:
                raise ValueError(f"{record.name} cannot be {decision}: it has not been processed")
            settings = record.settings(batch)
            mark = record.current_fingerprint(batch) if decision == APPROVED else None
            db.execute("""UPDATE images SET status = ?, approved_fingerprint = ?, comment = ?,
                          decided_by = ?, decided_at = ?, draft = NULL WHERE id = ?""",
                       (decision, mark, comment, actor, now(), image_id))
            self._bump(db, record.session_id)
            self._log(db, actor, decision, record.session_id, image_id, comment=comment,
                      fingerprint=mark, settings=settings.to_dict())

    def save_draft(self, image_id: int, text: str) -> None:
        """Keep a comment being typed (not a decision: not logged) so a reload does not lose it."""
        with self._connect() as db:
            db.execute("UPDATE images SET draft = ? WHERE id = ?", (text, image_id))

    def save_residual(self, image_id: int, checked: str, output_sha256: str, faces: list[Face]) -> None:
        """Record what the residual check found on one output: the one made from the state
        whose fingerprint is `checked`, with these bytes."""
        with self._connect() as db:
            session_id = self._session_of(db, image_id)
            db.execute("UPDATE images SET residual = ? WHERE id = ?",
                       (json.dumps({"fingerprint": checked, "output_sha256": output_sha256,
                                    "faces": [f.to_dict() for f in faces]}), image_id))
            if faces:
                self._log(db, "engine", "residual faces found", session_id, image_id,
                          faces=[f.to_dict() for f in faces], output_sha256=output_sha256)

    def confirm_residual(self, image_id: int, actor: str, seen: str | None = None) -> None:
        """The reviewer looked at what the residual check found and accepts the output."""
        with self._connect() as db:
            record, batch = self._load(db, image_id, seen)
            mark = record.current_fingerprint(batch)
            db.execute("UPDATE images SET residual_confirmed = ? WHERE id = ?", (mark, image_id))
            self._bump(db, record.session_id)
            self._log(db, actor, "residual check confirmed", record.session_id, image_id, fingerprint=mark)

    # Removal ------------------------------------------------------------------------------

    def remove_image(self, image_id: int, actor: str) -> None:
        """Take a photo out of its session and delete its original and previews from disk
        (unless another session still holds the same photo). The audit log keeps its hash and
        the removal."""
        with self._connect() as db:
            row = db.execute("SELECT session_id, name, sha256 FROM images WHERE id = ? AND removed_at IS NULL",
                             (image_id,)).fetchone()
            if row is None:
                return
            db.execute("UPDATE images SET removed_at = ? WHERE id = ?", (now(), image_id))
            self._bump(db, row["session_id"])
            shared = db.execute("SELECT 1 FROM images WHERE sha256 = ? AND removed_at IS NULL AND id != ?",
                                (row["sha256"], image_id)).fetchone()
            deleted = [] if shared else [p.name for p in self.files.delete_original(row["sha256"])]
            self._log(db, actor, "image removed", row["session_id"], image_id, sha256=row["sha256"],
                      files_deleted=len(deleted), kept_for_another_session=bool(shared))

    def purge_session(self, session_id: int, actor: str) -> None:
        """Remove every photo of a session (originals, previews) and its zips; the session can
        no longer be opened. The audit log keeps the hashes and the purge."""
        for record in self.images(session_id):
            self.remove_image(record.id, actor)
        with self._connect() as db:
            files = [f for row in db.execute("SELECT file, audit_file FROM exports WHERE session_id = ?",
                                             (session_id,)) for f in row if f]
            for name in files:
                self.files.export_path(name).unlink(missing_ok=True)
            self.files.delete_derived(overview_file(session_id))
            db.execute("UPDATE sessions SET purged_at = ? WHERE id = ?", (now(), session_id))
            db.execute("UPDATE exports SET status = 'deleted' WHERE session_id = ?", (session_id,))
            self._bump(db, session_id)
            self._log(db, actor, "session purged", session_id, zips_deleted=len(files))

    # Exports ------------------------------------------------------------------------------

    def start_export(self, session_id: int, actor: str) -> int:
        """Record an export about to be built from the session as it is now."""
        with self._connect() as db:
            revision = db.execute("SELECT revision FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
            cursor = db.execute("INSERT INTO exports (session_id, started_at, started_by, revision, status) "
                                "VALUES (?,?,?,?, 'building')", (session_id, now(), actor, revision))
            self._log(db, actor, "export started", session_id, export=cursor.lastrowid)
            return cursor.lastrowid

    def restart_export(self, export_id: int, actor: str) -> None:
        """An export cut short (the dashboard stopped) is built again from the session as it is now."""
        with self._connect() as db:
            row = db.execute("SELECT session_id FROM exports WHERE id = ?", (export_id,)).fetchone()
            revision = db.execute("SELECT revision FROM sessions WHERE id = ?", (row[0],)).fetchone()[0]
            db.execute("UPDATE exports SET revision = ?, done = 0, started_at = ? WHERE id = ?",
                       (revision, now(), export_id))
            self._log(db, actor, "export resumed after a restart", row[0], export=export_id)

    def unfinished_exports(self, session_id: int) -> list[int]:
        with self._connect(write=False) as db:
            return [r[0] for r in db.execute("SELECT id FROM exports WHERE session_id = ? AND status = 'building'",
                                             (session_id,))]

    def export_progress(self, export_id: int, done: int, total: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE exports SET done = ?, total = ? WHERE id = ?", (done, total, export_id))

    def finish_export(self, export_id: int, actor: str, file: str, audit_file: str, sha256: str,
                      counts: dict, revision: int) -> None:
        """The zip is complete; `revision` is the session's revision it reflects (later than the
        start's when a decision came in while it was built: then it is out of date at once)."""
        with self._connect() as db:
            session_id = db.execute("SELECT session_id FROM exports WHERE id = ?", (export_id,)).fetchone()[0]
            db.execute("UPDATE exports SET status = 'complete', finished_at = ?, file = ?, audit_file = ?, "
                       "sha256 = ?, counts = ?, revision = ? WHERE id = ?",
                       (now(), file, audit_file, sha256, json.dumps(counts), revision, export_id))
            self._log(db, actor, "exported", session_id, file=file, sha256=sha256, **counts)

    def fail_export(self, export_id: int, error: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE exports SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                       (now(), error, export_id))

    def exports_of(self, session_id: int) -> list[dict]:
        """The session's exports, newest first, each with `current`: complete, and nothing the
        zip depends on has changed since."""
        with self._connect(write=False) as db:
            revision = db.execute("SELECT revision FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
            rows = db.execute("SELECT * FROM exports WHERE session_id = ? AND status != 'deleted' "
                              "ORDER BY id DESC", (session_id,)).fetchall()
        return [dict(r) | {"counts": json.loads(r["counts"] or "{}"),
                           "current": r["status"] == "complete" and r["revision"] == revision} for r in rows]

    def export(self, export_id: int) -> dict:
        return dict(self._read_one("SELECT * FROM exports WHERE id = ?", export_id, "export"))

    # The log ------------------------------------------------------------------------------

    def audit(self, session_id: int) -> list[dict]:
        with self._connect(write=False) as db:
            rows = db.execute("SELECT * FROM audit WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    def log(self, session_id: int, actor: str, action: str, image_id: int | None = None, **detail) -> None:
        """Record an event that changes nothing else (a refused folder)."""
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
    def _load(db, image_id: int, seen: str | None = None) -> tuple[ImageRecord, Settings]:
        """An image and its session's batch settings, read in the caller's transaction; with
        `seen`, refused unless the image is still in the state the reviewer saw."""
        record = _record(db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone())
        raw = db.execute("SELECT settings FROM sessions WHERE id = ?", (record.session_id,)).fetchone()[0]
        batch = Settings(**json.loads(raw))
        if record.removed_at:
            raise StaleState(f"{record.name} was removed from the session")
        if seen is not None and record.current_fingerprint(batch) != seen:
            raise StaleState(f"{record.name} changed since this page showed it (in another tab, or by another "
                             "reviewer): nothing was done; it is shown as it is now")
        return record, batch

    def _note_outdated(self, db, before: ImageRecord, batch: Settings, actor: str, reason: str) -> None:
        """Log that a change put a current approval out of date (the approval itself is kept:
        undoing the change makes it current again)."""
        after, batch_now = self._load(db, before.id)
        if before.approval_current(batch) and not after.approval_current(batch_now):
            self._log(db, actor, "approval out of date", before.session_id, before.id, reason=reason)


def _find(faces: list[Face], face: Face) -> int:
    """Where a face is in the stored list, matched by its box and origin (not its switch)."""
    key = (face.x, face.y, face.w, face.h, face.detector)
    for at, candidate in enumerate(faces):
        if (candidate.x, candidate.y, candidate.w, candidate.h, candidate.detector) == key:
            return at
    raise StaleState("that face is no longer in this photo (changed in another tab?): nothing was done")


def _where(face: Face) -> str:
    return f"x {face.x:.0f}, y {face.y:.0f} ({face.w:.0f} x {face.h:.0f} px)"


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
        residual_confirmed=row["residual_confirmed"], removed_at=row["removed_at"], draft=row["draft"],
    )


def default_root() -> Path:
    """FACE_PRIVACY_WORKSPACE if set, else the user's data folder (never the source tree)."""
    from platformdirs import user_data_dir

    configured = os.environ.get("FACE_PRIVACY_WORKSPACE")
    return Path(configured) if configured else Path(user_data_dir("face-privacy")) / "workspace"
