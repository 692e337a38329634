"""The job queue's writes to and reads of ``db_video`` (``services.jobs.jobs.JobStore``), and the
recovery of jobs whose worker died: every status change through ``db.attempts.JobAttempt``."""
from __future__ import annotations

import logging
from typing import Any

from pipeline.records import JobStatus
from services import database

log = logging.getLogger("va.jobs")


class DbJobStore:
    """``JobStore`` on the product's database (``db.attempts`` / ``db.jobs`` SQL)."""

    def __init__(self, settings):
        self.settings = settings

    def _conn(self):
        return database.pooled(self.settings)

    def create_pending(self, source: str, name: str, video_id: int | None) -> int:
        from services.jobs import ingest

        return ingest.find_or_create_video(self.settings, ingest.normalise_source(source), name,
                                           video_id)

    def is_active(self, video_id: int) -> bool:
        from db import jobs, store

        with self._conn() as conn:
            if jobs.active_job(conn, video_id) is not None:
                return True
            # A CLI run (python -m pipeline run) holds the video's lock without a queue job.
            if not store.try_lock_video(conn, video_id):
                return True
            store.unlock_video(conn, video_id)
            return False

    def mark_queued(self, video_id: int) -> None:
        from db.attempts import JobAttempt

        with self._conn() as conn:
            JobAttempt(conn, video_id).queue()

    def set_queue_job(self, video_id: int, job_id: int | None = None,
                      batch_job_id: str | None = None) -> None:
        from db import jobs

        with self._conn() as conn:
            jobs.set_queue_job(conn, video_id, job_id, batch_job_id)

    def queue_job_of(self, video_id: int) -> tuple[int | None, str | None]:
        from db import jobs

        with self._conn() as conn:
            return jobs.queue_job_of(conn, video_id)

    def active_queue_job(self, video_id: int) -> int | None:
        from db import jobs

        with self._conn() as conn:
            return jobs.active_job(conn, video_id)

    def start_attempt(self, video_id: int, attempt: int, job_id: int | None,
                      stage: str | None = None, eta_s: float | None = None) -> None:
        from db.attempts import JobAttempt

        with self._conn() as conn:
            JobAttempt(conn, video_id).worker_took(attempt, job_id, stage, eta_s)

    def set_status(self, video_id: int, status: JobStatus, error: str | None = None) -> None:
        from db.attempts import JobAttempt

        with self._conn() as conn:
            JobAttempt(conn, video_id).finish(status, error)

    def finish_if_active(self, video_id: int, status: JobStatus, error: str | None) -> None:
        """End the job only if the job itself did not record an end state."""
        from db.attempts import JobAttempt

        with self._conn() as conn:
            JobAttempt(conn, video_id).end_if_active(status, error)

    def requeue_after_outage(self, video_id: int, attempt: int, why: str) -> None:
        from db import attempts

        with self._conn() as conn:
            attempts.requeue_after_outage(conn, video_id, attempt, why)

    def recover_stalled(self) -> Any:
        """Jobs of dead workers back to the queue (or failed after the attempts); 'processing'
        rows of dead CLI runs failed. Returns ``db.attempts.Recovered``."""
        from db import attempts

        from services.jobs import pending_ends

        s = self.settings
        with self._conn() as conn:
            pending_ends.record(s, conn)  # ends kept during an outage, with their own reason
            done = attempts.recover_stalled(conn, s.stalled_after_s, s.max_attempts)
            stale = attempts.mark_stale_jobs(conn)
        if stale:
            log.warning("marked %d stale job(s) failed: %s", len(stale), stale)
        return done
