"""Start: name a review session (or reopen one), add photos, run detection."""

from itertools import chain
from pathlib import Path

import streamlit as st

from core.report import local_time
from core.intake import add_files, allowed_roots, asked_part, folder_problem, intake_folder, intake_upload
from core.kinds import is_video
from core.run_review import import_run
from dashboard.sidebar import session_sidebar
from dashboard.state import act, current_session, flash, forget_place, open_session, show_flash, workspace
from dashboard.text import as_line, counted, plain
from dashboard.worker import detection_status, detection_worker

# A session's name leaves with what it publishes (`core.export.published_stem`): said where it is typed.
NAME_LEAVES = ("It names the zip and every file published from it (Sports_day_2026-0001.jpg) and is written in "
               "its manifest: put no one's name or case detail in it.")

st.title("Face privacy review")
ws = workspace()

opened = current_session()
if opened is None:
    left, right = st.columns(2)
    with left:
        st.subheader("New review session")
        with st.form("new-session"):
            name = st.text_input("Session name", placeholder="Sports day 2026", autocomplete="off",
                                 help=NAME_LEAVES)
            reviewer = st.text_input("Your name", placeholder="A. Officer")
            if st.form_submit_button("Start session", type="primary"):
                try:
                    open_session(ws.create_session(name, reviewer), reviewer.strip())
                    st.rerun()
                except ValueError as exc:
                    st.error(plain(exc))
    with right:
        st.subheader("Reopen a session")
        sessions = ws.sessions()
        if not sessions:
            st.caption("No earlier sessions.")
        else:
            st.dataframe(
                [{"name": as_line(s["name"]), "reviewer": as_line(s["reviewer"]), "created": local_time(s["created"]),
                  "images": s["images"], "approved": s["approved"] or 0, "rejected": s["rejected"] or 0}
                 for s in sessions],
                hide_index=True)
            with st.form("reopen"):
                chosen = st.selectbox("Session", sessions, format_func=lambda s: as_line(s["name"]))
                reviewer = st.text_input("Your name", key="reopen-reviewer")
                if st.form_submit_button("Open session"):
                    if reviewer.strip():
                        open_session(chosen["id"], reviewer.strip())
                        st.rerun()
                    else:
                        st.error("Enter your name: every decision is recorded with it.")
    with st.expander("Open a batch run for review (cluster or command line)"):
        st.caption("A run of `python -m core anonymize ... --ray` (or without) leaves a manifest.json beside its "
                   "outputs. Opening it (or the folder it is in) makes a review session of its photos with the "
                   "faces it found: they are not detected again. Its videos are detected again here (the manifest "
                   "keeps only the faces it covered), and so are the files it did not do (stopped before them, or "
                   "failed on them). The originals must still be where the run read them.")
        with st.form("open-run"):
            manifest = st.text_input("Manifest", placeholder="/home/me/Pictures/archive-out/manifest.json",
                                     autocomplete="off", help="Only files inside the allowed roots can be read: "
                                          + ", ".join(str(r) for r in allowed_roots()))
            run_name = st.text_input("Name for the review session", key="run-session", autocomplete="off",
                                     help=NAME_LEAVES)
            run_reviewer = st.text_input("Reviewer signing the review", key="run-reviewer")
            if st.form_submit_button("Open the run"):
                try:
                    if not run_reviewer.strip():
                        raise ValueError("Enter your name: every decision is recorded with it.")
                    opened_id, report = import_run(ws, Path(manifest.strip()), run_name, run_reviewer.strip(),
                                                   allowed_roots())
                    open_session(opened_id, run_reviewer.strip())
                    flash("success", f"Opened {report.added} photo(s) from the run"
                          + (f" ({report.chosen})" if report.chosen else "")
                          + (f"; {len(report.refused)} refused (listed below)" if report.refused else "")
                          + (f"; {len(report.videos)} video(s) to be detected again" if report.videos else "")
                          + (f"; {len(report.not_done)} file(s) the run did not do (it was stopped before them, or "
                             "failed on them), to be detected here" if report.not_done else "")
                          + ".")
                    st.rerun()
                except ValueError as exc:
                    st.error(plain(exc))
    st.stop()

session_id, reviewer = opened
session_sidebar(session_id, reviewer)
session = ws.session(session_id)
st.subheader(f"Session: {plain(session['name'])}")
show_flash()
if st.button("Close this session"):
    forget_place()
    st.rerun()

# How many names a message lists before "…and N more".
SHOWN_COMPANIONS, SHOWN_FAILURES = 5, 20

# The uploader's key changes after each intake, which drops the uploaded bytes from memory.
upload_round = st.session_state.setdefault("upload_round", 0)
# Uploads are held in memory, so they are limited (.streamlit/config.toml); the browser refuses a
# larger file and the server never hears of it. A folder's files are copied in chunks, of any size.
LIMIT_MB = st.get_option("server.maxUploadSize")
UPLOAD_LIMIT = f"{LIMIT_MB / 1024:g} GB" if LIMIT_MB >= 1024 else f"{LIMIT_MB} MB"
uploads = st.file_uploader(f"Photos and videos, or zips of them (a file over {UPLOAD_LIMIT}: type its folder below)",
                           accept_multiple_files=True, key=f"uploader-{upload_round}",
                           help="Uploaded files wait in the dashboard's memory until they are added: a batch of "
                                "several GB is better added by its folder, below, whose files are copied in chunks.")
folder = st.text_input("…or a folder on this machine", placeholder="/home/me/Pictures/sports-day",
                       key=f"folder-{upload_round}", autocomplete="off",
                       help="Only folders inside the allowed roots can be read: "
                            + ", ".join(str(r) for r in allowed_roots()))

with st.expander("Only part of each video (minutes of a long recording)", icon=":material/content_cut:"):
    st.caption("Each video added is taken as this part of it only, and detected and reviewed as that part: "
               "its pictures from the key frame at or before the start (often a second or two earlier) to the end, "
               "with their sound, copied as they are. Times from the video's first frame: 90, 1:30 or 1:01:30. "
               "Photos are taken whole.")
    part_from, part_to = st.columns(2)
    part_from = part_from.text_input("From", key=f"part-from-{upload_round}", placeholder="0:00")
    part_to = part_to.text_input("To", key=f"part-to-{upload_round}", placeholder="its end")
    by_clock = st.checkbox("These are times of day on the recorder's clock (09:31:00), as a request names them",
                           key=f"part-clock-{upload_round}",
                           help="For a CCTV recorder's export stamped with its clock (Dahua's DAV): each video is "
                                "cut where its own clock reads these times. A video without a clock is refused.")

# Never disabled: a folder typed and not yet applied (no Enter) is applied as the button is
# clicked, and a disabled button would swallow that first click.
add = st.button("Add and detect faces", type="primary")
part, part_problem = asked_part(part_from, part_to, by_clock)
if add and not uploads and not folder.strip():
    st.warning(f"Choose photos or videos to upload, or type a folder, first. A file over {UPLOAD_LIMIT} is not "
               "uploaded (the uploader marks it): type the folder it is in instead.")
elif add:
    # A folder that cannot be read is said here, and the typed path stays to be corrected: it
    # is not a file of the session.
    problem = folder_problem(folder.strip(), allowed_roots()) if folder.strip() else None
    if problem:
        st.error(plain(f"{folder.strip()}: {problem}"))
    elif part_problem:
        st.error(plain(f"Only part of each video: {part_problem}. Nothing was added."))
    else:
        bar = st.progress(0.0, text="Adding files…")
        offered = len(uploads or [])

        def advance(count: int, name: str) -> None:
            bar.progress(min(1.0, count / offered) if offered else 0.0,
                         text=plain(f"Adding files: {count} so far (last: {name})"))

        # A generator: each upload's bytes are copied only as it is added, not all at once.
        offers = chain((intake_upload(upload.name, upload.getvalue()) for upload in uploads or []),
                       [intake_folder(folder.strip(), allowed_roots())] if folder.strip() else [])
        reports = []
        for offer in offers:
            reports.append(add_files(ws, session_id, offer, reviewer, advance, part, by_clock))
            if reports[-1].full:
                break  # the disk is full: the next files would not fit either
        # What the last intake met, said until the next one.
        st.session_state["duplicates"] = [d for report in reports for d in report.duplicates]
        st.session_state["cuts"] = [c for report in reports for c in report.cuts]
        st.session_state["companions"] = [name for report in reports for name in report.companions]
        st.session_state["earlier_runs"] = [name for report in reports for name in report.earlier_runs]
        st.session_state["full"] = reports[-1].full and (sum(report.added for report in reports), reports[-1].full)
        if not reports[-1].full:  # else the files stay chosen, to be added again once there is room
            for key in (f"uploader-{upload_round}", f"folder-{upload_round}", f"part-from-{upload_round}",
                        f"part-to-{upload_round}", f"part-clock-{upload_round}"):
                st.session_state.pop(key, None)
            st.session_state["upload_round"] = upload_round + 1
        detection_worker(session_id).start(session_id, again=True)  # asked for, even after detection stopped
        st.rerun()

if full := st.session_state.get("full"):
    added, reason = full
    st.error(plain(f"The workspace's disk took no more ({reason}): {added} file(s) were added before, the others "
                   "were not. Free disk space (or make it writable), then press Add and detect faces again: the "
                   "files already added are named, not added twice."))

for offered, name in st.session_state.get("cuts", []):
    st.info(f"{plain(offered)}: only its part was added, as {plain(name)} (the log names the video it was cut from, "
            "with its SHA-256).")
for offered, same_as in st.session_state.get("duplicates", []):
    st.info(f"{plain(offered)}: same {'video' if is_video(offered) else 'photo'} as {plain(same_as)}, added once.")
for folder in st.session_state.get("earlier_runs", []):
    st.info(f"{plain(folder)} was not added: it holds the anonymised outputs of a batch run or of an export (their "
            "record is in it), which would be reviewed again beside the originals. A batch run opens for review from "
            "its manifest (Close this session, then Open a batch run for review); to add those files all the same, "
            "add that folder (or zip) itself.")
if companions := st.session_state.get("companions"):
    st.info(f"{len(companions)} file(s) that only go with photos and videos were passed over (sidecars, "
            "thumbnails, a card's index files; never published): "
            + plain(", ".join(companions[:SHOWN_COMPANIONS]) + ("…" if len(companions) > SHOWN_COMPANIONS else "")))


def say_what_is_ready() -> None:
    """What is ready for review and what could not be read, as detection goes: drawn every
    second while it runs, so no photo's faces are read (the session's records with their faces
    took 0.34 s for 3,000 photos)."""
    done = [name for _, name, _ in ws.listing(session_id)]
    failed = ws.failures(session_id)
    waiting = len(ws.awaiting_detection(session_id))
    if not (done or failed or waiting):  # a new session: nothing to say ready ("0 photos ready" read as a fault)
        st.info("Add photos and videos above: they are detected as they come, and listed here.")
        return
    st.success(f"{counted(done)} ready for review, {len(failed)} could not be read"
               + (f", {waiting} waiting for detection." if waiting else "."))
    if failed:
        st.error("These files cannot be processed:\n\n" + "\n".join(
            f"- **{plain(name)}**: {plain(reason)}" for name, reason in failed[:SHOWN_FAILURES])
            + (f"\n\n…and {len(failed) - SHOWN_FAILURES} more, listed below." if len(failed) > SHOWN_FAILURES else ""))
        if len(failed) > SHOWN_FAILURES:
            with st.expander(f"All {len(failed)} files that cannot be processed"):
                st.dataframe([{"file": as_line(name), "reason": as_line(reason)} for name, reason in failed], hide_index=True)
    if done:
        kinds = {is_video(name) for name in done}
        what = "photos and videos" if len(kinds) == 2 else "videos" if True in kinds else "photos"
        st.page_link("app_pages/overview.py", label=f"Review the {what}", icon=":material/grid_view:")


detection_status(session_id, then=say_what_is_ready)

with st.expander("Purge this session"):
    st.caption("Deletes every original, preview and zip of this session from this computer; the session can no "
               "longer be opened. The audit log keeps the photos' SHA-256 and the purge. Keep the audit packages "
               "you need first.")
    if st.checkbox(f"Yes, purge the session {plain(session['name'])} and delete its files", key="purge-sure"):
        def purge() -> None:
            if act(ws.purge_session, session_id, reviewer):
                forget_place()

        st.button("Purge the session", on_click=purge)
