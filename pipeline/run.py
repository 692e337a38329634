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
from pipeline.clothing import ClothingColours, load_namer
from pipeline.cuts import CutDetector
from pipeline.detection import Observer
from pipeline.objects import ObjectPass
from pipeline.records import (
    Frame, PersonDetections, PersonObservation, RunProgress, RunResult, SceneCaption, VideoInfo,
)
from pipeline.progress import Stage, engine_fraction, run_eta_s
from pipeline.sampling import Prefetch, SamplingPlan, VideoFrames, probe_video, read_frames

log = logging.getLogger(__name__)

SCENE_EVERY_SAMPLES = 10
PROGRESS_MIN_INTERVAL_S = 0.25  # at most ~4 progress calls a second (plus first and last)
HEAP_TRIM_EVERY = 64  # sampled frames between handing freed memory back (~40 s of video)


class _Progress:
    def __init__(self, callback: Callable[[RunProgress], None] | None, total: int):
        self.callback = callback
        self.total = max(1, total)
        self.t0 = time.monotonic()
        self.last = -1e9

    def __call__(self, stage: Stage, stage_fraction: float, done: int, force: bool = False,
                 message: str = "") -> None:
        """``stage`` is ``stage_fraction`` (0..1) done; the run's fraction follows its share."""
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self.last < PROGRESS_MIN_INTERVAL_S:
            return
        self.last = now
        fraction = engine_fraction(stage, stage_fraction)
        self.callback(RunProgress(fraction=round(min(1.0, max(0.0, fraction)), 4), stage=stage,
                                  frames_done=done, frames_total=max(self.total, done),
                                  eta_s=run_eta_s(now - self.t0, fraction), message=message))


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


def pass_detector(plan: SamplingPlan, backends):
    """The detector of the sampled pass: a clip sampled densely for interactions (shorter than
    ``DENSE_CLIP_MAX_S``) uses the dense one; stills and regularly sampled videos use the main
    detector."""
    return backends.dense if plan.dense else backends.detector


def run_video(path: Path, output_dir: Path, settings, backends=None,
              on_progress: Callable[[RunProgress], None] | None = None,
              should_stop: Callable[[], bool] | None = None,
              info: VideoInfo | None = None) -> RunResult:
    """Analyse one video; see the module docstring. ``info``: the video as already probed (a
    job probes it once). Raises ``VideoOpenError``, ``BackendUnavailable``, ``StageError`` or
    ``Cancelled`` (nothing written in those cases)."""
    from pipeline import outputs

    path, output_dir = Path(path), Path(output_dir)
    info = info if info is not None else probe_video(path)
    if backends is None:
        from pipeline.backends.registry import load_backends

        backends = load_backends(settings)
    stop = should_stop or (lambda: False)
    plan = SamplingPlan.for_video(info, settings)
    if plan.dense:
        log.info("short clip (%.1f s): analysing every %d frames instead of %d", info.duration_s,
                 plan.frame_skip, plan.base_skip)
    frames = VideoFrames(path, plan.frame_skip, info)

    def reader(start: int, end: int, step: int) -> list[Frame]:
        return read_frames(path, start, end, step, info, frames.keyframes)

    observer = Observer.for_run(info, reader, backends)  # every person seen goes into its stream
    progress = _Progress(on_progress, frames.expected_samples)
    progress(Stage.STARTING, 0.0, 0, force=True)
    sampled = _SampledPass(plan, backends, observer, settings.models_dir)
    sampled.run(frames, progress, stop, path.name)
    heap.give_back()
    done, stage_ms = sampled.done, sampled.stage_ms
    progress(Stage.FINDING_EVENTS, 0.0, done, force=True)
    _check_stop(stop, path)
    observations, clean = _find_events(observer, info, plan, backends, stage_ms, done)
    people = sampled.people
    person_vecs = people.vectors(t.obj_id for t in clean.tracks) if people is not None else ()
    progress(Stage.WRITING_OUTPUTS, 0.0, done, force=True)
    _check_stop(stop, path)
    t = time.perf_counter()
    written = outputs.write_outputs(
        output_dir, info=info, observations=observer.stream,
        events=_with_objects(sampled.objects, sampled.clothing.apply(clean.events)), episodes=clean.episodes, reader=reader,
        should_stop=stop)
    stage_ms["outputs"] += (time.perf_counter() - t) * 1000.0
    result = RunResult(
        video=info, output_dir=output_dir, observations=tuple(observations),
        events=written.events, highlights=written.highlights, scenes=tuple(sampled.scenes),
        tracks=clean.tracks, frames_sampled=done,
        frames_skipped_undecodable=frames.undecodable, frames_decoded=frames.frames_decoded,
        covered_s=sampled.covered,
        stage_ms={k: round(v, 1) for k, v in stage_ms.items()},
        backends=backends.names(), person_vectors=person_vecs,
    )
    progress(Stage.DONE, 1.0, done, force=True)
    return result


def _with_objects(objects: ObjectPass | None, events: list) -> list:
    """The events with their people's object relations, and the object tracks' events."""
    if objects is None:
        return list(events)
    return sorted(objects.apply(events) + objects.events(),
                  key=lambda ev: (ev.t_s, ev.obj_id, ev.event_type.value))


def _check_stop(stop: Callable[[], bool], path: Path) -> None:
    if stop():
        raise Cancelled(f"analysis of {path.name} was stopped; no output file was written")


def _find_events(observer: Observer, info: VideoInfo, plan: SamplingPlan, backends,
                 stage_ms: dict, done: int):
    """After the sampled pass: the action stage's second look (a centred window over each
    track), the episodes (falls, interactions, violence) and the post-processed events.
    Returns the sampled observations and the cleaned result."""
    from pipeline import highlights as hl
    from pipeline import postprocess

    refine = getattr(backends.action, "refine", None)
    if refine is not None:
        observer.stream.replace_sampled(_stage("action", stage_ms, refine, observer.stream.sampled,
                                               info.width, info.height))
    observations = observer.stream.sampled
    t = time.perf_counter()
    episodes = hl.find_episodes(observations, info, plan.sampled_fps, observer=observer,
                                violence=getattr(backends, "violence", None))
    stage_ms["highlights"] += (time.perf_counter() - t) * 1000.0
    t = time.perf_counter()
    clean = postprocess.clean(observations, episodes, frames_sampled=done,
                              sampled_fps=plan.sampled_fps, video_duration_s=info.duration_s)
    stage_ms["postprocess"] += (time.perf_counter() - t) * 1000.0
    return observations, clean


class _SampledPass:
    """The pass over the sampled frames: detect -> track -> attributes -> orientation -> action
    (-> scene every ``SCENE_EVERY_SAMPLES``), with a short per-track history for the action
    stage; hard scene cuts end every track (pipeline/cuts.py)."""

    def __init__(self, plan: SamplingPlan, backends, observer: Observer, models_dir):
        from pipeline.tracking import PersonTracker

        self.backends, self.observer = backends, observer
        self.detector = pass_detector(plan, backends)
        self.tracker = PersonTracker(plan.sampled_fps)
        self.stage_ms: dict[str, float] = defaultdict(float)
        self.history: dict[int, deque[PersonObservation]] = {}
        self.keep_s = (max(T.MOTION_WINDOW_S, T.FALL_MAX_TRANSITION_S)
                       + 2.0 / max(plan.sampled_fps, 1e-3))
        self.scenes: list[SceneCaption] = []
        self.clothing = ClothingColours(namer=load_namer(models_dir))  # rules without the file
        self.cuts = CutDetector()
        # appearance vectors per track (pipeline/person_vectors.py), from the violence
        # classifier's backbone where a descriptor needs it
        self.people = person_vectors.for_run(
            getattr(getattr(backends, "violence", None), "backbone", None), models_dir)
        self.objects = (None if getattr(backends, "objects", None) is None
                        else ObjectPass(backends.objects, plan.sampled_fps))
        self.prev_frame: int | None = None
        self.covered: tuple[float, float] | None = None
        self.done = 0

    def timed(self, stage: str, fn, *args):
        return _stage(stage, self.stage_ms, fn, *args)

    def run(self, frames: VideoFrames, progress: _Progress, stop, name: str) -> None:
        total = frames.expected_samples
        frame_iter = Prefetch(frames)  # the next frames decode while the models run
        try:
            while True:
                if stop():
                    raise Cancelled(f"analysis of {name} was stopped after {self.done} sampled "
                                    f"frames; no output file was written")
                t = time.perf_counter()
                frame = next(frame_iter, None)
                self.stage_ms["decode"] += (time.perf_counter() - t) * 1000.0
                if frame is None:
                    break
                self.frame(frame)
                self.done += 1
                if self.done % HEAP_TRIM_EVERY == 0:
                    heap.give_back()  # the models' freed activations (pipeline/heap.py)
                progress(Stage.ANALYSING, min(1.0, self.done / total), self.done)
        finally:
            frame_iter.close()
            if self.objects is not None:
                self.objects.finish()

    def frame(self, frame: Frame) -> None:
        self.covered = (frame.t_s if self.covered is None else self.covered[0], frame.t_s)
        if self.timed("cuts", self.cuts.is_cut, frame) and self.prev_frame is not None:
            self.tracker.cut()
            self.observer.cut_between(self.prev_frame, frame.frame_number)
            if self.objects is not None:
                self.objects.cut()
        self.prev_frame = frame.frame_number
        rows = self.readings(frame)
        if frame.sample_index % SCENE_EVERY_SAMPLES == 0:
            cap = self.timed("scene", self.backends.scene.describe, frame, rows)
            self.scenes.append(cap)
            rows = [dataclasses.replace(r, scene_description=cap.text) for r in rows]
        self.observer.stream.add(rows)
        self.timed("clothing", self.clothing.add, frame, rows)
        if self.objects is not None and self.objects.due(frame):
            found = self.timed("objects", self.objects.detect, frame)
            self.timed("object_tracking", self.objects.add, frame, found, rows)
        if self.people is not None:
            self.timed("person_vectors", self.people.add, frame, rows)
        self.remember(rows, frame.t_s)

    def readings(self, frame: Frame) -> list[PersonObservation]:
        """Each tracked person of ``frame`` with every per-person stage's reading."""
        b = self.backends
        persons = self.observer.track(frame, self.detector, self.tracker, self.timed)
        if not len(persons):
            return []
        attrs = self.timed("attributes", b.attributes.estimate, frame, persons)
        orients = self.timed("orientation", b.orientation.estimate, frame, persons)
        hist_view = {k: tuple(v) for k, v in self.history.items()}
        actions = self.timed("action", b.action.recognize, frame, persons, hist_view)
        return sampled_rows(frame, persons, attrs, orients, actions)

    def remember(self, rows: list[PersonObservation], t_s: float) -> None:
        """The per-track history the action stage reads: ``keep_s`` per track; lost tracks go."""
        for r in rows:
            h = self.history.setdefault(r.obj_id, deque())
            h.append(r)
            while h and r.t_s - h[0].t_s > self.keep_s:
                h.popleft()
        for oid in [k for k, v in self.history.items() if v and t_s - v[-1].t_s > T.TRACK_LOST_S]:
            del self.history[oid]
