"""Process-wide objects for the pages, held in ``st.cache_resource``: the settings, the database
connection and the single analysis worker. The plain factories live in ``services.workbench``
(no Streamlit there); this module only wraps them and turns setup problems into ``st.error``."""
from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from services import workbench
from services.text import error_text


@st.cache_resource(show_spinner=False)
def _settings():
    return workbench.load_settings()


@st.cache_resource(show_spinner="Connecting to the database…")
def _services(key: str, _settings):
    return workbench.open_services(_settings)


@st.cache_resource(show_spinner="Connecting to the job queue…")
def _runner(key: str, _services):
    return workbench.make_runner(_services)


def services() -> "workbench.Services":
    """The settings + database handle, or an error box and a stopped page."""
    try:
        s = _settings()
        return _services(workbench.settings_key(s), s)
    except workbench.USER_ERRORS as e:
        st.error(f"The workbench cannot start: {error_text(e, None)}")
        st.stop()


def runner() -> "workbench.JobClient":
    svc = services()
    try:
        return _runner(workbench.settings_key(svc.settings), svc)
    except workbench.USER_ERRORS as e:
        st.error(f"The analysis worker cannot start: {error_text(e, None)}")
        st.stop()


@st.cache_resource(show_spinner="Loading the search model…")
def _search_embedder(key: str, _settings):
    return workbench.load_search_embedder(_settings)


def search_embedder() -> "workbench.SearchEmbedder":
    s = services().settings
    return _search_embedder(workbench.settings_key(s), s)


#: How long one read of the job views serves the bars of one script run.
JOB_VIEWS_SHARED_S = 0.9  # under the fragments' 1 s: the sidebar's and the page's (each on
#   its own timer) show the same read


def fresh_job_views() -> None:
    """The next job_views() reads afresh: called by the entry file on every full run, and after
    a job is queued or cancelled (so the page shows it at once)."""
    st.session_state.pop("jobs.views", None)


def job_views(settings) -> list["workbench.JobView"]:
    """Every job as the pages show it. One read serves the sidebar and the page of one script
    run and of the two 1 s fragments, so the bars never disagree; each full run reads
    afresh."""
    now = time.monotonic()
    shared = st.session_state.get("jobs.views")
    if shared is not None and now - shared[0] < JOB_VIEWS_SHARED_S:
        return shared[1]
    views = workbench.job_views(settings)
    st.session_state["jobs.views"] = (now, views)
    return views


def job_view(settings, video_id: int) -> "workbench.JobView | None":
    return next((j for j in job_views(settings) if j.video_id == int(video_id)), None)


def show_error(e: BaseException, what: str = "") -> None:
    """One plain line for a problem the analyst can fix; never a stack trace."""
    st.error(f"{error_text(what)}: {error_text(e, None)}" if what else error_text(e, None),
             icon=":material/error:")


@st.cache_data(show_spinner=False, max_entries=1024, ttl=60)
def _frame(uri: str, _obj) -> bytes | None:
    return workbench.frame_bytes(services(), _obj)


def frame(obj) -> bytes | None:
    """A stored frame's JPEG (cached by its address), or None when it is missing."""
    return None if obj is None else _frame(obj.uri, obj)


def open_video(video_id: int, event_id: int | None = None) -> None:
    """Go to the video detail page, showing one event's frame when given."""
    st.session_state["video.id"] = int(video_id)
    st.session_state["video.event_id"] = None if event_id is None else int(event_id)
    st.switch_page("app_pages/video.py")


def analysed_videos_or_stop(settings, empty_message: str) -> list:
    """The videos that have events; with none, a plain empty state pointing to Analyze and a
    stopped page. Shared by the pages that browse results."""
    try:
        videos = [v for v in workbench.list_videos(settings) if v.n_events]
    except workbench.USER_ERRORS as e:
        show_error(e, "Cannot read the videos")
        st.stop()
    if not videos:
        st.info(empty_message)
        st.page_link("app_pages/analyze.py", label="Go to Analyze", icon=":material/play_circle:")
        st.stop()
    return videos


@st.cache_resource(show_spinner=False)
def _capabilities(key: str, _settings) -> "workbench.Capabilities":
    return workbench.capabilities(_settings)


def capabilities(settings) -> "workbench.Capabilities":
    """What the analyst may pick (probing for a GPU once per configuration)."""
    return _capabilities(workbench.settings_key(settings), settings)


@st.cache_data(ttl=15, show_spinner=False)
def _stored(key: str, _svc) -> list["workbench.VideoSource"]:
    return workbench.stored_videos(_svc)


def stored_videos(svc) -> list["workbench.VideoSource"]:
    """Stored videos (an S3 listing: not on every rerun, at most 15 s old)."""
    return _stored(workbench.settings_key(svc.settings), svc)


def forget_stored_videos() -> None:
    """After an upload: the next listing reads the storage again."""
    _stored.clear()


@st.cache_data(show_spinner=False, max_entries=256)
def person_crops(video_id: int, obj_id: int, version: str, _video, _card) -> list[bytes]:
    """Crops of a track's person, cached per (video, track, video version)."""
    return workbench.person_crops(_video, _card)


ICON = str(Path(__file__).resolve().parents[1] / "assets" / "icon.png")

NEEDS_VLM = (workbench.EventType.THEFT.value, workbench.Action.PAYING.value)


def offered(values, caps) -> list[str]:
    """Filter values the analyst can get here: theft and paying only with the VLM backend."""
    return [v for v in values if caps.vlm or v not in NEEDS_VLM]


@st.cache_data(show_spinner=False, max_entries=512, ttl=600)
def _hit_picture(event_id: int, source: str | None, _hit) -> bytes | None:
    return workbench.hit_thumbnail(services().settings, _hit, source)


def hit_picture(hit, source_uri: str | None) -> bytes | None:
    """A search hit's picture: its highlight frame, else the person's crop from the video."""
    e = hit.event
    if e.thumbnail_key:
        return frame(workbench.StoredObject(e.thumbnail_bucket, e.thumbnail_key))
    return _hit_picture(e.event_id, source_uri, hit)
