"""The backend registry: ``BACKENDS`` is the one list of backends (stage, name, factory, the
settings each reads, an availability check). The UI's capabilities, the worker's model cache key
and ``load_backend`` all come from it. Factories take ``Settings`` and import heavy libraries
(openvino, onnxruntime, torch, ultralytics, transformers, boto3) only when called."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.errors import BackendUnavailable
from pipeline.backends.protocols import (
    ActionRecognizer, AttributeEstimator, ObjectDetector, OrientationEstimator, PersonDetector,
    SceneDescriber, ViolenceDetector,
)

#: Settings every backend may read (where it runs, its threads, the ONNX runtime and precision,
#: the shipped weights' folder).
COMMON_SETTINGS = ("device", "cpu_threads", "runtime", "precision", "models_dir")


def _always(settings: Any) -> bool:
    return True


def _set(field: str) -> Callable[[Any], bool]:
    def check(settings: Any) -> bool:
        return bool(getattr(settings, field, None))
    check.__name__ = f"{field}_is_set"
    return check


def _faceres_file(settings: Any) -> bool:
    path = settings.faceres_path or Path(settings.models_dir) / "faceres.onnx"
    return Path(path).is_file()


@dataclass(frozen=True)
class BackendSpec:
    """One backend of one stage. ``factory`` is "module:function" (imported only when the
    backend is built); ``settings`` are the Settings fields it reads besides COMMON_SETTINGS (a
    change to one of them means building it again); ``available`` says whether its weights or
    cloud are configured (the UI offers it only then; selecting it anyway fails with the fix).
    ``takes_proposals``: a detector that the dense passes' proposals backend supplements (one
    that finds only some people itself); a detector without it is used alone."""

    stage: str
    name: str
    factory: str
    settings: tuple[str, ...] = ()
    available: Callable[[Any], bool] = _always
    takes_proposals: bool = False


#: THE list of backends: stage, name, factory, the settings each reads, its availability check.
#: The first backend of each stage is its offline default.
BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("detector", "movenet", "pipeline.backends.movenet:load_movenet",
                takes_proposals=True),
    BackendSpec("detector", "yolo", "pipeline.backends.yolo:load_yolo", ("detector_weights",),
                _set("detector_weights")),
    # The dense passes' second detector; VA_PROPOSALS=none switches it off.
    BackendSpec("proposals", "yolov5", "pipeline.backends.proposals:load_yolov5_proposals"),
    # Objects on the sampled frames (the same YOLOv5s network); VA_OBJECTS=none switches it off.
    BackendSpec("objects", "yolov5", "pipeline.backends.objects:load_yolov5_objects"),
    BackendSpec("attributes", "age_gender", "pipeline.backends.age_gender:load_age_gender"),
    BackendSpec("attributes", "faceres", "pipeline.backends.faceres:load_faceres",
                ("faceres_path",), _faceres_file),
    BackendSpec("attributes", "mivolo", "pipeline.backends.mivolo:load_mivolo",
                ("mivolo_checkpoint", "mivolo_with_persons"), _set("mivolo_checkpoint")),
    BackendSpec("orientation", "keypoints",
                "pipeline.backends.keypoint_orientation:load_keypoint_orientation"),
    BackendSpec("orientation", "mebow", "pipeline.backends.mebow:load_mebow",
                ("mebow_cfg", "mebow_weights"), _set("mebow_cfg")),
    # The learned posture-and-motion classifier (models/actions.json) over the pose rules.
    BackendSpec("action", "posture_trees", "pipeline.posture_model:load_posture_trees"),
    BackendSpec("action", "pose_rules", "pipeline.actions:load_pose_rules"),
    BackendSpec("action", "vlm", "pipeline.backends.vlm:load_vlm_actions", ("vlm_path",),
                _set("vlm_path")),
    # Violent episodes in the dense observations: the learned classifier (models/violence.json)
    # or the hand-set limb-speed rule it replaced (the baseline of models/violence.md).
    BackendSpec("violence", "learned", "pipeline.violence:load_learned"),
    BackendSpec("violence", "rule", "pipeline.violence:load_rule"),
    BackendSpec("scene", "template", "pipeline.scene:load_template_scene"),
    BackendSpec("scene", "bedrock", "pipeline.backends.bedrock:load_bedrock_scene",
                ("bedrock_region", "bedrock_claude_model", "aws_region"), _set("bedrock_region")),
    BackendSpec("scene", "openai", "pipeline.backends.openai_compat:load_openai_scene",
                ("openai_base_url", "openai_model", "openai_api_key"), _set("openai_base_url")),
    # all-MiniLM-L6-v2 through the ONNX runtime (no torch); the same vectors (model name) as the
    # sentence-transformers one, which VA_EMBEDDER=minilm-torch selects.
    BackendSpec("embedder", "minilm", "pipeline.backends.minilm_onnx:load_minilm_onnx",
                ("cpu_threads",)),
    BackendSpec("embedder", "minilm-torch", "pipeline.backends.minilm:load_minilm", ("device",)),
    BackendSpec("embedder", "titan", "pipeline.backends.bedrock:load_titan_embedder",
                ("bedrock_region", "bedrock_embed_model", "aws_region"), _set("bedrock_region")),
    # Search answers (services.search.answer); no chat backend = extractive answers.
    BackendSpec("chat", "bedrock", "pipeline.backends.bedrock:load_bedrock_chat",
                ("bedrock_region", "bedrock_claude_model", "aws_region"), _set("bedrock_region")),
    BackendSpec("chat", "openai", "pipeline.backends.openai_compat:load_openai_chat",
                ("openai_base_url", "openai_model", "openai_api_key"), _set("openai_base_url")),
)

#: stage -> name -> "module:factory" (derived from BACKENDS).
REGISTRY: dict[str, dict[str, str]] = {}
for _b in BACKENDS:
    REGISTRY.setdefault(_b.stage, {})[_b.name] = _b.factory
del _b

#: The Settings field naming each stage's backend, and its environment variable.
STAGE_SETTING = {"detector": "detector", "proposals": "proposals", "objects": "objects",
                 "attributes": "attributes",
                 "orientation": "orientation", "action": "action", "scene": "scene",
                 "violence": "violence", "embedder": "embedder", "chat": "answerer"}
SETTING_FOR_STAGE = {stage: "VA_" + field.upper() for stage, field in STAGE_SETTING.items()}
#: The stages ``load_backends`` builds for an analysis (the embedder and chat belong to search).
ANALYSIS_STAGES = ("detector", "proposals", "objects", "attributes", "orientation", "action", "scene",
                   "violence")


def spec(stage: str, name: str) -> BackendSpec:
    for b in BACKENDS:
        if b.stage == stage and b.name == name:
            return b
    raise BackendUnavailable(f"unknown {stage} backend {name!r}; choose one of "
                             f"{sorted(REGISTRY.get(stage, {}))} "
                             f"(setting {SETTING_FOR_STAGE.get(stage, stage)})")


def available(stage: str, settings: Any) -> tuple[str, ...]:
    """The names of ``stage``'s backends whose weights or cloud are configured, in order."""
    return tuple(b.name for b in BACKENDS if b.stage == stage and b.available(settings))


def backends_key(settings: Any, stages: Sequence[str] = ANALYSIS_STAGES) -> tuple:
    """What the loaded backends of ``stages`` depend on: the chosen names and every setting the
    chosen backends read. Equal keys = the loaded models can be reused."""
    key: list = [tuple((f, getattr(settings, f, None)) for f in COMMON_SETTINGS)]
    for stage in stages:
        name = getattr(settings, STAGE_SETTING[stage], None)
        b = next((b for b in BACKENDS if b.stage == stage and b.name == name), None)
        key.append((stage, name, () if b is None else
                    tuple((f, getattr(settings, f, None)) for f in b.settings)))
    if "detector" in stages and "proposals" in stages:
        key.append(("detector_for_proposals", getattr(settings, "detector", None)))
    return tuple(key)


def load_backend(stage: str, name: str, settings: Any) -> Any:
    """Build one backend. Unknown names and missing weights raise ``BackendUnavailable``."""
    if stage not in REGISTRY:
        raise BackendUnavailable(f"unknown stage {stage!r}; stages: {sorted(REGISTRY)}")
    module_name, _, attr = spec(stage, name).factory.partition(":")
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
    objects: ObjectDetector | None = None  # None: no object pass (VA_OBJECTS=none)

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
            "objects": self.objects.name if self.objects is not None else "none",
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
        objects=(None if getattr(settings, "objects", "none") == "none"
                 else load_backend("objects", settings.objects, settings)),
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
    if not any(b.takes_proposals for b in BACKENDS
               if b.stage == "detector" and b.name == settings.detector):
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
