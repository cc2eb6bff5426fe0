"""Shared fixtures: one real engine for the session, and real photos to run it on."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.pipeline import Engine

ROOT = Path(__file__).resolve().parent.parent
EVAL_DIR = Path(os.environ.get("FACE_EVAL_DIR", ROOT.parent / "shared" / "eval"))


@pytest.fixture(scope="session")
def engine():
    return Engine()


@pytest.fixture(scope="session")
def astronaut_rgb() -> np.ndarray:
    """NASA's public-domain portrait of Eileen Collins, shipped with scikit-image."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def astronaut_face_box(engine, astronaut_rgb):
    """Where the engine finds the face on the upright portrait (x, y, w, h)."""
    faces = [f for f in engine.detector.detect(astronaut_rgb) if f.score >= 0.5]
    assert faces, "the engine must find the astronaut's face"
    best = max(faces, key=lambda f: f.score)
    return best.x, best.y, best.w, best.h


def jpeg_bytes(rgb: np.ndarray, **save_args) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=95, **save_args)
    return buffer.getvalue()


def on_a_small_disk(folder: Path, size: str, before: str = "", after: str = "") -> tuple[str, ...]:
    """A command prefix: what follows runs with `folder` on a disk of `size` of its own (a private
    tmpfs, `unshare -m`). `before` and `after` are shell steps run there before the command and
    after it (`"$0"` is the folder, `$code` the command's exit code, which the prefix exits with)."""
    mount = f'mount -t tmpfs -o size={size} tmpfs "$0" && {before}'
    script = mount + ('exec "$@"' if not after else f'{{ "$@"; code=$?; {after}; exit $code; }}')
    return "unshare", "-m", "sh", "-c", script, str(folder)


def noisy_photos(folder: Path, rgb: np.ndarray, count: int) -> list[Path]:
    """`count` JPEGs of `rgb` under noise that does not compress away (about 120 KB each for
    512 x 512, out as in): for runs that must fill a small disk."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        noisy = np.clip(rgb.astype(int) + rng.integers(-40, 40, rgb.shape), 0, 255).astype(np.uint8)
        made.append(folder / f"p{i:02}.jpg")
        made[-1].write_bytes(jpeg_bytes(noisy))
    return made


def png_bytes(pixels: np.ndarray, **save_args) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", **save_args)
    return buffer.getvalue()


def heic_bytes(rgb: np.ndarray, orientation: int = 1, **save_args) -> bytes:
    """A HEIC as an iPhone writes one: `rgb` stored as given, and an `orientation` (EXIF's
    numbers) both in its EXIF and as the file's own rotation (libheif writes `irot`)."""
    import pillow_heif

    pillow_heif.register_heif_opener()  # Pillow's "HEIF" saver; the options `core.images` set stay
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "HEIF", quality=90, exif=exif.tobytes(), **save_args)
    return buffer.getvalue()


def eval_entries() -> list[dict]:
    """The annotated evaluation photos, or [] where ../shared/eval is not present."""
    path = EVAL_DIR / "annotations.json"
    return json.loads(path.read_text()) if path.exists() else []
