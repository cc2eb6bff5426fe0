"""A review a compliance officer can sign, driven in headless Chromium against a real server:
decisions are about the state the reviewer saw, a zip is a snapshot that says when it stops
matching, names are data, and a purge deletes."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import pytest
from PIL import Image

from core.pipeline import Settings
from core.records import APPROVED, PENDING, REJECTED
from core.review import detect_pending
from core.workspace import Workspace
from tests.browser import (StreamlitServer, add_uploads, chromium_page, reopen_session, require_chromium, settle, tick,
                           two_reviewers, until, upload, wait_for)
from tests.conftest import jpeg_bytes

require_chromium()

from playwright.sync_api import expect  # noqa: E402


@pytest.fixture
def served(tmp_path):
    ws_root = tmp_path / "ws"
    server = StreamlitServer(ws_root, tmp_path / "server.log")
    yield server, Workspace(ws_root)
    server.stop()


def session_with(ws: Workspace, engine, photos: dict[str, bytes], name: str = "Signing") -> tuple[int, dict]:
    session_id = ws.create_session(name, "Alice")
    ids = {n: ws.add_image(session_id, n, data, "Alice")[0] for n, data in photos.items()}
    detect_pending(ws, engine, session_id)
    return session_id, ids


def shown(text: str) -> re.Pattern:
    """`text` as a page shows it: the same characters, with an invisible word joiner where a bare
    address would otherwise become a link (dashboard/text.py)."""
    return re.compile(re.escape(text).replace("//", "\u2060?//").replace("@", "\u2060?@"))


def download(page, name: str) -> bytes:
    link = page.get_by_role("link", name=name)
    expect(link).to_be_visible(timeout=180_000)
    origin = "/".join(page.url.split("/")[:3])
    return page.request.get(origin + link.get_attribute("href")).body()


def test_an_approval_on_a_stale_tab_is_refused_and_the_zip_follows_the_later_state(served, engine, astronaut_rgb):
    server, ws = served
    session_id, ids = session_with(ws, engine, {"one.jpg": jpeg_bytes(astronaut_rgb)})
    server.start()
    with chromium_page() as page:
        alice, bob = two_reviewers(page, server.url, ("Alice", "Bob"), "one.jpg — pending")
        # Bob switches the face off (through the table); Alice's tab still shows it covered.
        editor = bob.locator('[data-testid="stDataFrame"]').first
        box = editor.bounding_box()

        def untick():  # a click that lands while the page reruns is dropped: made again until it takes
            bob.mouse.click(box["x"] + 60, box["y"] + 52)
            bob.keyboard.press(" ")
        until(bob, untick, lambda: any(not f.enabled for f in ws.image(ids["one.jpg"]).faces), "unticking a face")
        alice.get_by_role("button", name="Approve").click()
        expect(alice.get_by_text("Not done:")).to_be_visible()
        expect(alice.get_by_text("changed since this page showed it")).to_be_visible()
        assert ws.image(ids["one.jpg"]).status == PENDING, "nothing was approved"
        # Alice now sees the face switched off, approves what she sees; the zip follows it.
        settle(alice)
        alice.get_by_role("button", name="Approve").click()
        wait_for(lambda: ws.image(ids["one.jpg"]).status == APPROVED)
        settle(alice)
        alice.get_by_role("link", name="Export").click()
        alice.get_by_role("button", name="Build the zip").click()
        expect(alice.get_by_text("Current export")).to_be_visible(timeout=180_000)
    record = ws.image(ids["one.jpg"])
    assert record.approval_current(ws.batch_settings(session_id)) and not any(f.enabled for f in record.faces
                                                                              if f.score >= 0.9)
    export = ws.exports.of_session(session_id)[0]
    # The face left uncovered on purpose is caught by the residual check: held back, not exported.
    assert export["counts"]["held back"] == 1 and export["counts"]["exported"] == 0
    with zipfile.ZipFile(ws.files.exports / export["audit_file"]) as archive:
        (photo,) = json.loads(archive.read("manifest.json"))["photos"]
        assert photo["outcome"] == "held back" and "residual check" in photo["reason"]


def test_rejected_during_a_slow_export_is_not_in_the_zip(served, engine, astronaut_rgb):
    server, ws = served
    big = np.asarray(Image.fromarray(astronaut_rgb).resize((2000, 2000), Image.BICUBIC))
    photos = {f"big-{i}.jpg": jpeg_bytes(np.rot90(big, i).copy()) for i in range(3)}
    session_id, ids = session_with(ws, engine, photos)
    for image_id in ids.values():
        ws.decide(image_id, APPROVED, "Alice")
    server.start()
    with chromium_page() as page:
        reopen_session(page, server.url, "Alice")
        page.get_by_role("link", name="Export").click()
        page.get_by_role("button", name="Build the zip").click()
        expect(page.get_by_text("Building the zip")).to_be_visible()
        last = ids["big-2.jpg"]
        wait_for(lambda: ws.exports.of_session(session_id)[0]["done"] >= 1, 120)
        assert ws.exports.of_session(session_id)[0]["status"] == "building", "the export was too quick to test this"
        ws.decide(last, REJECTED, "Bob", "consent withdrawn")  # another reviewer, meanwhile
        expect(page.get_by_text("The last zip is out of date")).to_be_visible(timeout=300_000)
        expect(page.get_by_role("link", name="Download the zip")).to_have_count(0)
    export = ws.exports.of_session(session_id)[0]
    assert export["status"] == "complete" and not export["current"]
    with zipfile.ZipFile(ws.files.exports / export["audit_file"]) as archive:
        audit = json.loads(archive.read("manifest.json"))
        photos_out = {p["original_name"]: p for p in audit["photos"]}
    assert photos_out["big-2.jpg"]["outcome"] == "rejected"
    with zipfile.ZipFile(ws.files.exports / export["file"]) as archive:
        published = [n for n in archive.namelist() if n.startswith("images/")]
        manifest = json.loads(archive.read("manifest.json"))
    assert len(published) == len(manifest["images"]) == export["counts"]["exported"] == 2
    assert manifest["exported_at"] == audit["exported_at"], "one export, one time in both records"
    assert all(p["outcome"] == "exported" for n, p in photos_out.items() if n != "big-2.jpg")


@pytest.fixture
def one_approved(served, engine, astronaut_rgb):
    """A served session with one approved photo: (server, workspace, session id, photo id)."""
    server, ws = served
    session_id, ids = session_with(ws, engine, {"one.jpg": jpeg_bytes(astronaut_rgb)})
    ws.decide(ids["one.jpg"], APPROVED, "Alice")
    server.start()
    return server, ws, session_id, ids["one.jpg"]


def test_zips_are_per_session_and_go_out_of_date_after_a_decision(one_approved):
    server, ws, session_id, photo = one_approved
    with chromium_page() as page:
        reopen_session(page, server.url, "Alice")
        page.get_by_role("link", name="Export").click()
        page.get_by_role("button", name="Build the zip").click()
        first = download(page, "Download the zip")
        assert first[:2] == b"PK"
        origin = "/".join(page.url.split("/")[:3])
        links = [origin + page.get_by_role("link", name=name).get_attribute("href") for name in (
            "Download the zip", "Download the audit package (keep it: it maps published names to originals)")]
        ws.decide(photo, REJECTED, "Alice", "consent withdrawn")
        # A tab still showing the link (or a link copied earlier) no longer gets that zip: it
        # holds a photo now rejected. Its audit package stays: it is the record of that export.
        stale = page.request.get(links[0])
        assert stale.status == 409 and b"out of date" in stale.body() and stale.body()[:2] != b"PK"
        assert page.request.get(links[1]).body()[:2] == b"PK"
        page.reload()
        reopen_session(page, server.url, "Alice")
        page.get_by_role("link", name="Export").click()
        expect(page.get_by_text("The last zip is out of date")).to_be_visible()
        expect(page.get_by_role("link", name="Download the zip")).to_have_count(0)
        # Another reviewer's new session sees none of the first session's zips.
        page.get_by_role("link", name="Start").click()
        page.get_by_role("button", name="Close this session").click()
        page.get_by_label("Session name", exact=True).fill("Second")
        page.get_by_label("Your name").first.fill("Bob")
        page.get_by_role("button", name="Start session").click()
        page.get_by_role("button", name="Add and detect faces").wait_for()
        settle(page)
        page.get_by_role("link", name="Export").click()
        expect(page.get_by_text(", approved, will be exported")).to_be_visible()
        expect(page.get_by_role("link", name=re.compile("Download"))).to_have_count(0)
        expect(page.get_by_text("The last zip is out of date")).to_have_count(0)


def test_batch_settings_ask_before_putting_approvals_out_of_date(one_approved):
    server, ws, session_id, photo = one_approved
    with chromium_page() as page:
        reopen_session(page, server.url, "Alice")
        page.get_by_role("link", name="Batch settings").first.click()
        expect(page.get_by_role("heading", name="Batch settings")).to_be_visible()
        settle(page)
        slider = page.locator('[data-testid="stMain"] input[type=range]').first
        slider.focus()
        for _ in range(80):
            slider.press("ArrowRight")
        expect(page.get_by_text("This change would put 1 photo, approved, out of date")).to_be_visible(timeout=30_000)
        assert ws.batch_settings(session_id).threshold == pytest.approx(Settings().threshold), "asked first, nothing written"
        settle(page)
        page.get_by_role("button", name="Cancel").click()
        settle(page)
        assert ws.image(photo).approval_current(ws.batch_settings(session_id))


def test_hostile_names_are_inert_and_purge_deletes(served, astronaut_rgb, tmp_path):
    server, ws = served
    formula, image_markdown = '=HYPERLINK("x")', "![x](http://127.0.0.2/)"
    server.start()
    requests = []
    with chromium_page() as page:
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server.url)
        page.get_by_label("Session name", exact=True).fill(image_markdown)
        page.get_by_label("Your name").first.fill(formula)
        page.get_by_role("button", name="Start session").click()
        page.get_by_role("button", name="Add and detect faces").wait_for()
        upload(page, [
            {"name": f"{formula}.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes(astronaut_rgb)},
            {"name": f"{image_markdown}.jpg", "mimeType": "image/jpeg",
             "buffer": jpeg_bytes(astronaut_rgb[:, ::-1].copy())}], f"{formula}.jpg")
        add_uploads(page)
        expect(page.get_by_text("2 photos ready for review")).to_be_visible(timeout=120_000)
        session_id = ws.sessions()[0]["id"]
        # Shown as typed, never as a link or an image.
        expect(page.get_by_role("heading", name=re.compile(r"^Session: !\[x\]\(http:"))).to_be_visible()
        # The browser sends the name with its quotes escaped (%22); whatever arrives is data.
        stored = [r.name for r in ws.images(session_id)]
        assert stored[0].startswith("=HYPERLINK(") and stored[1] == f"{image_markdown}.jpg"
        sidebar = page.locator('[data-testid="stSidebar"]')
        expect(sidebar).to_contain_text(shown(image_markdown))
        assert sidebar.get_by_role("link", name=re.compile("127.0.0.2")).count() == 0, "no link made"
        page.get_by_role("link", name="Review one image").click()
        expect(page.get_by_role("heading", name=f"{stored[0]} — pending")).to_be_visible()
        for _ in range(2):
            settle(page)
            page.get_by_label("Comment (optional)").fill(formula)
            page.get_by_role("button", name="Approve").click()
            settle(page)
        wait_for(lambda: all(r.status == APPROVED for r in ws.images(session_id)))
        settle(page)
        page.get_by_role("link", name="Overview").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.locator('[data-testid="stMain"]').get_by_text(shown(f"{image_markdown}.jpg"))).to_be_visible()
        page.get_by_role("link", name="Export").click()
        page.get_by_role("button", name="Build the zip").click()
        audit = download(page, "Download the audit package (keep it: it maps published names to originals)")
        assert page.locator("img[src*='127.0.0.2']").count() == 0
        assert not [url for url in requests if "127.0.0.2" in url], "the browser fetched a URL from a name"
        with zipfile.ZipFile(io.BytesIO(audit)) as archive:
            table = archive.read("manifest.csv").decode()
            report = archive.read("report.html").decode()
        assert "'=HYPERLINK" in table and ",=HYPERLINK" not in table and "\n=HYPERLINK" not in table
        assert '<img alt="x" src="http://127.0.0.2/"' not in report and "![x](http://127.0.0.2/)" in report

        # Purge the session: originals, previews and zips leave the disk.
        digests = [r.sha256 for r in ws.images(session_id)]
        assert all(ws.files.object_path(d).exists() for d in digests)
        page.get_by_role("link", name="Start").click()
        page.get_by_role("button", name="Add and detect faces").wait_for()
        settle(page)  # a click that lands while the page reruns is dropped by Streamlit
        page.get_by_text("Purge this session").click()
        purge = page.get_by_role("button", name="Purge the session")
        tick(page, "Yes, purge the session", purge)
        settle(page)
        purge.click()
        expect(page.get_by_role("button", name="Start session")).to_be_visible()
    assert not any(ws.files.object_path(d).exists() for d in digests)
    assert not any(list(ws.files.previews.glob(f"{d}-*")) for d in digests)
    assert not list(ws.files.exports.glob("*.zip"))
    assert ws.audit(session_id)[-1]["action"] == "session purged"
    assert "127.0.0.2" not in (tmp_path / "server.log").read_text()
