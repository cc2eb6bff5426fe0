"""Reviewing at the speed of a person, in headless Chromium at 1366 x 768: a reload keeps your
place and your comment, the keyboard alone approves and moves on, and unflagged photos can be
approved in bulk, each logged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.records import APPROVED, PENDING
from core.review import detect_pending
from core.workspace import Workspace
from tests.browser import (StreamlitServer, chromium_page, drag_box, reopen_session, require_chromium, settle, tick,
                           until, wait_for)
from tests.conftest import jpeg_bytes

require_chromium()

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def session(tmp_path, engine, astronaut_rgb):
    ws = Workspace(tmp_path / "ws")
    session_id = ws.create_session("Volume", "Alice")
    photos = {"one.jpg": astronaut_rgb, "two.jpg": astronaut_rgb[:, ::-1].copy(),
              "three.jpg": np.rot90(astronaut_rgb).copy(), "empty.jpg": np.full((300, 400, 3), 120, np.uint8)}
    for name, pixels in photos.items():
        ws.add_image(session_id, name, jpeg_bytes(pixels), "Alice")
    detect_pending(ws, engine, session_id)
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    yield server, ws, session_id
    server.stop()


def small_screen(page) -> None:
    page.set_viewport_size({"width": 1366, "height": 768})


def test_review_opened_before_any_photo_is_detected_shows_the_first_once_it_is(tmp_path, astronaut_rgb):
    # A reviewer who adds a batch and goes straight to "Review one image" (or opens it after a
    # restart, with the batch still waiting) was told "No photo is ready for review yet" until
    # they reloaded the page: it neither followed detection nor started it.
    ws = Workspace(tmp_path / "ws")
    session_id = ws.create_session("Straight to review", "Alice")
    crowd = np.asarray(Image.fromarray(astronaut_rgb).resize((4000, 3000)))  # 12 MP: seconds to detect
    ws.add_image(session_id, "crowd.jpg", jpeg_bytes(crowd), "Alice")
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    try:
        with chromium_page() as page:
            page.goto(server.url)  # the link's token, traded for the cookie
            page.goto(f"{server.base}review?session={session_id}&reviewer=Alice")
            expect(page.get_by_text("No photo is ready for review yet.")).to_be_visible()
            expect(page.get_by_role("heading", name="crowd.jpg — pending")).to_be_visible(timeout=120_000)
        assert [name for _, name, _ in ws.listing(session_id)] == ["crowd.jpg"]
    finally:
        server.stop()


def test_review_of_a_session_whose_files_all_failed_says_so(tmp_path):
    # "No photo is ready for review yet" alone promised photos that were never coming.
    ws = Workspace(tmp_path / "ws")
    session_id = ws.create_session("Nothing usable", "Alice")
    ws.add_image(session_id, "broken.jpg", b"not a photo at all", "Alice")
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    try:
        with chromium_page() as page:
            page.goto(server.url)
            page.goto(f"{server.base}review?session={session_id}&reviewer=Alice")
            expect(page.get_by_text("1 file(s) could not be used: Start lists each with the reason.")).to_be_visible(
                timeout=60_000)
        assert ws.failures(session_id)[0][0] == "broken.jpg"
    finally:
        server.stop()


def test_reload_keeps_the_photo_the_reviewer_and_the_comment(session, tmp_path):
    server, ws, session_id = session
    with chromium_page() as page:
        small_screen(page)
        reopen_session(page, server.url, "Alice")
        page.get_by_role("link", name="Review one image").click()
        page.get_by_role("button", name="Next ▶").click()
        expect(page.get_by_role("heading", name="two.jpg — pending")).to_be_visible()
        settle(page)
        page.get_by_label("Comment (optional)").fill("check the second face")
        page.get_by_label("Comment (optional)").press("Tab")
        wait_for(lambda: ws.images(session_id)[1].draft == "check the second face")
        page.screenshot(path=str(tmp_path / "review-1366.png"), full_page=True)
        page.reload()
        # The first screen after the reload is the photo being reviewed, with the comment.
        expect(page.get_by_role("heading", name="two.jpg — pending")).to_be_visible()
        expect(page.get_by_label("Comment (optional)")).to_have_value("check the second face")
        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Reviewer: Alice")
        page.set_viewport_size({"width": 1920, "height": 1080})
        page.screenshot(path=str(tmp_path / "review-1920.png"), full_page=True)


def test_keyboard_alone_approves_and_moves_on(session):
    server, ws, session_id = session
    with chromium_page() as page:
        small_screen(page)
        reopen_session(page, server.url, "Alice")
        page.get_by_role("link", name="Review one image").click()
        expect(page.get_by_role("heading", name="one.jpg — pending")).to_be_visible()
        expect(page.get_by_text("Keys: A approve")).to_be_visible()
        settle(page)
        # The listener's frame shows nothing and takes no room (sized to its content it was a
        # 150 px blank that pushed Approve below the fold).
        comment = page.get_by_label("Comment (optional)").bounding_box()
        assert page.get_by_text("Keys: A approve").bounding_box()["y"] - comment["y"] - comment["height"] < 60
        page.get_by_role("heading", name="one.jpg — pending").click()  # focus the page, not a field
        page.keyboard.press("a")
        expect(page.get_by_role("heading", name="two.jpg — pending")).to_be_visible()
        assert ws.images(session_id)[0].status == APPROVED
        settle(page)
        page.keyboard.press("ArrowRight")
        expect(page.get_by_role("heading", name="three.jpg — pending")).to_be_visible()
        settle(page)
        page.keyboard.press("ArrowLeft")
        expect(page.get_by_role("heading", name="two.jpg — pending")).to_be_visible()
        # Typing a comment is typing: "a" goes into the field, not to the Approve button.
        settle(page)
        page.get_by_label("Comment (optional)").fill("")
        page.get_by_label("Comment (optional)").press("a")
        settle(page)
        assert ws.images(session_id)[1].status == PENDING


def test_bulk_approval_of_unflagged_photos_is_logged_photo_by_photo(session):
    server, ws, session_id = session
    with chromium_page() as page:
        small_screen(page)
        reopen_session(page, server.url, "Alice")
        page.get_by_role("link", name="Overview").click()
        expander = page.get_by_text("pending photo(s) that need no attention")
        settle(page)  # Streamlit drops a click that lands during a rerun
        expander.click()
        label = expander.inner_text()
        count = int(label.split("Approve the ")[1].split(" ")[0])
        approve = page.get_by_role("button", name=f"Approve {count} photo(s)")
        tick(page, f"Yes, approve these {count} photo(s)", approve)
        settle(page)
        approve.click()
        expect(page.get_by_text(f"{count} of {count} photo(s) approved.")).to_be_visible()
    records = {r.name: r for r in ws.images(session_id)}
    assert records["empty.jpg"].status == PENDING, "a photo with no face found is flagged: never bulk-approved"
    approved = [r for r in records.values() if r.status == APPROVED]
    assert len(approved) == count >= 2
    log = [a for a in ws.audit(session_id) if a["action"] == APPROVED]
    assert sorted(a["image_id"] for a in log) == sorted(r.id for r in approved)
    assert all(a["detail"]["comment"] == "bulk approval: no attention flag" and a["actor"] == "Alice" for a in log)


def zoom_to_face(page, url: str, number: int) -> None:
    """At 1366 x 768, open the review page's zoom view and zoom to face `number` by its number."""
    small_screen(page)
    reopen_session(page, url, "Alice")
    page.get_by_role("link", name="Review one image").click()
    tick(page, "Zoom: inspect, select and draw at full resolution", page.get_by_role("button", name="Whole photo"))
    page.get_by_role("combobox").nth(1).click()
    page.keyboard.type(f"face {number}")
    page.keyboard.press("Enter")


@pytest.fixture
def crowd(tmp_path, engine, astronaut_rgb, astronaut_face_box):
    """A 12 MP photo (4000 x 3000) of a crowd: the portrait pasted 14 times at a fifth of its
    size (faces about 25 px, 10 px in the 1600 px preview) over a textured background."""
    import cv2

    rng = np.random.default_rng(3)
    canvas = cv2.resize(rng.integers(60, 200, (300, 400, 3), dtype=np.uint8), (4000, 3000),
                        interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(astronaut_rgb, (102, 102), interpolation=cv2.INTER_AREA)
    for n in range(14):
        x, y = 250 + (n % 7) * 500, 700 + (n // 7) * 1300
        canvas[y:y + 102, x:x + 102] = small
    # A patch of fine detail where a near miss will be placed: its cover shows as lost detail.
    squares = (np.indices((80, 80)).sum(axis=0) // 4 % 2 * 255).astype(np.uint8)
    canvas[1460:1540, 1960:2040] = squares[:, :, None]
    ws = Workspace(tmp_path / "ws")
    session_id = ws.create_session("Crowd", "Alice")
    image_id, _ = ws.add_image(session_id, "crowd.jpg", jpeg_bytes(canvas), "Alice")
    detect_pending(ws, engine, session_id)
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    yield server, ws, image_id
    server.stop()


def test_zoom_into_a_crowd_select_switch_draw_move_undo_remove(crowd, tmp_path):
    """At 1366 x 768: zoom to a face of 25 px in a 12 MP photo (10 px in the preview), switch it
    off (selected by its number, with the T key) and on again (selected by a click on its box), draw a missed face at
    full resolution, move it, undo the move, remove it; every step reaches the stored faces."""
    from core.faces import reviewable

    server, ws, image_id = crowd
    record = ws.image(image_id)
    chosen = reviewable(record.faces, ws.batch_settings(record.session_id).threshold)
    small = [n + 1 for n, i in enumerate(chosen) if record.faces[i].size < 40]
    assert len(small) >= 10, "the engine finds the small faces at full resolution"
    number = small[0]
    face = record.faces[chosen[number - 1]]

    def stored():
        return ws.image(image_id).faces

    with chromium_page() as page:
        zoom_to_face(page, server.url, number)
        leave = page.get_by_role("button", name=f"Leave face {number} uncovered")
        expect(leave).to_be_visible()
        expect(page.get_by_text("x (enlarged), as exported", exact=False)).to_be_visible()
        page.screenshot(path=str(tmp_path / "zoom-1366.png"), full_page=True)
        settle(page)
        page.get_by_role("heading", name="crowd.jpg — pending").click()  # the keys act outside fields
        page.keyboard.press("t")  # the shortcut for the selected face's switch
        wait_for(lambda: not next(f for f in stored() if f.box == face.box).enabled)

        # Unselect, then select the face again by clicking its box (the window is centred on it).
        settle(page)
        page.get_by_role("combobox").nth(1).click()
        page.keyboard.type("none")
        page.keyboard.press("Enter")
        expect(page.get_by_role("button", name=f"Cover face {number}")).to_have_count(0)
        settle(page)
        chart = page.locator(".js-plotly-plot .nsewdrag").first
        area = chart.bounding_box()
        until(page, lambda: page.mouse.click(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2),
              page.get_by_role("button", name=f"Cover face {number}").is_visible, "clicking a face's box")
        page.get_by_role("button", name=f"Cover face {number}").click()
        wait_for(lambda: next(f for f in stored() if f.box == face.box).enabled)

        # Draw a missed face at full resolution, select it, move it, undo the move, remove it.
        settle(page)
        page.get_by_text("draws a face (drag a box)").click()
        settle(page)
        drag_box(page, 0.05, 0.05, 0.15, 0.2)
        page.get_by_role("button", name="Add a face here").click()
        wait_for(lambda: any(f.manual for f in stored()))
        drawn = next(f for f in stored() if f.manual)
        assert drawn.w < 80 and drawn.h < 80  # drawn enlarged: a few dozen photo px, covered as drawn
        settle(page)
        page.get_by_text("selects a face (click its box)").click()
        settle(page)
        chart = page.locator(".js-plotly-plot .nsewdrag").first
        area = chart.bounding_box()
        until(page, lambda: page.mouse.click(area["x"] + area["width"] * 0.1, area["y"] + area["height"] * 0.125),
              page.get_by_role("button", name="Remove the selected drawn face", exact=False).is_visible,
              "selecting the drawn face")
        page.get_by_text("draws a face (drag a box)").click()
        settle(page)
        drag_box(page, 0.7, 0.7, 0.8, 0.85)
        page.get_by_role("button", name="Move the selected face here").click()
        wait_for(lambda: next(f for f in stored() if f.manual).x > drawn.x)
        settle(page)
        page.get_by_role("button", name="Undo the last change to the faces").click()
        wait_for(lambda: next(f for f in stored() if f.manual).x == drawn.x)
        settle(page)
        page.get_by_role("button", name="Remove the selected drawn face", exact=False).click()
        wait_for(lambda: not any(f.manual for f in stored()))
        page.set_viewport_size({"width": 1920, "height": 1080})
        settle(page)
        page.screenshot(path=str(tmp_path / "zoom-1920.png"), full_page=True)
    actions = [a["detail"].get("change", "") for a in ws.audit(record.session_id) if a["action"] == "faces changed"]
    assert [a.split(" ")[0] for a in actions] == ["face", "face", "face", "drawn", "undone:", "drawn"]


def test_a_near_miss_is_covered_with_one_click_and_shown_covered(crowd):
    """At 1366 x 768: a candidate just under the threshold is picked by its number in the zoom
    view, covered with one click, and the window then shows its detail gone."""
    import base64
    import io

    from PIL import Image

    from core.faces import Face
    from dashboard.faces import face_rows

    server, ws, image_id = crowd
    record = ws.image(image_id)
    threshold = ws.batch_settings(record.session_id).threshold
    near = Face(1980, 1480, 40, 40, threshold - 0.05, "centerface")
    ws.save_detection(image_id, record.width, record.height, record.faces + [near])
    faces = ws.image(image_id).faces
    number = face_rows(faces, threshold)[1].index(faces.index(near)) + 1

    def centre_detail(page) -> float:
        href = page.locator(".js-plotly-plot image").first.get_attribute("href")
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).convert("L"), float)
        h, w = pixels.shape
        return float(pixels[h // 2 - 15:h // 2 + 15, w // 2 - 15:w // 2 + 15].std())

    with chromium_page() as page:
        zoom_to_face(page, server.url, number)
        cover = page.get_by_role("button", name=f"Cover face {number}")
        expect(cover).to_be_visible()
        settle(page)
        assert centre_detail(page) > 60  # the squares, sharp
        cover.click()
        wait_for(lambda: any(f.box == near.box and f.forced for f in ws.image(image_id).faces))
        expect(page.get_by_role("button", name=f"Leave face {number} uncovered")).to_be_visible()
        settle(page)
        assert centre_detail(page) < 20  # covered: the squares are gone
