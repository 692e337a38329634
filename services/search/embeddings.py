"""Event sentences and their embeddings.

Each stored event gets one plain sentence built from its fields and the scene description, e.g.
"at 00:15 a woman, about 30, fell to the floor near the left edge, facing the camera; scene: ...".
The sentence is what full-text search indexes and what the embedder turns into a vector.
``load_embedder`` picks the model by ``settings.embedder`` through the backend registry (stage
"embedder": ``minilm`` offline by default, ``titan`` on Bedrock) and keeps one per process.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from pipeline.event_types import spec as event_spec
from pipeline.progress import Stage
from pipeline.records import (
    Action, AgeGroup, Colour, Event, EventType, Gender, RunProgress, mmss,
)

log = logging.getLogger("va.services.search.embeddings")

BATCH_SIZE = 64
SCENE_CHARS = 300

_ACTION_PHRASES = {
    Action.STANDING: "was standing",
    Action.WALKING: "was walking",
    Action.RUNNING: "was running",
    Action.SITTING: "was sitting",
    Action.LYING: "was lying on the floor",
    Action.FALLING: "was falling down",
    Action.VIOLENT: "was fighting with another person",
    Action.GRABBING: "was reaching out to grab something",
    Action.ANOMALY: "was behaving unusually",
    Action.PAYING: "was paying at the counter",
    Action.THEFT: "was taking something (possible theft)",
    Action.UNKNOWN: "was seen",
}
_ORIENTATION = {0: "facing the camera", 90: "facing right", 180: "with the back to the camera, facing away",
                270: "facing left"}


def _subject(gender: Gender, age: float | None, age_group: AgeGroup) -> str:
    noun = {Gender.FEMALE: "woman", Gender.MALE: "man"}.get(gender, "person")
    if age is not None and math.isfinite(age):
        return f"a {noun}, about {int(round(age))},"
    adj = {AgeGroup.YOUNG: "young ", AgeGroup.MIDDLE: "middle-aged ", AgeGroup.OLD: "older "}.get(
        age_group, "")
    article = "an" if adj.startswith(("o",)) else "a"
    return f"{article} {adj}{noun}"


def clothes_phrase(upper: Colour, lower: Colour) -> str:
    """" in a red top (jacket, shirt) and blue trousers (pants)": the words analysts use for
    each part, so full text finds "red jacket" and "blue jeans"; "" when neither is known."""
    parts = []
    if upper is not Colour.UNKNOWN:
        parts.append(f"a {upper.value} top (jacket, shirt)")
    if lower is not Colour.UNKNOWN:
        parts.append(f"{lower.value} trousers (pants)")
    return (" in " + " and ".join(parts)) if parts else ""


def _where(xyxy: Sequence[float], frame_size: tuple[int, int] | None) -> str:
    if not frame_size or frame_size[0] <= 0:
        return ""
    cx = (float(xyxy[0]) + float(xyxy[2])) / 2 / frame_size[0]
    if cx < 1 / 3:
        return " near the left edge"
    if cx > 2 / 3:
        return " near the right edge"
    return " in the middle"


def _incident(event: Event) -> str:
    """The incident's people and extent: ", one incident with persons 3 and 5 from 00:04 to
    00:07"."""
    ids = [int(t) for t in event.track_ids]
    start, end = event.start_t_s, event.end_t_s
    out = ""
    if len(ids) > 1:
        out += (", one incident with persons " + ", ".join(str(t) for t in ids[:-1])
                + f" and {ids[-1]}")
    if start is not None and end is not None and float(end) - float(start) >= 1.0:
        out += f" from {mmss(float(start))} to {mmss(float(end))}"
    return out


def relations_phrase(relations) -> str:
    """", carrying a backpack and riding a bicycle (bike)": a person's objects; "" for none."""
    return (", " + " and ".join(r.phrase for r in relations)) if relations else ""


def time_prefix(t_s: float) -> str:
    """"at 00:04 ": how every event sentence starts (``sentence_body`` takes it off again)."""
    return f"at {mmss(t_s)} "


def sentence_body(sentence: str | None, t_s: float) -> str:
    """The sentence without its time: two rows of one person a sample apart differ only
    there. A sentence stored with another time format is returned whole."""
    text, prefix = sentence or "", time_prefix(t_s)
    return text[len(prefix):] if text.startswith(prefix) else text


def _object_sentence(event: Event, frame_size: tuple[int, int] | None) -> str:
    """"at 00:03 a car was seen from 00:00 to 00:20 near the right edge"."""
    what = event.object_class.phrase if event.object_class is not None else "an object"
    text = f"{time_prefix(event.t_s)}{what} was seen{_where(event.xyxy, frame_size)}"
    start, end = event.start_t_s, event.end_t_s
    if start is not None and end is not None and float(end) - float(start) >= 1.0:
        text += f", from {mmss(float(start))} to {mmss(float(end))}"
    return text


def event_sentence(event: Event, frame_size: tuple[int, int] | None = None) -> str:
    """One sentence describing the event, for full-text search and embeddings."""
    et, action = event.event_type, event.action
    if et is EventType.OBJECT:
        return _object_sentence(event, frame_size)
    what = event_spec(et).phrase or _ACTION_PHRASES.get(action, f"was {action.value}")
    if et is not EventType.PERSON and action not in (Action.UNKNOWN,) and action.value != et.value:
        what += f", {_ACTION_PHRASES.get(action, action.value)}"
    subject = _subject(event.gender, event.age, event.age_group)
    clothes = (clothes_phrase(event.upper_colour, event.lower_colour)
               + relations_phrase(event.relations))
    if clothes and subject.endswith(","):
        clothes += ","  # "a man, about 35, in a red top ..., was sitting"
    text = f"{time_prefix(event.t_s)}{subject}{clothes} {what}{_where(event.xyxy, frame_size)}"
    label = event.orientation_label
    if label is not None and label in _ORIENTATION:
        text += f", {_ORIENTATION[label]}"
    if et is not EventType.PERSON:
        text += _incident(event)
    if event.scene_description:
        scene = " ".join(event.scene_description.split())[:SCENE_CHARS]
        text += f"; scene: {scene}"
    return text


def search_sentence(event: Event, frame_size: tuple[int, int] | None = None) -> str:
    """What the vector of an event's segment says: its sentence without the time and the scene
    (who, doing what, where, facing where). Equal for every sampled frame of one track segment."""
    text = event_sentence(dataclasses.replace(event, scene_description=None), frame_size)
    return text.split(" ", 2)[2] if text.startswith("at ") else text


@dataclass(frozen=True)
class EmbeddingPlan:
    """Which texts to embed for a run's events, and which events carry the vectors: one vector per
    track segment (consecutive rows of one track that read the same) or incident (every
    highlight event), stored on the segment's first event; identical texts are embedded once."""

    texts: tuple[str, ...]  # distinct texts, embedded once each
    rows: tuple[int, ...]  # event index carrying each stored vector
    text_of_row: tuple[int, ...]  # the text (index into ``texts``) of each of ``rows``

    def vectors(self, text_vectors: np.ndarray) -> np.ndarray:
        """(len(rows), dim): the vector of each carrying event."""
        return np.asarray(text_vectors, np.float32)[list(self.text_of_row)]


def embedding_plan(events: Sequence[Event], frame_size: tuple[int, int] | None = None
                   ) -> EmbeddingPlan:
    texts: dict[str, int] = {}
    rows: list[int] = []
    text_of_row: list[int] = []
    last: dict[int, tuple[str, float]] = {}  # track -> (text, time) of its latest person row
    order = sorted(range(len(events)), key=lambda i: (events[i].t_s, i))
    for i in order:
        e = events[i]
        text = search_sentence(e, frame_size)
        incident = e.event_type is not EventType.PERSON
        oid = int(e.obj_id)
        if not incident:
            prev = last.get(oid)
            last[oid] = (text, e.t_s)
            if prev is not None and prev[0] == text:
                continue  # same segment: its first row carries the vector
        rows.append(i)
        text_of_row.append(texts.setdefault(text, len(texts)))
    return EmbeddingPlan(texts=tuple(texts), rows=tuple(rows), text_of_row=tuple(text_of_row))


# --- embedder -----------------------------------------------------------------------------------

_embedders: dict[tuple, object] = {}
_lock = threading.Lock()


def load_embedder(settings):
    """The embedder named by ``settings.embedder`` (VA_EMBEDDER), loaded once per process."""
    from pipeline.backends.registry import load_backend

    key = (settings.embedder, settings.bedrock_region, settings.bedrock_embed_model, settings.device)
    with _lock:
        emb = _embedders.get(key)
        if emb is None:
            emb = _embedders[key] = load_backend("embedder", settings.embedder, settings)
        return emb


def embed_texts(embedder, texts: Sequence[str], batch_size: int = BATCH_SIZE,
                on_progress: Callable[[RunProgress], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """(N, dim) float32 L2-normalised vectors, in batches, with progress."""
    n = len(texts)
    out = np.zeros((n, int(embedder.dim)), np.float32)
    for start in range(0, n, batch_size):
        if should_stop is not None and should_stop():
            from pipeline.errors import Cancelled

            raise Cancelled("stopped while embedding events")
        chunk = list(texts[start:start + batch_size])
        v = np.asarray(embedder.embed(chunk), dtype=np.float32)
        if v.shape != (len(chunk), out.shape[1]):
            raise ValueError(f"embedder {embedder.name} returned {v.shape}, expected "
                             f"({len(chunk)}, {out.shape[1]})")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        out[start:start + len(chunk)] = v / np.maximum(norms, 1e-12)
        if on_progress is not None:
            done = start + len(chunk)
            on_progress(RunProgress(fraction=done / n, stage=Stage.EMBEDDING, frames_done=done,
                                    frames_total=n, message=f"{done}/{n} events embedded"))
    return out
