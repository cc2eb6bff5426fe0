"""A video on the review page: a frame scrubber showing the covered frame, and each person
(track) with its time range; the switches are the face table's, one row per track."""

from __future__ import annotations

import json

import streamlit as st

from core import times, video, video_review, zoom
from core.images import ImageError
from core.pipeline import Settings, failure_reason
from core.records import ImageRecord
from core.tracks import Track
from core.review import render, table_marks
from dashboard.faces import drawn_box
from dashboard.previews import say_too_thin, say_unreadable, too_thin
from dashboard.state import act, workspace
from dashboard.zoom import moves
from dashboard.text import plain


def video_view(record: ImageRecord, settings: Settings, outline: bool, near: bool, show_original: bool,
               reviewer: str, mark: str, wide=None) -> video.Scan:
    """The clip's frame scrubber and face table; returns the clip, as scanned. `wide`: where the
    zoomed frame goes (a container across the page)."""
    clip, every = video_review.all_tracks(workspace().files, record.sha256, record.id)
    part, part_said = _part(clip, settings)
    tracks = video_review.covered_tracks(every, record.faces, settings.threshold)
    # Counted from 1, as the caption counts; a clip of one frame has nothing to move between (and
    # Streamlit refuses a slider whose ends are equal).
    index = 0
    if clip.frames > 1:
        index = st.slider("Frame", 1, clip.frames, key=f"frame-{record.id}",
                          help="Every frame is covered on export: drag to check any of them.") - 1
    faces = video_review.frame_faces(tracks, index)
    try:
        frame = video_review.frame_at(workspace().files.object_path(record.sha256), clip, index)
    except Exception as exc:  # noqa: BLE001 - this clip's problem, said on its page; its tracks still listed
        say_unreadable(record, workspace().files.problem(record.sha256) or failure_reason(exc))
    else:
        if too_thin(record, frame.shape[1::-1]):
            say_too_thin(record)
        else:  # boxes numbered as the face table's rows (each row is a track), not by their place in the frame
            marks = video_review.frame_marks(every, table_marks(record.faces, settings.threshold, outline, near),
                                             index)
            caption = _caption(clip, index, len(faces), part is None or index in part,
                               settings.sound and any(a <= clip.at(index) < b for a, b in settings.silence))
            if st.toggle("Zoom: inspect this frame at full resolution", key=f"frame-zoom-{record.id}",
                         help="A crowd's small faces, a few pixels tall in the whole frame, at their own size "
                              "or closer; the view stays where it is while you scrub."):
                rows = marks if outline else video_review.frame_marks(  # outlined or not, each can be zoomed to
                    every, table_marks(record.faces, settings.threshold, True, near), index)
                with wide or st.container():
                    _frame_zoom(record, clip, index, frame, faces, marks, rows, settings, caption, reviewer, mark)
            else:
                _frame_view(record, clip, index, render(frame, frame.shape[1], faces, settings, marks=marks),
                            caption, reviewer, mark, frame if show_original else None)
    if clip.info.audio:
        _listen(record, settings)
    _track_table(record, settings, clip, every, part_said)
    return clip


# Sound or video is played on a page up to this size: it is held in memory to be served (a day's
# CCTV sound at 64 kbit/s is 700 MB).
PLAYABLE_BYTES = 512 << 20


def _listen(record: ImageRecord, settings: Settings) -> None:
    """The clip's sound as it will leave, to find where a name is said and hear the parts
    silenced: its times are the frames' captions' times. Where its settings leave the sound out,
    as it would leave if kept: to decide whether it may be."""
    label = ("Listen to its sound, as it will leave" if settings.sound else
             "Listen to its sound (its settings leave it out of the export)")
    if not st.toggle(label, key=f"listen-{record.id}",
                     help="To find where a name is said or a voice would identify someone (then give those "
                          "parts in its own settings: \"Silence the sound\"), and to hear them silent."):
        return
    try:
        tracks = sound_tracks(record.sha256)
        # a browser plays one track of a file: each is heard on its own (a second microphone may say a name)
        track = st.selectbox("Sound track", range(len(tracks)), key=f"listen-track-{record.id}",
                             format_func=lambda n: f"track {n + 1} of {len(tracks)}: {tracks[n]}",
                             help="Every track leaves, each silenced alike: listen to each.") \
            if len(tracks) > 1 else 0
        with st.spinner("Reading its sound..."):
            path = video_review.sound_preview(workspace().files, record.sha256, settings.silence, track)
    except Exception as exc:  # noqa: BLE001 - this clip's problem, said here; the rest of the page stands
        st.error(plain(f"Its sound cannot be played here: {failure_reason(exc)}."))
        return
    if path is None:
        st.caption("It has no sound that can be read.")
    elif path.stat().st_size > PLAYABLE_BYTES:
        st.caption(plain(f"Its sound is too long to play here ({path.stat().st_size >> 20} MB)."))
    else:
        st.audio(path.read_bytes(), format="audio/mp4")
        st.caption(plain("Times are from its first frame, as each frame's caption gives them"
                         + (f"; silent {_silenced(settings.silence)}." if settings.silence else ".")
                         + ("" if settings.sound else " It leaves without its sound, as its settings ask: to keep "
                            "it, with the parts where a name is said silenced, tick \"Keep the sound of "
                            "videos\" in its own settings.")))


def _part(clip: video.Scan, settings: Settings) -> tuple[video.Part | None, str]:
    """The part of the clip its settings export (None: all of it), and what to say of it."""
    try:
        part = clip.part(settings.start, settings.end, settings.by_clock)
    except ImageError as exc:
        return None, f" The part to export that its settings ask for cannot be cut: {exc.reason}."
    if part is None:
        return None, ""
    return part, (f" Only {times.said_time(clip.at(part.first))} to "
                  f"{times.said_time(clip.at(part.last) + 1 / clip.rate)} (frames "
                  f"{part.first + 1} to {part.last + 1}) will be exported, as its settings ask.")


def _track_table(record: ImageRecord, settings: Settings, clip, every, part_said: str) -> None:
    """Each person (track) with its time range, thumbnail and confidence, under what the clip
    is (`part_said`: which part of it is exported)."""
    by_id = {t.id: t for t in every}
    detected = {t.id for t in clip.tracks}
    thumbs = thumbnails(record.sha256) | {  # a drawn face's, from the frame it was drawn on
        t.id: thumb for t in every if t.id not in detected
        and (thumb := drawn_thumbnail(record.sha256, json.dumps(t.to_dict()))) is not None}
    rows = [{"face": f"data:image/jpeg;base64,{thumbs[tid]}" if tid in thumbs else None,
             "track": face.detector, "covered": face.covered_at(settings.threshold),
             "from s": round(clip.at(by_id[tid].first), 2), "to s": round(clip.at(by_id[tid].last), 2),
             "frames seen": len(by_id[tid].frames), "confidence": round(face.score, 2)}
            for face in record.faces if (tid := video_review.track_id(face)) in by_id and
            (face.covered_at(settings.threshold) or face.score >= settings.threshold - 0.1)]
    sound = (clip.info.audio or "none") + ("" if not clip.info.audio else
                                           " (left out of the export, as the settings ask)" if not settings.sound else
                                           f" (silenced {_silenced(settings.silence)}, as the settings ask)"
                                           if settings.silence else "")
    left_out = f" Not written to the export: {clip.info.left_out}." if clip.info.left_out else ""
    st.caption(plain(f"{record.name}: {clip.frames} frames, {times.said_time(clip.duration)}, sound: "
                     f"{sound}.{left_out}{part_said} Each row of the face table is one person's "
                     "appearance (a track), switched for the whole clip; a cover is held a few frames past each end."))
    st.dataframe(rows, hide_index=True, row_height=60,
                 column_config={"face": st.column_config.ImageColumn("face", help="the surest frame of the track")})


def _silenced(silence: tuple[tuple[float, float], ...]) -> str:
    """ "from 1.00 s to 2.00 s; from 3.00 s to 3.50 s" """
    return "; ".join(f"from {times.said_span(a, b)}" for a, b in silence)


def _caption(clip, index: int, covers: int, exported: bool, silenced: bool) -> str:
    """What frame `index` is: its place and time, and how it leaves (`exported`: whether it is in
    the part of the clip exported; `silenced`: whether its sound is silenced)."""
    clock = f" (the recording's clock: {clip.clock(index)})" if clip.clock(index) else ""
    return (f"frame {index + 1} of {clip.frames} at {times.said_time(clip.at(index))}{clock}, "
            + (f"covered as exported ({covers} cover(s) in this frame)" if exported else
               "not exported: outside the part its settings ask for")
            + ("; its sound is silenced" if silenced and exported else ""))


def _frame_zoom(record: ImageRecord, clip, index: int, frame, faces, marks, rows, settings: Settings,
                caption: str, reviewer: str, mark: str) -> None:
    """Frame `index` as exported, at full resolution or closer, panned and zoomed with buttons,
    `marks` outlined (see `zoom.render_window`); each face of `rows` (marks too) can be zoomed to
    by its row's number, and a face the detectors missed drawn where it is seen. The view stays
    while the frame is scrubbed."""
    key = f"frame-view-{record.id}"
    height, width = frame.shape[:2]
    view: zoom.View = st.session_state.get(key) or zoom.fit(width, height)
    tools = st.columns([2.2, 1, 1, 1, 1, 1, 1, 1.6])
    pick = f"frame-pick-{record.id}-{index}"

    def picked() -> None:
        if st.session_state[pick]:
            st.session_state[key] = zoom.on_face(rows[st.session_state[pick] - 1][1])

    tools[0].selectbox("Zoom to", range(len(rows) + 1), key=pick, label_visibility="collapsed", on_change=picked,
                       format_func=lambda n: f"face {rows[n - 1][0]}" if n else "zoom to a face")
    moves(tools[1:], key, view, width, height, "Whole frame")
    pixels, window = zoom.render_window(frame, faces, settings, view, marks=marks)
    x, y, w, h = window
    said = f"{caption}; showing x {x}-{x + w}, y {y}-{y + h} of {width} x {height} px at {view.zoom:g}x"
    shown = video.square_pixels(pixels, clip.info.pixel_shape)
    if st.toggle("Draw a face the detectors missed, in this window", key=f"frame-zoom-draw-{record.id}",
                 help="A small face is drawn best where it is seen at its own size or closer."):
        st.caption(said)
        box = drawn_box(shown, shown.shape[1], key=f"zoom-draw-{record.id}-{index}-{view}")
        if box:  # in the window's pixels as shown: as the frame's own pixels
            shape = clip.info.pixel_shape
            box = zoom.to_photo((box[0] / shape, box[1], box[2] / shape, box[3]), window, view.zoom)
            _add_drawn(record, index, box, reviewer, mark, f"zoom-add-{record.id}")
    else:
        st.image(shown, output_format="JPEG", caption=said)
    if clip.frames > 1:  # step through the frames here, the view kept (the scrubber is further down)
        scrubber = f"frame-{record.id}"
        back, on, _ = st.columns([1, 1, 4])
        back.button("◀ Previous frame", key=f"{key}-back", disabled=index == 0, width="stretch",
                    on_click=lambda: st.session_state.update({scrubber: index}))
        on.button("Next frame ▶", key=f"{key}-on", disabled=index == clip.frames - 1, width="stretch",
                  on_click=lambda: st.session_state.update({scrubber: index + 2}))


def _frame_view(record: ImageRecord, clip, index: int, covered, caption: str, reviewer: str, mark: str,
                original=None) -> None:
    """One frame, covered as exported (and the `original` frame beside it, if given), or a box
    drawn on it for a missed face or a drifted track."""
    shape = clip.info.pixel_shape  # a 16:9 DVD's frame is shown stretched, as a player shows it
    if st.toggle("Draw a face the detectors missed, on this frame", key=f"drawing-{record.id}"):
        stretched = video.square_pixels(covered, shape)
        box = drawn_box(stretched, stretched.shape[1], key=f"draw-{record.id}-{index}")
        box = box and (box[0] / shape, box[1], box[2] / shape, box[3])  # in the frame's own pixels
        drawn = [tid for f in record.faces if f.by_hand and (tid := video_review.track_id(f)) is not None]
        target = st.radio("This box is", ["a face the detectors missed"] + [f"track {tid} (drawn), moved here"
                                                                             for tid in drawn],
                          key=f"target-{record.id}", horizontal=True,
                          help="Where a drawn face's box drifted off the face, draw it again on that frame "
                               "and choose its track: it is followed again from there.") if drawn else None
        if box and target and target.startswith("track "):
            number = int(target.split()[1])
            st.button(f"Move track {number} here and follow it again", key=f"move-{record.id}", type="primary",
                      on_click=act, args=(video_review.move_drawn, workspace(), record, number, index, box, reviewer),
                      kwargs={"seen": mark, "done": f"Track {number} moved; it is followed again from this frame."})
        elif box:
            _add_drawn(record, index, box, reviewer, mark, f"add-{record.id}")
    else:
        shown = [(covered, caption)]
        if original is not None:
            shown.append((original, "original (never exported)"))
        for column, (pixels, caption) in zip(st.columns(len(shown)), shown):
            column.image(video.square_pixels(pixels, shape), output_format="JPEG", width="stretch", caption=caption)


def _add_drawn(record: ImageRecord, index: int, box, reviewer: str, mark: str, key: str) -> None:
    """The button that adds a box drawn on frame `index` (in the frame's own pixels) as a face,
    followed through the frames around it."""
    st.button("Add this face and follow it", key=key, type="primary",
              on_click=act, args=(video_review.add_drawn, workspace(), record, index, box, reviewer),
              kwargs={"seen": mark, "done": "Face added; it is followed through the frames around it: "
                                            "scrub to check; where it drifts, draw it again and move it."})


@st.cache_data(max_entries=64, show_spinner=False)
def sound_tracks(sha256: str) -> list[str]:
    return video.sound_tracks(workspace().files.object_path(sha256))


@st.cache_data(max_entries=8, show_spinner=False)
def thumbnails(sha256: str) -> dict[int, str]:
    return video_review.load_thumbnails(workspace().files, sha256)


@st.cache_data(max_entries=64, show_spinner=False)
def drawn_thumbnail(sha256: str, track: str) -> str | None:
    """A drawn track's thumbnail, kept by what the track is (a moved track gets its own)."""
    files = workspace().files
    return video_review.drawn_thumbnail(files.object_path(sha256), video_review.load_scan(files, sha256),
                                        Track.from_dict(json.loads(track)))

