"""db/store.py and db/queries.py against a real PostgreSQL with pgvector (embedded fixture)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from db import connection, queries, store, vectors
from db import attempts
from db.attempts import JobAttempt
from pipeline.records import (
    Action, AgeGroup, Event, EventType, Gender, JobStatus, TrackSummary, VideoInfo,
)
from db.records import SearchFilters, StoredObject

pytestmark = pytest.mark.db


def make_event(i: int, event_type=EventType.PERSON, action=Action.WALKING, t_s=None,
               gender=Gender.MALE) -> Event:
    return Event(
        event_type=event_type, t_s=float(i) if t_s is None else t_s, frame_number=i * 10, obj_id=i % 3,
        xyxy=(10.0 + i, 20.0, 110.0 + i, 220.0), age_group=AgeGroup.MIDDLE, gender=gender,
        action=action, confidence=0.8, age=41.5, orientation_deg=92.0,
        scene_description="two people in a corridor",
        keypoints=tuple((float(k), float(k + 1), 0.9) for k in range(17)),
        raw_action=Action.STANDING, action_confidence=0.7,
        extra={"score": np.float32(np.nan), "n": np.int64(3)},
    )


def unit(rng, n, d):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_migrations_are_idempotent(db_pool):
    with db_pool.connection() as conn:
        assert connection.migrate(conn) == []
        assert connection.migrate(conn) == []
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert ext is not None
        cols = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'db_event'")}
    seed = {"event_id", "video_id", "event_type", "timestamp", "frame_number", "bbox_x", "bbox_y",
            "bbox_width", "bbox_height", "age_group", "gender", "action", "confidence",
            "s3_thumbnail_bucket", "s3_thumbnail_key", "attributes", "embedding"}
    assert seed <= cols


def test_replace_events_roundtrip_and_atomic_replace(db_pool):
    rng = np.random.default_rng(0)
    with db_pool.connection() as conn:
        vid = store.create_video(conn, "clip.mp4", "/videos/clip.mp4")
        events = [make_event(i) for i in range(5)]
        batch = store.EventBatch(
            events=events, sentences=[f"sentence {i} walking" for i in range(5)],
            thumbnails=[StoredObject("b", "highlights/clip.mp4/0.0s_walking.jpg")] + [None] * 4,
            vectors=unit(rng, 5, 8), model="test-model-8",
            tracks=[TrackSummary(0, 0.0, 4.0, 5, 41.0, 3.0, Gender.MALE, 0.9, {"walking": 5})])
        assert store.replace_events(conn, vid, batch) == 5
        got = queries.list_events(conn, SearchFilters(video_ids=(vid,)))
        assert [e.t_s for e in got] == [0.0, 1.0, 2.0, 3.0, 4.0]
        e0 = got[0]
        assert e0.bbox == (10.0, 20.0, 100.0, 200.0)
        # the vocabularies come back as the engine's Enums, converted once in db.queries
        assert (e0.event_type, e0.action, e0.gender, e0.age_group) == (
            EventType.PERSON, Action.WALKING, Gender.MALE, AgeGroup.MIDDLE)
        assert all(isinstance(v, t) for v, t in ((e0.event_type, EventType), (e0.action, Action),
                                                (e0.gender, Gender), (e0.age_group, AgeGroup)))
        assert e0.orientation_label == 90 and e0.orientation_deg == 92.0
        assert e0.scene_description == "two people in a corridor" and e0.age == 41.5
        assert e0.track_ids == (0,) and e0.raw_action is Action.STANDING
        assert e0.action_confidence == pytest.approx(0.7)
        assert e0.attributes["score"] is None and e0.attributes["n"] == 3
        assert not {"orientation", "scene_analysis", "age", "obj_id"} & set(e0.attributes)
        assert len(e0.attributes["keypoints"]) == 17
        assert e0.thumbnail_bucket == "b"
        assert queries.list_tracks(conn, vid)[0].actions == {"walking": 5}
        assert conn.execute("SELECT count(*) FROM event_embedding").fetchone()[0] == 5

        # A failing replacement leaves the old set untouched.
        bad = store.EventBatch(events=[make_event(9)], sentences=["x"], thumbnails=[None],
                               vectors=unit(rng, 1, 16), model="test-model-8")  # wrong dim
        with pytest.raises(Exception):
            store.replace_events(conn, vid, bad)
        assert queries.count_events(conn, vid) == 5

        # A new run replaces everything, vectors included.
        store.replace_events(conn, vid, store.EventBatch(
            events=[make_event(7)], sentences=["new"], thumbnails=[None],
            vectors=unit(rng, 1, 8), model="test-model-8"))
        assert [e.t_s for e in queries.list_events(conn, SearchFilters(video_ids=(vid,)))] == [7.0]
        assert conn.execute("SELECT count(*) FROM event_embedding").fetchone()[0] == 1
        assert queries.list_tracks(conn, vid) == []


def test_hnsw_index_per_model_and_models_never_mixed(db_pool):
    rng = np.random.default_rng(1)
    with db_pool.connection() as conn:
        a = store.create_video(conn, "a.mp4", "a")
        b = store.create_video(conn, "b.mp4", "b")
        va, vb = unit(rng, 20, 8), unit(rng, 20, 4)
        store.replace_events(conn, a, store.EventBatch([make_event(i) for i in range(20)],
                                                       ["walking"] * 20, [None] * 20, va, "m8"))
        store.replace_events(conn, b, store.EventBatch([make_event(i) for i in range(20)],
                                                       ["walking"] * 20, [None] * 20, vb, "m4"))
        assert vectors.models(conn) == {"m8": 8, "m4": 4}
        idx = {r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'event_embedding'")}
        assert sum("hnsw" in d and "vector_cosine_ops" in d for d in idx) == 2
        hits = queries.hybrid_search(conn, "zzzz", va[3], "m8", top_k=5)
        assert hits and all(h.event.video_id == a for h in hits)
        assert hits[0].similarity == pytest.approx(1.0, abs=1e-4)
        hits4 = queries.hybrid_search(conn, "zzzz", vb[5], "m4", top_k=5)
        assert all(h.event.video_id == b for h in hits4)
        # The planner uses the model's partial HNSW index.
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT event_id FROM event_embedding WHERE model = 'm8' "
            "ORDER BY embedding::vector(8) <=> %s::vector(8) LIMIT 5", (va[0],)))
        assert vectors.index_name("m8", 8) in plan
        with pytest.raises(Exception, match="dimension"):
            vectors.ensure_index(conn, "m8", 16)


def test_filters(db_pool):
    with db_pool.connection() as conn:
        vid = store.create_video(conn, "f.mp4", "f")
        evs = [make_event(0, EventType.FALLING, Action.FALLING, gender=Gender.FEMALE),
               make_event(1, EventType.PERSON, Action.WALKING), make_event(30)]
        store.replace_events(conn, vid, store.EventBatch(evs, ["a fall", "walks", "walks"], [None] * 3))
        f = queries.list_events
        assert len(f(conn, SearchFilters(event_types=("falling",)))) == 1
        assert len(f(conn, SearchFilters(event_types=(EventType.FALLING,)))) == 1
        with pytest.raises(ValueError, match="outside EventType"):
            SearchFilters(event_types=("fall",))
        assert len(f(conn, SearchFilters(genders=("female",)))) == 1
        assert len(f(conn, SearchFilters(t_min_s=0.5, t_max_s=10))) == 1
        assert len(f(conn, SearchFilters(actions=("walking",), age_groups=("middle",)))) == 2
        assert f(conn, SearchFilters(video_ids=(vid + 100,))) == []


def test_job_lock_and_stale_jobs(db_settings, db_pool):
    worker = connection.connect(db_settings)
    other = connection.connect(db_settings)
    try:
        with db_pool.connection() as conn:
            vid = store.create_video(conn, "v.mp4", "v")
        assert store.try_lock_video(worker, vid)
        JobAttempt(worker, vid).start(4242, "hostx")
        assert not store.try_lock_video(other, vid)  # a second run is refused
        with db_pool.connection() as conn:
            assert attempts.mark_stale_jobs(conn) == []  # the worker is alive
        worker.close()  # the worker dies: its lock goes with its connection
        # The server frees a closed session's advisory lock shortly after the close, not at
        # once: poll (the app's sweep runs every few seconds anyway).
        deadline = time.monotonic() + 10.0
        with db_pool.connection() as conn:
            while (stale := attempts.mark_stale_jobs(conn)) == [] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert stale == [vid]
            v = queries.get_video(conn, vid)
        assert v.status is JobStatus.FAILED and "4242@hostx" in v.error_message
        assert store.try_lock_video(other, vid)
    finally:
        worker.close()
        other.close()


def test_progress_and_finish(db_pool):
    with db_pool.connection() as conn:
        vid = store.create_video(conn, "<b>x</b>'; DROP TABLE db_event; --.mp4", "s")
        JobAttempt(conn, vid).start(1, "h")
        JobAttempt(conn, vid).progress(42.5, "analysis", 10, 40, 12.0)
        store.set_video_info(conn, vid, VideoInfo(path=__import__("pathlib").Path("x"), fps=25.0,
                                                  frame_count=250, width=640, height=480))
        v = queries.get_video(conn, vid)
        assert (v.progress, v.stage, v.frames_done, v.frames_total) == (42.5, "analysis", 10, 40)
        assert v.duration_s == 10.0 and v.name.startswith("<b>x</b>'; DROP")
        JobAttempt(conn, vid).finish(JobStatus.COMPLETED, token_usage={"input_tokens": 3})
        v = queries.get_video(conn, vid)
        assert v.status is JobStatus.COMPLETED and v.progress == 100 and v.token_usage["input_tokens"] == 3
        assert conn.execute("SELECT to_regclass('db_event')").fetchone()[0] is not None


def test_attributes_json_fast_path_matches_the_general_one():
    """Keypoints are formatted in one go; the stored values equal the rounded ones, and
    non-finite keypoints (not JSON) become null instead of failing the COPY."""
    import json

    rng = np.random.default_rng(5)
    for _ in range(50):
        kp = tuple((float(x), float(y), float(s)) for x, y, s in
                   zip(rng.uniform(-5, 2000, 17), rng.uniform(0, 1100, 17), rng.uniform(0, 1, 17)))
        e = make_event(1)
        e = Event(**{**e.__dict__, "keypoints": kp, "extra": {"n": 2}})
        got = json.loads(store._attributes_json(e))
        want = store.event_attributes(e)
        assert got == want
    bad = Event(**{**make_event(2).__dict__, "keypoints": ((1.0, float("nan"), 0.5),) * 17})
    got = json.loads(store._attributes_json(bad))
    assert got["keypoints"][0] == [1.0, None, 0.5] and got["n"] == 3
    odd = Event(**{**make_event(3).__dict__, "keypoints": ((1.0, 2.0),) * 3})  # not [x, y, s]
    with pytest.raises(ValueError):
        store._attributes_json(odd)


def test_migration_0003_moves_attribute_keys_into_columns(db_pool):
    """Rows written before 0003 kept orientation (label), scene, age, track and episode in the
    JSONB; the migration fills the columns from them, drops the keys and keeps the rest."""
    import json

    from db.connection import MIGRATIONS_DIR

    old = {"obj_id": 4, "orientation": 180, "orientation_deg": 171.5, "age": 33.0,
           "scene_analysis": "two people fight", "other_obj_ids": [7, 4, 9],
           "start_t_s": 1.5, "end_t_s": 3.0, "reason": "fast wrist", "keypoints": [[1, 2, 0.5]],
           "raw_action": "walking", "action_confidence": 0.6}
    with db_pool.connection() as conn:
        vid = store.create_video(conn, "old.mp4", "/videos/old.mp4")
        conn.execute(
            "INSERT INTO db_event (video_id, seq, event_type, \"timestamp\", frame_number,"
            " obj_id, attributes) VALUES (%s, 0, 'violent', 2.0, 50, 4, %s::jsonb)",
            (vid, json.dumps(old)))
        conn.execute((MIGRATIONS_DIR / "0003_event_fields.sql").read_text())
        (e,) = queries.list_events(conn, SearchFilters(video_ids=(vid,)))
        assert (e.orientation_label, e.orientation_deg, e.age) == (180, 171.5, 33.0)
        assert e.scene_description == "two people fight" and e.track_ids == (4, 7, 9)
        assert (e.start_t_s, e.end_t_s) == (1.5, 3.0) and e.other_track_ids == (7, 9)
        assert e.raw_action == "walking" and e.action_confidence == pytest.approx(0.6)
        assert dict(e.attributes) == {"reason": "fast wrist", "keypoints": [[1, 2, 0.5]]}
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid,))


def test_search_filters_are_plain_indexable_conditions(db_pool):
    """Only the filters that are set appear in the SQL, as comparisons the planner can match to
    the btree indexes (migration 0002 adds the action index); a selective filter is answered
    through them."""
    sql, params = queries._filter_sql(SearchFilters(video_ids=(3,), actions=("falling",)))
    assert "cardinality" not in sql and " OR " not in sql
    assert set(params) == {"f_videos", "f_actions"}
    assert queries._filter_sql(None) == ("TRUE", {})
    with db_pool.connection() as conn:
        idx = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'db_event'")}
        assert {"db_event_action_idx", "db_event_video_t_idx", "db_event_type_idx"} <= idx
        rng = np.random.default_rng(2)
        vids = []
        for k in range(3):
            vid = store.create_video(conn, f"v{k}.mp4", f"v{k}")
            vids.append(vid)
            evs = [make_event(i, action=Action.FALLING if i == 7 else Action.WALKING)
                   for i in range(40)]
            store.replace_events(conn, vid, store.EventBatch(
                evs, [f"event {i}" for i in range(40)], [None] * 40, unit(rng, 40, 8), "m8"))
        conn.execute("ANALYZE db_event")
        hits = queries.hybrid_search(conn, "event", unit(rng, 1, 8)[0], "m8",
                                     SearchFilters(video_ids=(vids[1],), t_min_s=5, t_max_s=20),
                                     top_k=50)
        assert hits and all(h.event.video_id == vids[1] and 5 <= h.event.t_s <= 20 for h in hits)
        assert len(hits) == 16
        hits = queries.hybrid_search(conn, "event", unit(rng, 1, 8)[0], "m8",
                                     SearchFilters(actions=("falling",)), top_k=50)
        assert sorted(h.event.video_id for h in hits) == vids
        with conn.transaction():
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT event_id FROM db_event e WHERE "
                + queries._filter_sql(SearchFilters(actions=("falling",)))[0],
                {"f_actions": ["falling"]}))
        assert "db_event_action_idx" in plan


def test_replace_events_with_reserved_ids_links_vectors_to_their_events(db_pool):
    rng = np.random.default_rng(9)
    with db_pool.connection() as conn:
        vid = store.create_video(conn, "ids.mp4", "ids")
        evs = [make_event(i) for i in range(25)]
        vecs = unit(rng, 25, 8)
        store.replace_events(conn, vid, store.EventBatch(
            evs, [f"s{i}" for i in range(25)], [None] * 25, vecs, "m8"))
        rows = conn.execute(
            "SELECT e.seq, ee.embedding FROM db_event e JOIN event_embedding ee USING (event_id)"
            " WHERE e.video_id = %s ORDER BY e.seq", (vid,)).fetchall()
        assert [r[0] for r in rows] == list(range(25))
        assert np.allclose(np.stack([np.asarray(r[1].to_numpy()) for r in rows]), vecs, atol=1e-6)
