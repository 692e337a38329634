"""services/jobs/job_views.py: progress labels name what they count (pipeline.progress.Stage)."""
from __future__ import annotations

import dataclasses

import pytest

from pipeline.records import JobStatus
from pipeline.progress import unit_of
from services.jobs.job_views import JobView


def _view(stage: str, status: JobStatus = JobStatus.PROCESSING, done=64, total=127,
          active=True, percent=50.0) -> JobView:
    return JobView(video_id=1, name="v.mp4", status=status, percent=percent, stage=stage,
                   frames_done=done, frames_total=total, eta_s=12.0, error=None, n_events=None,
                   active=active)


@pytest.mark.parametrize("stage, expected", [
    ("analysing frames", "frames 64/127"),
    ("uploading highlights", "highlights 64/127"),
    ("embedding", "sentences 64/127"),
    ("storing events", "events 64/127"),
    ("starting", ""),
    ("download", ""),
])
def test_counts_are_named_by_what_the_stage_counts(stage, expected):
    view = _view(stage)
    assert view.count_text == expected
    assert ("frames" in view.progress_text) == expected.startswith("frames")


def test_a_queued_rerun_shows_no_counts_of_the_previous_run():
    view = _view("done", status=JobStatus.QUEUED, done=127, total=127, percent=0.0)
    assert view.count_text == "" and "127/127" not in view.progress_text


def test_the_engines_done_is_not_the_jobs_done():
    assert "storing" in _view("done", percent=85.0).progress_text
    assert _view("done", status=JobStatus.COMPLETED, active=False).stage_text == "done"


def test_unknown_stage_counts_nothing():
    assert unit_of("something new") == "" and unit_of(None) == ""


# --- an ETA from the start; named stages around the engine (issue 13, defect 3) -----------------


def test_a_job_loading_its_models_says_so_with_an_eta_from_the_estimate():
    """The first job sat at '0% · starting' with no ETA while the worker loaded the models."""
    view = JobView(video_id=1, name="v.mp4", status=JobStatus.QUEUED, percent=0.0,
                   stage="loading models", frames_done=None, frames_total=None, eta_s=25.0,
                   error=None, n_events=None, active=True)
    assert view.progress_text == "0% · loading models · ETA 00:25"
    assert view.status_text == "starting"
    waiting = dataclasses.replace(view, stage="waiting for a worker", eta_s=None)
    assert waiting.status_text == "queued" and waiting.progress_text == "0% · waiting for a worker"


def test_eta_before_the_first_frame_is_what_is_left_of_the_estimate():
    from pipeline.progress import remaining_s

    assert remaining_s(30.0, 4.0, None) == 26.0  # models loading, no frame yet
    assert remaining_s(None, 4.0, None) is None  # an S3 video: nothing to say yet
    assert remaining_s(30.0, 31.0, None) is None  # overrun: no made-up ETA
    assert remaining_s(30.0, 31.0, 7.0, 0.3) == 7.0
    # The run's first ETA (one frame in) is noisy: the estimate leads, then the run's own.
    assert remaining_s(20.0, 2.0, 46.0, 0.06) == pytest.approx(18.0 + 0.12 * 28.0, abs=0.1)
    assert remaining_s(20.0, 5.0, 3.0, 0.3) == 15.0  # never under the estimate's rest
    assert remaining_s(20.0, 10.0, 4.0, 0.6) == 10.0  # finding events: the estimate's rest
    assert remaining_s(20.0, 10.0, 14.0, 0.6) == 14.0  # slower than estimated: the run's own


def test_a_stored_eta_counts_down_between_writes():
    from datetime import datetime, timedelta, timezone

    from services.jobs.job_views import eta_now

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert eta_now(25.0, now - timedelta(seconds=5), now) == 20.0
    assert eta_now(3.0, now - timedelta(seconds=5), now) == 0.0
    assert eta_now(25.0, now + timedelta(seconds=5), now) == 25.0  # clocks apart: as stored
    assert eta_now(None, now, now) is None


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED,
                                    JobStatus.CANCELLED])
def test_a_finished_or_failed_job_never_shows_a_running_bar(status):
    """issue 13, defect 12: 'No analysis running' above a stale 98 % bar."""
    view = _view("storing events", status=status, active=False, percent=98.0)
    assert not view.show_bar and view.count_text == ""
    assert _view("analysing frames").show_bar
    assert _view("waiting for a worker", status=JobStatus.QUEUED).show_bar


@pytest.mark.db
def test_the_job_writes_an_eta_from_its_start_and_names_storing(db_settings, db_pool):
    """Through the job's own progress writer on the real database: the row has an ETA before
    the first frame (from the estimate), and the engine's 'done' is written as 'storing
    results', never as 'done' at 85 %."""
    import time

    from db import queries, store
    from db.attempts import JobAttempt
    from pipeline.records import RunProgress
    from pipeline.progress import ENGINE_SPAN
    from services.jobs.ingest import _JobProgress

    with db_pool.connection() as conn:
        vid = store.create_video(conn, "v.mp4", "/v.mp4")
        JobAttempt(conn, vid).start(1, "h")
        progress = _JobProgress(conn, vid, None, None, started_at=time.monotonic() - 3.0,
                                estimate_s=20.0)
        progress.report(0.0, "starting", force=True)
        row = queries.get_video(conn, vid)
        assert row.stage == "starting" and row.eta_s == pytest.approx(17.0, abs=0.5)
        progress.set_span(ENGINE_SPAN)
        progress(RunProgress(fraction=1.0, stage="done", frames_done=52, frames_total=52,
                             eta_s=0.0))
        row = queries.get_video(conn, vid)
        assert row.stage == "storing results" and row.progress == pytest.approx(85.0)
