"""Export: a zip of the approved photos only, anonymised at full resolution, with manifests."""

import streamlit as st

from core.export import export_approved
from dashboard.sidebar import batch_controls
from dashboard.state import engine, require_session, workspace

session_id, reviewer = require_session()
batch = batch_controls(session_id, reviewer)
ws = workspace()
st.title("Export")

records = ws.images(session_id)
ready = [r for r in records if r.approval_current(batch)]
pending = [r for r in records if r.status == "pending"]
st.markdown(f"**{len(ready)}** approved photo(s) will be exported. "
            f"{len(pending)} pending and {sum(r.status == 'rejected' for r in records)} rejected photo(s) "
            "are never included.")

if st.button("Build the zip", type="primary", disabled=not ready):
    bar = st.progress(0.0, text="Anonymising at full resolution…")

    def advance(done: int, total: int, name: str) -> None:
        bar.progress(done / total, text=f"{done} of {total}: {name}")

    try:
        result = export_approved(ws, session_id, reviewer, engine().detector, advance, engine().max_pixels)
        st.session_state["held_back"] = result.held_back
    except OSError as exc:
        st.error(f"The zip could not be written to {ws.exports}: {exc.strerror or exc}. "
                 "Nothing was lost; free some space or choose another workspace, then try again.")
    bar.empty()

if st.session_state.get("held_back"):
    st.warning("Held back by the residual check (a face was found again on the anonymised photo): "
               + ", ".join(st.session_state["held_back"])
               + ". Open each on the review page, look, and confirm or fix it; then export again.")

exports = sorted(ws.exports.glob("*.zip"), key=lambda p: p.stat().st_mtime, reverse=True)
if exports:
    latest = exports[0]
    st.success(f"Latest export: `{latest}`")
    st.download_button("Download the zip", data=latest.read_bytes, file_name=latest.name,
                       mime="application/zip", type="primary")

with st.expander("Audit log of this session"):
    st.dataframe([{"at": a["at"], "who": a["actor"], "action": a["action"], "image": a["image_id"],
                   "detail": str(a["detail"])} for a in reversed(ws.audit(session_id))], hide_index=True)
