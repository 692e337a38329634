"""The Events page with AppTest on seeded rows of a short clip (issue 13, defects 8-10, 12):
times with tenths, a time slider that ends on the clip's end, filters that survive a visit to
another page, charts in person-seconds grouped by video, no theft/paying filter without the VLM,
and the analyst's review mark beside each incident."""
from __future__ import annotations

import json
import re

import pytest

from services.access.access import OPERATOR
from app_support import new_app, reset_app_caches, set_app_env, texts
from services.review import review

pytestmark = pytest.mark.db


@pytest.fixture
def seeded(db_settings, db_pool, monkeypatch):
    with db_pool.connection() as conn:
        vids = []
        for name, dur in (("fi003.mp4", 2.9), ("Fall01.mp4", 7.2)):
            vids.append(conn.execute(
                "INSERT INTO db_video (name, analysis_status, duration_s, fps) VALUES"
                " (%s, 'completed', %s, 25) RETURNING video_id", (name, dur)).fetchone()[0])
        seq = 0
        for vid in vids:
            for t in (0.3, 0.7, 1.1, 1.5):
                for obj in (1, 2):
                    conn.execute(
                        'INSERT INTO db_event (video_id, seq, event_type, "timestamp",'
                        " frame_number, confidence, obj_id, orientation_label, action,"
                        " bbox_width, bbox_height, track_ids) VALUES (%s, %s, 'person', %s, %s,"
                        " 0.9, %s, %s, %s, 10, 30, %s)",
                        (vid, seq, t, int(t * 25), obj, 0 if obj == 1 else 90,
                         "walking" if obj == 1 else "standing", [obj]))
                    seq += 1
            for obj in (1, 2):
                conn.execute("INSERT INTO db_track (video_id, obj_id, first_t_s, last_t_s,"
                             " n_observations, age_group, gender) VALUES (%s, %s, 0.3, 1.5, 4,"
                             " 'unknown', 'unknown')", (vid, obj))
        fight = conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, attributes, action) VALUES (%s, %s, 'violent', 1.1, 27, 0.8,"
            " 1, '{}', 'violent') RETURNING event_id", (vids[0], seq)).fetchone()[0]
    review.set_mark(db_settings, fight, "false_alarm", "hug", actor=OPERATOR)
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, None)
    reset_app_caches()
    yield db_settings, vids
    reset_app_caches()


def _events(at):
    at.switch_page("app_pages/events.py").run()
    assert not at.exception, at.exception
    return at


def test_times_slider_charts_and_marks(seeded):
    at = _events(new_app().run())
    (table,) = at.dataframe
    df = table.value
    assert set(df["time"]) == {"0:00.3", "0:00.7", "0:01.1", "0:01.5"}
    assert list(df.loc[df["event_type"] == "violent", "review"]) == ["false alarm: hug"]
    slider = at.slider(key="events.time")
    assert (slider.max, slider.step, slider.value) == (7.2, 0.1, (0.0, 7.2))
    at.multiselect(key="events.videos").set_value([seeded[1][0]]).run()
    slider = at.slider(key="events.time")
    assert (slider.max, slider.value[1]) == (2.9, 2.9)  # the end handle on the clip's end
    assert "theft" not in at.multiselect(key="events.types").options
    assert "paying" not in at.multiselect(key="events.actions").options

    charts = [json.loads(c.proto.spec) for c in at.main.get("plotly_chart")]
    titles = [c["layout"]["title"]["text"] for c in charts]
    assert any("person-seconds" in t for t in titles), titles
    assert not any(d.get("type") == "barpolar" for c in charts for d in c["data"])
    assert any(m.startswith("**Track 1 · 0:00.3–0:01.5") for m in texts(at, "markdown"))


def test_timeline_groups_tracks_by_video(seeded):
    at = _events(new_app().run())
    timeline = json.loads(at.main.get("plotly_chart")[0].proto.spec)
    assert "by video" in timeline["layout"]["title"]["text"]
    panels = {a["text"] for a in timeline["layout"].get("annotations", [])}
    assert {"fi003.mp4", "Fall01.mp4"} <= panels


def test_filters_persist_across_pages(seeded):
    at = _events(new_app().run())
    at.multiselect(key="events.actions").set_value(["walking"]).run()
    at.switch_page("app_pages/search.py").run()
    at = _events(at)
    assert at.multiselect(key="events.actions").value == ["walking"]
    assert set(at.dataframe[0].value["action"]) == {"walking"}


def test_time_slider_follows_the_range_when_the_video_filter_is_cleared(seeded):
    """Issue 20: after picking the short clip and clearing the pick, the slider stayed at the
    short clip's end and the table and CSV silently lost the longer video's later rows."""
    import psycopg

    settings, vids = seeded

    with psycopg.connect(settings.database_url, autocommit=True) as conn:  # a row at 6.0 s
        with_late = conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids) VALUES (%s, 999, 'person', 6.0, 150, 0.9,"
            " 1, 'walking', '{1}') RETURNING event_id", (vids[1],)).fetchone()[0]
    at = _events(new_app().run())
    total = len(at.dataframe[0].value)
    assert with_late in set(at.dataframe[0].value["event_id"])
    at.multiselect(key="events.videos").set_value([vids[0]]).run()  # fi003, 2.9 s
    assert at.slider(key="events.time").value == (0.0, 2.9)
    at.multiselect(key="events.videos").set_value([]).run()
    assert at.slider(key="events.time").value == (0.0, 7.2)
    assert len(at.dataframe[0].value) == total
    assert not any("Time filter on" in c for c in texts(at, "caption"))
    # A handle the analyst moved stays where it is, and the page says the filter is on.
    at.slider(key="events.time").set_value((0.0, 1.0)).run()
    at.multiselect(key="events.videos").set_value([vids[0]]).run()
    at.multiselect(key="events.videos").set_value([]).run()
    assert at.slider(key="events.time").value == (0.0, 1.0)
    assert any("Time filter on" in c for c in texts(at, "caption"))


def test_csv_lists_the_people_start_end_and_a_usable_frame_and_link(seeded):
    """Issue 20: the CSV listed a fight under one person (obj_id 0), with no start/end and an
    internal ``local:`` path as its thumbnail."""
    import csv
    import io

    from conftest import make_stored_event
    from services import workbench as wb

    settings, vids = seeded
    fight = make_stored_event(7, 1.2, 0, video_id=vids[0], event_type="violent",
                              action="violent", track_ids=(0, 3, 5), start_t_s=0.4,
                              end_t_s=2.6, thumbnail_key="highlights/1/1.2s_violent.jpg")
    person = make_stored_event(8, 0.3, 1, video_id=vids[0])
    df = wb.events_table([fight, person], {vids[0]: "fi003.mp4"}, {vids[0]: 2.9})
    rows = list(csv.DictReader(io.StringIO(wb.events_csv(
        df, settings, "http://127.0.0.1:8501").decode())))
    f, p = rows
    assert (f["people"], f["start"], f["end"], f["start_t_s"], f["end_t_s"]) == (
        "0 3 5", "0:00.4", "0:02.6", "0.4", "2.6")
    assert f["frame"] == str(settings.data_dir / "storage" / "highlights/1/1.2s_violent.jpg")
    assert "local:" not in "".join(",".join(r.values()) for r in rows)
    assert f["link"] == f"http://127.0.0.1:8501/video?video_id={vids[0]}&event_id=7"
    assert (p["people"], p["start"], p["frame"]) == ("1", "", "")


def test_object_and_colour_filters(seeded, db_pool):
    settings, vids = seeded
    with db_pool.connection() as conn:
        conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, bbox_width, bbox_height, track_ids, upper_colour,"
            " relations) VALUES (%s, 100, 'person', 0.5, 12, 0.9, 7, 'walking', 10, 30, '{7}',"
            " 'red', '{carrying:backpack}')", (vids[1],))
        conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids, object_class, start_t_s, end_t_s) VALUES"
            " (%s, 101, 'object', 1.0, 25, 0.7, 10001, 'unknown', '{10001}', 'backpack', 0.5,"
            " 1.5)", (vids[1],))
    at = _events(new_app().run())
    at.multiselect(key="events.objects").set_value(["backpack"]).run()
    assert not at.exception, at.exception
    df = at.dataframe[0].value
    assert set(zip(df["obj_id"], df["event_type"])) == {(7, "person"), (10001, "object")}
    assert set(df["objects"]) == {"carrying a backpack (bag, rucksack)", ""}
    assert set(df["object_class"]) == {"", "backpack"}
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["People (tracks)"] == "1" and metrics["Incidents"] == "0"
    at.multiselect(key="events.objects").set_value([]).run()
    at.multiselect(key="events.relations").set_value(["carrying"]).run()
    assert set(at.dataframe[0].value["obj_id"]) == {7}  # people only: the bag is no person
    at.multiselect(key="events.relations").set_value(["riding"]).run()
    assert any("No events match" in i for i in texts(at, "info")), texts(at, "info")
    at.multiselect(key="events.relations").set_value([]).run()
    at.multiselect(key="events.uppers").set_value(["red"]).run()
    assert set(at.dataframe[0].value["obj_id"]) == {7}
