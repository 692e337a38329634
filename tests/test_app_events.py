"""The Events page with AppTest on seeded rows of a short clip (issue 13, defects 8-10, 12):
times with tenths, a time slider that ends on the clip's end, filters that survive a visit to
another page, charts in person-seconds grouped by video, no theft/paying filter without the VLM,
and the analyst's review mark beside each incident."""
from __future__ import annotations

import json
import re

import pytest

from services.access import OPERATOR
from app_support import new_app, reset_app_caches, set_app_env, texts
from services import review

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
