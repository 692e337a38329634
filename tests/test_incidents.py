"""pipeline/incidents.py: episodes of several tracks -> one incident; a fall and its lying -> one
fall incident; running or reaching by a fighter is part of the fight."""
from __future__ import annotations

from pipeline.incidents import incidents, track_ids
from pipeline.records import Episode, EventType


def ep(kind, oid, start, end, peak=None, conf=0.7, others=()):
    return Episode(event_type=kind, obj_id=oid, start_t_s=start, end_t_s=end,
                   peak_t_s=start if peak is None else peak, peak_frame_number=int(10 * (peak or start)),
                   confidence=conf, other_obj_ids=tuple(others), reason="r")


def test_overlapping_fight_episodes_of_several_tracks_are_one_incident():
    eps = [ep(EventType.VIOLENT, 1, 1.0, 2.0, conf=0.6, others=(2,)),
           ep(EventType.VIOLENT, 3, 1.5, 3.0, peak=2.2, conf=0.9, others=(2,)),
           ep(EventType.VIOLENT, 4, 2.8, 4.0, conf=0.7, others=(5,)),
           ep(EventType.VIOLENT, 7, 9.0, 10.0)]  # a second fight later
    out = incidents(eps)
    assert len(out) == 2
    first = out[0]
    assert (first.start_t_s, first.end_t_s, first.peak_t_s, first.confidence) == (1.0, 4.0, 2.2, 0.9)
    assert first.obj_id == 3 and set(track_ids(first)) == {1, 2, 3, 4, 5}
    assert track_ids(out[1]) == (7,)


def test_bystanders_are_not_involved_and_fighters_running_is_part_of_the_fight():
    eps = [ep(EventType.VIOLENT, 1, 1.0, 3.0, others=(2,)),
           ep(EventType.ANOMALY, 2, 2.0, 2.5),  # a fighter running during the fight
           ep(EventType.ANOMALY, 9, 2.0, 2.5),  # a bystander running away: their own incident
           ep(EventType.GRABBING, 1, 5.0, 6.0)]  # after the fight: its own
    out = incidents(eps)
    kinds = sorted((e.event_type.value, e.obj_id) for e in out)
    assert kinds == [("anomaly", 9), ("grabbing", 1), ("violent", 1)]
    fight = next(e for e in out if e.event_type is EventType.VIOLENT)
    assert track_ids(fight) == (1, 2)


def test_fall_and_the_lying_after_it_are_one_fall_incident():
    fall = ep(EventType.FALLING, 4, 4.0, 5.0, conf=0.9)
    lying = ep(EventType.COLLAPSE, 4, 4.55, 9.0)
    out = incidents([fall, lying])
    assert len(out) == 1 and out[0].event_type is EventType.FALLING
    assert (out[0].peak_t_s, out[0].end_t_s) == (4.0, 9.0)
    # lying with no fall seen stays a collapse; another person's fall does not swallow it
    out = incidents([ep(EventType.COLLAPSE, 2, 1.0, 6.0), ep(EventType.FALLING, 5, 20.0, 21.0)])
    assert sorted(e.event_type.value for e in out) == ["collapse", "falling"]
