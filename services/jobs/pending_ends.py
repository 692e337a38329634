"""Ends of attempts that could not be recorded when they happened (the database frozen or gone
as the job ended). Each is kept as a small JSON file in the data folder and recorded with its own
reason by the next process that opens the database (``services.database.mark_stale_jobs``, a
worker's recovery), before the clean-up that would otherwise say "the worker stopped without
finishing" about a job that stopped because the database did."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pipeline.records import JobStatus

log = logging.getLogger("va.jobs")

FOLDER = "pending-ends"


def _folder(settings) -> Path:
    return Path(settings.data_dir) / FOLDER


def keep(settings, video_id: int, run_id: int | None, status: JobStatus,
         reason: str | None) -> None:
    """Keep the end of attempt ``run_id`` of ``video_id`` for the next process to record."""
    if run_id is None:
        return
    folder = _folder(settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{int(video_id)}-{int(run_id)}.json"
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"video_id": int(video_id), "run_id": int(run_id),
                                   "status": status.value, "reason": reason}))
        os.replace(tmp, path)
    except OSError as e:  # a full or read-only disk: the generic clean-up reason will do
        log.warning("could not keep the end of video %s's attempt (%s)", video_id, e)


def record(settings, conn) -> list[int]:
    """Record the kept ends (each only while its attempt is still the video's current one and
    processing); returns the videos recorded. ``conn`` is autocommit."""
    from db.attempts import JobAttempt

    folder = _folder(settings)
    if not folder.is_dir():
        return []
    done = []
    for path in sorted(folder.glob("*.json")):
        try:
            d = json.loads(path.read_text())
            attempt = JobAttempt(conn, int(d["video_id"]), int(d["run_id"]))
            if attempt.end_if_current(JobStatus(d["status"]), d.get("reason")):
                done.append(int(d["video_id"]))
                log.warning("video %s: recorded the %s end of attempt %s: %s", d["video_id"],
                            d["status"], d["run_id"], d.get("reason"))
        except (OSError, ValueError, KeyError) as e:
            log.warning("could not read %s (%s); removed", path.name, e)
        path.unlink(missing_ok=True)
    return done
