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
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pipeline import heap
from pipeline.errors import Cancelled
from pipeline.records import JobStatus, RunProgress, RunResult, VideoInfo
from pipeline.progress import ENGINE_SPAN, Stage
from services.records import IngestOutcome
from services.media.source_uri import SourceUri
from services.errors import JobConflict, ServiceError, StorageError
from services.jobs.estimate import job_estimate_s
from services.media.highlight_frames import upload_highlights
from db.connection import one_line as _one_line
from services.jobs.job_progress import JobProgress as _JobProgress
from services.jobs.token_usage import usage as _usage, usage_delta as _usage_delta

log = logging.getLogger("va.services.jobs.ingest")

#: Client-side bounds on the job's database calls (a frozen server never answers; see
#: db.connection.deadline): the start of an attempt, the final switch (progress writes:
#: services.jobs.job_progress).
START_TIMEOUT_S = 30.0
SWITCH_TIMEOUT_S = 120.0


def source_name(source: str) -> str:
    """The video's name: the last part of the path or key."""
    from services.media.storage import parse_s3_uri, validate_name

    src = SourceUri.parse(source)
    if src.is_s3:
        parse_s3_uri(source)  # a bucket and a key, each part a name
    return validate_name(src.name, "video name")


def normalise_source(source: str) -> str:
    if SourceUri.parse(source).is_stored:
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


def _check_input(storage, source: str, video: VideoInfo | None = None) -> VideoInfo | None:
    """Errors found before analysis touch no row: a missing path or S3 bucket/key, a local file
    that is not a video (probed in well under a second, before any model loads). Returns the
    local video as probed (the job's one probe of it), None for S3 (probed after the download,
    as part of the attempt). ``video``: the local video as the caller already probed it."""
    storage.check_source(source)
    src = SourceUri.parse(source)
    if src.is_s3:
        return None
    if video is not None:
        return video
    from pipeline.sampling import probe_video

    return probe_video(storage.root / src.key if src.is_local else Path(source))


def check_input(settings, source: str) -> str:
    """What ``run`` checks before touching a row (a missing path, bucket or key, a symlink loop,
    a folder, a local non-video), for ``enqueue``; returns the normalised source."""
    from services.media.storage import get_storage

    source = normalise_source(str(source))
    _check_input(get_storage(settings), source)
    return source


def analyze_source(source: str, settings, video_id: int | None = None,
                   output_dir: Path | None = None,
                   on_progress: Callable[[RunProgress], None] | None = None,
                   should_stop: Callable[[], bool] | None = None, *, backends=None,
                   wait: bool = False, name: str | None = None,
                   started_at: float | None = None,
                   estimate_s: float | None = None,
                   video: VideoInfo | None = None,
                   launched_by: str | None = None) -> IngestOutcome:
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
    (computed for a local file when omitted) give an ETA before the first analysed frame;
    ``video``: the local video as the caller (a worker) already probed it, not probed again;
    ``launched_by``: who started the run from the command line (``cli:<login>``), recorded in
    the audit trail once the input is checked (queued jobs are audited when queued)."""
    from services import database
    from services.jobs import attempt_end

    prep = _prepare(source, settings, name, backends, estimate_s, video)
    vid = find_or_create_video(settings, prep.source, prep.vname, video_id)
    if launched_by is not None:
        audit_launch(settings, vid, launched_by, prep.vname)
    out_dir = Path(output_dir) if output_dir else Path(settings.data_dir) / "runs" / f"video_{vid}"
    att = _Attempt(settings, prep, vid, database.connect(settings))  # holds the job's lock
    try:
        _begin(att, wait, on_progress, should_stop, started_at)
        try:
            stored = _run_attempt(att, out_dir)
        except BaseException as e:  # noqa: BLE001 - every failure ends the attempt with its reason
            attempt_end.end_attempt(att, e)
            raise
    finally:
        try:
            att.conn.close()  # releases the video's lock
        except Exception:  # noqa: BLE001 - a dead connection: the server drops the lock
            pass
    return _outcome(att, stored)


def audit_launch(settings, vid: int, actor: str, name: str) -> None:
    """The launch's row in the audit trail (the Analyze page, ``enqueue`` and ``run`` alike)."""
    from db.attempts import JobAttempt
    from db.audit import AuditAction
    from services import database

    with database.pooled(settings) as conn:
        JobAttempt(conn, vid).audit(actor, AuditAction.LAUNCH, name)


@dataclass
class _Prepared:
    """What an analysis has before it touches a row: its checked source, models and estimate."""

    source: str
    vname: str
    storage: object
    backends: object
    owns_backends: bool
    embedder: Future | None
    estimate_s: float | None
    t0: float
    start_ms: float
    info: VideoInfo | None = None  # a local video as probed by the input check


@dataclass
class _Attempt:
    """One attempt of one video's job, as its steps share it."""

    settings: object
    prep: _Prepared
    vid: int
    conn: object
    progress: _JobProgress | None = None
    run_id: int | None = None
    had_result: bool = False
    out_complete: Path | None = None


@dataclass(frozen=True)
class _Stored:
    """What the attempt's final switch stored."""

    result: RunResult
    n_events: int
    thumbs: list
    old_thumbs: list
    vecs: object
    embedder_name: str
    warning: str | None
    embed_ms: float
    store_ms: float


def _prepare(source: str, settings, name: str | None, backends,
             estimate_s: float | None, video: VideoInfo | None = None) -> _Prepared:
    """Check the source (a missing path or a non-video: < 2 s, no row, no model) and start up
    side by side: the database (embedded: a server process to start) while the analysis models
    load. A worker that keeps its models loads the text embedder in the background while the
    engine runs; a one-shot run (the CLI) loads it after the analysis, once the analysis models
    are released, so the embedder (~100 MB) never adds to the engine's peak memory."""
    from concurrent.futures import ThreadPoolExecutor

    from services import database
    from services.search.embeddings import load_embedder
    from services.media.storage import get_storage, validate_name

    t0 = time.monotonic()
    source = normalise_source(str(source))
    vname = name if name is not None else source_name(source)
    validate_name(vname, "video name")
    storage = get_storage(settings)
    info = _check_input(storage, source, video)
    if estimate_s is None:
        estimate_s = job_estimate_s(settings, source, info)
    owns_backends = backends is None
    pool = ThreadPoolExecutor(2, thread_name_prefix="va-prep")
    embedder = None if owns_backends else pool.submit(load_embedder, settings)

    def open_database():
        database.get_pool(settings)  # reachable and migrated, or a one-line error
        database.mark_stale_jobs(settings)

    db_ready = pool.submit(open_database)
    pool.shutdown(wait=False)
    if backends is None:  # bad weights or settings fail here, before any row is touched
        from pipeline.backends.registry import load_backends

        backends = load_backends(settings)
    db_ready.result()
    return _Prepared(source, vname, storage, backends, owns_backends, embedder, estimate_s, t0,
                     (time.monotonic() - t0) * 1000.0, info)


def _begin(att: _Attempt, wait: bool, on_progress, should_stop, started_at) -> None:
    """Take the video's job lock (or wait for it) and start the attempt (``db_run``)."""
    from db import store
    from db.attempts import JobAttempt
    from db.connection import deadline

    conn, vid, vname = att.conn, att.vid, att.prep.vname
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
        att.had_result = store.completed_run_of(conn, vid) is not None
        store.set_source(conn, vid, vname, att.prep.source)
        att.run_id = JobAttempt(conn, vid).start(os.getpid(), socket.gethostname())
    att.progress = _JobProgress(conn, vid, on_progress, should_stop,
                                started_at=att.prep.t0 if started_at is None else started_at,
                                estimate_s=att.prep.estimate_s)
    att.progress.report(0.0, Stage.STARTING, force=True)


def _run_attempt(att: _Attempt, out_dir: Path) -> _Stored:
    """Download, analyse, upload the highlight frames, embed the sentences, store it all."""
    from services.search.embeddings import embedding_plan, event_sentence

    prep, progress = att.prep, att.progress
    result, engine_usage = _analyse(att, out_dir)
    att.out_complete = result.output_dir
    warning = result.decode_warning
    if warning:
        log.warning("video %s: %s", att.vid, warning)
    thumbs = upload_highlights(prep.storage, att.vid, att.run_id, result, progress,
                               progress.should_stop)
    frame_size = (result.video.width, result.video.height)
    sentences = [event_sentence(e, frame_size) for e in result.events]
    plan = embedding_plan(result.events, frame_size)
    t_embed = time.monotonic()
    embedder, vecs, embed_usage = _embed(att, plan)
    embed_ms = (time.monotonic() - t_embed) * 1000.0
    t_store = time.monotonic()
    if progress.should_stop():
        raise Cancelled("stopped before storing the events")
    progress.report(Stage.STORING_EVENTS.at(0.0), Stage.STORING_EVENTS, len(sentences),
                    len(sentences), force=True)
    n, old_thumbs = _switch(att, result, sentences, plan, thumbs, vecs, embedder,
                            engine_usage | embed_usage, warning)
    return _Stored(result, n, thumbs, old_thumbs, vecs, embedder.name, warning, embed_ms,
                   (time.monotonic() - t_store) * 1000.0)


def _analyse(att: _Attempt, out_dir: Path) -> tuple[RunResult, dict]:
    """Download (S3) and run the engine; a one-shot run then releases its models. Returns the
    result and the models' token usage."""
    from pipeline.run import run_video

    prep, progress = att.prep, att.progress
    progress.set_span(Stage.DOWNLOAD.span)
    with prep.storage.fetch(prep.source, on_progress=progress) as local_path:
        if progress.should_stop():
            raise Cancelled("stopped before the analysis began")
        progress.set_span(ENGINE_SPAN)
        usage_before = _usage(prep.backends)
        result = run_video(Path(local_path), out_dir, att.settings, backends=prep.backends,
                           on_progress=progress, should_stop=progress.should_stop,
                           info=prep.info)
    usage = _usage_delta(usage_before, _usage(prep.backends))
    if prep.owns_backends:  # a one-shot run (the CLI): the analysis models are done with
        prep.backends = None
        gc.collect()
        heap.give_back()
    return result, usage


def _embed(att: _Attempt, plan):
    """The text embedder (loaded while the engine ran, or now) and the events' vectors (None
    when there is nothing to embed). Returns (embedder, vectors, its token usage)."""
    from services.search.embeddings import embed_texts, load_embedder

    progress, future = att.progress, att.prep.embedder
    if future is None or not future.done():
        progress.report(Stage.EMBEDDING.at(0.0), Stage.LOADING_TEXT_MODEL, force=True)
    embedder = load_embedder(att.settings) if future is None else future.result()
    before = _usage(None, embedder)
    progress.set_span(Stage.EMBEDDING.span)
    vecs = plan.vectors(embed_texts(embedder, plan.texts, on_progress=progress,
                                    should_stop=progress.should_stop)) if plan.texts else None
    return embedder, vecs, _usage_delta(before, _usage(None, embedder))


def _switch(att: _Attempt, result: RunResult, sentences, plan, thumbs, vecs, embedder,
            token_usage: dict, warning: str | None) -> tuple[int, list]:
    """ONE transaction: the video's events, frames, vectors, tracks and info replaced, and the
    attempt made its completed run. Returns the events stored and the old frames' keys."""
    from db import store
    from db.attempts import JobAttempt, RunCoverage
    from db.connection import deadline

    conn, vid = att.conn, att.vid
    with deadline(conn, SWITCH_TIMEOUT_S + len(sentences) / 200.0, "storing the events"), \
            conn.transaction():
        attempt = JobAttempt(conn, vid, att.run_id)
        if attempt.abort_requested():  # a cancel that came after the last check
            raise Cancelled("cancelled before the results were stored")
        old_thumbs = store.thumbnail_keys(conn, vid)
        n = store.replace_events(conn, vid, store.EventBatch(
            events=result.events, sentences=sentences, thumbnails=thumbs, vectors=vecs,
            model=embedder.name if vecs is not None else None, tracks=result.tracks,
            vector_rows=plan.rows if vecs is not None else None,
            person_vectors=result.person_vectors))
        store.set_video_info(conn, vid, result.video)
        covered = result.covered_s or (None, None)
        attempt.complete(token_usage=token_usage, warning=warning, coverage=RunCoverage(
            frames_decoded=result.frames_decoded,
            frames_undecodable=result.frames_skipped_undecodable,
            covered_from_s=covered[0], covered_to_s=covered[1]))
    return n, old_thumbs


def _outcome(att: _Attempt, stored: _Stored) -> IngestOutcome:
    """After the commit: the previous run's frames go; the outcome is logged and returned."""
    storage, thumbs, result = att.prep.storage, stored.thumbs, stored.result
    kept = set(t for t in thumbs if t is not None)
    stale = [o for o in stored.old_thumbs if o not in kept]
    if stale:
        storage.delete(stale)
    embedded = stored.vecs is not None
    outcome = IngestOutcome(
        video_id=att.vid, name=att.prep.vname, status=JobStatus.COMPLETED,
        n_events=stored.n_events, n_highlights=sum(1 for t in thumbs if t is not None),
        n_embedded=len(stored.vecs) if embedded else 0,
        embedding_model=stored.embedder_name if embedded else None,
        output_dir=result.output_dir, elapsed_s=time.monotonic() - att.prep.t0,
        warning=stored.warning, frames_sampled=result.frames_sampled,
        stage_ms={**dict(result.stage_ms), "start": round(att.prep.start_ms, 1),
                  "embed": round(stored.embed_ms, 1), "store": round(stored.store_ms, 1)})
    log.info(outcome.summary())
    return outcome


def mark_stale_jobs(settings) -> list[int]:
    """At start-up: 'processing' videos whose worker is gone are marked failed with a reason."""
    from services import database

    return database.mark_stale_jobs(settings)


__all__ = ["analyze_source", "mark_stale_jobs", "source_name", "IngestOutcome"]
