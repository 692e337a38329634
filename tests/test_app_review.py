"""The Review page with AppTest on seeded incidents (no engine run): newest video first, the
incident's frame and facts, marks with a note stored and shown, next / previous, filters (and
that they survive a visit to another page), counts per state, and the accuracy panel."""
from __future__ import annotations

from services.access.access import OPERATOR

import io
import json

import pytest

from app_support import all_text, new_app, reset_app_caches, set_app_env, texts
from services.review import review

pytestmark = pytest.mark.db


def _jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def seeded(db_settings, db_pool, monkeypatch):
    storage = db_settings.data_dir / "storage"
    with db_pool.connection() as conn:
        def video(name, dur):
            return conn.execute("INSERT INTO db_video (name, analysis_status, duration_s) VALUES"
                                " (%s, 'completed', %s) RETURNING video_id", (name, dur)
                                ).fetchone()[0]

        def event(vid, seq, kind, t, conf, obj, attrs):
            key = f"highlights/{vid}/{t:.1f}s_{kind}.jpg"
            (storage / key).parent.mkdir(parents=True, exist_ok=True)
            (storage / key).write_bytes(_jpeg())
            return conn.execute(
                'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
                " confidence, obj_id, s3_thumbnail_key, action, track_ids, start_t_s, end_t_s)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING event_id",
                (vid, seq, kind, t, int(t * 30), conf, obj, key, kind,
                 [obj] + attrs.get("other_obj_ids", []), attrs.get("start_t_s"),
                 attrs.get("end_t_s"))).fetchone()[0]

        fight_v = video("fi003.mp4", 2.9)
        fall_v = video("Fall01.mp4", 7.2)
        ids = {"fight": event(fight_v, 0, "violent", 1.2, 0.8, 3,
                              {"start_t_s": 0.4, "end_t_s": 2.6, "other_obj_ids": [5]}),
               "fall": event(fall_v, 0, "falling", 4.2, 0.95, 1,
                             {"start_t_s": 4.0, "end_t_s": 5.1})}
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, None)
    reset_app_caches()
    yield db_settings, ids
    reset_app_caches()


def _review(at):
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, at.exception
    return at


def _subheaders(at) -> list[str]:
    return [t.replace("\\", "") for t in texts(at, "subheader")]  # markdown escapes


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_incidents_newest_first_marked_with_a_note_and_counted(seeded):
    settings, ids = seeded
    at = _review(new_app().run())
    assert texts(at, "title") == ["Review"]
    assert _metrics(at) == {"Incidents": "2", "Unreviewed": "2", "Reviewed": "0",
                            "Confirmed": "0", "False alarm": "0"}
    subs = _subheaders(at)
    assert subs[0] == "Falling · 0:04.0–0:05.1 · Fall01.mp4", subs  # newest video first
    text = all_text(at)
    assert "track 1" in text and "95%" in text and "detector precision" in text
    assert "100% of 9 alarms" in text  # from models/detectors.json, not the page
    assert at.main.get("image") and not at.warning, texts(at, "warning")

    at.button(key="review.next").click().run()
    assert _subheaders(at)[0].startswith("Violent · 0:00.4–0:02.6 · fi003.mp4")
    assert "tracks 3, 5" in all_text(at)
    at.text_input(key=f"review.note.{ids['fight']}").input("two friends hugging").run()
    at.button(key="review.false_alarm").click().run()
    assert not at.exception, at.exception
    mark = review.marks_for(settings, [ids["fight"]])[ids["fight"]]
    assert (mark.state.value, mark.note) == ("false_alarm", "two friends hugging")
    assert _metrics(at)["False alarm"] == "1" and _metrics(at)["Unreviewed"] == "1"
    assert any("false alarm (two friends hugging)" in m for m in texts(at, "markdown"))

    # The accuracy panel: violent 0% confirmed, 100% dismissed, beside its measured precision.
    tables = [t.value for t in at.table]
    per_type = tables[0]
    assert per_type.loc["violent", "dismissed share"] == "100%"
    assert per_type.loc["violent", "confirmed share"] == "0%"
    assert per_type.loc["falling", "measured precision"] == "100%"

    at.button(key="review.prev").click().run()
    at.button(key="review.confirm").click().run()
    assert _metrics(at)["Confirmed"] == "1" and _metrics(at)["Unreviewed"] == "0"
    at.toggle(key="review.unreviewed").set_value(True).run()
    assert any("Every incident here has been reviewed" in t for t in texts(at, "info"))


def test_filters_survive_another_page_and_theft_needs_the_vlm(seeded):
    settings, ids = seeded
    at = _review(new_app().run())
    assert "theft" not in at.multiselect(key="review.types").options
    at.multiselect(key="review.types").set_value(["violent"]).run()
    at.slider(key="review.min_conf").set_value(0.5).run()
    assert _metrics(at)["Incidents"] == "1"
    at.switch_page("app_pages/events.py").run()
    at = _review(at)
    assert at.multiselect(key="review.types").value == ["violent"]
    assert at.slider(key="review.min_conf").value == 0.5
    assert _metrics(at)["Incidents"] == "1"
    at.slider(key="review.min_conf").set_value(0.9).run()
    assert any("No incident matches" in t for t in texts(at, "info"))


def test_severity_alerts_and_detections_and_mark_all_as_reviewed(seeded, db_pool):
    settings, ids = seeded
    with db_pool.connection() as conn:  # a detection beside the two alerts
        vid = conn.execute("SELECT video_id FROM db_event WHERE event_id = %s",
                           (ids["fall"],)).fetchone()[0]
        ids["run"] = conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids) VALUES (%s, 1, 'anomaly', 1.0, 30, 0.6, 2,"
            " 'running', '{2}') RETURNING event_id", (vid,)).fetchone()[0]
    review.set_mark(settings, ids["fight"], "false_alarm", "hug", actor=OPERATOR)
    at = _review(new_app().run())
    table = at.dataframe(key="review.list").value
    assert dict(zip(table["type"], table["severity"])) == {
        "falling": "alert", "anomaly": "detection", "violent": "alert"}
    at.segmented_control(key="review.severity").set_value("alert").run()
    assert _metrics(at)["Incidents"] == "2"
    at.segmented_control(key="review.severity").set_value(None).run()
    assert _metrics(at)["Incidents"] == "3"

    assert at.button(key="review.mark_all").label == "Mark all as reviewed (2)"
    at.button(key="review.mark_all").click().run()
    assert not at.exception, at.exception
    marks = review.marks_for(settings, list(ids.values()))
    assert {i: marks[ids[i]].state.value for i in ids} == {
        "fight": "false_alarm", "fall": "reviewed", "run": "reviewed"}  # the verdict stays
    assert marks[ids["fight"]].note == "hug"
    assert at.button(key="review.mark_all").disabled
    m = _metrics(at)
    assert (m["Reviewed"], m["False alarm"], m["Unreviewed"]) == ("2", "1", "0")


def test_reviewed_counter_and_accuracy_table_do_not_share_a_word(seeded):
    settings, ids = seeded
    review.set_mark(settings, ids["fight"], "false_alarm", actor=OPERATOR)
    at = _review(new_app().run())
    per_type = at.table[0].value
    # The counter "Reviewed" = looked at, no verdict (0 here); the table counts any mark.
    assert _metrics(at)["Reviewed"] == "0"
    assert "reviewed" not in per_type.columns and per_type.loc["violent", "marked"] == 1
    assert any("**Reviewed**: Looked at, no verdict" in c for c in texts(at, "caption"))


def test_a_rerun_shows_the_mark_carried_over_and_the_vanished_one(seeded, db_pool):
    """The Review page after a re-run (the real replace_events): the fall's confirmed mark on
    the new event, shown as carried over; the fight that the re-run no longer finds listed
    under "No longer detected" and forgettable."""
    from conftest import make_event
    from db import store
    from pipeline.records import Action, EventType

    settings, ids = seeded
    review.set_mark(settings, ids["fall"], "confirmed", "real fall", actor=OPERATOR)
    review.set_mark(settings, ids["fight"], "false_alarm", "hug", actor=OPERATOR)
    with db_pool.connection() as conn:
        fall_v, fight_v = (conn.execute("SELECT video_id FROM db_event WHERE event_id = %s",
                                        (ids[k],)).fetchone()[0] for k in ("fall", "fight"))
        fall = make_event(4.3, EventType.FALLING, action=Action.FALLING, start_t_s=4.1,
                          end_t_s=5.0)
        store.replace_events(conn, fall_v, store.EventBatch([fall], [""], [None]))
        store.replace_events(conn, fight_v, store.EventBatch([make_event(1.0)], [""], [None]))
    at = _review(new_app().run())
    facts = " ".join(texts(at, "markdown"))
    assert "confirmed (real fall), *carried over from the earlier analysis*" in facts
    assert at.dataframe(key="review.list").value["state"].tolist() == [
        "confirmed (carried over)"]
    (exp,) = [x for x in at.expander if x.label.startswith("No longer detected")]
    assert exp.label == "No longer detected (1)"
    assert any("violent" in t and "false alarm: hug" in t and "no longer detected" in t
               for t in texts(exp, "markdown"))
    (forget,) = [b for b in at.button if b.key and b.key.startswith("review.forget.")]
    forget.click().run()
    assert not [x for x in at.expander if x.label.startswith("No longer detected")]
    assert review.lost_marks(settings) == []


def test_analyze_says_how_many_marks_a_rerun_has(db_settings, db_pool, monkeypatch, tmp_path):
    """Before a re-run the Analyze page says how many marks the video has (the slow test
    tests/test_app_review_rerun.py re-runs it through the engine)."""
    from app_support import link_clips

    (clip,) = link_clips(tmp_path / "library", "clips/falls/Fall01.mp4")
    with db_pool.connection() as conn:
        vid = conn.execute("INSERT INTO db_video (name, source_uri, analysis_status, duration_s)"
                           " VALUES ('Fall01.mp4', %s, 'completed', 7.2) RETURNING video_id",
                           (str(clip.resolve()),)).fetchone()[0]
        fall = conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids) VALUES (%s, 0, 'falling', 4.2, 126, 0.9,"
            " 1, 'falling', '{1}') RETURNING event_id", (vid,)).fetchone()[0]
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, tmp_path / "library")
    reset_app_caches()
    try:
        at = new_app().run()
        assert not at.exception, at.exception
        assert not any("review mark" in w for w in texts(at, "warning"))
        review.set_mark(db_settings, fall, "confirmed", actor=OPERATOR)
        at.run()
        (warn,) = [w.replace("\\", "") for w in texts(at, "warning") if "review mark" in w]
        assert warn.startswith(f"Video {vid} has 1 review mark (1 confirmed): the new analysis "
                               f"carries each over"), warn
    finally:
        reset_app_caches()


def test_incidents_filter_by_the_lead_persons_colour_and_object(seeded, db_pool):
    settings, ids = seeded
    with db_pool.connection() as conn:
        conn.execute("UPDATE db_event SET upper_colour = 'red', relations = '{carrying:handbag}'"
                     " WHERE event_id = %s", (ids["fall"],))
    at = _review(new_app().run())
    assert _metrics(at)["Incidents"] == "2"
    at.multiselect(key="review.colours").set_value(["red"]).run()
    assert not at.exception, at.exception
    assert _metrics(at)["Incidents"] == "1"
    at.multiselect(key="review.colours").set_value(["blue"]).run()
    assert _metrics(at)["Incidents"] == "0"
    at.multiselect(key="review.colours").set_value([]).run()
    at.multiselect(key="review.objects").set_value(["handbag"]).run()
    assert _metrics(at)["Incidents"] == "1"
    assert any(h.startswith("Falling") for h in _subheaders(at)), _subheaders(at)
