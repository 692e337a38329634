"""Review: incidents as review items (newest video first), the analyst's marks on them
(reviewed / confirmed / false alarm, with a note) and the analyst's accuracy beside each
detector's measured precision (``models/detectors.json``, the one place those figures live).

An incident is a highlight-type event (falling, collapse, violent, grabbing, anomaly, theft):
one row of ``db_event`` with its frame, episode start/end and the tracks involved. No Streamlit
here; the Review, Events, Search and Video pages call these functions.

Every mark is written through ``write_marks`` (the page's buttons and keys, "mark all as
reviewed", the CLI's ``review mark``): the one place to check who may write and to record it.
A mark belongs to the moment judged: a re-run carries it over to the new incident of the same
moment, or keeps it as "no longer detected" (``db/reviews.py``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from db.records import SearchFilters, StoredEvent, StoredObject
from db.reviews import NOTE_MAX_CHARS, ReviewCount, ReviewMark, ReviewState
from pipeline.event_types import (
    EVENT_TYPES as EVENT_SPECS, INCIDENT_TYPES, SPECS, Severity,
)
from pipeline.records import Colour, EventType, ObjectClass
from services import database, timefmt
from services.errors import ServiceError

log = logging.getLogger("va.services.review.review")

STATES: tuple[ReviewState, ...] = tuple(ReviewState)
DETECTORS_FILE = "detectors.json"

__all__ = ["INCIDENT_TYPES", "STATES", "ReviewState", "ReviewMark", "Incident", "IncidentFilter",
           "Precision", "AccuracyRow", "Severity", "review_items", "write_marks", "set_mark",
           "clear_mark", "mark_all_reviewed", "forget_mark", "lost_marks", "marks_for",
           "marks_summary", "marks_before_rerun", "state_counts", "accuracy", "detector_precision"]


#: The severity of each incident type (pipeline.event_types declares it).
SEVERITY: dict[EventType, Severity] = {s.event_type: s.severity for s in EVENT_SPECS
                                       if s.severity is not None}


class ReviewError(ServiceError):
    """A mark that cannot be stored (an event that no longer exists)."""


# --- measured precision ------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """A detector's measured precision (None = not measured), how it was measured, and where."""

    event_type: EventType
    precision: float | None
    alarms: int
    how: str
    source: str | None

    @property
    def text(self) -> str:
        if self.precision is None:
            return "not measured"
        return f"{self.precision:.0%} of {self.alarms} alarms"


def detector_precision(models_dir: Path | str) -> dict[EventType, Precision]:
    """Every incident type's measured precision from ``models/detectors.json``."""
    path = Path(models_dir) / DETECTORS_FILE
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning("no measured precision (%s): %s", path, e)
        raw = {}
    out = {}
    for t in INCIDENT_TYPES:
        d = raw.get(SPECS[t].precision_key or "") or {}
        p = d.get("precision")
        out[t] = Precision(event_type=t, precision=None if p is None else float(p),
                           alarms=int(d.get("alarms") or 0), how=str(d.get("how") or
                                                                      "not measured"),
                           source=d.get("source"))
    return out


# --- incidents ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Incident:
    """One incident to review: the event, its video, its episode and the analyst's mark."""

    event: StoredEvent
    video_name: str
    video_duration_s: float | None
    start_s: float
    end_s: float
    tracks: tuple[int, ...]
    mark: ReviewMark | None
    precision: Precision | None

    @property
    def event_id(self) -> int:
        return self.event.event_id

    @property
    def state_label(self) -> str:
        return "unreviewed" if self.mark is None else self.mark.state.label

    @property
    def severity(self) -> Severity:
        return SEVERITY.get(self.event.event_type, Severity.DETECTION)

    @property
    def time_text(self) -> str:
        return timefmt.span(self.start_s, self.end_s, self.video_duration_s)

    @property
    def tracks_text(self) -> str:
        if not self.tracks:
            return "no track"
        return ("track " if len(self.tracks) == 1 else "tracks ") + ", ".join(
            str(t) for t in self.tracks)

    @property
    def frame(self) -> StoredObject | None:
        e = self.event
        return StoredObject(e.thumbnail_bucket, e.thumbnail_key) if e.thumbnail_key else None

    @property
    def title(self) -> str:
        return f"{self.event.event_type.value} · {self.time_text} · {self.tracks_text}"


@dataclass(frozen=True)
class IncidentFilter:
    unreviewed_only: bool = False
    event_types: tuple[EventType | str, ...] = ()  # plain values (the widget's) or Enums
    min_confidence: float = 0.0
    video_ids: tuple[int, ...] = ()
    severity: Severity | str | None = None  # None: alerts and detections
    colours: tuple[Colour | str, ...] = ()  # the lead person's clothing (either part)
    object_classes: tuple[ObjectClass | str, ...] = ()  # the lead person's objects


def episode(e: StoredEvent) -> tuple[float, float]:
    """An incident's episode (start, end), its peak inside."""
    return _episode(e)


def _episode(e: StoredEvent) -> tuple[float, float]:
    start = e.t_s if e.start_t_s is None else float(e.start_t_s)
    end = e.t_s if e.end_t_s is None else float(e.end_t_s)
    return min(start, e.t_s), max(end, e.t_s)


def review_items(settings, filt: IncidentFilter | None = None,
              videos: Mapping[int, object] | None = None) -> list[Incident]:
    """Incidents matching ``filt``: newest video first, in time order within a video.
    ``videos`` maps video ids to their records (name, duration) when the caller has them."""
    from db import queries, reviews

    f = filt or IncidentFilter()
    types = tuple(f.event_types) or INCIDENT_TYPES
    with database.pooled(settings) as conn:
        if videos is None:
            videos = {v.video_id: v for v in queries.list_videos(conn)}
        events = queries.list_events(conn, SearchFilters(
            video_ids=tuple(f.video_ids), event_types=types, colours=tuple(f.colours),
            object_classes=tuple(f.object_classes)))
        marks = reviews.get_marks(conn, [e.event_id for e in events])
    prec = detector_precision(settings.models_dir)
    out = []
    for e in events:
        mark = marks.get(e.event_id)
        if f.unreviewed_only and mark is not None:
            continue
        if e.confidence < f.min_confidence:
            continue
        if f.severity and SEVERITY.get(e.event_type) is not Severity(f.severity):
            continue
        v = videos.get(e.video_id)
        start, end = _episode(e)
        out.append(Incident(event=e, video_name=getattr(v, "name", f"video {e.video_id}"),
                            video_duration_s=getattr(v, "duration_s", None), start_s=start,
                            end_s=end, tracks=e.people, mark=mark,
                            precision=prec.get(e.event_type)))
    out.sort(key=lambda i: (-i.event.video_id, i.event.t_s, i.event.event_id))
    return out


#: What each counter of the Review page counts (its help text).
STATE_HELP = {
    "unreviewed": "No mark yet.",
    "reviewed": "Looked at, no verdict (the Reviewed button, V, or Mark all as reviewed).",
    "confirmed": "Judged a real incident (Y).",
    "false alarm": "Judged a false alarm (N).",
}


def state_counts(items: Iterable[Incident]) -> dict[str, int]:
    """How many incidents are unreviewed and in each state (labels as the page shows them)."""
    counts = {"unreviewed": 0} | {s.label: 0 for s in STATES}
    for i in items:
        counts[i.state_label] += 1
    return counts


# --- marks -------------------------------------------------------------------------------------


def write_marks(settings, event_ids: Sequence[int], state: ReviewState | str | None,
                note: str = "", *, actor, keep_existing: bool = False,
                mark_ids: Sequence[int] = ()) -> list[ReviewMark]:
    """THE writer of review marks: mark these incidents ``state`` with ``note`` (``None``: clear
    their marks, and the marks ``mark_ids`` of incidents no longer detected). With
    ``keep_existing`` only unmarked incidents get the mark ("mark all as reviewed" never
    overwrites a verdict). An analyst's or admin's action: the role is checked and every mark
    written or removed gets its audit row in the same transaction. Returns those marks."""
    import psycopg

    from db import reviews
    from services.access import access

    state = None if state is None else ReviewState(state)
    who = access.require(settings, actor, access.Role.ANALYST)
    try:
        with database.pooled(settings) as conn:
            with conn.transaction():
                if state is None:
                    marks = reviews.delete_marks(conn, event_ids, mark_ids)
                else:
                    marks = reviews.set_marks(conn, event_ids, state, note, keep_existing)
                for m in marks:
                    detail = ("cleared" if state is None else
                              m.state.value + (f": {m.note}" if m.note else ""))
                    subject = (access.event_subject(conn, m.event_id) if m.event_id is not None
                               else access.video_subject(conn, m.video_id)
                               | {"video_id": m.video_id})
                    access.record(conn, who.name, access.AuditAction.REVIEW_MARK,
                                  event_id=m.event_id, detail=detail, **subject)
                return marks
    except psycopg.errors.ForeignKeyViolation as e:  # a re-run replaced them meanwhile
        raise ReviewError("the video was analysed again while this was marked; nothing was "
                          "stored: reload the page and mark the incident again") from e


def set_mark(settings, event_id: int, state: ReviewState | str, note: str = "", *,
             actor) -> ReviewMark:
    marks = write_marks(settings, [int(event_id)], ReviewState(state), note, actor=actor)
    if not marks:
        from services.search.events_table import get_event

        if get_event(settings, int(event_id)) is not None:  # a person row
            raise ReviewError(f"event {event_id} is a person row, not an incident; only "
                              f"incidents take review marks (`python -m pipeline review list` "
                              f"gives their ids)")
        raise ReviewError(f"incident {event_id} does not exist: the video was analysed again "
                          f"since this was shown (reload the page, or `python -m pipeline review "
                          f"list` for the current incident ids)")
    return marks[0]


def clear_mark(settings, event_id: int, *, actor) -> bool:
    return bool(write_marks(settings, [int(event_id)], None, actor=actor))


def forget_mark(settings, mark_id: int, *, actor) -> bool:
    """Remove a mark whose incident is no longer detected (the analyst's explicit choice)."""
    return bool(write_marks(settings, (), None, actor=actor, mark_ids=[int(mark_id)]))


def mark_all_reviewed(settings, items: Iterable[Incident], *, actor) -> int:
    """Frigate's "mark these items as reviewed": the unmarked ones of ``items`` become
    ``reviewed``; a confirmed or false-alarm verdict is never overwritten. Returns how many."""
    ids = [i.event_id for i in items if i.mark is None]
    return len(write_marks(settings, ids, ReviewState.REVIEWED, actor=actor,
                           keep_existing=True))


def lost_marks(settings, video_ids: Sequence[int] = ()) -> list[ReviewMark]:
    """Marks whose incident a re-run no longer found, newest video first."""
    from db import reviews

    with database.pooled(settings) as conn:
        return reviews.lost_marks(conn, video_ids)


def marks_for(settings, event_ids: Sequence[int]) -> dict[int, ReviewMark]:
    """The marks of these events (those without a mark are unreviewed)."""
    from db import reviews

    if not event_ids:
        return {}
    with database.pooled(settings) as conn:
        return reviews.get_marks(conn, list(event_ids))


def marks_before_rerun(settings, source: str, video_id: int | None = None) -> str | None:
    """``marks_summary`` of the video that analysing ``source`` (or ``video_id``) would re-run;
    None for a new video or one without marks."""
    from db import store
    from services.jobs.ingest import normalise_source

    if video_id is None:
        with database.pooled(settings) as conn:
            video_id = store.find_video_by_source(conn, normalise_source(source))
    return marks_summary(settings, video_id)


def marks_summary(settings, video_id: int | None) -> str | None:
    """Before a re-run: "Video 3 has 2 review marks (1 confirmed, 1 false alarm) ..."; None
    when the video has no mark (or is new)."""
    from db import reviews

    if video_id is None:
        return None
    with database.pooled(settings) as conn:
        marks = reviews.marks_of_video(conn, int(video_id))
    if not marks:
        return None
    by = {s.label: sum(1 for m in marks if m.state is s) for s in STATES}
    parts = ", ".join(f"{n} {label}" for label, n in by.items() if n)
    lost = sum(1 for m in marks if not m.detected)
    return (f"Video {video_id} has {len(marks)} review mark{'s' if len(marks) != 1 else ''} "
            f"({parts}{f'; {lost} no longer detected' if lost else ''}): the new analysis "
            f"carries each over to the incident it finds again at the same moment; the others "
            f"stay, listed as \"{LOST}\"")


def mark_text(mark: ReviewMark | None) -> str:
    """'confirmed: two men shoving' / 'false alarm' / 'unreviewed' (a note is user text: pages
    escape it before markdown)."""
    if mark is None:
        return "unreviewed"
    return (mark.state.label + (f": {mark.note}" if mark.note else "")
            + (f" ({CARRIED})" if mark.carried_over else ""))


CARRIED = "carried over from the earlier analysis"
LOST = "no longer detected"


# --- the analyst's accuracy --------------------------------------------------------------------


@dataclass(frozen=True)
class AccuracyRow:
    """Per event type or per video: of the incidents with a verdict, the share confirmed."""

    scope: str  # "type" | "video"
    key: str  # the event type, or the video's name
    incidents: int
    reviewed: int  # marked in any state
    confirmed: int
    false_alarm: int
    measured_precision: float | None  # the detector's (per type); None per video

    @property
    def judged(self) -> int:
        return self.confirmed + self.false_alarm

    @property
    def confirmed_share(self) -> float | None:
        return None if self.judged == 0 else self.confirmed / self.judged

    @property
    def dismissed_share(self) -> float | None:
        return None if self.judged == 0 else self.false_alarm / self.judged


def _rows(scope: str, groups: Mapping[EventType | str, list[ReviewCount]],
          prec: Mapping[EventType, Precision] | None) -> list[AccuracyRow]:
    out = []
    for key, cs in groups.items():
        out.append(AccuracyRow(
            scope=scope, key=key.value if isinstance(key, EventType) else key, incidents=sum(c.events for c in cs),
            reviewed=sum(c.reviewed + c.confirmed + c.false_alarm for c in cs),
            confirmed=sum(c.confirmed for c in cs), false_alarm=sum(c.false_alarm for c in cs),
            measured_precision=(prec[key].precision if prec and key in prec else None)))
    return out


def accuracy(settings, video_ids: Sequence[int] = (),
             names: Mapping[int, str] | None = None) -> tuple[list[AccuracyRow], list[AccuracyRow]]:
    """(per event type, per video): incidents, marks, share confirmed vs dismissed; per type
    beside the detector's measured precision."""
    from db import reviews

    with database.pooled(settings) as conn:
        counts = reviews.count_marks(conn, INCIDENT_TYPES, video_ids)
    by_type: dict[EventType, list[ReviewCount]] = {}
    by_video: dict[str, list[ReviewCount]] = {}
    for c in counts:
        by_type.setdefault(c.event_type, []).append(c)
        name = (names or {}).get(c.video_id, f"video {c.video_id}")
        by_video.setdefault(f"{name} (video {c.video_id})", []).append(c)
    order = {t: i for i, t in enumerate(INCIDENT_TYPES)}
    by_type = dict(sorted(by_type.items(), key=lambda kv: order.get(kv[0], 99)))
    return (_rows("type", by_type, detector_precision(settings.models_dir)),
            _rows("video", by_video, None))


# --- one video's timeline ----------------------------------------------------------------------


def people_over_time(settings, video_id: int) -> list[tuple[float, int]]:
    """(t_s, people seen) at every sampled time of the video: the distinct tracks of its person
    rows at that time."""
    from db import queries

    with database.pooled(settings) as conn:
        events = queries.list_events(conn, SearchFilters(video_ids=(int(video_id),),
                                                         event_types=(EventType.PERSON,)))
    seen: dict[float, set] = {}
    for e in events:
        seen.setdefault(round(e.t_s, 3), set()).add(e.obj_id if e.obj_id is not None
                                                     else ("row", e.event_id))
    return [(t, len(ids)) for t, ids in sorted(seen.items())]
