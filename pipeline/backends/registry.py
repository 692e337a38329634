"""Backend registry: stage -> name -> "module:factory". Factories take ``Settings`` and import
heavy libraries (onnxruntime, torch, ultralytics, transformers, boto3) only when called."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pipeline.errors import BackendUnavailable
from pipeline.backends.protocols import (
    ActionRecognizer, AttributeEstimator, OrientationEstimator, PersonDetector,
    SceneDescriber, ViolenceDetector,
)

REGISTRY: dict[str, dict[str, str]] = {
    "detector": {
        "movenet": "pipeline.backends.movenet:load_movenet",
        "yolo": "pipeline.backends.yolo:load_yolo",
    },
    "proposals": {  # second detector for the dense passes; "none" switches it off
        "yolov5": "pipeline.backends.proposals:load_yolov5_proposals",
    },
    "attributes": {
        "age_gender": "pipeline.backends.age_gender:load_age_gender",
        "faceres": "pipeline.backends.faceres:load_faceres",
        "mivolo": "pipeline.backends.mivolo:load_mivolo",
    },
    "orientation": {
        "keypoints": "pipeline.backends.keypoint_orientation:load_keypoint_orientation",
        "mebow": "pipeline.backends.mebow:load_mebow",
    },
    "action": {
        "pose_rules": "pipeline.actions:load_pose_rules",
        "vlm": "pipeline.backends.vlm:load_vlm_actions",
    },
    "violence": {  # violent episodes from the dense observations
        "learned": "pipeline.violence:load_learned",
        "rule": "pipeline.violence:load_rule",
    },
    "scene": {
        "template": "pipeline.scene:load_template_scene",
        "bedrock": "pipeline.backends.bedrock:load_bedrock_scene",
        "openai": "pipeline.backends.openai_compat:load_openai_scene",
    },
    "embedder": {
        "minilm": "pipeline.backends.minilm:load_minilm",
        "titan": "pipeline.backends.bedrock:load_titan_embedder",
    },
}

SETTING_FOR_STAGE = {
    "detector": "VA_DETECTOR", "proposals": "VA_PROPOSALS", "attributes": "VA_ATTRIBUTES",
    "orientation": "VA_ORIENTATION", "action": "VA_ACTION", "scene": "VA_SCENE",
    "violence": "VA_VIOLENCE",
    "embedder": "VA_EMBEDDER",
}


def load_backend(stage: str, name: str, settings: Any) -> Any:
    """Build one backend. Unknown names and missing weights raise ``BackendUnavailable``."""
    try:
        names = REGISTRY[stage]
    except KeyError:
        raise BackendUnavailable(f"unknown stage {stage!r}; stages: {sorted(REGISTRY)}") from None
    if name not in names:
        raise BackendUnavailable(
            f"unknown {stage} backend {name!r}; choose one of {sorted(names)} "
            f"(setting {SETTING_FOR_STAGE.get(stage, stage)})"
        )
    module_name, _, attr = names[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendUnavailable(
            f"{stage} backend {name!r} cannot be imported ({e}); install the project's "
            f"requirements (see README) or choose another backend"
        ) from e
    return getattr(module, attr)(settings)


@dataclass(frozen=True)
class Backends:
    detector: PersonDetector
    attributes: AttributeEstimator
    orientation: OrientationEstimator
    action: ActionRecognizer
    scene: SceneDescriber
    dense_detector: PersonDetector | None = None  # for the dense passes; None: ``detector``
    violence: ViolenceDetector | None = None  # None: the limb-speed rule

    @property
    def dense(self) -> PersonDetector:
        """The detector for frames sampled densely for interactions (short clips, the windows
        where people come close): ``detector`` supplemented by a second one (VA_PROPOSALS)."""
        return self.dense_detector or self.detector

    def names(self) -> dict[str, str]:
        return {
            "detector": self.detector.name, "dense_detector": self.dense.name,
            "attributes": self.attributes.name, "orientation": self.orientation.name,
            "action": self.action.name, "scene": self.scene.name,
            "violence": self.violence.name if self.violence is not None else "rule",
        }


def load_backends(settings: Any) -> Backends:
    """All analysis backends named by ``settings`` (not the embedder, which search owns)."""
    if settings.device == "cuda":
        _require_cuda()
    detector = load_backend("detector", settings.detector, settings)
    return Backends(
        detector=detector,
        dense_detector=load_dense_detector(detector, settings),
        attributes=load_backend("attributes", settings.attributes, settings),
        orientation=load_backend("orientation", settings.orientation, settings),
        action=load_backend("action", settings.action, settings),
        scene=load_backend("scene", settings.scene, settings),
        violence=load_backend("violence", getattr(settings, "violence", "learned"), settings),
    )


def load_dense_detector(detector: PersonDetector, settings: Any) -> PersonDetector | None:
    """MoveNet supplemented by the proposals backend (YOLOv5s + Thunder) for the dense passes;
    None (the main detector alone) for VA_PROPOSALS=none or a detector that finds people itself
    (YOLOv8 person+face)."""
    name = getattr(settings, "proposals", "none")
    if name == "none":
        return None
    if name not in REGISTRY["proposals"]:
        raise BackendUnavailable(
            f"unknown proposals backend {name!r}; choose one of "
            f"{sorted(REGISTRY['proposals']) + ['none']} (setting VA_PROPOSALS)")
    if settings.detector != "movenet":
        return None
    return load_backend("proposals", name, settings).around(detector)


def _require_cuda() -> None:
    try:
        import torch
    except ImportError:
        raise BackendUnavailable(
            "--device cuda needs PyTorch with CUDA; install the requirements or use --device cpu"
        ) from None
    if not torch.cuda.is_available():
        raise BackendUnavailable(
            "--device cuda was asked for but no CUDA GPU is visible; use --device cpu "
            "(or run on a machine with an NVIDIA GPU and driver)"
        )
