"""Highlight frames drawn with supervision's annotators: boxes coloured by track, a label per
person (track id, action, age group / gender when known), and the 17-keypoint skeleton."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.records import COCO_SKELETON, AgeGroup, Gender, PersonObservation


def person_label(o: PersonObservation, event: str | None = None) -> str:
    parts = [f"#{o.obj_id}"]
    if event:
        parts.append(event.upper())
    parts.append(o.action.value)
    group = AgeGroup.from_age(o.age)
    if group is not AgeGroup.UNKNOWN:
        parts.append(group.value)
    if o.gender is not Gender.UNKNOWN:
        parts.append(o.gender.value)
    return " ".join(parts)


def annotate_frame(image_rgb: np.ndarray, people: Sequence[PersonObservation],
                   focus_obj_id: int | Sequence[int] | None = None, event: str | None = None,
                   caption: str | None = None) -> np.ndarray:
    """A copy of ``image_rgb`` with ``people`` drawn; the ``focus_obj_id`` person (or people)
    carries the ``event`` name in its label. Returns RGB uint8."""
    focus = ({focus_obj_id} if isinstance(focus_obj_id, (int, np.integer))
             else set(focus_obj_id or ()))
    import supervision as sv

    scene = np.ascontiguousarray(image_rgb[:, :, ::-1]).copy()  # supervision/cv2 draw in BGR
    h, w = scene.shape[:2]
    thick = max(1, int(round(min(h, w) / 300)))
    text_scale = max(0.35, min(h, w) / 900)
    if people:
        ids = np.array([max(0, o.obj_id) for o in people], int)
        dets = sv.Detections(xyxy=np.array([o.xyxy for o in people], np.float32),
                             confidence=np.array([o.det_confidence for o in people], np.float32),
                             class_id=np.zeros(len(people), int), tracker_id=ids)
        labels = [person_label(o, event if o.obj_id in focus else None) for o in people]
        scene = sv.BoxAnnotator(thickness=thick, color_lookup=sv.ColorLookup.TRACK).annotate(
            scene, dets)
        kp = np.array([o.keypoints for o in people], np.float32).reshape(-1, 17, 3)
        xy = kp[:, :, :2].copy()
        xy[kp[:, :, 2] < T.KP_MIN_SCORE] = 0  # supervision skips (0, 0) points
        points = sv.KeyPoints(xy=xy, keypoint_confidence=kp[:, :, 2], class_id=np.zeros(len(people), int))
        edges = [(a + 1, b + 1) for a, b in COCO_SKELETON]  # supervision's edges are 1-based
        scene = sv.EdgeAnnotator(color=sv.Color.GREEN, thickness=thick, edges=edges).annotate(
            scene, points)
        scene = sv.VertexAnnotator(color=sv.Color.YELLOW, radius=thick + 1).annotate(scene, points)
        scene = sv.LabelAnnotator(text_scale=text_scale, text_thickness=thick,
                                  color_lookup=sv.ColorLookup.TRACK).annotate(scene, dets, labels)
    if caption:
        import cv2

        cv2.putText(scene, caption, (8, int(22 * text_scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX,
                    text_scale * 1.2, (0, 0, 255), thick + 1, cv2.LINE_AA)
    return scene[:, :, ::-1].copy()
