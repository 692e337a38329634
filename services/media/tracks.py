"""People (tracks) of one video as the Events page shows them, with crops of the person."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.records import Action, Colour, EventType, Gender, TrackSummary, mmss
from db.records import SearchFilters, StoredEvent, StoredObject, VideoRecord
from services import database
from services.media.source_uri import SourceUri
from settings import Settings

log = logging.getLogger("va.workbench")


@dataclass(frozen=True)
class TrackCard:
    """A person (track) of one video as the Events page shows it."""

    video_id: int
    summary: TrackSummary
    action_history: tuple[tuple[float, Action], ...]  # (t_s, action) at each change
    thumbnails: tuple[StoredObject, ...] = ()  # the track's highlight frames
    #: (frame, t_s, bbox xywh) of the samples compared to crop one person (crop_candidates)
    samples: tuple[tuple[int, float, tuple[float, float, float, float]], ...] = ()

    @property
    def title(self) -> str:
        s = self.summary
        return f"Track {s.obj_id} · {mmss(s.first_t_s)}–{mmss(s.last_t_s)}"

    @property
    def age_text(self) -> str:
        s = self.summary
        if s.age is None:
            return "age unknown (face too small or unclear)"
        spread = f" ± {s.age_spread / 2:.0f}" if s.age_spread else ""
        return f"about {s.age:.0f}{spread} years ({s.age_group.value})"

    @property
    def gender_text(self) -> str:
        s = self.summary
        if s.gender is Gender.UNKNOWN:
            return "gender unknown"
        conf = f" ({s.gender_confidence:.0%} of frames)" if s.gender_confidence else ""
        return f"{s.gender.value}{conf}"


def crop_candidates(rows: list[StoredEvent], k: int | None = None) -> list[StoredEvent]:
    """Up to ``k`` of a track's rows, evenly spread in time, the largest box (the clearest view)
    among them: the samples ``pipeline.media.same_person_picks`` compares to keep crops of one
    person (at a low sampling rate a track can pass from one person to another)."""
    from pipeline.thresholds import IDENTITY_CANDIDATES

    k = IDENTITY_CANDIDATES if k is None else int(k)
    if len(rows) <= k:
        return list(rows)
    best = max(range(len(rows)), key=lambda i: rows[i].bbox[2] * rows[i].bbox[3])
    picks = {int(round(j * (len(rows) - 1) / (k - 2))) for j in range(k - 1)} | {best}
    return [rows[i] for i in sorted(picks)]


def track_cards(settings: Settings, video_id: int) -> list[TrackCard]:
    from db import queries

    with database.pooled(settings) as conn:
        tracks = queries.list_tracks(conn, int(video_id))
        events = queries.list_events(conn, SearchFilters(video_ids=(int(video_id),)))
    by_track: dict[int, list[StoredEvent]] = {}
    for e in events:
        if e.obj_id is not None:
            by_track.setdefault(int(e.obj_id), []).append(e)
    cards = []
    for t in tracks:
        evs = sorted(by_track.get(int(t.obj_id), []), key=lambda e: e.t_s)
        history: list[tuple[float, Action]] = []
        for e in evs:
            if e.event_type is EventType.PERSON and (not history or history[-1][1] is not e.action):
                history.append((e.t_s, e.action))
        thumbs = tuple(StoredObject(e.thumbnail_bucket, e.thumbnail_key)
                       for e in evs if e.thumbnail_key)[:4]
        people = [e for e in evs if e.event_type is EventType.PERSON and e.bbox[2] > 0]
        samples = tuple(dict.fromkeys((e.frame_number, e.t_s, e.bbox)
                                      for e in crop_candidates(people)))
        cards.append(TrackCard(video_id=int(video_id), summary=t,
                               action_history=tuple(history), thumbnails=thumbs,
                               samples=samples))
    return cards


@dataclass(frozen=True)
class TrackLine:
    """One track of a video as the Video page lists it: a person with their clothing colours
    and objects (carrying, riding, sitting on), or an object's track."""

    obj_id: int
    what: str  # "person" or the object's class
    first_t_s: float
    last_t_s: float
    colours: str = ""  # "red top, blue trousers"
    objects: str = ""  # "carrying a backpack, sitting on a bench"


def video_tracks(settings: Settings, video_id: int) -> list[TrackLine]:
    """The video's people and objects, each track once, in order of first appearance."""
    from db import queries

    with database.pooled(settings) as conn:
        events = queries.list_events(conn, SearchFilters(
            video_ids=(int(video_id),), event_types=(EventType.PERSON, EventType.OBJECT)))
    by_track: dict[int, list[StoredEvent]] = {}
    for e in events:
        if e.obj_id is not None:
            by_track.setdefault(int(e.obj_id), []).append(e)
    lines = []
    for oid, evs in by_track.items():
        e = evs[0]
        if e.event_type is EventType.OBJECT:
            lines.append(TrackLine(oid, e.object_class.value if e.object_class else "object",
                                   float(e.start_t_s if e.start_t_s is not None else e.t_s),
                                   float(e.end_t_s if e.end_t_s is not None else e.t_s)))
            continue
        colours = ", ".join(f"{c.value} {part}" for c, part in
                            ((e.upper_colour, "top"), (e.lower_colour, "trousers"))
                            if c is not Colour.UNKNOWN)
        rels = sorted({r for x in evs for r in x.relations})
        lines.append(TrackLine(oid, "person", min(x.t_s for x in evs), max(x.t_s for x in evs),
                               colours, ", ".join(r.phrase for r in rels)))
    return sorted(lines, key=lambda t: (t.first_t_s, t.obj_id))


def person_crops(video: VideoRecord, card: TrackCard, height_px: int = 160) -> list[bytes]:
    """JPEG crops of the track's person at up to 3 of its frames that agree on one person (the
    box's path and the clothes' colours), read from the source video when it is a local file;
    [] otherwise (S3 sources show highlight frames)."""
    uri = video.source_uri or ""
    path = Path(uri)
    if not card.samples or SourceUri.parse(uri).is_stored or not path.is_file():
        return []
    from pipeline.media import same_person_crops

    try:
        return same_person_crops(path, card.samples, 3, height_px)
    except PipelineError as e:  # the file changed or went away since the analysis
        log.warning("no person crops from %s: %s", path, e)
        return []
