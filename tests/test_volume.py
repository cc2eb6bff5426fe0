"""Reviewing at the speed of a person, in headless Chromium at 1366 x 768: a reload keeps your
place and your comment, the keyboard alone approves and moves on, and unflagged photos can be
approved in bulk, each logged."""

from __future__ import annotations

import numpy as np
import pytest

from core.review import detect_pending
from core.workspace import APPROVED, PENDING, Workspace
from tests.browser import StreamlitServer, chromium_page, reopen_session, require_chromium, settle, tick, wait_for
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
