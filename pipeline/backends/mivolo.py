"""MiVOLO age and gender from ``--checkpoint`` (the authors' ``.pth.tar`` format).

Every person of a frame goes into ONE forward pass: the face crop (from ``face_xyxy``) and the body
crop (the person box, with other people and faces blacked out as in the authors' ``crop_object``),
each letterboxed to the model's input size, cut and resized on the device by one batched
``roi_align``. Persons without a face box run body-only (a black face input), as the authors' model
was trained to; a face-only checkpoint gives ``unknown`` for them. Bodies under 50 px, or with less
than 40 % left after the cut-outs, count as missing (the authors' thresholds).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from pipeline.errors import BackendUnavailable
from pipeline.records import Attributes, Frame, Gender, PersonDetections
from pipeline.backends.torch_common import (
    crop_boxes, frame_tensor, normalize, require_file, resolve_device, torch_load,
)

log = logging.getLogger("va.backends.mivolo")

MIN_PERSON_SIZE_PX = 50  # authors' MIN_PERSON_SIZE
MIN_BODY_LEFT = 0.4  # authors' MIN_PERSON_CROP_AFTERCUT_RATIO
CROP_ROUND_RATE = 0.3  # authors': another person's edge this close to the crop edge snaps to it
FLAG, ENV = "--checkpoint", "VA_MIVOLO_CHECKPOINT"


@dataclass(frozen=True)
class MiVOLOMeta:
    min_age: float
    max_age: float
    avg_age: float
    only_age: bool
    with_persons: bool
    input_size: int

    def age(self, normalised: np.ndarray) -> np.ndarray:
        return normalised * (self.max_age - self.min_age) + self.avg_age


def _state_dict(ckpt: Mapping[str, Any]) -> dict:
    for key in ("state_dict_ema", "state_dict", "model"):  # timm's load_state_dict order
        sd = ckpt.get(key)
        if isinstance(sd, Mapping) and sd:
            break
    else:
        raise KeyError("state_dict")
    out = {}
    for k, v in sd.items():
        k = k[7:] if k.startswith("module.") else k
        if "fds." in k:  # the authors drop their feature-distribution-smoothing buffers too
            continue
        out[k] = v
    return out


def load_checkpoint(path, device) -> tuple[Any, MiVOLOMeta]:
    """The network (eval, on ``device``) and its meta from an authors'-format checkpoint."""
    from pipeline.backends.mivolo_arch import arch_from_state_dict

    ckpt = torch_load(path, what="mivolo", flag=FLAG)
    fix = f"pass a MiVOLO checkpoint such as model_imdb_cross_person_4.22_99.46.pth.tar to {FLAG}"
    if not isinstance(ckpt, Mapping):
        raise BackendUnavailable(f"{path} holds a {type(ckpt).__name__}, not a MiVOLO checkpoint dict; {fix}")
    missing = [k for k in ("min_age", "max_age", "avg_age") if k not in ckpt]
    try:
        sd = _state_dict(ckpt)
        arch = arch_from_state_dict(sd)
    except (KeyError, IndexError, ValueError) as e:
        raise BackendUnavailable(f"{path} is not a MiVOLO checkpoint (no {e} in its state_dict); {fix}") from None
    if missing:
        raise BackendUnavailable(f"{path} lacks {missing} (a MiVOLO checkpoint stores them); {fix}")
    model = arch.build()
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BackendUnavailable(
            f"{path} does not match the MiVOLO network (missing {list(result.missing_keys)[:3]}, "
            f"unexpected {list(result.unexpected_keys)[:3]}); {fix}")
    only_age = bool(ckpt.get("no_gender", False))
    meta = MiVOLOMeta(
        min_age=float(ckpt["min_age"]), max_age=float(ckpt["max_age"]), avg_age=float(ckpt["avg_age"]),
        only_age=only_age, with_persons=bool(ckpt.get("with_persons_model", arch.in_chans == 6)),
        input_size=arch.img_size,
    )
    model.eval().to(device)
    if device.type == "cuda":
        model.half()
    return model, meta


def _body_cutout_mask(person_xyxy, face_xyxy, size: int):
    """Two (N,S,S) bool masks over the letterboxed body crops: pixels of the person's own box, and
    pixels to black out (other people, all faces).

    Mirrors the authors' ``crop_object(cut_other_classes=["face", "person"])`` on the device for
    all crops at once."""
    import torch

    n = person_xyxy.shape[0]
    x1, y1, x2, y2 = person_xyxy.unbind(1)
    w = (x2 - x1).clamp(min=1)
    h = (y2 - y1).clamp(min=1)
    side = torch.maximum(w, h)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    grid = (torch.arange(size, device=person_xyxy.device, dtype=person_xyxy.dtype) + 0.5) / size
    px = (cx - side / 2)[:, None] + grid[None] * side[:, None]  # (N,S) image x of each column
    py = (cy - side / 2)[:, None] + grid[None] * side[:, None]

    # Other persons, snapped to the crop edge when within 30 % of it (authors' CROP_ROUND_RATE).
    ox1 = person_xyxy[None, :, 0].expand(n, n).clone()
    oy1 = person_xyxy[None, :, 1].expand(n, n).clone()
    ox2 = person_xyxy[None, :, 2].expand(n, n).clone()
    oy2 = person_xyxy[None, :, 3].expand(n, n).clone()
    X1, Y1, X2, Y2, W, H = (t[:, None] for t in (x1, y1, x2, y2, w, h))
    ox1 = torch.where((ox1 - X1).clamp(min=0) / W < CROP_ROUND_RATE, torch.minimum(ox1, X1), ox1)
    oy1 = torch.where((oy1 - Y1).clamp(min=0) / H < CROP_ROUND_RATE, torch.minimum(oy1, Y1), oy1)
    ox2 = torch.where((X2 - ox2).clamp(min=0) / W < CROP_ROUND_RATE, torch.maximum(ox2, X2), ox2)
    oy2 = torch.where((Y2 - oy2).clamp(min=0) / H < CROP_ROUND_RATE, torch.maximum(oy2, Y2), oy2)
    not_self = ~torch.eye(n, dtype=torch.bool, device=person_xyxy.device)
    overlaps = (torch.minimum(ox2, X2) > torch.maximum(ox1, X1)) & (torch.minimum(oy2, Y2) > torch.maximum(oy1, Y1))
    use = not_self & overlaps  # (N, M=N)
    boxes = [(ox1, oy1, ox2, oy2, use)]
    faces = face_xyxy[~torch.isnan(face_xyxy[:, 0])]
    if len(faces):
        m = len(faces)
        boxes.append(tuple(faces[None, :, j].expand(n, m) for j in range(4))
                     + (torch.ones((n, m), dtype=torch.bool, device=person_xyxy.device),))
    mask = torch.zeros((n, size, size), dtype=torch.bool, device=person_xyxy.device)
    for bx1, by1, bx2, by2, ok in boxes:
        in_x = (px[:, None, :] >= bx1[..., None]) & (px[:, None, :] <= bx2[..., None]) & ok[..., None]
        in_y = (py[:, None, :] >= by1[..., None]) & (py[:, None, :] <= by2[..., None])
        mask |= (in_y[:, :, :, None] & in_x[:, :, None, :]).any(1)
    inside = (((py >= y1[:, None]) & (py <= y2[:, None]))[:, :, None]
              & ((px >= x1[:, None]) & (px <= x2[:, None]))[:, None, :])
    return inside, mask


class MiVOLOEstimator:
    name = "mivolo"

    def __init__(self, model: Any, meta: MiVOLOMeta, device: Any, use_bodies: bool = True):
        self.model = model
        self.meta = meta
        self.device = device
        # The seed's --with-persons: feed body crops to a face+body checkpoint. Without it the
        # body channels get zeros (the authors' faces-only mode of the same checkpoint).
        self.use_bodies = use_bodies and meta.with_persons
        self.dtype = None
        self._lock = threading.Lock()

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Attributes]:
        import torch

        n = len(persons)
        if n == 0:
            return []
        s = self.meta.input_size
        faces_np = (persons.face_xyxy if persons.face_xyxy is not None
                    else np.full((n, 4), np.nan, np.float32)).astype(np.float32)
        has_face = ~np.isnan(faces_np[:, 0])
        if self.use_bodies:
            wh = persons.xyxy[:, 2:] - persons.xyxy[:, :2]
            has_body = (wh >= MIN_PERSON_SIZE_PX).all(axis=1)
        else:
            has_body = np.zeros(n, bool)
        run = has_face | has_body
        if not run.any():
            return [Attributes() for _ in range(n)]

        with torch.inference_mode(), self._lock:
            img = frame_tensor(frame.image, self.device)
            pbox = torch.from_numpy(persons.xyxy.astype(np.float32)).to(self.device)
            fbox_all = torch.from_numpy(faces_np).to(self.device)
            fbox = torch.nan_to_num(fbox_all, nan=0.0)
            face_in = crop_boxes(img, fbox, (s, s), letterbox=True)
            face_in = face_in * torch.from_numpy(has_face).to(self.device)[:, None, None, None]
            parts = [face_in]
            if self.meta.with_persons and not self.use_bodies:
                parts.append(torch.zeros_like(face_in))
            elif self.meta.with_persons:
                body_in = crop_boxes(img, pbox, (s, s), letterbox=True)
                inside, cut = _body_cutout_mask(pbox, fbox_all, s)
                left = ((inside & ~cut).sum((1, 2)).float() / inside.sum((1, 2)).clamp(min=1).float())
                body_ok = torch.from_numpy(has_body).to(self.device) & (left >= MIN_BODY_LEFT)
                body_in = body_in * (~cut)[:, None] * body_ok[:, None, None, None]
                parts.append(body_in)
                has_body = body_ok.cpu().numpy()
                run = has_face | has_body
            x = torch.cat([normalize(p) for p in parts], dim=1)[torch.from_numpy(run).to(self.device)]
            if self.device.type == "cuda":
                x = x.half()
            out = self.model(x).float().cpu().numpy()

        ages = self.meta.age(out[:, 2] if not self.meta.only_age else out[:, 0])
        if not self.meta.only_age:
            logits = out[:, :2] - out[:, :2].max(1, keepdims=True)
            probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        results: list[Attributes] = []
        j = 0
        for i in range(n):
            if not run[i]:
                results.append(Attributes())
                continue
            face_px = None
            if has_face[i]:
                fw, fh = faces_np[i, 2] - faces_np[i, 0], faces_np[i, 3] - faces_np[i, 1]
                face_px = float(max(fw, fh))
            age = float(np.clip(ages[j], 0.0, 100.0))
            if self.meta.only_age:
                results.append(Attributes(age=age, face_size_px=face_px))
            else:
                k = int(probs[j].argmax())  # 0 male, 1 female (authors' order)
                results.append(Attributes(age=age, gender=Gender.MALE if k == 0 else Gender.FEMALE,
                                          gender_score=float(probs[j, k]), face_size_px=face_px))
            j += 1
        return results


def load_mivolo(settings: Any) -> MiVOLOEstimator:
    path = require_file(settings.mivolo_checkpoint, what="the mivolo attribute estimator", flag=FLAG,
                        env=ENV, suffixes=(".pth.tar", ".pth", ".pt", ".tar"))
    device = resolve_device(settings)
    model, meta = load_checkpoint(path, device)
    log.info("mivolo %s on %s: input %d, persons=%s, only_age=%s", path.name, device,
             meta.input_size, meta.with_persons, meta.only_age)
    return MiVOLOEstimator(model, meta, device,
                           use_bodies=bool(getattr(settings, "mivolo_with_persons", True)))
