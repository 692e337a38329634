"""Reads: videos (with live job state), events, tracks, and the hybrid search query.

Every value travels as a bound parameter; only vetted identifiers and literals (the embedding
model and its dimension, via ``psycopg.sql``) are composed into the SQL text.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from db import vectors
from pipeline.records import (
    Action, AgeGroup, Colour, EventType, Gender, JobStatus, ObjectClass, ObjectRelation,
    TrackSummary, frozen_mapping, relation_tokens,
)
from db.records import Hit, SearchFilters, StoredEvent, VideoRecord

RRF_K = 60  # reciprocal rank fusion constant (Cormack et al. 2009)
CANDIDATES = 100  # rows each side (vector, full text) contributes before fusion
#: Highlight events (falling, collapse, violent...) are the moments analysts look for: on top of
#: RRF they get HIGHLIGHT_BONUS x their cosine similarity (about a quarter of a top rank at
#: similarity 0.6; next to nothing for an unrelated query), so a fall event outranks the
#: per-frame rows of the same person falling.
HIGHLIGHT_BONUS = 0.01
#: Full text is an AND of the query's words (plainto_tsquery); at most LEXICAL_SCAN matching
#: rows are ranked, which bounds the cost of very common words on large tables.
LEXICAL_SCAN = 2000
#: What the query names in the engine's vocabulary (services.search.query_terms): an event matching
#: all of it gains TERM_BOOST, about three top ranks of RRF, so "a man in a red jacket" lists
#: men with a red upper body first; one matching half of it gains half.
TERM_BOOST = 0.05

_VIDEO_COLS = (
    "v.video_id, v.name, v.source_uri, v.analysis_status, v.analysis_progress, v.stage,"
    " v.frames_done, v.frames_total, v.eta_s, v.fps, v.duration_s, v.frame_count, v.width,"
    " v.height, v.error_message, v.started_at, v.finished_at, v.updated_at, v.heartbeat_at,"
    " v.worker_pid, v.worker_host, v.token_usage, v.warning,"
    " la.status, la.error_message, la.finished_at, v.attempts"
)
#: The latest failed/cancelled attempt after the completed result (runs are attempts: 0004).
_LAST_ATTEMPT = (
    " LEFT JOIN LATERAL (SELECT r.status, r.error_message, r.finished_at FROM db_run r"
    " WHERE r.video_id = v.video_id AND r.status IN ('failed', 'cancelled')"
    " AND r.run_id > COALESCE(v.completed_run_id, 0) AND v.analysis_status = 'completed'"
    " ORDER BY r.run_id DESC LIMIT 1) la ON TRUE"
)
_EVENT_COLS = (
    'e.event_id, e.video_id, e.event_type, e."timestamp", e.frame_number, e.bbox_x, e.bbox_y,'
    " e.bbox_width, e.bbox_height, e.age_group, e.gender, e.action, e.confidence, e.obj_id,"
    " e.s3_thumbnail_bucket, e.s3_thumbnail_key, e.sentence, e.attributes, e.orientation_deg,"
    " e.orientation_label, e.track_ids, e.raw_action, e.action_confidence, e.scene_description,"
    " e.age, e.start_t_s, e.end_t_s, e.upper_colour, e.lower_colour, e.object_class, e.relations"
)
_N_EVENT_COLS = 31


def _video(row, n_events: int | None = None) -> VideoRecord:
    (vid, name, uri, status, progress, stage, fd, ft, eta, fps, dur, fc, w, h, err, started,
     finished, updated, heartbeat, pid, host, tokens, warning, la_status, la_error, la_at,
     attempts) = row
    return VideoRecord(
        video_id=int(vid), name=name, source_uri=uri, status=JobStatus(status),
        progress=float(progress), stage=stage, frames_done=fd, frames_total=ft, eta_s=eta, fps=fps,
        duration_s=dur, frame_count=fc, width=w, height=h, error_message=err, started_at=started,
        finished_at=finished, updated_at=updated, heartbeat_at=heartbeat,
        worker=None if pid is None else f"{pid}@{host}", token_usage=frozen_mapping(tokens or {}),
        n_events=n_events, warning=warning,
        last_attempt_status=None if la_status is None else JobStatus(la_status),
        last_attempt_error=la_error, last_attempt_at=la_at, attempts=int(attempts or 0),
    )


def _vocab(enum, value, column: str):
    """A stored vocabulary value as its Enum (NULL: UNKNOWN); a value the engine does not know
    is a one-line error naming the row's column and the fix."""
    if value is None:
        return enum("unknown")
    try:
        return enum(value)
    except ValueError:
        raise ValueError(f"db_event.{column} holds {value!r}, outside {enum.__name__} "
                         f"({', '.join(m.value for m in enum)}); delete and re-analyse that "
                         f"video") from None


def _relation(token: str) -> ObjectRelation:
    try:
        return ObjectRelation.from_token(token)
    except ValueError:
        raise ValueError(f"db_event.relations holds {token!r}, not 'relation:class' of "
                         f"pipeline.records.ObjectRelation; delete and re-analyse that video"
                         ) from None


def _event(row) -> StoredEvent:
    """A ``db_event`` row as a ``StoredEvent``: the one place its vocabulary columns become the
    engine's Enums."""
    (eid, vid, et, t, fn, bx, by, bw, bh, ag, g, a, conf, obj, bucket, key, sentence, attrs,
     odeg, olabel, tracks, raw, aconf, scene, age, t0, t1, upper, lower, ocls, rels) = row
    return StoredEvent(
        event_id=int(eid), video_id=int(vid), event_type=_vocab(EventType, et, "event_type"),
        t_s=float(t), frame_number=int(fn),
        bbox=(float(bx or 0), float(by or 0), float(bw or 0), float(bh or 0)),
        age_group=_vocab(AgeGroup, ag, "age_group"), gender=_vocab(Gender, g, "gender"),
        action=_vocab(Action, a, "action"),
        confidence=float(conf or 0.0), obj_id=obj, thumbnail_bucket=bucket, thumbnail_key=key,
        sentence=sentence or "", orientation_deg=odeg,
        orientation_label=None if olabel is None else int(olabel),
        track_ids=tuple(int(t) for t in tracks or ()),
        raw_action=None if raw is None else _vocab(Action, raw, "raw_action"),
        action_confidence=aconf,
        scene_description=scene, age=age, start_t_s=t0, end_t_s=t1,
        upper_colour=_vocab(Colour, upper, "upper_colour"),
        lower_colour=_vocab(Colour, lower, "lower_colour"),
        object_class=None if ocls is None else _vocab(ObjectClass, ocls, "object_class"),
        relations=tuple(_relation(t) for t in rels or ()),
        attributes=frozen_mapping(attrs or {}),
    )


def get_video(conn, video_id: int) -> VideoRecord | None:
    row = conn.execute(
        f"SELECT {_VIDEO_COLS}, (SELECT count(*) FROM db_event e WHERE e.video_id = v.video_id)"
        f" FROM db_video v{_LAST_ATTEMPT} WHERE v.video_id = %s", (video_id,)).fetchone()
    return None if row is None else _video(row[:-1], int(row[-1]))


def list_videos(conn, statuses: Sequence[str] = (), limit: int = 500) -> list[VideoRecord]:
    """Newest first, with their event counts."""
    rows = conn.execute(
        f"SELECT {_VIDEO_COLS}, (SELECT count(*) FROM db_event e WHERE e.video_id = v.video_id)"
        f" FROM db_video v{_LAST_ATTEMPT} WHERE (cardinality(%s::text[]) = 0 OR v.analysis_status = ANY(%s::text[]))"
        " ORDER BY v.video_id DESC LIMIT %s", (list(statuses), list(statuses), limit)).fetchall()
    return [_video(r[:-1], int(r[-1])) for r in rows]


def _filter_conds(filters: SearchFilters | None, alias: str = "e", prefix: str = "f"
                  ) -> tuple[list[str], dict]:
    """One condition per filter that is set, with its ``{prefix}_*`` parameters."""
    f = filters or SearchFilters()
    e = alias
    conds: list[str] = []
    p: dict = {}
    if f.video_ids:
        conds.append(f"{e}.video_id = ANY(%({prefix}_videos)s::bigint[])")
        p[f"{prefix}_videos"] = [int(v) for v in f.video_ids]
    if f.t_min_s is not None:
        conds.append(f'{e}."timestamp" >= %({prefix}_tmin)s::float8')
        p[f"{prefix}_tmin"] = float(f.t_min_s)
    if f.t_max_s is not None:
        conds.append(f'{e}."timestamp" <= %({prefix}_tmax)s::float8')
        p[f"{prefix}_tmax"] = float(f.t_max_s)
    for key, col, values in (("types", "event_type", f.event_types),
                             ("actions", "action", f.actions),
                             ("genders", "gender", f.genders),
                             ("ages", "age_group", f.age_groups),
                             ("upper", "upper_colour", f.upper_colours),
                             ("lower", "lower_colour", f.lower_colours)):
        if values:
            conds.append(f"{e}.{col} = ANY(%({prefix}_{key})s::text[])")
            p[f"{prefix}_{key}"] = [v.value for v in values]
    if f.colours:
        conds.append(f"({e}.upper_colour = ANY(%({prefix}_colours)s::text[])"
                     f" OR {e}.lower_colour = ANY(%({prefix}_colours)s::text[]))")
        p[f"{prefix}_colours"] = [v.value for v in f.colours]
    if f.object_classes or f.relations:
        # an object's own event (its class) or a person's relation to one (carrying, riding...)
        own = (f"{e}.object_class = ANY(%({prefix}_objects)s::text[]) OR "
               if f.object_classes and not f.relations else "")
        conds.append(f"({own}{e}.relations && %({prefix}_relations)s::text[])")
        if own:
            p[f"{prefix}_objects"] = [v.value for v in f.object_classes]
        p[f"{prefix}_relations"] = relation_tokens(f.object_classes, f.relations)
    return conds, p


def _filter_sql(filters: SearchFilters | None, alias: str = "e") -> tuple[str, dict]:
    """``(sql, params)``: only the filters that are set, each a plain indexable comparison
    (``video_id = ANY(...)``, ``"timestamp" >= ...``) so the planner can use the btree indexes and
    estimate their selectivity; values are bound parameters. No filter gives ``TRUE``."""
    conds, p = _filter_conds(filters, alias)
    return (" AND ".join(conds) if conds else "TRUE"), p


def _facet_sql(terms: SearchFilters | None, alias: str = "e") -> tuple[list[str], dict]:
    """A query's understood terms (``services.search.query_terms``, as a ``SearchFilters``) as one
    condition per facet with ``b_*`` parameters; an incident type also matches the people whose
    action has its name (a fight's people are ``violent``)."""
    conds, p = _filter_conds(terms, alias, "b")
    conds = [f"({c} OR {alias}.action = ANY(%(b_types)s::text[]))" if "%(b_types)s" in c else c
             for c in conds]
    return conds, p


def list_events(conn, filters: SearchFilters | None = None, limit: int = 20000) -> list[StoredEvent]:
    where, params = _filter_sql(filters)
    params["limit"] = limit
    rows = conn.execute(
        f"SELECT {_EVENT_COLS} FROM db_event e WHERE {where}"
        ' ORDER BY e.video_id, e."timestamp", e.seq LIMIT %(limit)s', params).fetchall()
    return [_event(r) for r in rows]


def get_events(conn, event_ids: Sequence[int]) -> list[StoredEvent]:
    rows = conn.execute(f"SELECT {_EVENT_COLS} FROM db_event e WHERE e.event_id = ANY(%s)"
                        " ORDER BY e.event_id", (list(event_ids),)).fetchall()
    return [_event(r) for r in rows]


def list_tracks(conn, video_id: int) -> list[TrackSummary]:
    rows = conn.execute(
        "SELECT obj_id, first_t_s, last_t_s, n_observations, age, age_spread, gender,"
        " gender_confidence, actions FROM db_track WHERE video_id = %s ORDER BY obj_id",
        (video_id,)).fetchall()
    return [
        TrackSummary(obj_id=r[0], first_t_s=r[1], last_t_s=r[2], n_observations=r[3], age=r[4],
                     age_spread=r[5], gender=Gender(r[6] or "unknown"), gender_confidence=r[7],
                     actions=frozen_mapping(r[8] or {}))
        for r in rows
    ]


def count_events(conn, video_id: int | None = None) -> int:
    row = conn.execute("SELECT count(*) FROM db_event WHERE %s::bigint IS NULL OR video_id = %s",
                       (video_id, video_id)).fetchone()
    return int(row[0])


def _understood_sql(terms: SearchFilters | None, filt: str, with_vector: bool, vexpr, qv,
                    model: str):
    """The ``understood`` candidates (events matching every term the query names), the share
    of the terms a row matches and its weight (an action by the engine's confidence)."""
    from psycopg import sql

    facets, _ = _facet_sql(terms)
    if facets:
        every = " AND ".join(facets)
        matched = "((" + " + ".join(f"({c})::int" for c in facets) + f")::float8 / {len(facets)})"
        # an action counts by the engine's confidence in it (a steady sitter above a person
        # read as sitting for a moment)
        weight = ("((" + " + ".join(
            f"CASE WHEN {c} THEN COALESCE(e.action_confidence, 0.5) ELSE 0 END"
            if "%(b_actions)s" in c else f"({c})::int" for c in facets)
            + f")::float8 / {len(facets)})")
        if with_vector:
            # the same shape as ``semantic``: the planner may walk the HNSW index (iterative
            # scan) checking each candidate's event, or take the matching events first
            understood = sql.SQL(
                "understood AS (SELECT ee.event_id, 1 - ({vexpr_raw} <=> {qv}) AS similarity"
                " FROM event_embedding ee WHERE ee.{model_pred} AND EXISTS (SELECT 1 FROM"
                " db_event e WHERE e.event_id = ee.event_id AND " + filt + " AND " + every +
                ") ORDER BY {vexpr_raw} <=> {qv} LIMIT %(cand)s)"
            ).format(vexpr_raw=vexpr, model_pred=vectors.model_filter(model), qv=qv)
        else:
            understood = sql.SQL(
                "understood AS (SELECT e.event_id, NULL::float8 AS similarity FROM db_event e"
                " WHERE " + filt + " AND " + every + " ORDER BY e.event_id LIMIT %(cand)s)")
    else:
        matched = weight = "NULL::float8"
        understood = sql.SQL("understood AS (SELECT NULL::bigint AS event_id,"
                             " NULL::float8 AS similarity WHERE false)")
    return understood, matched, weight


def hybrid_search_sql(model: str, dim: int, with_vector: bool = True,
                      filters: SearchFilters | None = None, terms: SearchFilters | None = None):
    """The fused query: HNSW cosine candidates and full-text candidates, combined with
    reciprocal rank fusion in one statement. Only the filters that are set appear in it (their
    values are the ``f_*`` parameters of ``_filter_sql``). With ``terms`` (what the query was
    understood to name, ``_facet_sql``) the events matching all of them join the candidates
    (those with this model's vectors, nearest first) and every candidate gains ``TERM_BOOST``
    times the share of the terms it matches."""
    from psycopg import sql

    vexpr = sql.SQL("(ee.embedding::vector({}))").format(sql.Literal(int(dim)))
    filt, fparams = _filter_sql(filters)
    # The ORDER BY compares with the bound parameter itself (not a CTE column) so that the
    # model's partial HNSW index drives the scan. With filters, the planner picks per query: the
    # HNSW scan checking each candidate's event (iterative index scans keep fetching until
    # enough pass), or, for a selective filter (one video, a time range, a rare event type), the
    # filtered events through their btree index and an exact distance on their vectors.
    exists = ("" if not fparams else
              " AND EXISTS (SELECT 1 FROM db_event e WHERE e.event_id = ee.event_id AND " + filt + ")")
    qv = sql.SQL("%(qvec)s::vector({})").format(sql.Literal(int(dim)))
    semantic = sql.SQL(
        "semantic AS ("
        " SELECT event_id, 1 - distance AS similarity, row_number() OVER (ORDER BY distance) AS rank"
        " FROM ("
        "  SELECT ee.event_id, ({vexpr_raw} <=> {qv}) AS distance"
        "  FROM event_embedding ee"
        "  WHERE ee.{model_pred}" + exists +
        "  ORDER BY {vexpr_raw} <=> {qv} LIMIT %(cand)s) s)"
    ).format(vexpr_raw=vexpr, model_pred=vectors.model_filter(model), qv=qv)
    if not with_vector:
        semantic = sql.SQL(
            "semantic AS (SELECT NULL::bigint AS event_id, NULL::float8 AS similarity,"
            " NULL::bigint AS rank WHERE false)")
    understood, matched, weight = _understood_sql(terms, filt, with_vector, vexpr, qv, model)
    q = sql.SQL(
        "WITH q AS (SELECT plainto_tsquery('english', %(text)s) AS tsq),"
        " {semantic}, {understood},"
        " lexical AS ("
        "  SELECT event_id, lex, row_number() OVER (ORDER BY lex DESC, event_id) AS rank FROM ("
        "   SELECT m.event_id, ts_rank_cd(m.tsv, q.tsq, 32) AS lex FROM ("
        "    SELECT e.event_id, e.tsv FROM db_event e, q"
        "    WHERE q.tsq <> ''::tsquery AND e.tsv @@ q.tsq AND " + filt +
        "    LIMIT %(lex_scan)s) m, q"
        "   ORDER BY lex DESC, m.event_id LIMIT %(cand)s) l)"
        " SELECT " + _EVENT_COLS + ", v.name,"
        "  COALESCE(1.0 / (%(rrf_k)s + s.rank), 0) + COALESCE(1.0 / (%(rrf_k)s + l.rank), 0)"
        "  + CASE WHEN e.event_type NOT IN ('person', 'object')"
        "    THEN %(hl_bonus)s * GREATEST(COALESCE(s.similarity, u.similarity, 0), 0) ELSE 0 END"
        "  + %(term_boost)s * COALESCE(" + weight + ", 0) AS score,"
        "  COALESCE(s.similarity, u.similarity) AS similarity, s.rank, l.rank, l.lex,"
        "  " + matched + " AS matched"
        " FROM semantic s FULL OUTER JOIN lexical l ON l.event_id = s.event_id"
        " FULL OUTER JOIN understood u ON u.event_id = COALESCE(s.event_id, l.event_id)"
        " JOIN db_event e ON e.event_id = COALESCE(s.event_id, l.event_id, u.event_id)"
        " JOIN db_video v ON v.video_id = e.video_id"
        " ORDER BY score DESC, similarity DESC NULLS LAST, e.event_id LIMIT %(top_k)s"
    ).format(semantic=semantic, understood=understood)
    return q


def search_params(text: str, query_vector: np.ndarray | None, filters: SearchFilters | None,
                  top_k: int = 10, candidates: int = CANDIDATES,
                  terms: SearchFilters | None = None) -> dict:
    """The parameters of ``hybrid_search_sql`` (for ``hybrid_search`` and EXPLAIN in the bench)."""
    _, params = _filter_sql(filters)
    params.update(_facet_sql(terms)[1])
    params.update({"text": text, "cand": int(candidates), "rrf_k": RRF_K, "top_k": int(top_k),
                   "hl_bonus": HIGHLIGHT_BONUS, "lex_scan": LEXICAL_SCAN,
                   "term_boost": TERM_BOOST})
    if query_vector is not None:
        params["qvec"] = np.asarray(query_vector, dtype=np.float32)
    return params


def search_settings(conn, candidates: int = CANDIDATES) -> None:
    """Per-transaction HNSW settings of a search, in one round trip: iterative index scans keep
    filtered HNSW queries from returning too few rows; ef_search covers the candidates."""
    conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                 " set_config('hnsw.ef_search', %s, true)",
                 (str(int(max(vectors.HNSW_EF_SEARCH, candidates))),))


def hybrid_search(conn, text: str, query_vector: np.ndarray | None, model: str | None,
                  filters: SearchFilters | None = None, top_k: int = 10,
                  candidates: int = CANDIDATES, terms: SearchFilters | None = None) -> list[Hit]:
    """Top-k events for ``text`` (full text) and ``query_vector`` (HNSW, this model's vectors only)
    fused with RRF, those matching the query's understood ``terms`` first. With no vector (no
    model/vectors stored) it is full text alone."""
    with_vector = query_vector is not None and model is not None
    dim = int(query_vector.shape[0]) if with_vector else 0
    params = search_params(text, query_vector if with_vector else None, filters, top_k, candidates,
                           terms)
    query = hybrid_search_sql(model or "", dim, with_vector, filters, terms)
    with conn.transaction():
        search_settings(conn, candidates)
        # Never a server-side prepared statement: a generic plan cannot see how selective this
        # query's filter values are (one video vs. most events), and the choice between the HNSW
        # scan and the exact path depends on it. Planning costs ~1 ms.
        rows = conn.execute(query, params, prepare=False).fetchall()
    hits = []
    for r in rows:
        ev = _event(r[:_N_EVENT_COLS])
        name, score, sim, srank, lrank, _lex, matched = r[_N_EVENT_COLS:]
        hits.append(Hit(event=ev, video_name=name, score=float(score),
                        similarity=None if sim is None else float(sim),
                        semantic_rank=None if srank is None else int(srank),
                        lexical_rank=None if lrank is None else int(lrank),
                        terms_matched=None if matched is None else float(matched)))
    return hits
