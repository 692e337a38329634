"""Benchmark of the event store: bulk insert rate and hybrid search latency with 100,000 events,
against naive baselines in the same run (row-by-row INSERT; the same search with its indexes
turned off, i.e. an exact scan).

    python scripts/bench_db.py [--events 100000] [--database-url URL]

Without --database-url it starts a throw-away embedded PostgreSQL (pgvector) in a temp folder.
Events are synthetic (random people, actions, times, scenes); their vectors are real MiniLM
embeddings of 1,000 distinct event sentences plus a little noise (embedding all 100,000 with
MiniLM would take ~12 minutes on 2 cores and measure the model, not the database).
Targets: >= 20,000 events/s inserted; search p95 < 50 ms.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import connection, queries, store, vectors  # noqa: E402
from pipeline.records import Action, AgeGroup, Event, EventType, Gender, SearchFilters  # noqa: E402

QUERIES = [
    "a person falls down", "people fighting", "someone walking", "an older man walking away from "
    "the camera", "a woman sitting", "person lying on the floor", "someone grabbing something from "
    "a shelf", "a young man running", "two people standing near the counter", "a collapse",
    "who was paying at the counter", "a woman facing the camera", "violent struggle", "anomaly",
    "a man standing on the left", "people in a corridor", "someone fell near the right edge",
    "a middle-aged woman walking", "person down on the floor", "a fight at the bar",
]
SCENES = ["3 people on a campus path", "a shop counter with 2 people", "an empty corridor",
          "a bar with 5 people", "a living room with one person", "a store aisle with shelves"]


def pct(xs, p):
    return float(np.percentile(np.asarray(xs), p))


def synthetic_events(n: int, rng) -> list[Event]:
    types = [EventType.PERSON] * 20 + [EventType.FALLING, EventType.COLLAPSE, EventType.VIOLENT,
                                       EventType.GRABBING, EventType.ANOMALY]
    acts = [Action.STANDING, Action.WALKING, Action.SITTING, Action.LYING, Action.RUNNING]
    out = []
    for i in range(n):
        et = types[rng.integers(len(types))]
        act = {EventType.FALLING: Action.FALLING, EventType.COLLAPSE: Action.LYING,
               EventType.VIOLENT: Action.VIOLENT, EventType.GRABBING: Action.GRABBING,
               EventType.ANOMALY: Action.RUNNING}.get(et, acts[rng.integers(len(acts))])
        age = float(rng.uniform(8, 85))
        x = float(rng.uniform(0, 560))
        out.append(Event(
            event_type=et, t_s=float(rng.uniform(0, 600)), frame_number=int(rng.integers(0, 15000)),
            obj_id=int(rng.integers(0, 40)), xyxy=(x, 40.0, x + 80, 300.0),
            age_group=AgeGroup.from_age(age), gender=[Gender.MALE, Gender.FEMALE, Gender.UNKNOWN][
                rng.integers(3)], action=act, confidence=float(rng.uniform(0.3, 1)), age=age,
            orientation_deg=float(rng.choice([0, 90, 180, 270])),
            scene_description=SCENES[rng.integers(len(SCENES))],
            keypoints=tuple((float(k), float(k), 0.9) for k in range(17))))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--per-video", type=int, default=2_000)
    ap.add_argument("--baseline-rows", type=int, default=3_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--hnsw-events", type=int, default=10_000,
                    help="events inserted with the HNSW index in place (the ingest path)")
    ap.add_argument("--plan", action="store_true", help="print the search plan")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(2)
    from services.embeddings import embed_texts, event_sentence, load_embedder
    from settings import Settings

    tmp = None
    if args.database_url:
        url = args.database_url
    else:
        tmp = Path(tempfile.mkdtemp(prefix="va-bench-pg-"))
        url = connection.start_embedded(tmp / "data", cleanup_mode="delete")
    conn = connection.connect_url(url)
    try:
        connection.migrate(conn)
        for (name,) in conn.execute("SELECT index_name FROM embedding_model").fetchall():
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.execute("TRUNCATE event_embedding, db_track, db_event, db_video, embedding_model "
                     "RESTART IDENTITY CASCADE")
        rng = np.random.default_rng(7)
        emb = load_embedder(Settings())
        t = time.perf_counter()
        events = synthetic_events(args.events, rng)
        sentences = [event_sentence(e, (640, 480)) for e in events]
        distinct = sorted(set(sentences))
        pick = rng.choice(len(distinct), size=min(1000, len(distinct)), replace=False)
        base = embed_texts(emb, [distinct[i] for i in pick])
        which = rng.integers(0, len(base), size=len(events))
        vecs = base[which] + rng.normal(0, 0.03, size=(len(events), base.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        prep_s = time.perf_counter() - t
        print(f"prepared {len(events)} synthetic events ({len(distinct)} distinct sentences, "
              f"{len(base)} embedded with {emb.name}) in {prep_s:.1f} s")

        # --- naive baseline: row-by-row INSERT (autocommit, one statement per event) ---------
        vid0 = store.create_video(conn, "baseline.mp4", "baseline")
        nb = min(args.baseline_rows, len(events))
        t = time.perf_counter()
        for i in range(nb):
            conn.execute(
                "INSERT INTO db_event (" + ", ".join(f'"{c}"' for c in store.EVENT_COLUMNS) +
                ") VALUES (" + ", ".join(["%s"] * len(store.EVENT_COLUMNS)) + ")",
                store.event_row(vid0, i, events[i], sentences[i], None))
        naive_rate = nb / (time.perf_counter() - t)
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid0,))

        # --- COPY, events only (the events' share of ingest) -------------------------------
        t = time.perf_counter()
        vid_e = store.create_video(conn, "events-only.mp4", "events-only")
        store.replace_events(conn, vid_e, store.EventBatch(events, sentences, [None] * len(events)))
        copy_events_rate = len(events) / (time.perf_counter() - t)
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid_e,))
        conn.execute("VACUUM ANALYZE db_event")

        # --- the real ingest path: events + vectors (+ HNSW maintenance) per video, for the
        # first `--hnsw-events`; the rest is loaded with the index dropped, then rebuilt (how a
        # bulk import would do it), so the run stays short on 2 cores.
        per = args.per_video
        n_inc = min(args.hnsw_events, len(events))
        t = time.perf_counter()
        for k, start in enumerate(range(0, n_inc, per)):
            vid = store.create_video(conn, f"video{k:04d}.mp4", f"bench/{k}")
            sl = slice(start, min(start + per, n_inc))
            store.replace_events(conn, vid, store.EventBatch(
                events[sl], sentences[sl], [None] * len(events[sl]), vecs[sl], emb.name))
        full_rate = n_inc / (time.perf_counter() - t)
        idx = vectors.index_name(emb.name, emb.dim)
        conn.execute(f'DROP INDEX "{idx}"')
        conn.execute("DELETE FROM embedding_model")
        t = time.perf_counter()
        for k, start in enumerate(range(n_inc, len(events), per), start=10_000):
            vid = store.create_video(conn, f"video{k:04d}.mp4", f"bench/{k}")
            sl = slice(start, start + per)
            store.replace_events(conn, vid, store.EventBatch(
                events[sl], sentences[sl], [None] * len(events[sl]), None, None))
            ids = [r[0] for r in conn.execute(
                "SELECT event_id FROM db_event WHERE video_id = %s ORDER BY seq", (vid,))]
            with conn.transaction():
                store.copy_vectors(conn, list(zip(ids, vecs[sl])), emb.name, emb.dim)
        bulk_rate = (len(events) - n_inc) / max(time.perf_counter() - t, 1e-9)
        t = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        vectors.ensure_index(conn, emb.name, emb.dim)
        index_s = time.perf_counter() - t
        conn.execute("VACUUM ANALYZE")
        with conn.transaction():
            conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN (ANALYZE, COSTS OFF) " + queries.hybrid_search_sql(emb.name, emb.dim).as_string(conn),
                {**queries._filter_sql(None)[1], "text": QUERIES[0], "cand": 100,
                 "rrf_k": 60, "top_k": 10, "hl_bonus": 0.01, "lex_scan": queries.LEXICAL_SCAN,
                 "qvec": embed_texts(emb, [QUERIES[0]])[0]}))

        # --- search ------------------------------------------------------------------------
        qtexts = [QUERIES[i % len(QUERIES)] for i in range(args.queries)]
        qvecs = embed_texts(emb, QUERIES)
        qmap = {q: qvecs[i] for i, q in enumerate(QUERIES)}
        filters = [None, SearchFilters(event_types=("falling", "collapse")),
                   SearchFilters(video_ids=(3,)), SearchFilters(genders=("female",), t_max_s=300)]
        for q in QUERIES[:5]:  # warm the caches
            queries.hybrid_search(conn, q, qmap[q], emb.name, None, 10)
        lat, lat_f = [], []
        for i, q in enumerate(qtexts):
            f = filters[i % len(filters)]
            t = time.perf_counter()
            queries.hybrid_search(conn, q, qmap[q], emb.name, f, 10)
            (lat if f is None else lat_f).append((time.perf_counter() - t) * 1000)
        e2e = []
        for q in QUERIES:
            t = time.perf_counter()
            v = emb.embed([q])[0]
            queries.hybrid_search(conn, q, v, emb.name, None, 10)
            e2e.append((time.perf_counter() - t) * 1000)

        # baseline: exact scan (indexes off) + recall of HNSW against it
        exact_lat, recall = [], []
        knn = ("SELECT event_id FROM event_embedding WHERE model = %s ORDER BY "
               "embedding::vector(384) <=> %s::vector(384) LIMIT 10")
        for q in QUERIES:
            with conn.transaction():
                conn.execute("SET LOCAL hnsw.ef_search = 100")
                approx = [r[0] for r in conn.execute(knn, (emb.name, qmap[q])).fetchall()]
            with conn.transaction():
                conn.execute("SET LOCAL enable_indexscan = off")
                conn.execute("SET LOCAL enable_bitmapscan = off")
                exact = [r[0] for r in conn.execute(knn, (emb.name, qmap[q])).fetchall()]
                t = time.perf_counter()
                queries.hybrid_search(conn, q, qmap[q], emb.name, None, 10)
                exact_lat.append((time.perf_counter() - t) * 1000)
            recall.append(len(set(approx) & set(exact)) / 10)
        n_rows = conn.execute("SELECT count(*) FROM db_event").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('event_embedding'))"
                            ).fetchone()[0]
    finally:
        conn.close()
        if tmp is not None:
            connection.stop_embedded(tmp / "data")
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"stored events: {n_rows}; event_embedding with HNSW: {size}")
    print(f"insert, naive row-by-row INSERT : {naive_rate:9.0f} events/s ({nb} rows)")
    print(f"insert, COPY events (one txn)   : {copy_events_rate:9.0f} events/s "
          f"({copy_events_rate / naive_rate:.1f}x naive)  target >= 20000")
    print(f"insert, COPY events + vectors, HNSW in place ({args.per_video}/video, one txn each): "
          f"{full_rate:9.0f} events/s (first {n_inc})")
    print(f"bulk load, COPY events + vectors, no index: {bulk_rate:9.0f} events/s; HNSW build "
          f"over {len(events)} vectors: {index_s:.1f} s")
    print(f"search SQL (hybrid RRF, top 10), no filter : p50 {pct(lat, 50):6.1f} ms  "
          f"p95 {pct(lat, 95):6.1f} ms  (n={len(lat)})  target p95 < 50")
    print(f"search SQL with filters                    : p50 {pct(lat_f, 50):6.1f} ms  "
          f"p95 {pct(lat_f, 95):6.1f} ms  (n={len(lat_f)})")
    print(f"search end to end (MiniLM encode + SQL)    : p50 {pct(e2e, 50):6.1f} ms  "
          f"p95 {pct(e2e, 95):6.1f} ms")
    print(f"baseline exact scan (indexes off)          : p50 {pct(exact_lat, 50):6.1f} ms  "
          f"p95 {pct(exact_lat, 95):6.1f} ms  -> indexed p95 is "
          f"{pct(exact_lat, 95) / pct(lat, 95):.1f}x faster")
    print(f"HNSW recall@10 vs exact (ef_search 100): {statistics.mean(recall):.3f}")
    if args.plan:
        print(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
