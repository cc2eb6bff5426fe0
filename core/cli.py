"""Command line: `python -m core detect|anonymize PATH...`.

Exit codes: 0 every file done, 2 at least one file failed (the others are still done) or the
manifest could not be written, 3 (anonymize --check) every file done but an output was held back
(a face found again or still showing in its pixels; it is written to OUT/held-back/, not beside
the clean ones), 1 bad options (an --out that cannot be a folder among them).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from .anonymizers import MODES, SHAPES
from .images import DEFAULT_MAX_PIXELS
from . import times, video
from .batch import anonymize_files, face_record, frame_progress
from .pipeline import DETECT_EVERY, Engine, Settings, failure_reason
from .run_folder import HELD_BACK, manifest_path, recover, stopped_before
from .store import Busy, NoRoom, only_run
from .walk import PassedOver, expand_paths
from .kinds import is_video
from .shown import as_text
from .faces import selected


def _parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(prog="python -m core", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                         help="photos (JPEG, HEIC, PNG, WebP, AVIF, TIFF...), videos (MP4, MOV, MKV, MTS...), "
                              "or folders of them")
        sub.add_argument("--threshold", type=float, default=defaults.threshold,
                         help=f"lowest detector confidence that counts as a face (default {defaults.threshold})")
        sub.add_argument("--padding", type=float, default=defaults.padding,
                         help=f"region grows by this x the face size on each side (default {defaults.padding})")
        sub.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6,
                         help="refuse larger images (decompression-bomb guard; default "
                              f"{DEFAULT_MAX_PIXELS / 1e6:g})")
        sub.add_argument("--ray", metavar="ADDRESS",
                         help="run on a Ray cluster: auto, HOST:PORT, or local (a cluster on this machine); "
                              "inputs and --out must be folders every worker can reach. Resumable: run the "
                              "same command again after a crash (needs ./scripts/install --cluster)")

    detect = commands.add_parser("detect", help="print the faces found, as JSON")
    common(detect)

    anonymize = commands.add_parser("anonymize", help="write anonymised copies and a manifest")
    common(anonymize)
    anonymize.add_argument("--out", type=Path, required=True, help="output folder")
    anonymize.add_argument("--mode", choices=MODES, default=defaults.mode,
                           help=f"how a face is covered (default {defaults.mode})")
    anonymize.add_argument("--strength", type=float, default=defaults.strength,
                           help=f"blur kernel or mosaic block size, relative to the face (default "
                                f"{defaults.strength})")
    anonymize.add_argument("--shape", choices=SHAPES, default=defaults.shape,
                           help=f"the cover's shape (default {defaults.shape})")
    anonymize.add_argument("--feather", type=float, default=defaults.feather,
                           help=f"soft edge width, relative to the region (0 for a hard edge; default "
                                f"{defaults.feather})")
    anonymize.add_argument("--outline", action="store_true", help="draw a box around each region")
    anonymize.add_argument("--jpeg-quality", type=int, default=defaults.jpeg_quality,
                           help=f"of JPEG outputs, 1-100 (default {defaults.jpeg_quality})")
    anonymize.add_argument("--video-quality", type=int, default=defaults.video_quality,
                           help=f"H.264 CRF of video outputs, 0-51, lower is better (default {defaults.video_quality})")
    anonymize.add_argument("--no-sound", dest="sound", action="store_false",
                           help="leave videos' sound out (voices and names spoken are not anonymised); "
                                "by default it is kept")
    anonymize.add_argument("--from", dest="start", type=_seconds, default=None, metavar="TIME",
                           help="export videos only from this time on (seconds, MM:SS or HH:MM:SS from the first "
                                "frame), as a request for minutes of a long CCTV recording asks")
    anonymize.add_argument("--to", dest="end", type=_seconds, default=None, metavar="TIME",
                           help="export videos only up to this time (default: to the end)")
    anonymize.add_argument("--by-clock", dest="by_clock", action="store_true",
                           help="--from and --to are times of day on the recorder's clock (HH:MM:SS, as a request "
                                "names them), for a CCTV export stamped with it (Dahua's DAV); a video without "
                                "one is that file's error")
    anonymize.add_argument("--silence", dest="silence", type=_span, action="append", default=[], metavar="FROM-TO",
                           help="silence videos' sound from one time to another (seconds, MM:SS or HH:MM:SS from "
                                "the first frame: 1:02-1:05), where a name said or a voice would identify "
                                "someone; give it again for more parts. The silence is checked in the file written")
    anonymize.add_argument("--check", action="store_true",
                           help="detect again on every output (residual check): an output where a face "
                                "still shows goes to OUT/held-back/, and the manifest says why")
    return parser


def _seconds(text: str) -> float:
    try:
        return times.read_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _span(text: str) -> tuple[float, float]:
    try:
        return times.read_span(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# The exit code of a run stopped with Ctrl-C, as a shell gives a command it interrupts.
STOPPED_EXIT = 130
# Signals that stop a run as Ctrl-C does, with its record: its terminal closed (SIGHUP) or `kill`.
STOPPING = (signal.SIGTERM, signal.SIGHUP)


def main(argv: list[str] | None = None) -> int:
    before = {number: signal.signal(number, _interrupt) for number in STOPPING}
    try:
        return _main(argv)
    except KeyboardInterrupt:  # `anonymize` records what it did first (see `anonymize_files`)
        _say("stopped")
        return STOPPED_EXIT
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def _interrupt(number: int, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(number).name)


def _say(line: str) -> None:
    """A line on the standard error, which may be gone (its terminal closed): then unsaid. What
    it names is shown as text: a control character or a direction override in a file's name is
    written as its escape (`\\n`, `\\x1b`, `\\u202e`), so a name cannot start a line of its own
    that reads as the run's, rewrite one, or hide one with a terminal's escape sequence."""
    try:
        print(as_text(line), file=sys.stderr, flush=True)
    except OSError:
        pass


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings(
            threshold=args.threshold, padding=args.padding,
            **({} if args.command == "detect" else {
                "mode": args.mode, "strength": args.strength, "shape": args.shape,
                "feather": args.feather, "outline": args.outline, "jpeg_quality": args.jpeg_quality,
                "video_quality": args.video_quality, "sound": args.sound, "start": args.start or 0.0, "end": args.end,
                "by_clock": args.by_clock, "silence": tuple(args.silence)}))
        if args.command == "anonymize" and args.by_clock and args.start is None:
            raise ValueError("--by-clock needs --from: the time of day the part starts at, on the recorder's clock")
    except ValueError as exc:
        _say(f"error: {exc}")
        return 1
    if args.ray:
        return _on_cluster(args, settings)
    engine = Engine(max_pixels=int(args.max_megapixels * 1e6))
    if args.command == "detect":
        passed = PassedOver()
        return _printed(detect_files(engine, args.paths, settings, passed), passed)
    problem = _out_problem(args)
    if problem:
        _say(f"error: {problem}")
        return 1
    return _anonymized(args.out, manifest_path, lambda record: anonymize_files(
        engine, args.paths, args.out, settings, _progress, args.check, manifest=record), on_cluster=False)


def _anonymized(out: Path, where: Callable[[Path], Path], run: Callable[[Path], dict], on_cluster: bool = True) -> int:
    """An `anonymize` run into `out`, local or on a cluster, alone there (`store.only_run`):
    `where` names its manifest, `run` makes it and returns it; its closing lines and exit code.
    A run on one machine does not go into a cluster run's folder that run left unfinished: only
    the cluster run's own command can finish it (its journal is its record)."""
    from . import cluster

    try:
        with only_run(out):
            if not on_cluster and cluster.unfinished(out):
                _say(f"error: a run on a cluster into {out} was killed before it wrote its manifest (its "
                     f"{cluster.JOURNAL} is there): finish it with the same command and its --ray first, or name "
                     "another folder; nothing was done")
                return 1
            _recovered(out)
            return _ran(out, where(out), run)
    except Busy as exc:
        _say(f"error: --out {out} is being written by another run{f' (process {exc})' if str(exc) else ''}: "
              "nothing was done; wait for it to end, or name another folder")
        return 1
    except OSError as exc:  # the folder takes not even its lock
        return _cannot_take(out, exc.strerror or str(exc))


def _recovered(out: Path) -> None:
    """An earlier run into `out` killed before it wrote its manifest is given one first, and said."""
    if made := recover(out):
        manifest, done = made
        _say(f"an earlier run into {out} was killed before it wrote its manifest: its record is made now, from "
             f"its journal: {manifest} ({done} file(s) done)")


def _ran(out: Path, record: Path, run: Callable[[Path], dict]) -> int:
    """`run` with its manifest at `record`, and what it says."""
    try:
        manifest = run(record)
    except NoRoom as exc:
        return _cannot_take(out, str(exc))
    except OSError as exc:  # each file's own failures are in the manifest; this is the manifest's
        _say(f"error: the manifest cannot be written to {record} ({exc.strerror or exc})")
        return 2
    return _stopped(manifest, record) if manifest.get("stopped") else _finished(manifest, record)


def _cannot_take(out: Path, reason: str) -> int:
    _say(f"error: --out {out} cannot take the outputs ({reason}): nothing was done; free space on its "
          "disk (or make it writable) and run again")
    return 1


def _printed(results: list[dict], passed: PassedOver) -> int:
    """`detect`'s JSON on the standard output, what its walk passed over, and its exit code."""
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    _earlier_said(passed.runs, "whose covered faces are not faces to find")
    return _outcome([r for r in results if "error" in r], [])


def _stopped(manifest: dict, record: Path) -> int:
    """What a run stopped (Ctrl-C, its terminal closed, kill; or its output disk full, the reason
    then in `stopped`) says: how far it got, where its record is, and how to finish it."""
    done = sum(1 for f in manifest["files"] if "output" in f)
    why = manifest["stopped"] if manifest["stopped"] is not True else ""
    then = ("free space on it, then " if why else "") + "run the same command again to finish them"
    _say(f"stopped{why and ': ' + why}: {done} of {len(manifest['files'])} file(s) done; manifest: {record} "
         f"(the files not done are listed in it); {then}")
    _outcome([f for f in manifest["files"] if "error" in f and not stopped_before(f)], [])  # failed before the stop
    return 2 if why else STOPPED_EXIT


def _finished(manifest: dict, record: Path) -> int:
    """The closing lines of a finished `anonymize` run, local or on a cluster, and its exit code:
    the counts (with those kept from an earlier run), the files passed over, every output held
    back by the check with why and where it is, and every file that failed."""
    failed = [f for f in manifest["files"] if "error" in f]
    flagged = [f for f in manifest["files"] if f.get("held_back")]
    resumed = f" ({manifest['resumed']} from an earlier run)" if manifest["resumed"] else ""
    _say(f"{len(manifest['files']) - len(failed) - len(flagged)} anonymised, {len(flagged)} held back, "
          f"{len(failed)} failed{resumed}; manifest: {record}")
    if manifest["passed_over"]:
        _say(f"{len(manifest['passed_over'])} file(s) that only go with photos and videos passed over "
              "(sidecars, thumbnails, index files; listed in the manifest)")
    _earlier_said(manifest["earlier_outputs"], "which would be anonymised again beside the first")
    for entry in flagged:
        _say(f"check: {entry['input']} -> {entry['output']}: {entry['held_back']}; held back in "
              f"{record.parent / HELD_BACK}: look at it before publishing")
    return _outcome(failed, flagged)


def _earlier_said(folders: list, why: str) -> None:
    for folder in folders:
        _say(f"passed over {folder}: it holds the anonymised outputs of an earlier run or export (its record is "
             f"there), {why}; name that folder itself to do so")


def _outcome(failed: list[dict], flagged: list[dict]) -> int:
    for entry in failed:
        _say(f"error: {entry.get('path') or entry.get('input')}: {entry['error']}")
    return 2 if failed else 3 if flagged else 0


def _out_problem(args) -> str | None:
    """Why --out cannot take the outputs, or None once it is a folder."""
    if any(p.resolve() == args.out.resolve() for p in args.paths):
        return f"--out {args.out} is one of the inputs: name a folder for the outputs"
    if holding := next((p for p in args.paths if args.out.resolve() in p.resolve().parents), None):
        return (f"--out {args.out} holds the input {holding}: the outputs would lie beside the originals, and the "
                "folder, published, would take both; name a folder of their own for the outputs")
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} is a file: name a folder for the outputs"
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--out {args.out} cannot be made a folder ({exc.strerror or exc})"
    return None


def _on_cluster(args, settings: Settings) -> int:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        _say("error: --ray needs Ray: run ./scripts/install --cluster")
        return 1
    from . import cluster

    max_pixels = int(args.max_megapixels * 1e6)
    problem = None if args.command == "detect" else _out_problem(args)
    if problem:
        _say(f"error: {problem}")
        return 1
    try:
        if args.command == "detect":
            passed = PassedOver()
            return _printed(cluster.detect_files(args.ray, args.paths, settings, max_pixels, _progress, passed), passed)
        return _anonymized(args.out, cluster.manifest_path, lambda record: cluster.anonymize_files(
            args.ray, args.paths, args.out, settings, args.check, max_pixels, _progress, record))
    except cluster.Unreachable as exc:
        _say(f"error: {exc}")
        return 1


def detect_files(engine: Engine, paths: list[Path], settings: Settings,
                 passed: PassedOver | None = None) -> list[dict]:
    """Each file's faces (`detect_one`); what the walk passes over (`walk.expand_paths`) goes
    into `passed`."""
    jobs = list(expand_paths(paths, passed=passed))
    return [detect_one(engine, path, settings, frame_progress(_progress, index, len(jobs), path))
            if not problem else {"path": str(path), "error": problem}
            for index, (path, problem) in enumerate(jobs, 1)]


def detect_one(engine: Engine, path: Path, settings: Settings, progress=None) -> dict:
    """One file's faces (a photo) or tracks (a video, its frames said to `progress`), or its error."""
    try:
        if is_video(path):
            return detect_video(engine, path, settings, progress)
        photo = engine.read(path)
        faces = selected(engine.detect(photo), settings.threshold)
        return {"path": str(path), "width": photo.width, "height": photo.height,
                "faces": [face_record(f, settings, photo.width, photo.height) for f in faces]}
    except Exception as exc:  # noqa: BLE001 - one file's failure is that file's error
        return {"path": str(path), "error": failure_reason(exc)}


def detect_video(engine: Engine, path: Path, settings: Settings, progress=None) -> dict:
    """A video's tracks as `detect` prints them: per track its frames (index, time, box, score)."""
    scan = video.scan(engine.detect_frame, path, DETECT_EVERY, progress)
    return {"path": str(path), "kind": "video", "width": scan.info.width, "height": scan.info.height,
            "frames": scan.frames, "duration": round(scan.duration, 3), "detect_every": scan.every,
            "tracks": scan.covered_tracks(settings.threshold)}


def _progress(index: int, total: int, message: str) -> None:
    _say(f"[{index}/{total}] {message}")
