"""Videos and their job state as the pages show them; starting an analysis."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pipeline.records import JobStatus, mmss
from db.records import VideoRecord
from services import database
from services.jobs import AnalysisOptions, JobRunner, QueueSnapshot
from services.sources import VideoSource
from services.vocab import ACTIVE
from settings import Settings


@dataclass(frozen=True)
class JobView:
    """A video's job state as the Analyze page shows it."""

    video_id: int
    name: str
    status: JobStatus
    percent: float
    stage: str
    frames_done: int | None
    frames_total: int | None
    eta_s: float | None
    error: str | None
    n_events: int | None
    active: bool

    @property
    def progress_text(self) -> str:
        parts = [f"{self.percent:.0f}%", self.stage or self.status.value]
        if self.frames_total:
            parts.append(f"frames {self.frames_done or 0}/{self.frames_total}")
        if self.active and self.eta_s is not None:
            parts.append(f"ETA {mmss(self.eta_s)}")
        return " · ".join(parts)


def list_videos(settings: Settings, statuses: Sequence[str] = ()) -> list[VideoRecord]:
    from db import queries

    with database.pooled(settings) as conn:
        return queries.list_videos(conn, statuses=list(statuses))


def get_video(settings: Settings, video_id: int) -> VideoRecord | None:
    from db import queries

    with database.pooled(settings) as conn:
        return queries.get_video(conn, int(video_id))


def job_views(settings: Settings, snapshot: QueueSnapshot | None = None,
              limit: int = 50) -> list[JobView]:
    """All jobs, newest first: the database's state, with this process's queue on top (a video
    waiting in the queue shows 'queued')."""
    waiting = {r.video_id for r in snapshot.waiting} if snapshot else set()
    out = []
    for v in list_videos(settings)[:limit]:
        status = v.status
        if v.video_id in waiting and status is not JobStatus.PROCESSING:
            status = JobStatus.QUEUED
        active = status in ACTIVE
        queued = status is JobStatus.QUEUED
        out.append(JobView(
            video_id=v.video_id, name=v.name, status=status,
            percent=0.0 if queued else float(v.progress),
            stage=("waiting in the queue" if queued else (v.stage or status.value)),
            frames_done=v.frames_done, frames_total=v.frames_total, eta_s=v.eta_s,
            error=v.error_message, n_events=v.n_events, active=active))
    return out


def start_analysis(runner: JobRunner, source: VideoSource | str,
                   options: AnalysisOptions | None = None) -> int:
    """Queue an analysis on the worker; returns the video's id. Bad names fail here, at once."""
    from services.ingest import source_name

    uri = source.uri if isinstance(source, VideoSource) else str(source)
    return runner.submit(uri, options or AnalysisOptions(), name=source_name(uri))
