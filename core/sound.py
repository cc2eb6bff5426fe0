"""A video's sound into the files written from it: the anonymised MP4 (`Sound`: every track,
copied where MP4 can hold it, else re-encoded to AAC; only a part's; or left out) and a part
cut at intake (`CutSound`)."""

from __future__ import annotations

from fractions import Fraction

from .times import Forward


# Sound codecs MP4 stores as they are; other sound is re-encoded to AAC (and the manifest says so).
MP4_AUDIO = {"aac", "mp3", "opus", "ac3", "eac3", "alac", "flac"}


def codec_name(stream) -> str:
    """The codec a stream is in ("mp3"), not the decoder that reads it ("mp3float")."""
    return stream.codec_context.codec.canonical_name


SOUND_LEFT_OUT = "left out, as the settings ask"
# How far (seconds) a file may keep sound behind its pictures: past a part's end, the sound
# beside it is read until the pictures are this far on.
INTERLEAVED = 5


class Sound:
    """The input's sound into the output: every sound track (a second language, a second
    microphone, a recording's commentary), each copied packet for packet when MP4 can store its
    codec, else re-encoded to AAC; `note` says which, for the manifest. A track in a codec with
    no decoder here (a phone's spatial audio) is left out and said: the pictures are anonymised
    all the same. Without `keep`, none is written."""

    def __init__(self, out, source, origin: Fraction = Fraction(0), keep: bool = True,
                 until: Fraction | None = None):
        """`origin`: the input's start, in seconds, which is the output's zero. With `until`,
        only the sound from `origin` to `until` is written (a part of the video)."""
        self.tracks: dict[int, SoundTrack] = {}
        self.note: str | None = None
        if not source.streams.audio:
            return
        if not keep:
            self.note = SOUND_LEFT_OUT
            return
        # A stream with no rate has no sound data the demuxer could find (a recording cut short).
        readable = [s for s in source.streams.audio if s.codec_context is not None and s.codec_context.sample_rate]
        unreadable = len(source.streams.audio) - len(readable)
        why = ("its sound is in a codec this program cannot read"
               if any(s.codec_context is None for s in source.streams.audio)
               else "no sound could be read from it (cut short?)")
        if not readable:
            self.note = f"left out: {why}"
            return
        self.tracks = {s.index: SoundTrack(out, s, origin, until) for s in readable}
        notes = [track.note for track in self.tracks.values()]
        self.note = "; ".join(notes) if len(notes) == 1 else f"{len(notes)} tracks: " + "; ".join(notes)
        if unreadable:
            self.note += f"; {unreadable} more track{'s' if unreadable > 1 else ''} left out: {why}"

    @property
    def streams(self) -> list:
        return [track.stream for track in self.tracks.values()]

    def put(self, packet) -> None:
        self.tracks[packet.stream.index].put(packet)

    def flush(self) -> None:
        for track in self.tracks.values():
            track.flush()


class SoundTrack:
    """One sound track of the input into the output: copied, or re-encoded to AAC at its time."""

    def __init__(self, out, stream, origin: Fraction, until: Fraction | None = None):
        import av

        self.out, self.stream, self.origin, self._encoder, self._resampler = out, stream, origin, None, None
        self.until = until
        self._forward: Forward | None = None
        self._next: int | None = None  # the next sample's time, in samples: the input's start is kept
        name = codec_name(stream)
        if name in MP4_AUDIO:
            self._copy = out.add_stream_from_template(stream)
            self._copy.metadata.clear()
            self.note = f"{name}, copied"
            return
        rate = stream.codec_context.sample_rate or 48000
        self._encoder = out.add_stream("aac", rate=rate)
        self._encoder.layout = "stereo" if (stream.codec_context.channels or 1) > 1 else "mono"
        self._resampler = av.AudioResampler(format="fltp", layout=self._encoder.layout, rate=rate)
        self.note = f"{name} re-encoded to AAC (MP4 cannot store {name})"

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

    def _encode(self, frames) -> None:
        for frame in frames:
            frame.pts, frame.time_base = self._next or 0, Fraction(1, self._encoder.rate)
            self._next = (self._next or 0) + frame.samples
            self.out.mux(self._encoder.encode(frame))

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
