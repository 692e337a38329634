"""Process-wide set-up of the workbench: the settings, the database opened and migrated, and the
single analysis worker (``app_pages/_resources.py`` holds them in ``st.cache_resource``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from services import database
from services.job_store import DbJobStore
from services.jobs import JobRunner
from settings import Settings

log = logging.getLogger("va.workbench")


@dataclass(frozen=True)
class Services:
    """What the pages share in a process: the settings, with the database opened and migrated
    (the pool and the storage client are cached per configuration by their own modules)."""

    settings: Settings


def load_settings() -> Settings:
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


def make_runner(services: Services) -> JobRunner:
    """The single analysis worker of this process (it loads and keeps the models). Queued
    ('pending') jobs of an earlier run of the app are marked failed first: their queue lived in
    that process."""
    from pipeline.backends.registry import load_backends
    from services.ingest import analyze_source

    store = DbJobStore(services.settings)
    store.fail_orphaned_pending()
    runner = JobRunner(services.settings, analyze=analyze_source, store=store,
                       backend_loader=load_backends)
    _RUNNERS.append(runner)
    return runner


_RUNNERS: list[JobRunner] = []


def shutdown_runners(timeout: float = 30.0) -> None:
    """Cancel and stop every runner this process made (tests; the app's process exit)."""
    while _RUNNERS:
        _RUNNERS.pop().shutdown(timeout)
