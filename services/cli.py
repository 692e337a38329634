"""Command line: ``python -m pipeline run ...``, ``python -m pipeline search ...``,
``python -m pipeline bench``, the job queue's ``worker``, ``enqueue`` and ``jobs``, and ``users`` and
``audit`` (services/access/access_cli.py). Flags follow the seed's run.py. Exit code 0 only on success;
errors are one line on stderr naming the problem and the fix."""
from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

log = logging.getLogger("va.cli")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description="Video analysis workbench")
    sub = p.add_subparsers(dest="command", required=True)
    _add_run_parser(sub)
    _add_queue_parsers(sub)
    _add_search_and_bench_parsers(sub)
    from services.access import access_cli
    from services.review import review_cli  # users, audit, review: their own modules

    access_cli.add_parsers(sub)
    review_cli.add_parser(sub)
    return p


def _add_run_parser(sub) -> None:
    r = sub.add_parser("run", help="analyse one video (local path or s3://bucket/key)")
    r.add_argument("--input", default=None,
                   help="local video/image path or s3://bucket/key (default: VA_JOB_SOURCE, set "
                        "by an AWS Batch submission)")
    r.add_argument("--video-id", type=int, default=None, help="db_video id to (re)analyse")
    r.add_argument("--output", type=Path, default=None,
                   help="folder for results_final.csv, processed_results.csv, highlights/")
    r.add_argument("--sample-fps", type=float, default=None,
                   help="sampled frames per second of video (1.5, the seed's rate: every 20th "
                        "frame at 30 fps, every 7th at 10 fps)")
    r.add_argument("--frame-skip", type=int, default=None,
                   help="analyse every Nth frame; wins over --sample-fps when given")
    r.add_argument("--device", choices=["cpu", "cuda"], default=None)
    r.add_argument("--detector", default=None, help="movenet (default) | yolo")
    r.add_argument("--attributes", default=None, help="age_gender (default) | faceres | mivolo")
    r.add_argument("--orientation", default=None, help="keypoints (default) | mebow")
    r.add_argument("--action", default=None, help="posture_trees (default) | pose_rules | vlm")
    r.add_argument("--scene", default=None, help="template (default) | bedrock | openai")
    r.add_argument("--detector-weights", type=Path, default=None, help="YOLOv8 person+face .pt")
    r.add_argument("--checkpoint", type=Path, default=None, help="MiVOLO checkpoint (.pth.tar)")
    r.add_argument("--mebow-cfg", type=Path, default=None, help="MEBOW HRNet config (.yaml)")
    r.add_argument("--mebow-weights", type=Path, default=None, help="MEBOW weights (.pth)")
    r.add_argument("--vlm-path", type=Path, default=None, help="transformers VLM checkpoint folder")
    r.add_argument("--with-persons", action="store_true",
                   help="MiVOLO: use body crops as well as faces (seed flag)")
    r.add_argument("--no-store", action="store_true",
                   help="only write files to --output; do not touch the database or S3")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--timings", type=Path, default=None, help=argparse.SUPPRESS)  # the bench's


def _add_queue_parsers(sub) -> None:
    w = sub.add_parser("worker", help="run analysis jobs from the queue (any machine that "
                                      "reaches the database and the storage)")
    w.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="jobs run at once (VA_WORKER_CONCURRENCY, 1)")
    w.add_argument("--queue", action="append", default=None, dest="queues", metavar="NAME",
                   help="queue(s) to take jobs from (default: all)")
    w.add_argument("--device", choices=["cpu", "cuda"], default=None,
                   help="run every job on this device, whatever the job asked for")
    w.add_argument("--burst", action="store_true",
                   help="exit when the queue is empty instead of waiting for jobs")

    e = sub.add_parser("enqueue", help="queue analyses for the workers; prints the video ids")
    e.add_argument("--input", action="append", required=True, metavar="PATH|s3://...",
                   help="local path or s3://bucket/key (repeat for several videos)")
    e.add_argument("--queue", default=None, metavar="NAME",
                   help="queue name (default: analysis; workers without --queue take every queue)")
    e.add_argument("--frame-skip", type=int, default=None)
    e.add_argument("--device", choices=["cpu", "cuda"], default=None)

    j = sub.add_parser("jobs", help="list jobs: id, name, status, progress, attempts, worker")
    j.add_argument("--json", action="store_true", help="one JSON object per line")
    j.add_argument("--limit", type=int, default=200)


def _add_search_and_bench_parsers(sub) -> None:
    s = sub.add_parser("search", help="search stored events in plain language")
    s.add_argument("query")
    s.add_argument("--video-id", type=int, default=None)
    s.add_argument("--top-k", type=int, default=10)
    s.add_argument("--event-type", default=None)
    s.add_argument("--no-answer", action="store_true", help="print hits only")
    s.add_argument("--literal", action="store_true",
                   help="search the words alone: no boost for the actions, incidents, gender, "
                        "age and colours the query names")

    m = sub.add_parser("similar", help="the same person elsewhere: the tracks that look most like"
                                       " one track, as JSON lines, best first")
    m.add_argument("--video-id", type=int, required=True)
    m.add_argument("--track", type=int, required=True, help="the track (obj_id) of that video")
    m.add_argument("--top-k", type=int, default=10)
    m.add_argument("--same-video", action="store_true",
                   help="search the video's own other tracks too (default: other videos only)")

    b = sub.add_parser("bench", help="the CLI as a user runs it, timed whole (vtest.avi at 1.5 "
                                     "sampled fps), against onnxruntime, the previous default "
                                     "and a naive baseline, and on a 10-minute video")
    b.add_argument("--clips", nargs="*", default=None, help="clips to time (default: vtest.avi)")
    b.add_argument("--sample-fps", type=float, default=None)
    b.add_argument("--quick", action="store_true", help="one engine-only run per clip (smoke)")
    b.add_argument("--no-baseline", action="store_true")
    b.add_argument("--no-previous", action="store_true")
    b.add_argument("--no-onnxruntime", action="store_true",
                   help="skip the runs under VA_RUNTIME=onnxruntime (the default runtime's ratio)")
    b.add_argument("--no-long", action="store_true", help="skip the 10-minute video")


def _settings_for_run(args):
    from settings import Settings

    settings = Settings.from_env()
    over = dict(
        frame_skip=args.frame_skip, sample_fps=args.sample_fps, device=args.device, detector=args.detector,
        attributes=args.attributes, orientation=args.orientation, action=args.action,
        scene=args.scene, detector_weights=args.detector_weights,
        mivolo_checkpoint=args.checkpoint, mebow_cfg=args.mebow_cfg,
        mebow_weights=args.mebow_weights, vlm_path=args.vlm_path,
        mivolo_with_persons=args.with_persons or None,
    )
    # Seed compatibility: giving a heavy model's weights selects that backend.
    if args.detector_weights and not args.detector:
        over["detector"] = "yolo"
    if args.checkpoint and not args.attributes:
        over["attributes"] = "mivolo"
    if args.mebow_cfg and not args.orientation:
        over["orientation"] = "mebow"
    if args.vlm_path and not args.action:
        over["action"] = "vlm"
    from settings import MAX_FRAME_SKIP, SettingsError

    if args.frame_skip is not None and not 1 <= args.frame_skip <= MAX_FRAME_SKIP:
        raise SettingsError(f"--frame-skip {args.frame_skip} must be between 1 and "
                            f"{MAX_FRAME_SKIP}")
    if args.sample_fps is not None and not args.sample_fps > 0:
        raise SettingsError(f"--sample-fps {args.sample_fps} must be above 0 (e.g. 1.5)")
    return settings.with_overrides(**over)


class _TerminalProgress:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None

    def __call__(self, p) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=100, unit="%", file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}] {postfix}")
        self.bar.n = round(100 * p.fraction, 1)
        eta = f" eta {p.eta_s:.0f}s" if p.eta_s is not None else ""
        self.bar.set_postfix_str(f"{p.stage} {p.frames_done}/{p.frames_total}{eta}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_run(args) -> int:
    from services.access.access import OPERATOR

    settings = _settings_for_run(args)
    # The AWS Batch container gets its job in the environment (services/jobs/batch.py); that
    # launch was audited when the app queued it, a run typed here is audited by the run.
    launched_by = None if args.input is None else OPERATOR.name
    if args.input is None:
        args.input = settings.job_source
    if args.video_id is None:
        args.video_id = settings.job_video_id
    if args.input is None:
        from settings import SettingsError

        raise SettingsError("--input is required (or VA_JOB_SOURCE in the environment)")
    _sigterm_as_interrupt()
    progress = _TerminalProgress(args.quiet)
    try:
        if args.no_store:
            from pipeline.run import run_video

            from services.media.source_uri import SourceUri

            if SourceUri.parse(args.input).is_s3:
                raise SystemExit("error: --no-store works on local files only; drop --no-store "
                                 "to read from S3")
            output = args.output or Path("output") / Path(args.input).stem
            result = run_video(Path(args.input), output, settings, on_progress=progress)
            summary = (f"{result.frames_sampled} sampled frames, {len(result.tracks)} tracks, "
                       f"{len(result.events)} events, {len(result.highlights)} highlights "
                       f"-> {result.output_dir}")
            timings = {"frames_sampled": result.frames_sampled, "stage_ms": dict(result.stage_ms),
                       "events": len(result.events)}
        else:
            from services.jobs.ingest import analyze_source
            from services.review.review_cli import marks_notice

            with marks_notice(settings, args.input, args.video_id):  # a re-run: its marks
                outcome = analyze_source(args.input, settings, video_id=args.video_id,
                                         output_dir=args.output, on_progress=progress,
                                         launched_by=launched_by)
            summary = outcome.summary()
            timings = {"frames_sampled": outcome.frames_sampled, "stage_ms": dict(outcome.stage_ms),
                       "events": outcome.n_events, "embedded": outcome.n_embedded}
    finally:
        progress.close()
    if args.timings:  # for the bench: what the run measured of itself
        import json

        Path(args.timings).write_text(json.dumps(timings))
    print(summary)
    return 0


def _sigterm_as_interrupt() -> None:
    """SIGTERM (``docker stop``, AWS Batch terminate_job) ends a run like Ctrl-C: recorded as
    cancelled instead of left 'processing'."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def cmd_worker(args) -> int:
    from services.jobs.worker import JobExecutor, LocalWorker
    from settings import Settings, SettingsError

    settings = Settings.from_env()
    if args.concurrency is not None and args.concurrency < 1:
        raise SettingsError(f"--concurrency {args.concurrency} must be 1 or more")
    if args.device == "cuda":
        from services.capabilities import _cuda_available

        if not _cuda_available():
            raise SettingsError("--device cuda but no CUDA GPU is visible to torch; run the worker "
                                "on a GPU machine or drop --device")
    logging.getLogger("va").setLevel(settings.log_level)
    from pipeline.backends.registry import load_backends

    executor = JobExecutor(settings, backend_loader=load_backends, device=args.device)
    worker = LocalWorker(settings, executor=executor, concurrency=args.concurrency,
                         queues=args.queues, wait=not args.burst)
    print(f"worker {worker_label()} taking jobs from "
          f"{', '.join(args.queues) if args.queues else 'every queue'} "
          f"(concurrency {worker.concurrency}); Ctrl-C stops after the running jobs",
          file=sys.stderr, flush=True)
    worker.run_forever()
    return 0


def worker_label() -> str:
    from services.jobs.worker import worker_name

    return worker_name()


def cmd_enqueue(args) -> int:
    from services.jobs.jobs import AnalysisOptions, JobClient
    from settings import Settings

    from services.access.access import OPERATOR
    from services.jobs.ingest import check_input, source_name
    from services.jobs.job_views import launch
    from services.review.review_cli import say_marks

    settings = Settings.from_env()
    options = AnalysisOptions(frame_skip=args.frame_skip, device=args.device)
    options.apply(settings)  # a bad value fails here, before any row
    # What run refuses (missing path, folder, symlink loop, non-video) is refused here too,
    # for every input before the first is queued: rc 2, one line, no row.
    for source in args.input:
        check_input(settings, source)
        source_name(source)
    client = JobClient(settings)
    try:
        for source in args.input:
            say_marks(settings, source)  # a re-run: how many review marks the video has
            vid = launch(client, source, options, actor=OPERATOR, queue=args.queue)  # audited
            print(vid, flush=True)
    finally:
        client.shutdown()
    return 0


def cmd_jobs(args) -> int:
    import json

    from db import jobs
    from services import database
    from services.jobs.jobs import JobClient, NoQueue
    from settings import Settings

    settings = Settings.from_env()
    database.get_pool(settings)  # an unreachable database is one line, before the recovery
    client = JobClient(settings, queue=NoQueue())
    client.recover(force=True)
    with database.pooled(settings) as conn:
        rows = jobs.list_jobs(conn, args.limit)
    for vid, name, status, progress, attempts, worker, stage, error in rows:
        if args.json:
            print(json.dumps({"id": vid, "name": name, "status": status,
                              "progress": round(float(progress), 1), "attempts": attempts,
                              "worker": worker, "stage": stage, "error": error}))
        else:
            print(f"{vid}\t{name}\t{status}\t{float(progress):.0f}%\t{attempts}\t{worker or '-'}")
    return 0


def cmd_search(args) -> int:
    from services.search.search import search_cli

    return search_cli(args)


def cmd_similar(args) -> int:
    from services.search.similar import similar_cli

    return similar_cli(args)


def cmd_bench(args) -> int:
    from pipeline.bench import main as bench_main

    return bench_main(args)


def access_cli_commands() -> dict:
    from services.access.access_cli import COMMANDS

    return COMMANDS


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # platformdirs warns on every start where XDG_RUNTIME_DIR is unset (containers, CI): noise
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from db.connection import install_log_redaction, redact

    install_log_redaction()
    args = build_parser().parse_args(argv)
    from pipeline.errors import Cancelled, PipelineError
    from settings import SettingsError

    try:
        handler = getattr(args, "handler", None) or {  # review: services/review/review_cli.py
            "run": cmd_run, "search": cmd_search, "similar": cmd_similar, "bench": cmd_bench, "worker": cmd_worker,
            "enqueue": cmd_enqueue, "jobs": cmd_jobs, **access_cli_commands()}[args.command]
        return handler(args)
    except Cancelled as e:
        print(f"cancelled: {redact(str(e))}", file=sys.stderr)
        return 130
    except (PipelineError, SettingsError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Stopped outside a stored job (--no-store, or before the job began): say what is there.
        out = getattr(args, "output", None)
        done = out is not None and (Path(out) / "processed_results.csv").is_file()
        print("cancelled by the user (Ctrl-C); " + (
            f"the files in {out} are from a complete analysis" if done else
            "no output file was written and nothing was stored"), file=sys.stderr)
        return 130
    except Exception as e:  # domain errors from services (db, storage) carry their own message
        from services.errors import ServiceError

        if isinstance(e, ServiceError):
            print(f"error: {redact(str(e))}", file=sys.stderr)
            return 2
        raise
