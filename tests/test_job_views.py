"""services/job_views.py: progress labels name what they count (issue 13, defect 3)."""
from __future__ import annotations

import pytest

from pipeline.records import JobStatus
from services.job_views import JobView, count_unit


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
    assert count_unit("something new") == "" and count_unit(None) == ""
