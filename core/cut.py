"""A part of a long recording taken in as that part only: copied packet for packet from the
key frame before it, with its sound, nothing decoded or encoded (`cut`)."""

from __future__ import annotations

from pathlib import Path

from .images import ImageError
from .sound import CutSound, readable
from .times import clock_offsets, said_time
from .video import NotThere, _open, _probe, _removed_on_failure


def cut(path: Path, out_path: Path, start: float, end: float | None, clock: bool = False) -> tuple[float, float]:
    """Copy the part of a video from `start` to `end` seconds from its first frame (`end` None:
    to its end) into `out_path` (Matroska), packet for packet, no picture decoded or encoded:
    from the key frame at or before `start` (a picture sequence can begin nowhere else without
    being encoded again) to the last picture decoded by `end` (with B-frames, the few shown
    after it that it needs), and the sound beside them, all at their own times (a CCTV recorder's clock
    stays). Sound Matroska cannot hold (a camera microphone's G.711) is stored as the 16-bit
    samples it decodes to, which lose nothing. So an hours-long recording of which minutes are
    asked for is taken into a session as those minutes, and detected there only. No tag is
    copied. With `clock`, `start` and `end` are times of day on the recorder's clock
    (`clock_offsets`). Returns the part taken, in seconds from the input's first frame."""
    import av

    info, first, _ = _probe(path)
    if clock:
        start, end = clock_offsets(str(path), first.time if first.pts is not None else None, info.duration, start, end)
    if first.pts is None:
        raise ImageError(str(path), "its frames have no times (a raw stream): it can only be added whole")
    origin = first.time
    since, until = origin + start, float("inf") if end is None else origin + end
    key, seekable = _key_before(path, since)
    taken: list[float] = []
    shown = key
    source, video = _open(path)
    with _removed_on_failure(Path(out_path), path, "its part could not be copied ({}): add it whole"):
        with source, av.open(str(out_path), "w", format="matroska") as out:
            # its frame rate said, or the copy's is read back as its time base's (30,000 a second)
            rate = video.average_rate or video.guessed_rate
            copy = out.add_stream_from_template(video, **({"rate": rate} if rate else {}))
            copy.metadata.clear()
            sound = {s.index: CutSound(out, s) for s in readable(source)}
            if seekable:  # else from the start, the packets before the key frame passed over
                _seek(source, video, key)
            decoded: list[float] = []  # the decode times of the pictures taken, where the file gives them
            for packet in source.demux([video, *(s.stream for s in sound.values())]):
                if packet.pts is None and packet.dts is None:  # the demuxer's empty packet at the end
                    continue
                # A Matroska file gives no decode time to B-frames, an AVI no showing time to some.
                time = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
                at = float(packet.dts * packet.time_base) if packet.dts is not None else None
                if packet.stream is video:
                    # Past the end in decode order, only the pictures shown between those taken
                    # (B-frames), so that none is missing; then every later one is shown after.
                    # Without decode times, until the pictures shown are REORDERED past the end.
                    if (at if at is not None else time - REORDERED) > until and time >= shown:
                        break
                    if time < key - 1e-6:
                        continue
                    if not taken and time > key + 1e-6:
                        raise ImageError(str(path), "its part could not be found from its key frame: add it whole")
                    if at is not None and decoded and at < decoded[-1] - 1e-6:
                        raise ImageError(str(path), "its times start again (recordings joined into one file, or "
                                                    "a recorder's clock set back): it can only be added whole")
                    taken.append(time)
                    decoded += [at] if at is not None else []
                    shown = max(shown, time)
                    packet.stream = copy
                    out.mux(packet)
                elif key - 1e-6 <= (at if at is not None else time) < until:
                    sound[packet.stream.index].put(packet)
            for track in sound.values():
                track.flush()
    if not taken or shown < since - 1e-6:  # (the file ends before the part begins)
        Path(out_path).unlink(missing_ok=True)
        raise NotThere(str(path), f"the part asked for, from {said_time(start)} to "
                                  f"{'its end' if end is None else said_time(end)}, holds none of its frames "
                                  f"(it lasts {said_time(info.duration)})", origin)
    return key - origin, shown - origin + (1 / info.rate if info.rate else 0.0)


# How far (seconds) a picture may be shown after pictures decoded later (B-frames): past a
# part's end, a file that gives no decode times is read until its pictures are this far on.
REORDERED = 1.0


def _key_before(path: Path, at: float) -> tuple[float, bool]:
    """The time of the last key frame at or before `at` seconds (the file's own times), where
    a copy of the part from `at` must begin, and whether seeking finds it. Found by seeking
    (the demuxer's index), checked; where that fails, by reading the packets from the start
    (no picture is decoded)."""
    import av

    source, video = _open(path)
    with source:
        try:
            _seek(source, video, at)
            packet = next((p for p in source.demux(video) if p.pts is not None), None)
            if packet is not None and packet.is_keyframe and float(packet.pts * packet.time_base) <= at + 1e-6:
                return float(packet.pts * packet.time_base), True
        except av.FFmpegError:
            pass
    source, video = _open(path)
    key = None
    with source:
        for packet in source.demux(video):
            if packet.pts is None:
                continue
            time = float(packet.pts * packet.time_base)
            if packet.is_keyframe:
                if time > at + 1e-6 and key is not None:
                    break
                key = time
    if key is None:
        raise ImageError(str(path), "has no key frame to begin a part at")
    return key, False


def _seek(container, stream, at: float) -> None:
    """Move `container` to the key frame at or before `at` seconds of `stream` (its own times)."""
    container.seek(round(at / stream.time_base), stream=stream, backward=True, any_frame=False)
