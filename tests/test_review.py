"""Review marks (db/reviews.py, migration 0006) and the review service (services/review/review.py):
incidents newest video first with their episode and tracks, marks with notes, filters, counts
per state, the analyst's accuracy beside the measured precision (models/detectors.json)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.access.access import OPERATOR
from services.review import review

REPO = Path(__file__).resolve().parents[1]


def _video(conn, name: str, duration_s: float = 7.0) -> int:
    return conn.execute("INSERT INTO db_video (name, analysis_status, duration_s) VALUES"
                        " (%s, 'completed', %s) RETURNING video_id", (name, duration_s)
                        ).fetchone()[0]


def _event(conn, video_id: int, seq: int, event_type: str, t_s: float, conf: float = 0.9,
           obj_id: int | None = 1, attributes: dict | None = None) -> int:
    a = dict(attributes or {})
    tracks = ([obj_id] if obj_id is not None else []) + list(a.pop("other_obj_ids", []))
    return conn.execute(
        'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number, confidence,'
        " obj_id, attributes, s3_thumbnail_key, action, track_ids, start_t_s, end_t_s) VALUES"
        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING event_id",
        (video_id, seq, event_type, t_s, int(t_s * 30), conf, obj_id, json.dumps({}),
         None if event_type == "person" else f"h/{seq}.jpg",
         event_type if event_type != "person" else "walking", tracks,
         a.get("start_t_s"), a.get("end_t_s"))).fetchone()[0]


@pytest.fixture
def world(db_settings, db_pool):
    with db_pool.connection() as conn:
        old = _video(conn, "fi003.mp4", 2.9)
        new = _video(conn, "Fall01.mp4", 7.2)
        ids = {
            "fight": _event(conn, old, 0, "violent", 1.2, 0.8, 3,
                            {"start_t_s": 0.4, "end_t_s": 2.6, "other_obj_ids": [5, 3]}),
            "person": _event(conn, old, 1, "person", 1.2),
            "fall": _event(conn, new, 0, "falling", 4.2, 0.95, 1, {"start_t_s": 4.0,
                                                                   "end_t_s": 5.1}),
            "weak": _event(conn, new, 1, "anomaly", 1.0, 0.3, 2),
        }
    return db_settings, old, new, ids


def test_incidents_newest_video_first_with_episode_and_tracks(world):
    settings, old, new, ids = world
    items = review.review_items(settings)
    assert [i.event_id for i in items] == [ids["weak"], ids["fall"], ids["fight"]]
    fight = items[-1]
    assert fight.tracks == (3, 5)
    assert fight.tracks_text == "tracks 3, 5"
    assert fight.time_text == "0:00.4–0:02.6"
    assert fight.video_name == "fi003.mp4"
    assert fight.state_label == "unreviewed"
    assert items[1].precision.precision == pytest.approx(1.0)


def test_marks_filters_and_counts(world):
    settings, old, new, ids = world
    review.set_mark(settings, ids["fight"], "false_alarm", "  two friends hugging\x00 ", actor=OPERATOR)
    review.set_mark(settings, ids["fall"], review.ReviewState.REVIEWED, actor=OPERATOR)
    review.set_mark(settings, ids["fall"], review.ReviewState.CONFIRMED, "real fall", actor=OPERATOR)
    marks = review.marks_for(settings, [ids["fight"], ids["fall"], ids["weak"]])
    assert marks[ids["fight"]].note == "two friends hugging"
    assert marks[ids["fall"]].state is review.ReviewState.CONFIRMED
    assert marks[ids["fall"]].reviewed_at is not None
    assert ids["weak"] not in marks
    assert review.mark_text(marks[ids["fight"]]) == "false alarm: two friends hugging"

    counts = review.state_counts(review.review_items(settings))
    assert counts == {"unreviewed": 1, "reviewed": 0, "confirmed": 1, "false alarm": 1}
    only = review.review_items(settings, review.IncidentFilter(unreviewed_only=True))
    assert [i.event_id for i in only] == [ids["weak"]]
    assert [i.event_id for i in review.review_items(
        settings, review.IncidentFilter(min_confidence=0.5))] == [ids["fall"], ids["fight"]]
    assert [i.event_id for i in review.review_items(
        settings, review.IncidentFilter(event_types=("violent",)))] == [ids["fight"]]
    assert [i.event_id for i in review.review_items(
        settings, review.IncidentFilter(video_ids=(old,)))] == [ids["fight"]]

    assert review.clear_mark(settings, ids["fight"], actor=OPERATOR)
    assert not review.clear_mark(settings, ids["fight"], actor=OPERATOR)
    with pytest.raises(review.ReviewError, match="does not exist"):
        review.set_mark(settings, 10 ** 9, "confirmed", actor=OPERATOR)
    with pytest.raises(ValueError):
        review.set_mark(settings, ids["fall"], "maybe", actor=OPERATOR)


def test_a_mark_outlives_its_event_as_no_longer_detected(world, db_pool):
    settings, old, new, ids = world
    review.set_mark(settings, ids["fight"], "confirmed", actor=OPERATOR)
    with db_pool.connection() as conn:
        conn.execute("DELETE FROM db_event WHERE video_id = %s", (old,))
    assert review.marks_for(settings, [ids["fight"]]) == {}
    lost = review.lost_marks(settings, [old])  # never silently deleted (tests/test_review_marks)
    assert [(m.state.value, m.event_type.value, m.start_s, m.end_s) for m in lost] == [
        ("confirmed", "violent", 0.4, 2.6)]


def test_accuracy_per_type_and_per_video_beside_measured_precision(world):
    settings, old, new, ids = world
    by_type, by_video = review.accuracy(settings, names={old: "fi003.mp4", new: "Fall01.mp4"})
    fall = next(r for r in by_type if r.key == "falling")
    assert (fall.incidents, fall.judged, fall.confirmed_share) == (1, 0, None)
    assert fall.measured_precision == pytest.approx(1.0)
    review.set_mark(settings, ids["fight"], "false_alarm", actor=OPERATOR)
    review.set_mark(settings, ids["fall"], "confirmed", actor=OPERATOR)
    review.set_mark(settings, ids["weak"], "reviewed", actor=OPERATOR)
    by_type, by_video = review.accuracy(settings, names={old: "fi003.mp4", new: "Fall01.mp4"})
    t = {r.key: r for r in by_type}
    assert list(t) == ["falling", "violent", "anomaly"]  # the vocabulary's order
    assert (t["violent"].confirmed_share, t["violent"].dismissed_share) == (0.0, 1.0)
    assert t["falling"].confirmed_share == 1.0
    assert (t["anomaly"].reviewed, t["anomaly"].judged) == (1, 0)
    v = {r.key: r for r in by_video}
    assert v[f"Fall01.mp4 (video {new})"].incidents == 2
    assert v[f"fi003.mp4 (video {old})"].false_alarm == 1
    assert all(r.measured_precision is None for r in by_video)


def test_track_ids_are_the_typed_list_or_the_track():
    from db.records import StoredEvent

    from pipeline.records import Action, AgeGroup, EventType, Gender

    e = StoredEvent(event_id=1, video_id=1, event_type=EventType.VIOLENT, t_s=1.0, frame_number=1,
                    bbox=(0, 0, 1, 1), age_group=AgeGroup.UNKNOWN, gender=Gender.UNKNOWN,
                    action=Action.VIOLENT, confidence=1.0, obj_id=2, track_ids=(2, 4, 2))
    assert e.people == (2, 4)
    assert StoredEvent(
        event_id=1, video_id=1, event_type=EventType.FALLING, t_s=1.0, frame_number=1,
        bbox=(0, 0, 1, 1), age_group=AgeGroup.UNKNOWN, gender=Gender.UNKNOWN,
        action=Action.FALLING, confidence=1.0, obj_id=7).people == (7,)
    with pytest.raises(TypeError, match="must be EventType"):
        StoredEvent(event_id=1, video_id=1, event_type="falling", t_s=1.0, frame_number=1,
                    bbox=(0, 0, 1, 1), age_group=AgeGroup.UNKNOWN, gender=Gender.UNKNOWN,
                    action=Action.FALLING, confidence=1.0)


def test_every_measured_precision_is_quoted_from_its_source():
    """models/detectors.json is the one place pages read precision from; each figure must be
    backed by the document it names (the README or a model card)."""
    raw = json.loads((REPO / "models" / "detectors.json").read_text())
    for t in review.INCIDENT_TYPES:
        assert t in raw, f"models/detectors.json has no entry for {t}"
    for t, d in raw.items():
        if t.startswith("_") or not d.get("source"):
            assert t.startswith("_") or d.get("precision") is None, t
            continue
        text = " ".join((REPO / d["source"]).read_text().split())
        assert " ".join(d["quote"].split()) in text, f"{t}: quote not found in {d['source']}"
        if d.get("precision") is not None:
            assert 0.0 <= d["precision"] <= 1.0
    prec = review.detector_precision(REPO / "models")
    assert prec["falling"].text.startswith("100% of")
    assert prec["grabbing"].text == "not measured"


def test_migrations_0006_and_0008_are_the_review_table():
    sql = (REPO / "db" / "migrations" / "0006_review_marks.sql").read_text()
    later = (REPO / "db" / "migrations" / "0008_marks_survive_reruns.sql").read_text()
    assert re.search(r"REFERENCES db_event \(event_id\) ON DELETE SET NULL", later)
    assert {s.value for s in review.ReviewState} == set(re.findall(r"'(\w+)'", sql.split(
        "CHECK")[1].split(")")[0]))
