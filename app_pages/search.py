"""Search: a plain-language question over every stored event, with filters. Shows the matching
moments (a picture of each, video, time, score; identical sentences collapsed with a count; those
below the relevance threshold labelled as such, never as matches) and an answer whose every claim
cites an event; each citation opens that moment on the video page in the same tab."""
from __future__ import annotations

from html import escape

import streamlit as st

from app_pages import _access as auth
from app_pages import _resources as res
from services import workbench as wb

tf, md = wb.timefmt, wb.text.md_text
auth.require(wb.Role.VIEWER)  # signed in, checked in the database on every run
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

# The address carries the question and filters (?q=...&k=...&video=...): a citation link loads
# the video page afresh, and Back must find the question and its results again.
FILTER_PARAMS = (("videos", "video"), ("types", "type"), ("actions", "action"),
                 ("genders", "gender"), ("ages", "age"), ("uppers", "upper"), ("lowers", "lower"),
                 ("objects", "object"), ("relations", "relation"))
ALLOWED = {"videos": [str(i) for i in names], "types": res.offered(wb.EVENT_TYPES, caps),
           "actions": res.offered(wb.ACTIONS, caps), "genders": list(wb.GENDERS),
           "ages": list(wb.AGE_GROUPS), "uppers": list(wb.COLOURS), "lowers": list(wb.COLOURS),
           "objects": list(wb.OBJECT_CLASSES), "relations": list(wb.RELATIONS)}
restore = (st.session_state.get("search.result") is None and bool(st.query_params.get("q"))
           and not st.session_state.get("search.restored"))
if restore:
    st.session_state["search.restored"] = True
    st.session_state["search.query"] = st.query_params["q"][:2000]
    try:
        st.session_state["search.top_k"] = min(30, max(3, int(st.query_params.get("k", 8))))
    except ValueError:
        pass
    for key, param in FILTER_PARAMS:
        vals = [v for v in st.query_params.get_all(param) if v in ALLOWED[key]]
        st.session_state[f"search.{key}"] = [int(v) for v in vals] if key == "videos" else vals

with st.form("search.form", border=True):
    query = st.text_input("Question", key="search.query", persist_state="session", max_chars=2000,
                          placeholder="e.g. when did someone fall near the counter?")
    c1, c2, c3, c4, c5 = st.columns(5)
    vids = c1.multiselect("Videos", list(names), key="search.videos", persist_state="session", placeholder="All videos",
                          format_func=lambda i: f"{names[i]} (video {i})")
    types = c2.multiselect("Event types", res.offered(wb.EVENT_TYPES, caps), key="search.types", persist_state="session",
                           placeholder="All")
    actions = c3.multiselect("Actions", res.offered(wb.ACTIONS, caps), key="search.actions", persist_state="session", placeholder="All")
    genders = c4.multiselect("Gender", wb.GENDERS, key="search.genders", persist_state="session", placeholder="Any")
    ages = c5.multiselect("Age group", wb.AGE_GROUPS, key="search.ages", persist_state="session", placeholder="Any")
    d1, d2, d4, d5, d3 = st.columns([1, 1, 1, 1, 2])
    uppers = d1.multiselect("Upper body colour", wb.COLOURS, key="search.uppers",
                            persist_state="session", placeholder="Any")
    lowers = d2.multiselect("Lower body colour", wb.COLOURS, key="search.lowers",
                            persist_state="session", placeholder="Any")
    objects = d4.multiselect("Object", wb.OBJECT_CLASSES, key="search.objects",
                             persist_state="session", placeholder="Any",
                             help="An object's track, or a person carrying, riding or sitting on one.")
    relations = d5.multiselect("Relation", wb.RELATIONS, key="search.relations",
                               persist_state="session", placeholder="Any",
                               format_func=lambda v: v.replace("_", " "),
                               help="People carrying, riding or sitting on an object.")
    top_k = d3.slider("How many moments", 3, 30, 8, key="search.top_k", persist_state="session")
    submitted = st.form_submit_button("Search", type="primary", icon=":material/search:")

if not (caps.bedrock or caps.openai):
    st.caption("Answers are written from the matching events (extractive). Answers by Claude "
               "need AWS_BEDROCK_REGION or VA_OPENAI_BASE_URL.")

if submitted or restore:
    filters = wb.SearchFilters(video_ids=tuple(vids), event_types=tuple(types),
                               actions=tuple(actions), genders=tuple(genders),
                               age_groups=tuple(ages), upper_colours=tuple(uppers),
                               lower_colours=tuple(lowers), object_classes=tuple(objects),
                               relations=tuple(relations))
    try:
        with st.spinner("Searching…"):
            st.session_state["search.result"] = wb.run_search(
                settings, query, filters, top_k=int(top_k), embedder=res.search_embedder())
        st.query_params.from_dict({"q": query, "k": str(int(top_k))} | {
            param: [str(v) for v in st.session_state.get(f"search.{key}") or ()]
            for key, param in FILTER_PARAMS if st.session_state.get(f"search.{key}")})
    except wb.USER_ERRORS as e:
        st.session_state["search.result"] = None
        res.show_error(e, "Search failed")

result: "wb.SearchView | None" = st.session_state.get("search.result")
if result is None:
    st.stop()

by_event = {h.event.event_id: h for h in result.hits}
durations = {v.video_id: v.duration_s for v in videos}
sources = {v.video_id: v.source_uri for v in videos}


def citation_link(label: str, event_id: int) -> str:
    """An in-app link that opens in this tab (Streamlit opens markdown links in a new one, which
    starts the app afresh); the label is escaped, the address holds only numbers."""
    hit = by_event.get(event_id)
    if hit is None:
        return md(label)
    href = f"video?video_id={int(hit.event.video_id)}&event_id={int(event_id)}"
    return f'<a href="{href}" target="_self">{escape(label)}</a>'


st.caption(md(result.understood) if result.understood else "")
st.subheader("Answer")
answer = result.answer
if answer is None or not answer.relevant:
    st.warning(md(answer.text) if answer else "Nothing in the stored events matches this "
               "question.", icon=":material/search_off:")
else:
    def _plain(piece: str) -> str:  # escaped, keeping the spaces around the citations
        core = piece.strip()
        if not core:
            return " " if piece else ""
        return (" " if piece[0].isspace() else "") + md(core, max_chars=None) + (
            " " if piece[-1].isspace() else "")

    text = "".join(citation_link(piece.replace("[", "").replace("]", ""), eid)
                   if eid is not None else _plain(piece) for piece, eid in result.segments)
    with st.container(border=True):
        st.markdown(text, unsafe_allow_html=True)  # every piece escaped above
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


groups = result.groups
matches = [g for g in groups if g.relevant]
closest = [g for g in groups if not g.relevant]
try:
    marks = wb.review.marks_for(settings, [e for g in groups for e in g.event_ids
                                           if wb.is_incident(g.hit.event.event_type)])
except wb.USER_ERRORS:
    marks = {}


def show_group(g: "wb.HitGroup", below: bool) -> None:
    hit, e = g.hit, g.hit.event
    dur = durations.get(e.video_id)
    with st.container(border=True):
        c1, c2, c3 = st.columns([1, 4, 1], vertical_alignment="center")
        img = res.hit_picture(hit, sources.get(e.video_id))
        if img is not None:
            c1.image(img, width="stretch")
        else:
            c1.caption("no picture (the video is not reachable from here)")
        when = (tf.at(e.t_s, dur) if g.count == 1 else
                f"{tf.span(g.first_t_s, g.last_t_s, dur)} · {g.count} moments alike")
        tracks = e.people
        mark = marks.get(e.event_id)
        c2.markdown(f"**{md(hit.video_name)}** · {when} · {e.event_type.value} · {e.action.value} · "
                    f"{'tracks' if len(tracks) > 1 else 'track'} "
                    f"{', '.join(map(str, tracks)) or '—'}"
                    + (f" · *{md(wb.review.mark_text(mark))}*" if mark else "")
                    + f"  \n{md(e.sentence, max_chars=None)}")
        sim = f", similarity {hit.similarity:.2f}" if hit.similarity is not None else ""
        label = "closest, below the threshold · " if below else ""
        c2.caption(f"{label}event {e.event_id} · score {hit.score:.3f}{sim}")
        if c3.button("Open", key=f"search.open.{e.event_id}", icon=":material/open_in_new:"):
            res.open_video(e.video_id, e.event_id)


if matches:
    st.subheader(f"Matching moments ({len(matches)})")
    for g in matches:
        show_group(g, below=False)
if closest:
    st.subheader(f"Closest moments, below the threshold ({len(closest)})")
    st.caption("Not similar enough to the question to count as matches; listed only to show "
               "what is nearest.")
    for g in closest:
        show_group(g, below=True)
if not groups:
    st.info("No event matches. Try other words or fewer filters.")
