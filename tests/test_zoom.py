"""The zoom view's window on a photo: it shows the pixels the export writes there, stays inside
the photo, and a box drawn in it is covered as drawn; face edits can be undone one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from core.faces import Face
from core.pipeline import Settings, anonymize
from core.records import StaleState
from core.workspace import Workspace
from core.zoom import ZOOMS, View, drawn_face, fit, on_face, render_window, to_photo
from tests.conftest import jpeg_bytes

PHOTO = np.random.default_rng(7).integers(0, 256, (700, 1100, 3), dtype=np.uint8)

faces_strategy = st.lists(st.builds(
    lambda x, y, w, h, s, on: Face(x, y, w, h, s, "centerface", enabled=on),
    st.floats(-50, 1100), st.floats(-50, 700), st.floats(2, 300), st.floats(2, 300), st.floats(0.05, 1.0),
    st.booleans()), max_size=8)


@hsettings(max_examples=40, deadline=None)
@given(faces=faces_strategy, cx=st.floats(0, 1100), cy=st.floats(0, 700), zoom=st.sampled_from([1.0, 2.0, 4.0]),
       mode=st.sampled_from(["blur", "pixelate", "solid"]), shape=st.sampled_from(["rectangle", "ellipse"]))
def test_the_window_shows_what_the_export_writes_there(faces, cx, cy, zoom, mode, shape):
    """Whatever the faces and wherever the window looks, its pixels (before outlines, at 1 photo
    px per screen px or enlarged) are the export's pixels there, though only the window is covered."""
    settings = Settings(mode=mode, shape=shape)
    exported = anonymize(PHOTO, faces, settings)
    shown, (x, y, w, h) = render_window(PHOTO, faces, settings, View(cx, cy, zoom), outline=False)
    assert 0 <= x and 0 <= y and x + w <= PHOTO.shape[1] and y + h <= PHOTO.shape[0]
    k = int(zoom)
    assert np.array_equal(shown[::k, ::k], exported[y:y + h, x:x + w])


def test_views_stay_inside_the_photo_and_zoom_to_small_faces():
    width, height = 4000, 3000
    view = fit(width, height)
    assert view.window(width, height) == (0, 0, width, height) or view.zoom == ZOOMS[0]
    corner = View(0, 0, 1.0).panned(-3, -3, width, height)
    assert corner.window(width, height)[:2] == (0, 0)
    far = View(width, height, 1.0).panned(2, 2, width, height)
    x, y, w, h = far.window(width, height)
    assert (x + w, y + h) == (width, height)
    assert View(10, 10, 1.0).zoomed(1).zoom == 2.0 and View(10, 10, 4.0).zoomed(1).zoom == 4.0
    small = on_face(Face(2000, 1500, 12, 15, 0.5, "centerface"))
    assert small.zoom == 4.0 and (small.cx, small.cy) == (2006, 1507.5)
    assert on_face(Face(0, 0, 400, 500, 0.9, "centerface")).zoom == 1.0


@pytest.mark.parametrize("padding", [0.0, 0.3, 0.6])
def test_a_drawn_box_is_covered_as_drawn(padding):
    """The reviewer's box, dragged at 2x on a window at (300, 200), is the region covered: not
    grown by the padding as a detected face's box is."""
    box = to_photo((40, 60, 120, 80), (300, 200, 450, 300), 2.0)
    assert box == (320, 230, 60, 40)
    x, y, w, h = drawn_face(box, padding).region(padding, 1100, 700)
    assert abs(x - 320) <= 1 and abs(y - 230) <= 1 and abs(w - 60) <= 1 and abs(h - 40) <= 1


def test_face_edits_are_undone_one_by_one_and_logged(tmp_path):
    ws = Workspace(tmp_path / "ws")
    session = ws.create_session("Undo", "Alice")
    image_id, _ = ws.add_image(session, "p.jpg", jpeg_bytes(PHOTO), "Alice")
    found = Face(100, 100, 40, 40, 0.9, "centerface")
    ws.save_detection(image_id, 1100, 700, [found])
    drawn = Face.drawn(500, 300, 50, 50)
    ws.add_face(image_id, drawn, "Alice")
    ws.move_face(image_id, drawn, (600, 320, 50, 50), "Alice")
    ws.switch_faces(image_id, [(found, False)], "Alice")
    with pytest.raises(ValueError):
        ws.move_face(image_id, found, (0, 0, 10, 10), "Alice")  # a detected face is switched, not moved

    def state():
        return [(f.x, f.y, f.enabled) for f in ws.image(image_id).faces]

    assert state() == [(100, 100, False), (600, 320, True)]
    assert "uncovered" in ws.undo_faces(image_id, "Alice")
    assert state() == [(100, 100, True), (600, 320, True)]
    assert "moved" in ws.undo_faces(image_id, "Alice")
    assert state() == [(100, 100, True), (500, 300, True)]
    ws.undo_faces(image_id, "Alice")
    assert state() == [(100, 100, True)]
    with pytest.raises(StaleState):
        ws.undo_faces(image_id, "Alice")
    record = ws.image(image_id)
    with pytest.raises(StaleState):  # a page that showed an older state cannot undo
        ws.remove_face(image_id, drawn, "Alice", seen="an older state")
    undone = [a["detail"]["change"] for a in ws.audit(session) if a["detail"].get("undoes")]
    assert len(undone) == 3 and all(c.startswith("undone: ") for c in undone)
    assert record.faces == [found]


@pytest.mark.parametrize("outline,near", [(True, False), (True, True), (False, True), (False, False)])
def test_the_window_outlines_what_the_toggles_ask(outline, near):
    """The review page's "Outline covered regions" and "Outline near misses (grey)" hold in the
    zoom view too: a crowd's near misses are what a reviewer zooms in to judge."""
    settings = Settings(mode="solid")
    found = Face(200, 200, 40, 40, 0.9, "centerface")
    missed = Face(600, 300, 40, 40, settings.threshold - 0.02, "centerface")
    plain, _ = render_window(PHOTO, [found, missed], settings, View(550, 350, 1.0), outline=False)
    shown, _ = render_window(PHOTO, [found, missed], settings, View(550, 350, 1.0), outline=outline, near=near)
    changed = np.any(shown != plain, axis=2)  # the window shows photo x 100-1000, y 50-650
    assert changed[250:290, 498:503].any() == near  # the near miss's own box, its left edge
    x, y, w, h = found.region(settings.padding, *PHOTO.shape[1::-1])
    assert changed[round(y) - 50:round(y + h) - 50, round(x) - 102:round(x) - 97].any() == outline
