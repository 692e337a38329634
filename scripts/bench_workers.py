"""Throughput of the job queue with 1 and 2 worker processes on this machine.

Queues the same batch of videos for each configuration (copies of a test clip under distinct
names, so each is its own video), starts N ``python -m pipeline worker --burst`` processes (they
exit when the queue is empty) and measures the wall time from the workers' start to the last job's
end (start-up included), the span from the first job's start to the last job's end (workers
running), the mean time per job, and how busy the CPUs were (the whole machine). A throw-away embedded PostgreSQL unless
``--database-url`` is given.

    flock /tmp/heavy.lock nice -n 5 .venv/bin/python scripts/bench_workers.py
    .venv/bin/python scripts/bench_workers.py --videos 8 --configs 1:2 2:1 2:2

``--configs`` takes WORKERS:CPU_THREADS pairs (VA_CPU_THREADS: onnxruntime threads per worker).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_CLIP = REPO.parent / "shared" / "testdata" / "clips" / "pedestrians" / "vtest_first20s.mp4"


def run_config(url: str, data_dir: Path, clips: list[Path], workers: int, cpu_threads: int,
               frame_skip: int, proposals: str) -> dict:
    from db import connection
    from services import workbench
    from services.jobs import jobs
    from settings import Settings

    settings = Settings(database_url=url, data_dir=data_dir)
    conn = connection.connect_url(url)
    try:
        conn.execute("TRUNCATE db_event, db_track, db_video, procrastinate_events, "
                     "procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE")
    finally:
        conn.close()
    client = jobs.JobClient(settings)
    ids = [client.submit(str(c), jobs.AnalysisOptions(frame_skip=frame_skip)) for c in clips]
    client.shutdown()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VA_", "POSTGRES_"))}
    env.update(DATABASE_URL=url, VA_DATA_DIR=str(data_dir), VA_CPU_THREADS=str(cpu_threads),
               VA_PROPOSALS=proposals, HF_HUB_OFFLINE="1")
    import psutil

    load0 = os.getloadavg()[0]
    busy0 = psutil.cpu_times()
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline", "worker", "--burst"], cwd=REPO,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(workers)]
    errs = [p.communicate()[1] for p in procs]
    wall = time.monotonic() - t0
    busy1 = psutil.cpu_times()
    idle = (busy1.idle - busy0.idle) + (getattr(busy1, "iowait", 0) - getattr(busy0, "iowait", 0))
    total = sum(busy1) - sum(busy0)
    videos = [workbench.get_video(settings, v) for v in ids]
    bad = [(v.video_id, v.status.value, v.error_message) for v in videos
           if v.status.value != "completed"]
    if bad or any(p.returncode for p in procs):
        raise SystemExit(f"jobs failed: {bad}; worker errors: {[e[-500:] for e in errs]}")
    per_job = [(v.finished_at - v.started_at).total_seconds() for v in videos]
    # From the first job's start to the last job's end: throughput without the workers' start-up
    # (imports and model loading, paid once per worker process).
    span = (max(v.finished_at for v in videos) - min(v.started_at for v in videos)).total_seconds()
    video_s = sum(v.duration_s or 0 for v in videos)
    return {
        "workers": workers, "cpu_threads": cpu_threads, "videos": len(videos),
        "wall_s": round(wall, 1), "videos_per_min": round(60 * len(videos) / wall, 2),
        "video_s_per_wall_s": round(video_s / wall, 2),
        "span_s": round(span, 1), "videos_per_min_running": round(60 * len(videos) / span, 2),
        "mean_job_s": round(sum(per_job) / len(per_job), 1),
        "cpu_busy_pct": round(100 * (1 - idle / total), 1) if total else None,
        "cores": os.cpu_count(), "load_before": round(load0, 2),
        "events": sum(v.n_events or 0 for v in videos),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    p.add_argument("--videos", type=int, default=6)
    p.add_argument("--frame-skip", type=int, default=20)
    p.add_argument("--proposals", default="yolov5")
    p.add_argument("--configs", nargs="*", default=["1:2", "2:1", "2:2"],
                   help="WORKERS:CPU_THREADS pairs")
    p.add_argument("--database-url", default=None)
    args = p.parse_args()
    if not args.clip.exists():
        raise SystemExit(f"{args.clip} is absent; pass --clip")
    from db import connection

    base = Path(tempfile.mkdtemp(prefix="va-bench-workers-"))
    clips = []
    for i in range(args.videos):
        c = base / "clips" / f"{args.clip.stem}_{i}{args.clip.suffix}"
        c.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.clip, c)  # a copy: a symlink resolves to the same source (one video)
        clips.append(c)
    url = args.database_url or connection.start_embedded(base / "pg", cleanup_mode="delete")
    try:
        first = connection.connect_url(url)  # migrated on connect when new
        connection.migrate(first)
        first.close()
        for cfg in args.configs:
            w, t = (int(x) for x in cfg.split(":"))
            r = run_config(url, base / "var", clips, w, t, args.frame_skip, args.proposals)
            print(json.dumps(r), flush=True)
    finally:
        connection.close_pools()
        if not args.database_url:
            connection.stop_embedded(base / "pg")
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
