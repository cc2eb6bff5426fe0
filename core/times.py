"""Times in a video as people say and read them ("1:02:03.40"), a CCTV recorder's clock (a
request names the time of day), and timestamps that only go forward (a file's must)."""

from __future__ import annotations

from datetime import datetime, timezone

from .images import ImageError


def clock_said(time: float) -> str:
    """A recorder's clock as a person reads it: "2026-03-14 09:30:00.20" (see `Scan.clock`)."""
    return datetime.fromtimestamp(time, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-4]


# Times from this on (2000-01-01, in seconds since 1970) are a recording's clock, not its own
# count from its start (a TV recording's MPEG-TS times are at most 26.5 hours).
CLOCK_FROM = 946_684_800


class Forward:
    """Timestamps (in a stream's ticks) that only go forward: where they jump back (two
    recordings joined, a CCTV recorder's clock set back), they go on `step` after the last one
    and keep that shift from there. A file's timestamps must go forward, or it cannot be
    written at all."""

    def __init__(self, step: int):
        self.step, self.shift, self.last = max(1, step), 0, None

    def __call__(self, ticks: int) -> int:
        ticks += self.shift
        if self.last is not None and ticks <= self.last:
            self.shift += self.last + self.step - ticks
            ticks = self.last + self.step
        self.last = ticks
        return ticks


def read_time(text: str) -> float:
    """A time as a person writes it, in seconds: 90, 1:30 or 1:01:30 (and 1:30.5, 90 s)."""
    try:
        parts = [float(p) for p in str(text).strip().removesuffix("s").strip().split(":")]
        if not 1 <= len(parts) <= 3 or not all(0 <= p < float("inf") for p in parts) or \
                any(p >= 60 for p in parts[1:]):  # (nan and inf are floats too)
            raise ValueError
    except ValueError:
        raise ValueError(f"{text!r} is not a time (seconds, MM:SS or HH:MM:SS)") from None
    return sum(p * 60 ** n for n, p in enumerate(reversed(parts)))


def read_span(text: str) -> tuple[float, float]:
    """A part of a time line as a person writes it, in seconds: "1:02 to 1:05", "from 1:02 to
    1:05", "62-65" or "1:02 – 1:05" (a dash pasted from a document)."""
    text = str(text).strip()
    plain = text.lower().removeprefix("from ").replace("\u2013", "-").replace("\u2014", "-")
    sides = plain.split(" to ") if " to " in plain else plain.split("-")
    if len(sides) != 2:
        raise ValueError(f"{text!r} is not a part (from and to: 1:02 to 1:05)")
    try:
        start, end = (read_time(side) for side in sides)
    except ValueError as exc:
        raise ValueError(f"in {text!r}, {exc}") from None
    if end <= start:
        raise ValueError(f"{text!r} must end after it starts")
    return start, end


def read_spans(text: str) -> tuple[tuple[float, float], ...]:
    """Parts written one a line (or separated by commas): "0:12 to 0:15, 1:02 to 1:05"."""
    return tuple(read_span(line) for line in str(text).replace(",", "\n").splitlines() if line.strip())


def joined(parts) -> tuple[tuple[float, float], ...]:
    """Parts of a time line (from, to) in order, those that overlap or touch made one."""
    kept: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in parts):
        if kept and a <= kept[-1][1] and b > a:
            kept[-1][1] = max(kept[-1][1], b)
        else:
            kept.append([a, b])
    return tuple((a, b) for a, b in kept)


def said_span(start: float, end: float) -> str:
    """A part as `read_span` reads it: "1:02.00 to 1:05.00"."""
    return f"{said_time(start)} to {said_time(end)}"


def said_time(seconds: float) -> str:
    """A time as a person reads it: "3.40 s", "2:03.40", "1:02:03.40" (as `read_time` reads it)."""
    seconds = round(seconds, 2)
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return (f"{hours}:{minutes:02d}:" if hours else f"{minutes}:") + f"{rest:05.2f}"


def clock_offsets(name: str, first: float | None, duration: float, start: float,
                  end: float | None) -> tuple[float, float | None]:
    """A part named by the recorder's clock (`start` and `end`: seconds of its day, as a request
    names them: 09:31:00 to 09:33:00; 23:59 to 00:01 spans midnight) as seconds from the first
    frame (its file time `first`; the recording lasts `duration`): where the recording's clock
    reads its start, on the day the recording starts or the next (it ran past midnight); else a
    part that begins before the recording and reaches into it, from the recording's start.
    Refused for a video whose times are no clock."""
    if first is None or first < CLOCK_FROM:
        raise ImageError(name, "its times are no recorder's clock (they count from its start): give the part as "
                               "times from its start")
    day = first - first % 86400  # the recorder's clock is stored as that day's time, as UTC
    length = float("inf") if end is None else (end - start) % 86400 or 86400
    days = (day + start, day + 86400 + start)
    inside = [since for since in days if first <= since < first + duration]
    reaches = [since for since in days if since < first + duration and since + length > first]
    since = (inside or reaches or days)[0]
    return max(since - first, 0.0), None if end is None else since + length - first
