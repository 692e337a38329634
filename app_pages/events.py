"""Events: the event table with filters and a CSV download, charts (actions over time per
track, counts per action and event type, age group × gender, orientation) and a card per
person (track)."""
from __future__ import annotations

import streamlit as st

from app_pages import _charts as charts
from app_pages import _access as auth
from app_pages import _resources as res
from app_pages import _similar as similar
from services import workbench as wb

tf = wb.timefmt
auth.require(wb.Role.VIEWER)  # signed in, checked in the database on every run
svc = res.services()
settings = svc.settings

st.title("Events")

videos = res.analysed_videos_or_stop(
    settings, "No events yet. Analyse a video on the Analyze page; every person seen in every "
            "sampled frame becomes a row here.")

names = {v.video_id: v.name for v in videos}
durations = {v.video_id: v.duration_s for v in videos}
caps = res.capabilities(settings)
with st.expander("Filters", expanded=True, icon=":material/filter_list:"):
    c1, c2, c3 = st.columns(3)
    chosen = c1.multiselect("Videos", list(names), key="events.videos", persist_state="session",
                            format_func=lambda i: f"{names[i]} (video {i})",
                            placeholder="All videos")
    types = c1.multiselect("Event types", res.offered(wb.EVENT_TYPES, caps), key="events.types", persist_state="session",
                           placeholder="All event types")
    actions = c2.multiselect("Actions", res.offered(wb.ACTIONS, caps), key="events.actions", persist_state="session",
                             placeholder="All actions")
    genders = c2.multiselect("Gender", wb.GENDERS, key="events.genders", persist_state="session", placeholder="Any")
    ages = c3.multiselect("Age group", wb.AGE_GROUPS, key="events.ages", persist_state="session", placeholder="Any",
                          help="young < 30 ≤ middle < 60 ≤ old")
    uppers = c1.multiselect("Upper body colour", wb.COLOURS, key="events.uppers",
                            persist_state="session", placeholder="Any")
    lowers = c2.multiselect("Lower body colour", wb.COLOURS, key="events.lowers",
                            persist_state="session", placeholder="Any")
    objects = c3.multiselect("Object", wb.OBJECT_CLASSES, key="events.objects",
                             persist_state="session", placeholder="Any",
                             help="An object's track, or a person carrying, riding or sitting on one.")
    relations = c3.multiselect("Relation", wb.RELATIONS, key="events.relations",
                               persist_state="session", placeholder="Any",
                               format_func=lambda v: v.replace("_", " "),
                               help="People carrying, riding or sitting on an object.")
    longest = max((v.duration_s or 0.0) for v in videos if not chosen or v.video_id in chosen)
    top, step = tf.slider_range(longest)
    held = st.session_state.get("events.time")
    if held is not None:  # another video choice changed the range
        # An end handle left at the end of the range follows it (clearing the video filter must
        # not leave the table and CSV cut at the short video's end); a moved one stays.
        was_top = st.session_state.get("events.time_top", top)
        lo, hi = (min(max(0.0, float(x)), top) for x in held)
        if float(held[1]) >= was_top - 1e-9 or hi <= lo:
            hi = top
        st.session_state["events.time"] = (lo, hi)
    st.session_state["events.time_top"] = top
    t_range = c3.slider("Time in the video (s)", 0.0, top, (0.0, top), step=step,
                        key="events.time", persist_state="session", format="%.1f" if step < 1 else "%d")

query = wb.EventQuery(video_ids=tuple(chosen), event_types=tuple(types), actions=tuple(actions),
                      genders=tuple(genders), age_groups=tuple(ages),
                      upper_colours=tuple(uppers), lower_colours=tuple(lowers),
                      object_classes=tuple(objects), relations=tuple(relations), t_min_s=t_range[0] if t_range[0] > 0 else None,
                      t_max_s=t_range[1] if t_range[1] < top else None)
try:
    evs = wb.list_events(settings, query)
    marks = wb.review.marks_for(settings, [e.event_id for e in evs
                                           if wb.is_incident(e.event_type)])
    df = wb.events_table(evs, names, durations, marks)
    if not df.empty:  # newest video first, each in time order
        df = df.sort_values(["video_id", "t_s", "event_id"], ascending=[False, True, True],
                            ignore_index=True)
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the events")
    st.stop()

if t_range[0] > 0 or t_range[1] < top:  # never a silent cut: say the time filter is on
    st.caption(f"Time filter on: only events from {tf.clock(t_range[0], True)} to "
               f"{tf.clock(t_range[1], True)} into their video are listed and exported.")
if df.empty:
    st.info("No events match these filters. Clear some filters to see more.")
    st.stop()

m = st.columns(4)
m[0].metric("Events", len(df))
m[1].metric("Videos", df["video_id"].nunique())
people = df[df["event_type"] == wb.EventType.PERSON.value]
m[2].metric("People (tracks)", people[["video_id", "obj_id"]].dropna().drop_duplicates().shape[0])
m[3].metric("Incidents", int(df["event_type"].isin(wb.HIGHLIGHT_TYPES).sum()))

st.dataframe(
    df.drop(columns=["t_s", "thumbnail", "start_t_s", "end_t_s"]), hide_index=True,
    width="stretch", height=320,
    column_config={"confidence": st.column_config.NumberColumn(format="%.2f"),
                   "age": st.column_config.NumberColumn(format="%.0f"),
                   "orientation": st.column_config.NumberColumn(
                       help="0 = facing the camera, 90 = facing right, 180 = back to the "
                            "camera, 270 = facing left")},
    key="events.table")
# The CSV's links open the event in this workbench, at the address the analyst is using.
app_url = (st.context.url or "").split("?", 1)[0].rsplit("/", 1)[0] or None
st.download_button("Download CSV", wb.events_csv(df, settings, app_url), file_name="events.csv",
                   mime="text/csv",
                   icon=":material/download:", key="events.csv", on_click="ignore")

st.subheader("Charts")
st.plotly_chart(charts.timeline_figure(df), key="events.chart.timeline")
st.plotly_chart(charts.counts_figure(df), key="events.chart.counts")
st.caption("Seconds each action was seen, summed over people: the same whatever the sampling "
           "rate (row counts grow with it).")
c1, c2 = st.columns(2)
with c1:
    st.plotly_chart(charts.demographics_figure(df), key="events.chart.demographics")
    st.caption("One count per person (track): the age group and gender seen most often.")
with c2:
    st.plotly_chart(charts.orientation_figure(df), key="events.chart.orientation")

# --- a card per person -------------------------------------------------------------------------
st.subheader("People")
in_view = [vid for vid in names if vid in set(df["video_id"])]
vid = st.selectbox("Video", in_view, format_func=lambda i: f"{names[i]} (video {i})",
                   key="events.cards_video", persist_state="session")
try:
    cards = wb.track_cards(settings, vid)
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the tracks")
    cards = []
if not cards:
    st.info("No tracked person in this video.")
video_row = next(v for v in videos if v.video_id == vid)


MAX_CARDS = 12
if len(cards) > MAX_CARDS and not st.toggle(f"Show all {len(cards)} people",
                                             key="events.all_cards", persist_state="session"):
    st.caption(f"Showing the first {MAX_CARDS} of {len(cards)} people.")
    cards = cards[:MAX_CARDS]
for row_start in range(0, len(cards), 3):
    cols = st.columns(3)
    for col, card in zip(cols, cards[row_start:row_start + 3]):
        with col.container(border=True):
            s_ = card.summary
            st.markdown(f"**Track {s_.obj_id} · "
                        f"{tf.span(s_.first_t_s, s_.last_t_s, durations.get(card.video_id))}**")
            st.markdown(f"- Age: {card.age_text}\n- Gender: {card.gender_text}\n"
                        f"- Seen in {tf.counted(card.summary.n_observations, 'sampled frame')}")
            if card.action_history:
                st.caption("Actions: " + " → ".join(
                    f"{tf.at(t, durations.get(card.video_id))} {a.value}"
                    for t, a in card.action_history[:12])
                    + (" …" if len(card.action_history) > 12 else ""))
            crops = res.person_crops(card.video_id, card.summary.obj_id,
                                     str(video_row.updated_at), video_row, card)
            frames = [b for b in (res.frame(o) for o in card.thumbnails) if b]
            if crops:
                st.image(crops, width=90)
            if frames:
                st.image(frames, width=120, caption=["highlight"] * len(frames))
            similar.find_button(settings, "events", card.video_id, s_.obj_id)
similar.results(settings, names, "events")
