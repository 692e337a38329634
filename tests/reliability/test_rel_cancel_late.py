"""Issue 21, item 7: a cancel that arrives late in a job never says "cancelling" while the job
completes. A real procrastinate worker (in this process) runs the real analysis; the cancel is
sent from inside the job at its last moments: after its last stop check ("storing events", where
the worker's abort poll may not have seen it yet), the job ends cancelled and stores nothing;
after its result is stored, the cancel says "too late to cancel" and the result stands."""
from __future__ import annotations

import pytest

from pipeline.records import JobStatus
from rel_support import FIGHT, copy_clip, fast, runs, video
from services.jobs import jobs
from services.errors import JobConflict
from services.jobs.ingest import analyze_source
from services.jobs.worker import JobExecutor, LocalWorker

pytestmark = [pytest.mark.db, pytest.mark.slow]


state: dict = {}  # the client and the video id, for the job's hook


def _run_with(settings, analyze, clip):
    executor = JobExecutor(settings, analyze=analyze)
    worker = LocalWorker(settings, executor=executor, concurrency=1).start()
    client = jobs.JobClient(settings)
    try:
        vid = client.submit(str(clip))
        state["client"], state["vid"] = client, vid
        assert client.wait_idle(240, [vid]), "the job did not finish"
        return vid
    finally:
        worker.stop()
        client.shutdown()



def test_cancel_after_the_last_stop_check_cancels(db_settings, tmp_path):
    s = fast(db_settings)
    clip = copy_clip(FIGHT, tmp_path / "lib" / "late_cancel.mp4")
    answers = []

    def analyze(source, settings, **kw):
        def hook(p):
            if p.stage == "storing events" and not answers:
                answers.append(state["client"].cancel(state["vid"]))
        return analyze_source(source, settings, on_progress=hook, **kw)

    vid = _run_with(s, analyze, clip)
    assert answers == [True]  # "cancelling": then the job must not complete
    v = video(s, vid)
    assert v.status is JobStatus.CANCELLED, (v.status, v.error_message)
    assert [r[1] for r in runs(s, vid)] == ["cancelled"]
    assert (v.n_events or 0) == 0


def test_cancel_after_the_result_is_stored_is_too_late(db_settings, tmp_path):
    s = fast(db_settings)
    clip = copy_clip(FIGHT, tmp_path / "lib" / "too_late.mp4")
    raised = []

    def analyze(source, settings, **kw):
        outcome = analyze_source(source, settings, **kw)  # stored; the job is still running
        try:
            state["client"].cancel(state["vid"])
        except JobConflict as e:
            raised.append(str(e))
        return outcome

    vid = _run_with(s, analyze, clip)
    assert raised and raised[0].startswith("too late to cancel"), raised
    v = video(s, vid)
    assert v.status is JobStatus.COMPLETED and v.n_events > 0, (v.status, v.error_message)
