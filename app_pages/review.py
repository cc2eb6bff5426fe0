"""One image: anonymised preview beside the original, the per-face table, drawing a missed
face, this photo's own settings, and the decision.

Every action is a callback bound to the state this page showed (`mark`, the photo's
fingerprint as rendered): if the photo changed meanwhile, in another tab or by another
reviewer, the action is refused with a message and the page shows the photo as it is now."""

import streamlit as st

from core.zoom import drawn_face
from core.pipeline import Settings
from core.records import APPROVED, PENDING, REJECTED
from dashboard.controls import forget_controls, settings_controls
from dashboard.faces import drawn_box, face_rows, switched
from dashboard.keys import shortcuts
from core.review import face_crop
from dashboard.previews import (full_resolution, listing, original, original_problem, prefetch_full, preview,
                                preview_jpeg, say_too_thin, say_unreadable, too_thin)
from dashboard.sidebar import session_sidebar
from dashboard.state import act, remember_photo, require_session, show_flash, workspace
from dashboard.text import as_line, plain
from dashboard.video import video_view
from dashboard.worker import detection_status
from dashboard.zoom import selected_key, zoom_view
from core.kinds import is_video

session_id, reviewer = require_session()
batch = session_sidebar(session_id, reviewer)
ws = workspace()
reviewable = listing(session_id)  # (id, name, status): no faces read for the picker


def show_when_ready() -> None:
    if listing(session_id):
        st.rerun()


if not reviewable:
    failed = len(ws.failures(session_id))
    st.info("No photo is ready for review yet." + (f" {failed} file(s) could not be used: Start lists each with "
                                                   "the reason." if failed else ""))
    # Opened while the batch is detected (or after a restart): follow detection, and show the
    # first photo as soon as it is ready, not only when the reviewer reloads the page.
    detection_status(session_id, then=show_when_ready)
    st.page_link("app_pages/start.py", label="Add photos", icon=":material/play_arrow:")
    st.stop()

ids = [image_id for image_id, _name, _status in reviewable]
if st.session_state.get("image_id") not in ids:
    st.session_state["image_id"] = ids[0]
position = ids.index(st.session_state["image_id"])


PICKER_REACH = 50


def go(image_id: int) -> None:
    st.session_state["image_id"] = image_id


back, pick, jump, forward = st.columns([1, 4.6, 1.4, 1])
back.button("◀ Previous", disabled=position == 0, on_click=go, args=(ids[max(position - 1, 0)],))
forward.button("Next ▶", disabled=position == len(ids) - 1, on_click=go, args=(ids[min(position + 1, len(ids) - 1)],))
# The picker lists the photos around this one (a list of every photo of a 10,000-photo session
# costs 50 ms a rerun); the number jumps anywhere.
near = reviewable[max(0, position - PICKER_REACH):position + PICKER_REACH + 1]
pick.selectbox("Photo", near, index=near.index(reviewable[position]), label_visibility="collapsed",
               format_func=lambda row: f"{as_line(row[1])} ({row[2]})", key=f"pick-{ids[position]}",
               on_change=lambda key: go(st.session_state[key][0]), args=(f"pick-{ids[position]}",))
jump.number_input(f"Photo number, of {len(ids)}", 1, len(ids), value=position + 1, key=f"jump-{ids[position]}",
                  label_visibility="collapsed", help=f"Go to photo number … of {len(ids)}",
                  on_change=lambda key: go(ids[st.session_state[key] - 1]), args=(f"jump-{ids[position]}",))

image_id = st.session_state["image_id"]
remember_photo(image_id)
record = ws.image(image_id)
mark = record.current_fingerprint(batch)  # the state this page shows; every action names it
settings = record.settings(batch)
show_flash()

state = record.state(batch)
st.markdown(f"### {plain(record.name)} — {state}"
            + (f" by {plain(record.decided_by)}" if record.decided_by and state != PENDING else ""))
if record.approval_outdated(batch):
    st.caption("Approved earlier, but the settings or faces changed since: approve again to export it, "
               "or set them back.")

zoom_area = st.container()  # the zoom view takes the page's whole width, above the columns
left, right = st.columns([3, 2])
with left:
    show_original = st.toggle("Show the original beside it", key=f"original-{image_id}")
    outline = st.toggle("Outline covered regions", value=True, key=f"outline-{image_id}")
    near = st.toggle("Outline near misses (grey)", key=f"near-{image_id}")
    residual = record.residual_open(settings)
    is_clip = is_video(record.name)
    if not is_clip:
        prefetch_full(record)
    zooming = not is_clip and st.toggle("Zoom: inspect, select and draw at full resolution", key=f"zoom-{image_id}")
    walking = not is_clip and not zooming and st.toggle("Walk the faces at full resolution", key=f"walk-{image_id}")
    unreadable = (zooming or walking) and original_problem(record)
    clip = None
    if is_clip:
        clip = video_view(record, settings, outline, near, show_original, reviewer, mark, zoom_area)
    elif too_thin(record):
        say_too_thin(record)
    elif unreadable:
        say_unreadable(record, unreadable)
    elif zooming:
        with zoom_area:
            zoom_view(record, settings, face_rows(record.faces, settings.threshold)[1], reviewer, mark,
                      outline, near)
    elif walking:
        walk_rows, walk_positions = face_rows(record.faces, settings.threshold)
        if not walk_positions:
            st.info("No face or near miss to walk through.")
        else:
            step_key = f"walk-step-{image_id}"
            step = min(st.session_state.get(step_key, 0), len(walk_positions) - 1)
            face = record.faces[walk_positions[step]]
            row = walk_rows[step]
            st.image(face_crop(full_resolution(record, settings), face, settings),
                     caption=f"Face {row['face']} of {len(walk_rows)} ({row['kind']}, confidence {row['confidence']}, "
                             f"{row['size px']} px), full resolution, as exported")
            prev_face, cover, next_face = st.columns([1, 2, 1])
            prev_face.button("◀ Previous face", disabled=step == 0, key=f"walk-prev-{image_id}",
                             on_click=lambda: st.session_state.update({step_key: step - 1}))
            next_face.button("Next face ▶", disabled=step == len(walk_positions) - 1, key=f"walk-next-{image_id}",
                             on_click=lambda: st.session_state.update({step_key: step + 1}))
            covered = row["covered"]
            cover.button("Leave this face uncovered" if covered else "Cover this face", key=f"walk-cover-{image_id}",
                         on_click=act, args=(ws.switch_faces, image_id, [(face, not covered)], reviewer),
                         kwargs={"seen": mark})
    elif st.toggle("Draw a face the detectors missed", key=f"drawing-{image_id}"):
        box = drawn_box(preview(record, settings, True, residual, near), record.width, key=f"draw-{image_id}")
        if box:
            st.button("Add this face", key=f"add-{image_id}", type="primary",
                      on_click=act, args=(ws.add_face, image_id, drawn_face(box, settings.padding), reviewer),
                      kwargs={"seen": mark, "done": "Face added, covered as drawn."})
    else:
        shown = [(preview_jpeg(record, settings, outline, residual, near), "anonymised preview")]
        if show_original:
            shown.append((original(record), "original (never exported)"))
        for column, (pixels, caption) in zip(st.columns(len(shown)), shown):
            column.image(pixels, caption=caption, width="stretch", output_format="JPEG")
    if residual:
        exposed = [f for f in residual if f.detector == "exposed"]
        st.warning(f"The residual check flagged {len(residual)} face(s) on the anonymised photo (boxed in "
                   f"purple): {len(exposed)} covered face(s) still show in the output's pixels, "
                   f"{len(residual) - len(exposed)} found again by the detector, at "
                   + "; ".join(f"x {f.x:.0f}, y {f.y:.0f} ({f.w:.0f} x {f.h:.0f} px)" for f in residual)
                   + ". Add a face there, or confirm that the photo is safe to publish.")
        st.button("I have looked: this photo is safe", key=f"confirm-{image_id}",
                  on_click=act, args=(ws.confirm_residual, image_id, reviewer),
                  kwargs={"seen": mark, "done": "Confirmed: the next export includes this photo."})

with right:
    st.markdown("**Faces**: untick to leave a face uncovered; tick a near miss (just under the threshold) to "
                "cover it")
    rows, positions = face_rows(record.faces, settings.threshold)
    selected_face = st.session_state.get(selected_key(image_id))
    for row, at in zip(rows, positions):  # the face selected in the zoom view
        row["selected"] = "◀ selected" if at == selected_face else ""

    def table_edited(key: str, photo: int, faces: list, positions: list[int], threshold: float, seen: str) -> None:
        """Switch the faces ticked or unticked in the table shown for `seen` (its rows, as shown);
        refused if the photo changed since. A callback, as every action: a tick sent with a press
        of Approve (a quick reviewer, a busy page) is done too, not lost as the page moves on."""
        changes = switched(faces, positions, st.session_state[key]["edited_rows"], threshold)
        if changes and act(ws.switch_faces, photo, changes, reviewer, seen=seen):
            go(photo)  # a decision sent with the tick moved on: its photo, changed since, is shown again

    table_key = f"faces-{image_id}-{mark}"  # a new table for every state of the photo
    st.data_editor(rows, hide_index=True, key=table_key, on_change=table_edited,
                   args=(table_key, image_id, record.faces, positions, settings.threshold, mark),
                   disabled=["face", "kind", "confidence", "size px", "detector", "selected"],
                   column_order=["face", "covered", "selected", "kind", "confidence", "size px", "detector"],
                   column_config={"covered": st.column_config.CheckboxColumn("covered")})
    drawn = [(n + 1, record.faces[i]) for n, i in enumerate(positions) if record.faces[i].manual]
    for number, face in drawn:
        st.button(f"Remove drawn face {number}", key=f"remove-face-{image_id}-{number}",
                  on_click=act, args=(ws.remove_face, image_id, face, reviewer),
                  kwargs={"seen": mark, "done": f"Drawn face {number} removed."})
    st.button("Undo the last change to the faces", key=f"undo-{image_id}", icon=":material/undo:",
              on_click=lambda: act(ws.undo_faces, image_id, reviewer, seen=mark, done="Undone."))

    comment_key = f"comment-{image_id}"
    st.text_input("Comment (optional)", value=record.draft if record.draft is not None else record.comment,
                  key=comment_key, autocomplete="off",
                  on_change=lambda: act(ws.save_draft, image_id, st.session_state[comment_key]))

    def decide(decision: str, seen: str, next_id: int | None) -> None:
        comment = st.session_state.get(comment_key, "")
        if act(ws.decide, image_id, decision, reviewer, comment, seen=seen,
               done=f"{record.name}: {decision}."):
            if decision != PENDING and next_id is not None:
                st.session_state["image_id"] = next_id

    following = ids[position + 1] if position < len(ids) - 1 else None
    shortcuts({"a": "Approve", "r": "Reject", "ArrowRight": "Next ▶", "ArrowLeft": "◀ Previous",
               "t": ["Leave face …", "Cover face …", "Leave this face uncovered", "Cover this face"]},
              "Keys: A approve · R reject · → next · ← previous · T cover or uncover the selected face "
              "(zoom or walk) · not while typing a comment")
    approve, reject, reopen = st.columns([1, 1, 1.4])
    approve.button("Approve", type="primary", key=f"approve-{image_id}", on_click=decide,
                   args=(APPROVED, mark, following))
    reject.button("Reject", key=f"reject-{image_id}", on_click=decide, args=(REJECTED, mark, following))
    reopen.button("Back to pending", key=f"pending-{image_id}", disabled=record.status == PENDING,
                  on_click=decide, args=(PENDING, mark, None))

    own_key, item = f"image-{image_id}", "clip" if is_clip else "photo"
    with st.expander(f"This {item} only: its own settings", icon=":material/photo_filter:",
                     expanded=record.override is not None):
        st.caption(f"Settings set here replace the batch settings for this one {item}. The batch's are on "
                   "the Batch settings page.")
        own = st.toggle("Use its own settings", value=record.override is not None, key=f"own-{image_id}")
        wanted: Settings | None = (settings_controls(record.override or batch, key=own_key, videos=is_clip,
                                                     duration=clip and clip.duration) if own else None)

        def set_own(value: Settings | None, seen: str) -> None:
            if act(ws.set_override, image_id, value, reviewer, seen=seen, done=f"This {item}'s settings changed."):
                forget_controls(own_key)

        if wanted != record.override:
            st.button(f"Apply to this {item}" if wanted else "Follow the batch settings again", type="primary",
                      key=f"apply-own-{image_id}", on_click=set_own, args=(wanted, mark))

    with st.expander(f"Remove this {item} from the session"):
        st.caption("Deletes its original and previews from this computer (unless another session holds the "
                   f"same {item}). The audit log keeps its SHA-256 and the removal.")
        if st.checkbox("Yes, remove it", key=f"remove-sure-{image_id}"):
            def remove() -> None:
                if act(ws.remove_image, image_id, reviewer, done=f"{record.name} removed; its files are deleted."):
                    st.session_state.pop("image_id", None)

            st.button(f"Remove the {item}", key=f"remove-{image_id}", on_click=remove)
