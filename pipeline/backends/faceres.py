"""HSE-FaceRes attributes backend (``VA_ATTRIBUTES=faceres``): gender, age and a face descriptor
from one ONNX network, fed face crops from ``pipeline.faces``.

The weights are NOT shipped with the product (their upstream licence is not stated; treat them as
evaluation-only): point ``VA_FACERES_PATH`` at the ``.onnx`` file. Input ``input_1:0`` float32
[N,224,224,3] RGB 0..255; outputs P(male) [N,1] and a softmax over ages 0..99 [N,100] (the
reported age is its expectation). Small, blurred, turned or tilted faces are dropped before the
model runs; every other face of a frame and its mirror image are one batch; the trust gates of
``pipeline.faces.to_attributes`` decide what is answered.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from pipeline.backends.onnx_common import CpuInference, cpu_session
from pipeline.errors import BackendUnavailable
from pipeline.faces import FaceReading, crop, faces_to_read, to_attributes
from pipeline.records import Attributes, Frame, PersonDetections

log = logging.getLogger(__name__)

INPUT_SIDE = 224
_INPUT = "input_1:0"
_GENDER = "gender_pred/Sigmoid:0"
_AGE = "age_pred/Softmax:0"


class FaceResEstimator:
    """Stateless per-frame estimator (implements ``AttributeEstimator``)."""

    name = "faceres"

    def __init__(self, session, flip: bool = True) -> None:
        self._session = session
        self.flip = flip
        self._ages = np.arange(100, dtype=np.float32)

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Attributes]:
        return [to_attributes(r) for r in self.read(frame, persons)]

    def read(self, frame: Frame, persons: PersonDetections, run_all: bool = False
             ) -> list[FaceReading | None]:
        """One ``FaceReading`` per person (None: no face seen); the network sees every selected
        face, and its mirror image, in one batch."""
        import cv2

        if len(persons) == 0:
            return []
        faces, views, sel = faces_to_read(frame.image, persons, run_all=run_all)
        out: list[FaceReading | None] = [None if v is None else FaceReading(v) for v in views]
        idx = [i for i in sel if crop(frame.image, faces[i]) is not None]
        if not idx:
            return out
        crops = []
        for i in idx:
            c = crop(frame.image, faces[i])
            interp = cv2.INTER_AREA if views[i].side_px > INPUT_SIDE else cv2.INTER_LINEAR
            crops.append(cv2.resize(c, (INPUT_SIDE, INPUT_SIDE), interpolation=interp))
        batch = np.stack(crops).astype(np.float32)
        if self.flip:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        p_male, p_age = self._session.run([_GENDER, _AGE], {_INPUT: batch})
        ages = p_age @ self._ages
        n = len(idx)
        for k, i in enumerate(idx):
            out[i] = FaceReading(
                views[i], p_male=float(p_male[k, 0]), age=float(ages[k]),
                p_male_flip=float(p_male[n + k, 0]) if self.flip else None,
                age_flip=float(ages[n + k]) if self.flip else None)
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
    cpu = CpuInference.from_settings(settings, threads=min(2, os.cpu_count() or 1))
    session = cpu_session(path, cpu, "HSE-FaceRes weights",
                          "set VA_FACERES_PATH to the HSE-FaceRes faceres.onnx file", model="faceres")
    names_in = {i.name for i in session.get_inputs()}
    names_out = {o.name for o in session.get_outputs()}
    if _INPUT not in names_in or not {_GENDER, _AGE} <= names_out:
        raise BackendUnavailable(
            f"{path} is an ONNX model but not HSE-FaceRes (inputs {sorted(names_in)}); set "
            "VA_FACERES_PATH to the faceres.onnx file"
        )
    return FaceResEstimator(session)
