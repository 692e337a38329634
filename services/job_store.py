"""The job runner's writes to ``db_video`` (queued, cancelled before start, crashed)."""
from __future__ import annotations

from pipeline.records import JobStatus
from services import database
from services.vocab import ACTIVE
from settings import Settings


class DbJobStore:
    """The runner's writes to ``db_video`` (queued / cancelled before start / crashed), through
    the db layer's own functions."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def create_pending(self, source: str, name: str, video_id: int | None) -> int:
        """The video's row (found by its source, or created with status pending)."""
        from services import ingest

        return ingest.find_or_create_video(self.settings, ingest.normalise_source(source),
                                           name, video_id)

    def set_status(self, video_id: int, status: JobStatus, error: str | None = None) -> None:
        from db import store

        with database.pooled(self.settings) as conn:
            store.finish_video(conn, video_id, status, error)

    def finish_if_active(self, video_id: int, status: JobStatus, error: str | None) -> None:
        """End the job only if the job itself did not record an end state."""
        from db import queries, store

        with database.pooled(self.settings) as conn:
            v = queries.get_video(conn, video_id)
            if v is not None and v.status in ACTIVE:
                store.finish_video(conn, video_id, status, error)

    def fail_orphaned_pending(self, min_age_s: float = 60.0) -> list[int]:
        """Fail 'pending' rows older than ``min_age_s`` (a CLI run holds 'pending' only for the
        instant between creating its row and taking the video's lock)."""
        from datetime import datetime, timezone

        from db import queries, store

        now = datetime.now(timezone.utc)
        failed = []
        with database.pooled(self.settings) as conn:
            for v in queries.list_videos(conn, statuses=[JobStatus.PENDING.value]):
                if v.updated_at is not None and (now - v.updated_at).total_seconds() < min_age_s:
                    continue
                store.finish_video(conn, v.video_id, JobStatus.FAILED,
                                   "the workbench restarted before this queued analysis began; "
                                   "start it again")
                failed.append(v.video_id)
        return failed
