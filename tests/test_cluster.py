"""The batch job on a real two-node Ray cluster started on 127.0.0.1 by the tests: the same
outputs and manifest as the local command, a lost node costs retries and not results, a rerun
finishes the rest with every file once, a broken file is that file's error, the run opens as a
review session, and nothing connects beyond loopback."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.cluster import LoopbackCluster
from core.journal import Journal
from core.review import detect_pending
from core.run_folder import STOPPED
from core.run_review import import_run
from core.walk import holds_run
from core.workspace import Workspace
from tests.clips import iter_moving_face_frames, moving_face_frames, write_clip
from tests.conftest import ROOT, jpeg_bytes, noisy_photos, on_a_small_disk, png_bytes
from tests.test_leaks import STRACE, outbound

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and a worker node, one CPU each, on 127.0.0.1, with their own auth token.
    Yields (address, environment for drivers, pid of the worker node's raylet)."""
    nodes = LoopbackCluster(2, tmp_path_factory.mktemp("ray"))
    assert len(nodes.raylets) == 2
    try:
        yield nodes.address, nodes.environment | {"PYTHONPATH": str(ROOT)}, nodes.raylets[1]
    finally:
        nodes.stop()


def photos(folder: Path, rgb: np.ndarray, count: int, size: int = 512) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        picture = cv2.resize(np.roll(rgb, 37 * i, axis=1), (size, size))
        path = folder / f"photo-{i:02d}.jpg"
        path.write_bytes(jpeg_bytes(picture))
        made.append(path)
    return made


def run_cli(*args, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def said(stderr: str) -> set[str]:
    """What a run's progress lines say of each file, without their numbers or the frames of a clip."""
    return {line.split("] ", 1)[1] for line in stderr.splitlines() if line.startswith("[") and ", frame " not in line}


def test_held_back_outputs_are_named_on_a_cluster_as_on_one_machine(cluster, tmp_path, astronaut_rgb):
    """A compliance officer reads the run's lines: a photo the check holds back is named with why
    and where it went, and a file refused before the run starts is named as it is refused."""
    address, env, _ = cluster
    inputs = tmp_path / "shared"
    photos(inputs, astronaut_rgb, 1)
    (inputs / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    run = run_cli("anonymize", inputs, "--out", out, "--ray", address, "--check", "--threshold", "0.99", env=env)
    assert run.returncode == 2, run.stderr  # notes.txt failed; the photo is held back
    assert f"] {inputs / 'notes.txt'}: not an image or video file" in run.stderr
    assert f"] {inputs / 'photo-00.jpg'}: 1 face(s) found again by the detector" in run.stderr
    assert (f"check: {inputs / 'photo-00.jpg'} -> held-back/photo-00.jpg: 1 face(s) found again by the detector; "
            f"held back in {out / 'held-back'}: look at it before publishing") in run.stderr
    assert (out / "held-back" / "photo-00.jpg").exists() and not (out / "photo-00.jpg").exists()


def comparable(manifest: dict) -> list[dict]:
    return [{k: v for k, v in entry.items() if k != "input"} | {"input": Path(entry["input"]).name}
            for entry in manifest["files"]]


def test_cluster_run_equals_the_local_command_and_opens_for_review(cluster, engine, tmp_path, astronaut_rgb,
                                                                   astronaut_face_box):
    address, env, _ = cluster
    inputs = tmp_path / "shared"
    photos(inputs, astronaut_rgb, 3)
    (inputs / "alpha.png").write_bytes(png_bytes(np.dstack([astronaut_rgb, np.full(astronaut_rgb.shape[:2], 255,
                                                                                     np.uint8)])))
    (inputs / "broken.jpg").write_bytes(jpeg_bytes(astronaut_rgb)[:300])
    write_clip(inputs / "hall.mp4", [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 8)])
    local = run_cli("anonymize", inputs, "--out", tmp_path / "local", env=env)
    remote = run_cli("anonymize", inputs, "--out", tmp_path / "remote", "--ray", address, env=env)
    assert local.returncode == remote.returncode == 2, remote.stderr  # the broken file, in both
    local_manifest = json.loads((tmp_path / "local" / "manifest.json").read_text())
    remote_manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert comparable(remote_manifest) == comparable(local_manifest)  # same regions, names and output hashes
    for entry in remote_manifest["files"]:
        if "error" in entry:
            assert Path(entry["input"]).name == "broken.jpg" and "broken.jpg" in entry["error"] or entry["error"]
            continue
        assert (tmp_path / "remote" / entry["output"]).read_bytes() == (tmp_path / "local" / entry["output"]).read_bytes()
    assert sum(1 for e in remote_manifest["files"] if "error" in e) == 1
    # It says what became of each file as the local command does: faces, tracks, errors.
    assert said(remote.stderr) == said(local.stderr)
    assert f"{inputs / 'photo-00.jpg'}: 1 faces" in said(remote.stderr) and len(said(remote.stderr)) == 6
    # detect on the cluster prints what the local command prints.
    local_detect = run_cli("detect", inputs / "photo-00.jpg", inputs / "alpha.png", env=env)
    remote_detect = run_cli("detect", inputs / "photo-00.jpg", inputs / "alpha.png", "--ray", address, env=env)
    assert json.loads(remote_detect.stdout) == json.loads(local_detect.stdout)
    # The run opens as a review session: every photo with its faces, nothing detected again.
    workspace = Workspace(tmp_path / "ws")
    session, report = import_run(workspace, tmp_path / "remote" / "manifest.json", "Archive", "Officer")
    assert report.added == 4 and report.refused == [] and report.not_done == ["broken.jpg"]  # tried here, as the run did
    records = {r.name: r for r in workspace.images(session)}
    assert set(records) == {"photo-00.jpg", "photo-01.jpg", "photo-02.jpg", "alpha.png", "broken.jpg", "hall.mp4"}
    assert report.videos == ["hall.mp4"]
    by_name = {Path(e["input"]).name: e for e in remote_manifest["files"]}
    for name in ("photo-00.jpg", "alpha.png"):
        assert records[name].faces is not None and [round(f.x, 1) for f in records[name].faces] == \
            [f["x"] for f in by_name[name]["faces"]]
    # Its video is detected again here, as an uploaded clip is: then it is reviewed per person.
    assert [r.name for r in workspace.awaiting_detection(session)] == ["broken.jpg", "hall.mp4"]
    detect_pending(workspace, engine, session)
    assert workspace.image(records["broken.jpg"].id).status == "failed"
    clip = workspace.image(records["hall.mp4"].id)
    assert clip.error is None and clip.faces and all(f.detector.startswith("track") for f in clip.faces)
    assert workspace.awaiting_detection(session) == []


def settled(folder: Path, quiet: float = 3.0, limit: float = 120) -> list[str]:
    """The folder's files (not the hidden lock a run leaves) once none has come or gone for
    `quiet` seconds: a killed driver's workers on the surviving node finish the photo they hold
    before Ray stops them, and write it (the next run into the folder removes it: it is in no
    record)."""
    listing, since, deadline = None, time.time(), time.time() + limit
    while time.time() < deadline:
        now = sorted(name for name in os.listdir(folder) if not name.startswith("."))
        if now != listing:
            listing, since = now, time.time()
        elif time.time() - since >= quiet:
            return listing
        time.sleep(0.2)
    raise AssertionError(f"{folder} still changing after {limit} s: {listing}")


def test_a_lost_node_costs_retries_and_a_rerun_finishes_every_file_once(cluster, tmp_path, astronaut_rgb):
    address, env, worker_raylet = cluster
    inputs = photos(tmp_path / "shared", astronaut_rgb, 12, size=1400)
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, "-m", "core", "anonymize", str(tmp_path / "shared"), "--out", str(out),
                            "--ray", address], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = out / "journal.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (journal.exists() and '"done"' in journal.read_text()):
        time.sleep(0.2)
    os.kill(worker_raylet, signal.SIGKILL)  # the worker node is lost mid-job
    time.sleep(2)
    job.send_signal(signal.SIGKILL)  # and the driver crashes before the end
    job.wait(timeout=60)
    done_before = journal.read_text().count('"done"')
    assert 1 <= done_before < len(inputs)
    # Met inside the inputs of another run, the folder is told as a run's by its journal alone.
    assert holds_run(out, os.listdir(out)) and not (out / "manifest.json").exists()
    # A run on one machine into it would have written every output the cluster finished a second
    # time beside it, in no record: it is refused, saying how to finish the cluster's run.
    before = settled(out)
    local = run_cli("anonymize", tmp_path / "shared", "--out", out, env=env)
    assert local.returncode == 1 and local.stderr == (
        f"error: a run on a cluster into {out} was killed before it wrote its manifest (its journal.jsonl is there): "
        "finish it with the same command and its --ray first, or name another folder; nothing was done\n")
    assert sorted(name for name in os.listdir(out) if not name.startswith(".")) == before
    rerun = run_cli("anonymize", tmp_path / "shared", "--out", out, "--ray", address, env=env)
    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [Path(e["input"]).name for e in manifest["files"]] == [p.name for p in inputs]  # each once, in order
    assert all("error" not in e for e in manifest["files"])
    assert manifest["resumed"] >= 1
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".jpg") == [p.name for p in inputs]
    assert not list(out.glob(".partial-*"))
    # A third run has nothing left to do, and says so.
    again = run_cli("anonymize", tmp_path / "shared", "--out", out, "--ray", address, env=env)
    assert f"({len(inputs)} from an earlier run)" in again.stderr
    # Done means done for these bytes: an input replaced since is done again.
    inputs[3].write_bytes(jpeg_bytes(cv2.resize(astronaut_rgb[::-1].copy(), (1400, 1400))))
    changed = run_cli("anonymize", tmp_path / "shared", "--out", out, "--ray", address, env=env)
    assert f"({len(inputs) - 1} from an earlier run)" in changed.stderr
    entry = json.loads((out / "manifest.json").read_text())["files"][3]
    assert entry["input_sha256"] == hashlib.sha256(inputs[3].read_bytes()).hexdigest()
    assert hashlib.sha256((out / entry["output"]).read_bytes()).hexdigest() == entry["output_sha256"]


def test_a_cluster_run_into_a_folder_of_a_run_on_one_machine_keeps_that_runs_record(cluster, tmp_path,
                                                                                    astronaut_rgb):
    """A batch first run on one machine, then on the cluster into the same folder: the cluster run
    wrote `manifest.json` over the first run's, whose output then had no record. Its manifest
    now has a name of its own, kept for its reruns. And it keeps what the first run did with the
    same settings, as a run on one machine does: before, it made that photo again beside it
    (`photo-00-2.jpg`)."""
    address, env, _ = cluster
    inputs = photos(tmp_path / "shared", astronaut_rgb, 2)
    out = tmp_path / "out"
    assert run_cli("anonymize", inputs[0], "--out", out, env=env).returncode == 0
    first = (out / "manifest.json").read_bytes()
    for kept in (1, 2):  # and its rerun
        result = run_cli("anonymize", tmp_path / "shared", "--out", out, "--ray", address, env=env)
        assert result.returncode == 0 and f"manifest: {out / 'manifest-2.json'}" in result.stderr, result.stderr
        assert f"({kept} from an earlier run)" in result.stderr, result.stderr
    assert (out / "manifest.json").read_bytes() == first
    assert sorted(p.name for p in out.iterdir()) == ["journal.jsonl", "manifest-2.json", "manifest.json",
                                                     "photo-00.jpg", "photo-01.jpg"]
    files = json.loads((out / "manifest-2.json").read_text())["files"]
    assert [e["output"] for e in files] == ["photo-00.jpg", "photo-01.jpg"]
    assert files[0] == json.loads(first)["files"][0], "the first run's entry, as it recorded it"
    # Done again by the cluster once the first run's output is not what it recorded.
    (out / "photo-00.jpg").write_bytes(inputs[0].read_bytes())
    result = run_cli("anonymize", tmp_path / "shared", "--out", out, "--ray", address, env=env)
    assert "(1 from an earlier run)" in result.stderr, result.stderr
    entry = json.loads((out / "manifest-2.json").read_text())["files"][0]
    assert hashlib.sha256((out / entry["output"]).read_bytes()).hexdigest() == entry["output_sha256"]
    assert entry["output_sha256"] != hashlib.sha256(inputs[0].read_bytes()).hexdigest()


def test_a_cluster_that_refuses_this_machines_token_is_said_in_one_line(cluster, tmp_path, astronaut_rgb):
    """A cluster with token authentication (Ray's default from 2.61) joined without its token:
    Ray's client printed a warning a second for 20 s, then the command said that no cluster was
    running. It says which: the token, and where Ray reads it from."""
    address, env, _ = cluster
    inputs = photos(tmp_path / "shared", astronaut_rgb, 1)
    home = tmp_path / "home"  # no ~/.ray/auth_token here
    home.mkdir()
    out = tmp_path / "out"
    # Told by the cluster (this machine does not know it wants one), or by Ray here (RAY_AUTH_MODE=token).
    for drop in ("RAY_AUTH", "RAY_AUTH_TOKEN"):
        without = {k: v for k, v in env.items() if not k.startswith(drop)} | {"HOME": str(home)}
        result = run_cli("anonymize", inputs[0], "--out", out, "--ray", address, env=without, timeout=120)
        assert result.returncode == 1 and result.stderr.splitlines() == [
            f"error: the Ray cluster at {address} refused this machine: its authentication token is missing or not "
            "the cluster's (Ray reads it from RAY_AUTH_TOKEN, the file RAY_AUTH_TOKEN_PATH names, or "
            "~/.ray/auth_token): give it the token the cluster was started with, then run again"], result.stderr
        assert not any(out.iterdir())


def test_a_long_video_on_a_cluster_says_how_far_it_has_got(cluster, tmp_path, astronaut_rgb, astronaut_face_box):
    """The local command says a video's frame as it goes; on a cluster the driver waits for the
    whole file, and a long video showed nothing for minutes: the workers are asked."""
    address, env, _ = cluster
    (tmp_path / "shared").mkdir()
    clip = tmp_path / "shared" / "hall.mp4"
    write_clip(clip, (f for f, _ in iter_moving_face_frames(astronaut_rgb, astronaut_face_box, 160, 1280, 720, 90)),
               count=160)
    run = run_cli("anonymize", tmp_path / "shared", "--out", tmp_path / "out", "--ray", address, env=env)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    said = [line for line in lines if line.endswith(" (on the cluster)")]
    assert said and all(re.fullmatch(rf"\[0/1\] {re.escape(str(clip))}: (detecting faces|covering), frame \d+/160 "
                                     r"\(on the cluster\)", line) for line in said), lines
    assert lines.index(said[-1]) < lines.index(next(line for line in lines if line.startswith("[1/1]")))
    # `detect` says it too, as the local command does.
    found = run_cli("detect", clip, "--ray", address, env=env)
    assert found.returncode == 0 and json.loads(found.stdout)[0]["tracks"], found.stderr
    assert re.search(rf"\[0/1\] {re.escape(str(clip))}: frame \d+/160 \(on the cluster\)", found.stderr), found.stderr


def test_ctrl_c_on_a_cluster_run_leaves_a_record_and_the_same_command_finishes_it(cluster, tmp_path, astronaut_rgb):
    address, env, _ = cluster
    inputs = photos(tmp_path / "shared", astronaut_rgb, 10, size=1400)
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, "-m", "core", "anonymize", str(tmp_path / "shared"), "--out", str(out),
                            "--ray", address], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal starts it
    for line in job.stderr:
        if line.startswith("[1/"):
            job.send_signal(signal.SIGINT)  # as Ctrl-C in the terminal does
            break
    said_then = job.stderr.read()
    assert job.wait(timeout=120) == 130 and "Traceback" not in said_then, said_then
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stopped"] and [Path(e["input"]).name for e in manifest["files"]] == [p.name for p in inputs]
    done = [e for e in manifest["files"] if "output" in e]
    assert 1 <= len(done) < len(inputs)
    assert f"stopped: {len(done)} of {len(inputs)} file(s) done; manifest: {out / 'manifest.json'}" in said_then
    assert all(e["error"] == STOPPED for e in manifest["files"] if "output" not in e)
    # What is in the folder is what the record says was done, each output as its hash says.
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(e["output"] for e in done)
    for entry in done:
        assert hashlib.sha256((out / entry["output"]).read_bytes()).hexdigest() == entry["output_sha256"]
    rerun = run_cli("anonymize", tmp_path / "shared", "--out", out, "--ray", address, env=env)
    assert rerun.returncode == 0 and f"({len(done)} from an earlier run)" in rerun.stderr, rerun.stderr
    assert sorted(p.name for p in out.glob("*.jpg")) == [p.name for p in inputs]


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux) for a private mount")
def test_a_disk_that_fills_stops_a_cluster_run_and_the_same_command_finishes_it(tmp_path, astronaut_rgb):
    """The shared output folder's disk fills partway (a cluster of this machine, so that its
    workers see the private disk): the run stops at once with its manifest written, every output
    in it; once room is made, the same command keeps those and does the rest. Before, the run
    went on failing every file left, then stopped with a traceback and no manifest."""
    inputs = noisy_photos(tmp_path / "shared", astronaut_rgb, 12)
    need = sum(p.stat().st_size for p in inputs)
    small = tmp_path / "small"
    small.mkdir()
    out = small / "run"
    # The command runs twice: on a disk that fills, then once the ballast is gone.
    disk = on_a_small_disk(small, str(2 * need + 256 * 1024), before=f'head -c {3 * need // 2} /dev/zero > "$0/ballast" && ',
                           after='echo "first run: $code" >&2; rm "$0/ballast"; "$@"; code=$?; cp -a "$0" "$0-copy"')
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run([*disk, sys.executable, "-m", "core", "anonymize", str(tmp_path / "shared"), "--out",
                             str(out), "--ray", "local"], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    first, then = result.stderr.split("first run: ")
    assert then.startswith("2\n") and "Traceback" not in result.stderr, result.stderr
    stop = re.search(r"stopped: its output disk took no more \(No space left on device\): (\d+) of 12 file\(s\) done; "
                     f"manifest: {re.escape(str(out / 'manifest.json'))} \\(the files not done are listed in it\\); "
                     "free space on it, then run the same command again to finish them", first)
    assert stop and 0 < int(stop[1]) < 12, first
    assert len([line for line in first.splitlines() if line.startswith("[")]) < 12, "it stopped at once"
    assert "the output cannot be written" not in first  # the file the disk refused is not done, as those after it
    assert result.returncode == 0, then
    assert f"12 anonymised, 0 held back, 0 failed ({stop[1]} from an earlier run)" in then
    written = tmp_path / "small-copy" / "run"
    manifest = json.loads((written / "manifest.json").read_text())
    assert "stopped" not in manifest and [Path(e["input"]).name for e in manifest["files"]] == [p.name for p in inputs]
    for entry in manifest["files"]:
        assert hashlib.sha256((written / entry["output"]).read_bytes()).hexdigest() == entry["output_sha256"]
    assert sorted(p.name for p in written.iterdir()) == sorted([p.name for p in inputs] + [
        "manifest.json", "journal.jsonl"])


@pytest.mark.skipif(not STRACE, reason="needs strace to watch Ray's system calls")
def test_a_local_ray_run_connects_to_nothing_beyond_loopback(tmp_path, astronaut_rgb):
    photos(tmp_path / "in", astronaut_rgb, 2)
    trace = tmp_path / "strace.log"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run([STRACE, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                             sys.executable, "-m", "core", "anonymize", str(tmp_path / "in"), "--out",
                             str(tmp_path / "out"), "--ray", "local"], env=env, capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert len(json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]) == 2
    # What the user reads is the tool's own lines, not Ray's advice on turning its security off.
    assert all(line.startswith("[") or " anonymised, " in line for line in result.stderr.splitlines()), result.stderr
    log = trace.read_text()
    assert "connect(" in log  # Ray's processes did talk, to each other
    assert outbound(log) == []


def test_an_event_written_after_a_line_cut_short_by_a_crash_is_read_back(tmp_path):
    """A crash in the middle of a journal line left it without its end: the next run's first
    event went on the same line, unreadable, and that file's name or result was lost."""
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"assign": "/in/a.jpg", "name": "a.jpg"}\n{"assign": "/in/b.jp')  # cut by the crash
    Journal(journal).append({"assign": "/in/c.jpg", "name": "c.jpg"})
    assert Journal(journal).names == {"/in/a.jpg": "a.jpg", "/in/c.jpg": "c.jpg"}
