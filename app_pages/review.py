"""Review: the incidents (falls, collapses, fights, grabbing, anomalies) to work through, newest
video first. Each shows its frame, time range, tracks, confidence and the detector's measured
precision; the analyst marks it reviewed, confirmed or a false alarm (with a note), moves on with
the keyboard (Left / Right, Y confirm, N false alarm, V reviewed) and sees, below, the share of
judged incidents confirmed vs dismissed beside each detector's measured precision.

Like Frigate's review pane, each incident is an *alert* (a fall, collapse, fight or theft: look
now) or a *detection* (grabbing, running); "Mark all as reviewed" marks the unmarked incidents
listed. A mark belongs to the moment judged: after a re-run it shows "carried over from the
earlier analysis", and a marked incident the new run no longer finds is listed under "No longer
detected" (never dropped). Every mark is written by ``review.write_marks``."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import _access as auth
from app_pages import _resources as res
from services import workbench as wb

rv, tf, md = wb.review, wb.timefmt, wb.text.md_text
who = auth.require(wb.Role.VIEWER)
can_mark = who.may(wb.Role.ANALYST)  # viewers read the incidents; the server refuses their marks
svc = res.services()
settings = svc.settings

st.title("Review")

videos = res.analysed_videos_or_stop(
    settings, "Nothing analysed yet. Start an analysis on the Analyze page; falls, collapses, "
              "fights, grabbing and anomalies appear here to review.")
by_id = {v.video_id: v for v in videos}
caps = res.capabilities(settings)
TYPES = [t.value for t in rv.INCIDENT_TYPES if t is not wb.EventType.THEFT or caps.vlm]

# --- filters -----------------------------------------------------------------------------------
with st.container(border=True):
    f0, f1 = st.columns([2, 1.2], vertical_alignment="bottom")
    severity = f0.segmented_control(
        "Severity", [s.value for s in rv.Severity], key="review.severity", persist_state="session",
        format_func=lambda v: {"alert": "Alerts", "detection": "Detections"}[v],
        help="Alerts: falls, collapses, fights, theft (someone may be hurt: look first). "
             "Detections: grabbing, running. None picked: both.")
    unreviewed = f1.toggle("Unreviewed only", key="review.unreviewed", persist_state="session")
    f2, f3, f4 = st.columns([2, 1.5, 2.3], vertical_alignment="bottom")
    types = f2.multiselect("Type", TYPES, key="review.types", persist_state="session", placeholder="All types")
    min_conf = f3.slider("Minimum confidence", 0.0, 1.0, 0.0, 0.05, key="review.min_conf", persist_state="session")
    vids = f4.multiselect("Video", list(by_id), key="review.videos", persist_state="session", placeholder="All videos",
                          format_func=lambda i: f"{by_id[i].name} (video {i})")
    f5, f6 = st.columns(2, vertical_alignment="bottom")
    colours = f5.multiselect("Clothing colour", wb.COLOURS, key="review.colours",
                             persist_state="session", placeholder="Any colour",
                             help="The colour of the lead person's top or trousers.")
    objects = f6.multiselect("Object", wb.OBJECT_CLASSES, key="review.objects",
                             persist_state="session", placeholder="Any object",
                             help="The lead person carries, rides or sits on one.")

try:
    every = rv.review_items(settings, rv.IncidentFilter(event_types=tuple(types),
                                                     min_confidence=float(min_conf),
                                                     video_ids=tuple(vids), severity=severity,
                                                     colours=tuple(colours),
                                                     object_classes=tuple(objects)),
                         videos=by_id)
    lost = rv.lost_marks(settings, tuple(vids))
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the incidents")
    st.stop()
items = [i for i in every if i.mark is None] if unreviewed else every

# "Reviewed" is one state (looked at, no verdict); the accuracy table below says "marked" for
# any of the three, so one word never means two things.
counts = rv.state_counts(every)
m = st.columns(5)
m[0].metric("Incidents", len(every))
for col, (label, n) in zip(m[1:], counts.items()):
    col.metric(label.capitalize(), n)
# (No help icons on the counters: their buttons would share the mark buttons' names.)
st.caption(" · ".join(f"**{label.capitalize()}**: {text}" for label, text in rv.STATE_HELP.items()))

flash = st.session_state.pop("review.flash", None)
if flash:
    (st.error if flash[0] == "error" else st.success)(flash[1])


# --- actions (callbacks: they run before the page is drawn again) -------------------------------
def _go(event_id: int | None) -> None:
    st.session_state["review.current"] = event_id


def _mark(event_id: int, state: str | None, next_id: int | None) -> None:
    note = st.session_state.get(f"review.note.{event_id}", "")
    try:
        if state is None:
            rv.clear_mark(settings, event_id, actor=auth.session())
            st.session_state["review.flash"] = ("ok", f"Event {event_id}: mark cleared.")
        else:
            mark = rv.set_mark(settings, event_id, state, note, actor=auth.session())
            st.session_state["review.flash"] = ("ok", f"Event {event_id} marked "
                                                      f"{mark.state.label}.")
            if next_id is not None:
                st.session_state["review.current"] = next_id
    except wb.USER_ERRORS as e:
        st.session_state["review.flash"] = ("error", f"Could not store the mark: {e}")


def _mark_all(event_ids: list[int]) -> None:
    try:
        n = rv.mark_all_reviewed(settings, [i for i in items if i.event_id in set(event_ids)],
                                 actor=auth.session())
        st.session_state["review.flash"] = ("ok", f"{n} incident(s) marked reviewed; confirmed "
                                                  f"and false-alarm verdicts were kept.")
    except wb.USER_ERRORS as e:
        st.session_state["review.flash"] = ("error", f"Could not store the marks: {e}")


def _forget(mark_id: int) -> None:
    try:
        rv.forget_mark(settings, mark_id, actor=auth.session())
        st.session_state["review.flash"] = ("ok", "The mark was removed.")
    except wb.USER_ERRORS as e:
        st.session_state["review.flash"] = ("error", f"Could not remove the mark: {e}")


def _picked() -> None:
    rows = st.session_state["review.list"].selection.rows
    if rows and rows[0] < len(items):
        st.session_state["review.current"] = items[rows[0]].event_id


if not items:
    filtered = bool(types or vids or min_conf > 0)
    st.info("Every incident here has been reviewed." if unreviewed and every
            else "No incident matches these filters." if filtered
            else "No incident in the analysed videos: no fall, collapse, fight, grabbing or "
                 "anomaly was found. The Events page shows everything that was seen.")
else:
    ids = [i.event_id for i in items]
    if st.session_state.get("review.current") not in ids:
        st.session_state["review.current"] = ids[0]
    pos = ids.index(st.session_state["review.current"])
    item = items[pos]
    e = item.event
    prev_id = ids[pos - 1] if pos > 0 else None
    next_id = ids[pos + 1] if pos + 1 < len(ids) else None

    # The incident, then the list under it at full width: beside it, the list's columns were
    # cut off below ~1600 px (video and confidence hidden at 1440).
    left, right = st.container(), st.container()
    with left.container(border=True):
        nav = st.columns([1, 2, 1], vertical_alignment="center")
        nav[0].button("Previous", key="review.prev", icon=":material/chevron_left:",
                      shortcut="Left", disabled=prev_id is None, on_click=_go, args=(prev_id,))
        nav[1].markdown(f"<div style='text-align:center'>{pos + 1} of {len(ids)}</div>",
                        unsafe_allow_html=True)
        nav[2].button("Next", key="review.next", icon=":material/chevron_right:",
                      shortcut="Right", disabled=next_id is None, on_click=_go, args=(next_id,))
        st.subheader(f"{e.event_type.value.capitalize()} · {item.time_text} · "
                     f"{md(item.video_name)}")
        pic, facts = st.columns([1, 1], gap="small")
        img = res.frame(item.frame)
        if img is None:
            pic.warning("The annotated frame is missing from storage; re-run the analysis.")
        else:
            pic.image(img, width="stretch", caption=f"event {e.event_id}")
        prec = item.precision
        facts.markdown(
            f"- **severity**: {item.severity.value}\n"
            f"- **state**: {item.state_label}"
            + (f" ({md(item.mark.note)})" if item.mark and item.mark.note else "")
            + (f", *{rv.CARRIED}*" if item.mark and item.mark.carried_over else "") + "\n"
            f"- **time**: {item.time_text} (peak {tf.at(e.t_s, item.video_duration_s)})\n"
            f"- **involved**: {item.tracks_text}\n"
            f"- **confidence**: {e.confidence:.0%}\n"
            f"- **detector precision**: {prec.text if prec else 'not measured'}")
        if prec is not None and prec.source:
            facts.caption(md(prec.how))
        mark = item.mark
        if can_mark:
            st.text_input("Note (optional)", key=f"review.note.{e.event_id}",
                          value=mark.note if mark else "", max_chars=rv.NOTE_MAX_CHARS,
                          placeholder="e.g. two friends hugging, not a fight")
            # Buttons in a wrapping row: on a narrow window they move to the next line instead
            # of squeezing their labels away.
            with st.container(horizontal=True, gap="small"):
                st.button("Confirm", key="review.confirm", icon=":material/check_circle:",
                          shortcut="Y", type="primary", on_click=_mark,
                          args=(e.event_id, "confirmed", next_id))
                st.button("False alarm", key="review.false_alarm", icon=":material/cancel:",
                          shortcut="N", on_click=_mark, args=(e.event_id, "false_alarm", next_id))
                st.button("Reviewed", key="review.reviewed", icon=":material/visibility:",
                          shortcut="V", on_click=_mark, args=(e.event_id, "reviewed", next_id))
        with st.container(horizontal=True, gap="small"):
            if can_mark:
                st.button("Clear mark", key="review.clear", icon=":material/undo:",
                          disabled=mark is None, on_click=_mark, args=(e.event_id, None, None))
            if st.button("Open in the video", key="review.open", icon=":material/movie:"):
                res.open_video(e.video_id, e.event_id)

    with right:
        table = pd.DataFrame({
            "state": [i.state_label + (" (carried over)" if i.mark and i.mark.carried_over
                                       else "") for i in items],
            "type": [i.event.event_type.value for i in items],
            "severity": [i.severity.value for i in items],
            "time": [i.time_text for i in items],
            "video": [i.video_name for i in items],
            "confidence": [round(i.event.confidence, 2) for i in items],
            "tracks": [", ".join(map(str, i.tracks)) for i in items],
        })
        # Widths that fit a 1024 px window; the tracks (open-ended) last.
        st.dataframe(table, hide_index=True, width="stretch", key="review.list",
                     height=min(320, 35 * (len(items) + 1) + 3),
                     on_select=_picked, selection_mode="single-row", column_config={
                         "state": st.column_config.TextColumn(width=110),
                         "type": st.column_config.TextColumn(width=75),
                         "severity": st.column_config.TextColumn(width=75),
                         "time": st.column_config.TextColumn(width=105),
                         "video": st.column_config.TextColumn(width=100),
                         "confidence": st.column_config.NumberColumn(
                             "conf.", format="%.2f", width=50),
                         "tracks": st.column_config.TextColumn(width="small")})
        unmarked = [i.event_id for i in items if i.mark is None]
        if can_mark:
            st.button(f"Mark all as reviewed ({len(unmarked)})", key="review.mark_all",
                      icon=":material/done_all:", disabled=not unmarked, on_click=_mark_all,
                      args=(unmarked,), help="Marks the unmarked incidents listed here "
                                             "'reviewed'; confirmed and false-alarm verdicts stay.")
        st.caption("Pick a row, or use Left / Right. Y confirms, N marks a false alarm, "
                   "V marks it reviewed; marking moves to the next incident." if can_mark else
                   "Pick a row, or use Left / Right. Analysts mark the incidents.")

if lost:
    with st.expander(f"No longer detected ({len(lost)})", icon=":material/history:"):
        st.caption("Marks given on incidents that a later analysis of the video no longer finds. "
                   "They are kept; a re-run that finds the moment again takes them back.")
        for lm in lost:
            v = by_id.get(lm.video_id)
            row = st.columns([5, 1], vertical_alignment="center")
            row[0].markdown(
                f"**{lm.event_type.value}** · {tf.span(lm.start_s, lm.end_s, getattr(v, 'duration_s', None))}"
                f" · {md(getattr(v, 'name', f'video {lm.video_id}'))}: {md(rv.mark_text(lm))}"
                f" · *{rv.LOST}*")
            if can_mark:
                row[1].button("Forget", key=f"review.forget.{lm.mark_id}",
                              icon=":material/delete:", on_click=_forget, args=(lm.mark_id,))

# --- the analyst's accuracy --------------------------------------------------------------------
st.subheader("Accuracy")
st.caption("Marked: incidents with any mark (reviewed, confirmed or false alarm). Of those "
           "judged (confirmed or false alarm), the share confirmed and dismissed, beside the "
           "detector's measured precision.")
try:
    by_type, by_video = rv.accuracy(settings, names={i: v.name for i, v in by_id.items()})
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the review marks")
    st.stop()


def _share(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def _accuracy_table(rows, first: str, with_precision: bool) -> pd.DataFrame:
    data = {first: [r.key for r in rows], "incidents": [r.incidents for r in rows],
            "marked": [r.reviewed for r in rows], "confirmed": [r.confirmed for r in rows],
            "false alarms": [r.false_alarm for r in rows],
            "confirmed share": [_share(r.confirmed_share) for r in rows],
            "dismissed share": [_share(r.dismissed_share) for r in rows]}
    if with_precision:
        data["measured precision"] = ["not measured" if r.measured_precision is None
                                      else f"{r.measured_precision:.0%}" for r in rows]
    return pd.DataFrame(data)


st.markdown("**Per event type**")
if by_type:
    st.table(_accuracy_table(by_type, "type", True).set_index("type"))
else:
    st.caption("No incidents yet.")
st.markdown("**Per video**")
if by_video:
    st.table(_accuracy_table(by_video, "video", False).set_index("video"))
