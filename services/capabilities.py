"""Which backends the analyst may pick, and what needs weights, a GPU or the cloud."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from settings import Settings


@dataclass(frozen=True)
class Capabilities:
    """Backends the analyst may pick (``pipeline.backends.registry.BACKENDS`` whose availability
    check passes: heavy ones only when their weights/cloud are configured)."""

    detector: tuple[str, ...]
    attributes: tuple[str, ...]
    orientation: tuple[str, ...]
    action: tuple[str, ...]
    scene: tuple[str, ...]
    devices: tuple[str, ...]
    bedrock: bool
    openai: bool
    vlm: bool
    s3_videos: bool
    library: bool
    notes: tuple[str, ...] = ()


def _cuda_available() -> bool:
    """A CUDA GPU torch can use. Machines with no NVIDIA device skip importing torch."""
    import shutil

    if not (Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi")):
        return False
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver reads as "no GPU"
        return False


def capabilities(settings: Settings, check_cuda: bool = True) -> Capabilities:
    from pipeline.backends.registry import available

    s = settings
    notes: list[str] = []
    if not s.bedrock_enabled and not s.openai_enabled:
        notes.append("Scene descriptions by Claude need Bedrock (set AWS_BEDROCK_REGION) or an "
                     "OpenAI-compatible VLM endpoint (VA_OPENAI_BASE_URL); without them, scenes "
                     "are described from what was detected (people, actions, positions).")
    if not s.vlm_path:
        notes.append("The paying and theft actions need the VLM action model (set VA_VLM_PATH); "
                     "pose rules find standing, walking, running, sitting, lying, falling, "
                     "violent, grabbing and anomaly only.")
    if not (s.bedrock_enabled or s.openai_enabled):
        notes.append("Search answers are written from the matching events (extractive); answers "
                     "by Claude need AWS_BEDROCK_REGION or VA_OPENAI_BASE_URL.")
    return Capabilities(
        detector=available("detector", s), attributes=available("attributes", s),
        orientation=available("orientation", s), action=available("action", s),
        scene=available("scene", s),
        devices=("cpu",) + (("cuda",) if check_cuda and _cuda_available() else ()),
        bedrock=s.bedrock_enabled, openai=s.openai_enabled, vlm=bool(s.vlm_path),
        s3_videos=bool(s.s3_bucket_videos), library=s.library_dir is not None,
        notes=tuple(notes),
    )
