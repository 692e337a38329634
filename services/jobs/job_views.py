"""Videos and their job state as the pages show them; starting an analysis."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pipeline.progress import Stage, eta_now, unit_of
from pipeline.records import JobStatus, mmss
from db.records import VideoRecord
from services import database
from services.jobs.jobs import AnalysisOptions, JobClient, NoQueue, QueueSnapshot
from services.media.sources import VideoSource
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
    attempts: int = 0  # runs started (a job whose worker died is run again)
    worker: str | None = None  # pid@host of the worker that runs (or ran) it
    #: The latest attempt when it failed or was cancelled while the video kept its completed
    #: result (status stays completed): shown as such, beside the kept result.
    last_attempt_status: JobStatus | None = None
    last_attempt_error: str | None = None
    warning: str | None = None  # the completed result's warning (part of the video undecodable)

    @property
    def count_text(self) -> str:
        """The stage's own count with its unit ("frames 40/114", "highlights 1/10",
        "sentences 64/127"); empty when the stage counts nothing or the job is not running
        (a queued re-run keeps the last run's counts in its row, which are not this run's)."""
        unit = unit_of(self.stage)
        if not self.active or self.status is not JobStatus.PROCESSING or not unit \
                or not self.frames_total:
            return ""
        return f"{unit} {self.frames_done or 0}/{self.frames_total}"

    @property
    def status_text(self) -> str:
        """The status as shown: a queued job a worker has taken (loading its models) is
        'starting', not 'queued'."""
        if self.status is JobStatus.QUEUED and self.stage in (Stage.LOADING_MODELS,
                                                             Stage.STARTING):
            return "starting"
        return self.status.value

    @property
    def show_bar(self) -> bool:
        """Only a queued or running job has a progress bar; a finished, failed or cancelled one
        never shows its last stored percentage."""
        return self.status in ACTIVE

    @property
    def stage_text(self) -> str:
        if self.stage == Stage.DONE and self.status is JobStatus.PROCESSING:
            return "analysis done, storing"  # the engine's end, not the job's
        return self.stage or self.status.value

    @property
    def progress_text(self) -> str:
        parts = [f"{self.percent:.0f}%", self.stage_text]
        if self.count_text:
            parts.append(self.count_text)
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
    """All jobs, newest first, as stored in ``db_video`` ('queued' included). Jobs whose worker
    stopped heartbeating are retried or failed first (at most every few seconds per process), so
    a running app never keeps showing a dead job as 'processing'."""
    _recover_throttled(settings)
    out = []
    for v in list_videos(settings)[:limit]:
        status = v.status
        queued = status is JobStatus.QUEUED
        out.append(JobView(
            video_id=v.video_id, name=v.name, status=status,
            percent=0.0 if queued else float(v.progress),
            stage=v.stage or ("waiting in the queue" if queued else status.value),
            frames_done=v.frames_done, frames_total=v.frames_total,
            eta_s=eta_now(v.eta_s, v.updated_at) if status in ACTIVE else None,
            error=v.error_message, n_events=v.n_events, active=status in ACTIVE,
            attempts=v.attempts, worker=v.worker,
            last_attempt_status=v.last_attempt_status, last_attempt_error=v.last_attempt_error,
            warning=v.warning))
    return out


def job_view(settings: Settings, video_id: int) -> JobView | None:
    """One video's job as every page shows it (the sidebar, Analyze and the Video page read
    the same view, so they never disagree on a finished job)."""
    return next((j for j in job_views(settings, limit=500) if j.video_id == int(video_id)), None)


_RECOVERY: dict[str, JobClient] = {}


def _recover_throttled(settings: Settings) -> None:
    key = repr(settings)
    client = _RECOVERY.get(key)
    if client is None:
        client = _RECOVERY.setdefault(key, JobClient(settings, queue=NoQueue()))
    client.recover()


def start_analysis(runner: JobClient, source: VideoSource | str,
                   options: AnalysisOptions | None = None, queue: str | None = None) -> int:
    """Queue an analysis for a worker; returns the video's id. Bad names fail here, at once."""
    from services.jobs.ingest import source_name

    uri = source.uri if isinstance(source, VideoSource) else str(source)
    return runner.submit(uri, options or AnalysisOptions(), name=source_name(uri), queue=queue)


def launch(runner: JobClient, source: VideoSource | str, options: AnalysisOptions | None = None,
           *, actor, queue: str | None = None) -> int:
    """Start an analysis as a signed-in analyst or admin (the pages' way in), or as the server's
    operator (``pipeline enqueue``): the role is checked, the launch audited. Returns the
    video's id."""
    from services.access import access

    from services.jobs.ingest import audit_launch, source_name

    who = access.require(runner.settings, actor, access.Role.ANALYST)
    vid = start_analysis(runner, source, options, queue)
    uri = source.uri if isinstance(source, VideoSource) else str(source)
    audit_launch(runner.settings, vid, who.name, source_name(uri))
    return vid


def cancel_analysis(runner: JobClient, video_id: int, *, actor) -> bool:
    """Cancel a queued or running analysis as an analyst or admin (checked, audited). False
    when the video has no queued or running job."""
    from services.access import access

    who = access.require(runner.settings, actor, access.Role.ANALYST)
    done = runner.cancel(int(video_id))
    if done:
        from db.attempts import JobAttempt

        with database.pooled(runner.settings) as conn:
            JobAttempt(conn, video_id).audit(who.name, access.AuditAction.CANCEL)
    return done
