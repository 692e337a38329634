"""The one writer of a job attempt's life: queued -> processing (a ``db_run`` row) -> completed,
failed or cancelled, with its progress and reason, across ``db_video``, ``db_run`` and
procrastinate's ``procrastinate_jobs``. No other module updates a status column
(tests/test_boundaries.py). Services hold a ``JobAttempt`` for one video on an open psycopg
connection; the caller owns the connection (autocommit) and the video's advisory lock.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from db import audit
from db.audit import AuditAction
from db.jobs import TASK_NAME, lock_name
from db.values import clean_text as _clean_text, finite as _finite
from db.videos import try_lock_video, unlock_video
from pipeline.records import JobStatus

log = logging.getLogger("va.db.attempts")

_ACTIVE = (JobStatus.PROCESSING, JobStatus.QUEUED, JobStatus.PENDING)


@dataclass(frozen=True)
class RunCoverage:
    """How much of the video a run decoded (stored with the run)."""

    frames_decoded: int | None = None
    frames_undecodable: int | None = None
    covered_from_s: float | None = None
    covered_to_s: float | None = None


class JobAttempt:
    """One video's job on ``conn``: every status change of its attempts goes through here."""

    def __init__(self, conn, video_id: int, run_id: int | None = None):
        self.conn = conn
        self.video_id = int(video_id)
        self.run_id = run_id

    # --- reading ----------------------------------------------------------------------------

    def status(self) -> JobStatus | None:
        row = self.conn.execute("SELECT analysis_status FROM db_video WHERE video_id = %s",
                                (self.video_id,)).fetchone()
        return None if row is None else JobStatus(row[0])

    def is_active(self) -> bool:
        return self.status() in _ACTIVE

    def abort_requested(self) -> bool:
        """In the transaction that stores a job's result: lock the video's row and say whether a
        cancel of its running job was requested. A cancel takes the same row lock
        (``lock_for_cancel``), so it either lands before the result is stored (and this says so)
        or finds it stored (too late); never "cancelling" while the job completes."""
        self.conn.execute("SELECT 1 FROM db_video WHERE video_id = %s FOR UPDATE",
                          (self.video_id,))
        row = self.conn.execute(
            "SELECT bool_or(abort_requested) FROM procrastinate_jobs WHERE lock = %s"
            " AND status = 'doing'", (lock_name(self.video_id),)).fetchone()
        return bool(row and row[0])

    def lock_for_cancel(self) -> JobStatus | None:
        """In a cancel's transaction: lock the video's row (waiting for a job that is storing its
        result) and return its status; ``completed`` means the running attempt already stored
        its result."""
        row = self.conn.execute("SELECT analysis_status FROM db_video WHERE video_id = %s"
                                " FOR UPDATE", (self.video_id,)).fetchone()
        return None if row is None else JobStatus(row[0])

    def audit(self, actor: str, action: AuditAction, video_name: str | None = None) -> int:
        """Who launched or cancelled this video's job: its row in the audit trail."""
        subject = {"video_name": video_name} if video_name is not None else \
            audit.video_subject(self.conn, self.video_id)
        return audit.record(self.conn, actor, action, video_id=self.video_id, **subject)

    # --- queued -----------------------------------------------------------------------------

    def queue(self, stage: str = "waiting for a worker") -> None:
        """The video waits for a worker (before its job is deferred, so a fast worker's
        'processing' is never overwritten by a late 'queued')."""
        self.conn.execute(
            "UPDATE db_video SET analysis_status = 'queued', analysis_progress = 0, stage = %s,"
            " frames_done = NULL, frames_total = NULL, eta_s = NULL, error_message = NULL,"
            " attempts = 0, queue_job_id = NULL, batch_job_id = NULL,"
            " updated_at = now() WHERE video_id = %s", (str(stage), self.video_id))

    def worker_took(self, attempt: int, job_id: int | None, stage: str | None = None,
                    eta_s: float | None = None) -> None:
        """A worker starts run number ``attempt`` (1-based) of the video's job; ``stage`` (e.g.
        'loading models') and ``eta_s`` (the job's estimate) show on the still-queued row until
        the job itself marks it processing."""
        self.conn.execute(
            "UPDATE db_video SET attempts = %s, queue_job_id = COALESCE(%s, queue_job_id),"
            " updated_at = now() WHERE video_id = %s", (int(attempt), job_id, self.video_id))
        if stage is not None:
            self.conn.execute("UPDATE db_video SET stage = %s, eta_s = %s WHERE video_id = %s"
                              " AND analysis_status = 'queued'", (str(stage), eta_s, self.video_id))

    def requeue(self, stage: str, why: str) -> None:
        """The attempt's worker or database went away: the attempt ends failed with ``why``
        (unless it recorded its end itself) and the video waits for its next attempt, with
        ``stage`` saying so."""
        self.end_if_active(JobStatus.FAILED, why)
        self.conn.execute(
            "UPDATE db_video SET analysis_status = 'queued', analysis_progress = 0, stage = %s,"
            " eta_s = NULL, error_message = NULL, updated_at = now() WHERE video_id = %s",
            (stage, self.video_id))

    # --- processing -------------------------------------------------------------------------

    def start(self, worker_pid: int, worker_host: str) -> int:
        """Start an attempt: a new ``db_run`` row (processing) and the video shown processing.
        The video's events, tracks, finished time and token usage stay those of its last
        completed run until this attempt completes (``complete``). Returns the run id."""
        conn = self.conn
        with conn.transaction():
            # The caller holds the video's job lock: an attempt still 'processing' is a dead one.
            conn.execute(
                "UPDATE db_run SET status = 'failed', finished_at = now(), error_message ="
                " 'its worker stopped without finishing' WHERE video_id = %s"
                " AND status = 'processing'", (self.video_id,))
            self.run_id = int(conn.execute(
                "INSERT INTO db_run (video_id, worker_pid, worker_host) VALUES (%s, %s, %s)"
                " RETURNING run_id", (self.video_id, worker_pid, worker_host)).fetchone()[0])
            conn.execute(
                "UPDATE db_video SET analysis_status = 'processing', analysis_progress = 0,"
                " stage = 'starting', frames_done = NULL, frames_total = NULL, eta_s = NULL,"
                " error_message = NULL, worker_pid = %s, worker_host = %s, heartbeat_at = now(),"
                " current_run_id = %s, updated_at = now() WHERE video_id = %s",
                (worker_pid, worker_host, self.run_id, self.video_id))
        return self.run_id

    def progress(self, percent: float, stage: str, frames_done: int | None,
                 frames_total: int | None, eta_s: float | None) -> None:
        self.conn.execute(
            "UPDATE db_video SET analysis_progress = %s, stage = %s, frames_done = %s,"
            " frames_total = %s, eta_s = %s, heartbeat_at = now(), updated_at = now()"
            " WHERE video_id = %s AND analysis_status = 'processing'",
            (max(0.0, min(100.0, float(percent))), str(stage), frames_done, frames_total,
             _finite(eta_s), self.video_id))

    # --- the end ----------------------------------------------------------------------------

    def complete(self, token_usage: Mapping[str, Any] | None = None,
                 warning: str | None = None, coverage: RunCoverage | None = None) -> None:
        """The attempt completed: it becomes the video's result (call it in the transaction that
        replaced the events, so readers see the old result or the new one, never a mix)."""
        conn, cov = self.conn, coverage or RunCoverage()
        tokens = json.dumps(dict(token_usage or {}))
        with conn.transaction():
            if self.run_id is None:  # a caller that never started an attempt (tests)
                self.run_id = int(conn.execute(
                    "INSERT INTO db_run (video_id) VALUES (%s) RETURNING run_id", (self.video_id,)
                ).fetchone()[0])
            conn.execute(
                "UPDATE db_run SET status = 'completed', error_message = NULL, warning = %s,"
                " frames_decoded = %s, frames_undecodable = %s, covered_from_s = %s,"
                " covered_to_s = %s, token_usage = %s::jsonb, finished_at = now()"
                " WHERE run_id = %s",
                (_clean_text(warning), cov.frames_decoded, cov.frames_undecodable,
                 _finite(cov.covered_from_s), _finite(cov.covered_to_s), tokens, self.run_id))
            conn.execute(
                "UPDATE db_video v SET analysis_status = 'completed', analysis_progress = 100,"
                " stage = 'completed', eta_s = NULL, error_message = NULL, warning = %s,"
                " started_at = r.started_at, finished_at = r.finished_at,"
                " token_usage = r.token_usage, completed_run_id = r.run_id,"
                " current_run_id = NULL, heartbeat_at = now(), updated_at = now()"
                " FROM db_run r WHERE r.run_id = %s AND v.video_id = %s",
                (_clean_text(warning), self.run_id, self.video_id))

    def end(self, status: JobStatus, reason: str | None = None,
            token_usage: Mapping[str, Any] | None = None) -> int:
        """A failed or cancelled attempt: recorded in ``db_run`` with its reason (this attempt,
        the video's current one, or a new row when none had started, e.g. cancelled while
        queued). A video with a completed run goes back to it: status completed, its finished
        time and token usage; a video without one shows the attempt's status and reason.
        Returns the run id."""
        if status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise ValueError(f"end needs failed or cancelled, got {status}")
        conn, vid = self.conn, self.video_id
        tokens = None if token_usage is None else json.dumps(dict(token_usage))
        err = _clean_text(reason)
        with conn.transaction():
            row = conn.execute("SELECT current_run_id FROM db_video WHERE video_id = %s"
                               " FOR UPDATE", (vid,)).fetchone()
            if row is None:
                raise ValueError(f"video {vid} does not exist")
            rid = self.run_id if self.run_id is not None else row[0]
            updated = None
            if rid is not None:
                updated = conn.execute(
                    "UPDATE db_run SET status = %s, error_message = %s, finished_at = now(),"
                    " token_usage = COALESCE(%s::jsonb, token_usage)"
                    " WHERE run_id = %s AND status = 'processing' RETURNING run_id",
                    (status.value, err, tokens, rid)).fetchone()
            if updated is None:
                rid = int(conn.execute(
                    "INSERT INTO db_run (video_id, status, error_message, finished_at, token_usage)"
                    " VALUES (%s, %s, %s, now(), COALESCE(%s::jsonb, '{}'::jsonb))"
                    " RETURNING run_id", (vid, status.value, err, tokens)).fetchone()[0])
            conn.execute(
                "UPDATE db_video v SET"
                " analysis_status = CASE WHEN c.run_id IS NULL THEN %(s)s ELSE 'completed' END,"
                " analysis_progress = CASE WHEN c.run_id IS NULL THEN v.analysis_progress"
                "   ELSE 100 END,"
                " stage = CASE WHEN c.run_id IS NULL THEN %(s)s ELSE 'completed' END,"
                " error_message = CASE WHEN c.run_id IS NULL THEN %(err)s ELSE NULL END,"
                " started_at = CASE WHEN c.run_id IS NULL THEN v.started_at ELSE c.started_at END,"
                " finished_at = CASE WHEN c.run_id IS NULL THEN now() ELSE c.finished_at END,"
                " token_usage = CASE WHEN c.run_id IS NULL"
                "   THEN COALESCE(%(tok)s::jsonb, v.token_usage) ELSE c.token_usage END,"
                " eta_s = NULL, current_run_id = NULL, heartbeat_at = now(), updated_at = now()"
                " FROM db_video v0 LEFT JOIN db_run c ON c.run_id = v0.completed_run_id"
                " WHERE v0.video_id = v.video_id AND v.video_id = %(vid)s",
                {"s": status.value, "err": err, "tok": tokens, "vid": vid})
        return int(rid)

    def finish(self, status: JobStatus, reason: str | None = None,
               token_usage: Mapping[str, Any] | None = None) -> None:
        """End a job: completed (``complete``), failed or cancelled (``end``: the video keeps its
        last completed result and status)."""
        if status is JobStatus.COMPLETED:
            if self.run_id is None:
                row = self.conn.execute("SELECT current_run_id FROM db_video WHERE video_id = %s",
                                        (self.video_id,)).fetchone()
                self.run_id = None if row is None else row[0]
            self.complete(token_usage)
        elif status in (JobStatus.FAILED, JobStatus.CANCELLED):
            self.end(status, reason, token_usage)
        else:
            raise ValueError(f"finish needs a final status, got {status}")

    def end_if_active(self, status: JobStatus, reason: str | None) -> None:
        """End the job only if it did not record an end state itself; a video with a completed
        result keeps it."""
        if self.is_active():
            self.finish(status, reason)

    def end_if_current(self, status: JobStatus, reason: str | None) -> bool:
        """Record the end of attempt ``run_id`` that its job could not record (kept by
        ``services.jobs.pending_ends``), only while it is still the video's current attempt and
        processing: a later attempt or a recovery may have ended it since."""
        row = self.conn.execute(
            "SELECT 1 FROM db_video v JOIN db_run r ON r.run_id = v.current_run_id"
            " WHERE v.video_id = %s AND r.run_id = %s AND r.status = 'processing'",
            (self.video_id, self.run_id)).fetchone()
        if row is None:
            return False
        self.end(status, reason)
        return True


# --- recovery of dead attempts (many videos at once) --------------------------------------------


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
            if video_id is None or not try_lock_video(conn, video_id):
                continue  # the analysis still holds its lock: its worker is alive
            try:
                started = int(attempts) + 1  # runs started so far (procrastinate counts retries)
                if _retry_or_fail(conn, job_id, int(video_id), started, max_attempts):
                    retried.append(int(video_id))
                    log.warning("video %s: worker %s stopped during attempt %d; job %s queued "
                                "again", video_id, worker_id, started, job_id)
                else:
                    failed.append(int(video_id))
            finally:
                unlock_video(conn, video_id)
        orphaned = _end_orphans(conn, orphan_after_s)
    return Recovered(tuple(retried), tuple(failed), tuple(orphaned))


def _retry_or_fail(conn, job_id: int, video_id: int, started: int, max_attempts: int) -> bool:
    """A dead worker's job: queued again (True) or, its attempts used up, failed (False)."""
    attempt = JobAttempt(conn, video_id)
    if started < max_attempts:
        conn.execute("SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", (job_id,))
        attempt.requeue(f"worker stopped during attempt {started}; waiting for another worker",
                        f"the worker stopped during attempt {started} (killed or its machine "
                        f"lost); queued again for another worker")
        return True
    conn.execute("SELECT procrastinate_finish_job_v1(%s, 'failed', false)", (job_id,))
    why = (f"the worker stopped without finishing, {started} time(s) (killed or its machine "
           f"lost); gave up after {max_attempts} attempts; start the analysis again")
    attempt.end_if_active(JobStatus.FAILED, why)
    log.warning("video %s: %s", video_id, why)
    return False


def _end_orphans(conn, orphan_after_s: float) -> list[int]:
    """Queued rows whose job is gone (deleted, or cancelled by hand in procrastinate) fail."""
    orphaned = [int(r[0]) for r in conn.execute(
        "SELECT v.video_id FROM db_video v"
        " WHERE v.analysis_status = 'queued' AND v.batch_job_id IS NULL"
        "   AND v.updated_at < now() - make_interval(secs => %s)"
        "   AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j"
        "                   WHERE j.lock = 'video:' || v.video_id::text"
        "                     AND j.status IN ('todo', 'doing'))"
        " FOR UPDATE OF v SKIP LOCKED", (float(orphan_after_s),)).fetchall()]
    for video_id in orphaned:
        JobAttempt(conn, video_id).end(
            JobStatus.FAILED, "its queued job no longer exists; start the analysis again")
    return orphaned


def requeue_after_outage(conn, video_id: int, attempt: int, why: str) -> None:
    """The database went away during attempt ``attempt``: the attempt ends failed with ``why``
    (unless the job recorded its end itself) and the video waits for its next attempt, which
    procrastinate schedules (the task's retry strategy)."""
    with conn.transaction():
        JobAttempt(conn, video_id).requeue(
            f"the database went away during attempt {int(attempt)}; waiting to retry", why)


def mark_stale_jobs(conn, reason: str | None = None) -> list[int]:
    """Mark 'processing' rows whose worker is gone as failed. A live worker holds the video's
    advisory lock on its own connection; a row whose lock we can take has none. A job run by a
    queue worker is recovered by ``recover_stalled`` instead (retried or failed)."""
    stale: list[int] = []
    rows = conn.execute(
        "SELECT video_id, worker_pid, worker_host, heartbeat_at FROM db_video v"
        " WHERE analysis_status = 'processing' AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j"
        " WHERE j.lock = 'video:' || v.video_id::text AND j.status = 'doing')").fetchall()
    for video_id, pid, host, heartbeat in rows:
        if not try_lock_video(conn, video_id):
            continue  # a worker is alive
        try:
            why = reason or (
                f"the worker ({pid}@{host}) stopped without finishing (last heartbeat "
                f"{heartbeat:%Y-%m-%d %H:%M:%S %Z}); start the analysis again"
                if heartbeat is not None else
                "the worker stopped without finishing; start the analysis again")
            attempt = JobAttempt(conn, video_id)
            if attempt.status() is JobStatus.PROCESSING:
                attempt.end(JobStatus.FAILED, why)
                stale.append(int(video_id))
                log.warning("video %s: %s", video_id, why)
        finally:
            unlock_video(conn, video_id)
    return stale
