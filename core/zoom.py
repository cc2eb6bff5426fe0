"""A window on a photo as it will be exported, at full resolution or enlarged: where it looks,
what it shows, and how a box drawn in it maps back to the photo. Pure functions: the
dashboard's zoom view draws what these return."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .anonymizers import OutlineAnnotator
from .faces import Face
from .pipeline import Settings, anonymize
from .review import Mark, outline_marks, table_marks

# The window's size on screen, in screen pixels.
SCREEN = (900, 600)
ZOOMS = (0.25, 0.5, 1.0, 2.0, 4.0)  # screen px per photo px; 1.0 is full resolution
SELECTED = OutlineAnnotator(color=(0, 200, 255), thickness_ratio=0.008)


@dataclass(frozen=True)
class View:
    """Where the window looks: its centre in photo pixels, and its zoom (screen px per photo px)."""

    cx: float
    cy: float
    zoom: float = 1.0

    def window(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The photo pixels shown (x, y, w, h): the screen's size at this zoom, moved inside
        the photo where it would cross an edge."""
        w = min(width, int(round(SCREEN[0] / self.zoom)))
        h = min(height, int(round(SCREEN[1] / self.zoom)))
        x = int(round(min(max(self.cx - w / 2, 0), width - w)))
        y = int(round(min(max(self.cy - h / 2, 0), height - h)))
        return x, y, w, h

    def panned(self, dx: float, dy: float, width: int, height: int) -> View:
        """Moved by (dx, dy) windows, kept inside the photo."""
        x, y, w, h = self.window(width, height)
        cx = min(max(x + w / 2 + dx * w, w / 2), width - w / 2)
        cy = min(max(y + h / 2 + dy * h, h / 2), height - h / 2)
        return replace(self, cx=cx, cy=cy)

    def zoomed(self, step: int) -> View:
        at = min(range(len(ZOOMS)), key=lambda i: abs(ZOOMS[i] - self.zoom))
        return replace(self, zoom=ZOOMS[min(max(at + step, 0), len(ZOOMS) - 1)])


def fit(width: int, height: int) -> View:
    """The whole photo in the window (never enlarged)."""
    zoom = max(z for z in ZOOMS if z <= 1.0 and (z == ZOOMS[0] or (width * z <= SCREEN[0] and height * z <= SCREEN[1])))
    return View(width / 2, height / 2, zoom)


def on_face(face: Face) -> View:
    """Centred on a face, at full resolution or closer: enlarged until the face is about a
    sixth of the window's height (a 12 px face in a crowd is shown 4x)."""
    zoom = max([z for z in ZOOMS if z >= 1.0 and face.h * z <= SCREEN[1] / 6] or [1.0])
    return View(face.x + face.w / 2, face.y + face.h / 2, zoom)


def render_window(original: np.ndarray, faces: list[Face], settings: Settings, view: View,
                  selected: int | None = None, outline: bool = True, near: bool = False,
                  marks: list[Mark] | None = None) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The window's pixels, scaled to the screen, and the photo pixels it shows. Only the window
    (grown to take in every region that reaches into it) is anonymised: each cover depends only
    on its own region, so these are the pixels the export writes there. Every face of the review
    table is outlined with its number above its box (red covered, yellow switched off) unless
    `outline` is off, and with `near` the near misses too (grey), as the review page's toggles
    ask; `marks` replaces those boxes with the given ones (a video frame's, numbered as its
    tracks' rows). The `selected` face (a position in `faces`) is outlined in blue."""
    height, width = original.shape[:2]
    x, y, w, h = view.window(width, height)
    # Covers are composed in order, each onto the output so far: grow the area until every
    # region that overlaps it is inside it, so each cover sees what it sees in the export.
    regions = [f.region(settings.padding, width, height) for f in faces]
    x0, y0, x1, y1 = x, y, x + w, y + h
    while True:
        touching = [r for r in regions if r[0] < x1 and r[0] + r[2] > x0 and r[1] < y1 and r[1] + r[3] > y0]
        grown = (min([x0] + [r[0] for r in touching]), min([y0] + [r[1] for r in touching]),
                 max([x1] + [r[0] + r[2] for r in touching]), max([y1] + [r[1] + r[3] for r in touching]))
        if grown == (x0, y0, x1, y1):
            break
        x0, y0, x1, y1 = grown
    shifted = [replace(f, x=f.x - x0, y=f.y - y0) for f in faces]
    covered = anonymize(np.ascontiguousarray(original[y0:y1, x0:x1]), shifted, replace(settings, outline=False))
    out = covered[y - y0:y - y0 + h, x - x0:x - x0 + w]
    size = (max(1, round(w * view.zoom)), max(1, round(h * view.zoom)))
    out = cv2.resize(out, size, interpolation=cv2.INTER_NEAREST if view.zoom >= 1 else cv2.INTER_AREA)
    k = view.zoom

    def to_screen(f: Face) -> Face:
        return replace(f, x=(f.x - x) * k, y=(f.y - y) * k, w=f.w * k, h=f.h * k)

    on_screen = [to_screen(f) for f in faces]
    marks = table_marks(on_screen, settings.threshold, outline, near) if marks is None else \
        [(n, to_screen(f), kind) for n, f, kind in marks]
    out = outline_marks(out, marks, settings, OutlineAnnotator(thickness_ratio=0.003))
    if selected is not None:
        out = SELECTED.annotate(out, [on_screen[selected].region(settings.padding, size[0], size[1])])
    return out, (x, y, w, h)


def to_photo(box: tuple[float, float, float, float], window: tuple[int, int, int, int],
             zoom: float) -> tuple[float, float, float, float]:
    """A box dragged on the screen (screen px) as photo pixels."""
    return (window[0] + box[0] / zoom, window[1] + box[1] / zoom, box[2] / zoom, box[3] / zoom)


def drawn_face(box: tuple[float, float, float, float], padding: float) -> Face:
    """The face to store for a box the reviewer drew, so that what is covered is the box as
    drawn: every face's region is grown by the padding, so the stored box is the drawn one
    shrunk by it."""
    x, y, w, h = box
    fw, fh = w / (1 + 2 * padding), h / (1 + 2 * padding)
    return Face.drawn(x + fw * padding, y + fh * padding, fw, fh)
