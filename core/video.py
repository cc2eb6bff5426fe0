"""Video files: read upright frames, find and follow the faces, and write a covered copy that
plays like the input.

Two passes over the file, each streaming (a few frames in memory, whatever the length):
`scan` detects faces in the frames and links them into tracks (the reviewer's decisions are
made on these); `render` decodes again, covers every frame with the same `anonymize` a photo
gets, and encodes H.264 in MP4 (the pictures and the sound only: subtitles, data tracks and
attached files are left out, and said). Every frame keeps its own timestamp (variable frame rate
stays variable, nothing dropped or repeated), a rotation flag is applied to the pixels (the
output is upright everywhere, with no flag), the sound is copied packet for packet, and no
tag of the input (place, creation time, device) is written. The sound is `sound`'s, times as
people write them `times`', and a part taken in at intake `cut`'s.
"""

from __future__ import annotations

import hashlib
import itertools
from bisect import bisect_left
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import hdr
from .faces import Face
from .images import ImageError
from .sound import INTERLEAVED, Sound, check_silent, codec_name, readable, said_track
from .times import CLOCK_FROM, Forward, clock_offsets, clock_said, joined, said_time
from .motion import Motion
from .store import out_of_room
from .tracks import HOLD, Track, changed, faces_by_frame, link

# Progress is reported every this many frames.
PROGRESS_EVERY = 25


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as the engine reads it: sizes are upright (after rotation)."""

    name: str
    width: int
    height: int
    rotation: int
    codec: str
    frames: int  # the container's count; 0 when it does not say
    duration: float
    audio: str | None
    pixel_shape: float = 1.0  # a pixel's width over its height, upright (a 16:9 DVD's: 64/45)
    rate: float = 0.0  # frames a second, as the stream says (0: it does not)
    left_out: str | None = None  # the tracks never written out, as `_left_out` says them

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "rotation": self.rotation, "codec": self.codec,
                "frames": self.frames, "duration": round(self.duration, 3), "audio": self.audio,
                "left_out": self.left_out}


class NotThere(ImageError):
    """A video holds none of the part asked for; `first`: its first frame's own time."""

    def __init__(self, name: str, reason: str, first: float | None = None):
        super().__init__(name, reason)
        self.first = first


@dataclass(frozen=True)
class Part:
    """The frames of a video that are exported when only part of it is: `first` to `last`
    (indices, both kept). `begin` is the file's own time of the first, in seconds, which is the
    output's zero; `until` is the file's time where the part ends (its sound stops there)."""

    first: int
    last: int
    begin: Fraction
    until: Fraction

    def __contains__(self, index: int) -> bool:
        return self.first <= index <= self.last

    @property
    def frames(self) -> int:
        return self.last - self.first + 1


@dataclass
class Scan:
    """A video's tracks, with each frame's time in seconds as its file gives it (its index is
    its position)."""

    info: VideoInfo
    sha256: str
    tracks: list[Track]
    times: list[float]
    every: int = 1  # faces were looked for in every `every`-th frame

    @property
    def frames(self) -> int:
        return len(self.times)

    @cached_property
    def ascending(self) -> bool:
        """Whether the file's times only go forward: two recordings joined, or a CCTV
        recorder's clock set back, start them again (then a time names no single frame)."""
        return all(a < b for a, b in zip(self.times, self.times[1:]))

    @cached_property
    def _played(self) -> list[float]:
        """Each frame's time as the output plays it, from zero: where the file's times jump
        back, the frames after go on one frame after the last."""
        forward = Forward(step=round(1_000_000 / self.rate))
        return [forward(round((t - self.times[0]) * 1_000_000)) / 1_000_000 for t in self.times]

    @cached_property
    def rate(self) -> float:
        """Frames a second, on average over the clip where its times go forward (25 for a clip
        of one frame)."""
        steps = [b - a for a, b in zip(self.times, self.times[1:]) if b > a]
        return len(steps) / sum(steps) if steps else 25.0

    def at(self, index: int) -> float:
        """Seconds from the first frame to frame `index`, as the output plays: the times a file
        holds may start anywhere (a CCTV recorder's at the time of day) or start again."""
        return self._played[index]

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last."""
        return self.at(-1) + 1 / self.rate if self.frames else 0.0

    def clock(self, index: int) -> str | None:
        """The recording's clock at frame `index` ("2026-03-14 09:30:00.20") where the file's
        times are one (a CCTV recorder's DAV is stamped with its time of day: a request names
        that), else None."""
        if not self.times or self.times[0] < CLOCK_FROM:
            return None
        return clock_said(self.times[index])

    def part(self, start: float, end: float | None, clock: bool = False) -> Part | None:
        """The frames from `start` to `end` seconds from the first frame (`end` None, or past
        the last frame: to the end), or with `clock`, of the day on the recorder's clock (see
        `clock_offsets`); None for the whole clip."""
        if clock:
            start, end = clock_offsets(self.info.name, self.times[0] if self.times else None, self.duration, start,
                                       end)
        if start <= 0 and (end is None or end >= self.duration):
            return None
        asked = f"from {said_time(start)} to {'its end' if end is None else said_time(end)}"
        end = self.duration if end is None else end
        # `_played` only goes forward: the part's frames are found by halving (a day's recording
        # has two million, and the review page asks on every view)
        kept = range(bisect_left(self._played, start - 1e-6), bisect_left(self._played, end - 1e-6))
        if not kept:
            raise NotThere(self.info.name, f"the part to export, {asked}, holds none of its frames (it lasts "
                                           f"{said_time(self.duration)})")
        if not self.ascending:  # a time then names two places of the recording, and its sound cannot be cut
            raise ImageError(self.info.name, "its times start again (recordings joined into one file, or a "
                                             "recorder's clock set back): it can only be exported whole")
        first, last = kept[0], kept[-1]
        until = self.times[last + 1] if last + 1 < self.frames else self.times[last] + 1 / self.rate
        return Part(first, last, Fraction(self.times[first]), Fraction(until))

    def covered_tracks(self, threshold: float) -> list[dict]:
        """The tracks at or over `threshold` as a manifest records them, each detection's time
        counted from the first frame (as the output plays)."""
        times = [self.at(index) for index in range(self.frames)]
        return [track.to_dict(times) for track in self.tracks if track.score >= threshold]


# FFmpeg's readers of files that name other files (found by what the file holds, whatever its
# name): their pictures would be another file's, while the record holds this file's SHA-256.
_PLAYLISTS = {"concat", "hls", "dash", "imf"}


def _open(path: Path):
    import av

    try:
        # Tags in another encoding than UTF-8 (an old camera's or Windows program's Latin-1 title)
        # or damaged ones must not stop the pictures being read: none of them is written out.
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise ImageError(str(path), f"not a readable video ({_plain(exc)}; empty, truncated or damaged?)") from None
    if (kind := container.format.name) in _PLAYLISTS:
        container.close()
        raise ImageError(str(path), f"not a video but a playlist ({kind}) of other files: anonymise those files "
                                    "themselves")
    if not container.streams.video:
        what = "an audio-only file" if container.streams.audio else "no pictures in it"
        container.close()
        raise ImageError(str(path), f"has no video stream ({what})")
    stream = next((s for s in container.streams.video if not _still(s)), container.streams.video[0])
    if stream.codec_context is None:
        container.close()
        raise ImageError(str(path), "its video is in a codec this program cannot decode (export it as "
                                    "H.264 MP4 first)")
    stream.thread_type = "AUTO"
    return container, stream


def _still(stream) -> bool:
    """A picture attached to the file (an MP4's or MKV's cover art), not its video."""
    import av

    return bool(stream.disposition & av.stream.Disposition.attached_pic)


# What each kind of track not written out is called, for the record.
_KINDS = {"subtitle": "subtitle track", "data": "data track", "attachment": "attached file",
          "video": "other video track"}


def _left_out(container, video) -> str | None:
    """The input's tracks that are never written, said for the manifest: only the video's
    pictures (covered) and its sound go out. Subtitles and captions can name the people shown,
    a data track can hold a drone's or a body camera's GPS, an attached file or cover picture
    can be a photo of anyone. "1 subtitle track (eng), 1 attached file (cover.jpg)"."""
    said: dict[str, list[str]] = {}
    for stream in container.streams:
        if stream is video or stream.type == "audio":
            continue
        kind = "cover picture" if stream.type == "video" and _still(stream) else _KINDS.get(stream.type, "track")
        tags = stream.metadata
        detail = tags.get("filename") or (tags.get("language") if stream.type == "subtitle" else stream.name) or \
            ("timecode" if "timecode" in tags else tags.get("language")) or ""
        said.setdefault(kind, []).append("" if detail in ("und", "unknown", "none") else detail)
    if not said:
        return None
    return ", ".join(f"{len(details)} {kind}{'s' if len(details) > 1 else ''}"
                     + (f" ({', '.join(d for d in details if d)})" if any(details) else "")
                     for kind, details in said.items())


def _plain(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def probe(path: Path) -> VideoInfo:
    return _probe(path)[0]


def _probe(path: Path) -> tuple[VideoInfo, object, int]:
    """The video's facts, its first frame and its field order (AVFieldOrder)."""
    container, stream = _open(path)
    with container:
        rotation = 0
        try:
            first = next(container.decode(stream))
            rotation = int(round((first.rotation or 0) / 90)) * 90 % 360
        except StopIteration:
            raise ImageError(str(path), "has no video frames that can be decoded (empty or truncated)") from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's error
            raise ImageError(str(path), f"its video cannot be decoded ({_plain(exc)})") from None
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        duration = float(container.duration / 1e6) if container.duration else \
            float(stream.duration * stream.time_base) if stream.duration else 0.0
        audio = next((codec_name(s) if s.codec_context else "a codec this program cannot read"
                      for s in container.streams.audio), None)
        return (VideoInfo(Path(path).name, width, height, rotation, stream.codec_context.name,
                          stream.frames or 0, duration, audio, float(_pixel_shape(stream, rotation) or 1),
                          float(stream.average_rate or stream.guessed_rate or 0), _left_out(container, stream)),
                first, stream.codec_context.field_order)


# A frame's colour matrix as the file names it (AVColorSpace), as swscale's coefficients.
_MATRICES = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}


def _keep_colours(frame, encoder) -> int | None:
    """Frames are read with the colour matrix their file names; the output is written with the
    same matrix and names it, with the input's primaries and transfer (an HD clip's BT.709, a
    phone's HDR BT.2020 and HLG), so it plays with the input's colours. Written with another
    matrix and named none, a BT.709 clip's greens came out 26 levels off. An input that names
    no matrix is read and written with swscale's default, and the output names none either:
    a player guesses both alike. Returns the matrix to write with (None: the default)."""
    matrix = _MATRICES.get(int(frame.colorspace))
    if matrix is not None:
        context = encoder.codec_context
        context.colorspace, context.color_range = int(frame.colorspace), 1  # limited range, as H.264 is
        if int(frame.color_primaries) not in (0, 2):  # reserved, unspecified
            context.color_primaries = int(frame.color_primaries)
        if int(frame.color_trc) not in (0, 2):
            context.color_trc = int(frame.color_trc)
    return matrix


def _pixel_shape(stream, rotation: int) -> Fraction | None:
    """A pixel's width over its height as the input names it, upright; None when it names none.
    A DVD's, a DV tape's or an SD broadcast's 720 x 576 is shown 16:9 (64/45) or 4:3 (16/15)."""
    shape = stream.codec_context.sample_aspect_ratio or stream.sample_aspect_ratio
    return (1 / shape if rotation in (90, 270) else shape) if shape else None


def _keep_shape(info: VideoInfo, encoder) -> None:
    """An input whose pixels are not square names the same pixel shape in the output, so that a
    player stretches it as it does the input; without it a 16:9 DVD played squeezed to 5:4."""
    if info.pixel_shape != 1:
        encoder.codec_context.sample_aspect_ratio = Fraction(info.pixel_shape).limit_denominator(10_000)


def square_pixels(pixels: np.ndarray, shape: float) -> np.ndarray:
    """A frame stretched to square pixels, as a player shows it (`shape`: a pixel's width over
    its height; a 16:9 DVD's 64/45); the frame itself when its pixels are square."""
    import cv2

    if abs(shape - 1) < 0.01:
        return pixels
    return cv2.resize(pixels, (max(1, round(pixels.shape[1] * shape)), pixels.shape[0]),
                      interpolation=cv2.INTER_LINEAR if shape > 1 else cv2.INTER_AREA)


def _square(detect: Callable[[np.ndarray], list[Face]], pixels: np.ndarray, shape: float) -> list[Face]:
    """Faces found in a frame stretched to square pixels, as it is shown, boxed in the frame's
    own pixels: a 16:9 DVD's faces stored squeezed to 0.7 of their width were missed (0.916 of
    the eval photos' faces >= 16 px squeezed so, 0.959 stretched back)."""
    if abs(shape - 1) < 0.01:
        return detect(pixels)
    return [replace(face, x=face.x / shape, w=face.w / shape) for face in detect(square_pixels(pixels, shape))]


def _keep_fields(frame, order: int, encoder) -> None:
    """An interlaced input (a camcorder's or a broadcaster's 1080i: two fields a frame, a 50th of
    a second apart) is written interlaced, in its field order (`order`, AVFieldOrder: 3 and 5 put
    the bottom field first), so that a player deinterlaces it as it does the input. Written as
    progressive, every moving edge showed the two fields' comb in every player."""
    if frame.interlaced_frame:
        first = "bff" if order in (3, 5) else "tff"
        encoder.options = {**encoder.options, "x264-params": f"interlaced=1:{first}=1"}


def _upright(frame, rotation: int) -> np.ndarray:
    return _turned(frame.to_ndarray(format="rgb24"), rotation)


def shown(frame, rotation: int) -> np.ndarray:
    """A frame's pixels upright, as a screen shows them: a phone's HDR frame tone-mapped to SDR
    (`hdr`), for the reviewer's eyes only; detection and covering use `_upright`'s."""
    if int(frame.color_trc) in hdr.TRANSFERS:
        return _turned(hdr.to_sdr(frame.to_ndarray(format="rgb48le"), int(frame.color_trc)), rotation)
    return _upright(frame, rotation)


def _turned(pixels: np.ndarray, rotation: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(pixels, k=rotation // 90)) if rotation else pixels


def frames(path: Path) -> Iterator:
    """Every decoded frame, in order (`_upright` gives its pixels)."""
    container, stream = _open(path)
    with container:
        try:
            yield from container.decode(stream)
        except ImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a decoder failure mid-file is this file's error
            raise ImageError(str(path), f"its video stops being decodable ({_plain(exc)}; truncated?)") from None


def _time(frame, index: int, rate: float) -> float:
    return float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else index / rate


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


# Around the part of a video exported, faces are looked for this far (seconds) either side, so
# that its first and last frames are covered as they are in the whole clip's export.
AROUND_PART = 1.0
# Faces are looked for at least this often (seconds; or at the first frame after): as every third
# frame is at 25 frames a second, at any rate. A CCTV recorder's 2 frames a second, looked at every
# third frame, left a face that passed in two frames (a second on screen) uncovered; at 15 a second
# (0.2 s apart) one on screen for two frames, and a phone's clip with dropped frames had gaps too.
LONGEST_UNLOOKED = 0.12


def scan(detect: Callable[[np.ndarray], list[Face]], path: Path, every: int = 1,
         progress: Callable[[int, int], None] | None = None, start: float = 0.0, end: float | None = None,
         clock: bool = False) -> Scan:
    """Detect faces in every `every`-th frame, or more often where frames are far apart (at
    least every LONGEST_UNLOOKED seconds of the file's own times, whatever frame rate it
    names), and link them into tracks. A look that finds a sure face come, gone or moved
    further than the linker follows (`tracks.changed`: a time-lapse, a cut, a fast pan) looks
    at the frames since the last look too, and the last frame is looked at. The scan's `every`
    is the most frames there were between two looks. With `start` or `end`
    (seconds from the first frame: only that part will be exported), only there and
    AROUND_PART seconds either side: the other frames are decoded for their times only (a
    request for two minutes of a day's recording detects faces in about four). With `clock`,
    `start` and `end` are times of day on the recorder's clock (`clock_offsets`)."""
    info = probe(path)
    times: list[float] = []
    detections: list[tuple[int, list[Face]]] = []
    rate = info.rate or (info.frames / info.duration if info.frames and info.duration else 25.0)
    every = max(1, min(every, round(rate * LONGEST_UNLOOKED)))
    late = float("inf") if end is None else end + AROUND_PART
    looked: list[int] = []
    motion, views = Motion(), {}  # views of the frames where faces were found, for the linker
    between: list[tuple[int, object]] = []  # the frames since the last look, in case the next finds a change

    def look(index: int, frame) -> list[Face]:
        pixels = _upright(frame, info.rotation)
        view = motion.see(index, pixels)
        if found := _square(detect, pixels, info.pixel_shape):
            views[index] = view
        return found

    def looked_at(index: int, frame) -> None:
        """Look at frame `index`; if it shows a change since the last look, at those between too."""
        nonlocal between
        found = look(index, frame)
        if between and changed(detections[-1][1], found, index - looked[-1]):
            for n, skipped in between:  # a face came, went or jumped: find where, frame by frame
                detections.append((n, look(n, skipped)))
                looked.append(n)
        detections.append((index, found))
        looked.append(index)
        between = []

    for index, frame in enumerate(frames(path)):
        times.append(_time(frame, index, rate))
        if index == 0 and clock:  # from the first frame's time on the recorder's clock
            start, end = clock_offsets(str(path), times[0] if frame.pts is not None else None, info.duration,
                                       start, end)
            late = float("inf") if end is None else end + AROUND_PART
        due = not looked or index - looked[-1] >= every or \
            times[-1] - times[looked[-1]] >= LONGEST_UNLOOKED - 1e-6  # a file that names a wrong rate
        if not start - AROUND_PART <= times[-1] - times[0] <= late:
            between = []
        elif due:
            looked_at(index, frame)
        elif looked:
            between.append((index, frame))
        if progress and index % PROGRESS_EVERY == 0:
            progress(index, info.frames)
    if between:  # the frames after the last look: the last one is looked at (and those before if it changed)
        index, frame = between.pop()
        looked_at(index, frame)
    if not times:
        raise ImageError(str(path), "has no video frames that can be decoded (empty or truncated)")
    if progress:
        progress(len(times), len(times))
    every = max((b - a for a, b in zip(looked, looked[1:])), default=every)
    # Detecting every few frames leaves gaps in the tracks: allow for them when linking.
    return Scan(info, file_sha256(path), link(detections, max_gap=max(12, 3 * every), views=views), times, every)


def render(path: Path, out_path: Path, tracks: list[Track], cover: Callable[[np.ndarray, list[Face]], np.ndarray],
           quality: int = 20, hold: int = HOLD, progress: Callable[[int, int], None] | None = None,
           inspect: Callable[[int, np.ndarray, np.ndarray, list[Face]], None] | None = None,
           sound: bool = True, part: Part | None = None, silence: tuple[tuple[float, float], ...] = ()) -> dict:
    """Write `out_path` (MP4, H.264): every frame of `path` covered by `cover(pixels, faces)`
    with the faces the tracks cover there, at the same times from the input's start (the
    output starts at zero, as a file does: a recorder's MPEG-TS starts hours in, a CCTV
    recorder's at the time of day, and the output began with that much of nothing; a raw
    stream's frames, which have no times, are 1/rate apart), the sound kept at its time beside
    them (unless `sound` is False: then it is left out, and the note says so). `inspect(index,
    source, output, faces)` sees each frame as covered (before encoding). With a `part`, only
    its frames and the sound beside them are written, from zero. `silence`: parts of the sound
    (seconds from the first frame) made silent, checked silent in the file written. Written to
    a temporary name and renamed, so a failure leaves no half-written file."""
    import av

    info, first, field_order = _probe(path)
    source, video = _open(path)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".partial-", suffix=".mp4")
    os.close(fd)
    with _removed_on_failure(Path(tmp), path, "its video could not be re-encoded ({})"):
        with source, av.open(tmp, "w", format="mp4") as out:
            rate = video.average_rate or video.guessed_rate or Fraction(25)
            encoder = out.add_stream("libx264", rate=rate)
            encoder.width, encoder.height = info.width + info.width % 2, info.height + info.height % 2
            encoder.pix_fmt = "yuv420p"
            encoder.time_base = video.time_base
            encoder.codec_context.time_base = video.time_base
            encoder.options = {"crf": str(quality), "preset": "veryfast"}
            _keep_shape(info, encoder)
            # Set before anything is written: the first packet muxed (often sound, while the
            # decoder still holds the first frames) opens the encoder as it is then.
            matrix = _keep_colours(first, encoder)
            _keep_fields(first, field_order, encoder)
            origin, silenced = _timeline(source, first, info, part, silence)
            forward = Forward(step=round(1 / rate / video.time_base))
            sound = Sound(out, source, origin, keep=sound, until=part and part.until, silence=silenced)
            covers = faces_by_frame(tracks, 1 << 62, hold)
            read = index = 0  # frames decoded, frames written
            for packet in source.demux([video] + sound.streams):
                if packet.stream is not video:
                    sound.put(packet)
                    continue
                if part and read > part.last:  # past the part, whose sound may still follow a while
                    if packet.pts is not None and packet.pts * packet.time_base > part.until + INTERLEAVED:
                        break
                    continue
                for frame in packet.decode():
                    faces = next(covers)
                    read += 1
                    if part and read - 1 not in part:
                        continue
                    pixels = _upright(frame, info.rotation)
                    covered = cover(pixels, faces)
                    if inspect:
                        inspect(read - 1, pixels, covered, faces)
                    covered = _sized(covered, info.width, info.height)
                    new = av.VideoFrame.from_ndarray(covered, format="rgb24").reformat(
                        format="yuv420p", dst_colorspace=matrix, dst_color_range=1 if matrix else None)
                    # A raw stream's frames have no times: they are 1/rate apart.
                    ticks = round(index / rate / video.time_base) if frame.pts is None else \
                        frame.pts - round(origin / video.time_base)
                    new.pts, new.time_base = forward(ticks), video.time_base
                    out.mux(encoder.encode(new))
                    index += 1
                    if progress and index % PROGRESS_EVERY == 0:
                        progress(index, part.frames if part else info.frames)
            out.mux(encoder.encode(None))
            sound.flush()
            # the output's length, to the end of its last frame or its sound
            length = part.until - part.begin if part else max(
                (forward.last or 0) * video.time_base + 1 / rate, Fraction(sound.end))
        if index == 0:
            raise ImageError(str(path), "has no video frames that can be decoded (empty or truncated)")
        if sound.tracks:
            check_silent(Path(tmp), str(path), silenced)
        held = _within(silenced, length)  # those the output holds, said
        os.replace(tmp, out_path)
    if progress and index % PROGRESS_EVERY:  # the last frame, unless the loop just said it
        progress(index, index)
    return {"frames": index, "audio": sound.note, "left_out": info.left_out,
            "silenced": [[a, b] for a, b in held] if sound.tracks else []}


def sound_tracks(path: Path) -> list[str]:
    """The clip's sound tracks that can be read, each said ("aac, eng"), in their order."""
    source, _ = _open(path)
    with source:
        return [said_track(stream) for stream in readable(source)]


def sound_only(path: Path, out_path: Path, silence: tuple[tuple[float, float], ...] = (), track: int = 0) -> bool:
    """One of the clip's sound tracks (`track`, of `sound_tracks`) alone as the export of the
    whole clip writes it (M4A), `silence` silenced and checked: its times are the frames'
    captions' times (to the few milliseconds by which the first frame may follow the sound's
    start). To listen to before approving: a browser plays one track of a file. False for a
    clip with no sound that can be read (nothing written)."""
    import av

    info, first, _ = _probe(path)
    source = av.open(str(path))
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".partial-", suffix=".m4a")
    os.close(fd)
    with _removed_on_failure(Path(tmp), path, "its sound could not be read ({})"):
        with source, av.open(tmp, "w", format="mp4") as out:
            origin, silenced = _timeline(source, first, info, None, silence)
            sound = Sound(out, source, origin, silence=silenced, track=track)
            for packet in source.demux(sound.streams) if sound.tracks else ():
                sound.put(packet)
            sound.flush()
        if not sound.tracks:
            Path(tmp).unlink()
            return False
        check_silent(Path(tmp), str(path), silenced)
        os.replace(tmp, out_path)
    return True


def _timeline(source, first, info: VideoInfo, part: Part | None,
              silence: tuple[tuple[float, float], ...]) -> tuple[Fraction, tuple[tuple[float, float], ...]]:
    """Where an output of `source` starts (seconds of its own times: its start, or the `part`'s),
    and the parts of its sound to silence (given from the first frame, `first`) on the output's
    time line, from its zero on; of a part, to its end (a file's own length is not trusted: a
    part past a length it names too short would be left loud)."""
    origin = part.begin if part else Fraction(source.start_time or 0, 1_000_000)
    shift = Fraction(first.time) - origin if first.pts is not None else Fraction(0)  # the first frame's place
    return origin, _within([(a + shift, b + shift) for a, b in joined(silence)],
                           part.until - part.begin if part else None)


def _within(parts, length: Fraction | float | None) -> tuple[tuple[float, float], ...]:
    """`parts` of a time line cut to its first `length` seconds (None: no end); a part wholly
    outside dropped."""
    cut = ((max(a, 0), b if length is None else min(b, length)) for a, b in parts)
    return tuple((float(a), float(b)) for a, b in cut if a < b)


def _sized(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """A covered frame as the output holds it: at the clip's size (a recording whose picture
    size changes on the way, as a TV recording's at an advert or joined clips, is scaled to its
    first frame's), with one more row or column repeated where a side is odd (H.264 in 4:2:0)."""
    import cv2

    if pixels.shape[:2] != (height, width):
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    if width % 2 or height % 2:
        pixels = np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return pixels


def check_frames(scan: Scan, hold: int = HOLD, part: Part | None = None) -> set[int]:
    """The frames the residual check looks at: one a second, and each track's first and last
    detection and the last frame its cover is held (where a face enters and leaves), and the
    last frame; of a `part`, those in it and its two ends."""
    kept = range(part.first, part.last + 1) if part else range(scan.frames)
    wanted = set(kept[::max(1, round(scan.rate))]) | ({kept[0], kept[-1]} if kept else set())
    for track in scan.tracks:
        wanted |= {track.first, track.last, max(0, track.first - hold), track.last + hold}
    return {n for n in wanted if n in kept}


def check(path: Path, out_path: Path, scan: Scan, judge: Callable[[np.ndarray, np.ndarray, list[Face]], list[Face]],
          hold: int = HOLD, progress: Callable[[int, int], None] | None = None,
          part: Part | None = None) -> list[tuple[int, list[Face]]]:
    """The residual check of a written video: at each of `check_frames`, the output's frame
    as decoded from the file is judged against the source's (`judge(before, after, faces)`, as
    for a photo). Returns the frames with residual faces (by their index in the source); a
    different frame count is itself a finding (every frame of the clip, or of its `part`, must
    be there)."""
    import cv2

    wanted = check_frames(scan, hold, part)
    expected = part.frames if part else scan.frames
    sources = itertools.islice(zip(frames(path), faces_by_frame(scan.tracks, scan.frames, hold)),
                               part.first if part else 0, part.last + 1 if part else None)
    found = []
    written = 0
    for index, ((before, faces), after) in enumerate(zip(sources, frames(out_path)), part.first if part else 0):
        written += 1
        if progress and written % PROGRESS_EVERY == 0:
            progress(written, expected)
        if index in wanted:  # judged at the source frame's own size, where its faces were found
            source = _upright(before, scan.info.rotation)
            output = after.to_ndarray(format="rgb24")[:scan.info.height, :scan.info.width]
            if output.shape != source.shape:
                output = cv2.resize(output, source.shape[1::-1], interpolation=cv2.INTER_AREA)
            residual = judge(source, output, faces)
            if residual:
                found.append((index, residual))
    if progress and written % PROGRESS_EVERY:
        progress(written, expected)
    if written != expected:
        raise ImageError(str(out_path), f"the output has {written} frames where the input has {expected}"
                                        + (" in the part exported" if part else ""))
    return found


def output_name(source_name: str) -> str:
    return f"{Path(source_name).stem}.mp4"


@contextmanager
def _removed_on_failure(written: Path, source: Path, failed: str):
    """Whatever stops the writing of `written` removes it; an FFmpeg error is `source`'s error,
    said as `failed` with FFmpeg's words in its braces, but a full disk's (`out_of_room`), which is
    raised as it is: the file did nothing wrong."""
    import av

    try:
        yield
    except av.FFmpegError as exc:
        written.unlink(missing_ok=True)
        if out_of_room(exc):
            raise
        raise ImageError(str(source), failed.format(_plain(exc))) from None
    except BaseException:
        written.unlink(missing_ok=True)
        raise


