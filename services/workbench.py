"""The facade of the Streamlit workbench: the ONE project module pages import.

It re-exports the service modules of one concern each; no Streamlit here and no logic of its
own (``app_pages/_resources.py`` wraps the factories in ``st.cache_resource``):

- ``services.setup``: settings, the database opened and migrated, the job client (and worker)
- ``services.jobs.job_store``: the job queue's writes to ``db_video``
- ``services.capabilities``: which backends the analyst may pick
- ``services.media.sources``: library, stored and uploaded videos
- ``services.jobs.job_views``: videos and job state; starting an analysis
- ``services.search.events_table``: the event query and the pandas table
- ``services.media.media``: highlight frames, stored frame bytes, playable videos
- ``services.media.tracks``: people (tracks) and their crops
- ``services.search.similar``: the same person in other videos (appearance vectors)
- ``services.search.search_views``: search hits and cited answers
- ``services.vocab``: the filter vocabularies
- ``services.review.review``: incidents to review, the analyst's marks and accuracy (as ``review``)
- ``services.jobs.housekeeping``: a picked video's facts, deleting videos, clearing failed jobs
- ``services.timefmt``: times and counts as the pages write them (as ``timefmt``)
- ``services.access.access``: sign-in, sessions, roles, accounts and the audit trail (as ``access``);
  pages launch and cancel through ``launch`` / ``cancel_analysis`` (role checked, audited)
"""
from __future__ import annotations

from pipeline.records import Action, AgeGroup, EventType, Gender, JobStatus, TrackSummary, mmss
from db.records import Hit, SearchFilters, StoredEvent, StoredObject, VideoRecord
from services import text, timefmt
from services.access import access
from services.jobs import housekeeping
from services.review import review
from services.access.access import AuditAction, AuditFilter, Role
from services.records import Answer
from services.capabilities import Capabilities, _cuda_available, capabilities
from services.errors import USER_ERRORS
from services.search.events_table import (
    EVENT_TABLE_COLUMNS, EventQuery, events_csv, events_table, get_event, list_events,
    video_names,
)
from services.jobs.estimate import estimate_source
from services.jobs.job_store import DbJobStore
from services.jobs.job_views import (JobView, cancel_analysis, get_video, job_view, job_views,
                               launch, list_videos, start_analysis)
from services.jobs.jobs import AnalysisOptions, JobClient, QueueSnapshot
from services.media.media import (
    HighlightItem, frame_bytes, highlights, media_kind, player_width, still_bytes, video_media,
)
from services.search.search_views import (
    HitGroup, SearchEmbedder, SearchView, hit_thumbnail, load_search_embedder, run_search,
    split_citations,
)
from services.setup import (
    _RUNNERS, Services, load_settings, make_runner, open_services, settings_key,
    shutdown_runners,
)
from services.media.sources import (
    VIDEO_EXTENSIONS, VideoSource, library_videos, save_upload, stored_videos,
)
from services.search.similar import SimilarHit, similar_hits
from services.media.stills import outline_person
from services.media.tracks import TrackCard, TrackLine, person_crops, track_cards, video_tracks
from services.vocab import (
    ACTION_COLOURS, ACTIONS, ACTIVE, AGE_GROUPS, COLOURS, EVENT_COLOURS, EVENT_TYPES, FINAL,
    GENDER_COLOURS, GENDERS, HIGHLIGHT_TYPES, OBJECT_CLASSES, ORIENTATION_LABELS, RELATIONS,
)
from pipeline.event_types import is_incident

__all__ = [
    "access", "AuditAction", "AuditFilter", "Role", "launch", "cancel_analysis",
    "housekeeping", "review", "text", "timefmt", "HitGroup", "hit_thumbnail",
    "ACTION_COLOURS", "ACTIONS", "ACTIVE", "AGE_GROUPS", "COLOURS", "EVENT_COLOURS", "EVENT_TABLE_COLUMNS",
    "EVENT_TYPES", "FINAL", "GENDER_COLOURS", "GENDERS", "HIGHLIGHT_TYPES", "ORIENTATION_LABELS", "USER_ERRORS", "VIDEO_EXTENSIONS", "AnalysisOptions", "Answer",
    "Action", "AgeGroup", "EventType", "Gender",
    "Capabilities", "DbJobStore", "EventQuery", "Hit", "HighlightItem", "JobClient", "JobStatus",
    "JobView", "QueueSnapshot", "SearchEmbedder", "SearchFilters", "SearchView", "Services",
    "StoredEvent", "StoredObject", "TrackCard", "TrackSummary", "VideoRecord", "VideoSource",
    "capabilities", "estimate_source", "events_csv", "events_table", "frame_bytes", "get_event", "get_video",
    "highlights", "job_view", "job_views", "library_videos", "list_events", "list_videos",
    "load_search_embedder", "load_settings", "make_runner", "mmss", "open_services",
    "person_crops", "player_width", "run_search", "save_upload", "settings_key",
    "shutdown_runners", "split_citations", "start_analysis", "stored_videos", "track_cards",
    "video_media", "video_names", "media_kind", "still_bytes", "_RUNNERS", "_cuda_available",
    "outline_person", "OBJECT_CLASSES", "RELATIONS", "is_incident", "TrackLine", "video_tracks",
    "SimilarHit", "similar_hits",
]
