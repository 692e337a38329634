"""The one place the engine runs a person detector: detect (+ track) frames, and collect every
person seen into one stream of observations (``Observations``), each row marked with the pass
that made it (``PersonObservation.source``):

* ``SAMPLED``: run.py's pass over the sampled frames (``Observer.track``; the later stages add
  attributes, orientation, action and scene to these rows);
* ``DENSE``: the windows where people come close (``Observer.dense``), decoded every
  ``interactions.DENSE_SAMPLE_DT_S``, tracked with a tracker of their own and named after the
  sampled pass's tracks (majority vote of the nearest box at the nearest sampled frame);
* ``REFINE``: the frames between a fall's standing reference and its first down frame
  (``Observer.between``), named after the nearest sampled frames' tracks.

No track runs across a scene cut (``pipeline.cuts``): the sampled pass ends every track at one
and tells the observer (``cut_between``); a dense window finds the cut's frame among the frames
between the two samples around it, ends its own tracks there, and names its people only after
tracks of their shot; the violence classifier scores each shot on its own (``shot_groups``).

Dense and refinement rows hold pose only (box, keypoints). Highlights are drawn from this stream
(``Observations.people_at``); nothing detects a frame twice.
"""
from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from pipeline import heap
from pipeline import thresholds as T
from pipeline.records import (
    Frame, ObservationPass, PersonDetections, PersonObservation, VideoInfo,
)

FrameReader = Callable[[int, int, int], list[Frame]]  # (start_frame, end_frame, step) -> frames
Timed = Callable[..., Any]  # (stage, fn, *args) -> fn(*args), timing it under ``stage``

# what a pose-only row borrows from its track's nearest sampled observation to be drawn
_LENT = ("age", "gender", "gender_score", "orientation_deg", "action", "action_confidence")


def _untimed(stage: str, fn, *args):
    return fn(*args)


def detect_tracked(frame: Frame, detector, tracker, timed: Timed = _untimed) -> PersonDetections:
    """The people of ``frame``: detected, then tracked; detections matching no track dropped."""
    persons = timed("detector", lambda f: detector.detect([f])[0], frame)
    persons = timed("tracking", tracker.update, persons, frame.t_s)
    if persons.tracker_id is not None and len(persons):
        persons = persons[persons.tracker_id >= 0]
    return persons


def pose_rows(frame: Frame, persons: PersonDetections, source: ObservationPass,
              obj_ids: Sequence[int] | None = None) -> list[PersonObservation]:
    """One pose-only row per person (``obj_ids`` or the tracker's ids; negative ids skipped)."""
    ids = persons.tracker_id if obj_ids is None else obj_ids
    return [PersonObservation(
        frame_number=frame.frame_number, t_s=frame.t_s, obj_id=int(ids[i]),
        xyxy=tuple(float(v) for v in persons.xyxy[i]),
        det_confidence=float(persons.confidence[i]),
        keypoints=tuple(tuple(float(v) for v in k) for k in persons.keypoints[i]), source=source)
        for i in range(len(persons)) if int(ids[i]) >= 0]


def _distance_bh(box: np.ndarray, o: PersonObservation) -> float:
    """Centre distance of ``box`` to ``o``'s box, in ``o``'s box sizes."""
    c = (box[:2] + box[2:]) / 2
    ob = np.asarray(o.xyxy)
    size = max(ob[2] - ob[0], ob[3] - ob[1], 1.0)
    return float(np.hypot(*(c - (ob[:2] + ob[2:]) / 2))) / size


class Observations:
    """The run's one stream of observations, all passes together, indexed by frame."""

    def __init__(self, rows: Iterable[PersonObservation] = ()):
        self._rows: list[PersonObservation] = []
        self._by_frame: dict[ObservationPass, dict[int, list[PersonObservation]]] = {
            p: {} for p in ObservationPass}
        self._sampled_frames: list[int] | None = None
        self._sampled_tracks: dict[int, list[PersonObservation]] | None = None
        self.add(rows)

    def add(self, rows: Iterable[PersonObservation]) -> None:
        for o in rows:
            self._rows.append(o)
            self._by_frame[o.source].setdefault(o.frame_number, []).append(o)
            if o.source is ObservationPass.SAMPLED:
                self._sampled_frames = self._sampled_tracks = None

    def __len__(self) -> int:
        return len(self._rows)

    def replace_sampled(self, rows: Sequence[PersonObservation]) -> None:
        """The sampled pass's rows replaced by ``rows`` (the same rows, in the same order, with
        new readings: the action backend's ``refine``)."""
        new = iter(rows)
        old, self._rows = self._rows, []
        self._by_frame = {p: {} for p in ObservationPass}
        self.add([next(new) if o.source is ObservationPass.SAMPLED else o for o in old])

    def of(self, source: ObservationPass) -> list[PersonObservation]:
        return [o for o in self._rows if o.source is source]

    @property
    def sampled(self) -> list[PersonObservation]:
        """The sampled pass's rows (results_final.csv), in the order they came."""
        return self.of(ObservationPass.SAMPLED)

    def sampled_at(self, frame_number: int) -> list[PersonObservation]:
        return self._by_frame[ObservationPass.SAMPLED].get(frame_number, [])

    def sampled_frames(self) -> list[int]:
        if self._sampled_frames is None:
            self._sampled_frames = sorted(self._by_frame[ObservationPass.SAMPLED])
        return self._sampled_frames

    def nearest_sampled_frame(self, frame_number: int) -> int | None:
        """The sampled frame with people nearest to ``frame_number`` (the earlier one on a tie)."""
        frames = self.sampled_frames()
        if not frames:
            return None
        i = bisect_left(frames, frame_number)
        near = [frames[j] for j in (i - 1, i) if 0 <= j < len(frames)]
        return min(near, key=lambda f: abs(f - frame_number))

    def people_at(self, frame_number: int) -> list[PersonObservation]:
        """Who to draw on ``frame_number``: the sampled pass's rows when it saw people there,
        else the dense or refinement pass's, each with the attributes and action of its track's
        nearest sampled observation."""
        for source in ObservationPass:
            rows = self._by_frame[source].get(frame_number)
            if rows:
                return rows if source is ObservationPass.SAMPLED else [self._lend(o) for o in rows]
        return []

    def _lend(self, o: PersonObservation) -> PersonObservation:
        if self._sampled_tracks is None:
            self._sampled_tracks = {}
            for s in self.sampled:
                self._sampled_tracks.setdefault(s.obj_id, []).append(s)
        same = self._sampled_tracks.get(o.obj_id)
        if not same:
            return o
        near = min(same, key=lambda s: abs(s.t_s - o.t_s))
        return dataclasses.replace(o, **{k: getattr(near, k) for k in _LENT})


class Observer:
    """The run's detectors and frame reader: detects the frames the engine asks about, and adds
    every person seen to ``stream``. ``detector`` serves sparse frames (a long video's sampled
    pass, the fall refinement), ``dense_detector`` frames sampled densely (a short clip's
    sampled pass, the dense windows); default ``detector``."""

    def __init__(self, info: VideoInfo, reader: FrameReader, detector, dense_detector=None,
                 stream: Observations | None = None):
        self.info, self.reader = info, reader
        self.detector = detector
        self.dense_detector = dense_detector or detector
        self.stream = stream if stream is not None else Observations()
        self.cuts: list[tuple[int, int]] = []  # (last frame before, first frame after) a cut
        self._cut_at: dict[int, int] = {}  # cut index -> its frame, where a dense pass saw it

    def cut_between(self, before: int, after: int) -> None:
        """The sampled pass saw a scene cut between frames ``before`` and ``after``."""
        self.cuts.append((int(before), int(after)))

    def _shot(self, frame_number: int, crossed: set[int]) -> int:
        """The shot (0, 1, 2...) ``frame_number`` belongs to: after every cut whose later sample
        it reaches, and after a cut among whose in-between frames a dense pass saw it
        (``crossed``: indices into ``cuts``)."""
        return sum(1 for i, (before, after) in enumerate(self.cuts)
                   if after <= frame_number or (i in crossed and before < frame_number))

    def _shot_span(self, shot: int) -> tuple[float, float]:
        """The first and last sampled frame of ``shot``."""
        return (self.cuts[shot - 1][1] if shot else 0,
                self.cuts[shot][0] if shot < len(self.cuts) else float("inf"))

    def shot_groups(self, rows: Sequence[PersonObservation]) -> list[list[PersonObservation]]:
        """``rows`` split into runs of one shot each, in time order (one run when no cut)."""
        starts = sorted(self._cut_at.get(i, after) for i, (_, after) in enumerate(self.cuts))
        groups: dict[int, list[PersonObservation]] = {}
        for o in rows:
            groups.setdefault(bisect_right(starts, o.frame_number), []).append(o)
        return [groups[k] for k in sorted(groups)]

    @classmethod
    def for_run(cls, info: VideoInfo, reader: FrameReader, backends) -> "Observer":
        return cls(info, reader, backends.detector, backends.dense)

    def track(self, frame: Frame, detector, tracker, timed: Timed = _untimed) -> PersonDetections:
        """The sampled pass's people on ``frame`` (the caller adds their finished rows)."""
        return detect_tracked(frame, detector, tracker, timed)

    def dense_done(self) -> None:
        """No more dense passes over this video: the dense detector may free what only it
        holds (``SupplementedDetector.release``); a later ``dense`` opens it again."""
        from pipeline.backends.onnx_common import release

        if self.dense_detector is not self.detector:
            release(self.dense_detector)

    def dense(self, windows: Sequence[tuple[float, float]], dt_s: float) -> list[PersonObservation]:
        """People in the frames of ``windows`` (start_s, end_s) every ``dt_s``: detected with the
        dense detector, tracked with a tracker of their own per window, and named after the
        sampled pass's tracks (nearest box at the nearest sampled frame, majority vote per
        window track; unmatched tracks get ids of their own). Added to the stream; returned."""
        from pipeline.cuts import CutDetector
        from pipeline.tracking import PersonTracker

        info, stream = self.info, self.stream
        step = max(1, int(round(info.fps * dt_s)))
        out: list[PersonObservation] = []
        # a whole number of steps, so that the frames are evenly spaced across chunks too
        chunk = step * max(1, int(round(T.DENSE_CHUNK_S * info.fps / step)))
        fresh = max([o.obj_id for o in stream.sampled] + [0]) + 1_000
        cuts = self.cuts
        for start_s, end_s in windows:
            a, b = int(start_s * info.fps), int(end_s * info.fps)
            tracker = PersonTracker(info.fps / step)
            cut_detector, crossed, shot = CutDetector(), set(), None
            rows: list[PersonObservation] = []
            votes: dict[int, dict[int, int]] = {}
            # decoded in chunks so that memory does not grow with the window's length
            # numbered 0, 1, 2... within the window, as the short-clip pass numbers its frames,
            # so that the detector treats them as consecutive samples (fewer tiles: movenet.py)
            frames = (dataclasses.replace(fr, sample_index=k) for k, fr in enumerate(
                fr for c0 in range(a, b + 1, chunk)
                for fr in self.reader(c0, min(b, c0 + chunk - 1), step)))
            for fr in frames:
                f = fr.frame_number
                if cut_detector.is_cut(fr):  # where exactly, between the samples around a cut
                    tracker.cut()
                    for i, (p, c) in enumerate(cuts):
                        if p < f <= c:
                            crossed.add(i)
                            self._cut_at[i] = f
                if shot is not None and self._shot(f, crossed) != shot:
                    tracker.cut()  # no dense track runs across a cut either
                shot = self._shot(f, crossed)
                persons = tracker.update(self.dense_detector.detect([fr])[0], fr.t_s)
                near = stream.nearest_sampled_frame(f)
                if near is None:
                    break
                lo, hi = self._shot_span(shot)  # named only after tracks of the same shot
                ref = stream.sampled_at(near) if lo <= near <= hi else []
                for i in range(len(persons)):
                    tid = int(persons.tracker_id[i])
                    if tid < 0:
                        continue
                    best, best_d = None, T.TRACK_RELINK_BH
                    for o in ref:
                        d = _distance_bh(persons.xyxy[i], o)
                        if d < best_d:
                            best, best_d = o.obj_id, d
                    if best is not None:
                        votes.setdefault(tid, {}).setdefault(best, 0)
                        votes[tid][best] += 1
                rows += pose_rows(fr, persons, ObservationPass.DENSE)
            mapping = {}
            for tid in {r.obj_id for r in rows}:
                v = votes.get(tid)
                mapping[tid] = max(v, key=v.get) if v else fresh + tid
            out += [dataclasses.replace(r, obj_id=mapping[r.obj_id]) for r in rows]
            heap.give_back()  # the dense models' freed activations (pipeline/heap.py)
        stream.add(out)
        return out

    def between(self, first: int, last: int, step: int) -> Iterator[tuple[Frame, PersonDetections]]:
        """Frames ``first``..``last`` every ``step`` with the detector's people on each, lazily
        (a caller that stops early detects no further). Each frame's people are added to the
        stream named after the nearest sampled frames' tracks (the nearest box not yet taken,
        within ``TRACK_RELINK_BH``; unmatched people are left out)."""
        for fr in self.reader(first, last, step):
            persons = self.detector.detect([fr])[0]
            self.stream.add(pose_rows(fr, persons, ObservationPass.REFINE, self._names(fr, persons)))
            yield fr, persons

    def _names(self, frame: Frame, persons: PersonDetections) -> list[int]:
        frames = self.stream.sampled_frames()
        idx = bisect_left(frames, frame.frame_number)
        ref = [o for i in (idx - 1, idx) if 0 <= i < len(frames)
               for o in self.stream.sampled_at(frames[i])]
        ids, used = [], set()
        for i in range(len(persons)):
            best, best_d = None, T.TRACK_RELINK_BH
            for o in ref:
                if o.obj_id in used:
                    continue
                d = _distance_bh(persons.xyxy[i], o)
                if d < best_d:
                    best, best_d = o, d
            ids.append(-1 if best is None else best.obj_id)
            if best is not None:
                used.add(best.obj_id)
        return ids
