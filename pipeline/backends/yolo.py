"""YOLOv8 person (+face) detector from ``--detector-weights`` (ultralytics ``.pt``).

* Classes are mapped by NAME from ``model.names``: ``person`` boxes become people, ``face`` boxes
  are matched to people (Hungarian assignment on the mean of IoU and face-area overlap, as in
  MiVOLO's ``assign_faces``) and stored in ``face_xyxy``. Weights without a ``person`` class are
  refused.
* All sampled frames given to ``detect`` go through ONE ``predict`` call (one batch); on CUDA the
  model runs in fp16.
* Keypoints: a pose model (task ``pose``, 17 COCO keypoints) gives real keypoints; a detect model
  has none, so they are zeros with score 0 (stages that need keypoints then fall back).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pipeline.errors import BackendUnavailable
from pipeline.records import Frame, PersonDetections
from pipeline.backends.torch_common import require_file, resolve_device

log = logging.getLogger("va.backends.yolo")

CONF_THRESHOLD = 0.25  # ultralytics' default
IOU_THRESHOLD = 0.7  # NMS
IMG_SIZE = 640
FACE_MATCH_MIN = 1e-4  # minimum match score for a face to belong to a person (MiVOLO uses 1e-4)


@dataclass(frozen=True)
class ClassMap:
    person_ids: tuple[int, ...]
    face_ids: tuple[int, ...]

    @classmethod
    def from_names(cls, names: dict[int, str]) -> "ClassMap":
        person = tuple(int(k) for k, v in names.items() if str(v).strip().lower() == "person")
        face = tuple(int(k) for k, v in names.items() if str(v).strip().lower() == "face")
        return cls(person, face)


def match_faces(person_xyxy: np.ndarray, face_xyxy: np.ndarray) -> np.ndarray:
    """(N,4) face box per person, NaN rows where no face matched. One face per person at most."""
    n, m = len(person_xyxy), len(face_xyxy)
    out = np.full((n, 4), np.nan, np.float32)
    if n == 0 or m == 0:
        return out
    p = person_xyxy[:, None, :].astype(np.float64)
    f = face_xyxy[None, :, :].astype(np.float64)
    iw = np.clip(np.minimum(p[..., 2], f[..., 2]) - np.maximum(p[..., 0], f[..., 0]), 0, None)
    ih = np.clip(np.minimum(p[..., 3], f[..., 3]) - np.maximum(p[..., 1], f[..., 1]), 0, None)
    inter = iw * ih
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_f = np.clip((f[..., 2] - f[..., 0]) * (f[..., 3] - f[..., 1]), 1e-6, None)
    iou = inter / np.clip(area_p + area_f - inter, 1e-6, None)
    score = (iou + inter / area_f) / 2
    # A face must have its centre inside the person box (kills matches to a neighbour's box edge).
    fcx = (f[..., 0] + f[..., 2]) / 2
    fcy = (f[..., 1] + f[..., 3]) / 2
    inside = (fcx >= p[..., 0]) & (fcx <= p[..., 2]) & (fcy >= p[..., 1]) & (fcy <= p[..., 3])
    score = np.where(inside, score, 0.0)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(score, maximize=True)
    ok = score[rows, cols] > FACE_MATCH_MIN
    out[rows[ok]] = face_xyxy[cols[ok]]
    return out


class YoloDetector:
    name = "yolo"

    def __init__(self, model: Any, classes: ClassMap, device: Any, *, imgsz: int = IMG_SIZE,
                 conf: float = CONF_THRESHOLD):
        self.model = model
        self.classes = classes
        self.device = device
        self.half = device.type == "cuda"
        self.imgsz = imgsz
        self.conf = conf
        self.is_pose = getattr(model, "task", "detect") == "pose"
        self._lock = threading.Lock()  # ultralytics predictors are not thread-safe

    def detect(self, frames: Sequence[Frame]) -> list[PersonDetections]:
        if not frames:
            return []
        # ultralytics takes numpy images as BGR; frames are RGB.
        images = [np.ascontiguousarray(f.image[..., ::-1]) for f in frames]
        wanted = list(self.classes.person_ids + self.classes.face_ids)
        with self._lock:
            results = self.model.predict(
                images, imgsz=self.imgsz, conf=self.conf, iou=IOU_THRESHOLD, classes=wanted,
                quantize=16 if self.half else None, device=str(self.device), verbose=False,
                batch=len(images),
            )
        return [self._to_detections(r) for r in results]

    def _to_detections(self, result: Any) -> PersonDetections:
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return PersonDetections.empty()
        cls = boxes.cls.detach().cpu().numpy().astype(int)
        xyxy = boxes.xyxy.detach().float().cpu().numpy().astype(np.float32)
        conf = boxes.conf.detach().float().cpu().numpy().astype(np.float32)
        is_person = np.isin(cls, self.classes.person_ids)
        is_face = np.isin(cls, self.classes.face_ids)
        p_xyxy, p_conf = xyxy[is_person], conf[is_person]
        n = len(p_xyxy)
        if self.is_pose and result.keypoints is not None and len(result.keypoints) == len(cls):
            kp = result.keypoints.data.detach().float().cpu().numpy().astype(np.float32)[is_person]
            if kp.shape[1:] != (17, 3):
                kp = np.zeros((n, 17, 3), np.float32)
        else:
            kp = np.zeros((n, 17, 3), np.float32)
        faces = match_faces(p_xyxy, xyxy[is_face]) if self.classes.face_ids else None
        return PersonDetections(xyxy=p_xyxy, confidence=p_conf, keypoints=kp, face_xyxy=faces)


def _require_safe_loading() -> None:
    """Ultralytics unpickles a checkpoint fully (``weights_only=False``: any code in the file runs)
    unless its safe-load mode is on; turn it on for this process: ``torch.load(weights_only=True)``
    against an allow-list of ultralytics/torch model classes. Where torch is too old for it,
    ultralytics would silently load unsafely, so refuse instead."""
    from ultralytics.nn import tasks

    if not getattr(getattr(tasks, "_SafeLoad", None), "SUPPORTED", False):
        raise BackendUnavailable(
            "the yolo detector needs torch 2.6 or later to load weights safely (without running "
            "code from the file); install the requirements")
    tasks.SAFE_LOAD = True  # read at call time by torch_safe_load and the model builder


def load_yolo(settings: Any) -> YoloDetector:
    path = require_file(settings.detector_weights, what="the yolo detector", flag="--detector-weights",
                        env="VA_DETECTOR_WEIGHTS", suffixes=(".pt",))
    device = resolve_device(settings)
    try:
        from ultralytics import YOLO
    except ImportError as e:
        raise BackendUnavailable(
            f"the yolo detector needs ultralytics ({e}); install the requirements") from e
    _require_safe_loading()
    try:
        model = YOLO(str(path))
    except Exception as e:  # noqa: BLE001 - whatever ultralytics raises on a foreign file
        raise BackendUnavailable(
            f"{path} is not an ultralytics YOLO checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:120] if str(e) else ''}); pass YOLOv8 person+face .pt "
            f"weights to --detector-weights") from None
    inner = getattr(model, "model", None)
    kpt_shape = getattr(inner, "kpt_shape", None) or (getattr(inner, "yaml", None) or {}).get("kpt_shape")
    if getattr(model, "task", None) != "pose" and kpt_shape is not None:
        model.task = "pose"  # a pose network whose checkpoint lacks train_args: keep its keypoints
    names = dict(getattr(model, "names", {}) or {})
    classes = ClassMap.from_names(names)
    if not classes.person_ids:
        raise BackendUnavailable(
            f"{path} has no 'person' class (classes: {sorted(set(names.values()))[:10]}); pass YOLO "
            f"weights trained with a 'person' class (and 'face' for age/gender) to --detector-weights")
    if not classes.face_ids:
        log.warning("%s has no 'face' class: no face boxes, so age/gender will use bodies only", path)
    model.to(device)
    log.info("yolo %s on %s: person=%s face=%s task=%s", path.name, device, classes.person_ids,
             classes.face_ids, getattr(model, "task", "?"))
    return YoloDetector(model, classes, device)
