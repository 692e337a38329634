"""``db_video`` rows: a video, its job state (lock, progress, attempts, runs) and its end.
Functions take an open psycopg connection; the caller owns transactions and locks."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from db.values import clean_text as _clean_text, finite as _finite
from pipeline.records import JobStatus, VideoInfo

log = logging.getLogger("va.db.store")

VIDEO_LOCK_CLASS = 0x5641  # advisory-lock namespace "VA": (class, video_id) = one job per video


def create_video(conn, name: str, source_uri: str | None) -> int:
    row = conn.execute(
        "INSERT INTO db_video (name, source_uri) VALUES (%s, %s) RETURNING video_id",
        (_clean_text(name), _clean_text(source_uri)),
    ).fetchone()
    return int(row[0])


def find_video_by_source(conn, source_uri: str) -> int | None:
    row = conn.execute(
        "SELECT video_id FROM db_video WHERE source_uri = %s ORDER BY video_id DESC LIMIT 1",
        (_clean_text(source_uri),),
    ).fetchone()
    return None if row is None else int(row[0])


def video_exists(conn, video_id: int) -> bool:
    return conn.execute("SELECT 1 FROM db_video WHERE video_id = %s", (video_id,)).fetchone() is not None


def completed_run_of(conn, video_id: int) -> int | None:
    row = conn.execute("SELECT completed_run_id FROM db_video WHERE video_id = %s",
                       (video_id,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def set_source(conn, video_id: int, name: str, source_uri: str) -> None:
    conn.execute("UPDATE db_video SET name = %s, source_uri = %s, updated_at = now() "
                 "WHERE video_id = %s", (_clean_text(name), _clean_text(source_uri), video_id))


def try_lock_video(conn, video_id: int) -> bool:
    """Take the per-video job lock on this (dedicated, session) connection. It is released when
    the connection closes, so a killed worker never holds it."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (VIDEO_LOCK_CLASS, int(video_id)))
    return bool(row.fetchone()[0])


def lock_video(conn, video_id: int) -> None:
    """Wait for the per-video job lock."""
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (VIDEO_LOCK_CLASS, int(video_id)))


def unlock_video(conn, video_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (VIDEO_LOCK_CLASS, int(video_id)))


def worker_of(conn, video_id: int) -> str | None:
    row = conn.execute("SELECT worker_pid, worker_host FROM db_video WHERE video_id = %s",
                       (video_id,)).fetchone()
    if row is None or row[0] is None:
        return None
    return f"{row[0]}@{row[1]}"


def mark_processing(conn, video_id: int, worker_pid: int, worker_host: str) -> int:
    """Start an attempt: a new ``db_run`` row (processing) and the video shown processing. The
    video's events, tracks, finished time and token usage stay those of its last completed run
    until this attempt completes (``complete_run``). Returns the run id."""
    with conn.transaction():
        # The caller holds the video's job lock: an attempt still 'processing' is a dead one.
        conn.execute(
            "UPDATE db_run SET status = 'failed', finished_at = now(), error_message ="
            " 'its worker stopped without finishing' WHERE video_id = %s"
            " AND status = 'processing'", (video_id,))
        run_id = int(conn.execute(
            "INSERT INTO db_run (video_id, worker_pid, worker_host) VALUES (%s, %s, %s)"
            " RETURNING run_id", (video_id, worker_pid, worker_host)).fetchone()[0])
        conn.execute(
            "UPDATE db_video SET analysis_status = 'processing', analysis_progress = 0,"
            " stage = 'starting', frames_done = NULL, frames_total = NULL, eta_s = NULL,"
            " error_message = NULL, worker_pid = %s, worker_host = %s, heartbeat_at = now(),"
            " current_run_id = %s, updated_at = now() WHERE video_id = %s",
            (worker_pid, worker_host, run_id, video_id),
        )
    return run_id


def write_progress(conn, video_id: int, percent: float, stage: str, frames_done: int | None,
                   frames_total: int | None, eta_s: float | None) -> None:
    conn.execute(
        "UPDATE db_video SET analysis_progress = %s, stage = %s, frames_done = %s,"
        " frames_total = %s, eta_s = %s, heartbeat_at = now(), updated_at = now()"
        " WHERE video_id = %s AND analysis_status = 'processing'",
        (max(0.0, min(100.0, float(percent))), stage, frames_done, frames_total, _finite(eta_s),
         video_id),
    )


def set_video_info(conn, video_id: int, info: VideoInfo) -> None:
    conn.execute(
        "UPDATE db_video SET fps = %s, duration_s = %s, frame_count = %s, width = %s, height = %s,"
        " updated_at = now() WHERE video_id = %s",
        (_finite(info.fps), _finite(info.duration_s), int(info.frame_count), int(info.width),
         int(info.height), video_id),
    )


def complete_run(conn, video_id: int, run_id: int | None,
                 token_usage: Mapping[str, Any] | None = None, warning: str | None = None,
                 coverage: "RunCoverage | None" = None) -> None:
    """The attempt completed: it becomes the video's result (call it in the transaction that
    replaced the events, so readers see the old result or the new one, never a mix)."""
    tokens = json.dumps(dict(token_usage or {}))
    cov = coverage or RunCoverage()
    with conn.transaction():
        if run_id is None:  # a caller that never started an attempt (tests, old callers)
            run_id = int(conn.execute(
                "INSERT INTO db_run (video_id) VALUES (%s) RETURNING run_id", (video_id,)
            ).fetchone()[0])
        conn.execute(
            "UPDATE db_run SET status = 'completed', error_message = NULL, warning = %s,"
            " frames_decoded = %s, frames_undecodable = %s, covered_from_s = %s,"
            " covered_to_s = %s, token_usage = %s::jsonb, finished_at = now() WHERE run_id = %s",
            (_clean_text(warning), cov.frames_decoded, cov.frames_undecodable,
             _finite(cov.covered_from_s), _finite(cov.covered_to_s), tokens, run_id))
        conn.execute(
            "UPDATE db_video v SET analysis_status = 'completed', analysis_progress = 100,"
            " stage = 'completed', eta_s = NULL, error_message = NULL, warning = %s,"
            " started_at = r.started_at, finished_at = r.finished_at, token_usage = r.token_usage,"
            " completed_run_id = r.run_id, current_run_id = NULL, heartbeat_at = now(),"
            " updated_at = now() FROM db_run r WHERE r.run_id = %s AND v.video_id = %s",
            (_clean_text(warning), run_id, video_id))


@dataclass(frozen=True)
class RunCoverage:
    """How much of the video a run decoded (stored with the run)."""

    frames_decoded: int | None = None
    frames_undecodable: int | None = None
    covered_from_s: float | None = None
    covered_to_s: float | None = None


def end_attempt(conn, video_id: int, status: JobStatus, error_message: str | None = None,
                token_usage: Mapping[str, Any] | None = None, run_id: int | None = None) -> int:
    """A failed or cancelled attempt: recorded in ``db_run`` with its reason (the video's current
    attempt, or a new row when none had started, e.g. cancelled while queued). A video with a
    completed run goes back to it: status completed, its finished time and token usage; a video
    without one shows the attempt's status and reason. Returns the run id."""
    if status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise ValueError(f"end_attempt needs failed or cancelled, got {status}")
    tokens = None if token_usage is None else json.dumps(dict(token_usage))
    err = _clean_text(error_message)
    with conn.transaction():
        row = conn.execute(
            "SELECT current_run_id FROM db_video WHERE video_id = %s FOR UPDATE",
            (video_id,)).fetchone()
        if row is None:
            raise ValueError(f"video {video_id} does not exist")
        rid = run_id if run_id is not None else row[0]
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
                " VALUES (%s, %s, %s, now(), COALESCE(%s::jsonb, '{}'::jsonb)) RETURNING run_id",
                (video_id, status.value, err, tokens)).fetchone()[0])
        conn.execute(
            "UPDATE db_video v SET"
            " analysis_status = CASE WHEN c.run_id IS NULL THEN %(s)s ELSE 'completed' END,"
            " analysis_progress = CASE WHEN c.run_id IS NULL THEN v.analysis_progress ELSE 100 END,"
            " stage = CASE WHEN c.run_id IS NULL THEN %(s)s ELSE 'completed' END,"
            " error_message = CASE WHEN c.run_id IS NULL THEN %(err)s ELSE NULL END,"
            " started_at = CASE WHEN c.run_id IS NULL THEN v.started_at ELSE c.started_at END,"
            " finished_at = CASE WHEN c.run_id IS NULL THEN now() ELSE c.finished_at END,"
            " token_usage = CASE WHEN c.run_id IS NULL"
            "   THEN COALESCE(%(tok)s::jsonb, v.token_usage) ELSE c.token_usage END,"
            " eta_s = NULL, current_run_id = NULL, heartbeat_at = now(), updated_at = now()"
            " FROM db_video v0 LEFT JOIN db_run c ON c.run_id = v0.completed_run_id"
            " WHERE v0.video_id = v.video_id AND v.video_id = %(vid)s",
            {"s": status.value, "err": err, "tok": tokens, "vid": video_id})
    return int(rid)


def finish_video(conn, video_id: int, status: JobStatus, error_message: str | None = None,
                 token_usage: Mapping[str, Any] | None = None, run_id: int | None = None) -> None:
    """End a job: completed (``complete_run``), failed or cancelled (``end_attempt``: the video
    keeps its last completed result and status)."""
    if status is JobStatus.COMPLETED:
        if run_id is None:
            row = conn.execute("SELECT current_run_id FROM db_video WHERE video_id = %s",
                               (video_id,)).fetchone()
            run_id = None if row is None else row[0]
        complete_run(conn, video_id, run_id, token_usage)
    elif status in (JobStatus.FAILED, JobStatus.CANCELLED):
        end_attempt(conn, video_id, status, error_message, token_usage, run_id)
    else:
        raise ValueError(f"finish_video needs a final status, got {status}")


def mark_stale_jobs(conn, reason: str | None = None) -> list[int]:
    """Mark 'processing' rows whose worker is gone as failed. A live worker holds the video's
    advisory lock on its own connection; a row whose lock we can take has none."""
    stale: list[int] = []
    # A job run by a queue worker is recovered by db.jobs.recover_stalled (retried or failed
    # when the worker's heartbeat stops), not here.
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
            still = conn.execute("SELECT 1 FROM db_video WHERE video_id = %s"
                                 " AND analysis_status = 'processing'", (video_id,)).fetchone()
            if still is not None:
                end_attempt(conn, video_id, JobStatus.FAILED, why)
                stale.append(int(video_id))
                log.warning("video %s: %s", video_id, why)
        finally:
            unlock_video(conn, video_id)
    return stale
