"""Overview: every photo of the session as an anonymised thumbnail, with its status and what
needs attention; filters, sorting by risk, paging."""

import hashlib

import streamlit as st

from core.kinds import is_video
from dashboard.previews import overview_rows, thumbnail
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

# Derived once, then only for the photos a change touched (states, flags, fingerprints): a
# filter, a page turn or a decision costs a few small queries, not 10,000 rows.
rows = overview_rows(session_id)
STATES = ("pending", "approved", "approval out of date", "rejected", "failed")
counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
st.caption(" · ".join(f"{n} {s}" for s, n in counts.items()))
show_flash()

# Bulk approval: the photos nothing flags, each approved in the state shown here, logged one by one.
# Never a video: one frame of it is all this page shows.
unflagged = [(r["id"], r["fingerprint"]) for r in rows
             if r["detected"] and not r["flags"] and r["status"] == "pending" and not is_video(r["name"])]
if unflagged:
    with st.expander(f"Approve the {len(unflagged)} pending photo(s) that need no attention"):
        st.caption("Each has at least one face found and covered, nothing switched off, drawn, near the threshold, "
                   "very small or flagged by the residual check. Each approval is logged photo by photo, with the "
                   "state shown here; a photo changed meanwhile is left pending. Videos are approved one by one, "
                   "on their own page, where their frames are seen.")

        def approve_all(chosen: list) -> None:
            done = sum(act(ws.decide, image_id, "approved", reviewer, "bulk approval: no attention flag", seen=mark)
                       for image_id, mark in chosen)
            flash("success", f"{done} of {len(chosen)} photo(s) approved.")

        # The tick is consent to these photos in these states: keyed by them, it is asked again
        # when detection adds one or a photo changes, not carried over to a longer list.
        these = hashlib.sha256(repr(unflagged).encode()).hexdigest()[:16]
        if st.checkbox(f"Yes, approve these {len(unflagged)} photo(s)", key=f"bulk-sure-{these}"):
            st.button(f"Approve {len(unflagged)} photo(s)", type="primary", on_click=approve_all, args=(unflagged,))

left, middle, right = st.columns(3)
statuses = left.multiselect("Status", list(counts), default=list(counts))
only_attention = middle.toggle("Needs attention only")
order = right.selectbox("Sort by", ["risk (most first)", "name", "order added"])

shown = [row for row in rows if row["state"] in statuses and (row["flags"] or not only_attention)]
if order.startswith("risk"):
    # The most serious flags first; among the same flags, the most faces they are about.
    shown.sort(key=lambda row: (-sum(weight for weight, _, _ in row["flags"]),
                                -sum(weight * count for weight, _, count in row["flags"]), row["id"]))
elif order == "name":
    shown.sort(key=lambda row: row["name"].lower())

pages = max(1, -(-len(shown) // PAGE_SIZE))
page = st.number_input(f"Page (of {pages})", 1, pages, 1) if pages > 1 else 1
for start in range((page - 1) * PAGE_SIZE, min(page * PAGE_SIZE, len(shown)), COLUMNS):
    for column, row in zip(st.columns(COLUMNS), shown[start:start + COLUMNS]):
        with column.container(border=True):
            if row["detected"]:
                record = ws.image(row["id"])
                st.image(thumbnail(record, record.settings(batch)), width="stretch")
                st.markdown(f"**{plain(row['name'])}**  \n{row['state']} · {row['faces']} face(s)")
            else:
                st.markdown(f"**{plain(row['name'])}**  \n{row['state']}")
            for _weight, text, _count in row["flags"]:
                st.caption(f":material/warning: {plain(text)}")
            if row["detected"] and st.button("Review", key=f"open-{row['id']}"):
                review(row["id"])
if not shown:
    st.info("No photos match these filters.")
