"""Person vectors (migration 0011): one appearance vector per track and model, and the nearest
tracks of a track ("find this person in other videos").

The column takes any dimension; each (model, dimension) gets a partial HNSW (cosine) index on the
column cast to it, made with the model's first vectors, and every query filters on the model as a
literal (so the planner uses that index) and casts to its dimension: vectors of different models
are never compared. A model already stored with another dimension is refused.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from db import vectors
from db.errors import DatabaseUnavailable

log = logging.getLogger("va.db.person_vectors")


@dataclass(frozen=True)
class TrackVector:
    """A stored track's vector and model."""

    video_id: int
    obj_id: int
    model: str
    vector: np.ndarray
    first_t_s: float
    last_t_s: float


@dataclass(frozen=True)
class SimilarTrack:
    """A track like the query's: its video, its span and the cosine similarity."""

    video_id: int
    video: str
    obj_id: int
    first_t_s: float
    last_t_s: float
    similarity: float
    #: The track's largest person sample: its event (a link to the Video page), frame and box.
    event_id: int | None = None
    frame_number: int | None = None
    t_s: float | None = None
    bbox: tuple[float, float, float, float] | None = None  # x, y, width, height


def index_name(model: str, dim: int) -> str:
    return "person_vector_hnsw_" + hashlib.sha1(f"{model}/{dim}".encode()).hexdigest()[:12]


def ensure_index(conn, model: str, dim: int) -> str:
    """The model's HNSW index, created if missing; a model stored with another dimension is
    refused (its vectors would not be comparable)."""
    vectors.check_model(model, dim)
    row = conn.execute("SELECT dim FROM person_vector WHERE model = %s LIMIT 1", (model,)).fetchone()
    if row is not None and int(row[0]) != int(dim):
        raise DatabaseUnavailable(f"person vectors of {model!r} are stored with dimension {row[0]},"
                                  f" not {dim}; re-analyse the older videos or delete them")
    name = index_name(model, dim)
    vectors.create_index(conn, "person_vector", name, model, dim)
    return name


def write(conn, video_id: int, rows: Sequence) -> int:
    """Store a video's track vectors (``pipeline.person_vectors.PersonVector``; their tracks
    must be stored first). The caller owns the transaction (the store step's switch)."""
    conn.execute("DELETE FROM person_vector WHERE video_id = %s", (int(video_id),))
    done = set()
    for r in rows:
        if (r.model, r.dim) not in done:
            ensure_index(conn, r.model, r.dim)
            done.add((r.model, r.dim))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO person_vector (video_id, obj_id, model, dim, n_samples, embedding)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [(int(video_id), int(r.obj_id), r.model, r.dim, int(r.n_samples),
              np.asarray(r.vector, np.float32)) for r in rows])
    return len(rows)


def track_vector(conn, video_id: int, obj_id: int, prefer: str | None = None
                 ) -> TrackVector | None:
    """The track's vector (of model ``prefer`` when it has one), None when it has none."""
    row = conn.execute(
        "SELECT p.model, p.embedding, t.first_t_s, t.last_t_s FROM person_vector p"
        " JOIN db_track t USING (video_id, obj_id) WHERE p.video_id = %s AND p.obj_id = %s"
        " ORDER BY p.model = %s DESC, p.model LIMIT 1",
        (int(video_id), int(obj_id), prefer or "")).fetchone()
    if row is None:
        return None
    vec = row[1].to_numpy() if hasattr(row[1], "to_numpy") else row[1]
    return TrackVector(int(video_id), int(obj_id), row[0], np.asarray(vec, np.float32),
                       float(row[2]), float(row[3]))


def similar(conn, query: TrackVector, top_k: int = 10, same_video: bool = False
            ) -> list[SimilarTrack]:
    """The ``top_k`` tracks nearest ``query`` among the vectors of its model, best first: in other
    videos, or with ``same_video`` in its own video too (never the track itself, nor a track
    seen at the same time as it: one person is not twice in a frame)."""
    from psycopg import sql

    dim = int(query.vector.shape[0])
    expr = vectors.vector_expr(dim, "embedding")
    scope = (sql.SQL("NOT (p.video_id = %(vid)s AND (p.obj_id = %(oid)s OR (t.first_t_s <= %(last)s"
                     " AND t.last_t_s >= %(first)s)))") if same_video
             else sql.SQL("p.video_id <> %(vid)s"))
    q = sql.SQL(
        "SELECT p.video_id, v.name, p.obj_id, t.first_t_s, t.last_t_s,"
        " 1 - ({expr} <=> %(q)s::vector) AS similarity, ev.event_id, ev.frame_number,"
        " ev.\"timestamp\", ev.bbox_x, ev.bbox_y, ev.bbox_width, ev.bbox_height"
        " FROM person_vector p JOIN db_video v USING (video_id)"
        " JOIN db_track t USING (video_id, obj_id)"
        " LEFT JOIN LATERAL (SELECT e.event_id, e.frame_number, e.\"timestamp\", e.bbox_x,"
        " e.bbox_y, e.bbox_width, e.bbox_height FROM db_event e WHERE e.video_id = p.video_id"
        " AND e.obj_id = p.obj_id AND e.event_type = 'person'"
        " ORDER BY e.bbox_width * e.bbox_height DESC LIMIT 1) ev ON true"
        " WHERE {model} AND p.dim = %(dim)s AND {scope}"
        " ORDER BY {expr} <=> %(q)s::vector LIMIT %(k)s").format(
            expr=expr, model=sql.SQL("p.") + vectors.model_filter(query.model), scope=scope)
    params = {"vid": query.video_id, "oid": query.obj_id, "first": query.first_t_s,
              "last": query.last_t_s, "dim": dim, "k": int(top_k),
              "q": np.asarray(query.vector, np.float32)}
    with conn.transaction():
        conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                     " set_config('hnsw.ef_search', %s, true)",
                     (str(max(vectors.HNSW_EF_SEARCH, 4 * int(top_k))),))
        rows = conn.execute(q, params).fetchall()
    hits = [SimilarTrack(int(r[0]), r[1], int(r[2]), float(r[3]), float(r[4]), float(r[5]),
                         None if r[6] is None else int(r[6]), r[7], r[8],
                         None if r[6] is None else tuple(float(v) for v in r[9:13]))
            for r in rows]
    return sorted(hits, key=lambda h: -h.similarity)  # relaxed_order: nearly sorted
