"""The event query of the Events and Highlights pages and the table they show and download."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from db.records import SearchFilters, StoredEvent, StoredObject
from pipeline.records import Action, AgeGroup, EventType, Gender
from services import database
from services.job_views import list_videos
from settings import Settings


@dataclass(frozen=True)
class EventQuery:
    """Filters of the Events/Highlights pages (empty = everything). The vocabularies as the
    widgets hold them (plain values) or as Enums; ``SearchFilters`` converts them."""

    video_ids: tuple[int, ...] = ()
    event_types: tuple[EventType | str, ...] = ()
    actions: tuple[Action | str, ...] = ()
    genders: tuple[Gender | str, ...] = ()
    age_groups: tuple[AgeGroup | str, ...] = ()
    t_min_s: float | None = None
    t_max_s: float | None = None

    def to_filters(self) -> SearchFilters:
        return SearchFilters(video_ids=tuple(self.video_ids), t_min_s=self.t_min_s,
                             t_max_s=self.t_max_s, event_types=tuple(self.event_types),
                             actions=tuple(self.actions), genders=tuple(self.genders),
                             age_groups=tuple(self.age_groups))


def list_events(settings: Settings, query: EventQuery | None = None,
                limit: int = 20000) -> list[StoredEvent]:
    from db import queries

    with database.pooled(settings) as conn:
        return queries.list_events(conn, (query or EventQuery()).to_filters(), limit=limit)


EVENT_TABLE_COLUMNS = [
    "event_id", "video_id", "video", "time", "t_s", "frame_number", "event_type", "obj_id",
    "action", "confidence", "review", "age_group", "age", "gender", "orientation", "orientation_deg",
    "bbox_x", "bbox_y", "bbox_width", "bbox_height", "scene", "thumbnail",
]


def events_table(events: Iterable[StoredEvent], video_names: dict[int, str],
                 durations: dict[int, float | None] | None = None,
                 marks: dict | None = None) -> pd.DataFrame:
    """The event table the Events page shows, filters and downloads (one row per event; the
    vocabularies as their plain values, as plotly and the CSV take them). Times
    read like the player's clock, with tenths on short clips (``durations``: video lengths);
    ``review`` is the analyst's mark of an incident (``marks``: event id -> ReviewMark)."""
    from services import review, timefmt

    durations = durations or {}
    marks = marks or {}
    rows = []
    for e in events:
        rows.append({
            "event_id": e.event_id, "video_id": e.video_id,
            "video": video_names.get(e.video_id, f"video {e.video_id}"),
            "time": timefmt.at(e.t_s, durations.get(e.video_id)), "t_s": round(e.t_s, 2),
            "frame_number": e.frame_number,
            "event_type": e.event_type.value, "obj_id": e.obj_id, "action": e.action.value,
            "confidence": round(e.confidence, 3),
            "review": ("" if e.event_type is EventType.PERSON
                       else review.mark_text(marks.get(e.event_id))),
            "age_group": e.age_group.value, "age": e.age,
            "gender": e.gender.value, "orientation": e.orientation_label,
            "orientation_deg": e.orientation_deg,
            "bbox_x": e.bbox[0], "bbox_y": e.bbox[1], "bbox_width": e.bbox[2],
            "bbox_height": e.bbox[3], "scene": e.scene_description,
            "thumbnail": (StoredObject(e.thumbnail_bucket, e.thumbnail_key).uri
                          if e.thumbnail_key else None),
        })
    df = pd.DataFrame(rows, columns=EVENT_TABLE_COLUMNS)
    return df.astype({"obj_id": "Int64", "orientation": "Int64"}) if not df.empty else df


def events_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def video_names(settings: Settings) -> dict[int, str]:
    return {v.video_id: v.name for v in list_videos(settings)}


def get_event(settings: Settings, event_id: int) -> StoredEvent | None:
    from db import queries

    with database.pooled(settings) as conn:
        rows = queries.get_events(conn, [int(event_id)])
    return rows[0] if rows else None
