"""Only the person who started it can see the originals: private workspace files, and a
per-launch access token in front of every address of the real server."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from core.export import export_approved
from core.intake import add_files, intake_upload
from core.records import APPROVED
from core.review import detect_pending
from core.workspace import Workspace
from tests.conftest import jpeg_bytes

SECRET_NAME = "jane_doe_class3b.jpg"


def loose_umask():
    """The usual umask of a desktop session: new files world-readable unless made otherwise."""
    old = os.umask(0o022)
    return old


def modes(root):
    """Every folder and file under root, with its permission bits."""
    found = {root: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def reviewed_and_exported(root, engine, photo: bytes) -> tuple[Workspace, int]:
    ws = Workspace(root)
    session = ws.create_session("Class photos", "Ann")
    add_files(ws, session, intake_upload(SECRET_NAME, photo), "Ann")
    detect_pending(ws, engine, session)
    image = ws.images(session)[0]
    ws.decide(image.id, APPROVED, "Ann")
    export_approved(ws, session, "Ann", engine.detector)
    return ws, session


def test_every_workspace_file_is_private_whatever_the_umask(tmp_path, engine, astronaut_rgb):
    old = loose_umask()
    try:
        ws, _ = reviewed_and_exported(tmp_path / "ws", engine, jpeg_bytes(astronaut_rgb))
        # The -wal and -shm files exist while a connection is open (as in the running dashboard).
        with contextlib.closing(sqlite3.connect(ws.db.path)) as db:
            db.execute("SELECT COUNT(*) FROM audit").fetchone()
            found = modes(ws.root)
    finally:
        os.umask(old)
    places = {p.relative_to(ws.root).parts[0] for p in found if p.is_file()}
    assert {"objects", "previews", "exports", "review.sqlite"} <= places
    assert any(p.name == "review.sqlite-wal" for p in found), "the WAL file is checked too"
    assert any(p.suffix == ".zip" for p in found)
    loose = {str(p): oct(m) for p, m in found.items() if m != (0o700 if p.is_dir() else 0o600)}
    assert loose == {}


def test_a_loose_workspace_is_tightened_at_start(tmp_path, engine, astronaut_rgb):
    ws, _ = reviewed_and_exported(tmp_path / "ws", engine, jpeg_bytes(astronaut_rgb))
    for path in [ws.root, *ws.root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # as an earlier version, under umask 022, left it
    Workspace(ws.root)
    assert all(m == (0o700 if p.is_dir() else 0o600) for p, m in modes(ws.root).items())


def test_a_workspace_opens_while_another_connection_comes_and_goes(tmp_path):
    """Opening tightens every file; SQLite's -wal and -shm files go when another connection (a
    dashboard's, a script's) closes. A file gone meanwhile has nothing left to tighten: it stopped
    the opening with FileNotFoundError (seen in CI, a browser test opening the server's workspace)."""
    import threading

    Workspace(tmp_path / "ws")
    stop = threading.Event()

    def come_and_go():
        while not stop.is_set():
            with contextlib.closing(sqlite3.connect(tmp_path / "ws" / "review.sqlite")) as db:
                db.execute("SELECT count(*) FROM sessions").fetchone()

    other = threading.Thread(target=come_and_go)
    other.start()
    try:
        for _ in range(150):
            Workspace(tmp_path / "ws")
    finally:
        stop.set()
        other.join()


def test_folder_intake_defaults_to_pictures_desktop_and_downloads(monkeypatch, tmp_path):
    from core.intake import allowed_roots

    monkeypatch.delenv("FACE_PRIVACY_FOLDER_ROOTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_PICTURES_DIR", raising=False)
    roots = allowed_roots()
    assert tmp_path.resolve() not in roots
    assert {r.name for r in roots} == {"Pictures", "Desktop", "Downloads"}
    monkeypatch.setenv("FACE_PRIVACY_FOLDER_ROOTS", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert [r.name for r in allowed_roots()] == ["a", "b"]


def test_a_camera_card_the_desktop_mounted_is_read_and_elsewhere_says_how(monkeypatch, tmp_path, astronaut_rgb):
    """A camera's card or a USB stick, mounted by the desktop under /media/<user>, is where a
    batch comes from: it was refused as outside the folders the dashboard may read, with no word
    of how to allow it. It is read; a folder elsewhere names the setting that allows it."""
    import getpass

    from core import intake

    monkeypatch.delenv("FACE_PRIVACY_FOLDER_ROOTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(intake, "REMOVABLE", (tmp_path / "media", tmp_path / "run-media"))
    card = tmp_path / "media" / getpass.getuser() / "EOS_DIGITAL" / "DCIM" / "100CANON"
    card.mkdir(parents=True)
    (card / "IMG_0001.JPG").write_bytes(jpeg_bytes(astronaut_rgb))
    taken = list(intake.intake_folder(str(card.parent.parent), intake.allowed_roots()))
    assert [(t.name, t.problem) for t in taken] == [("DCIM/100CANON/IMG_0001.JPG", None)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert "FACE_PRIVACY_FOLDER_ROOTS" in intake.folder_problem(str(elsewhere), intake.allowed_roots())


def test_two_workspaces_in_one_folder_each_keep_their_own_link(monkeypatch, tmp_path):
    """A school's and a hospital's workspaces side by side, each with its dashboard started into
    a log: the link file named for the school's opened the hospital's (one file beside both,
    written by whichever started last)."""
    import io

    from dashboard import access

    monkeypatch.delenv("FACE_PRIVACY_TOKEN", raising=False)
    named = {}
    for workspace, port, token in (("school", 8501, "school-token"), ("hospital", 8502, "hospital-token")):
        monkeypatch.setenv("FACE_PRIVACY_WORKSPACE", str(tmp_path / workspace))
        monkeypatch.setattr(access, "TOKEN", token)
        said = access.announce(f"http://127.0.0.1:{port}/", io.StringIO())
        named[workspace] = Path(said.split("the link to open is in ")[1].split(" (readable")[0])
    assert named["school"].read_text().strip() == "http://127.0.0.1:8501/?token=school-token"
    assert named["hospital"].read_text().strip() == "http://127.0.0.1:8502/?token=hospital-token"


def test_two_dashboards_open_in_one_browser_each_keep_their_access(tmp_path):
    """A school's and a hospital's workspaces, each with its dashboard (on its own port), open in
    one browser: the hospital's link set a cookie of the same name over the school's (a browser
    keeps cookies by host, not port), and the school's tab was locked out at its next page or
    picture. Each keeps its own; neither's opens the other."""
    from tests.browser import StreamlitServer, chromium_page, require_chromium

    require_chromium()
    servers = [StreamlitServer(tmp_path / name, tmp_path / f"{name}.log").start(generated_token=True)
               for name in ("school", "hospital")]
    try:
        with chromium_page() as page:
            for server in servers:  # each link opened in turn, as a reviewer with both would
                page.goto(server.url)
                page.get_by_role("button", name="Start session").wait_for()
            for server in servers:
                assert page.request.get(server.base).status == 200, f"{server.base} kept its access"
        with chromium_page() as other:  # a browser that opened only the school's link
            other.goto(servers[0].url)
            other.get_by_role("button", name="Start session").wait_for()
            cookies = other.context.cookies()
            assert other.request.get(servers[1].base).status == 403, "the school's cookie does not open the hospital's"
        ours = [c["name"] for c in cookies if c["name"].startswith("face_privacy")]
        assert ours == [f"face_privacy_access_{servers[0].port}"]
    finally:
        for server in servers:
            server.stop()


def test_without_the_token_a_browser_sees_only_the_locked_page(tmp_path, engine, astronaut_rgb):
    from tests.browser import StreamlitServer, chromium_page, require_chromium, settle

    require_chromium()
    from playwright.sync_api import expect

    ws, _ = reviewed_and_exported(tmp_path / "ws", engine, jpeg_bytes(astronaut_rgb))
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start(generated_token=True)
    try:
        assert "dashboard-link.txt" in (tmp_path / "server.log").read_text()
        assert stat.S_IMODE(server.link_file.stat().st_mode) == 0o600
        with chromium_page() as owner:
            # The owner opens the link: the token is traded for a cookie and leaves the address.
            owner.goto(server.url)
            owner.get_by_role("button", name="Open session").wait_for()
            assert "token" not in owner.url
            owner.reload()
            owner.get_by_role("button", name="Open session").wait_for()
            owner.get_by_label("Your name").last.fill("Ann")
            owner.get_by_role("button", name="Open session").click()
            owner.get_by_role("button", name="Add and detect faces").wait_for()
            settle(owner)  # a click during the rerun the session's opening started was lost (seen once in CI)
            owner.get_by_role("link", name="Overview").click()
            thumbnail = owner.locator("img[src*='/media/']").first
            thumbnail.wait_for()
            media = thumbnail.get_attribute("src")
            media_url = media if media.startswith("http") else server.base + media.lstrip("/")
        with chromium_page() as stranger:  # another profile: no cookie
            seen = []
            stranger.on("request", lambda request: seen.append(request.url))
            response = stranger.goto(server.base)
            assert response.status == 403
            expect(stranger.get_by_role("heading", name="This dashboard is locked")).to_be_visible()
            stranger.wait_for_timeout(2000)  # whatever the page would load, it has loaded now
            html = stranger.content()
            assert SECRET_NAME.split(".")[0] not in html and "/media/" not in html
            assert all("/media/" not in url and "_stcore/stream" not in url for url in seen), seen
            assert stranger.goto(media_url).status == 403
            assert stranger.goto(server.base + "?token=wrong").status == 403
        # Nor does any other local process get a photo without the cookie.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(media_url, timeout=10)
        assert refused.value.code == 403
        with urllib.request.urlopen(server.base + "_stcore/health", timeout=10) as health:
            assert health.status == 200
    finally:
        server.stop()
    token = server.token.encode()
    assert token not in (tmp_path / "server.log").read_bytes()
    for path in ws.root.rglob("*"):
        if path.is_file() and path != server.link_file:  # the private file that holds the link to open
            assert token not in path.read_bytes(), path
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as archive:
                    assert all(token not in archive.read(n) for n in archive.namelist())


def cached_pictures(profile: Path, smallest: int = 64) -> list[str]:
    """The pictures (JPEG, PNG, WebP) of at least `smallest` px a side found in a Chromium
    profile's caches: what the browser kept on disk of what it was shown."""
    import io

    from PIL import Image

    found = []
    for path in profile.rglob("*"):
        if not path.is_file() or "cache" not in str(path.relative_to(profile)).lower():
            continue
        data = path.read_bytes()
        for signature in (b"\xff\xd8\xff", b"\x89PNG", b"RIFF"):
            start = data.find(signature)
            try:
                with Image.open(io.BytesIO(data[start:])) as picture:
                    if start >= 0 and min(picture.size) >= smallest:
                        found.append(f"{path.name}: {picture.format} {picture.size}")
            except Exception:  # noqa: BLE001 - not a picture, or a cut one: nothing shown to anyone
                continue
    return found


def remembered_text(profile: Path) -> list[str]:
    """What the browser's form history (its autofill store) kept of the text typed into pages."""
    import sqlite3

    store = sqlite3.connect(f"file:{profile / 'Default' / 'Web Data'}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return [row[0] for table in ("autofill", "autocomplete") if table in tables
                for row in store.execute(f"SELECT value FROM {table}")]
    finally:
        store.close()


def test_the_reviewers_browser_keeps_no_picture_and_no_typed_case_detail(tmp_path, astronaut_rgb):
    """What a review shows and what is typed in it stays in the workspace, not in the browser's
    profile (seen in a real Chromium profile before: the original photo, whole, in its disk cache,
    which Streamlit's "public, immutable, max-age=31536000" allowed for a year; and the session's
    name, a comment and a folder's path in its form history). Pictures are now served no-store,
    and those fields are not remembered; the reviewer's own name still is, as the browser's own
    convenience (which shows that the browser does keep what it may)."""
    from tests.browser import (StreamlitServer, add_uploads, chromium_page, require_chromium, settle, start_session,
                               upload)

    require_chromium()
    from playwright.sync_api import expect

    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(jpeg_bytes(astronaut_rgb))
    typed = {"session": "Case 4411 J-Doe", "comment": "Foster child, never publish", "folder": "/srv/case-4411"}
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    profile = tmp_path / "profile"
    try:
        with chromium_page(profile) as page:
            start_session(page, server.url, typed["session"], "Ann Reviewer")
            upload(page, [photo], "portrait.jpg")
            add_uploads(page)
            expect(page.get_by_text("1 photo ready for review")).to_be_visible(timeout=120_000)
            page.get_by_role("link", name="Overview").click()
            expect(page.locator("img[src*='/media/']").first).to_be_visible()
            page.get_by_role("link", name="Review one image").click()
            settle(page)
            page.get_by_label("Comment (optional)").fill(typed["comment"])
            page.get_by_label("Comment (optional)").press("Enter")
            settle(page)
            page.get_by_text("Show the original beside it").click()
            settle(page)
            expect(page.locator("img[src*='/media/']")).to_have_count(2)  # the covered photo and its original
            page.get_by_role("link", name="Start").click()
            settle(page)
            page.get_by_placeholder("/home/me/Pictures/sports-day").fill(typed["folder"])
            page.get_by_placeholder("/home/me/Pictures/sports-day").press("Enter")
            settle(page)
            page.get_by_role("link", name="Overview").click()
            settle(page)
    finally:
        server.stop()
    assert any(p.is_file() for p in profile.rglob("*") if "cache" in str(p).lower()), "the browser has a disk cache"
    assert cached_pictures(profile) == []
    remembered = remembered_text(profile)
    assert "Ann Reviewer" in remembered, remembered
    assert not set(typed.values()) & set(remembered), remembered


def test_a_second_launch_on_the_same_workspace_names_the_running_dashboard(tmp_path):
    """`streamlit run app.py` again (a forgotten terminal): it says what to open, on a terminal
    the running dashboard's own link, and starts no second server over the same sessions. It
    said only "Port 8501 is not available"; on another port it started a second worker."""
    import pty
    import subprocess
    import sys

    from tests.browser import ROOT, StreamlitServer, free_port

    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start(generated_token=True)
    env = dict(os.environ, FACE_PRIVACY_WORKSPACE=str(tmp_path / "ws"))
    env.pop("FACE_PRIVACY_TOKEN", None)
    try:
        for terminal in (False, True):
            port = free_port()
            command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
            if terminal:
                leader, follower = pty.openpty()
                run = subprocess.run(command, cwd=ROOT, env=env, stdin=follower, stdout=follower,
                                     stderr=subprocess.STDOUT, timeout=120)
                os.close(follower)
                said = os.read(leader, 65536).decode()
                os.close(leader)
            else:
                run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
                said = run.stdout + run.stderr
            assert run.returncode == 0, said
            assert "already running on this workspace" in said and server.base in said, said
            assert f"end process {server.process.pid}" in said, "what to stop if it hangs"
            if terminal:
                assert f"open {server.url}" in said, "the running dashboard's own link"
            else:
                assert str(server.link_file) in said and server.token not in said, said
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
        with urllib.request.urlopen(server.base + "_stcore/health", timeout=10) as health:
            assert health.status == 200, "the running dashboard goes on"
    finally:
        server.stop()
    # Once it has stopped, the workspace is free for the next launch; with its gate turned off, a
    # second launch names its address alone (the link file holds the last launch's token).
    again = StreamlitServer(tmp_path / "ws", tmp_path / "server.log", token="off").start()
    try:
        said = subprocess.run([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(free_port())],
                              cwd=ROOT, env=dict(env, FACE_PRIVACY_TOKEN="off"), capture_output=True, text=True,
                              timeout=120).stdout
        assert f"already running on this workspace: open {again.base}\n" in said, said
    finally:
        again.stop()
