"""The service layer's door to the database: the shared pool, dedicated connections and the
start-up clean-up, with database errors raised as ``services.errors.DatabaseUnavailable``."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from db import attempts, connection
from services.errors import DatabaseUnavailable

log = logging.getLogger("va.services.database")


def get_pool(settings):
    """The shared psycopg pool (pgvector registered, schema migrated); ``DatabaseUnavailable``
    naming the setting when it cannot be opened."""
    return connection.get_pool(settings)


def connect(settings):
    """A dedicated autocommit connection (jobs hold their per-video lock on one)."""
    return connection.connect(settings)


@contextmanager
def pooled(settings):
    """``with pooled(settings) as conn:`` a pool connection; operational errors become one-line
    ``DatabaseUnavailable`` errors naming the setting."""
    import psycopg

    pool = get_pool(settings)
    try:
        with pool.connection() as conn:
            yield conn
    except psycopg.OperationalError as e:
        raise DatabaseUnavailable(
            f"lost the database connection ({' '.join(str(e).split())[:200]}); check that "
            f"PostgreSQL is running (DATABASE_URL / POSTGRES_HOST) and try again") from e


def mark_stale_jobs(settings) -> list[int]:
    """At start-up: videos left 'processing' by a worker that is gone are marked failed with a
    reason. Returns their ids. A live worker (this or another process or host) holds its video's
    advisory lock, so its job is left alone."""
    from services.jobs import pending_ends

    with pooled(settings) as conn:
        kept = pending_ends.record(settings, conn)  # ends with their own reason first
        return kept + attempts.mark_stale_jobs(conn)
