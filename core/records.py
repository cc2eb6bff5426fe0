"""A photo in a review session as the database holds it, and the rules of its decision.

An approval binds to a fingerprint of the exact settings and faces approved: it counts only while
they are what they were (change them and the approval is out of date; change them back and it is
current again). Every action carries the fingerprint of the state the reviewer saw, and is refused
when that state changed meanwhile (`StaleState`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

from .faces import Face
from .kinds import is_video
from .pipeline import Settings

PENDING, APPROVED, REJECTED, FAILED = "pending", "approved", "rejected", "failed"


class StaleState(ValueError):
    """The photo or the settings changed since the page that asked showed them."""


def fingerprint(settings: Settings, faces: list[Face], video: bool = False) -> str:
    """What an approval binds to: the settings that decide the output (a photo's leave out
    those only videos use) and every face with its on/off state."""
    canonical = json.dumps([settings.to_dict() if video else settings.for_photo(), [f.to_dict() for f in faces]],
                           sort_keys=True)
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
            known[batch] = fingerprint(self.settings(batch), self.faces or [], is_video(self.name))
        return known[batch]

    def approval_current(self, batch: Settings) -> bool:
        """Approved, and nothing changed since: the only state in which it is exported."""
        return (self.status == APPROVED and self.faces is not None and self.removed_at is None
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


def image_record(row: sqlite3.Row) -> ImageRecord:
    """A row of the `images` table (see core.database) as a record."""
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
