"""SQL of the job queue's side of ``db_video``: which procrastinate job a video has, and the
jobs list. The queue itself is procrastinate's (``procrastinate_jobs``, ``procrastinate_workers``;
schema applied as migration ``0005b_procrastinate_schema``); services/jobs/jobs.py defers and runs the
jobs through procrastinate's API. Status changes and the recovery of dead attempts (which read
procrastinate's tables in one transaction, with row locks): db/attempts.py.
"""
from __future__ import annotations

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


def set_queue_job(conn, video_id: int, job_id: int | None = None,
                  batch_job_id: str | None = None) -> None:
    conn.execute(
        "UPDATE db_video SET queue_job_id = COALESCE(%s, queue_job_id),"
        " batch_job_id = COALESCE(%s, batch_job_id) WHERE video_id = %s",
        (job_id, batch_job_id, video_id))


def queue_job_state(conn, job_id: int, lock: bool = False) -> str | None:
    row = conn.execute("SELECT status FROM procrastinate_jobs WHERE id = %s"
                       + (" FOR UPDATE" if lock else ""), (int(job_id),)).fetchone()
    return None if row is None else str(row[0])


def queue_job_of(conn, video_id: int) -> tuple[int | None, str | None]:
    row = conn.execute("SELECT queue_job_id, batch_job_id FROM db_video WHERE video_id = %s",
                       (video_id,)).fetchone()
    return (None, None) if row is None else (row[0], row[1])


def list_jobs(conn, limit: int = 200) -> list[tuple]:
    """(video_id, name, status, progress, attempts, worker, stage, error) newest first: what
    ``python -m pipeline jobs`` prints."""
    return conn.execute(
        "SELECT video_id, name, analysis_status, analysis_progress, attempts,"
        " CASE WHEN worker_pid IS NULL THEN NULL ELSE worker_pid::text || '@' || worker_host END,"
        " stage, error_message FROM db_video ORDER BY video_id DESC LIMIT %s",
        (int(limit),)).fetchall()
