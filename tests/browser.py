"""A real `streamlit run` on a free loopback port and headless Debian Chromium, for the tests
that drive the dashboard as a reviewer does."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> None:
    """Skip on a machine without Chromium; in CI its absence is an error, not a skip."""
    if CHROMIUM:
        return
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser tests: install Debian's chromium")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StreamlitServer:
    """`streamlit run app.py` over a given workspace; `prefix` wraps the command (strace)."""

    def __init__(self, workspace: Path, log: Path, prefix: tuple[str, ...] = (), token: str | None = None,
                 home: Path | None = None):
        """`token`: a fixed access token (FACE_PRIVACY_TOKEN); None lets the server make its own,
        which it writes to `link_file` (no terminal here). `home`: the server's HOME."""
        self.workspace, self.log, self.prefix, self.home = workspace, log, prefix, home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.token = token if token is not None else secrets.token_urlsafe(16)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The link a reviewer opens: the first visit trades the token for a cookie."""
        return f"{self.base}?token={self.token}"

    @property
    def link_file(self) -> Path:
        return self.workspace / "dashboard-link.txt"

    def start(self, generated_token: bool = False) -> StreamlitServer:
        """With `generated_token` the server makes its own token; it is read back from the
        private file the server names in its log."""
        env = dict(os.environ, FACE_PRIVACY_WORKSPACE=str(self.workspace),
                   FACE_PRIVACY_FOLDER_ROOTS=str(self.workspace.parent))
        env.pop("FACE_PRIVACY_TOKEN", None)
        env.pop("ORT_DISABLE_TELEMETRY", None)  # as a user starts it (this process's imports set it)
        if self.home:
            env["HOME"] = str(self.home)
            env.pop("XDG_CACHE_HOME", None)
        if not generated_token:
            env["FACE_PRIVACY_TOKEN"] = self.token
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "streamlit", "run", "app.py",
                 "--server.port", str(self.port), "--server.headless", "true"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(120):
            try:
                urllib.request.urlopen(self.base + "_stcore/health", timeout=1)
                if generated_token:
                    wait_for(self.link_file.exists, 30)
                    self.token = self.link_file.read_text().strip().split("?token=")[1]
                return self
            except OSError:
                time.sleep(0.5)
        self.kill()
        raise RuntimeError("streamlit did not start: " + self.log.read_text(errors="replace"))

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would stop it: no clean-up runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        """Stop it as a user does (Ctrl-C); its log then holds no traceback, nor a warning that
        Streamlit logs with its stack (what a page showed as an exception, and what a background
        thread or callback raised that no page showed)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        logged = self.log.read_text(errors="replace") if self.log.exists() else ""
        at = logged.find("(most recent call last)")
        assert at < 0, f"the dashboard logged a stack: {logged[max(0, at - 400):at + 1200]}"


@contextlib.contextmanager
def chromium_page(profile: Path | None = None):
    """A page of headless Chromium; with `profile`, a browser that keeps its profile (its disk
    cache among it) in that folder, as a user's does."""
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    options = {"viewport": {"width": 1400, "height": 1000}, "accept_downloads": True}
    with sync_playwright() as playwright:
        if profile is None:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
            context = browser.new_context(**options)
        else:
            browser = context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, args=args, **options)
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def settle(page) -> None:
    """Wait until the Streamlit script has finished its run (a click during a rerun is lost);
    the page it left shows no exception (an error, or a warning Streamlit shows as one)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    shown = page.locator('[data-testid="stException"]').all_inner_texts()
    assert not shown, f"the page shows an exception: {shown[0][:600]}"


def upload(page, paths: list, last: str) -> None:
    """Choose files (paths, or Playwright's name/mimeType/buffer payloads) in the Start page's
    uploader and wait until the page has taken them in:
    `last` (a name among them) is listed and the rerun the upload starts has finished, so that
    the next click is not lost in it (a slower machine's rerun outlasted the click)."""
    page.locator("input[type=file]").set_input_files([p if isinstance(p, dict) else str(p) for p in paths])
    page.get_by_text(last, exact=False).first.wait_for()
    settle(page)


def add_uploads(page) -> None:
    """Press "Add and detect faces" for the files chosen in the uploader until they are taken in
    (an intake empties the uploader). Streamlit drops a click that lands while the page reruns
    (once in CI, after an upload: nothing was added and the test waited for photos never coming);
    the button is pressed again only if nothing came of the press, and a file offered twice is
    added once."""
    chosen = page.locator('[data-testid="stFileChip"]')
    until(page, lambda: page.get_by_role("button", name="Add and detect faces").click(),
          lambda: chosen.count() == 0, "adding the files chosen", seconds=20)


def until(page, act, done, what: str, tries: int = 5, seconds: float = 5) -> None:
    """Do `act` until `done()` holds: Streamlit drops a click or key that lands while the page
    reruns, so the state is checked after the page settles and the action made again only if
    it was lost."""
    for _ in range(tries):
        settle(page)
        if done():
            return
        act()
        deadline = time.time() + seconds
        while time.time() < deadline:
            if done():
                return
            time.sleep(0.25)
    raise AssertionError(f"{what}: no effect after {tries} tries")


def tick(page, text: str, reveals) -> None:
    """Tick the checkbox labelled `text` until the control it reveals (`reveals`, a locator) shows."""
    until(page, lambda: page.get_by_text(text).click(), reveals.is_visible, f"ticking {text!r}")


def drag_box(page, left: float, top: float, right: float, bottom: float) -> None:
    """Drag a box on the drawing canvas, its corners given as fractions of the canvas."""
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    plot.wait_for(timeout=30_000)
    area = plot.bounding_box()
    x0, y0 = area["x"] + area["width"] * left, area["y"] + area["height"] * top
    x1, y1 = area["x"] + area["width"] * right, area["y"] + area["height"] * bottom
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def export_zip(page) -> bytes:
    """Build the session's zip on the Export page and download it through its link."""
    from playwright.sync_api import expect

    page.get_by_role("link", name="Export").click()
    page.get_by_role("button", name="Build the zip").click()
    link = page.get_by_role("link", name="Download the zip")
    expect(link).to_be_visible(timeout=120_000)
    origin = "/".join(page.url.split("/")[:3])
    return page.request.get(origin + link.get_attribute("href")).body()


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError("condition not met in time")


def start_session(page, url: str, name: str, reviewer: str) -> None:
    page.goto(url)
    page.get_by_label("Session name", exact=True).fill(name)
    page.get_by_label("Your name").first.fill(reviewer)
    page.get_by_role("button", name="Start session").click()
    page.get_by_role("button", name="Add and detect faces").wait_for()
    settle(page)


def reopen_session(page, url: str, reviewer: str) -> None:
    page.goto(url)
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="Open session")).to_have_count(1)
    page.get_by_label("Your name").last.fill(reviewer)
    page.get_by_role("button", name="Open session").click()
    page.get_by_role("button", name="Add and detect faces").wait_for()
    settle(page)


def two_reviewers(page, url: str, names: tuple[str, str], heading: str):
    """Two tabs of one browser on the review page of the same photo, one reviewer each."""
    from playwright.sync_api import expect

    other = page.context.new_page()
    other.set_default_timeout(60_000)
    for tab, name in ((page, names[0]), (other, names[1])):
        reopen_session(tab, url, name)
        tab.get_by_role("link", name="Review one image").click()
        expect(tab.get_by_role("heading", name=heading)).to_be_visible()
        settle(tab)
    return page, other
