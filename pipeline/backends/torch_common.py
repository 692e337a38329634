"""Shared plumbing for the heavy PyTorch backends (YOLO, MiVOLO, MEBOW, VLM).

* ``require_file`` / ``require_dir`` turn a missing, empty or wrong weights path into one-line
  ``BackendUnavailable`` errors that name the setting to fix.
* ``resolve_device`` maps ``Settings.device`` to a ``torch.device`` (and refuses ``cuda`` when no
  GPU is visible).
* ``crop_boxes`` cuts and resizes every box of a frame in ONE batched ``roi_align`` call (on the
  GPU when the frame tensor is there), optionally letterboxed, so no backend loops over people in
  Python on the hot path.

torch and torchvision are imported inside the functions: importing this module is cheap.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import BackendUnavailable

log = logging.getLogger("va.backends.torch")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def require_file(path: Path | None, *, what: str, flag: str, env: str,
                 suffixes: tuple[str, ...] = ()) -> Path:
    """The weights file at ``path`` or a one-line ``BackendUnavailable`` naming the fix."""
    if path is None:
        raise BackendUnavailable(
            f"{what} needs its weights file; pass {flag} PATH (or set {env})")
    p = Path(path).expanduser()
    if not p.exists():
        raise BackendUnavailable(f"{what} weights {p} do not exist; check {flag} / {env}")
    if p.is_dir():
        raise BackendUnavailable(f"{what} weights {p} is a folder, not a file; pass the file to {flag}")
    if p.stat().st_size == 0:
        raise BackendUnavailable(f"{what} weights {p} is an empty file; download it again and pass it to {flag}")
    if suffixes and not any(p.name.lower().endswith(s) for s in suffixes):
        raise BackendUnavailable(
            f"{what} weights {p} should end with {' or '.join(suffixes)}; pass the right file to {flag}")
    return p


def require_dir(path: Path | None, *, what: str, flag: str, env: str, must_contain: str) -> Path:
    if path is None:
        raise BackendUnavailable(f"{what} needs a checkpoint folder; pass {flag} DIR (or set {env})")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise BackendUnavailable(
            f"{what} checkpoint {p} is not a folder; pass a transformers checkpoint folder to {flag}")
    if not (p / must_contain).is_file():
        raise BackendUnavailable(
            f"{what} checkpoint {p} has no {must_contain}; pass a folder saved with save_pretrained to {flag}")
    return p


def resolve_device(settings: Any):
    """``torch.device`` for ``settings.device``; ``cuda`` without a GPU is a one-line error."""
    import torch

    name = getattr(settings, "device", "cpu") or "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailable(
                "--device cuda was asked for but no CUDA GPU is visible; use --device cpu "
                "(or run on a machine with an NVIDIA GPU and driver)")
        return torch.device(name)
    if name != "cpu":
        raise BackendUnavailable(f"device {name!r} is not supported; use cpu or cuda")
    return torch.device("cpu")


def torch_load(path: Path, *, what: str, flag: str) -> Any:
    """``torch.load`` of a checkpoint on the CPU; an unreadable file is a one-line error.

    Checkpoints of the published models hold plain tensors and numbers, so ``weights_only`` stays
    on (no code in a checkpoint runs)."""
    import argparse
    import pickle

    import torch

    try:
        # Training scripts (timm's among them) store their argparse.Namespace beside the weights.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):  # not a pickle of refused objects: a wrong file
            raise BackendUnavailable(
                f"{what} weights {path} cannot be read as a PyTorch checkpoint "
                f"(UnpicklingError: {str(e).splitlines()[0][:120]}); pass the right file to "
                f"{flag}") from None
        raise BackendUnavailable(
            f"{what} weights {path} hold Python objects besides tensors and numbers; they are "
            f"not loaded (that would run code from the file): pass the model's published "
            f"checkpoint (a state dict) to {flag}") from None
    except Exception as e:  # noqa: BLE001 - any other unpickling failure means a wrong file
        raise BackendUnavailable(
            f"{what} weights {path} cannot be read as a PyTorch checkpoint "
            f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); pass the right file to {flag}"
        ) from None


def frame_tensor(image: np.ndarray, device) -> "Any":
    """RGB uint8 HxWx3 -> float32 1x3xHxW in 0..1 on ``device`` (one host->device copy)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(image)).to(device, non_blocking=True)
    return t.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def crop_boxes(frame: "Any", boxes_xyxy: "Any", out_hw: tuple[int, int], *,
               letterbox: bool = False, aspect_expand: float | None = None,
               scale: float = 1.0) -> "Any":
    """Crop every box of one frame and resize to ``out_hw`` in one batched call.

    frame: 1x3xHxW float tensor; boxes_xyxy: (N,4) float tensor (pixels, same device).
    letterbox: keep the box's aspect ratio and pad with zeros (black) like MiVOLO's
    ``class_letterbox``. aspect_expand: grow the box to the output aspect ratio around its centre
    (like HRNet/MEBOW's ``_xywh2cs``), then scale it by ``scale``. Samples outside the image are 0.
    Returns (N,3,h,w) float tensor in 0..1.
    """
    import torch
    from torchvision.ops import roi_align

    out_h, out_w = out_hw
    boxes = boxes_xyxy.to(frame.dtype).clone()
    if boxes.numel() == 0:
        return frame.new_zeros((0, 3, out_h, out_w))
    x1, y1, x2, y2 = boxes.unbind(1)
    w = (x2 - x1).clamp(min=1.0)
    h = (y2 - y1).clamp(min=1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    target_aspect = out_w / out_h
    if letterbox or aspect_expand is not None:
        # Grow the short side so the box has the output's aspect ratio.
        grow_w = w < target_aspect * h
        w2 = torch.where(grow_w, h * target_aspect, w)
        h2 = torch.where(grow_w, h, w / target_aspect)
    else:
        w2, h2 = w, h
    w2, h2 = w2 * scale, h2 * scale
    rois = torch.stack([torch.zeros_like(cx), cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2], 1)
    crops = roi_align(frame, rois, output_size=(out_h, out_w), spatial_scale=1.0,
                      sampling_ratio=2, aligned=True)
    if letterbox:
        # Zero what lies outside the original box (the letterbox's black bars).
        ys = (torch.arange(out_h, device=frame.device, dtype=frame.dtype) + 0.5) / out_h
        xs = (torch.arange(out_w, device=frame.device, dtype=frame.dtype) + 0.5) / out_w
        py = (cy - h2 / 2)[:, None] + ys[None, :] * h2[:, None]  # (N,h) image y of each row
        px = (cx - w2 / 2)[:, None] + xs[None, :] * w2[:, None]  # (N,w)
        inside_y = (py >= y1[:, None]) & (py <= y2[:, None])
        inside_x = (px >= x1[:, None]) & (px <= x2[:, None])
        mask = inside_y[:, :, None] & inside_x[:, None, :]
        crops = crops * mask[:, None].to(crops.dtype)
    return crops


def normalize(crops: "Any", mean=IMAGENET_MEAN, std=IMAGENET_STD) -> "Any":
    import torch

    m = torch.tensor(mean, device=crops.device, dtype=crops.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=crops.device, dtype=crops.dtype).view(1, 3, 1, 1)
    return (crops - m) / s


def set_cpu_threads(n: int | None) -> None:
    """Limit intra-op threads (tests and small CPUs)."""
    if n:
        import torch

        torch.set_num_threads(int(n))
