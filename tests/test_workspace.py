"""Review sessions in a real SQLite file and file store, and the export zip built from them."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.export import export_approved
from core.faces import Face
from core.pipeline import Settings
from core.workspace import APPROVED, FAILED, PENDING, REJECTED, Workspace
from tests.conftest import jpeg_bytes


@pytest.fixture
def workspace(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def session(workspace):
    return workspace.create_session("Sports day 2026", "A. Officer")


def detected(workspace, session, name, data, faces, size=(512, 512)):
    image_id = workspace.add_image(session, name, data, "A. Officer")
    workspace.save_detection(image_id, *size, faces)
    return image_id


FACE = Face(180.0, 80.0, 60.0, 80.0, 0.9, "centerface")


def test_sessions_listed_and_reopened(tmp_path, workspace, session):
    with pytest.raises(ValueError, match="exists already"):
        workspace.create_session("Sports day 2026", "B")
    again = Workspace(tmp_path / "ws")  # a restarted server
    assert [s["name"] for s in again.sessions()] == ["Sports day 2026"]
    assert again.batch_settings(session) == Settings()


def test_store_is_content_addressed(workspace, session):
    first = workspace.add_image(session, "a.jpg", b"same bytes", "me")
    second = workspace.add_image(session, "b.jpg", b"same bytes", "me")
    assert workspace.image(first).sha256 == workspace.image(second).sha256 == hashlib.sha256(b"same bytes").hexdigest()
    assert len(list(workspace.objects.rglob("*"))) == 2  # one folder, one file
    assert workspace.audit(session)[-1]["detail"]["same_bytes_as"] == ["a.jpg"]


def test_detection_resumes_with_what_is_left(workspace, session):
    done = detected(workspace, session, "a.jpg", b"1", [FACE])
    left = workspace.add_image(session, "b.jpg", b"2", "me")
    refused = workspace.add_refused(session, "c.txt", "not an image", "me")
    assert [r.id for r in workspace.awaiting_detection(session)] == [left]
    assert workspace.image(done).faces == [FACE]
    assert workspace.image(refused).status == FAILED


def test_approval_binds_to_settings_and_faces(workspace, session):
    image_id = detected(workspace, session, "a.jpg", b"1", [FACE])
    workspace.decide(image_id, APPROVED, "A. Officer", "fine")
    assert workspace.image(image_id).approval_current(workspace.batch_settings(session))
    workspace.set_faces(image_id, [FACE.with_enabled(False)], "A. Officer", "face 1 off")
    assert workspace.image(image_id).status == PENDING
    workspace.set_faces(image_id, [FACE], "A. Officer", "face 1 on")
    workspace.decide(image_id, APPROVED, "A. Officer")
    workspace.set_batch_settings(session, Settings(threshold=0.5), "A. Officer")
    assert workspace.image(image_id).status == PENDING
    workspace.decide(image_id, APPROVED, "A. Officer")
    workspace.set_override(image_id, Settings(threshold=0.5, mode="solid"), "A. Officer")
    assert workspace.image(image_id).status == PENDING
    actions = [a["action"] for a in workspace.audit(session)]
    assert actions.count("approval withdrawn") == 3


def test_audit_log_is_append_only(workspace, session):
    db = sqlite3.connect(workspace.db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET actor = 'someone else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")


def test_failed_image_cannot_be_approved(workspace, session):
    refused = workspace.add_refused(session, "x.pdf", "not an image", "me")
    with pytest.raises(ValueError, match="not been processed"):
        workspace.decide(refused, APPROVED, "me")


def test_export_holds_only_current_approvals(workspace, session, astronaut_rgb, engine):
    data = jpeg_bytes(astronaut_rgb, exif=_gps_exif())
    faces = engine.detector.detect(astronaut_rgb)
    approved = detected(workspace, session, "../../etc/passwd.jpg", data, faces)
    twin = detected(workspace, session, "sub/passwd.jpg", jpeg_bytes(astronaut_rgb[:, ::-1].copy()), faces)
    rejected = detected(workspace, session, "rejected.jpg", jpeg_bytes(astronaut_rgb[::-1].copy()), faces)
    stale = detected(workspace, session, "stale.jpg", jpeg_bytes(255 - astronaut_rgb), faces)
    pending = detected(workspace, session, "pending.jpg", jpeg_bytes(astronaut_rgb // 2), faces)
    for image_id in (approved, twin, stale):
        workspace.decide(image_id, APPROVED, "A. Officer", "ok")
    workspace.decide(rejected, REJECTED, "A. Officer", "child in frame")
    workspace.set_faces(stale, [f.with_enabled(False) for f in faces], "A. Officer", "all off")
    assert workspace.image(pending).status == PENDING

    path = export_approved(workspace, session, "A. Officer", engine.detector).path
    assert not list(workspace.exports.glob("*.partial"))
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        assert names == ["images/passwd-2.jpg", "images/passwd.jpg", "manifest.csv", "manifest.json"]
        manifest = json.loads(archive.read("manifest.json"))
        assert [m["original_name"] for m in manifest["images"]] == ["../../etc/passwd.jpg", "sub/passwd.jpg"]
        first = manifest["images"][0]
        output = archive.read(first["output_name"])
        assert hashlib.sha256(output).hexdigest() == first["output_sha256"]
        assert first["original_sha256"] == hashlib.sha256(data).hexdigest()
        assert first["reviewer"] == "A. Officer" and first["decision"] == APPROVED and first["comment"] == "ok"
        assert first["faces_found"] >= 1 and first["faces_disabled"] == 0
        assert b"Exif" not in output and b"GPS" not in output
        pixels = np.asarray(Image.open(io.BytesIO(output)))
        assert np.abs(pixels[100:150, 190:230].astype(int) - astronaut_rgb[100:150, 190:230].astype(int)).mean() > 12
        assert "original_sha256" in archive.read("manifest.csv").decode().splitlines()[0]
        trail = [(a["image"], a["action"]) for a in manifest["audit"]]
        assert ("../../etc/passwd.jpg", "image added") in trail and ("../../etc/passwd.jpg", APPROVED) in trail
        assert not any(name in ("rejected.jpg", "stale.jpg", "pending.jpg") for name, _ in trail)
    assert workspace.audit(session)[-1]["action"] == "exported"


def _gps_exif() -> bytes:
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}
    return exif.tobytes()


def test_residual_check_holds_back_a_visible_face_until_confirmed(workspace, session, astronaut_rgb, engine):
    faces = engine.detector.detect(astronaut_rgb)
    image_id = detected(workspace, session, "portrait.jpg", jpeg_bytes(astronaut_rgb),
                        [f.with_enabled(False) for f in faces])
    workspace.decide(image_id, APPROVED, "A. Officer", "face switched off by mistake")
    first = export_approved(workspace, session, "A. Officer", engine.detector)
    assert first.held_back == ["portrait.jpg"] and first.exported == []
    batch = workspace.batch_settings(session)
    assert workspace.image(image_id).residual_open(batch)
    assert workspace.audit(session)[-2]["action"] == "residual faces found"

    workspace.confirm_residual(image_id, "A. Officer")
    assert not workspace.image(image_id).residual_open(batch)
    second = export_approved(workspace, session, "A. Officer", engine.detector)
    assert second.exported == ["portrait.jpg"] and second.held_back == []


def test_residual_check_passes_a_well_covered_face(workspace, session, astronaut_rgb, engine):
    image_id = detected(workspace, session, "portrait.jpg", jpeg_bytes(astronaut_rgb),
                        engine.detector.detect(astronaut_rgb))
    workspace.decide(image_id, APPROVED, "A. Officer")
    result = export_approved(workspace, session, "A. Officer", engine.detector)
    assert result.exported == ["portrait.jpg"] and result.held_back == []


def test_attention_flags_most_serious_first(workspace, session):
    from core.review import attention

    faces = [FACE, Face(300, 300, 40, 40, 0.8, "centerface", enabled=False),
             Face(10, 10, 12, 12, 0.2, "centerface"), Face.drawn(400, 50, 30, 30)]
    image_id = detected(workspace, session, "crowd.jpg", b"1", faces)
    flags = attention(workspace.image(image_id), Settings())
    texts = [f.text for f in flags]
    assert texts == ["1 face(s) switched off", "1 candidate(s) just under the threshold", "faces added by hand"]
    assert [f.weight for f in flags] == sorted((f.weight for f in flags), reverse=True)
    empty = detected(workspace, session, "empty.jpg", b"2", [])
    assert [f.text for f in attention(workspace.image(empty), Settings())] == ["no face found"]


def test_residual_check_runs_once_per_distinct_output(workspace, session, astronaut_rgb, engine):
    class Counted:
        """The real detector, counting how often the export asks it to look."""

        calls = 0

        def detect(self, rgb):
            Counted.calls += 1
            return engine.detector.detect(rgb)

    faces = engine.detector.detect(astronaut_rgb)
    image_id = detected(workspace, session, "portrait.jpg", jpeg_bytes(astronaut_rgb), faces)
    workspace.decide(image_id, APPROVED, "A. Officer")
    assert export_approved(workspace, session, "A. Officer", Counted()).exported == ["portrait.jpg"]
    assert export_approved(workspace, session, "A. Officer", Counted()).exported == ["portrait.jpg"]
    assert Counted.calls == 1, "the second export reuses the result for the same output"
    workspace.set_override(image_id, Settings(mode="solid"), "A. Officer")  # a new output...
    workspace.decide(image_id, APPROVED, "A. Officer")
    export_approved(workspace, session, "A. Officer", Counted())
    assert Counted.calls == 2, "...is checked again"
