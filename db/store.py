"""The only place that maps records to rows: events (COPY), their vectors and tracks; videos
in ``db/videos.py`` (re-exported here), their job status in ``db/attempts.py``. Functions take an
open psycopg connection; the caller owns transactions and locks.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from itertools import chain
from typing import Any, Iterable, Sequence

import numpy as np

from db import person_vectors, reviews, vectors
from db.records import StoredObject
from db.values import clean_text as _clean_text, enum_value as _enum_value, finite as _finite
from db.videos import (  # noqa: F401 - the video functions, where callers have found them
    VIDEO_LOCK_CLASS, completed_run_of, create_video, find_video_by_source, lock_video,
    set_source, set_video_info, try_lock_video, unlock_video, video_exists, worker_of,
)
from pipeline.records import Event, TrackSummary

log = logging.getLogger("va.db.store")


EVENT_COLUMNS = (
    "video_id", "seq", "event_type", "timestamp", "frame_number", "bbox_x", "bbox_y",
    "bbox_width", "bbox_height", "age_group", "gender", "action", "confidence",
    "s3_thumbnail_bucket", "s3_thumbnail_key", "attributes", "obj_id", "sentence",
    "orientation_deg", "orientation_label", "track_ids", "raw_action", "action_confidence",
    "scene_description", "age", "start_t_s", "end_t_s", "upper_colour", "lower_colour",
    "object_class", "relations",
)


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
        _colour_value(event.upper_colour), _colour_value(event.lower_colour),
        None if event.object_class is None else _enum_value(event.object_class),
        [r.token for r in event.relations],
    )


def _colour_value(colour) -> str | None:
    """A clothing colour as stored: its name, NULL when unknown."""
    value = _enum_value(colour)
    return None if value in (None, "unknown") else value


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
    #: The events (indices) that carry ``vectors``, in their order; None: every event, one each.
    #: The engine embeds one sentence per track segment or incident, stored on its first event.
    vector_rows: Sequence[int] | None = None
    #: One appearance vector per track (``pipeline.person_vectors``), into db/person_vectors.py.
    person_vectors: Sequence = ()


#: Binary COPY types of ``("event_id",) + EVENT_COLUMNS``. Binary COPY is ~25% cheaper for the
#: server than text (no number parsing, no escaping) and the client dumps in C.
_EVENT_COPY_TYPES = ("int8", "int8", "int4", "text", "float8", "int4", "float4", "float4",
                     "float4", "float4", "text", "text", "text", "float4", "text", "text", "jsonb",
                     "int4", "text", "float4", "int2", "int4[]", "text", "float4", "text",
                     "float4", "float8", "float8", "text", "text", "text", "text[]")


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
    bulk), carrying the review marks over to the new incidents of the same moments. Readers see
    the old set or the new one, never a mix. Returns the number of events.

    Rows are built while they stream: the client formats row k+1 while the server parses,
    indexes and stores row k (two cores work at once).
    """
    n = len(batch.events)
    if not (len(batch.sentences) == len(batch.thumbnails) == n):
        raise ValueError(f"{n} events need as many sentences ({len(batch.sentences)}) and "
                         f"thumbnails ({len(batch.thumbnails)})")
    vecs = None
    vec_rows = list(range(n)) if batch.vector_rows is None else [int(i) for i in batch.vector_rows]
    if batch.vectors is not None:
        if (batch.model is None or batch.vectors.ndim != 2
                or batch.vectors.shape[0] != len(vec_rows)):
            raise ValueError(f"vectors must be ({len(vec_rows)}, dim) with a model name, got "
                             f"{None if batch.vectors is None else batch.vectors.shape}")
        if any(not 0 <= i < n for i in vec_rows) or len(set(vec_rows)) != len(vec_rows):
            raise ValueError(f"vector_rows must be distinct event indices below {n}")
        vecs = np.ascontiguousarray(batch.vectors, dtype=np.float32)
    rows = (event_row(video_id, i, e, s, t) for i, (e, s, t) in
            enumerate(zip(batch.events, batch.sentences, batch.thumbnails)))
    with conn.transaction():
        # Bulk work scales with the events (vectors go into the HNSW graph one by one): no
        # server-side statement bound here; the caller bounds the whole switch (db.connection
        # .deadline), which also catches a frozen server.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("DELETE FROM db_event WHERE video_id = %s", (video_id,))
        conn.execute("DELETE FROM db_track WHERE video_id = %s", (video_id,))
        ids = reserve_event_ids(conn, n) if vecs is not None and n else None
        copy_events(conn, video_id, rows, ids)
        if vecs is not None and n:
            dim = int(vecs.shape[1])
            vectors.ensure_index(conn, batch.model, dim)
            copy_vectors(conn, zip((ids[i] for i in vec_rows), vecs), batch.model, dim)
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
        if batch.person_vectors:  # after their tracks (a vector belongs to its track)
            person_vectors.write(conn, video_id, batch.person_vectors)
        # The analysts' marks belong to moments, not event ids: hand each to the new incident
        # of its moment, keep the rest as "no longer detected" (db/reviews.py).
        reviews.carry_over(conn, video_id)
    return n


def thumbnail_keys(conn, video_id: int) -> list[StoredObject]:
    rows = conn.execute(
        "SELECT DISTINCT s3_thumbnail_bucket, s3_thumbnail_key FROM db_event"
        " WHERE video_id = %s AND s3_thumbnail_key IS NOT NULL", (video_id,)).fetchall()
    return [StoredObject(b, k) for b, k in rows]


def delete_video(conn, video_id: int) -> list[StoredObject]:
    """Delete a video's row and, by cascade, its events, vectors, tracks and review marks, in one
    transaction. Returns its highlight frames for the caller to remove from storage."""
    with conn.transaction():
        frames = thumbnail_keys(conn, video_id)
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (int(video_id),))
    return frames
