"""The zoom view of the review page: the photo as exported, at full resolution or closer,
panned and zoomed with buttons; a click on a face's box selects it (its row in the table is
marked), a face picked by number is zoomed to, and a box dragged on the window is a face drawn
at full resolution (or where a drawn face is moved to). Every change goes through a callback."""

from __future__ import annotations

import base64

import plotly.graph_objects as go
import streamlit as st

from core import zoom
from core.faces import Face
from core.images import encode_photo
from core.pipeline import Settings
from core.records import ImageRecord
from dashboard.previews import full_original
from dashboard.state import act, workspace


def view_key(image_id: int) -> str:
    return f"zoom-view-{image_id}"


def selected_key(image_id: int) -> str:
    return f"zoom-face-{image_id}"


def box_key(image_id: int) -> str:
    """The box last dragged on the window, with the chart it was dragged on."""
    return f"zoom-box-{image_id}"


def select_face(image_id: int, position: int | None, face: Face | None = None) -> None:
    """Select a face (a position in the photo's faces); given the face, zoom to it."""
    st.session_state[selected_key(image_id)] = position
    if face is not None:
        st.session_state[view_key(image_id)] = zoom.on_face(face)


def moves(columns, key: str, view: zoom.View, width: int, height: int, whole: str) -> None:
    """Buttons in `columns` (seven) that zoom out and in, pan, and show the `whole` picture: each
    puts its view in `st.session_state[key]`."""
    def move(new: zoom.View) -> None:
        st.session_state[key] = new

    w, h = width, height
    for column, (label, new, tip) in zip(columns, [
            ("−", view.zoomed(-1), "zoom out"), ("+", view.zoomed(1), "zoom in"),
            ("◀", view.panned(-0.5, 0, w, h), "pan left"), ("▲", view.panned(0, -0.5, w, h), "pan up"),
            ("▼", view.panned(0, 0.5, w, h), "pan down"), ("▶", view.panned(0.5, 0, w, h), "pan right")]):
        column.button(label, key=f"{key}-{tip}", help=tip, on_click=move, args=(new,), width="stretch")
    columns[6].button(whole, key=f"{key}-fit", on_click=move, args=(zoom.fit(w, h),), width="stretch")


def zoom_view(record: ImageRecord, settings: Settings, positions: list[int], reviewer: str, mark: str,
              outline: bool = True, near: bool = False) -> None:
    """`positions`: the faces of the table, in its order (row n is faces[positions[n]]);
    `outline` and `near`: the review page's toggles."""
    image_id = record.id
    view: zoom.View = st.session_state.get(view_key(image_id)) or zoom.fit(record.width, record.height)
    chosen = st.session_state.get(selected_key(image_id))
    chosen = chosen if chosen is not None and chosen < len(record.faces) else None

    labels = ["none"] + [f"face {n + 1}" for n in range(len(positions))]
    picked = positions.index(chosen) + 1 if chosen in positions else 0
    tools = st.columns([2.2, 1, 1, 1, 1, 1, 1, 1.6])
    tools[0].selectbox("Zoom to", range(len(labels)), index=picked, format_func=lambda n: labels[n],
                       key=f"zoom-pick-{image_id}-{picked}", label_visibility="collapsed",
                       on_change=lambda: _picked(record, positions, f"zoom-pick-{image_id}-{picked}"))
    w, h = record.width, record.height
    moves(tools[1:], view_key(image_id), view, w, h, "Whole photo")

    mouse, actions = st.columns([1, 1.4])
    drawing = mouse.radio("The mouse", ["selects a face (click its box)", "draws a face (drag a box)"],
                          key=f"zoom-mouse-{image_id}", label_visibility="collapsed") != \
        "selects a face (click its box)"
    pixels, window = zoom.render_window(full_original(record), record.faces, settings, view, chosen,
                                          outline, near)
    chart_key = f"zoom-chart-{image_id}-{mark}-{view}-{drawing}"
    st.plotly_chart(_figure(pixels, record.faces, positions, window, view, drawing), key=chart_key,
                    on_select=lambda: _clicked(record, view, chart_key), selection_mode=("points", "box"),
                    config={"displayModeBar": False, "scrollZoom": False})
    x, y, ww, wh = window
    st.caption(f"Showing x {x}-{x + ww}, y {y}-{y + wh} of {w} x {h} px at {view.zoom:g}x "
               f"({'full resolution' if view.zoom == 1 else 'enlarged' if view.zoom > 1 else 'reduced'}), "
               "as exported.")

    # The buttons for the selected face and the dragged box sit above the window, in view.
    dragged = st.session_state.get(box_key(image_id))
    drawn = dragged[1] if dragged and dragged[0] == chart_key else None
    face = record.faces[chosen] if chosen is not None else None
    with actions:
        _actions(record, settings, positions, reviewer, mark, chosen, face, drawn, window, view)


def _actions(record: ImageRecord, settings: Settings, positions: list[int], reviewer: str, mark: str,
             chosen: int | None, face: Face | None, drawn, window, view: zoom.View) -> None:
    image_id = record.id
    if face is not None:
        row = positions.index(chosen) + 1 if chosen in positions else None
        covered = face.covered_at(settings.threshold)
        what = f"face {row}" if row else "the selected face"
        one, two = st.columns(2)
        one.button(f"Leave {what} uncovered" if covered else f"Cover {what}", key=f"zoom-switch-{image_id}",
                   on_click=act, args=(workspace().switch_faces, image_id, [(face, not covered)], reviewer),
                   kwargs={"seen": mark})
        if face.manual:
            two.button(f"Remove the selected drawn face ({what})", key=f"zoom-remove-{image_id}",
                       on_click=_remove, args=(image_id, face, reviewer, mark))
    if drawn:
        box = zoom.to_photo(drawn, window, view.zoom)
        new = zoom.drawn_face(box, settings.padding)
        one, two = st.columns(2)
        one.button("Add a face here", type="primary", key=f"zoom-add-{image_id}",
                   on_click=_with_box, args=(image_id, workspace().add_face, image_id, new, reviewer),
                   kwargs={"seen": mark, "done": "Face added, covered as drawn."})
        if face is not None and face.manual:
            two.button("Move the selected face here", key=f"zoom-move-{image_id}",
                       on_click=_with_box, args=(image_id, workspace().move_face, image_id, face, new.box, reviewer),
                       kwargs={"seen": mark, "done": "Drawn face moved."})


def _with_box(image_id: int, action, *args, **kwargs) -> None:
    """Use the dragged box once."""
    st.session_state.pop(box_key(image_id), None)
    act(action, *args, **kwargs)


def _picked(record: ImageRecord, positions: list[int], key: str) -> None:
    n = st.session_state[key]
    if n == 0:
        select_face(record.id, None)
    else:
        select_face(record.id, positions[n - 1], record.faces[positions[n - 1]])


def _clicked(record: ImageRecord, view: zoom.View, chart_key: str) -> None:
    """A click on a face's marker selects it, and zooms to it when the window shows it smaller
    than a zoom to it would; a dragged box is kept for the buttons."""
    selection = st.session_state[chart_key].selection
    points = [p for p in selection.get("points", []) if p.get("customdata") is not None]
    boxes = selection.get("box", [])
    if boxes:
        (x0, x1), (y0, y1) = sorted(boxes[-1]["x"]), sorted(boxes[-1]["y"])
        if x1 - x0 >= 3 and y1 - y0 >= 3:
            st.session_state[box_key(record.id)] = (chart_key, (x0, y0, x1 - x0, y1 - y0))
            return
    if points:
        position = int(points[0]["customdata"][0] if isinstance(points[0]["customdata"], list)
                       else points[0]["customdata"])
        face = record.faces[position]
        select_face(record.id, position, face if zoom.on_face(face).zoom > view.zoom else None)


def _remove(image_id: int, face: Face, reviewer: str, mark: str) -> None:
    if act(workspace().remove_face, image_id, face, reviewer, seen=mark, done="Drawn face removed."):
        st.session_state[selected_key(image_id)] = None


def _figure(pixels, faces: list[Face], positions: list[int], window, view: zoom.View, drawing: bool) -> go.Figure:
    """The window as an image, with an invisible marker on every face of the table in it (not
    on the candidates under the near-miss band): the click targets.
    Plotly selects a point on a click only when a drag does nothing, hence the two mouse modes."""
    height, width = pixels.shape[:2]
    jpeg = base64.b64encode(encode_photo(pixels, "JPEG", 90)).decode()
    figure = go.Figure(go.Image(source=f"data:image/jpeg;base64,{jpeg}", hoverinfo="skip"))
    x0, y0, w, h = window
    inside = [(n, faces[n]) for n in positions
              if x0 <= faces[n].x + faces[n].w / 2 < x0 + w and y0 <= faces[n].y + faces[n].h / 2 < y0 + h]
    figure.add_trace(go.Scatter(
        x=[(f.x + f.w / 2 - x0) * view.zoom for _, f in inside], y=[(f.y + f.h / 2 - y0) * view.zoom for _, f in inside],
        customdata=[n for n, _ in inside], mode="markers", hoverinfo="none", showlegend=False,
        marker={"size": [max(10, min(60, f.h * view.zoom)) for _, f in inside], "opacity": 0.01, "symbol": "square"}))
    figure.update_layout(dragmode="select" if drawing else False, margin={"l": 0, "r": 0, "t": 0, "b": 0},
                         height=max(10, height),  # Plotly's least (a photo of a pixel or two)
                         clickmode="event+select")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure
