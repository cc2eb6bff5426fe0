"""The record of a session's zips: each export's progress, its files, and whether it still matches
the session. A zip is current only while the session's revision (bumped by every decision, edit and
setting change) is the one it was built from; `core.export` builds the files themselves."""

from __future__ import annotations

import json

from .database import ReviewDatabase
from .report import utc_now
from .store import FileStore


class ExportLog:
    def __init__(self, db: ReviewDatabase, files: FileStore):
        self.db, self.files = db, files

    def start(self, session_id: int, actor: str) -> int:
        """Record an export about to be built from the session as it is now."""
        with self.db.transaction() as db:
            cursor = db.execute("INSERT INTO exports (session_id, started_at, started_by, revision, status) "
                                "VALUES (?,?,?,?, 'building')",
                                (session_id, utc_now(), actor, self.db.revision(db, session_id)))
            self.db.log(db, actor, "export started", session_id, export=cursor.lastrowid)
            return cursor.lastrowid

    def restart(self, export_id: int, actor: str) -> None:
        """An export cut short (the dashboard stopped) is built again from the session as it is now."""
        with self.db.transaction() as db:
            session_id = _session_of(db, export_id)
            db.execute("UPDATE exports SET revision = ?, done = 0, working_on = NULL, started_at = ? WHERE id = ?",
                       (self.db.revision(db, session_id), utc_now(), export_id))
            self.db.log(db, actor, "export resumed after a restart", session_id, export=export_id)

    def unfinished(self, session_id: int) -> list[int]:
        with self.db.transaction(write=False) as db:
            return [r[0] for r in db.execute("SELECT id FROM exports WHERE session_id = ? AND status = 'building'",
                                             (session_id,))]

    def progress(self, export_id: int, done: int, total: int, working_on: str = "") -> None:
        """`done` of `total` photos and videos written; `working_on` says what is under way (a
        long clip's frames, so that its export is seen to move)."""
        with self.db.transaction() as db:
            db.execute("UPDATE exports SET done = ?, total = ?, working_on = ? WHERE id = ?",
                       (done, total, working_on, export_id))

    def finish(self, export_id: int, actor: str, file: str, audit_file: str, sha256: str,
               counts: dict, revision: int) -> None:
        """The zip is complete; `revision` is the session's revision it reflects (later than the
        start's when a decision came in while it was built: then it is out of date at once)."""
        with self.db.transaction() as db:
            session_id = _session_of(db, export_id)
            db.execute("UPDATE exports SET status = 'complete', finished_at = ?, file = ?, audit_file = ?, "
                       "sha256 = ?, counts = ?, revision = ? WHERE id = ?",
                       (utc_now(), file, audit_file, sha256, json.dumps(counts), revision, export_id))
            if self.db.purged(db, session_id):  # purged while it was built: its zips go as the purge's did
                self.delete_files(db, session_id)
                self.db.log(db, actor, "export deleted: the session was purged while it was built", session_id,
                            export=export_id)
            else:
                self.db.log(db, actor, "exported", session_id, file=file, sha256=sha256, **counts)

    def fail(self, export_id: int, error: str) -> None:
        with self.db.transaction() as db:
            db.execute("UPDATE exports SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                       (utc_now(), error, export_id))

    def of_session(self, session_id: int) -> list[dict]:
        """The session's exports, newest first, each with `current`: complete, and nothing the
        zip depends on has changed since."""
        with self.db.transaction(write=False) as db:
            revision = self.db.revision(db, session_id)
            rows = db.execute("SELECT * FROM exports WHERE session_id = ? AND status != 'deleted' "
                              "ORDER BY id DESC", (session_id,)).fetchall()
        return [dict(r) | {"counts": json.loads(r["counts"] or "{}"), "current": _current(r, revision)}
                for r in rows]

    def get(self, export_id: int) -> dict:
        """One export, with `current` as in `of_session`."""
        row = dict(self.db.read_one("SELECT exports.*, sessions.revision AS session_revision FROM exports "
                                    "JOIN sessions ON sessions.id = exports.session_id WHERE exports.id = ?",
                                    export_id, "export"))
        return row | {"current": _current(row, row.pop("session_revision"))}

    def delete_files(self, db, session_id: int) -> int:
        """Delete every zip of a session, in the caller's transaction: how many files went."""
        files = [f for row in db.execute("SELECT file, audit_file FROM exports WHERE session_id = ?",
                                         (session_id,)) for f in row if f]
        for name in files:
            self.files.export_path(name).unlink(missing_ok=True)
        db.execute("UPDATE exports SET status = 'deleted' WHERE session_id = ?", (session_id,))
        return len(files)


def _current(row, revision: int) -> bool:
    """Complete, and nothing the zip depends on has changed since it was built."""
    return row["status"] == "complete" and row["revision"] == revision


def _session_of(db, export_id: int) -> int:
    return db.execute("SELECT session_id FROM exports WHERE id = ?", (export_id,)).fetchone()[0]
