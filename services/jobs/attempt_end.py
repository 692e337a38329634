"""How an analysis attempt that did not complete ends (``services.jobs.ingest.analyze_source``):
failed or cancelled with its reason, recorded through ``db.attempts.JobAttempt`` on the job's
own connection or fresh ones, or kept for the next process when the database is gone
(``services.jobs.pending_ends``); the attempt's own highlight frames are removed. Nothing stored
is half-written: the video keeps its last completed result."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import NoReturn

from db.connection import one_line as _one_line
from pipeline.errors import Cancelled, PipelineError
from pipeline.records import JobStatus
from services.errors import DatabaseUnavailable, ServiceError

log = logging.getLogger("va.services.jobs.ingest")

#: Each try to record an end is bounded (a frozen server never answers: db.connection.deadline).
FINISH_TIMEOUT_S = 5.0


def end_attempt(att, e: BaseException) -> None:
    """A failed or stopped attempt ends with its reason (recorded now, or kept for the next
    process), its frames removed; raises the error the caller sees (or returns, for the caller
    to re-raise ``e`` itself)."""
    import psycopg

    settings, vid, run_id = att.settings, att.vid, att.run_id
    progress = att.progress
    kept = _kept_message(vid, att.had_result, att.out_complete)
    if isinstance(e, Cancelled) and progress is not None and progress.lost is not None:
        from db.connection import DatabaseTimeout

        # A frozen server's timeout already says what happened and what to do.
        reason = _one_line(progress.lost) if isinstance(progress.lost, DatabaseTimeout) \
            else (f"lost the database connection mid-run ({_one_line(progress.lost)}); "
                  f"check PostgreSQL (DATABASE_URL / POSTGRES_HOST) and start the analysis again")
        _database_gone(att, e, reason, kept)
    if isinstance(e, Cancelled):
        recorded = _finish_or_keep(settings, vid, JobStatus.CANCELLED, _one_line(e),
                                   primary=att.conn, run_id=run_id)
        _discard_attempt(att.prep.storage, settings, vid, run_id, recorded)
        raise Cancelled(f"{_one_line(e)}; {kept}") from e
    if isinstance(e, psycopg.Error):
        reason = (f"database error during the run ({_one_line(e)}); check PostgreSQL "
                  f"(DATABASE_URL / POSTGRES_HOST) and start the analysis again")
        _database_gone(att, e, reason, kept)
    if isinstance(e, KeyboardInterrupt):
        recorded = _finish_or_keep(settings, vid, JobStatus.CANCELLED,
                                   "stopped by the user (Ctrl-C)", primary=att.conn,
                                   run_id=run_id, fresh_tries=1)
        _discard_attempt(att.prep.storage, settings, vid, run_id, recorded)
        raise Cancelled(f"stopped by the user (Ctrl-C); {kept}") from e
    reason = _one_line(e) if isinstance(e, (PipelineError, ServiceError)) else \
        f"{type(e).__name__}: {_one_line(e)}"
    recorded = _finish_or_keep(settings, vid, JobStatus.FAILED, reason, primary=att.conn,
                               run_id=run_id)
    _discard_attempt(att.prep.storage, settings, vid, run_id, recorded)


def _database_gone(att, e: BaseException, reason: str, kept: str) -> NoReturn:
    """The database went away mid-run: the attempt ends failed (on fresh connections, or kept
    for the next process) and the caller sees ``DatabaseUnavailable`` saying what was kept."""
    recorded = _finish_or_keep(att.settings, att.vid, JobStatus.FAILED, reason,
                               run_id=att.run_id)
    _discard_attempt(att.prep.storage, att.settings, att.vid, att.run_id, recorded)
    raise DatabaseUnavailable(reason + "; " + kept + ("" if recorded else
                              "; the job will show failed at the next start")) from e


def _finish(conn_factory, video_id: int, status: JobStatus, reason: str | None,
            primary=None, token_usage=None, run_id: int | None = None,
            fresh_tries: int = 3) -> bool:
    """Record the end state; on a broken connection retry on fresh ones. Each try is bounded
    (``FINISH_TIMEOUT_S``, plus the connect timeout), so a frozen database costs seconds, not a
    hang; Ctrl-C passes ``fresh_tries=1``."""
    import psycopg

    from db.attempts import JobAttempt
    from db.connection import deadline
    from services.errors import DatabaseUnavailable as _DbGone

    attempts = [primary] if primary is not None and not primary.closed else []
    attempts += [None] * fresh_tries
    for n, conn in enumerate(attempts):
        fresh = None
        try:
            if conn is None:
                fresh = conn = conn_factory()
            with deadline(conn, FINISH_TIMEOUT_S, f"recording the job {status.value}"):
                JobAttempt(conn, video_id, run_id).finish(status, reason, token_usage)
            return True
        except (psycopg.Error, _DbGone) as e:
            log.warning("video %s: could not record %s (%s)", video_id, status.value, _one_line(e))
            if n < len(attempts) - 1:
                time.sleep(1.0)
        finally:
            if fresh is not None:
                try:
                    fresh.close()
                except Exception:  # noqa: BLE001 - a dead connection
                    pass
    return False


def _finish_or_keep(settings, video_id: int, status: JobStatus, reason: str | None,
                    **kw) -> bool:
    """``_finish`` on fresh connections; an end that cannot be recorded now (the database frozen
    or gone) is kept in the data folder and recorded, with this reason, by the next process
    that opens the database (``services.jobs.pending_ends``)."""
    from services import database
    from services.jobs import pending_ends

    if _finish(lambda: database.connect(settings), video_id, status, reason, **kw):
        return True
    pending_ends.keep(settings, video_id, kw.get("run_id"), status, reason)
    return False


def _kept_message(vid: int, had_result: bool, out_dir: Path | None) -> str:
    """What a stopped or failed attempt leaves, in words (never "nothing was written" when
    ``--output`` holds a complete result)."""
    parts = []
    if out_dir is not None and (Path(out_dir) / "processed_results.csv").is_file():
        parts.append(f"the analysis files in {out_dir} are complete")
    parts.append(f"video {vid} keeps its previous completed result" if had_result else
                 f"no result was stored for video {vid}")
    return "; ".join(parts)


def _discard_attempt(storage, settings, vid: int, run_id: int | None, recorded: bool) -> None:
    """Remove the highlight frames a failed or cancelled attempt uploaded (no event points to
    them). Only when the attempt's end was recorded: an unrecorded end may hide a commit."""
    if run_id is None or not recorded:
        return
    from services.media.storage import highlight_prefix

    storage.delete_prefix(storage.highlights_in_s3, highlight_prefix(vid, run_id))
