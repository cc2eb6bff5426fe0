"""Overview: every photo of the session as an anonymised thumbnail, with its status and what
needs attention; filters, sorting by risk, paging."""

import streamlit as st

from core.faces import selected
from core.review import attention
from dashboard.previews import thumbnail
from dashboard.sidebar import session_sidebar
from dashboard.state import act, flash, require_session, review, show_flash, workspace
from dashboard.text import plain
from dashboard.worker import detection_status

PAGE_SIZE = 24
COLUMNS = 4

session_id, reviewer = require_session()
batch = session_sidebar(session_id, reviewer)
ws = workspace()
st.title("Overview")
detection_status(session_id)

records = ws.images(session_id)
rows = [(r, r.settings(batch), attention(r, r.settings(batch))) for r in records]
STATES = ("pending", "approved", "approval out of date", "rejected", "failed")
counts = {s: sum(r.state(batch) == s for r in records) for s in STATES}
st.caption(" · ".join(f"{n} {s}" for s, n in counts.items()))
show_flash()

# Bulk approval: the photos nothing flags, each approved in the state shown here, logged one by one.
unflagged = [(r, r.current_fingerprint(batch)) for r, _settings, flags in rows
             if r.detected and not flags and r.status == "pending"]
if unflagged:
    with st.expander(f"Approve the {len(unflagged)} pending photo(s) that need no attention"):
        st.caption("Each has at least one face found and covered, nothing switched off, drawn, near the threshold, "
                   "very small or flagged by the residual check. Each approval is logged photo by photo, with the "
                   "state shown here; a photo changed meanwhile is left pending.")

        def approve_all(chosen: list) -> None:
            done = sum(act(ws.decide, r.id, "approved", reviewer, "bulk approval: no attention flag", seen=mark)
                       for r, mark in chosen)
            flash("success", f"{done} of {len(chosen)} photo(s) approved.")

        if st.checkbox(f"Yes, approve these {len(unflagged)} photo(s)", key="bulk-sure"):
            st.button(f"Approve {len(unflagged)} photo(s)", type="primary", on_click=approve_all, args=(unflagged,))

left, middle, right = st.columns(3)
statuses = left.multiselect("Status", list(counts), default=list(counts))
only_attention = middle.toggle("Needs attention only")
order = right.selectbox("Sort by", ["risk (most first)", "name", "order added"])

shown = [row for row in rows if row[0].state(batch) in statuses and (row[2] or not only_attention)]
if order.startswith("risk"):
    shown.sort(key=lambda row: (-sum(flag.weight for flag in row[2]), row[0].id))
elif order == "name":
    shown.sort(key=lambda row: row[0].name.lower())

pages = max(1, -(-len(shown) // PAGE_SIZE))
page = st.number_input(f"Page (of {pages})", 1, pages, 1) if pages > 1 else 1
for start in range((page - 1) * PAGE_SIZE, min(page * PAGE_SIZE, len(shown)), COLUMNS):
    for column, (record, settings, flags) in zip(st.columns(COLUMNS), shown[start:start + COLUMNS]):
        with column.container(border=True):
            if record.detected:
                st.image(thumbnail(record, settings), width="stretch")
                faces = len(selected(record.faces, settings.threshold))
                st.markdown(f"**{plain(record.name)}**  \n{record.state(batch)} · {faces} face(s)")
            else:
                st.markdown(f"**{plain(record.name)}**  \n{record.state(batch)}")
            for flag in flags:
                st.caption(f":material/warning: {plain(flag.text)}")
            if record.detected and st.button("Review", key=f"open-{record.id}"):
                review(record.id)
if not shown:
    st.info("No photos match these filters.")
