"""One small Protocol per stage. The offline default and the CUDA models implement the same one;
which runs is a setting (``Settings.detector`` etc.), never a code path."""
from __future__ import annotations

from typing import Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from pipeline.records import (
    ActionEstimate, Attributes, ChatReply, Episode, Frame, ObjectDetections, Orientation,
    PersonDetections, PersonObservation, SceneCaption,
)


@runtime_checkable
class PersonDetector(Protocol):
    name: str

    def detect(self, frames: Sequence[Frame]) -> list[PersonDetections]:
        """People (boxes, confidence, 17 keypoints; face boxes if the model has them) per frame."""


@runtime_checkable
class ObjectDetector(Protocol):
    name: str

    def detect(self, frame: Frame) -> ObjectDetections:
        """The frame's objects of ``ObjectClass`` (boxes, scores, classes), after NMS.
        A detector may also have ``release()``: called when a pass over a video ends, to free
        what only this stage holds (it opens it again on the next ``detect``)."""


@runtime_checkable
class AttributeEstimator(Protocol):
    name: str

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Attributes]:
        """Age and gender per person (one batch per frame). Untrustworthy -> UNKNOWN / None."""


@runtime_checkable
class OrientationEstimator(Protocol):
    name: str

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Orientation]:
        """Body orientation per person in the engine's convention (see ``records``)."""


@runtime_checkable
class ActionRecognizer(Protocol):
    name: str

    def recognize(
        self,
        frame: Frame,
        persons: PersonDetections,
        history: Mapping[int, Sequence[PersonObservation]],
    ) -> list[ActionEstimate]:
        """Action per (tracked) person; ``history`` holds each track's earlier observations."""


@runtime_checkable
class SceneDescriber(Protocol):
    name: str

    def describe(self, frame: Frame, observations: Sequence[PersonObservation]) -> SceneCaption:
        """A plain-language description of the frame."""


@runtime_checkable
class ViolenceDetector(Protocol):
    name: str

    def episodes(self, observations: Sequence[PersonObservation],
                 motion: Mapping[int, np.ndarray] | None,
                 frame_size: tuple[int, int]) -> list[Episode]:
        """Violent episodes in densely sampled, tracked observations; ``motion`` maps a frame
        number to its difference with the previous sampled frame (``pipeline.violence``)."""


@runtime_checkable
class Embedder(Protocol):
    name: str  # stored with each vector; vectors of different models are never compared
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32, L2-normalised."""


@runtime_checkable
class ChatModel(Protocol):
    """A chat LLM (Claude on Bedrock, an OpenAI-compatible endpoint) for search answers."""

    name: str

    def complete(self, system: str, user: str) -> ChatReply:
        """The model's reply to one system + user message, with its token counts."""
