"""The whole review flow in headless Chromium against a real `streamlit run` on loopback."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.pipeline import Settings
from core.records import APPROVED, REJECTED
from core.workspace import Workspace
from tests.browser import (StreamlitServer, add_uploads, chromium_page, drag_box, export_zip, require_chromium,
                           settle, start_session, until, upload, wait_for)
from tests.clips import moving_face_frames, write_clip
from tests.conftest import heic_bytes, jpeg_bytes

require_chromium()

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def server(tmp_path):
    running = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    yield running.url, running.workspace
    running.stop()
    # The terminal the dashboard was started in shows the link and nothing alarming: no traceback,
    # and no warning of a background thread calling Streamlit ("missing ScriptRunContext").
    said = (tmp_path / "server.log").read_text()
    assert "Traceback" not in said and "ScriptRunContext" not in said, said


@pytest.fixture
def photos(tmp_path, astronaut_rgb):
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # a GPS position that must not survive
    files = {
        "portrait.jpg": jpeg_bytes(astronaut_rgb, exif=exif.tobytes()),
        # An iPhone's photo, in its own format: exported as JPEG.
        "mirror.HEIC": heic_bytes(astronaut_rgb[:, ::-1].copy()),
        # Larger than the preview: its review page decodes the original ahead, in a thread.
        "dim.jpg": jpeg_bytes(np.repeat(np.repeat((astronaut_rgb * 0.8).astype(np.uint8), 4, axis=0), 4, axis=1)),
        "broken.jpg": b"\xff\xd8\xff\xe0 this is not really a JPEG",
    }
    folder = tmp_path / "upload"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_a_pages_address_asked_for_first_after_a_start_is_the_dashboards_page(server):
    """A tab left on a page reloads that page once the dashboard is started again (a fixed
    token, or none, keeps its cookie valid): the first thing the new server is asked for is then
    a page, not Start. Streamlit took the `pages/` folder beside the entry script for its older
    kind of multipage app until some visit had run the entry script: the page ran bare (its
    navigation the folder's file names, "navigation" among them; no wide layout; no handling of a
    full disk), for every visitor, until someone opened Start."""
    url, ws_root = server
    session_id = Workspace(ws_root).create_session("Sports day", "Ann")
    base, token = url.split("?")
    for _visitor in range(2):  # the first visitor, and the next
        with chromium_page() as page:
            page.goto(f"{base}review?session={session_id}&reviewer=Ann&{token}")
            # The first page a server shows also imports the dashboard (a slower machine's seconds).
            expect(page.get_by_text("No photo is ready for review yet.")).to_be_visible(timeout=60_000)
            nav = page.locator('[data-testid="stSidebarNav"]')
            expect(nav.get_by_role("link", name="Review one image")).to_be_visible()
            expect(nav.get_by_role("link", name="Batch settings")).to_be_visible()
            expect(nav.get_by_role("link", name="navigation")).to_have_count(0)
            assert page.title() == "Face privacy review"


def test_review_flow_in_a_real_browser(server, photos, tmp_path):
    url, ws_root = server
    with chromium_page() as page:
        # Start a session and add three photos and one broken file.
        start_session(page, url, "Browser test", "E2E Reviewer")
        upload(page, [photos / n for n in ("portrait.jpg", "mirror.HEIC", "dim.jpg", "broken.jpg")], "broken.jpg")
        add_uploads(page)
        expect(page.get_by_text("3 photos ready for review, 1 could not be read")).to_be_visible(timeout=120_000)
        # The page runs again when detection ends; until then the last run's alert may show too.
        expect(page.get_by_role("alert")).to_have_count(1, timeout=30_000)
        expect(page.get_by_role("alert")).to_contain_text("broken.jpg: the image data is damaged or truncated")

        ws = Workspace(ws_root)
        session_id = ws.sessions()[0]["id"]

        # Move the threshold slider on the batch settings page and apply it.
        page.get_by_role("link", name="Batch settings").first.click()
        slider = page.locator('[data-testid="stMain"] input[type=range]').first
        slider.focus()
        for _ in range(3):
            slider.press("ArrowRight")
        moved = round(Settings().threshold + 0.03, 2)
        expect(page.locator('[data-testid="stMain"]').get_by_text(f"{moved:.2f}")).to_be_visible()
        settle(page)  # a click that lands while the page reruns is dropped by Streamlit
        page.get_by_role("button", name="Apply to the batch").click()
        wait_for(lambda: ws.batch_settings(session_id).threshold == pytest.approx(moved))
        settle(page)

        # Review: untick the first photo's face, then reject it; approve the other two.
        page.get_by_role("link", name="Review one image").click()
        editor = page.locator('[data-testid="stDataFrame"]').first
        expect(editor).to_be_visible()
        box = editor.bounding_box()
        first = ws.images(session_id)[0]

        def untick():  # row 1 of the "enabled" column
            page.mouse.click(box["x"] + 60, box["y"] + 52)
            page.keyboard.press(" ")
        until(page, untick, lambda: any(not f.enabled for f in ws.image(first.id).faces), "unticking a face")
        settle(page)
        expect(page.get_by_role("heading", name="portrait.jpg — pending")).to_be_visible()

        # Draw a face the detectors "missed": drag a box over the photo, add it.
        page.get_by_text("Draw a face the detectors missed").click()
        drag_box(page, 0.6, 0.6, 0.75, 0.8)
        page.get_by_role("button", name="Add this face").click()
        wait_for(lambda: any(f.manual for f in ws.image(first.id).faces))
        settle(page)
        page.get_by_text("Draw a face the detectors missed").click()
        settle(page)

        page.get_by_label("Comment (optional)").fill("face left visible on purpose: reject")
        page.get_by_role("button", name="Reject").click()
        wait_for(lambda: ws.image(first.id).status == REJECTED)
        for name in ("mirror.HEIC", "dim.jpg"):
            expect(page.get_by_role("heading", name=f"{name} — pending")).to_be_visible()
            settle(page)
            page.get_by_role("button", name="Approve").click()
            wait_for(lambda: any(r.name == name and r.status == APPROVED for r in ws.images(session_id)))
        wait_for(lambda: [r.status for r in ws.images(session_id) if r.detected] == [REJECTED, APPROVED, APPROVED])

        # Reload: the session, the reviewer and the photo under review survive it.
        page.reload()
        expect(page.get_by_role("heading", name="dim.jpg — approved by E2E Reviewer")).to_be_visible()
        settle(page)
        page.get_by_role("link", name="Overview").click()
        expect(page.get_by_text("0 pending · 2 approved · 0 approval out of date · 1 rejected · 1 failed")).to_be_visible()

        # Export (in the background) and download both files through their links.
        page.get_by_role("link", name="Export").click()
        page.get_by_role("button", name="Build the zip").click()
        link = page.get_by_role("link", name="Download the zip")
        expect(link).to_be_visible(timeout=120_000)
        saved, audit = tmp_path / "export.zip", tmp_path / "audit.zip"
        origin = "/".join(page.url.split("/")[:3])
        saved.write_bytes(page.request.get(origin + link.get_attribute("href")).body())
        audit_link = page.get_by_role("link", name="Download the audit package", exact=False)
        audit.write_bytes(page.request.get(origin + audit_link.get_attribute("href")).body())

    with zipfile.ZipFile(audit) as archive:
        originals = {p["output_name"]: p["original_name"] for p in json.loads(archive.read("manifest.json"))["photos"]
                     if p["outcome"] == "exported"}
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["images/Browser_test-0001.jpg", "images/Browser_test-0002.jpg",
                                              "manifest.csv", "manifest.json"]
        assert sorted(originals.values()) == ["dim.jpg", "mirror.HEIC"]
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["images"]:
            output = archive.read(entry["output_name"])
            assert b"Exif" not in output
            exported = np.asarray(Image.open(io.BytesIO(output)).convert("RGB")).astype(int)
            original = np.asarray(Image.open(photos / originals[entry["output_name"]]).convert("RGB")).astype(int)
            assert entry["regions"], "each approved photo has a covered face"
            inside = np.zeros(exported.shape[:2], bool)
            for x, y, w, h in entry["regions"]:
                inside[y:y + h, x:x + w] = True
            assert np.abs(exported - original)[inside].mean() > 10, "face regions changed"
            assert np.abs(exported - original)[~inside].mean() < 3, "the rest only re-encoded"
            assert entry["threshold"] == pytest.approx(moved)


def test_a_batch_run_opens_as_a_review_session(engine, tmp_path, astronaut_rgb, astronaut_face_box):
    """The manifest of a batch run (the cluster path writes the same one: tests/test_cluster.py)
    opened from the Start page: its photos with their faces, not detected again; its video
    detected again, as an uploaded one is; the photo it failed on tried again, failing there too.
    Given its folder, which holds a first run's record and the same command's again, the latest
    opens, said (the first is in it)."""
    from core.batch import anonymize_files
    from core.pipeline import Settings

    shared = tmp_path / "archive"
    shared.mkdir()
    (shared / "portrait.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    (shared / "damaged.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    write_clip(shared / "hall.mp4", [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 8)])
    anonymize_files(engine, [shared], tmp_path / "run", Settings())
    manifest = anonymize_files(engine, [shared], tmp_path / "run", Settings())
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    try:
        with chromium_page() as page:
            page.goto(server.url)
            page.get_by_text("Open a batch run for review").click()
            page.get_by_role("textbox", name="Manifest").fill(str(tmp_path / "run"))
            page.get_by_label("Name for the review session", exact=True).fill("Archive <b>2026</b>")
            page.get_by_label("Reviewer signing the review").fill("Officer")
            settle(page)
            page.get_by_role("button", name="Open the run").click()
            expect(page.get_by_text("Opened 1 photo(s) from the run (manifest-2.json, the latest of 2 runs into "
                                    "the folder, which did every file the earlier ones did); 1 video(s) to be "
                                    "detected again; 1 file(s) the "
                                    "run did not do (it was stopped before them, or failed on them), to be detected "
                                    "here.")).to_be_visible()
            expect(page.get_by_text("1 photo and 1 video ready for review, 1 could not be read.")).to_be_visible(
                timeout=120_000)
            expect(page.get_by_text("Session: Archive <b>2026</b>")).to_be_visible()  # a name is text
        ws = Workspace(server.workspace)
        session = ws.sessions()[0]["id"]
        record = next(r for r in ws.images(session) if r.name == "portrait.jpg")
        entry = next(e for e in manifest["files"] if e["input"].endswith("portrait.jpg"))
        assert [(round(f.x, 1), f.score) for f in record.faces] == [(f["x"], f["score"]) for f in entry["faces"]]
        actions = [a["action"] for a in ws.audit(session)]
        assert "faces imported from a batch run" in actions and "faces detected" not in actions
        assert "tracks detected" in actions
        assert ws.awaiting_detection(session) == []
    finally:
        server.stop()


def test_photos_are_said_ready_while_a_clip_is_still_detected(server, tmp_path, astronaut_rgb, astronaut_face_box):
    """Photos are detected before clips so the reviewer can start on them: the Start page said
    "0 photos ready for review, 2 waiting" until the last clip was done, and offered no link to
    review. It says each file ready as it is done."""
    url, _ = server
    card = tmp_path / "card"
    card.mkdir()
    write_clip(card / "MVI_0001.MOV", (f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 400)),
               count=400, fmt="mov")
    (card / "IMG_0002.JPG").write_bytes(jpeg_bytes(astronaut_rgb))
    with chromium_page() as page:
        start_session(page, url, "Card", "E2E Reviewer")
        page.get_by_placeholder("/home/me/Pictures/sports-day").fill(str(card))
        page.get_by_role("button", name="Add and detect faces").click(timeout=10_000)
        expect(page.get_by_text("1 photo ready for review, 0 could not be read, 1 waiting for detection.")
               ).to_be_visible(timeout=60_000)
        expect(page.get_by_text("now MVI_0001.MOV: frame", exact=False)).to_be_visible()
        expect(page.get_by_role("link", name="Review the photos")).to_be_visible()
        expect(page.get_by_text("1 photo and 1 video ready for review")).to_be_visible(timeout=180_000)


def clip_on_its_page(page, url: str, tmp_path, name: str, frames: list) -> None:
    """A session of one clip, added from a camera's card (inside the folders the dashboard may
    read), detected, and open on the review page."""
    card = tmp_path / "card"
    card.mkdir()
    write_clip(card / name, frames)
    start_session(page, url, "Video test", "E2E Reviewer")
    # The folder typed and not applied with Enter: one click on the button adds it (a
    # disabled button waited for the field to be applied, and the first click was lost).
    page.get_by_placeholder("/home/me/Pictures/sports-day").fill(str(card))
    page.get_by_role("button", name="Add and detect faces").click(timeout=10_000)
    expect(page.get_by_text("1 video ready for review, 0 could not be read")).to_be_visible(timeout=120_000)
    settle(page)
    page.get_by_role("link", name="Review one image").click()


def test_a_video_reviewed_and_exported_in_the_browser(server, tmp_path, astronaut_rgb, astronaut_face_box):
    """Add a clip from a folder, scrub its frames covered, listen to its sound, approve it, and download the zip
    with the MP4."""
    import av

    from tests.clips import exposed, read_frames

    url, ws_root = server
    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 20)
    with chromium_page() as page:
        clip_on_its_page(page, url, tmp_path, "assembly.mp4", [f for f, _ in moving])
        expect(page.get_by_role("heading", name="assembly.mp4 — pending")).to_be_visible()
        expect(page.get_by_text("frame 1 of 20 at 0.00 s", exact=False)).to_be_visible()
        slider = page.locator('[data-testid="stMain"] input[type=range]').first
        slider.focus()
        for _ in range(5):
            slider.press("ArrowRight")
        expect(page.get_by_text("frame 6 of 20 at 0.20 s", exact=False)).to_be_visible()
        expect(page.get_by_text("track ", exact=False).first).to_be_visible()
        settle(page)
        # Its sound plays on the page, as long as the clip, to find where a name is said.
        page.get_by_text("Listen to its sound, as it will leave").click()
        page.wait_for_function("() => { const a = document.querySelector('audio'); return a && a.readyState >= 1; }")
        assert abs(page.evaluate("() => document.querySelector('audio').duration") - len(moving) / 25) < 0.1
        page.get_by_text("Listen to its sound, as it will leave").click()
        settle(page)

        # Draw a face on frame 6, then move it on frame 12 where it "drifted".
        ws = Workspace(ws_root)
        image = ws.images(ws.sessions()[0]["id"])[0]
        page.get_by_text("Draw a face the detectors missed, on this frame").click()
        drag_box(page, 0.1, 0.1, 0.3, 0.3)
        # The button comes with no warning: it was drawn inside a cached function, and the page
        # showed Streamlit's CachedWidgetWarning, with its traceback, under the frame.
        expect(page.get_by_role("button", name="Add this face and follow it")).to_be_visible()
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        page.get_by_role("button", name="Add this face and follow it").click()
        wait_for(lambda: any(f.by_hand for f in ws.image(image.id).faces))
        drawn = next(f for f in ws.image(image.id).faces if f.by_hand)
        settle(page)
        slider.focus()
        for _ in range(6):
            slider.press("ArrowRight")
        settle(page)
        drag_box(page, 0.5, 0.5, 0.7, 0.7)
        page.get_by_text(f"{drawn.detector.split(' drawn')[0]} (drawn), moved here").click()
        settle(page)
        page.get_by_role("button", name="Move track").click()
        wait_for(lambda: any(a["action"] == "drawn face moved" for a in ws.audit(image.session_id)))
        assert next(f for f in ws.image(image.id).faces if f.by_hand).x > drawn.x
        settle(page)
        page.get_by_text("Draw a face the detectors missed, on this frame").click()
        settle(page)
        page.get_by_role("button", name="Approve").click()
        wait_for(lambda: ws.images(ws.sessions()[0]["id"])[0].status == APPROVED)
        settle(page)
        saved = tmp_path / "export.zip"
        saved.write_bytes(export_zip(page))
        # The Export page plays the clip from the zip itself: the browser loads it, and it is as long
        # and as large as the clip.
        page.get_by_text("Look at what leaves (1 file(s)), shown from the zip itself").click()
        page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 1; }")
        duration, width = page.evaluate("() => { const v = document.querySelector('video'); "
                                        "return [v.duration, v.videoWidth]; }")
        assert abs(duration - len(moving) / 25) < 0.1 and width == 640
    with zipfile.ZipFile(saved) as archive:
        assert "images/Video_test-0001.mp4" in archive.namelist()
        (tmp_path / "out.mp4").write_bytes(archive.read("images/Video_test-0001.mp4"))
    frames, _ = read_frames(tmp_path / "out.mp4")
    assert len(frames) == len(moving)
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.audio  # the sound went with it
    # The default cover (blur) on every frame: the face no longer looks like itself.
    assert all(exposed(src, out, box) <= 0.5 for (src, box), out in zip(moving, frames))


def test_a_face_missed_in_a_crowd_clip_is_drawn_in_the_zoomed_frame(server, tmp_path, astronaut_rgb,
                                                                     astronaut_face_box):
    """A crowd clip's small face is seen in the zoomed frame, and was drawn only on the whole
    frame, where it is a few pixels: it is drawn in the window where it is seen, and stored
    where it is in the frame."""
    import re

    url, ws_root = server
    with chromium_page() as page:
        clip_on_its_page(page, url, tmp_path, "crowd.mp4",
                         [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 6, 1920, 1080)])
        page.get_by_text("Zoom: inspect this frame at full resolution").click()
        settle(page)
        for _ in range(3):  # closer than the whole frame: a part of it, enlarged
            page.get_by_role("button", name="+").click()
            settle(page)
        page.get_by_text("Draw a face the detectors missed, in this window").click()
        settle(page)
        said = page.get_by_text("showing x ", exact=False).inner_text()
        x0, x1, y0, y1, zoomed = re.search(r"showing x (\d+)-(\d+), y (\d+)-(\d+) of 1920 x 1080 px at ([\d.]+)x",
                                           said).groups()
        x0, x1, y0, y1 = map(int, (x0, x1, y0, y1))
        assert x1 - x0 <= 960 and float(zoomed) >= 2, said
        drag_box(page, 0.4, 0.4, 0.5, 0.5)
        expect(page.get_by_role("button", name="Add this face and follow it")).to_be_visible()
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        page.get_by_role("button", name="Add this face and follow it").click()
        ws = Workspace(ws_root)
        image = ws.images(ws.sessions()[0]["id"])[0]
        wait_for(lambda: any(f.by_hand for f in ws.image(image.id).faces))
        drawn = next(f for f in ws.image(image.id).faces if f.by_hand)
    # Where it was dragged in the window, in the frame's own pixels (a tenth of the window's sides).
    width, height = x1 - x0, y1 - y0
    assert abs(drawn.x - (x0 + 0.4 * width)) < 0.03 * width and abs(drawn.y - (y0 + 0.4 * height)) < 0.03 * height, \
        (drawn, said)
    assert abs(drawn.w - 0.1 * width) < 0.03 * width and abs(drawn.h - 0.1 * height) < 0.03 * height, (drawn, said)
