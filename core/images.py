"""Reading photos upright and writing them back without metadata.

Every failure is an `ImageError` whose message names the file and the reason, so that a
batch can report it and go on.
"""

from __future__ import annotations

import hashlib
import io
from struct import error as struct_error
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# An iPhone's HEIC (and a camera's HEIF) opens through Pillow. Only the main picture is decoded:
# never an embedded thumbnail in its place, nor its depth map. The picture comes upright from
# the file's own rotation, and the EXIF orientation is set to 1 so that it is not turned twice.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# 100 megapixels: above any camera a newsroom uses, far below a decompression bomb.
DEFAULT_MAX_PIXELS = 100_000_000

# A JPEG with extra frames opens as MPO through the JPEG opener.
_READABLE_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "AVIF", "HEIF"}
# Lossy photo formats written out as JPEG; the rest become PNG (lossless, keeps alpha).
_AS_JPEG = {"JPEG", "MPO", "HEIF"}


class ImageError(ValueError):
    """A file that cannot be processed; the message says which and why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Photo:
    """Decoded, upright pixels: RGB, or RGBA when the file had transparency."""

    name: str
    pixels: np.ndarray
    sha256: str
    format: str

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def rgb(self) -> np.ndarray:
        """Colour channels only, for the detectors."""
        return self.pixels[:, :, :3]

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] == 4


def read_photo(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Read a file from disk; see `decode_photo`."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise ImageError(str(path), "is a folder, not a file") from None
    except OSError as exc:
        raise ImageError(str(path), f"cannot be read ({exc.strerror or exc})") from None
    return decode_photo(data, str(path), max_pixels)


def decode_photo(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode image bytes, refuse what is not a single still photo, apply the EXIF
    orientation and bring every pixel format to 8-bit RGB or RGBA."""
    if not data:
        raise ImageError(name, "the file is empty")
    # Pillow's own bomb guard runs inside `open`; make it use our limit, not its default.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=sorted(_READABLE_FORMATS))
            _check_header(image, name, max_pixels)
            image.load()
            _upright(image)
            _into_srgb(image)
            pixels = _to_8bit_array(image)
    except ImageError:
        raise
    except UnidentifiedImageError:
        if problem := _heic_problem(data):  # Pillow says only that no opener took it
            raise ImageError(name, f"the image data is damaged or truncated (HEIC: {problem})") from None
        if video := _video_inside(data):
            raise ImageError(name, f"a video ({video}) named as a photo: give it its video's extension "
                                   "(.mp4, .mov, .mkv, .avi...) to add it as a video") from None
        raise ImageError(name, "not a supported image (JPEG, HEIC, PNG, WebP, AVIF, BMP, TIFF or GIF expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(name, f"image is too large to open safely (over {max_pixels / 1e6:.0f} "
                               "megapixels)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise OSError, SyntaxError,
        # ValueError, TypeError, KeyError, IndexError... on hostile files (the fuzz test finds them)
        raise ImageError(name, f"the image data is damaged or truncated ({type(exc).__name__}: {exc})") from None
    return Photo(name=name, pixels=pixels, sha256=hashlib.sha256(data).hexdigest(),
                 format=image.format or "")


def _heic_problem(data: bytes) -> str | None:
    """Why a file that says it is HEIF and not AVIF (by the brands its header names, as libheif
    reads them) cannot be opened, in libheif's words; None for any other file."""
    if not pillow_heif.get_file_mimetype(data).startswith(("image/heic", "image/heif")):
        return None
    try:
        pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True).data  # decodes it
    except Exception as exc:  # noqa: BLE001 - whatever libheif says is the reason
        return str(exc).strip() or type(exc).__name__
    return "cannot be decoded"


def _video_inside(data: bytes) -> str | None:
    """The kind of video container a file that is no photo starts as (a clip saved or sent
    with a photo's name), by its first bytes; None for anything else. An HEIF or AVIF photo
    starts as an MP4 does (`ftyp`): libheif tells it apart by its brands."""
    if data[4:8] == b"ftyp" and not pillow_heif.get_file_mimetype(data):
        return "MP4 or MOV"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "MKV or WebM"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "AVI"
    return None


def _upright(image: Image.Image) -> None:
    """Apply the EXIF orientation in place. A damaged EXIF block leaves the pixels as stored:
    the faces are found either way, and the output carries no EXIF to be damaged."""
    try:
        ImageOps.exif_transpose(image, in_place=True)
    except (SyntaxError, ValueError, TypeError, KeyError, OSError, struct_error):
        pass


def _into_srgb(image: Image.Image) -> None:
    """Convert in place pixels described by an embedded colour profile other than sRGB (a
    phone's Display P3, a camera's Adobe RGB) to sRGB, as a browser shows them: the output
    carries no profile, and a picture without one is shown as sRGB. Without it a P3 photo comes
    out duller than the original. A profile that cannot be read leaves the pixels as stored. In
    place, so that a 100 MP photo is not held twice (a 24 MP one: 91 MB less at the peak)."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA"):
        return
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" not in ImageCms.getProfileDescription(profile).lower():
            ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"),
                                      renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, inPlace=True)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        pass


def _check_header(image: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse before decoding: the header's size is all a decompression bomb needs to tell."""
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError(name, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(name, f"image is {width}x{height} = {width * height / 1e6:.0f} megapixels, "
                               f"over the limit of {max_pixels / 1e6:.0f} megapixels")
    # An MPO (a camera's JPEG with depth or preview frames) is one photo plus extras we drop.
    if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
        raise ImageError(name, f"has {image.n_frames} frames (animation or multi-page file); "
                               "only single still images can be anonymised")


def _to_8bit_array(image: Image.Image) -> np.ndarray:
    """Grayscale, palette, CMYK, 16-bit and float images become RGB or RGBA, 8 bits a channel."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = _full_scale(mode, values.max(initial=0))
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    target = "RGBA" if has_alpha(image) else "RGB"
    return np.asarray(image if mode == target else image.convert(target))


def _full_scale(mode: str, brightest: float) -> float:
    """The value white has in a one-channel image: a 16-bit file's is its bit depth's (a dark
    night shot stays dark); a float file's is 1.0 when it holds 0.0-1.0, as scientific and HDR
    programs write it; a 32-bit integer file tells only by its values."""
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "F" and brightest <= 1.0:
        return 1.0
    return 65535.0 if brightest > 255 else 255.0


def has_alpha(image: Image.Image) -> bool:
    """Whether an opened image (decoded or not) has transparency."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def encode_photo(pixels: np.ndarray, fmt: str, jpeg_quality: int = 92) -> bytes:
    """Encode pixels as JPEG or PNG with no EXIF, GPS, XMP, ICC, comment or text chunk:
    a new image is built from the bare array, so nothing of the original's metadata exists
    to be copied."""
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        # Converted only when it is not RGB already: a conversion is a copy (400 MB for 100 MP).
        (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, "JPEG", quality=int(jpeg_quality))
    elif fmt == "PNG":
        image.save(buffer, "PNG", compress_level=6)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buffer.getvalue()


def output_format(photo: Photo) -> str:
    """JPEG stays JPEG and a HEIC becomes one; everything else becomes PNG, which is lossless
    and keeps alpha."""
    return file_format(photo.format, photo.has_alpha)


def file_format(source_format: str, alpha: bool = False) -> str:
    """The output format for a photo in `source_format` (Pillow's name for it)."""
    return "JPEG" if source_format in _AS_JPEG and not alpha else "PNG"
