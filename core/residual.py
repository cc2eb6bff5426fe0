"""The residual check: judge an output by what it shows, not by what the code meant to cover.

Two looks at every output, as it will leave (decoded from the bytes written):
- its pixels: every face that should be covered is compared with the original; a face whose
  detail is still there (more than EXPOSED_SHARE of it) is exposed, whatever the detector says;
- the detector, run again: a face found outside the covered regions (a face left uncovered),
  or still found inside one (the cover did not hide it).

What either look finds is returned as `Face`s: the detector's finds as they come, exposed
faces with detector "exposed" and their exposed share as score. A photo with any is held back.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .anonymizers import Region
from .faces import Face

# A face counts as exposed when more than this share of its detail is still shown. Measured on
# ../shared/eval (652 faces the engine covers, outputs encoded as JPEG and decoded again):
# covered faces show at most 0.04 (blur), 0.14 (pixelate), 0.00 (solid); the same faces left
# uncovered show 1.0 (602 of them over this bound; the other 45 have too little detail to judge).
EXPOSED_SHARE = 0.25
EXPOSED = "exposed"
# A pixel has detail when it stands out from its surroundings by this many levels of luminance
# (a blur keeps the flat parts of a face: a cheek stays the colour of a cheek) ...
DETAIL_LEVELS = 12
# ... and the output still shows that detail when its own is within a quarter of it, or within
# this many levels (JPEG moves an unchanged pixel by a few).
UNCHANGED_LEVELS = 6
# Too little detail in a box to judge (a face in deep shadow): it cannot show much either.
MIN_DETAIL_PIXELS = 16

# Detector finds: a face found again counts when it lies mostly outside the covered regions at
# this score (a face left uncovered), or inside one at the second (the cover did not hide it).
# Blurred heads score up to ~0.6 inside their regions.
RESIDUAL_OUTSIDE = 0.4
RESIDUAL_INSIDE = 0.7


def exposed_share(original: np.ndarray, output: np.ndarray, face: Face) -> float:
    """The share of a face box's detail that the output still shows.

    Detail is what makes a face recognisable: each pixel's difference from its surroundings
    (a Gaussian at a tenth of the face's size), in luminance. A pixel of the original with
    detail is still shown when the output has the same detail there: within a quarter of it (and
    of JPEG's few levels). Every cover removes it (blur and mosaic flatten it, solid paints
    it over); a face left uncovered keeps nearly all of it."""
    height, width = original.shape[:2]
    x0, y0 = max(0, int(face.x)), max(0, int(face.y))
    x1, y1 = min(width, int(np.ceil(face.x + face.w))), min(height, int(np.ceil(face.y + face.h)))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    sigma = max(1.0, min(x1 - x0, y1 - y0) / 10)
    before, after = _luma(original[y0:y1, x0:x1]), _luma(output[y0:y1, x0:x1])
    detail = before - cv2.GaussianBlur(before, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    after_detail = after - cv2.GaussianBlur(after, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    detailed = np.abs(detail) > DETAIL_LEVELS
    if detailed.sum() < MIN_DETAIL_PIXELS:
        return 0.0
    kept = (np.abs(after - before) <= UNCHANGED_LEVELS) & \
        (np.abs(after_detail - detail) <= np.maximum(UNCHANGED_LEVELS, 0.25 * np.abs(detail)))
    return float((kept & detailed).sum() / detailed.sum())


def _luma(pixels: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)


def exposed_faces(original: np.ndarray, output: np.ndarray, covered: list[Face]) -> list[Face]:
    """The faces that should be covered and still show, scored by their exposed share."""
    found = []
    for face in covered:
        share = exposed_share(original, output, face)
        if share > EXPOSED_SHARE:
            found.append(replace(face, score=round(share, 3), detector=EXPOSED))
    return found


def found_again(detector, output: np.ndarray, regions: list[Region], outside: float = RESIDUAL_OUTSIDE) -> list[Face]:
    """Detect again on an output: what is found still looks like a face (at `outside` or more
    where nothing was covered)."""
    covered = np.zeros(output.shape[:2], bool)
    for x, y, w, h in regions:
        covered[y:y + h, x:x + w] = True
    found = []
    for face in detector.detect(output[:, :, :3]):
        x0, y0 = max(0, int(face.x)), max(0, int(face.y))
        box = covered[y0:max(y0, int(face.y + face.h)), x0:max(x0, int(face.x + face.w))]
        inside = box.size > 0 and box.mean() >= 0.5
        if face.score >= (RESIDUAL_INSIDE if inside else outside):
            found.append(face)
    return found


def residual_faces(detector, original: np.ndarray, output: np.ndarray, covered: list[Face],
                   regions: list[Region], outside: float = RESIDUAL_OUTSIDE) -> list[Face]:
    """Both looks at one output (see the module's text); [] when it is clean."""
    return exposed_faces(original, output, covered) + found_again(detector, output, regions, outside)
