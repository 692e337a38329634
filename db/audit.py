"""The audit trail (``audit_log``, migration 0007): who did what, when, on which video or
incident. Append-only: this module only inserts and reads, and a trigger in the database refuses
UPDATE, DELETE and TRUNCATE. Functions take an open psycopg connection."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class AuditAction(str, Enum):
    """What was done. The Admin page's filter and ``pipeline audit --action`` list these."""

    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_OUT = "sign_out"
    LAUNCH = "launch"
    CANCEL = "cancel"
    DELETE = "delete"
    REVIEW_MARK = "review_mark"
    ROLE_CHANGE = "role_change"
    USER_ADD = "user_add"
    USER_REMOVE = "user_remove"
    PASSWORD_RESET = "password_reset"
    ACCESS_DENIED = "access_denied"


@dataclass(frozen=True)
class AuditEntry:
    audit_id: int
    at: datetime
    actor: str
    action: AuditAction
    video_id: int | None
    video_name: str | None
    event_id: int | None
    detail: str


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    actions: tuple[AuditAction, ...] = ()
    video_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500


_COLUMNS = "audit_id, at, actor, action, video_id, video_name, event_id, detail"


def record(conn, actor: str, action: AuditAction | str, *, video_id: int | None = None,
           video_name: str | None = None, event_id: int | None = None,
           detail: str = "") -> int:
    """Append one row; returns its id."""
    row = conn.execute(
        "INSERT INTO audit_log (actor, action, video_id, video_name, event_id, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING audit_id",
        (str(actor), AuditAction(action).value, video_id, video_name, event_id,
         (detail or "")[:2000])).fetchone()
    return int(row[0])


def entries(conn, filt: AuditFilter | None = None) -> list[AuditEntry]:
    """The newest rows first, filtered by actor, actions, video and time range."""
    filt = filt or AuditFilter()
    where, params = [], []
    if filt.actor:
        where.append("actor = %s")
        params.append(filt.actor)
    if filt.actions:
        where.append("action = ANY(%s)")
        params.append([AuditAction(a).value for a in filt.actions])
    if filt.video_id is not None:
        where.append("video_id = %s")
        params.append(int(filt.video_id))
    if filt.since is not None:
        where.append("at >= %s")
        params.append(filt.since)
    if filt.until is not None:
        where.append("at < %s")
        params.append(filt.until)
    sql = (f"SELECT {_COLUMNS} FROM audit_log"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY audit_id DESC LIMIT %s")
    params.append(max(1, int(filt.limit)))
    return [AuditEntry(audit_id=int(r[0]), at=r[1], actor=r[2], action=AuditAction(r[3]),
                       video_id=r[4], video_name=r[5], event_id=r[6], detail=r[7])
            for r in conn.execute(sql, params).fetchall()]


def actors(conn) -> list[str]:
    """Everyone who appears in the trail (for the Admin page's filter)."""
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT actor FROM audit_log ORDER BY actor").fetchall()]


def event_subject(conn, event_id: int) -> dict:
    """``video_id`` and ``video_name`` of an event, for its audit row (empty when it is gone)."""
    r = conn.execute("SELECT v.video_id, v.name FROM db_event e JOIN db_video v USING (video_id)"
                     " WHERE e.event_id = %s", (int(event_id),)).fetchone()
    return {} if r is None else {"video_id": int(r[0]), "video_name": r[1]}


def video_subject(conn, video_id: int) -> dict:
    """``video_name`` of a video, for its audit row (empty when it is gone)."""
    r = conn.execute("SELECT name FROM db_video WHERE video_id = %s", (int(video_id),)).fetchone()
    return {} if r is None else {"video_name": r[0]}
