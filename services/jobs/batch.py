"""AWS Batch, as in the seed: with ``VA_EXECUTOR=batch`` each analysis is one Batch job on a
GPU instance instead of a job for the queue's workers.

``BatchQueue.defer`` calls ``batch.submit_job`` on ``VA_BATCH_JOB_QUEUE`` with
``VA_BATCH_JOB_DEFINITION``; the video id and source (and the analyst's options, as the ``VA_*``
settings they are) travel in the container environment, and the container (the ``Dockerfile``
image, entry point ``python -m pipeline``) runs ``run``: the same ``analyze_source`` a worker runs,
reporting status and progress through the database (the job definition supplies DATABASE_URL and
the S3 settings). Batch retries a failed container up to ``VA_MAX_ATTEMPTS`` times. Throttling
and server errors of the Batch API are retried here a few times with backoff; other errors are one
line naming the setting to fix.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from services.errors import ServiceError

log = logging.getLogger("va.batch")

#: Errors worth another try (the request itself was fine).
RETRYABLE = {"TooManyRequestsException", "ThrottlingException", "Throttling",
             "ServerException", "ServiceUnavailable", "InternalError"}
SUBMIT_TRIES = 4
BACKOFF_S = 0.5
#: The analyst's options as the settings the container reads.
OPTION_ENV = {"frame_skip": "VA_FRAME_SKIP", "device": "VA_DEVICE", "detector": "VA_DETECTOR",
              "attributes": "VA_ATTRIBUTES", "orientation": "VA_ORIENTATION",
              "action": "VA_ACTION", "scene": "VA_SCENE"}
NOT_STARTED = {"SUBMITTED", "PENDING", "RUNNABLE", "STARTING"}


def batch_client(settings):
    import boto3
    from botocore.config import Config

    # One retry layer (ours, below): botocore's own would multiply the attempts.
    return boto3.client("batch", region_name=settings.aws_region,
                        config=Config(retries={"total_max_attempts": 1}))


def job_name(video_id: int, name: str) -> str:
    """Batch job names: letters, digits, hyphens and underscores, up to 128."""
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:80]
    return f"va-video-{int(video_id)}-{stem}".rstrip("-")


class BatchQueue:
    """``services.jobs.jobs.JobQueue`` on AWS Batch."""

    def __init__(self, settings, client=None, sleep: Callable[[float], None] = time.sleep):
        if not (settings.batch_job_queue and settings.batch_job_definition):
            raise ServiceError("VA_EXECUTOR=batch needs VA_BATCH_JOB_QUEUE and "
                               "VA_BATCH_JOB_DEFINITION")
        self.settings = settings
        self._client = client
        self._sleep = sleep

    @property
    def client(self):
        if self._client is None:
            self._client = batch_client(self.settings)
        return self._client

    def submit_request(self, video_id: int, source: str, name: str, options,
                       queue: str | None = None) -> dict[str, Any]:
        from services.media.source_uri import SourceUri

        if not SourceUri.parse(source).is_s3:
            raise ServiceError(
                f"{name}: AWS Batch jobs read their video from S3, and {source} is not an "
                f"s3:// URI; set S3_BUCKET_VIDEOS (uploads then go to S3) or use "
                f"VA_EXECUTOR=queue")
        env = [{"name": "VA_JOB_VIDEO_ID", "value": str(int(video_id))},
               {"name": "VA_JOB_SOURCE", "value": source}]
        for key, value in sorted(options.to_json().items()):
            env.append({"name": OPTION_ENV[key], "value": str(value)})
        return {
            "jobName": job_name(video_id, name),
            "jobQueue": queue or self.settings.batch_job_queue,
            "jobDefinition": self.settings.batch_job_definition,
            "containerOverrides": {"command": ["run", "--quiet"], "environment": env},
            "retryStrategy": {"attempts": int(self.settings.max_attempts)},
            "tags": {"va:video_id": str(int(video_id))},
        }

    def _call(self, op: str, **params) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(1, SUBMIT_TRIES + 1):
            try:
                return getattr(self.client, op)(**params)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                msg = e.response.get("Error", {}).get("Message", "") or str(e)
                if code in RETRYABLE and attempt < SUBMIT_TRIES:
                    log.warning("AWS Batch %s: %s (try %d of %d)", op, code, attempt, SUBMIT_TRIES)
                    self._sleep(BACKOFF_S * 2 ** (attempt - 1))
                    continue
                raise ServiceError(
                    f"AWS Batch {op} failed ({code}: {' '.join(msg.split())[:200]}); check "
                    f"VA_BATCH_JOB_QUEUE={self.settings.batch_job_queue!r}, "
                    f"VA_BATCH_JOB_DEFINITION={self.settings.batch_job_definition!r}, AWS_REGION "
                    f"and the credentials") from None
            except BotoCoreError as e:
                raise ServiceError(f"AWS Batch {op} failed ({e}); check AWS_REGION, the "
                                   f"network and the credentials") from None
        raise AssertionError("unreachable")

    def defer(self, video_id: int, source: str, name: str, options,
              queue: str | None = None) -> str:
        resp = self._call("submit_job", **self.submit_request(video_id, source, name, options,
                                                               queue))
        log.info("video %s submitted to AWS Batch as %s", video_id, resp["jobId"])
        return str(resp["jobId"])

    def cancel(self, video_id: int, job_id: int | str) -> str:
        jobs = self._call("describe_jobs", jobs=[str(job_id)]).get("jobs", [])
        if not jobs or jobs[0].get("status") in ("SUCCEEDED", "FAILED"):
            return "unknown"
        status = jobs[0]["status"]
        self._call("terminate_job", jobId=str(job_id), reason="cancelled by the analyst")
        # A running container gets SIGTERM and records the job cancelled itself.
        return "cancelled" if status in NOT_STARTED else "aborting"
