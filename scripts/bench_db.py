"""Benchmark of the event store: bulk insert rate and hybrid search latency with 100,000 events,
against naive baselines in the same run (row-by-row INSERT; the same search with its indexes
turned off, i.e. an exact scan).

    python scripts/bench_db.py [--events 100000] [--database-url URL] [--plan]

Without --database-url it starts a throw-away embedded PostgreSQL (pgvector) in a temp folder, with
the product's embedded settings (db/connection.py: embedded_settings).
Events are synthetic (random people, actions, times, scenes); their vectors are real MiniLM
embeddings of 1,000 distinct event sentences plus a little noise (embedding all 100,000 with
MiniLM would take ~12 minutes on 2 cores and measure the model, not the database).

What "insert rate" means here: events per second through ``store.replace_events``, the function
the real ingest calls: one transaction per video that deletes the video's old events and COPYs
the new ones into db_event with all its indexes live (primary key, (video_id, seq), (video_id,
timestamp), event_type, action, the generated tsvector column and its GIN index, the foreign key)
- "events only" - and, for "events + vectors", also their embeddings into event_embedding with
the model's HNSW index maintained in the same transaction. Both are measured on top of the full
store (100,000 events already indexed), as an ingest would find it. "bulk import" is the other
way to fill an empty store: COPY without the HNSW index, then build it once.
Wall-clock rates depend on what else the machine runs (the load average is printed); the
server's CPU time per event (read from /proc for a local server) does not.
Targets: >= 20,000 events/s inserted; search p95 < 50 ms.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import connection, queries, store, vectors  # noqa: E402
from pipeline.records import Action, AgeGroup, Event, EventType, Gender
from db.records import SearchFilters

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


def _cpu_s(pid: int | None) -> float:
    """CPU seconds (user + system) of a local process, 0 when unreadable (remote server)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class Meter:
    """Wall time, this process's CPU and the server backend's CPU of one measured step."""

    def __init__(self, backend_pid: int | None):
        self.pid = backend_pid

    def __enter__(self):
        self.t, self.c, self.s = time.perf_counter(), time.process_time(), _cpu_s(self.pid)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t
        self.client = time.process_time() - self.c
        self.server = _cpu_s(self.pid) - self.s

    def line(self, n: int, label: str, naive: float | None = None) -> str:
        rate = n / max(self.wall, 1e-9)
        cpu = (f"; server CPU {self.server / n * 1e6:6.0f} us/event, client CPU "
               f"{self.client / n * 1e6:5.0f} us/event" if self.server else "")
        ratio = f" ({rate / naive:5.1f}x naive)" if naive else ""
        return f"{label:44s}: {rate:8.0f} events/s{ratio}  [{n} events, {self.wall:.2f} s{cpu}]"


def naive_insert(conn, vid: int, events, sentences, vecs=None, model=None, dim=None) -> None:
    """The baseline: one INSERT per event (and per vector), each its own transaction."""
    cols = ", ".join(f'"{c}"' for c in store.EVENT_COLUMNS)
    ins = (f"INSERT INTO db_event ({cols}) VALUES ("
           + ", ".join(["%s"] * len(store.EVENT_COLUMNS)) + ") RETURNING event_id")
    for i, (e, s) in enumerate(zip(events, sentences)):
        eid = conn.execute(ins, store.event_row(vid, i, e, s, None)).fetchone()[0]
        if vecs is not None:
            conn.execute("INSERT INTO event_embedding (event_id, model, dim, embedding)"
                         " VALUES (%s, %s, %s, %s)", (eid, model, dim, vecs[i]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--per-video", type=int, default=2_000)
    ap.add_argument("--baseline-rows", type=int, default=2_000,
                    help="events inserted row by row for the naive baseline (events only)")
    ap.add_argument("--baseline-vector-rows", type=int, default=300,
                    help="events + vectors inserted row by row for the naive baseline")
    ap.add_argument("--ingest-videos", type=int, default=5,
                    help="videos (of --per-video events) ingested on top of the full store")
    ap.add_argument("--ingest-vector-events", type=int, default=2_000,
                    help="events + vectors ingested on top of the full store (HNSW maintained)")
    ap.add_argument("--queries", type=int, default=280)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--plan", action="store_true", help="print the plans of two searches")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(2)
    from services.search.embeddings import embed_texts, event_sentence, load_embedder
    from settings import Settings

    print(f"load average at start: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    tmp = None
    if args.database_url:
        url = args.database_url
    else:
        tmp = Path(tempfile.mkdtemp(prefix="va-bench-pg-"))
        url = connection.start_embedded(tmp / "data", cleanup_mode="delete")
    conn = connection.connect_url(url)
    out: list[str] = []
    try:
        connection.migrate(conn)
        for (name,) in conn.execute("SELECT index_name FROM embedding_model").fetchall():
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.execute("TRUNCATE event_embedding, db_track, db_event, db_video, embedding_model "
                     "RESTART IDENTITY CASCADE")
        local = url.startswith("postgresql://") and ("host=/" in url or "@/" in url or tmp)
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0] if local else None
        meter = lambda: Meter(backend)  # noqa: E731
        settings_line = ", ".join(f"{k}={v}" for k, v in conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) ORDER BY name",
            (["shared_buffers", "maintenance_work_mem", "max_wal_size", "synchronous_commit",
              "max_parallel_maintenance_workers"],)).fetchall())
        rng = np.random.default_rng(7)
        emb = load_embedder(Settings())
        t = time.perf_counter()
        n_total = args.events
        n_extra = args.ingest_videos * args.per_video + args.ingest_vector_events
        events = synthetic_events(n_total + n_extra, rng)
        sentences = [event_sentence(e, (640, 480)) for e in events]
        distinct = sorted(set(sentences))
        pick = rng.choice(len(distinct), size=min(1000, len(distinct)), replace=False)
        base = embed_texts(emb, [distinct[i] for i in pick])
        which = rng.integers(0, len(base), size=len(events))
        vecs = base[which] + rng.normal(0, 0.03, size=(len(events), base.shape[1])).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        print(f"prepared {len(events)} synthetic events ({len(distinct)} distinct sentences, "
              f"{len(base)} embedded with {emb.name}) in {time.perf_counter() - t:.1f} s")
        print(f"server: {settings_line}")

        # --- 1. events only, into the empty indexed table: row by row vs one COPY transaction -----
        vid0 = store.create_video(conn, "baseline.mp4", "baseline")
        nb = min(args.baseline_rows, n_total)
        with meter() as m:
            naive_insert(conn, vid0, events[:nb], sentences[:nb])
        naive_empty = nb / m.wall
        out.append(m.line(nb, "empty store, naive row-by-row INSERT"))
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid0,))
        vid_e = store.create_video(conn, "events-only.mp4", "events-only")
        with meter() as m:
            store.replace_events(conn, vid_e, store.EventBatch(
                events[:n_total], sentences[:n_total], [None] * n_total))
        out.append(m.line(n_total, "empty store, replace_events, 1 transaction", naive_empty))
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid_e,))
        conn.execute("VACUUM ANALYZE db_event")

        # --- 2. bulk import: fill the store (events + vectors, no HNSW), then build the index -----
        per = args.per_video
        with meter() as m:
            for k, start in enumerate(range(0, n_total, per)):
                vid = store.create_video(conn, f"video{k:04d}.mp4", f"bench/{k}")
                sl = slice(start, min(start + per, n_total))
                store.replace_events(conn, vid, store.EventBatch(
                    events[sl], sentences[sl], [None] * len(events[sl]), None, None))
                ids = [r[0] for r in conn.execute(
                    "SELECT event_id FROM db_event WHERE video_id = %s ORDER BY seq", (vid,))]
                with conn.transaction():
                    store.copy_vectors(conn, list(zip(ids, vecs[sl])), emb.name, emb.dim)
        load_s = m.wall
        t = time.perf_counter()
        vectors.ensure_index(conn, emb.name, emb.dim)
        index_s = time.perf_counter() - t
        out.append(f"{'bulk import (COPY, then HNSW build)':44s}: {n_total / (load_s + index_s):8.0f}"
                   f" events/s  [COPY {load_s:.1f} s + HNSW build over {n_total} vectors "
                   f"{index_s:.1f} s]")
        conn.execute("VACUUM ANALYZE")

        # --- 3. the ingest path on top of the full store (all indexes live) -----------------------
        nxt = n_total
        vid_n = store.create_video(conn, "naive.mp4", "naive")
        with meter() as m:
            naive_insert(conn, vid_n, events[nxt:nxt + nb], sentences[nxt:nxt + nb])
        naive_full = nb / m.wall
        out.append(m.line(nb, "full store, naive INSERT, events only"))
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid_n,))
        nbv = args.baseline_vector_rows
        vid_n = store.create_video(conn, "naive-v.mp4", "naive-v")
        with meter() as m:
            naive_insert(conn, vid_n, events[nxt:nxt + nbv], sentences[nxt:nxt + nbv],
                         vecs[nxt:nxt + nbv], emb.name, emb.dim)
        naive_full_v = nbv / m.wall
        out.append(m.line(nbv, "full store, naive INSERT, events + vectors"))
        conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid_n,))
        added: list[int] = []
        n_ev = args.ingest_videos * per
        with meter() as m:
            for k in range(args.ingest_videos):
                vid = store.create_video(conn, f"new{k}.mp4", f"new/{k}")
                added.append(vid)
                sl = slice(nxt + k * per, nxt + (k + 1) * per)
                store.replace_events(conn, vid, store.EventBatch(
                    events[sl], sentences[sl], [None] * per))
        out.append(m.line(n_ev, "full store, replace_events, events only", naive_full)
                   + f" ({per}/video)")
        nxt += n_ev
        nv = args.ingest_vector_events
        with meter() as m:
            for k, start in enumerate(range(nxt, nxt + nv, per)):
                vid = store.create_video(conn, f"newv{k}.mp4", f"newv/{k}")
                added.append(vid)
                sl = slice(start, min(start + per, nxt + nv))
                store.replace_events(conn, vid, store.EventBatch(
                    events[sl], sentences[sl], [None] * len(events[sl]), vecs[sl], emb.name))
        out.append(m.line(nv, "full store, replace_events, events + vectors", naive_full_v))
        for vid in added:
            conn.execute("DELETE FROM db_video WHERE video_id = %s", (vid,))
        conn.execute("VACUUM ANALYZE")

        # --- 4. search --------------------------------------------------------------------------
        qvecs = embed_texts(emb, QUERIES)
        qmap = {q: qvecs[i] for i, q in enumerate(QUERIES)}
        filters = [None, SearchFilters(event_types=("falling", "collapse")),
                   SearchFilters(video_ids=(3,)), SearchFilters(genders=("female",), t_max_s=300),
                   SearchFilters(actions=("walking",)), SearchFilters(age_groups=("old",)),
                   SearchFilters(video_ids=(7,), t_min_s=100, t_max_s=200)]
        if args.plan:
            plans = []
            for f in (None, filters[3]):
                params = queries.search_params(QUERIES[0], qmap[QUERIES[0]], f)
                sql_text = queries.hybrid_search_sql(emb.name, emb.dim, True, f).as_string(conn)
                with conn.transaction():
                    queries.search_settings(conn)
                    plans.append("\n".join(
                        re.sub(r"'\[[^\]]*\]'", "'[query vector]'", r[0]) for r in conn.execute(
                            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql_text, params,
                            prepare=False)))
        for q in QUERIES[:5]:  # warm the caches
            queries.hybrid_search(conn, q, qmap[q], emb.name, None, 10)
        lat: dict[int, list[float]] = {i: [] for i in range(len(filters))}
        for i in range(args.queries):
            q, fi = QUERIES[i % len(QUERIES)], i % len(filters)
            t = time.perf_counter()
            queries.hybrid_search(conn, q, qmap[q], emb.name, filters[fi], 10)
            lat[fi].append((time.perf_counter() - t) * 1000)
        unf = lat[0]
        filt = [x for fi in range(1, len(filters)) for x in lat[fi]]
        # One query encodes fastest on one thread (two OpenMP threads on a busy 2-core machine
        # wait for each other: 10-500 ms per encode).
        torch.set_num_threads(1)
        e2e = []
        for q in QUERIES:
            t = time.perf_counter()
            v = emb.embed([q])[0]
            queries.hybrid_search(conn, q, v, emb.name, None, 10)
            e2e.append((time.perf_counter() - t) * 1000)

        # baseline: exact scan (indexes off) + recall of HNSW against it
        exact_lat, exact_lat_f, recall = [], [], []
        knn = ("SELECT event_id FROM event_embedding WHERE model = %s ORDER BY "
               "embedding::vector(384) <=> %s::vector(384) LIMIT 10")
        for i, q in enumerate(QUERIES):
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
                f = filters[1 + i % (len(filters) - 1)]
                t = time.perf_counter()
                queries.hybrid_search(conn, q, qmap[q], emb.name, f, 10)
                exact_lat_f.append((time.perf_counter() - t) * 1000)
            recall.append(len(set(approx) & set(exact)) / 10)
        n_rows = conn.execute("SELECT count(*) FROM db_event").fetchone()[0]
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('event_embedding')),"
                            " pg_size_pretty(pg_total_relation_size('db_event'))").fetchone()
    finally:
        conn.close()
        if tmp is not None:
            connection.stop_embedded(tmp / "data")
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"stored events: {n_rows}; event_embedding (with HNSW): {size[0]}; db_event: {size[1]}")
    print("\n".join(out))
    print(f"search SQL (hybrid RRF, top 10), no filter : p50 {pct(unf, 50):6.1f} ms  "
          f"p95 {pct(unf, 95):6.1f} ms  (n={len(unf)})  target p95 < 50")
    print(f"search SQL with filters                    : p50 {pct(filt, 50):6.1f} ms  "
          f"p95 {pct(filt, 95):6.1f} ms  (n={len(filt)})  target p95 < 50")
    for fi in range(1, len(filters)):
        f = filters[fi]
        desc = ", ".join(f"{k}={v}" for k, v in vars(f).items() if v not in ((), None))
        print(f"    {desc:50s} p50 {pct(lat[fi], 50):6.1f}  p95 {pct(lat[fi], 95):6.1f} ms")
    print(f"search end to end (MiniLM encode + SQL)    : p50 {pct(e2e, 50):6.1f} ms  "
          f"p95 {pct(e2e, 95):6.1f} ms")
    print(f"baseline exact scan (indexes off), no filter: p50 {pct(exact_lat, 50):6.1f} ms  "
          f"p95 {pct(exact_lat, 95):6.1f} ms  -> indexed p95 is "
          f"{pct(exact_lat, 95) / pct(unf, 95):.1f}x faster")
    print(f"baseline exact scan (indexes off), filters : p50 {pct(exact_lat_f, 50):6.1f} ms  "
          f"p95 {pct(exact_lat_f, 95):6.1f} ms  -> indexed p95 is "
          f"{pct(exact_lat_f, 95) / pct(filt, 95):.1f}x faster")
    print(f"HNSW recall@10 vs exact (ef_search 100): {statistics.mean(recall):.3f} (synthetic "
          f"vectors: ~100 near-copies per sentence, so the true top 10 are near-ties)")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.plan:
        print("\n\n".join(plans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
