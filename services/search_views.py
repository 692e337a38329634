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
    from services import search as search_service

    hits = tuple(search_service.search(query, filters or SearchFilters(), top_k,
                                       settings=settings, embedder=embedder))
    answer = None
    if with_answer:
        from services import answer as answer_service

        answer = answer_service.answer(query, list(hits), settings=settings)
    return SearchView(query=query, hits=hits, answer=answer,
                      segments=split_citations(answer.text) if answer else ())
