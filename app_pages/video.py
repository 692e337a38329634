"""Video detail: one video's job state and facts, its player with a timeline under it (incidents
as spans, people over time; clicking an incident plays it), its incidents listed beside, and
(when opened from the Review page or a search hit) one event's frame with its details. Photos are
shown as pictures; a file that was not read as a video gets no (black) player. The address
carries ``?video_id=N&event_id=M`` so citations can link here."""
from __future__ import annotations

import streamlit as st

from app_pages import _charts as charts
from app_pages import _access as auth
from app_pages import _resources as res
from app_pages import _similar as similar
from services import workbench as wb

rv, tf, md = wb.review, wb.timefmt, wb.text.md_text
auth.require(wb.Role.VIEWER)  # signed in, checked in the database on every run
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
kind = wb.media_kind(video)
dur = video.duration_s
# A wrapping row of metrics as wide as their values: five equal columns cut them at 1024 px
# ("com...", "30.0...").
with st.container(horizontal=True, gap="medium", key="video.facts"):
    st.metric("Status", video.status.value, width="content")
    st.metric("Length", "photo" if kind == "image" else tf.duration(dur), width="content")
    st.metric("Frame rate", f"{video.fps:.2f} fps" if video.fps and kind != "image" else "—",
              width="content")
    st.metric("Size", f"{video.width}×{video.height}" if video.width else "—", width="content")
    st.metric("Events", video.n_events or 0, width="content")


@st.fragment(run_every=1.0)
def _live_job(video_id: int) -> None:
    """The running job's bar, from the same job view as the sidebar and the Analyze page; when
    the job ends the page is drawn again (its results, no stale bar)."""
    auth.live_check()
    job = res.job_view(settings, video_id)
    if job is None or not job.show_bar:  # not yet in the views read a second ago, or ended
        if st.session_state.pop("video.live", None) == video_id:
            st.rerun(scope="app")
        return
    st.session_state["video.live"] = video_id
    st.progress(min(1.0, job.percent / 100.0), text=job.progress_text)
    st.caption("The analysis is running; its results appear here when it is done.")


if video.status in wb.ACTIVE:
    _live_job(video.video_id)
elif video.status is wb.JobStatus.FAILED:
    st.error(f"The analysis failed: {md(video.error_message or 'no reason recorded')}")
elif video.status is wb.JobStatus.CANCELLED:
    st.warning("The analysis was cancelled; start it again on the Analyze page.")
if video.status is wb.JobStatus.COMPLETED and video.last_attempt_status is not None:
    st.warning(f"A later analysis was {video.last_attempt_status.value}: "
               f"{md(video.last_attempt_error or 'no reason recorded')}. The results below are "
               f"from the earlier completed analysis, which is kept.", icon=":material/history:")
if video.warning:
    st.warning(f"Partial result: {md(video.warning)}.", icon=":material/warning:")
if video.token_usage:
    st.caption("Cloud model tokens: " + ", ".join(f"{k} {v}" for k, v in
                                                   dict(video.token_usage).items()))

# --- one event (from the Review page, a search hit, a citation or the timeline) ---------------
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

try:
    incidents = rv.review_items(settings, rv.IncidentFilter(video_ids=(video.video_id,)),
                             videos={video.video_id: video})
    people = rv.people_over_time(settings, video.video_id) if kind == "video" else []
    marks = rv.marks_for(settings, [event.event_id]) if event is not None else {}
    lost = rv.lost_marks(settings, [video.video_id])
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the incidents")
    incidents, people, marks, lost = [], [], {}, []


def _show(event_id: int | None) -> None:
    st.session_state["video.event_id"] = event_id


def _timeline_pick() -> None:
    points = st.session_state["video.timeline"].selection.get("points") or []
    for p in points:
        data = p.get("customdata")
        if data:
            _show(int(data[0] if isinstance(data, (list, tuple)) else data))
            return


left, right = st.columns([3, 2], gap="medium")
with left:
    if kind == "image":
        photo = wb.still_bytes(svc, video)
        # A photo's event: the person it found, outlined (there is no moment to play).
        boxed = (wb.outline_person(photo, event.bbox, f"track {event.obj_id} · "
                                   f"{event.action.value}")
                 if photo is not None and event is not None else None)
        if photo is None:
            st.info("The photo is not reachable from here.")
        elif boxed is not None:
            st.image(boxed, width=wb.player_width(video, 480),
                     caption=f"{md(video.name)}: the person of event {event.event_id}, outlined")
        else:
            st.image(photo, width=wb.player_width(video, 480), caption=md(video.name))
    elif kind == "none":
        st.info("No player: this file was not read as a video"
                + (" (the analysis failed)." if video.status is wb.JobStatus.FAILED else
                   " yet (its analysis has not opened it)."))
    else:
        media = wb.video_media(svc, video)
        if media is None:
            st.info("The source video is not reachable from here, so it cannot be played.")
        else:
            start = tf.play_from(event.t_s) if event is not None else 0
            st.video(media, start_time=start, width=wb.player_width(video))
            if event is not None:
                st.caption(tf.play_caption(event.t_s, dur, f"event {event.event_id}"))
        st.plotly_chart(charts.video_timeline_figure(incidents, people, dur),
                        key="video.timeline", on_select=_timeline_pick,
                        selection_mode="points", config={"displayModeBar": False})
with right:
    st.subheader(f"Incidents ({len(incidents)})")
    if not incidents:
        st.caption("No fall, collapse, fight, grabbing or anomaly in this video.")
    for inc in incidents:
        chosen = event is not None and inc.event_id == event.event_id
        st.button(f"{inc.event.event_type.value} · {inc.time_text} · {inc.tracks_text} · "
                  f"{inc.state_label}", key=f"video.inc.{inc.event_id}",
                  icon=":material/play_arrow:", type="primary" if chosen else "secondary",
                  on_click=_show, args=(inc.event_id,), width="stretch")
    for lm in lost:  # marks whose incident a re-run no longer found (kept, never dropped)
        st.caption(f"{lm.event_type.value} · {tf.span(lm.start_s, lm.end_s, dur)} · "
                   f"{md(rv.mark_text(lm))} · *{rv.LOST}*")
    if event is not None:
        with st.container(border=True):
            st.subheader(f"Event {event.event_id}: {event.event_type.value} at "
                         f"{tf.at(event.t_s, dur)}")
            img = res.frame(wb.HighlightItem(event, video.name).frame)
            if img is not None:
                st.image(img, width="stretch")
            tracks = event.people
            st.markdown(f"- action: **{event.action.value}** ({event.confidence:.0%})\n"
                        f"- {'tracks' if len(tracks) > 1 else 'track'}: "
                        f"{', '.join(map(str, tracks)) or '—'}\n"
                        f"- person: {event.gender.value}, {event.age_group.value}\n"
                        f"- frame {event.frame_number}\n"
                        f"- review: {md(rv.mark_text(marks.get(event.event_id)))}")
            if event.sentence:
                st.caption(md(event.sentence))
            st.button("Close", key="video.close", on_click=_show, args=(None,),
                      icon=":material/close:")
    elif kind != "image":
        st.caption(f"Source: {md(video.source_uri or '—')}")
    try:
        lines = wb.video_tracks(settings, video.video_id)
    except wb.USER_ERRORS as e:
        res.show_error(e, "Cannot read the tracks")
        lines = []
    if lines:
        st.subheader(f"People and objects ({len(lines)})")
        st.dataframe([{"track": t.obj_id, "what": t.what,
                       "seen": tf.span(t.first_t_s, t.last_t_s, dur), "colours": t.colours,
                       "objects": t.objects} for t in lines],
                     hide_index=True, width="stretch", key="video.tracks")

# --- the same person in other videos ----------------------------------------------------------
if video.status is wb.JobStatus.COMPLETED:
    try:
        tracks = [c.summary for c in wb.track_cards(settings, video.video_id)]
    except wb.USER_ERRORS as e:
        res.show_error(e, "Cannot read the people")
        tracks = []
    if tracks:
        st.subheader("The same person in other videos")
        ids_t = [t.obj_id for t in tracks]
        spans = {t.obj_id: tf.span(t.first_t_s, t.last_t_s, dur) for t in tracks}
        first = event.obj_id if event is not None and event.obj_id in ids_t else ids_t[0]
        c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
        pick = c1.selectbox("Person (track)", ids_t, index=ids_t.index(first),
                            key=f"video.similar_track.{video.video_id}",
                            format_func=lambda o: f"track {o} · {spans[o]}")
        with c2:
            similar.find_button(settings, "video", video.video_id, pick)
        similar.results(settings, names, "video")
