""""Find this person in other videos" for the pages that show people (the Events page's track
cards, the Video page): a button per track, and the hits (a crop of the person, the video, the
track's span, how alike) with a button that opens the hit on the Video page (in this tab
and session, as the Search page's hits do)."""
from __future__ import annotations

import streamlit as st

from services import workbench as wb

LABEL = "Find this person in other videos"
TOP_K = 6


def _ask(settings, where: str, video_id: int, obj_id: int) -> None:
    st.session_state[f"{where}.similar.query"] = (int(video_id), int(obj_id))
    _run(settings, where)


def _run(settings, where: str) -> None:
    query = st.session_state.get(f"{where}.similar.query")
    if query is None:
        return
    try:
        hits = wb.similar_hits(settings, query[0], query[1], TOP_K,
                               same_video=bool(st.session_state.get(f"{where}.similar.same")))
        st.session_state[f"{where}.similar.result"] = (query, hits, None)
    except wb.USER_ERRORS as e:
        st.session_state[f"{where}.similar.result"] = (query, [], str(e))


def _open(video_id: int, event_id: int | None) -> None:
    """Show the hit's clearest moment on the Video page (the page's video picker follows)."""
    st.session_state["video.id"] = int(video_id)
    st.session_state["video.event_id"] = None if event_id is None else int(event_id)
    st.session_state.pop("video.pick", None)


def find_button(settings, where: str, video_id: int, obj_id: int) -> None:
    """The button of one track; ``where`` (the page) keeps each page's search apart."""
    st.button(LABEL, key=f"{where}.similar.find.{video_id}.{obj_id}",
              icon=":material/person_search:", on_click=_ask,
              args=(settings, where, video_id, obj_id), width="stretch")


def results(settings, names: dict[int, str], where: str) -> None:
    """The page's last search's hits (nothing before the first), under a subheader."""
    found = st.session_state.get(f"{where}.similar.result")
    if found is None:
        return
    (vid, oid), hits, error = found
    st.subheader(f"Track {oid} of {names.get(vid, f'video {vid}')}: the same person elsewhere")
    st.toggle("Search this video too (a person who left and came back)",
              key=f"{where}.similar.same", on_change=_run, args=(settings, where))
    if error:
        st.error(error, icon=":material/error:")
        return
    if not hits:
        st.info("No similar person found: no other analysed video has people with appearance "
                "vectors (videos analysed before this feature need a re-run).")
        return
    cols = st.columns(3)
    for i, h in enumerate(hits):
        t = h.track
        with cols[i % 3].container(border=True, key=f"{where}.similar.{t.video_id}.{t.obj_id}"):
            if h.crop:
                st.image(h.crop, width=90)
            label = f"{t.video} · track {t.obj_id}"
            if st.button(label, key=f"{where}.similar.open.{t.video_id}.{t.obj_id}",
                         icon=":material/open_in_new:", width="stretch", on_click=_open,
                         args=(t.video_id, t.event_id)) and where != "video":
                st.switch_page("app_pages/video.py")
            st.caption(f"{wb.timefmt.span(t.first_t_s, t.last_t_s, None)} · "
                       f"{t.similarity:.0%} alike")
