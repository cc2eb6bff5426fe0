"""The one face type every layer passes along, and the box arithmetic on it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

# A face added by a reviewer carries this detector name and a score of 1.0.
MANUAL = "manual"


@dataclass(frozen=True)
class Face:
    """A face box in upright-image pixels, with where it came from and whether it is anonymised.

    `enabled` is the reviewer's switch; the confidence threshold is applied separately
    (see `selected`), so that moving the threshold never loses a reviewer's choice. `forced` is
    the reviewer's choice to cover a candidate the threshold leaves out (a near miss).
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    detector: str
    enabled: bool = True
    forced: bool = False

    @property
    def manual(self) -> bool:
        return self.detector == MANUAL

    @property
    def by_hand(self) -> bool:
        """Drawn by the reviewer: a box on a photo, or the row of a followed box on a video."""
        return self.manual or self.detector.endswith(" drawn")

    @property
    def box(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.w, self.h

    @property
    def size(self) -> float:
        """Face size as the benchmark counts it: sqrt(w*h)."""
        return float(np.sqrt(max(self.w, 0.0) * max(self.h, 0.0)))

    def region(self, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
        """The rectangle that is anonymised: the box grown by `padding` x its size on every side
        (so that forehead, ears and chin are covered), clipped to the image, in whole pixels."""
        pad_x, pad_y = self.w * padding, self.h * padding
        x0 = max(0, int(np.floor(self.x - pad_x)))
        y0 = max(0, int(np.floor(self.y - pad_y)))
        x1 = min(width, int(np.ceil(self.x + self.w + pad_x)))
        y1 = min(height, int(np.ceil(self.y + self.h + pad_y)))
        return x0, y0, max(0, x1 - x0), max(0, y1 - y0)

    def with_enabled(self, enabled: bool) -> Face:
        return replace(self, enabled=enabled)

    def covered_at(self, threshold: float) -> bool:
        """Whether this face is anonymised at this threshold."""
        return self.enabled and (self.manual or self.forced or self.score >= threshold)

    def to_dict(self) -> dict:
        """The face as stored and fingerprinted (written out, not `asdict`: a session of 10,000
        photos fingerprints hundreds of thousands of faces)."""
        data = {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "score": self.score, "detector": self.detector,
                "enabled": self.enabled}
        if self.forced:  # fingerprints of faces stored before near misses existed stay the same
            data["forced"] = True
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Face:
        return cls(**{k: data[k] for k in ("x", "y", "w", "h", "score", "detector")},
                   enabled=bool(data.get("enabled", True)), forced=bool(data.get("forced", False)))

    @classmethod
    def drawn(cls, x: float, y: float, w: float, h: float) -> Face:
        """A face a reviewer drew because the detectors missed it."""
        return cls(x, y, w, h, score=1.0, detector=MANUAL)


# Candidates this far under the threshold are near misses: listed for the reviewer, one click
# from being covered.
NEAR_MISS = 0.1


def selected(faces: list[Face], threshold: float) -> list[Face]:
    """Faces that will be anonymised: enabled, and drawn by hand, covered by the reviewer's
    choice, or scored at the threshold."""
    return [f for f in faces if f.covered_at(threshold)]


def reviewable(faces: list[Face], threshold: float) -> list[int]:
    """Positions of the faces a reviewer decides on, on or off: every face drawn by hand, every
    detected face the threshold selects or the reviewer chose to cover. The review table numbers
    them in this order."""
    return [i for i, f in enumerate(faces) if f.manual or f.forced or f.score >= threshold]


def near_misses(faces: list[Face], threshold: float) -> list[int]:
    """Positions of the candidates just under the threshold that nobody chose to cover."""
    return [i for i, f in enumerate(faces)
            if not f.manual and not f.forced and threshold - NEAR_MISS <= f.score < threshold]


def merge_duplicates(faces: list[Face], iou: float = 0.4) -> list[Face]:
    """Non-maximum suppression across detectors, scales and tiles: of overlapping boxes the
    highest-scored survives. A box mostly inside a bigger, better one (a tile seeing half a
    face) also goes.

    Only boxes that overlap can clash, so only those pairs are weighed (`_overlapping`): a
    100 MP crowd photo's full-resolution look gives some 7500 candidates, whose every pair
    took 2.6 GB of memory and 7 s to weigh."""
    if not faces:
        return []
    order = sorted(faces, key=lambda f: f.score, reverse=True)
    boxes = np.array([[f.x, f.y, f.w, f.h] for f in order], dtype=np.float64)
    first, second, inter = _overlapping(boxes)
    area = boxes[:, 2] * boxes[:, 3]
    union = area[first] + area[second] - inter
    # In each pair `first` scored higher; the other goes if the pair's IoU reaches `iou` or
    # 70 % of its area lies inside the first.
    clash = (inter / np.maximum(union, 1e-9) >= iou) | (inter / np.maximum(area[second], 1e-9) >= 0.7)
    first, second = first[clash], second[clash]
    by_first = np.argsort(first, kind="stable")
    first, second = first[by_first], second[by_first]
    bounds = np.searchsorted(first, np.arange(len(order) + 1))
    kept = np.ones(len(order), bool)
    for k in range(len(order)):
        if kept[k]:
            kept[second[bounds[k]:bounds[k + 1]]] = False
    return [face for face, keep in zip(order, kept) if keep]


def _overlapping(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of boxes (rows x, y, w, h) whose areas overlap, as indices (first < second)
    and their intersection's area. A sweep: the boxes sorted by their left (or top) edge, each
    paired with those that start before its right (or bottom) edge, along whichever axis gives
    fewer such pairs (a tall panorama's boxes mostly share their columns)."""
    low, high = boxes[:, :2], boxes[:, :2] + boxes[:, 2:]
    count = len(boxes)
    sweeps = []
    for axis in (0, 1):
        by_edge = np.argsort(low[:, axis], kind="stable")
        reach = np.searchsorted(low[by_edge, axis], high[by_edge, axis], side="left")
        later = np.maximum(reach - np.arange(count) - 1, 0)  # boxes after each that start before its end
        sweeps.append((int(later.sum()), by_edge, later))
    total, by_edge, later = min(sweeps, key=lambda sweep: sweep[0])
    a = np.repeat(np.arange(count), later)
    b = a + 1 + np.arange(total) - np.repeat(np.cumsum(later) - later, later)
    a, b = by_edge[a], by_edge[b]
    sides = np.clip(np.minimum(high[a], high[b]) - np.maximum(low[a], low[b]), 0, None)
    inter = sides[:, 0] * sides[:, 1]
    meet = inter > 0
    a, b, inter = a[meet], b[meet], inter[meet]
    return np.minimum(a, b), np.maximum(a, b), inter
