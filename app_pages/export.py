"""Export: a publication zip of the approved photos, anonymised at full resolution, and an audit
package for the reviewer; built in the background; each listed with who made it, when, what is
in it, and whether it still matches the session."""

import streamlit as st

from core.export import exported_files, exported_member, published_stem
from core.kinds import is_video
from core.report import detail_text, local_time
from dashboard import video as clip_view
from dashboard.sidebar import session_sidebar
from dashboard.state import act, flash, require_session, show_flash, workspace
from dashboard.text import as_line, counted, plain
from dashboard.worker import export_progress, export_worker

session_id, reviewer = require_session()
batch = session_sidebar(session_id, reviewer)
ws = workspace()
st.title("Export")
show_flash()
worker = export_worker()
worker.resume(session_id, reviewer)

records = ws.images(session_id)
ready = [r for r in records if r.approval_current(batch)]
held = [r for r in ready if r.residual_result(batch)]
outdated = [r for r in records if r.approval_outdated(batch)]
st.markdown(
    f"**{counted(r.name for r in ready if r not in held)}**, approved, will be exported"
    + (f" (of {counted(r.name for r in ready)} approved: {len(held)} held back by the residual check until you "
       "confirm them on the review page)" if held else "")
    + ". Approved files not yet checked are checked as the zip is built, and held back if a face still shows. "
    + f"Never included: {sum(r.status == 'pending' for r in records)} pending, {len(outdated)} with an approval "
      f"out of date, {sum(r.status == 'rejected' for r in records)} rejected, {sum(bool(r.error) for r in records)} "
      "that could not be read. The audit package lists every file with what became of it.")

if any(is_video(r.name) for r in records):
    st.caption("Videos leave with their sound " + ("kept" if batch.sound else "left out")
               + " (Batch settings: \"Keep the sound of videos\"; a video with its own settings follows those). "
                 "Faces are covered, voices are not.")

name = ws.session(session_id)["name"]
stem = published_stem(name)
st.caption(f"The session's name leaves with what is published: it names the zip and every file in it "
           f"({plain(stem)}-0001.jpg, {plain(stem)}-0002.jpg...) and is written in its manifest "
           f"(\"{plain(name)}\"). Put no one's name or case detail in it.")
with st.expander("Rename the session before publishing"):
    key = f"rename-{session_id}"

    def rename(seen: str) -> None:
        try:
            act(ws.rename_session, session_id, st.session_state[key], reviewer, seen=seen,
                done="Session renamed: any zip made before it is out of date; build the zip again to publish.")
        except ValueError as exc:
            flash("error", str(exc))

    with st.form(f"rename-form-{session_id}"):
        st.text_input("New name", value=name, key=key, autocomplete="off")
        st.form_submit_button("Rename", on_click=rename, args=(name,))

exports = ws.exports.of_session(session_id)
building = [e for e in exports if e["status"] == "building"]
if building:
    export_progress(building[0]["id"])
else:
    st.button("Build the zip", type="primary", disabled=not ready,
              on_click=act, args=(worker.start, session_id, reviewer))

current = next((e for e in exports if e["current"]), None)
if current:
    counts = current["counts"]
    st.success(f"Current export, made {local_time(current['finished_at'])} by {plain(current['started_by'])}: "
               f"{counts.get('exported', 0)} file(s) exported, {counts.get('held back', 0)} held back. It matches "
               "the session as it is now.")
    st.caption(f"SHA-256 of the zip: {current['sha256']}")  # what a copy sent on can be checked against
    left, right = st.columns(2)
    left.link_button("Download the zip", f"/download/{current['id']}/zip", type="primary")
    right.link_button("Download the audit package (keep it: it maps published names to originals)",
                      f"/download/{current['id']}/audit")
    made = [ws.files.export_path(current[kind]) for kind in ("file", "audit_file")]
    if counts.get("exported") and all(path.exists() for path in made) and st.toggle(
            f"Look at what leaves ({counts['exported']} file(s)), shown from the zip itself",
            key=f"watch-{current['id']}",
            help="What a recipient will see and hear: each file as the zip holds it, not a preview."):
        leaving = exported_files(*made)  # only when asked: the audit's list of a large batch is long
        shown = st.selectbox("File", list(leaving), key=f"watched-{current['id']}",
                             format_func=lambda name: as_line(f"{name} (from {leaving[name]})"))
        data = exported_member(ws.files.export_path(current["file"]), shown, clip_view.PLAYABLE_BYTES)
        if data is None:
            st.info(plain(f"{shown} is over {clip_view.PLAYABLE_BYTES >> 20} MB: too large to show here. Download "
                          "the zip and open it from there."))
        elif is_video(shown):
            st.video(data, format="video/mp4")
        else:
            st.image(data, caption=as_line(f"{shown}, as the zip holds it"))
elif exports and exports[0]["status"] == "complete":
    st.warning("The last zip is out of date: a decision, edit or setting, or the session's name, changed after it "
               "was started. Build the zip again to publish.")
if exports and exports[0]["status"] == "failed":
    st.error(f"The last export failed: {plain(exports[0]['error'])}. Nothing was lost; fix the cause and build again.")

held_back = current["counts"].get("held back") if current else 0
if held_back:
    st.warning(f"{held_back} file(s) were held back: the residual check found a face still showing, or the file "
               "could not be anonymised (the audit package says which and why). Open each on the review page (they "
               "are flagged in the overview), look, and confirm or fix it; then build again.")

if exports:
    with st.expander(f"All exports of this session ({len(exports)})"):
        st.dataframe([{
            "started": local_time(e["started_at"]), "by": as_line(e["started_by"]),
            "state": ("current" if e["current"] else "out of date" if e["status"] == "complete" else e["status"]),
            "exported": e["counts"].get("exported"), "held back": e["counts"].get("held back"),
            "rejected": e["counts"].get("rejected"), "pending": e["counts"].get("pending"),
            "failed": e["counts"].get("failed"),
        } for e in exports], hide_index=True)
        for e in (e for e in exports if e["status"] == "complete"):
            st.link_button(f"Audit package of {local_time(e['finished_at'])}", f"/download/{e['id']}/audit")

with st.expander("Audit log of this session"):
    names = {r.id: r.name for r in records}
    st.dataframe([{"when": local_time(a["at"]), "who": as_line(a["actor"]), "what": a["action"],
                   "photo": as_line(names.get(a["image_id"], "")),
                   "detail": as_line(detail_text(a["detail"]))}
                  for a in reversed(ws.audit(session_id))], hide_index=True)
