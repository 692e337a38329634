"""SQL of the job queue's side of ``db_video`` and of stalled-job recovery. The queue itself is
procrastinate's (``procrastinate_jobs``, ``procrastinate_workers``; schema applied as migration
``0005b_procrastinate_schema``); services/jobs.py defers and runs the jobs through procrastinate's
API, and only the recovery below reads its tables directly (one transaction, row locks), because
it must decide and act on a job atomically while other workers look at the same rows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from db import store
from pipeline.records import JobStatus

log = logging.getLogger("va.db.jobs")

TASK_NAME = "analyse_video"


def lock_name(video_id: int) -> str:
    """procrastinate's ``lock`` and ``queueing_lock`` of a video's jobs: one job of a video runs
    at a time, and at most one waits."""
    return f"video:{int(video_id)}"


def active_job(conn, video_id: int) -> int | None:
    """The video's queued or running procrastinate job, if any."""
    row = conn.execute(
        "SELECT id FROM procrastinate_jobs WHERE lock = %s AND status IN ('todo', 'doing')"
        " ORDER BY id DESC LIMIT 1", (lock_name(video_id),)).fetchone()
    return None if row is None else int(row[0])


def mark_queued(conn, video_id: int, stage: str = "waiting for a worker") -> None:
    """The video waits for a worker (before its job is deferred, so a fast worker's
    'processing' is never overwritten by a late 'queued')."""
    conn.execute(
        "UPDATE db_video SET analysis_status = 'queued', analysis_progress = 0, stage = %s,"
        " frames_done = NULL, frames_total = NULL, eta_s = NULL, error_message = NULL,"
        " attempts = 0, queue_job_id = NULL, batch_job_id = NULL,"
        " updated_at = now() WHERE video_id = %s", (stage, video_id))


def set_queue_job(conn, video_id: int, job_id: int | None = None,
                  batch_job_id: str | None = None) -> None:
    conn.execute(
        "UPDATE db_video SET queue_job_id = COALESCE(%s, queue_job_id),"
        " batch_job_id = COALESCE(%s, batch_job_id) WHERE video_id = %s",
        (job_id, batch_job_id, video_id))


def start_attempt(conn, video_id: int, attempt: int, job_id: int | None,
                  stage: str | None = None, eta_s: float | None = None) -> None:
    """A worker starts run number ``attempt`` (1-based) of the video's job; ``stage`` (e.g.
    'loading models') and ``eta_s`` (the job's estimate) show on the still-queued row until the
    job itself marks it processing."""
    conn.execute(
        "UPDATE db_video SET attempts = %s, queue_job_id = COALESCE(%s, queue_job_id),"
        " updated_at = now() WHERE video_id = %s", (int(attempt), job_id, video_id))
    if stage is not None:
        conn.execute("UPDATE db_video SET stage = %s, eta_s = %s WHERE video_id = %s"
                     " AND analysis_status = 'queued'", (stage, eta_s, video_id))


def abort_requested(conn, video_id: int) -> bool:
    """In the transaction that stores a job's result: lock the video's row and say whether a
    cancel of its running job was requested. A cancel takes the same row lock
    (``lock_for_cancel``), so it either lands before the result is stored (and this says so) or
    finds it stored (too late); never "cancelling" while the job completes."""
    conn.execute("SELECT 1 FROM db_video WHERE video_id = %s FOR UPDATE", (video_id,))
    row = conn.execute(
        "SELECT bool_or(abort_requested) FROM procrastinate_jobs WHERE lock = %s"
        " AND status = 'doing'", (lock_name(video_id),)).fetchone()
    return bool(row and row[0])


def lock_for_cancel(conn, video_id: int) -> JobStatus | None:
    """In a cancel's transaction: lock the video's row (waiting for a job that is storing its
    result) and return its status; ``completed`` means the running attempt already stored its
    result."""
    row = conn.execute("SELECT analysis_status FROM db_video WHERE video_id = %s FOR UPDATE",
                       (video_id,)).fetchone()
    return None if row is None else JobStatus(row[0])


def queue_job_state(conn, job_id: int, lock: bool = False) -> str | None:
    row = conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s"
                       + (" FOR UPDATE" if lock else ""), (int(job_id),)).fetchone()
    return None if row is None else str(row[0])


def queue_job_of(conn, video_id: int) -> tuple[int | None, str | None]:
    row = conn.execute("SELECT queue_job_id, batch_job_id FROM db_video WHERE video_id = %s",
                       (video_id,)).fetchone()
    return (None, None) if row is None else (row[0], row[1])


@dataclass(frozen=True)
class Recovered:
    """What one recovery pass did: jobs put back in the queue, jobs given up (attempts used up),
    and queued rows whose job no longer exists."""

    retried: tuple[int, ...] = ()
    failed: tuple[int, ...] = ()
    orphaned: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.retried or self.failed or self.orphaned)


def recover_stalled(conn, stalled_after_s: float, max_attempts: int,
                    orphan_after_s: float = 60.0) -> Recovered:
    """Jobs whose worker stopped heartbeating (killed, machine gone) go back to the queue, or
    fail once ``max_attempts`` runs were started; their ``db_video`` row says which, in the same
    transaction. Run by every worker and by the app, concurrently: rows are taken with
    ``FOR UPDATE SKIP LOCKED``, and a job whose video lock is still held (its analysis is alive on
    some connection, whatever the heartbeat says) is left alone. ``conn`` is autocommit."""
    retried: list[int] = []
    failed: list[int] = []
    with conn.transaction():
        rows = conn.execute(
            "SELECT j.id, j.attempts, (j.args->>'video_id')::bigint, j.worker_id"
            " FROM procrastinate_jobs j"
            " LEFT JOIN procrastinate_workers w ON w.id = j.worker_id"
            " WHERE j.status = 'doing' AND j.task_name = %s"
            "   AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %s))"
            " FOR UPDATE OF j SKIP LOCKED", (TASK_NAME, float(stalled_after_s))).fetchall()
        for job_id, attempts, video_id, worker_id in rows:
            if video_id is None:
                continue
            if not store.try_lock_video(conn, video_id):
                continue  # the analysis still holds its lock: its worker is alive
            try:
                started = int(attempts) + 1  # runs started so far (procrastinate counts retries)
                if started < max_attempts:
                    conn.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)",
                                 (job_id,))
                    why = (f"the worker stopped during attempt {started} (killed or its machine "
                           f"lost); queued again for another worker")
                    _end_dead_attempt(conn, video_id, why)
                    conn.execute(
                        "UPDATE db_video SET analysis_status = 'queued', analysis_progress = 0,"
                        " stage = %s, eta_s = NULL, error_message = NULL, updated_at = now()"
                        " WHERE video_id = %s",
                        (f"worker stopped during attempt {started}; waiting for another worker",
                         video_id))
                    retried.append(int(video_id))
                    log.warning("video %s: worker %s stopped during attempt %d; job %s queued "
                                "again", video_id, worker_id, started, job_id)
                else:
                    conn.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)",
                                 (job_id,))
                    why = (f"the worker stopped without finishing, {started} time(s) (killed or "
                           f"its machine lost); gave up after {max_attempts} attempts; start the "
                           f"analysis again")
                    _end_dead_attempt(conn, video_id, why)
                    failed.append(int(video_id))
                    log.warning("video %s: %s", video_id, why)
            finally:
                store.unlock_video(conn, video_id)
        # Queued rows whose job is gone (deleted, or cancelled by hand in procrastinate).
        orphaned = [int(r[0]) for r in conn.execute(
            "SELECT v.video_id FROM db_video v"
            " WHERE v.analysis_status = 'queued' AND v.batch_job_id IS NULL"
            "   AND v.updated_at < now() - make_interval(secs => %s)"
            "   AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j"
            "                   WHERE j.lock = 'video:' || v.video_id::text"
            "                     AND j.status IN ('todo', 'doing'))"
            " FOR UPDATE OF v SKIP LOCKED", (float(orphan_after_s),)).fetchall()]
        for video_id in orphaned:
            store.end_attempt(conn, video_id, JobStatus.FAILED,
                              "its queued job no longer exists; start the analysis again")
    return Recovered(tuple(retried), tuple(failed), tuple(orphaned))


def requeue_after_outage(conn, video_id: int, attempt: int, why: str) -> None:
    """The database went away during attempt ``attempt``: the attempt ends failed with ``why``
    (unless the job recorded its end itself) and the video waits for its next attempt, which
    procrastinate schedules (the task's retry strategy)."""
    with conn.transaction():
        _end_dead_attempt(conn, video_id, why)
        conn.execute(
            "UPDATE db_video SET analysis_status = 'queued', analysis_progress = 0, stage = %s,"
            " eta_s = NULL, error_message = NULL, updated_at = now() WHERE video_id = %s",
            (f"the database went away during attempt {int(attempt)}; waiting to retry",
             video_id))


def end_attempt_if_current(conn, video_id: int, run_id: int, status: JobStatus,
                           reason: str | None) -> bool:
    """Record the end of attempt ``run_id`` that its job could not record (kept by
    ``services.pending_ends``), only while it is still the video's current attempt and
    processing: a later attempt or a recovery may have ended it since."""
    row = conn.execute(
        "SELECT 1 FROM db_video v JOIN db_run r ON r.run_id = v.current_run_id"
        " WHERE v.video_id = %s AND r.run_id = %s AND r.status = 'processing'",
        (video_id, run_id)).fetchone()
    if row is None:
        return False
    store.end_attempt(conn, video_id, status, reason, run_id=run_id)
    return True


def _end_dead_attempt(conn, video_id: int, why: str) -> None:
    """The dead worker's attempt ends failed with the reason (``db_run``); a video with a
    completed result keeps it (runs are attempts, 0004)."""
    if job_status(conn, video_id) in (JobStatus.PROCESSING, JobStatus.QUEUED, JobStatus.PENDING):
        store.end_attempt(conn, video_id, JobStatus.FAILED, why)


def list_jobs(conn, limit: int = 200) -> list[tuple]:
    """(video_id, name, status, progress, attempts, worker, stage, error) newest first: what
    ``python -m pipeline jobs`` prints."""
    return conn.execute(
        "SELECT video_id, name, analysis_status, analysis_progress, attempts,"
        " CASE WHEN worker_pid IS NULL THEN NULL ELSE worker_pid::text || '@' || worker_host END,"
        " stage, error_message FROM db_video ORDER BY video_id DESC LIMIT %s",
        (int(limit),)).fetchall()


def job_status(conn, video_id: int) -> JobStatus | None:
    row = conn.execute("SELECT analysis_status FROM db_video WHERE video_id = %s",
                       (video_id,)).fetchone()
    return None if row is None else JobStatus(row[0])
