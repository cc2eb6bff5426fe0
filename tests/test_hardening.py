"""Broken and hostile input, through the same intake and detection the dashboard uses: each
file is refused with its name and reason in the audit log, or processed; the batch goes on."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from core.export import export_approved
from core.images import ImageError, decode_photo
from core.intake import add_files, intake_folder, intake_upload, unpack_zip
from core.records import APPROVED, FAILED
from core.review import detect_pending
from core.shown import REORDER, as_line, as_text
from core.workspace import Workspace
from tests.conftest import heic_bytes
from tests.test_images import BAD_INPUTS, gradient, png_header_claiming


def encoded(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


# How a camera stores an upright picture for each EXIF orientation (the inverse of what a
# viewer applies).
STORED = {1: None, 2: Image.FLIP_LEFT_RIGHT, 3: Image.ROTATE_180, 4: Image.FLIP_TOP_BOTTOM,
          5: Image.TRANSPOSE, 6: Image.ROTATE_90, 7: Image.TRANSVERSE, 8: Image.ROTATE_270}


def oriented(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright = Image.fromarray(gradient())
    stored = upright.transpose(STORED[orientation]) if STORED[orientation] is not None else upright
    return encoded(np.asarray(stored), "PNG", exif=exif.tobytes())


def corrupt_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(gradient(), "JPEG", exif=exif.tobytes())
    start = data.index(b"Exif\x00\x00") + 6
    return data[:start] + b"\xde\xad\xbe\xef" * 4 + data[start + 16:]


def palette_png() -> bytes:
    return encoded(np.asarray(Image.fromarray(gradient()).convert("P")), "PNG")


def deep_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


def cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gradient()).convert("CMYK").save(buffer, "JPEG")
    return buffer.getvalue()


REFUSED = {name: (make, reason) for name, (make, reason) in BAD_INPUTS.items()} | {
    # A file that says it is HEIC and holds nothing more: named as a damaged HEIC, not "not an image".
    "photo.heic": (lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200,
                   "damaged or truncated (HEIC: "),
    # A DNG is a TIFF: read as one, its small preview would be reviewed and published.
    "camera.dng": (lambda: encoded(gradient(), "TIFF"), "camera's raw file"),
    "generic-brand.heic": (lambda: b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic" + b"\x00" * 200,
                           "damaged or truncated (HEIC: "),
    "animated.avif": (lambda: encoded(gradient(), "AVIF", save_all=True,
                                      append_images=[Image.fromarray(255 - gradient())]), "frames"),
    "huge-header.png": (lambda: png_header_claiming(50000, 50000), "megapixels"),
}
PROCESSED = {
    "palette.png": palette_png,
    "gray.png": lambda: encoded(gradient()[:, :, 0], "PNG"),
    "rgba.png": lambda: encoded(np.dstack([gradient(), np.full((48, 64), 90, np.uint8)]), "PNG"),
    "deep16.png": deep_png,
    "cmyk.jpg": cmyk_jpeg,
    "progressive.jpg": lambda: encoded(gradient(), "JPEG", progressive=True),
    "IMG_0001.HEIC": lambda: heic_bytes(np.ascontiguousarray(np.rot90(gradient())), 6),
    "web.avif": lambda: encoded(gradient(), "AVIF", quality=90),
    "one-pixel.png": lambda: encoded(np.zeros((1, 1, 3), np.uint8), "PNG"),
    "strip.png": lambda: encoded(np.full((10, 20000, 3), 128, np.uint8), "PNG"),
    "corrupt-exif.jpg": corrupt_exif,
    **{f"orientation-{n}.png": (lambda n=n: oriented(n)) for n in range(1, 9)},
    "../../etc/escape.jpg": lambda: encoded(gradient(), "JPEG"),
    "a/b/slashes.jpg": lambda: encoded(gradient(), "JPEG"),
    "😀 emoji face.jpg": lambda: encoded(gradient(), "JPEG"),
    "x" * 300 + ".jpg": lambda: encoded(gradient(), "JPEG"),
}


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path / "ws")


def test_every_kind_is_refused_or_processed_and_logged(ws, engine):
    session = ws.create_session("hostile", "tester")
    uploads = [(name, make()) for name, (make, _) in REFUSED.items()] + [(n, m()) for n, m in PROCESSED.items()]
    uploads += [("twice.jpg", encoded(gradient() // 2, "JPEG")), ("twice.jpg", encoded(255 - gradient(), "JPEG")),
                ("same-bytes-1.png", encoded(gradient(), "PNG")), ("same-bytes-2.png", encoded(gradient(), "PNG"))]
    duplicates = []
    for name, data in uploads:
        duplicates += add_files(ws, session, intake_upload(name, data), "tester").duplicates
    detect_pending(ws, engine, session)

    by_name = {}
    for record in ws.images(session):
        by_name.setdefault(record.name, []).append(record)
    refusals = {a["detail"].get("name") or _name(ws, a["image_id"]): a["detail"]["reason"]
                for a in ws.audit(session) if a["action"] == "file refused"}
    # huge-header.png has the very bytes of bomb.png: added once, and named as the same photo.
    for name, (_make, reason) in REFUSED.items():
        if name == "huge-header.png":
            continue
        (record,) = by_name[name]
        assert record.status == FAILED and reason in record.error, (name, record.error)
        assert reason in refusals[name]
    same_as = dict(duplicates)
    for name in PROCESSED:  # some are the same bytes under an odd name: named as the same photo
        (record,) = by_name[same_as.get(name, name)]
        assert record.detected and record.error is None, (name, record.error)
    for name in [f"orientation-{n}.png" for n in range(1, 9)] + ["IMG_0001.HEIC"]:
        (record,) = by_name[name]
        upright = decode_photo(ws.files.preview(record.sha256, 320), "preview").pixels
        assert (record.width, record.height) == (64, 48) and np.abs(upright.astype(int) - gradient()).mean() < 3, name
    assert len(by_name["twice.jpg"]) == 2
    assert same_as["huge-header.png"] == "bomb.png" and same_as["same-bytes-2.png"] == "same-bytes-1.png"
    assert not set(same_as) & set(by_name), "a duplicate is added once"
    assert any(a["action"] == "duplicate not added" for a in ws.audit(session))

    for record in ws.images(session):
        if record.detected:
            ws.decide(record.id, APPROVED, "tester")
    with zipfile.ZipFile(export_approved(ws, session, "tester", engine.detector).path) as archive:
        names = [n for n in archive.namelist() if n.startswith("images/")]
    assert len(names) == len(set(names)) == sum(r.detected for r in ws.images(session))
    for name in names:
        base = name.removeprefix("images/")
        assert "/" not in base and ".." not in base and len(base) <= 104 and base.isascii()


def _name(ws, image_id):
    return ws.image(image_id).name


def test_hostile_zip(engine, ws):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("../../outside.jpg", encoded(gradient(), "JPEG"))
        archive.writestr("/etc/absolute.jpg", encoded(255 - gradient(), "JPEG"))
        link = zipfile.ZipInfo("link.jpg")
        link.external_attr = (0o120777 << 16)
        archive.writestr(link, "/etc/passwd")
        archive.writestr("bomb.png", b"\x00" * 50_000_000)
    session = ws.create_session("zip", "tester")
    add_files(ws, session, intake_upload("batch.zip", buffer.getvalue()), "tester")
    records = {r.name: r for r in ws.images(session)}
    # Names only: "..", "." and a leading "/" are dropped from them, and nothing is written by them.
    assert set(records) == {"batch.zip/outside.jpg", "batch.zip/etc/absolute.jpg", "batch.zip/link.jpg",
                            "batch.zip/bomb.png"}
    assert "symbolic link" in records["batch.zip/link.jpg"].error
    assert "zip bomb" in records["batch.zip/bomb.png"].error
    assert records["batch.zip/outside.jpg"].error is None
    assert not (ws.root.parent / "outside.jpg").exists()


def test_a_zip_too_large_together_is_said_so_not_a_bomb_and_a_bomb_spoils_nothing_after_it(ws, monkeypatch):
    """Each file of a zip is read whole, so a zip's files may not pass a total (2 GB; smaller
    here): those past it were refused as "a possible zip bomb", and so was every file after a
    bomb that claimed more than the total, the bomb counted in it."""
    from core import intake

    monkeypatch.setattr(intake, "ZIP_MAX_TOTAL", 3 * 1024 ** 2)
    photo = encoded(np.random.default_rng(3).integers(0, 256, (700, 900, 3), dtype=np.uint8), "PNG")  # ~1.9 MB
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bomb.png", b"\x00" * 20_000_000, zipfile.ZIP_DEFLATED)
        for name in ("a.png", "b.png"):
            archive.writestr(name, photo)
    session = ws.create_session("zip", "tester")
    add_files(ws, session, intake_upload("big.zip", buffer.getvalue()), "tester")
    records = {r.name: r for r in ws.images(session)}
    assert "zip bomb" in records["big.zip/bomb.png"].error and records["big.zip/a.png"].error is None
    assert records["big.zip/b.png"].error == ("the zip's files pass 3 MB together from here on; refused: unpack "
                                              "the zip, and add its folder")


def test_a_zip_made_by_a_phone_or_a_mac_is_taken_as_its_folder_would_be(ws):
    """Photos keep their folder inside the zip in their name (two cameras' IMG_0001.JPG are two
    names); the archiver's own files (__MACOSX/._*, .DS_Store) are skipped as hidden files of a
    folder are; sidecars and thumbnails that go with photos are passed over, counted and logged;
    other files are refused by name, as in a folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("DCIM/100APPLE/IMG_0001.JPG", encoded(gradient(), "JPEG"))
        archive.writestr("DCIM/101APPLE/IMG_0001.JPG", encoded(255 - gradient(), "JPEG"))
        archive.writestr("__MACOSX/DCIM/100APPLE/._IMG_0001.JPG", b"\x00\x05\x16\x07 AppleDouble")
        archive.writestr("DCIM/.DS_Store", b"\x00\x00\x00\x01Bud1")
        archive.writestr("DCIM/notes.txt", b"who is in which photo")
        archive.writestr("DCIM/100APPLE/IMG_0001.AAE", b"<?xml version='1.0'?><plist/>")  # an iPhone's edits
        archive.writestr("DCIM/101APPLE/IMG_0001.JPG.xmp", b"<x:xmpmeta/>")  # a photo editor's sidecar
        archive.writestr("DCIM/Thumbs.db", b"\xd0\xcf\x11\xe0")
    session = ws.create_session("zip", "tester")
    report = add_files(ws, session, intake_upload("phone.zip", buffer.getvalue()), "tester")
    records = {r.name: r for r in ws.images(session)}
    assert report.added == 2 and set(records) == {
        "phone.zip/DCIM/100APPLE/IMG_0001.JPG", "phone.zip/DCIM/101APPLE/IMG_0001.JPG", "phone.zip/DCIM/notes.txt"}
    assert records["phone.zip/DCIM/notes.txt"].error == "not an image or video file (extension .txt)"
    passed = ["phone.zip/DCIM/100APPLE/IMG_0001.AAE", "phone.zip/DCIM/101APPLE/IMG_0001.JPG.xmp",
              "phone.zip/DCIM/Thumbs.db"]
    assert report.companions == passed  # not failed photos of the session, but said and logged
    logged = [a for a in ws.audit(session) if a["action"] == "companion files passed over"]
    assert len(logged) == 1 and all(name in logged[0]["detail"]["names"] for name in passed)


def test_names_in_a_zip_without_its_utf8_flag_read_as_the_archiver_wrote_them(ws):
    """macOS's archiver writes UTF-8 names without the zip's UTF-8 flag, which says the name is in
    the format's own code page (cp437): "Fête/École.jpg" was shown, logged and signed as
    "F├¬te/├ëcole.jpg". A name so written is read as UTF-8; one Windows' archiver wrote in cp437
    (flag unset, "Ré.jpg" as cp437 bytes) and one with the flag are read as before."""
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Fête/École.jpg", encoded(gradient(), "JPEG"))  # flagged as UTF-8 (Python sets it)
        archive.writestr("mac/Fête/École.jpg", encoded(255 - gradient(), "JPEG"))
        archive.writestr("win/R_.jpg", encoded(gradient()[::-1].copy(), "JPEG"))
    data = bytearray(buffer.getvalue().replace(b"win/R_.jpg", "win/Ré.jpg".encode("cp437")))  # as Windows writes it
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # the mac member's flag cleared
        at = data.find(signature)
        at = data.find(signature, at + 4)
        struct.pack_into("<H", data, at + flags_at, struct.unpack_from("<H", data, at + flags_at)[0] & ~0x800)
    session = ws.create_session("zip", "tester")
    report = add_files(ws, session, intake_upload("photos.zip", bytes(data)), "tester")
    assert report.added == 3 and sorted(r.name for r in ws.images(session)) == [
        "photos.zip/Fête/École.jpg", "photos.zip/mac/Fête/École.jpg", "photos.zip/win/Ré.jpg"]


def test_a_long_video_from_a_folder_is_stored_in_chunks_not_read_into_memory(tmp_path, ws):
    """A phone's long clip may be larger than memory: a folder's files are copied into the
    store in chunks, so no video is refused for its size; a photo keeps its size limit."""
    import tracemalloc

    folder = tmp_path / "phone"
    folder.mkdir()
    clip = np.random.default_rng(1).integers(0, 256, 24 * 1024 ** 2, dtype=np.uint8).tobytes()  # stands for a clip
    (folder / "long.mp4").write_bytes(clip)
    (folder / "huge.png").write_bytes(b"\x89PNG" + bytes(3 * 1024 ** 2))
    session = ws.create_session("phone", "tester")
    tracemalloc.start()
    try:
        report = add_files(ws, session, intake_folder(str(folder), [tmp_path], max_bytes=2 * 1024 ** 2), "tester")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    records = {r.name: r for r in ws.images(session)}
    assert report.added == 1 and records["long.mp4"].error is None
    assert ws.files.object_path(records["long.mp4"].sha256).read_bytes() == clip
    assert records["long.mp4"].sha256 == hashlib.sha256(clip).hexdigest()
    assert peak < 8 * 1024 ** 2, f"{peak / 1024 ** 2:.0f} MB held at once for a 24 MB file"
    assert records["huge.png"].error == "larger than 2 MB; refused"


def test_a_damaged_member_of_a_zip_is_that_files_error_and_the_rest_is_added(ws):
    """Flipped bytes inside one member's compressed data (a zip cut or damaged in transfer):
    that member is refused with its reason, the members around it are added."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("first.jpg", encoded(gradient(), "JPEG"))
        # Bytes that compress about 2:1: the member is stored as Huffman-coded deflate blocks.
        archive.writestr("damaged.png", np.random.default_rng(0).integers(0, 16, 100_000, dtype=np.uint8).tobytes())
        archive.writestr("last.jpg", encoded(255 - gradient(), "JPEG"))
    data = bytearray(buffer.getvalue())
    start = data.index(b"damaged.png") + len("damaged.png")
    for at in range(start + 20, start + 60):  # inside the member's deflate stream
        data[at] ^= 0x5A
    session = ws.create_session("zip", "tester")
    report = add_files(ws, session, intake_upload("batch.zip", bytes(data)), "tester")
    records = {r.name: r for r in ws.images(session)}
    assert report.added == 2 and set(records) == {"batch.zip/first.jpg", "batch.zip/damaged.png", "batch.zip/last.jpg"}
    assert records["batch.zip/damaged.png"].error.startswith("cannot be unpacked (")
    assert records["batch.zip/first.jpg"].error is None and records["batch.zip/last.jpg"].error is None


def test_hostile_folder(tmp_path, ws):
    folder = tmp_path / "drop"
    (folder / "deep").mkdir(parents=True)
    for i in range(2000):
        (folder / f"notes-{i}.txt").write_text("not a photo")
    (folder / "photo.jpg").write_bytes(encoded(gradient(), "JPEG"))
    (folder / "IMG_0001.HEIC").write_bytes(heic_bytes(gradient()))
    (folder / "saved from a browser.jfif").write_bytes(encoded(gradient()[::-1].copy(), "JPEG"))
    # Named on an old Windows machine: a byte that is not UTF-8. It stopped the whole intake
    # (SQLite refused the name: "surrogates not allowed").
    (folder / os.fsdecode(b"caf\xe9.jpg")).write_bytes(encoded(gradient() // 3, "JPEG"))
    (folder / os.fsdecode(b"notes\xe9.txt")).write_text("not a photo")
    (folder / "DSC_0001.NEF").write_bytes(b"MM\x00*" + b"\x00" * 100)
    (folder / "deep" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "linked.jpg").symlink_to(folder / "photo.jpg")
    os.mkfifo(folder / "pipe.jpg")  # reading it would block forever: never opened
    session = ws.create_session("folder", "tester")
    refused = add_files(ws, session, intake_folder(str(folder), [tmp_path]), "tester").refused
    assert {r.name for r in ws.images(session) if r.error is None} == {"photo.jpg", "IMG_0001.HEIC",
                                                                      "saved from a browser.jfif", "caf\ufffd.jpg"}
    reasons = {r.name: r.problem for r in refused}
    assert len(refused) == 2004 and "not an image or video file" in reasons["notes\ufffd.txt"]
    assert "symbolic link" in reasons["linked.jpg"] and "regular file" in reasons["pipe.jpg"]
    assert "not an image or video file" in reasons["notes-7.txt"]
    assert reasons["DSC_0001.NEF"].startswith("a camera's raw file: develop it as JPEG first")
    outside = add_files(ws, session, intake_folder("/etc", [tmp_path]), "tester").refused
    assert "outside the folders" in outside[0].problem


def test_a_zip_in_a_folder_added_is_unpacked_as_an_upload_is(tmp_path, ws):
    """A photographer's delivery (a folder of zips, or a zip beside loose photos) added as a
    folder: each zip was refused ("unpack it first"), and the officer had to unpack them by hand or
    upload each. A zip met in the folder is unpacked as an uploaded one is, its files named by
    their path through it; a damaged one is said, and the rest is added."""
    folder = tmp_path / "delivery"
    (folder / "day2").mkdir(parents=True)
    (folder / "loose.jpg").write_bytes(encoded(gradient(), "JPEG"))
    with zipfile.ZipFile(folder / "day2" / "Day 2.ZIP", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("hall/IMG_0001.JPG", encoded(255 - gradient(), "JPEG"))
        archive.writestr("hall/IMG_0001.JPG.xmp", b"<x:xmpmeta/>")
        archive.writestr("hall/notes.txt", b"who is in which photo")
    (folder / "broken.zip").write_bytes(b"PK\x03\x04 cut short")
    session = ws.create_session("delivery", "tester")
    report = add_files(ws, session, intake_folder(str(folder), [tmp_path]), "tester")
    assert report.added == 2 and {r.name for r in ws.images(session) if r.error is None} == {
        "loose.jpg", "day2/Day 2.ZIP/hall/IMG_0001.JPG"}
    assert report.companions == ["day2/Day 2.ZIP/hall/IMG_0001.JPG.xmp"]
    reasons = {r.name: r.problem for r in report.refused}
    assert reasons["day2/Day 2.ZIP/hall/notes.txt"] == "not an image or video file (extension .txt)"
    assert reasons["broken.zip"].startswith("not a readable zip (")


def test_a_folder_pasted_from_a_file_manager_is_read(tmp_path):
    """In quotes ("Copy as path"), as a file:// address (spaces and accents escaped), or from the
    home folder: the same folder, read as typed plainly."""
    folder = tmp_path / "Sports day é"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(encoded(gradient(), "JPEG"))
    for typed in (f'"{folder}"', f"'{folder}' ", folder.as_uri(), f"~/{folder.name}"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", str(tmp_path))
            items = list(intake_folder(typed, [tmp_path]))
        assert [(i.name, i.problem) for i in items] == [("photo.jpg", None)], typed


VALID = [encoded(gradient(), "JPEG"), encoded(gradient(), "PNG"), encoded(gradient(), "GIF"),
         encoded(gradient(), "WEBP"), encoded(gradient(), "TIFF"), encoded(gradient(), "BMP"),
         encoded(gradient(), "AVIF"), heic_bytes(gradient()), heic_bytes(np.ascontiguousarray(np.rot90(gradient())), 6)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=2048),
    st.tuples(st.sampled_from(VALID), st.integers(0, 4000), st.binary(min_size=1, max_size=16)).map(
        lambda t: t[0][:t[1] % len(t[0])] + t[2] + t[0][t[1] % len(t[0]) + len(t[2]):]),
    st.tuples(st.sampled_from(VALID), st.integers(1, 4000)).map(lambda t: t[0][:t[1] % len(t[0])]),
))
def test_fuzz_loader_only_raises_image_error(data):
    """Random and mutated image bytes decode or raise ImageError: never another exception."""
    try:
        photo = decode_photo(data, "fuzz.bin", max_pixels=4_000_000)
    except ImageError as exc:
        assert exc.name == "fuzz.bin" and exc.reason
    else:
        assert photo.pixels.dtype == np.uint8 and photo.pixels.shape[2] in (3, 4)


def _three_member_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.jpg", encoded(gradient(), "JPEG"))
        archive.writestr("b.png", np.random.default_rng(0).integers(0, 16, 20_000, dtype=np.uint8).tobytes())
        archive.writestr("c/d.png", encoded(gradient(), "PNG"))
    return buffer.getvalue()


ZIPPED = _three_member_zip()
# Where each member's compressed bytes lie, and the central directory: changes are aimed at
# each part of the zip, not mostly at its first bytes.
_PARTS = [(ZIPPED.index(name) + len(name), end) for name, end in (
    (b"a.jpg", ZIPPED.index(b"b.png")), (b"b.png", ZIPPED.index(b"c/d.png")),
    (b"c/d.png", len(ZIPPED) - 1))]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PARTS).flatmap(lambda part: st.integers(*part)),
                          st.binary(min_size=1, max_size=32)), min_size=1, max_size=3),
       st.integers(1, len(ZIPPED)))
def test_fuzz_a_damaged_zip_is_refused_member_by_member_never_raised(changes, length):
    """Whatever bytes of an uploaded zip are overwritten, and wherever it is cut, unpacking it
    yields each file or a reason, and never raises (which would stop the whole upload)."""
    data = bytearray(ZIPPED)
    for at, written in changes:
        data[at:at + len(written)] = written[:len(data) - at]
    for intake in unpack_zip(bytes(data[:length]), "upload.zip"):
        assert intake.name.startswith("upload.zip") and (intake.problem or intake.data)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from(sorted(REORDER)))))
def test_any_name_is_shown_with_nothing_that_reorders_or_controls_the_screen(name):
    """Whatever a file, session or reviewer is named, what the terminal and every page show holds
    no control character and no direction override; a name without any is shown as it is."""
    import unicodedata

    from dashboard.text import plain

    for shown in (as_text(name), as_line(name), plain(name)):
        assert not [c for c in shown if unicodedata.category(c) == "Cc" or c in REORDER], shown
    if not any(unicodedata.category(c) == "Cc" or c in REORDER for c in name):
        assert as_text(name) == name
