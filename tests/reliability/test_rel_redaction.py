"""Defect 3 (secret shown): a connection-string password never reaches stderr, the logs or the
app's "cannot start" page, in any of libpq's forms."""
from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from conftest import REPO
from db.connection import RedactingFilter, redact

SECRET = "S3cr3tPw"
FORMS = [
    f"host=127.0.0.1 port=1 user=u password={SECRET} dbname=db",
    f"host=127.0.0.1 port=1 user=u password = '{SECRET} x' dbname=db",
    f"postgresql://u@127.0.0.1:1/db?password={SECRET}",
    f"postgresql://u@127.0.0.1:1/db?sslmode=disable&password={SECRET}&connect_timeout=2",
    f"postgresql://u:{SECRET}@127.0.0.1:1/db",
    f"host=127.0.0.1 port=1 password={SECRET} dbname",  # unparseable: libpq quotes fragments
]


@pytest.mark.parametrize("url", FORMS)
def test_redact_every_form(url):
    assert SECRET not in redact(url)
    assert SECRET not in redact(f"cannot reach PostgreSQL at {url} (refused)")


def test_redact_keeps_the_rest():
    assert redact("host=h port=5 user=u password=x dbname=d") == \
        "host=h port=5 user=u password=*** dbname=d"
    assert redact("postgresql://u:pw@h:5/d?sslmode=require") == "postgresql://u:***@h:5/d?sslmode=require"
    assert redact("input_tokens=3 frames=20") == "input_tokens=3 frames=20"


@pytest.mark.parametrize("url", FORMS)
def test_cli_error_hides_the_password(url, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "DATABASE_URL": url, "VA_DATA_DIR": str(tmp_path / "var")}
    p = subprocess.run([sys.executable, "-m", "pipeline", "search", "a person falls"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    assert SECRET not in p.stderr + p.stdout
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr[-2000:]


def test_log_records_are_redacted():
    rec = logging.LogRecord("psycopg.pool", logging.WARNING, __file__, 1,
                            "error connecting with %s", (FORMS[0],), None)
    assert RedactingFilter().filter(rec) and SECRET not in rec.getMessage()


def test_cannot_start_page_hides_the_password(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DATABASE_URL", FORMS[2])
    monkeypatch.setenv("VA_DATA_DIR", str(tmp_path / "var"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    shown = " ".join(e.value for e in at.error)
    assert "cannot start" in shown and SECRET not in shown
