"""The job queue (services/jobs/jobs.py, services/jobs/worker.py, services/jobs/job_store.py, db/jobs.py).

First, fast tests with fakes (no database, no models, no timers): what the client writes when it
queues and cancels, and what one attempt on a worker records for each way a job can end. Then the
same with procrastinate, the real ingest and engine and the embedded PostgreSQL: a local worker
(the app's default) drains the queue in order, cancel works for waiting and running jobs, a
broken input fails alone, jobs of dead workers are retried or failed, and a running app's job
list never keeps a dead job 'processing'. tests/test_workers.py runs several worker processes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from app_support import link_clips, wait_for
from pipeline.errors import Cancelled, PipelineError
from pipeline.records import JobStatus
from conftest import stored_video
from services import workbench
from services.jobs import job_views
from services.jobs import jobs
from services.errors import JobConflict
from services.jobs.worker import JobExecutor
from settings import Settings

# --- fakes -------------------------------------------------------------------------------------


@dataclass
class FakeStore:
    rows: dict[int, dict] = field(default_factory=dict)
    busy: set[int] = field(default_factory=set)  # videos another worker or CLI run holds
    events: list[tuple] = field(default_factory=list)

    def create_pending(self, source, name, video_id):
        for vid, r in self.rows.items():
            if r["source"] == source:
                return vid
        vid = video_id or len(self.rows) + 1
        self.rows[vid] = {"source": source, "name": name, "status": JobStatus.PENDING,
                          "attempts": 0, "job": None, "batch": None, "error": None}
        return vid

    def is_active(self, video_id):
        return video_id in self.busy or self.rows[video_id]["status"] in (
            JobStatus.QUEUED, JobStatus.PROCESSING)

    def mark_queued(self, video_id):
        self.rows[video_id].update(status=JobStatus.QUEUED, attempts=0, error=None)

    def set_queue_job(self, video_id, job_id=None, batch_job_id=None):
        self.rows[video_id].update(job=job_id, batch=batch_job_id)

    def queue_job_of(self, video_id):
        r = self.rows[video_id]
        return r["job"], r["batch"]

    def start_attempt(self, video_id, attempt, job_id, stage=None, eta_s=None):
        self.rows[video_id]["attempts"] = attempt
        self.rows[video_id]["stage"] = stage
        self.events.append(("attempt", video_id, attempt))

    def set_status(self, video_id, status, error=None):
        self.rows[video_id].update(status=status, error=error)

    def finish_if_active(self, video_id, status, error):
        if self.rows[video_id]["status"] in (JobStatus.QUEUED, JobStatus.PROCESSING,
                                             JobStatus.PENDING):
            self.set_status(video_id, status, error)


@dataclass
class FakeQueue:
    """Jobs waiting (todo) or taken by a worker (doing); cancel behaves like procrastinate's."""

    jobs: dict[int, dict] = field(default_factory=dict)

    def defer(self, video_id, source, name, options, queue=None):
        if any(j["video_id"] == video_id and j["status"] == "todo" for j in self.jobs.values()):
            raise JobConflict(f"{name} is already queued")
        job_id = len(self.jobs) + 101
        self.jobs[job_id] = {"video_id": video_id, "source": source, "options": options.to_json(),
                             "queue": queue, "status": "todo"}
        return job_id

    def cancel(self, video_id, job_id):
        j = self.jobs.get(job_id)
        if j is None or j["status"] not in ("todo", "doing"):
            return "unknown"
        if j["status"] == "todo":
            j["status"] = "cancelled"
            return "cancelled"
        j["abort"] = True
        return "aborting"


@dataclass(frozen=True)
class FakeJob:
    id: int
    attempts: int = 0


@dataclass
class FakeContext:
    job: FakeJob
    abort: bool = False
    worker_name: str = "fake-worker"

    def should_abort(self):
        return self.abort


class FakeOutcome:
    def summary(self):
        return "done"


def _settings():
    return Settings(database_url="postgresql://unused/never")


def _client():
    store, queue = FakeStore(), FakeQueue()
    return jobs.JobClient(_settings(), queue=queue, store=store), store, queue


# --- the client (enqueue, cancel) ----------------------------------------------------------------


def test_submit_stores_queued_and_defers_one_job_with_the_options():
    client, store, queue = _client()
    vid = client.submit("/videos/a.mp4", jobs.AnalysisOptions(frame_skip=5), queue="gpu")
    row = store.rows[vid]
    assert row["status"] is JobStatus.QUEUED and row["name"] == "a.mp4"
    (job_id, job), = queue.jobs.items()
    assert row["job"] == job_id
    assert job == {"video_id": vid, "source": "/videos/a.mp4", "options": {"frame_skip": 5},
                   "queue": "gpu", "status": "todo"}


def test_the_same_video_is_not_queued_twice_and_bad_options_fail_before_any_row():
    client, store, queue = _client()
    client.submit("/videos/a.mp4")
    with pytest.raises(JobConflict, match="already queued or running"):
        client.submit("/videos/a.mp4")
    store.busy.add(store.create_pending("/videos/b.mp4", "b.mp4", None))  # a CLI run holds it
    with pytest.raises(JobConflict):
        client.submit("/videos/b.mp4")
    from settings import SettingsError

    with pytest.raises(SettingsError):
        client.submit("/videos/c.mp4", _BadOptions())
    assert len(queue.jobs) == 1
    assert "/videos/c.mp4" not in {r["source"] for r in store.rows.values()}


class _BadOptions(jobs.AnalysisOptions):
    def apply(self, settings):
        return settings.with_overrides(no_such_setting=1)


def test_cancel_a_waiting_job_ends_it_cancelled_a_running_one_is_asked_to_abort():
    client, store, queue = _client()
    waiting = client.submit("/videos/a.mp4")
    running = client.submit("/videos/b.mp4")
    queue.jobs[store.rows[running]["job"]]["status"] = "doing"
    store.rows[running]["status"] = JobStatus.PROCESSING

    assert client.cancel(waiting)
    assert store.rows[waiting]["status"] is JobStatus.CANCELLED
    assert store.rows[waiting]["error"] == "cancelled before it started"

    assert client.cancel(running)
    assert queue.jobs[store.rows[running]["job"]].get("abort")
    assert store.rows[running]["status"] is JobStatus.PROCESSING  # its worker records the end
    assert not client.cancel(waiting)  # nothing left to cancel


def test_a_queue_that_cannot_take_the_job_leaves_the_row_failed_with_the_reason():
    client, store, queue = _client()

    def broken(*a, **k):
        raise RuntimeError("queue unreachable")

    queue.defer = broken
    with pytest.raises(RuntimeError):
        client.submit("/videos/a.mp4")
    (row,) = store.rows.values()
    assert row["status"] is JobStatus.FAILED and "queue unreachable" in row["error"]


# --- one attempt on a worker (JobExecutor) --------------------------------------------------------


def _executor(analyze, loader=None, device=None):
    store = FakeStore()
    store.rows[7] = {"source": "/v.mp4", "name": "v.mp4", "status": JobStatus.PROCESSING,
                     "attempts": 0, "job": 3, "batch": None, "error": None}
    ex = JobExecutor(_settings(), analyze=analyze, store=store, backend_loader=loader,
                          device=device)
    return ex, store


def test_an_attempt_records_its_number_and_runs_with_the_jobs_options_and_kept_models():
    calls, loads = [], []

    def analyze(source, settings, **kw):
        calls.append((source, settings.frame_skip, settings.device, kw["backends"], kw["name"]))
        assert kw["should_stop"]() is False
        return FakeOutcome()

    def loader(settings):
        loads.append(settings.frame_skip)
        return object()

    ex, store = _executor(analyze, loader, device="cuda")
    ctx = FakeContext(FakeJob(3, attempts=1))  # procrastinate retried it once
    assert ex.run(ctx, video_id=7, source="/v.mp4", name="v.mp4",
                  options={"frame_skip": 4, "device": "cpu"}) == "done"
    assert store.events == [("attempt", 7, 2)]
    assert store.rows[7]["stage"] == "loading models"  # the first job loads them (defect 3)
    ex.run(ctx, video_id=7, source="/v.mp4", name="v.mp4", options={"frame_skip": 9})
    assert store.rows[7]["stage"] == "starting"  # kept from the first job
    # The worker's --device wins; models are loaded once and kept for the same choices (frame
    # skip is not a model choice).
    assert [c[1:3] for c in calls] == [(4, "cuda"), (9, "cuda")]
    assert len(loads) == 1 and calls[0][3] is calls[1][3]


def test_a_cancelled_attempt_ends_cancelled_and_aborts_the_procrastinate_job():
    from procrastinate.exceptions import JobAborted

    def analyze(source, settings, should_stop, **kw):
        assert should_stop()
        raise Cancelled("stopped at frame 12")

    ex, store = _executor(analyze)
    with pytest.raises(JobAborted):
        ex.run(FakeContext(FakeJob(3), abort=True), video_id=7, source="/v.mp4", name="v.mp4")
    assert store.rows[7]["status"] is JobStatus.CANCELLED


def test_a_failing_attempt_ends_failed_with_its_reason_and_a_bug_says_internal_error():
    def bad_input(source, settings, **kw):
        raise PipelineError("cannot decode v.mp4; check the file")

    ex, store = _executor(bad_input)
    with pytest.raises(PipelineError):
        ex.run(FakeContext(FakeJob(3)), video_id=7, source="/v.mp4", name="v.mp4")
    assert store.rows[7]["status"] is JobStatus.FAILED
    assert store.rows[7]["error"] == "cannot decode v.mp4; check the file"

    def bug(source, settings, **kw):
        raise ZeroDivisionError("division by zero")

    ex, store = _executor(bug)
    with pytest.raises(ZeroDivisionError):
        ex.run(FakeContext(FakeJob(3)), video_id=7, source="/v.mp4", name="v.mp4")
    assert store.rows[7]["error"].startswith("internal error (ZeroDivisionError")


def test_an_attempt_for_a_video_another_process_is_analysing_leaves_its_state_alone():
    def conflict(source, settings, **kw):
        raise JobConflict("video 7 is already being analysed by 1@cli")

    ex, store = _executor(conflict)
    assert ex.run(FakeContext(FakeJob(3)), video_id=7, source="/v.mp4",
                  name="v.mp4").startswith("skipped")
    assert store.rows[7]["status"] is JobStatus.PROCESSING


def test_a_job_aborted_before_it_began_never_loads_models():
    from procrastinate.exceptions import JobAborted

    loads = []
    ex, store = _executor(lambda *a, **k: pytest.fail("must not run"),
                          loader=lambda s: loads.append(s))
    with pytest.raises(JobAborted):
        ex.run(FakeContext(FakeJob(3), abort=True), video_id=7, source="/v.mp4", name="v.mp4")
    assert not loads and store.rows[7]["status"] is JobStatus.CANCELLED


# --- with procrastinate, the engine and PostgreSQL ------------------------------------------------

db_slow = [pytest.mark.db, pytest.mark.slow]


@pytest.fixture
def runner(db_settings):
    svc = workbench.open_services(db_settings)
    r = workbench.make_runner(svc)  # VA_WORKERS=local: a worker thread in this process
    yield r
    workbench.shutdown_runners()


def _video(settings, vid):
    return stored_video(settings, vid)


@pytest.mark.db
@pytest.mark.slow
def test_two_queued_analyses_both_finish_one_after_the_other(db_settings, runner, tmp_path):
    classroom, empty = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4",
                                  "clips/intel/people-detection.mp4")
    a = workbench.start_analysis(runner, str(classroom))
    b = workbench.start_analysis(runner, str(empty))
    assert a != b
    assert {_video(db_settings, v).status for v in (a, b)} <= {JobStatus.QUEUED,
                                                               JobStatus.PROCESSING}
    assert runner.wait_idle(300), "the queue did not drain"
    va, vb = _video(db_settings, a), _video(db_settings, b)
    assert va.status is JobStatus.COMPLETED, va.error_message
    assert vb.status is JobStatus.COMPLETED, vb.error_message
    assert va.progress == 100 and vb.progress == 100
    assert va.attempts == vb.attempts == 1
    # One local worker with concurrency 1: the second started after the first finished.
    assert vb.started_at >= va.finished_at
    assert va.n_events > 0
    assert va.duration_s == pytest.approx(3.0, abs=0.5)
    assert vb.duration_s == pytest.approx(2.0, abs=0.5)
    views = {j.video_id: j for j in workbench.job_views(db_settings)}
    assert views[a].worker and views[a].attempts == 1 and not views[a].active


@pytest.mark.db
def test_same_video_cannot_be_queued_twice(db_settings, tmp_path):
    (clip,) = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4")
    client = jobs.JobClient(db_settings)  # no worker: the job stays queued
    try:
        vid = workbench.start_analysis(client, str(clip))
        with pytest.raises(JobConflict, match="already queued or running"):
            workbench.start_analysis(client, str(clip))
        assert client.cancel(vid)
        v = _video(db_settings, vid)
        assert v.status is JobStatus.CANCELLED and v.error_message == "cancelled before it started"
        assert not client.is_active(vid)
    finally:
        client.shutdown()


@pytest.mark.db
@pytest.mark.slow
def test_cancel_a_waiting_job_and_a_running_one(db_settings, runner, tmp_path):
    long_clip, short_clip = link_clips(tmp_path / "lib", "clips/pedestrians/vtest_first20s.mp4",
                                       "clips/intel/classroom.mp4")
    running = workbench.start_analysis(runner, str(long_clip),
                                       workbench.AnalysisOptions(frame_skip=2))
    waiting = workbench.start_analysis(runner, str(short_clip))
    assert runner.cancel(waiting)
    assert _video(db_settings, waiting).status is JobStatus.CANCELLED

    v = wait_for(lambda: (lambda v: v if v.status is JobStatus.PROCESSING and (v.frames_done or 0)
                          > 0 else None)(_video(db_settings, running)),
                 timeout=120, what="the long job to make progress")
    assert 0 <= v.progress < 100 and v.frames_total and v.stage
    t0 = time.monotonic()
    assert runner.cancel(running)
    wait_for(lambda: _video(db_settings, running).status is JobStatus.CANCELLED, timeout=10,
             every=0.1, what="the running job to stop")
    assert time.monotonic() - t0 < 5.0
    assert runner.wait_idle(60)
    v = _video(db_settings, running)
    assert v.n_events == 0  # nothing half-written
    assert _video(db_settings, waiting).n_events == 0
    assert not runner.cancel(running)  # nothing left to cancel


@pytest.mark.db
@pytest.mark.slow
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


@pytest.mark.db
@pytest.mark.slow
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
    views = {j.video_id: j for j in workbench.job_views(db_settings)}
    assert views[vid].active and views[vid].status == "processing"
    runner.cancel(vid)
    assert runner.wait_idle(120)
    assert len({f for _, f in seen}) >= 2, f"progress did not move: {seen}"
    assert seen == sorted(seen), "progress went backwards"


@pytest.mark.db
def test_queued_jobs_outlive_the_process_that_queued_them(db_settings, tmp_path):
    """The queue is in the database: a job queued by a process that is gone is still queued."""
    (clip,) = link_clips(tmp_path / "lib", "clips/intel/people-detection.mp4")
    first = jobs.JobClient(db_settings)
    vid = first.submit(str(clip))
    first.shutdown()
    assert _video(db_settings, vid).status is JobStatus.QUEUED
    second = jobs.JobClient(db_settings)
    try:
        second.recover(force=True)
        assert _video(db_settings, vid).status is JobStatus.QUEUED
        assert second.is_active(vid)
    finally:
        assert second.cancel(vid)
        second.shutdown()


@pytest.mark.db
def test_a_video_analysed_by_a_cli_run_is_not_queued(db_settings, tmp_path):
    """The CLI (``pipeline run``) holds the video's job lock: queuing it is refused at once."""
    import os

    from db import store
    from db.attempts import JobAttempt
    from services import database
    from services.jobs import ingest

    (clip,) = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4")
    other = database.connect(db_settings)  # the CLI run's dedicated connection
    client = jobs.JobClient(db_settings)
    try:
        vid = ingest.find_or_create_video(db_settings, ingest.normalise_source(str(clip)),
                                          clip.name, None)
        assert store.try_lock_video(other, vid)
        JobAttempt(other, vid).start(os.getpid() + 1, "elsewhere")
        with pytest.raises(JobConflict):
            workbench.start_analysis(client, str(clip))
        v = _video(db_settings, vid)
        assert v.status is JobStatus.PROCESSING and v.worker.endswith("@elsewhere")
    finally:
        other.close()
        client.shutdown()


def _stall(settings, vid, heartbeat_age_s=60):
    """Make the video's queued job look taken by a worker that stopped heartbeating (what a
    kill -9 leaves behind), without a real worker or a timer."""
    from services import database

    with database.pooled(settings) as conn:
        wid = conn.execute("INSERT INTO procrastinate_workers (last_heartbeat) VALUES "
                           "(now() - make_interval(secs => %s)) RETURNING id",
                           (heartbeat_age_s,)).fetchone()[0]
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s "
                     "WHERE lock = %s AND status IN ('todo', 'doing')", (wid, f"video:{vid}"))
        conn.execute("UPDATE db_video SET analysis_status = 'processing', worker_pid = 4242,"
                     " worker_host = 'gone', analysis_progress = 40 WHERE video_id = %s", (vid,))
    return wid


def _procrastinate_job(settings, vid):
    from services import database

    with database.pooled(settings) as conn:
        return conn.execute("SELECT status, attempts FROM procrastinate_jobs WHERE lock = %s",
                            (f"video:{vid}",)).fetchone()


@pytest.mark.db
def test_a_dead_workers_job_is_queued_again_then_failed_when_the_attempts_are_used_up(
        db_settings, tmp_path):
    from dataclasses import replace

    (clip,) = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4")
    settings = replace(db_settings, max_attempts=2, stalled_after_s=10)
    client = jobs.JobClient(settings)
    try:
        vid = client.submit(str(clip))
        _stall(settings, vid, heartbeat_age_s=3)  # silent for 3 s: not dead yet
        client.recover(force=True)
        assert _video(settings, vid).status is JobStatus.PROCESSING

        _stall(settings, vid)
        client.recover(force=True)
        v = _video(settings, vid)
        assert v.status is JobStatus.QUEUED, v.error_message
        assert "worker stopped during attempt 1" in v.stage
        assert _procrastinate_job(settings, vid) == ("todo", 1)

        from services import database

        with database.pooled(settings) as conn:
            conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE lock = %s",
                         (f"video:{vid}",))
            conn.execute("UPDATE db_video SET analysis_status = 'processing' WHERE video_id = %s",
                         (vid,))
        _stall(settings, vid)
        client.recover(force=True)
        v = _video(settings, vid)
        assert v.status is JobStatus.FAILED
        assert "gave up after 2 attempts" in v.error_message
        assert _procrastinate_job(settings, vid)[0] == "failed"
    finally:
        client.shutdown()


@pytest.mark.db
def test_a_job_whose_analysis_still_holds_its_lock_is_never_taken_away(db_settings, tmp_path):
    """A late heartbeat alone does not make a worker dead: its analysis holds the video lock."""
    from db import store
    from services import database

    (clip,) = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4")
    client = jobs.JobClient(db_settings)
    alive = database.connect(db_settings)
    try:
        vid = client.submit(str(clip))
        _stall(db_settings, vid)
        assert store.try_lock_video(alive, vid)
        client.recover(force=True)
        assert _video(db_settings, vid).status is JobStatus.PROCESSING
        assert _procrastinate_job(db_settings, vid)[0] == "doing"
    finally:
        alive.close()
        client.shutdown()


@pytest.mark.db
def test_a_running_app_stops_showing_a_dead_job_as_processing(db_settings, tmp_path):
    """Issue 10, defect 10: no restart needed; the job list itself recovers the job."""
    (clip,) = link_clips(tmp_path / "lib", "clips/intel/classroom.mp4")
    client = jobs.JobClient(db_settings)
    try:
        vid = client.submit(str(clip))
        workbench.job_views(db_settings)  # the app is running and has shown the list
        _stall(db_settings, vid)
        job_views._RECOVERY.clear()  # the next refresh is due (throttled to every few seconds)
        (view,) = [j for j in workbench.job_views(db_settings) if j.video_id == vid]
        assert view.status == "queued" and "worker stopped" in view.stage
    finally:
        client.cancel(vid)
        client.shutdown()


def test_a_worker_probes_a_local_video_once_and_hands_it_to_the_run(tmp_path, monkeypatch):
    """The worker's probe (for the ETA before models load) is the job's only one: the video as
    probed goes to ``analyze_source`` as ``video``, whose input check then does not probe."""
    import pipeline.sampling as sampling
    from pipeline.records import VideoInfo
    from services.jobs import ingest

    clip = tmp_path / "v.mp4"
    clip.write_bytes(b"not read: probe_video is counted")
    info = VideoInfo(path=str(clip), fps=10.0, frame_count=100, width=64,
                     height=48)
    probes = []
    monkeypatch.setattr(sampling, "probe_video", lambda p: probes.append(p) or info)
    seen = {}

    def analyze(source, settings, **kw):
        seen["video"] = kw.get("video")
        assert ingest._check_input(_Storage(), source, kw["video"]) is info
        return FakeOutcome()

    ex, store = _executor(analyze, lambda s: object())
    store.rows[7]["source"] = str(clip)
    ex.run(FakeContext(FakeJob(3)), video_id=7, source=str(clip), name="v.mp4", options={})
    assert seen["video"] is info and len(probes) == 1


class _Storage:
    def check_source(self, source):
        return None
