"""How a camera's picture moves from one look at a video to the next (a pan, a zoom), measured on
the frames themselves, and a box carried by that move: a face the camera pans past moves as the
picture does, often further between looks than its own size (`tracks.Linker`,
`video_review.follow`)."""

from __future__ import annotations

import cv2
import numpy as np


class Motion:
    """How the picture has moved since the first frame looked at (a camera's pan and zoom), from
    each look to the next: the whole small grey frame's shift (phase correlation), its corners
    followed from there by optical flow, and the shift, turn and scale that carry most of them.
    A face the camera pans past or zooms towards moves as the picture does, often further between
    looks than its own size."""

    WIDTH = 320
    # The most a camera's move shifts (of the picture's width) and scales the picture a frame:
    # a quick pan crosses the picture in 8 frames. More is a cut or a time-lapse's jump.
    PAN, ZOOM = 0.12, 0.03
    # A move of less than this (pixels of the small frame, anywhere in it) is the camera standing still.
    STILL = 0.3

    def __init__(self):
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None

    def see(self, index: int, pixels: np.ndarray) -> np.ndarray:
        """Frame `index`'s view: the 3 x 3 move from the first frame's pixels to its own (RGB or grey)."""
        height, width = pixels.shape[:2]
        size = (min(width, self.WIDTH), max(1, round(height * min(width, self.WIDTH) / width)))
        grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
        small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        view = np.eye(3)
        if self._last is not None:
            last, before, view = self._last
            moved = self._moved(before, small, abs(index - last)) if before.shape == small.shape else None
            if moved is not None:
                to_full = np.diag([width / size[0], height / size[1], 1.0])
                view = to_full @ np.vstack([moved, [0, 0, 1]]) @ np.linalg.inv(to_full) @ view
        self._last = (index, small, view)
        return view

    @classmethod
    def _moved(cls, before: np.ndarray, after: np.ndarray, frames: int) -> np.ndarray | None:
        """The 2 x 3 move from `before` to `after`, `frames` apart; None where no steady move of
        the picture carries most of its corners (a cut, a time-lapse's jump, a blank frame)."""
        corners = cv2.goodFeaturesToTrack(before, 200, 0.01, 8)
        if corners is None or len(corners) < 8:
            return None
        # The whole picture's shift first (phase correlation), as where each corner starts from:
        # flow alone lost most corners of a pan of a tenth of the picture a frame.
        (dx, dy), _ = cv2.phaseCorrelate(before.astype(np.float32), after.astype(np.float32))
        followed, ok, _ = cv2.calcOpticalFlowPyrLK(before, after, corners, corners + np.float32([dx, dy]),
                                                   winSize=(21, 21), maxLevel=3, flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        ok = ok.ravel() == 1
        if ok.sum() < 8:
            return None
        moved, inliers = cv2.estimateAffinePartial2D(corners[ok], followed[ok], ransacReprojThreshold=2.0)
        if moved is None or inliers.sum() < max(8, 0.3 * ok.sum()):
            return None
        zoom = np.sqrt(abs(np.linalg.det(moved[:, :2])))
        width = before.shape[1]
        # A zoom about the middle shifts the corner the move is measured from by half its change.
        shift = np.hypot(*moved[:, 2]) - 0.5 * abs(zoom - 1) * width
        if shift > min(cls.PAN * frames, 0.5) * width or abs(np.log(zoom)) > cls.ZOOM * frames:
            return None
        if np.abs(moved[:, :2] - np.eye(2)).max() * width + np.abs(moved[:, 2]).max() < cls.STILL:
            return None  # a camera standing still: its views stay one (a day's CCTV keeps no view a frame)
        return moved


def carried(box: tuple[float, float, float, float], carry: np.ndarray) -> tuple[float, float, float, float]:
    """`box` moved by `carry` (3 x 3: the picture's shift, turn and scale), its centre carried and
    its size scaled."""
    x, y, w, h = box
    cx, cy, _ = carry @ (x + w / 2, y + h / 2, 1.0)
    zoom = float(np.sqrt(abs(np.linalg.det(carry[:2, :2]))))
    return cx - zoom * w / 2, cy - zoom * h / 2, zoom * w, zoom * h
