"""A video's sound into the files written from it: the anonymised MP4 (`Sound`: every track,
copied where MP4 can hold it, else re-encoded to AAC; only a part's; or left out) and a part
cut at intake (`CutSound`)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from .images import ImageError
from .times import Forward, said_time


# Sound codecs MP4 stores as they are; other sound is re-encoded to AAC (and the manifest says so).
MP4_AUDIO = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}


def codec_name(stream) -> str:
    """The codec a stream is in ("mp3"), not the decoder that reads it ("mp3float")."""
    return stream.codec_context.codec.canonical_name


SOUND_LEFT_OUT = "left out, as the settings ask"
# Sound is silenced this far (seconds) beyond each part asked: AAC codes sound in overlapping
# blocks of 1024 samples, so a word just outside a part would ring a few milliseconds into it.
SILENCE_MARGIN = 0.1
# A part is silent in the file written when no sample there is louder than this (-60 dB of full
# scale: a voice, however quiet, is far louder; AAC's coding of digital silence is below it).
SILENT = 0.001
# How far (seconds) a file may keep sound behind its pictures: past a part's end, the sound
# beside it is read until the pictures are this far on.
INTERLEAVED = 5


def readable(source) -> list:
    """The sound tracks of an open file that can be read, in their order. A stream with no rate
    has no sound data the demuxer could find (a recording cut short)."""
    return [s for s in source.streams.audio if s.codec_context is not None and s.codec_context.sample_rate]


def said_track(stream) -> str:
    """ "aac, eng" """
    language = stream.metadata.get("language", "")
    return codec_name(stream) + (f", {language}" if language and language != "und" else "")


class Sound:
    """The input's sound into the output: every sound track (a second language, a second
    microphone, a recording's commentary), each copied packet for packet when MP4 can store its
    codec, else re-encoded to AAC; `note` says which, for the manifest. A track in a codec with
    no decoder here (a phone's spatial audio) is left out and said: the pictures are anonymised
    all the same. Without `keep`, none is written."""

    def __init__(self, out, source, origin: Fraction = Fraction(0), keep: bool = True,
                 until: Fraction | None = None, silence: tuple[tuple[float, float], ...] = (),
                 track: int | None = None):
        """`origin`: the input's start, in seconds, which is the output's zero. With `until`,
        only the sound from `origin` to `until` is written (a part of the video). `silence`:
        parts of the output (seconds from its zero) where every track is silent; such a track
        is re-encoded, never copied. `track`: only that one of the `readable` tracks."""
        self.tracks: dict[int, SoundTrack] = {}
        self.note: str | None = None
        if not source.streams.audio:
            return
        if not keep:
            self.note = SOUND_LEFT_OUT
            return
        tracks = readable(source)
        unreadable = len(source.streams.audio) - len(tracks)
        why = ("its sound is in a codec this program cannot read"
               if any(s.codec_context is None for s in source.streams.audio)
               else "no sound could be read from it (cut short?)")
        if not tracks:
            self.note = f"left out: {why}"
            return
        self.tracks = {s.index: SoundTrack(out, s, origin, until, silence)
                       for n, s in enumerate(tracks) if track is None or n == track}
        notes = [kept.note for kept in self.tracks.values()]
        self.note = "; ".join(notes) if len(notes) == 1 else f"{len(notes)} tracks: " + "; ".join(notes)
        if unreadable:
            self.note += f"; {unreadable} more track{'s' if unreadable > 1 else ''} left out: {why}"

    @property
    def streams(self) -> list:
        return [track.stream for track in self.tracks.values()]

    @property
    def end(self) -> float:
        """Where the sound re-encoded so far ends, in seconds of the output (0 where copied)."""
        return max((track.end for track in self.tracks.values()), default=0.0)

    def put(self, packet) -> None:
        self.tracks[packet.stream.index].put(packet)

    def flush(self) -> None:
        for track in self.tracks.values():
            track.flush()


class SoundTrack:
    """One sound track of the input into the output: copied, or re-encoded to AAC at its time."""

    def __init__(self, out, stream, origin: Fraction, until: Fraction | None = None,
                 silence: tuple[tuple[float, float], ...] = ()):
        import av

        self.out, self.stream, self.origin, self._encoder, self._resampler = out, stream, origin, None, None
        self.until, self.silence = until, silence
        self._forward: Forward | None = None
        self._next: int | None = None  # the next sample's time, in samples: the input's start is kept
        name = codec_name(stream)
        if name in MP4_AUDIO and not silence:
            self._copy = out.add_stream_from_template(stream)
            self._copy.metadata.clear()
            self.note = f"{name}, copied"
            return
        rate = stream.codec_context.sample_rate or 48000
        self._encoder = out.add_stream("aac", rate=rate)
        self._encoder.layout = "stereo" if (stream.codec_context.channels or 1) > 1 else "mono"
        self._encoder.bit_rate = 128000 if self._encoder.layout.name == "mono" else 192000
        self._resampler = av.AudioResampler(format="fltp", layout=self._encoder.layout, rate=rate)
        self.note = (f"{name} re-encoded to AAC, with parts silenced" if silence
                     else f"{name} re-encoded to AAC (MP4 cannot store {name})")

    def put(self, packet) -> None:
        if packet.dts is None:  # the demuxer's empty packet at the end
            return
        if self.until is not None and not self.origin <= packet.dts * packet.time_base < self.until:
            return  # outside the part exported
        if self._encoder is None:
            self._forward = self._forward or Forward(step=packet.duration or 1)
            start = packet.dts - round(self.origin / packet.time_base)
            dts = self._forward(start)  # where the times jump back, on from the last packet
            if packet.pts is not None:
                packet.pts += dts - packet.dts
            packet.dts = dts
            packet.stream = self._copy
            self.out.mux(packet)
            return
        for frame in packet.decode():
            if self._next is None:  # the sound may start later than the pictures
                self._next = round((frame.time - self.origin) * self._encoder.rate) if frame.pts is not None else 0
            self._encode(self._resampler.resample(frame))

    @property
    def end(self) -> float:
        return (self._next or 0) / self._encoder.rate if self._encoder is not None else 0.0

    def _encode(self, frames) -> None:
        for frame in frames:
            at = self._next or 0
            frame = self._silenced(frame, at) if self.silence else frame
            frame.pts, frame.time_base = at, Fraction(1, self._encoder.rate)
            self._next = at + frame.samples
            self.out.mux(self._encoder.encode(frame))

    def _silenced(self, frame, at: int):
        """`frame` (planar float samples, the first at sample `at` of the output) with the
        samples in the parts to silence, and SILENCE_MARGIN either side, set to zero."""
        import av

        rate = self._encoder.rate
        spans = [(max(round((a - SILENCE_MARGIN) * rate) - at, 0), min(round((b + SILENCE_MARGIN) * rate) - at,
                                                                        frame.samples))
                 for a, b in self.silence]
        spans = [(lo, hi) for lo, hi in spans if lo < hi]
        if not spans:
            return frame
        samples = frame.to_ndarray().copy()
        for lo, hi in spans:
            samples[:, lo:hi] = 0
        quiet = av.AudioFrame.from_ndarray(samples, format=frame.format.name, layout=frame.layout.name)
        quiet.sample_rate = frame.sample_rate
        return quiet

    def flush(self) -> None:
        if self._encoder is not None:
            self._encode(self._resampler.resample(None))
            self.out.mux(self._encoder.encode(None))


class CutSound:
    """One sound track into a cut (`cut`): its packets as they are, or, where Matroska cannot
    hold its codec, the 16-bit samples they decode to, at their own times."""

    def __init__(self, out, stream):
        import av

        self.out, self.stream, self._resampler = out, stream, None
        try:
            self.copy = out.add_stream_from_template(stream)
        except ValueError:  # e.g. "'matroska' format does not support 'pcm_alaw' codec"
            context = stream.codec_context
            self.copy = out.add_stream("pcm_s16le", rate=context.sample_rate)
            self.copy.layout = context.layout
            self._resampler = av.AudioResampler(format="s16", layout=context.layout, rate=context.sample_rate)
        self.copy.metadata.clear()

    def put(self, packet) -> None:
        if self._resampler is None:
            packet.stream = self.copy
            self.out.mux(packet)
            return
        for frame in packet.decode():
            self._write(frame.time, self._resampler.resample(frame))

    def _write(self, time: float | None, frames) -> None:
        rate = self.copy.codec_context.sample_rate
        for frame in frames:
            if time is not None:
                frame.pts, frame.time_base = round(time * rate), Fraction(1, rate)
                time += frame.samples / rate
            self.out.mux(self.copy.encode(frame))

    def flush(self) -> None:
        if self._resampler is not None:
            self._write(None, self._resampler.resample(None))
            self.out.mux(self.copy.encode(None))


def loudest(path: Path, parts: tuple[tuple[float, float], ...]) -> list[float]:
    """The loudest sample (1 is full scale) of any sound track of the file at `path` in each of
    `parts` (seconds of its own time line), as decoded from the file: what a listener hears."""
    import av

    peaks = [0.0] * len(parts)
    if not parts:  # nothing to hear: the file's sound is not decoded
        return peaks
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return peaks
        for frame in container.decode(*container.streams.audio):
            if frame.pts is None:
                continue
            samples = np.abs(frame.to_ndarray().astype(np.float64, copy=False))
            if frame.format.name.startswith(("s16", "s32")):  # integer samples: as a share of full scale
                samples /= 2.0 ** (15 if frame.format.name.startswith("s16") else 31)
            samples = samples.reshape(-1, frame.samples) if frame.format.is_planar else samples.reshape(frame.samples, -1).T
            for n, (a, b) in enumerate(parts):
                lo, hi = max(round((a - frame.time) * frame.sample_rate), 0), \
                    min(round((b - frame.time) * frame.sample_rate), frame.samples)
                if lo < hi:
                    peaks[n] = max(peaks[n], float(samples[:, lo:hi].max()))
    return peaks


def check_silent(path: Path, name: str, parts: tuple[tuple[float, float], ...]) -> None:
    """The parts to silence are silent in the file written at `path`, as decoded from it, or
    `name`'s error: the sound that leaves is what is checked."""
    for (a, b), peak in zip(parts, loudest(path, parts)):
        if peak > SILENT:
            raise ImageError(name, f"its sound is not silent from {said_time(a)} to {said_time(b)} in the file "
                                   f"written (loudest {20 * np.log10(peak):.0f} dB of full scale): not written")
