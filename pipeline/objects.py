"""The object pass: COCO objects on every ``object_every``-th sampled frame, tracked, stored as
object events, and the person-object relations (carrying, riding, sitting on) of each person's
track.

* Detection: ``backends.objects`` (YOLOv5s, shared with the dense pass's proposals). Objects are
  read at about ``OBJECT_FPS`` samples a second of video: bags, bikes and chairs move slowly next
  to a pose, and one YOLOv5s inference (~60-70 ms at OpenVINO f32 on 2 cores) on each 1.5 fps
  sample would cost more than the whole object pass may (30 ms per sampled frame).
* Tracking: the person pass's tracker (``tracking.PersonTracker``: ByteTrack with DIoU and
  re-linking), one per class so a bag never continues a chair's track. Track ids count from
  ``OBJECT_ID_BASE`` across the classes (each tracker counts its own). A track is kept when seen on ``OBJECT_MIN_SAMPLES`` object samples (fewer
  when the video has fewer), as the person pass keeps tracks seen twice.
* Relations, per object sample, from boxes (and hips/wrists when the keypoints are sure):
  carrying: a bag, backpack, suitcase or umbrella mostly inside the person's box widened by
  ``CARRY_WIDEN`` of its width, above the feet, smaller than the person; riding: a bicycle or
  motorcycle under the lower half of the person (horizontal overlap, reaching the feet); sitting
  on: a chair, bench or couch under the hips of a person not walking or running. An object box
  that is mostly a person's box (``SAME_AS_PERSON_IOU``) of a class nobody carries, rides or
  sits on is that person misread (a woman lying on the floor read as a dog) and dropped. A
  relation holds for a track when it is seen on
  ``RELATION_MIN_SAMPLES`` object samples (one for a video of one sample), whichever track the
  object had (at 0.5 samples a second a carried bag moves too far between samples for its own
  track to hold); carrying also needs the object to move with the person: its offset from the
  person changes by less than ``CARRY_MAX_DRIFT`` body heights between the first and last
  sighting.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Sequence

import numpy as np

from pipeline.records import (
    KP, OBJECT_ID_BASE, RELATION_CLASSES, AgeGroup, Action, Event, EventType, Frame, Gender,
    ObjectClass, ObjectDetections, ObjectObservation, ObjectRelation, PersonDetections,
    PersonObservation, Relation, frozen_mapping,
)

OBJECT_FPS = 0.5  # object samples per second of video
OBJECT_MIN_SAMPLES = 2
RELATION_MIN_SAMPLES = 2
CARRY_WIDEN = 0.25  # a carried object may stick out of the person's box by this share of its width
CARRY_MIN_INSIDE = 0.5  # share of the object's box inside the widened person box
CARRY_MAX_AREA = 0.6  # a carried object's box is smaller than this share of the person's
CARRY_MAX_DRIFT = 0.5  # body heights the object's offset from the person may change
RIDE_MIN_OVERLAP_X = 0.5  # horizontal overlap of vehicle and person, of the narrower width
RIDE_FEET_BH = 0.25  # the vehicle's bottom reaches within this many body heights of the feet
SIT_MARGIN = 0.15  # the seat's box widened by this share of its size around the hips
MIN_KP_SCORE = 0.3
#: An object box this much like a person's box (IoU) is that person misread (a person lying on
#: the floor read as a dog), unless people carry, ride or sit on its class.
SAME_AS_PERSON_IOU = 0.5
_MOVING = (Action.WALKING, Action.RUNNING)
_RELATED = frozenset(c for cs in RELATION_CLASSES.values() for c in cs)


def object_every(sampled_fps: float) -> int:
    """Sampled frames between two object samples (1 at or below ``OBJECT_FPS``)."""
    return max(1, int(round(float(sampled_fps) / OBJECT_FPS)))


def _inside_share(obj: np.ndarray, box: np.ndarray) -> float:
    iw = max(0.0, min(obj[2], box[2]) - max(obj[0], box[0]))
    ih = max(0.0, min(obj[3], box[3]) - max(obj[1], box[1]))
    area = max(1e-6, (obj[2] - obj[0]) * (obj[3] - obj[1]))
    return float(iw * ih / area)


def _hips(person: PersonObservation) -> tuple[float, float]:
    kp = np.asarray(person.keypoints, np.float32).reshape(-1, 3)
    x1, y1, x2, y2 = person.xyxy
    if len(kp) == 17:
        hips = kp[[KP["left_hip"], KP["right_hip"]]]
        sure = hips[hips[:, 2] >= MIN_KP_SCORE]
        if len(sure):
            return float(sure[:, 0].mean()), float(sure[:, 1].mean())
    return (x1 + x2) / 2, y1 + 0.55 * (y2 - y1)


def relation_of(person: PersonObservation, cls: ObjectClass, obj: np.ndarray) -> Relation | None:
    """The relation a person's box (and keypoints) and one object's box show in one frame."""
    p = np.asarray(person.xyxy, np.float32)
    pw, ph = max(1.0, p[2] - p[0]), max(1.0, p[3] - p[1])
    if cls in RELATION_CLASSES[Relation.CARRYING]:
        wide = p + np.array([-CARRY_WIDEN * pw, 0, CARRY_WIDEN * pw, 0], np.float32)
        area = (obj[2] - obj[0]) * (obj[3] - obj[1])
        cy = (obj[1] + obj[3]) / 2
        if (_inside_share(obj, wide) >= CARRY_MIN_INSIDE and area <= CARRY_MAX_AREA * pw * ph
                and p[1] + 0.1 * ph <= cy <= p[1] + 0.9 * ph):
            return Relation.CARRYING
    elif cls in RELATION_CLASSES[Relation.RIDING]:
        ox = max(0.0, min(obj[2], p[2]) - max(obj[0], p[0]))
        if (ox >= RIDE_MIN_OVERLAP_X * min(pw, obj[2] - obj[0])
                and (obj[1] + obj[3]) / 2 > (p[1] + p[3]) / 2 and obj[1] < p[3]
                and obj[3] >= p[3] - RIDE_FEET_BH * ph):
            return Relation.RIDING
    elif cls in RELATION_CLASSES[Relation.SITTING_ON] and person.action not in _MOVING:
        hx, hy = _hips(person)
        mw, mh = SIT_MARGIN * (obj[2] - obj[0]), SIT_MARGIN * (obj[3] - obj[1])
        if obj[0] - mw <= hx <= obj[2] + mw and obj[1] - mh <= hy <= obj[3] + mh:
            return Relation.SITTING_ON
    return None


def _not_people(found: ObjectDetections, people: Sequence[PersonObservation]) -> ObjectDetections:
    """``found`` without the boxes that are a person of ``people`` misread (see
    ``SAME_AS_PERSON_IOU``)."""
    if not len(found) or not people:
        return found
    from pipeline.backends.movenet import iou_matrix

    iou, _ = iou_matrix(found.xyxy, np.asarray([p.xyxy for p in people], np.float32))
    keep = [i for i, c in enumerate(found.object_class)
            if c in _RELATED or float(iou[i].max()) < SAME_AS_PERSON_IOU]
    if len(keep) == len(found):
        return found
    return ObjectDetections(found.xyxy[keep], found.confidence[keep],
                            tuple(found.object_class[i] for i in keep))


@dataclasses.dataclass(frozen=True)
class _Sighting:
    """One relation seen in one object sample."""

    t_s: float
    object_id: int
    offset: tuple[float, float]  # object centre - person centre, in body heights


class ObjectPass:
    """Feed it every sampled frame with the frame's person rows (``add``); it detects on every
    ``object_every``-th; ``events()`` gives the object tracks' events and ``apply(events)`` the
    person events with their track's relations."""

    def __init__(self, detector, sampled_fps: float):
        self.detector = detector
        self.sampled_fps = sampled_fps
        self.every = object_every(sampled_fps)
        self._trackers: dict[ObjectClass, object] = {}
        self.observations: list[ObjectObservation] = []
        self._sightings: dict[tuple[int, ObjectRelation], list[_Sighting]] = defaultdict(list)
        self._ids: dict[tuple[ObjectClass, int], int] = {}  # (class, tracker's id) -> obj_id
        self.samples = 0

    def due(self, frame: Frame) -> bool:
        return frame.sample_index % self.every == 0

    def cut(self) -> None:
        """A scene cut ends every object track."""
        for t in self._trackers.values():
            t.cut()

    def detect(self, frame: Frame) -> ObjectDetections:
        return self.detector.detect(frame)

    def finish(self) -> None:
        """The sampled pass is over: the detector may free what only it needed (the YOLOv5s
        backend's fitted input); a later ``detect`` opens it again."""
        from pipeline.backends.onnx_common import release

        release(self.detector)

    def add(self, frame: Frame, found: ObjectDetections, people: Sequence[PersonObservation]) -> None:
        """One object sample: ``found`` tracked, then related to ``people`` (the frame's rows)."""
        from pipeline.tracking import PersonTracker

        self.samples += 1
        found = _not_people(found, people)
        rows: list[ObjectObservation] = []
        for cls in dict.fromkeys(found.object_class):
            idx = [i for i, c in enumerate(found.object_class) if c is cls]
            tracker = self._trackers.get(cls)
            if tracker is None:
                tracker = self._trackers[cls] = PersonTracker(self.sampled_fps / self.every)
            boxes = PersonDetections(found.xyxy[idx], found.confidence[idx],
                                     np.zeros((len(idx), 17, 3), np.float32))
            tracked = tracker.update(boxes, frame.t_s)
            for j in range(len(tracked)):
                tid = int(tracked.tracker_id[j])
                if tid < 0:
                    continue
                oid = self._ids.setdefault((cls, tid), OBJECT_ID_BASE + len(self._ids))
                rows.append(ObjectObservation(
                    frame.frame_number, frame.t_s, oid, cls,
                    tuple(round(float(v), 1) for v in tracked.xyxy[j]),
                    round(float(tracked.confidence[j]), 4)))
        self.observations.extend(rows)
        for person in people:
            if person.obj_id < 0:
                continue
            p = np.asarray(person.xyxy, np.float32)
            ph = max(1.0, float(p[3] - p[1]))
            for o in rows:
                box = np.asarray(o.xyxy, np.float32)
                rel = relation_of(person, o.object_class, box)
                if rel is None:
                    continue
                off = ((box[:2] + box[2:]) / 2 - (p[:2] + p[2:]) / 2) / ph
                self._sightings[(person.obj_id, ObjectRelation(rel, o.object_class))].append(
                    _Sighting(frame.t_s, o.obj_id, (float(off[0]), float(off[1]))))

    def relations(self) -> dict[int, tuple[ObjectRelation, ...]]:
        """Per person track, the relations that hold over its samples (see the docstring)."""
        need = max(1, min(RELATION_MIN_SAMPLES, self.samples))
        out: dict[int, list[ObjectRelation]] = defaultdict(list)
        for (pid, rel), seen in self._sightings.items():
            if len({s.t_s for s in seen}) < need:
                continue
            if rel.relation is Relation.CARRYING and len(seen) > 1:
                a, b = np.asarray(seen[0].offset), np.asarray(seen[-1].offset)
                if float(np.hypot(*(b - a))) > CARRY_MAX_DRIFT:
                    continue
            out[pid].append(rel)
        return {pid: tuple(sorted(set(rels))) for pid, rels in out.items()}

    def apply(self, events: Sequence[Event]) -> list[Event]:
        """The events with their person's relations (an incident's lead person's too)."""
        rels = self.relations()
        return [dataclasses.replace(e, relations=rels[int(e.obj_id)])
                if int(e.obj_id) in rels and e.event_type is not EventType.OBJECT else e
                for e in events]

    def events(self) -> list[Event]:
        """One OBJECT event per kept object track: at its surest sighting, spanning its track."""
        need = max(1, min(OBJECT_MIN_SAMPLES, self.samples))
        by_track: dict[int, list[ObjectObservation]] = defaultdict(list)
        for o in self.observations:
            by_track[o.obj_id].append(o)
        users: dict[int, set[int]] = defaultdict(set)
        for (pid, _), seen in self._sightings.items():
            for s in seen:
                users[s.object_id].add(pid)
        out = []
        for oid, obs in sorted(by_track.items()):
            if len({o.frame_number for o in obs}) < need:
                continue
            best = max(obs, key=lambda o: (o.confidence, -o.t_s))
            out.append(Event(
                event_type=EventType.OBJECT, t_s=best.t_s, frame_number=best.frame_number,
                obj_id=oid, xyxy=best.xyxy, age_group=AgeGroup.UNKNOWN, gender=Gender.UNKNOWN,
                action=Action.UNKNOWN, confidence=round(float(np.median([o.confidence for o in obs])), 3),
                track_ids=(oid,), start_t_s=obs[0].t_s, end_t_s=obs[-1].t_s,
                object_class=best.object_class,
                extra=frozen_mapping({"samples": len(obs),
                                      "people": sorted(users.get(oid, ()))})))
        return out
