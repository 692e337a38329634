"""Objects in the sampled frames: the COCO classes of ``ObjectClass`` from the YOLOv5s network the
dense pass's person proposals use (``proposals.yolov5_network``: one network, one set of weights),
read at the frame's own shape (``YoloV5Coco.raw_fitted``: a 4:3 frame 640x480 instead of the
proposals' 640x640 square, about 3/4 of the cost; a frame the proposals already read is not run
again). The compiled fitted model is freed when the sampled pass ends (``release``).

Score threshold: ``OBJECT_MIN_SCORE`` 0.25 and NMS IoU 0.45 (per class) are Ultralytics' YOLOv5
defaults for detection (``detect.py --conf-thres 0.25 --iou-thres 0.45``), the operating point the
model was published with; they were not tuned on any clip of ours. A class is an anchor's best of
the 80 (objectness x class probability), as Ultralytics does; anchors whose best class is not an
``ObjectClass`` (people, food...) are dropped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.backends.onnx_common import CpuInference
from pipeline.backends.proposals import YOLO_FILE, YoloV5Coco, yolov5_network
from pipeline.records import Frame, ObjectClass, ObjectDetections

OBJECT_MIN_SCORE = 0.25  # Ultralytics YOLOv5 detect.py --conf-thres default
OBJECT_NMS_IOU = 0.45  # Ultralytics YOLOv5 detect.py --iou-thres default
_CLASSES = tuple(ObjectClass)
_COCO_TO_CLASS = np.full(80, -1, np.int64)
for _i, _c in enumerate(_CLASSES):
    _COCO_TO_CLASS[_c.coco_index] = _i


class CocoObjects:
    """``detect(frame)`` -> the frame's ``ObjectDetections``."""

    name = "yolov5"

    def __init__(self, network: YoloV5Coco, min_score: float = OBJECT_MIN_SCORE):
        self.network, self.min_score = network, min_score

    def detect(self, frame: Frame) -> ObjectDetections:
        out, scale = self.network.raw_fitted(frame.image, self.min_score)
        cls_scores = out[:, 5:85]
        best = np.argmax(cls_scores, axis=1)
        score = out[:, 4] * cls_scores[np.arange(len(out)), best]
        ours = _COCO_TO_CLASS[best]
        keep = (score >= self.min_score) & (ours >= 0)
        if not keep.any():
            return ObjectDetections.empty()
        out, score, ours = out[keep], score[keep], ours[keep]
        xyxy, score, idx = self.network.boxes(frame.image, score, out, scale, self.min_score,
                                              OBJECT_NMS_IOU, labels=ours)
        return ObjectDetections(xyxy, score, tuple(_CLASSES[int(ours[i])] for i in idx))

    def release(self) -> None:
        """The pass is over: free the network's fitted input (``YoloV5Coco.release_fitted``)."""
        self.network.release_fitted()


def load_yolov5_objects(settings) -> CocoObjects:
    """Registry factory: the shared YOLOv5s from ``settings.models_dir``."""
    threads = CpuInference.from_settings(settings)
    return CocoObjects(yolov5_network(Path(settings.models_dir) / YOLO_FILE, threads))
