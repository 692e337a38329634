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
from pipeline.records import Event, JobStatus, StoredObject, TrackSummary, VideoInfo

log = logging.getLogger("va.db.store")

VIDEO_LOCK_CLASS = 0x5641  # advisory-lock namespace "VA": (class, video_id) = one job per video

EVENT_COLUMNS = (
    "video_id", "seq", "event_type", "timestamp", "frame_number", "bbox_x", "bbox_y",
    "bbox_width", "bbox_height", "age_group", "gender", "action", "confidence",
    "s3_thumbnail_bucket", "s3_thumbnail_key", "attributes", "obj_id", "sentence",
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


def mark_processing(conn, video_id: int, worker_pid: int, worker_host: str) -> None:
    conn.execute(
        "UPDATE db_video SET analysis_status = 'processing', analysis_progress = 0, stage = 'starting',"
        " frames_done = NULL, frames_total = NULL, eta_s = NULL, error_message = NULL,"
        " started_at = now(), finished_at = NULL, worker_pid = %s, worker_host = %s,"
        " heartbeat_at = now(), token_usage = '{}'::jsonb, updated_at = now() WHERE video_id = %s",
        (worker_pid, worker_host, video_id),
    )


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


def finish_video(conn, video_id: int, status: JobStatus, error_message: str | None = None,
                 token_usage: Mapping[str, Any] | None = None) -> None:
    """End a job: completed (progress 100), failed (with the reason) or cancelled."""
    if status not in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        raise ValueError(f"finish_video needs a final status, got {status}")
    conn.execute(
        "UPDATE db_video SET analysis_status = %s,"
        " analysis_progress = CASE WHEN %s THEN 100 ELSE analysis_progress END,"
        " stage = %s, eta_s = NULL, error_message = %s, finished_at = now(), heartbeat_at = now(),"
        " token_usage = COALESCE(%s::jsonb, token_usage), updated_at = now() WHERE video_id = %s",
        (status.value, status is JobStatus.COMPLETED, status.value,
         _clean_text(error_message), None if token_usage is None else json.dumps(dict(token_usage)),
         video_id),
    )


def mark_stale_jobs(conn, reason: str | None = None) -> list[int]:
    """Mark 'processing' rows whose worker is gone as failed. A live worker holds the video's
    advisory lock on its own connection; a row whose lock we can take has none."""
    stale: list[int] = []
    # A job run by a queue worker is recovered by db.jobs.recover_stalled (retried or failed
    # when the worker's heartbeat stops), not here.
    rows = conn.execute(
        "SELECT video_id, worker_pid, worker_host, heartbeat_at FROM db_video v"
        " WHERE analysis_status = 'processing' AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j"
        " WHERE j.lock = 'video:' || v.video_id::text AND j.status = 'doing')").fetchall()
    for video_id, pid, host, heartbeat in rows:
        if not try_lock_video(conn, video_id):
            continue  # a worker is alive
        try:
            why = reason or (
                f"the worker ({pid}@{host}) stopped without finishing (last heartbeat "
                f"{heartbeat:%Y-%m-%d %H:%M:%S %Z}); start the analysis again"
                if heartbeat is not None else
                "the worker stopped without finishing; start the analysis again")
            cur = conn.execute(
                "UPDATE db_video SET analysis_status = 'failed', error_message = %s, stage = 'failed',"
                " finished_at = now(), eta_s = NULL, updated_at = now()"
                " WHERE video_id = %s AND analysis_status = 'processing'", (why, video_id))
            if cur.rowcount:
                stale.append(int(video_id))
                log.warning("video %s: %s", video_id, why)
        finally:
            unlock_video(conn, video_id)
    return stale


# --- events ------------------------------------------------------------------------------------


def event_attributes(event: Event) -> dict[str, Any]:
    """The JSONB ``attributes`` of an event row (the seed's orientation/scene_analysis keys)."""
    attrs = _base_attributes(event)
    attrs["keypoints"] = [[round(float(x), 1), round(float(y), 1), round(float(s), 3)]
                          for x, y, s in event.keypoints]
    for k, v in dict(event.extra).items():
        attrs.setdefault(str(k), v)
    return attrs


def _base_attributes(event: Event) -> dict[str, Any]:
    return {
        "obj_id": int(event.obj_id),
        "orientation": event.orientation_label,
        "orientation_deg": None if event.orientation_deg is None else round(float(event.orientation_deg), 1),
        "scene_analysis": event.scene_description,
        "age": None if event.age is None or not math.isfinite(event.age) else round(float(event.age), 1),
        "highlight_file": event.highlight_file,
    }


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
                     "int4", "text")


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
