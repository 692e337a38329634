"""Search stored events in plain language: HNSW vector similarity (the configured embedder's
vectors only) fused with PostgreSQL full text on the event sentence by reciprocal rank fusion, in
one SQL query (``db.queries.hybrid_search``), with filters on video, time, event type, action,
gender, age group and clothing colours. What the query names in the engine's vocabulary
(``services.search.query_terms``: "a man in a red jacket" -> male, upper body red) ranks the events that
match it first, and only those are kept (``QueryTerms.matches``: "someone sitting" never lists
people walking; a query naming what no stored event is returns nothing); ``understand=False``
searches the words alone (the benchmark's baseline)."""
from __future__ import annotations

import json
import logging
import sys
import unicodedata

from db.records import Hit, SearchFilters
from pipeline.records import EventType
from services.errors import QueryError
from services.search.query_terms import QueryTerms, parse_query

log = logging.getLogger("va.services.search.search")

MAX_QUERY_CHARS = 1000
MAX_TOP_K = 100


def clean_query(query: str) -> str:
    """The query as plain text: control characters become spaces, whitespace collapses. Empty
    and over-long queries are refused with a one-line reason. SQL or HTML in it is just text."""
    if not isinstance(query, str):
        raise QueryError("the search query must be text; type what you are looking for")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the search query has {len(query)} characters; the limit is "
                         f"{MAX_QUERY_CHARS}: shorten it to the moment you are looking for")
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in query)
    text = " ".join(text.split())
    if not text:
        raise QueryError("the search query is empty; type what you are looking for, e.g. "
                         "'a person falls down'")
    return text


def understood(query: str) -> QueryTerms:
    """What ``search`` understands in ``query`` (for the Search page's caption and the CLI)."""
    return parse_query(clean_query(query))


def search(query: str, filters: SearchFilters | None = None, top_k: int = 10, *, settings=None,
           embedder=None, understand: bool = True) -> list[Hit]:
    """Top-k events for ``query``, best first. ``Hit.score`` is the fused RRF score (plus the
    boost of the understood terms) and ``Hit.similarity`` the cosine similarity (None when only
    full text found the event)."""
    from db import queries, vectors
    from services import database
    from services.search.embeddings import load_embedder

    if settings is None:
        from settings import Settings

        settings = Settings.from_env()
    text = clean_query(query)
    if not 1 <= int(top_k) <= MAX_TOP_K:
        raise QueryError(f"top-k {top_k} must be 1..{MAX_TOP_K}")
    database.get_pool(settings)  # fail fast, naming the setting, before loading a model
    emb = embedder or load_embedder(settings)
    with database.pooled(settings) as conn:
        stored = vectors.models(conn)
        qvec, model = None, None
        if stored.get(emb.name) == int(emb.dim):
            qvec, model = emb.embed([text])[0], emb.name
        elif stored:
            log.warning("stored vectors are from %s, not %s; searching by full text only (re-run "
                        "the analyses or set VA_EMBEDDER to that model)", sorted(stored), emb.name)
        terms = parse_query(text) if understand else QueryTerms()
        if not understand:
            return queries.hybrid_search(conn, text, qvec, model, filters, int(top_k))
        hits = queries.hybrid_search(conn, text, qvec, model, filters, MAX_TOP_K,
                                     terms=None if terms.empty else terms.as_filters())
    return [h for h in hits if terms.matches(h.event)][:int(top_k)]


def hit_json(hit: Hit) -> str:
    e = hit.event
    return json.dumps({
        "event_id": e.event_id, "video_id": e.video_id, "video": hit.video_name,
        "timestamp": round(e.t_s, 2), "time": hit.mmss, "event_type": e.event_type.value,
        "action": e.action.value, "obj_id": e.obj_id, "score": round(hit.score, 5),
        "similarity": None if hit.similarity is None else round(hit.similarity, 4),
        "terms_matched": None if hit.terms_matched is None else round(hit.terms_matched, 3),
        "upper_colour": e.upper_colour.value, "lower_colour": e.lower_colour.value,
        "object_class": None if e.object_class is None else e.object_class.value,
        "relations": [r.token for r in e.relations],
        "frame_key": (f"s3://{e.thumbnail_bucket}/{e.thumbnail_key}" if e.thumbnail_bucket
                      else e.thumbnail_key),
    }, ensure_ascii=False)


def event_type_arg(value: str) -> EventType:
    """``--event-type``'s value as an ``EventType``, or a one-line error listing the allowed
    values (the value itself is shown quoted and shortened: it may be anything, SQL included)."""
    try:
        return EventType(str(value).strip().lower())
    except ValueError:
        shown = " ".join(str(value).split())
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise QueryError(f"--event-type {shown!r} is not an event type; use one of: "
                         f"{', '.join(t.value for t in EventType)}") from None


def search_cli(args) -> int:
    """``python -m pipeline search "QUERY" [--video-id N] [--top-k K] [--literal]``: hits as
    JSON lines on stdout, then the terms understood, then the cited answer."""
    from settings import Settings

    settings = Settings.from_env()
    filters = SearchFilters(
        video_ids=(args.video_id,) if getattr(args, "video_id", None) is not None else (),
        event_types=(event_type_arg(args.event_type),) if getattr(args, "event_type", None)
        else ())
    literal = bool(getattr(args, "literal", False))
    hits = search(args.query, filters, args.top_k, settings=settings, understand=not literal)
    for h in hits:
        print(hit_json(h))
    print("understood: off (--literal)" if literal else understood(args.query).describe())
    if not getattr(args, "no_answer", False):
        from services.search.answer import answer

        a = answer(args.query, hits, settings=settings)
        print(f"answer ({a.source}): {a.text}")
    sys.stdout.flush()
    return 0
