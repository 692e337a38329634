"""Backend registry: stage -> name -> "module:factory". Factories take ``Settings`` and import
heavy libraries (onnxruntime, torch, ultralytics, transformers, boto3) only when called."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from pipeline.errors import BackendUnavailable
from pipeline.backends.protocols import (
    ActionRecognizer, AttributeEstimator, OrientationEstimator, PersonDetector,
    SceneDescriber,
)

REGISTRY: dict[str, dict[str, str]] = {
    "detector": {
        "movenet": "pipeline.backends.movenet:load_movenet",
        "yolo": "pipeline.backends.yolo:load_yolo",
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
    "detector": "VA_DETECTOR", "attributes": "VA_ATTRIBUTES", "orientation": "VA_ORIENTATION",
    "action": "VA_ACTION", "scene": "VA_SCENE", "embedder": "VA_EMBEDDER",
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

    def names(self) -> dict[str, str]:
        return {
            "detector": self.detector.name, "attributes": self.attributes.name,
            "orientation": self.orientation.name, "action": self.action.name,
            "scene": self.scene.name,
        }


def load_backends(settings: Any) -> Backends:
    """All analysis backends named by ``settings`` (not the embedder, which search owns)."""
    if settings.device == "cuda":
        _require_cuda()
    return Backends(
        detector=load_backend("detector", settings.detector, settings),
        attributes=load_backend("attributes", settings.attributes, settings),
        orientation=load_backend("orientation", settings.orientation, settings),
        action=load_backend("action", settings.action, settings),
        scene=load_backend("scene", settings.scene, settings),
    )


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
