"""``python -m pipeline review list|mark``: the analysts' review marks for scripts and tests, and
the notice ``run`` / ``enqueue`` print before re-analysing a video that has marks.

``review list [--video-id N] [--json]`` prints one line per incident (``--json``: one JSON object
with ``incident_id``, ``video_id``, ``video``, ``event_type``, ``severity``, ``start_t_s``,
``end_t_s``, ``confidence``, ``mark``, ``note``, ``status``), then the marks whose incident a
re-run no longer found (``incident_id`` null, ``status`` "no longer detected").
``review mark INCIDENT_ID confirmed|false_alarm|reviewed [--note TEXT]`` writes a mark through
``services.review.review.write_marks``, like the Review page.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from contextlib import contextmanager

from db.reviews import ReviewState


def add_parser(sub) -> None:
    """Register ``review`` on the CLI's subparsers."""
    r = sub.add_parser("review", help="list incidents with their review marks, or mark one")
    rs = r.add_subparsers(dest="review_command", required=True)
    ls = rs.add_parser("list", help="incidents and their marks, newest video first")
    ls.add_argument("--video-id", type=int, default=None, help="only this video's incidents")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    mk = rs.add_parser("mark", help="mark an incident confirmed, false_alarm or reviewed")
    mk.add_argument("incident_id", type=int, metavar="INCIDENT_ID",
                    help="the incident's id (`review list`; the Review page's 'event N')")
    mk.add_argument("state", choices=[s.value for s in ReviewState])
    mk.add_argument("--note", default="", help="why (e.g. 'two friends hugging')")
    r.set_defaults(handler=main)


def _status(mark) -> str:
    from services.review import review

    if mark is None:
        return "unreviewed"
    if not mark.detected:
        return review.LOST
    return review.CARRIED if mark.carried_over else "marked"


def rows(settings, video_id: int | None = None) -> list[dict]:
    """The lines of ``review list``: incidents, then marks no longer detected."""
    from services.review import review
    from services.jobs.job_views import list_videos

    videos = {v.video_id: v for v in list_videos(settings)}
    vids = (int(video_id),) if video_id is not None else ()
    out = []
    for i in review.review_items(settings, review.IncidentFilter(video_ids=vids), videos=videos):
        out.append({"incident_id": i.event_id, "video_id": i.event.video_id,
                    "video": i.video_name, "event_type": i.event.event_type.value,
                    "severity": i.severity.value, "start_t_s": round(i.start_s, 3),
                    "end_t_s": round(i.end_s, 3), "confidence": round(i.event.confidence, 3),
                    "mark": i.mark.state.value if i.mark else None,
                    "note": i.mark.note if i.mark else "", "status": _status(i.mark)})
    for m in review.lost_marks(settings, vids):
        v = videos.get(m.video_id)
        out.append({"incident_id": None, "video_id": m.video_id,
                    "video": getattr(v, "name", f"video {m.video_id}"),
                    "event_type": m.event_type.value,
                    "severity": review.SEVERITY.get(m.event_type, review.Severity.DETECTION).value,
                    "start_t_s": round(m.start_s, 3), "end_t_s": round(m.end_s, 3),
                    "confidence": None, "mark": m.state.value, "note": m.note,
                    "status": _status(m), "mark_id": m.mark_id})
    return out


def main(args: argparse.Namespace) -> int:
    from services.access import access
    from services.review import review
    from settings import Settings

    settings = Settings.from_env()
    if args.review_command == "mark":  # audited as the operator (cli:<login>)
        mark = review.set_mark(settings, args.incident_id, args.state, args.note,
                               actor=access.OPERATOR)
        print(f"incident {mark.event_id} marked {mark.state.label}"
              + (f": {mark.note}" if mark.note else ""))
        return 0
    for row in rows(settings, args.video_id):
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            ident = "-" if row["incident_id"] is None else row["incident_id"]
            mark = row["mark"] or "unreviewed"
            print(f"{ident}\t{row['video']}\t{row['event_type']}\t{row['start_t_s']:.1f}-"
                  f"{row['end_t_s']:.1f}s\t{mark}\t{row['status']}\t{row['note']}")
    sys.stdout.flush()
    return 0


def say_marks(settings, source: str, video_id: int | None = None) -> str | None:
    """Before (re)analysing ``source``: print on stderr how many review marks its video has and
    what the run does with them. Returns the line (None for a new video or one without marks)."""
    from services.review import review

    line = review.marks_before_rerun(settings, source, video_id)
    if line:
        print(f"note: {line}", file=sys.stderr, flush=True)
    return line


def say_marks_soon(settings, source: str, video_id: int | None = None
                   ) -> threading.Thread | None:
    """``say_marks`` for ``pipeline run``, from a background thread: the database start it may
    need (the embedded server) runs beside the model loading instead of before it, so the run's
    wall time does not grow. Nothing for an input the run will refuse (a missing path, a file
    that is not a video): its one-line error stays as fast as before. Join the thread before
    exiting."""
    from services.media.source_uri import SourceUri

    if SourceUri.parse(source).is_path:
        from pathlib import Path

        from pipeline.errors import PipelineError
        from pipeline.sampling import probe_video

        path = Path(source).expanduser()
        try:
            if not path.is_file():
                return None
            probe_video(path)
        except (PipelineError, OSError):
            return None

    def _say() -> None:
        try:
            say_marks(settings, source, video_id)
        except Exception as e:  # noqa: BLE001 - the run reports a database problem itself
            import logging

            logging.getLogger("va.cli").debug("no review-mark notice: %s", e)

    t = threading.Thread(target=_say, name="va-marks-notice", daemon=True)
    t.start()
    return t


@contextmanager
def marks_notice(settings, source: str, video_id: int | None = None):
    """``with marks_notice(...): analyze_source(...)``: the re-run's notice beside the run."""
    notice = say_marks_soon(settings, source, video_id)
    try:
        yield
    finally:
        if notice is not None:
            notice.join(30)
