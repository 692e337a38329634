"""Safe network defaults (issue 20): a fresh ``streamlit run app.py`` with the repository's
``.streamlit/config.toml`` and no address flag listens on 127.0.0.1 only, with XSRF protection
on. The server is started for real on a free port and its listening sockets are read with psutil
(the kernel's table, as /proc/net/tcp and tcp6 hold it)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request

import psutil
import pytest

from app_support import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_config_binds_to_loopback_and_keeps_xsrf_on():
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"].get("enableXsrfProtection", True) is True
    assert cfg["server"].get("enableCORS", True) is True


def _listening(pid: int, port: int) -> list[str]:
    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    out = []
    for p in procs:
        for c in p.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port:
                out.append(c.laddr.ip)
    return out


def test_a_fresh_streamlit_run_listens_on_loopback_only(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VA_", "STREAMLIT_", "DATABASE_URL", "POSTGRES_"))}
    env.update(HOME=str(tmp_path), VA_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        # The repository's config only: no --server.address, no user config (HOME is empty).
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py",
                                 "--server.port", str(port)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on 127.0.0.1:{port}:\n"
                            f"{log.read_text()[-2000:]}")
            time.sleep(0.3)
        addresses = _listening(proc.pid, port)
        assert addresses == ["127.0.0.1"], addresses  # not 0.0.0.0, not ::, nothing else
    finally:
        from app_support import stop_process

        stop_process(proc)
