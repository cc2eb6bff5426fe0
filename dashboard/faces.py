"""The per-face table and the box a reviewer draws, translated to and from `Face` lists."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core.faces import Face, near_misses, reviewable
from core.images import encode_photo


def face_rows(faces: list[Face], threshold: float) -> tuple[list[dict], list[int]]:
    """Table rows, and the position of each row's face in the full list: first the faces the
    reviewer decides on (selected by the threshold, chosen, or drawn), then the near misses just
    under the threshold, not covered until ticked."""
    chosen, near = reviewable(faces, threshold), near_misses(faces, threshold)
    rows = [{"face": n + 1, "covered": faces[i].covered_at(threshold),
             "kind": "drawn" if faces[i].manual else "near miss, covered" if faces[i].forced else "found",
             "confidence": round(faces[i].score, 2), "size px": round(faces[i].size), "detector": faces[i].detector}
            for n, i in enumerate(chosen)]
    rows += [{"face": len(chosen) + n + 1, "covered": False, "kind": "near miss", "confidence": round(faces[i].score, 2),
              "size px": round(faces[i].size), "detector": faces[i].detector} for n, i in enumerate(near)]
    return rows, chosen + near


def switched(faces: list[Face], positions: list[int], edited_rows: dict, threshold: float) -> list[tuple[Face, bool]]:
    """The faces the reviewer ticked or unticked in the table ({row: {"covered": bool}}), each
    as it was shown and whether it is now to be covered."""
    changes = []
    for row, values in edited_rows.items():
        if int(row) >= len(positions):
            continue
        face = faces[positions[int(row)]]
        if "covered" in values and bool(values["covered"]) != face.covered_at(threshold):
            changes.append((face, bool(values["covered"])))
    return changes


DRAW_SIDE = 900


def drawn_box(base: np.ndarray, full_width: int, key: str) -> tuple[float, float, float, float] | None:
    """Let the reviewer drag a box over the photo; returns it in full-size pixels."""
    scale = min(1.0, DRAW_SIDE / max(base.shape[:2]))
    shown = cv2.resize(base[:, :, :3], (round(base.shape[1] * scale), round(base.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    # The picture travels as a JPEG, not as a JSON array of every pixel.
    jpeg = base64.b64encode(encode_photo(shown, "JPEG", 85)).decode()
    figure = go.Figure(go.Image(source=f"data:image/jpeg;base64,{jpeg}", hoverinfo="skip"))
    # An invisible grid of points makes the image selectable with the box tool.
    ys, xs = np.mgrid[0:shown.shape[0]:6, 0:shown.shape[1]:6]
    figure.add_trace(go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", marker={"opacity": 0},
                                hoverinfo="skip", showlegend=False))
    figure.update_layout(dragmode="select", margin={"l": 0, "r": 0, "t": 0, "b": 0},
                         height=round(620 * shown.shape[0] / shown.shape[1]) + 20)
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    event = st.plotly_chart(figure, on_select="rerun", selection_mode="box", key=key,
                            config={"displayModeBar": False})
    boxes = (event or {}).get("selection", {}).get("box", [])
    if not boxes:
        st.caption("Drag a box around the missed face.")
        return None
    k = full_width / shown.shape[1]
    (x0, x1), (y0, y1) = sorted(boxes[-1]["x"]), sorted(boxes[-1]["y"])
    box = (round(x0 * k, 1), round(y0 * k, 1), round((x1 - x0) * k, 1), round((y1 - y0) * k, 1))
    st.caption(f"Box at x {box[0]:.0f}, y {box[1]:.0f}, {box[2]:.0f} x {box[3]:.0f} px")
    return box if box[2] >= 2 and box[3] >= 2 else None
