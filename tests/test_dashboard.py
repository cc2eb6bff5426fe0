"""Each page in Streamlit's AppTest, over a real workspace and the real engine."""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.faces import MANUAL, Face
from core.intake import add_files, intake_folder
from core.pipeline import Settings
from core.records import APPROVED, StaleState
from core.workspace import Workspace
from dashboard.faces import face_rows
from dashboard.text import plain
from dashboard.worker import detecting, detection_worker
from tests.conftest import ROOT, jpeg_bytes

APP = str(ROOT / "navigation.py")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("FACE_PRIVACY_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("FACE_PRIVACY_FOLDER_ROOTS", str(tmp_path))
    return tmp_path


@pytest.fixture
def pictures(monkeypatch):
    """Reads back, as pixels, a picture a page showed (an image element of AppTest), and with
    `.raw(url)` the bytes of any media a page served: every one is kept by its media id."""
    import io

    from PIL import Image
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    shown = {}
    keep = MemoryMediaFileStorage.load_and_get_id

    def kept(self, data, mimetype, kind, filename=None):
        shown[media := keep(self, data, mimetype, kind, filename)] = data
        return media

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", kept)

    def raw(url: str) -> bytes:
        return shown[url.rsplit("/", 1)[1].split(".")[0]]

    def pixels(image) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(raw(image.url))).convert("RGB"))

    pixels.raw = raw
    return pixels


def started(name="Sports day") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.text_input[0].input(name)
    at.text_input[1].input("A. Officer")
    at.button[0].click().run()
    assert not at.exception
    return at


def add_and_detect(at: AppTest, files) -> AppTest:
    """Upload, press the button, and wait for the background detection to finish."""
    at.file_uploader[0].set_value(files)
    at.run()
    next(b for b in at.button if b.label == "Add and detect faces").click().run()
    for _ in range(240):
        if not detecting():
            break
        time.sleep(0.25)
    at.run()  # the progress fragment sees detection finished and asks for a rerun
    at.run()
    assert not at.exception
    return at


def built(at: AppTest, ws, session_id: int) -> dict:
    """Press "Build the zip" on the Export page and wait for the background export: its record."""
    at.switch_page("app_pages/export.py").run()
    next(b for b in at.button if b.label == "Build the zip").click().run()
    assert not at.exception
    for _ in range(480):
        if ws.exports.of_session(session_id)[0]["status"] != "building":
            break
        time.sleep(0.25)
    return ws.exports.of_session(session_id)[0]


def test_start_creates_session_adds_photos_and_lists_bad_files(root, astronaut_rgb):
    at = started()
    assert at.session_state["reviewer"] == "A. Officer"
    # A new session says what to do, not "0 photos ready for review, 0 could not be read".
    assert not at.success and [i.value for i in at.info] == [
        "Add photos and videos above: they are detected as they come, and listed here."]
    next(b for b in at.button if b.label == "Add and detect faces").click().run()  # nothing chosen yet
    # Nor is a file over the upload limit (the browser refuses it, and the server never hears of
    # it): the way to add it is said where it is chosen and when Add finds nothing.
    [warning] = [w.value for w in at.warning]
    assert warning.startswith("Choose photos or videos to upload, or type a folder, first.")
    assert "A file over 1 GB is not uploaded" in warning and "type the folder it is in" in warning
    assert "a file over 1 GB: type its folder below" in at.get("file_uploader")[0].label
    assert "a batch of several GB is better added by its folder" in at.get("file_uploader")[0].help
    add_and_detect(at, [("portrait.jpg", jpeg_bytes(astronaut_rgb), "image/jpeg"),
                        ("broken.jpg", b"not a photo at all", "image/jpeg")])
    assert "1 photo ready for review, 1 could not be read" in at.success[0].value
    assert plain("broken.jpg") in at.error[0].value and "not a supported image" in at.error[0].value
    ws = Workspace(root / "ws")
    records = ws.images(at.session_state["session_id"])
    assert [r.name for r in records if r.detected] == ["portrait.jpg"]
    assert any(a["action"] == "file refused" for a in ws.audit(at.session_state["session_id"]))


def test_sessions_can_be_reopened(root):
    started("First batch")
    at = AppTest.from_file(APP, default_timeout=60).run()  # a new browser tab
    assert "First batch" in str(at.dataframe[0].value)
    at.text_input(key="reopen-reviewer").input("B. Officer")
    next(b for b in at.button if b.label == "Open session").click().run()
    assert at.session_state["reviewer"] == "B. Officer"
    assert "Session: First batch" in at.subheader[0].value


@pytest.fixture
def reviewed(root, astronaut_rgb):
    at = started()
    add_and_detect(at, [("a.jpg", jpeg_bytes(astronaut_rgb), "image/jpeg"),
                        ("b.jpg", jpeg_bytes(astronaut_rgb[:, ::-1].copy()), "image/jpeg")])
    return at, Workspace(root / "ws")


def test_overview_shows_thumbnails_status_and_faces(reviewed):
    at, ws = reviewed
    at.switch_page("app_pages/overview.py").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert plain("a.jpg") in text and plain("b.jpg") in text and "pending" in text and "face(s)" in text
    assert len([b for b in at.button if b.label == "Review"]) == 2
    at.toggle[0].set_value(True).run()  # needs attention only: both have a face, nothing flagged
    assert not any(b.label == "Review" for b in at.button)


def test_risk_order_puts_more_near_misses_first_among_the_same_flags(reviewed):
    """Two photos flagged alike (candidates just under the threshold): the one with three comes
    before the one with one, not by the order they were added."""
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    batch = ws.batch_settings(session_id)
    first, second = ws.images(session_id)
    for record, count in ((first, 1), (second, 3)):
        near = [Face(400.0 + 40 * n, 300.0, 30.0, 30.0, batch.threshold - 0.05, "centerface") for n in range(count)]
        ws.save_detection(record.id, record.width, record.height, record.faces + near)
    at.switch_page("app_pages/overview.py").run()
    assert not at.exception
    titles = [m.value for m in at.markdown if m.value.startswith("**") and "face(s)" in m.value]
    assert [t.split("**")[1] for t in titles] == [plain("b.jpg"), plain("a.jpg")]
    assert plain("3 candidate(s) just under the threshold") in at.caption[1].value


def test_bulk_approval_asks_again_when_the_photos_it_would_approve_change(reviewed, astronaut_rgb, engine):
    """The reviewer ticked "Yes, approve these 2 photo(s)"; detection then found a third photo
    that needs no attention. The tick was consent for two: it is asked again for three, not
    carried over to a button that approves three at a click."""
    from core.intake import intake_upload
    from core.review import detect_pending

    at, ws = reviewed
    session_id = at.session_state["session_id"]
    at.switch_page("app_pages/overview.py").run()
    next(c for c in at.checkbox if c.label == "Yes, approve these 2 photo(s)").check().run()
    assert any(b.label == "Approve 2 photo(s)" for b in at.button)
    add_files(ws, session_id, intake_upload("c.jpg", jpeg_bytes(astronaut_rgb[::-1].copy())), "A. Officer")
    detect_pending(ws, engine, session_id)
    at.run()
    assert not at.exception
    [consent] = [c for c in at.checkbox if c.label.startswith("Yes, approve these")]
    assert consent.label == "Yes, approve these 3 photo(s)" and not consent.value
    assert not any(b.label.startswith("Approve 3") for b in at.button)


def edit_table(at: AppTest, key: str, edited_rows: dict) -> AppTest:
    """Run the page with an edit of the data editor `key` sent as the browser sends it, beside
    whatever else was set or clicked (AppTest has no way to edit a data editor: its widget state
    is added to the states AppTest sends, so the editor's on_change runs as in a browser)."""
    [editor] = [e for e in at.data_editor if e.key == key]
    states = at._tree.get_widget_states()
    state = states.widgets.add()
    state.id = editor.proto.id
    state.string_value = json.dumps({"edited_rows": {str(row): v for row, v in edited_rows.items()},
                                     "added_rows": [], "deleted_rows": []})
    return at._run(states)


def test_review_untick_face_then_approve(reviewed):
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first = ws.images(session_id)[0]
    at.switch_page("app_pages/review.py").run()
    assert not at.exception
    batch = ws.batch_settings(session_id)
    _rows, positions = face_rows(first.faces, batch.threshold)
    edit_table(at, f"faces-{first.id}-{first.current_fingerprint(batch)}", {0: {"covered": False}})
    changed = ws.image(first.id)
    assert not changed.faces[positions[0]].enabled
    assert ws.audit(session_id)[-1]["action"] == "faces changed"
    next(b for b in at.button if b.label == "Approve").click().run()
    assert ws.image(first.id).status == APPROVED
    assert at.session_state["image_id"] != first.id, "the next photo opens after a decision"


def test_a_face_switched_just_before_approve_is_kept_and_the_approval_not_exported(reviewed):
    """A tick in the face table and a press of Approve reach the server in one run when the
    reviewer is quick (seen in Chromium: untick, then Approve at once; the audit log has the
    approval, then the faces changed). The page read the table's edit in its body, after the
    approval had moved it to the next photo: the edit was lost (in Chromium the photo picker,
    sending its old value, happened to bring the page back first). Both are actions: the face is
    switched, the approval, made on the state before it, is not the one exported, and the page
    stays on the photo to say so."""
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first = ws.images(session_id)[0]
    at.switch_page("app_pages/review.py").run()
    batch = ws.batch_settings(session_id)
    _rows, positions = face_rows(first.faces, batch.threshold)
    next(b for b in at.button if b.label == "Approve").click()
    edit_table(at, f"faces-{first.id}-{first.current_fingerprint(batch)}", {0: {"covered": False}})
    assert not at.exception
    now = ws.image(first.id)
    assert not now.faces[positions[0]].enabled, "the face unticked just before Approve is uncovered"
    assert not now.approval_current(batch), "no approval of a state other than the one now shown is exported"
    assert at.session_state["image_id"] == first.id, "the photo edited is shown again, not the next one"
    assert any(c.value.startswith("Approved earlier, but the settings or faces changed since") for c in at.caption)


def test_the_photo_picker_opens_the_photo_chosen_and_follows_its_status(reviewed):
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first, second = ws.images(session_id)
    at.switch_page("app_pages/review.py").run()
    picker = at.selectbox(key=f"pick-{first.id}")
    assert picker.options == ["a.jpg (pending)", "b.jpg (pending)"]
    picker.select((second.id, second.name, "pending")).run()
    assert not at.exception and at.session_state["image_id"] == second.id
    assert at.markdown[0].value.startswith(f"### {plain('b.jpg')} — pending")
    # Decided in another tab: the picker, on the same photo, says so after the next run.
    ws.decide(second.id, APPROVED, "B. Other", "", seen=second.current_fingerprint(ws.batch_settings(session_id)))
    at.run()
    picker = at.selectbox(key=f"pick-{second.id}")
    assert picker.options == ["a.jpg (pending)", "b.jpg (approved)"] and picker.value[2] == "approved"
    next(b for b in at.button if b.label == "◀ Previous").click().run()
    assert at.session_state["image_id"] == first.id
    assert at.selectbox(key=f"pick-{first.id}").value[0] == first.id


def test_a_table_edit_on_a_photo_changed_meanwhile_is_refused_and_said(reviewed):
    """Another reviewer changed the photo's faces after this page showed its table: the edit
    made on the table as shown is refused (its rows were of the earlier state), and said."""
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first = ws.images(session_id)[0]
    at.switch_page("app_pages/review.py").run()
    batch = ws.batch_settings(session_id)
    shown = first.current_fingerprint(batch)
    ws.add_face(first.id, Face(10.0, 10.0, 40.0, 40.0, 1.0, MANUAL), "B. Other", seen=shown)
    edit_table(at, f"faces-{first.id}-{shown}", {0: {"covered": False}})
    assert not at.exception
    assert all(f.enabled for f in ws.image(first.id).faces), "nothing switched on a table of an earlier state"
    assert any("changed since this page showed it" in w.value for w in at.warning)


@pytest.mark.parametrize("harm", ["deleted", "changed"])
def test_an_original_gone_from_the_store_is_said_where_it_is_needed(reviewed, astronaut_rgb, harm):
    """Zooming into, or walking the faces of, a photo whose stored original was deleted or
    changed since it was added names the photo and the problem, instead of an error page."""
    at, ws = reviewed
    record = ws.images(at.session_state["session_id"])[1]
    stored = ws.files.object_path(record.sha256)
    stored.unlink() if harm == "deleted" else stored.write_bytes(jpeg_bytes(astronaut_rgb))
    at.switch_page("app_pages/review.py").run()
    at.session_state["image_id"] = record.id
    at.run()
    for label in ("Zoom: inspect, select and draw at full resolution", "Walk the faces at full resolution"):
        next(t for t in at.toggle if t.label == label).set_value(True).run()
        assert not at.exception
        problem = ("cannot be read (No such file or directory)" if harm == "deleted"
                   else "is damaged (SHA-256 differs)")
        assert [e.value for e in at.error] == [
            f"{plain('b.jpg')}: {plain('the stored original ' + problem)}. It cannot be shown at full resolution, and "
            "the export will hold it back: remove it from the session and add the file again."]
        next(t for t in at.toggle if t.label == label).set_value(False).run()


def test_a_video_gone_from_the_store_is_said_on_its_page(root, astronaut_rgb, astronaut_face_box, tmp_path):
    from tests.clips import moving_face_frames, write_clip

    clip = tmp_path / "corridor.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 12)])
    at = add_and_detect(started(), [("corridor.mp4", clip.read_bytes(), "video/mp4")])
    ws = Workspace(root / "ws")
    record = ws.images(at.session_state["session_id"])[0]
    ws.files.object_path(record.sha256).unlink()
    at.switch_page("app_pages/review.py").run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        f"{plain('corridor.mp4')}: {plain('the stored original cannot be read (No such file or directory)')}. "
        "It cannot be shown at full resolution, and the export will hold it back: remove it from the session and "
        "add the file again."]
    assert plain("corridor.mp4: 12 frames") in " ".join(c.value for c in at.caption), "named, and still listed"


def test_a_one_frame_clip_can_be_reviewed(root, astronaut_rgb, astronaut_face_box, tmp_path):
    """A clip of one frame (a still saved as a video, or all that is left of a cut one): its page
    stopped with Streamlit's "min_value and max_value must not be equal" (a frame slider of 0..0)."""
    from tests.clips import moving_face_frames, write_clip

    clip = tmp_path / "still.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 1)], subtitle="A. Smith")
    at = add_and_detect(started(), [("still.mp4", clip.read_bytes(), "video/mp4")])
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, at.exception
    assert plain("still.mp4: 1 frames") in " ".join(c.value for c in at.caption)
    # what will not leave with it is said before the reviewer approves it, not only in the record
    assert plain("Not written to the export: 1 subtitle track (eng).") in " ".join(c.value for c in at.caption)
    assert not [s for s in at.slider if s.label == "Frame"], "nothing to move between"

    def captions():
        return [i.caption for element in at.get("image") for i in element.proto.imgs]
    assert captions() == ["frame 1 of 1 at 0.00 s, covered as exported (1 cover(s) in this frame)"]
    # "Show the original beside it" shows the frame's original, as it does a photo's (it did nothing).
    next(t for t in at.toggle if t.label == "Show the original beside it").set_value(True).run()
    assert captions()[1:] == ["original (never exported)"]
    # A clip's own settings may leave its sound out; its page then says so.
    next(t for t in at.toggle if t.label == "Use its own settings").set_value(True).run()
    next(c for c in at.checkbox if c.label == "Keep the sound of videos").uncheck().run()
    next(b for b in at.button if b.label == "Apply to this clip").click().run()
    assert plain("left out of the export, as the settings ask") in " ".join(c.value for c in at.caption)
    assert not at.exception


def test_a_clips_own_settings_export_only_the_part_asked_for(root, astronaut_rgb, astronaut_face_box, tmp_path,
                                                             pictures, monkeypatch):
    """A request for a minute of a long recording: the reviewer sets the part on the clip's own
    settings; the page says which frames leave and which do not, the approval binds to the part,
    and the zip holds only those frames, its record saying which part it is. A CCTV recorder's
    export is stamped with its clock, which a request names: each frame and the record say it."""
    import csv
    import html
    import io
    import json

    from dashboard.state import workspace
    from tests.clips import moving_face_frames, read_frames, write_dav

    clip = tmp_path / "corridor.dav"
    write_dav(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 50)])  # 2 s from 09:30:00
    at = add_and_detect(started(), [("corridor.dav", clip.read_bytes(), "application/octet-stream")])
    at.switch_page("app_pages/review.py").run()
    ws, session_id = workspace(), at.session_state["session_id"]
    (record,) = ws.images(session_id)
    next(t for t in at.toggle if t.label == "Use its own settings").set_value(True).run()
    at.text_input(key=f"image-{record.id}-start").input("1").run()
    next(b for b in at.button if b.label == "Apply to this clip").click().run()
    assert (ws.image(record.id).override.start, ws.image(record.id).override.end) == (1.0, None)
    captions = " ".join(c.value for c in at.caption)
    assert plain("Only 1.00 s to 2.00 s (frames 26 to 50) will be exported, as its settings ask.") in captions

    def frame_caption():
        return [i.caption for element in at.get("image") for i in element.proto.imgs][0]
    assert frame_caption().endswith("not exported: outside the part its settings ask for")
    at.slider(key=f"frame-{record.id}").set_value(30).run()
    assert frame_caption() == ("frame 30 of 50 at 1.16 s (the recording's clock: 2026-03-14 09:30:01.16), "
                               "covered as exported (1 cover(s) in this frame)")
    # A "to" before the "from" is refused on the page, and nothing is written.
    at.text_input(key=f"image-{record.id}-end").input("0:00.5").run()
    assert plain("must start before the clip ends (2.00 s) and end after it starts") in at.error[0].value
    at.text_input(key=f"image-{record.id}-end").input("**2**").run()  # what was typed is shown as typed
    assert plain("'**2**' is not a time (seconds, MM:SS or HH:MM:SS)") in at.error[0].value
    assert not [b for b in at.button if b.label == "Apply to this clip"]

    next(b for b in at.button if b.label == "Approve").click().run()
    assert ws.image(record.id).status == APPROVED
    at.switch_page("app_pages/export.py").run()
    assert at.markdown[0].value.startswith("**1 video**, approved, will be exported"), at.markdown[0].value
    export = built(at, ws, session_id)
    assert export["counts"]["exported"] == 1, export
    with zipfile.ZipFile(ws.files.exports / export["file"]) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".mp4")]
        (tmp_path / "out.mp4").write_bytes(archive.read(name))
        # its record numbers the covered frames as the file it describes does (it gave the source's: 0 to 49)
        (covered,) = json.loads(archive.read("manifest.json"))["images"][0]["regions"]
    assert (covered["first_frame"], covered["last_frame"]) == (0, 24)
    frames, times = read_frames(tmp_path / "out.mp4")
    assert len(frames) == 25 and times[0] == 0
    # The Export page plays the video from the zip itself, what a recipient will see.
    at.run()
    next(t for t in at.toggle if t.label.startswith("Look at what leaves (1 file(s))")).set_value(True).run()
    assert at.selectbox(key=f"watched-{export['id']}").format_func(name) == f"{name} (from corridor.dav)"
    (player,) = at.get("video")
    assert pictures.raw(player.proto.url) == (tmp_path / "out.mp4").read_bytes()  # the zip's own file
    monkeypatch.setattr("dashboard.video.PLAYABLE_BYTES", 1000)  # a file too large to hold: said, by its name
    at.run()
    assert at.info[0].value.startswith(plain(f"{name} is over 0 MB: too large to show here."))
    said = ("1.00 s to 2.00 s of 2.00 s (frames 26 to 50 of 50; the recording's clock 2026-03-14 09:30:01.00 to "
            "2026-03-14 09:30:01.96)")
    with zipfile.ZipFile(ws.files.exports / export["audit_file"]) as archive:
        assert json.loads(archive.read("manifest.json"))["photos"][0]["part"] == said
        assert next(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))["part"] == said
        assert f"Only a part exported: {html.escape(said)}." in archive.read("report.html").decode()
    # The part decides what leaves: a changed part puts the approval out of date.
    at.switch_page("app_pages/review.py").run()
    at.text_input(key=f"image-{record.id}-start").input("0.5").run()
    next(b for b in at.button if b.label == "Apply to this clip").click().run()
    fresh = ws.image(record.id)
    assert fresh.status == APPROVED and not fresh.approval_current(fresh.override)
    # A batch run's part named by the recorder's clock (opened for review) is read by that clock, and
    # kept as it was asked: its fields are not offered as times from the start.
    ws.set_override(record.id, Settings(start=9 * 3600 + 30 * 60 + 1, by_clock=True), "A. Officer")
    at.run()
    captions = " ".join(c.value for c in at.caption)
    assert plain("Only 1.00 s to 2.00 s (frames 26 to 50) will be exported") in captions
    assert plain("Exported: from 9:30:01.00 to its end by the recorder's clock, as the batch run asked.") in captions
    assert not [t for t in at.text_input if t.key == f"image-{record.id}-start"]
    assert not at.exception


def test_a_clips_sound_is_heard_as_it_will_leave_and_silenced_where_asked(root, astronaut_rgb, astronaut_face_box,
                                                                         tmp_path, pictures):
    """A name said in an interview: the reviewer listens to the clip's sound on its page, gives
    the part in its own settings ("Silence the sound"), hears it silent there, and the zip's
    video is silent there, its record saying so; the approval binds to the parts silenced, and
    a part written wrongly is refused on the page."""
    import csv
    import io

    from core import sound
    from dashboard.state import workspace
    from tests.clips import moving_face_frames, write_clip

    clip = tmp_path / "interview.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 75)])  # 3 s, a tone
    at = add_and_detect(started(), [("interview.mp4", clip.read_bytes(), "video/mp4")])
    at.switch_page("app_pages/review.py").run()
    ws, session_id = workspace(), at.session_state["session_id"]
    (record,) = ws.images(session_id)

    def heard() -> Path:
        (player,) = at.get("audio")
        (tmp_path / "heard.m4a").write_bytes(pictures.raw(player.proto.url))
        return tmp_path / "heard.m4a"
    # a session that leaves sound out by default: the reviewer listens, to decide whether this clip's may leave
    ws.set_batch_settings(session_id, Settings(sound=False), "A. Officer")
    at.run()
    next(t for t in at.toggle if t.label == "Listen to its sound (its settings leave it out of the export)").set_value(
        True).run()
    assert min(sound.loudest(heard(), ((0.2, 1.0), (1.2, 2.8)))) >= 0.1  # the tone, all through
    assert plain("It leaves without its sound, as its settings ask") in at.caption[0].value
    next(t for t in at.toggle if t.label == "Use its own settings").set_value(True).run()
    at.checkbox(key=f"image-{record.id}-sound").check().run()
    at.text_area(key=f"image-{record.id}-silence").input("0:02.5-3\n2 to 1").run()
    assert plain("'2 to 1' must end after it starts") in at.error[0].value
    at.text_area(key=f"image-{record.id}-silence").input("1 to 2\n0:05 to 0:06").run()
    assert plain("5.00 s to 6.00 s starts after the clip ends (3.00 s)") in at.error[0].value
    at.text_area(key=f"image-{record.id}-silence").input("1 to 2\n0:01.5 to 0:01.8").run()
    next(b for b in at.button if b.label == "Apply to this clip").click().run()
    assert ws.image(record.id).override.silence == ((1.0, 2.0),)  # the two joined
    assert ws.image(record.id).override.sound
    captions = " ".join(c.value for c in at.caption)
    assert plain("sound: aac (silenced from 1.00 s to 2.00 s, as the settings ask)") in captions
    quiet, loud = sound.loudest(heard(), ((1.0, 2.0),)), sound.loudest(heard(), ((0.2, 0.85), (2.15, 2.8)))
    assert quiet[0] <= sound.SILENT and min(loud) >= 0.1
    at.slider(key=f"frame-{record.id}").set_value(40).run()
    assert [i.caption for element in at.get("image") for i in element.proto.imgs][0].endswith(
        "; its sound is silenced")

    next(b for b in at.button if b.label == "Approve").click().run()
    export = built(at, ws, session_id)
    assert export["counts"]["exported"] == 1, export
    with zipfile.ZipFile(ws.files.exports / export["file"]) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".mp4")]
        (tmp_path / "out.mp4").write_bytes(archive.read(name))
    assert sound.loudest(tmp_path / "out.mp4", ((1.0, 2.0),))[0] <= sound.SILENT
    assert min(sound.loudest(tmp_path / "out.mp4", ((0.2, 0.85), (2.15, 2.8)))) >= 0.1
    with zipfile.ZipFile(ws.files.exports / export["audit_file"]) as archive:
        row = next(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        report = archive.read("report.html").decode()
    assert row["silenced"] == "1.00 s to 2.00 s of the exported file, checked silent there"
    assert "Sound silenced: 1.00 s to 2.00 s of the exported file, checked silent there." in report
    assert row["sound"] == "aac re-encoded to AAC, with parts silenced"
    # the parts silenced decide what leaves: another puts the approval out of date
    at.switch_page("app_pages/review.py").run()
    at.text_area(key=f"image-{record.id}-silence").input("1 to 2.5").run()
    next(b for b in at.button if b.label == "Apply to this clip").click().run()
    fresh = ws.image(record.id)
    assert fresh.status == APPROVED and not fresh.approval_current(fresh.override)
    assert not at.exception


def test_each_sound_track_of_a_clip_can_be_heard(root, astronaut_rgb, astronaut_face_box, tmp_path, pictures):
    """An interview with a second microphone: every track leaves, but a browser plays one track of
    a file, so only the first could be heard on the review page and a name said on the second
    went unheard. Each is offered on its own."""
    import av

    from tests.clips import moving_face_frames, write_tracks

    clip = tmp_path / "interview.mov"
    write_tracks(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 25)],
                 {"aac": 440, "pcm_s16le": 880})
    at = add_and_detect(started(), [("interview.mov", clip.read_bytes(), "video/quicktime")])
    at.switch_page("app_pages/review.py").run()
    from dashboard.state import workspace

    (record,) = workspace().images(at.session_state["session_id"])
    next(t for t in at.toggle if t.label == "Listen to its sound, as it will leave").set_value(True).run()

    def pitch() -> float:
        (player,) = at.get("audio")
        (tmp_path / "heard.m4a").write_bytes(pictures.raw(player.proto.url))
        with av.open(str(tmp_path / "heard.m4a")) as container:
            assert len(container.streams.audio) == 1
            heard = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])[4800:43200]
        return float(np.argmax(np.abs(np.fft.rfft(heard))) * 48000 / len(heard))
    track = at.selectbox(key=f"listen-track-{record.id}")
    assert track.options == ["track 1 of 2: aac", "track 2 of 2: pcm_s16le"]  # as shown
    assert abs(pitch() - 440) < 5
    track.set_value(1).run()
    assert abs(pitch() - 880) < 5
    assert not at.exception


def test_only_part_of_each_video_can_be_added(root, astronaut_rgb, astronaut_face_box, tmp_path):
    """Minutes of a long recording: typed on the Start page, each video is added as that part
    only (and said so); a part that ends before it starts adds nothing and says why."""
    from dashboard.state import workspace
    from tests.clips import moving_face_frames, write_clip, write_dav

    clip = tmp_path / "corridor.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 100)], key_every=12)
    def refused(at: AppTest, name: str, data: bytes, said: str) -> None:
        """Offered with the part typed, and refused: nothing added, and why said."""
        at.file_uploader[0].set_value([(name, data, "application/octet-stream")])
        at.run()
        next(b for b in at.button if b.label == "Add and detect faces").click().run()
        assert any(plain(f"Only part of each video: {said}. Nothing was added.") in e.value for e in at.error)

    at = started()
    at.text_input(key="part-from-0").input("2").run()
    at.text_input(key="part-to-0").input("0:01").run()
    refused(at, "corridor.mp4", clip.read_bytes(), "it must end after it starts (2.00 s)")
    session_id = at.session_state["session_id"]
    assert workspace().images(session_id) == []
    at.text_input(key="part-to-0").input("0:03").run()
    at = add_and_detect(at, [("corridor.mp4", clip.read_bytes(), "video/mp4")])
    (record,) = workspace().images(session_id)
    assert record.name == "corridor (from 2.00 s to 3.00 s).mkv" and record.detected and record.faces
    assert [link.proto.label for link in at.get("page_link")] == ["Review the videos"]  # not "the photos"
    said = f"{plain('corridor.mp4')}: only its part was added, as {plain(record.name)}"
    assert any(said in i.value for i in at.info), [i.value for i in at.info]
    assert at.text_input(key="part-from-1").value == "", "the next intake takes whole videos unless told again"
    # By the recorder's clock, as a request names it: a DAV is cut where its own clock reads the times.
    dav = tmp_path / "ch01.dav"
    write_dav(dav, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 100)])  # from 09:30:00
    at.checkbox(key="part-clock-1").check().run()
    at.text_input(key="part-to-1").input("9:30:03").run()
    refused(at, "ch01.dav", dav.read_bytes(), "give the time of day it starts at, on the recorder's clock")
    at.text_input(key="part-from-1").input("9:30:02").run()
    at = add_and_detect(at, [("ch01.dav", dav.read_bytes(), "application/octet-stream")])
    names = {r.name for r in workspace().images(session_id)}
    assert "ch01 (from 9:30:02.00 to 9:30:03.00 by its clock).mkv" in names, names


def test_a_face_drawn_on_a_clip_is_shown_in_its_row(root, astronaut_rgb, astronaut_face_box, tmp_path):
    """A detected track's row shows its face; a drawn one's showed nothing: it shows the face
    where it was drawn, so the reviewer can tell the rows apart."""
    import base64
    import io

    from PIL import Image

    from core import video_review
    from dashboard.state import workspace
    from tests.clips import moving_face_frames, write_clip

    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 20)
    clip = tmp_path / "hall.mp4"
    write_clip(clip, [f for f, _ in moving])
    at = add_and_detect(started(), [("hall.mp4", clip.read_bytes(), "video/mp4")])
    ws = workspace()
    (record,) = ws.images(at.session_state["session_id"])
    box = (400.0, 200.0, 80.0, 80.0)  # a patch of the background, as if a face the detectors missed
    drawn = video_review.add_drawn(ws, record, 5, box, "Officer")
    at.switch_page("app_pages/review.py").run()
    table = next(d.value for d in at.dataframe if "track" in d.value.columns)
    (thumb,) = table[table["track"] == f"track {drawn.id} drawn"]["face"]
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(thumb.split(",", 1)[1]))).convert("RGB"))
    x, y, w, h = (int(v) for v in box)
    seen = moving[5][0][int(y - 0.3 * h):y + int(1.3 * h) + 1, int(x - 0.3 * w):x + int(1.3 * w) + 1]
    expected = np.asarray(Image.fromarray(seen).resize(shown.shape[1::-1]))
    assert np.abs(shown.astype(int) - expected).mean() < 12  # that patch, where it was drawn
    assert not at.exception


def test_a_video_added_twice_is_named_as_a_video_and_only_until_the_next_intake(root, astronaut_rgb,
                                                                                 astronaut_face_box, tmp_path):
    from tests.clips import moving_face_frames, write_clip

    clip = tmp_path / "still.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 1)])
    at = add_and_detect(started(), [("still.mp4", clip.read_bytes(), "video/mp4")])
    add_and_detect(at, [("again.mp4", clip.read_bytes(), "video/mp4")])
    assert [i.value for i in at.info] == [f"{plain('again.mp4')}: same video as {plain('still.mp4')}, added once."]
    add_and_detect(at, [("portrait.jpg", jpeg_bytes(astronaut_rgb), "image/jpeg")])
    assert not at.info, "said of the intake that met it, not of every later one"


def test_odd_sized_photos_and_clips_are_reviewed_in_every_view(root, astronaut_rgb, tmp_path):
    """Photos of 20000 x 9, 4100 x 2, 9 x 20000, 1 x 1 and 2 x 2 px beside a real one: each review
    page opens, with its zoom, walk, drawing and original views. The strips stopped the page
    (Streamlit shrinks them to the page's width and no height: "height and width must be > 0"),
    and the zoom of a photo of a pixel or two stopped it too (a chart under Plotly's least height)."""
    from tests.conftest import png_bytes

    from tests.clips import write_clip

    sizes = [(20000, 9), (4100, 2), (9, 20000), (1, 1), (2, 2)]
    files = [(f"{w}x{h}.png", png_bytes(np.full((h, w, 3), 128, np.uint8)), "image/png") for w, h in sizes]
    write_clip(tmp_path / "strip.mp4", [np.full((2, 4098, 3), 100, np.uint8)] * 3, sound=False)
    files.append(("strip.mp4", (tmp_path / "strip.mp4").read_bytes(), "video/mp4"))  # and clips of the kinds
    write_clip(tmp_path / "tiny.mp4", [np.full((2, 2, 3), 100, np.uint8)] * 3, sound=False)
    files.append(("tiny.mp4", (tmp_path / "tiny.mp4").read_bytes(), "video/mp4"))
    at = add_and_detect(started(), [("real.jpg", jpeg_bytes(astronaut_rgb), "image/jpeg"), *files])
    records = Workspace(root / "ws").images(at.session_state["session_id"])
    assert [r.error for r in records] == [None] * 8
    views = ["Show the original beside it", "Zoom: inspect, select and draw at full resolution",
             "Zoom: inspect this frame at full resolution",
             "Walk the faces at full resolution", "Draw a face the detectors missed"]
    for record in records:
        at.session_state["image_id"] = record.id
        at.switch_page("app_pages/review.py").run()
        assert not at.exception, (record.name, at.exception)
        thin = [w.value for w in at.warning if "too thin to show" in w.value]
        assert bool(thin) == (record.name in ("20000x9.png", "4100x2.png", "strip.mp4")), record.name
        for view in views:
            toggle = [t for t in at.toggle if t.label == view]
            if toggle:
                toggle[0].set_value(True).run()
                assert not at.exception, (record.name, view, at.exception)
                next(t for t in at.toggle if t.label == view).set_value(False).run()


def test_a_near_miss_is_listed_and_covered_with_one_click(reviewed):
    from core.faces import selected
    from core.review import attention

    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first = ws.images(session_id)[0]
    batch = ws.batch_settings(session_id)
    near = Face(400.0, 300.0, 30.0, 30.0, batch.threshold - 0.05, "centerface")
    # A detector's candidate just under the threshold, stored as detection stores candidates.
    ws.save_detection(first.id, first.width, first.height, first.faces + [near])
    record = ws.image(first.id)
    assert "1 candidate(s) just under the threshold" in [f.text for f in attention(record, batch)]
    at.switch_page("app_pages/review.py").run()
    rows, positions = face_rows(record.faces, batch.threshold)
    assert rows[-1]["kind"] == "near miss" and rows[-1]["covered"] is False
    edit_table(at, f"faces-{first.id}-{record.current_fingerprint(batch)}", {len(rows) - 1: {"covered": True}})
    assert not at.exception
    covered = ws.image(first.id)
    assert any(f.x == near.x and f.forced for f in selected(covered.faces, batch.threshold)), "now covered"
    assert not any("just under" in f.text for f in attention(covered, batch))


def test_walk_the_faces_at_full_resolution_and_switch_one(reviewed):
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first = ws.images(session_id)[0]
    at.switch_page("app_pages/review.py").run()
    at.toggle(key=f"walk-{first.id}").set_value(True).run()
    assert not at.exception
    assert any(b.label == "◀ Previous face" for b in at.button), "the walk through the faces is shown"
    next(b for b in at.button if b.label == "Leave this face uncovered").click().run()
    assert not at.exception
    batch = ws.batch_settings(session_id)
    rows, positions = face_rows(first.faces, batch.threshold)
    assert not ws.image(first.id).faces[positions[0]].enabled


def test_face_crop_is_the_full_resolution_output():
    import numpy as np

    from core.pipeline import Settings, anonymize
    from core.review import face_crop

    big = np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), np.uint8)
    face = Face(2000, 1500, 20, 24, 0.9, "centerface")
    out = anonymize(big, [face], Settings(mode="solid"))
    crop = face_crop(out, face, Settings(mode="solid"))
    assert 160 <= crop.shape[0] <= 200 and 160 <= crop.shape[1] <= 200, "not scaled down: a crop"
    assert (crop[80:100, 80:100] == 0).all(), "the covered face, as exported"


def on_settings_with_one_approved(reviewed):
    """The Batch settings page, with the session's first photo approved."""
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first = ws.images(session_id)[0]
    ws.decide(first.id, APPROVED, "A. Officer")
    at.switch_page("app_pages/settings.py").run()
    return at, ws, session_id, first


def test_batch_settings_ask_before_putting_approvals_out_of_date(reviewed):
    at, ws, session_id, first = on_settings_with_one_approved(reviewed)
    at.slider(key=f"batch-{session_id}-threshold").set_value(0.95).run()
    assert ws.batch_settings(session_id).threshold != 0.95, "nothing is written before the reviewer agrees"
    assert "This change would put 1 photo, approved, out of date: " in at.warning[0].value
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert at.slider(key=f"batch-{session_id}-threshold").value == ws.batch_settings(session_id).threshold
    at.slider(key=f"batch-{session_id}-threshold").set_value(0.95).run()
    next(b for b in at.button if b.label.startswith("Apply and put 1 approval")).click().run()
    assert ws.batch_settings(session_id).threshold == 0.95
    batch = ws.batch_settings(session_id)
    assert ws.image(first.id).status == APPROVED and not ws.image(first.id).approval_current(batch)
    assert ws.audit(session_id)[-1]["action"] == "approval out of date"
    # Setting the threshold back makes the same approval current again.
    at.slider(key=f"batch-{session_id}-threshold").set_value(Settings().threshold).run()
    next(b for b in at.button if b.label == "Apply to the batch").click().run()
    assert ws.image(first.id).approval_current(ws.batch_settings(session_id))


def test_batch_settings_are_not_applied_when_more_approvals_would_go_out_of_date_than_said(reviewed):
    """The page asked to put one named approval out of date; another reviewer approved a second
    photo before the click. Applying would put two out of date, one never named: it is refused,
    said, and the page asks again with both."""
    at, ws, session_id, first = on_settings_with_one_approved(reviewed)
    second = ws.images(session_id)[1]
    at.slider(key=f"batch-{session_id}-threshold").set_value(0.95).run()
    assert "This change would put 1 photo, approved, out of date: " in at.warning[0].value
    ws.decide(second.id, APPROVED, "B. Other")
    next(b for b in at.button if b.label.startswith("Apply and put 1 approval")).click().run()
    assert not at.exception
    assert ws.batch_settings(session_id).threshold != 0.95, "not applied"
    assert ws.image(second.id).approval_current(ws.batch_settings(session_id))
    said = [w.value for w in at.warning]
    assert any(w.startswith("Not done") and plain("2 approval(s) out of date") in w for w in said), said
    assert any("This change would put 2 photos, approved, out of date" in w for w in said), said
    assert any(b.label.startswith("Apply and put 2 approval") for b in at.button)


def test_leaving_the_sound_out_is_a_batch_setting_that_keeps_photo_approvals(reviewed):
    """A photo has no sound: unticking "Keep the sound of videos" asks nothing of its approval."""
    at, ws, session_id, first = on_settings_with_one_approved(reviewed)
    at.checkbox(key=f"batch-{session_id}-sound").uncheck().run()
    assert not at.warning, "no approval would go out of date"
    next(b for b in at.button if b.label == "Apply to the batch").click().run()
    batch = ws.batch_settings(session_id)
    assert batch.sound is False and ws.image(first.id).approval_current(batch)
    # A photo's own settings have no sound to choose.
    at.switch_page("app_pages/review.py").run()
    next(t for t in at.toggle if t.label == "Use its own settings").set_value(True).run()
    assert not any(c.label == "Keep the sound of videos" for c in at.checkbox)
    assert not at.exception


def test_a_stale_tab_never_writes_settings_it_did_not_change(reviewed, root):
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    at.switch_page("app_pages/settings.py").run()
    ws.set_batch_settings(session_id, replace(ws.batch_settings(session_id), padding=0.8), "B. Officer")
    at.run()  # the stale tab reruns (any click) with its sliders at the old values
    assert ws.batch_settings(session_id).padding == 0.8
    assert at.slider(key=f"batch-{session_id}-padding").value == 0.8


def test_export_builds_zip_of_approved_only(reviewed, pictures):
    import io

    from PIL import Image

    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first, second = ws.images(session_id)
    ws.decide(first.id, APPROVED, "A. Officer")
    at.switch_page("app_pages/export.py").run()
    assert at.markdown[0].value.startswith("**1 photo**, approved, will be exported")
    export = built(at, ws, session_id)
    at.run()
    assert export["current"] and export["counts"]["exported"] == 1 and export["counts"]["pending"] == 1
    assert "Current export" in at.success[0].value
    with zipfile.ZipFile(ws.files.exports / export["file"]) as archive:
        assert sorted(archive.namelist()) == ["images/Sports_day-0001.jpg", "manifest.csv", "manifest.json"]
    # The zip's SHA-256 as the page says it is the file's: what a reviewer checks a sent copy against.
    digest = hashlib.sha256((ws.files.exports / export["file"]).read_bytes()).hexdigest()
    assert f"SHA-256 of the zip: {digest}" in [c.value for c in at.caption]
    # What leaves can be looked at from the zip itself, named with its original.
    next(t for t in at.toggle if t.label.startswith("Look at what leaves (1 file(s))")).set_value(True).run()
    assert at.selectbox(key=f"watched-{export['id']}").format_func("images/Sports_day-0001.jpg") == \
        f"images/Sports_day-0001.jpg (from {first.name})"
    with zipfile.ZipFile(ws.files.exports / export["file"]) as archive:
        written = np.asarray(Image.open(io.BytesIO(archive.read("images/Sports_day-0001.jpg"))).convert("RGB"))
    (shown,) = [i for element in at.get("image") for i in element.proto.imgs
                if i.caption == "images/Sports_day-0001.jpg, as the zip holds it"]
    assert np.array_equal(pictures(shown), written)  # the zip's own file, at its full size: not a preview
    # The zips downloaded into a folder added later (Downloads), or the publication unzipped there,
    # are not taken in again as new photos: they hold anonymised outputs, which would be reviewed
    # and published a second time (a zip in a folder is unpacked as an upload is).
    downloads = ws.root.parent / "Downloads"
    (downloads / "unzipped").mkdir(parents=True)
    for name in (export["file"], export["audit_file"]):
        shutil.copy(ws.files.exports / name, downloads)
    with zipfile.ZipFile(ws.files.exports / export["file"]) as archive:
        archive.extractall(downloads / "unzipped")
    (downloads / "new.jpg").write_bytes(ws.files.object_path(second.sha256).read_bytes())
    later = ws.create_session("Later", "A. Officer")
    report = add_files(ws, later, intake_folder(str(downloads), [downloads]), "A. Officer")
    assert [r.name for r in ws.images(later)] == ["new.jpg"], report
    assert sorted(report.earlier_runs) == sorted([export["file"], export["audit_file"], "unzipped/"])


def test_a_session_named_after_a_case_is_renamed_before_anything_leaves_with_its_name(root, astronaut_rgb):
    """The session's name names the published files and the zip, and is written in its manifest:
    a session named after a patient published that name with every photo, and could not be
    renamed. The Export page says what leaves with the name; renamed there, a zip made before is
    out of date, and the next one carries no part of the old name; the audit log keeps both."""
    at = started("Ward 7 patient J Smith")
    add_and_detect(at, [("a.jpg", jpeg_bytes(astronaut_rgb), "image/jpeg")])
    ws = Workspace(root / "ws")
    session_id = at.session_state["session_id"]
    (record,) = ws.images(session_id)
    ws.decide(record.id, APPROVED, "A. Officer")
    before = built(at, ws, session_id)
    at.run()
    assert any("Ward_7_patient_J_Smith-0001.jpg" in html.unescape(c.value) and "no one's name" in c.value
               for c in at.caption)
    at.text_input(key=f"rename-{session_id}").input("  ")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert [e.value for e in at.error] == [plain("a review session needs a name")]
    ws.create_session("Sports day", "B. Officer")
    at.text_input(key=f"rename-{session_id}").input("Sports day")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert "exists already" in html.unescape(at.error[0].value)
    at.text_input(key=f"rename-{session_id}").input("Ward 7 wound photos")
    next(b for b in at.button if b.label == "Rename").click().run()
    assert not at.exception and "Session renamed" in html.unescape(at.success[0].value)
    assert not ws.exports.of_session(session_id)[0]["current"], "the zip named after the patient is out of date"
    assert [w.value for w in at.warning] == ["The last zip is out of date: a decision, edit or setting, or the "
                                             "session's name, changed after it was started. Build the zip again to "
                                             "publish."]
    assert "Download the zip" not in [b.proto.label for b in at.get("link_button")]
    assert ws.session(session_id)["name"] == "Ward 7 wound photos"
    after = built(at, ws, session_id)
    assert after["current"] and after["id"] != before["id"] and "Smith" not in after["file"]
    at.run()
    assert [b.proto.label for b in at.get("link_button")][:1] == ["Download the zip"]
    with zipfile.ZipFile(ws.files.exports / after["file"]) as archive:
        assert archive.namelist() == ["images/Ward_7_wound_photos-0001.jpg", "manifest.csv", "manifest.json"]
        assert all(b"Smith" not in archive.read(member) for member in archive.namelist())
    (renamed,) = [a for a in ws.audit(session_id) if a["action"] == "session renamed"]
    assert renamed["detail"] == {"former": "Ward 7 patient J Smith", "name": "Ward 7 wound photos"}
    # A tab that still shows the old name renames nothing.
    with pytest.raises(StaleState, match="renamed meanwhile"):
        ws.rename_session(session_id, "Other", "A. Officer", seen="Ward 7 patient J Smith")
    # Nor one on a session purged meanwhile: its name stays as the purge left it.
    ws.purge_session(session_id, "A. Officer")
    with pytest.raises(StaleState, match="purged"):
        ws.rename_session(session_id, "Other", "A. Officer", seen="Ward 7 wound photos")
    assert ws.session(session_id)["name"] == "Ward 7 wound photos"


def shown_text(at: AppTest) -> list[str]:
    """Every text a page shows: its messages and headings, captions, the options of its select
    boxes and the cells of its tables."""
    said = [e.value for kind in ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error",
                                 "success") for e in getattr(at, kind)]
    said += [option for box in at.selectbox for option in box.options]
    return said + [str(cell) for table in at.dataframe for cell in table.value.to_numpy().ravel()]


def test_names_that_read_backwards_are_shown_as_the_characters_they_hold(root, astronaut_rgb):
    """A direction override (U+202E) in a file's or a session's name made what follows it read
    backwards (`cam<U+202E>gnp.jpg` showed as "camgpj.png"): a name could be made to read as another
    file's, or a session's as another session's. Every page, and the audit report, shows it as its
    escape instead, as the command line does; the records keep the name exactly."""
    flip = "\u202e"
    at = started(f"Ward {flip}7")
    add_and_detect(at, [(f"cam{flip}gnp.jpg", jpeg_bytes(astronaut_rgb), "image/jpeg"),
                        (f"bad{flip}gnp.jpg", b"not a photo", "image/jpeg")])
    said = shown_text(at)
    at.switch_page("app_pages/overview.py").run()
    said += shown_text(at)
    at.switch_page("app_pages/review.py").run()
    said += shown_text(at)
    ws = Workspace(root / "ws")
    session_id = at.session_state["session_id"]
    ws.decide(ws.images(session_id)[0].id, APPROVED, "A. Officer")
    export = built(at, ws, session_id)
    with zipfile.ZipFile(ws.files.exports / export["audit_file"]) as archive:
        said.append(archive.read("report.html").decode())  # the audit report a person reads
    at.run()
    next(e for e in at.expander if e.label.startswith("Audit log")).run()
    said += shown_text(at)
    said += shown_text(AppTest.from_file(APP, default_timeout=60).run())  # the sessions listed to reopen
    assert not at.exception
    assert not [text for text in said if flip in text], [text for text in said if flip in text]
    assert sorted(r.name for r in ws.images(session_id)) == [f"bad{flip}gnp.jpg", f"cam{flip}gnp.jpg"], "kept exactly"
    text = html.unescape(" ".join(said))
    for name in ("cam\\u202egnp.jpg", "bad\\u202egnp.jpg", "Ward \\u202e7"):
        assert name in text, name


def test_an_export_cut_short_is_built_again_once_when_two_tabs_open_its_page_at_once(root, monkeypatch):
    """After a restart, the Export page of each open tab resumes the unfinished export: two
    tabs at the same moment must not build it twice (two threads writing the same zip)."""
    from dashboard.state import workspace
    from dashboard.worker import ExportWorker

    ws = workspace()
    session_id = ws.create_session("Two tabs", "A. Officer")
    export_id = ws.exports.start(session_id, "A. Officer")  # left 'building' with no thread: as after a restart
    restart = ws.exports.restart

    def slow_restart(*args):  # the real restart, with time for the other tab to look meanwhile
        time.sleep(0.3)
        restart(*args)

    monkeypatch.setattr(ws.exports, "restart", slow_restart)
    worker = ExportWorker()
    tabs = [threading.Thread(target=worker.resume, args=(session_id, "A. Officer")) for _ in range(2)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()
    for _ in range(240):
        if ws.exports.get(export_id)["status"] != "building":
            break
        time.sleep(0.25)
    assert ws.exports.get(export_id)["status"] == "complete"
    assert [a["action"] for a in ws.audit(session_id)].count("export resumed after a restart") == 1


def test_build_clicked_in_two_tabs_at_once_builds_one_zip(root, astronaut_rgb, engine, monkeypatch):
    """Two tabs (or a double click) press "Build the zip" at the same moment: one export is
    built, not two side by side (twice the work, two zips of the same state)."""
    from core.intake import add_files, intake_upload
    from core.review import detect_pending
    from dashboard.state import workspace
    from dashboard.worker import ExportWorker

    ws = workspace()
    session_id = ws.create_session("Two clicks", "A. Officer")
    add_files(ws, session_id, intake_upload("a.jpg", jpeg_bytes(astronaut_rgb)), "A. Officer")
    detect_pending(ws, engine, session_id)
    ws.decide(ws.images(session_id)[0].id, APPROVED, "A. Officer")
    start = ws.exports.start

    def slow_start(*args):  # the real start, with time for the other tab to press meanwhile
        time.sleep(0.3)
        return start(*args)

    monkeypatch.setattr(ws.exports, "start", slow_start)
    worker = ExportWorker()
    ids = []
    tabs = [threading.Thread(target=lambda: ids.append(worker.start(session_id, "A. Officer"))) for _ in range(2)]
    for tab in tabs:
        tab.start()
    for tab in tabs:
        tab.join()
    assert len(set(ids)) == 1
    for _ in range(240):
        if ws.exports.get(ids[0])["status"] != "building":
            break
        time.sleep(0.25)
    assert [e["status"] for e in ws.exports.of_session(session_id)] == ["complete"]


def test_a_tab_on_a_session_purged_elsewhere_is_told_and_cannot_add_to_it(root):
    at = started("Purged elsewhere")
    session_id = at.session_state["session_id"]
    Workspace(root / "ws").purge_session(session_id, "B. Officer")  # from another tab
    at.switch_page("app_pages/overview.py").run()
    assert not at.exception and "session_id" not in at.session_state
    assert "This session was purged" in " ".join(i.value for i in at.info)
    for page in ("app_pages/start.py", "app_pages/review.py", "app_pages/export.py", "app_pages/settings.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert not at.file_uploader and "Add and detect faces" not in [b.label for b in at.button], page


def test_overview_rows_of_a_purged_session_are_not_saved_again(root):
    """An overview page rendering while its session is purged must not write the session's file
    names back to disk after the purge deleted them."""
    from core.workspace import overview_file
    from dashboard.previews import _Overview, _save_rows
    from dashboard.state import workspace

    ws = workspace()
    session_id = ws.create_session("Purged while shown", "A. Officer")
    ws.purge_session(session_id, "A. Officer")
    _save_rows(session_id, _Overview(mark=3, rows={1: {"id": 1, "name": "pupil-names.jpg"}}))
    assert not (ws.files.derived / overview_file(session_id)).exists()


def test_a_clip_whose_picture_size_changes_is_reviewed_covered_as_exported(root, astronaut_rgb, astronaut_face_box,
                                                                          tmp_path, pictures):
    """A recording whose picture size changes halfway: the review drew a smaller frame's covers
    scaled once more by the size change, off the faces the export covers."""
    from tests.clips import exposed, joined, moving_face_frames

    clip = tmp_path / "recording.ts"
    frames = joined(clip, moving_face_frames(astronaut_rgb, astronaut_face_box, 30), ((640, 360), (480, 270)))
    at = started()
    ws = Workspace(root / "ws")
    ws.set_batch_settings(ws.sessions()[0]["id"], Settings(mode="solid"), "A. Officer")  # judged as for a solid cover
    at = add_and_detect(at, [("recording.ts", clip.read_bytes(), "video/mp2t")])
    at.switch_page("app_pages/review.py").run()
    next(s for s in at.slider if s.label == "Frame").set_value(21).run()  # frame 21: the smaller picture
    assert not at.exception, at.exception
    (image,) = [i for element in at.get("image") for i in element.proto.imgs if "covered as exported" in i.caption]
    assert image.caption.startswith("frame 21 of 30")
    covered = pictures(image)
    source, box = frames[20]
    assert covered.shape == source.shape and exposed(source, covered, box) <= 0.10


def test_a_clips_overview_thumbnail_covers_the_faces_in_the_frame_it_shows(root, astronaut_rgb, astronaut_face_box,
                                                                           tmp_path, pictures):
    """A clip's thumbnail is one frame (where the surest face is surest), but it was covered with
    each row's face from that row's own best frame: with two people crossing, the second's cover
    fell where they had been, and their face in the frame shown was left bare."""
    from PIL import Image

    from core import video_review
    from tests.clips import background, exposed, face_patch, write_clip

    big, (bx, by, bw, bh) = face_patch(astronaut_rgb, astronaut_face_box, 90)
    small, (sx, sy, sw, sh) = face_patch(astronaut_rgb[:, ::-1].copy(), (astronaut_rgb.shape[1] - astronaut_face_box[0]
                                         - astronaut_face_box[2], *astronaut_face_box[1:]), 70)
    frames, boxes = [], []
    for i in range(30):  # one person walks right, the other left
        frame = background(640, 360).copy()
        ax, cx = 10 + 14 * i, 640 - small.shape[1] - 10 - 14 * i
        frame[20:20 + big.shape[0], ax:ax + big.shape[1]] = big
        frame[150:150 + small.shape[0], cx:cx + small.shape[1]] = small
        frames.append(frame)
        boxes.append([(ax + bx, 20 + by, bw, bh), (cx + sx, 150 + sy, sw, sh)])
    clip = tmp_path / "crossing.mp4"
    write_clip(clip, frames)
    at = started()
    ws = Workspace(root / "ws")
    ws.set_batch_settings(ws.sessions()[0]["id"], Settings(mode="solid"), "A. Officer")  # judged as for a solid cover
    at = add_and_detect(at, [("crossing.mp4", clip.read_bytes(), "video/mp4")])
    record = ws.images(ws.sessions()[0]["id"])[0]
    scan = video_review.load_scan(ws.files, record.sha256)
    best = video_review.best_frame(scan)
    assert len({t.best[0] for t in scan.tracks if t.covered_at(0.23)}) > 1, "the rows' best frames differ"
    at.switch_page("app_pages/overview.py").run()
    assert not at.exception, at.exception
    (image,) = [i for element in at.get("image") for i in element.proto.imgs]
    thumb = pictures(image)
    k = thumb.shape[1] / 640
    source = np.asarray(Image.fromarray(frames[best]).resize(thumb.shape[1::-1], Image.Resampling.BOX))
    for x, y, w, h in boxes[best]:
        assert exposed(source, thumb, (x * k, y * k, w * k, h * k)) <= 0.10


def test_a_dvds_wide_picture_is_reviewed_wide(root, astronaut_rgb, astronaut_face_box, tmp_path, pictures):
    """A 16:9 DVD stores 720 x 576 pixels wider than tall: the review and the overview showed its
    frames as stored, everyone a third thinner than on screen. A frame is shown 1024 x 576, as a
    player shows it, covered where the export covers it, and its thumbnail as wide."""
    import av
    import cv2
    from fractions import Fraction

    from tests.clips import exposed, moving_face_frames

    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 10, 1024, 576, 150)
    clip = tmp_path / "VTS_01_1.VOB"
    with av.open(str(clip), "w", format="vob") as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 720, 576, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(64, 45)
        for n, (pixels, _) in enumerate(moving):
            frame = av.VideoFrame.from_ndarray(cv2.resize(pixels, (720, 576), interpolation=cv2.INTER_AREA),
                                               format="rgb24")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    at = started()
    ws = Workspace(root / "ws")
    ws.set_batch_settings(ws.sessions()[0]["id"], Settings(mode="solid"), "A. Officer")  # judged as for a solid cover
    at = add_and_detect(at, [("VTS_01_1.VOB", clip.read_bytes(), "video/mpeg")])
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, at.exception
    (image,) = [i for element in at.get("image") for i in element.proto.imgs if "covered as exported" in i.caption]
    shown = pictures(image)
    assert shown.shape == (576, 1024, 3)
    assert exposed(moving[0][0], shown, moving[0][1]) <= 0.10
    at.switch_page("app_pages/overview.py").run()  # its thumbnail too
    (thumbnail,) = [i for element in at.get("image") for i in element.proto.imgs]
    assert pictures(thumbnail).shape[1] / pictures(thumbnail).shape[0] == pytest.approx(16 / 9, abs=0.02)


def test_pages_ask_for_a_session_first(root):
    at = AppTest.from_file(APP, default_timeout=60).run()
    for page in ("app_pages/overview.py", "app_pages/review.py", "app_pages/export.py", "app_pages/settings.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert "Open or start a review session first." in at.info[0].value


def test_each_session_detects_while_another_session_detects(root, astronaut_rgb):
    """Two sessions' batches: the second, started while the first runs, is not queued behind it."""
    from core.intake import add_files, intake_upload
    from dashboard.state import workspace

    ws = workspace()
    first, second = ws.create_session("Big batch", "Ann"), ws.create_session("Small batch", "Bob")
    for i in range(8):
        add_files(ws, first, intake_upload(f"a{i}.jpg", jpeg_bytes(np.roll(astronaut_rgb, 11 * i, axis=1))), "Ann")
    add_files(ws, second, intake_upload("b.jpg", jpeg_bytes(astronaut_rgb[:, ::-1].copy())), "Bob")
    detection_worker(first).start(first)
    detection_worker(second).start(second)
    assert detection_worker(first) is not detection_worker(second)
    for _ in range(600):
        if not ws.awaiting_detection(second):
            break
        time.sleep(0.05)
    assert not ws.awaiting_detection(second)
    assert ws.awaiting_detection(first), "the small batch finished while the big one was still running"
    for _ in range(1200):
        if not detecting():
            break
        time.sleep(0.1)
    assert not ws.awaiting_detection(first)


def test_detection_progress_counts_what_waits_and_moves_with_a_clips_frames(root, astronaut_rgb):
    """The bar said "0 of 0 done" until the first file was done, and stood still for the minutes
    a long clip takes: it counts the files waiting from the start and moves with a clip's frames."""
    from core.intake import add_files, intake_upload
    from dashboard.state import workspace

    ws = workspace()
    session = ws.create_session("Progress", "Ann")
    for i in range(3):
        add_files(ws, session, intake_upload(f"p{i}.jpg", jpeg_bytes(np.roll(astronaut_rgb, 7 * i, axis=0))), "Ann")
    worker = detection_worker(session)
    worker.start(session)
    assert worker.total == 3
    fraction, text = worker.status()
    assert fraction < 1 and " of 3 done" in text
    for _ in range(600):
        if not worker.running:
            break
        time.sleep(0.05)
    worker.heard(1, 2, "<b>hall</b>.mp4", frame=(30, 120))
    assert worker.status() == (pytest.approx(1.25 / 2), "Detecting faces: 1 of 2 done "
                               f"(now {plain('<b>hall</b>.mp4')}: frame 30 of 120)")
    worker.heard(2, 2, "hall.mp4")
    assert worker.status() == (1.0, f"Detecting faces: 2 of 2 done (last: {plain('hall.mp4')})")
    # An hours-long recording's bar moves too slowly to tell: the time it has left is said, at its
    # pace so far, once it has run a while (a clock the test moves stands for the minutes).
    now = [1000.0]
    worker.clock = lambda: now[0]
    worker.heard(2, 3, "day.dav", frame=(0, 2_160_000))
    now[0] += 3
    worker.heard(2, 3, "day.dav", frame=(75, 2_160_000))
    assert worker.status()[1].endswith("frame 75 of 2160000)"), "not yet: too soon to tell"
    now[0] += 57
    worker.heard(2, 3, "day.dav", frame=(1500, 2_160_000))  # 25 frames a second
    assert worker.status()[1].endswith("frame 1500 of 2160000, about 23 h 59 min left)")
    worker.heard(3, 4, "next.mp4", frame=(100, 1000))  # the next clip's pace is its own
    assert worker.status()[1].endswith("frame 100 of 1000)")
    now[0] += 10
    worker.heard(3, 4, "next.mp4", frame=(300, 1000))
    assert worker.status()[1].endswith("frame 300 of 1000, about 1 min left)")


def test_a_folder_that_cannot_be_read_is_said_and_the_path_kept(root):
    """A typo or a folder outside the allowed roots: an error naming it, the typed path kept to be
    corrected, and no failed card in the session."""
    at = started()
    folder_box = next(t for t in at.text_input if "folder" in t.label)
    folder_box.input("/etc").run()
    next(b for b in at.button if b.label == "Add and detect faces").click().run()
    assert any(plain("/etc: outside the folders this dashboard may read") in e.value for e in at.error)
    assert next(t for t in at.text_input if "folder" in t.label).value == "/etc"
    assert Workspace(root / "ws").images(at.session_state["session_id"]) == []


def test_a_cards_sidecars_are_said_as_passed_over_not_as_failed_photos(root, astronaut_rgb):
    card = root / "card"
    card.mkdir()
    (card / "IMG_0001.JPG").write_bytes(jpeg_bytes(astronaut_rgb))
    (card / "IMG_0001.xmp").write_bytes(b"<x:xmpmeta/>")
    (card / "MVI_0002.THM").write_bytes(jpeg_bytes(astronaut_rgb[:64, :64]))
    at = started()
    next(t for t in at.text_input if "folder" in t.label).input(str(card)).run()
    next(b for b in at.button if b.label == "Add and detect faces").click().run()
    assert not at.exception
    said = [i.value for i in at.info]
    assert said == ["2 file(s) that only go with photos and videos were passed over (sidecars, thumbnails, a card's "
                    "index files; never published): " + plain("IMG_0001.xmp, MVI_0002.THM")], said
    assert [r.name for r in Workspace(root / "ws").images(at.session_state["session_id"])] == ["IMG_0001.JPG"]


def test_a_batch_runs_outputs_inside_a_folder_added_are_said_and_not_added(root, astronaut_rgb):
    """A folder whose sub-folder holds a batch run's anonymised outputs (`--out photos/cleaned`):
    they were added beside the originals, to be reviewed twice. The Start page says the folder
    was passed over and what to do instead."""
    photos = root / "photos"
    (photos / "cleaned").mkdir(parents=True)
    (photos / "a.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    (photos / "cleaned" / "a.jpg").write_bytes(jpeg_bytes(astronaut_rgb[::2, ::2].copy()))
    (photos / "cleaned" / "manifest.json").write_text('{"files": [], "settings": {}, "versions": {}}')
    at = started()
    next(t for t in at.text_input if "folder" in t.label).input(str(photos)).run()
    next(b for b in at.button if b.label == "Add and detect faces").click().run()
    assert not at.exception
    assert [i.value for i in at.info] == [
        f"{plain('cleaned/')} was not added: it holds the anonymised outputs of a batch run or of an export (their "
        "record is in it), which would be reviewed again beside the originals. A batch run opens for review from its "
        "manifest (Close this session, then Open a batch run for review); to add those files all the same, add that "
        "folder (or zip) itself."]
    assert [r.name for r in Workspace(root / "ws").images(at.session_state["session_id"])] == ["a.jpg"]


def test_overview_rows_follow_each_change_and_equal_a_fresh_derivation(root, astronaut_rgb, engine, monkeypatch):
    """The overview keeps its rows up to date from the audit log: after a decision, a switched
    face and a batch setting change, they equal rows derived from scratch; after a restart, the
    saved rows are read and only the photos changed since are derived again."""
    import dashboard.previews as previews

    monkeypatch.setattr(previews, "OVERVIEW_SAVE_EVERY", 1)
    from core.intake import add_files, intake_upload
    from core.review import detect_pending
    from core.pipeline import Settings
    from dashboard.previews import _overview, _overview_row, overview_rows
    from dashboard.state import workspace

    ws = workspace()
    session = ws.create_session("Rows", "Ann")
    for i in range(3):
        add_files(ws, session, intake_upload(f"p{i}.jpg", jpeg_bytes(np.roll(astronaut_rgb, 40 * i, axis=0))), "Ann")
    detect_pending(ws, engine, session)

    def fresh() -> list[dict]:
        batch = ws.batch_settings(session)
        return [_overview_row(r, batch) for r in ws.images(session)]

    assert overview_rows(session) == fresh()
    first, second = ws.images(session)[:2]
    ws.decide(first.id, APPROVED, "Ann")
    ws.switch_faces(second.id, [(f, False) for f in second.faces if f.covered_at(0.24)], "Ann")
    assert overview_rows(session) == fresh()
    assert _overview(str(ws.root), session).rows[first.id]["state"] == APPROVED
    ws.set_batch_settings(session, Settings(threshold=0.5), "Ann")
    assert overview_rows(session) == fresh()
    ws.remove_image(second.id, "Ann")
    assert [r["id"] for r in overview_rows(session)] == [r.id for r in ws.images(session)]

    # After a restart the saved rows are read and only what changed since is derived again.
    third = ws.images(session)[-1]
    ws.decide(third.id, APPROVED, "Ann")
    _overview.clear()
    derived = []
    real = previews._overview_row
    monkeypatch.setattr(previews, "_overview_row", lambda record, batch: derived.append(record.id) or real(record, batch))
    assert overview_rows(session) == [real(r, ws.batch_settings(session)) for r in ws.images(session)]
    assert derived == [third.id]
    # Rows saved by another format of the code are not trusted; a purged session leaves none.
    saved = ws.files.derived / f"overview-{session}.json"
    saved.write_text(saved.read_text().replace('"format": 1', '"format": 0'))
    _overview.clear()
    assert overview_rows(session) == fresh()
    ws.purge_session(session, "Ann")
    assert not saved.exists()


def test_drawing_a_face_shows_the_near_misses_when_asked(reviewed):
    """With "Outline near misses (grey)" on, the photo to draw on shows them too: the reviewer
    can tick the near miss instead of drawing over it."""
    import base64
    import json

    from core.images import decode_photo

    at, ws = reviewed
    session_id = at.session_state["session_id"]
    first = ws.images(session_id)[0]
    batch = ws.batch_settings(session_id)
    ws.save_detection(first.id, first.width, first.height,
                      first.faces + [Face(60.0, 380.0, 60.0, 60.0, batch.threshold - 0.05, "centerface")])
    at.session_state["image_id"] = first.id
    at.switch_page("app_pages/review.py").run()
    at.toggle(key=f"drawing-{first.id}").set_value(True).run()

    def shown():
        assert not at.exception
        figure = json.loads(at.get("plotly_chart")[0].proto.spec)
        source = figure["data"][0]["source"]
        return decode_photo(base64.b64decode(source.split(",", 1)[1]), "shown.jpg").pixels.astype(int)

    without = shown()
    at.toggle(key=f"near-{first.id}").set_value(True).run()
    changed = np.abs(shown() - without).max(axis=2) > 40
    assert changed[370:450, 50:130].any(), "the near miss is outlined where it is"
    assert not changed[:300].any(), "and nothing else changed"


def test_the_strength_slider_says_what_it_changes_for_the_mode_chosen(reviewed):
    """It was "Blur strength (kernel scale)" whatever the mode: for a mosaic it sets the block
    size, and a solid cover has no strength at all (the slider moved nothing)."""
    at, ws = reviewed
    session_id = at.session_state["session_id"]
    at.switch_page("app_pages/settings.py").run()

    def strength():
        return [s.label for s in at.slider if s.key == f"batch-{session_id}-strength"]

    assert strength() == ["Blur strength"]
    for mode, said in (("pixelate", ["Mosaic block size"]), ("solid", []), ("blur", ["Blur strength"])):
        at.selectbox(key=f"batch-{session_id}-mode").set_value(mode).run()
        assert not at.exception and strength() == said, mode
    at.selectbox(key=f"batch-{session_id}-mode").set_value("solid").run()
    next(b for b in at.button if b.label == "Apply to the batch").click().run()
    assert ws.batch_settings(session_id).mode == "solid"
    assert ws.batch_settings(session_id).strength == Settings().strength, "kept as it was"


def test_a_clips_frame_is_inspected_at_full_resolution(root, astronaut_rgb, astronaut_face_box, tmp_path, pictures):
    """A clip's frame was shown only whole, scaled to the page: a 4K crowd's faces a few pixels
    tall. Zoomed, the frame is shown at its own pixels or closer, covered as exported, and a face
    of the frame is zoomed to by its row's number; the view stays while the frame is scrubbed."""
    import re

    from core import video_review
    from core.pipeline import anonymize
    from dashboard.state import workspace
    from tests.clips import moving_face_frames, write_clip

    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 12, width=1920, height=1080)
    clip = tmp_path / "hall.mp4"
    write_clip(clip, [f for f, _ in moving])
    at = add_and_detect(started(), [("hall.mp4", clip.read_bytes(), "video/mp4")])
    ws = workspace()
    (record,) = ws.images(at.session_state["session_id"])
    at.switch_page("app_pages/review.py").run()
    at.toggle(key=f"outline-{record.id}").set_value(False).run()
    at.slider(key=f"frame-{record.id}").set_value(6).run()
    at.toggle(key=f"frame-zoom-{record.id}").set_value(True).run()
    assert not at.exception

    def shown():
        (image,) = [i for element in at.get("image") for i in element.proto.imgs if "showing x" in i.caption]
        return image.caption.split("; showing ")[1], pictures(image)

    said, whole = shown()
    assert said == "x 0-1920, y 0-1080 of 1920 x 1080 px at 0.25x" and whole.shape == (270, 480, 3)
    for _ in range(2):
        next(b for b in at.button if b.key == f"frame-view-{record.id}-zoom in").click().run()
    said, closer = shown()
    assert said == "x 510-1410, y 240-840 of 1920 x 1080 px at 1x" and closer.shape == (600, 900, 3)
    # The export's own pixels there: the frame as decoded, covered by what its tracks cover in it.
    scan, every = video_review.all_tracks(ws.files, record.sha256, record.id)
    settings = ws.batch_settings(record.session_id)
    frame = video_review.frame_at(ws.files.object_path(record.sha256), scan, 5)
    faces = video_review.frame_faces(video_review.covered_tracks(every, record.faces, settings.threshold), 5)
    assert faces and np.abs(closer.astype(int) - anonymize(frame, faces, settings)[240:840, 510:1410]).mean() < 4
    # Face 1 picked: the view goes to it; scrubbed, the view stays there.
    at.selectbox(key=f"frame-pick-{record.id}-5").set_value(1).run()
    at_face = shown()[0]
    x, y = (int(v) for v in re.search(r"x (\d+)-\d+, y (\d+)-\d+", at_face).groups())
    cx, cy = faces[0].x + faces[0].w / 2, faces[0].y + faces[0].h / 2
    assert x <= cx <= x + 900 and y <= cy <= y + 600 and at_face != said
    at.slider(key=f"frame-{record.id}").set_value(7).run()
    assert shown()[0] == at_face and not at.exception
    next(b for b in at.button if b.key == f"frame-view-{record.id}-on").click().run()
    assert at.slider(key=f"frame-{record.id}").value == 8 and shown()[0] == at_face  # stepped beside the view
    next(b for b in at.button if b.key == f"frame-view-{record.id}-back").click().run()
    assert at.slider(key=f"frame-{record.id}").value == 7 and not at.exception


def test_bulk_approval_never_approves_a_video(root, astronaut_rgb, astronaut_face_box, tmp_path):
    """The overview's bulk approval took a clip nothing flagged with the photos: approved from
    the one frame the overview shows, its other frames never seen by anyone."""
    from dashboard.state import workspace
    from tests.clips import moving_face_frames, write_clip

    clip = tmp_path / "hall.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 12)])
    at = add_and_detect(started(), [("hall.mp4", clip.read_bytes(), "video/mp4"),
                                    ("portrait.jpg", jpeg_bytes(astronaut_rgb), "image/jpeg")])
    at.switch_page("app_pages/overview.py").run()
    assert [e.label for e in at.expander] == ["Approve the 1 pending photo(s) that need no attention"]
    next(c for c in at.checkbox if c.label == "Yes, approve these 1 photo(s)").check().run()
    next(b for b in at.button if b.label == "Approve 1 photo(s)").click().run()
    status = {r.name: r.status for r in workspace().images(at.session_state["session_id"])}
    assert status == {"portrait.jpg": APPROVED, "hall.mp4": "pending"}
    assert not at.exception
