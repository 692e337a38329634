""""Find this person in other videos" with AppTest on seeded rows (real PostgreSQL, vectors
written by the store step): on the Video page and on the Events page's track cards, the hits of
other videos best first with links that open them; the toggle adds the video's own tracks; a
track without a vector says how to get one; a viewer may search."""
from __future__ import annotations

import numpy as np
import pytest

from app_support import new_app, reset_app_caches, set_app_env, texts

pytestmark = pytest.mark.db
DIM = 32


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def seed_people(conn, source: str = "/nowhere/a.mp4") -> dict[str, int]:
    """Three videos: anna (track 1 of a.mp4) is track 7 of b.mp4 and comes back as track 3 of
    a.mp4; ben (track 2 of a.mp4) has no vector; cleo is track 4 of c.mp4."""
    from db import store
    from pipeline.person_vectors import PersonVector
    from pipeline.records import Action, AgeGroup, Event, EventType, Gender, TrackSummary

    rng = np.random.default_rng(7)
    anna, cleo = rng.normal(size=DIM), rng.normal(size=DIM)
    look = {"anna": lambda: anna + 0.3 * rng.normal(size=DIM),
            "cleo": lambda: cleo + 0.3 * rng.normal(size=DIM)}
    ids = {}
    for name, tracks in (("a.mp4", [(1, 0.0, 4.0, "anna"), (2, 0.0, 4.0, None),
                                    (3, 6.0, 8.0, "anna")]),
                         ("b.mp4", [(7, 1.0, 3.0, "anna"), (8, 1.0, 3.0, "cleo")]),
                         ("c.mp4", [(4, 0.0, 2.0, "cleo")])):
        vid = store.create_video(conn, name, source)
        conn.execute("UPDATE db_video SET analysis_status = 'completed', fps = 10, duration_s = 9,"
                     " width = 64, height = 48 WHERE video_id = %s", (vid,))
        events = [Event(event_type=EventType.PERSON, t_s=a, frame_number=int(a * 10), obj_id=o,
                        xyxy=(10.0, 5.0, 30.0, 45.0), age_group=AgeGroup.MIDDLE,
                        gender=Gender.UNKNOWN, action=Action.WALKING, confidence=0.9,
                        track_ids=(o,)) for o, a, _, _ in tracks]
        store.replace_events(conn, vid, store.EventBatch(
            events=events, sentences=["a person walking"] * len(events),
            thumbnails=[None] * len(events),
            tracks=[TrackSummary(o, a, b, 3, None, None, Gender.UNKNOWN, None,
                                 {"walking": 3}) for o, a, b, _ in tracks],
            person_vectors=[PersonVector(o, "test-model", _unit(look[p]()), 3)
                            for o, _, _, p in tracks if p]))
        ids[name] = vid
    return ids


@pytest.fixture
def seeded(db_settings, db_pool, monkeypatch):
    with db_pool.connection() as conn:
        ids = seed_people(conn)
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, None)
    reset_app_caches()
    yield ids
    reset_app_caches()


def _links(at) -> list[str]:
    """The hits' open buttons, best first."""
    return [b.label for b in at.button if b.key and ".similar.open." in b.key]


def _video_page(video_id, role="admin"):
    at = new_app(role=role)
    at.query_params["video_id"] = str(video_id)
    at.run()
    at.switch_page("app_pages/video.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_video_page_finds_the_person_in_other_videos(seeded, role):
    ids = seeded
    at = _video_page(ids["a.mp4"], role)
    assert at.selectbox(key=f"video.similar_track.{ids['a.mp4']}").value == 1
    at.button(key=f"video.similar.find.{ids['a.mp4']}.1").click().run()
    assert not at.exception, at.exception
    assert any("Track 1 of a.mp4: the same person elsewhere" in s for s in texts(at, "subheader"))
    links = _links(at)
    assert links and links[0] == "b.mp4 · track 7", links
    assert not any(s.startswith("a.mp4") for s in links)  # other videos only
    assert any("alike" in c for c in texts(at, "caption"))
    # The video's own tracks too: anna came back as track 3 (track 2, seen with her, never).
    at.toggle(key="video.similar.same").set_value(True).run()
    links = _links(at)
    assert "a.mp4 · track 3" in links[:2], links
    assert "a.mp4 · track 2" not in links and "a.mp4 · track 1" not in links
    # A hit opens on the Video page at the track's moment.
    at.button(key=f"video.similar.open.{ids['b.mp4']}.7").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="video.pick").value == ids["b.mp4"]
    assert any(h.startswith("Event ") for h in texts(at, "subheader"))


def test_a_track_without_a_vector_says_how_to_get_one(seeded):
    ids = seeded
    at = _video_page(ids["a.mp4"])
    at.selectbox(key=f"video.similar_track.{ids['a.mp4']}").set_value(2).run()
    at.button(key=f"video.similar.find.{ids['a.mp4']}.2").click().run()
    assert not at.exception, at.exception
    (err,) = texts(at, "error")
    assert "track 2" in err and "no appearance vector" in err and "re-analyse" in err


def test_track_cards_find_the_person_in_other_videos(seeded):
    ids = seeded
    at = new_app()
    at.run()
    at.switch_page("app_pages/events.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="events.cards_video").set_value(ids["b.mp4"]).run()
    at.button(key=f"events.similar.find.{ids['b.mp4']}.8").click().run()
    assert not at.exception, at.exception
    links = _links(at)
    assert links[0] == "c.mp4 · track 4", links
    assert any("Track 8 of b.mp4" in s for s in texts(at, "subheader"))
    at.button(key=f"events.similar.open.{ids['c.mp4']}.4").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Video detail"
    assert at.selectbox(key="video.pick").value == ids["c.mp4"]
