"""AWS Batch submission (services/jobs/batch.py) at its boundary, with botocore's Stubber: the request
shape of submit_job (video id and source in the container environment), retries of throttling,
one-line errors, cancel by terminate_job, and the container's side (``pipeline run`` takes its
job from the environment)."""
from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from pipeline.records import JobStatus
from services.jobs import batch
from services.jobs import jobs
from services.errors import ServiceError
from settings import Settings

QUEUE = "va-gpu-queue"
DEFINITION = "va-analysis:3"


def _settings(**kw):
    return Settings(executor="batch", batch_job_queue=QUEUE, batch_job_definition=DEFINITION,
                    database_url="postgresql://unused/never", **kw)


@pytest.fixture
def stubbed():
    client = boto3.client("batch", region_name="eu-west-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    with Stubber(client) as stub:
        sleeps: list[float] = []
        yield batch.BatchQueue(_settings(), client=client, sleep=sleeps.append), stub, sleeps
        stub.assert_no_pending_responses()


OK = {"jobName": "x", "jobId": "7f1c-aa", "jobArn": "arn:aws:batch:eu-west-1:1:job/7f1c-aa"}


def _expected(video_id=12, source="s3://videos/videos/cam 1.mp4", env_more=()):
    return {
        "jobName": f"va-video-{video_id}-cam-1-mp4",
        "jobQueue": QUEUE,
        "jobDefinition": DEFINITION,
        "containerOverrides": {
            "command": ["run", "--quiet"],
            "environment": [{"name": "VA_JOB_VIDEO_ID", "value": str(video_id)},
                            {"name": "VA_JOB_SOURCE", "value": source}, *env_more],
        },
        "retryStrategy": {"attempts": 3},
        "tags": {"va:video_id": str(video_id)},
    }


def test_submit_passes_the_video_id_source_and_options_in_the_container_environment(stubbed):
    q, stub, sleeps = stubbed
    stub.add_response("submit_job", OK, _expected(env_more=(
        {"name": "VA_DEVICE", "value": "cuda"}, {"name": "VA_FRAME_SKIP", "value": "10"})))
    job_id = q.defer(12, "s3://videos/videos/cam 1.mp4", "cam 1.mp4",
                     jobs.AnalysisOptions(frame_skip=10, device="cuda"))
    assert job_id == "7f1c-aa" and sleeps == []


def test_throttling_is_retried_with_backoff_then_succeeds(stubbed):
    q, stub, sleeps = stubbed
    stub.add_client_error("submit_job", "TooManyRequestsException", "Too many requests", 429)
    stub.add_client_error("submit_job", "ServerException", "internal", 500)
    stub.add_response("submit_job", OK, _expected())
    assert q.defer(12, "s3://videos/videos/cam 1.mp4", "cam 1.mp4",
                   jobs.AnalysisOptions()) == "7f1c-aa"
    assert sleeps == [0.5, 1.0]


def test_retries_are_bounded(stubbed):
    q, stub, sleeps = stubbed
    for _ in range(batch.SUBMIT_TRIES):
        stub.add_client_error("submit_job", "TooManyRequestsException", "slow down", 429)
    with pytest.raises(ServiceError, match="TooManyRequestsException"):
        q.defer(12, "s3://videos/videos/cam 1.mp4", "cam 1.mp4", jobs.AnalysisOptions())
    assert len(sleeps) == batch.SUBMIT_TRIES - 1


def test_a_client_error_is_one_line_naming_the_settings_and_is_not_retried(stubbed):
    q, stub, sleeps = stubbed
    stub.add_client_error("submit_job", "ClientException",
                          "JobQueue va-gpu-queue not found\n(in eu-west-1)", 400)
    with pytest.raises(ServiceError) as e:
        q.defer(12, "s3://videos/videos/cam 1.mp4", "cam 1.mp4", jobs.AnalysisOptions())
    msg = str(e.value)
    assert "\n" not in msg and "ClientException" in msg and "not found" in msg
    assert "VA_BATCH_JOB_QUEUE='va-gpu-queue'" in msg and sleeps == []


def test_a_local_file_is_refused_before_any_call(stubbed):
    q, stub, _ = stubbed
    with pytest.raises(ServiceError, match="not an s3:// URI"):
        q.defer(12, "/home/me/cam1.mp4", "cam1.mp4", jobs.AnalysisOptions())


def test_cancel_terminates_the_batch_job(stubbed):
    q, stub, _ = stubbed
    for status, outcome in (("RUNNABLE", "cancelled"), ("RUNNING", "aborting")):
        stub.add_response("describe_jobs", {"jobs": [{
            "jobName": "x", "jobId": "7f1c-aa", "jobQueue": QUEUE, "status": status,
            "startedAt": 0, "jobDefinition": DEFINITION}]}, {"jobs": ["7f1c-aa"]})
        stub.add_response("terminate_job", {}, {"jobId": "7f1c-aa",
                                                "reason": "cancelled by the analyst"})
        assert q.cancel(12, "7f1c-aa") == outcome
    stub.add_response("describe_jobs", {"jobs": [{
        "jobName": "x", "jobId": "7f1c-aa", "jobQueue": QUEUE, "status": "SUCCEEDED",
        "startedAt": 0, "jobDefinition": DEFINITION}]}, {"jobs": ANY})
    assert q.cancel(12, "7f1c-aa") == "unknown"


def test_the_client_records_the_batch_job_and_cancels_through_it(stubbed):
    from test_jobs import FakeStore

    q, stub, _ = stubbed
    store = FakeStore()
    client = jobs.JobClient(q.settings, queue=q, store=store)
    stub.add_response("submit_job", OK, {**_expected(1, "s3://videos/videos/cam1.mp4"),
                                         "jobName": "va-video-1-cam1-mp4"})
    vid = client.submit("s3://videos/videos/cam1.mp4")
    assert store.rows[vid]["batch"] == "7f1c-aa" and store.rows[vid]["status"] is JobStatus.QUEUED
    stub.add_response("describe_jobs", {"jobs": [{
        "jobName": "x", "jobId": "7f1c-aa", "jobQueue": QUEUE, "status": "RUNNABLE",
        "startedAt": 0, "jobDefinition": DEFINITION}]}, {"jobs": ["7f1c-aa"]})
    stub.add_response("terminate_job", {}, {"jobId": "7f1c-aa", "reason": ANY})
    assert client.cancel(vid)
    assert store.rows[vid]["status"] is JobStatus.CANCELLED


def test_batch_settings_are_required_and_read_from_the_environment():
    from settings import SettingsError

    with pytest.raises(SettingsError, match="VA_BATCH_JOB_QUEUE"):
        Settings.from_env({"VA_EXECUTOR": "batch"})
    s = Settings.from_env({"VA_EXECUTOR": "batch", "VA_BATCH_JOB_QUEUE": QUEUE,
                           "VA_BATCH_JOB_DEFINITION": DEFINITION, "VA_JOB_VIDEO_ID": "12",
                           "VA_JOB_SOURCE": "s3://videos/videos/cam1.mp4"})
    assert (s.executor, s.job_video_id, s.job_source) == ("batch", 12,
                                                          "s3://videos/videos/cam1.mp4")


def test_the_container_runs_the_job_named_in_its_environment(monkeypatch, capsys):
    """What the image's ``python -m pipeline run --quiet`` does with the submitted environment."""
    from services.records import IngestOutcome
    from services import cli
    from services.jobs import ingest

    for k in ("DATABASE_URL", "POSTGRES_HOST"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("VA_JOB_VIDEO_ID", "12")
    monkeypatch.setenv("VA_JOB_SOURCE", "s3://videos/videos/cam1.mp4")
    monkeypatch.setenv("VA_FRAME_SKIP", "10")
    seen = {}

    def fake_analyze(source, settings, video_id=None, **kw):
        seen.update(source=source, video_id=video_id, frame_skip=settings.frame_skip)
        return IngestOutcome(video_id=12, name="cam1.mp4", status=JobStatus.COMPLETED,
                             n_events=3, n_highlights=0, n_embedded=3, embedding_model="m",
                             output_dir=None, elapsed_s=1.0)

    monkeypatch.setattr(ingest, "analyze_source", fake_analyze)
    assert cli.main(["run", "--quiet"]) == 0
    assert seen == {"source": "s3://videos/videos/cam1.mp4", "video_id": 12, "frame_skip": 10}
