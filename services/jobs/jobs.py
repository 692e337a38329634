"""Analysis jobs on procrastinate, a PostgreSQL-backed distributed task queue, in the product's
own database (embedded or ``DATABASE_URL``).

- The app and the CLI only **enqueue** and **read status** (``JobClient``): a video's row in
  ``db_video`` goes 'queued', and a procrastinate job ``analyse_video(video_id, source, name,
  options)`` is deferred with the video's queueing lock (at most one waiting job per video) and
  lock (one running job per video).
- **Workers** (``python -m pipeline worker`` on any machine that reaches the database and the
  storage, or the app's own local worker, ``VA_WORKERS=local``, the default) run the job through
  ``services.jobs.ingest.analyze_source``, which writes status, progress, stage and worker into
  ``db_video``; the worker writes the attempt number (``services.jobs.worker``). A worker keeps loaded
  models for the next job with the same choices (one set per concurrent job).
- **Cancel** asks procrastinate to abort: a waiting job is cancelled at once; a running one sees
  ``should_abort()`` within about a second (LISTEN/NOTIFY, polled every second as a fallback)
  on whichever worker runs it, and stops at the next frame.
- **A worker killed mid-job** stops heartbeating; every worker (and the app) runs
  ``recover_stalled`` every few seconds: the job goes back to the queue for another worker, or
  fails after ``VA_MAX_ATTEMPTS`` started runs, and ``db_video`` says which. Nothing stays
  'processing'.
- ``VA_EXECUTOR=batch`` submits each job to AWS Batch instead (``services.jobs.batch``).

The database side is ``services.jobs.job_store.DbJobStore`` (SQL in ``db.jobs``).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Protocol

from pipeline.records import JobStatus
from services.errors import JobConflict, ServiceError

log = logging.getLogger("va.jobs")

TASK_NAME = "analyse_video"
DEFAULT_QUEUE = "analysis"
APP_RECOVER_EVERY_S = 5.0  # the same, from the app's job list, at most this often
OUTAGE_RETRY_WAIT_S = 3  # a job stopped by a database outage runs again after this


@dataclass(frozen=True)
class AnalysisOptions:
    """What the analyst chose on the Analyze page; ``None`` keeps the setting's value."""

    frame_skip: int | None = None
    sample_fps: float | None = None  # sampled frames per second; frame_skip wins when set
    device: str | None = None
    detector: str | None = None
    attributes: str | None = None
    orientation: str | None = None
    action: str | None = None
    scene: str | None = None

    def apply(self, settings):
        return settings.with_overrides(**asdict(self))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "AnalysisOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (d or {}).items() if k in known})


@dataclass(frozen=True)
class QueueSnapshot:
    """What this process knows beyond the database: whether it runs a local worker."""

    local_worker: bool
    worker_alive: bool


# --- the database side, as the client and the executor see it ---------------------------------


class JobStore(Protocol):
    """The writes of the queue's side to ``db_video`` (the job writes the rest itself)."""

    def create_pending(self, source: str, name: str, video_id: int | None) -> int: ...

    def is_active(self, video_id: int) -> bool: ...

    def mark_queued(self, video_id: int) -> None: ...

    def set_queue_job(self, video_id: int, job_id: int | None = None,
                      batch_job_id: str | None = None) -> None: ...

    def queue_job_of(self, video_id: int) -> tuple[int | None, str | None]: ...

    def start_attempt(self, video_id: int, attempt: int, job_id: int | None,
                      stage: str | None = None, eta_s: float | None = None) -> None: ...

    def set_status(self, video_id: int, status: JobStatus, error: str | None = None) -> None: ...

    def finish_if_active(self, video_id: int, status: JobStatus, error: str | None) -> None: ...


# --- the queue (procrastinate) ------------------------------------------------------------------


class JobQueue(Protocol):
    """Where jobs wait for workers: procrastinate (``ProcrastinateQueue``) or AWS Batch."""

    def defer(self, video_id: int, source: str, name: str, options: AnalysisOptions,
              queue: str | None = None) -> int | str: ...

    def cancel(self, video_id: int, job_id: int | str) -> str:
        """'cancelled' (it had not started), 'aborting' (its worker will stop), 'too late' (it
        has stored its result) or 'unknown'."""


def _conninfo(settings) -> str:
    from services import database

    database.get_pool(settings)  # reachable and migrated (procrastinate's schema included)
    from db.connection import database_url

    return database_url(settings)


def _connector(settings, max_size: int):
    from services.jobs.outage import ResilientConnector  # a worker waits out a database outage

    return ResilientConnector(
        conninfo=_conninfo(settings), min_size=1, max_size=max_size,
        kwargs={"connect_timeout": 5, "application_name": "va-jobs", "keepalives": 1,
                "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3})


def make_app(settings, run: Callable[..., Any] | None = None, max_size: int = 4):
    """A procrastinate ``App`` on the product's database with the ``analyse_video`` task. ``run``
    is the task's body on a worker (``JobExecutor.run``); clients (enqueue, cancel) pass none."""
    import procrastinate

    from services.jobs.outage import DatabaseOutage

    app = procrastinate.App(connector=_connector(settings, max_size))
    # A job stopped by a database outage runs again while attempts remain (VA_MAX_ATTEMPTS runs
    # started in all, as for a killed worker); any other failure is final.
    retry = procrastinate.RetryStrategy(
        max_attempts=settings.max_attempts - 1, wait=OUTAGE_RETRY_WAIT_S,
        retry_exceptions={DatabaseOutage}) if settings.max_attempts > 1 else None

    @app.task(name=TASK_NAME, queue=DEFAULT_QUEUE, pass_context=True, retry=retry)
    def analyse_video(context, video_id: int, source: str, name: str,
                      options: dict | None = None) -> str:
        if run is None:
            raise RuntimeError("this process only enqueues jobs; run python -m pipeline worker")
        return run(context, video_id=video_id, source=source, name=name, options=options)

    return app


class ProcrastinateQueue:
    """``JobQueue`` on procrastinate (synchronous client; opened on first use)."""

    def __init__(self, settings):
        self.settings = settings
        self._app = None
        self._lock = threading.Lock()

    def _opened(self):
        with self._lock:
            if self._app is None:
                app = make_app(self.settings, max_size=2)
                app.open()
                self._app = app
            return self._app

    def defer(self, video_id: int, source: str, name: str, options: AnalysisOptions,
              queue: str | None = None) -> int:
        from db.jobs import lock_name
        from procrastinate.exceptions import AlreadyEnqueued

        app = self._opened()
        task = app.tasks[TASK_NAME]
        conf: dict[str, Any] = {"lock": lock_name(video_id), "queueing_lock": lock_name(video_id)}
        if queue:
            conf["queue"] = queue
        try:
            return task.configure(**conf).defer(video_id=int(video_id), source=source, name=name,
                                                options=options.to_json())
        except AlreadyEnqueued:
            raise JobConflict(f"{name} is already queued; wait for it to finish or cancel it "
                              f"first") from None

    def cancel(self, video_id: int, job_id: int | str) -> str:
        """Under the video's row lock, which the job's final store takes too: a running job
        either sees the request before it stores its result, or has stored it ('too late')."""
        from db import jobs
        from db.attempts import JobAttempt
        from services import database

        app = self._opened()
        with database.pooled(self.settings) as conn, conn.transaction():
            # The job's row, then the video's: the order in which the recovery takes them.
            state = jobs.queue_job_state(conn, job_id, lock=True)
            status = JobAttempt(conn, video_id).lock_for_cancel()
            if status is JobStatus.COMPLETED and state == "doing":
                return "too late"
            if not app.job_manager.cancel_job_by_id(int(job_id), abort=True, connection=conn):
                return "unknown"
            state = jobs.queue_job_state(conn, job_id)
        return "cancelled" if state == "cancelled" else "aborting"

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


class NoQueue:
    """For a client that only reads and recovers (the app's job list, ``pipeline jobs``)."""

    def defer(self, *a, **k):
        raise ServiceError("this client only reads jobs")

    def cancel(self, *a, **k) -> str:
        return "unknown"


def queue_for(settings) -> JobQueue:
    if settings.executor == "batch":
        from services.jobs.batch import BatchQueue

        return BatchQueue(settings)
    return ProcrastinateQueue(settings)


# --- the client: what the app and the CLI use --------------------------------------------------


class JobClient:
    """Enqueue, cancel and read jobs. With ``local_worker`` (the app with ``VA_WORKERS=local``)
    it also runs a ``LocalWorker`` in this process, so one command does everything."""

    def __init__(self, settings, *, queue: JobQueue | None = None, store: JobStore | None = None,
                 local_worker: Any = None):
        self.settings = settings
        self.queue = queue if queue is not None else queue_for(settings)
        if store is None:
            from services.jobs.job_store import DbJobStore

            store = DbJobStore(settings)
        self.store = store
        self.local_worker = local_worker
        self._last_recover = 0.0
        self._submitted: list[int] = []

    def submit(self, source: str, options: AnalysisOptions | None = None, *,
               name: str | None = None, video_id: int | None = None,
               queue: str | None = None) -> int:
        """Queue an analysis; returns its ``video_id``. The row is 'queued' when this returns."""
        options = options or AnalysisOptions()
        options.apply(self.settings)  # unknown values fail here, in the caller
        name = name or Path(source.split("?", 1)[0]).name
        vid = self.store.create_pending(source, name, video_id)
        if self.store.is_active(vid):
            raise JobConflict(f"{name} (video {vid}) is already queued or running; wait for it "
                              f"to finish or cancel it first")
        self.store.mark_queued(vid)
        try:
            job_id = self.queue.defer(vid, _normalised(source), name, options, queue)
        except JobConflict:
            raise
        except Exception as e:
            self.store.set_status(vid, JobStatus.FAILED, f"could not queue the analysis: {e}")
            raise
        if isinstance(job_id, str):
            self.store.set_queue_job(vid, batch_job_id=job_id)
        else:
            self.store.set_queue_job(vid, job_id=job_id)
        log.info("queued video %s (%s) as job %s", vid, source, job_id)
        self._submitted.append(vid)
        return vid

    def is_active(self, video_id: int) -> bool:
        """Queued or running (by any worker, or by a CLI run)."""
        return self.store.is_active(video_id)

    def wait_idle(self, timeout: float | None = None, video_ids=None, every_s: float = 0.25) -> bool:
        """Block until the jobs this client queued (or ``video_ids``) are no longer queued or
        running (tests, ``pipeline enqueue --wait``). False on timeout."""
        ids = list(self._submitted if video_ids is None else video_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.recover()
            ids = [v for v in ids if self.store.is_active(v)]
            if not ids:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(every_s)

    def cancel(self, video_id: int) -> bool:
        """Stop a running job (on whichever worker runs it) or drop a waiting one. False when
        the video has no queued or running job; ``JobConflict`` ('too late to cancel') when the
        running job has already stored its result."""
        job_id, batch_id = self.store.queue_job_of(video_id)
        if batch_id is not None:
            outcome = self.queue.cancel(video_id, batch_id) if self.settings.executor == "batch" \
                else "unknown"
        else:
            active = getattr(self.store, "active_queue_job", None)
            job_id = active(video_id) if active is not None else job_id
            if job_id is None:
                return False
            outcome = self.queue.cancel(video_id, job_id)
        if outcome == "too late":
            raise JobConflict(f"too late to cancel: video {video_id}'s analysis has already "
                              f"stored its result")
        if outcome == "cancelled":
            self.store.finish_if_active(video_id, JobStatus.CANCELLED,
                                        "cancelled before it started")
        log.info("cancel of video %s: %s", video_id, outcome)
        return outcome != "unknown"

    def recover(self, force: bool = False) -> None:
        """Look for jobs whose worker died (throttled; the app calls it with every job list)."""
        now = time.monotonic()
        if not force and now - self._last_recover < APP_RECOVER_EVERY_S:
            return
        self._last_recover = now
        rec = getattr(self.store, "recover_stalled", None)
        if rec is not None:
            try:
                rec()
            except Exception as e:  # noqa: BLE001 - a read page must not fail on the clean-up
                log.warning("stalled-job recovery failed: %s", e)

    def snapshot(self) -> QueueSnapshot:
        w = self.local_worker
        return QueueSnapshot(local_worker=w is not None,
                             worker_alive=w is not None and w.is_alive())

    def shutdown(self, timeout: float = 30.0) -> None:
        if self.local_worker is not None:
            self.local_worker.stop(timeout)
        close = getattr(self.queue, "close", None)
        if close is not None:
            close()


def _normalised(source: str) -> str:
    from services.jobs.ingest import normalise_source

    return normalise_source(source)


def make_client(settings, start_worker: bool | None = None) -> JobClient:
    """The app's job client; with ``VA_WORKERS=local`` (the default, queue executor) it starts a
    worker in this process, so ``streamlit run app.py`` alone analyses videos."""
    if start_worker is None:
        start_worker = settings.workers == "local" and settings.executor == "queue"
    worker = None
    if start_worker:
        from services.jobs.worker import LocalWorker

        worker = LocalWorker(settings).start()
    return JobClient(settings, local_worker=worker)
