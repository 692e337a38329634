"""Process-wide set-up of the workbench: the settings, the database opened and migrated, and the
job client with, by default, a local worker (``app_pages/_resources.py`` holds them in
``st.cache_resource``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from services import database
from services.jobs.jobs import JobClient, make_client
from settings import Settings

log = logging.getLogger("va.workbench")


@dataclass(frozen=True)
class Services:
    """What the pages share in a process: the settings, with the database opened and migrated
    (the pool and the storage client are cached per configuration by their own modules)."""

    settings: Settings


def load_settings() -> Settings:
    from db.connection import install_log_redaction

    install_log_redaction()  # no connection-string password in the app's logs
    return Settings.from_env()


def settings_key(settings: Settings) -> str:
    """A stable cache key for ``st.cache_resource`` (Settings holds Paths, not hashed by it)."""
    return repr(settings)


def open_services(settings: Settings) -> Services:
    """Open the database (embedded PostgreSQL when none is configured) and migrate it; jobs left
    'processing' by a worker that is gone are marked failed (``mark_stale_jobs``)."""
    database.get_pool(settings)
    stale = database.mark_stale_jobs(settings)
    if stale:
        log.warning("marked %d stale job(s) failed: %s", len(stale), stale)
    return Services(settings)


def make_runner(services: Services) -> JobClient:
    """This process's job client: it enqueues and cancels; with ``VA_WORKERS=local`` (the
    default) it also runs a worker in this process (``services.jobs.worker``). Queued jobs outlive the
    app: they wait in the database for any worker."""
    client = make_client(services.settings)
    _RUNNERS.append(client)
    return client


_RUNNERS: list[JobClient] = []


def shutdown_runners(timeout: float = 30.0) -> None:
    """Stop the local workers this process started (tests; the app's process exit)."""
    while _RUNNERS:
        _RUNNERS.pop().shutdown(timeout)
