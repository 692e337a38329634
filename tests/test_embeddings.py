"""pipeline/backends/minilm_onnx.py, minilm.py and services/search/embeddings.py: the real offline
MiniLM model (ONNX by default, torch on request)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.records import Action, AgeGroup, Event, EventType, Gender
from services.search.embeddings import embed_texts, event_sentence, load_embedder
from settings import Settings


@pytest.fixture(scope="module")
def embedder():
    return load_embedder(Settings())  # the default: onnxruntime, no torch


def test_minilm_is_offline_384d_normalised(embedder):
    assert embedder.name == "all-MiniLM-L6-v2" and embedder.dim == 384
    v = embedder.embed(["a man fell to the floor", "a person falls down", "a cat on a sofa"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # meaning, not letters
    assert load_embedder(Settings()) is embedder  # one per process
    assert embedder.embed([]).shape == (0, 384)


def test_event_sentence():
    e = Event(EventType.FALLING, 15.2, 380, 3, (10.0, 0.0, 100.0, 200.0), AgeGroup.MIDDLE,
              Gender.FEMALE, Action.FALLING, 0.9, age=30.4, orientation_deg=5.0,
              scene_description="One person  is visible\nin a room")
    s = event_sentence(e, (640, 480))
    assert s.startswith("at 00:15 a woman, about 30, fell down to the floor")
    assert "near the left edge" in s and "facing the camera" in s
    assert s.endswith("; scene: One person is visible in a room")
    p = Event(EventType.PERSON, 75.0, 1, 1, (500.0, 0.0, 600.0, 200.0), AgeGroup.OLD, Gender.MALE,
              Action.WALKING, 0.7, orientation_deg=180.0)
    assert event_sentence(p, (640, 480)) == (
        "at 01:15 an older man was walking near the right edge, with the back to the camera, facing away")
    u = Event(EventType.VIOLENT, 1.0, 1, 1, (0.0, 0.0, 1.0, 1.0), AgeGroup.UNKNOWN, Gender.UNKNOWN,
              Action.VIOLENT, 0.7)
    assert event_sentence(u).startswith("at 00:01 a person was fighting with another person")


def test_embed_texts_batches_with_progress(embedder):
    seen = []
    texts = [f"person {i} walking" for i in range(10)]
    v = embed_texts(embedder, texts, batch_size=4, on_progress=seen.append)
    assert v.shape == (10, 384)
    assert [p.frames_done for p in seen] == [4, 8, 10] and seen[-1].fraction == 1.0
    assert np.allclose(v[3], embedder.embed([texts[3]])[0], atol=1e-5)
    from pipeline.errors import Cancelled

    with pytest.raises(Cancelled):
        embed_texts(embedder, texts, batch_size=4, should_stop=lambda: True)


def test_unknown_embedder_names_the_setting():
    from pipeline.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="VA_EMBEDDER"):
        load_embedder(Settings(embedder="nope"))


def test_one_vector_per_track_segment_or_incident():
    from services.search.embeddings import embedding_plan, search_sentence

    def person(t, oid, x, action=Action.WALKING, scene=None):
        return Event(EventType.PERSON, t, int(t * 10), oid, (x, 0.0, x + 50.0, 200.0),
                     AgeGroup.UNKNOWN, Gender.MALE, action, 0.8, scene_description=scene)

    events = [person(0.0, 1, 10.0, scene="two men"), person(0.7, 1, 12.0), person(1.4, 1, 14.0),
              person(0.0, 2, 300.0), person(0.7, 2, 300.0),
              person(2.1, 1, 300.0),  # track 1 reaches the middle: a new segment
              person(2.8, 1, 14.0),  # back at the left: the same text as its first segment
              Event(EventType.FALLING, 3.0, 30, 1, (10.0, 0.0, 60.0, 200.0), AgeGroup.UNKNOWN,
                    Gender.MALE, Action.FALLING, 0.9)]
    plan = embedding_plan(events, (640, 480))
    assert plan.rows == (0, 3, 5, 6, 7)  # first row of each segment, and the incident
    assert len(plan.texts) == 3  # walking at the left, in the middle (both tracks), the fall
    assert search_sentence(events[0], (640, 480)) == "a man was walking near the left edge"
    assert plan.texts[plan.text_of_row[0]] == plan.texts[plan.text_of_row[3]]
    vecs = plan.vectors(np.eye(len(plan.texts), dtype=np.float32))
    assert vecs.shape == (5, len(plan.texts))


def test_onnx_and_torch_minilm_agree():
    """The default (onnxruntime, no torch) and VA_EMBEDDER=minilm-torch give comparable vectors
    under one model name (scripts/export_minilm_onnx.py made the ONNX file from the same
    weights)."""
    import torch

    torch.set_num_threads(1)
    texts = ["a person falls down", "a man was walking near the left edge, facing right",
             "people fighting", "at 00:15 a woman, about 30, fell down to the floor (a fall)"]
    onnx = load_embedder(Settings(embedder="minilm"))
    ref = load_embedder(Settings(embedder="minilm-torch"))
    assert onnx.name == ref.name == "all-MiniLM-L6-v2"
    assert "torch" not in type(onnx).__module__
    cos = (onnx.embed(texts) * ref.embed(texts)).sum(1)
    assert cos.min() >= 0.99, cos


def test_incident_sentence_names_the_people_and_the_extent():
    e = Event(EventType.VIOLENT, 4.2, 105, 3, (0.0, 0.0, 1.0, 1.0), AgeGroup.UNKNOWN, Gender.UNKNOWN,
              Action.VIOLENT, 0.8, track_ids=(3, 5, 8), start_t_s=3.0, end_t_s=7.5)
    s = event_sentence(e)
    assert "one incident with persons 3, 5 and 8 from 00:03 to 00:07" in s  # 7.5 s: 00:07
