"""The Video page with AppTest on seeded rows (no engine run): a video gets a player with a
timeline under it (incidents as spans, people over time) and its incidents beside it, and
picking one plays it from just before; a photo is shown as a picture; a file that was never read
as a video (a text file named .mp4) gets no black player (issue 13, defect 5)."""
from __future__ import annotations

from services.access.access import OPERATOR

import json

import numpy as np
import pytest

from app_support import new_app, reset_app_caches, set_app_env, texts

pytestmark = pytest.mark.db


def _mp4(path, seconds=3.0, fps=10):
    import av

    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(int(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 5 % 255, np.uint8),
                                           format="rgb24")
        for pkt in s.encode(frame):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    return path


@pytest.fixture
def seeded(db_settings, db_pool, monkeypatch, tmp_path):
    from PIL import Image

    clip = _mp4(tmp_path / "clip.mp4", 6.0)
    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (0, 120, 0)).save(photo)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with db_pool.connection() as conn:
        def video(name, uri, status, fps=None, dur=None, frames=None):
            return conn.execute(
                "INSERT INTO db_video (name, source_uri, analysis_status, fps, duration_s,"
                " frame_count, width, height, error_message) VALUES (%s, %s, %s, %s, %s, %s,"
                " 64, 48, %s) RETURNING video_id",
                (name, str(uri), status, fps, dur, frames,
                 "the file is not a video" if status == "failed" else None)).fetchone()[0]

        vid = video("clip.mp4", clip, "completed", 10.0, 6.0, 60)
        for seq, (kind, t, obj, attrs) in enumerate([
                ("person", 0.5, 1, {}), ("person", 0.5, 2, {}), ("person", 1.0, 1, {}),
                ("falling", 4.6, 1, {"start_t_s": 4.2, "end_t_s": 5.0}),
                ("violent", 1.0, 1, {"start_t_s": 0.5, "end_t_s": 2.0,
                                     "other_obj_ids": [2]})]):
            conn.execute(
                'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
                " confidence, obj_id, action, track_ids, start_t_s, end_t_s) VALUES (%s, %s,"
                " %s, %s, %s, 0.9, %s, %s, %s, %s, %s)",
                (vid, seq, kind, t, int(t * 10), obj, "walking" if kind == "person" else kind,
                 [obj] + attrs.get("other_obj_ids", []), attrs.get("start_t_s"),
                 attrs.get("end_t_s")))
        ids = {"clip": vid,
               "photo": video("photo.png", photo, "completed", None, 0.0, 1),
               "bad": video("bad.mp4", bad, "failed")}
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, None)
    reset_app_caches()
    yield db_settings, ids
    reset_app_caches()


def _open(video_id):
    at = new_app()
    at.query_params["video_id"] = str(video_id)
    at.run()
    at.switch_page("app_pages/video.py").run()
    assert not at.exception, at.exception
    return at


def test_player_timeline_and_incidents_beside_it(seeded):
    settings, ids = seeded
    at = _open(ids["clip"])
    (video,) = at.main.get("video")
    assert video.proto.start_time == 0
    (chart,) = at.main.get("plotly_chart")
    fig = json.loads(chart.proto.spec)
    names = [t.get("name") for t in fig["data"]]
    assert {"falling", "violent", "people"} <= set(names), names
    people = next(t for t in fig["data"] if t.get("name") == "people")
    assert people["y"] == [2, 1]  # two people at 0.5 s, one at 1.0 s
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Length"] == "0:06.0"

    buttons = [b for b in at.button if b.key and b.key.startswith("video.inc.")]
    labels = [b.label for b in buttons]
    assert labels[0].startswith("violent · 0:00.5–0:02.0 · tracks 1, 2 · unreviewed"), labels
    assert labels[1].startswith("falling · 0:04.2–0:05.0 · track 1"), labels
    buttons[1].click().run()
    assert not at.exception, at.exception
    (video,) = at.main.get("video")
    assert video.proto.start_time == 2  # 4.6 s, 2 s before, in whole seconds
    assert "Plays from 0:02.0, 2.6 s before event" in " ".join(texts(at, "caption"))
    assert any(h.startswith("Event ") and "falling at 0:04.6" in h
               for h in texts(at, "subheader"))


def test_a_photo_is_shown_as_a_picture(seeded):
    settings, ids = seeded
    at = _open(ids["photo"])
    assert not at.main.get("video")
    assert at.main.get("image")
    assert {m.label: m.value for m in at.metric}["Length"] == "photo"


def test_a_broken_file_gets_no_black_player(seeded):
    settings, ids = seeded
    at = _open(ids["bad"])
    assert not at.main.get("video") and not at.main.get("plotly_chart")
    assert any("No player" in t for t in texts(at, "info"))
    assert any("The analysis failed" in t for t in texts(at, "error"))


def test_analyze_clears_failed_jobs_and_deletes_a_video(seeded):
    settings, ids = seeded
    from services import workbench

    at = new_app().run()
    assert not at.exception, at.exception
    # A fresh session (a reload) still shows how the newest job ended (defect 6).
    assert any("bad.mp4 failed" in t for t in texts(at, "error")), texts(at, "error")
    at.button(key="analyze.clear_failed").click().run()
    assert not at.exception, at.exception
    left = {v.video_id for v in workbench.list_videos(settings)}
    assert ids["bad"] not in left and ids["clip"] in left
    at.selectbox(key="analyze.delete_pick").set_value(ids["clip"]).run()
    assert at.button(key="analyze.delete_video").disabled  # until the name is typed
    name = next(v.name for v in workbench.list_videos(settings) if v.video_id == ids["clip"])
    at.text_input(key=f"analyze.delete_confirm.{ids['clip']}").input(name).run()
    at.button(key="analyze.delete_video").click().run()
    assert not at.exception, at.exception
    assert ids["clip"] not in {v.video_id for v in workbench.list_videos(settings)}


def test_a_finished_or_failed_job_shows_no_bar_anywhere(seeded):
    """issue 13, defect 12: the sidebar said 'No analysis running' above a stale 98 % bar. The
    rows keep their last stored progress; no page nor the sidebar draws it as running."""
    settings, ids = seeded
    from services import database

    with database.pooled(settings) as conn:
        conn.execute("UPDATE db_video SET analysis_progress = 98, stage = 'storing events',"
                     " eta_s = 3 WHERE video_id = ANY(%s)", ([ids["clip"], ids["bad"]],))
    for key in ("clip", "bad"):
        at = _open(ids[key])
        assert not at.get("progress"), [p.proto for p in at.get("progress")]
        assert "No analysis running." in texts(at, "caption")
    at = new_app().run()  # the Analyze page: the history lists them, without a running bar
    assert not at.exception, at.exception
    assert not at.get("progress")
    assert any("No analysis is running" in t for t in texts(at, "caption"))


def test_a_photos_event_outlines_the_person_found(seeded, db_pool):
    """Issue 20: a photo's page showed nothing of the person its event found."""
    import io

    from PIL import Image

    from services.media import stills

    settings, ids = seeded
    with db_pool.connection() as conn:
        eid = conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids, bbox_x, bbox_y, bbox_width, bbox_height)"
            " VALUES (%s, 0, 'person', 0, 0, 0.9, 3, 'sitting', '{3}', 10, 5, 20, 20)"
            " RETURNING event_id", (ids["photo"],)).fetchone()[0]
    at = new_app()
    at.query_params["video_id"] = str(ids["photo"])
    at.query_params["event_id"] = str(eid)
    at.run()
    at.switch_page("app_pages/video.py").run()
    assert not at.exception, at.exception
    assert not at.warning, texts(at, "warning")
    (img,) = at.main.get("image")
    assert f"the person of event {eid}, outlined" in img.proto.imgs[0].caption

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 120, 0)).save(buf, format="PNG")
    out = Image.open(io.BytesIO(stills.outline_person(buf.getvalue(), (10, 5, 20, 20))))
    r, g, b = out.getpixel((10, 15))  # on the box's left edge: red, not the photo's green
    assert r > 200 and g < 120
    assert out.getpixel((20, 15))[1] > 100  # inside: the photo
    assert stills.outline_person(b"not a picture", (1, 1, 5, 5)) is None


def test_a_mark_whose_incident_is_gone_is_listed_on_the_video(seeded, db_pool):
    from services.review import review

    settings, ids = seeded
    items = review.review_items(settings, review.IncidentFilter(video_ids=(ids["clip"],)))
    fall = next(i for i in items if i.event.event_type.value == "falling")
    review.set_mark(settings, fall.event_id, "confirmed", "he fell", actor=OPERATOR)
    with db_pool.connection() as conn:  # what a re-run that no longer finds it leaves
        conn.execute("DELETE FROM db_event WHERE event_id = %s", (fall.event_id,))
    at = _open(ids["clip"])
    assert any("falling · 0:04.2–0:05.0 · confirmed: he fell · *no longer detected*" in c
               for c in texts(at, "caption")), texts(at, "caption")


def test_the_video_lists_each_tracks_colours_and_objects(seeded, db_pool):
    settings, ids = seeded
    with db_pool.connection() as conn:
        conn.execute("UPDATE db_event SET upper_colour = 'red', lower_colour = 'blue',"
                     " relations = '{carrying:backpack}' WHERE video_id = %s AND obj_id = 1"
                     " AND event_type = 'person'", (ids["clip"],))
        conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids, object_class, start_t_s, end_t_s) VALUES"
            " (%s, 50, 'object', 2.0, 20, 0.7, 10001, 'unknown', '{10001}', 'bicycle', 1.0,"
            " 3.0)", (ids["clip"],))
    at = _open(ids["clip"])
    assert any(h.startswith("People and objects (3)") for h in texts(at, "subheader"))
    table = next(d.value for d in at.dataframe if "colours" in d.value.columns)
    rows = {r["track"]: r for r in table.to_dict("records")}
    assert rows[1]["colours"] == "red top, blue trousers"
    assert rows[1]["objects"] == "carrying a backpack (bag, rucksack)"
    assert rows[2]["what"] == "person" and rows[2]["objects"] == ""
    assert rows[10001]["what"] == "bicycle"
