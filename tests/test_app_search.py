"""The Search page with AppTest on seeded events (no engine run): the question and filters are
in the page's address, so a fresh session on that address (a citation link followed by Back)
shows the question and its results again (issue 20)."""
from __future__ import annotations

import pytest

from app_support import new_app, reset_app_caches, set_app_env, texts

pytestmark = pytest.mark.db


@pytest.fixture
def seeded(db_settings, db_pool, monkeypatch):
    with db_pool.connection() as conn:
        vid = conn.execute("INSERT INTO db_video (name, analysis_status, duration_s) VALUES"
                           " ('Fall01.mp4', 'completed', 7.2) RETURNING video_id").fetchone()[0]
        for seq, (kind, t, action, sentence) in enumerate((
                ("falling", 4.2, "falling", "at 00:04 a man fell to the floor near the table"),
                ("person", 1.0, "walking", "at 00:01 a man was walking to the right"),
                ("person", 5.5, "lying", "at 00:05 a man was lying on the floor"))):
            conn.execute(
                'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
                " confidence, obj_id, action, track_ids, sentence) VALUES (%s, %s, %s, %s, %s,"
                " 0.9, 1, %s, '{1}', %s)", (vid, seq, kind, t, int(t * 25), action, sentence))
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, None)
    reset_app_caches()
    yield db_settings, vid
    reset_app_caches()


def _search_page(at):
    at.switch_page("app_pages/search.py").run()
    assert not at.exception, at.exception
    return at


def test_back_from_a_citation_finds_the_question_and_results(seeded):
    settings, vid = seeded
    at = _search_page(new_app().run())
    at.text_input(key="search.query").input("a man fell to the floor")
    at.multiselect(key="search.videos").set_value([vid])
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    heads = texts(at, "subheader")
    assert any(h.startswith("Matching moments") for h in heads), heads
    params = {k: list(v) if isinstance(v, (list, tuple)) else [v]
              for k, v in at.query_params.items()}
    assert params["q"] == ["a man fell to the floor"] and params["video"] == [str(vid)]

    # A new session on the same address: what Back loads after a citation link (a citation
    # opens the video page afresh, target=_self).
    again = new_app()
    again.switch_page("app_pages/search.py")
    for k, v in at.query_params.items():
        again.query_params[k] = v
    again.run()
    assert not again.exception, again.exception
    assert again.text_input(key="search.query").value == "a man fell to the floor"
    assert again.multiselect(key="search.videos").value == [vid]
    assert texts(again, "subheader") == heads


def test_understood_terms_caption_and_colour_filters(seeded):
    settings, vid = seeded
    at = _search_page(new_app().run())
    at.text_input(key="search.query").input("a man fell to the floor")
    at.multiselect(key="search.uppers").set_value(["red"])
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    captions = texts(at, "caption")
    assert any("understood: incident: falling; gender: male" in c for c in captions), captions
    params = {k: list(v) if isinstance(v, (list, tuple)) else [v]
              for k, v in at.query_params.items()}
    assert params["upper"] == ["red"]
    # no stored event has a red upper body: nothing matches, nothing is claimed
    assert any("Nothing" in w for w in texts(at, "warning")), texts(at, "warning")


def test_object_filter_and_understood_objects(seeded, db_pool):
    settings, vid = seeded
    with db_pool.connection() as conn:
        conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids, sentence, upper_colour, relations) VALUES"
            " (%s, 10, 'person', 2.0, 50, 0.9, 4, 'walking', '{4}', %s, 'red',"
            " '{riding:bicycle}')",
            (vid, "at 00:02 a man in a red top (jacket, shirt), riding a bicycle (bike), "
                  "was walking"))
        conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids, sentence, object_class) VALUES"
            " (%s, 11, 'object', 3.0, 75, 0.7, 10001, 'unknown', '{10001}', %s, 'car')",
            (vid, "at 00:03 a car was seen near the right edge"))
    at = _search_page(new_app().run())
    at.text_input(key="search.query").input("a person on a bike")
    at.multiselect(key="search.objects").set_value(["bicycle"])
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    captions = texts(at, "caption")
    assert any("understood: object: bicycle; relation: riding" in c for c in captions), captions
    params = {k: list(v) if isinstance(v, (list, tuple)) else [v]
              for k, v in at.query_params.items()}
    assert params["object"] == ["bicycle"]
    body = " ".join(texts(at, "markdown") + captions)
    assert "riding a bicycle" in body and "a car was seen" not in body
    # the car is found by its own class
    at.multiselect(key="search.objects").set_value(["car"])
    at.text_input(key="search.query").input("a car")
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    body = " ".join(texts(at, "markdown") + texts(at, "caption"))
    assert "a car was seen" in body and "riding a bicycle" not in body
    # the Relation filter: people riding something (the car is nobody's)
    at.multiselect(key="search.objects").set_value([])
    at.multiselect(key="search.relations").set_value(["riding"])
    at.text_input(key="search.query").input("a man riding a bicycle")
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    body = " ".join(texts(at, "markdown") + texts(at, "caption"))
    assert "riding a bicycle" in body and "a car was seen" not in body
    params = {k: list(v) if isinstance(v, (list, tuple)) else [v]
              for k, v in at.query_params.items()}
    assert params["relation"] == ["riding"]
