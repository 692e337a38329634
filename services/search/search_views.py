"""Search as the Search page shows it: hits, the cited answer split at its citations, and the
UI's own query embedder."""
from __future__ import annotations

import re
from dataclasses import dataclass

from db.records import Hit, SearchFilters
from services.records import Answer
from settings import Settings


@dataclass(frozen=True)
class SearchView:
    query: str
    hits: tuple[Hit, ...]
    answer: Answer | None
    segments: tuple[tuple[str, int | None], ...] = ()  # answer text split at its citations
    groups: tuple["HitGroup", ...] = ()  # the hits as listed: duplicates collapsed, relevance
    understood: str = ""  # what the query was understood to name (services.search.query_terms)

    @property
    def n_matches(self) -> int:
        return sum(1 for g in self.groups if g.relevant)


_CITE = re.compile(r"\[event (\d+)[^\]]*\]")


def split_citations(text: str) -> tuple[tuple[str, int | None], ...]:
    """The answer as (text, None) and (citation label, event_id) pieces, in order."""
    out: list[tuple[str, int | None]] = []
    pos = 0
    for m in _CITE.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], None))
        out.append((m.group(0), int(m.group(1))))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], None))
    return tuple(out)


class SearchEmbedder:
    """The UI's own query embedder (the worker keeps its own for the jobs), serialised by a
    lock so several browser sessions can search at once; same ``name``/``dim`` as the model."""

    def __init__(self, inner):
        import threading

        self._inner = inner
        self._lock = threading.Lock()
        self.name = inner.name
        self.dim = inner.dim

    def embed(self, texts):
        with self._lock:
            return self._inner.embed(texts)


def load_search_embedder(settings: Settings) -> SearchEmbedder:
    """Build the query embedder (held in ``st.cache_resource`` by the pages)."""
    from pipeline.backends.registry import load_backend

    return SearchEmbedder(load_backend("embedder", settings.embedder, settings))


def run_search(settings: Settings, query: str, filters: SearchFilters | None = None,
               top_k: int = 10, with_answer: bool = True,
               embedder: SearchEmbedder | None = None) -> SearchView:
    from services.search import search as search_service

    hits = tuple(search_service.search(query, filters or SearchFilters(), top_k,
                                       settings=settings, embedder=embedder))
    from services.search import answer as answer_service

    relevant = answer_service.relevant_hits(list(hits), _model_name(settings, embedder))
    answer = None
    if with_answer:  # the same relevant hits as the groups below: picked once
        answer = answer_service.answer(query, list(hits), settings=settings, relevant=relevant)
    groups = group_hits(hits, {h.event.event_id for h in relevant})
    return SearchView(query=query, hits=hits, answer=answer,
                      segments=split_citations(answer.text) if answer else (), groups=groups,
                      understood=search_service.understood(query).describe())


# --- hits as the page lists them ---------------------------------------------------------------

@dataclass(frozen=True)
class HitGroup:
    """Hits of one video whose sentences read the same (apart from their time), shown as one:
    the best-ranked hit, how many there are and the time they span. ``relevant`` is False for
    the closest hits below the relevance threshold (not matches)."""

    hit: Hit
    count: int
    first_t_s: float
    last_t_s: float
    relevant: bool
    event_ids: tuple[int, ...] = ()


def group_hits(hits, relevant_ids) -> tuple[HitGroup, ...]:
    """Hits in rank order as moments (``services.search.answer.group_moments``: one person doing one
    thing, or rows of one video that read the same), the matches grouped apart from the hits
    below the threshold: "Matching moments (N)" is the N the answer counts."""
    from services.search.answer import group_moments

    hits = list(hits)
    rank = {id(h): i for i, h in enumerate(hits)}
    rel = [h for h in hits if h.event.event_id in relevant_ids]
    below = [h for h in hits if h.event.event_id not in relevant_ids]
    groups = [(g, True) for g in group_moments(rel)] + [(g, False) for g in group_moments(below)]
    groups.sort(key=lambda gr: rank[id(gr[0][0])])
    out = []
    for hs, relevant in groups:
        ts = [h.event.t_s for h in hs]
        out.append(HitGroup(hit=hs[0], count=len(hs), first_t_s=min(ts), last_t_s=max(ts),
                            relevant=relevant, event_ids=tuple(h.event.event_id for h in hs)))
    return tuple(out)


def relevant_ids(hits, settings: Settings, embedder=None) -> set[int]:
    """The hits the answer may use (similar enough, or matched by full text): the same test the
    answer applies (``services.search.answer.relevant_hits``)."""
    from services.search import answer as answer_service

    model = _model_name(settings, embedder)
    return {h.event.event_id for h in answer_service.relevant_hits(list(hits), model)}


def _model_name(settings: Settings, embedder=None) -> str:
    """The embedding model's name, whose similarity floor ``relevant_hits`` applies."""
    return getattr(embedder, "name", None) or {"minilm": "all-MiniLM-L6-v2"}.get(
        settings.embedder, settings.embedder)


def hit_thumbnail(settings: Settings, hit: Hit, source_uri: str | None,
                  height_px: int = 120) -> bytes | None:
    """A picture for a hit: the person's crop from the analysed video at the event's frame
    (a local file or the storage folder), or None (an S3 source; a file gone since)."""
    from pathlib import Path

    from pipeline.errors import PipelineError
    from pipeline.media import person_crops

    e = hit.event
    from services.media.source_uri import SourceUri

    uri = SourceUri.parse(source_uri or "")
    if uri.is_s3 or not source_uri or e.bbox[2] <= 0 or e.bbox[3] <= 0:
        return None
    try:
        if uri.is_local:
            from services.media import storage

            path = storage.local_path(settings, uri.key)
        else:
            path = Path(uri.key)
        if not path.is_file():
            return None
        crops = person_crops(path, [(e.frame_number, e.bbox)], height_px)
    except (PipelineError, OSError, ValueError) as err:
        import logging

        logging.getLogger("va.search").warning("no crop for event %s: %s", e.event_id, err)
        return None
    return crops[0] if crops else None
