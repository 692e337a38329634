"""Background analysis jobs: ONE worker thread, a FIFO queue, a cancel flag per job.

The worker owns the models (it loads the analysis backends in its own thread and keeps them for
the next job with the same choices) and never calls Streamlit. A job's state lives in
``db_video`` (status, progress, stage, frames, ETA), written by ``services.ingest.analyze_source``,
so a page reload or a second browser sees the running job. The runner itself only keeps what
cannot live in the database: the queue, the cancel flags and the loaded models.

Pages get one runner per process from ``st.cache_resource`` (see ``app_pages/_resources.py``).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from pipeline.errors import Cancelled, PipelineError
from pipeline.records import JobStatus, RunProgress
from services.errors import JobConflict, ServiceError

log = logging.getLogger("va.jobs")


@dataclass(frozen=True)
class AnalysisOptions:
    """What the analyst chose on the Analyze page; ``None`` keeps the setting's value."""

    frame_skip: int | None = None
    device: str | None = None
    detector: str | None = None
    attributes: str | None = None
    orientation: str | None = None
    action: str | None = None
    scene: str | None = None

    def apply(self, settings):
        return settings.with_overrides(**asdict(self))


@dataclass(frozen=True)
class JobRequest:
    video_id: int
    source: str
    name: str
    options: AnalysisOptions
    submitted_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class QueueSnapshot:
    """What the runner holds right now (the database holds the rest)."""

    running: JobRequest | None
    waiting: tuple[JobRequest, ...]
    worker_alive: bool


class JobStore(Protocol):
    """The part of ``db_video`` the runner writes itself (the job writes the rest)."""

    def create_pending(self, source: str, name: str, video_id: int | None) -> int: ...

    def set_status(self, video_id: int, status: JobStatus, error: str | None = None) -> None: ...


Analyze = Callable[..., Any]
_STOP = object()


class JobRunner:
    """One worker thread processing analysis jobs in submission order.

    ``analyze`` is ``services.ingest.analyze_source`` in the product; ``store`` writes the
    pending/cancelled/failed states the job itself cannot write (queued, cancelled before start,
    crashed). ``backend_loader(settings)`` builds the models; the worker keeps the last set.
    """

    def __init__(self, settings, *, analyze: Analyze, store: JobStore,
                 backend_loader: Callable[[Any], Any] | None = None):
        self.settings = settings
        self._analyze = analyze
        self._store = store
        self._backend_loader = backend_loader
        self._pass_backends = backend_loader is not None
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._waiting: dict[int, JobRequest] = {}  # video_id -> request, insertion-ordered
        self._cancel: dict[int, threading.Event] = {}
        self._running: JobRequest | None = None
        self._progress: dict[int, RunProgress] = {}
        self._idle = threading.Event()
        self._idle.set()
        self._backends_key: tuple | None = None
        self._backends: Any = None
        self._thread = threading.Thread(target=self._work, name="va-analysis-worker", daemon=True)
        self._thread.start()

    # --- API used by pages (through services.workbench) ---------------------------------------
    def submit(self, source: str, options: AnalysisOptions | None = None, *, name: str | None = None,
               video_id: int | None = None) -> int:
        """Queue an analysis; returns its ``video_id``. The row exists when this returns (a new
        video's status is 'pending'; the job sets 'processing' when the worker reaches it)."""
        options = options or AnalysisOptions()
        options.apply(self.settings)  # unknown values fail here, in the caller's thread
        name = name or Path(source.split("?", 1)[0]).name
        with self._lock:
            if video_id is not None and self._is_active(video_id):
                raise JobConflict(f"video {video_id} is already queued or running; wait for it "
                                  f"to finish or cancel it first")
            vid = self._store.create_pending(source, name, video_id)
            if self._is_active(vid):
                raise JobConflict(f"{name} is already queued or running; wait for it to finish "
                                  f"or cancel it first")
            req = JobRequest(video_id=vid, source=source, name=name, options=options)
            self._waiting[vid] = req
            self._cancel[vid] = threading.Event()
            self._idle.clear()
        self._queue.put(req)
        log.info("queued video %s (%s)", vid, source)
        return vid

    def cancel(self, video_id: int) -> bool:
        """Stop a running job or drop a waiting one. False when the runner does not know it."""
        with self._lock:
            flag = self._cancel.get(video_id)
            if flag is None:
                return False
            flag.set()
            was_waiting = self._waiting.pop(video_id, None) is not None
        if was_waiting:
            self._store.set_status(video_id, JobStatus.CANCELLED, "cancelled before it started")
        log.info("cancel requested for video %s", video_id)
        return True

    def snapshot(self) -> QueueSnapshot:
        with self._lock:
            return QueueSnapshot(self._running, tuple(self._waiting.values()),
                                 self._thread.is_alive())

    def is_active(self, video_id: int) -> bool:
        with self._lock:
            return self._is_active(video_id)

    def last_progress(self, video_id: int) -> RunProgress | None:
        with self._lock:
            return self._progress.get(video_id)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is waiting or running (tests, shutdown)."""
        return self._idle.wait(timeout)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel everything and stop the worker."""
        with self._lock:
            ids = list(self._cancel)
        for vid in ids:
            self.cancel(vid)
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # --- worker --------------------------------------------------------------------------------
    def _is_active(self, video_id: int) -> bool:
        return video_id in self._waiting or (self._running is not None
                                             and self._running.video_id == video_id)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            req: JobRequest = item
            with self._lock:
                if self._waiting.pop(req.video_id, None) is None:  # cancelled while waiting
                    self._cancel.pop(req.video_id, None)
                    self._mark_idle_if_empty()
                    continue
                self._running = req
                flag = self._cancel[req.video_id]
            try:
                self._run_one(req, flag)
            finally:
                with self._lock:
                    self._running = None
                    self._cancel.pop(req.video_id, None)
                    self._mark_idle_if_empty()

    def _mark_idle_if_empty(self) -> None:
        if not self._waiting and self._running is None:
            self._idle.set()

    def _run_one(self, req: JobRequest, flag: threading.Event) -> None:
        started = time.monotonic()

        def on_progress(p: RunProgress) -> None:
            with self._lock:
                self._progress[req.video_id] = p

        try:
            settings = req.options.apply(self.settings)
            kwargs: dict[str, Any] = dict(video_id=req.video_id, on_progress=on_progress,
                                          should_stop=flag.is_set, name=req.name)
            if self._pass_backends:
                kwargs["backends"] = self._backends_for(settings)
            if flag.is_set():
                raise Cancelled("cancelled before it started")
            self._analyze(req.source, settings, **kwargs)
            log.info("video %s done in %.1f s", req.video_id, time.monotonic() - started)
        except JobConflict as e:
            # Another process (the CLI, a second server) is analysing this video right now: its
            # state in db_video is that job's, so leave it alone.
            log.warning("video %s not started: %s", req.video_id, e)
        except Cancelled:
            log.info("video %s cancelled", req.video_id)
            self._safe_status(req.video_id, JobStatus.CANCELLED, "cancelled by the analyst",
                              only_if_active=True)
        except (PipelineError, ServiceError) as e:
            log.warning("video %s failed: %s", req.video_id, e)
            self._safe_status(req.video_id, JobStatus.FAILED, str(e), only_if_active=True)
        except Exception as e:  # a bug: keep the worker alive, record the job as failed
            log.exception("video %s crashed", req.video_id)
            self._safe_status(req.video_id, JobStatus.FAILED,
                              f"internal error ({type(e).__name__}: {e}); see the server log",
                              only_if_active=True)

    def _safe_status(self, video_id: int, status: JobStatus, error: str,
                     only_if_active: bool) -> None:
        """Record the end state when the job could not (it normally does so itself)."""
        try:
            setter = getattr(self._store, "finish_if_active", None)
            if only_if_active and setter is not None:
                setter(video_id, status, error)
            else:
                self._store.set_status(video_id, status, error)
        except Exception:  # the database itself may be what failed
            log.exception("could not record status %s for video %s", status.value, video_id)

    def _backends_for(self, settings) -> Any:
        from pipeline.backends.registry import backends_key

        key = backends_key(settings)  # every setting the chosen backends read
        if key != self._backends_key:
            self._backends = None  # free the old models before loading new ones
            self._backends = self._backend_loader(settings)
            self._backends_key = key
        return self._backends
