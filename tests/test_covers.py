"""No cover ever un-covers: judged on the output pixels, for every mode and shape, whatever the
regions and their order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from core.anonymizers import MODES, SHAPES, make_anonymizer

CORE = 0.999  # a pixel is fully under a cover where its mask is 1 (the feathered rim blends)


def binary_noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Every channel 60 or 250: whatever a cover averages lands far from both, and no pixel is
    dark (so a black cover is never "unchanged")."""
    return (60 + np.random.default_rng(seed).integers(0, 2, (height, width, 3)) * 190).astype(np.uint8)


def cores(anonymizer, regions, height: int, width: int) -> np.ndarray:
    """The pixels each region's own mask covers fully, united."""
    union = np.zeros((height, width), bool)
    for x, y, w, h in regions:
        union[y:y + h, x:x + w] |= anonymizer._mask(w, h) >= CORE
    return union


def exposed(original: np.ndarray, out: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Pixels still within 20 levels of the original in every channel (the pixel measure)."""
    close = (np.abs(original.astype(int) - out.astype(int)) <= 20).all(axis=2)
    return close & where


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", ["face first", "face last"])
def test_overlapping_cover_never_restores_a_covered_face(mode, shape, order):
    """The bug found on real group photos: a second region's rectangle reaches over a face the
    first one covered, and its corners (outside its own ellipse) used to copy the original back."""
    image = binary_noise(200, 300)
    face_region = (60, 60, 80, 80)
    face = (80, 80, 40, 40)  # well inside the face region's ellipse
    # A neighbour whose rectangle's corner lies on the face but whose ellipse does not reach it.
    neighbour = (108, 108, 120, 80)
    regions = [face_region, neighbour] if order == "face first" else [neighbour, face_region]
    anonymizer = make_anonymizer(mode, shape=shape)
    out = anonymizer.anonymize(image, regions)
    x, y, w, h = face
    box = np.ones((h, w), bool)
    assert exposed(image[y:y + h, x:x + w], out[y:y + h, x:x + w], box).mean() < 0.02


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_nested_regions_cover_the_inner_face(mode, shape):
    image = binary_noise(240, 240, seed=1)
    outer, inner = (20, 20, 200, 200), (90, 90, 60, 60)
    anonymizer = make_anonymizer(mode, shape=shape)
    for regions in ([outer, inner], [inner, outer]):
        out = anonymizer.anonymize(image, regions)
        where = cores(anonymizer, regions, 240, 240)
        assert exposed(image, out, where).sum() == 0


regions_strategy = st.lists(
    st.tuples(st.integers(0, 150), st.integers(0, 110), st.integers(48, 150), st.integers(48, 110)),
    min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(regions=regions_strategy, mode=st.sampled_from(MODES), shape=st.sampled_from(SHAPES),
       feather=st.sampled_from([0.0, 0.06, 0.2]), seed=st.integers(0, 3))
def test_every_pixel_under_any_mask_is_covered(regions, mode, shape, feather, seed):
    """Property: whatever the regions (overlapping, nested, cut by the edge) and their order,
    no pixel that any region's mask covers fully keeps a value near its original one; pixels
    outside every region are untouched."""
    height, width = 160, 200
    image = binary_noise(height, width, seed)
    clipped = [(x, y, min(w, width - x), min(h, height - y)) for x, y, w, h in regions]
    clipped = [r for r in clipped if r[2] >= 48 and r[3] >= 48]
    anonymizer = make_anonymizer(mode, shape=shape, feather=feather)
    out = anonymizer.anonymize(image, clipped)
    where = cores(anonymizer, clipped, height, width)
    assert exposed(image, out, where).sum() == 0
    outside = np.ones((height, width), bool)
    for x, y, w, h in clipped:
        outside[y:y + h, x:x + w] = False
    assert (out[outside] == image[outside]).all()
    if mode == "solid":
        assert (out[where] == 0).all()
