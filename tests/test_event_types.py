"""pipeline/event_types.py: one declaration per event type, and the modules that read it
(postprocess, incidents, sentences, vocabularies, Review) agree with it."""
from __future__ import annotations

import json
from pathlib import Path

from conftest import make_observation
from pipeline import event_types as ET
from pipeline import postprocess
from pipeline.incidents import incidents
from pipeline.records import Action, Episode, EventType
from services import vocab
from services.review import review
from services.search.embeddings import event_sentence

REPO = Path(__file__).resolve().parents[1]


def test_every_event_type_is_declared_once():
    assert [s.event_type for s in ET.EVENT_TYPES] == list(EventType)
    assert ET.INCIDENT_TYPES == tuple(t for t in EventType
                                      if t not in (EventType.PERSON, EventType.OBJECT))


def test_readers_take_the_declaration():
    for s in ET.EVENT_TYPES:
        assert vocab.EVENT_COLOURS[s.event_type.value] == s.colour
        if s.is_incident:
            assert review.SEVERITY[s.event_type] is s.severity
    assert review.INCIDENT_TYPES == ET.INCIDENT_TYPES
    assert vocab.HIGHLIGHT_TYPES == tuple(t.value for t in ET.INCIDENT_TYPES)
    detectors = json.loads((REPO / "models" / "detectors.json").read_text())
    for t in ET.INCIDENT_TYPES:
        assert ET.spec(t).precision_key in detectors


def test_sentence_says_the_declared_phrase():
    from conftest import make_event

    for s in ET.EVENT_TYPES:
        if s.phrase:
            assert s.phrase in event_sentence(make_event(3.0, s.event_type,
                                                         action=s.episode_action))


def _episode(t: EventType, oid: int, a: float, b: float) -> Episode:
    return Episode(event_type=t, obj_id=oid, start_t_s=a, end_t_s=b, peak_t_s=a,
                   peak_frame_number=int(a * 10), confidence=0.9)


def test_overlay_follows_the_declaration():
    obs = [make_observation(f, obj_id=1, action=Action.STANDING) for f in range(0, 40, 2)]
    for t in (EventType.VIOLENT, EventType.GRABBING, EventType.ANOMALY, EventType.THEFT):
        cleaned = postprocess.clean(obs, [_episode(t, 1, 1.0, 2.0)], frames_sampled=20,
                                    sampled_fps=5.0)
        rows = [e for e in cleaned.events if e.event_type is EventType.PERSON]
        inside = {e.action for e in rows if 1.0 <= e.t_s <= 2.0}
        assert inside == {ET.spec(t).episode_action}, t
        top = [e for e in cleaned.events if e.event_type is t]
        assert top[0].action is ET.spec(t).episode_action
    cleaned = postprocess.clean(obs, [_episode(EventType.COLLAPSE, 1, 1.0, 2.0)],
                                frames_sampled=20, sampled_fps=5.0)
    assert {e.action for e in cleaned.events if e.event_type is EventType.PERSON} == {
        Action.STANDING}  # a collapse does not overlay (Overlay.NONE)


def test_incident_rules_follow_the_declaration():
    fall, collapse = _episode(EventType.FALLING, 1, 1.0, 2.0), _episode(EventType.COLLAPSE, 1, 2.5, 6.0)
    fight = Episode(event_type=EventType.VIOLENT, obj_id=2, start_t_s=1.0, end_t_s=4.0,
                    peak_t_s=2.0, peak_frame_number=20, confidence=0.9, other_obj_ids=(3,))
    running = _episode(EventType.ANOMALY, 3, 2.0, 3.0)
    out = incidents([fall, collapse, fight, running])
    assert [e.event_type for e in out] == [EventType.FALLING, EventType.VIOLENT]
    assert out[0].end_t_s == 6.0  # the collapse folded into the fall
