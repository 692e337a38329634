"""A worker rides out a database outage (the server killed, restarted, a network blip): every
call procrastinate makes (fetch a job, heartbeat, finish or retry a job, listen for new jobs) is
retried with a capped exponential backoff while the database is unreachable, and logged once per
outage and when it is back. Only connection-level errors (``psycopg.OperationalError``, the pool's
``PoolTimeout`` among them) are retried; any other error goes through as before."""
from __future__ import annotations

import asyncio
import logging
import time

from procrastinate import PsycopgConnector
from procrastinate.exceptions import ConnectorException

log = logging.getLogger("va.jobs")

BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0


def is_outage(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database could not be reached (not that a query was wrong)."""
    import psycopg

    from db.errors import DatabaseUnavailable

    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (psycopg.OperationalError, DatabaseUnavailable)):
            return True
        if isinstance(exc, ConnectorException) and exc.__cause__ is None:
            return False
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class DatabaseOutage(Exception):
    """A job stopped because the database went away; procrastinate retries it (the task's
    retry strategy names this class) while the attempts last (``VA_MAX_ATTEMPTS``)."""


class Backoff:
    """Delays 0.5, 1, 2, 4, 8, 10, 10, ... s; ``failed`` logs the first failure of an outage (and
    then every minute), ``ok`` logs its end."""

    def __init__(self, what: str):
        self.what = what
        self.since: float | None = None
        self.delay = BACKOFF_FIRST_S
        self.logged_at = 0.0

    def failed(self, exc: BaseException) -> float:
        from db.redaction import one_line

        now = time.monotonic()
        if self.since is None:
            self.since = now
        if self.logged_at == 0.0 or now - self.logged_at >= 60.0:
            log.warning("the database is unreachable (%s: %s); %s retries with backoff (for "
                        "%.0f s so far)", self.what, one_line(exc, 200), self.what,
                        now - self.since)
            self.logged_at = now
        delay, self.delay = self.delay, min(self.delay * 2, BACKOFF_MAX_S)
        return delay

    def ok(self) -> None:
        if self.since is not None:
            log.warning("the database is back after %.1f s (%s)", time.monotonic() - self.since,
                        self.what)
        self.since, self.delay, self.logged_at = None, BACKOFF_FIRST_S, 0.0


class ResilientConnector(PsycopgConnector):
    """procrastinate's psycopg connector whose async calls wait out a database outage, until
    ``stopping()`` says the worker is shutting down (then the error goes through)."""

    stopping = staticmethod(lambda: False)

    async def _retrying(self, what: str, call, *args, **kwargs):
        backoff = Backoff(what)
        while True:
            try:
                result = await call(*args, **kwargs)
            except ConnectorException as e:
                if not is_outage(e) or self.stopping():
                    raise
                await asyncio.sleep(backoff.failed(e))
                continue
            backoff.ok()
            return result

    async def execute_query_async(self, query, **arguments):
        return await self._retrying("the job queue", super().execute_query_async, query,
                                    **arguments)

    async def execute_query_one_async(self, query, **arguments):
        return await self._retrying("the job queue", super().execute_query_one_async, query,
                                    **arguments)

    async def execute_query_all_async(self, query, **arguments):
        return await self._retrying("the job queue", super().execute_query_all_async, query,
                                    **arguments)

    async def listen_notify(self, on_notification, channels) -> None:
        """LISTEN for new jobs; a lost listening connection is reopened (jobs are also polled
        every few seconds, so none is missed meanwhile)."""
        channels = list(channels)
        backoff = Backoff("the job listener")
        while True:
            try:
                await super().listen_notify(on_notification=on_notification, channels=channels)
            except ConnectorException as e:
                if not is_outage(e):
                    raise
                await asyncio.sleep(backoff.failed(e))
