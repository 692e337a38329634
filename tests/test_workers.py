"""Several worker processes (``python -m pipeline worker``) on one PostgreSQL, with real clips and
the real engine: a worker killed with SIGKILL mid-job has its job finished by the other, each
video analysed to completion once, with the same events as a single run; Cancel reaches the
worker process that runs the job within 5 s; and processes sharing the embedded database keep it
up while any of them needs it.

Heavy (two engines at once): run under ``flock /tmp/heavy.lock``. The dense passes' second
detector is switched off (``VA_PROPOSALS=none``) to keep the whole module around two minutes on
2 cores; it changes nothing in how jobs move.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from app_support import link_clips, wait_for
from pipeline.records import JobStatus
from services import workbench
from services.jobs import jobs

pytestmark = [pytest.mark.db, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CLIPS = ("clips/falls/S4_Fall_02.mp4", "clips/intel/people-detection.mp4",
         "clips/fight/nofi064.mp4", "clips/fight/fi020.mp4", "clips/intel/classroom.mp4",
         "clips/fight/nofi075.mp4")


def _env(data_dir: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VA_", "POSTGRES_", "S3_", "DATABASE_URL", "AWS_"))}
    env.update(VA_DATA_DIR=str(data_dir), VA_PROPOSALS="none", VA_STALLED_AFTER_S="5",
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def _start_worker(env: dict, log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "worker", *args], cwd=REPO,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(p: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 60) -> int:
    if p.poll() is None:
        p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
    return p.wait()


def _completions(*logs: Path) -> dict[int, int]:
    """How many times each video was analysed to completion (the ingest's final log line)."""
    n: dict[int, int] = {}
    for log in logs:
        for m in re.finditer(r"video (\d+) \(.*?\): completed;", log.read_text()):
            n[int(m.group(1))] = n.get(int(m.group(1)), 0) + 1
    return n


def _video(settings, vid):
    return workbench.get_video(settings, vid)


def test_a_worker_killed_mid_job_leaves_its_job_to_the_other_and_all_six_complete(
        db_settings, tmp_path):
    from dataclasses import replace

    paths = link_clips(tmp_path / "lib", *CLIPS)
    settings = replace(db_settings, proposals="none", stalled_after_s=5)
    client = jobs.JobClient(settings)
    ids = [client.submit(str(p)) for p in paths]
    env = _env(settings.data_dir, settings.database_url)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    a = _start_worker(env, logs[0])
    b = _start_worker(env, logs[1])
    try:
        # Kill worker A in the middle of a job (frames analysed, not finished).
        def a_mid_job():
            for vid in ids:
                v = _video(settings, vid)
                if (v.status is JobStatus.PROCESSING and v.worker == f"{a.pid}@{socket.gethostname()}"
                        and (v.frames_done or 0) > 0):
                    return v
            return None

        victim = wait_for(a_mid_job, timeout=120, every=0.05, what="worker A to be mid-job")
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        assert victim.progress < 100

        def all_done():
            vs = [_video(settings, vid) for vid in ids]
            return vs if all(v.status not in workbench.ACTIVE for v in vs) else None

        videos = wait_for(all_done, timeout=150, every=0.5, what="all six jobs to end")
    finally:
        _stop(a, signal.SIGKILL)
        rc_b = _stop(b)
        client.shutdown()
    log_text = "\n".join(p.read_text()[-3000:] for p in logs)
    for v in videos:
        assert v.status is JobStatus.COMPLETED, (v.video_id, v.error_message, log_text)
        assert v.progress == 100
    assert rc_b == 0, log_text  # SIGTERM: B finished cleanly
    by_id = {v.video_id: v for v in videos}
    assert by_id[victim.video_id].attempts == 2, "the killed job was run again"
    assert by_id[victim.video_id].worker.startswith(f"{b.pid}@")
    assert all(v.attempts == 1 for v in videos if v.video_id != victim.video_id)
    # Each video analysed to completion exactly once (the killed attempt never completed).
    assert _completions(*logs) == {vid: 1 for vid in ids}, log_text
    from services import database

    with database.pooled(settings) as conn:
        assert conn.execute("SELECT count(*) FROM db_video WHERE analysis_status = "
                            "'processing'").fetchone()[0] == 0
        assert {r[0] for r in conn.execute(
            "SELECT status FROM procrastinate_jobs").fetchall()} == {"succeeded"}

    # The same events as a single run of each clip (no half-written or doubled events).
    from pipeline.backends.registry import load_backends
    from pipeline.run import run_video

    backends = load_backends(settings)
    for vid, path in zip(ids, paths):
        single = run_video(path, tmp_path / f"single_{vid}", settings, backends=backends)
        assert by_id[vid].n_events == len(single.events), path.name


def test_cancel_reaches_the_worker_process_running_the_job_within_5_s(db_settings, tmp_path):
    from dataclasses import replace

    (clip,) = link_clips(tmp_path / "lib", "clips/pedestrians/vtest_first20s.mp4")
    settings = replace(db_settings, proposals="none")
    client = jobs.JobClient(settings)
    vid = client.submit(str(clip), jobs.AnalysisOptions(frame_skip=2))
    log = tmp_path / "worker.log"
    w = _start_worker(_env(settings.data_dir, settings.database_url), log)
    try:
        wait_for(lambda: (lambda v: v.status is JobStatus.PROCESSING and (v.frames_done or 0) > 0)(
            _video(settings, vid)), timeout=120, every=0.1, what="the job to run")
        t0 = time.monotonic()
        assert client.cancel(vid)
        wait_for(lambda: _video(settings, vid).status is JobStatus.CANCELLED, timeout=10,
                 every=0.05, what="the worker to stop the job")
        took = time.monotonic() - t0
        print(f"cancel took {took:.2f} s")
        assert took < 5.0, f"cancel took {took:.1f} s"
        v = _video(settings, vid)
        assert v.n_events == 0 and v.progress < 100
        assert v.worker.startswith(f"{w.pid}@")
        assert w.poll() is None  # the worker goes on with the next job
    finally:
        _stop(w)
        client.shutdown()
    assert "cancelled" in log.read_text()


def test_processes_share_the_embedded_database_and_it_stays_up_while_one_needs_it(tmp_path):
    """No DATABASE_URL: a worker starts the embedded server; the CLI joins it and exits, the
    server stays up for the worker, and stops when the last process is gone."""
    (clip,) = link_clips(tmp_path / "lib", "clips/intel/people-detection.mp4")
    data = Path(tempfile.mkdtemp(prefix="va-test-shared-"))  # the server runs as another user
    env = _env(data, None)
    log = tmp_path / "worker.log"
    w = _start_worker(env, log)
    try:
        wait_for(lambda: (data / "pg" / "postmaster.pid").exists(), timeout=60,
                 what="the worker to start the embedded server")
        out = subprocess.run([sys.executable, "-m", "pipeline", "enqueue", "--input", str(clip)],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        vid = int(out.stdout.split()[-1])

        def done():
            r = subprocess.run([sys.executable, "-m", "pipeline", "jobs", "--json"], cwd=REPO,
                               env=env, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            rows = {j["id"]: j for j in map(json.loads, r.stdout.splitlines())}
            return rows[vid] if rows[vid]["status"] not in ("queued", "processing") else None

        row = wait_for(done, timeout=120, every=1.0, what="the job to finish")
        assert row["status"] == "completed" and row["attempts"] == 1
        assert row["worker"].startswith(f"{w.pid}@") and row["progress"] == 100
        assert w.poll() is None
    finally:
        assert _stop(w) == 0, log.read_text()[-2000:]
    try:
        wait_for(lambda: not (data / "pg" / "postmaster.pid").exists(), timeout=30,
                 what="the embedded server to stop with its last process")
    finally:
        shutil.rmtree(data, ignore_errors=True)
