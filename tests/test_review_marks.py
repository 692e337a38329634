"""Review marks survive re-runs (db/reviews.py, migration 0008): a mark belongs to the moment
judged. A re-run (the real ``db.store.replace_events`` on the embedded PostgreSQL) carries it over
to the new incident of the same type that overlaps it for most of either span, and keeps a mark
whose incident vanished as "no longer detected"; the one writer ``write_marks``; "mark all as
reviewed" never overwrites a verdict; the CLI's ``review list|mark``."""
from __future__ import annotations

from services.access.access import OPERATOR

import json

import pytest

from conftest import make_event
from db import reviews
from pipeline.records import Action, EventType
from services.review import review


# --- the rule, pure -----------------------------------------------------------------------------


def test_overlap_is_a_share_of_the_shorter_span():
    assert reviews.overlap_share(4.0, 5.0, 4.5, 6.0) == pytest.approx(0.5)
    assert reviews.overlap_share(4.0, 5.0, 3.0, 9.0) == pytest.approx(1.0)  # inside
    assert reviews.overlap_share(4.0, 5.0, 5.5, 6.0) is None  # apart
    assert reviews.overlap_share(4.2, 4.2, 4.0, 5.0) == 1.0  # a point inside the span
    assert reviews.overlap_share(4.2, 4.2, 4.3, 5.0) is None


def test_each_mark_goes_to_the_best_overlap_of_its_type_once():
    marks = [(1, "falling", 4.0, 5.0), (2, "violent", 0.4, 2.6), (3, "falling", 4.1, 4.9),
             (4, "anomaly", 1.0, 1.0)]
    events = [(10, "falling", 4.2, 5.3), (11, "violent", 2.0, 2.2), (12, "collapse", 4.0, 5.0),
              (13, "violent", 9.0, 9.5), (14, "anomaly", 3.0, 3.5)]
    m = reviews.match_moments(marks, events)
    # falling: mark 3 lies wholly inside event 10 (share 1.0) and wins it; mark 1 finds none left
    assert m == {3: 10, 2: 11}
    # less than half of the shorter span: not the same moment
    assert reviews.match_moments([(1, "falling", 0.0, 2.0)], [(9, "falling", 1.5, 3.5)]) == {}


# --- through the real replace_events ------------------------------------------------------------


def _run(conn, video_id: int, *incidents):
    """Store a re-run's events: one person row plus the incidents (type, peak, start, end)."""
    from db import store

    evs = [make_event(0.5)]
    for kind, t, start, end in incidents:
        action = Action(kind) if kind in Action._value2member_map_ else Action.LYING
        evs.append(make_event(t, EventType(kind), action=action, start_t_s=start,
                              end_t_s=end, confidence=0.9))
    store.replace_events(conn, video_id, store.EventBatch(
        events=evs, sentences=[""] * len(evs), thumbnails=[None] * len(evs)))
    rows = conn.execute("SELECT event_type, event_id FROM db_event WHERE video_id = %s"
                        " AND event_type <> 'person' ORDER BY \"timestamp\"",
                        (video_id,)).fetchall()
    return {t: i for t, i in rows}


@pytest.fixture
def video(db_settings, db_pool):
    with db_pool.connection() as conn:
        vid = conn.execute("INSERT INTO db_video (name, analysis_status, duration_s) VALUES"
                           " ('Fall01.mp4', 'completed', 7.2) RETURNING video_id").fetchone()[0]
        first = _run(conn, vid, ("falling", 4.2, 4.0, 5.1), ("anomaly", 1.0, 0.8, 1.3))
    return db_settings, db_pool, vid, first


@pytest.mark.db
def test_a_rerun_carries_the_mark_over_and_keeps_a_vanished_one(video):
    settings, pool, vid, first = video
    review.set_mark(settings, first["falling"], "confirmed", "he fell", actor=OPERATOR)
    review.set_mark(settings, first["anomaly"], "false_alarm", "walking fast", actor=OPERATOR)
    assert "2 review marks (1 confirmed, 1 false alarm)" in review.marks_summary(settings, vid)

    with pool.connection() as conn:  # the new run: the fall a little later, no anomaly
        second = _run(conn, vid, ("falling", 4.3, 4.1, 5.2))
    assert second["falling"] != first["falling"]
    mark = review.marks_for(settings, [second["falling"]])[second["falling"]]
    assert (mark.state.value, mark.note, mark.carried_over) == ("confirmed", "he fell", True)
    assert review.mark_text(mark) == ("confirmed: he fell (carried over from the earlier "
                                      "analysis)")
    items = review.review_items(settings, review.IncidentFilter(video_ids=(vid,)))
    assert [(i.event.event_type.value, i.state_label) for i in items] == [("falling",
                                                                           "confirmed")]
    lost = review.lost_marks(settings, [vid])
    assert [(m.event_type.value, m.state.value, m.note, m.detected) for m in lost] == [
        ("anomaly", "false_alarm", "walking fast", False)]
    assert lost[0].lost_at is not None
    assert "1 no longer detected" in review.marks_summary(settings, vid)

    # A third run finds the anomaly again: its kept mark comes back; the fall's stays on.
    with pool.connection() as conn:
        third = _run(conn, vid, ("falling", 4.3, 4.1, 5.2), ("anomaly", 1.1, 0.9, 1.3))
    marks = review.marks_for(settings, list(third.values()))
    assert {m.event_type.value: m.state.value for m in marks.values()} == {
        "falling": "confirmed", "anomaly": "false_alarm"}
    assert review.lost_marks(settings, [vid]) == []

    # Judged again on the new incident: no longer "carried over".
    review.set_mark(settings, third["falling"], "reviewed", actor=OPERATOR)
    assert not review.marks_for(settings, [third["falling"]])[third["falling"]].carried_over


@pytest.mark.db
def test_an_incident_of_another_type_or_moment_does_not_take_the_mark(video):
    settings, pool, vid, first = video
    review.set_mark(settings, first["falling"], "confirmed", actor=OPERATOR)
    with pool.connection() as conn:
        _run(conn, vid, ("collapse", 4.2, 4.0, 5.1), ("falling", 6.5, 6.0, 7.0))
    assert review.review_items(settings, review.IncidentFilter(video_ids=(vid,)))[0].mark is None
    assert [m.state.value for m in review.lost_marks(settings)] == ["confirmed"]
    review.forget_mark(settings, review.lost_marks(settings)[0].mark_id, actor=OPERATOR)
    assert review.lost_marks(settings) == [] and review.marks_summary(settings, vid) is None


@pytest.mark.db
def test_mark_all_reviewed_keeps_verdicts_and_writes_through_one_function(video, monkeypatch):
    settings, pool, vid, first = video
    review.set_mark(settings, first["falling"], "confirmed", actor=OPERATOR)
    calls = []
    real = review.write_marks
    monkeypatch.setattr(review, "write_marks", lambda *a, **k: calls.append(a[1:3]) or
                        real(*a, **k))
    items = review.review_items(settings, review.IncidentFilter(video_ids=(vid,)))
    assert review.mark_all_reviewed(settings, items, actor=OPERATOR) == 1
    marks = review.marks_for(settings, list(first.values()))
    assert {m.event_type.value: m.state.value for m in marks.values()} == {
        "falling": "confirmed", "anomaly": "reviewed"}
    review.clear_mark(settings, first["anomaly"], actor=OPERATOR)
    assert [c[1] for c in calls] == ["reviewed", None]
    with pytest.raises(review.ReviewError, match="does not exist"):
        review.set_mark(settings, 10 ** 9, "confirmed", actor=OPERATOR)


@pytest.mark.db
def test_person_rows_take_no_mark(video):
    settings, pool, vid, first = video
    with pool.connection() as conn:
        person = conn.execute("SELECT event_id FROM db_event WHERE video_id = %s AND"
                              " event_type = 'person'", (vid,)).fetchone()[0]
    with pytest.raises(review.ReviewError, match="is a person row, not an incident"):
        review.set_mark(settings, person, "confirmed", actor=OPERATOR)


# --- the CLI --------------------------------------------------------------------------------------


@pytest.mark.db
def test_cli_review_list_and_mark(video, monkeypatch, capsys):
    from app_support import set_app_env
    from services import cli

    settings, pool, vid, first = video
    set_app_env(monkeypatch, settings.database_url, settings.data_dir, None)
    assert cli.main(["review", "mark", str(first["falling"]), "confirmed", "--note",
                     "he fell"]) == 0
    assert "marked confirmed: he fell" in capsys.readouterr().out
    with pool.connection() as conn:
        _run(conn, vid, ("falling", 4.3, 4.1, 5.2))
    assert cli.main(["review", "list", "--video-id", str(vid), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in ("video_id", "video", "event_type", "start_t_s", "end_t_s",
                                "mark", "note", "status")} == {
        "video_id": vid, "video": "Fall01.mp4", "event_type": "falling", "start_t_s": 4.1,
        "end_t_s": 5.2, "mark": "confirmed", "note": "he fell",
        "status": "carried over from the earlier analysis"}
    assert row["incident_id"] != first["falling"]

    with pool.connection() as conn:
        _run(conn, vid)  # nothing found any more
    assert cli.main(["review", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["incident_id"], r["mark"], r["status"]) for r in rows] == [
        (None, "confirmed", "no longer detected")]
    assert cli.main(["review", "mark", "999999999", "reviewed"]) == 2
    assert capsys.readouterr().err.startswith("error: incident 999999999 does not exist")
    with pytest.raises(SystemExit) as e:
        cli.main(["review", "mark", "1", "maybe"])
    assert e.value.code == 2


# --- the migration on marks given before it ------------------------------------------------------


@pytest.mark.db
def test_migration_0008_keeps_earlier_marks_with_their_moment(pg_url):
    from pathlib import Path

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    migrations = Path(__file__).resolve().parents[1] / "db" / "migrations"
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS marks_0006")
        c.execute("CREATE DATABASE marks_0006")
    try:
        with psycopg.connect(make_conninfo(**(conninfo_to_dict(pg_url) | {
                "dbname": "marks_0006"})), autocommit=True) as c:
            for f in sorted(migrations.glob("000[1-6]*.sql")):  # the schema before 0008
                c.execute(f.read_text())
            vid = c.execute("INSERT INTO db_video (name) VALUES ('x') RETURNING video_id"
                            ).fetchone()[0]
            fall, fight = (c.execute(
                'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
                " start_t_s, end_t_s) VALUES (%s, %s, %s, %s, 1, %s, %s) RETURNING event_id",
                row).fetchone()[0] for row in ((vid, 0, "falling", 4.2, 4.0, 5.1),
                                               (vid, 1, "violent", 1.5, None, None)))
            c.execute("INSERT INTO event_review (event_id, state, note) VALUES"
                      " (%s, 'confirmed', 'he fell'), (%s, 'reviewed', '')", (fall, fight))
            c.execute((migrations / "0008_marks_survive_reruns.sql").read_text())
            rows = c.execute("SELECT event_id, video_id, event_type, start_t_s, end_t_s, state,"
                             " note FROM event_review ORDER BY mark_id").fetchall()
            assert rows == [(fall, vid, "falling", 4.0, 5.1, "confirmed", "he fell"),
                            (fight, vid, "violent", 1.5, 1.5, "reviewed", "")]
            c.execute("DELETE FROM db_event WHERE event_id = %s", (fall,))
            assert c.execute("SELECT event_id, state FROM event_review ORDER BY mark_id"
                             ).fetchall() == [(None, "confirmed"), (fight, "reviewed")]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as c:
            c.execute("DROP DATABASE IF EXISTS marks_0006")
