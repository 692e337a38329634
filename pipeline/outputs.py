"""The run's files: results_final.csv, processed_results.csv, highlights/*.jpg, highlights.json.

Everything is written into a temporary folder beside ``output_dir`` and moved into place only
when all of it succeeded; a failure or a cancel leaves ``output_dir`` as it was (no partial
outputs). Only these four names are replaced inside an existing ``output_dir``.

results_final.csv: one row per person per sampled frame (frame_number, timestamp, obj_id,
bbox_x/y/width/height, det_confidence, age, gender, gender_score, orientation (degrees),
orientation_label (0/90/180/270), action, action_confidence, keypoints as JSON [[x, y, score]
x 17], scene_description on scene frames).

processed_results.csv: the cleaned events, ready for db_event (event_type, timestamp,
frame_number, bbox_x/y/width/height, age_group, gender, action, confidence, attributes as JSON
with obj_id, age, orientation, scene_analysis, keypoints, highlight file and rule evidence).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.detection import Observations
from pipeline.errors import Cancelled, PipelineError
from pipeline.incidents import track_ids
from pipeline.records import (
    Episode, Event, EventType, Frame, Highlight, PersonObservation, VideoInfo,
)

log = logging.getLogger(__name__)

RESULTS_FINAL = "results_final.csv"
PROCESSED = "processed_results.csv"
HIGHLIGHTS_DIR = "highlights"
HIGHLIGHTS_JSON = "highlights.json"
OUTPUT_NAMES = (RESULTS_FINAL, PROCESSED, HIGHLIGHTS_DIR, HIGHLIGHTS_JSON)
JPEG_QUALITY = 90

FrameReader = Callable[[int, int, int], list[Frame]]

RESULTS_COLUMNS = [
    "frame_number", "timestamp", "obj_id", "bbox_x", "bbox_y", "bbox_width", "bbox_height",
    "det_confidence", "age", "gender", "gender_score", "orientation", "orientation_label",
    "action", "action_confidence", "keypoints", "scene_description",
]
PROCESSED_COLUMNS = [
    "event_type", "timestamp", "frame_number", "obj_id", "bbox_x", "bbox_y", "bbox_width",
    "bbox_height", "age_group", "gender", "action", "confidence", "attributes",
]


class OutputError(PipelineError):
    """The output folder cannot be written."""


@dataclass(frozen=True)
class Written:
    events: tuple[Event, ...]  # with highlight_file set on episode events
    highlights: tuple[Highlight, ...]


def _bbox(xyxy) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    return [round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)]


def _num(v, nd=3):
    return "" if v is None else round(float(v), nd)


def _kp_json(kps) -> str:
    return json.dumps([[round(float(x), 1), round(float(y), 1), round(float(s), 3)] for x, y, s in kps],
                      separators=(",", ":"))


def write_results_final(path: Path, observations: Sequence[PersonObservation]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(RESULTS_COLUMNS)
        for o in observations:
            w.writerow([o.frame_number, round(o.t_s, 3), o.obj_id, *_bbox(o.xyxy),
                        _num(o.det_confidence), _num(o.age, 1), o.gender.value,
                        _num(o.gender_score), _num(o.orientation_deg, 1),
                        "" if o.orientation_label is None else o.orientation_label,
                        o.action.value, _num(o.action_confidence), _kp_json(o.keypoints),
                        o.scene_description or ""])


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if hasattr(v, "value") and not isinstance(v, (int, float, str)):
        return v.value
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def event_attributes(e: Event) -> dict:
    attrs = {
        "obj_id": e.obj_id, "age": e.age, "orientation": e.orientation_deg,
        "orientation_label": e.orientation_label, "scene_analysis": e.scene_description,
        "keypoints": [list(k) for k in e.keypoints], "highlight_file": e.highlight_file,
    }
    if e.raw_action is not None:
        attrs["raw_action"] = e.raw_action.value
        attrs["action_confidence"] = e.action_confidence
    if e.start_t_s is not None or e.end_t_s is not None:
        attrs.update(start_t_s=e.start_t_s, end_t_s=e.end_t_s, track_ids=list(e.track_ids),
                     other_obj_ids=list(e.other_track_ids))
    for part, colour in (("upper_colour", e.upper_colour), ("lower_colour", e.lower_colour)):
        if colour.value != "unknown":
            attrs[part] = colour.value
    if e.object_class is not None:
        attrs["object_class"] = e.object_class.value
    if e.relations:
        attrs["relations"] = [r.token for r in e.relations]
    attrs.update({k: _jsonable(v) for k, v in dict(e.extra).items()})
    return attrs


def write_processed(path: Path, events: Sequence[Event]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(PROCESSED_COLUMNS)
        for e in events:
            w.writerow([e.event_type.value, round(e.t_s, 3), e.frame_number, e.obj_id, *_bbox(e.xyxy),
                        e.age_group.value, e.gender.value, e.action.value, _num(e.confidence),
                        json.dumps(event_attributes(e), separators=(",", ":"))])


def highlight_name(t_s: float, event: str, taken: set[str], obj_id: int) -> str:
    name = f"{t_s:.1f}s_{event}.jpg"
    if name in taken:
        name = f"{t_s:.1f}s_{event}_{obj_id}.jpg"
    taken.add(name)
    return name


def _fall_aftermath(e: Episode, observations: Sequence[PersonObservation], reader: FrameReader
                    ) -> tuple[Frame, list[PersonObservation]] | None:
    """The first sampled frame at least ``FALL_HIGHLIGHT_AFTER_S`` after a fall's onset in which
    the track is seen, with the people sampled there."""
    t_min = e.peak_t_s + T.FALL_HIGHLIGHT_AFTER_S
    later = sorted((o for o in observations if o.obj_id == e.obj_id and
                    t_min <= o.t_s <= max(e.end_t_s, t_min) + T.FALL_HIGHLIGHT_AFTER_S),
                   key=lambda o: o.t_s)
    if not later:
        return None
    f = later[0].frame_number
    frames = reader(f, f, 1)
    if not frames:
        return None
    return frames[0], [o for o in observations if o.frame_number == f]


def render_highlights(dest: Path, episodes: Sequence[Episode], observations: Observations,
                      reader: FrameReader, should_stop: Callable[[], bool] | None = None,
                      ) -> list[tuple[Episode, Highlight]]:
    """Decode each episode's peak frame again, draw the people the run observed there (every
    peak is an observed frame: sampled, dense or fall refinement), save ``dest/<name>.jpg``."""
    from PIL import Image

    from pipeline.annotate import annotate_frame

    sampled = observations.sampled
    dest.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    out = []
    for e in episodes:
        if should_stop and should_stop():
            raise Cancelled("the run was stopped while writing highlights; no output file was written")
        frames = reader(e.peak_frame_number, e.peak_frame_number, 1)
        if not frames:
            log.warning("highlight frame %d could not be decoded; skipped", e.peak_frame_number)
            continue
        frame = frames[0]
        people = observations.people_at(frame.frame_number)
        if not people:
            log.warning("no observation at highlight frame %d; drawn without people",
                        e.peak_frame_number)
        involved = track_ids(e)
        if len(involved) > 1:  # an incident of several people: show those, not the bystanders
            people = [o for o in people if o.obj_id in involved] or people
        who = " ".join(f"#{t}" for t in involved)
        img = annotate_frame(frame.image, people, focus_obj_id=involved, event=e.event_type.value,
                             caption=f"{e.peak_t_s:.1f}s {e.event_type.value} {who}")
        after = _fall_aftermath(e, sampled, reader) if e.event_type is EventType.FALLING else None
        if after is not None:  # a fall's onset alone shows someone upright: show them down too
            frame2, people2 = after
            img2 = annotate_frame(frame2.image, people2, focus_obj_id=e.obj_id, event="down",
                                  caption=f"{frame2.t_s:.1f}s on the floor #{e.obj_id}")
            img = np.hstack([img, np.full((img.shape[0], 4, 3), 255, np.uint8), img2])
        name = highlight_name(e.peak_t_s, e.event_type.value, taken, e.obj_id)
        Image.fromarray(img).save(dest / name, quality=JPEG_QUALITY)
        out.append((e, Highlight(t_s=e.peak_t_s, frame_number=e.peak_frame_number,
                                 event_type=e.event_type, obj_id=e.obj_id,
                                 confidence=e.confidence, file=f"{HIGHLIGHTS_DIR}/{name}",
                                 start_t_s=e.start_t_s, end_t_s=e.end_t_s,
                                 track_ids=track_ids(e))))
    return out


def _move_into_place(tmp: Path, output_dir: Path) -> None:
    if not output_dir.exists():
        os.replace(tmp, output_dir)  # atomic on one filesystem
        return
    if not output_dir.is_dir():
        raise OutputError(f"output {output_dir} exists and is not a folder; choose another --output")
    trash = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
    for name in OUTPUT_NAMES:
        old = output_dir / name
        if old.exists():
            os.replace(old, trash / name)
    for name in OUTPUT_NAMES:
        new = tmp / name
        if new.exists():
            os.replace(new, output_dir / name)
    shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)


def write_outputs(output_dir: Path, info: VideoInfo,
                  observations: Observations | Sequence[PersonObservation],
                  events: Sequence[Event], episodes: Sequence[Episode], reader: FrameReader,
                  should_stop: Callable[[], bool] | None = None) -> Written:
    """Write all outputs atomically (see the module docstring); returns the events with their
    highlight files and the highlights. ``observations``: the run's stream (or the sampled
    pass's rows); results_final.csv holds the sampled pass's."""
    output_dir = Path(output_dir)
    if not isinstance(observations, Observations):
        observations = Observations(observations)
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    except OSError as e:
        raise OutputError(f"cannot write to {output_dir.parent} ({e.strerror}); choose a writable "
                          f"--output folder") from None
    try:
        rendered = render_highlights(tmp / HIGHLIGHTS_DIR, episodes, observations, reader,
                                     should_stop)
        files = {(e.event_type, e.obj_id, e.peak_frame_number): h.file for e, h in rendered}
        events = tuple(
            dataclasses.replace(ev, highlight_file=files.get((ev.event_type, ev.obj_id,
                                                              ev.frame_number)))
            if ev.event_type.value != "person" else ev for ev in events)
        highlights = tuple(h for _, h in rendered)
        write_results_final(tmp / RESULTS_FINAL, observations.sampled)
        write_processed(tmp / PROCESSED, events)
        (tmp / HIGHLIGHTS_JSON).write_text(json.dumps([
            {"timestamp": round(h.t_s, 3), "event_type": h.event_type.value, "obj_id": h.obj_id,
             "confidence": h.confidence, "file": h.file, "frame_number": h.frame_number,
             "start": h.start_t_s, "end": h.end_t_s, "track_ids": list(h.track_ids)}
            for h in highlights], indent=1))
        if should_stop and should_stop():
            raise Cancelled("the run was stopped while writing outputs; no output file was written")
        _move_into_place(tmp, output_dir)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write the outputs to {output_dir} ({e}); free disk space "
                              f"or choose another --output") from None
        raise
    return Written(events=events, highlights=highlights)
