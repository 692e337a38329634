"""``run_video``: one video (or image) in, results_final.csv, processed_results.csv, highlights/
and highlights.json out.

Per sampled frame: detect -> track -> attributes -> orientation -> action -> (every
``SCENE_EVERY_SAMPLES`` sampled frames) scene. People are detected only through
``pipeline.detection``'s ``Observer``, whose stream collects everyone the run sees: in this pass,
in the dense windows and in the fall refinement. Then falls/collapse and interaction episodes,
post-processing, and the outputs, written to a temporary folder and moved into place only when
everything succeeded. Memory holds the observation rows and a short per-track history, never a
list of frames: highlight frames are decoded again at the end and drawn from the stream.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Callable

from pipeline import heap, person_vectors
from pipeline import thresholds as T
from pipeline.errors import Cancelled, PipelineError, StageError
from pipeline.clothing import ClothingColours
from pipeline.cuts import CutDetector
from pipeline.detection import Observer
from pipeline.interactions import interaction_frame_skip
from pipeline.objects import ObjectPass
from pipeline.records import (
    Frame, PersonDetections, PersonObservation, RunProgress, RunResult, SceneCaption,
)
from pipeline.sampling import Prefetch, VideoFrames, probe_video, read_frames

log = logging.getLogger(__name__)

SCENE_EVERY_SAMPLES = 10
PROGRESS_MIN_INTERVAL_S = 0.25  # at most ~4 progress calls a second (plus first and last)
ANALYSIS_SHARE = 0.9  # fraction of the progress bar for the per-frame stages
HEAP_TRIM_EVERY = 64  # sampled frames between handing freed memory back (~40 s of video)


class _Progress:
    def __init__(self, callback: Callable[[RunProgress], None] | None, total: int):
        self.callback = callback
        self.total = max(1, total)
        self.t0 = time.monotonic()
        self.last = -1e9

    def __call__(self, fraction: float, stage: str, done: int, force: bool = False,
                 message: str = "") -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_MIN_INTERVAL_S:
            return
        self.last = now
        elapsed = now - self.t0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        self.callback(RunProgress(fraction=round(min(1.0, max(0.0, fraction)), 4), stage=stage,
                                  frames_done=done, frames_total=max(self.total, done),
                                  eta_s=None if eta is None else round(eta, 1), message=message))


def _stage(stage: str, stage_ms: dict, fn, *args):
    t = time.perf_counter()
    try:
        return fn(*args)
    except PipelineError:
        raise
    except Exception as e:  # a model failing mid-run fails the job with a one-line reason
        log.exception("%s stage failed", stage)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StageError(stage, f"{type(e).__name__}: {msg[:200]}; check the {stage} backend's "
                                f"weights and settings, or choose another backend") from e
    finally:
        stage_ms[stage] += (time.perf_counter() - t) * 1000.0


def sampled_rows(frame: Frame, persons: PersonDetections, attrs, orients, actions,
                 ) -> list[PersonObservation]:
    """The sampled pass's rows of ``frame``: each tracked person with every stage's reading."""
    rows = []
    for i in range(len(persons)):
        oid = int(persons.tracker_id[i]) if persons.tracker_id is not None else -1
        a, o, act = attrs[i], orients[i], actions[i]
        rows.append(PersonObservation(
            frame_number=frame.frame_number, t_s=frame.t_s, obj_id=oid,
            xyxy=tuple(round(float(v), 1) for v in persons.xyxy[i]),
            det_confidence=round(float(persons.confidence[i]), 4),
            keypoints=tuple((round(float(k[0]), 1), round(float(k[1]), 1), round(float(k[2]), 3))
                            for k in persons.keypoints[i]),
            age=None if a.age is None else round(float(a.age), 1), gender=a.gender,
            gender_score=None if a.gender_score is None else round(float(a.gender_score), 3),
            orientation_deg=None if o.degrees is None else round(float(o.degrees) % 360, 1),
            action=act.action, action_confidence=round(float(act.confidence), 3),
        ))
    return rows


def pass_detector(info, frame_skip: int, settings, backends):
    """The detector of the sampled pass: a clip sampled densely for interactions (shorter than
    ``DENSE_CLIP_MAX_S``, so ``frame_skip`` is below the setting's) uses the dense one; stills and
    regularly sampled videos use the main detector."""
    dense = not info.is_image and frame_skip < settings.frame_skip_for(info.fps)
    return backends.dense if dense else backends.detector


def effective_frame_skip(info, frame_skip: int) -> int:
    """The frame skip actually used: ``frame_skip``, except that short clips are analysed at a
    denser rate so that fast interactions (fights) can be measured
    (``interactions.interaction_frame_skip``)."""
    if info.is_image:
        return 1
    skip = interaction_frame_skip(info.fps, info.duration_s, frame_skip)
    if skip != frame_skip:
        log.info("short clip (%.1f s): analysing every %d frames instead of %d", info.duration_s,
                 skip, frame_skip)
    return skip


def _with_objects(objects: ObjectPass | None, events: list) -> list:
    """The events with their people's object relations, and the object tracks' events."""
    if objects is None:
        return list(events)
    return sorted(objects.apply(events) + objects.events(),
                  key=lambda ev: (ev.t_s, ev.obj_id, ev.event_type.value))


def run_video(path: Path, output_dir: Path, settings, backends=None,
              on_progress: Callable[[RunProgress], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Analyse one video; see the module docstring. Raises ``VideoOpenError``,
    ``BackendUnavailable``, ``StageError`` or ``Cancelled`` (nothing written in those cases)."""
    from pipeline import highlights as hl
    from pipeline import outputs, postprocess
    from pipeline.tracking import PersonTracker

    path, output_dir = Path(path), Path(output_dir)
    info = probe_video(path)
    if backends is None:
        from pipeline.backends.registry import load_backends

        backends = load_backends(settings)
    stop = should_stop or (lambda: False)
    frame_skip = effective_frame_skip(info, settings.frame_skip_for(info.fps))
    detector = pass_detector(info, frame_skip, settings, backends)
    frames = VideoFrames(path, frame_skip, info)

    def reader(start: int, end: int, step: int) -> list[Frame]:
        return read_frames(path, start, end, step, info, frames.keyframes)

    observer = Observer.for_run(info, reader, backends)  # every person seen goes into its stream
    total = frames.expected_samples
    progress = _Progress(on_progress, total)
    progress(0.0, "starting", 0, force=True)
    sampled_fps = 1.0 if info.is_image else info.fps / frame_skip
    tracker = PersonTracker(sampled_fps)
    stage_ms: dict[str, float] = defaultdict(float)
    history: dict[int, deque[PersonObservation]] = {}
    keep_s = max(T.MOTION_WINDOW_S, T.FALL_MAX_TRANSITION_S) + 2.0 / max(sampled_fps, 1e-3)
    scenes: list[SceneCaption] = []
    clothing = ClothingColours()
    # Appearance vectors per track, from the backbone the violence classifier loaded (shared).
    people = person_vectors.for_run(getattr(getattr(backends, "violence", None), "backbone", None),
                                    settings.models_dir)
    cuts = CutDetector()  # hard scene cuts end every track (pipeline/cuts.py)
    objects = (None if getattr(backends, "objects", None) is None
               else ObjectPass(backends.objects, sampled_fps))
    prev_frame: int | None = None
    done = 0

    def timed(stage: str, fn, *args):
        return _stage(stage, stage_ms, fn, *args)

    covered: tuple[float, float] | None = None
    frame_iter = Prefetch(frames)  # the next frames decode while the models run
    try:
        while True:
            if stop():
                raise Cancelled(f"analysis of {path.name} was stopped after {done} sampled frames; "
                                f"no output file was written")
            t = time.perf_counter()
            try:
                frame = next(frame_iter)
            except StopIteration:
                stage_ms["decode"] += (time.perf_counter() - t) * 1000.0
                break
            stage_ms["decode"] += (time.perf_counter() - t) * 1000.0
            covered = (frame.t_s if covered is None else covered[0], frame.t_s)
            if timed("cuts", cuts.is_cut, frame) and prev_frame is not None:
                tracker.cut()
                observer.cut_between(prev_frame, frame.frame_number)
                if objects is not None:
                    objects.cut()
            prev_frame = frame.frame_number
            persons = observer.track(frame, detector, tracker, timed)
            if len(persons):
                attrs = _stage("attributes", stage_ms, backends.attributes.estimate, frame, persons)
                orients = _stage("orientation", stage_ms, backends.orientation.estimate, frame, persons)
                hist_view = {k: tuple(v) for k, v in history.items()}
                actions = _stage("action", stage_ms, backends.action.recognize, frame, persons,
                                 hist_view)
                rows = sampled_rows(frame, persons, attrs, orients, actions)
            else:
                rows = []
            if frame.sample_index % SCENE_EVERY_SAMPLES == 0:
                cap = _stage("scene", stage_ms, backends.scene.describe, frame, rows)
                scenes.append(cap)
                rows = [dataclasses.replace(r, scene_description=cap.text) for r in rows]
            observer.stream.add(rows)
            _stage("clothing", stage_ms, clothing.add, frame, rows)
            if objects is not None and objects.due(frame):
                found = _stage("objects", stage_ms, objects.detect, frame)
                _stage("object_tracking", stage_ms, objects.add, frame, found, rows)
            if people is not None:
                _stage("person_vectors", stage_ms, people.add, frame, rows)
            for r in rows:
                h = history.setdefault(r.obj_id, deque())
                h.append(r)
                while h and r.t_s - h[0].t_s > keep_s:
                    h.popleft()
            for oid in [k for k, v in history.items() if v and frame.t_s - v[-1].t_s > T.TRACK_LOST_S]:
                del history[oid]
            done += 1
            if done % HEAP_TRIM_EVERY == 0:
                heap.give_back()  # the models' freed activations (pipeline/heap.py)
            progress(ANALYSIS_SHARE * min(1.0, done / total), "analysing frames", done)
    finally:
        frame_iter.close()

    heap.give_back()
    progress(ANALYSIS_SHARE, "finding events", done, force=True)
    if stop():
        raise Cancelled(f"analysis of {path.name} was stopped; no output file was written")
    refine = getattr(backends.action, "refine", None)  # a centred window over each track
    if refine is not None:
        observer.stream.replace_sampled(_stage("action", stage_ms, refine, observer.stream.sampled,
                                               info.width, info.height))
    observations = observer.stream.sampled
    t = time.perf_counter()
    episodes = hl.find_episodes(observations, info, sampled_fps, observer=observer,
                                violence=getattr(backends, "violence", None))
    stage_ms["highlights"] += (time.perf_counter() - t) * 1000.0
    t = time.perf_counter()
    clean = postprocess.clean(observations, episodes, frames_sampled=done, sampled_fps=sampled_fps,
                              video_duration_s=info.duration_s)
    stage_ms["postprocess"] += (time.perf_counter() - t) * 1000.0
    person_vecs = people.vectors(t.obj_id for t in clean.tracks) if people is not None else ()
    progress(0.95, "writing outputs", done, force=True)
    if stop():
        raise Cancelled(f"analysis of {path.name} was stopped; no output file was written")
    t = time.perf_counter()
    written = outputs.write_outputs(
        output_dir, info=info, observations=observer.stream,
        events=_with_objects(objects, clothing.apply(clean.events)),
        episodes=clean.episodes, reader=reader, should_stop=stop)
    stage_ms["outputs"] += (time.perf_counter() - t) * 1000.0
    result = RunResult(
        video=info, output_dir=output_dir, observations=tuple(observations),
        events=written.events, highlights=written.highlights, scenes=tuple(scenes),
        tracks=clean.tracks, frames_sampled=done,
        frames_skipped_undecodable=frames.undecodable, frames_decoded=frames.frames_decoded,
        covered_s=covered,
        stage_ms={k: round(v, 1) for k, v in stage_ms.items()},
        backends=backends.names(), person_vectors=person_vecs,
    )
    progress(1.0, "done", done, force=True)
    return result

