"""The command line's batch: files in, covered files and a manifest out. Photos and videos,
one file's failure is that file's error, and outputs the residual check flags go apart."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import video
from .faces import Face, near_misses, selected
from .journal import RUN_JOURNAL, Journal
from .images import ImageError, Photo, encode_photo, file_format, has_alpha, output_format
from .pipeline import (DETECT_EVERY, VIDEO_FOUND_AGAIN, Engine, Settings, anonymize, check_output, engine_versions,
                       failure_reason)
from .report import utc_now
from .residual import EXPOSED, residual_faces
from .store import NoRoom, out_of_room, write_atomically
from .kinds import is_video
from .run_folder import (FULL, HELD_BACK, ManifestRoom, OutputNamer, earlier_entries, manifest_path, not_done, recover,
                         remove_unfinished, stop_reason, unchanged)
from .walk import PassedOver, expand_paths


def face_record(face: Face, settings: Settings, width: int, height: int) -> dict:
    """A face as the command line and the manifests show it."""
    return {
        "x": round(face.x, 1), "y": round(face.y, 1), "w": round(face.w, 1), "h": round(face.h, 1),
        "score": round(face.score, 4), "detector": face.detector,
        "region": list(face.region(settings.padding, width, height)),
    }


def write_output(engine: Engine, photo: Photo, found: list[Face], pixels: np.ndarray, out_dir: Path, name: str,
                 settings: Settings, check: bool) -> dict:
    """Encode a covered photo, check it as written when asked (a flagged output goes to
    `out_dir/held-back/`), write it atomically, and return its manifest fields. Of every
    candidate `found`, the covered ones are listed as faces, and those just under the threshold
    as near misses: a run opened for review lists them as the dashboard's own detection does."""
    faces = selected(found, settings.threshold)
    data = encode_photo(pixels, output_format(photo), settings.jpeg_quality)
    entry: dict = {}
    folder = out_dir
    if check:
        residual = check_output(engine.detector, photo, data, faces, settings)
        entry["residual_faces"] = [face_record(f, settings, photo.width, photo.height) for f in residual]
        if residual:
            folder = out_dir / HELD_BACK
            folder.mkdir(exist_ok=True)
            entry["held_back"] = _held_back_reason(residual)
    write_atomically(folder / name, data)
    entry.update({
        "input_sha256": photo.sha256, "output": str((folder / name).relative_to(out_dir)),
        "output_sha256": hashlib.sha256(data).hexdigest(), "width": photo.width, "height": photo.height,
        "faces": [face_record(f, settings, photo.width, photo.height) for f in faces],
        "near_misses": [face_record(found[i], settings, photo.width, photo.height)
                        for i in near_misses(found, settings.threshold)],
    })
    return entry


def anonymize_one(engine: Engine, path: Path, out_dir: Path, name: str, settings: Settings, check: bool,
                  progress: Callable[[int, int, str], None] | None = None) -> dict:
    """One file, photo or video, into `out_dir/name`: its manifest fields (the batch below
    does the same steps, overlapped; the cluster runs this on its workers)."""
    if is_video(path):
        return anonymize_video(engine, path, out_dir, name, settings, check, progress)
    photo = engine.read(path)
    found = engine.detect(photo)
    return write_output(engine, photo, found, anonymize(photo.pixels, found, settings), out_dir, name, settings, check)


def output_name(namer: OutputNamer, path: Path) -> str:
    """The output's name, known before the file is decoded (from its header), so that a
    batch split over many machines names every output as one machine would."""
    if is_video(path):
        return namer.name_for(path.name, "MP4")
    from PIL import Image

    with Image.open(path) as image:
        return namer.name_for(path.name, file_format(image.format, has_alpha(image)))


def anonymize_files(engine: Engine, paths: list[Path], out_dir: Path, settings: Settings,
                    progress: Callable[[int, int, str], None] | None = None, check: bool = False,
                    detect_every: int = DETECT_EVERY, manifest: Path | None = None) -> dict:
    """Anonymise every file into `out_dir` and write its manifest (`manifest`, by default
    `manifest_path(out_dir)`).

    A file an earlier run into `out_dir` did with the same settings, check and versions, whose
    input and output are still as its manifest records them, is kept, not done again: the same
    command run again after a stop (or a full disk) finishes the batch, and the new manifest lists
    every file (`resumed` counts those kept).

    Any failure on one file (decoding, detection, covering, encoding, writing) is recorded with
    its reason and the batch goes on. With `check`, each output is run through the residual
    check as written; an output it flags goes to `out_dir/held-back/`, never beside the clean
    ones, and the manifest says why. Reading the next file and encoding the last one run
    beside detection, so a batch keeps the machine's cores busy. Stopped (Ctrl-C), it finishes
    the outputs being written, removes the one being made, and writes the manifest all the same:
    every input is in it, those not done said so, and `stopped` is true. Killed outright (kill -9,
    the out-of-memory killer, a power cut), it leaves its journal (`core.journal`), which the
    next run into `out_dir` makes into its manifest first (`recover`).

    The manifest's room is kept on the output disk as the run goes (`Reserve`): a disk that
    fills stops the run at the first file it refuses, with the manifest written all the same
    (`stopped` is then the reason), instead of failing every file left and losing the record of
    those written. `NoRoom` (with nothing done) when there is no room to start."""
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_unfinished(out_dir)
    recover(out_dir)
    manifest = manifest or manifest_path(out_dir)
    passed = PassedOver()
    jobs = list(expand_paths(paths, skip=out_dir, passed=passed))
    entries: list[dict] = []
    room = ManifestRoom(manifest, [*passed.files, *passed.runs, *(path for path, _ in jobs)])
    versions = engine_versions()
    earlier = earlier_entries(out_dir, settings, check, versions)
    kept = {index: earlier[str(path)] for index, (path, problem) in enumerate(jobs, 1)
            if not problem and str(path) in earlier and unchanged(earlier[str(path)], path, out_dir)}
    journal = Journal(out_dir / RUN_JOURNAL)

    stopped: str | bool = False
    try:
        journal.append({"run": {"manifest": manifest.name, "created": utc_now(), "settings": settings.to_dict(),
                                "versions": versions, "check": check, "inputs": [str(path) for path, _ in jobs],
                                **passed.record()}})
        with ThreadPoolExecutor(max_workers=2) as pool:
            try:
                _run(engine, pool, jobs, entries, out_dir, settings, progress, check, detect_every, room, kept,
                     journal)
            except (KeyboardInterrupt, NoRoom) as exc:
                stopped = stop_reason(exc)
                pool.shutdown(wait=True)  # the outputs being written are finished, and their entries filled in
    finally:
        room.release()  # given back for the manifest
    if stopped:
        left = not_done(stopped)
        for entry in entries:
            if not {"output", "error"} & set(entry):
                entry["error"] = left
        entries += [{"input": str(path), "error": left} for path, _ in jobs[len(entries):]]
    record = {
        "created": utc_now(),
        "settings": settings.to_dict(),
        "versions": versions,
        "check": check,
        "files": entries,
        **passed.record(),
        "resumed": sum(1 for index in kept if "output" in entries[index - 1]),  # those a stop left are not done
    } | ({"stopped": stopped} if stopped else {})
    write_atomically(manifest, json.dumps(record, indent=2).encode())
    journal.path.unlink(missing_ok=True)  # the manifest holds it all now
    return record


def _run(engine: Engine, pool: ThreadPoolExecutor, jobs: list, entries: list[dict], out_dir: Path,
         settings: Settings, progress: Callable[[int, int, str], None] | None, check: bool, detect_every: int,
         room: ManifestRoom, kept: dict[int, dict], journal: Journal) -> None:
    """The batch's loop: each job's entry appended to `entries` as it is reached, and filled
    in when its output is written (by `pool`, beside the next detection) or it fails, or from
    an earlier run (`kept`, by job number); the manifest's `room` grown for each, and the
    `journal` told each output's name before it is written (synced: a power cut leaves no output
    it does not name) and each entry once complete (not synced, which costs a detection's time:
    an entry a power cut loses leaves an output the next run removes and does again).
    `NoRoom` after the first file the output disk refused."""
    namer = OutputNamer(out_dir)

    def finish(entry: dict, photo: Photo, found: list[Face], pixels: np.ndarray, name: str) -> dict:
        journal.append({"assign": entry["input"], "name": name})  # on the disk before the output
        return entry.update(write_output(engine, photo, found, pixels, out_dir, name, settings, check))

    reads = _prefetch(pool, jobs, engine.read, ahead=2, skip=kept)
    pending: list[tuple[int, dict, Future]] = []

    def settle(upto: int) -> None:
        while pending and len(pending) > upto:
            index, entry, future = pending.pop(0)
            failure = None
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - one file's failure is that file's error
                entry.clear()
                entry.update({"input": str(jobs[index - 1][0]), "error": failure_reason(exc, out_dir)})
                failure = exc
            close(index, entry, failure)

    def close(index: int, entry: dict, failure: Exception | None = None) -> None:
        """A file's entry complete: journaled, said, and its room kept; a file the output disk refused stops
        the run, since every file after it would be refused too."""
        if failure is not None and out_of_room(failure):  # not the file's fault: done once there is room
            entry["error"] = FULL
            report(progress, index, len(jobs), entry)
            raise NoRoom.of(failure) from failure
        journal.append({"done": entry["input"], "entry": entry}, sync=False)  # recorded before it is said done
        report(progress, index, len(jobs), entry)
        room.keep(entry)

    for index, ((path, problem), read) in enumerate(zip(jobs, reads), 1):
        entry: dict = {"input": str(path)}
        entries.append(entry)
        if index in kept:
            entry.update(kept[index])
            settle(0)
            journal.append({"done": entry["input"], "entry": entry, "kept": True}, sync=False)
            report(progress, index, len(jobs), entry, earlier=True)
            room.keep(entry)
            continue
        if is_video(path):
            settle(0)
        try:
            if problem:
                raise ImageError(str(path), problem)
            if is_video(path):
                name = namer.name_for(path.name, "MP4")
                journal.append({"assign": str(path), "name": name})
                entry.update(anonymize_video(engine, path, out_dir, name, settings, check,
                                             frame_progress(progress, index, len(jobs), path), detect_every))
            else:
                photo = read.result()
                found = engine.detect(photo)
                pixels = anonymize(photo.pixels, found, settings)
                name = namer.name_for(path.name, output_format(photo))
                pending.append((index, entry, pool.submit(finish, entry, photo, found, pixels, name)))
        except Exception as exc:  # noqa: BLE001 - one file's failure is that file's error
            entry["error"] = failure_reason(exc, out_dir)
            settle(0)
            close(index, entry, exc)
            continue
        if is_video(path):
            close(index, entry)
        else:
            settle(1)
    settle(0)


def anonymize_video(engine: Engine, path: Path, out_dir: Path, name: str, settings: Settings, check: bool,
                    progress: Callable[[int, int, str], None] | None = None, detect_every: int = DETECT_EVERY) -> dict:
    """One video into `out_dir/name`: tracks found, every frame covered, sound and timing kept;
    with `check`, sampled frames of the written file judged like a photo's output. `progress`
    hears each pass's frames, with the pass named."""
    def stage(name: str) -> Callable[[int, int], None] | None:
        return progress and (lambda done, frames: progress(done, frames, name))

    scan = video.scan(engine.detect_frame, path, detect_every, stage("detecting faces"), settings.start, settings.end,
                      settings.by_clock)
    part = scan.part(settings.start, settings.end, settings.by_clock)
    rendered = video.render(path, out_dir / name, scan.tracks, lambda pixels, faces: anonymize(pixels, faces, settings),
                            settings.video_quality, progress=stage("covering"), sound=settings.sound, part=part,
                            silence=settings.silence)
    try:
        return _video_entry(engine, path, out_dir, name, settings, check, stage, scan, part, rendered)
    except BaseException:  # checking failed or was stopped: the output it was judging does not stay
        (out_dir / name).unlink(missing_ok=True)
        raise


def _video_entry(engine: Engine, path: Path, out_dir: Path, name: str, settings: Settings, check: bool, stage,
                 scan: video.Scan, part: video.Part | None, rendered: dict) -> dict:
    """A rendered video's manifest fields, checked first when asked; a flagged output moves to
    `out_dir/held-back/`, the last thing done."""
    entry: dict = {"kind": "video", "input_sha256": scan.sha256, "output": name}
    residual = []
    if check:
        residual = video.check(path, out_dir / name, scan, lambda before, after, faces: residual_faces(
            engine.detector, before, after, selected(faces, settings.threshold),
            settings.regions(faces, scan.info.width, scan.info.height), outside=VIDEO_FOUND_AGAIN),
            progress=stage("checking"), part=part)
        entry["residual_frames"] = [{"index": n, "faces": [face_record(f, settings, scan.info.width, scan.info.height)
                                                           for f in faces]} for n, faces in residual]
    entry.update({
        "output_sha256": video.file_sha256(out_dir / name), "width": scan.info.width, "height": scan.info.height,
        "video": scan.info.to_dict() | {"frames": scan.frames, "duration": round(scan.duration, 3),
                                        "frames_written": rendered["frames"], "sound": rendered["audio"],
                                        "detect_every": scan.every},
        "tracks": scan.covered_tracks(settings.threshold),
    })
    if part:
        entry["video"]["part"] = part_record(scan, part)
    if rendered["silenced"]:  # seconds of the file written, checked silent there
        entry["video"]["silenced"] = [{"from": round(a, 3), "to": round(b, 3)} for a, b in rendered["silenced"]]
    if residual:
        (out_dir / HELD_BACK).mkdir(exist_ok=True)
        os.replace(out_dir / name, out_dir / HELD_BACK / name)
        entry["output"] = str(Path(HELD_BACK) / name)
        entry["held_back"] = f"in {len(residual)} checked frame(s): " + \
            _held_back_reason([f for _, faces in residual for f in faces])
    return entry


def part_record(scan: video.Scan, part: video.Part) -> dict:
    """The part of a video exported, as its manifest says it: seconds from its first frame
    (where its tracks' times are counted from too), frame indices, and the recording's clock at
    its first and last frames where the file has one."""
    said = {"from": round(scan.at(part.first), 3), "to": round(scan.at(part.last) + 1 / scan.rate, 3),
            "first_frame": part.first, "last_frame": part.last}
    if scan.clock(part.first):  # a CCTV recorder's time of day, as a request names it
        said["clock"] = [scan.clock(part.first), scan.clock(part.last)]
    return said


def frame_progress(progress, index: int, total: int, path: Path) -> Callable[..., None] | None:
    """A video's progress in frames, as the batch's line: "clip.mp4: covering, frame 25/60"."""
    if not progress:
        return None
    return lambda done, frames, stage="": progress(
        index, total, f"{path}: {stage + ', ' if stage else ''}frame {done}" + (f"/{frames}" if frames else ""))


def _held_back_reason(residual: list[Face]) -> str:
    exposed = sum(f.detector == EXPOSED for f in residual)
    again = len(residual) - exposed
    parts = ([f"{exposed} covered face(s) still show in the output's pixels"] if exposed else []) + \
            ([f"{again} face(s) found again by the detector"] if again else [])
    return "; ".join(parts)


def _prefetch(pool: ThreadPoolExecutor, jobs: list, read: Callable[[Path], Photo], ahead: int,
              skip: dict[int, dict]) -> Iterator[Future]:
    """Futures of the decoded photos, in order, reading at most `ahead` files in advance
    (memory stays bounded however long the batch); the jobs numbered in `skip` are not read."""
    queue: list[Future] = []
    for index, (path, problem) in enumerate(jobs, 1):
        queue.append(pool.submit(read, path) if not problem and not is_video(path) and index not in skip
                     else _done(None))
        if len(queue) > ahead:
            yield queue.pop(0)
    yield from queue


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def report(progress, index: int, total: int, entry: dict, earlier: bool = False) -> None:
    """A file's progress line, local or on a cluster: its input and `outcome`, and whether it
    was kept from an earlier run."""
    if progress:
        progress(index, total, f"{entry['input']}: {outcome(entry)}" + (" (from an earlier run)" if earlier else ""))


def outcome(entry: dict) -> str:
    """What became of one file, as a progress line says it: its error, why it was held back, or
    how many faces (a photo) or tracks (a video) it had covered."""
    return (entry.get("error") or entry.get("held_back")
            or (f"{len(entry['tracks'])} tracks" if "tracks" in entry else f"{len(entry['faces'])} faces"))
