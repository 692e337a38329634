"""Review marks (``event_review``, migrations 0006 and 0008): an analyst's verdict on an incident,
with an optional note and its time. Functions take an open psycopg connection; no mark =
unreviewed.

A mark belongs to the moment judged (video, incident type, episode start/end), not to an event
id: a re-analysis replaces the video's events (``db.store.replace_events``), the foreign key sets
the mark's ``event_id`` to NULL, and ``carry_over`` (same transaction) hands each mark to the new
incident of the same type that overlaps it for at least half of either span. A mark that no new
incident takes is kept with no event: "no longer detected". Nothing here deletes a mark except
``delete_marks`` (an analyst clearing it) and the deletion of its video.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Sequence

from pipeline.records import EventType

log = logging.getLogger("va.db.reviews")

NOTE_MAX_CHARS = 2000
#: A re-run's incident takes a mark over when their spans overlap by at least this share of the
#: shorter span ("most of either span"); a zero-length span must lie inside the other.
SAME_MOMENT_OVERLAP = 0.5


class ReviewState(str, Enum):
    """What the analyst said about an event. ``reviewed`` = looked at, no verdict."""

    REVIEWED = "reviewed"
    CONFIRMED = "confirmed"
    FALSE_ALARM = "false_alarm"

    @property
    def label(self) -> str:
        return {"reviewed": "reviewed", "confirmed": "confirmed",
                "false_alarm": "false alarm"}[self.value]


@dataclass(frozen=True)
class ReviewMark:
    """One mark. ``event_id`` is None when the incident it was given on is no longer detected;
    ``carried_over`` when a re-run's incident took it over from the earlier analysis."""

    event_id: int | None
    state: ReviewState
    note: str
    reviewed_at: datetime | None
    mark_id: int = 0
    video_id: int = 0
    event_type: EventType | None = None
    start_s: float = 0.0
    end_s: float = 0.0
    carried_at: datetime | None = None
    lost_at: datetime | None = None

    @property
    def carried_over(self) -> bool:
        return self.carried_at is not None

    @property
    def detected(self) -> bool:
        return self.event_id is not None


@dataclass(frozen=True)
class ReviewCount:
    """Marks of one (video, event type): how many events, and how many in each state."""

    video_id: int
    event_type: EventType
    events: int
    reviewed: int
    confirmed: int
    false_alarm: int


@dataclass(frozen=True)
class CarryOver:
    """What ``carry_over`` did to a video's marks after a re-run."""

    carried: int
    lost: int


_COLS = ("r.event_id, r.state, r.note, r.reviewed_at, r.mark_id, r.video_id, r.event_type,"
         " r.start_t_s, r.end_t_s, r.carried_at, r.lost_at")
_RET = _COLS.replace("r.", "")
#: An event's episode as the Review page shows it (``services.review.review._episode``).
_EP_START = 'LEAST(COALESCE(e.start_t_s, e."timestamp"), e."timestamp")'
_EP_END = 'GREATEST(COALESCE(e.end_t_s, e."timestamp"), e."timestamp")'


def clean_note(note: str | None) -> str:
    return (note or "").replace("\x00", "").strip()[:NOTE_MAX_CHARS]


def set_marks(conn, event_ids: Sequence[int], state: ReviewState | str, note: str = "",
              keep_existing: bool = False) -> list[ReviewMark]:
    """Mark incidents (replacing earlier marks, unless ``keep_existing``: then only unmarked ones
    get this mark). Person rows and unknown ids are skipped; returns the marks written."""
    state = ReviewState(state)
    ids = [int(i) for i in event_ids]
    if not ids:
        return []
    conflict = ("DO NOTHING" if keep_existing else
                "DO UPDATE SET state = EXCLUDED.state, note = EXCLUDED.note, reviewed_at = now(),"
                " video_id = EXCLUDED.video_id, event_type = EXCLUDED.event_type,"
                " start_t_s = EXCLUDED.start_t_s, end_t_s = EXCLUDED.end_t_s,"
                " carried_at = NULL, lost_at = NULL")
    rows = conn.execute(
        "INSERT INTO event_review (event_id, video_id, event_type, start_t_s, end_t_s, state,"
        f" note) SELECT e.event_id, e.video_id, e.event_type, {_EP_START}, {_EP_END}, %s, %s"
        " FROM db_event e WHERE e.event_id = ANY(%s) AND e.event_type <> 'person'"
        f" ORDER BY e.event_id ON CONFLICT (event_id) {conflict} RETURNING {_RET}",
        (state.value, clean_note(note), ids)).fetchall()
    return [_mark(r) for r in rows]


def set_mark(conn, event_id: int, state: ReviewState | str, note: str = "") -> ReviewMark:
    """Mark one incident (replacing its earlier mark). ``LookupError`` for an unknown one."""
    marks = set_marks(conn, [event_id], state, note)
    if not marks:
        raise LookupError(f"incident {event_id} does not exist")
    return marks[0]


def delete_marks(conn, event_ids: Sequence[int] = (), mark_ids: Sequence[int] = (),
                 ) -> list[ReviewMark]:
    """Back to unreviewed: the marks of these incidents and these marks (by their own id, for
    those no longer detected). Returns the marks removed."""
    rows = conn.execute(
        f"DELETE FROM event_review WHERE event_id = ANY(%s) OR mark_id = ANY(%s) RETURNING {_RET}",
        ([int(i) for i in event_ids], [int(i) for i in mark_ids])).fetchall()
    return [_mark(r) for r in rows]


def clear_mark(conn, event_id: int) -> bool:
    """Back to unreviewed; True when there was a mark."""
    return bool(delete_marks(conn, [event_id]))


def get_marks(conn, event_ids: Sequence[int]) -> dict[int, ReviewMark]:
    if not event_ids:
        return {}
    rows = conn.execute(f"SELECT {_COLS} FROM event_review r WHERE r.event_id = ANY(%s)",
                        ([int(i) for i in event_ids],)).fetchall()
    return {int(r[0]): _mark(r) for r in rows}


def lost_marks(conn, video_ids: Sequence[int] = ()) -> list[ReviewMark]:
    """Marks whose incident a re-run no longer found (newest video first, in time order)."""
    rows = conn.execute(
        f"SELECT {_COLS} FROM event_review r WHERE r.event_id IS NULL"
        " AND (cardinality(%s::bigint[]) = 0 OR r.video_id = ANY(%s::bigint[]))"
        " ORDER BY r.video_id DESC, r.start_t_s, r.mark_id",
        ([int(v) for v in video_ids], [int(v) for v in video_ids])).fetchall()
    return [_mark(r) for r in rows]


def marks_of_video(conn, video_id: int) -> list[ReviewMark]:
    rows = conn.execute(f"SELECT {_COLS} FROM event_review r WHERE r.video_id = %s"
                        " ORDER BY r.start_t_s, r.mark_id", (int(video_id),)).fetchall()
    return [_mark(r) for r in rows]


def overlap_share(a_start: float, a_end: float, b_start: float, b_end: float) -> float | None:
    """How much two spans overlap, as a share of the shorter one (1.0 for a point inside the
    other span); None when they do not meet."""
    a0, a1 = min(a_start, a_end), max(a_start, a_end)
    b0, b1 = min(b_start, b_end), max(b_start, b_end)
    inter = min(a1, b1) - max(a0, b0)
    if inter < 0:
        return None
    shorter = min(a1 - a0, b1 - b0)
    return 1.0 if shorter <= 0 else inter / shorter


def match_moments(marks: Sequence[tuple[int, str, float, float]],
                  events: Sequence[tuple[int, str, float, float]]) -> dict[int, int]:
    """mark id -> event id: each mark (id, type, start, end) to the event of its type whose span
    overlaps it most (at least ``SAME_MOMENT_OVERLAP`` of either span), one mark per event, the
    largest overlaps first."""
    pairs = []
    for mid, mtype, m0, m1 in marks:
        for eid, etype, e0, e1 in events:
            if etype != mtype:
                continue
            share = overlap_share(m0, m1, e0, e1)
            if share is not None and share >= SAME_MOMENT_OVERLAP:
                inter = min(max(m0, m1), max(e0, e1)) - max(min(m0, m1), min(e0, e1))
                pairs.append((-share, -inter, abs((m0 + m1) - (e0 + e1)), mid, eid))
    out: dict[int, int] = {}
    taken: set[int] = set()
    for *_, mid, eid in sorted(pairs):
        if mid not in out and eid not in taken:
            out[mid] = eid
            taken.add(eid)
    return out


def carry_over(conn, video_id: int) -> CarryOver:
    """After the video's events were replaced (same transaction): attach every mark of the video
    that has no event to the new incident of the same moment; mark the rest no longer detected."""
    marks = conn.execute(
        "SELECT mark_id, event_type, start_t_s, end_t_s FROM event_review"
        " WHERE video_id = %s AND event_id IS NULL ORDER BY mark_id", (int(video_id),)).fetchall()
    if not marks:
        return CarryOver(0, 0)
    events = conn.execute(
        f"SELECT e.event_id, e.event_type, {_EP_START}, {_EP_END} FROM db_event e"
        " WHERE e.video_id = %s AND e.event_type = ANY(%s)"
        " AND NOT EXISTS (SELECT 1 FROM event_review r WHERE r.event_id = e.event_id)",
        (int(video_id), list({m[1] for m in marks}))).fetchall()
    matched = match_moments(marks, events)
    if matched:
        with conn.cursor() as cur:
            cur.executemany("UPDATE event_review SET event_id = %s, carried_at = now(),"
                            " lost_at = NULL WHERE mark_id = %s",
                            [(eid, mid) for mid, eid in matched.items()])
    conn.execute("UPDATE event_review SET lost_at = now() WHERE video_id = %s"
                 " AND event_id IS NULL AND lost_at IS NULL", (int(video_id),))
    out = CarryOver(carried=len(matched), lost=len(marks) - len(matched))
    log.info("video %s: %d review mark(s) carried over, %d no longer detected", video_id,
             out.carried, out.lost)
    return out


def count_marks(conn, event_types: Sequence[EventType | str], video_ids: Sequence[int] = (),
                ) -> list[ReviewCount]:
    """Per (video, event type) of the given types: events and marks in each state."""
    rows = conn.execute(
        "SELECT e.video_id, e.event_type, count(*),"
        " count(r.state) FILTER (WHERE r.state = 'reviewed'),"
        " count(r.state) FILTER (WHERE r.state = 'confirmed'),"
        " count(r.state) FILTER (WHERE r.state = 'false_alarm')"
        " FROM db_event e LEFT JOIN event_review r ON r.event_id = e.event_id"
        " WHERE e.event_type = ANY(%s::text[])"
        " AND (cardinality(%s::bigint[]) = 0 OR e.video_id = ANY(%s::bigint[]))"
        " GROUP BY e.video_id, e.event_type ORDER BY e.video_id DESC, e.event_type",
        ([EventType(t).value for t in event_types], [int(v) for v in video_ids],
         [int(v) for v in video_ids])).fetchall()
    return [ReviewCount(int(v), EventType(t), int(n), int(a), int(b), int(c))
            for v, t, n, a, b, c in rows]


def _mark(row) -> ReviewMark:
    eid, state, note, at, mid, vid, etype, start, end, carried, lost = row
    return ReviewMark(event_id=None if eid is None else int(eid), state=ReviewState(state),
                      note=note or "", reviewed_at=at, mark_id=int(mid), video_id=int(vid),
                      event_type=EventType(etype), start_s=float(start), end_s=float(end),
                      carried_at=carried, lost_at=lost)
