"""Protection judged on what leaves: the residual check reads output pixels, and a large photo's
small faces are looked for at full resolution."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.faces import Face, selected
from core.images import decode_photo, encode_photo
from core.pipeline import Settings, anonymize, check_output
from core.residual import EXPOSED, EXPOSED_SHARE, exposed_faces, exposed_share
from core.images import Photo
from core.records import FAILED
from core.review import detect_pending
from core.workspace import Workspace
from tests.conftest import jpeg_bytes, png_bytes


def covered_faces(engine, rgb):
    return selected(engine.detector.detect(rgb), Settings().threshold)


@pytest.mark.parametrize("mode", ["blur", "pixelate", "solid"])
def test_pixel_check_passes_a_covered_face_and_holds_back_an_uncovered_one(engine, astronaut_rgb, mode):
    faces = covered_faces(engine, astronaut_rgb)
    settings = Settings(mode=mode)
    photo = Photo("astronaut.png", astronaut_rgb, "0" * 64, "PNG")
    good = encode_photo(anonymize(astronaut_rgb, faces, settings), "JPEG", 92)
    assert check_output(engine.detector, photo, good, faces, settings) == []
    # An output that forgot to cover (the overlap bug did this to parts of faces): the pixels
    # show it, whatever the detector would say.
    leaked = encode_photo(astronaut_rgb, "JPEG", 92)
    written = decode_photo(leaked, "x").pixels
    exposed = exposed_faces(astronaut_rgb, written, faces)
    assert exposed and all(f.detector == EXPOSED and f.score > 0.9 for f in exposed)
    assert any(f.detector == EXPOSED for f in check_output(engine.detector, photo, leaked, faces, settings))


def test_pixel_check_sees_half_a_face_uncovered(engine, astronaut_rgb):
    faces = covered_faces(engine, astronaut_rgb)
    face = max(faces, key=lambda f: f.score)
    out = anonymize(astronaut_rgb, faces, Settings(mode="solid"))
    x0, y0 = int(face.x), int(face.y)
    # Put back the left half of the face box, as a cover drawn from the original would.
    half = int(face.w / 2)
    out[y0:int(face.y + face.h), x0:x0 + half] = astronaut_rgb[y0:int(face.y + face.h), x0:x0 + half]
    assert exposed_share(astronaut_rgb, out, face) > EXPOSED_SHARE  # held back


def test_small_face_in_a_large_photo_is_found_at_full_resolution(engine, astronaut_rgb):
    """A 24 px face in a 6000 x 4000 photo: shrunk to the 1536 px overview it would be 6 px, beyond
    the detector; the full-resolution look finds it and the output covers it."""
    portrait = cv2.resize(astronaut_rgb, (154, 154), interpolation=cv2.INTER_AREA)  # face about 24 px
    canvas = np.full((4000, 6000, 3), 120, np.uint8)
    canvas[2500:2654, 4100:4254] = portrait
    faces = covered_faces(engine, canvas)
    face_box = (4100 + 54, 2500 + 21, 18, 24)  # the face within the pasted portrait (scaled)
    assert any(f.x <= face_box[0] + 9 <= f.x + f.w and f.y <= face_box[1] + 12 <= f.y + f.h for f in faces)
    out = anonymize(canvas, faces, Settings(mode="solid"))
    box = Face(face_box[0], face_box[1], face_box[2], face_box[3], 1.0, "truth")
    assert exposed_share(canvas, out, box) < 0.1


def test_odd_shapes_never_stop_detection_in_the_dashboard(tmp_path, engine, astronaut_rgb):
    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("odd", "Ann")
    rng = np.random.default_rng(1)
    for w, h in [(20000, 9), (9, 20000), (4100, 2), (1, 1)]:
        ws.add_image(session, f"odd_{w}x{h}.png", png_bytes(rng.integers(0, 255, (h, w, 3), np.uint8)), "Ann")
    ws.add_image(session, "portrait.jpg", jpeg_bytes(astronaut_rgb), "Ann")
    detect_pending(ws, engine, session)
    records = ws.images(session)
    assert ws.awaiting_detection(session) == []
    assert all(r.detected or (r.status == FAILED and r.error) for r in records)
    assert next(r for r in records if r.name == "portrait.jpg").faces
