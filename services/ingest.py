"""Analyse a video into the database and storage: ``analyze_source``.

One job = one video. Its state lives in ``db_video`` (status, progress, stage, frames, ETA,
worker pid@host, heartbeat), so any process or browser sees it. The job holds the video's
advisory lock on its own connection for its whole life: a second run of the same video is refused
(or waits, ``wait=True``), and when a worker dies (kill -9, lost connection) the lock goes with
its connection, so ``mark_stale_jobs`` can tell a dead job from a live one on any host.

Flow: resolve the source (a local path, ``local:`` key or ``s3://bucket/key``) and check it
(missing file, bucket or key; a local non-video) -> load the models -> (nothing in the database
was touched so far) find/create the ``db_video`` row -> lock -> a new attempt (``db_run``,
processing) -> download -> ``run_video`` -> upload highlight frames under the attempt's own
prefix -> build event sentences and embed them in batches -> ONE transaction that replaces the
video's events (COPY), vectors and tracks and makes the attempt the video's completed run ->
delete the previous run's frames. A failure or a stop ends the attempt failed or cancelled with
the reason; the video keeps its last completed result (events, frames, status, finished time,
token usage), and the attempt's own frames are removed: nothing is half-written.
"""
from __future__ import annotations

import gc
import logging
import os
import socket
import time
from pathlib import Path, PurePosixPath
from typing import Callable

from pipeline import heap
from pipeline.errors import Cancelled, PipelineError
from pipeline.records import JobStatus, RunProgress, RunResult
from db.records import StoredObject
from services.records import (IngestOutcome, STAGE_LOADING_TEXT_MODEL, STAGE_STARTING,
                              STAGE_STORING)
from services.errors import DatabaseUnavailable, JobConflict, ServiceError, StorageError
from services.estimate import job_estimate_s, remaining_s
from services.highlight_frames import upload_highlights
from db.connection import one_line as _one_line
from services.job_progress import JobProgress as _JobProgress
from services.token_usage import usage as _usage, usage_delta as _usage_delta

log = logging.getLogger("va.services.ingest")

#: Client-side bounds on the job's database calls (a frozen server never answers; see
#: db.connection.deadline): the start of an attempt, the final switch (progress writes:
#: services.job_progress).
START_TIMEOUT_S = 30.0
SWITCH_TIMEOUT_S = 120.0
FINISH_TIMEOUT_S = 5.0
# Share of the job's 0-100 % per step.
SPAN_DOWNLOAD = (0.0, 5.0)
SPAN_ANALYSIS = (5.0, 85.0)
SPAN_UPLOAD = (85.0, 90.0)
SPAN_EMBED = (90.0, 98.0)


def source_name(source: str) -> str:
    """The video's name: the last part of the path or key."""
    from services.storage import parse_s3_uri, validate_name

    if source.startswith("s3://"):
        _, key = parse_s3_uri(source)
        name = PurePosixPath(key).name
    elif source.startswith("local:"):
        name = PurePosixPath(source[len("local:"):]).name
    else:
        name = Path(source).name
    return validate_name(name, "video name")


def normalise_source(source: str) -> str:
    if source.startswith(("s3://", "local:")):
        return source
    try:
        return str(Path(source).expanduser().resolve())
    except (RuntimeError, OSError) as e:  # 3.11 raises RuntimeError on a symlink loop
        loop = isinstance(e, RuntimeError) or getattr(e, "errno", None) == 40  # ELOOP
        raise StorageError(
            f"{source} is a symbolic link that leads back to itself (a loop); give the path of "
            f"the video file itself" if loop else
            f"{source} cannot be resolved ({_one_line(e, 200)}); check the path") from None


def find_or_create_video(settings, source: str, name: str, video_id: int | None) -> int:
    """The video's row id: ``video_id`` when given (it must exist), else the newest row with this
    ``source`` (normalised URI), else a new pending row named ``name``. Two concurrent calls for one
    new source create one row (a transaction-scoped advisory lock on the source)."""
    from db import store
    from services import database

    with database.pooled(settings) as conn:
        if video_id is not None:
            if not store.video_exists(conn, video_id):
                raise ServiceError(f"video {video_id} does not exist; omit --video-id to create it "
                                   f"or pick an existing video")
            return int(video_id)
        with conn.transaction():
            # Two starts of one new source must not create two rows.
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (source,))
            found = store.find_video_by_source(conn, source)
            return found if found is not None else store.create_video(conn, name, source)


def _upload_highlights(storage, video_id: int, run_id: int, result: RunResult,
                       progress: _JobProgress, should_stop) -> list[StoredObject | None]:
    return upload_highlights(storage, video_id, run_id, result, progress, should_stop,
                             SPAN_UPLOAD)


def _finish(conn_factory, video_id: int, status: JobStatus, reason: str | None,
            primary=None, token_usage=None, run_id: int | None = None,
            fresh_tries: int = 3) -> bool:
    """Record the end state; on a broken connection retry on fresh ones. Each try is bounded
    (``FINISH_TIMEOUT_S``, plus the connect timeout), so a frozen database costs seconds, not a
    hang; Ctrl-C passes ``fresh_tries=1``."""
    import psycopg

    from db import store
    from db.connection import deadline
    from db.errors import DatabaseUnavailable as _DbGone

    attempts = [primary] if primary is not None and not primary.closed else []
    attempts += [None] * fresh_tries
    for n, conn in enumerate(attempts):
        fresh = None
        try:
            if conn is None:
                fresh = conn = conn_factory()
            with deadline(conn, FINISH_TIMEOUT_S, f"recording the job {status.value}"):
                store.finish_video(conn, video_id, status, reason, token_usage, run_id=run_id)
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
    that opens the database (``services.pending_ends``)."""
    from services import database, pending_ends

    if _finish(lambda: database.connect(settings), video_id, status, reason, **kw):
        return True
    pending_ends.keep(settings, video_id, kw.get("run_id"), status, reason)
    return False


def _check_input(storage, source: str) -> None:
    """Errors found before analysis touch no row: a missing path or S3 bucket/key, a local file
    that is not a video (probed in well under a second, before any model loads)."""
    storage.check_source(source)
    if source.startswith("s3://"):
        return  # probed after the download, as part of the attempt
    from pipeline.sampling import probe_video

    path = storage.root / source[len("local:"):] if source.startswith("local:") else Path(source)
    probe_video(path)


def check_input(settings, source: str) -> str:
    """What ``run`` checks before touching a row (a missing path, bucket or key, a symlink loop,
    a folder, a local non-video), for ``enqueue``; returns the normalised source."""
    from services.storage import get_storage

    source = normalise_source(str(source))
    _check_input(get_storage(settings), source)
    return source


def _kept_message(vid: int, had_result: bool, out_dir: Path | None) -> str:
    """What a stopped or failed attempt leaves, in words (never "nothing was written" when
    ``--output`` holds a complete result)."""
    parts = []
    if out_dir is not None and (Path(out_dir) / "processed_results.csv").is_file():
        parts.append(f"the analysis files in {out_dir} are complete")
    parts.append(f"video {vid} keeps its previous completed result" if had_result else
                 f"no result was stored for video {vid}")
    return "; ".join(parts)


def analyze_source(source: str, settings, video_id: int | None = None,
                   output_dir: Path | None = None,
                   on_progress: Callable[[RunProgress], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, *, backends=None,
                   wait: bool = False, name: str | None = None,
                   started_at: float | None = None,
                   estimate_s: float | None = None) -> IngestOutcome:
    """Analyse ``source`` (local path, ``local:videos/x.mp4`` or ``s3://bucket/key``) and store
    its events, vectors, tracks and highlight frames. Raises ``JobConflict`` when the video is
    already being analysed (unless ``wait``), ``Cancelled`` on stop, ``PipelineError`` /
    ``ServiceError`` on failure.

    Every run is an attempt (``db_run``). Problems found before the analysis (settings, input,
    model weights, database) touch no row. A failed or cancelled attempt is recorded with its
    reason, and the video keeps its last completed result and status. A completed attempt
    replaces the video's events, vectors, tracks and highlight frames in one transaction; its
    frames were written under its own prefix, and the previous run's frames are deleted after
    the commit. ``started_at`` (monotonic; a worker's, before loading models) and ``estimate_s``
    (computed for a local file when omitted) give an ETA before the first analysed frame."""
    import psycopg

    from db import store
    from services import database
    from services.embeddings import embed_texts, embedding_plan, event_sentence, load_embedder
    from services.storage import get_storage

    t0 = time.monotonic()
    source = normalise_source(str(source))
    vname = name if name is not None else source_name(source)
    from services.storage import validate_name

    validate_name(vname, "video name")
    storage = get_storage(settings)
    _check_input(storage, source)  # a missing path or a non-video: < 2 s, no row, no model
    if estimate_s is None:
        estimate_s = job_estimate_s(settings, source)
    # Start-up work runs side by side: the database (embedded: a server process to start) while
    # the analysis models load. A worker that keeps its models loads the text embedder in the
    # background while the engine runs; a one-shot run (the CLI) loads it after the analysis,
    # once the analysis models are released: the default ONNX MiniLM loads in ~0.2 s but holds
    # ~100 MB, which on top of the engine's peak was the run's largest memory (vtest.avi).
    from concurrent.futures import Future, ThreadPoolExecutor

    owns_backends = backends is None
    prep = ThreadPoolExecutor(2, thread_name_prefix="va-prep")
    embedder_future: Future | None = None if owns_backends else prep.submit(load_embedder, settings)

    def open_database():
        database.get_pool(settings)  # reachable and migrated, or a one-line error
        database.mark_stale_jobs(settings)

    db_future = prep.submit(open_database)
    prep.shutdown(wait=False)
    if backends is None:  # bad weights or settings fail here, before any row is touched
        from pipeline.backends.registry import load_backends

        backends = load_backends(settings)
    db_future.result()
    start_ms = (time.monotonic() - t0) * 1000.0
    vid = find_or_create_video(settings, source, vname, video_id)

    from db.connection import deadline

    conn = database.connect(settings)  # holds the job's lock for its whole life
    run_id = None
    had_result = False
    out_dir = Path(output_dir) if output_dir else Path(settings.data_dir) / "runs" / f"video_{vid}"
    out_complete: Path | None = None
    committed = False
    try:
        with deadline(conn, START_TIMEOUT_S, "taking the video's job lock"):
            locked = store.try_lock_video(conn, vid)
        if not locked:
            if not wait:
                raise JobConflict(
                    f"video {vid} ({vname}) is already being analysed by "
                    f"{store.worker_of(conn, vid) or 'another worker'}; wait for it to finish or "
                    f"cancel it")
            log.info("video %s is being analysed elsewhere; waiting for it", vid)
            store.lock_video(conn, vid)
        with deadline(conn, START_TIMEOUT_S, "starting the job"):
            had_result = store.completed_run_of(conn, vid) is not None
            store.set_source(conn, vid, vname, source)
            run_id = store.mark_processing(conn, vid, os.getpid(), socket.gethostname())
        progress = _JobProgress(conn, vid, on_progress, should_stop,
                                started_at=t0 if started_at is None else started_at,
                                estimate_s=estimate_s)
        progress.report(0.0, STAGE_STARTING, force=True)
        try:
            progress.set_span(SPAN_DOWNLOAD)
            with storage.fetch(source, on_progress=progress) as local_path:
                if progress.should_stop():
                    raise Cancelled("stopped before the analysis began")
                progress.set_span(SPAN_ANALYSIS)
                from pipeline.run import run_video

                usage_before = _usage(backends)
                result = run_video(Path(local_path), out_dir, settings, backends=backends,
                                   on_progress=progress, should_stop=progress.should_stop)
            out_complete = result.output_dir
            usage_after = _usage(backends)
            if owns_backends:  # a one-shot run (the CLI): the analysis models are done with
                backends = None
                gc.collect()
                heap.give_back()
            warning = result.decode_warning
            if warning:
                log.warning("video %s: %s", vid, warning)
            thumbs = _upload_highlights(storage, vid, run_id, result, progress,
                                        progress.should_stop)

            frame_size = (result.video.width, result.video.height)
            sentences = [event_sentence(e, frame_size) for e in result.events]
            plan = embedding_plan(result.events, frame_size)
            t_embed = time.monotonic()
            if embedder_future is None or not embedder_future.done():
                progress.report(SPAN_EMBED[0], STAGE_LOADING_TEXT_MODEL, force=True)
            embedder = load_embedder(settings) if embedder_future is None \
                else embedder_future.result()  # loaded while the engine ran
            embedder_usage_before = _usage(None, embedder)
            progress.set_span(SPAN_EMBED)
            vecs = plan.vectors(embed_texts(embedder, plan.texts, on_progress=progress,
                                            should_stop=progress.should_stop)) \
                if plan.texts else None
            embed_ms = (time.monotonic() - t_embed) * 1000.0
            t_store = time.monotonic()
            if progress.should_stop():
                raise Cancelled("stopped before storing the events")
            progress.report(98.0, "storing events", len(sentences), len(sentences), force=True)
            with deadline(conn, SWITCH_TIMEOUT_S + len(sentences) / 200.0, "storing the events"), \
                    conn.transaction():  # the switch: events, frames, video info and run at once
                from db import jobs as _jobs

                if _jobs.abort_requested(conn, vid):  # a cancel that came after the last check
                    raise Cancelled("cancelled before the results were stored")
                old_thumbs = store.thumbnail_keys(conn, vid)
                n = store.replace_events(conn, vid, store.EventBatch(
                    events=result.events, sentences=sentences, thumbnails=thumbs, vectors=vecs,
                    model=embedder.name if vecs is not None else None, tracks=result.tracks,
                    vector_rows=plan.rows if vecs is not None else None,
                    person_vectors=result.person_vectors))
                store.set_video_info(conn, vid, result.video)
                store.complete_run(
                    conn, vid, run_id,
                    token_usage=_usage_delta(usage_before, usage_after)
                    | _usage_delta(embedder_usage_before, _usage(None, embedder)),
                    warning=warning, coverage=store.RunCoverage(
                        frames_decoded=result.frames_decoded,
                        frames_undecodable=result.frames_skipped_undecodable,
                        covered_from_s=(result.covered_s or (None, None))[0],
                        covered_to_s=(result.covered_s or (None, None))[1]))
            committed = True
            store_ms = (time.monotonic() - t_store) * 1000.0
        except Cancelled as e:
            if progress.lost is not None:
                from db.connection import DatabaseTimeout

                # A frozen server's timeout already says what happened and what to do.
                reason = _one_line(progress.lost) if isinstance(progress.lost, DatabaseTimeout) \
                    else (f"lost the database connection mid-run ({_one_line(progress.lost)}); "
                          f"check PostgreSQL (DATABASE_URL / POSTGRES_HOST) and start the "
                          f"analysis again")
                recorded = _finish_or_keep(settings, vid, JobStatus.FAILED,
                                   reason, run_id=run_id)
                _discard_attempt(storage, settings, vid, run_id, recorded)
                raise DatabaseUnavailable(reason + "; " + _kept_message(vid, had_result,
                                          out_complete) + ("" if recorded else
                                          "; the job will show failed at the next start")) from e
            recorded = _finish_or_keep(settings, vid, JobStatus.CANCELLED,
                               _one_line(e), primary=conn, run_id=run_id)
            _discard_attempt(storage, settings, vid, run_id, recorded)
            raise Cancelled(f"{_one_line(e)}; {_kept_message(vid, had_result, out_complete)}") \
                from e
        except psycopg.Error as e:
            reason = (f"database error during the run ({_one_line(e)}); check PostgreSQL "
                      f"(DATABASE_URL / POSTGRES_HOST) and start the analysis again")
            recorded = _finish_or_keep(settings, vid, JobStatus.FAILED, reason,
                               run_id=run_id)
            _discard_attempt(storage, settings, vid, run_id, recorded)
            raise DatabaseUnavailable(reason + "; " + _kept_message(vid, had_result, out_complete)
                                      + ("" if recorded else
                                         "; the job will show failed at the next start")) from e
        except KeyboardInterrupt as e:
            recorded = _finish_or_keep(settings, vid, JobStatus.CANCELLED,
                               "stopped by the user (Ctrl-C)", primary=conn, run_id=run_id,
                               fresh_tries=1)
            _discard_attempt(storage, settings, vid, run_id, recorded)
            raise Cancelled(f"stopped by the user (Ctrl-C); "
                            f"{_kept_message(vid, had_result, out_complete)}") from e
        except BaseException as e:  # noqa: BLE001 - every failure ends the attempt with its reason
            reason = _one_line(e) if isinstance(e, (PipelineError, ServiceError)) else \
                f"{type(e).__name__}: {_one_line(e)}"
            recorded = _finish_or_keep(settings, vid, JobStatus.FAILED, reason,
                               primary=conn, run_id=run_id)
            _discard_attempt(storage, settings, vid, run_id, recorded)
            raise
    finally:
        try:
            conn.close()  # releases the video's lock
        except Exception:  # noqa: BLE001 - a dead connection: the server drops the lock
            pass

    stale = [o for o in old_thumbs if o not in set(t for t in thumbs if t is not None)]
    if stale:
        storage.delete(stale)
    outcome = IngestOutcome(
        video_id=vid, name=vname, status=JobStatus.COMPLETED, n_events=n,
        n_highlights=sum(1 for t in thumbs if t is not None), n_embedded=0 if vecs is None else len(vecs),
        embedding_model=embedder.name if vecs is not None else None, output_dir=result.output_dir,
        elapsed_s=time.monotonic() - t0, warning=warning, frames_sampled=result.frames_sampled,
        stage_ms={**dict(result.stage_ms), "start": round(start_ms, 1),
                  "embed": round(embed_ms, 1), "store": round(store_ms, 1)})
    log.info(outcome.summary())
    return outcome


def _discard_attempt(storage, settings, vid: int, run_id: int | None, recorded: bool) -> None:
    """Remove the highlight frames a failed or cancelled attempt uploaded (no event points to
    them). Only when the attempt's end was recorded: an unrecorded end may hide a commit."""
    if run_id is None or not recorded:
        return
    from services.storage import highlight_prefix

    storage.delete_prefix(storage.highlights_in_s3, highlight_prefix(vid, run_id))


def mark_stale_jobs(settings) -> list[int]:
    """At start-up: 'processing' videos whose worker is gone are marked failed with a reason."""
    from services import database

    return database.mark_stale_jobs(settings)


__all__ = ["analyze_source", "mark_stale_jobs", "source_name", "IngestOutcome"]
