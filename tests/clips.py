"""Real video files for the tests, made with PyAV: a face moving over a textured background,
with a sound track, at a fixed or variable frame rate, stored upright or sideways."""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

TIME_BASE = Fraction(1, 90000)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(60, 200, (height // 8, width // 8, 3), dtype=np.uint8)
    return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)


def face_patch(portrait: np.ndarray, box, face_px: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The portrait's head (the face box and a margin) scaled so the face is `face_px` wide;
    and the face box inside the patch."""
    x, y, w, h = box
    x0, y0 = int(max(0, x - 0.5 * w)), int(max(0, y - 0.6 * h))
    x1, y1 = int(min(portrait.shape[1], x + 1.5 * w)), int(min(portrait.shape[0], y + 1.5 * h))
    scale = face_px / w
    patch = cv2.resize(portrait[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return patch, ((x - x0) * scale, (y - y0) * scale, w * scale, h * scale)


def moving_face_frames(portrait, box, count: int, width: int = 640, height: int = 360, face_px: int = 70):
    """Frames with the face moving left to right, and the true face box in each."""
    return list(iter_moving_face_frames(portrait, box, count, width, height, face_px))


def iter_moving_face_frames(portrait, box, count: int, width: int = 640, height: int = 360, face_px: int = 70):
    """The same, one frame at a time (a long clip never in memory)."""
    patch, (fx, fy, fw, fh) = face_patch(portrait, box, face_px)
    base = background(width, height)
    for i in range(count):
        px = int(20 + (width - patch.shape[1] - 40) * i / max(1, count - 1))
        py = int((height - patch.shape[0]) / 2 + 20 * np.sin(i / 5))
        frame = base.copy()
        frame[py:py + patch.shape[0], px:px + patch.shape[1]] = patch
        yield frame, (px + fx, py + fy, fw, fh)


def write_clip(path: Path, frames, times: list[float] | None = None, rate: int = 25,
               sound: bool = True, rotation: int = 0, metadata: dict | None = None, fmt: str | None = None,
               codec: str = "libx264", count: int | None = None, sound_codec: str = "aac",
               colours: tuple[int, int, int] | None = None, fields: str | None = None,
               subtitle: str | None = None, attachment: tuple[str, bytes] | None = None,
               telemetry: bytes | None = None, timecode: str | None = None, key_every: int | None = None
               ) -> list[float]:
    """Encode `frames` (upright RGB; a list, or an iterator of `count` frames) at `times`
    seconds (default: 1/rate apart). With a rotation, frames are stored turned the other way
    and a display-rotation flag says how to turn them upright, as phones store portrait video.
    The sound (a tone from the first frame's time on) is AAC, or `sound_codec` (a camera's
    16-bit PCM: "pcm_s16le", "pcm_bluray"). `colours` (matrix, primaries, transfer, as FFmpeg
    numbers them: (1, 1, 1) is BT.709) are named in the file and used to store the frames;
    without them the file names none. `fields` ("tff" or "bff") codes the frames interlaced, in
    that field order, as a camcorder's 1080i. `subtitle`: a line shown from the start, in an
    English subtitle track (SubRip in MKV, MP4's timed text); `attachment` (name, bytes): a file
    attached to an MKV, as a cover picture or a font; `telemetry`: a packet of KLV metadata
    with each frame, as a drone writes its position beside its pictures in MPEG-TS; `timecode`
    ("01:00:00:00"): a camera's timecode, which a MOV keeps in a track of its own; `key_every`:
    a key frame every so many frames (as a CCTV recorder's, every second or two). Returns the
    times written."""
    count = count if count is not None else len(frames)
    times = times if times is not None else [i / rate for i in range(count)]
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w", format=fmt) as container:
        if metadata:
            container.metadata.update(metadata)
        stored = (np.ascontiguousarray(np.rot90(f, k=-(rotation // 90))) for f in itertools.chain([first], frames))
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = first.shape[:2] if rotation in (0, 180) else first.shape[1::-1][:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = TIME_BASE
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast",
                              **({"x264-params": f"interlaced=1:{fields}=1"} if fields else {}),
                              **({"g": str(key_every), "keyint_min": str(key_every)} if key_every else {})}
        if rotation:
            stream.set_display_rotation(rotation)
        if timecode:
            stream.metadata["timecode"] = timecode
        if colours:
            context = stream.codec_context
            context.colorspace, context.color_primaries, context.color_trc = colours
            context.color_range = 1
        audio = None
        if sound:
            audio = container.add_stream(sound_codec, rate=48000)
            audio.layout, audio.bit_rate = "mono", 128000  # an old codec (WMA) asks for a bit rate
        if attachment:
            kind = "image/jpeg" if attachment[0].endswith(".jpg") else "application/octet-stream"
            container.add_attachment(attachment[0], kind, attachment[1])
        if subtitle:
            _subtitle(container, subtitle)
        data = None
        if telemetry:
            data = container.add_mux_stream("klv")
            data.time_base = TIME_BASE
        for pixels, t in zip(stored, times):
            if data is not None:
                packet = av.Packet(telemetry)
                packet.stream, packet.pts, packet.dts, packet.time_base = data, round(t / TIME_BASE), \
                    round(t / TIME_BASE), TIME_BASE
                container.mux(packet)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if colours:
                frame = frame.reformat(format="yuv420p", dst_colorspace={6: 5, 10: 9}.get(colours[0], colours[0]),
                                       dst_color_range=1)
            frame.pts, frame.time_base = round(t / TIME_BASE), TIME_BASE
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            begin = round(times[0] * 48000)
            samples = int(48000 * (times[-1] + 1 / rate)) - begin
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)
            kind = audio.codec_context.format.name  # the encoder's own samples: float, 16 or 32 bits
            if kind.startswith(("s16", "s32")):
                bits = 16 if kind.startswith("s16") else 32
                tone = (tone * (2 ** (bits - 1) - 1)).astype(np.int16 if bits == 16 else np.int32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format=kind, layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = 48000, begin + start, Fraction(1, 48000)
                container.mux(audio.encode(chunk))
            container.mux(audio.encode(None))
    return times


def _subtitle(container, text: str) -> None:
    """One line of subtitle for the first second, muxed as the format stores it."""
    mkv = container.format.name == "matroska"
    stream = container.add_mux_stream("subrip" if mkv else "mov_text")
    stream.time_base = Fraction(1, 1000)
    stream.metadata["language"] = "eng"
    data = text.encode()
    packet = av.Packet(data if mkv else len(data).to_bytes(2, "big") + data)  # MP4's: length first
    packet.stream, packet.pts, packet.dts, packet.duration = stream, 0, 0, 1000
    packet.time_base = stream.time_base
    container.mux(packet)


def write_tracks(path: Path, frames: list[np.ndarray], tracks: dict[str, int]) -> None:
    """A MOV clip of `frames` at 25 a second with a sound track for each codec of `tracks`, in
    that order: the codec's tone (Hz; 0 for silence), as long as the pictures, mono at 48 kHz."""
    with av.open(str(path), "w", format="mov") as container:
        picture = container.add_stream("libx264", rate=25)
        picture.width, picture.height, picture.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        sounds = [container.add_stream(codec, rate=48000) for codec in tracks]
        for n, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = n
            container.mux(picture.encode(frame))
        container.mux(picture.encode(None))
        samples = len(frames) * 48000 // 25
        for stream, tone in zip(sounds, tracks.values()):
            kind = stream.codec_context.format.name  # the encoder's own samples: float or 16 bits
            wave = 0.3 * np.sin(2 * np.pi * tone * np.arange(samples) / 48000)
            wave = (wave * 32767).astype(np.int16) if kind.startswith("s16") else wave.astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format=kind, layout="mono")
                chunk.sample_rate, chunk.pts = 48000, start
                container.mux(stream.encode(chunk))
            container.mux(stream.encode(None))


def write_dav(path: Path, frames, rate: int = 25, start: int = 1773480600, sound: bool = False) -> None:
    """A Dahua CCTV recorder's export (DHAV), chunk by chunk as FFmpeg's demuxer
    (libavformat/dhav.c) reads it: H.264 without B-frames, each frame stamped with the time of
    day (`start`, seconds since 1970, and milliseconds on); with `sound`, a camera microphone's
    G.711 A-law at 8 kHz beside each frame."""
    import struct
    import time

    encoder = av.CodecContext.create("libx264", "w")
    encoder.height, encoder.width = frames[0].shape[:2]
    encoder.pix_fmt, encoder.time_base, encoder.framerate = "yuv420p", Fraction(1, rate), Fraction(rate)
    encoder.options = {"preset": "veryfast", "x264-params": f"bframes=0:keyint={rate}"}
    packets = []
    for i, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = i
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    alaw = av.CodecContext.create("pcm_alaw", "w")
    alaw.sample_rate, alaw.layout, alaw.format = 8000, "mono", "s16"
    step = 8000 // rate
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(step * len(packets)) / 8000)).astype(np.int16)

    def chunk(kind: int, n: int, ms: int, ext: bytes, payload: bytes) -> bytes:
        day = time.gmtime(ms // 1000)
        date = (day.tm_sec | day.tm_min << 6 | day.tm_hour << 12 | day.tm_mday << 17 | day.tm_mon << 22
                | (day.tm_year - 2000) << 26)
        length = 24 + len(ext) + len(payload) + 8
        return (b"DHAV" + bytes([kind, 0, 0, 0]) + struct.pack("<IIIH", n, length, date, ms & 0xFFFF)
                + bytes([len(ext), 0]) + ext + payload + b"dhav" + struct.pack("<I", length))

    out = bytearray()
    for n, packet in enumerate(packets):
        ms = start * 1000 + n * 1000 // rate
        # A key frame says the picture's size (0x82) and codec (0x81: H.264) and frame rate.
        ext = (bytes([0x82, 0, 0, 0]) + struct.pack("<HH", encoder.width, encoder.height) + bytes([0x81, 0, 2, rate])
               if packet.is_keyframe else b"")
        out += chunk(0xFD if packet.is_keyframe else 0xFC, n, ms, ext, bytes(packet))
        if sound:  # 0x83: one channel, A-law (0x0E), 8 kHz (rate index 0)
            samples = av.AudioFrame.from_ndarray(tone[None, n * step:(n + 1) * step], format="s16", layout="mono")
            samples.sample_rate, samples.pts = 8000, n * step
            out += b"".join(chunk(0xF0, n, ms, bytes([0x83, 1, 0x0E, 0]), bytes(p)) for p in alaw.encode(samples))
    Path(path).write_bytes(bytes(out))


def joined(path: Path, moving, sizes=((640, 360), (640, 360)), again: bool = False) -> list[tuple[np.ndarray, tuple]]:
    """Two MPEG-TS recordings joined end to end (as a recorder splits them, or a TV recording
    whose picture size changes at an advert): the first half of `moving`'s frames at sizes[0]
    (width, height), the rest at sizes[1], with sound; the second's times go on from the first's,
    or with `again` start again from zero (two separate recordings). Returns each frame written
    and its face box."""
    shown = []
    parts = []
    half = len(moving) // 2
    for n, (width, height) in enumerate(sizes):
        k = width / moving[0][0].shape[1]
        chosen = moving[n * half:(n + 1) * half]
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f, _ in chosen]
        part = path.with_name(f"{path.stem}-part{n}.ts")
        start = 0 if again else n * (half / 25 + 0.2)
        write_clip(part, frames, times=[start + i / 25 for i in range(half)], fmt="mpegts")
        parts.append(part.read_bytes())
        part.unlink()
        shown += [(f, tuple(v * k for v in box)) for f, (_, box) in zip(frames, chosen)]
    path.write_bytes(b"".join(parts))
    return shown


def read_frames(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """Every frame as displayed (decoded, not turned) and its time in seconds."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in decoded], [float(f.pts * f.time_base) for f in decoded]


def audio_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def exposed(source: np.ndarray, output: np.ndarray, box) -> float:
    """The share of a face box left as it was (within 24 levels where the source is not
    dark): the measure of ../shared/tools/video_exposure.py."""
    x, y, w, h = (int(round(v)) for v in box)
    s = source[y:y + h, x:x + w].astype(np.int16)
    o = output[y:y + h, x:x + w].astype(np.int16)
    return float(((np.abs(s - o).max(axis=2) <= 24) & (s.max(axis=2) > 40)).mean())
