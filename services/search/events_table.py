"""The event query of the Events and Highlights pages and the table they show and download."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

from db.records import SearchFilters, StoredEvent, StoredObject
from pipeline.event_types import is_incident
from pipeline.records import Action, AgeGroup, Colour, EventType, Gender, ObjectClass, Relation
from services import database
from services.jobs.job_views import list_videos
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
    upper_colours: tuple[Colour | str, ...] = ()
    lower_colours: tuple[Colour | str, ...] = ()
    object_classes: tuple[ObjectClass | str, ...] = ()  # an object, or a person's relation to one
    relations: tuple[Relation | str, ...] = ()  # a person carrying / riding / sitting on
    t_min_s: float | None = None
    t_max_s: float | None = None

    def to_filters(self) -> SearchFilters:
        return SearchFilters(video_ids=tuple(self.video_ids), t_min_s=self.t_min_s,
                             t_max_s=self.t_max_s, event_types=tuple(self.event_types),
                             actions=tuple(self.actions), genders=tuple(self.genders),
                             age_groups=tuple(self.age_groups),
                             upper_colours=tuple(self.upper_colours),
                             lower_colours=tuple(self.lower_colours),
                             object_classes=tuple(self.object_classes),
                             relations=tuple(self.relations))


def list_events(settings: Settings, query: EventQuery | None = None,
                limit: int = 20000) -> list[StoredEvent]:
    from db import queries

    with database.pooled(settings) as conn:
        return queries.list_events(conn, (query or EventQuery()).to_filters(), limit=limit)


EVENT_TABLE_COLUMNS = [
    "event_id", "video_id", "video", "time", "t_s", "frame_number", "event_type", "obj_id",
    "people", "start", "end", "start_t_s", "end_t_s", "action", "confidence", "review", "age_group", "age", "gender", "orientation", "orientation_deg",
    "bbox_x", "bbox_y", "bbox_width", "bbox_height", "scene", "thumbnail", "upper_colour",
    "lower_colour", "object_class", "objects",
]


def events_table(events: Iterable[StoredEvent], video_names: dict[int, str],
                 durations: dict[int, float | None] | None = None,
                 marks: dict | None = None) -> pd.DataFrame:
    """The event table the Events page shows, filters and downloads (one row per event; the
    vocabularies as their plain values, as plotly and the CSV take them). Times
    read like the player's clock, with tenths on short clips (``durations``: video lengths);
    ``review`` is the analyst's mark of an incident (``marks``: event id -> ReviewMark);
    ``people`` the tracks involved (a fight's every person, not only ``obj_id``) and
    ``start``/``end`` an incident's episode."""
    from services import timefmt
    from services.review import review

    durations = durations or {}
    marks = marks or {}
    rows = []
    for e in events:
        incident = is_incident(e.event_type)
        start, end = review.episode(e) if incident else (None, None)
        dur = durations.get(e.video_id)
        rows.append({
            "event_id": e.event_id, "video_id": e.video_id,
            "video": video_names.get(e.video_id, f"video {e.video_id}"),
            "time": timefmt.at(e.t_s, durations.get(e.video_id)), "t_s": round(e.t_s, 2),
            "frame_number": e.frame_number,
            "event_type": e.event_type.value, "obj_id": e.obj_id,
            "people": " ".join(map(str, e.people)),
            "start": None if start is None else timefmt.at(start, dur),
            "end": None if end is None else timefmt.at(end, dur),
            "start_t_s": None if start is None else round(start, 2),
            "end_t_s": None if end is None else round(end, 2), "action": e.action.value,
            "confidence": round(e.confidence, 3),
            "review": ("" if not incident else review.mark_text(marks.get(e.event_id))),
            "age_group": e.age_group.value, "age": e.age,
            "gender": e.gender.value, "orientation": e.orientation_label,
            "orientation_deg": e.orientation_deg,
            "bbox_x": e.bbox[0], "bbox_y": e.bbox[1], "bbox_width": e.bbox[2],
            "bbox_height": e.bbox[3], "scene": e.scene_description,
            "thumbnail": (StoredObject(e.thumbnail_bucket, e.thumbnail_key).uri
                          if e.thumbnail_key else None),
            "upper_colour": e.upper_colour.value, "lower_colour": e.lower_colour.value,
            "object_class": e.object_class.value if e.object_class is not None else "",
            "objects": ", ".join(r.phrase for r in e.relations),
        })
    df = pd.DataFrame(rows, columns=EVENT_TABLE_COLUMNS)
    return df.astype({"obj_id": "Int64", "orientation": "Int64"}) if not df.empty else df


def events_csv(df: pd.DataFrame, settings: Settings | None = None,
               app_url: str | None = None) -> bytes:
    """The table as CSV. ``frame`` is where the annotated frame is, as something a person can
    open (the file's path on this machine, or ``s3://bucket/key``), never an internal
    ``local:`` address; with ``app_url`` (the workbench's address) ``link`` opens the event in
    the workbench (video detail: the frame, the player from that moment)."""
    out = df.drop(columns=["thumbnail"], errors="ignore")
    if "thumbnail" in df:
        out["frame"] = [_frame_location(settings, u) for u in df["thumbnail"]]
    if app_url and not df.empty:
        base = app_url.rstrip("/")
        out["link"] = [f"{base}/video?video_id={int(v)}&event_id={int(e)}"
                       for v, e in zip(df["video_id"], df["event_id"])]
    return out.to_csv(index=False).encode("utf-8")


def _frame_location(settings: Settings | None, uri) -> str | None:
    if not isinstance(uri, str) or not uri:
        return None
    from services.media.source_uri import SourceUri

    src = SourceUri.parse(uri)
    if src.is_local:
        if settings is None:
            return None
        from services.media import storage

        return str(storage.local_path(settings, src.key))
    return uri


def video_names(settings: Settings) -> dict[int, str]:
    return {v.video_id: v.name for v in list_videos(settings)}


def get_event(settings: Settings, event_id: int) -> StoredEvent | None:
    from db import queries

    with database.pooled(settings) as conn:
        rows = queries.get_events(conn, [int(event_id)])
    return rows[0] if rows else None
