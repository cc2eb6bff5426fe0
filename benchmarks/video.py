"""Video protection judged on the written files, and speed against deface, in one run.

    python -m benchmarks.video CLIPS_DIR [--deface PATH] [--every N]
    python -m benchmarks.video --memory 10 60     # peak memory for 1080p clips of 10 s and 60 s

CLIPS_DIR holds clips with every face's box in every frame (`annotations.json`, as made by
`../shared/tools/make_clips.py ../shared/eval CLIPS_DIR`). Besides each clip, the benchmark
makes two phone-style variants of the first one: variable frame rate (frames dropped at
irregular times, timestamps kept) and sideways with a rotation flag. Each clip is anonymised
with a solid cover by this engine (and by deface when given, `--keep-audio --replacewith
solid`), then judged on the output's pixels: a face-frame is exposed when more than 10 % of
its box is within 24 levels of the source where the source is not dark. Prints face-frames
protected, faces (>= 16 px, across the clip) never exposed, flicker (an exposed face-frame
between two protected ones), frames, duration and sound kept, the tracks (the reviewer's rows)
and how many each annotated face is split into, seconds, and the peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from core import batch, pipeline


def _frames(path: Path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            pixels = frame.to_ndarray(format="rgb24")
            rotation = (frame.rotation or 0) // 90
            yield np.rot90(pixels, k=rotation) if rotation else pixels, float(frame.pts * frame.time_base)


def _variants(clips: Path, entries: list[dict], work: Path) -> list[dict]:
    """A variable-frame-rate copy and a sideways (rotation flag) copy of the first clip."""
    first = entries[0]
    source = list(_frames(clips / first["video"]))
    keep = [i for i in range(len(source)) if i % 7 not in (3, 5)]  # 5/7 of the frames, at irregular gaps
    made = []
    for name, indices, rotation in (("vfr", keep, 0), ("sideways", list(range(len(source))), 90)):
        path = work / f"{Path(first['video']).stem}-{name}.mp4"
        with av.open(str(path), "w") as out, av.open(str(clips / first["video"])) as original:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height = (first["height"], first["width"]) if rotation else (first["width"],
                                                                                             first["height"])
            stream.pix_fmt, stream.options = "yuv420p", {"crf": "18", "preset": "veryfast"}
            stream.time_base = stream.codec_context.time_base = original.streams.video[0].time_base
            if rotation:
                stream.set_display_rotation(rotation)
            sound = out.add_stream_from_template(original.streams.audio[0])
            for i in indices:
                pixels = np.ascontiguousarray(np.rot90(source[i][0], k=-1)) if rotation else source[i][0]
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.time_base = stream.time_base
                frame.pts = round(source[i][1] / stream.time_base)
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
            for packet in original.demux(original.streams.audio[0]):
                if packet.dts is not None:
                    packet.stream = sound
                    out.mux(packet)
        made.append({**first, "video": str(path), "frames": [first["frames"][i] for i in indices],
                     "reference_frames": indices})
    return made


def _judge(entry: dict, clips: Path, output: Path) -> dict:
    source_path = Path(entry["video"]) if Path(entry["video"]).is_absolute() else clips / entry["video"]
    state: dict[int, list[bool]] = {}
    count = 0
    for n, ((src, t_in), (out, t_out)) in enumerate(zip(_frames(source_path), _frames(output))):
        count += 1
        for idx, x, y, w, h in entry["frames"][n] if n < len(entry["frames"]) else []:
            if (w * h) ** 0.5 < 16:
                continue
            x0, y0 = int(x), int(y)
            a = src[y0:int(y + h), x0:int(x + w)].astype(np.int16)
            b = out[y0:int(y + h), x0:int(x + w)].astype(np.int16)
            if a.size == 0:
                continue
            bad = a.shape != b.shape or bool(((np.abs(a - b).max(axis=2) <= 24) & (a.max(axis=2) > 40)).mean() > 0.10)
            state.setdefault(idx, []).append(bad)
    with av.open(str(source_path)) as a, av.open(str(output)) as b:
        frames_in = sum(1 for _ in a.decode(video=0))
        duration = (a.duration or 0) / 1e6, (b.duration or 0) / 1e6
        sound = bool(b.streams.audio)
    flicker = sum(1 for s in state.values() for i in range(1, len(s) - 1) if s[i] and not s[i - 1] and not s[i + 1])
    return {"face_frames": sum(len(s) for s in state.values()),
            "protected": sum(not e for s in state.values() for e in s),
            "faces": len(state), "never_exposed": sum(not any(s) for s in state.values()), "flicker": flicker,
            "frames": [frames_in, count], "duration": [round(d, 3) for d in duration], "sound": sound}


def _pieces(entry: dict, tracks: list[dict]) -> dict:
    """How many tracks each annotated face (>= 16 px) is split into: the tracks whose detection
    overlaps its box (IoU >= 0.3) in a frame where both are. One is a face followed whole; more
    is a face the reviewer sees as several rows, each switched and scored on its own."""
    by_frame: dict[int, list[tuple[int, list[float]]]] = {}
    for track in tracks:
        for frame in track["frames"]:
            by_frame.setdefault(frame["index"], []).append((track["id"], frame["box"]))
    matched: dict[int, set[int]] = {}
    for n, faces in enumerate(entry["frames"]):
        for idx, x, y, w, h in faces:
            if (w * h) ** 0.5 < 16:
                continue
            for track_id, (bx, by, bw, bh) in by_frame.get(n, []):
                ix = max(0.0, min(x + w, bx + bw) - max(x, bx))
                iy = max(0.0, min(y + h, by + bh) - max(y, by))
                if ix * iy / (w * h + bw * bh - ix * iy) >= 0.3:
                    matched.setdefault(idx, set()).add(track_id)
    return {"tracks": len(tracks), "pieces": sum(len(s) for s in matched.values()), "followed": len(matched)}


def _total(rows: list[dict]) -> dict:
    ff = sum(r["face_frames"] for r in rows)
    faces = sum(r["faces"] for r in rows)
    return {"face_frames_protected": round(sum(r["protected"] for r in rows) / max(ff, 1), 4),
            "faces_never_exposed": round(sum(r["never_exposed"] for r in rows) / max(faces, 1), 3),
            "faces": faces, "flicker": sum(r["flicker"] for r in rows),
            **({"tracks": sum(r["tracks"] for r in rows),
                "tracks_per_face": round(sum(r["pieces"] for r in rows) / max(sum(r["followed"] for r in rows), 1), 2)}
               if all("tracks" in r for r in rows) else {}),
            "frames_kept": all(r["frames"][0] == r["frames"][1] for r in rows),
            "duration_off_s": max(round(abs(r["duration"][0] - r["duration"][1]), 3) for r in rows),
            "sound_kept": all(r["sound"] for r in rows)}


_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def memory(lengths: list[int]) -> None:
    """Peak memory of `python -m core anonymize` on 1080p clips of each length (seconds): a
    face moving over a textured background, with sound. Flat means the same peak for all."""
    from skimage import data

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.clips import iter_moving_face_frames, write_clip  # the tests' clip maker, at 1080p

    portrait = data.astronaut()
    for seconds in lengths:
        with tempfile.TemporaryDirectory() as tmp:
            clip = Path(tmp) / f"long-{seconds}s.mp4"
            frames = iter_moving_face_frames(portrait, (181.5, 58.2, 88.4, 119.6), 25 * seconds, 1920, 1080, 90)
            write_clip(clip, (f for f, _ in frames), count=25 * seconds)
            start = time.perf_counter()
            # A fresh process measures each run's own peak (RUSAGE_CHILDREN keeps the largest so far).
            run = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "core", "anonymize", str(clip),
                                  "--out", str(Path(tmp) / "out")], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent.parent)
            peak_kb = int(run.stdout.strip().splitlines()[-1])
            print(f"1080p clip of {seconds} s ({25 * seconds} frames): {time.perf_counter() - start:.0f} s, "
                  f"peak memory {peak_kb / 1024:.0f} MB", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, nargs="?")
    parser.add_argument("--memory", type=int, nargs="+", metavar="SECONDS",
                        help="instead: peak memory on 1080p clips of these lengths")
    parser.add_argument("--deface", help="path to deface's command, to compare in the same run")
    parser.add_argument("--every", type=int, default=pipeline.DETECT_EVERY, help="detect every N-th frame")
    args = parser.parse_args(argv)
    if args.memory:
        return memory(args.memory)
    entries = json.loads((args.clips / "annotations.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        entries = entries + _variants(args.clips, entries, work)
        settings = pipeline.Settings(mode="solid")
        ours, theirs = [], []
        seconds = {"engine": 0.0, "deface": 0.0}
        engine = pipeline.Engine()
        for entry in entries:
            source = Path(entry["video"]) if Path(entry["video"]).is_absolute() else args.clips / entry["video"]
            out = work / "ours" / source.stem
            out.mkdir(parents=True)
            start = time.perf_counter()
            result = batch.anonymize_files(engine, [source], out, settings, detect_every=args.every)["files"][0]
            seconds["engine"] += time.perf_counter() - start
            if "error" in result:
                print(f"{source.name}: {result['error']}", file=sys.stderr)
                continue
            ours.append({"clip": source.stem, **_judge(entry, args.clips, out / result["output"]),
                         **_pieces(entry, result["tracks"])})
            if args.deface:
                target = work / "deface" / f"{source.stem}.mp4"
                target.parent.mkdir(exist_ok=True)
                start = time.perf_counter()
                subprocess.run([args.deface, "--keep-audio", "--replacewith", "solid", "-o", str(target),
                                str(source)], check=True, capture_output=True)
                seconds["deface"] += time.perf_counter() - start
                theirs.append({"clip": source.stem, **_judge(entry, args.clips, target)})
        report = {"every": args.every, "engine": _total(ours), "engine_s": round(seconds["engine"], 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "clips": ours}
        if args.deface:
            report |= {"deface": _total(theirs), "deface_s": round(seconds["deface"], 1),
                       "time_ratio": round(seconds["engine"] / max(seconds["deface"], 1e-9), 2),
                       "deface_clips": theirs}
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
