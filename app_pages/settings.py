"""Batch settings: the one place for the settings every photo of the session follows (unless it
has its own). A change that would put approvals out of date says how many, and asks."""

import streamlit as st

from core.pipeline import Settings
from dashboard.controls import forget_controls, settings_controls
from dashboard.sidebar import session_sidebar
from dashboard.state import act, require_session, show_flash, workspace
from dashboard.text import counted, plain

session_id, reviewer = require_session()
batch = session_sidebar(session_id, reviewer)
ws = workspace()
st.title("Batch settings")
st.caption("These apply to every photo of this session that has no settings of its own. Moving a slider "
           "re-filters the faces already found: detection never runs again.")
show_flash()
key = f"batch-{session_id}"
with st.container(border=True):
    chosen = settings_controls(batch, key)


def apply(settings: Settings, seen: Settings, affected: list[str]) -> None:
    if act(ws.set_batch_settings, session_id, settings, reviewer, seen=seen, outdating=affected,
           done="Batch settings applied" + (f"; {len(affected)} approval(s) are out of date until approved "
                                            "again (or until these settings are set back)" if affected else ".")):
        forget_controls(key)


if chosen != batch:
    affected = ws.approvals_affected(session_id, chosen)
    if affected:
        st.warning(f"This change would put {counted(affected)}, approved, out of date: "
                   + ", ".join(plain(n) for n in affected[:10]) + (" and more" if len(affected) > 10 else "")
                   + ". They would not be exported until approved again; setting these values back makes "
                     "their approvals current again.")
    left, right = st.columns(2)
    left.button(f"Apply and put {len(affected)} approval(s) out of date" if affected else "Apply to the batch",
                type="primary", on_click=apply, args=(chosen, batch, affected))
    right.button("Cancel", on_click=forget_controls, args=(key,))
else:
    st.caption("No change to apply.")
