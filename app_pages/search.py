"""Search: a plain-language question over every stored event, with filters. Shows the matching
moments (thumbnail, video, mm:ss, score) and an answer whose every claim cites an event; each
citation links to that event's frame on the video page."""
from __future__ import annotations

import streamlit as st

from app_pages import _resources as res
from services import workbench as wb

svc = res.services()
settings = svc.settings
caps = wb.capabilities(settings, check_cuda=False)

st.title("Search")

try:
    videos = [v for v in wb.list_videos(settings) if v.n_events]
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the videos")
    st.stop()
names = {v.video_id: v.name for v in videos}

if not videos:
    st.info("Nothing to search yet. Analyse a video first; then ask things like “when did "
            "someone fall?” or “an older man walking away from the camera”.")
    st.page_link("app_pages/analyze.py", label="Go to Analyze", icon=":material/play_circle:")
    st.stop()

with st.form("search.form", border=True):
    query = st.text_input("Question", key="search.query", max_chars=2000,
                          placeholder="e.g. when did someone fall near the counter?")
    c1, c2, c3, c4, c5 = st.columns(5)
    vids = c1.multiselect("Videos", list(names), key="search.videos", placeholder="All videos",
                          format_func=lambda i: f"{names[i]} (video {i})")
    types = c2.multiselect("Event types", wb.EVENT_TYPES, key="search.types",
                           placeholder="All")
    actions = c3.multiselect("Actions", wb.ACTIONS, key="search.actions", placeholder="All")
    genders = c4.multiselect("Gender", wb.GENDERS, key="search.genders", placeholder="Any")
    ages = c5.multiselect("Age group", wb.AGE_GROUPS, key="search.ages", placeholder="Any")
    top_k = st.slider("How many moments", 3, 30, 8, key="search.top_k")
    submitted = st.form_submit_button("Search", type="primary", icon=":material/search:")

if not (caps.bedrock or caps.openai):
    st.caption("Answers are written from the matching events (extractive). Answers by Claude "
               "need AWS_BEDROCK_REGION or VA_OPENAI_BASE_URL.")

if submitted:
    filters = wb.SearchFilters(video_ids=tuple(vids), event_types=tuple(types),
                               actions=tuple(actions), genders=tuple(genders),
                               age_groups=tuple(ages))
    try:
        with st.spinner("Searching…"):
            st.session_state["search.result"] = wb.run_search(
                settings, query, filters, top_k=int(top_k), embedder=res.search_embedder())
    except wb.USER_ERRORS as e:
        st.session_state["search.result"] = None
        res.show_error(e, "Search failed")

result: "wb.SearchView | None" = st.session_state.get("search.result")
if result is None:
    st.stop()

by_event = {h.event.event_id: h for h in result.hits}


def citation_link(label: str, event_id: int) -> str:
    hit = by_event.get(event_id)
    if hit is None:
        return label
    return f"[{label}](video?video_id={hit.event.video_id}&event_id={event_id})"


st.subheader("Answer")
answer = result.answer
if answer is None or not answer.relevant:
    st.warning(answer.text if answer else "Nothing in the stored events matches this question.",
               icon=":material/search_off:")
else:
    text = "".join(citation_link(piece.replace("[", "").replace("]", ""), eid)
                   if eid is not None else piece for piece, eid in result.segments)
    with st.container(border=True):
        st.markdown(text)
        if answer.source != "extractive":
            st.caption(f"Written by {answer.source} ({answer.input_tokens} tokens in, "
                       f"{answer.output_tokens} out) from the moments below.")
        else:
            st.caption("Written from the moments below (extractive).")
    cited = [c for c in answer.citations if c.event_id in by_event]
    if cited:
        st.caption("Open a cited moment:")
        cols = st.columns(min(4, len(cited)))
        for i, c in enumerate(cited):
            if cols[i % len(cols)].button(c.label.strip("[]"), key=f"search.cite.{c.event_id}",
                                          icon=":material/link:"):
                res.open_video(by_event[c.event_id].event.video_id, c.event_id)

st.subheader(f"Moments ({len(result.hits)})")
if not result.hits:
    st.info("No event matches. Try other words or fewer filters.")
for hit in result.hits:
    e = hit.event
    with st.container(border=True):
        c1, c2, c3 = st.columns([1, 4, 1], vertical_alignment="center")
        img = res.frame(wb.HighlightItem(e, hit.video_name).frame)
        if img is not None:
            c1.image(img, width="stretch")
        else:
            c1.caption("no frame")
        c2.markdown(f"**{hit.video_name}** · {wb.mmss(e.t_s)} · {e.event_type} · {e.action} · "
                    f"track {e.obj_id if e.obj_id is not None else '—'}  \n"
                    f"{e.sentence}")
        sim = f", similarity {hit.similarity:.2f}" if hit.similarity is not None else ""
        c2.caption(f"event {e.event_id} · score {hit.score:.3f}{sim}")
        if c3.button("Open", key=f"search.open.{e.event_id}", icon=":material/open_in_new:"):
            res.open_video(e.video_id, e.event_id)
