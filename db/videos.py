"""``db_video`` rows: a video, its source and its per-video job lock (the job's status:
``db/attempts.py``).
Functions take an open psycopg connection; the caller owns transactions and locks."""
from __future__ import annotations

import logging

from db.values import clean_text as _clean_text, finite as _finite
from pipeline.records import VideoInfo

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


def set_video_info(conn, video_id: int, info: VideoInfo) -> None:
    conn.execute(
        "UPDATE db_video SET fps = %s, duration_s = %s, frame_count = %s, width = %s, height = %s,"
        " updated_at = now() WHERE video_id = %s",
        (_finite(info.fps), _finite(info.duration_s), int(info.frame_count), int(info.width),
         int(info.height), video_id),
    )
