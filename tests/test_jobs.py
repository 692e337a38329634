"""The background job runner (services/jobs.py) with the real ingest, engine and embedded
PostgreSQL: queued jobs run one at a time and all finish, cancel works for waiting and running
jobs, a broken input fails alone, and the live state is in db_video for any reader."""
from __future__ import annotations

import pytest

from app_support import link_clips, wait_for
from conftest import stored_video
from pipeline.records import JobStatus
from services import workbench
from services.errors import JobConflict

pytestmark = [pytest.mark.db, pytest.mark.slow]


@pytest.fixture
def runner(db_settings):
    svc = workbench.open_services(db_settings)
    r = workbench.make_runner(svc)
    yield r
    workbench.shutdown_runners()


def _video(settings, vid):
    return stored_video(settings, vid)


def test_two_queued_analyses_both_finish_one_after_the_other(db_settings, runner, tmp_path):
    classroom, empty = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4",
                                  "clips/intel/people-detection.mp4")
    a = workbench.start_analysis(runner, str(classroom))
    b = workbench.start_analysis(runner, str(empty))
    assert a != b
    snap = runner.snapshot()
    assert {r.video_id for r in snap.waiting} | ({snap.running.video_id} if snap.running else
                                                 set()) == {a, b}
    assert runner.wait_idle(300), "the queue did not drain"
    va, vb = _video(db_settings, a), _video(db_settings, b)
    assert va.status is JobStatus.COMPLETED, va.error_message
    assert vb.status is JobStatus.COMPLETED, vb.error_message
    assert va.progress == 100 and vb.progress == 100
    # One worker: the second started only after the first finished.
    assert vb.started_at >= va.finished_at
    # Real results of each clip, not of the other: the classroom (3 s) has people in it; the
    # people-detection clip lasts 2 s (see ../shared/testdata/README.md).
    assert va.n_events > 0
    assert va.duration_s == pytest.approx(3.0, abs=0.5)
    assert vb.duration_s == pytest.approx(2.0, abs=0.5)
    assert (va.width, va.height) == (vb.width, vb.height) == (480, 270)


def test_same_video_cannot_be_queued_twice(runner, tmp_path):
    (clip,) = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4")
    vid = workbench.start_analysis(runner, str(clip))
    with pytest.raises(JobConflict, match="already queued or running"):
        workbench.start_analysis(runner, str(clip))
    assert runner.cancel(vid)
    assert runner.wait_idle(120)


def test_cancel_a_waiting_job_and_a_running_one(db_settings, runner, tmp_path):
    long_clip, short_clip = link_clips(tmp_path / "lib", "clips/pedestrians/vtest_first20s.mp4",
                                       "clips/intel/classroom.mp4")
    # Every 2nd frame of 20 s at 10 fps: long enough to be caught running.
    running = workbench.start_analysis(runner, str(long_clip),
                                       workbench.AnalysisOptions(frame_skip=2))
    waiting = workbench.start_analysis(runner, str(short_clip))
    assert runner.cancel(waiting)
    assert _video(db_settings, waiting).status is JobStatus.CANCELLED

    v = wait_for(lambda: (lambda v: v if v.status is JobStatus.PROCESSING and (v.frames_done or 0)
                          > 0 else None)(_video(db_settings, running)),
                 timeout=120, what="the long job to make progress")
    assert 0 <= v.progress < 100 and v.frames_total and v.stage
    assert runner.cancel(running)
    assert runner.wait_idle(120)
    v = _video(db_settings, running)
    assert v.status is JobStatus.CANCELLED, v.error_message
    assert v.n_events == 0  # nothing half-written
    assert _video(db_settings, waiting).n_events == 0
    assert not runner.cancel(running)  # no longer known to the runner


def test_a_broken_video_fails_with_a_reason_and_the_next_job_still_runs(db_settings, runner,
                                                                       tmp_path):
    lib = tmp_path / "lib"
    (good,) = link_clips(lib, "clips/intel/classroom.mp4")
    fake = lib / "notes.mp4"
    fake.write_text("this is a text file, not a video\n")
    bad_id = workbench.start_analysis(runner, str(fake))
    good_id = workbench.start_analysis(runner, str(good))
    assert runner.wait_idle(300)
    bad = _video(db_settings, bad_id)
    assert bad.status is JobStatus.FAILED
    assert bad.error_message and "\n" not in bad.error_message
    assert "Traceback" not in bad.error_message
    assert _video(db_settings, good_id).status is JobStatus.COMPLETED
    assert runner.snapshot().worker_alive


def test_progress_is_readable_from_the_database_while_running(db_settings, runner, tmp_path):
    """What a reloaded page or a second browser reads: db_video moves while the job runs."""
    (clip,) = link_clips(tmp_path / "lib", "clips/pedestrians/vtest_first20s.mp4")
    vid = workbench.start_analysis(runner, str(clip), workbench.AnalysisOptions(frame_skip=2))
    seen = []

    def progressed():
        v = _video(db_settings, vid)
        if v.status is JobStatus.PROCESSING and v.frames_done:
            seen.append((v.progress, v.frames_done))
        return len({f for _, f in seen}) >= 2 or v.status not in workbench.ACTIVE

    wait_for(progressed, timeout=180, every=0.3, what="two progress updates")
    views = {j.video_id: j for j in workbench.job_views(db_settings, runner.snapshot())}
    assert views[vid].active
    runner.cancel(vid)
    assert runner.wait_idle(120)
    assert len({f for _, f in seen}) >= 2, f"progress did not move: {seen}"
    assert seen == sorted(seen), "progress went backwards"


def test_queued_jobs_of_a_previous_process_are_marked_failed_at_start(db_settings):
    from db import store
    from services import database

    with database.pooled(db_settings) as conn:
        vid = store.create_video(conn, "left-behind.mp4", "/nowhere/left-behind.mp4")
        fresh = store.create_video(conn, "just-created.mp4", "/nowhere/just-created.mp4")
        # Queued five minutes ago by a process that is gone.
        conn.execute("UPDATE db_video SET updated_at = now() - interval '5 minutes' "
                     "WHERE video_id = %s", (vid,))
    workbench.make_runner(workbench.open_services(db_settings))
    try:
        v = _video(db_settings, vid)
        assert v.status is JobStatus.FAILED
        assert "restarted" in v.error_message and "start it again" in v.error_message
        # A row created an instant ago may be a CLI run about to take its lock: left alone.
        assert _video(db_settings, fresh).status is JobStatus.PENDING
    finally:
        workbench.shutdown_runners()


def test_a_video_analysed_by_another_process_is_left_to_it(db_settings, runner, tmp_path):
    """The CLI (or a second server) holds the video's job lock: the queued job does not start
    and does not overwrite that job's state."""
    import os

    from db import store
    from services import database, ingest

    (clip,) = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4")
    other = database.connect(db_settings)  # the other worker's dedicated connection
    try:
        vid = ingest.find_or_create_video(db_settings, ingest.normalise_source(str(clip)),
                                          clip.name, None)
        assert store.try_lock_video(other, vid)
        store.mark_processing(other, vid, os.getpid() + 1, "elsewhere")
        assert workbench.start_analysis(runner, str(clip)) == vid
        assert runner.wait_idle(60)
        v = _video(db_settings, vid)
        assert v.status is JobStatus.PROCESSING and v.worker.endswith("@elsewhere")
    finally:
        other.close()
