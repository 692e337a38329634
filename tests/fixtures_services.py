"""Fixtures that start services (PostgreSQL with pgvector, moto S3). Owned by the db work.

* ``pg_url``: one PostgreSQL per test session. ``VA_TEST_DATABASE_URL`` (a server CI started)
  when set; otherwise an embedded PostgreSQL 18 + pgvector in a temporary folder, stopped and
  deleted at the end of the session.
* ``db_settings``: ``Settings`` pointing at it, with a fresh ``data_dir`` and empty tables.
* ``s3_endpoint``: moto's S3 server on 127.0.0.1 (a free port), with test credentials in the
  environment for boto3; ``s3_settings`` adds two fresh buckets.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory):
    from db import connection

    url = os.environ.get("VA_TEST_DATABASE_URL")  # noqa: test code may read the environment
    if url:
        yield url
        connection.close_pools()
        return
    # Not under pytest's basetemp: pytest keeps that 0700, and the server runs as another user.
    base = Path(tempfile.mkdtemp(prefix="va-test-pg-"))
    pgdata = base / "data"
    url = connection.start_embedded(pgdata, cleanup_mode="delete")
    try:
        yield url
    finally:
        connection.close_pools()
        connection.stop_embedded(pgdata)
        shutil.rmtree(base, ignore_errors=True)


TABLES = ("event_embedding", "db_track", "db_event", "db_video", "embedding_model",
          # accounts and sessions (migration 0007); the audit trail is append-only and stays
          "app_session", "app_user", "sign_in_throttle",
          # the job queue (procrastinate's tables, migration 0005b)
          "procrastinate_events", "procrastinate_jobs", "procrastinate_workers",
          "procrastinate_periodic_defers")


def reset_database(url: str) -> None:
    """Empty every table (keeps the schema). HNSW indexes of earlier tests' models are dropped."""
    from db import connection

    conn = connection.connect_url(url)
    try:
        connection.migrate(conn)
        for (name,) in conn.execute("SELECT index_name FROM embedding_model").fetchall():
            conn.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.execute("TRUNCATE " + ", ".join(TABLES) + " RESTART IDENTITY CASCADE")
    finally:
        conn.close()


@pytest.fixture
def db_settings(pg_url, tmp_path):
    from settings import Settings

    reset_database(pg_url)
    return Settings(database_url=pg_url, data_dir=tmp_path / "var")


@pytest.fixture
def db_pool(db_settings):
    from db import connection

    return connection.get_pool(db_settings)


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(k, raising=False)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        mp.undo()


@pytest.fixture
def s3_settings(s3_endpoint, db_settings):
    """Settings with two fresh buckets on the moto server."""
    import boto3

    videos, highlights = f"videos-{uuid.uuid4().hex[:10]}", f"highlights-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=videos)
    s3.create_bucket(Bucket=highlights)
    return db_settings.with_overrides(s3_bucket_videos=videos, s3_bucket_highlights=highlights,
                                      s3_endpoint_url=s3_endpoint, aws_region="us-east-1")
