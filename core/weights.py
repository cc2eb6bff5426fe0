"""Vendored model weights, checked against their SHA-256 before any detector sees them.

The bytes that are hashed are the bytes handed to the runtime, so a file swapped after the
check cannot be loaded by mistake.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"

SHA256 = {
    "centerface.onnx": "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
}


class ModelIntegrityError(RuntimeError):
    """A weight file is missing or is not the file this release was tested with."""


def load_weights(name: str, models_dir: Path = MODELS_DIR) -> bytes:
    """Return the verified bytes of a vendored model file."""
    if name not in SHA256:
        raise ModelIntegrityError(f"unknown model file {name!r}")
    path = models_dir / name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelIntegrityError(f"model file {path} cannot be read: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise ModelIntegrityError(
            f"model file {path} has SHA-256 {digest}, expected {SHA256[name]}: "
            "reinstall the tool; do not use a model from elsewhere")
    return data


def model_versions() -> dict[str, str]:
    """Model name -> SHA-256, for manifests."""
    return dict(SHA256)
