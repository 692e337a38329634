"""The answer step: search hits -> a short answer whose every claim cites an event id, the video
and mm:ss, e.g. "[event 12, Fall01.mp4 00:05]".

* When no hit is relevant (cosine similarity under a threshold and no full-text match), it says
  that nothing matches instead of answering.
* With an LLM configured (``settings.answerer``: auto | bedrock | openai; auto picks Bedrock when
  AWS_BEDROCK_REGION is set, else an OpenAI-compatible endpoint when VA_OPENAI_BASE_URL is set),
  the model writes the answer from the relevant hits only; its citations are checked against the
  hits and rewritten to canonical labels. An answer with a sentence lacking a citation, or citing
  an event that is not among the hits, is replaced by the extractive answer.
* Otherwise (or on any LLM failure) the answer is extractive: written from the hits' sentences.

Chat backends are the registry's "chat" stage and implement ``ChatModel``
(``pipeline/backends/protocols.py``): ``complete(system, user) -> ChatReply``.
"""
from __future__ import annotations

import logging
import re
from typing import Sequence

from pipeline.backends.protocols import ChatModel
from db.records import Hit
from services.records import Answer, Citation

log = logging.getLogger("va.services.search.answer")

#: A hit is relevant when its cosine similarity reaches SIMILARITY_MIN, or when full text matched
#: it and its similarity reaches LEXICAL_SIMILARITY_MIN (per embedding model). Calibrated with
#: MiniLM on event sentences: matching questions score 0.45-0.65 ("a person falls down" vs a
#: falling event 0.62, "people fighting" vs a violent one 0.55, "someone walking" 0.47);
#: unrelated ones stay under 0.36 ("snow falling on mountains" 0.35, "a dog swimming" 0.02).
#: A single shared word ("falling") is weak evidence, so the full-text floor is nearly as high.
#: With no vectors of the query's model (full-text only), a full-text match is enough.
SIMILARITY_MIN = {"all-MiniLM-L6-v2": 0.40, "default": 0.35}
LEXICAL_SIMILARITY_MIN = {"all-MiniLM-L6-v2": 0.38, "default": 0.33}
MAX_CITED = 5

NOTHING = "Nothing in the analysed videos matches \u201c{q}\u201d; try other words or widen the filters."

SYSTEM_PROMPT = (
    "You answer questions about events detected in surveillance videos. Use ONLY the numbered "
    "events given. Write at most 4 short sentences. Every sentence must end with the citation of "
    "the event(s) it relies on, written exactly as [event ID]. Do not invent events, people, "
    "times or details that are not in the events. If none of the events answers the question, "
    "reply exactly: NO_MATCH"
)


def relevant_hits(hits: Sequence[Hit], model: str | None = None) -> list[Hit]:
    """The hits that answer the query: similar enough, or found by full text and nearly so, or
    matching everything the query was understood to name (``Hit.terms_matched`` 1): that counts
    as a full-text match, with the same similarity floor (the rest of the query still has to
    be about the event: "snow falling" names a fall)."""
    sim_min = SIMILARITY_MIN.get(model or "", SIMILARITY_MIN["default"])
    lex_min = LEXICAL_SIMILARITY_MIN.get(model or "", LEXICAL_SIMILARITY_MIN["default"])
    out = []
    for h in hits:
        sim = h.similarity
        if sim is not None and sim >= sim_min:
            out.append(h)
        elif ((h.lexical_rank is not None or (h.terms_matched or 0.0) >= 1.0)
              and (sim is None or sim >= lex_min)):
            out.append(h)
    return out


def citation(hit: Hit) -> Citation:
    return Citation(event_id=hit.event.event_id, video_name=hit.video_name, t_s=hit.event.t_s)


def _claim(hit: Hit) -> str:
    s = hit.event.sentence.split("; scene:")[0].strip() or f"{hit.event.event_type.value} ({hit.event.action.value})"
    return s[0].upper() + s[1:] if s else s


MOMENT_GAP_S = 3.0  # hits of one track with the same action this close are one moment

def sentence_key(event) -> str:
    """An event's sentence without its time, case and spacing folded: one moment to an analyst."""
    from services.search.embeddings import sentence_body

    return " ".join(sentence_body(event.sentence, event.t_s).lower().split())


def _same_moment(a: Hit, group: Sequence[Hit]) -> bool:
    ea, eb = a.event, group[0].event
    if ea.video_id != eb.video_id:
        return False
    key = sentence_key(ea)
    if any(o.event.event_type is ea.event_type and sentence_key(o.event) == key
           for o in group):
        return True
    return (ea.obj_id is not None and eb.obj_id == ea.obj_id and eb.action is ea.action
            and min(abs(ea.t_s - o.event.t_s) for o in group) <= MOMENT_GAP_S)


def group_moments(hits: Sequence[Hit]) -> list[list[Hit]]:
    """Hits grouped into moments, best first: the per-frame rows of one person doing one thing
    (a fall seen in 5 samples), and rows of one video that read the same apart from their time,
    are one moment, not five claims. The answer counts these and the Search page lists them
    (``services.search.search_views.group_hits``), so the two never disagree."""
    groups: list[list[Hit]] = []
    for h in hits:
        for g in groups:
            if _same_moment(h, g):
                g.append(h)
                break
        else:
            groups.append([h])
    return groups


def extractive_answer(query: str, hits: Sequence[Hit]) -> Answer:
    """Written from the hits alone: one cited sentence per moment, best first."""
    if not hits:
        return Answer(text=NOTHING.format(q=_short(query)), relevant=False, source="extractive")
    moments = group_moments(hits)
    chosen = moments[:MAX_CITED]
    parts, cites = [], []
    for g in chosen:
        best = g[0]
        c = citation(best)
        cites.extend(citation(h) for h in g)
        also = ""
        if len(g) > 1:
            others = sorted(g[1:], key=lambda h: h.event.t_s)
            also = f" (same moment: event{'s' if len(others) > 1 else ''} " + ", ".join(
                str(h.event.event_id) for h in others) + ")"
        parts.append(f"{_claim(best)} in {best.video_name} {c.label}{also}.")
    head = (f"{len(moments)} matching moment{'s' if len(moments) > 1 else ''}"
            f"{f', the best {len(chosen)}' if len(moments) > len(chosen) else ''}: ")
    return Answer(text=head + " ".join(parts), citations=tuple(cites), relevant=True,
                  source="extractive")


def _short(q: str, n: int = 80) -> str:
    q = " ".join(str(q).split())
    return q if len(q) <= n else q[: n - 1] + "\u2026"


def load_chat_model(settings) -> ChatModel | None:
    """The configured chat LLM (the registry's "chat" stage), or None (extractive answers)."""
    from pipeline.backends.registry import REGISTRY, load_backend

    choice = getattr(settings, "answerer", "auto")
    if choice == "extractive":
        return None
    if choice == "auto":
        choice = ("bedrock" if settings.bedrock_enabled else
                  "openai" if settings.openai_enabled else None)
        if choice is None:
            return None
    if choice not in REGISTRY["chat"]:
        from services.errors import ServiceError

        raise ServiceError(f"VA_ANSWERER={choice!r} is unknown; use auto, extractive, "
                           f"{', '.join(REGISTRY['chat'])}")
    return load_backend("chat", choice, settings)


_CITE_RE = re.compile(r"\[\s*event\s+(\d+)[^\]]*\]", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"[^.!?]+(?:[.!?]+|$)")


def validate_llm_answer(text: str, hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]] | None:
    """The LLM text with canonical citation labels, or None when a sentence has no citation or
    cites an event outside ``hits``."""
    by_id = {h.event.event_id: h for h in hits}
    text = text.strip()
    if not text:
        return None
    # Sentences are split after removing citations' inner punctuation.
    masked = _CITE_RE.sub(lambda m: f"[event {m.group(1)}]", text)
    cited: list[Citation] = []
    for sentence in _SENTENCE_RE.findall(masked):
        if not sentence.strip() or not re.search(r"\w", _CITE_RE.sub("", sentence)):
            continue
        ids = [int(i) for i in _CITE_RE.findall(sentence)]
        if not ids:
            return None
        for i in ids:
            if i not in by_id:
                return None
    out = _CITE_RE.sub(lambda m: citation(by_id[int(m.group(1))]).label, masked)
    seen = set()
    for i in (int(x) for x in _CITE_RE.findall(masked)):
        if i not in seen:
            seen.add(i)
            cited.append(citation(by_id[i]))
    return out, tuple(cited)


def _prompt(query: str, hits: Sequence[Hit]) -> str:
    lines = [f"Question: {query}", "", "Events:"]
    for h in hits:
        lines.append(f"[event {h.event.event_id}] video {h.video_name} at {h.mmss}: "
                     f"{h.event.sentence}")
    return "\n".join(lines)


def answer(query: str, hits: Sequence[Hit], *, settings=None, chat: ChatModel | None = None,
           model: str | None = None, relevant: Sequence[Hit] | None = None) -> Answer:
    """A short cited answer from ``hits`` (or 'nothing matches'); ``relevant``: the hits that
    answer the query when the caller has already picked them (``relevant_hits``)."""
    emb_model = model
    if emb_model is None and settings is not None:
        emb_model = {"minilm": "all-MiniLM-L6-v2"}.get(settings.embedder, settings.embedder)
    rel = list(relevant) if relevant is not None else relevant_hits(hits, emb_model)
    if not rel:
        return Answer(text=NOTHING.format(q=_short(query)), relevant=False, source="extractive")
    if chat is None and settings is not None:
        try:
            chat = load_chat_model(settings)
        except Exception as e:  # noqa: BLE001 - a broken LLM set-up must not hide the hits
            log.warning("chat model unavailable (%s); answering extractively", e)
            chat = None
    if chat is None:
        return extractive_answer(query, rel)
    chosen = rel[: max(MAX_CITED, 8)]
    try:
        reply = chat.complete(SYSTEM_PROMPT, _prompt(query, chosen))
    except Exception as e:  # noqa: BLE001 - throttling, network, access: fall back, say why
        log.warning("%s failed (%s); answering extractively", getattr(chat, "name", "LLM"), e)
        return extractive_answer(query, rel)
    src = getattr(chat, "name", "llm")
    if reply.text.strip() == "NO_MATCH":
        return Answer(text=NOTHING.format(q=_short(query)), relevant=False, source=src,
                      input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)
    checked = validate_llm_answer(reply.text, chosen)
    if checked is None:
        log.warning("%s answer had uncited sentences or unknown event ids; answering extractively",
                    src)
        ex = extractive_answer(query, rel)
        return Answer(text=ex.text, citations=ex.citations, relevant=True, source="extractive",
                      input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)
    text, cites = checked
    return Answer(text=text, citations=cites, relevant=True, source=src,
                  input_tokens=reply.input_tokens, output_tokens=reply.output_tokens)
