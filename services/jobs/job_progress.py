"""A job's progress: each step's share of the job's 0-100 %, written to ``db_video`` and
forwarded to the caller (``services.jobs.ingest.analyze_source``)."""
from __future__ import annotations

import logging
import time

from db.connection import one_line
from pipeline.records import RunProgress
from pipeline.progress import Stage, remaining_s

log = logging.getLogger("va.services.jobs.ingest")

PROGRESS_EVERY_PCT = 5.0
PROGRESS_EVERY_S = 2.0
PROGRESS_WRITE_TIMEOUT_S = 20.0  # a frozen server never answers (db.connection.deadline)


class JobProgress:
    """Maps each step's progress into the job's 0-100 %, writes it to ``db_video`` at least every
    5 % or 2 s (and on every stage change), and forwards it to the caller. A failed write means
    the database is gone: the run is asked to stop, and the job ends failed."""

    def __init__(self, conn, video_id: int, on_progress, should_stop,
                 started_at: float | None = None, estimate_s: float | None = None):
        self.conn = conn
        # For the ETA before the run has its own (pipeline.progress.remaining_s).
        self.started_at = time.monotonic() if started_at is None else float(started_at)
        self.estimate_s = estimate_s
        self.video_id = video_id
        self.on_progress = on_progress
        self.user_stop = should_stop
        self.lost: BaseException | None = None
        self.last_pct = -100.0
        self.last_t = 0.0
        self.last_stage = None
        self.span = (0.0, 100.0)
        self.writes = 0

    def set_span(self, span: tuple[float, float]) -> None:
        """The part of the job's bar that the next step's 0..1 fractions fill (a ``Stage``'s
        span, or ``pipeline.progress.ENGINE_SPAN`` for the engine's run)."""
        self.span = span

    def __call__(self, p: RunProgress) -> None:
        lo, hi = self.span
        pct = lo + (hi - lo) * max(0.0, min(1.0, float(p.fraction)))
        # The engine's end is not the job's: storing follows.
        stage = Stage.STORING if p.stage == Stage.DONE else p.stage
        self.report(pct, stage, p.frames_done, p.frames_total, p.eta_s, p.message)

    def report(self, pct: float, stage: str, frames_done=None, frames_total=None, eta_s=None,
               message: str = "", force: bool = False) -> None:
        import psycopg

        now = time.monotonic()
        eta_s = remaining_s(self.estimate_s, now - self.started_at, eta_s, pct / 100.0)
        due = (force or stage != self.last_stage or pct - self.last_pct >= PROGRESS_EVERY_PCT
               or now - self.last_t >= PROGRESS_EVERY_S)
        if due and self.lost is None:
            from db.attempts import JobAttempt

            from db.connection import deadline
            from services.errors import DatabaseUnavailable as _DbGone

            try:
                with deadline(self.conn, PROGRESS_WRITE_TIMEOUT_S, "writing the job's progress"):
                    JobAttempt(self.conn, self.video_id).progress(pct, stage, frames_done,
                                                                  frames_total, eta_s)
                self.writes += 1
            except (psycopg.Error, _DbGone) as e:
                self.lost = e
                log.error("video %s: progress write failed (%s); stopping the run",
                          self.video_id, one_line(e))
            self.last_pct, self.last_t, self.last_stage = pct, now, stage
        if self.on_progress is not None:
            self.on_progress(RunProgress(fraction=pct / 100.0, stage=stage,
                                         frames_done=int(frames_done or 0),
                                         frames_total=int(frames_total or 0), eta_s=eta_s,
                                         message=message))

    def should_stop(self) -> bool:
        if self.lost is not None:
            return True
        return bool(self.user_stop and self.user_stop())
