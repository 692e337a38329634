"""One appearance vector per person track, to find the same person in other videos.

A track's clearest samples (``CLEAREST``: tall, surely detected, upright, not overlapped by
another person's box) are described and their vectors averaged and L2-normalised. The
descriptors (``Descriptor``) are the YOLOv5s backbone's P4 + P5 maps
(``pipeline.appearance.Backbone``) pooled over the person's box, or over its upper and lower
halves, and hue-saturation histograms of the torso and thighs (``pipeline.clothing``'s
regions); ``scripts/eval_same_person.py`` measures each by rank-1 on labelled pairs and
``DEFAULT`` is the best.

Every vector carries its model identity (``model_id``: the weights file's hash, the descriptor
and the dimension), so vectors of different models are never compared.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from pipeline.appearance import BACKBONE_FILE, Backbone
from pipeline.clothing import body_parts, clarity
from pipeline.media import region_hsv
from pipeline.records import Frame, PersonObservation

CLEAREST = 5  # samples per track that are described
MIN_DET_CONFIDENCE = 0.35
MIN_HEIGHT_PX = 48  # a shorter person is too few backbone cells to tell apart
MAX_OVERLAP = 0.3  # share of the box another person's box may cover
HIST_BINS = (12, 6)  # hue x saturation per body part


class Descriptor(str, Enum):
    """How one sample of a person is described."""

    BACKBONE = "backbone"  # P4 + P5 mean over the box (768)
    P4 = "p4"  # P4 alone (256)
    HALVES = "halves"  # P4 + P5 over the upper and the lower half, concatenated (1536)
    COLOUR = "colour"  # torso and thigh hue-saturation histograms, square-rooted (144)
    HALVES_COLOUR = "halves+colour"  # both, each block weighted equally (1680)

    @property
    def uses_backbone(self) -> bool:
        return self is not Descriptor.COLOUR


DEFAULT = Descriptor.HALVES_COLOUR


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
    """``yolov5s-coco.onnx#<sha256 prefix>/<descriptor>``: vectors compare only within one."""
    path = Path(models_dir) / BACKBONE_FILE
    digest = _HASHES.get(path)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = _HASHES.setdefault(path, h.hexdigest()[:12])
    return f"{BACKBONE_FILE}#{digest}/{descriptor.value}"


def _overlap(box, others) -> float:
    x0, y0, x1, y1 = box
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    worst = 0.0
    for a0, b0, a1, b1 in others:
        w, h = min(x1, a1) - max(x0, a0), min(y1, b1) - max(y0, b0)
        if w > 0 and h > 0:
            worst = max(worst, w * h / area)
    return worst


def clearest(observations: Iterable[PersonObservation], keep: int = CLEAREST
             ) -> dict[int, list[PersonObservation]]:
    """Per track its ``keep`` clearest samples: large, confident, upright (``clothing.clarity``)
    and unoccluded; a track with none that passes keeps its single clearest sample."""
    by_frame: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        if o.obj_id >= 0:
            by_frame[o.frame_number].append(o)
    scored: dict[int, list[tuple[float, bool, PersonObservation]]] = defaultdict(list)
    for rows in by_frame.values():
        for o in rows:
            others = [r.xyxy for r in rows if r is not o]
            good = (o.det_confidence >= MIN_DET_CONFIDENCE
                    and o.xyxy[3] - o.xyxy[1] >= MIN_HEIGHT_PX
                    and _overlap(o.xyxy, others) <= MAX_OVERLAP)
            scored[o.obj_id].append((clarity(o) * (0.5 + o.det_confidence), good, o))
    out = {}
    for oid, items in scored.items():
        good = [x for x in items if x[1]] or [max(items, key=lambda x: x[0])]
        good.sort(key=lambda x: (-x[0], x[2].frame_number))
        out[oid] = [o for _, _, o in good[:keep]]
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 1e-9 else np.zeros_like(v, np.float32)


def _hist(image: np.ndarray, region) -> np.ndarray:
    import cv2

    hsv = region_hsv(image, region) if region[2] >= 4 and region[3] >= 4 else None
    if hsv is None:
        return np.zeros(HIST_BINS[0] * HIST_BINS[1], np.float32)
    h = cv2.calcHist([hsv], [0, 1], None, list(HIST_BINS), [0, 180, 0, 256]).ravel()
    return _unit(np.sqrt(h / max(1.0, float(h.sum()))))


def describe(image: np.ndarray, people: Sequence[PersonObservation], descriptor: Descriptor,
             backbone: Backbone | None) -> list[np.ndarray]:
    """One L2-normalised vector per person of one RGB frame."""
    out: list[list[np.ndarray]] = [[] for _ in people]
    if descriptor.uses_backbone:
        if backbone is None:
            raise ValueError(f"the {descriptor.value} descriptor needs the YOLOv5s backbone")
        boxes = [o.xyxy for o in people]
        if descriptor is Descriptor.P4:
            v = backbone.pooled(image, boxes)
            out = [[_unit(r[:256])] for r in v]
        elif descriptor is Descriptor.BACKBONE:
            out = [[_unit(r)] for r in backbone.pooled(image, boxes)]
        else:
            halves = []
            for x0, y0, x1, y1 in boxes:
                mid = (y0 + y1) / 2
                halves += [(x0, y0, x1, mid), (x0, mid, x1, y1)]
            v = backbone.pooled(image, halves)
            out = [[_unit(np.concatenate([_unit(v[2 * i]), _unit(v[2 * i + 1])]))]
                   for i in range(len(people))]
    if descriptor in (Descriptor.COLOUR, Descriptor.HALVES_COLOUR):
        for i, o in enumerate(people):
            upper, lower = body_parts(o.xyxy, o.keypoints)
            out[i].append(_unit(np.concatenate([_hist(image, upper), _hist(image, lower)])))
    return [_unit(np.concatenate(parts)) for parts in out]


def track_vectors(picks: Mapping[int, Sequence[PersonObservation]], frames: Iterable[Frame],
                  descriptor: Descriptor, backbone: Backbone | None, model: str
                  ) -> list[PersonVector]:
    """The ``PersonVector`` of each track of ``picks`` (from ``clearest``), reading ``frames``
    (any frames; those holding a pick are used, the rest skipped)."""
    wanted: dict[int, list[PersonObservation]] = defaultdict(list)
    for rows in picks.values():
        for o in rows:
            wanted[o.frame_number].append(o)
    acc: dict[int, list[np.ndarray]] = defaultdict(list)
    for fr in frames:
        people = wanted.pop(fr.frame_number, None)
        if not people:
            continue
        for o, v in zip(people, describe(fr.image, people, descriptor, backbone)):
            acc[o.obj_id].append(v)
        if not wanted:
            break
    return [PersonVector(oid, model, _unit(np.mean(vs, axis=0)), len(vs))
            for oid, vs in sorted(acc.items()) if vs]


FrameReader = Callable[[int, int, int], list[Frame]]


def read_picked(reader: FrameReader, picks: Mapping[int, Sequence[PersonObservation]]
                ) -> Iterable[Frame]:
    """The frames holding the picks, one read each (the run's reader seeks to each)."""
    for f in sorted({o.frame_number for rows in picks.values() for o in rows}):
        yield from reader(f, f, 1)


def for_run(observations: Sequence[PersonObservation], track_ids: Iterable[int],
            reader: FrameReader, backbone: Backbone | None, models_dir: Path,
            descriptor: Descriptor = DEFAULT) -> tuple[PersonVector, ...]:
    """The run's vectors, one per track of ``track_ids``: their clearest sampled rows, the
    frames holding them read again (no frame is kept during the pass). None without the
    backbone (the violence rule instead of the learned classifier loads none)."""
    if descriptor.uses_backbone and backbone is None:
        return ()
    keep = {int(t) for t in track_ids}
    picks = clearest(o for o in observations if o.obj_id in keep)
    if not picks:
        return ()
    return tuple(track_vectors(picks, read_picked(reader, picks), descriptor, backbone,
                               model_id(models_dir, descriptor)))
