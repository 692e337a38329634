"""Video detail: one video's job state and facts, its player, its highlights and (when opened
from a highlight or a search citation) one event's frame with its details. The address carries
``?video_id=N&event_id=M`` so citations can link here."""
from __future__ import annotations

import streamlit as st

from app_pages import _resources as res
from services import workbench as wb

svc = res.services()
settings = svc.settings

st.title("Video detail")


def _int(v) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


# A link (?video_id=..&event_id=..) wins over what another page put in the session.
qp_video, qp_event = _int(st.query_params.get("video_id")), _int(st.query_params.get("event_id"))
if qp_video is not None and st.session_state.get("video.link") != (qp_video, qp_event):
    st.session_state["video.id"] = qp_video
    st.session_state["video.event_id"] = qp_event

try:
    videos = wb.list_videos(settings)
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the videos")
    st.stop()
if not videos:
    st.info("No videos yet. Start an analysis on the Analyze page.")
    st.page_link("app_pages/analyze.py", label="Go to Analyze", icon=":material/play_circle:")
    st.stop()

ids = [v.video_id for v in videos]
current = st.session_state.get("video.id")
if current not in ids:
    if current is not None:
        st.warning(f"Video {current} does not exist (any more); showing the newest one.")
    current = ids[0]


def _on_pick() -> None:
    st.session_state["video.id"] = st.session_state["video.pick"]
    st.session_state["video.event_id"] = None


names = {v.video_id: v.name for v in videos}
st.selectbox("Video", ids, index=ids.index(current), key="video.pick", on_change=_on_pick,
             format_func=lambda i: f"{names[i]} (video {i})")
video = next(v for v in videos if v.video_id == current)

# --- facts and state ---------------------------------------------------------------------------
m = st.columns(5)
m[0].metric("Status", video.status.value)
m[1].metric("Duration", wb.mmss(video.duration_s))
m[2].metric("Frame rate", f"{video.fps:.2f} fps" if video.fps else "—")
m[3].metric("Size", f"{video.width}×{video.height}" if video.width else "—")
m[4].metric("Events", video.n_events or 0)
if video.status in wb.ACTIVE:
    st.progress(min(1.0, video.progress / 100.0),
                text=f"{video.progress:.0f}% · {video.stage or video.status.value}")
    st.caption("The analysis is running; the Analyze page shows it live.")
elif video.status is wb.JobStatus.FAILED:
    st.error(f"The analysis failed: {video.error_message or 'no reason recorded'}")
elif video.status is wb.JobStatus.CANCELLED:
    st.warning("The analysis was cancelled; start it again on the Analyze page.")
if video.token_usage:
    st.caption("Cloud model tokens: " + ", ".join(f"{k} {v}" for k, v in
                                                   dict(video.token_usage).items()))

# --- one event (from a highlight or a citation) ------------------------------------------------
event_id = st.session_state.get("video.event_id")
# The address always shows what is on screen, so it can be shared or bookmarked.
st.query_params.from_dict({"video_id": str(video.video_id)}
                          | ({"event_id": str(event_id)} if event_id is not None else {}))
st.session_state["video.link"] = (video.video_id, event_id)
event = None
if event_id is not None:
    try:
        event = wb.get_event(settings, event_id)
    except wb.USER_ERRORS as e:
        res.show_error(e, "Cannot read the event")
    if event is None or event.video_id != video.video_id:
        st.warning(f"Event {event_id} is not part of this video (it may have been replaced by a "
                   f"newer analysis).")
        event = None

media = wb.video_media(svc, video)
left, right = st.columns([3, 2], gap="medium")
with left:
    if media is None:
        st.info("The source video is not reachable from here, so it cannot be played.")
    else:
        start = max(0, int(event.t_s) - 2) if event is not None else 0
        st.video(media, start_time=start, width=wb.player_width(video))
        if event is not None:
            st.caption(f"Plays from {wb.mmss(start)}, 2 s before event {event.event_id}.")
with right:
    if event is not None:
        st.subheader(f"Event {event.event_id}: {event.event_type} at {wb.mmss(event.t_s)}")
        img = res.frame(wb.HighlightItem(event, video.name).frame)
        if img is not None:
            st.image(img, width="stretch")
        st.markdown(f"- action: **{event.action}** ({event.confidence:.0%})\n"
                    f"- track: {event.obj_id if event.obj_id is not None else '—'}\n"
                    f"- person: {event.gender}, {event.age_group}\n"
                    f"- frame {event.frame_number}")
        if event.sentence:
            st.caption(event.sentence)
    else:
        st.caption(f"Source: {video.source_uri or '—'}")

# --- its highlights ----------------------------------------------------------------------------
st.subheader("Highlights of this video")
try:
    items = wb.highlights(settings, video_ids=[video.video_id])
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the highlights")
    items = []
if not items:
    st.caption("No highlight in this video.")
cols = st.columns(4) if items else []
for i, item in enumerate(items):
    with cols[i % 4].container(border=True):
        img = res.frame(item.frame)
        if img is not None:
            st.image(img, width="stretch")
        st.caption(item.caption)
        if st.button("Show", key=f"video.show.{item.event.event_id}"):
            st.session_state["video.event_id"] = item.event.event_id
            st.rerun()
