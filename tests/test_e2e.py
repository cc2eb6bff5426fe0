"""The whole review flow in headless Chromium against a real `streamlit run` on loopback."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.workspace import APPROVED, REJECTED, Workspace
from tests.conftest import ROOT, jpeg_bytes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser test: install Debian's chromium")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = dict(os.environ, FACE_PRIVACY_WORKSPACE=str(tmp_path / "ws"), FACE_PRIVACY_FOLDER_ROOTS=str(tmp_path))
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            urllib.request.urlopen(url + "_stcore/health", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("streamlit did not start: " + (tmp_path / "server.log").read_text())
    yield url, tmp_path / "ws"
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture
def photos(tmp_path, astronaut_rgb):
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # a GPS position that must not survive
    files = {
        "portrait.jpg": jpeg_bytes(astronaut_rgb, exif=exif.tobytes()),
        "mirror.jpg": jpeg_bytes(astronaut_rgb[:, ::-1].copy(), exif=exif.tobytes()),
        "dim.jpg": jpeg_bytes((astronaut_rgb * 0.8).astype(np.uint8)),
        "broken.jpg": b"\xff\xd8\xff\xe0 this is not really a JPEG",
    }
    folder = tmp_path / "upload"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_review_flow_in_a_real_browser(server, photos, tmp_path):
    url, ws_root = server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(60_000)
        page.goto(url)

        # Start a session and add three photos and one broken file.
        page.get_by_label("Session name").fill("Browser test")
        page.get_by_label("Your name").first.fill("E2E Reviewer")
        page.get_by_role("button", name="Start session").click()
        page.locator("input[type=file]").set_input_files(
            [str(photos / n) for n in ("portrait.jpg", "mirror.jpg", "dim.jpg", "broken.jpg")])
        expect(page.get_by_text("broken.jpg", exact=False).first).to_be_visible()
        page.get_by_role("button", name="Add and detect faces").click()
        expect(page.get_by_text("3 photo(s) ready for review, 1 could not be read")).to_be_visible(timeout=120_000)
        expect(page.get_by_role("alert")).to_contain_text("broken.jpg: the image data is damaged or truncated")

        ws = Workspace(ws_root)
        session_id = ws.sessions()[0]["id"]

        # Move the threshold slider in the sidebar: the batch settings follow.
        slider = page.locator('[data-testid="stSidebar"] input[type=range]').first
        slider.focus()
        for _ in range(3):
            slider.press("ArrowRight")
        expect(page.locator('[data-testid="stSidebar"]').get_by_text("0.27")).to_be_visible()
        _wait_for(lambda: ws.batch_settings(session_id).threshold == pytest.approx(0.27))

        # Review: untick the first photo's face, then reject it; approve the other two.
        page.get_by_role("link", name="Review one image").click()
        editor = page.locator('[data-testid="stDataFrame"]').first
        expect(editor).to_be_visible()
        box = editor.bounding_box()
        page.mouse.click(box["x"] + 60, box["y"] + 52)  # row 1 of the "enabled" column
        page.keyboard.press(" ")
        first = ws.images(session_id)[0]
        _wait_for(lambda: any(not f.enabled for f in ws.image(first.id).faces))
        settle(page)
        expect(page.get_by_role("heading", name="portrait.jpg — pending")).to_be_visible()

        # Draw a face the detectors "missed": drag a box over the photo, add it.
        page.get_by_text("Draw a face the detectors missed").click()
        plot = page.locator(".js-plotly-plot .nsewdrag").first
        expect(plot).to_be_visible()
        area = plot.bounding_box()
        x0, y0 = area["x"] + area["width"] * 0.6, area["y"] + area["height"] * 0.6
        page.mouse.move(x0, y0)
        page.mouse.down()
        page.mouse.move(x0 + 30, y0 + 30, steps=5)
        page.mouse.move(x0 + 60, y0 + 70, steps=5)
        page.mouse.up()
        page.get_by_role("button", name="Add this face").click()
        _wait_for(lambda: any(f.manual for f in ws.image(first.id).faces))
        settle(page)
        page.get_by_text("Draw a face the detectors missed").click()
        settle(page)

        page.get_by_label("Comment (optional)").fill("face left visible on purpose: reject")
        page.get_by_role("button", name="Reject").click()
        _wait_for(lambda: ws.image(first.id).status == REJECTED)
        for name in ("mirror.jpg", "dim.jpg"):
            expect(page.get_by_role("heading", name=f"{name} — pending")).to_be_visible()
            settle(page)
            page.get_by_role("button", name="Approve").click()
            _wait_for(lambda: any(r.name == name and r.status == APPROVED for r in ws.images(session_id)))
        _wait_for(lambda: [r.status for r in ws.images(session_id) if r.detected] == [REJECTED, APPROVED, APPROVED])

        # Reload: a new browser session; reopen the review session and find every decision.
        page.reload()
        expect(page.get_by_text("Open or start a review session first.")).to_be_visible()
        page.get_by_role("link", name="Go to Start").click()
        expect(page.get_by_role("button", name="Open session")).to_have_count(1)
        page.get_by_label("Your name").last.fill("E2E Reviewer")
        page.get_by_role("button", name="Open session").click()
        page.get_by_role("link", name="Overview").click()
        expect(page.get_by_text("0 pending · 2 approved · 1 rejected · 1 failed")).to_be_visible()

        # Export and download the zip.
        page.get_by_role("link", name="Export").click()
        page.get_by_role("button", name="Build the zip").click()
        with page.expect_download() as download:
            page.get_by_role("button", name="Download the zip").click()
        saved = tmp_path / "export.zip"
        download.value.save_as(saved)
        browser.close()

    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["images/dim.jpg", "images/mirror.jpg", "manifest.csv", "manifest.json"]
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["images"]:
            output = archive.read(entry["output_name"])
            assert b"Exif" not in output
            exported = np.asarray(Image.open(io.BytesIO(output)).convert("RGB")).astype(int)
            original = np.asarray(Image.open(photos / entry["original_name"]).convert("RGB")).astype(int)
            assert entry["regions"], "each approved photo has a covered face"
            inside = np.zeros(exported.shape[:2], bool)
            for x, y, w, h in entry["regions"]:
                inside[y:y + h, x:x + w] = True
            assert np.abs(exported - original)[inside].mean() > 10, "face regions changed"
            assert np.abs(exported - original)[~inside].mean() < 3, "the rest only re-encoded"
            assert entry["threshold"] == pytest.approx(0.27) and entry["reviewer"] == "E2E Reviewer"


def settle(page) -> None:
    """Wait until the Streamlit script has finished its run (a click during a rerun is lost)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def _wait_for(condition, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")
