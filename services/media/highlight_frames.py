"""A run's highlight frames into storage: which frame each event shows, uploaded beside (never
over) the frames of the video's earlier runs."""
from __future__ import annotations

import logging
from pathlib import Path

from db.records import StoredObject
from pipeline.errors import Cancelled
from pipeline.progress import Stage
from pipeline.records import Event, EventType, RunResult

log = logging.getLogger("va.services.jobs.ingest")


def _highlight_path(result: RunResult, rel: str) -> Path | None:
    out = Path(result.output_dir)
    for cand in (out / rel, out / "highlights" / rel):
        if cand.is_file():
            return cand
    return None


def _match_highlights(result: RunResult) -> list[str | None]:
    """The highlight frame (relative file) of each event: its own ``highlight_file`` or the
    run's highlight of the same type and track closest in time."""
    by_key: dict[tuple[EventType, int], list] = {}
    for h in result.highlights:
        by_key.setdefault((h.event_type, int(h.obj_id)), []).append(h)
    files: list[str | None] = []
    for e in result.events:
        if e.highlight_file:
            files.append(e.highlight_file)
            continue
        et = e.event_type
        cands = by_key.get((et, int(e.obj_id)), []) if et is not EventType.PERSON else []
        best = min(cands, key=lambda h: abs(h.t_s - e.t_s), default=None)
        files.append(best.file if best is not None and abs(best.t_s - e.t_s) <= 1.0 else None)
    return files


def upload_highlights(storage, video_id: int, run_id: int, result: RunResult,
                      progress, should_stop) -> list[StoredObject | None]:
    """Upload the run's highlight frames under ``highlights/{video_id}/run-{run_id}/``: beside,
    never over, the frames the stored events point to. ``progress.report(pct, stage, n, total)``
    hears of each frame, within ``Stage.UPLOADING``'s share of the job's bar."""
    files = _match_highlights(result)
    todo = [i for i, f in enumerate(files) if f]
    thumbs: list[StoredObject | None] = [None] * len(files)
    used: dict[str, StoredObject] = {}
    for n, i in enumerate(todo, 1):
        if should_stop():
            raise Cancelled("stopped while uploading highlight frames")
        e: Event = result.events[i]
        path = _highlight_path(result, files[i])
        if path is None:
            log.warning("highlight frame %s of event %d is missing; stored without a frame",
                        files[i], i)
            continue
        if str(path) in used:
            thumbs[i] = used[str(path)]
            continue
        label = (e.event_type.value if e.event_type is not EventType.PERSON
                 else e.action.value)
        from services.media.storage import highlight_key

        key = highlight_key(video_id, run_id, e.t_s, label)
        if any(o.key == key for o in used.values()):
            label = f"{label}_{int(e.obj_id)}"
        obj = storage.put_highlight(video_id, run_id, e.t_s, label, path)
        used[str(path)] = obj
        thumbs[i] = obj
        progress.report(Stage.UPLOADING.at(n / len(todo)), Stage.UPLOADING, n, len(todo))
    return thumbs
