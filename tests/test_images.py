"""Reading every supported pixel format upright, and writing outputs with no metadata."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image, PngImagePlugin

from core.images import ImageError, decode_photo, encode_photo, output_format
from tests.conftest import heic_bytes, jpeg_bytes, png_bytes


def gradient(h=48, w=64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=2).astype(np.uint8)


def test_rgba_png_keeps_alpha():
    rgba = np.dstack([gradient(), np.full((48, 64), 128, np.uint8)])
    photo = decode_photo(png_bytes(rgba), "a.png")
    assert photo.has_alpha and photo.pixels.shape == (48, 64, 4)
    assert (photo.pixels[:, :, 3] == 128).all()


def test_grayscale_becomes_rgb_with_same_values():
    gray = gradient()[:, :, 0]
    photo = decode_photo(png_bytes(gray), "g.png")
    assert photo.pixels.shape == (48, 64, 3)
    assert (photo.pixels[:, :, 1] == gray).all()


def test_16bit_png_scaled_to_8bit_not_clipped():
    values = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)  # up to ~64500
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    photo = decode_photo(buffer.getvalue(), "deep.png")
    assert photo.pixels.dtype == np.uint8
    expected = np.round(values / 65535 * 255).astype(np.uint8)
    assert np.abs(photo.pixels[:, :, 0].astype(int) - expected).max() <= 1
    assert photo.pixels[:, :, 0].min() < 10 and photo.pixels[:, :, 0].max() > 245


def test_a_dark_16bit_png_stays_as_dark():
    """A 16-bit file's scale is its bit depth, not its brightest pixel: a night shot whose values
    stay under 256 of 65535 is near black, and must not come out 256 times brighter."""
    values = (np.arange(64 * 48).reshape(48, 64) % 200).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, "PNG")
    assert decode_photo(buffer.getvalue(), "night.png").pixels.max() <= 1


def test_a_float_tiff_in_zero_to_one_keeps_its_tones():
    """A floating-point TIFF (from a scientific or HDR program) holds 0.0-1.0: mid-grey stays
    mid-grey, it does not come out black."""
    values = (np.arange(64 * 48).reshape(48, 64) / (64 * 48 - 1)).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(values, "F").save(buffer, "TIFF")
    pixels = decode_photo(buffer.getvalue(), "scan.tif").pixels[:, :, 0]
    assert np.abs(pixels.astype(int) - np.round(values * 255)).max() <= 1


def test_cmyk_jpeg_becomes_rgb():
    buffer = io.BytesIO()
    Image.fromarray(gradient()).convert("CMYK").save(buffer, "JPEG", quality=95)
    photo = decode_photo(buffer.getvalue(), "cmyk.jpg")
    assert photo.pixels.shape == (48, 64, 3)
    assert np.abs(photo.pixels.astype(int) - gradient().astype(int)).mean() < 12


def matrix_profile(description: str, colorants, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 display profile, built here byte by byte: three colorants (XYZ, D50)
    and one gamma curve, as a phone's or a camera's profile describes its colours."""
    def fixed(v):
        return struct.pack(">i", round(v * 65536))

    def xyz(v):
        return b"XYZ \0\0\0\0" + b"".join(fixed(c) for c in v)

    text = description.encode("ascii") + b"\0"
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))
    tags = [(b"desc", b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 78),
            (b"wtpt", xyz(D50)), *((name, xyz(c)) for name, c in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants)),
            *((name, curve) for name in (b"rTRC", b"gTRC", b"bTRC")), (b"cprt", b"text\0\0\0\0none\0")]
    start = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for name, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += name + struct.pack(">II", start + len(body), len(data))
        body += data
    header = (struct.pack(">I", start + len(body)) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + b"".join(fixed(c) for c in D50))
    return header + b"\0" * (128 - len(header)) + struct.pack(">I", len(tags)) + table + body


D50 = (0.9642, 1.0, 0.8249)
# Display P3's and sRGB's primaries, adapted to D50 (their columns add up to D50).
DISPLAY_P3 = ((0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841))
SRGB = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def test_a_phones_display_p3_photo_comes_out_in_srgb_as_a_browser_shows_it():
    """The output carries no profile, so its pixels must be sRGB: P3 values written as they
    are show duller. Expected values from the primaries' matrices, not from the converter."""
    skin = np.array([220, 160, 130])
    pixels = np.tile(skin.astype(np.uint8), (32, 32, 1))
    for fmt, data in (("JPEG", jpeg_bytes(pixels, icc_profile=matrix_profile("Display P3", DISPLAY_P3))),
                      ("PNG", png_bytes(np.dstack([pixels, np.full((32, 32), 90, np.uint8)]),
                                        icc_profile=matrix_profile("Display P3", DISPLAY_P3))),
                      ("HEIC", heic_bytes(pixels, icc_profile=matrix_profile("Display P3", DISPLAY_P3)))):
        photo = decode_photo(data, "p3." + fmt.lower())
        linear = np.linalg.solve(np.array(SRGB).T, np.array(DISPLAY_P3).T @ (skin / 255) ** 2.2)
        expected = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255
        assert np.abs(photo.pixels[16, 16, :3] - expected).max() <= 3, (fmt, photo.pixels[16, 16], expected)
        assert np.abs(photo.pixels[16, 16, :3].astype(int) - skin).max() >= 8, "P3 and sRGB differ here"
        if photo.has_alpha:
            assert (photo.pixels[:, :, 3] == 90).all()
    # sRGB described as such, and a profile that cannot be read: the pixels as stored.
    for profile in (matrix_profile("sRGB IEC61966-2.1", SRGB), b"not a profile at all"):
        photo = decode_photo(png_bytes(pixels, icc_profile=profile), "srgb.png")
        assert (photo.pixels == pixels).all()


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF"])
def test_other_formats_decode(fmt):
    buffer = io.BytesIO()
    Image.fromarray(gradient()).save(buffer, fmt)
    photo = decode_photo(buffer.getvalue(), f"x.{fmt.lower()}")
    assert photo.pixels.shape == (48, 64, 3)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applied(orientation):
    """A phone's sideways-stored pixels come out as the photographer saw them."""
    upright = gradient()
    stored = {3: Image.ROTATE_180, 6: Image.ROTATE_90, 8: Image.ROTATE_270}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg_bytes(np.asarray(Image.fromarray(upright).transpose(stored)), exif=exif.tobytes())
    photo = decode_photo(data, "phone.jpg")
    assert photo.pixels.shape == upright.shape
    assert np.abs(photo.pixels.astype(int) - upright.astype(int)).mean() < 6


def test_outputs_carry_no_metadata():
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">secret</x:xmpmeta>'
    source = jpeg_bytes(gradient(), exif=exif.tobytes(), comment=b"secret comment", xmp=xmp)
    assert b"SpyCam" in source and b"secret" in source
    photo = decode_photo(source, "meta.jpg")
    for fmt in ("JPEG", "PNG"):
        out = encode_photo(photo.pixels, fmt)
        for marker in (b"Exif", b"SpyCam", b"secret", b"xmpmeta", b"tEXt", b"iTXt", b"zTXt", b"ICC_PROFILE"):
            assert marker not in out, (fmt, marker)
        reopened = Image.open(io.BytesIO(out))
        assert not reopened.getexif()
        assert not {"exif", "comment", "xmp", "icc_profile"} & set(reopened.info)


def test_iptc_block_dropped():
    """An IPTC record (Photoshop APP13 segment: caption, byline, location) must not survive."""
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x12\x1c\x02\x50\x00\x0eJane Doe, Oslo"
    plain = jpeg_bytes(gradient())
    source = plain[:2] + b"\xff\xed" + struct.pack(">H", len(iptc) + 2) + iptc + plain[2:]
    photo = decode_photo(source, "iptc.jpg")
    for fmt in ("JPEG", "PNG"):
        out = encode_photo(photo.pixels, fmt)
        assert b"Photoshop" not in out and b"Jane Doe" not in out and b"\xff\xed" not in out[:200]


def test_png_text_chunks_dropped():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jane Doe, 12 Secret Road")
    photo = decode_photo(png_bytes(gradient(), pnginfo=info), "t.png")
    assert b"Secret Road" not in encode_photo(photo.pixels, "PNG")


def test_jpeg_quality_is_a_setting():
    noisy = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    assert len(encode_photo(noisy, "JPEG", 30)) < len(encode_photo(noisy, "JPEG", 95))


def png_header_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG that claims a huge size but holds only a few bytes of pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def animated_gif() -> bytes:
    frames = [Image.fromarray(gradient()), Image.fromarray(255 - gradient())]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


BAD_INPUTS = {
    "empty.jpg": (lambda: b"", "empty"),
    "truncated.jpg": (lambda: jpeg_bytes(gradient(256, 256))[:700], "damaged or truncated"),
    "truncated.png": (lambda: png_bytes(np.random.default_rng(1).integers(0, 255, (256, 256, 3), np.uint8))[:900],
                      "damaged or truncated"),
    "random.jpg": (lambda: np.random.default_rng(2).bytes(5000), "not a supported image"),
    "text.png": (lambda: b"hello, this is a text file\n" * 20, "not a supported image"),
    "page.jpg": (lambda: b"<!doctype html><html><body>hi</body></html>", "not a supported image"),
    "doc.png": (lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "not a supported image"),
    "vector.jpg": (lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not a supported image"),
    "bomb.png": (lambda: png_header_claiming(50000, 50000), "megapixels"),
    "truncated.heic": (lambda: heic_bytes(gradient(256, 256))[:1500], "damaged or truncated (HEIC: "),
    "animated.gif": (animated_gif, "frames"),
    # A clip saved or sent with a photo's name: said as a video, with what to do.
    "clip.jpg": (lambda: clip_bytes("mp4"), "a video (MP4 or MOV) named as a photo: give it its video's extension"),
    "clip.png": (lambda: clip_bytes("matroska"), "a video (MKV or WebM) named as a photo"),
    "clip.gif": (lambda: clip_bytes("avi"), "a video (AVI) named as a photo"),
}


def clip_bytes(fmt: str) -> bytes:
    import tempfile

    from tests.clips import write_clip

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip"
        write_clip(path, [gradient(64, 64)] * 3, sound=False, fmt=fmt)
        return path.read_bytes()


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_clear_error(name):
    make, reason = BAD_INPUTS[name]
    with pytest.raises(ImageError) as info:
        decode_photo(make(), name)
    assert str(info.value).startswith(f"{name}: ")
    assert reason in info.value.reason


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_an_iphones_heic_is_read_upright(orientation):
    """An iPhone stores the sensor's pixels, the turn in the file (`irot`) and the same turn in
    its EXIF: read once, turned once. In tiles of 512 px, as an iPhone encodes it."""
    upright = np.asarray(Image.fromarray(gradient(48, 64)).resize((1100, 800), Image.BILINEAR))
    stored = {1: None, 3: Image.ROTATE_180, 6: Image.ROTATE_90, 8: Image.ROTATE_270}[orientation]
    sensor = upright if stored is None else np.asarray(Image.fromarray(upright).transpose(stored))
    data = heic_bytes(sensor, orientation, tile_size=512)
    exif = Image.Exif()
    exif.load(data[data.find(b"MM\x00*"):])
    assert b"irot" in data or orientation == 1
    assert exif[0x0112] == orientation, "the EXIF says the same turn, as an iPhone's does"
    photo = decode_photo(data, "IMG_0001.HEIC")
    assert photo.format == "HEIF" and output_format(photo) == "JPEG"
    assert photo.pixels.shape == upright.shape
    assert np.abs(photo.pixels.astype(int) - upright.astype(int)).mean() < 4


def test_a_ten_bit_heic_is_read_as_eight_bit():
    deep = gradient().astype(np.uint16) * 257  # the same picture, on 16 bits
    buffer = io.BytesIO()
    pillow_heif.from_bytes(mode="RGB;16", size=(64, 48), data=deep.tobytes()).save(buffer, quality=95)
    assert pillow_heif.open_heif(io.BytesIO(buffer.getvalue())).info["bit_depth"] == 10
    photo = decode_photo(buffer.getvalue(), "ten-bit.heic")
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == (48, 64, 3)
    assert np.abs(photo.pixels.astype(int) - gradient().astype(int)).mean() < 4
