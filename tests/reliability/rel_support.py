"""Helpers of the reliability tests (issue 10): real clips through the real engine into the
test PostgreSQL, with the cheap detector settings (MoveNet only) unless a test needs more."""
from __future__ import annotations

import shutil
from pathlib import Path

import conftest
from db import queries
from db.records import SearchFilters
from services import database

FIGHT = "clips/fight/fi001.mp4"  # 2 s, a violent highlight: the cheapest clip with a frame
CALM = "clips/fight/nofi001.mp4"
EMPTY = "clips/intel/people-detection.mp4"  # nobody in it: events without frames


def fast(settings):
    return settings.with_overrides(proposals="none")


def copy_clip(rel: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(conftest.testdata_path(rel), dest)
    return dest


def video(settings, video_id):
    with database.pooled(settings) as conn:
        return queries.get_video(conn, video_id)


def events(settings, video_id):
    with database.pooled(settings) as conn:
        return queries.list_events(conn, SearchFilters(video_ids=(video_id,)))


def runs(settings, video_id):
    with database.pooled(settings) as conn:
        return conn.execute("SELECT run_id, status, error_message, warning FROM db_run"
                            " WHERE video_id = %s ORDER BY run_id", (video_id,)).fetchall()


def frame_files(settings, evs) -> dict[str, bytes]:
    """key -> bytes of every stored frame the events point to (local storage)."""
    root = Path(settings.data_dir) / "storage"
    out = {}
    for e in evs:
        if e.thumbnail_key:
            p = root / e.thumbnail_key
            out[e.thumbnail_key] = p.read_bytes() if p.is_file() else None
    return out
