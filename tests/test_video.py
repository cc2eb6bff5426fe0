"""Video through the real engine: every frame covered, frames, timing, sound and orientation
kept, no identifying tags, bad files reported by name while the batch goes on."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import assume, given, settings as hsettings, strategies as st

from core import sound, times, video, video_review
from core.cli import main as cli
from core.faces import Face
from core.batch import anonymize_files
from core.run_folder import HELD_BACK
from core.pipeline import DETECT_EVERY, Settings
from core.sound import SOUND_LEFT_OUT
from core.motion import Motion, carried
from core.tracks import HOLD, MAX_GAP, faces_by_frame, link
from tests.clips import (audio_payloads, exposed, joined, moving_face_frames, read_frames, write_clip,
                         write_dav, write_tracks)
from tests.conftest import jpeg_bytes

SOLID = Settings(mode="solid")


@pytest.fixture(scope="module")
def moving(astronaut_rgb, astronaut_face_box):
    return moving_face_frames(astronaut_rgb, astronaut_face_box, 30)


def test_every_frame_covered_and_the_clip_plays_like_the_input(engine, moving, tmp_path):
    clip = tmp_path / "assembly.mp4"
    times = write_clip(clip, [f for f, _ in moving])
    manifest = anonymize_files(engine, [clip], tmp_path / "out", SOLID)
    entry = manifest["files"][0]
    assert "error" not in entry and entry["output"] == "assembly.mp4"
    output = tmp_path / "out" / "assembly.mp4"
    frames, out_times = read_frames(output)
    # Every frame, with its own timestamp; faces are detected in every DETECT_EVERY-th frame,
    # and the track covers the frames between.
    assert len(frames) == len(moving) == entry["video"]["frames_written"]
    assert out_times == pytest.approx(times, abs=1e-3)
    shares = [exposed(source, out, box) for (source, box), out in zip(moving, frames)]
    assert max(shares) <= 0.10, shares
    # The sound is the same packets, byte for byte.
    assert audio_payloads(output) == audio_payloads(clip) != []
    assert entry["video"]["sound"] == "aac, copied"
    # The manifest records the tracks, with each detection's frame, time, box and score.
    track = max(entry["tracks"], key=lambda t: len(t["frames"]))
    assert track["score"] >= SOLID.threshold and len(track["frames"]) >= len(moving) // DETECT_EVERY - 2
    assert {"index", "time", "box", "score"} <= set(track["frames"][0])
    # Outside the covers the picture is the input's (as decoded; one more H.264 generation).
    x, y, w, h = moving[0][1]
    decoded, _ = read_frames(clip)
    assert np.abs(frames[0][:, int(x + 3 * w):].astype(int) - decoded[0][:, int(x + 3 * w):]).mean() < 3


@pytest.mark.parametrize("name,fmt", [("corridor.mp4", None), ("recorder.ts", "mpegts"), ("ch01.dav", "dav")])
def test_only_the_part_asked_for_leaves_with_its_sound_from_zero(engine, astronaut_rgb, astronaut_face_box,
                                                                 tmp_path, name, fmt):
    """A request for two minutes of a day's CCTV recording: `--from`/`--to` export only those
    frames, covered, with the sound beside them, starting at zero (a TS recording's times
    start 1.4 s in), and the manifest says which part (and the recorder's clock there, for a
    CCTV recorder's DAV); the residual check judges the part's frames against their own sources.
    Faces are looked for only around the part."""
    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 100)  # 4 s
    clip = tmp_path / name
    if fmt == "dav":
        write_dav(clip, [f for f, _ in moving], sound=True)  # from 09:30:00, G.711 at 8 kHz
    else:
        write_clip(clip, [f for f, _ in moving], fmt=fmt)
    out = tmp_path / "out"
    assert cli(["anonymize", str(clip), "--out", str(out), "--mode", "solid", "--from", "2", "--to", "0:03",
                "--check"]) == 0
    entry = json.loads((out / "manifest.json").read_text())["files"][0]
    clock = {"clock": ["2026-03-14 09:30:02.00", "2026-03-14 09:30:02.96"]} if fmt == "dav" else {}
    assert entry["video"]["part"] == {"from": 2.0, "to": 3.0, "first_frame": 50, "last_frame": 74} | clock
    looked = [f["time"] for track in entry["tracks"] for f in track["frames"]]
    assert min(looked) >= 2.0 - video.AROUND_PART and max(looked) >= 3.0  # around the part, and through it
    assert entry["video"]["frames_written"] == 25 and entry["residual_frames"] == []
    output = out / (Path(name).stem + ".mp4")
    frames, times = read_frames(output)
    assert len(frames) == 25 and times == pytest.approx([i / 25 for i in range(25)], abs=1e-3)
    # each is the source's frame 50 on, covered where that frame's face is (not frame 0's)
    assert max(exposed(moving[50 + i][0], f, moving[50 + i][1]) for i, f in enumerate(frames)) <= 0.10
    with av.open(str(output)) as container:
        heard = list(container.decode(container.streams.audio[0]))
    assert abs(sum(f.samples for f in heard) / heard[0].sample_rate - 1.0) < 0.05 and abs(heard[0].time) < 0.05
    # by the recorder's clock, as a request names it: the same part of a DAV; a file without a clock is refused
    by_clock = tmp_path / "by-clock"
    code = cli(["anonymize", str(clip), "--out", str(by_clock), "--from", "9:30:02", "--to", "9:30:03", "--by-clock"])
    entry = json.loads((by_clock / "manifest.json").read_text())["files"][0]
    if fmt == "dav":
        assert code == 0 and entry["video"]["part"] == {"from": 2.0, "to": 3.0, "first_frame": 50, "last_frame": 74} \
            | clock
        # and so does a clip's part kept by the clock in a session's settings (a batch run opened for review)
        scan = video.scan(lambda pixels: [], clip)
        assert (scan.part(34202, 34203, clock=True).first, scan.part(34202, 34203, clock=True).last) == (50, 74)
    else:
        assert code == 2 and entry["error"].endswith("its times are no recorder's clock (they count from its start): "
                                                     "give the part as times from its start")
    # a part that holds no frame is that file's error, named; asking for nothing is refused at once
    assert cli(["anonymize", str(clip), "--out", str(tmp_path / "late"), "--from", "5"]) == 2  # a file failed
    failed = json.loads((tmp_path / "late" / "manifest.json").read_text())["files"][0]
    assert failed["error"].endswith("the part to export, from 5.00 s to its end, holds none of its frames (it lasts "
                                    "4.00 s)")
    assert cli(["anonymize", str(clip), "--out", str(tmp_path / "none"), "--from", "2", "--to", "1"]) == 1
    assert cli(["anonymize", str(clip), "--out", str(tmp_path / "none"), "--to", "9:30:03", "--by-clock"]) == 1
    assert not (tmp_path / "none").exists()


def _of_day(clock: str) -> float:
    return times.read_time(clock)


@pytest.mark.parametrize("starts, lasts, asked, offsets", [
    ("09:30:00", 4, ("09:30:01.3", "09:30:02.6"), (1.3, 2.6)),
    ("09:30:00", 4, ("09:29:50", "09:30:02"), (0.0, 2.0)),  # begins before the recording: from its start
    ("09:30:00", 4, ("09:29:50", None), (0.0, None)),
    ("23:50:00", 3600, ("00:10:00", "00:12:00"), (1200.0, 1320.0)),  # the next day: it ran past midnight
    ("23:50:00", 3600, ("23:59:00", "00:01:00"), (540.0, 660.0)),  # across midnight
    ("23:50:00", 3600, ("00:10:00", None), (1200.0, None)),  # not the recording's start: 00:10 is in it
])
def test_a_part_named_by_the_recorders_clock_is_found_where_its_clock_reads_it(starts, lasts, asked, offsets):
    first = 1773446400 + _of_day(starts)  # 2026-03-14, as a DAV stores its clock
    got = times.clock_offsets("ch01.dav", first, lasts, _of_day(asked[0]), asked[1] and _of_day(asked[1]))
    assert got == pytest.approx(offsets, abs=1e-3) if offsets[1] is not None else \
        (got[0] == pytest.approx(offsets[0], abs=1e-3) and got[1] is None)
    with pytest.raises(video.ImageError, match="no recorder's clock"):  # a clip counting from its own start
        times.clock_offsets("phone.mp4", 0.0, lasts, _of_day(asked[0]), None)


@given(st.floats(0, 400_000, allow_nan=False))
def test_a_time_said_is_read_back_as_the_same_time(seconds):
    """The review says a frame's time as "1:02:03.40" and the part to export is typed the same way."""
    said = times.said_time(seconds)
    assert times.read_time(said) == pytest.approx(seconds, abs=0.006)
    assert said.endswith(" s") == (round(seconds, 2) < 60)


@pytest.mark.parametrize("text,span", [("1:02 to 1:05", (62, 65)), ("62-65", (62, 65)), ("1:02 \u2013 1:05", (62, 65)),
                                       ("From 0:01.5 to 2 s", (1.5, 2)), ("1:00:00-1:00:02.5", (3600, 3602.5))])
def test_a_part_of_the_sound_is_read_as_people_write_it(text, span):
    assert times.read_span(text) == span


@pytest.mark.parametrize("text", ["1:05 to 1:02", "1:02", "1:02 to", "a-b", "1-2-3", "nan-1", "1 to inf"])
def test_a_part_written_wrongly_is_refused_with_what_was_written(text):
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        times.read_span(text)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """A clip of 40 frames at irregular times (a phone's variable frame rate), each frame a grey
    level of its own (frame n: 6n), with sound: which frames leave can be read off the output."""
    clip = tmp_path_factory.mktemp("numbered") / "numbered.mp4"
    gaps = [1 / 30, 1 / 20, 1 / 45, 1 / 25]
    times = list(np.cumsum([0.0] + [gaps[i % len(gaps)] for i in range(39)]))
    write_clip(clip, [np.full((48, 64, 3), 6 * n, np.uint8) for n in range(40)], times=times, rate=30)
    with av.open(str(clip)) as container:
        scan = video.Scan(video.probe(clip), "", [], [float(f.time) for f in container.decode(video=0)])
    return clip, scan


@hsettings(max_examples=25, deadline=None)
@given(start=st.floats(0, 1.4), length=st.floats(0.02, 1.5))
def test_any_part_leaves_as_its_own_frames_from_zero_with_the_sound_beside_them(numbered, tmp_path_factory,
                                                                               start, length):
    """Whatever part of a clip is asked for: exactly its frames leave, in order, at their own
    distances from the first of them, and the sound lasts as long as they do."""
    clip, scan = numbered
    try:
        part = scan.part(start, start + length)
    except video.ImageError:  # no frame there: the request is refused, never an empty file
        assert not [i for i in range(scan.frames) if start <= scan.at(i) < start + length - 1e-6]
        return
    out = tmp_path_factory.mktemp("part") / "out.mp4"
    video.render(clip, out, [], lambda pixels, faces: pixels, part=part)
    frames, times = read_frames(out)
    kept = [i for i in range(scan.frames) if start - 1e-6 <= scan.at(i) < start + length - 1e-6] \
        if part else list(range(scan.frames))
    assert [round(float(f.mean()) / 6) for f in frames] == kept
    assert times == pytest.approx([scan.times[i] - scan.times[kept[0]] for i in kept], abs=1e-3)
    with av.open(str(out)) as container:
        heard = sum(f.samples for f in container.decode(audio=0)) / 48000
    last = kept[-1]
    span = (scan.times[last + 1] if last + 1 < scan.frames else scan.times[last] + 1 / scan.rate) - scan.times[kept[0]]
    assert abs(heard - span) <= 2 * 1024 / 48000  # to a packet of sound at each end


def _quiet_and_loud(out: Path, silenced, length: float) -> tuple[list[float], list[float]]:
    """The loudest sample of `out` in each silenced part, and in each stretch of at least 0.1 s
    between them (and the ends) that lies clear of SILENCE_MARGIN and a packet either side."""
    clear = sound.SILENCE_MARGIN + 2 * 1024 / 48000
    edges = [0.0 - clear + 0.03] + [x for a, b in silenced for x in (a, b)] + [length + clear - 0.03]
    gaps = [(a + clear, b - clear) for a, b in zip(edges[::2], edges[1::2]) if b - a - 2 * clear >= 0.1]
    return sound.loudest(out, tuple(silenced)), sound.loudest(out, tuple(gaps))


@hsettings(max_examples=15, deadline=None)
@given(parts=st.lists(st.tuples(st.floats(0, 1.5), st.floats(0.01, 0.6)), min_size=1, max_size=3),
       start=st.one_of(st.none(), st.floats(0, 0.8)))
def test_any_parts_of_the_sound_asked_to_be_silenced_are_silent_in_the_file_written(numbered, tmp_path_factory,
                                                                                    parts, start):
    """Whatever parts of a clip's sound are silenced (a name said; its tone is 0.2 of full
    scale), with or without only a part of the clip exported: as decoded from the file written,
    each is silent where it lies in the output, and the sound between them is not."""
    clip, scan = numbered
    silence = tuple((a, a + length) for a, length in parts)
    part = scan.part(start, start + 0.7) if start is not None else None
    out = tmp_path_factory.mktemp("silenced") / "out.mp4"
    rendered = video.render(clip, out, [], lambda pixels, faces: pixels, part=part, silence=silence)
    begin = scan.at(part.first) if part else 0.0
    length = float(part.until - part.begin) if part else scan.duration
    wanted = Settings(silence=silence).silence  # in order, overlaps joined
    expected = [(max(a - begin, 0.0), min(b - begin, length)) for a, b in wanted if a - begin < length and b > begin]
    # (the clip's length, from its frame rate, is known here to a hundredth of a second)
    clear = [span for span in rendered["silenced"] if span[0] < length - 0.02]
    assert [x for span in clear for x in span] == pytest.approx(
        [x for span in expected if span[0] < length - 0.02 for x in span], abs=0.02)
    assert all(0 <= a < b <= length + 0.02 for a, b in rendered["silenced"])
    quiet, loud = _quiet_and_loud(out, rendered["silenced"], length)
    assert all(peak <= sound.SILENT for peak in quiet), quiet
    assert all(peak >= 0.1 for peak in loud), loud
    if rendered["silenced"]:
        assert rendered["audio"] == "aac re-encoded to AAC, with parts silenced"
    elif part:  # none of them in what leaves: copied, not re-encoded
        assert rendered["audio"] == "aac, copied"


def test_silenced_sound_is_said_and_checked_in_what_leaves(engine, moving, tmp_path):
    """`--silence 1-2` (a name said in the second second): the manifest says the parts silenced
    on the file's own time line and the settings asked; the check that holds the file back
    hears the clip's own sound there; a part that ends before it starts is refused at once."""
    clip = tmp_path / "interview.mp4"
    write_clip(clip, [f for f, _ in moving] * 3)  # 3.6 s
    out = tmp_path / "out"
    assert cli(["anonymize", str(clip), "--out", str(out), "--silence", "1-2", "--silence", "0:02.5 to 0:03"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["files"][0]
    assert manifest["settings"]["silence"] == [[1.0, 2.0], [2.5, 3.0]]
    assert entry["video"]["silenced"] == [{"from": 1.0, "to": 2.0}, {"from": 2.5, "to": 3.0}]
    assert entry["video"]["sound"] == "aac re-encoded to AAC, with parts silenced"
    quiet, loud = _quiet_and_loud(out / "interview.mp4", [(1.0, 2.0), (2.5, 3.0)], 3.6)
    assert max(quiet) <= sound.SILENT and min(loud) >= 0.1 and len(loud) == 3  # before, between, after
    with av.open(str(out / "interview.mp4")) as container:  # re-encoded at 128 kbit/s: the tone and its
        assert container.streams.audio[0].bit_rate >= 50_000  # silences average 61, at the default 38
    # the check has teeth: the clip as it came in is loud there, and would not be written
    with pytest.raises(video.ImageError, match=r"its sound is not silent from 1.00 s to 2.00 s in the file written "
                                               r"\(loudest -1[0-9] dB of full scale\): not written"):
        sound.check_silent(clip, "interview.mp4", ((1.0, 2.0),))
    with pytest.raises(SystemExit):  # argparse says "argument --silence: '2-1' must end after it starts"
        cli(["anonymize", str(clip), "--out", str(tmp_path / "none"), "--silence", "2-1"])
    assert not (tmp_path / "none").exists()


def test_a_part_to_silence_past_the_length_a_file_names_is_silenced_all_the_same(tmp_path):
    """A file may name a length shorter than it holds (a recorder that crashed before writing its
    index, a damaged header): here an MKV of 3.6 s that says 1 s. A part to silence from 2 s was
    dropped as lying past its end, and left loud."""
    import struct

    clip = tmp_path / "lies.mkv"
    write_clip(clip, [np.full((48, 64, 3), 80, np.uint8)] * 90, fmt="matroska")  # 3.6 s, a tone
    data = bytearray(clip.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Segment Info's Duration, an 8-byte float in milliseconds
    data[at + 3:at + 11] = struct.pack(">d", 1000.0)
    clip.write_bytes(bytes(data))
    assert video.probe(clip).duration == 1.0
    out = tmp_path / "out.mp4"
    rendered = video.render(clip, out, [], lambda pixels, faces: pixels, silence=((2.0, 3.0),))
    assert rendered["silenced"] == [[2.0, 3.0]]
    assert sound.loudest(out, ((2.0, 3.0),))[0] <= sound.SILENT
    assert min(sound.loudest(out, ((0.2, 1.8), (3.15, 3.5)))) >= 0.1


def test_a_clips_scan_is_read_again_when_it_is_saved_again(tmp_path):
    """The review reads a clip's saved scan once (a day's recording holds two million frame
    times); a scan saved again (detected again, or by another session) is what is read next."""
    import time

    from core.store import FileStore

    files = FileStore(tmp_path / "store")
    info = video.VideoInfo("hall.mp4", 640, 360, 0, "h264", 3, 0.12, None)
    first = video.Scan(info, "a" * 64, [], [0.0, 0.04, 0.08])
    video_review.save_scan(files, "a" * 64, first)
    assert video_review.load_scan(files, "a" * 64).times == [0.0, 0.04, 0.08]
    assert video_review.load_scan(files, "a" * 64) is video_review.load_scan(files, "a" * 64)  # read once
    time.sleep(0.01)
    again = video.Scan(info, "a" * 64, link([(0, [Face(10, 10, 40, 40, 0.9, "centerface")])]), [0.0, 0.04, 0.08])
    video_review.save_scan(files, "a" * 64, again)
    assert [t.id for t in video_review.load_scan(files, "a" * 64).tracks] == [1]


def test_variable_frame_rate_kept_frame_for_frame(engine, moving, tmp_path):
    clip = tmp_path / "phone.mp4"
    gaps = [1 / 30, 1 / 30, 1 / 20, 1 / 60, 1 / 24]
    times = list(np.cumsum([0.0] + [gaps[i % len(gaps)] for i in range(len(moving) - 1)]))
    write_clip(clip, [f for f, _ in moving], times=times, rate=30)
    anonymize_files(engine, [clip], tmp_path / "out", SOLID)
    frames, out_times = read_frames(tmp_path / "out" / "phone.mp4")
    assert len(frames) == len(times)
    assert out_times == pytest.approx(times, abs=1e-3)
    with av.open(str(clip)) as a, av.open(str(tmp_path / "out" / "phone.mp4")) as b:
        assert abs(a.duration - b.duration) / 1e6 <= 1 / 30


def test_sideways_phone_video_comes_out_upright_and_covered(engine, moving, tmp_path):
    clip = tmp_path / "portrait.mov"
    upright = [np.ascontiguousarray(np.rot90(f)) for f, _ in moving[:12]]  # a portrait picture
    write_clip(clip, upright, rotation=90, fmt="mov")
    with av.open(str(clip)) as container:
        assert next(container.decode(video=0)).rotation == 90
    manifest = anonymize_files(engine, [clip], tmp_path / "out", SOLID)
    assert manifest["files"][0]["video"]["rotation"] == 90
    output = tmp_path / "out" / "portrait.mp4"
    with av.open(str(output)) as container:
        first = next(container.decode(video=0))
        assert first.rotation == 0  # no flag left for a player to get wrong
    frames, _ = read_frames(output)
    assert frames[0].shape == upright[0].shape
    for source, out, (_, box) in zip(upright, frames, moving):
        x, y, w, h = box  # the same box in the turned picture: rot90 maps (x, y) to (y, W - x - w)
        turned = (y, moving[0][0].shape[1] - x - w, h, w)
        assert exposed(source, out, turned) <= 0.10
    untouched = np.abs(frames[0][:40].astype(int) - upright[0][:40]).mean()  # far from the face
    assert untouched < 8  # the pixels are the right way up, not merely the right shape


def start_of(path: Path) -> float:
    """Where a file's timeline starts, in seconds (its earliest stream's start)."""
    with av.open(str(path)) as container:
        return (container.start_time or 0) / 1e6


def test_recordings_that_start_hours_in_come_out_starting_at_zero(engine, moving, tmp_path):
    """A TV recorder's MPEG-TS starts where the broadcast's clock was (hours in), a CCTV
    recorder's export (Dahua's DHAV) at the time of day: the output kept those times, and began
    with that much of nothing before its first frame (22 hours, or 56 years: no player shows it).
    A raw H.264 stream, another CCTV export, has no times at all: its seconds came out as 40 ms, and
    both kinds were refused by their names. Each comes out starting at zero, its frames as far
    apart as they were (1/25 s for the raw stream), every one covered, the sound beside them."""
    folder = tmp_path / "exports"
    folder.mkdir()
    frames = [f for f, _ in moving]
    count = len(frames)
    write_clip(folder / "recording.ts", frames, times=[80000 + i / 25 for i in range(count)], fmt="mpegts")
    write_dav(folder / "ch01.dav", frames, sound=True)  # a camera microphone's G.711
    write_clip(folder / "camera.h264", frames, fmt="h264", sound=False)
    assert start_of(folder / "recording.ts") > 79999 and start_of(folder / "ch01.dav") > 1.7e9
    manifest = anonymize_files(engine, sorted(folder.iterdir()), tmp_path / "out", SOLID)
    assert all("error" not in entry for entry in manifest["files"]), manifest["files"]
    for entry in manifest["files"]:  # the record gives the clip's length and times as the output plays
        assert entry["video"]["duration"] == pytest.approx(count / 25, abs=0.01), entry["input"]
        assert min(f["time"] for t in entry["tracks"] for f in t["frames"]) < 0.2, entry["input"]
    for name, has_sound in (("recording", True), ("ch01", True), ("camera", False)):
        output = tmp_path / "out" / f"{name}.mp4"
        covered, times = read_frames(output)
        assert len(covered) == count and start_of(output) < 0.05, name
        assert times == pytest.approx([i / 25 for i in range(count)], abs=0.03), name
        with av.open(str(output)) as container:
            assert container.duration / 1e6 == pytest.approx(count / 25, abs=0.05), name
        assert bool(audio_payloads(output)) == has_sound, name
        assert max(exposed(source, out, box) for (source, box), out in zip(moving, covered)) <= 0.10, name
    scan = video.scan(lambda pixels: [], folder / "ch01.dav")  # the review says times from its first frame
    assert scan.at(0) == 0 and scan.at(25) == pytest.approx(1.0) and scan.duration == pytest.approx(count / 25, abs=0.01)


@pytest.mark.parametrize("sizes", [((640, 360), (480, 270)), ((480, 270), (640, 360))], ids=["smaller", "larger"])
def test_a_recording_whose_picture_size_changes_is_covered_throughout(engine, moving, tmp_path, sizes):
    """A TV recording changes its picture size at an advert, and joined clips may too: frames
    of another size than the first were padded with their edge pixels into a corner of the
    output, or, larger, stopped the clip. Each is scaled to the clip's size, covered, and
    passes the residual check."""
    import cv2

    clip = tmp_path / "recording.ts"
    halves = joined(clip, moving, sizes)
    manifest = anonymize_files(engine, [clip], tmp_path / "out", SOLID, check=True)
    entry = manifest["files"][0]
    assert "error" not in entry and "held_back" not in entry, entry
    covered, _ = read_frames(tmp_path / "out" / "recording.mp4")
    assert len(covered) == 30 and all(f.shape[:2] == sizes[0][::-1] for f in covered)
    for (source, box), out in zip(halves, covered):
        if source.shape != out.shape:  # the output's frame, as the source's size
            out = cv2.resize(out, source.shape[1::-1], interpolation=cv2.INTER_AREA)
        assert exposed(source, out, box) <= 0.10
    assert np.abs(covered[-1].astype(int)[:, -40:] - covered[-1][:, -41:-40]).max() > 30, "not edge padding"


def test_two_recordings_joined_whose_times_start_again_are_anonymised_and_reviewed(engine, moving, tmp_path):
    """Two recordings joined into one file (or a CCTV recorder's clock set back): the second's
    times start again from zero. The clip was reviewed and then failed at export, "its video
    could not be re-encoded (Invalid argument)": a file's times must go forward. It is written
    with the second part following the first, sound too, every face covered; the review shows
    each frame by its place, not by a time two frames share."""
    from core import video_review

    clip = tmp_path / "joined.ts"
    written = joined(clip, moving, again=True)
    scan = video.scan(engine.detect_frame, clip, DETECT_EVERY)
    assert not scan.ascending and scan.frames == 30
    with av.open(str(clip)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for index in (3, 17, 29):  # the second part's frames share the first part's times
        assert np.array_equal(video_review.frame_at(clip, scan, index), decoded[index]), index
    assert [round(scan.at(i), 2) for i in (0, 14, 15, 29)] == [0.0, 0.56, 0.6, 1.16]
    entry = anonymize_files(engine, [clip], tmp_path / "out", SOLID, check=True)["files"][0]
    assert "error" not in entry and "held_back" not in entry, entry
    covered, times = read_frames(tmp_path / "out" / "joined.mp4")
    assert len(covered) == 30 and all(a < b for a, b in zip(times, times[1:]))
    assert times[-1] - times[0] == pytest.approx(29 / 25, abs=0.05)
    with av.open(str(tmp_path / "out" / "joined.mp4")) as container:
        heard = sum(f.samples for f in container.decode(audio=0)) / 48000
    assert heard == pytest.approx(30 / 25, abs=0.1), "both parts' sound"
    for (source, box), out in zip(written, covered):
        assert exposed(source, out, box) <= 0.10
    # and its sound, to listen to on the review page, is both parts' too
    assert video.sound_only(clip, tmp_path / "heard.m4a")
    with av.open(str(tmp_path / "heard.m4a")) as container:
        assert sum(f.samples for f in container.decode(audio=0)) / 48000 == pytest.approx(30 / 25, abs=0.1)


def test_a_dvds_wide_picture_plays_wide(engine, moving, tmp_path):
    """A DVD, a DV tape or an SD broadcast stores 16:9 as 720 x 576 pixels that are wider than
    tall, and says so: the output named no pixel shape, and played squeezed to 5:4. It names the
    input's, and its faces are covered. Faces are looked for in the picture as it is shown (1024
    x 576: squeezed faces were missed more often) and boxed in the file's own pixels."""
    import cv2

    frames = [cv2.resize(f, (720, 576), interpolation=cv2.INTER_AREA) for f, _ in moving[:10]]
    clip = tmp_path / "VTS_01_1.VOB"
    with av.open(str(clip), "w", format="vob") as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 720, 576, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(64, 45)  # 16:9
        for n, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    seen = []
    scan = video.scan(lambda pixels: seen.append(pixels.shape) or engine.detect_frame(pixels), clip, DETECT_EVERY)
    assert set(seen) == {(576, 1024, 3)}
    first = max((t for t in scan.tracks if t.first == 0), key=lambda t: t.score).faces[0]
    x, y, w, h = moving[0][1]
    expected = (x * 720 / 640, y * 1.6, w * 720 / 640, h * 1.6)
    overlap = max(0, min(first.x + first.w, expected[0] + expected[2]) - max(first.x, expected[0])) * \
        max(0, min(first.y + first.h, expected[1] + expected[3]) - max(first.y, expected[1]))
    assert overlap / (first.w * first.h + expected[2] * expected[3] - overlap) > 0.4, (first, expected)
    anonymize_files(engine, [clip], tmp_path / "out", SOLID)
    with av.open(str(tmp_path / "out" / "VTS_01_1.mp4")) as output:
        assert output.streams.video[0].display_aspect_ratio == Fraction(16, 9)
    covered, _ = read_frames(tmp_path / "out" / "VTS_01_1.mp4")
    for source, out, (_, box) in zip(frames, covered, moving):
        assert exposed(source, out, (box[0] * 720 / 640, box[1] * 1.6, box[2] * 720 / 640, box[3] * 1.6)) <= 0.10


def test_a_time_lapse_whose_faces_jump_every_frame_is_covered_in_every_frame(engine, astronaut_rgb,
                                                                             astronaut_face_box, tmp_path):
    """In a time-lapse (or a stop-motion film, or quick cuts) each frame is another moment: a face
    is somewhere else in every frame. Looking at every third frame, the two between were covered
    by nothing (15 of 30 frames exposed). A look that finds a sure face come, gone or moved
    further than a face moves looks at the frames since the last look too, and the clip's last
    frame is looked at; a clip whose faces move on as faces do is still looked at every third
    frame."""
    from tests.clips import background, face_patch

    patch, (fx, fy, fw, fh) = face_patch(astronaut_rgb, astronaut_face_box, 70)
    rng = np.random.default_rng(1)
    frames, boxes = [], []
    for _ in range(30):
        frame = background(640, 360)
        x, y = int(rng.integers(0, 640 - patch.shape[1])), int(rng.integers(0, 360 - patch.shape[0]))
        frame[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        frames.append(frame)
        boxes.append((x + fx, y + fy, fw, fh))
    write_clip(tmp_path / "lapse.mp4", frames, rate=30, sound=False)
    entry = anonymize_files(engine, [tmp_path / "lapse.mp4"], tmp_path / "out", SOLID)["files"][0]
    covered, _ = read_frames(tmp_path / "out" / "lapse.mp4")
    assert [n for n, box in enumerate(boxes) if exposed(frames[n], covered[n], box) > 0.10] == []
    assert entry["video"]["detect_every"] == 1
    write_clip(tmp_path / "walk.mp4", [f for f, _ in moving_face_frames(astronaut_rgb, astronaut_face_box, 30)],
               sound=False)
    walk = video.scan(engine.detect_frame, tmp_path / "walk.mp4", DETECT_EVERY)
    assert walk.every == DETECT_EVERY and [t.frames for t in walk.tracks] == [list(range(0, 30, 3)) + [29]]


def test_a_face_the_camera_pans_past_is_one_row_for_the_reviewer(engine, astronaut_rgb, astronaut_face_box, tmp_path):
    """A phone panning across a room moves every face with the picture, often further from one
    look to the next than a small face's own size: each look's face started a track of its own
    (a row the reviewer switches and checks on its own; the one person shown as four). The
    picture's move from look to look (`motion.Motion`) carries each face to where the pan took it,
    and the face is one track, covered in every frame it shows."""
    from tests.clips import background, face_patch

    patch, (fx, fy, fw, fh) = face_patch(astronaut_rgb, astronaut_face_box, 44)
    scene = background(2200, 360, seed=3)
    scene[150:150 + patch.shape[0], 700:700 + patch.shape[1]] = patch
    frames, boxes = [], []
    for n in range(24):
        left = 45 * n  # 45 px a frame: about the face's width
        frames.append(np.ascontiguousarray(scene[:, left:left + 640]))
        boxes.append((700 - left + fx, 150 + fy, fw, fh))
    write_clip(tmp_path / "pan.mp4", frames, sound=False)
    entry = anonymize_files(engine, [tmp_path / "pan.mp4"], tmp_path / "out", SOLID)["files"][0]
    shown = [n for n, (x, _, w, _) in enumerate(boxes) if x >= 0 and x + w <= 640]
    on_face = {track["id"] for track in entry["tracks"] for frame in track["frames"]
               if frame["index"] in shown and _overlap(frame["box"], boxes[frame["index"]]) >= 0.3}
    assert len(on_face) == 1, entry["tracks"]
    covered, _ = read_frames(tmp_path / "out" / "pan.mp4")
    assert [n for n in shown if exposed(frames[n], covered[n], boxes[n]) > 0.10] == []


@hsettings(max_examples=25, deadline=None)
@given(st.integers(-70, 70), st.integers(-40, 40), st.integers(0, 5))
def test_a_pan_carries_a_face_where_the_picture_went_and_a_cut_carries_nothing(dx, dy, seed):
    """`motion.Motion` measures the camera's move from one look to the next on the frames
    themselves: any pan up to a tenth of the picture a frame carries a box to where the picture
    took it (within 2 px); a cut to another picture carries it nowhere, nor does a camera standing
    still."""
    from tests.clips import background

    assume(np.hypot(dx, dy) <= 64)
    scene = background(1400, 800, seed=seed)
    motion = Motion()
    first = motion.see(0, np.ascontiguousarray(scene[200:560, 300:940]))
    panned = motion.see(1, np.ascontiguousarray(scene[200 + dy:560 + dy, 300 + dx:940 + dx]))
    x, y, w, h = carried((300.0, 150.0, 40.0, 50.0), panned @ np.linalg.inv(first))
    assert abs(x - (300 - dx)) <= 2 and abs(y - (150 - dy)) <= 2 and abs(w - 40) <= 1 and abs(h - 50) <= 1
    elsewhere = np.ascontiguousarray(background(1400, 800, seed=seed + 10)[200:560, 300:940])
    cut = motion.see(2, elsewhere)
    assert np.allclose(cut, panned)
    assert motion.see(3, elsewhere.copy()) is cut  # standing still: one view kept, not one a frame


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def test_a_face_passing_a_slow_cctv_camera_in_two_frames_is_covered(engine, moving, tmp_path):
    """A CCTV recorder often keeps 2 frames a second (or 15). Faces were looked for in every third
    frame, 1.5 s apart there: a face on screen for two frames (a second, and sharp in each) was
    never looked at, and left uncovered. Frames that far apart are each looked at."""
    from tests.clips import background

    empty = background(640, 360)
    frames = [moving[n][0] if n in (4, 5) else empty for n in range(12)]
    clip = tmp_path / "ch02.mp4"
    write_clip(clip, frames, rate=2, sound=False)
    # The same recording as a tool may remux it, naming no frame rate (read back as 1,000 a second):
    # faces are looked for at least every 0.2 s of the file's own times, whatever rate it names.
    with av.open(str(clip)) as source, av.open(str(tmp_path / "ch02b.mkv"), "w", format="matroska") as out:
        copy = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    assert video.probe(tmp_path / "ch02b.mkv").rate > 100
    for name in ("ch02.mp4", "ch02b.mp4"):
        entry = anonymize_files(engine, [clip.with_name(name.replace("b.mp4", "b.mkv"))], tmp_path / "out",
                                SOLID)["files"][0]
        assert entry["video"]["detect_every"] == 1, name
        covered, _ = read_frames(tmp_path / "out" / name)
        for n in (4, 5):
            assert exposed(frames[n], covered[n], moving[n][1]) <= 0.10, (name, n)
    # At 25 frames a second every third frame is still enough (0.12 s apart), and at 24.
    for rate in (25, 24):
        write_clip(tmp_path / f"hall{rate}.mp4", [f for f, _ in moving[:10]], rate=rate, sound=False)
        assert anonymize_files(engine, [tmp_path / f"hall{rate}.mp4"], tmp_path / "out", SOLID)["files"][0]["video"][
            "detect_every"] == DETECT_EVERY, rate
    # At 15 a second every third frame is 0.2 s apart: a face on screen for two frames (0.13 s) was
    # never looked at. Looks are at most 0.12 s apart, or the next frame after, as at 25.
    write_clip(tmp_path / "yard.mp4", frames, rate=15, sound=False)
    entry = anonymize_files(engine, [tmp_path / "yard.mp4"], tmp_path / "out", SOLID)["files"][0]
    assert entry["video"]["detect_every"] == 2
    covered, _ = read_frames(tmp_path / "out" / "yard.mp4")
    for n in (4, 5):
        assert exposed(frames[n], covered[n], moving[n][1]) <= 0.10, n


def test_a_camcorders_mts_clip_in_a_folder_is_anonymised_with_its_times_and_sound(engine, moving, tmp_path):
    """AVCHD camcorders write MPEG-TS files named .MTS whose times start past zero; they were
    refused as "not a supported image"."""
    (tmp_path / "card").mkdir()
    clip = tmp_path / "card" / "00001.MTS"
    times = [1.4 + i / 25 for i in range(12)]
    write_clip(clip, [f for f, _ in moving[:12]], times=times, fmt="mpegts")
    _, times = read_frames(clip)  # as the muxer stored them (it shifts them a little)
    assert times[0] > 1.3
    assert cli(["anonymize", str(tmp_path / "card"), "--out", str(tmp_path / "out"), "--mode", "solid"]) == 0
    entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["files"][0]
    assert entry["kind"] == "video" and entry["output"] == "00001.mp4" and entry["video"]["audio"] == "aac"
    frames, out_times = read_frames(tmp_path / "out" / "00001.mp4")
    assert out_times == pytest.approx([t - start_of(clip) for t in times], abs=1e-3)  # from zero, as a file starts
    assert audio_payloads(tmp_path / "out" / "00001.mp4")
    for source, out, (_, box) in zip([f for f, _ in moving[:12]], frames, moving):
        assert exposed(source, out, box) <= 0.10


OLD_KINDS = {  # name: (container, picture codec, sound codec, what becomes of the sound)
    "recorder.ts": ("mpegts", "libx264", "mp2", "mp2 re-encoded to AAC (MP4 cannot store mp2)"),
    "archive.wmv": ("asf", "wmv2", "wmav2", "wmav2 re-encoded to AAC (MP4 cannot store wmav2)"),
    "website.flv": ("flv", "flv", "libmp3lame", "mp3, copied"),
    "export.mkv": ("matroska", "libx264", "libmp3lame", "mp3, copied"),
}


def test_older_and_broadcast_kinds_of_video_in_a_folder_are_anonymised_with_their_sound(engine, moving, tmp_path):
    """A recorder's .ts, an archive's .wmv, an old website's .flv were refused as "not an image or
    video file" though PyAV reads them (a DVD's .vob and a DV tape's .dv too, checked by hand). MP3
    sound, which MP4 holds, is copied: it was re-encoded as "mp3float" (the decoder's name), said
    to be a codec MP4 cannot store."""
    (tmp_path / "in").mkdir()
    for name, (fmt, codec, sound_codec, _) in OLD_KINDS.items():
        write_clip(tmp_path / "in" / name, [f for f, _ in moving[:12]], fmt=fmt, codec=codec, sound_codec=sound_codec)
    assert cli(["anonymize", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--mode", "solid"]) == 0
    entries = {Path(e["input"]).name: e for e in json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]}
    assert set(entries) == set(OLD_KINDS)
    for name, (*_, said) in OLD_KINDS.items():
        entry = entries[name]
        assert entry["kind"] == "video" and entry["video"]["sound"] == said, entry
        frames, _ = read_frames(tmp_path / "out" / entry["output"])
        assert len(frames) == 12 and audio_payloads(tmp_path / "out" / entry["output"])
        assert max(exposed(src, out, box) for (src, box), out in zip(moving, frames)) <= 0.10, name


def test_a_recording_cut_short_before_its_sound_is_anonymised_without_it(engine, tmp_path):
    """A recorder's TS cut short (a battery gone): its sound stream is declared but holds no
    data, so the demuxer knows no rate for it. Copying it stopped the whole clip with "its video
    could not be re-encoded (Invalid argument)"."""
    whole = tmp_path / "whole.ts"
    noise = [np.random.default_rng(n).integers(0, 255, (240, 320, 3), dtype=np.uint8) for n in range(25)]
    write_clip(whole, noise, fmt="mpegts", sound_codec="mp2")
    cut = tmp_path / "REC_0001.ts"
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) // 10])
    with av.open(str(cut)) as container:
        assert container.streams.audio[0].codec_context.sample_rate == 0, "a sound stream with no data"
    entry = anonymize_files(engine, [cut], tmp_path / "out", SOLID)["files"][0]
    assert "error" not in entry, entry
    assert entry["video"]["sound"] == "left out: no sound could be read from it (cut short?)"
    frames, _ = read_frames(tmp_path / "out" / entry["output"])
    assert frames and not audio_payloads(tmp_path / "out" / entry["output"])


@pytest.mark.parametrize("fmt, suffix", [("avi", ".avi"), ("mov", ".mov"), ("matroska", ".mkv")])
def test_a_clip_whose_tags_are_not_utf8_is_anonymised(engine, moving, tmp_path, fmt, suffix):
    """An old camera's or Windows program's tags are often in Latin-1, not UTF-8: PyAV refused to
    open the file at all ("could not be processed (UnicodeDecodeError ...)"). No tag is written
    out, so none needs reading."""
    clip = tmp_path / f"MOV00042{suffix}"
    write_clip(clip, [f for f, _ in moving[:6]], fmt=fmt, metadata={"title": "Sortie de l'\u00e9cole"})
    utf8, latin1 = "l'\u00e9cole".encode(), "l'\u00e9cole".encode("latin-1") + b" "  # as long: the file's sizes hold
    assert clip.read_bytes().count(utf8) == 1
    clip.write_bytes(clip.read_bytes().replace(utf8, latin1))
    entry = anonymize_files(engine, [clip], tmp_path / "out", SOLID)["files"][0]
    assert "error" not in entry, entry
    frames, _ = read_frames(tmp_path / "out" / entry["output"])
    assert len(frames) == 6 and max(exposed(src, out, box) for (src, box), out in zip(moving, frames)) <= 0.10
    with av.open(str(tmp_path / "out" / entry["output"])) as output:
        assert "title" not in output.metadata


def test_any_frame_of_an_mpeg_ts_clip_is_shown_for_review(moving, tmp_path):
    """A camcorder's MPEG-TS clip with one key frame: seeking to a frame past the first seconds
    found nothing, and its review page said the clip "could not be processed" there; a face
    drawn there could not be followed."""
    from core import video_review

    clip = tmp_path / "00003.MTS"
    frames = [f for f, _ in moving] * 5  # 150 frames, 6 s
    write_clip(clip, frames, times=[1.4 + i / 25 for i in range(150)], fmt="mpegts", sound=False)
    scan = video.scan(lambda pixels: [], clip)
    decoded, _ = read_frames(clip)
    for index in (0, 20, 35, 149):
        assert np.array_equal(video_review.frame_at(clip, scan, index), decoded[index]), index
    # A face drawn 5 s in is followed through the frames around it (it failed with a KeyError).
    track = video_review.follow(clip, scan, 140, moving[20][1], 1)
    assert track.first < 140 < track.last


def test_any_frame_is_shown_from_a_stream_that_cannot_seek_and_has_no_times(moving, tmp_path):
    """A raw H.264 stream (as some CCTV recorders export) has no timestamps and refuses to seek:
    showing a frame of it failed with PermissionError. Its frames are decoded from the start."""
    from core import video_review

    clip = tmp_path / "camera.h264"
    write_clip(clip, [f for f, _ in moving], fmt="h264", sound=False)
    with av.open(str(clip)) as container:
        decoded = [f for f in container.decode(video=0)]
    assert decoded[5].pts is None
    scan = video.scan(lambda pixels: [], clip)
    for index in (0, 17, 29):
        assert np.array_equal(video_review.frame_at(clip, scan, index), decoded[index].to_ndarray(format="rgb24"))


def test_re_encoded_sound_keeps_its_time_beside_the_pictures(engine, moving, tmp_path):
    """A camcorder's LPCM sound cannot go into MP4 as it is and is re-encoded to AAC. The clip's
    pictures and sound start at 1.4 s (MPEG-TS); the re-encoded sound started at 0, 1.4 s ahead
    of the pictures it goes with."""
    clip = tmp_path / "00002.M2TS"
    write_clip(clip, [f for f, _ in moving[:25]], times=[1.4 + i / 25 for i in range(25)], fmt="mpegts",
               sound_codec="pcm_bluray")
    manifest = anonymize_files(engine, [clip], tmp_path / "out", SOLID)
    assert manifest["files"][0]["video"]["sound"].startswith("pcm_bluray re-encoded to AAC")

    def starts(path):  # the first picture's and the first sound's time, and the sound's end
        with av.open(str(path)) as container:
            picture = next(container.decode(video=0))
        with av.open(str(path)) as container:
            sound = list(container.decode(audio=0))
        end = sound[-1].time + sound[-1].samples / sound[-1].sample_rate
        return picture.time, sound[0].time, end

    (picture_in, sound_in, end_in), (picture_out, sound_out, end_out) = starts(clip), starts(
        tmp_path / "out" / "00002.mp4")
    origin = start_of(clip)  # the output starts at zero
    assert picture_out == pytest.approx(picture_in - origin, abs=1e-3) and picture_in > 1.3
    assert sound_out == pytest.approx(sound_in - origin, abs=0.03)  # AAC's own start-up delay is 21 ms
    assert end_out == pytest.approx(end_in - origin, abs=0.03)


@pytest.mark.parametrize("fields, order", [("tff", 2), ("bff", 3)])
def test_an_interlaced_clip_is_written_interlaced_in_its_field_order(engine, moving, tmp_path, fields, order):
    """A camcorder's or a broadcaster's 1080i: written as progressive, its two fields' comb showed
    on every moving edge in every player; written interlaced, a player deinterlaces it as it
    does the input. Every frame is still covered."""
    clip = tmp_path / "00001.MTS"
    write_clip(clip, [f for f, _ in moving[:12]], fmt="mpegts", fields=fields)
    entry = anonymize_files(engine, [clip], tmp_path / "out", SOLID)["files"][0]
    with av.open(str(tmp_path / "out" / entry["output"])) as output:
        assert output.streams.video[0].codec_context.field_order == order
        assert all(frame.interlaced_frame for frame in output.decode(video=0))
    frames, _ = read_frames(tmp_path / "out" / entry["output"])
    assert len(frames) == 12
    assert max(exposed(src, out, box) for (src, box), out in zip(moving, frames)) <= 0.10
    # A progressive clip stays progressive.
    write_clip(tmp_path / "p.mp4", [f for f, _ in moving[:3]], sound=False)
    entry = anonymize_files(engine, [tmp_path / "p.mp4"], tmp_path / "out", SOLID)["files"][0]
    with av.open(str(tmp_path / "out" / entry["output"])) as output:
        assert not next(output.decode(video=0)).interlaced_frame


@pytest.mark.parametrize("colours", [(1, 1, 1), (9, 9, 18)], ids=["BT.709", "BT.2020 HLG (a phone's HDR)"])
def test_the_output_plays_with_the_colours_of_the_input(engine, tmp_path, colours):
    """An HD clip names BT.709 as its colour matrix (a phone's HDR clip BT.2020 and HLG). The
    output was written with swscale's default matrix and named none, so a player showed its
    greens 26 levels off. Now it names the input's colours, and a player reading each file as it
    says shows the same colours (within what H.264 loses)."""
    bars = np.zeros((360, 640, 3), np.uint8)
    for i, colour in enumerate([(220, 40, 40), (40, 200, 40), (40, 40, 220), (230, 180, 150), (200, 200, 40)]):
        bars[:, i * 128:(i + 1) * 128] = colour
    clip = tmp_path / "bars.mp4"
    write_clip(clip, [bars] * 5, colours=colours)  # with sound, as a phone records it
    anonymize_files(engine, [clip], tmp_path / "out", SOLID)

    def shown(path):  # the first frame as a player shows it, and the colours the file names
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            named = (int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc))
            return frame.to_ndarray(format="rgb24"), named

    (before, named_before), (after, named_after) = shown(clip), shown(tmp_path / "out" / "bars.mp4")
    assert named_before == named_after == colours
    middles = [(180, i * 128 + 64) for i in range(5)]
    assert max(np.abs(after[y, x].astype(int) - before[y, x]).max() for y, x in middles) <= 4


def _as_hdr(frames: list[np.ndarray], transfer: str, path: Path) -> None:
    """SDR frames filmed as a phone films HDR: 10-bit HEVC in BT.2020, PQ (an Android's HDR10)
    or HLG (an iPhone's), SDR white at 203 cd/m2 as BT.2408 places it."""
    to_2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx265", rate=25)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p10le", {"crf": "12", "x265-params": "log-level=error"}
        context = stream.codec_context
        context.colorspace, context.color_primaries, context.color_range = 9, 9, 1
        context.color_trc = 16 if transfer == "PQ" else 18
        for i, pixels in enumerate(frames):
            nits = 203 * np.clip(((pixels / 255) ** 2.4) @ to_2020.T, 0, None)
            if transfer == "PQ":
                y = (nits / 10000) ** 0.1593017578125
                signal = ((0.8359375 + 18.8515625 * y) / (1 + 18.6875 * y)) ** 78.84375
            else:  # the scene light that HLG's 1000 cd/m2 display shows as `nits`, and its signal
                scene = (nits / 1000) ** (1 / 1.2)
                signal = np.where(scene <= 1 / 12, np.sqrt(3 * scene),
                                  0.17883277 * np.log(np.maximum(12 * scene - 0.28466892, 1e-9)) + 0.55991073)
            frame = av.VideoFrame.from_ndarray((np.clip(signal, 0, 1) * 65535 + 0.5).astype(np.uint16),
                                               format="rgb48le")
            frame = frame.reformat(format="yuv420p10le", dst_colorspace=9, dst_color_range=1)
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("transfer", ["HLG", "PQ"])
def test_a_phones_hdr_clip_is_shown_for_review_as_a_screen_shows_it(moving, transfer, tmp_path):
    """An iPhone films HDR (HLG) by default, an Android's HDR10 is PQ: their frames decoded as
    they are came out pale or grey and flat in the review. The review's frame (and a track's
    thumbnail, made from the same) is tone-mapped to SDR, near the scene as filmed; the frame
    the engine detects and covers is the file's own, which the output keeps."""
    from core import video_review

    scene = [f for f, _ in moving[:4]]
    clip = tmp_path / f"{transfer}.mov"
    _as_hdr(scene, transfer, clip)
    scan = video.Scan(video.probe(clip), "", [], [i / 25 for i in range(4)])
    as_decoded = next(video.frames(clip)).to_ndarray(format="rgb24")
    for index in (0, 3):
        shown = video_review.frame_at(clip, scan, index)
        assert np.abs(shown.astype(int) - scene[index]).mean() < 6
    assert np.abs(as_decoded.astype(int) - scene[0]).mean() > 15


def test_a_clip_whose_sound_cannot_be_read_is_anonymised_without_it_and_says_so(engine, moving, tmp_path):
    """Sound in a codec with no decoder here (a phone's spatial audio): the clip failed whole,
    "could not be processed (AttributeError ...)". Its pictures are anonymised; the sound is left
    out and the manifest and the audit package say so. A clip with another sound stream that can
    be read keeps that one."""
    from core.export import export_approved
    from core.intake import add_files, intake_upload
    from core.records import APPROVED
    from core.review import detect_pending
    from core.workspace import Workspace

    made = tmp_path / "made.mov"
    write_clip(made, [f for f, _ in moving[:12]], fmt="mov", sound_codec="pcm_s16le")
    assert made.read_bytes().count(b"sowt") == 1  # the sound's codec, as MOV names it
    clip = tmp_path / "IMG_0016.MOV"
    clip.write_bytes(made.read_bytes().replace(b"sowt", b"apac"))  # a codec FFmpeg has no decoder for
    manifest = anonymize_files(engine, [clip], tmp_path / "out", SOLID)
    entry = manifest["files"][0]
    assert "error" not in entry, entry
    assert entry["video"]["sound"] == "left out: its sound is in a codec this program cannot read"
    frames, _ = read_frames(tmp_path / "out" / "IMG_0016.mp4")
    assert len(frames) == 12 and not audio_payloads(tmp_path / "out" / "IMG_0016.mp4")
    assert max(exposed(src, out, box) for (src, box), out in zip(moving, frames)) <= 0.10

    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Phone", "Officer", SOLID)
    add_files(ws, session, intake_upload("IMG_0016.MOV", clip.read_bytes()), "Officer")
    detect_pending(ws, engine, session)
    ws.decide(ws.images(session)[0].id, APPROVED, "Officer")
    with zipfile.ZipFile(export_approved(ws, session, "Officer", engine.detector).audit_path) as archive:
        (row,) = json.loads(archive.read("manifest.json"))["photos"]
    assert row["outcome"] == "exported" and row["sound"].startswith("left out")

    # The same sound beside a second, readable stream (AAC): that one is kept, and the other said.
    both = tmp_path / "both.mov"
    write_tracks(both, [f for f, _ in moving[:12]], {"pcm_s16le": 0, "aac": 0})
    (tmp_path / "IMG_0017.MOV").write_bytes(both.read_bytes().replace(b"sowt", b"apac"))
    entry = anonymize_files(engine, [tmp_path / "IMG_0017.MOV"], tmp_path / "out", SOLID)["files"][0]
    assert entry["video"]["sound"] == ("aac, copied; 1 more track left out: its sound is in a codec this program "
                                       "cannot read")
    assert audio_payloads(tmp_path / "out" / "IMG_0017.mp4")


def test_every_sound_track_is_kept(engine, moving, tmp_path):
    """A recording with two sound tracks (a second microphone, a second language, a screen
    recording's desktop sound): only the first was written, and nothing said the other was gone.
    Each is kept, in its order: one MP4 stores as it is copied, the other re-encoded to AAC."""
    clip = tmp_path / "interview.mov"
    tones = (440, 880)
    write_tracks(clip, [f for f, _ in moving[:25]], dict(zip(("aac", "pcm_s16le"), tones)))
    entry = anonymize_files(engine, [clip], tmp_path / "out", SOLID)["files"][0]
    assert entry["video"]["sound"] == ("2 tracks: aac, copied; pcm_s16le re-encoded to AAC (MP4 cannot store "
                                       "pcm_s16le)")
    with av.open(str(clip)) as source:
        copied = [bytes(p) for p in source.demux(source.streams.audio[0]) if p.size]
    with av.open(str(tmp_path / "out" / "interview.mp4")) as output:
        assert [s.codec_context.name for s in output.streams.audio] == ["aac", "aac"]
        assert [bytes(p) for p in output.demux(output.streams.audio[0]) if p.size] == copied
    with av.open(str(tmp_path / "out" / "interview.mp4")) as output:
        heard = np.concatenate([f.to_ndarray()[0] for f in output.decode(output.streams.audio[1])])
    assert abs(len(heard) / 48000 - 1.0) < 0.05  # a second of it, at its own time
    pitch = np.argmax(np.abs(np.fft.rfft(heard[4800:43200]))) * 48000 / len(heard[4800:43200])
    assert abs(pitch - tones[1]) < 5  # the second track's own sound, not the first's


def test_the_sound_can_be_left_out_and_only_the_clips_approvals_depend_on_it(engine, moving, astronaut_rgb,
                                                                             tmp_path):
    """Faces are covered, voices are not: a reviewer may leave the sound out (`--no-sound`, or
    the settings' "Keep the sound of videos"). The choice decides what leaves, so a clip's
    approval binds to it; a photo's does not (a photo has no sound)."""
    from core.export import export_approved
    from core.intake import add_files, intake_upload
    from core.records import APPROVED
    from core.review import detect_pending
    from core.workspace import Workspace

    clip = tmp_path / "assembly.mp4"
    write_clip(clip, [f for f, _ in moving[:12]], subtitle="Head teacher")
    assert audio_payloads(clip)
    assert cli(["anonymize", str(clip), "--out", str(tmp_path / "out"), "--mode", "solid", "--no-sound"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["files"][0]["video"]["sound"] == SOUND_LEFT_OUT and manifest["settings"]["sound"] is False
    frames, _ = read_frames(tmp_path / "out" / "assembly.mp4")
    assert len(frames) == 12 and not audio_payloads(tmp_path / "out" / "assembly.mp4")

    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Assembly", "Officer", SOLID)
    add_files(ws, session, intake_upload("assembly.mp4", clip.read_bytes()), "Officer")
    add_files(ws, session, intake_upload("class.jpg", jpeg_bytes(astronaut_rgb)), "Officer")
    detect_pending(ws, engine, session)
    for record in ws.images(session):
        ws.decide(record.id, APPROVED, "Officer")
    quiet = replace(SOLID, sound=False)
    assert ws.approvals_affected(session, quiet) == ["assembly.mp4"]
    ws.set_batch_settings(session, quiet, "Officer")
    assert {r.name: r.state(quiet) for r in ws.images(session)} == {
        "assembly.mp4": "approval out of date", "class.jpg": APPROVED}
    ws.decide(ws.images(session)[0].id, APPROVED, "Officer")
    result = export_approved(ws, session, "Officer", engine.detector)
    with zipfile.ZipFile(result.audit_path) as archive:
        rows = {r["original_name"]: r for r in json.loads(archive.read("manifest.json"))["photos"]}
    assert {n: r["outcome"] for n, r in rows.items()} == {"assembly.mp4": "exported", "class.jpg": "exported"}
    assert rows["assembly.mp4"]["sound"] == SOUND_LEFT_OUT
    with zipfile.ZipFile(result.audit_path) as archive:  # the spreadsheet and report an officer opens say it too
        table = {r["original_name"]: r for r in csv.DictReader(io.StringIO(archive.read("manifest.csv").decode()))}
        report = archive.read("report.html").decode()
    assert table["assembly.mp4"]["sound"] == SOUND_LEFT_OUT and table["class.jpg"]["sound"] == ""
    assert f"Sound: {SOUND_LEFT_OUT}." in report
    # and so do they what else did not leave (its subtitles)
    assert rows["assembly.mp4"]["left_out"] == table["assembly.mp4"]["left_out"] == "1 subtitle track (eng)"
    assert "Not written: 1 subtitle track (eng)." in report and table["class.jpg"]["left_out"] == ""
    with zipfile.ZipFile(result.path) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".mp4")]
        (tmp_path / "exported.mp4").write_bytes(archive.read(name))
    assert not audio_payloads(tmp_path / "exported.mp4") and len(read_frames(tmp_path / "exported.mp4")[0]) == 12


def test_no_identifying_tags_are_written(engine, moving, tmp_path):
    clip = tmp_path / "street.mp4"
    write_clip(clip, [f for f, _ in moving[:6]], metadata={
        "location": "+51.5007-000.1246/", "creation_time": "2026-05-01T10:00:00Z",
        "com.apple.quicktime.make": "Apple", "title": "Pupils at the gate", "artist": "J. Smith"})
    with av.open(str(clip)) as container:
        assert "location" in container.metadata
    anonymize_files(engine, [clip], tmp_path / "out", SOLID)
    with av.open(str(tmp_path / "out" / "street.mp4")) as container:
        tags = dict(container.metadata)
        for stream in container.streams:
            tags.update(stream.metadata)
    harmless = {"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name", "language",
                "vendor_id"}
    assert set(tags) <= harmless, tags


def test_a_playlist_named_as_a_video_is_refused_not_read_through(engine, moving, tmp_path):
    """FFmpeg knows an ffconcat playlist by its first line, whatever the file is named: a
    `clip.mp4` of two lines read the video it names, and the output showed that other file's
    pictures while the manifest recorded the playlist's SHA-256 as what was anonymised (in the
    dashboard's store, where originals are named by their SHA-256, it could name another
    session's). A video is read from its own bytes only."""
    write_clip(tmp_path / "other.mp4", [f for f, _ in moving[:6]])
    (tmp_path / "clip.mp4").write_text("ffconcat version 1.0\nfile other.mp4\n")
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert container.format.name == "concat" and container.streams.video  # what FFmpeg makes of it
    manifest = anonymize_files(engine, [tmp_path / "clip.mp4"], tmp_path / "out", SOLID)
    (entry,) = manifest["files"]
    assert entry["error"] == ("not a video but a playlist (concat) of other files: anonymise those files "
                              "themselves"), entry
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["manifest.json"]


def test_subtitles_and_attached_files_are_left_out_and_the_manifest_says_so(engine, moving, astronaut_rgb, tmp_path):
    """A clip's subtitles can name the people it shows ("Alice Smith, witness"), an attached
    file can be a photo of anyone: only the covered pictures and the sound leave, and the record
    says what did not (it said nothing, and an officer could not tell the captions were gone)."""
    frames = [f for f, _ in moving[:6]]
    write_clip(tmp_path / "hearing.mkv", frames, fmt="matroska", subtitle="Alice Smith, witness",
               attachment=("cover.jpg", jpeg_bytes(astronaut_rgb)))
    write_clip(tmp_path / "statement.mov", frames, subtitle="Alice Smith, witness", fmt="mov", timecode="01:00:00:00")
    # a drone's position beside its pictures (KLV in MPEG-TS, as police and survey drones write it)
    write_clip(tmp_path / "drone.ts", frames, fmt="mpegts", telemetry=b"\x06\x0e\x2b\x34 lat 51.5007 lon -0.1246")
    with av.open(str(tmp_path / "dashcam.mkv"), "w") as container:  # front and rear cameras in one file
        cameras = [container.add_stream("libx264", rate=25) for _ in range(2)]
        for camera in cameras:
            camera.width, camera.height, camera.pix_fmt = 640, 360, "yuv420p"
        for n, pixels in enumerate(frames):
            for camera, seen in zip(cameras, (pixels, pixels[:, ::-1])):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(seen), format="rgb24")
                frame.pts = n
                container.mux(camera.encode(frame))
        for camera in cameras:
            container.mux(camera.encode(None))
    with av.open(str(tmp_path / "hearing.mkv")) as container:
        # a JPEG attached to an MKV is read as a second, still video: its cover picture
        assert sorted(s.type for s in container.streams) == ["audio", "subtitle", "video", "video"]
    with av.open(str(tmp_path / "drone.ts")) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "data", "video"]
    manifest = anonymize_files(engine, [tmp_path / n for n in ("hearing.mkv", "statement.mov", "drone.ts",
                                                                "dashcam.mkv")],
                               tmp_path / "out", SOLID)
    said = {e["output"]: e["video"]["left_out"] for e in manifest["files"]}
    assert said == {"hearing.mp4": "1 subtitle track (eng), 1 cover picture (cover.jpg)",
                    "statement.mp4": "1 subtitle track (eng), 1 data track (timecode)",
                    "drone.mp4": "1 data track (klv)", "dashcam.mp4": "1 other video track (h264)"}
    for name in said:
        data = (tmp_path / "out" / name).read_bytes()
        assert b"Alice Smith" not in data and b"51.5007" not in data and jpeg_bytes(astronaut_rgb)[-4096:] not in data
        with av.open(str(tmp_path / "out" / name)) as output:
            assert [s.type for s in output.streams] == ["video"] + ["audio"] * (name != "dashcam.mp4")
    assert manifest["files"][0]["video"]["sound"] == "aac, copied" and manifest["files"][0]["video"]["frames"] == 6
    front, _ = read_frames(tmp_path / "out" / "dashcam.mp4")  # the first camera's pictures, covered
    assert len(front) == 6 and max(exposed(s, o, box) for (s, box), o in zip(moving, front)) <= 0.10


def test_bad_videos_are_named_and_the_batch_goes_on(engine, moving, astronaut_rgb, tmp_path):
    good = tmp_path / "good.mp4"
    write_clip(good, [f for f, _ in moving[:6]])
    data = good.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "empty.mkv").write_bytes(b"")
    (tmp_path / "notes.webm").write_bytes(b"minutes of the meeting\n" * 50)
    with av.open(str(tmp_path / "voice.mp4"), "w") as container:  # sound, no pictures
        audio = container.add_stream("aac", rate=48000)
        audio.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    with av.open(str(tmp_path / "odd.avi"), "w") as container:  # a codec no decoder here knows
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        for n in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * n, np.uint8),
                                                                   format="rgb24")))
        container.mux(stream.encode(None))
    odd = (tmp_path / "odd.avi").read_bytes()
    assert odd.count(b"MJPG") == 2  # the codec's FourCC, in the stream header and the format
    (tmp_path / "odd.avi").write_bytes(odd.replace(b"MJPG", b"QZQZ"))
    (tmp_path / "photo.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    names = ["truncated.mp4", "empty.mkv", "notes.webm", "voice.mp4", "odd.avi", "good.mp4", "photo.jpg"]
    manifest = anonymize_files(engine, [tmp_path / n for n in names], tmp_path / "out", SOLID)
    errors = {e["input"].rsplit("/", 1)[-1]: e.get("error") for e in manifest["files"]}
    assert errors["good.mp4"] is None and errors["photo.jpg"] is None
    assert "no video stream" in errors["voice.mp4"] and "audio-only" in errors["voice.mp4"]
    assert "codec this program cannot decode" in errors["odd.avi"], errors["odd.avi"]
    for name in ("truncated.mp4", "empty.mkv", "notes.webm"):
        assert "not a readable video" in errors[name] or "decod" in errors[name], errors[name]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4", "manifest.json", "photo.jpg"]


def test_cli_detect_prints_tracks_and_check_holds_back_an_uncovered_clip(engine, moving, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setattr(video, "PROGRESS_EVERY", 5)  # 10 frames: the passes report at 5 and 10
    clip = tmp_path / "hall.mp4"
    write_clip(clip, [f for f, _ in moving[:10]], sound=False)
    (tmp_path / "hall-2.mp4").write_bytes(clip.read_bytes())
    assert cli(["detect", str(clip), str(tmp_path / "hall-2.mp4")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)[0]
    assert f"[2/2] {tmp_path / 'hall-2.mp4'}: frame 10/10" in captured.err, captured.err  # numbered as it comes
    assert result["kind"] == "video" and result["frames"] == 10
    frames = [f for t in result["tracks"] for f in t["frames"]]
    assert frames and all(f["score"] >= SOLID.threshold for t in result["tracks"] for f in [t])
    assert {f["index"] for f in frames} <= set(range(0, 10, DETECT_EVERY))
    # Covered: the check passes. Nothing covered (threshold 1): the check finds the face in the
    # written frames and the clip goes to held-back/, never beside the clean outputs.
    assert cli(["anonymize", str(clip), "--out", str(tmp_path / "ok"), "--check", "--mode", "solid"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "frame" in line]
    assert len(lines) == len(set(lines)) == 7, lines  # detecting 0, 5, 10; covering 5, 10; checking 5, 10
    assert cli(["anonymize", str(clip), "--out", str(tmp_path / "bad"), "--check", "--threshold", "1"]) == 3
    entry = json.loads((tmp_path / "bad" / "manifest.json").read_text())["files"][0]
    assert entry["output"] == f"{HELD_BACK}/hall.mp4" and entry["residual_frames"]
    assert not (tmp_path / "bad" / "hall.mp4").exists() and (tmp_path / "bad" / HELD_BACK / "hall.mp4").exists()
    said = capsys.readouterr().err  # progress in frames on stderr, each pass named
    assert f"{clip}: detecting faces, frame " in said and f"{clip}: covering, frame 10/10" in said
    assert f"{clip}: checking, frame 10/10" in said


def test_a_face_missed_for_a_few_frames_stays_covered():
    """Detections in frames 0-4 and 9-12 (missed in 5-8): every frame from HOLD before the first
    to HOLD after the last has a cover, the gap's boxes between its neighbours."""
    seen = [n for n in range(13) if not 5 <= n <= 8]
    tracks = link((n, [Face(100 + 10 * n, 50, 40, 40, 0.9, "centerface")]) for n in seen)
    assert len(tracks) == 1
    covers = list(faces_by_frame(tracks, 13 + HOLD + 2))
    for n, faces in enumerate(covers):
        assert (len(faces) == 1) == (n <= 12 + HOLD), n
    assert covers[6][0].x == pytest.approx(160) and covers[6][0].score == 0.9


def test_a_held_cover_moves_on_with_the_face():
    """A face moving up 4 px a frame is detected in frames 2-6: the cover held after frame 6
    keeps moving up, and the one held before frame 2 comes from where the face came from."""
    tracks = link((n, [Face(300, 200 - 4 * n, 60, 60, 0.9, "centerface")]) for n in range(2, 7))
    covers = list(faces_by_frame(tracks, 6 + HOLD + 1))
    assert covers[6 + HOLD][0].y == pytest.approx(200 - 4 * (6 + HOLD))
    assert covers[0][0].y == pytest.approx(200)


def test_a_frames_boxes_carry_the_numbers_of_their_rows_in_the_face_table():
    """Three people; the second leaves after frame 30 and the third is switched off. On frame 90
    the boxes are numbered 1 and 3, as their rows are, and the third is marked switched off:
    the frame numbered its boxes 1, 2 by their place in the frame, so "2" was the third person
    and unticking row 2 uncovered someone else."""
    from core import video_review
    from core.review import COVERED, OFF, table_marks

    people = [(100, range(0, 100)), (300, range(0, 31)), (500, range(0, 100))]
    tracks = link((n, [Face(x, 200, 60, 60, 0.9, "centerface") for x, frames in people if n in frames])
                  for n in range(100))
    assert [t.last for t in tracks] == [99, 30, 99]
    rows = video_review.track_faces(tracks)
    rows[2] = replace(rows[2], enabled=False)
    marks = video_review.frame_marks(tracks, table_marks(rows, 0.5), 90)
    assert [(number, face.x, kind) for number, face, kind in marks] == [(1, 100, COVERED), (3, 500, OFF)]
    marks = video_review.frame_marks(tracks, table_marks(rows, 0.5), 10)
    assert [number for number, _, _ in marks] == [1, 2, 3]


def test_two_boxes_on_one_face_are_covered_as_the_surer_one():
    """The detector sees one face twice, the whole face (sure) and its upper half (unsure), and
    the half is the only box left once the whole one is lost: it is covered at the sure score."""
    whole = [(n, [Face(300, 200, 60, 70, 0.6, "centerface")]) for n in range(0, 10)]
    half = [(n, [Face(310, 195, 40, 35, 0.15, "centerface")]) for n in range(4, 20)]
    detections = [(n, whole[n][1] if n < 10 else []) for n in range(20)]
    detections = [(n, faces + (half[n - 4][1] if n >= 4 else [])) for n, faces in detections]
    tracks = link(detections)
    assert len(tracks) == 2
    assert [t.score for t in tracks] == [0.6, 0.6]
    apart = link((n, [Face(300, 200, 60, 70, 0.6, "centerface"), Face(500, 200, 60, 70, 0.15, "centerface")])
                 for n in range(10))
    assert sorted(t.score for t in apart) == [0.15, 0.6]


@hsettings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(1, MAX_GAP + 1), st.floats(-2.5, 2.5), st.floats(-2.5, 2.5)),
                      min_size=1, max_size=25),
       scores=st.lists(st.floats(0.1, 1.0), min_size=26, max_size=26))
def test_any_followed_face_is_covered_in_every_frame_between_its_ends(steps, scores):
    """Whatever the motion (up to 2.5 px a frame each way for a 60 px face, changing at every
    detection) and the gaps (up to MAX_GAP missed frames),
    one face is one track, and every frame from HOLD before its first detection to HOLD after
    its last has a cover at least as sure as the surest detection."""
    frame, x, y = 0, 300.0, 300.0
    detections = [(0, [Face(x, y, 60, 60, scores[0], "centerface")])]
    for (gap, dx, dy), score in zip(steps, scores[1:]):
        frame, x, y = frame + gap, x + dx * gap, y + dy * gap
        detections.append((frame, [Face(x, y, 60, 60, score, "centerface")]))
    tracks = link(detections)
    assert len(tracks) == 1
    best = max(f.score for _, faces in detections for f in faces)
    for n, faces in enumerate(faces_by_frame(tracks, frame + HOLD + 1)):
        assert len(faces) == 1 and faces[0].score == best, n


def test_photos_are_detected_before_the_clips_added_with_them(engine, moving, astronaut_rgb, tmp_path):
    """A camera card's clip listed before its photos held them all back while it was detected
    (minutes for a long clip): the photos are ready for review first."""
    from core.intake import add_files, intake_upload
    from core.review import detect_pending
    from core.workspace import Workspace

    clip = tmp_path / "MVI_0001.MOV"
    write_clip(clip, [f for f, _ in moving[:6]], fmt="mov")
    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Card", "Officer")
    for name, data in (("MVI_0001.MOV", clip.read_bytes()), ("IMG_0002.JPG", jpeg_bytes(astronaut_rgb))):
        add_files(ws, session, intake_upload(name, data), "Officer")
    add_files(ws, session, intake_upload("MVI_0003.MOV", clip.read_bytes() + b"\0"), "Officer")
    finished = []

    def heard(done, total, name, frame=None):
        if frame:  # a clip's frames, while it is detected
            return
        finished.append(name)
        if name == "MVI_0001.MOV":  # a photo added while the clips are detected goes before the next
            add_files(ws, session, intake_upload("IMG_0004.JPG", jpeg_bytes(astronaut_rgb[::-1].copy())), "Officer")

    detect_pending(ws, engine, session, heard)
    assert finished == ["IMG_0002.JPG", "MVI_0001.MOV", "IMG_0004.JPG",
                                                              "MVI_0003.MOV"]
    assert all(r.detected and r.error is None for r in ws.images(session))


def test_minutes_of_a_long_recording_are_taken_into_a_session_as_those_minutes(engine, astronaut_rgb,
                                                                             astronaut_face_box, tmp_path):
    """A day's recording of which minutes are asked for: at intake only that part is copied into
    the session (from the key frame before it, nothing re-encoded, the recorder's clock kept) and
    detected; the log names the video it was cut from. Photos are taken whole; a raw stream,
    which has no times to cut by, is refused by name."""
    from core.intake import add_files, intake_folder
    from core.review import detect_pending
    from core.workspace import Workspace

    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 100)  # 4 s
    folder = tmp_path / "request"
    folder.mkdir()
    write_clip(folder / "corridor.mp4", [f for f, _ in moving], key_every=12)  # a key frame every 0.48 s
    # Matroska gives its B-frames no decode time: the cut found no picture after its key frame
    write_clip(folder / "hall.mkv", [f for f, _ in moving], key_every=12, fmt="matroska")
    (folder / "nvr").mkdir()  # a recorder's export: a folder per channel
    write_dav(folder / "nvr" / "ch01.dav", [f for f, _ in moving], sound=True)  # a key frame a second, from 09:30:00
    write_clip(folder / "camera.h264", [f for f, _ in moving], fmt="h264", sound=False)
    (folder / "gate.jpg").write_bytes(jpeg_bytes(astronaut_rgb))
    write_clip(tmp_path / "whole.ts", [f for f, _ in moving], fmt="mpegts", sound_codec="mp2", key_every=12)
    (folder / "REC_0001.ts").write_bytes((tmp_path / "whole.ts").read_bytes()[:60_000])  # cut short: a quarter second
    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Request 114", "Officer")
    report = add_files(ws, session, intake_folder(str(folder), [tmp_path]), "Officer", part=(1.3, 2.6))
    assert sorted(report.cuts) == [("corridor.mp4", "corridor (from 1.30 s to 2.60 s).mkv"),
                                   ("hall.mkv", "hall (from 1.30 s to 2.60 s).mkv"),
                                   ("nvr/ch01.dav", "nvr/ch01 (from 1.30 s to 2.60 s).mkv")]
    refused = {r.name: r.problem for r in report.refused}
    assert refused.pop("camera.h264") == "its frames have no times (a raw stream): it can only be added whole"
    assert refused.pop("REC_0001.ts").startswith(  # it was taken as its first quarter second
        "the part asked for, from 1.30 s to 2.60 s, holds none of its frames (it lasts 0.") and not refused
    detect_pending(ws, engine, session)
    records = {r.name: r for r in ws.images(session) if r.error is None}
    assert set(records) == {"gate.jpg", "nvr/ch01 (from 1.30 s to 2.60 s).mkv", "corridor (from 1.30 s to 2.60 s).mkv",
                            "hall (from 1.30 s to 2.60 s).mkv"}
    assert all(r.detected and r.faces for r in records.values())
    taken = {e["detail"]["source"]: e["detail"] for e in ws.audit(session) if e["action"] == "video part taken"}
    assert taken["corridor.mp4"]["source_sha256"] == video.file_sha256(folder / "corridor.mp4")
    assert (taken["corridor.mp4"]["taken_from"], taken["nvr/ch01.dav"]["taken_from"]) == (0.96, 1.0)  # key frames
    assert taken["corridor.mp4"]["asked"] == "from 1.30 s to 2.60 s"  # as the audit report shows it
    for name, first in (("corridor", 24), ("hall", 24), ("nvr/ch01", 25)):
        path = ws.files.object_path(records[f"{name} (from 1.30 s to 2.60 s).mkv"].sha256)
        frames, times = read_frames(path)
        # the source's own frames from its key frame on, up to 2.6 s (a B-frame or two after it)
        assert 2.6 - first / 25 - 1e-3 <= times[-1] - times[0] <= 2.6 - first / 25 + 0.2
        # each the next of the source's frames, none missing (a frame out of step differs by 7-9 levels)
        assert max(np.abs(f.astype(int) - moving[first + i][0]).mean() for i, f in enumerate(frames)) < 5.5
        with av.open(str(path)) as container:
            heard = sum(f.samples for f in container.decode(audio=0)) / container.streams.audio[0].rate
        assert abs(heard - (2.6 - first / 25)) < 0.1
        # its frame rate kept (how often faces are looked for follows it): it was read back as 30,000
        assert video.probe(path).rate == 25
    dav = video_review.load_scan(ws.files, records["nvr/ch01 (from 1.30 s to 2.60 s).mkv"].sha256)
    assert dav.clock(0) == "2026-03-14 09:30:01.00"  # the recorder's clock, kept

    # A request names the recorder's clock ("09:30:01.3 to 09:30:02.6"): each video is cut where its
    # own clock reads that; one without a clock, or whose clock never reads it, is refused, named.
    by_clock = ws.create_session("Request 115", "Officer")
    report = add_files(ws, by_clock, intake_folder(str(folder / "nvr"), [tmp_path]), "Officer",
                       part=(9 * 3600 + 30 * 60 + 1.3, 9 * 3600 + 30 * 60 + 2.6), clock=True)
    assert report.cuts == [("ch01.dav", "ch01 (from 9:30:01.30 to 9:30:02.60 by its clock).mkv")]
    (asked,) = [e["detail"]["asked"] for e in ws.audit(by_clock) if e["action"] == "video part taken"]
    assert asked == "from 9:30:01.30 to 9:30:02.60 by its clock"  # it read 34201.3 and "by_clock: True"
    (record,) = ws.images(by_clock)
    same, times = read_frames(ws.files.object_path(record.sha256))  # the same frames as by times from its start
    assert times == read_frames(ws.files.object_path(records["nvr/ch01 (from 1.30 s to 2.60 s).mkv"].sha256))[1]
    report = add_files(ws, by_clock, intake_folder(str(folder), [tmp_path]), "Officer",
                       part=(9 * 3600 + 29 * 60, 9 * 3600 + 29 * 60 + 30), clock=True)
    refused = {r.name: r.problem for r in report.refused}
    assert refused["nvr/ch01.dav"] == ("the part asked for, from 9:29:00.00 to 9:29:30.00 by its clock, is not in it "
                                       "(its clock starts at 2026-03-14 09:30:00.00)")
    assert refused["corridor.mp4"] == ("its times are no recorder's clock (they count from its start): give the "
                                       "part as times from its start")


def test_a_video_is_reviewed_per_person_and_exported_covered(engine, astronaut_rgb, astronaut_face_box, tmp_path):
    """Added to a session like a photo: detection makes one row per track; the reviewer
    switches a whole person off for the clip, or leaves it on; the zip carries the MP4 the
    reviewer approved, every frame as decided, checked at sampled frames."""
    import zipfile

    from core.export import export_approved
    from core.intake import add_files, intake_upload
    from core.records import APPROVED
    from core.review import detect_pending
    from core.workspace import Workspace

    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 30)
    clip = tmp_path / "assembly.mp4"
    write_clip(clip, [f for f, _ in moving])
    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Assembly", "Officer")
    add_files(ws, session, intake_upload("assembly.mp4", clip.read_bytes()), "Officer")
    progress = []
    detect_pending(ws, engine, session, lambda done, total, name, frame=None: progress.append(frame))
    assert (30, 30) in progress  # progress in frames while a video is detected
    record = ws.images(session)[0]
    assert record.error is None and (record.width, record.height) == (640, 360)
    person = max(record.faces, key=lambda f: f.score)
    assert person.detector.startswith("track ") and person.score >= SOLID.threshold
    # Its row shows the person's face at the surest frame (from the original: the reviewer judges it).
    import base64

    from core import video_review
    from core.images import decode_photo

    thumb = decode_photo(base64.b64decode(video_review.load_thumbnails(ws.files, record.sha256)[
        video_review.track_id(person)]), "thumb").pixels
    assert max(thumb.shape[:2]) == video_review.THUMB_SIDE and thumb.std() > 20
    ws.set_batch_settings(session, SOLID, "Officer")

    def exported_frames() -> list[np.ndarray]:
        with zipfile.ZipFile(export_approved(ws, session, "Officer", engine.detector).path) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".mp4"))
            (tmp_path / "out.mp4").write_bytes(archive.read(name))
            manifest = json.loads(archive.read("manifest.json"))
        assert manifest["images"][0]["output_name"] == name
        return read_frames(tmp_path / "out.mp4")[0]

    ws.decide(record.id, APPROVED, "Officer")
    said = []  # what the Export page's progress reads, as the export log is told it
    log_progress = ws.exports.progress
    ws.exports.progress = lambda export_id, done, total, working_on="": (
        said.append(working_on), log_progress(export_id, done, total, working_on))
    frames = exported_frames()
    ws.exports.progress = log_progress
    # A long clip is seen to move: its frames as they are covered, then as they are checked.
    assert said[0] == "assembly.mp4" and "assembly.mp4: frame 25 of 30 covered" in said
    assert "assembly.mp4: frame 25 of 30 checked" in said
    assert len(frames) == len(moving)
    # The rendered MP4 went into the zip and is not left beside it (nor is anything else).
    assert all(p.suffix == ".zip" for p in ws.files.exports.iterdir()), list(ws.files.exports.iterdir())
    assert max(exposed(src, out, box) for (src, box), out in zip(moving, frames)) <= 0.10

    # The whole person switched off for the clip: the approval is out of date until approved again,
    # then the face shows in every frame (the reviewer's decision, recorded).
    ws.switch_faces(record.id, [(f, False) for f in record.faces if f.covered_at(SOLID.threshold)], "Officer")
    ws.decide(record.id, APPROVED, "Officer", "consent on file")
    with zipfile.ZipFile(export_approved(ws, session, "Officer", engine.detector).path) as archive:
        held = [n for n in archive.namelist() if n.endswith(".mp4")]
    # Nothing covered: the residual check finds the face again in the written frames and holds it back.
    assert held == []
    assert ws.image(record.id).residual_open(SOLID)


def corridor(engine, astronaut_rgb, astronaut_face_box, tmp_path):
    """A session holding one detected 30-frame clip of a moving face: (workspace, session, frames)."""
    from core.intake import add_files, intake_upload
    from core.review import detect_pending
    from core.workspace import Workspace

    moving = moving_face_frames(astronaut_rgb, astronaut_face_box, 30)
    clip = tmp_path / "corridor.mp4"
    write_clip(clip, [f for f, _ in moving])
    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Corridor", "Officer", SOLID)
    add_files(ws, session, intake_upload("corridor.mp4", clip.read_bytes()), "Officer")
    detect_pending(ws, engine, session)
    return ws, session, moving


def test_a_drawn_face_is_followed_through_the_frames_around_it(engine, astronaut_rgb, astronaut_face_box, tmp_path):
    """The reviewer switches the found person off, then draws the face on frame 12: the box is
    followed forward and backward, and the export covers it wherever it was followed."""
    import zipfile

    from core import video_review
    from core.export import export_approved
    from core.records import APPROVED

    ws, session, moving = corridor(engine, astronaut_rgb, astronaut_face_box, tmp_path)
    record = ws.images(session)[0]
    ws.switch_faces(record.id, [(f, False) for f in record.faces if f.covered_at(SOLID.threshold)], "Officer")
    record = ws.image(record.id)
    track = video_review.add_drawn(ws, record, 12, moving[12][1], "Officer",
                                   seen=record.current_fingerprint(SOLID))
    assert track.first <= 6 and track.last >= 18  # followed both ways, not only the frame drawn on
    for n, face in zip(track.frames, track.faces):
        x, y, w, h = moving[n][1]
        assert abs(face.x - x) < 0.25 * w and abs(face.y - y) < 0.25 * h, n
    record = ws.image(record.id)
    assert any(f.detector == f"track {track.id} drawn" for f in record.faces)
    assert any(a["action"] == "drawn face followed" for a in ws.audit(session))
    ws.decide(record.id, APPROVED, "Officer", seen=record.current_fingerprint(SOLID))
    result = export_approved(ws, session, "Officer", engine.detector)
    with zipfile.ZipFile(result.path) as archive:
        (tmp_path / "out.mp4").write_bytes(archive.read(next(n for n in archive.namelist() if n.endswith(".mp4"))))
    frames, _ = read_frames(tmp_path / "out.mp4")
    for n in range(track.first, track.last + 1):
        assert exposed(moving[n][0], frames[n], moving[n][1]) <= 0.10, n


def test_a_face_drawn_in_a_panning_clip_is_followed_with_the_pan(engine, astronaut_rgb, astronaut_face_box,
                                                                tmp_path):
    """A phone panning across a crowd moves a small face further from one frame to the next than
    the follower looked (one box size around its last place): a face drawn there was followed for
    no frame beside the one it was drawn on. Each next frame is looked for where the picture's move
    (`motion.Motion`) took the box."""
    from core import video_review
    from tests.clips import background, face_patch

    patch, (fx, fy, fw, fh) = face_patch(astronaut_rgb, astronaut_face_box, 30)
    scene = background(2400, 360, seed=4)
    scene[160:160 + patch.shape[0], 1200:1200 + patch.shape[1]] = patch
    frames, boxes = [], []
    for n in range(24):
        left = 800 + 40 * (n - 10)  # 40 px a frame, more than the face's width
        frames.append(np.ascontiguousarray(scene[:, left:left + 640]))
        boxes.append((1200 - left + fx, 160 + fy, fw, fh))
    write_clip(tmp_path / "crowd.mp4", frames, sound=False)
    scan = video.scan(engine.detect_frame, tmp_path / "crowd.mp4", DETECT_EVERY)
    track = video_review.follow(tmp_path / "crowd.mp4", scan, 10, boxes[10], 99)
    shown = [n for n, (x, _, w, _) in enumerate(boxes) if x >= 0 and x + w <= 640]
    assert len(shown) >= 12 and set(shown) <= set(track.frames), track.frames
    for n in range(max(0, track.first - HOLD), min(len(boxes), track.last + HOLD + 1)):  # its held cover moves on
        face, (x, y, w, h) = track.face_at(n), boxes[n]
        assert abs(face.x - x) < 0.25 * w and abs(face.y - y) < 0.25 * h, n


def test_splice_takes_the_frames_nearer_the_moved_box():
    """A drawn track placed on frame 10 and moved on frame 30: frames up to 20 keep the old
    boxes, the rest take the new ones; moving it again on frame 40 leaves frames up to 35 alone."""
    from core.faces import MANUAL
    from core.tracks import Track
    from core.video_review import FOLLOWED, splice

    def track(x: float, placed: int, frames: range) -> Track:
        return Track(5, list(frames), [Face(x, 0, 10, 10, 1.0, MANUAL if n == placed else FOLLOWED) for n in frames])

    once = splice(track(0, 10, range(0, 40)), track(100, 30, range(15, 50)), 30)
    assert once.id == 5 and once.frames == list(range(0, 50))
    assert [f.x for f in once.faces] == [0] * 21 + [100] * 29
    twice = splice(once, track(200, 40, range(25, 60)), 40)
    assert [f.x for f in twice.faces] == [0] * 21 + [100] * 15 + [200] * 24
    assert [n for n, f in zip(twice.frames, twice.faces) if f.detector == MANUAL] == [10, 30, 40]


def test_a_drifted_drawn_face_is_moved_and_followed_again(engine, astronaut_rgb, astronaut_face_box, tmp_path):
    """A face drawn on frame 3 a box width off (as if drawn in haste) is moved onto the face on
    frame 20: the frames around 20 follow the face, the row takes the new box, the approval
    given before the move is out of date, and the move is in the audit log."""
    from core import video_review
    from core.records import APPROVED

    ws, session, moving = corridor(engine, astronaut_rgb, astronaut_face_box, tmp_path)
    record = ws.image(ws.images(session)[0].id)
    x, y, w, h = moving[3][1]
    drawn = video_review.add_drawn(ws, record, 3, (x + w, y, w, h), "Officer")
    ws.decide(record.id, APPROVED, "Officer")
    record = ws.image(record.id)
    assert record.approval_current(SOLID)
    moved = video_review.move_drawn(ws, record, drawn.id, 20, moving[20][1], "Officer",
                                    seen=record.current_fingerprint(SOLID))
    for n, face in zip(moved.frames, moved.faces):
        if 12 <= n <= 29:
            bx, by, bw, bh = moving[n][1]
            assert abs(face.x - bx) < 0.25 * bw and abs(face.y - by) < 0.25 * bh, n
    assert 3 in moved.frames and moved.faces[moved.frames.index(3)].x == pytest.approx(x + w, abs=2)
    record = ws.image(record.id)
    assert not record.approval_current(SOLID)
    row = next(f for f in record.faces if f.detector == f"track {drawn.id} drawn")
    assert row.box == pytest.approx(moving[20][1])
    assert video_review.load_drawn(ws.files, record.sha256, record.id)[0].frames == moved.frames
    assert any(a["action"] == "drawn face moved" for a in ws.audit(session))
