"""Review sessions on disk: the review database (`core.database`) over a content-addressed file
store (`core.store`).

Everything a reviewer does is written here at once, with an append-only audit log, so that
reloading the page or restarting the server loses nothing. Every action on a photo carries the
fingerprint of the state the reviewer saw, and is refused when that state changed meanwhile
(`StaleState`; see `core.records`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from .database import ReviewDatabase
from .export_log import ExportLog
from .faces import Face
from .pipeline import Settings
from .records import APPROVED, FAILED, PENDING, REJECTED, ImageRecord, StaleState, image_record
from .report import utc_now
from .store import FileStore


def overview_file(session_id: int) -> str:
    """The file of a session's derived overview rows (see dashboard.previews)."""
    return f"overview-{session_id}.json"


class Workspace:
    """The review repository: sessions, images, the reviewer's decisions and the audit log in
    `review.sqlite`, over the files of a `FileStore` in the same folder; the zips' record is
    `exports` (an `ExportLog`)."""

    def __init__(self, root: Path):
        self.files = FileStore(root)
        self.root = self.files.root
        self.db = ReviewDatabase(self.root / "review.sqlite")
        self.exports = ExportLog(self.db, self.files)

    # Sessions -----------------------------------------------------------------------------

    def create_session(self, name: str, reviewer: str, settings: Settings | None = None) -> int:
        name, reviewer = name.strip(), reviewer.strip()
        if not name or not reviewer:
            raise ValueError("a review session needs a name and a reviewer")
        settings = settings or Settings()
        with self.db.transaction() as db:
            _claim_name(db, name, "open it instead")
            cursor = db.execute("INSERT INTO sessions (name, reviewer, created, settings) VALUES (?,?,?,?)",
                                (name, reviewer, utc_now(), json.dumps(settings.to_dict())))
            self.db.log(db, reviewer, "session created", cursor.lastrowid, name=name)
            return cursor.lastrowid

    def rename_session(self, session_id: int, name: str, actor: str, seen: str | None = None) -> None:
        """Give the session another name: it names the zip, the files published from it and its
        manifest, so every zip made before is out of date. `seen`: the name the page showed; if
        it was changed since, nothing is written (StaleState)."""
        name = name.strip()
        if not name:
            raise ValueError("a review session needs a name")
        with self.db.transaction() as db:
            old = db.execute("SELECT name FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
            if self.db.purged(db, session_id):
                raise StaleState("the session was purged (in another tab or by another reviewer): nothing was done")
            if seen is not None and old != seen:
                raise StaleState("the session was renamed meanwhile (in another tab or by another reviewer); "
                                 "its name is shown as it is now")
            if old == name:
                return
            _claim_name(db, name, "choose another")
            db.execute("UPDATE sessions SET name = ? WHERE id = ?", (name, session_id))
            self.db.bump(db, session_id)
            self.db.log(db, actor, "session renamed", session_id, name=name, former=old)

    def sessions(self) -> list[dict]:
        """Sessions that can be opened (a purged one cannot), newest first."""
        with self.db.transaction(write=False) as db:
            rows = db.execute("""
                SELECT s.id, s.name, s.reviewer, s.created, COUNT(i.id) AS images,
                       SUM(i.status = 'approved') AS approved, SUM(i.status = 'rejected') AS rejected
                FROM sessions s LEFT JOIN images i ON i.session_id = s.id AND i.removed_at IS NULL
                WHERE s.purged_at IS NULL
                GROUP BY s.id ORDER BY s.created DESC, s.id DESC""").fetchall()
        return [dict(r) for r in rows]

    def session(self, session_id: int) -> dict:
        """A session's row, with its batch settings as `Settings`."""
        row = dict(self.db.read_one("SELECT * FROM sessions WHERE id = ?", session_id, "review session"))
        return row | {"settings": Settings(**json.loads(row["settings"]))}

    def batch_settings(self, session_id: int) -> Settings:
        return self.session(session_id)["settings"]

    def approvals_affected(self, session_id: int, settings: Settings) -> list[str]:
        """Names of the photos whose current approval these batch settings would put out of date."""
        with self.db.transaction(write=False) as db:
            return [r.name for r in _put_out_of_date(db, session_id, self.db.batch_settings(db, session_id), settings)]

    def set_batch_settings(self, session_id: int, settings: Settings, actor: str,
                           seen: Settings | None = None, outdating: list[str] | None = None) -> None:
        """Change the batch settings. `seen`: the settings the page showed; `outdating`: the
        approvals it said the change puts out of date. If someone changed the settings since, or
        the change would now put other approvals out of date, nothing is written (StaleState)."""
        with self.db.transaction() as db:
            old = self.db.batch_settings(db, session_id)
            if seen is not None and old != seen:
                raise StaleState("the batch settings were changed meanwhile (in another tab or by another "
                                 "reviewer); they are shown as they are now")
            if old == settings:
                return
            affected = _put_out_of_date(db, session_id, old, settings)
            if outdating is not None and sorted(r.name for r in affected) != sorted(outdating):
                raise StaleState(f"the change would now put {len(affected)} approval(s) out of date, not "
                                 f"{len(outdating)} as shown (a photo was approved or changed meanwhile); they are "
                                 "listed again")
            db.execute("UPDATE sessions SET settings = ? WHERE id = ?", (json.dumps(settings.to_dict()), session_id))
            self.db.bump(db, session_id)
            self.db.log(db, actor, "batch settings changed", session_id, **settings.to_dict())
            for record in affected:
                self.db.log(db, actor, "approval out of date", session_id, record.id,
                            reason="batch settings changed after approval")

    def revision(self, session_id: int) -> int:
        return self.session(session_id)["revision"]

    def save_overview(self, session_id: int, data: bytes) -> None:
        """Keep a session's derived overview rows (they name its photos), unless it was purged:
        written under the write lock, so a purge cannot come between the check and the file."""
        with self.db.transaction() as db:
            if not self.db.purged(db, session_id):
                self.files.save_derived(overview_file(session_id), data)

    # Images -------------------------------------------------------------------------------

    def add_image(self, session_id: int, name: str, data: bytes | BinaryIO, actor: str) -> tuple[int, str | None]:
        """Store an original (bytes, or a file open for reading, copied in chunks) and queue it
        for detection: (its id, None). The same bytes already in the session are not added again:
        (that photo's id, its name)."""
        digest, size = self.files.store(io.BytesIO(data) if isinstance(data, bytes) else data)
        with self.db.transaction() as db:
            same = db.execute("SELECT id, name FROM images WHERE session_id = ? AND sha256 = ? AND error IS NULL "
                              "AND removed_at IS NULL ORDER BY id LIMIT 1", (session_id, digest)).fetchone()
            if same:
                self.db.log(db, actor, "duplicate not added", session_id, same["id"], name=name, sha256=digest,
                            same_as=same["name"])
                return same["id"], same["name"]
            cursor = db.execute("INSERT INTO images (session_id, name, sha256, added_at) VALUES (?,?,?,?)",
                                (session_id, name, digest, utc_now()))
            self.db.log(db, actor, "image added", session_id, cursor.lastrowid, name=name, sha256=digest,
                        bytes=size)
            return cursor.lastrowid, None

    def add_refused(self, session_id: int, name: str, reason: str, actor: str, data: bytes = b"") -> int:
        """Record a file that will not be processed (its bytes are not kept), with the reason."""
        digest = hashlib.sha256(data).hexdigest()
        with self.db.transaction() as db:
            cursor = db.execute(
                "INSERT INTO images (session_id, name, sha256, error, status, added_at) VALUES (?,?,?,?,?,?)",
                (session_id, name, digest, reason, FAILED, utc_now()))
            self.db.log(db, actor, "file refused", session_id, cursor.lastrowid, name=name, reason=reason)
            return cursor.lastrowid

    def awaiting_detection(self, session_id: int) -> list[ImageRecord]:
        """Images added but not yet detected: after a crash, detection resumes with these.
        Asked on every page view, so the database does the filtering."""
        with self.db.transaction(write=False) as db:
            rows = db.execute("SELECT * FROM images WHERE session_id = ? AND faces IS NULL AND error IS NULL "
                              "AND removed_at IS NULL ORDER BY id", (session_id,)).fetchall()
        return [image_record(r) for r in rows]

    def save_detection(self, image_id: int, width: int, height: int, faces: list[Face],
                       source: str = "faces detected") -> None:
        with self.db.transaction() as db:
            if self._removed_meanwhile(db, image_id):
                return
            db.execute("UPDATE images SET width = ?, height = ?, faces = ? WHERE id = ?",
                       (width, height, json.dumps([f.to_dict() for f in faces]), image_id))
            self.db.log(db, "engine", source, self.db.session_of(db, image_id), image_id, candidates=len(faces))

    def save_failure(self, image_id: int, reason: str) -> None:
        with self.db.transaction() as db:
            if self._removed_meanwhile(db, image_id):
                return
            db.execute("UPDATE images SET error = ?, status = ? WHERE id = ?", (reason, FAILED, image_id))
            self.db.log(db, "engine", "file refused", self.db.session_of(db, image_id), image_id, reason=reason)

    def failures(self, session_id: int) -> list[tuple[str, str]]:
        """(name, reason) of the session's files that could not be used, in order, without
        reading any photo's faces (asked every second while detection runs)."""
        with self.db.transaction(write=False) as db:
            return [tuple(row) for row in db.execute(
                "SELECT name, error FROM images WHERE session_id = ? AND removed_at IS NULL AND error IS NOT NULL "
                "ORDER BY id", (session_id,))]

    def images(self, session_id: int) -> list[ImageRecord]:
        """The session's images, removed ones left out."""
        with self.db.transaction(write=False) as db:
            rows = db.execute("SELECT * FROM images WHERE session_id = ? AND removed_at IS NULL ORDER BY id",
                              (session_id,)).fetchall()
        return [image_record(r) for r in rows]

    def image(self, image_id: int) -> ImageRecord:
        return image_record(self.db.read_one("SELECT * FROM images WHERE id = ?", image_id, "image"))

    def listing(self, session_id: int) -> list[tuple[int, str, str]]:
        """(id, name, status) of the session's images ready for review, in order: what a page
        needs to step through 10,000 photos without reading their faces."""
        with self.db.transaction(write=False) as db:
            return [tuple(row) for row in db.execute(
                # The index holds these columns: the rows themselves (with their faces) are not read.
                "SELECT id, name, status FROM images INDEXED BY images_ready WHERE session_id = ? "
                "AND removed_at IS NULL AND error IS NULL AND faces IS NOT NULL ORDER BY id", (session_id,))]

    def changed_since(self, session_id: int, mark: int) -> set[int] | None:
        """The images changed after `mark` (a `change_mark`), or None when the session itself
        changed (its settings, an export, a purge): then everything may have."""
        with self.db.transaction(write=False) as db:
            ids = {row[0] for row in db.execute("SELECT DISTINCT image_id FROM audit WHERE session_id = ? AND id > ?",
                                                (session_id, mark))}
        return None if None in ids else ids

    def change_mark(self, session_id: int) -> int:
        """Grows with every change to the session that a page shows (each is in the audit log):
        derived values cached under it are never stale."""
        with self.db.transaction(write=False) as db:
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
        with self.db.transaction(write=False) as db:
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
        with self.db.transaction() as db:
            record, batch = self.db.load(db, image_id, seen)
            before = list(record.faces or [])
            faces = change(list(before), record.settings(batch).threshold)
            db.execute("UPDATE images SET faces = ? WHERE id = ?",
                       (json.dumps([f.to_dict() for f in faces]), image_id))
            self.db.bump(db, record.session_id)
            self.db.log(db, actor, "faces changed", record.session_id, image_id, change=why,
                        before=[f.to_dict() for f in before], **detail)
            self.db.note_outdated(db, record, batch, actor, "faces changed after approval")

    def set_override(self, image_id: int, settings: Settings | None, actor: str, seen: str | None = None) -> None:
        """Give one image its own settings (None: follow the batch again)."""
        value = json.dumps(settings.to_dict()) if settings else None
        with self.db.transaction() as db:
            record, batch = self.db.load(db, image_id, seen)
            if record.override == settings:
                return
            db.execute("UPDATE images SET override = ? WHERE id = ?", (value, image_id))
            self.db.bump(db, record.session_id)
            self.db.log(db, actor, "image settings changed", record.session_id, image_id,
                        settings=settings.to_dict() if settings else "batch")
            self.db.note_outdated(db, record, batch, actor, "this photo's settings changed after approval")

    def decide(self, image_id: int, decision: str, actor: str, comment: str = "", seen: str | None = None) -> None:
        """Approve, reject or reopen an image. Approval records what exactly was approved: the
        state the reviewer saw (`seen`), which must still be the state stored."""
        if decision not in (APPROVED, REJECTED, PENDING):
            raise ValueError(f"unknown decision {decision!r}")
        with self.db.transaction() as db:
            record, batch = self.db.load(db, image_id, seen)
            if record.error or not record.detected:
                raise ValueError(f"{record.name} cannot be {decision}: it has not been processed")
            settings = record.settings(batch)
            mark = record.current_fingerprint(batch) if decision == APPROVED else None
            db.execute("""UPDATE images SET status = ?, approved_fingerprint = ?, comment = ?,
                          decided_by = ?, decided_at = ?, draft = NULL WHERE id = ?""",
                       (decision, mark, comment, actor, utc_now(), image_id))
            self.db.bump(db, record.session_id)
            self.db.log(db, actor, decision, record.session_id, image_id, comment=comment,
                        fingerprint=mark, settings=settings.to_dict())

    def save_draft(self, image_id: int, text: str) -> None:
        """Keep a comment being typed (not a decision: not logged) so a reload does not lose it."""
        with self.db.transaction() as db:
            db.execute("UPDATE images SET draft = ? WHERE id = ?", (text, image_id))

    def save_residual(self, image_id: int, checked: str, output_sha256: str, faces: list[Face]) -> None:
        """Record what the residual check found on one output: the one made from the state
        whose fingerprint is `checked`, with these bytes."""
        with self.db.transaction() as db:
            session_id = self.db.session_of(db, image_id)
            db.execute("UPDATE images SET residual = ? WHERE id = ?",
                       (json.dumps({"fingerprint": checked, "output_sha256": output_sha256,
                                    "faces": [f.to_dict() for f in faces]}), image_id))
            if faces:
                self.db.log(db, "engine", "residual faces found", session_id, image_id,
                            faces=[f.to_dict() for f in faces], output_sha256=output_sha256)

    def confirm_residual(self, image_id: int, actor: str, seen: str | None = None) -> None:
        """The reviewer looked at what the residual check found and accepts the output."""
        with self.db.transaction() as db:
            record, batch = self.db.load(db, image_id, seen)
            mark = record.current_fingerprint(batch)
            db.execute("UPDATE images SET residual_confirmed = ? WHERE id = ?", (mark, image_id))
            self.db.bump(db, record.session_id)
            self.db.log(db, actor, "residual check confirmed", record.session_id, image_id, fingerprint=mark)

    # Removal ------------------------------------------------------------------------------

    def remove_image(self, image_id: int, actor: str) -> None:
        """Take a photo out of its session and delete its original and previews from disk
        (unless another session still holds the same photo). The audit log keeps its hash and
        the removal."""
        with self.db.transaction() as db:
            row = db.execute("SELECT session_id, name, sha256 FROM images WHERE id = ? AND removed_at IS NULL",
                             (image_id,)).fetchone()
            if row is None:
                return
            db.execute("UPDATE images SET removed_at = ? WHERE id = ?", (utc_now(), image_id))
            self.db.bump(db, row["session_id"])
            deleted = self._delete_files(db, image_id, row["sha256"])
            self.db.log(db, actor, "image removed", row["session_id"], image_id, sha256=row["sha256"],
                        files_deleted=len(deleted or []), kept_for_another_session=deleted is None)

    def _delete_files(self, db, image_id: int, sha256: str) -> list | None:
        """Delete a removed photo's original and previews, unless another photo still holds the
        same file (then None)."""
        if db.execute("SELECT 1 FROM images WHERE sha256 = ? AND removed_at IS NULL AND id != ?",
                      (sha256, image_id)).fetchone():
            return None
        return self.files.delete_original(sha256)

    def _removed_meanwhile(self, db, image_id: int) -> bool:
        """Whether the photo was removed (or its session purged) while it was being detected:
        then what detection wrote for it since (previews, a clip's tracks and face thumbnails)
        is deleted, and nothing is saved."""
        row = db.execute("SELECT sha256, removed_at FROM images WHERE id = ?", (image_id,)).fetchone()
        if row["removed_at"] is None:
            return False
        self._delete_files(db, image_id, row["sha256"])
        return True

    def purge_session(self, session_id: int, actor: str) -> None:
        """Remove every photo of a session (originals, previews) and its zips; the session can
        no longer be opened. The audit log keeps the hashes and the purge."""
        for record in self.images(session_id):
            self.remove_image(record.id, actor)
        with self.db.transaction() as db:
            zips = self.exports.delete_files(db, session_id)
            self.files.delete_derived(overview_file(session_id))
            db.execute("UPDATE sessions SET purged_at = ? WHERE id = ?", (utc_now(), session_id))
            self.db.bump(db, session_id)
            self.db.log(db, actor, "session purged", session_id, zips_deleted=zips)

    # The log ------------------------------------------------------------------------------

    def audit(self, session_id: int) -> list[dict]:
        with self.db.transaction(write=False) as db:
            rows = db.execute("SELECT * FROM audit WHERE session_id = ? ORDER BY id", (session_id,)).fetchall()
        return [dict(r) | {"detail": json.loads(r["detail"])} for r in rows]

    def log(self, session_id: int, actor: str, action: str, image_id: int | None = None, **detail) -> None:
        """Record an event that changes nothing else (a refused folder)."""
        with self.db.transaction() as db:
            self.db.log(db, actor, action, session_id, image_id, **detail)


def _claim_name(db, name: str, otherwise: str) -> None:
    """`name` for a session, or ValueError when a session that can be opened has it; a purged
    session cannot be opened, and gives its name up (its audit log keeps it)."""
    taken = db.execute("SELECT id, purged_at FROM sessions WHERE name = ?", (name,)).fetchone()
    if taken and not taken["purged_at"]:
        raise ValueError(f"a session named {name!r} exists already: {otherwise}")
    if taken:
        db.execute("UPDATE sessions SET name = ? WHERE id = ?",
                   (f"{name} (purged {taken['purged_at']}, #{taken['id']})", taken["id"]))


def _put_out_of_date(db, session_id: int, before: Settings, after: Settings) -> list[ImageRecord]:
    """The photos following the batch settings whose current approval a change from `before` to
    `after` would put out of date."""
    rows = db.execute("SELECT * FROM images WHERE session_id = ? AND status = 'approved' "
                      "AND override IS NULL AND removed_at IS NULL", (session_id,)).fetchall()
    return [r for r in map(image_record, rows) if r.approval_current(before) and not r.approval_current(after)]


def _find(faces: list[Face], face: Face) -> int:
    """Where a face is in the stored list, matched by its box and origin (not its switch)."""
    key = (face.x, face.y, face.w, face.h, face.detector)
    for at, candidate in enumerate(faces):
        if (candidate.x, candidate.y, candidate.w, candidate.h, candidate.detector) == key:
            return at
    raise StaleState("that face is no longer in this photo (changed in another tab?): nothing was done")


def _where(face: Face) -> str:
    return f"x {face.x:.0f}, y {face.y:.0f} ({face.w:.0f} x {face.h:.0f} px)"


def default_root() -> Path:
    """FACE_PRIVACY_WORKSPACE if set, else the user's data folder (never the source tree)."""
    from platformdirs import user_data_dir

    configured = os.environ.get("FACE_PRIVACY_WORKSPACE")
    return Path(configured) if configured else Path(user_data_dir("face-privacy")) / "workspace"
