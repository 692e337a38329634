"""HSE-FaceRes attributes backend (``VA_ATTRIBUTES=faceres``): gender, age and a face descriptor
from one ONNX network, fed face crops from ``pipeline.faces``.

The weights are NOT shipped with the product (their upstream licence is not stated; treat them as
evaluation-only): point ``VA_FACERES_PATH`` at the ``.onnx`` file. Input ``input_1:0`` float32
[N,224,224,3] RGB 0..255; outputs P(male) [N,1] and a softmax over ages 0..99 [N,100] (the
reported age is its expectation). Small or blurred faces are dropped before the model runs, every
usable face of a frame is one batch, and a gender below ``GENDER_MIN_SCORE`` is UNKNOWN.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from pipeline import thresholds as T
from pipeline.backends.onnx_common import cpu_session
from pipeline.errors import BackendUnavailable
from pipeline.faces import crop, faces_to_estimate
from pipeline.records import Attributes, Frame, Gender, PersonDetections

log = logging.getLogger(__name__)

INPUT_SIDE = 224
_INPUT = "input_1:0"
_GENDER = "gender_pred/Sigmoid:0"
_AGE = "age_pred/Softmax:0"


class FaceResEstimator:
    """Stateless per-frame estimator (implements ``AttributeEstimator``)."""

    name = "faceres"

    def __init__(self, session) -> None:
        self._session = session
        self._ages = np.arange(100, dtype=np.float32)

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Attributes]:
        import cv2

        n = len(persons)
        if n == 0:
            return []
        faces, out, idx = faces_to_estimate(frame.image, persons)
        idx = [i for i in idx if crop(frame.image, faces[i]) is not None]
        if not idx:
            return out
        batch = np.stack([
            cv2.resize(crop(frame.image, faces[i]), (INPUT_SIDE, INPUT_SIDE),
                       interpolation=cv2.INTER_AREA if out[i].face_size_px > INPUT_SIDE else cv2.INTER_LINEAR)
            for i in idx
        ]).astype(np.float32)
        p_male, p_age = self._session.run([_GENDER, _AGE], {_INPUT: batch})
        ages = p_age @ self._ages
        for k, i in enumerate(idx):
            pm = float(p_male[k, 0])
            gender = Gender.MALE if pm >= 0.5 else Gender.FEMALE
            score = max(pm, 1.0 - pm)
            trusted = score >= T.GENDER_MIN_SCORE
            out[i] = Attributes(
                age=float(ages[k]),
                gender=gender if trusted else Gender.UNKNOWN,
                gender_score=score if trusted else None,
                face_size_px=out[i].face_size_px,
            )
        return out


def load_faceres(settings) -> FaceResEstimator:
    """Factory for the registry. Needs ``settings.faceres_path`` (``VA_FACERES_PATH``)."""
    path: Path | None = settings.faceres_path
    if path is None:
        raise BackendUnavailable(
            "attributes backend 'faceres' needs the HSE-FaceRes ONNX file, which is not shipped; "
            "set VA_FACERES_PATH to its path or use VA_ATTRIBUTES=age_gender"
        )
    path = Path(path)
    if not path.is_file():
        raise BackendUnavailable(
            f"HSE-FaceRes weights not found at {path}; set VA_FACERES_PATH to an existing "
            ".onnx file or use VA_ATTRIBUTES=age_gender"
        )
    session = cpu_session(path, min(2, os.cpu_count() or 1), "HSE-FaceRes weights",
                          "set VA_FACERES_PATH to the HSE-FaceRes faceres.onnx file")
    names_in = {i.name for i in session.get_inputs()}
    names_out = {o.name for o in session.get_outputs()}
    if _INPUT not in names_in or not {_GENDER, _AGE} <= names_out:
        raise BackendUnavailable(
            f"{path} is an ONNX model but not HSE-FaceRes (inputs {sorted(names_in)}); set "
            "VA_FACERES_PATH to the faceres.onnx file"
        )
    return FaceResEstimator(session)
