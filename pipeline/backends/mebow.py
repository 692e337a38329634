"""MEBOW body orientation from ``--mebow-cfg`` (the authors' experiment yaml) + ``--mebow-weights``.

Every person of a frame is cut from the frame on the device in ONE batched ``roi_align`` (box grown
to the network's 3:4 aspect and scaled by 1.25 around its centre, as the authors' ``_xywh2cs``),
normalised with ImageNet statistics and run as one batch (fp16 on CUDA).

Angle convention. MEBOW predicts 72 bins of 5 degrees (``argmax * 5`` in the authors' demo). Its
labels put 0 at a person facing the camera; its horizontal-flip augmentation maps bin ``b`` to
``(72 - b) % 72`` (``coco_hoe.py``), so 0/180 are the mirror-symmetric front/back views and 90/270
the two side views, with 90 drawn toward the image's right by the visualisers that use it. That is the
engine's convention too (``records``: clockwise seen from above, 0 = facing the camera, 90 = facing
the image's right), so ``mebow_to_engine_degrees`` only normalises; ``MEBOW_SIGN`` is the one place to
flip should real weights show 90 facing the image's left.

The reported angle refines the argmax bin with the circular mean of the probability mass within
+/-15 degrees; the confidence is that mass (0..1).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from pipeline.errors import BackendUnavailable
from pipeline.records import Frame, Orientation, PersonDetections
from pipeline.backends.torch_common import (
    crop_boxes, frame_tensor, normalize, require_file, resolve_device, torch_load,
)

log = logging.getLogger("va.backends.mebow")

BIN_DEG = 5.0
BOX_SCALE = 1.25  # authors' _xywh2cs
NEIGHBOUR_BINS = 3  # +/-15 degrees for the refinement and the confidence
MEBOW_SIGN = 1.0  # engine degrees = MEBOW_SIGN * MEBOW degrees (mod 360)
CFG_FLAG, CFG_ENV = "--mebow-cfg", "VA_MEBOW_CFG"
W_FLAG, W_ENV = "--mebow-weights", "VA_MEBOW_WEIGHTS"


def mebow_to_engine_degrees(deg: np.ndarray | float) -> np.ndarray:
    return np.mod(MEBOW_SIGN * np.asarray(deg, dtype=np.float64), 360.0)


def decode_bins(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,72) probabilities -> (degrees in MEBOW's convention, confidence)."""
    n_bins = probs.shape[1]
    top = probs.argmax(1)
    offsets = np.arange(-NEIGHBOUR_BINS, NEIGHBOUR_BINS + 1)
    idx = (top[:, None] + offsets[None, :]) % n_bins
    w = np.take_along_axis(probs, idx, axis=1)
    ang = np.deg2rad(idx * BIN_DEG)
    deg = np.rad2deg(np.arctan2((w * np.sin(ang)).sum(1), (w * np.cos(ang)).sum(1))) % 360.0
    return deg, w.sum(1)


def load_config(path) -> "Any":
    import yaml

    from pipeline.backends.hrnet import HRNetConfig

    try:
        raw = yaml.safe_load(path.read_text())
        return HRNetConfig.from_yaml_dict(raw)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BackendUnavailable(f"{path} is not a readable yaml file ({type(e).__name__}); pass the "
                                 f"MEBOW experiment yaml (e.g. segm-4_lr1e-3.yaml) to {CFG_FLAG}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise BackendUnavailable(f"{path} is not a MEBOW/HRNet config (missing {e}); pass the MEBOW "
                                 f"experiment yaml (e.g. experiments/coco/segm-4_lr1e-3.yaml) to {CFG_FLAG}") from None


class MebowEstimator:
    name = "mebow"

    def __init__(self, model: Any, image_size: tuple[int, int], device: Any):
        self.model = model
        self.width, self.height = image_size
        self.device = device
        self._lock = threading.Lock()

    def probabilities(self, frame: Frame, persons: PersonDetections) -> np.ndarray:
        """(N,72) orientation distributions, one batch for all persons."""
        import torch

        with torch.inference_mode(), self._lock:
            img = frame_tensor(frame.image, self.device)
            boxes = torch.from_numpy(persons.xyxy.astype(np.float32)).to(self.device)
            crops = crop_boxes(img, boxes, (self.height, self.width), aspect_expand=1.0,
                               scale=BOX_SCALE)
            x = normalize(crops)
            if self.device.type == "cuda":
                x = x.half()
            _, probs = self.model(x)
            return probs.float().cpu().numpy()

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Orientation]:
        if len(persons) == 0:
            return []
        deg, conf = decode_bins(self.probabilities(frame, persons))
        deg = mebow_to_engine_degrees(deg)
        return [Orientation(degrees=float(d), confidence=float(c)) for d, c in zip(deg, conf)]


def load_mebow(settings: Any) -> MebowEstimator:
    cfg_path = require_file(settings.mebow_cfg, what="the mebow orientation estimator", flag=CFG_FLAG,
                            env=CFG_ENV, suffixes=(".yaml", ".yml"))
    w_path = require_file(settings.mebow_weights, what="the mebow orientation estimator", flag=W_FLAG,
                          env=W_ENV, suffixes=(".pth", ".pt", ".pth.tar"))
    device = resolve_device(settings)
    cfg = load_config(cfg_path)
    from pipeline.backends.hrnet import PoseHighResolutionNet

    model = PoseHighResolutionNet(cfg)
    sd = torch_load(w_path, what="mebow", flag=W_FLAG)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not any(str(k).startswith("hoe_fc") or str(k).startswith("module.hoe_fc")
                                           for k in sd):
        raise BackendUnavailable(f"{w_path} holds no MEBOW orientation head (hoe_fc); pass model_hboe.pth "
                                 f"to {W_FLAG}")
    sd = {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise BackendUnavailable(f"{w_path} does not fit the network of {cfg_path.name} ({first[:140]}); "
                                 f"pass the yaml the weights were trained with to {CFG_FLAG}") from None
    model.eval().to(device)
    if device.type == "cuda":
        model.half()
    log.info("mebow %s + %s on %s, input %dx%d", cfg_path.name, w_path.name, device, *cfg.image_size)
    return MebowEstimator(model, cfg.image_size, device)
