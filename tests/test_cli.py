"""`python -m core` as a user runs it, in a subprocess."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.pipeline import Settings
from core.report import local_time
from core.run_folder import FULL, KILLED, STOPPED, run_manifests
from core.walk import holds_run
from tests.conftest import ROOT, heic_bytes, jpeg_bytes, noisy_photos, on_a_small_disk, png_bytes
from tests.test_images import BAD_INPUTS


def run_cli(*args: str, prefix: tuple[str, ...] = (), timeout: int = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """`prefix` wraps the command (a private mount made with unshare); `env` is added to this
    process's environment for it."""
    return subprocess.run([*prefix, sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env and os.environ | env)


def run_until(said: str, *args: str, **options) -> tuple[subprocess.Popen, list[str]]:
    """The command started (as a terminal starts it: Ctrl-C stops it), and what it said up to the
    first line holding `said`, which it has then said: the moment to stop it, or to try another."""
    run = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **options)
    lines = []
    for line in run.stderr:
        lines.append(line)
        if said in line:
            return run, lines
    raise AssertionError(f"never said {said!r}: {''.join(lines)}")


@pytest.fixture(scope="module")
def batch(tmp_path_factory, astronaut_rgb):
    """A folder with two good photos (one in a sub-folder, same name) and every bad kind."""
    folder = tmp_path_factory.mktemp("batch")
    (folder / "sub").mkdir()
    (folder / "portrait.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    (folder / "sub" / "portrait.jpg").write_bytes(png_bytes(astronaut_rgb[:, ::-1].copy()))
    for name, (make, _reason) in BAD_INPUTS.items():
        (folder / name).write_bytes(make())
    return folder


def test_detect_prints_the_contract_json(batch):
    result = run_cli("detect", str(batch / "portrait.jpg"), str(batch / "empty.jpg"), "--threshold", "0.5")
    assert result.returncode == 2, result.stderr
    good, bad = json.loads(result.stdout)
    assert set(good) == {"path", "width", "height", "faces"}
    assert (good["width"], good["height"]) == (512, 512)
    assert good["faces"], "the portrait's face is found"
    for face in good["faces"]:
        assert set(face) == {"x", "y", "w", "h", "score", "detector", "region"}
        assert face["score"] >= 0.5 and face["detector"] == "centerface"
        rx, ry, rw, rh = face["region"]
        pad = Settings().padding
        assert rx <= face["x"] and ry <= face["y"] and rw >= face["w"] * (1 + 2 * pad) - 2
    assert bad == {"path": str(batch / "empty.jpg"), "error": "the file is empty"}
    assert "empty.jpg" in result.stderr


def test_detect_walks_folders_and_reports_every_file(batch):
    result = run_cli("detect", str(batch))
    assert result.returncode == 2
    by_name = {r["path"].removeprefix(str(batch) + "/"): r for r in json.loads(result.stdout)}
    assert set(by_name) == {"portrait.jpg", "sub/portrait.jpg", *BAD_INPUTS}
    assert by_name["portrait.jpg"]["faces"] and by_name["sub/portrait.jpg"]["faces"]
    for name, (_make, reason) in BAD_INPUTS.items():
        assert reason in by_name[name]["error"], name


def test_detect_threshold_filters(batch):
    low = json.loads(run_cli("detect", str(batch / "portrait.jpg"), "--threshold", "0.05").stdout)
    high = json.loads(run_cli("detect", str(batch / "portrait.jpg"), "--threshold", "0.99").stdout)
    assert len(high[0]["faces"]) < len(low[0]["faces"])


def test_anonymize_batch_outputs_and_manifest(batch, tmp_path):
    out = tmp_path / "out"
    result = run_cli("anonymize", str(batch), "--out", str(out), "--mode", "pixelate")
    assert result.returncode == 2, result.stderr
    assert "[1/" in result.stderr, "progress is shown for batches"
    manifest = json.loads((out / "manifest.json").read_text())
    done = [f for f in manifest["files"] if "output" in f]
    failed = [f for f in manifest["files"] if "error" in f]
    assert len(done) == 2 and len(failed) == len(BAD_INPUTS)
    names = {f["output"] for f in done}
    assert names == {"portrait.jpg", "portrait.png"}, "same input names, different outputs"
    for entry in done:
        data = (out / entry["output"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["output_sha256"]
        assert entry["input_sha256"] == hashlib.sha256(Path(entry["input"]).read_bytes()).hexdigest()
        assert entry["faces"] and b"Exif" not in data
    assert manifest["settings"]["mode"] == "pixelate"
    assert set(manifest["versions"]["models_sha256"]) == {"centerface.onnx"}


def test_anonymize_never_overwrites(batch, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "portrait.jpg").write_bytes(b"earlier work")
    run_cli("anonymize", str(batch / "portrait.jpg"), "--out", str(out))
    assert (out / "portrait.jpg").read_bytes() == b"earlier work"
    assert (out / "portrait-2.jpg").exists()
    assert run_cli("anonymize", str(batch), "--out", str(batch)).returncode == 1


def test_a_file_given_twice_is_anonymised_once(batch, tmp_path):
    """Named, inside a named folder and through a link: one input, one output, one entry."""
    (tmp_path / "link.png").symlink_to(batch / "sub" / "portrait.jpg")
    out = tmp_path / "out"
    result = run_cli("anonymize", str(batch / "sub"), str(batch / "sub" / "portrait.jpg"),
                     str(batch / "sub" / "." / "portrait.jpg"), str(tmp_path / "link.png"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [Path(f["input"]).name for f in manifest["files"]] == ["portrait.jpg"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "portrait.png"]


def test_a_camera_cards_sidecars_and_index_files_are_passed_over_and_listed(tmp_path, astronaut_rgb):
    """A card holds, beside the photos, sidecars, thumbnails and index files: they are not
    photos that failed (the run succeeds), but each is named in the manifest. Any other file is
    still refused by name."""
    card = tmp_path / "card"
    (card / "DCIM" / "100CANON").mkdir(parents=True)
    (card / "PRIVATE" / "AVCHD" / "BDMV" / "CLIPINF").mkdir(parents=True)
    (card / "DCIM" / "100CANON" / "IMG_0001.JPG").write_bytes(jpeg_bytes(astronaut_rgb))
    companions = [card / "DCIM" / "100CANON" / "IMG_0001.xmp", card / "DCIM" / "100CANON" / "MVI_0002.THM",
                  card / "PRIVATE" / "AVCHD" / "BDMV" / "INDEX.BDM",
                  card / "PRIVATE" / "AVCHD" / "BDMV" / "CLIPINF" / "00001.CPI"]
    for path in companions:
        path.write_bytes(b"\x00 not a picture")
    out = tmp_path / "out"
    result = run_cli("anonymize", str(card), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "4 file(s) that only go with photos and videos passed over" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [Path(f["input"]).name for f in manifest["files"]] == ["IMG_0001.JPG"]
    assert sorted(manifest["passed_over"]) == sorted(str(p) for p in companions)
    (card / "minutes.pdf").write_bytes(b"%PDF-1.4")
    assert run_cli("anonymize", str(card), "--out", str(tmp_path / "again")).returncode == 2


def test_a_camera_raw_file_named_on_the_command_line_is_refused_as_such(tmp_path, astronaut_rgb):
    """A DNG is a TIFF whose first picture is a small preview: never read as the photo."""
    (tmp_path / "DSC_0001.DNG").write_bytes(png_bytes(astronaut_rgb))
    result = run_cli("detect", str(tmp_path / "DSC_0001.DNG"))
    assert result.returncode == 2
    assert json.loads(result.stdout)[0]["error"].startswith("a camera's raw file: develop it as JPEG first")


def test_a_zip_named_on_the_command_line_is_said_to_be_one(tmp_path, astronaut_rgb):
    """The dashboard takes a zip as its folder; the command line does not unpack one, and said
    "not a supported image (JPEG, HEIC, PNG...)" of a phone's export zip."""
    with zipfile.ZipFile(tmp_path / "phone.zip", "w") as archive:
        archive.writestr("IMG_0001.JPG", jpeg_bytes(astronaut_rgb))
    result = run_cli("anonymize", str(tmp_path / "phone.zip"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (f"error: {tmp_path / 'phone.zip'}: a zip archive: unpack it first (the "
                                              "dashboard unpacks a zip uploaded or in a folder added there)")


def test_a_pipe_in_a_folder_or_named_is_refused_and_the_batch_goes_on(tmp_path, astronaut_rgb):
    """A named pipe (or a device) with a photo's name: reading it waited for a writer for ever,
    and the whole batch with it."""
    (tmp_path / "portrait.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    os.mkfifo(tmp_path / "waiting.jpg")
    result = run_cli("detect", str(tmp_path), "/dev/zero")
    assert result.returncode == 2
    reports = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert reports["portrait.jpg"]["faces"]
    for name in ("waiting.jpg", "zero"):
        assert reports[name]["error"] == "not a regular file (a device, pipe or socket)"


def test_the_same_command_again_keeps_what_was_done_and_every_record(tmp_path, astronaut_rgb):
    """`anonymize photos --out photos/anonymised`, run again (as a user repeats a command, or
    finishes a stopped one): the second run reads the photos, not the first run's outputs or
    manifest; it keeps the output the first run made with the same settings and code (before, it
    made a second copy of every photo, `a-2.jpg`, beside the first), and writes its own manifest
    listing it: the first run's record is not overwritten. An output that is no longer what its
    manifest records (here the original copied over it), other settings or another version's
    code: the photo is done again."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    out = photos / "anonymised"
    first = run_cli("anonymize", str(photos), "--out", str(out))
    assert first.returncode == 0, first.stderr
    record, output = (out / "manifest.json").read_bytes(), (out / "a.jpg").read_bytes()
    second = run_cli("anonymize", str(photos), "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert "1 anonymised, 0 held back, 0 failed (1 from an earlier run); " \
           f"manifest: {out / 'manifest-2.json'}" in second.stderr
    assert f"{photos / 'a.jpg'}: 1 faces (from an earlier run)" in second.stderr
    assert (out / "manifest.json").read_bytes() == record and (out / "a.jpg").read_bytes() == output
    kept = json.loads((out / "manifest-2.json").read_text())
    assert kept["resumed"] == 1 and kept["files"] == json.loads(record)["files"]
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "manifest-2.json", "manifest.json"]

    def third(*options: str, change=None) -> dict:
        """A run after `change`, in a copy of the folder: its manifest's one entry."""
        again = tmp_path / f"again{len(list(tmp_path.glob('again*')))}"
        shutil.copytree(photos, again)
        if change:
            change(again / "anonymised")
        result = run_cli("anonymize", str(again), "--out", str(again / "anonymised"), *options)
        assert result.returncode == 0 and "from an earlier run" not in result.stderr, result.stderr
        (entry,) = json.loads((again / "anonymised" / "manifest-3.json").read_text())["files"]
        return entry

    def other_code(folder: Path) -> None:
        for name in ("manifest.json", "manifest-2.json"):
            made = json.loads((folder / name).read_text())
            made["versions"]["code_sha256"] = "0" * 64  # as an earlier version of the engine wrote it
            (folder / name).write_text(json.dumps(made))

    assert third(change=lambda folder: (folder / "a.jpg").write_bytes(jpeg_bytes(astronaut_rgb)))["output"] == "a-2.jpg"
    assert third("--mode", "solid")["output"] == "a-2.jpg"
    assert third(change=other_code)["output"] == "a-2.jpg"


def test_a_file_name_cannot_forge_or_hide_a_line_of_the_run(tmp_path, astronaut_rgb):
    """File names are data: one holding a new line started a line of its own that read as the
    run's ("a.jpg: 0 faces"), a carriage return rewrote a line, and a terminal's escape sequence
    (conceal, `ESC[8m`) hid the rest of it: the faces found, or the error of a file that failed.
    Each is now written as its escape, on the one line of its file."""
    folder = tmp_path / "in"
    folder.mkdir()
    forged = "a.jpg: 0 faces\n1 anonymised, 0 held back, 0 failed\r\x1b[8m\u202ehidden.jpg"
    (folder / forged).write_bytes(jpeg_bytes(astronaut_rgb))
    (folder / f"b{forged}").write_bytes(jpeg_bytes(astronaut_rgb)[:300])  # fails: its error line too
    result = run_cli("anonymize", str(folder), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    escaped = "a.jpg: 0 faces\\n1 anonymised, 0 held back, 0 failed\\r\\x1b[8m\\u202ehidden.jpg"
    assert result.stderr.splitlines() == [
        f"[1/2] {folder}/{escaped}: 1 faces",
        f"[2/2] {folder}/b{escaped}: the image data is damaged or truncated (OSError: Truncated File Read)",
        f"1 anonymised, 0 held back, 1 failed; manifest: {tmp_path / 'out' / 'manifest.json'}",
        f"error: {folder}/b{escaped}: the image data is damaged or truncated (OSError: Truncated File Read)"]
    # The manifest keeps each name exactly, as JSON escapes it.
    names = [Path(f["input"]).name for f in json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]]
    assert names == [forged, f"b{forged}"]


def test_an_unusable_out_folder_is_said_plainly(tmp_path, astronaut_rgb):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(jpeg_bytes(astronaut_rgb))
    (tmp_path / "notes.txt").write_text("x")
    for inputs, out, why in [(photo, photo, "is one of the inputs"), (tmp_path, tmp_path, "is one of the inputs"),
                             (photo, tmp_path / "notes.txt", "is a file")]:
        result = run_cli("anonymize", str(inputs), "--out", str(out))
        assert result.returncode == 1 and result.stderr == f"error: --out {out} {why}: name a folder for the outputs\n"
    result = run_cli("anonymize", str(photo), "--out", str(tmp_path / "notes.txt" / "out"))
    assert result.returncode == 1 and result.stderr.startswith(f"error: --out {tmp_path / 'notes.txt' / 'out'} "
                                                               "cannot be made a folder (")
    # The folder of the photos named (`anonymize *.jpg --out .`), or one around a folder named: the
    # outputs went beside the originals (a-2.jpg by a.jpg), one folder to publish holding both.
    (tmp_path / "day1").mkdir()
    for inputs in ([str(photo)], [str(tmp_path / "day1"), str(photo)]):
        result = run_cli("anonymize", *inputs, "--out", str(tmp_path))
        assert result.returncode == 1 and result.stderr == (
            f"error: --out {tmp_path} holds the input {inputs[0]}: the outputs would lie beside the originals, and "
            "the folder, published, would take both; name a folder of their own for the outputs\n")
    (tmp_path / "day1").rmdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "notes.txt"]  # nothing written


def small_run_disk(folder: Path, size: str, full: bool = False) -> tuple[str, ...]:
    """`folder` made, then a prefix that runs a command with it on a disk of `size` of its own
    holding an empty `run` folder (filled first when `full`), and copies what the command left
    there to `folder.name + '-copy'` beside it."""
    folder.mkdir()
    fill = '(cat /dev/zero > "$0/fill" 2>/dev/null); ' if full else ""
    return on_a_small_disk(folder, size, before=f'mkdir "$0/run" && {fill}', after='rm -f "$0/fill"; cp -a "$0" "$0-copy"')


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux) for a private mount")
def test_a_full_disk_says_nothing_can_be_done_before_doing_anything(batch, tmp_path):
    """On a disk already full no file is detected: one plain line, not a traceback, and nothing
    left in the folder (before, every photo was detected and failed, and the manifest too)."""
    out = tmp_path / "small"
    result = run_cli("anonymize", str(batch / "portrait.jpg"), "--out", str(out / "run"),
                     prefix=small_run_disk(out, "64k", full=True))
    assert result.returncode == 1, result.stderr
    assert result.stderr == (f"error: --out {out / 'run'} cannot take the outputs (No space left on device): "
                             "nothing was done; free space on its disk (or make it writable) and run again\n")
    assert list((tmp_path / "small-copy" / "run").iterdir()) == []


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux) for a private mount")
def test_a_disk_that_fills_stops_the_run_with_its_manifest_written_and_the_same_command_finishes_it(tmp_path,
                                                                                                  astronaut_rgb):
    """The disk fills partway through a batch: the run stops at once, and its manifest is written
    (room is kept for it): every output in the folder is in it with its SHA-256, the files not done
    are named, and no room file is left. Before, every file left was detected and failed in turn,
    and the manifest could not be written: the photos out had no record of how they were made.
    Once room is made, the same command (as the message says) keeps what was done and does the
    rest (before, it made every photo again, beside the first outputs)."""
    photos = tmp_path / "photos"
    inputs = noisy_photos(photos, astronaut_rgb, 12)
    need = sum(p.stat().st_size for p in inputs)
    out = tmp_path / "small"
    out.mkdir()
    # The command runs twice: on a disk that fills, then once the ballast is gone.
    disk = on_a_small_disk(out, str(need + 256 * 1024),  # the outputs are smaller than these photos
                           before=f'mkdir "$0/run" && head -c {3 * need // 4} /dev/zero > "$0/ballast" && ',
                           after='echo "first run: $code" >&2; rm "$0/ballast"; "$@"; code=$?; cp -a "$0" "$0-copy"')
    result = run_cli("anonymize", str(photos), "--out", str(out / "run"), prefix=disk)
    first, then = result.stderr.split("first run: ")
    assert then.startswith("2\n") and "Traceback" not in result.stderr, result.stderr
    written = tmp_path / "small-copy" / "run"
    manifest = json.loads((written / "manifest.json").read_text())
    assert [Path(f["input"]).name for f in manifest["files"]] == [p.name for p in inputs]
    assert manifest["stopped"] == "its output disk took no more (No space left on device)"
    done = [f for f in manifest["files"] if "output" in f]
    left = [f for f in manifest["files"] if "output" not in f]
    assert 0 < len(done) < 12 and left
    assert all(f["error"] == FULL for f in left)  # the file the disk refused too: opened for review, detected there
    reached = [line for line in first.splitlines() if line.startswith("[")]
    assert len(reached) < 12, "the run stopped at the first file refused, not after trying every one"
    assert (f"stopped: its output disk took no more (No space left on device): {len(done)} of 12 file(s) done; "
            f"manifest: {out / 'run' / 'manifest.json'} (the files not done are listed in it); free space on it, then "
            "run the same command again to finish them") in first
    # The same command, once there is room: what was done is kept, the rest done; every output as its hash says.
    assert result.returncode == 0, then
    assert f"12 anonymised, 0 held back, 0 failed ({len(done)} from an earlier run)" in then
    finished = json.loads((written / "manifest-2.json").read_text())
    assert "stopped" not in finished and finished["files"][:len(done)] == done
    outputs = [f["output"] for f in finished["files"]]
    assert sorted(p.name for p in written.iterdir()) == sorted(outputs + ["manifest.json", "manifest-2.json"])
    assert outputs == [p.name for p in inputs], "no second copy of a photo done before the stop"
    for entry in finished["files"]:
        assert hashlib.sha256((written / entry["output"]).read_bytes()).hexdigest() == entry["output_sha256"]
    # The stopped run opened for review: what it did comes with its faces, and every file not done is detected there.
    from core.run_review import import_run
    from core.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    session, report = import_run(ws, written / "manifest.json", "Stopped by the disk", "Officer")
    assert (report.added, report.refused) == (len(done), [])
    assert [r.name for r in ws.awaiting_detection(session)] == report.not_done == [Path(f["input"]).name for f in left]


def test_anonymize_output_is_upright_and_changed(tmp_path, astronaut_rgb):
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = np.asarray(Image.fromarray(astronaut_rgb).transpose(Image.ROTATE_90))
    source = tmp_path / "phone.jpg"
    source.write_bytes(jpeg_bytes(sideways, exif=exif.tobytes()))
    assert run_cli("anonymize", str(source), "--out", str(tmp_path / "o")).returncode == 0
    output = Image.open(tmp_path / "o" / "phone.jpg")
    assert output.size == (512, 512) and not output.getexif()
    diff = np.abs(np.asarray(output).astype(int) - astronaut_rgb.astype(int)).mean(axis=2)
    assert diff[100:150, 190:230].mean() > 12 and diff[400:, 400:].mean() < 4


def test_an_iphones_heic_comes_out_as_an_upright_jpeg_with_its_face_covered(tmp_path, astronaut_rgb):
    """An iPhone's default photo format (stored sideways, turned by the file) is read, not
    refused: the output is a JPEG named after it, upright, with no metadata."""
    sideways = np.ascontiguousarray(np.rot90(astronaut_rgb))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "IMG_0001.HEIC").write_bytes(heic_bytes(sideways, 6))
    result = run_cli("anonymize", str(tmp_path / "in"), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads((tmp_path / "o" / "manifest.json").read_text())["files"]
    assert entry["output"] == "IMG_0001.jpg" and entry["faces"], entry
    output = Image.open(tmp_path / "o" / "IMG_0001.jpg")
    assert output.format == "JPEG" and output.size == (512, 512) and not output.getexif()
    diff = np.abs(np.asarray(output).astype(int) - astronaut_rgb.astype(int)).mean(axis=2)
    assert diff[100:150, 190:230].mean() > 12 and diff[400:, 400:].mean() < 4


def test_bad_option_is_refused():
    result = run_cli("anonymize", "x.jpg", "--out", "o", "--strength", "0")
    assert result.returncode == 1 and "strength" in result.stderr


def test_anonymize_check_reports_a_face_left_visible(batch, tmp_path):
    portrait = str(batch / "portrait.jpg")
    clean = run_cli("anonymize", portrait, "--out", str(tmp_path / "a"), "--check")
    assert clean.returncode == 0, clean.stderr
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["files"][0]["residual_faces"] == []
    # At a threshold above the face's score nothing is covered: the check must say so.
    leaky = run_cli("anonymize", portrait, "--out", str(tmp_path / "b"), "--check", "--threshold", "0.99")
    assert leaky.returncode == 3 and "found again" in leaky.stderr
    entry = json.loads((tmp_path / "b" / "manifest.json").read_text())["files"][0]
    assert entry["faces"] == [] and entry["residual_faces"]
    # The flagged output is kept apart from the clean ones, and the manifest says why.
    assert entry["output"] == "held-back/portrait.jpg" and "found again" in entry["held_back"]
    assert (tmp_path / "b" / "held-back" / "portrait.jpg").exists()
    assert not (tmp_path / "b" / "portrait.jpg").exists()
    assert (tmp_path / "a" / "portrait.jpg").exists() and not (tmp_path / "a" / "held-back").exists()
    # Opened for review, each run's verdict comes with it, as the dashboard's own check records one:
    # the face still showing is flagged on its photo (before, nothing said so until the zip was built).
    from core.run_review import import_run
    from core.review import attention
    from core.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    for run, found in (("a", []), ("b", entry["residual_faces"])):
        session, _ = import_run(ws, tmp_path / run / "manifest.json", f"Run {run}", "Officer")
        (record,) = ws.images(session)
        batch_settings = ws.batch_settings(session)
        assert [[round(v, 1) for v in (f.x, f.y, f.w, f.h)] for f in record.residual_result(batch_settings)] == \
            [[f["x"], f["y"], f["w"], f["h"]] for f in found]
        # The overview's flag (and so no bulk approval) comes with it.
        assert any("found again after anonymisation" in flag.text
                   for flag in attention(record, batch_settings)) == bool(found)
    assert [a["action"] for a in ws.audit(session)].count("residual faces found") == 1


def test_odd_shapes_never_stop_a_batch(tmp_path, astronaut_rgb):
    """Strips, needles and single pixels beside real photos: each is that file's business; the
    manifest is written and the real photos are covered."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for w, h in [(20000, 9), (9, 20000), (4100, 2), (1, 1)]:
        (folder / f"odd_{w}x{h}.png").write_bytes(png_bytes(rng.integers(0, 255, (h, w, 3), np.uint8)))
    (folder / "a_portrait.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    (folder / "z_portrait.jpg").write_bytes(jpeg_bytes(astronaut_rgb[:, ::-1].copy()))
    result = run_cli("anonymize", str(folder), "--out", str(tmp_path / "o"), "--check")
    assert "Traceback" not in result.stderr, result.stderr
    entries = json.loads((tmp_path / "o" / "manifest.json").read_text())["files"]
    assert len(entries) == 6
    assert all("output" in e or e.get("error") for e in entries)
    for name in ("a_portrait", "z_portrait"):
        entry = next(e for e in entries if name in e["input"])
        assert entry["faces"] and not entry.get("held_back"), entry
    detect = run_cli("detect", str(folder))
    assert "Traceback" not in detect.stderr and len(json.loads(detect.stdout)) == 6


def test_a_run_opened_for_review_names_each_photo_by_its_path_in_the_batch(batch, tmp_path):
    """Opened in the dashboard, the run's two portrait.jpg (one in sub/) are two names, as a
    folder added there would give them, not one name twice."""
    from core.run_review import import_run
    from core.workspace import Workspace

    out = tmp_path / "out"
    run_cli("anonymize", str(batch), "--out", str(out))
    ws = Workspace(tmp_path / "ws")
    # Given as a reviewer types it, from the home folder, inside the folders the dashboard may read.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path))
        session, report = import_run(ws, Path("~/out/manifest.json"), "Run", "Officer",
                                     roots=[tmp_path.resolve(), batch.resolve()])
    assert report.added == 2
    assert sorted(r.name for r in ws.images(session)) == sorted(["portrait.jpg", "sub/portrait.jpg", *BAD_INPUTS])
    # The run's folder, given instead of its manifest: its one manifest; with two, the choice is asked.
    assert import_run(ws, out, "Run again", "Officer")[1].added == 2
    run_cli("anonymize", str(batch / "portrait.jpg"), "--out", str(out))
    made = [local_time(json.loads((out / name).read_text())["created"]) for name in ("manifest-2.json", "manifest.json")]
    with pytest.raises(ValueError) as asked:  # the latest run first, each told apart
        import_run(ws, out, "Which run", "Officer")
    assert str(asked.value) == (f"{out} is a folder; give the manifest of the run to open (it holds manifest-2.json: "
                                f"1 file(s), finished {made[0]}; manifest.json: {2 + len(BAD_INPUTS)} file(s), "
                                f"finished {made[1]})")
    # A folder's manifest that is a link out of the folders the dashboard may read is not read.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "manifest.json").write_text((out / "manifest.json").read_text())
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "manifest.json").symlink_to(tmp_path / "elsewhere" / "manifest.json")
    with pytest.raises(ValueError, match="manifest.json is outside the folders this dashboard may read"):
        import_run(ws, tmp_path / "linked", "Linked", "Officer", roots=[(tmp_path / "linked").resolve()])
    # Nor read to tell it apart from another run's.
    (tmp_path / "linked" / "manifest-2.json").write_text((out / "manifest-2.json").read_text())
    with pytest.raises(ValueError, match=r"\(it holds manifest-2.json: 1 file\(s\), finished .*; manifest.json: not a "
                                         r"manifest this dashboard can read\)"):
        import_run(ws, tmp_path / "linked", "Linked", "Officer", roots=[(tmp_path / "linked").resolve()])


def test_a_file_a_run_failed_on_is_detected_when_the_run_is_opened_for_review(tmp_path, astronaut_rgb, engine):
    """A run's failure can be the run's, not the file's (its output folder refused the output, a
    cluster node did not have the share, its --max-megapixels): opened for review, such a file
    was refused with the run's reason, and the reviewer had to find it and add it again. It is
    detected in the dashboard, as a file of a folder is; a damaged one fails there with the
    dashboard's reason, and what is not a file at all keeps the run's."""
    from core.run_review import import_run
    from core.review import detect_pending
    from core.workspace import Workspace

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "large.jpg").write_bytes(jpeg_bytes(astronaut_rgb))  # 512 x 512: over 0.1 megapixels
    (folder / "broken.jpg").write_bytes(b"not a photo")
    os.mkfifo(folder / "pipe.jpg")
    result = run_cli("anonymize", str(folder), "--out", str(tmp_path / "out"), "--max-megapixels", "0.1")
    errors = {Path(e["input"]).name: e["error"] for e in json.loads((tmp_path / "out" / "manifest.json").read_text())
              ["files"]}
    assert result.returncode == 2 and sorted(errors) == ["broken.jpg", "large.jpg", "pipe.jpg"], result.stderr
    ws = Workspace(tmp_path / "ws")
    session, report = import_run(ws, tmp_path / "out" / "manifest.json", "Run", "Officer")
    assert (report.added, report.refused, report.not_done) == (0, ["pipe.jpg"], ["broken.jpg", "large.jpg"])
    detect_pending(ws, engine, session)
    records = {r.name: r for r in ws.images(session)}
    assert records["large.jpg"].detected and records["large.jpg"].faces, "over the run's limit, not the dashboard's"
    assert records["broken.jpg"].status == "failed" and records["broken.jpg"].error.startswith("not a supported image")
    assert records["pipe.jpg"].error == errors["pipe.jpg"] == "not a regular file (a device, pipe or socket)"


def test_an_earlier_runs_outputs_inside_an_input_folder_are_passed_over_and_said(tmp_path, astronaut_rgb):
    """`anonymize photos --out photos/cleaned`, then the same folder into another: the second run
    anonymised the first one's outputs again (a.jpg and a-2.jpg side by side, two copies of each
    photo to publish), and counted its manifest as a sidecar. A folder met inside the inputs that
    holds a run's manifest is passed over and said; named itself, it is anonymised. The dashboard's
    folder and zip intake pass it over the same way, and say so (it was an item of the session)."""
    from core.intake import add_files, intake_folder, unpack_zip
    from core.workspace import Workspace

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    assert run_cli("anonymize", str(photos), "--out", str(photos / "cleaned")).returncode == 0
    second = run_cli("anonymize", str(photos), "--out", str(tmp_path / "again"))
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["a.jpg", "manifest.json"]
    assert second.stderr.splitlines()[-1] == (
        f"passed over {photos / 'cleaned'}: it holds the anonymised outputs of an earlier run or export (its record "
        "is there), which would be anonymised again beside the first; name that folder itself to do so")
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert manifest["earlier_outputs"] == [str(photos / "cleaned")] and manifest["passed_over"] == []
    # `detect` passes it over too: its covered faces are not faces to find (it listed them).
    detected = run_cli("detect", str(photos))
    assert [Path(r["path"]).name for r in json.loads(detected.stdout)] == ["a.jpg"], detected.stdout
    assert detected.stderr.splitlines()[-1] == (
        f"passed over {photos / 'cleaned'}: it holds the anonymised outputs of an earlier run or export (its record "
        "is there), whose covered faces are not faces to find; name that folder itself to do so")
    named = run_cli("anonymize", str(photos / "cleaned"), "--out", str(tmp_path / "named"))
    assert named.returncode == 0 and (tmp_path / "named" / "a.jpg").is_file(), named.stderr
    # A pipe named as a manifest is not read (it would never answer): its folder is walked.
    (photos / "sub").mkdir()
    (photos / "sub" / "b.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    os.mkfifo(photos / "sub" / "manifest.json")
    piped = run_cli("anonymize", str(photos), "--out", str(tmp_path / "piped"), timeout=120)
    assert sorted(p.name for p in (tmp_path / "piped").iterdir()) == ["a.jpg", "b.jpg", "manifest.json"], piped.stderr
    (photos / "sub" / "manifest.json").unlink()
    shutil.rmtree(photos / "sub")
    assert [(i.name, i.problem, i.earlier_run) for i in intake_folder(str(photos), [tmp_path])] == [
        ("a.jpg", None, False), ("cleaned/", None, True)]
    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Folder", "Officer")
    report = add_files(ws, session, intake_folder(str(photos), [tmp_path]), "Officer")
    assert (report.added, report.refused, report.earlier_runs) == (1, [], ["cleaned/"])
    assert [r.name for r in ws.images(session)] == ["a.jpg"], "said, not an item of the session"
    assert [a["detail"] for a in ws.audit(session) if a["action"] == "anonymised outputs passed over"] == [
        {"folders": "cleaned/"}]
    # And so does a zip of the folder, as a file manager makes one (each path under the folder's
    # name); a zip of the outputs' folder alone is read, as that folder named itself is.
    for folder, expected in ((photos, [("photos.zip/photos/a.jpg", False), ("photos.zip/photos/cleaned/", True)]),
                             (photos / "cleaned", [("cleaned.zip/cleaned/a.jpg", False)])):
        packed = io.BytesIO()
        with zipfile.ZipFile(packed, "w") as archive:
            for path in sorted(folder.rglob("*")):
                archive.write(path, path.relative_to(folder.parent))
        unpacked = [(i.name, i.earlier_run) for i in unpack_zip(packed.getvalue(), f"{folder.name}.zip")
                    if not i.companion and not i.problem]
        assert unpacked == expected


def test_a_run_with_a_name_that_is_not_utf8_opens_for_review(tmp_path, astronaut_rgb):
    """A file named on an old Windows machine ("caf\\xe9.jpg"): the run names it, and opening the
    run for review stopped on it (SQLite refused the name) instead of naming it with U+FFFD."""
    from core.run_review import import_run
    from core.workspace import Workspace

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / os.fsdecode(b"caf\xe9.jpg")).write_bytes(jpeg_bytes(astronaut_rgb))
    (tmp_path / "in" / "ok.jpg").write_bytes(jpeg_bytes(astronaut_rgb[:, ::-1].copy()))
    assert run_cli("anonymize", str(tmp_path / "in"), "--out", str(tmp_path / "out")).returncode == 0
    ws = Workspace(tmp_path / "ws")
    session, report = import_run(ws, tmp_path / "out" / "manifest.json", "Run", "Officer")
    assert report.added == 2 and not report.refused
    assert sorted(r.name for r in ws.images(session)) == ["caf\ufffd.jpg", "ok.jpg"]


def test_a_run_given_relative_paths_opens_for_review_from_anywhere(tmp_path, astronaut_rgb):
    """`anonymize photos/ --out cleaned/` as the README writes it: the manifest names each input so
    that the run opens for review whatever folder the dashboard runs in (it named "photos/a.jpg",
    which was looked for beside the manifest, and every photo was refused)."""
    from core.run_review import import_run
    from core.workspace import Workspace

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    result = subprocess.run([sys.executable, "-m", "core", "anonymize", "photos", "--out", "cleaned"], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "cleaned" / "manifest.json").read_text())["files"][0]
    assert entry["input"] == str(tmp_path / "photos" / "a.jpg")
    ws = Workspace(tmp_path / "ws")
    _, report = import_run(ws, tmp_path / "cleaned" / "manifest.json", "Run", "Officer")
    assert report.added == 1 and report.refused == []
    # A manifest of an earlier version, naming it as given: found from the folder the dashboard runs in.
    manifest = json.loads((tmp_path / "cleaned" / "manifest.json").read_text())
    manifest["files"][0]["input"] = "photos/a.jpg"
    (tmp_path / "cleaned" / "old.json").write_text(json.dumps(manifest))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        _, report = import_run(ws, tmp_path / "cleaned" / "old.json", "Old run", "Officer")
    assert report.added == 1 and report.refused == []


def test_a_run_opened_for_review_lists_its_near_misses(tmp_path, astronaut_rgb):
    """A face scored just under the run's threshold is not covered, and the manifest lists it as a
    near miss, so the review of the run offers it with one tick, as the dashboard's own detection does."""
    from core.faces import near_misses, reviewable
    from core.run_review import import_run
    from core.workspace import Workspace

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "portrait.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    score = max(f["score"] for f in json.loads(run_cli("detect", str(tmp_path / "in")).stdout)[0]["faces"])
    threshold = round(score + 0.05, 2)
    result = run_cli("anonymize", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--threshold", str(threshold))
    assert result.returncode == 0, result.stderr
    entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["files"][0]
    assert not [f for f in entry["faces"] if f["score"] == score]
    assert [f["score"] for f in entry["near_misses"]] == [score]
    ws = Workspace(tmp_path / "ws")
    session, _ = import_run(ws, tmp_path / "out" / "manifest.json", "Run", "Officer")
    record = ws.images(session)[0]
    assert [record.faces[i].score for i in near_misses(record.faces, threshold)] == [score]
    assert not [record.faces[i] for i in reviewable(record.faces, threshold) if record.faces[i].score == score]


@pytest.mark.parametrize("text", ['{"files": [{"output": "a.jpg"}], "settings": {}}',
                                  '{"files": ["a.jpg"], "settings": {}}', '{"files": 3, "settings": {}}', "[]",
                                  '{"files": [], "settings": {"mood": 1}}', "not json"])
def test_a_manifest_that_is_not_a_runs_is_refused_by_name(tmp_path, text):
    """Opening a file that is no batch manifest (hand-edited, another tool's) says so, naming
    it, and makes no session; it never stops the page with a traceback."""
    from core.run_review import import_run
    from core.workspace import Workspace

    (tmp_path / "manifest.json").write_text(text)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ValueError, match="manifest.json is not a batch manifest"):
        import_run(ws, tmp_path / "manifest.json", "Run", "Officer")
    assert ws.sessions() == []


def test_output_names_keep_accented_letters_without_their_accents():
    from core.run_folder import OutputNamer, safe_name

    namer = OutputNamer(None)
    assert namer.name_for("Sortie/École Fête.jpg", "JPEG") == "Ecole_Fete.jpg"
    assert namer.name_for("Ecole Fete.png", "JPEG") == "Ecole_Fete-2.jpg", "still one name per input"
    assert safe_name("Zoë's ../party", "session") == "Zoe_s_.._party"
    assert safe_name("北京", "session") == "session"


@pytest.mark.parametrize("stage,options,stop", [("detecting faces", (), "SIGINT"), ("checking", ("--check",), "SIGINT"),
                                               ("detecting faces", (), "SIGTERM"), ("detecting faces", (), "SIGHUP")])
def test_a_run_stopped_with_ctrl_c_keeps_its_record(tmp_path, astronaut_rgb, astronaut_face_box, stage, options,
                                                     stop):
    """Ctrl-C in the middle of a batch printed a traceback and left the photos already written
    with no manifest: files with no record of how they were made. The run stops at once, leaves
    no half-written file, and writes the manifest of what it did; every input is in it, those
    not done said so, and the message says how far it got. Stopped while a clip written whole
    was being checked, the clip does not stay beside the checked outputs. Its terminal closed
    (SIGHUP) or `kill` (SIGTERM) stop it the same way (they ended it where it was, unrecorded)."""
    from tests.clips import moving_face_frames, write_clip

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    (folder / "a_broken.jpg").write_bytes(jpeg_bytes(astronaut_rgb)[:300])
    write_clip(folder / "b.mp4", [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 250)])
    (folder / "c.jpg").write_bytes(jpeg_bytes(astronaut_rgb[:, ::-1].copy()))
    run, said = run_until(f"b.mp4: {stage}, frame 50/", "anonymize", str(folder), "--out", str(tmp_path / "out"),
                          *options)
    if stop == "SIGHUP":
        run.stderr.close()  # the terminal is gone: what the run says next has nowhere to go
    run.send_signal(getattr(signal, stop))
    said += [] if run.stderr.closed else run.stderr.readlines()
    assert run.wait(timeout=60) == 130, said
    said = "".join(said)
    assert "Traceback" not in said and "KeyboardInterrupt" not in said, said
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["stopped"]
    outcome = {Path(f["input"]).name: f.get("output") or f["error"] for f in manifest["files"]}
    assert outcome["a.jpg"] == "a.jpg" and (tmp_path / "out" / "a.jpg").is_file()
    assert outcome["b.mp4"].startswith("not done: the run was stopped") and outcome["c.jpg"] == outcome["b.mp4"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "manifest.json"]
    if stop != "SIGHUP":
        assert f"stopped: 1 of 4 file(s) done; manifest: {tmp_path / 'out' / 'manifest.json'}" in said
        # What failed before the stop is said, as at the end of a whole run.
        assert said.splitlines()[-1] == f"error: {folder / 'a_broken.jpg'}: {outcome['a_broken.jpg']}", said
    # Opened for review, the run's photo comes with its faces, and what it did not do is detected
    # there (where the broken photo fails, as it does in the run).
    from core.run_review import import_run
    from core.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    session, report = import_run(ws, tmp_path / "out" / "manifest.json", "Stopped run", "Officer")
    assert (report.added, report.refused, report.not_done) == (1, [], ["a_broken.jpg", "b.mp4", "c.jpg"])
    assert [r.name for r in ws.awaiting_detection(session)] == ["a_broken.jpg", "b.mp4", "c.jpg"]
    if stop == "SIGTERM":  # as the message says, the same command finishes the run, keeping what was done
        assert "run the same command again to finish them" in said
        again = run_cli("anonymize", str(folder), "--out", str(tmp_path / "out"), *options)
        assert again.returncode == 2, again.stderr  # a_broken.jpg fails again
        assert "3 anonymised, 0 held back, 1 failed (1 from an earlier run)" in again.stderr, again.stderr
        finished = json.loads((tmp_path / "out" / "manifest-2.json").read_text())
        assert [f.get("output") for f in finished["files"]] == ["a.jpg", None, "b.mp4", "c.jpg"]
        assert finished["files"][0] == manifest["files"][0]
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.mp4", "c.jpg", "manifest-2.json",
                                                                       "manifest.json"]


def test_an_input_gone_since_the_folder_was_read_is_not_kept_and_stops_nothing(tmp_path):
    """Whether an earlier run's output can be kept is asked of each file before the run starts;
    an input gone meanwhile (a network share) raised there, and the whole batch failed with it."""
    from core.run_folder import unchanged

    (tmp_path / "a.jpg").write_bytes(b"output")
    entry = {"input": str(tmp_path / "in" / "a.jpg"), "input_sha256": "0" * 64, "output": "a.jpg",
             "output_sha256": hashlib.sha256(b"output").hexdigest()}
    assert unchanged(entry, tmp_path / "in" / "a.jpg", tmp_path) is False


def test_a_run_stopped_before_the_files_an_earlier_run_did_leaves_them_for_the_next(tmp_path, astronaut_rgb,
                                                                                    astronaut_face_box):
    """Files kept from an earlier run that a stop comes before are not done in the stopped run's
    manifest, nor counted as kept; the next run still keeps them (the earlier record holds)."""
    from tests.clips import moving_face_frames, write_clip

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name, picture in (("b.jpg", astronaut_rgb), ("c.jpg", astronaut_rgb[:, ::-1].copy())):
        (folder / name).write_bytes(jpeg_bytes(picture))
    assert run_cli("anonymize", str(folder), "--out", str(out)).returncode == 0
    outputs = {name: (out / name).read_bytes() for name in ("b.jpg", "c.jpg")}
    write_clip(folder / "a.mp4", [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 250)])
    run, _ = run_until("a.mp4: detecting faces, frame 50/", "anonymize", str(folder), "--out", str(out))
    run.send_signal(signal.SIGTERM)
    run.stderr.read()
    assert run.wait(timeout=60) == 130
    stopped = json.loads((out / "manifest-2.json").read_text())
    assert stopped["resumed"] == 0 and all(f["error"] == STOPPED for f in stopped["files"])
    again = run_cli("anonymize", str(folder), "--out", str(out))
    assert again.returncode == 0 and "3 anonymised, 0 held back, 0 failed (2 from an earlier run)" in again.stderr
    finished = json.loads((out / "manifest-3.json").read_text())
    assert [f["output"] for f in finished["files"]] == ["a.mp4", "b.jpg", "c.jpg"] and finished["resumed"] == 2
    assert {name: (out / name).read_bytes() for name in ("b.jpg", "c.jpg")} == outputs


def test_a_second_run_into_a_folder_a_run_is_writing_into_is_refused(tmp_path, astronaut_rgb, astronaut_face_box):
    """Two runs into one folder at once (two terminals, a script started twice): each named its
    outputs and its manifest as if alone, both said "manifest: OUT/manifest.json", and one's
    record was written over by the other's, whose outputs it did not list. The second is refused
    at once, naming the first; once the first has ended, the same command goes on."""
    from tests.clips import moving_face_frames, write_clip

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    write_clip(folder / "a.mp4", [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 120)])
    (folder / "b.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    first, _ = run_until("a.mp4: detecting faces, frame", "anonymize", str(folder), "--out", str(out))
    second = run_cli("anonymize", str(folder), "--out", str(out), "--mode", "solid")
    rest = first.stderr.read()
    assert first.wait(timeout=120) == 0, rest
    assert second.returncode == 1 and second.stderr == (
        f"error: --out {out} is being written by another run (process {first.pid}): nothing was done; wait for it "
        "to end, or name another folder\n")
    assert "2 anonymised, 0 held back, 0 failed; manifest: " + str(out / "manifest.json") in rest
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.jpg", "manifest.json"]
    after = run_cli("anonymize", str(folder), "--out", str(out), "--mode", "solid")
    assert after.returncode == 0 and f"manifest: {out / 'manifest-2.json'}" in after.stderr, after.stderr


def test_a_run_killed_as_it_wrote_leaves_nothing_unfinished_after_the_next(tmp_path, astronaut_rgb,
                                                                          astronaut_face_box):
    """A run killed (or a machine losing its power) while it wrote a clip left it under its
    temporary name, hidden in the output folder, for good: the next run into the folder removes
    it, and finishes the batch."""
    from tests.clips import moving_face_frames, write_clip

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    write_clip(folder / "a.mp4", [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 200)])
    run, _ = run_until("a.mp4: covering, frame 50/", "anonymize", str(folder), "--out", str(out))
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    assert [p.name.startswith(".partial-") for p in out.iterdir() if p.suffix == ".mp4"] == [True]
    again = run_cli("anonymize", str(folder), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "manifest-2.json", "manifest.json"]
    assert json.loads((out / "manifest.json").read_text())["files"] == [{"input": str(folder / "a.mp4"),
                                                                          "error": KILLED}]


# `python -c` this with the command's arguments: the command, killed outright (as by kill -9 or a
# power cut) at the moment it would record the file named in KILL_AT as done, its output written,
# or, KILL_AT a number, at the moment it would write that event of its journal (the first is 1).
KILLED_AT = """
import os, signal, sys, threading
from core import journal
from core.cli import main

append, events, lock = journal.Journal.append, [], threading.Lock()
def append_or_die(self, event, **options):
    at = os.environ["KILL_AT"]
    with lock:
        events.append(event)
        if str(len(events)) == at or (not at.isdigit() and str(event.get("done", "")).endswith(at)):
            os.kill(os.getpid(), signal.SIGKILL)
    append(self, event, **options)
journal.Journal.append = append_or_die
sys.exit(main(sys.argv[1:]))
"""


def killed_at(at: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", KILLED_AT, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=os.environ | {"KILL_AT": at})


def test_a_run_killed_at_any_moment_leaves_no_output_without_a_record_after_the_next(tmp_path, astronaut_rgb):
    """Wherever a run is killed outright (before or after any line of its journal: an output named,
    written, recorded), the next run into the folder leaves every file there in a record: each
    output in the finished run's manifest, once, under the name the first run gave it, and no
    output of the killed run but those its own record lists."""
    folder = tmp_path / "in"
    photos = noisy_photos(folder, astronaut_rgb, 2)
    (folder / "z_broken.jpg").write_bytes(jpeg_bytes(astronaut_rgb)[:300])
    events = 1 + 2 * 2 + 1  # the run, each photo's output named then done, the broken file done
    for at in range(1, events + 1):
        out = tmp_path / f"out{at}"
        killed = killed_at(str(at), "anonymize", str(folder), "--out", str(out))
        assert killed.returncode == -signal.SIGKILL, (at, killed.stderr)
        again = run_cli("anonymize", str(folder), "--out", str(out))
        assert again.returncode == 2 and "2 anonymised, 0 held back, 1 failed" in again.stderr, (at, again.stderr)
        manifests = [p.name for p in run_manifests(out)]  # the killed run's first, if it got to name one
        finished = json.loads((out / manifests[-1]).read_text())
        assert [f["input"] for f in finished["files"]] == [str(p) for p in [*photos, folder / "z_broken.jpg"]]
        assert [f.get("output") for f in finished["files"]] == ["p00.jpg", "p01.jpg", None], at
        assert sorted(p.name for p in out.iterdir()) == sorted(["p00.jpg", "p01.jpg", *manifests]), at
        for name in manifests[:-1]:  # the killed run's record, made by the next: what it lists is there as listed
            for entry in (f for f in json.loads((out / name).read_text())["files"] if "output" in f):
                assert hashlib.sha256((out / entry["output"]).read_bytes()).hexdigest() == entry["output_sha256"]
                assert entry in finished["files"], at



def test_a_run_killed_outright_is_given_its_record_and_finished_without_second_copies(tmp_path, astronaut_rgb):
    """A run killed outright (kill -9, the out-of-memory killer, a power cut) left the photos it had
    written with no record, and the same command run again wrote each of them a second time beside
    the first (`p00-2.jpg`): two copies to publish, one in no manifest. The next run into the
    folder now makes the killed run's manifest from its journal first (the photos it finished; an
    output it had written but not recorded removed), then keeps those photos and does the rest
    under the names the first run would have given."""
    folder, out = tmp_path / "in", tmp_path / "out"
    photos = noisy_photos(folder, astronaut_rgb, 6)
    killed = killed_at("p03.jpg", "anonymize", str(folder), "--out", str(out))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "p03.jpg").is_file() and not (out / "manifest.json").exists()  # written, never recorded
    assert holds_run(out, os.listdir(out))  # met inside another run's inputs, passed over by its journal
    from core.run_review import import_run
    from core.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    with pytest.raises(ValueError, match="the last run into it has not written its manifest yet: it is still going, "
                                         "or it was killed; let it end, or run the same command again"):
        import_run(ws, out, "Killed run", "Officer")  # the dashboard says what to do
    first = {name: (out / name).read_bytes() for name in ("p00.jpg", "p01.jpg", "p02.jpg")}
    again = run_cli("anonymize", str(folder), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[0] == (
        f"an earlier run into {out} was killed before it wrote its manifest: its record is made now, from its "
        f"journal: {out / 'manifest.json'} (3 file(s) done)"), again.stderr
    assert "6 anonymised, 0 held back, 0 failed (3 from an earlier run)" in again.stderr, again.stderr
    recovered = json.loads((out / "manifest.json").read_text())
    assert recovered["stopped"].startswith("killed, or the machine went down, before it wrote its manifest")
    assert [f.get("output") or f["error"] for f in recovered["files"]] == ["p00.jpg", "p01.jpg", "p02.jpg",
                                                                         KILLED, KILLED, KILLED]
    assert [f["input"] for f in recovered["files"]] == [str(p) for p in photos]
    finished = json.loads((out / "manifest-2.json").read_text())
    assert [f["output"] for f in finished["files"]] == [p.name for p in photos]
    assert finished["files"][:3] == recovered["files"][:3] and finished["resumed"] == 3
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in photos] + ["manifest.json",
                                                                                     "manifest-2.json"])
    assert {name: (out / name).read_bytes() for name in first} == first
    # Opened for review, the killed run's record gives its photos with their faces, and the rest
    # are detected there.
    session, report = import_run(ws, out / "manifest.json", "Killed run", "Officer")
    assert (report.added, report.refused, report.not_done) == (3, [], ["p03.jpg", "p04.jpg", "p05.jpg"])
    # The folder itself opens the run that finished the batch, which the killed run's record does
    # not make a choice to ask of the reviewer.
    session, report = import_run(ws, out, "Finished run", "Officer")
    assert (report.added, report.not_done) == (6, []) and report.chosen == (
        "manifest-2.json, the latest of 2 runs into the folder, which did every file the earlier ones did")


def test_a_cluster_that_cannot_be_reached_is_said_at_once_and_nothing_is_written(batch, tmp_path):
    """Ray retries a wrong address for minutes, printing its logs (and `auto` with no cluster
    raised a traceback): the command says what is wrong in one line, before writing anything."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{probe.getsockname()[1]}"  # nothing listens there once the probe is closed
    out = tmp_path / "o"
    for address, said in [(closed, f"no Ray cluster answers at {closed} (Connection refused)"),
                          ("headnode", "--ray headnode: name the cluster's head as HOST:PORT"),
                          ("auto", "--ray auto: no Ray cluster is running on this machine")]:
        for command in (["anonymize", str(batch / "portrait.jpg"), "--out", str(out)], ["detect", str(batch)]):
            result = run_cli(*command, "--ray", address)
            assert result.returncode == 1 and result.stderr.startswith(f"error: {said}"), result.stderr
            assert len(result.stderr.splitlines()) == 1 and not result.stdout
        assert not any(out.iterdir())
    # `auto` where Ray finds a cluster that is gone (its head killed since it was started, here
    # named by RAY_ADDRESS, which Ray reads first): Ray waited on it for good, saying nothing.
    result = run_cli("anonymize", str(batch / "portrait.jpg"), "--out", str(out), "--ray", "auto",
                     env={"RAY_ADDRESS": closed}, timeout=120)
    assert result.returncode == 1 and result.stderr == (
        f"error: no Ray cluster answers at {closed} (where --ray auto looks: RAY_ADDRESS, else the last `ray start` "
        "on this machine) (Connection refused): is its head started (`ray start --head`) and the address right?\n")
    assert not any(out.iterdir())


def test_an_address_that_answers_but_not_as_a_ray_head_is_said_and_nothing_is_written(batch, tmp_path):
    """A web server, or a port that takes the connection and says nothing, named as the head: Ray
    waited on it for good (13 minutes and still waiting, saying nothing). The command asks the
    port the first thing a head's gRPC answers (HTTP/2's greeting) and says in one line that it
    is not one."""
    import http.server
    import threading

    web = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))  # connections wait in its queue, never answered
    out = tmp_path / "o"
    try:
        for port in (web.server_address[1], silent.getsockname()[1]):
            address = f"127.0.0.1:{port}"
            for command in (["anonymize", str(batch / "portrait.jpg"), "--out", str(out)], ["detect", str(batch)]):
                result = run_cli(*command, "--ray", address, timeout=120)
                assert result.returncode == 1 and result.stderr.startswith(
                    f"error: {address} answers, but not as a Ray cluster's head"), result.stderr
                assert len(result.stderr.splitlines()) == 1 and not result.stdout
            assert not out.exists() or not any(out.iterdir())
    finally:
        web.shutdown()
        silent.close()


def test_a_manifest_of_a_stopped_run_is_read_as_stopped_whichever_version_wrote_it():
    from core.run_folder import STOPPED, stopped_before

    earlier = "not done: the run was stopped (Ctrl-C) before it; run again for it"  # as the last version wrote it
    assert stopped_before({"error": STOPPED}) and stopped_before({"error": earlier})
    assert stopped_before({"error": FULL})  # its output disk was full: detected in the dashboard too
    assert not stopped_before({"error": "the image data is damaged or truncated"}) and not stopped_before({})
