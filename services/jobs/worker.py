"""The worker side of the job queue: ``JobExecutor`` (one attempt of one video's job, the body
of the ``analyse_video`` task) and ``LocalWorker`` (a procrastinate worker in a background thread,
the app's own, or in the foreground, ``python -m pipeline worker``), which also recovers the jobs
of dead workers every few seconds."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from typing import Any, Callable

from services.errors import DatabaseUnavailable as _DbGone
from pipeline.errors import Cancelled, PipelineError
from pipeline.records import JobStatus
from services.errors import JobConflict, ServiceError
from services.jobs.job_store import DbJobStore
from pipeline.progress import Stage
from services.jobs.jobs import AnalysisOptions, JobStore, make_app

log = logging.getLogger("va.jobs")

HEARTBEAT_S = 2.0  # a worker's heartbeat period (procrastinate_workers.last_heartbeat)
ABORT_POLL_S = 1.0  # fallback poll for cancel requests (NOTIFY usually arrives first)
FETCH_POLL_S = 2.0  # fallback poll for new jobs (NOTIFY usually arrives first)
RECOVER_EVERY_S = 3.0  # how often a worker looks for jobs of dead workers
OUTAGE_RECORD_S = 60.0  # how long a job stopped by an outage tries to record that it is retried


class _BackendPool:
    """Loaded model sets, one per running job, kept for the next job with the same choices."""

    def __init__(self, loader: Callable[[Any], Any] | None):
        self.loader = loader
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._free: list[Any] = []

    @staticmethod
    def key(settings) -> tuple:
        from pipeline.backends.registry import backends_key

        return backends_key(settings)  # every setting the chosen backends read

    def acquire(self, settings) -> tuple[tuple, Any]:
        k = self.key(settings)
        with self._lock:
            if k != self._key:
                self._key, self._free = k, []  # free the old models before loading new ones
            if self._free:
                return k, self._free.pop()
        return k, self.loader(settings) if self.loader is not None else None

    def ready(self, settings) -> bool:
        """Whether a loaded model set for these choices waits (else the next acquire loads)."""
        with self._lock:
            return self.loader is None or (self.key(settings) == self._key and bool(self._free))

    def release(self, k: tuple, backends: Any) -> None:
        with self._lock:
            if k == self._key and backends is not None:
                self._free.append(backends)


class JobExecutor:
    """The body of the ``analyse_video`` task on a worker: one attempt of one video's job.

    ``analyze`` is ``services.jobs.ingest.analyze_source`` in the product; ``store`` writes the attempt
    number and the end state when the job could not. ``device`` (``worker --device cuda``) wins
    over the job's own choice: it is what this machine has."""

    def __init__(self, settings, *, analyze: Callable[..., Any] | None = None,
                 store: JobStore | None = None,
                 backend_loader: Callable[[Any], Any] | None = None, device: str | None = None):
        if analyze is None:
            from services.jobs.ingest import analyze_source as analyze
        self.settings = settings
        self._analyze = analyze
        self.store = store if store is not None else DbJobStore(settings)
        self.device = device
        self.backends = _BackendPool(backend_loader)

    def run(self, context, *, video_id: int, source: str, name: str,
            options: dict | None = None) -> str:
        from procrastinate.exceptions import JobAborted

        job = context.job
        attempt = int(job.attempts or 0) + 1
        settings = AnalysisOptions.from_json(options).apply(self.settings)
        if self.device:
            settings = settings.with_overrides(device=self.device)
        started_at = time.monotonic()
        from services.jobs.estimate import job_estimate_s, probe_local

        info = probe_local(settings, source)  # the job's one probe of a local video
        # the ETA until the run has its own (None for S3: probed after the download)
        estimate_s = None if info is None else job_estimate_s(settings, source, info)
        try:
            self.store.start_attempt(video_id, attempt, job.id,
                                     stage=Stage.STARTING if self.backends.ready(settings)
                                     else Stage.LOADING_MODELS, eta_s=estimate_s)
        except _DbGone as e:
            self._after_outage(video_id, attempt, e)
            raise
        log.info("video %s: attempt %d on %s", video_id, attempt, context.worker_name)
        key, backends = None, None
        try:
            if context.should_abort():
                raise Cancelled("cancelled before it started")
            key, backends = self.backends.acquire(settings)
            kwargs: dict[str, Any] = dict(video_id=video_id, name=name,
                                          should_stop=context.should_abort,
                                          started_at=started_at, estimate_s=estimate_s,
                                          video=info)
            if backends is not None:
                kwargs["backends"] = backends
            outcome = self._analyze(source, settings, **kwargs)
            return getattr(outcome, "summary", lambda: "done")()
        except JobConflict as e:
            # A CLI run (python -m pipeline run) is analysing this video: its state is its own.
            log.warning("video %s not started: %s", video_id, e)
            return f"skipped: {e}"
        except Cancelled as e:
            log.info("video %s cancelled: %s", video_id, e)
            self._safe_finish(video_id, JobStatus.CANCELLED, f"cancelled: {e}")
            raise JobAborted(str(e)) from e
        except (PipelineError, ServiceError) as e:
            if isinstance(e, _DbGone):
                self._after_outage(video_id, attempt, e)  # raises DatabaseOutage: retried
            self._safe_finish(video_id, JobStatus.FAILED, str(e))
            raise
        except Exception as e:  # a bug: record the job failed, the worker goes on
            log.exception("video %s crashed", video_id)
            self._safe_finish(video_id, JobStatus.FAILED,
                              f"internal error ({type(e).__name__}: {e}); see the worker's log")
            raise
        finally:
            if key is not None:
                self.backends.release(key, backends)

    def _after_outage(self, video_id: int, attempt: int, err: BaseException) -> None:
        """The database went away during this attempt: while attempts remain, the video waits
        for the next one (procrastinate retries the job on ``DatabaseOutage``); the last
        attempt fails as any other failure does (the caller records it)."""
        from db.connection import one_line
        from services.jobs.outage import Backoff, DatabaseOutage

        if attempt >= self.settings.max_attempts:
            return
        cause = one_line(err, 300).split("; ", 1)[0]  # without the advice to start it again
        why = (f"the database went away during attempt {attempt} ({cause}); "
               f"the job runs again (attempt {attempt + 1} of {self.settings.max_attempts})")
        log.warning("video %s: %s", video_id, why)
        backoff = Backoff("recording the retry")
        deadline = time.monotonic() + OUTAGE_RECORD_S
        while True:  # the database may still be coming back
            try:
                self.store.requeue_after_outage(video_id, attempt, why)
                backoff.ok()
                break
            except Exception as e:  # noqa: BLE001 - the next attempt's start writes it anyway
                if time.monotonic() > deadline:
                    log.warning("video %s: could not record the retry (%s)", video_id,
                                one_line(e, 200))
                    break
                time.sleep(backoff.failed(e))
        raise DatabaseOutage(why) from err

    def _safe_finish(self, video_id: int, status: JobStatus, error: str) -> None:
        try:
            self.store.finish_if_active(video_id, status, error)
        except Exception:  # noqa: BLE001 - the database itself may be what failed
            log.exception("could not record status %s for video %s", status.value, video_id)


def worker_name() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


class LocalWorker:
    """A procrastinate worker: in a background thread (the app's local worker) or in the
    foreground (``python -m pipeline worker``). Besides running jobs it recovers the jobs of
    dead workers every ``RECOVER_EVERY_S``."""

    def __init__(self, settings, *, executor: JobExecutor | None = None,
                 concurrency: int | None = None, queues: list[str] | None = None,
                 wait: bool = True):
        if executor is None:
            from pipeline.backends.registry import load_backends

            executor = JobExecutor(settings, backend_loader=load_backends)
        self.settings = settings
        self.executor = executor
        self.concurrency = int(concurrency or settings.worker_concurrency)
        self.queues = queues
        self.wait = wait
        self._worker = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopping = False
        self.error: BaseException | None = None

    async def run_async(self, install_signal_handlers: bool) -> None:
        """Run the worker; a database outage that stops it (at start-up, or one its connector
        did not ride out) is waited out with backoff, logged, and the worker starts again."""
        from services.jobs.outage import Backoff, is_outage

        backoff = Backoff("the worker")
        while True:
            try:
                await self._run_once(install_signal_handlers)
                return
            except Exception as e:
                # A database unreachable from the start is a setting to fix: one line, exit.
                if self._stopping or not self._started.is_set() or not is_outage(e):
                    raise
                delay = backoff.failed(e)
            await asyncio.sleep(delay)

    async def _run_once(self, install_signal_handlers: bool) -> None:
        from procrastinate.worker import Worker

        app = make_app(self.settings, run=self.executor.run, max_size=self.concurrency + 4)
        store = DbJobStore(self.settings)
        async with app.open_async():
            self._worker = Worker(
                app, queues=self.queues, name=worker_name(), concurrency=self.concurrency,
                wait=self.wait, install_signal_handlers=install_signal_handlers,
                update_heartbeat_interval=HEARTBEAT_S,
                stalled_worker_timeout=self.settings.stalled_after_s,
                abort_job_polling_interval=ABORT_POLL_S,
                fetch_job_polling_interval=FETCH_POLL_S)
            w = self._worker
            app.connector.stopping = lambda: self._stopping or w._stop_event.is_set()
            self._loop = asyncio.get_running_loop()
            recovery = asyncio.create_task(self._recover_forever(store))
            self._started.set()
            try:
                await self._worker.run()
            finally:
                recovery.cancel()

    async def _recover_forever(self, store: DbJobStore) -> None:
        from procrastinate.utils import sync_to_async

        while True:
            try:
                await sync_to_async(store.recover_stalled)
            except Exception as e:  # noqa: BLE001 - keep running jobs; try again later
                log.warning("stalled-job recovery failed: %s", e)
            await asyncio.sleep(RECOVER_EVERY_S)

    def run_forever(self) -> None:
        """Foreground: until SIGINT/SIGTERM (running jobs finish first), or, with
        ``wait=False``, until the queue is empty."""
        asyncio.run(self.run_async(install_signal_handlers=True))

    def start(self) -> "LocalWorker":
        def target():
            try:
                asyncio.run(self.run_async(install_signal_handlers=False))
            except BaseException as e:  # noqa: BLE001 - reported through is_alive/error
                self.error = e
                log.exception("the local worker stopped")
            finally:
                self._started.set()

        self._thread = threading.Thread(target=target, name="va-job-worker", daemon=True)
        self._thread.start()
        self._started.wait(60)
        if self.error is not None:
            raise ServiceError(f"the local analysis worker could not start: {self.error}")
        return self

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking jobs; running jobs are asked to stop (they end cancelled)."""
        self._stopping = True
        w, loop = self._worker, self._loop
        if w is not None and loop is not None and not loop.is_closed():
            w.shutdown_graceful_timeout = 0.0
            loop.call_soon_threadsafe(w.stop)
        if self._thread is not None:
            self._thread.join(timeout)
