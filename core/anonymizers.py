"""Anonymisers: each covers the given regions of an image and touches no other pixel.

Each mode first reduces a region to a handful of cells (so the face's detail is gone from
the output, not only hidden), and scales with the region's size, never by a fixed pixel
count, so a 400 px face in a 12 MP photo is covered as thoroughly as a 20 px one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Region = tuple[int, int, int, int]

MODES = ("blur", "pixelate", "solid")
SHAPES = ("ellipse", "rectangle")


@dataclass(frozen=True)
class Anonymizer:
    """Shared mask handling: the subclass says what a region becomes (`cover`), this class
    says where it goes (ellipse or rectangle, with a feathered edge). A pixel a cover has
    reached never gets its original value back, whatever the order or overlap of regions."""

    shape: str = "ellipse"
    feather: float = 0.06

    def anonymize(self, image: np.ndarray, regions: list[Region]) -> np.ndarray:
        """Return a copy of `image` (RGB or RGBA) with every region covered; alpha is kept
        as it was, so a face on a transparent PNG is covered, not cut out."""
        out = image.copy()
        for x, y, w, h in regions:
            if w < 1 or h < 1:
                continue
            # Each cover is composed onto the output so far, never onto the original: where
            # regions overlap, the part of this rectangle outside its own mask keeps what an
            # earlier cover made of it instead of bringing the original pixels back.
            patch = out[y:y + h, x:x + w, :3]
            covered = self.cover(patch)
            alpha = self._mask(w, h)[:, :, None]
            blended = patch + (covered - patch) * alpha
            patch[...] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out

    def cover(self, patch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _mask(self, w: int, h: int) -> np.ndarray:
        """How much of the cover replaces each pixel (0 to 1). The feathered ellipse is drawn
        at most 96 px wide and enlarged: a large face's soft edge costs no more than a small one's."""
        if self.shape == "rectangle":
            return np.ones((h, w), np.float32)
        scale = min(1.0, 96 / max(w, h))
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        mask = np.zeros((sh, sw), np.float32)
        cv2.ellipse(mask, (((sw - 1) / 2, (sh - 1) / 2), (sw, sh), 0.0), 1.0, -1)
        sigma = self.feather * min(sw, sh)
        if sigma >= 0.5:
            mask = cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
        return mask if scale == 1.0 else cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class BlurAnonymizer(Anonymizer):
    """A Gaussian blur whose kernel is `strength` x the region's size.

    The region is shrunk to about 9/strength cells before blurring, which makes even a
    12 MP face cheap to blur and bounds how much of the face survives: at the default
    strength the face itself keeps about 5 x 5 values."""

    strength: float = 1.0

    def cover(self, patch: np.ndarray) -> np.ndarray:
        small = _shrink(patch, 9.0 / max(self.strength, 0.05)).astype(np.float32)
        small = cv2.GaussianBlur(small, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, patch.shape[1::-1], interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class PixelateAnonymizer(Anonymizer):
    """A mosaic of about 8/strength blocks across the region, coarse by default: fine mosaics
    are known to be reversible by recognition models."""

    strength: float = 1.0

    def cover(self, patch: np.ndarray) -> np.ndarray:
        small = _shrink(patch, 8.0 / max(self.strength, 0.05))
        return cv2.resize(small, patch.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(np.float32)


def _shrink(patch: np.ndarray, cells: float) -> np.ndarray:
    """The patch averaged down to about `cells` values across its longer side (at least 2):
    what is not kept here cannot be recovered from the output."""
    h, w = patch.shape[:2]
    scale = min(1.0, max(2, round(cells)) / max(w, h))
    return cv2.resize(patch, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class SolidAnonymizer(Anonymizer):
    """A flat colour: nothing of the face remains."""

    color: tuple[int, int, int] = (0, 0, 0)

    def cover(self, patch: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.array(self.color, np.float32), patch.shape)


def make_anonymizer(mode: str, strength: float = 1.0, shape: str = "ellipse",
                    feather: float = 0.06) -> Anonymizer:
    if shape not in SHAPES:
        raise ValueError(f"unknown mask shape {shape!r}; choose one of {', '.join(SHAPES)}")
    if mode == "blur":
        return BlurAnonymizer(shape=shape, feather=feather, strength=strength)
    if mode == "pixelate":
        return PixelateAnonymizer(shape=shape, feather=feather, strength=strength)
    if mode == "solid":
        return SolidAnonymizer(shape=shape, feather=feather)
    raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


@dataclass(frozen=True)
class OutlineAnnotator:
    """Draws each region's outline, and a label if given, for previews; exports leave it off
    unless asked."""

    color: tuple[int, int, int] = (255, 64, 64)
    thickness_ratio: float = 0.004

    def annotate(self, image: np.ndarray, regions: list[Region], labels: list[str] | None = None) -> np.ndarray:
        out = np.ascontiguousarray(image.copy())
        thickness = max(1, int(round(self.thickness_ratio * max(image.shape[:2]))))
        color = self.color + (255,) if image.shape[2] == 4 else self.color
        scale = thickness * 0.3
        for n, (x, y, w, h) in enumerate(regions):
            cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), color, thickness)
            if labels:
                (tw, th), _ = cv2.getTextSize(labels[n], cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
                top = max(th + 2 * thickness, y)
                cv2.rectangle(out, (x, top - th - 2 * thickness), (x + tw + 2 * thickness, top), color, -1)
                cv2.putText(out, labels[n], (x + thickness, top - thickness), cv2.FONT_HERSHEY_SIMPLEX,
                            scale, (255, 255, 255) + ((255,) if image.shape[2] == 4 else ()), thickness)
        return out
