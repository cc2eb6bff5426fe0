"""Review sessions in a real SQLite file and file store, and the export zip built from them."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import zipfile
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from core.export import export_approved
from core.faces import Face
from core.pipeline import Settings
from core.records import APPROVED, FAILED, PENDING, REJECTED, StaleState
from core.workspace import Workspace
from tests.conftest import jpeg_bytes


@pytest.fixture
def workspace(tmp_path):
    return Workspace(tmp_path / "ws")


@pytest.fixture
def session(workspace):
    return workspace.create_session("Sports day 2026", "A. Officer")


def detected(workspace, session, name, data, faces, size=(512, 512)):
    image_id, same_as = workspace.add_image(session, name, data, "A. Officer")
    assert same_as is None
    workspace.save_detection(image_id, *size, faces)
    return image_id


FACE = Face(180.0, 80.0, 60.0, 80.0, 0.9, "centerface")


def test_sessions_listed_and_reopened(tmp_path, workspace, session):
    with pytest.raises(ValueError, match="exists already"):
        workspace.create_session("Sports day 2026", "B")
    again = Workspace(tmp_path / "ws")  # a restarted server
    assert [s["name"] for s in again.sessions()] == ["Sports day 2026"]
    assert again.batch_settings(session) == Settings()


def test_store_is_content_addressed_and_duplicates_are_named(workspace, session):
    first, _ = workspace.add_image(session, "a.jpg", b"same bytes", "me")
    second, same_as = workspace.add_image(session, "b.jpg", b"same bytes", "me")
    assert second == first and same_as == "a.jpg", "the same photo is added once, and named"
    assert workspace.image(first).sha256 == hashlib.sha256(b"same bytes").hexdigest()
    assert len(workspace.images(session)) == 1
    assert len(list(workspace.files.objects.rglob("*"))) == 2  # one folder, one file
    assert workspace.audit(session)[-1]["action"] == "duplicate not added"
    other = workspace.create_session("Another", "me")
    assert workspace.add_image(other, "c.jpg", b"same bytes", "me")[1] is None, "another session takes it"


def test_detection_resumes_with_what_is_left(workspace, session):
    done = detected(workspace, session, "a.jpg", b"1", [FACE])
    left, _ = workspace.add_image(session, "b.jpg", b"2", "me")
    refused = workspace.add_refused(session, "c.txt", "not an image", "me")
    assert [r.id for r in workspace.awaiting_detection(session)] == [left]
    assert workspace.image(done).faces == [FACE]
    assert workspace.image(refused).status == FAILED


def test_approval_binds_to_settings_and_faces(workspace, session):
    image_id = detected(workspace, session, "a.jpg", b"1", [FACE])
    workspace.decide(image_id, APPROVED, "A. Officer", "fine")

    def current() -> bool:
        return workspace.image(image_id).approval_current(workspace.batch_settings(session))

    assert current()
    workspace.switch_faces(image_id, [(FACE, False)], "A. Officer")
    assert not current() and workspace.image(image_id).approval_outdated(workspace.batch_settings(session))
    workspace.switch_faces(image_id, [(FACE.with_enabled(False), True)], "A. Officer")
    assert current(), "the approved state is back: so is the approval"
    workspace.set_batch_settings(session, Settings(threshold=0.95), "A. Officer")
    assert not current()
    workspace.set_batch_settings(session, Settings(), "A. Officer")
    assert current()
    workspace.set_override(image_id, Settings(threshold=0.5, mode="solid"), "A. Officer")
    assert not current() and workspace.image(image_id).status == APPROVED, "nobody chose pending"
    actions = [a["action"] for a in workspace.audit(session)]
    assert actions.count("approval out of date") == 3


def test_every_action_is_refused_on_a_state_the_reviewer_did_not_see(workspace, session):
    image_id = detected(workspace, session, "a.jpg", b"1", [FACE])
    batch = workspace.batch_settings(session)
    seen = workspace.image(image_id).current_fingerprint(batch)  # tab A renders the photo
    drawn = Face.drawn(10, 10, 30, 30)
    workspace.add_face(image_id, drawn, "B. Officer", seen=seen)  # tab B draws a face
    for action in (lambda: workspace.decide(image_id, APPROVED, "A. Officer", seen=seen),
                   lambda: workspace.confirm_residual(image_id, "A. Officer", seen=seen),
                   lambda: workspace.switch_faces(image_id, [(FACE, False)], "A. Officer", seen=seen),
                   lambda: workspace.set_override(image_id, Settings(mode="solid"), "A. Officer", seen=seen)):
        with pytest.raises(StaleState, match="changed since"):
            action()
    record = workspace.image(image_id)
    assert record.status == PENDING and drawn in record.faces and record.faces[0].enabled
    with pytest.raises(StaleState, match="changed meanwhile"):
        workspace.set_batch_settings(session, Settings(threshold=0.5), "A. Officer", seen=Settings(padding=0.9))
    # Edits are changes to what is stored, never a list written back from a stale read.
    fresh = workspace.image(image_id).current_fingerprint(batch)
    workspace.switch_faces(image_id, [(FACE, False)], "A. Officer", seen=fresh)
    assert drawn in workspace.image(image_id).faces
    workspace.remove_face(image_id, drawn, "A. Officer")
    assert drawn not in workspace.image(image_id).faces


def test_audit_log_is_append_only(workspace, session):
    db = sqlite3.connect(workspace.db.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET actor = 'someone else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")


def test_failed_image_cannot_be_approved(workspace, session):
    refused = workspace.add_refused(session, "x.pdf", "not an image", "me")
    with pytest.raises(ValueError, match="not been processed"):
        workspace.decide(refused, APPROVED, "me")


def test_a_session_name_is_a_title_not_a_path(workspace, astronaut_rgb, engine):
    """The export's files are named after the whole session name: "St. Mary's trip 5/B" must
    not shrink to what a path would keep of it ("B", or "St" before the dot)."""
    session = workspace.create_session("St. Mary's trip 5/B", "A. Officer")
    image_id = detected(workspace, session, "a.jpg", jpeg_bytes(astronaut_rgb), engine.detector.detect(astronaut_rgb))
    workspace.decide(image_id, APPROVED, "A. Officer")
    result = export_approved(workspace, session, "A. Officer", engine.detector)
    assert result.path.name.startswith("St._Mary_s_trip_5_B-")
    assert result.audit_path.name.startswith("St._Mary_s_trip_5_B-")
    with zipfile.ZipFile(result.path) as archive:
        assert "images/St._Mary_s_trip_5_B-0001.jpg" in archive.namelist()


def test_export_holds_only_current_approvals(workspace, session, astronaut_rgb, engine):
    data = jpeg_bytes(astronaut_rgb, exif=_gps_exif())
    faces = engine.detector.detect(astronaut_rgb)
    approved = detected(workspace, session, "../../etc/jane_doe.jpg", data, faces)
    twin = detected(workspace, session, "sub/passwd.jpg", jpeg_bytes(astronaut_rgb[:, ::-1].copy()), faces)
    rejected = detected(workspace, session, "rejected.jpg", jpeg_bytes(astronaut_rgb[::-1].copy()), faces)
    stale = detected(workspace, session, "stale.jpg", jpeg_bytes(255 - astronaut_rgb), faces)
    pending = detected(workspace, session, "pending.jpg", jpeg_bytes(astronaut_rgb // 2), faces)
    failed = workspace.add_refused(session, "broken.pdf", "not an image", "A. Officer")
    for image_id in (approved, twin, stale):
        workspace.decide(image_id, APPROVED, "A. Officer", "ok")
    workspace.decide(rejected, REJECTED, "A. Officer", "child in frame")
    workspace.switch_faces(stale, [(f, False) for f in faces], "A. Officer")
    assert workspace.image(pending).status == PENDING

    result = export_approved(workspace, session, "A. Officer", engine.detector)
    assert not list(workspace.files.exports.glob("*.partial"))
    with zipfile.ZipFile(result.path) as archive:
        names = sorted(archive.namelist())
        assert names == ["images/Sports_day_2026-0001.jpg", "images/Sports_day_2026-0002.jpg",
                         "manifest.csv", "manifest.json"]
        # The publication zip names nobody: no original name, original hash or comment.
        everything = b"".join(archive.read(n) for n in names)
        for secret in (b"jane_doe", b"passwd", b"child in frame", hashlib.sha256(data).hexdigest().encode()):
            assert secret not in everything
        manifest = json.loads(archive.read("manifest.json"))
        first = manifest["images"][0]
        output = archive.read(first["output_name"])
        assert hashlib.sha256(output).hexdigest() == first["output_sha256"]
        assert first["faces_found"] >= 1 and first["faces_disabled"] == 0
        assert b"Exif" not in output and b"GPS" not in output
        pixels = np.asarray(Image.open(io.BytesIO(output)))
        assert np.abs(pixels[100:150, 190:230].astype(int) - astronaut_rgb[100:150, 190:230].astype(int)).mean() > 12
    # The audit package: every photo of the session, with what became of it and why.
    with zipfile.ZipFile(result.audit_path) as archive:
        photos = {p["original_name"]: p for p in json.loads(archive.read("manifest.json"))["photos"]}
        assert {n: p["outcome"] for n, p in photos.items()} == {
            "../../etc/jane_doe.jpg": "exported", "sub/passwd.jpg": "exported", "rejected.jpg": "rejected",
            "stale.jpg": "pending", "pending.jpg": "pending", "broken.pdf": "failed"}
        assert photos["rejected.jpg"]["reason"] == "child in frame"
        assert "out of date" in photos["stale.jpg"]["reason"] and photos["broken.pdf"]["reason"] == "not an image"
        assert photos["../../etc/jane_doe.jpg"]["output_name"] == "images/Sports_day_2026-0001.jpg"
        assert photos["../../etc/jane_doe.jpg"]["original_sha256"] == hashlib.sha256(data).hexdigest()
        assert photos["../../etc/jane_doe.jpg"]["decided_at"].endswith(
            datetime.now().astimezone().strftime("%z")[:3] + ":" + datetime.now().astimezone().strftime("%z")[3:])
        report = archive.read("report.html").decode()
        assert "data:image/jpeg;base64," in report and "child in frame" in report
        models = json.loads(archive.read("manifest.json"))["versions"]["models_sha256"]
        assert f"centerface.onnx: {models['centerface.onnx']}" in report, "each model named with its hash, as text"
        # The record names the publication zip by its bytes, not only by its name.
        published = hashlib.sha256(result.path.read_bytes()).hexdigest()
        assert json.loads(archive.read("manifest.json"))["publication_zip_sha256"] == published
        assert published in report
        trail = json.loads(archive.read("manifest.json"))["audit"]
        assert ("../../etc/jane_doe.jpg", APPROVED) in [(a["photo"], a["action"]) for a in trail]
    assert workspace.audit(session)[-1]["action"] == "exported"
    assert failed


def test_a_missing_or_damaged_original_is_that_photos_outcome_not_the_exports(workspace, session, astronaut_rgb,
                                                                              engine):
    """An original gone from the store (deleted by hand, a disk error) or changed in it holds
    back that photo with its reason; the zip is still built with the others."""
    faces = engine.detector.detect(astronaut_rgb)
    ids = {name: detected(workspace, session, name, jpeg_bytes(pixels), faces)
           for name, pixels in (("good.jpg", astronaut_rgb), ("gone.jpg", astronaut_rgb[:, ::-1].copy()),
                                ("changed.jpg", astronaut_rgb[::-1].copy()))}
    for image_id in ids.values():
        workspace.decide(image_id, APPROVED, "A. Officer")
    workspace.files.object_path(workspace.image(ids["gone.jpg"]).sha256).unlink()
    workspace.files.object_path(workspace.image(ids["changed.jpg"]).sha256).write_bytes(jpeg_bytes(astronaut_rgb))

    result = export_approved(workspace, session, "A. Officer", engine.detector)
    assert result.exported == ["good.jpg"]
    with zipfile.ZipFile(result.audit_path) as archive:
        photos = {p["original_name"]: p for p in json.loads(archive.read("manifest.json"))["photos"]}
    assert {n: p["outcome"] for n, p in photos.items()} == {
        "good.jpg": "exported", "gone.jpg": "held back", "changed.jpg": "held back"}
    assert photos["gone.jpg"]["reason"].startswith("the stored original cannot be read (No such file")
    assert photos["changed.jpg"]["reason"] == "the stored original is damaged (SHA-256 differs)"


def test_drawn_then_switched_off_is_counted_as_switched_off(workspace, session):
    from core.export import face_counts

    drawn = Face.drawn(10, 10, 30, 30)
    image_id = detected(workspace, session, "a.jpg", b"1", [FACE, drawn])
    workspace.switch_faces(image_id, [(drawn, False)], "A. Officer")
    assert face_counts(workspace.image(image_id), 0.24) == {
        "faces_found": 1, "faces_disabled": 1, "faces_added_by_hand": 1}


def test_csv_cells_never_become_formulas():
    from core.report import csv_text

    rows = [{"original_name": '=HYPERLINK("http://127.0.0.2/","x")', "comment": "+1", "reason": "@SUM(A1)"},
            {"original_name": "-2", "comment": "plain", "reason": "\tTAB"}]
    parsed = list(csv.reader(io.StringIO(csv_text(rows, ["original_name", "comment", "reason"]))))
    cells = [cell for row in parsed[1:] for cell in row]
    assert not any(cell[:1] in "=+-@\t\r" for cell in cells if cell)
    assert parsed[1][0] == "'" + rows[0]["original_name"], "the text itself is kept"


def test_zips_belong_to_their_session_and_go_out_of_date(workspace, session, astronaut_rgb, engine):
    image_id = detected(workspace, session, "a.jpg", jpeg_bytes(astronaut_rgb), engine.detector.detect(astronaut_rgb))
    workspace.decide(image_id, APPROVED, "A. Officer")
    built = export_approved(workspace, session, "A. Officer", engine.detector)
    assert workspace.exports.of_session(session)[0]["current"] and workspace.exports.get(built.export_id)["current"]
    other = workspace.create_session("Another reviewer's", "B. Officer")
    assert workspace.exports.of_session(other) == []
    workspace.decide(image_id, REJECTED, "A. Officer", "consent withdrawn")
    listed = workspace.exports.of_session(session)
    assert len(listed) == 1 and not listed[0]["current"] and listed[0]["status"] == "complete"
    assert not workspace.exports.get(built.export_id)["current"]


def test_purge_removes_originals_previews_and_zips(workspace, session, astronaut_rgb, engine):
    from core.review import preview_bases

    data = jpeg_bytes(astronaut_rgb)
    image_id = detected(workspace, session, "a.jpg", data, engine.detector.detect(astronaut_rgb))
    workspace.files.save_previews(workspace.image(image_id).sha256, preview_bases(astronaut_rgb))
    workspace.decide(image_id, APPROVED, "A. Officer")
    result = export_approved(workspace, session, "A. Officer", engine.detector)
    digest = hashlib.sha256(data).hexdigest()
    assert workspace.files.object_path(digest).exists() and list(workspace.files.previews.glob(f"{digest}-*"))
    workspace.purge_session(session, "A. Officer")
    assert not workspace.files.object_path(digest).exists()
    assert not list(workspace.files.previews.glob(f"{digest}-*"))
    assert not result.path.exists() and not result.audit_path.exists()
    assert session not in [s["id"] for s in workspace.sessions()]
    log = workspace.audit(session)
    assert log[-1]["action"] == "session purged"
    assert any(a["action"] == "image removed" and a["detail"]["sha256"] == digest for a in log)


class _PurgedMidway:
    """The real engine and detector, with the session purged (from another tab, say) at the
    moment the first photo or frame is looked at: a purge arriving while work is under way."""

    def __init__(self, real, workspace, session):
        self.real, self.workspace, self.session, self.purged = real, workspace, session, False

    def _purge_once(self) -> None:
        if not self.purged:
            self.purged = True
            self.workspace.purge_session(self.session, "A. Officer")

    def __getattr__(self, name):
        return getattr(self.real, name)

    def detect(self, pixels):
        self._purge_once()
        return self.real.detect(pixels)

    def detect_frame(self, rgb):
        self._purge_once()
        return self.real.detect_frame(rgb)


def test_a_purge_during_detection_leaves_no_preview_behind(workspace, session, astronaut_rgb,
                                                           astronaut_face_box, engine, tmp_path):
    """Detection writes a photo's previews, and a clip's tracks with its faces' thumbnails,
    after it has read the original: a purge meanwhile must still leave nothing of them."""
    from core.intake import add_files, intake_upload
    from core.review import detect_pending
    from tests.clips import moving_face_frames, write_clip

    clip = tmp_path / "hall.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 6)])
    for name, data in (("hall.mp4", clip.read_bytes()), ("a.jpg", jpeg_bytes(astronaut_rgb))):
        other = workspace.create_session(f"Purged while {name} is detected", "A. Officer")
        add_files(workspace, other, intake_upload(name, data), "A. Officer")
        detect_pending(workspace, _PurgedMidway(engine, workspace, other), other)
        assert not [p for p in workspace.files.objects.rglob("*") if p.is_file()], name
        assert list(workspace.files.previews.iterdir()) == [], name
        assert all(a["action"] != "faces detected" for a in workspace.audit(other)), "nothing saved after it"


def test_a_purge_during_an_export_leaves_no_zip_behind(workspace, session, astronaut_rgb, engine):
    """The export reads the originals and writes two zips: a purge meanwhile (the residual check
    of the first photo is under way) must leave neither on disk, nor the export listed."""
    for name, pixels in (("a.jpg", astronaut_rgb), ("b.jpg", astronaut_rgb[:, ::-1].copy())):
        workspace.decide(detected(workspace, session, name, jpeg_bytes(pixels), engine.detector.detect(pixels)),
                         APPROVED, "A. Officer")
    export_approved(workspace, session, "A. Officer", _PurgedMidway(engine.detector, workspace, session))
    assert list(workspace.files.exports.iterdir()) == []
    assert workspace.exports.of_session(session) == []
    assert workspace.audit(session)[-1]["action"] == "export deleted: the session was purged while it was built"


def test_a_photo_removed_during_an_export_is_not_published(workspace, session, astronaut_rgb, engine):
    """The same photo is in another session too, so its original stays when it is removed from
    this one; removed while the zip is built (at its residual check), it must not be published."""
    data = jpeg_bytes(astronaut_rgb)
    image_id = detected(workspace, session, "a.jpg", data, engine.detector.detect(astronaut_rgb))
    workspace.add_image(workspace.create_session("Another", "B. Officer"), "same.jpg", data, "B. Officer")
    workspace.decide(image_id, APPROVED, "A. Officer")

    class RemovedMidway(_PurgedMidway):
        def _purge_once(self) -> None:
            if not self.purged:
                self.purged = True
                self.workspace.remove_image(image_id, "A. Officer")

    result = export_approved(workspace, session, "A. Officer", RemovedMidway(engine.detector, workspace, session))
    assert result.exported == []
    with zipfile.ZipFile(result.path) as archive:
        assert not [n for n in archive.namelist() if n.startswith("images/")]
    with zipfile.ZipFile(result.audit_path) as archive:
        photo, = json.loads(archive.read("manifest.json"))["photos"]
    assert (photo["outcome"], photo["reason"]) == ("rejected", "removed from the session during the export")


def test_a_purged_sessions_name_can_be_used_again(workspace, session):
    """A purged session cannot be opened: its name must not stop a new session ("exists
    already: open it instead" sent the reviewer to a session they could not open)."""
    workspace.purge_session(session, "A. Officer")
    again = workspace.create_session("Sports day 2026", "A. Officer")
    assert [(s["id"], s["name"]) for s in workspace.sessions()] == [(again, "Sports day 2026")]
    assert workspace.audit(session)[0]["detail"]["name"] == "Sports day 2026", "the record keeps the name"
    with pytest.raises(ValueError, match="exists already"):
        workspace.create_session("Sports day 2026", "B. Officer")


def test_a_copy_of_an_original_cut_short_by_a_crash_is_removed_on_opening(tmp_path, astronaut_rgb):
    """A crash while a file is copied into the store leaves a partial copy that belongs to no
    photo: no removal or purge would ever find it, so opening the workspace deletes it."""
    workspace = Workspace(tmp_path / "ws")
    workspace.add_image(workspace.create_session("s", "A"), "a.jpg", jpeg_bytes(astronaut_rgb), "A")
    cut = [workspace.files.objects / ".partial-x1", workspace.files.objects / "ab" / ".partial-x2"]
    for path in cut:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(jpeg_bytes(astronaut_rgb)[:1000])
    Workspace(tmp_path / "ws")
    assert not any(path.exists() for path in cut)
    assert len([p for p in workspace.files.objects.rglob("*") if p.is_file()]) == 1, "the stored original stays"


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


def test_faces_are_stored_and_fingerprinted_as_earlier_versions_did():
    """`Face.to_dict` is written out for speed; it must give what `asdict` gave (less an unset
    `forced`), or every stored approval would turn out of date."""
    from dataclasses import asdict

    for face in (Face(1.5, 2.0, 3.25, 4.0, 0.51, "centerface"), Face(7, 8, 9, 10, 1.0, "manual", enabled=False),
                 Face(1.0, 2.0, 3.0, 4.0, 0.12, "blazeface", forced=True)):
        earlier = asdict(face)
        if not face.forced:
            del earlier["forced"]
        assert face.to_dict() == earlier


def test_a_full_or_read_only_disk_is_told_apart_from_a_files_own_failure(tmp_path):
    """Detection stops on the disk's failures (the file waits) and records any other as the
    file's: told apart on the errors the system and SQLite really raise."""
    from core.store import out_of_room

    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x INTEGER UNIQUE)")
        db.execute("INSERT INTO t VALUES (1)")
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.Error) as refused:
        read_only.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(sqlite3.Error) as duplicate, sqlite3.connect(path) as db:
        db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(OSError) as missing:
        open(tmp_path / "gone.jpg", "rb")
    full = None
    try:
        with open("/dev/full", "wb") as handle:  # Linux's device that is always full
            handle.write(b"x")
            handle.flush()
    except OSError as exc:
        full = exc
    assert out_of_room(refused.value)
    assert not out_of_room(duplicate.value) and not out_of_room(missing.value)
    assert not out_of_room(ValueError("cannot identify image file"))
    assert full is not None and out_of_room(full)
