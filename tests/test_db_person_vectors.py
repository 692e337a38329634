"""db/person_vectors.py (migration 0011) and ``python -m pipeline similar`` against a real
PostgreSQL with pgvector: vectors stored with their tracks, the nearest tracks of other videos,
one HNSW index per model, models never mixed, bad input refused in one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from db import person_vectors as pvdb
from db import store
from db.errors import DatabaseUnavailable
from pipeline.person_vectors import PersonVector
from pipeline.records import Gender, TrackSummary

pytestmark = pytest.mark.db
DIM = 16


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


def _store(conn, name, tracks, model="m16"):
    """A video whose tracks (obj_id, first_s, last_s, vector) are stored by the store step."""
    vid = store.create_video(conn, name, f"/videos/{name}")
    store.replace_events(conn, vid, store.EventBatch(
        events=[], sentences=[], thumbnails=[],
        tracks=[TrackSummary(o, a, b, 3, None, None, Gender.UNKNOWN, None, {})
                for o, a, b, _ in tracks],
        person_vectors=[PersonVector(o, model, _unit(v), 3) for o, _, _, v in tracks]))
    return vid


@pytest.fixture
def people():
    rng = np.random.default_rng(3)
    return {k: rng.normal(size=DIM) for k in ("anna", "ben", "cleo")}


def test_nearest_tracks_of_other_videos_best_first(db_pool, people):
    rng = np.random.default_rng(4)
    near = lambda p: people[p] + 0.2 * rng.normal(size=DIM)  # noqa: E731
    with db_pool.connection() as conn:
        a = _store(conn, "a.mp4", [(1, 0.0, 5.0, near("anna")), (2, 0.0, 5.0, near("ben")),
                                   (3, 8.0, 9.0, near("anna"))])  # anna comes back at 8 s
        b = _store(conn, "b.mp4", [(7, 1.0, 3.0, near("anna")), (8, 1.0, 3.0, near("cleo"))])
        c = _store(conn, "c.mp4", [(4, 2.0, 6.0, near("ben"))])
        q = pvdb.track_vector(conn, a, 1)
        assert q.model == "m16" and q.vector.shape == (DIM,) and (q.first_t_s, q.last_t_s) == (0, 5)
        hits = pvdb.similar(conn, q, top_k=3)
        assert [(h.video_id, h.obj_id) for h in hits][0] == (b, 7)
        assert all(h.video_id != a for h in hits)  # other videos only, by default
        assert hits[0].similarity > 0.8 and hits[0].similarity >= hits[1].similarity
        assert (hits[0].video, hits[0].first_t_s, hits[0].last_t_s) == ("b.mp4", 1.0, 3.0)
        # In its own video too: the same person after they came back, never a track seen at the
        # same time (track 2) nor the query itself.
        own = pvdb.similar(conn, q, top_k=10, same_video=True)
        keys = [(h.video_id, h.obj_id) for h in own]
        assert (a, 3) in keys[:2] and (a, 1) not in keys and (a, 2) not in keys
        assert {(b, 7), (b, 8), (c, 4)} <= set(keys)


def test_one_hnsw_index_per_model_and_models_never_mixed(db_pool, people):
    with db_pool.connection() as conn:
        a = _store(conn, "a.mp4", [(1, 0.0, 5.0, people["anna"])], model="m16")
        _store(conn, "b.mp4", [(1, 0.0, 5.0, people["anna"])], model="other-model")
        q = pvdb.track_vector(conn, a, 1)
        assert pvdb.similar(conn, q) == []  # the same person, but another model's vector
        # One index per model; other tests sharing this database may have added theirs.
        defs = {r[0]: r[1] for r in conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'person_vector'")}
        for model in ("m16", "other-model"):
            d = defs[pvdb.index_name(model, DIM)]
            assert "hnsw" in d and "vector_cosine_ops" in d and f"'{model}'" in d
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT obj_id FROM person_vector WHERE model = 'm16' "
            "ORDER BY embedding::vector(16) <=> %s::vector(16) LIMIT 5", (q.vector,)))
        assert pvdb.index_name("m16", DIM) in plan
        with pytest.raises(DatabaseUnavailable, match="dimension"):
            pvdb.ensure_index(conn, "m16", 8)


def test_a_rerun_replaces_the_vectors_and_deleting_the_video_removes_them(db_pool, people):
    with db_pool.connection() as conn:
        a = _store(conn, "a.mp4", [(1, 0.0, 5.0, people["anna"]), (2, 0.0, 5.0, people["ben"])])
        store.replace_events(conn, a, store.EventBatch(
            events=[], sentences=[], thumbnails=[],
            tracks=[TrackSummary(5, 0.0, 1.0, 2, None, None, Gender.UNKNOWN, None, {})],
            person_vectors=[PersonVector(5, "m16", _unit(people["cleo"]), 2)]))
        rows = conn.execute("SELECT obj_id FROM person_vector WHERE video_id = %s", (a,)).fetchall()
        assert rows == [(5,)]
        store.delete_video(conn, a)
        assert conn.execute("SELECT count(*) FROM person_vector").fetchone()[0] == 0


def test_cli_similar_prints_json_lines_and_refuses_bad_input(db_settings, db_pool, people,
                                                            monkeypatch, capsys):
    from services.cli import main

    with db_pool.connection() as conn:
        a = _store(conn, "a.mp4", [(1, 0.0, 5.0, people["anna"]), (2, 0.0, 5.0, people["ben"])])
        b = _store(conn, "b.mp4", [(7, 1.0, 3.0, people["anna"] + 0.1)])
        conn.execute("DELETE FROM person_vector WHERE video_id = %s AND obj_id = 2", (a,))
    monkeypatch.setenv("DATABASE_URL", db_settings.database_url)
    monkeypatch.setenv("VA_DATA_DIR", str(db_settings.data_dir))
    assert main(["similar", "--video-id", str(a), "--track", "1", "--top-k", "5"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [(h["video_id"], h["video"], h["obj_id"]) for h in lines] == [(b, "b.mp4", 7)]
    assert set(lines[0]) == {"video_id", "video", "obj_id", "first_t_s", "last_t_s", "similarity"}
    assert lines[0]["similarity"] > 0.9
    for argv, words in (
            (["--video-id", "999", "--track", "1"], ["video 999 does not exist", "jobs"]),
            (["--video-id", str(a), "--track", "42"], ["no track 42", "1, 2"]),
            (["--video-id", str(a), "--track", "2"], ["no appearance vector", "re-analyse"]),
            (["--video-id", str(a), "--track", "1", "--top-k", "0"], ["--top-k 0"])):
        assert main(["similar", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err


@pytest.mark.slow
def test_the_same_person_is_found_in_another_analysed_video(db_settings, db_pool, tmp_path,
                                                            monkeypatch, capsys):
    """Through the product end to end (the job runner, the engine, the store step, the CLI):
    GMDCSA24's subject 1 sitting (S1_ADL_16) is found first in S1_Fall_13, not in subject 3's
    clip."""
    from app_support import analyse, link_clips, reset_app_caches, set_app_env
    from db import queries
    from services.cli import main

    clips = link_clips(tmp_path / "library", "clips/adl/S1_ADL_16.mp4",
                       "clips/falls/S1_Fall_13.mp4", "clips/adl/S3_ADL_07.mp4")
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, tmp_path / "library")
    reset_app_caches()
    ids = [analyse(db_settings, c) for c in clips]
    with db_pool.connection() as conn:
        tracks = queries.list_tracks(conn, ids[0])
        stored = conn.execute("SELECT count(*), min(model) FROM person_vector").fetchone()
    main_track = max(tracks, key=lambda t: t.n_observations).obj_id
    assert stored[0] >= 3 and "colour-hsv4" in stored[1]
    monkeypatch.setenv("DATABASE_URL", db_settings.database_url)
    assert main(["similar", "--video-id", str(ids[0]), "--track", str(main_track)]) == 0
    hits = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert hits[0]["video_id"] == ids[1] and hits[0]["video"] == "S1_Fall_13.mp4", hits
    assert all(h["video_id"] != ids[0] for h in hits)
