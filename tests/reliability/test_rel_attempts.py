"""Defects 4 and 6: runs are attempts. A failed or cancelled re-run of a completed video keeps
its events, frames, status, finished time and token usage, and is recorded (and shown) as a
failed/cancelled attempt with its reason; errors found before the analysis touch no row; a stop
after the files were written says so instead of "nothing was written"."""
from __future__ import annotations

import pytest

from pipeline.errors import Cancelled
from pipeline.records import JobStatus
from rel_support import FIGHT, copy_clip, events, fast, frame_files, runs, video
from services.media import storage as storage_mod
from services.errors import StorageError
from services.jobs.ingest import analyze_source

pytestmark = [pytest.mark.db, pytest.mark.slow]


@pytest.fixture
def completed(db_settings, tmp_path):
    s = fast(db_settings)
    clip = copy_clip(FIGHT, tmp_path / "in" / "clip.mp4")
    out = analyze_source(str(clip), s)
    v = video(s, out.video_id)
    evs = events(s, out.video_id)
    frames = frame_files(s, evs)
    assert v.status is JobStatus.COMPLETED and frames and all(frames.values())
    return s, clip, v, evs, frames


def _unchanged(s, before, evs, frames):
    after = video(s, before.video_id)
    assert after.status is JobStatus.COMPLETED and after.progress == 100
    assert after.finished_at == before.finished_at and after.started_at == before.started_at
    assert dict(after.token_usage) == dict(before.token_usage)
    assert [e.event_id for e in events(s, before.video_id)] == [e.event_id for e in evs]
    assert frame_files(s, evs) == frames
    return after


@pytest.mark.parametrize("stop_at", ["analysing frames", "uploading highlights", "embedding"])
def test_cancelled_rerun_keeps_the_completed_result(completed, tmp_path, stop_at):
    s, clip, before, evs, frames = completed
    out_dir = tmp_path / "out"
    stages = []

    def stop():
        return stop_at in stages

    with pytest.raises(Cancelled) as err:
        analyze_source(str(clip), s, output_dir=out_dir, should_stop=stop,
                       on_progress=lambda p: stages.append(p.stage))
    msg = str(err.value)
    assert "nothing was written" not in msg
    assert f"video {before.video_id} keeps its previous completed result" in msg
    if stop_at != "analysing frames":  # the files were complete when the stop came
        assert f"the analysis files in {out_dir} are complete" in msg
        assert (out_dir / "processed_results.csv").is_file()
    after = _unchanged(s, before, evs, frames)
    assert after.last_attempt_status is JobStatus.CANCELLED and after.last_attempt_error
    assert [r[1] for r in runs(s, before.video_id)] == ["completed", "cancelled"]
    # The attempt's own frames are gone: only the completed run's remain.
    root = s.data_dir / "storage" / "highlights" / str(before.video_id)
    assert {p.parent.name for p in root.rglob("*.jpg")} == {k.split("/")[2] for k in frames}


def test_failed_rerun_keeps_the_completed_result(completed, monkeypatch):
    s, clip, before, evs, frames = completed

    def broken(*a, **k):
        raise StorageError("S3 failed on s3://h/x (simulated); check the bucket settings")

    monkeypatch.setattr(storage_mod.Storage, "put_highlight", broken)
    with pytest.raises(StorageError):
        analyze_source(str(clip), s)
    after = _unchanged(s, before, evs, frames)
    assert after.last_attempt_status is JobStatus.FAILED
    assert "simulated" in after.last_attempt_error and after.error_message is None
    assert [r[1] for r in runs(s, before.video_id)] == ["completed", "failed"]


@pytest.mark.parametrize("override", [
    {"vlm_path": "/nonexistent/vlm"},
    {"detector_weights": "/nonexistent/yolo.pt", "detector": "yolo"},
    {"attributes": "mivolo"},
])
def test_errors_before_the_analysis_touch_no_row(completed, override):
    from pathlib import Path

    s, clip, before, evs, frames = completed
    kw = {k: Path(v) if k.endswith(("_path", "_weights")) else v for k, v in override.items()}
    if "vlm_path" in kw:
        kw["action"] = "vlm"
    bad = s.with_overrides(**kw)
    with pytest.raises(Exception) as err:
        analyze_source(str(clip), bad)
    assert "\n" not in str(err.value)
    after = _unchanged(s, before, evs, frames)
    assert after.last_attempt_status is None and after.updated_at == before.updated_at
    assert [r[1] for r in runs(s, before.video_id)] == ["completed"]


def test_rerun_switches_frames_with_the_events(completed):
    s, clip, before, evs, frames = completed
    out = analyze_source(str(clip), s)
    new = frame_files(s, events(s, before.video_id))
    assert new and all(new.values()) and not set(new) & set(frames)
    root = s.data_dir / "storage"
    assert not any((root / k).exists() for k in frames)  # the old run's frames, after commit
    v = video(s, out.video_id)
    assert v.status is JobStatus.COMPLETED and v.last_attempt_status is None


@pytest.mark.db
def test_an_attempt_left_processing_is_closed_by_the_next(db_settings):
    from db import store
    from db.attempts import JobAttempt

    with database_conn(db_settings) as conn:
        vid = store.create_video(conn, "v.mp4", "/x/v.mp4")
        first = JobAttempt(conn, vid).start(1, "gone")  # its worker died: never ended
        second = JobAttempt(conn, vid).start(2, "here")
        JobAttempt(conn, vid).end(JobStatus.CANCELLED, "stopped")
        rows = conn.execute("SELECT run_id, status FROM db_run WHERE video_id = %s ORDER BY run_id",
                            (vid,)).fetchall()
    assert rows == [(first, "failed"), (second, "cancelled")]


def database_conn(settings):
    from services import database

    return database.connect(settings)
