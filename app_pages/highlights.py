"""Highlights: the annotated frames of the moments that matter (falls, collapses, fights,
grabbing, anomalies), newest video first. Opening one shows it large with its details and plays
the video from that moment."""
from __future__ import annotations

import streamlit as st

from app_pages import _resources as res
from services import workbench as wb

svc = res.services()
settings = svc.settings
COLUMNS = 4

st.title("Highlights")

videos = res.analysed_videos_or_stop(
    settings, "Nothing analysed yet. Start an analysis on the Analyze page; the annotated frames of "
            "falls, collapses, fights, grabbing and anomalies appear here.")

names = {v.video_id: v.name for v in videos}
f1, f2 = st.columns([3, 2])
chosen = f1.multiselect("Videos", list(names), format_func=lambda i: f"{names[i]} (video {i})",
                        key="highlights.videos", placeholder="All videos")
types = f2.multiselect("Event types", wb.HIGHLIGHT_TYPES, key="highlights.types",
                       placeholder="All event types")

try:
    items = wb.highlights(settings, video_ids=chosen, event_types=types)
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the highlights")
    st.stop()


def show_large(item: "wb.HighlightItem") -> None:
    e = item.event
    with st.container(border=True):
        top = st.columns([8, 1])
        top[0].subheader(f"{e.event_type.capitalize()} at {wb.mmss(e.t_s)} — {item.video_name}")
        if top[1].button("Close", key="highlights.close", icon=":material/close:"):
            st.session_state["highlights.open"] = None
            st.rerun()
        video = next((v for v in videos if v.video_id == e.video_id), None)
        pic, info = st.columns([3, 2], gap="medium")
        img = res.frame(item.frame)
        if img is None:
            pic.warning("The annotated frame is missing from storage; re-run the analysis.")
        else:
            pic.image(img, caption=item.caption, width=wb.player_width(video, 480))
        details = {
            "event": f"{e.event_type} (event {e.event_id})",
            "time": f"{wb.mmss(e.t_s)} (frame {e.frame_number})",
            "people involved": item.tracks_label,
            "action": e.action,
            "confidence": f"{e.confidence:.0%}",
            "person": f"{e.gender}, {e.age_group}"
                      + (f" (about {e.age:.0f})" if e.age is not None else ""),
        }
        if e.attributes.get("reason"):
            details["why"] = e.attributes["reason"]
        if e.start_t_s is not None:
            details["episode from"] = wb.mmss(e.start_t_s)
        if e.end_t_s is not None:
            details["episode until"] = wb.mmss(e.end_t_s)
        if e.scene_description:
            details["scene"] = e.scene_description
        info.markdown("\n".join(f"- **{k}**: {v}" for k, v in details.items()))
        media = wb.video_media(svc, video) if video is not None else None
        start = max(0, int(e.t_s) - 2)
        if media is None:
            info.caption("The source video is not reachable from here, so it cannot be played.")
        else:
            info.video(media, start_time=start, width=wb.player_width(video))
            info.caption(f"Plays from {wb.mmss(start)}, 2 s before the event.")
        if info.button("Open the video's page", key="highlights.detail",
                       icon=":material/movie:"):
            res.open_video(e.video_id, e.event_id)


open_id = st.session_state.get("highlights.open")
opened = next((i for i in items if i.event.event_id == open_id), None)
if opened is not None:
    show_large(opened)

if not items:
    st.info("No highlights for these filters: no fall, collapse, fight, grabbing or anomaly was "
            "found. The Events page shows everything that was seen.")
    st.stop()

st.caption(f"{len(items)} highlight(s)")
for row_start in range(0, len(items), COLUMNS):
    cols = st.columns(COLUMNS)
    for col, item in zip(cols, items[row_start:row_start + COLUMNS]):
        with col.container(border=True):
            img = res.frame(item.frame)
            if img is None:
                st.caption("frame missing")
            else:
                st.image(img, width="stretch")
            st.markdown(f"**{item.event.event_type}** · {wb.mmss(item.event.t_s)} · "
                        f"{item.tracks_label}")
            st.caption(item.video_name)
            if st.button("Open", key=f"highlights.open.{item.event.event_id}",
                         icon=":material/open_in_full:"):
                st.session_state["highlights.open"] = item.event.event_id
                st.rerun()
