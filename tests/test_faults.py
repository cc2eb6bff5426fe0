"""Crashes and broken storage: the server is SIGKILLed mid-detection and mid-export, two tabs
share a session, and the workspace is read-only or full. Nothing saved may be lost."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sqlite3
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from core.records import APPROVED, REJECTED
from core.review import detect_pending
from core.workspace import Workspace
from tests.browser import (StreamlitServer, add_uploads, chromium_page, export_zip, reopen_session, require_chromium,
                           settle, start_session, two_reviewers, until, upload, wait_for)
from tests.conftest import ROOT, jpeg_bytes, on_a_small_disk

require_chromium()

from playwright.sync_api import expect  # noqa: E402

UNSHARE = shutil.which("unshare")


def integrity(db_path: Path) -> str:
    with sqlite3.connect(db_path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def small_disk_server(tmp_path: Path, size: str) -> tuple[StreamlitServer, Path]:
    """A dashboard whose workspace is a disk of `size` of its own, and the workspace folder (not
    yet started)."""
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    return StreamlitServer(ws_root, tmp_path / "server.log", prefix=on_a_small_disk(ws_root, size)), ws_root


def on_its_disk(server: StreamlitServer, ws_root: Path) -> Path:
    """The server's private workspace folder, read through /proc (SQLite itself would resolve
    the link to this process's own view)."""
    return Path(f"/proc/{server.process.pid}/root") / str(ws_root).lstrip("/")


def fill(folder: Path) -> Path:
    """Fill the disk holding `folder` with one file, whose path is returned to free it."""
    filler = folder / "filler"
    with pytest.raises(OSError, match="No space left"), open(filler, "wb") as handle:
        for _ in range(256):
            handle.write(bytes(1 << 20))
            handle.flush()
    return filler


def add_and_approve(page, server: StreamlitServer, path: Path, ready: str) -> None:
    """Start a session, add `path`, and approve it on its review page once `ready` is said."""
    start_session(page, server.url, "Filling disk", "Officer")
    upload(page, [path], path.name)
    add_uploads(page)
    expect(page.get_by_text(ready)).to_be_visible(timeout=120_000)
    page.get_by_role("link", name="Review one image").click()
    approved = page.get_by_role("heading", name=f"{path.name} — approved by Officer")
    until(page, lambda: page.get_by_role("button", name="Approve").click(), approved.is_visible, "approving")


@pytest.fixture(scope="module")
def large_photos(tmp_path_factory, astronaut_rgb):
    """Six 4 MP photos (over 1536 px: detected in full-resolution tiles): detection and export
    take long enough to be interrupted (seconds a photo, and again for the export's check)."""
    folder = tmp_path_factory.mktemp("large")
    big = Image.fromarray(astronaut_rgb).resize((2000, 2000), Image.BICUBIC)
    for i in range(6):
        buffer = io.BytesIO()
        big.rotate(i * 3, expand=False).save(buffer, "JPEG", quality=90)
        (folder / f"large-{i:02d}.jpg").write_bytes(buffer.getvalue())
    return sorted(folder.iterdir())


def test_sigkill_during_detection_and_export_loses_nothing(tmp_path, large_photos):
    ws_root = tmp_path / "ws"
    server = StreamlitServer(ws_root, tmp_path / "server.log").start()
    try:
        with chromium_page() as page:
            start_session(page, server.url, "Crash test", "Officer")
            upload(page, large_photos, large_photos[-1].name)
            add_uploads(page)
            ws = Workspace(ws_root)
            session_id = ws.sessions()[0]["id"]
            wait_for(lambda: sum(r.detected for r in ws.images(session_id)) >= 2, 120)
            decided = next(r for r in ws.images(session_id) if r.detected)
            ws.decide(decided.id, APPROVED, "Officer", "before the crash")
            server.kill()
        done_before = sum(r.detected for r in ws.images(session_id))
        assert done_before < len(large_photos), "the kill came too late to test anything"
        assert integrity(ws.db.path) == "ok"
        assert ws.image(decided.id).status == APPROVED

        server.start()
        with chromium_page() as page:
            reopen_session(page, server.url, "Officer")
            # Detection resumes with what was left, without the reviewer asking.
            wait_for(lambda: all(r.detected for r in ws.images(session_id)), 180)
            detections = [a for a in ws.audit(session_id) if a["action"] == "faces detected"]
            assert len(detections) == len(large_photos), "every photo detected exactly once"
            for record in ws.images(session_id):
                ws.decide(record.id, APPROVED, "Officer")
            # The page reruns once more when it sees detection end: a click landing then is dropped.
            build = page.get_by_role("button", name="Build the zip")
            until(page, lambda: page.get_by_role("link", name="Export").click(), build.is_visible, "opening Export")
            build.click()
            wait_for(lambda: list(ws.files.exports.glob("*.partial")), 120)
            server.kill()
        assert not list(ws.files.exports.glob("*.zip")), "no zip may exist before it is complete"
        assert integrity(ws.db.path) == "ok"
        assert any(a["detail"].get("comment") == "before the crash" for a in ws.audit(session_id))

        server.start()
        with chromium_page() as page:
            reopen_session(page, server.url, "Officer")
            assert not list(ws.files.exports.glob("*.partial")), "the cut-short zip is removed on restart"
            page.get_by_role("link", name="Export").click()
            # The export cut short by the kill is built again, without the reviewer asking.
            expect(page.get_by_text(", approved, will be exported")).to_contain_text(f"{len(large_photos)} photos")
            expect(page.get_by_text("Building the zip")).to_be_visible()
            expect(page.get_by_role("link", name="Download the zip")).to_be_visible(timeout=300_000)
        assert any(a["action"] == "export resumed after a restart" for a in ws.audit(session_id))
        (zip_path,) = [p for p in ws.files.exports.glob("*.zip") if not p.name.endswith("-audit.zip")]
        with zipfile.ZipFile(zip_path) as archive:
            assert archive.testzip() is None
            assert len([n for n in archive.namelist() if n.startswith("images/")]) == len(large_photos)
    finally:
        server.stop()


def test_two_tabs_on_one_session_lose_no_decision(tmp_path, engine, astronaut_rgb):
    """Two reviewers' tabs in one browser on one session: the later decision stands, and
    the audit log keeps both."""
    ws_root = tmp_path / "ws"
    ws = Workspace(ws_root)
    session_id = ws.create_session("Shared", "Alice")
    ids = [ws.add_image(session_id, "one.jpg", jpeg_bytes(astronaut_rgb), "Alice")[0],
           ws.add_image(session_id, "two.jpg", jpeg_bytes(astronaut_rgb[:, ::-1].copy()), "Alice")[0]]
    detect_pending(ws, engine, session_id)
    server = StreamlitServer(ws_root, tmp_path / "server.log").start()
    try:
        with chromium_page() as page:
            alice, bob = two_reviewers(page, server.url, ("Alice", "Bob"), "one.jpg — pending")
            alice.get_by_role("button", name="Approve").click()
            wait_for(lambda: ws.image(ids[0]).status == APPROVED)
            bob.get_by_role("button", name="Reject").click()  # Bob's page still shows "pending"
            wait_for(lambda: ws.image(ids[0]).status == REJECTED)
    finally:
        server.stop()
    decisions = [(a["actor"], a["action"]) for a in ws.audit(session_id) if a["image_id"] == ids[0]]
    assert ("Alice", APPROVED) in decisions and ("Bob", REJECTED) in decisions
    assert decisions.index(("Alice", APPROVED)) < decisions.index(("Bob", REJECTED))


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (util-linux) for a private mount")
def test_read_only_workspace_gives_a_clear_message(tmp_path):
    ws_root = tmp_path / "ws"
    ws = Workspace(ws_root)
    ws.create_session("Kept", "Officer")
    mount_read_only = (UNSHARE, "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(ws_root))
    server = StreamlitServer(ws_root, tmp_path / "server.log", prefix=mount_read_only).start()
    try:
        with chromium_page() as page:
            page.goto(server.url)
            settle(page)
            if page.get_by_label("Session name", exact=True).count():
                page.get_by_label("Session name", exact=True).fill("New")
                page.get_by_label("Your name").first.fill("Officer")
                page.get_by_role("button", name="Start session").click()
                settle(page)
            message = page.get_by_role("alert")
            expect(message).to_contain_text(str(ws_root))
            text = message.inner_text()
            assert "cannot be used" in text or "Saving failed" in text
            assert "Traceback" not in page.content()
    finally:
        server.stop()
    assert [s["name"] for s in Workspace(ws_root).sessions()] == ["Kept"]
    assert integrity(ws.db.path) == "ok"


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (util-linux) for a private mount")
def test_full_disk_gives_a_clear_message_and_keeps_what_was_saved(tmp_path, large_photos):
    # A disk of 1 MB holds the database, not the four photos (about 0.5 MB each).
    server, ws_root = small_disk_server(tmp_path, "1m")
    server.start()
    try:
        with chromium_page() as page:
            start_session(page, server.url, "Tiny disk", "Officer")
            upload(page, large_photos[:4], "large-03.jpg")
            page.get_by_role("button", name="Add and detect faces").click()
            # How many were added before the disk filled is said (it said "this last action was
            # not recorded", though the photos before it were), and the files stay chosen.
            alert = page.get_by_role("alert").filter(has_text="The workspace's disk took no more")
            expect(alert).to_contain_text("file(s) were added before, the others were not")
            # The system's words or SQLite's, whichever write meets the full disk first.
            said = alert.inner_text()
            assert "No space left" in said or "database or disk is full" in said, said
            added = int(said.split("): ")[1].split(" file(s)")[0])
            expect(page.get_by_text("large-00.jpg")).to_be_visible()
            assert "Traceback" not in page.content()
            # A copy of the database with its WAL (the server keeps a connection open:
            # committed changes may still be there).
            inside = on_its_disk(server, ws_root)
            copy = tmp_path / "copy.sqlite"
            copy.write_bytes((inside / "review.sqlite").read_bytes())
            if (inside / "review.sqlite-wal").exists():
                (tmp_path / "copy.sqlite-wal").write_bytes((inside / "review.sqlite-wal").read_bytes())
            assert integrity(copy) == "ok"
            with sqlite3.connect(copy) as db:
                assert db.execute("SELECT name FROM sessions").fetchall() == [("Tiny disk",)]
                assert db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == added
    finally:
        server.stop()


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (util-linux) for a private mount")
def test_a_disk_filling_up_leaves_the_session_readable_and_its_zip_downloadable(tmp_path, astronaut_rgb):
    """A disk that fills while the dashboard runs (a long video added, another program's files)
    refuses the writes, each with its message; what was saved stays readable: the review pages,
    and the zip already built with its link. (When the last database connection closed, SQLite
    removed the WAL's shared-memory file; the next read had to make it again, which a full disk
    refuses: every page said only "Saving failed: disk I/O error" and the zip's link was gone.)"""
    server, ws_root = small_disk_server(tmp_path, "8m")
    server.start()
    photo = tmp_path / "visit.jpg"
    photo.write_bytes(jpeg_bytes(astronaut_rgb))
    try:
        with chromium_page() as page:
            add_and_approve(page, server, photo, "1 photo ready for review")
            heading = page.get_by_role("heading", name="visit.jpg — pending")
            approved = page.get_by_role("heading", name="visit.jpg — approved by Officer")
            zipped = export_zip(page)
            fill(on_its_disk(server, ws_root))
            for _ in range(2):  # every database connection of the page's last run is closed
                page.reload()
                settle(page)
            expect(page.get_by_role("heading", name="Export")).to_be_visible()
            link = page.get_by_role("link", name="Download the zip")
            expect(link).to_be_visible()
            origin = "/".join(page.url.split("/")[:3])
            assert page.request.get(origin + link.get_attribute("href")).body() == zipped
            # A write is refused with the message that says why, never a traceback.
            page.get_by_role("button", name="Build the zip").click()
            expect(page.get_by_role("alert").first).to_contain_text("Saving failed: database or disk is full")
            page.get_by_role("link", name="Review one image").click()
            expect(approved).to_be_visible()
            assert heading.count() == 0
            # The comment being typed cannot be kept as a draft: said, and the field keeps it.
            comment = page.get_by_label("Comment (optional)")
            comment.fill("typed on a full disk")
            comment.press("Enter")
            expect(page.get_by_role("alert").first).to_contain_text("Saving failed")
            settle(page)  # the run the message came with has finished: one comment field
            expect(comment).to_have_value("typed on a full disk")
            assert "Traceback" not in page.content() and "OperationalError" not in page.content()
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (util-linux) for a private mount")
def test_a_dashboard_started_on_a_full_disk_says_so_and_opens_once_space_is_freed(tmp_path):
    """Started again when the disk is already full, the workspace cannot be opened (SQLite cannot
    make its shared-memory file): said as a full disk, not as SQLite's "disk I/O error", and a
    reload after freeing space opens it with everything in it."""
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    made = "import sys; from core.workspace import Workspace; Workspace(sys.argv[1]).create_session('Kept', 'Officer')"
    full_disk = (UNSHARE, "-m", "sh", "-c", 'mount -t tmpfs -o size=4m tmpfs "$0" && "$1" -c "$2" "$0" && '
                 '(head -c 8M /dev/zero > "$0/filler" 2> /dev/null || true) && shift 2 && exec "$@"',
                 str(ws_root), sys.executable, made)
    server = StreamlitServer(ws_root, tmp_path / "server.log", prefix=full_disk).start()
    try:
        with chromium_page() as page:
            page.goto(server.url)
            settle(page)
            expect(page.get_by_role("alert")).to_contain_text(f"The workspace folder {ws_root} cannot be used: its "
                                                              "disk is full (0 MB free)")
            (on_its_disk(server, ws_root) / "filler").unlink()
            reopen_session(page, server.url, "Officer")
            expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("Kept")
            assert page.get_by_role("alert").count() == 0
    finally:
        server.stop()


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (util-linux) for a private mount")
def test_a_disk_filling_during_detection_stops_it_and_leaves_the_file_to_detect(tmp_path, astronaut_rgb,
                                                                                astronaut_face_box):
    """A clip being detected when the disk fills: the clip did nothing wrong. It was marked
    "could not be read" for good (to be removed and added again), or detection started again on
    every page view, failing each second with its message never seen. Now detection stops, says
    why, and the clip waits; once there is room, one button detects it, or adding more files."""
    from tests.clips import moving_face_frames, write_clip

    server, ws_root = small_disk_server(tmp_path, "24m")
    server.start()
    clip, photo = tmp_path / "hall.mp4", tmp_path / "visit.jpg"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 300)], sound=False)
    photo.write_bytes(jpeg_bytes(astronaut_rgb))
    stopped = None

    def fills_while_detecting() -> Path:
        expect(page.get_by_text("now hall.mp4: frame")).to_be_visible(timeout=60_000)
        filler = fill(on_its_disk(server, ws_root))
        expect(stopped).to_contain_text("No space left on device", timeout=120_000)
        expect(page.get_by_text("0 photos ready for review, 0 could not be read, 1 waiting for detection.")).to_be_visible()
        return filler

    try:
        with chromium_page() as page:
            stopped = page.get_by_text("Detection stopped")
            start_session(page, server.url, "Filling disk", "Officer")
            upload(page, [clip], clip.name)
            add_uploads(page)
            filler = fills_while_detecting()
            page.wait_for_timeout(3000)  # and it stays stopped, said, while the page stands
            expect(stopped).to_be_visible()
            filler.unlink()
            page.get_by_role("button", name="Detect the files left").click()
            filler = fills_while_detecting()  # stopped again: there is room once more, and files are added
            filler.unlink()
            upload(page, [photo], photo.name)
            add_uploads(page)
            expect(page.get_by_text("1 photo and 1 video ready for review, 0 could not be read")).to_be_visible(
                timeout=120_000)
            expect(stopped).to_have_count(0)
    finally:
        server.stop()


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (util-linux) for a private mount")
def test_a_clip_that_cannot_be_written_for_a_full_disk_fails_the_export_not_the_clip(tmp_path, astronaut_rgb,
                                                                                     astronaut_face_box):
    """The clip's rendering met the full disk: it was "held back" as if the clip could not be
    anonymised, and an empty zip offered as the current export, "held back by the residual
    check". Now the export fails, says why, and the next one, once there is room, has the clip."""
    from tests.clips import moving_face_frames, write_clip

    server, ws_root = small_disk_server(tmp_path, "24m")
    server.start()
    clip = tmp_path / "hall.mp4"
    write_clip(clip, [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 300)], sound=False)
    try:
        with chromium_page() as page:
            add_and_approve(page, server, clip, "1 video ready for review")
            filler = fill(on_its_disk(server, ws_root))
            os.truncate(filler, filler.stat().st_size - (256 << 10))  # room for the database, not the clip
            page.get_by_role("link", name="Export").click()
            page.get_by_role("button", name="Build the zip").click()
            expect(page.get_by_text("The last export failed")).to_contain_text("No space left on device",
                                                                               timeout=120_000)
            expect(page.get_by_role("link", name="Download the zip")).to_have_count(0)
            filler.unlink()
            page.get_by_role("button", name="Build the zip").click()
            expect(page.get_by_text("Current export")).to_contain_text("1 file(s) exported, 0 held back",
                                                                       timeout=120_000)
    finally:
        server.stop()


def test_hostile_uploads_in_the_browser_keep_the_server_responsive(tmp_path, astronaut_rgb):
    from tests.test_hardening import REFUSED

    folder = tmp_path / "upload"
    folder.mkdir()
    for name, (make, _reason) in REFUSED.items():
        (folder / name).write_bytes(make())
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../../escape.jpg", jpeg_bytes(astronaut_rgb))
        archive.writestr("zeros.png", b"\x00" * 50_000_000)
    (folder / "batch.zip").write_bytes(bomb.getvalue())
    (folder / "good.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    server = StreamlitServer(tmp_path / "ws", tmp_path / "server.log").start()
    try:
        with chromium_page() as page:
            start_session(page, server.url, "Hostile", "Officer")
            upload(page, sorted(folder.iterdir()), "good.jpg")
            add_uploads(page)
            # Two pairs are the same bytes: each second one is named and added once.
            expect(page.get_by_text(f"1 photo ready for review, {len(REFUSED)} could not be read.")
                   ).to_be_visible(timeout=120_000)
            expect(page.get_by_text("good.jpg: same photo as batch.zip/escape.jpg, added once.")).to_be_visible()
            expect(page.get_by_text("huge-header.png: same photo as bomb.png, added once.")).to_be_visible()
            alert = page.get_by_role("alert").filter(has_text="cannot be processed")
            # When detection ends the page runs again; until it has, the last run's alert may
            # still show beside the new one.
            expect(alert).to_have_count(1, timeout=30_000)
            for name, (_make, reason) in REFUSED.items():
                if name == "huge-header.png":
                    continue
                expect(alert).to_contain_text(f"{name}: ")
                assert reason in alert.inner_text(), name
            expect(alert).to_contain_text("batch.zip/zeros.png")
            # Still responsive: the other pages work and the good photos can be reviewed.
            settle(page)
            page.get_by_role("link", name="Review one image").click()
            expect(page.get_by_role("heading", name="batch.zip/escape.jpg — pending")).to_be_visible()
            assert "Traceback" not in page.content()
    finally:
        server.stop()
    ws = Workspace(tmp_path / "ws")
    refused = [a for a in ws.audit(ws.sessions()[0]["id"]) if a["action"] == "file refused"]
    assert len(refused) == len(REFUSED)


EXPORT_ON_A_SMALL_DISK = """
import json, sys
from pathlib import Path
from core.export import export_approved
from core.pipeline import Engine
from core.records import APPROVED
from core.review import detect_pending
from core.workspace import Workspace

root, photo = Path(sys.argv[1]), Path(sys.argv[2])
engine = Engine()
ws = Workspace(root)
session = ws.create_session("Small exports disk", "Officer")
image_id, _ = ws.add_image(session, photo.name, photo.read_bytes(), "Officer")
detect_pending(ws, engine, session)
ws.decide(image_id, APPROVED, "Officer")
try:
    built = export_approved(ws, session, "Officer", engine.detector)
    said = {"sizes": [built.path.stat().st_size, built.audit_path.stat().st_size]}
except OSError as exc:
    said = {"error": str(exc)}
said["left"] = sorted(p.name for p in (root / "exports").iterdir())
said["exports"] = [e["status"] for e in ws.exports.of_session(session)]
print(json.dumps(said))
"""


@pytest.mark.skipif(not UNSHARE, reason="needs unshare (util-linux) for a private mount")
def test_an_export_that_fills_the_disk_after_its_zip_leaves_no_zip_behind(tmp_path, astronaut_rgb):
    """The publication zip written, its audit package then meets the full disk: the export failed
    and was never offered, but its zip stayed in the workspace, taking the room that was short
    (a video session's zip can be gigabytes), one more on every try."""
    script, photo = tmp_path / "export.py", tmp_path / "visit.jpg"
    script.write_text(EXPORT_ON_A_SMALL_DISK)
    photo.write_bytes(jpeg_bytes(astronaut_rgb))

    def export(size_kb: int) -> dict:
        ws_root = tmp_path / f"ws-{size_kb}"
        (ws_root / "exports").mkdir(parents=True)
        # The exports folder alone on a disk of its own: the database and originals beside it have room.
        run = subprocess.run([*on_a_small_disk(ws_root / "exports", f"{size_kb}k"), sys.executable, str(script),
                              str(ws_root), str(photo)],
                             cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout)

    roomy = export(4096)
    zip_size, audit_size = roomy["sizes"]
    assert roomy["exports"] == ["complete"] and len(roomy["left"]) == 2
    short = export((zip_size + audit_size // 3) // 1024 + 1)  # the zip fits, its audit package does not
    assert "No space left on device" in short["error"]
    assert short["exports"] == ["failed"]
    assert short["left"] == [], "a failed export leaves nothing behind"
