"""One image: anonymised preview beside the original, the per-face table, drawing a missed
face, and the decision."""

import streamlit as st

from core.faces import Face
from core.workspace import APPROVED, PENDING, REJECTED
from dashboard.controls import settings_controls
from dashboard.faces import drawn_box, face_rows, faces_after_edit
from dashboard.previews import original, preview
from dashboard.sidebar import batch_controls
from dashboard.state import require_session, workspace

session_id, reviewer = require_session()
batch = batch_controls(session_id, reviewer)
ws = workspace()
reviewable = [r for r in ws.images(session_id) if r.detected]
if not reviewable:
    st.info("No photo is ready for review yet.")
    st.page_link("pages/start.py", label="Add photos", icon=":material/play_arrow:")
    st.stop()

ids = [r.id for r in reviewable]
if st.session_state.get("image_id") not in ids:
    st.session_state["image_id"] = ids[0]
position = ids.index(st.session_state["image_id"])

back, pick, forward = st.columns([1, 6, 1])
if back.button("◀ Previous", disabled=position == 0):
    st.session_state["image_id"] = ids[position - 1]
    st.rerun()
if forward.button("Next ▶", disabled=position == len(ids) - 1):
    st.session_state["image_id"] = ids[position + 1]
    st.rerun()
chosen = pick.selectbox("Photo", reviewable, index=position, label_visibility="collapsed",
                        format_func=lambda r: f"{r.name} ({r.status})")
if chosen.id != st.session_state["image_id"]:
    st.session_state["image_id"] = chosen.id
    st.rerun()

image_id = st.session_state["image_id"]
record = ws.image(image_id)

with st.sidebar:
    own = st.toggle("Own settings for this photo", value=record.override is not None, key=f"own-{image_id}")
    chosen = None
    if own:
        st.caption("These replace the batch settings for this photo only.")
        chosen = settings_controls(record.override or batch, key=f"image-{image_id}")
    if chosen != record.override:  # written only when it changes
        ws.set_override(image_id, chosen, reviewer)
record = ws.image(image_id)
settings = record.settings(batch)

st.markdown(f"### {record.name} — {record.status}"
            + (f" by {record.decided_by} ({record.decided_at})" if record.decided_by else ""))
left, right = st.columns([3, 2])
with left:
    show_original = st.toggle("Show the original beside it", key=f"original-{image_id}")
    outline = st.toggle("Outline covered regions", value=True, key=f"outline-{image_id}")
    residual = record.residual_open(settings)
    if st.toggle("Draw a face the detectors missed", key=f"drawing-{image_id}"):
        box = drawn_box(preview(record, settings, True, residual), record.width, key=f"draw-{image_id}")
        if box and st.button("Add this face", key=f"add-{image_id}", type="primary"):
            ws.set_faces(image_id, record.faces + [Face.drawn(*box)], reviewer, f"face drawn at {box}")
            st.rerun()
    else:
        shown = [(preview(record, settings, outline, residual), "anonymised preview")]
        if show_original:
            shown.append((original(record), "original (never exported)"))
        for column, (pixels, caption) in zip(st.columns(len(shown)), shown):
            column.image(pixels, caption=caption, width="stretch", output_format="JPEG")
    if residual:
        st.warning(f"The residual check found {len(residual)} face(s) on the anonymised photo (boxed in "
                   "purple), at "
                   + "; ".join(f"x {f.x:.0f}, y {f.y:.0f} ({f.w:.0f} x {f.h:.0f} px, score {f.score:.2f})"
                               for f in residual)
                   + ". Add a face there, or confirm that the photo is safe to publish.")
        if st.button("I have looked: this photo is safe", key=f"confirm-{image_id}"):
            ws.confirm_residual(image_id, reviewer)
            st.rerun()

with right:
    st.markdown("**Faces** (untick to leave a face uncovered)")
    rows, positions = face_rows(record.faces, settings.threshold)
    edited = st.data_editor(rows, hide_index=True, key=f"faces-{image_id}-{'-'.join(map(str, positions))}",
                            disabled=["face", "confidence", "size px", "detector", "added by hand"],
                            column_order=["face", "enabled", "confidence", "size px", "detector", "added by hand"],
                            column_config={"enabled": st.column_config.CheckboxColumn("enabled")})
    changed = faces_after_edit(record.faces, positions, edited)
    if changed is not None:
        faces, why = changed
        ws.set_faces(image_id, faces, reviewer, why)
        st.rerun()

    comment = st.text_input("Comment (optional)", value=record.comment, key=f"comment-{image_id}")
    approve, reject, reopen = st.columns(3)
    decision = None
    if approve.button("Approve", type="primary", key=f"approve-{image_id}"):
        decision = APPROVED
    if reject.button("Reject", key=f"reject-{image_id}"):
        decision = REJECTED
    if reopen.button("Back to pending", key=f"pending-{image_id}", disabled=record.status == PENDING):
        decision = PENDING
    if decision:
        ws.decide(image_id, decision, reviewer, comment)
        st.toast(f"{record.name}: {decision}")
        if decision != PENDING and position < len(ids) - 1:
            st.session_state["image_id"] = ids[position + 1]
        st.rerun()
