"""Review marks (``event_review``, migration 0006): an analyst's verdict on an event, with an
optional note and its time. Functions take an open psycopg connection; no mark = unreviewed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Sequence

from pipeline.records import EventType

NOTE_MAX_CHARS = 2000


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
    event_id: int
    state: ReviewState
    note: str
    reviewed_at: datetime | None


@dataclass(frozen=True)
class ReviewCount:
    """Marks of one (video, event type): how many events, and how many in each state."""

    video_id: int
    event_type: EventType
    events: int
    reviewed: int
    confirmed: int
    false_alarm: int


def set_mark(conn, event_id: int, state: ReviewState | str, note: str = "") -> ReviewMark:
    """Mark an event (replacing its earlier mark). Raises ``LookupError`` for an unknown event."""
    state = ReviewState(state)
    note = (note or "").replace("\x00", "").strip()[:NOTE_MAX_CHARS]
    row = conn.execute(
        "INSERT INTO event_review (event_id, state, note)"
        " SELECT event_id, %s, %s FROM db_event WHERE event_id = %s"
        " ON CONFLICT (event_id) DO UPDATE SET state = EXCLUDED.state, note = EXCLUDED.note,"
        " reviewed_at = now()"
        " RETURNING event_id, state, note, reviewed_at",
        (state.value, note, int(event_id))).fetchone()
    if row is None:
        raise LookupError(f"event {event_id} does not exist")
    return _mark(row)


def clear_mark(conn, event_id: int) -> bool:
    """Back to unreviewed; True when there was a mark."""
    cur = conn.execute("DELETE FROM event_review WHERE event_id = %s", (int(event_id),))
    return cur.rowcount > 0


def get_marks(conn, event_ids: Sequence[int]) -> dict[int, ReviewMark]:
    if not event_ids:
        return {}
    rows = conn.execute(
        "SELECT event_id, state, note, reviewed_at FROM event_review WHERE event_id = ANY(%s)",
        ([int(i) for i in event_ids],)).fetchall()
    return {int(r[0]): _mark(r) for r in rows}


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
    eid, state, note, at = row
    return ReviewMark(event_id=int(eid), state=ReviewState(state), note=note or "",
                      reviewed_at=at)
