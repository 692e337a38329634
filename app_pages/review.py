"""Review: the incidents (falls, collapses, fights, grabbing, anomalies) to work through, newest
video first. Each shows its frame, time range, tracks, confidence and the detector's measured
precision; the analyst marks it reviewed, confirmed or a false alarm (with a note), moves on with
the keyboard (Left / Right, Y confirm, N false alarm, V reviewed) and sees, below, the share of
judged incidents confirmed vs dismissed beside each detector's measured precision."""
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
    f1, f2, f3, f4 = st.columns([1.2, 2, 1.5, 2.3], vertical_alignment="bottom")
    unreviewed = f1.toggle("Unreviewed only", key="review.unreviewed")
    types = f2.multiselect("Type", TYPES, key="review.types", placeholder="All types")
    min_conf = f3.slider("Minimum confidence", 0.0, 1.0, 0.0, 0.05, key="review.min_conf")
    vids = f4.multiselect("Video", list(by_id), key="review.videos", placeholder="All videos",
                          format_func=lambda i: f"{by_id[i].name} (video {i})")

try:
    every = rv.incidents(settings, rv.IncidentFilter(event_types=tuple(types),
                                                     min_confidence=float(min_conf),
                                                     video_ids=tuple(vids)), videos=by_id)
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the incidents")
    st.stop()
items = [i for i in every if i.mark is None] if unreviewed else every

counts = rv.state_counts(every)
m = st.columns(5)
m[0].metric("Incidents", len(every))
for col, (label, n) in zip(m[1:], counts.items()):
    col.metric(label.capitalize(), n)

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

    left, right = st.columns([3, 2], gap="medium")
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
        pic, facts = st.columns([3, 2], gap="small")
        img = res.frame(item.frame)
        if img is None:
            pic.warning("The annotated frame is missing from storage; re-run the analysis.")
        else:
            pic.image(img, width="stretch", caption=f"event {e.event_id}")
        prec = item.precision
        facts.markdown(
            f"- **state**: {item.state_label}"
            + (f" ({md(item.mark.note)})" if item.mark and item.mark.note else "") + "\n"
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
            b = st.columns(3)
            b[0].button("Confirm", key="review.confirm", icon=":material/check_circle:",
                        shortcut="Y", type="primary", width="stretch", on_click=_mark,
                        args=(e.event_id, "confirmed", next_id))
            b[1].button("False alarm", key="review.false_alarm", icon=":material/cancel:",
                        shortcut="N", width="stretch", on_click=_mark,
                        args=(e.event_id, "false_alarm", next_id))
            b[2].button("Reviewed", key="review.reviewed", icon=":material/visibility:",
                        shortcut="V", width="stretch", on_click=_mark,
                        args=(e.event_id, "reviewed", next_id))
        c = st.columns(3)
        if can_mark:
            c[0].button("Clear mark", key="review.clear", icon=":material/undo:",
                        disabled=mark is None, on_click=_mark, args=(e.event_id, None, None))
        if c[1].button("Open in the video", key="review.open", icon=":material/movie:"):
            res.open_video(e.video_id, e.event_id)

    with right:
        table = pd.DataFrame({
            "state": [i.state_label for i in items],
            "type": [i.event.event_type.value for i in items],
            "time": [i.time_text for i in items],
            "tracks": [", ".join(map(str, i.tracks)) for i in items],
            "video": [i.video_name for i in items],
            "confidence": [round(i.event.confidence, 2) for i in items],
        })
        st.dataframe(table, hide_index=True, width="stretch", height=460, key="review.list",
                     on_select=_picked, selection_mode="single-row",
                     column_config={"confidence": st.column_config.NumberColumn(format="%.2f")})
        st.caption("Pick a row, or use Left / Right. Y confirms, N marks a false alarm, "
                   "V marks it reviewed; marking moves to the next incident." if can_mark else
                   "Pick a row, or use Left / Right. Analysts mark the incidents.")

# --- the analyst's accuracy --------------------------------------------------------------------
st.subheader("Accuracy")
st.caption("Of the incidents you judged (confirmed or false alarm), the share confirmed and "
           "dismissed, beside the detector's measured precision.")
try:
    by_type, by_video = rv.accuracy(settings, names={i: v.name for i, v in by_id.items()})
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the review marks")
    st.stop()


def _share(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def _accuracy_table(rows, first: str, with_precision: bool) -> pd.DataFrame:
    data = {first: [r.key for r in rows], "incidents": [r.incidents for r in rows],
            "reviewed": [r.reviewed for r in rows], "confirmed": [r.confirmed for r in rows],
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
