"""The engine: the settings that decide an output, covering a photo's faces, the detector loaded
once, and the residual check of an output as written. The command line's batch is in
core/batch.py, the dashboard's in core/review.py."""

from __future__ import annotations

import functools
import hashlib
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .anonymizers import MODES, SHAPES, OutlineAnnotator, Region, make_anonymizer
from .detectors import FaceDetector
from .faces import Face, selected
from .images import DEFAULT_MAX_PIXELS, ImageError, Photo, decode_photo, read_photo
from .residual import RESIDUAL_INSIDE, residual_faces
from .times import joined
from .weights import model_versions

# Faces are detected in every DETECT_EVERY-th frame of a video; tracks cover the frames between
# (measured on clips filmed from ../shared/eval: see README).
DETECT_EVERY = 3
# Found again in a video frame outside the covers: only at this score. Compression and the
# covers' new context lift a detector's score on hands and sleeves past the photos' 0.4 (seen at
# 0.52-0.60 on clips from ../shared/eval), and a video is checked at dozens of frames.
VIDEO_FOUND_AGAIN = RESIDUAL_INSIDE


@dataclass(frozen=True)
class Settings:
    """Everything that decides what an output looks like. Defaults favour recall: a missed
    face is a leak, a blurred background patch is not."""

    threshold: float = 0.23
    mode: str = "blur"
    strength: float = 1.0
    padding: float = 0.6
    shape: str = "rectangle"
    feather: float = 0.06
    outline: bool = False
    jpeg_quality: int = 92
    video_quality: int = 20  # H.264 CRF: lower is better and larger; 17-18 looks lossless
    # A video's sound kept (copied, or re-encoded where MP4 cannot hold it); False leaves it out:
    # voices and names spoken are not anonymised.
    sound: bool = True
    # Only part of a video exported (a long CCTV recording of which a request asks for minutes):
    # from `start` to `end`, seconds from its first frame (`end` None: to its end).
    start: float = 0.0
    end: float | None = None
    # `start` and `end` are times of day on the recorder's clock (a CCTV export stamped with it).
    by_clock: bool = False
    # Parts of a video's sound silenced (a name said, a voice that would identify someone): each
    # (from, to) in seconds from its first frame, as its frames are captioned (whatever the part).
    silence: tuple[tuple[float, float], ...] = ()

    def __post_init__(self):
        problems = []
        # (read back from JSON as lists) in order, overlapping parts joined
        object.__setattr__(self, "silence", joined(self.silence))
        if any(a < 0 or b <= a for a, b in self.silence):
            problems.append("each part of a video's sound to silence must start at 0 s or later and end after it "
                            "starts")
        if not 0.0 <= self.threshold <= 1.0:
            problems.append(f"threshold {self.threshold} must be between 0 and 1")
        if self.mode not in MODES:
            problems.append(f"mode {self.mode!r} must be one of {', '.join(MODES)}")
        if self.shape not in SHAPES:
            problems.append(f"shape {self.shape!r} must be one of {', '.join(SHAPES)}")
        if not 0.1 <= self.strength <= 5.0:
            problems.append(f"strength {self.strength} must be between 0.1 and 5")
        if not 0.0 <= self.padding <= 2.0:
            problems.append(f"padding {self.padding} must be between 0 and 2")
        if not 0.0 <= self.feather <= 0.5:
            problems.append(f"feather {self.feather} must be between 0 and 0.5")
        if not 1 <= self.jpeg_quality <= 100:
            problems.append(f"JPEG quality {self.jpeg_quality} must be between 1 and 100")
        if self.by_clock and not (0 <= self.start < 86400 and (self.end is None or 0 <= self.end < 86400)):
            problems.append("the part of a video to export, by the recorder's clock, must be times of day "
                            "(00:00:00 to 23:59:59)")
        if self.start < 0 or (not self.by_clock and self.end is not None and self.end <= self.start):
            problems.append(f"the part of a video to export (from {self.start:g} s to "
                            f"{'its end' if self.end is None else f'{self.end:g} s'}) must start at 0 s or "
                            "later and end after it starts")
        if not 0 <= self.video_quality <= 51:
            problems.append(f"video quality {self.video_quality} must be between 0 and 51 (H.264 CRF)")
        if problems:
            raise ValueError("; ".join(problems))

    def regions(self, faces: list[Face], width: int, height: int) -> list[Region]:
        """The rectangles that will be anonymised, for the faces this threshold selects."""
        return [f.region(self.padding, width, height) for f in selected(faces, self.threshold)]

    def to_dict(self) -> dict:
        data = asdict(self)
        for name in VIDEO_ONLY:  # at their defaults, fingerprints stored before them stay the same
            if data[name] == getattr(Settings, name):
                del data[name]
        return data

    def for_photo(self) -> dict:
        """What decides a photo's output: `to_dict` without the settings only videos use."""
        return {k: v for k, v in self.to_dict().items() if k not in VIDEO_ONLY}


# Settings that change a video's output only: a photo's approval does not depend on them.
VIDEO_ONLY = ("video_quality", "sound", "start", "end", "by_clock", "silence")


def anonymize(pixels: np.ndarray, faces: list[Face], settings: Settings) -> np.ndarray:
    """Cover the selected faces of an upright image; the one place where settings meet pixels.
    Where an image with transparency is fully transparent, its colours are cleared: no viewer
    shows them, so neither can a reviewer, yet they stay in the file (an editor's "erased"
    background often keeps the people who were in it)."""
    height, width = pixels.shape[:2]
    regions = settings.regions(faces, width, height)
    out = make_anonymizer(settings.mode, settings.strength, settings.shape,
                          settings.feather).anonymize(pixels, regions)
    if out.shape[2] == 4:
        out[out[:, :, 3] == 0, :3] = 0
    return OutlineAnnotator().annotate(out, regions) if settings.outline else out


def engine_versions() -> dict:
    """What produced an output, for manifests: this engine, its runtimes and model hashes."""
    import cv2
    import onnxruntime
    import PIL

    return {
        "engine": __version__,
        "code_sha256": code_sha256(),
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "onnxruntime": onnxruntime.__version__,
        "pillow": PIL.__version__,
        "models_sha256": model_versions(),
    }


@functools.cache
def code_sha256() -> str:
    """The engine's own code (every `core/*.py`), hashed: what made an output, which the version
    number does not say (it is not raised with each change), and which a rerun that keeps an
    earlier run's outputs must match."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class Engine:
    """The detector loaded once, plus reading and detecting a file in one call."""

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.detector = FaceDetector()
        self.max_pixels = max_pixels

    def read(self, path: Path) -> Photo:
        return read_photo(path, self.max_pixels)

    def detect(self, photo: Photo) -> list[Face]:
        """Every candidate above the floor score; the threshold is applied later."""
        return self.detector.detect(photo.rgb)

    def detect_frame(self, rgb: np.ndarray) -> list[Face]:
        return self.detector.detect(rgb)


def failure_reason(exc: BaseException, out_dir: Path | None = None) -> str:
    """A plain reason for a file's failure, whatever went wrong with it."""
    if isinstance(exc, ImageError):
        return exc.reason
    if isinstance(exc, OSError) and out_dir is not None:
        return f"the output cannot be written to {out_dir} ({exc.strerror or exc})"
    return f"could not be processed ({type(exc).__name__}: {exc})"


def check_output(detector, photo: Photo, data: bytes, faces: list[Face], settings: Settings) -> list[Face]:
    """The residual check of an output as it leaves: decoded from the bytes written."""
    written = decode_photo(data, photo.name).pixels
    return residual_faces(detector, photo.pixels, written, faces,
                          settings.regions(faces, photo.width, photo.height))
