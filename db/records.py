"""Stored records: ``db/`` maps these to and from rows; services and pages use them (through
``services.workbench``). The engine's records are in ``pipeline/records.py``; the vocabularies
(event type, action, gender, age group) are its Enums here too, converted once in ``db/`` when a
row is read, so that services and pages compare Enums, never strings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from pipeline.records import (
    Action, AgeGroup, Colour, EventType, Gender, JobStatus, ObjectClass, ObjectRelation,
    Relation, frozen_mapping, mmss,
)


@dataclass(frozen=True)
class VideoRecord:
    """A ``db_video`` row: one analysed (or queued) video and its job state."""

    video_id: int
    name: str
    source_uri: str | None
    status: JobStatus
    progress: float  # 0..100
    stage: str | None = None
    frames_done: int | None = None
    frames_total: int | None = None
    eta_s: float | None = None
    fps: float | None = None
    duration_s: float | None = None
    frame_count: int | None = None
    width: int | None = None
    height: int | None = None
    error_message: str | None = None
    started_at: Any = None  # datetime (UTC) or None
    finished_at: Any = None
    updated_at: Any = None
    heartbeat_at: Any = None
    worker: str | None = None  # "pid@host" of the process running it
    token_usage: Mapping[str, Any] = field(default_factory=lambda: frozen_mapping({}))
    n_events: int | None = None
    #: The completed result's warning (e.g. only part of the frames could be decoded).
    warning: str | None = None
    #: The latest attempt when it failed or was cancelled after the result shown (``None`` when
    #: the latest attempt is the result): the video keeps its completed result and status.
    last_attempt_status: JobStatus | None = None
    last_attempt_error: str | None = None
    last_attempt_at: Any = None
    #: Runs of the queued job a worker started (a killed worker's job is retried: 2, 3...).
    attempts: int = 0


@dataclass(frozen=True)
class StoredEvent:
    """A ``db_event`` row: the app's record of an engine ``Event`` once stored (with its ids,
    thumbnail and sentence). ``bbox`` is x, y, width, height in pixels (the seed's columns)."""

    event_id: int
    video_id: int
    event_type: EventType
    t_s: float
    frame_number: int
    bbox: tuple[float, float, float, float]
    age_group: AgeGroup
    gender: Gender
    action: Action
    confidence: float
    obj_id: int | None = None
    thumbnail_bucket: str | None = None  # None: the local storage folder
    thumbnail_key: str | None = None
    sentence: str = ""
    orientation_deg: float | None = None
    orientation_label: int | None = None  # 0/90/180/270, the nearest of the four
    track_ids: tuple[int, ...] = ()  # the tracks involved: obj_id first, then a fight's others
    raw_action: Action | None = None  # the frame's own reading before per-track smoothing
    action_confidence: float | None = None
    scene_description: str | None = None
    age: float | None = None
    start_t_s: float | None = None  # a highlight's episode
    end_t_s: float | None = None
    upper_colour: Colour = Colour.UNKNOWN  # the track's clothing colours
    lower_colour: Colour = Colour.UNKNOWN
    object_class: ObjectClass | None = None  # an object track's class (event type object)
    relations: tuple[ObjectRelation, ...] = ()  # the person's track's objects (carrying...)
    attributes: Mapping[str, Any] = field(default_factory=lambda: frozen_mapping({}))  # open-ended

    def __post_init__(self) -> None:
        for name, enum in _EVENT_VOCABULARIES:
            v = getattr(self, name)
            if not isinstance(v, enum) and not (v is None and name in ("raw_action", "object_class")):
                raise TypeError(f"StoredEvent.{name} must be {enum.__name__}, got {v!r}; "
                                f"convert the row's value when reading it (db.queries)")

    @property
    def other_track_ids(self) -> tuple[int, ...]:
        return tuple(t for t in self.track_ids if t != self.obj_id)

    @property
    def people(self) -> tuple[int, ...]:
        """The tracks involved: the stored ``track_ids`` (obj_id first), else the obj_id."""
        ids = [int(i) for i in (self.track_ids or ())]
        if not ids and self.obj_id is not None:
            ids = [int(self.obj_id)]
        return tuple(dict.fromkeys(ids))


_EVENT_VOCABULARIES = (("event_type", EventType), ("age_group", AgeGroup), ("gender", Gender),
                       ("action", Action), ("raw_action", Action), ("upper_colour", Colour),
                       ("lower_colour", Colour), ("object_class", ObjectClass))


@dataclass(frozen=True)
class StoredObject:
    """Where storage put a file: an S3 bucket and key, or ``bucket=None`` for the local folder."""

    bucket: str | None
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.bucket else f"local:{self.key}"


_FILTER_VOCABULARIES = (("event_types", EventType), ("actions", Action), ("genders", Gender),
                        ("age_groups", AgeGroup), ("upper_colours", Colour),
                        ("lower_colours", Colour), ("colours", Colour),
                        ("object_classes", ObjectClass), ("relations", Relation))


@dataclass(frozen=True)
class SearchFilters:
    """Filters of an event query (empty = everything). The vocabularies may be given as the
    pages' widgets hold them (plain values): they are converted to the Enums here, once."""

    video_ids: tuple[int, ...] = ()
    t_min_s: float | None = None
    t_max_s: float | None = None
    event_types: tuple[EventType, ...] = ()
    actions: tuple[Action, ...] = ()
    genders: tuple[Gender, ...] = ()
    age_groups: tuple[AgeGroup, ...] = ()
    upper_colours: tuple[Colour, ...] = ()  # clothing: upper body (jacket, shirt...)
    lower_colours: tuple[Colour, ...] = ()  # trousers, skirt...
    colours: tuple[Colour, ...] = ()  # either part
    #: objects: an object track of one of these classes, or a person with a relation to one
    object_classes: tuple[ObjectClass, ...] = ()
    relations: tuple[Relation, ...] = ()  # a person carrying / riding / sitting on (any object)

    def __post_init__(self) -> None:
        for name, enum in _FILTER_VOCABULARIES:
            try:
                object.__setattr__(self, name, tuple(enum(v) for v in getattr(self, name)))
            except ValueError:
                raise ValueError(f"{name} {list(getattr(self, name))} holds a value outside "
                                 f"{enum.__name__} ({', '.join(m.value for m in enum)}); "
                                 f"filter by those") from None


@dataclass(frozen=True)
class Hit:
    """One search result. ``score`` is the reciprocal-rank-fusion score; ``similarity`` the cosine
    similarity of the query and event vectors (None when only the full-text side found it)."""

    event: StoredEvent
    video_name: str
    score: float
    similarity: float | None = None
    semantic_rank: int | None = None
    lexical_rank: int | None = None
    #: Share of the query's understood terms (services.search.query_terms) the event matches; None
    #: when the query had none or they were not used.
    terms_matched: float | None = None

    @property
    def mmss(self) -> str:
        return mmss(self.event.t_s)
