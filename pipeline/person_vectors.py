"""One appearance vector per person track, to find the same person in other videos.

A track's clearest samples (``CLEAREST``: tall, surely detected, upright, not overlapped by
another person's box) are collected during the sampled pass (``PersonVectors``: a sample is
described only when it enters its track's best, no frame is kept) and the majority of them most
like their medoid averaged and L2-normalised (at 1.5 sampled fps a track in a crowd passes from
one person to another now and then). ``Descriptor`` lists what was measured: the YOLOv5s
backbone's P4 + P5 maps (``pipeline.appearance.Backbone``, of the whole frame or of the person's
crop) pooled over the box or its upper and lower halves, colour histograms of body regions
(``pipeline.clothing``'s torso and thighs, plus head and shins), and both.
``scripts/eval_same_person.py`` measures each by rank-1 on labelled people
(datasets/search/same_person.json); ``DEFAULT`` is the best, the hue-saturation-value
histograms of head, torso, thighs and shins, which need no network at all.

Every vector carries its model identity (``model_id``: the descriptor, its bins and pooling, and
for the backbone's the weights file's hash), so vectors of different models are never compared.
"""
from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from pipeline.appearance import BACKBONE_FILE, Backbone
from pipeline.clothing import body_parts, clarity
from pipeline.media import region_hsv
from pipeline.records import Frame, PersonObservation

CLEAREST = 5  # samples per track that are described
MIN_DET_CONFIDENCE = 0.35
MIN_HEIGHT_PX = 48  # a shorter person is too few pixels (or backbone cells) to tell apart
MAX_OVERLAP = 0.3  # share of the box another person's box may cover
HIST_BINS = (12, 6)  # hue x saturation per body part
HSV_BINS = (8, 3, 4)  # hue x saturation x value: black, grey and white apart


class Descriptor(str, Enum):
    """How one sample of a person is described: the backbone's maps of the whole frame
    ("frame") or of the person's crop resized to ``CROP_WH`` ("crop"), pooled over the box, its
    P4 part alone or its upper and lower halves; colour histograms of body regions; or both."""

    BACKBONE = "backbone"  # frame maps, P4 + P5 mean over the box (768)
    P4 = "p4"  # frame maps, P4 alone (256)
    HALVES = "halves"  # frame maps, P4 + P5 over the upper and the lower half (1536)
    CROP = "crop"  # crop maps, P4 + P5 mean (768)
    CROP_HALVES = "crop-halves"  # crop maps, upper and lower half (1536)
    COLOUR = "colour"  # torso and thigh hue-saturation histograms, square-rooted (144)
    COLOUR_HSV = "colour-hsv"  # torso and thigh hue-saturation-value histograms (192)
    COLOUR_HSV4 = "colour-hsv4"  # head, torso, thighs and shins, hue-saturation-value (384)
    HALVES_COLOUR = "halves+colour"  # each block weighted equally (1680)
    CROP_HALVES_COLOUR = "crop-halves+colour"  # (1680)
    HALVES_COLOUR_HSV4 = "halves+colour-hsv4"  # (1920)
    CROP_HALVES_COLOUR_HSV4 = "crop-halves+colour-hsv4"  # (1920)

    @property
    def uses_backbone(self) -> bool:
        return not self.value.startswith("colour")

    @property
    def colour_kind(self) -> str | None:
        """None, "hs" (2 parts), "hsv" (2 parts) or "hsv4" (4 parts)."""
        tail = self.value.split("+")[-1]
        return None if not tail.startswith("colour") else (tail.split("-") + ["hs"])[1]

    @property
    def on_crop(self) -> bool:
        return self.value.startswith("crop")

    @property
    def halves(self) -> bool:
        return "halves" in self.value


DEFAULT = Descriptor.COLOUR_HSV4  # the best rank-1 (scripts/eval_same_person.py)
POOL = "majority"
CROP_WH = (128, 256)  # a person's crop as the backbone sees it (width, height; x32)


@dataclass(frozen=True, eq=False)
class PersonVector:
    """A track's appearance: ``vector`` L2-normalised, ``model`` what made it."""

    obj_id: int
    model: str
    vector: np.ndarray = field(repr=False)
    n_samples: int

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])


_HASHES: dict[Path, str] = {}


def model_id(models_dir: Path, descriptor: Descriptor = DEFAULT) -> str:
    """What made a vector: the descriptor, its histogram bins, and for the backbone's the weights
    file and a prefix of its sha256 (``yolov5s-coco.onnx#<hash>/halves``); vectors compare only
    within one. The pooling (``POOL``) is part of the version."""
    kind = descriptor.colour_kind
    bins = "" if kind is None else "x".join(map(str, HSV_BINS if kind != "hs" else HIST_BINS))
    name = f"{descriptor.value}/{POOL}" + (f"/bins{bins}" if bins else "")
    if not descriptor.uses_backbone:
        return f"person-{name}/v1"
    path = Path(models_dir) / BACKBONE_FILE
    digest = _HASHES.get(path)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = _HASHES.setdefault(path, h.hexdigest()[:12])
    return f"{BACKBONE_FILE}#{digest}/{name}"


def _overlap(box, others) -> float:
    x0, y0, x1, y1 = box
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    worst = 0.0
    for a0, b0, a1, b1 in others:
        w, h = min(x1, a1) - max(x0, a0), min(y1, b1) - max(y0, b0)
        if w > 0 and h > 0:
            worst = max(worst, w * h / area)
    return worst


def sample_scores(rows: Sequence[PersonObservation]) -> list[tuple[bool, float]]:
    """(clear, score) of each person of one frame: clear when confident, tall enough and not
    overlapped by another person's box; the score is ``clothing.clarity`` (height times the
    torso's keypoint confidence, less when not upright) times the detection confidence."""
    out = []
    for o in rows:
        others = [r.xyxy for r in rows if r is not o]
        clear = (o.det_confidence >= MIN_DET_CONFIDENCE
                 and o.xyxy[3] - o.xyxy[1] >= MIN_HEIGHT_PX
                 and _overlap(o.xyxy, others) <= MAX_OVERLAP)
        out.append((clear, clarity(o) * (0.5 + o.det_confidence)))
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 1e-9 else np.zeros_like(v, np.float32)


def _hist(image: np.ndarray, region, value: bool = False) -> np.ndarray:
    """The region's hue-saturation (or hue-saturation-value, ``HSV_BINS``) histogram,
    square-rooted and L2-normalised, so that a dot product is the Bhattacharyya coefficient."""
    import cv2

    bins = HSV_BINS if value else HIST_BINS
    hsv = region_hsv(image, region) if region[2] >= 4 and region[3] >= 4 else None
    if hsv is None:
        return np.zeros(int(np.prod(bins)), np.float32)
    ranges = [0, 180, 0, 256, 0, 256][:2 * len(bins)]
    h = cv2.calcHist([hsv], list(range(len(bins))), None, list(bins), ranges).ravel()
    return _unit(np.sqrt(h / max(1.0, float(h.sum()))))


def _regions(o: PersonObservation, four: bool) -> list:
    """The torso and thighs (``clothing.body_parts``), with ``four`` the head (the box's top
    15 %, its middle half) and the shins (the box's 75-95 %, its middle 60 %) around them."""
    upper, lower = body_parts(o.xyxy, o.keypoints)
    if not four:
        return [upper, lower]
    x0, y0, x1, y1 = (float(v) for v in o.xyxy)
    w, h = x1 - x0, y1 - y0
    return [(x0 + 0.25 * w, y0, 0.5 * w, 0.15 * h), upper, lower,
            (x0 + 0.2 * w, y0 + 0.75 * h, 0.6 * w, 0.2 * h)]


def _crop(image: np.ndarray, xyxy) -> np.ndarray:
    H, W = image.shape[:2]
    x0, y0, x1, y1 = (int(round(float(v))) for v in xyxy)
    x0, y0 = min(max(0, x0), W - 1), min(max(0, y0), H - 1)
    return image[y0:max(y0 + 1, min(H, y1)), x0:max(x0 + 1, min(W, x1))]


def _backbone_parts(image: np.ndarray, people: Sequence[PersonObservation],
                    d: Descriptor, backbone: Backbone) -> list[np.ndarray]:
    from pipeline.appearance import pool

    boxes = []
    for o in people:
        x0, y0, x1, y1 = (0, 0, CROP_WH[0], CROP_WH[1]) if d.on_crop else o.xyxy
        mid = (y0 + y1) / 2
        boxes += [(x0, y0, x1, mid), (x0, mid, x1, y1)] if d.halves else [(x0, y0, x1, y1)]
    if d.on_crop:
        v = np.concatenate([pool(backbone.maps(_crop(image, o.xyxy), CROP_WH), CROP_WH[::-1],
                                 boxes[i * (1 + d.halves):(i + 1) * (1 + d.halves)])
                            for i, o in enumerate(people)]) if people else np.zeros((0, 768))
    else:
        v = backbone.pooled(image, boxes)
    if d is Descriptor.P4:
        return [_unit(r[:256]) for r in v]
    if d.halves:
        return [_unit(np.concatenate([_unit(v[2 * i]), _unit(v[2 * i + 1])]))
                for i in range(len(people))]
    return [_unit(r) for r in v]


def describe(image: np.ndarray, people: Sequence[PersonObservation], descriptor: Descriptor,
             backbone: Backbone | None) -> list[np.ndarray]:
    """One L2-normalised vector per person of one RGB frame."""
    out: list[list[np.ndarray]] = [[] for _ in people]
    if descriptor.uses_backbone:
        if backbone is None:
            raise ValueError(f"the {descriptor.value} descriptor needs the YOLOv5s backbone")
        for parts, v in zip(out, _backbone_parts(image, people, descriptor, backbone)):
            parts.append(v)
    kind = descriptor.colour_kind
    if kind is not None:
        for i, o in enumerate(people):
            out[i].append(_unit(np.concatenate([_hist(image, r, kind != "hs")
                                                for r in _regions(o, kind == "hsv4")])))
    return [_unit(np.concatenate(parts)) for parts in out]


class PersonVectors:
    """Collects each track's ``keep`` clearest samples during the sampled pass (a clear sample
    always beats one that is not; ``sample_scores``), describing a sample only when it enters its
    track's best (no frame is kept); ``vectors`` averages them. A track with no clear sample keeps
    its single best one."""

    def __init__(self, backbone: Backbone | None, model: str, descriptor: Descriptor = DEFAULT,
                 keep: int = CLEAREST):
        if descriptor.uses_backbone and backbone is None:
            raise ValueError(f"the {descriptor.value} descriptor needs the YOLOv5s backbone")
        self.backbone, self.model, self.descriptor, self.keep = backbone, model, descriptor, keep
        self._best: dict[int, list[tuple[tuple[bool, float], int, np.ndarray]]] = {}
        self._n = 0
        self.described = 0  # samples described (the cost)

    def add(self, frame: Frame, rows: Sequence[PersonObservation]) -> None:
        entering = []
        for o, score in zip(rows, sample_scores(rows)):
            if o.obj_id < 0:
                continue
            heap = self._best.setdefault(int(o.obj_id), [])
            if len(heap) < self.keep or score > heap[0][0]:
                entering.append((o, score))
        if not entering:
            return
        vecs = describe(frame.image, [o for o, _ in entering], self.descriptor, self.backbone)
        self.described += len(entering)
        for (o, score), v in zip(entering, vecs):
            self._n += 1
            heap = self._best[int(o.obj_id)]
            item = (score, self._n, v.astype(np.float16))
            if len(heap) < self.keep:
                heapq.heappush(heap, item)
            else:
                heapq.heapreplace(heap, item)

    def vectors(self, track_ids: Iterable[int] | None = None, pool: str = POOL
                ) -> tuple[PersonVector, ...]:
        """One ``PersonVector`` per track (of ``track_ids``, all when None) seen in ``add``:
        the mean of its kept samples (``pool`` "mean"), or of the majority of them most like
        their medoid ("majority": a track that passed to another person for a sample or two, as
        tracks do at a low sampling rate in a crowd, keeps the look of the one it mostly
        followed)."""
        keep = None if track_ids is None else {int(t) for t in track_ids}
        out = []
        for oid, heap in sorted(self._best.items()):
            if not heap or (keep is not None and oid not in keep):
                continue
            clear = [v for (ok, _), _, v in heap if ok]
            vs = np.asarray(clear or [max(heap, key=lambda x: x[0][1])[2]], np.float32)
            if pool == "majority" and len(vs) >= 3:
                sims = vs @ vs.T
                medoid = int(np.argmax(sims.sum(axis=1)))
                vs = vs[np.argsort(-sims[medoid])[:len(vs) // 2 + 1]]
            mean = np.mean(vs, axis=0)
            out.append(PersonVector(oid, self.model, _unit(mean), len(vs)))
        return tuple(out)


def for_run(backbone: Backbone | None, models_dir: Path,
            descriptor: Descriptor = DEFAULT) -> PersonVectors | None:
    """The run's collector; None without the backbone (the violence rule instead of the
    learned classifier loads none): the run then stores no person vectors."""
    if descriptor.uses_backbone and backbone is None:
        return None
    return PersonVectors(backbone, model_id(models_dir, descriptor), descriptor)
