"""Issue 21, item 4: a password with ``/`` or ``@`` in it (and every other form libpq accepts) is
redacted by real parsers, up to the last ``@`` of a URL, in messages, logs and the CLI's error."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from db.connection import redact

# (connection string, the secret or its fragments that must not show, what must stay readable)
FORMS = [
    ("postgresql://alice:S3cret/PW@127.0.0.1:1/db", "S3cret", "127.0.0.1:1/db"),
    ("postgresql://alice:S3cret@PW@127.0.0.1:1/db", ("S3cret", "PW@"), "@127.0.0.1:1/db"),
    ("postgresql://alice:a/b@c?d#e@127.0.0.1:1/db", ("a/b", "c?d", "d#e"), "@127.0.0.1:1/db"),
    ("postgresql://alice:S3cret%2FPW%40x@127.0.0.1:1/db", "S3cret", "alice:***@"),
    ("postgres://alice:S3cretPW@[::1]:5432/db?sslmode=disable", "S3cretPW", "sslmode=disable"),
    ("host=127.0.0.1 port=1 user=alice password=S3cretPW dbname=db", "S3cretPW", "dbname=db"),
    ("host=127.0.0.1 password = 'S3cret PW\\'x' dbname=db", "S3cret", "dbname=db"),
    ("host=127.0.0.1 password='S3cret/PW@h' dbname=db", "S3cret", "host=127.0.0.1"),
    ("postgresql://alice@127.0.0.1:1/db?password=S3cretPW&connect_timeout=2", "S3cretPW",
     "connect_timeout=2"),
    ("postgresql://alice@127.0.0.1:1/db?sslpassword=S3cretPW", "S3cretPW", "alice@127.0.0.1"),
    ("postgresql://alice@127.0.0.1:1/db", None, "postgresql://alice@127.0.0.1:1/db"),
    ("host=127.0.0.1 user=alice dbname=db", None, "host=127.0.0.1 user=alice dbname=db"),
]


@pytest.mark.parametrize("url,secret,kept", FORMS)
def test_redaction_table(url, secret, kept):
    for text in (url, f"cannot reach PostgreSQL at {url} (refused); check it"):
        out = redact(text)
        if secret is not None:
            for fragment in (secret,) if isinstance(secret, str) else secret:
                assert fragment not in out, out
            assert "***" in out
        assert kept in out, out
    if secret is None:
        assert redact(url) == url


@pytest.mark.parametrize("url", [FORMS[0][0], FORMS[1][0], FORMS[2][0]])
def test_cli_jobs_hides_a_password_with_slash_or_at(url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VA_", "POSTGRES_"))}
    env.update({"HF_HUB_OFFLINE": "1", "DATABASE_URL": url, "VA_DATA_DIR": str(tmp_path / "v")})
    p = subprocess.run([sys.executable, "-m", "pipeline", "jobs"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    shown = p.stdout + p.stderr
    for fragment in ("S3cret", "PW@", "a/b"):
        assert fragment not in shown, shown
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "percent-encode" in p.stderr
