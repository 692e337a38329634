"""Defect 5 (hang): a frozen database (every process of the embedded server stopped with
SIGSTOP mid-run) fails the job within about a minute with a clear error, and Ctrl-C then does not
hang in the shutdown. Uses its own embedded server: freezing the session's would stall other
tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import conftest
from conftest import REPO
from db import connection
from rel_support import FIGHT
from services.errors import DatabaseUnavailable
from settings import Settings

pytestmark = [pytest.mark.db, pytest.mark.slow]


@pytest.fixture
def own_server():
    import shutil

    import psutil

    base = Path(tempfile.mkdtemp(prefix="va-frozen-pg-"))
    pgdata = base / "data"
    url = connection.start_embedded(pgdata, cleanup_mode="delete")
    info = connection._embedded[pgdata.resolve()]._postmaster_info
    post = psutil.Process(info.process.pid)
    state = {"frozen": []}

    def freeze():
        procs = [post] + post.children(recursive=True)
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        state["frozen"] = procs

    def thaw():
        for p in state["frozen"]:
            try:
                p.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass
        state["frozen"] = []

    try:
        yield url, freeze, thaw, base
    finally:
        thaw()
        connection.close_pools()
        connection.stop_embedded(pgdata)
        shutil.rmtree(base, ignore_errors=True)


def test_frozen_database_fails_the_job_within_a_minute(own_server, tmp_path):
    from services.jobs.ingest import analyze_source

    url, freeze, thaw, _ = own_server
    s = Settings(database_url=url, data_dir=tmp_path / "var", proposals="none")
    frozen_at = []

    def on_progress(p):
        if not frozen_at and p.stage == "analysing frames" and p.fraction > 0.2:
            freeze()
            frozen_at.append(time.monotonic())

    with pytest.raises(DatabaseUnavailable, match="did not answer within|lost the database") as err:
        analyze_source(str(conftest.testdata_path(FIGHT)), s, on_progress=on_progress)
    waited = time.monotonic() - frozen_at[0]
    print(f"job failed {waited:.1f} s after the freeze")
    assert waited < 60, waited
    assert "\n" not in str(err.value)
    thaw()


def test_ctrl_c_with_a_frozen_database_does_not_hang(own_server, tmp_path):
    url, freeze, thaw, _ = own_server
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VA_", "POSTGRES_"))}
    env.update({"DATABASE_URL": url, "VA_DATA_DIR": str(tmp_path / "var"), "HF_HUB_OFFLINE": "1",
                "VA_PROPOSALS": "none", "OMP_NUM_THREADS": "1"})
    clip = conftest.testdata_path("clips/falls/Fall01.mp4")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--input", str(clip)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 180
        buf = ""
        while "analysing frames" not in buf and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            buf += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        freeze()
        time.sleep(2)
        t = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, errs = proc.communicate(timeout=90)
        took = time.monotonic() - t
    finally:
        if proc.poll() is None:
            proc.kill()
        thaw()
    print(f"Ctrl-C exit {took:.1f} s after SIGINT")
    assert took < 45, (took, errs[-1500:])
    assert proc.returncode in (2, 130), errs[-1500:]
    assert "nothing was written" not in errs
