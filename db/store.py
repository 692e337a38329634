"""The only place that maps records to rows: videos (job state), events (COPY), their vectors
and tracks. Functions take an open psycopg connection; the caller owns transactions and locks.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from itertools import chain
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from db import vectors
from pipeline.records import Event, JobStatus, TrackSummary, VideoInfo
from db.records import StoredObject

log = logging.getLogger("va.db.store")

VIDEO_LOCK_CLASS = 0x5641  # advisory-lock namespace "VA": (class, video_id) = one job per video

EVENT_COLUMNS = (
    "video_id", "seq", "event_type", "timestamp", "frame_number", "bbox_x", "bbox_y",
    "bbox_width", "bbox_height", "age_group", "gender", "action", "confidence",
    "s3_thumbnail_bucket", "s3_thumbnail_key", "attributes", "obj_id", "sentence",
    "orientation_deg", "orientation_label", "track_ids", "raw_action", "action_confidence",
    "scene_description", "age", "start_t_s", "end_t_s",
)


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


def _clean_text(s: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; nothing else is altered."""
    return None if s is None else s.replace("\x00", "")


# --- videos ------------------------------------------------------------------------------------


def create_video(conn, name: str, source_uri: str | None) -> int:
    row = conn.execute(
        "INSERT INTO db_video (name, source_uri) VALUES (%s, %s) RETURNING video_id",
        (_clean_text(name), _clean_text(source_uri)),
    ).fetchone()
    return int(row[0])


def find_video_by_source(conn, source_uri: str) -> int | None:
    row = conn.execute(
        "SELECT video_id FROM db_video WHERE source_uri = %s ORDER BY video_id DESC LIMIT 1",
        (_clean_text(source_uri),),
    ).fetchone()
    return None if row is None else int(row[0])


def video_exists(conn, video_id: int) -> bool:
    return conn.execute("SELECT 1 FROM db_video WHERE video_id = %s", (video_id,)).fetchone() is not None


def completed_run_of(conn, video_id: int) -> int | None:
    row = conn.execute("SELECT completed_run_id FROM db_video WHERE video_id = %s",
                       (video_id,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def set_source(conn, video_id: int, name: str, source_uri: str) -> None:
    conn.execute("UPDATE db_video SET name = %s, source_uri = %s, updated_at = now() "
                 "WHERE video_id = %s", (_clean_text(name), _clean_text(source_uri), video_id))


def try_lock_video(conn, video_id: int) -> bool:
    """Take the per-video job lock on this (dedicated, session) connection. It is released when
    the connection closes, so a killed worker never holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (VIDEO_LOCK_CLASS, int(video_id)))
    return bool(row.fetchone()[0])


def lock_video(conn, video_id: int) -> None:
    """Wait for the per-video job lock."""
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (VIDEO_LOCK_CLASS, int(video_id)))


def unlock_video(conn, video_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (VIDEO_LOCK_CLASS, int(video_id)))


def worker_of(conn, video_id: int) -> str | None:
    row = conn.execute("SELECT worker_pid, worker_host FROM db_video WHERE video_id = %s",
                       (video_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    return f"{row[0]}@{row[1]}"


def mark_processing(conn, video_id: int, worker_pid: int, worker_host: str) -> int:
    """Start an attempt: a new ``db_run`` row (processing) and the video shown processing. The
    video's events, tracks, finished time and token usage stay those of its last completed run
    until this attempt completes (``complete_run``). Returns the run id."""
    with conn.transaction():
        run_id = int(conn.execute(
            "INSERT INTO db_run (video_id, worker_pid, worker_host) VALUES (%s, %s, %s)"
            " RETURNING run_id", (video_id, worker_pid, worker_host)).fetchone()[0])
        conn.execute(
            "UPDATE db_video SET analysis_status = 'processing', analysis_progress = 0,"
            " stage = 'starting', frames_done = NULL, frames_total = NULL, eta_s = NULL,"
            " error_message = NULL, worker_pid = %s, worker_host = %s, heartbeat_at = now(),"
            " current_run_id = %s, updated_at = now() WHERE video_id = %s",
            (worker_pid, worker_host, run_id, video_id),
        )
    return run_id


def write_progress(conn, video_id: int, percent: float, stage: str, frames_done: int | None,
                   frames_total: int | None, eta_s: float | None) -> None:
    conn.execute(
        "UPDATE db_video SET analysis_progress = %s, stage = %s, frames_done = %s,"
        " frames_total = %s, eta_s = %s, heartbeat_at = now(), updated_at = now()"
        " WHERE video_id = %s AND analysis_status = 'processing'",
        (max(0.0, min(100.0, float(percent))), stage, frames_done, frames_total, _finite(eta_s),
         video_id),
    )


def set_video_info(conn, video_id: int, info: VideoInfo) -> None:
    conn.execute(
        "UPDATE db_video SET fps = %s, duration_s = %s, frame_count = %s, width = %s, height = %s,"
        " updated_at = now() WHERE video_id = %s",
        (_finite(info.fps), _finite(info.duration_s), int(info.frame_count), int(info.width),
         int(info.height), video_id),
    )


def complete_run(conn, video_id: int, run_id: int | None,
                 token_usage: Mapping[str, Any] | None = None, warning: str | None = None,
                 coverage: "RunCoverage | None" = None) -> None:
    """The attempt completed: it becomes the video's result (call it in the transaction that
    replaced the events, so readers see the old result or the new one, never a mix)."""
    tokens = json.dumps(dict(token_usage or {}))
    cov = coverage or RunCoverage()
    with conn.transaction():
        if run_id is None:  # a caller that never started an attempt (tests, old callers)
            run_id = int(conn.execute(
                "INSERT INTO db_run (video_id) VALUES (%s) RETURNING run_id", (video_id,)
            ).fetchone()[0])
        conn.execute(
            "UPDATE db_run SET status = 'completed', error_message = NULL, warning = %s,"
            " frames_decoded = %s, frames_undecodable = %s, covered_from_s = %s,"
            " covered_to_s = %s, token_usage = %s::jsonb, finished_at = now() WHERE run_id = %s",
            (_clean_text(warning), cov.frames_decoded, cov.frames_undecodable,
             _finite(cov.covered_from_s), _finite(cov.covered_to_s), tokens, run_id))
        conn.execute(
            "UPDATE db_video v SET analysis_status = 'completed', analysis_progress = 100,"
            " stage = 'completed', eta_s = NULL, error_message = NULL, warning = %s,"
            " started_at = r.started_at, finished_at = r.finished_at, token_usage = r.token_usage,"
            " completed_run_id = r.run_id, current_run_id = NULL, heartbeat_at = now(),"
            " updated_at = now() FROM db_run r WHERE r.run_id = %s AND v.video_id = %s",
            (_clean_text(warning), run_id, video_id))


@dataclass(frozen=True)
class RunCoverage:
    """How much of the video a run decoded (stored with the run)."""

    frames_decoded: int | None = None
    frames_undecodable: int | None = None
    covered_from_s: float | None = None
    covered_to_s: float | None = None


def end_attempt(conn, video_id: int, status: JobStatus, error_message: str | None = None,
                token_usage: Mapping[str, Any] | None = None, run_id: int | None = None) -> int:
    """A failed or cancelled attempt: recorded in ``db_run`` with its reason (the video's current
    attempt, or a new row when none had started, e.g. cancelled while queued). A video with a
    completed run goes back to it: status completed, its finished time and token usage; a video
    without one shows the attempt's status and reason. Returns the run id."""
    if status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ValueError(f"end_attempt needs failed or cancelled, got {status}")
    tokens = None if token_usage is None else json.dumps(dict(token_usage))
    err = _clean_text(error_message)
    with conn.transaction():
        row = conn.execute(
            "SELECT current_run_id FROM db_video WHERE video_id = %s FOR UPDATE",
            (video_id,)).fetchone()
        if row is None:
            raise ValueError(f"video {video_id} does not exist")
        rid = run_id if run_id is not None else row[0]
        updated = None
        if rid is not None:
            updated = conn.execute(
                "UPDATE db_run SET status = %s, error_message = %s, finished_at = now(),"
                " token_usage = COALESCE(%s::jsonb, token_usage)"
                " WHERE run_id = %s AND status = 'processing' RETURNING run_id",
                (status.value, err, tokens, rid)).fetchone()
        if updated is None:
            rid = int(conn.execute(
                "INSERT INTO db_run (video_id, status, error_message, finished_at, token_usage)"
                " VALUES (%s, %s, %s, now(), COALESCE(%s::jsonb, '{}'::jsonb)) RETURNING run_id",
                (video_id, status.value, err, tokens)).fetchone()[0])
        conn.execute(
            "UPDATE db_video v SET"
            " analysis_status = CASE WHEN c.run_id IS NULL THEN %(s)s ELSE 'completed' END,"
            " analysis_progress = CASE WHEN c.run_id IS NULL THEN v.analysis_progress ELSE 100 END,"
            " stage = CASE WHEN c.run_id IS NULL THEN %(s)s ELSE 'completed' END,"
            " error_message = CASE WHEN c.run_id IS NULL THEN %(err)s ELSE NULL END,"
            " started_at = CASE WHEN c.run_id IS NULL THEN v.started_at ELSE c.started_at END,"
            " finished_at = CASE WHEN c.run_id IS NULL THEN now() ELSE c.finished_at END,"
            " token_usage = CASE WHEN c.run_id IS NULL"
            "   THEN COALESCE(%(tok)s::jsonb, v.token_usage) ELSE c.token_usage END,"
            " eta_s = NULL, current_run_id = NULL, heartbeat_at = now(), updated_at = now()"
            " FROM db_video v0 LEFT JOIN db_run c ON c.run_id = v0.completed_run_id"
            " WHERE v0.video_id = v.video_id AND v.video_id = %(vid)s",
            {"s": status.value, "err": err, "tok": tokens, "vid": video_id})
    return int(rid)


def finish_video(conn, video_id: int, status: JobStatus, error_message: str | None = None,
                 token_usage: Mapping[str, Any] | None = None, run_id: int | None = None) -> None:
    """End a job: completed (``complete_run``), failed or cancelled (``end_attempt``: the video
    keeps its last completed result and status)."""
    if status is JobStatus.COMPLETED:
        if run_id is None:
            row = conn.execute("SELECT current_run_id FROM db_video WHERE video_id = %s",
                               (video_id,)).fetchone()
            run_id = None if row is None else row[0]
        complete_run(conn, video_id, run_id, token_usage)
    elif status in (JobStatus.FAILED, JobStatus.CANCELLED):
        end_attempt(conn, video_id, status, error_message, token_usage, run_id)
    else:
        raise ValueError(f"finish_video needs a final status, got {status}")


def mark_stale_jobs(conn, reason: str | None = None) -> list[int]:
    """Mark 'processing' rows whose worker is gone as failed. A live worker holds the video's
    advisory lock on its own connection; a row whose lock we can take has none."""
    stale: list[int] = []
    rows = conn.execute(
        "SELECT video_id, worker_pid, worker_host, heartbeat_at FROM db_video"
        " WHERE analysis_status = 'processing'").fetchall()
    for video_id, pid, host, heartbeat in rows:
        if not try_lock_video(conn, video_id):
            continue  # a worker is alive
        try:
            why = reason or (
                f"the worker ({pid}@{host}) stopped without finishing (last heartbeat "
                f"{heartbeat:%Y-%m-%d %H:%M:%S %Z}); start the analysis again"
                if heartbeat is not None else
                "the worker stopped without finishing; start the analysis again")
            still = conn.execute("SELECT 1 FROM db_video WHERE video_id = %s"
                                 " AND analysis_status = 'processing'", (video_id,)).fetchone()
            if still is not None:
                end_attempt(conn, video_id, JobStatus.FAILED, why)
                stale.append(int(video_id))
                log.warning("video %s: %s", video_id, why)
        finally:
            unlock_video(conn, video_id)
    return stale


# --- events ------------------------------------------------------------------------------------


def event_attributes(event: Event) -> dict[str, Any]:
    """The JSONB ``attributes`` of an event row: only what is open-ended (keypoints, the
    highlight file, ``event.extra``); every other field has its own column."""
    attrs = _base_attributes(event)
    attrs["keypoints"] = [[round(float(x), 1), round(float(y), 1), round(float(s), 3)]
                          for x, y, s in event.keypoints]
    for k, v in dict(event.extra).items():
        attrs.setdefault(str(k), v)
    return attrs


def _base_attributes(event: Event) -> dict[str, Any]:
    return {"highlight_file": event.highlight_file}


def _round(v: Any, digits: int) -> float | None:
    f = _finite(v)
    return None if f is None else round(f, digits)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "value"):
        return o.value
    return str(o)


def event_row(video_id: int, seq: int, event: Event, sentence: str,
              thumbnail: StoredObject | None) -> tuple:
    """The ``EVENT_COLUMNS`` values of one event (attributes as JSON text)."""
    x1, y1, x2, y2 = (float(v) for v in event.xyxy)
    return (
        int(video_id), int(seq), _enum_value(event.event_type), float(event.t_s),
        int(event.frame_number), x1, y1, x2 - x1, y2 - y1, _enum_value(event.age_group),
        _enum_value(event.gender), _enum_value(event.action), _finite(event.confidence),
        None if thumbnail is None else thumbnail.bucket,
        None if thumbnail is None else thumbnail.key,
        _clean_text(_attributes_json(event)),
        int(event.obj_id), _clean_text(sentence) or "",
        _round(event.orientation_deg, 1), event.orientation_label,
        [int(t) for t in (event.track_ids or (event.obj_id,))],
        None if event.raw_action is None else _enum_value(event.raw_action),
        _finite(event.action_confidence), _clean_text(event.scene_description),
        _round(event.age, 1), _finite(event.start_t_s), _finite(event.end_t_s),
    )


#: "%.1f,%.1f,%.3f" per keypoint, one format string per keypoint count: formatting 51 floats in one
#: ``%`` is ~4x faster than rounding each with ``round()`` and letting ``json`` print them, and
#: building the rows is the client's share of the COPY (see scripts/bench_db.py).
_KP_FORMATS: dict[int, str] = {}


def _keypoints_json(keypoints: Sequence) -> str | None:
    """Keypoints as a JSON array of [x, y, score] (x, y to 0.1 px, score to 0.001), or None when
    a value is not a finite number (the caller falls back to the general path)."""
    n = len(keypoints)
    fmt = _KP_FORMATS.get(n)
    if fmt is None:
        fmt = _KP_FORMATS.setdefault(n, "[" + ",".join(["[%.1f,%.1f,%.3f]"] * n) + "]")
    try:
        if not all(len(k) == 3 for k in keypoints):
            return None
        text = fmt % tuple(chain.from_iterable(keypoints))
    except (TypeError, ValueError):
        return None
    return None if "n" in text else text  # "nan" / "inf" are not JSON


def _attributes_json(event: Event) -> str:
    """``event_attributes(event)`` as JSON text. NaN/inf (not JSON) are stored as null."""
    kp = _keypoints_json(event.keypoints)
    if kp is not None:  # fast path: finite keypoints, formatted in one go
        attrs = _base_attributes(event)
        for k, v in dict(event.extra).items():
            if str(k) != "keypoints":
                attrs.setdefault(str(k), v)
        try:
            head = json.dumps(attrs, default=_json_default, allow_nan=False)
        except ValueError:
            pass
        else:
            return head[:-1] + ', "keypoints": ' + kp + "}"
    attrs = event_attributes(event)
    try:
        return json.dumps(attrs, default=_json_default, allow_nan=False)
    except ValueError:  # NaN/inf somewhere: JSON has no NaN, store null
        return json.dumps(_nan_to_none(attrs), default=_json_default)


def _nan_to_none(o: Any) -> Any:
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, np.ndarray)):
        return [_nan_to_none(v) for v in o]
    return o


@dataclass(frozen=True)
class EventBatch:
    """What one run stores for a video: events with their sentences and thumbnails, optional
    vectors (one row per event, of ``model``), and the tracks."""

    events: Sequence[Event]
    sentences: Sequence[str]
    thumbnails: Sequence[StoredObject | None]
    vectors: np.ndarray | None = None
    model: str | None = None
    tracks: Sequence[TrackSummary] = ()


#: Binary COPY types of ``("event_id",) + EVENT_COLUMNS``. Binary COPY is ~25% cheaper for the
#: server than text (no number parsing, no escaping) and the client dumps in C.
_EVENT_COPY_TYPES = ("int8", "int8", "int4", "text", "float8", "int4", "float4", "float4",
                     "float4", "float4", "text", "text", "text", "float4", "text", "text", "jsonb",
                     "int4", "text", "float4", "int2", "int4[]", "text", "float4", "text",
                     "float4", "float8", "float8")


def _identity(s: str) -> str:
    return s


def reserve_event_ids(conn, n: int) -> list[int]:
    """``n`` new event ids from db_event's sequence (safe beside concurrent writers), so events
    and their vectors can be COPYed without reading the ids back."""
    if n <= 0:
        return []
    rows = conn.execute(
        "SELECT nextval(pg_get_serial_sequence('db_event', 'event_id')) FROM generate_series(1, %s)",
        (int(n),)).fetchall()
    return [int(r[0]) for r in rows]


def copy_events(conn, video_id: int, rows: Iterable[tuple],
                event_ids: Sequence[int] | None = None) -> None:
    """COPY rows of ``EVENT_COLUMNS`` (from ``event_row``) into db_event, in binary format.
    With ``event_ids`` (from ``reserve_event_ids``, one per row) the rows get those ids."""
    from psycopg.types.json import Jsonb

    cols = ", ".join(f'"{c}"' for c in (("event_id",) if event_ids is not None else ()) + EVENT_COLUMNS)
    types = list(_EVENT_COPY_TYPES if event_ids is not None else _EVENT_COPY_TYPES[1:])
    with conn.cursor() as cur:
        with cur.copy(f"COPY db_event ({cols}) FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(types)
            write = cp.write_row
            if event_ids is None:
                for r in rows:
                    write(r[:15] + (Jsonb(r[15], _identity),) + r[16:])
            else:
                ids = iter(event_ids)
                for r in rows:
                    write((next(ids),) + r[:15] + (Jsonb(r[15], _identity),) + r[16:])
                if next(ids, None) is not None:
                    raise ValueError(f"more event ids ({len(event_ids)}) than rows")


def copy_vectors(conn, pairs: Iterable[tuple[int, np.ndarray]], model: str, dim: int) -> None:
    with conn.cursor() as cur:
        with cur.copy("COPY event_embedding (event_id, model, dim, embedding) FROM STDIN "
                      "WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "text", "int4", "vector"])
            for event_id, vec in pairs:
                cp.write_row((event_id, model, dim, vec))


def replace_events(conn, video_id: int, batch: EventBatch) -> int:
    """Replace the video's events, vectors and tracks in ONE transaction (binary COPY for the
    bulk). Readers see the old set or the new one, never a mix. Returns the number of events.

    Rows are built while they stream: the client formats row k+1 while the server parses,
    indexes and stores row k (two cores work at once).
    """
    n = len(batch.events)
    if not (len(batch.sentences) == len(batch.thumbnails) == n):
        raise ValueError(f"{n} events need as many sentences ({len(batch.sentences)}) and "
                         f"thumbnails ({len(batch.thumbnails)})")
    vecs = None
    if batch.vectors is not None:
        if batch.model is None or batch.vectors.shape[0] != n or batch.vectors.ndim != 2:
            raise ValueError(f"vectors must be ({n}, dim) with a model name, got "
                             f"{None if batch.vectors is None else batch.vectors.shape}")
        vecs = np.ascontiguousarray(batch.vectors, dtype=np.float32)
    rows = (event_row(video_id, i, e, s, t) for i, (e, s, t) in
            enumerate(zip(batch.events, batch.sentences, batch.thumbnails)))
    with conn.transaction():
        conn.execute("DELETE FROM db_event WHERE video_id = %s", (video_id,))
        conn.execute("DELETE FROM db_track WHERE video_id = %s", (video_id,))
        ids = reserve_event_ids(conn, n) if vecs is not None and n else None
        copy_events(conn, video_id, rows, ids)
        if vecs is not None and n:
            dim = int(vecs.shape[1])
            vectors.ensure_index(conn, batch.model, dim)
            copy_vectors(conn, zip(ids, vecs), batch.model, dim)
        if batch.tracks:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO db_track (video_id, obj_id, first_t_s, last_t_s, n_observations, age,"
                    " age_spread, age_group, gender, gender_confidence, actions)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(video_id, int(t.obj_id), float(t.first_t_s), float(t.last_t_s),
                      int(t.n_observations), _finite(t.age), _finite(t.age_spread),
                      t.age_group.value, _enum_value(t.gender), _finite(t.gender_confidence),
                      json.dumps({str(_enum_value(k)): int(v) for k, v in dict(t.actions).items()}))
                     for t in batch.tracks],
                )
    return n


def thumbnail_keys(conn, video_id: int) -> list[StoredObject]:
    rows = conn.execute(
        "SELECT DISTINCT s3_thumbnail_bucket, s3_thumbnail_key FROM db_event"
        " WHERE video_id = %s AND s3_thumbnail_key IS NOT NULL", (video_id,)).fetchall()
    return [StoredObject(b, k) for b, k in rows]
