"""Appearance of densely sampled people for the violence classifier (``pipeline.violence``):
the YOLOv5s backbone (``models/yolov5s-coco.onnx``, the dense detector's own network, cut
after its P4 and P5 stages) run once per sampled frame, its feature maps averaged over each
person's box. A person's vector is kept (never the frames or maps), so memory grows with the
people seen, not the video.

What the classifier takes from it (``window_features``): how fast the close people's
appearance changes from one sample to the next (a scuffle reshapes the bodies, a walk or a
conversation barely changes them), and the mean close-people vector, which a linear head in
``models/violence.json`` turns into one "looks like a fight" score (learned out-of-fold by
``scripts/train_violence.py``).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pipeline.backends.onnx_common import SubGraph
from pipeline.records import Frame, PersonObservation

BACKBONE_FILE = "yolov5s-coco.onnx"
BACKBONE_LONG_SIDE_PX = 512  # frames are resized so that their long side is this (x32)
_P4 = "StatefulPartitionedCall/model/tfc3_2/tf_conv_18/mul:0"  # stride 16, 256 channels
_P5 = "StatefulPartitionedCall/model/tfsppf/tf_conv_32/mul:0"  # stride 32, 512 channels
_INPUT = "input_1:0"
DIM = 256 + 512
FEATURES = ("app_change_close_mean", "app_change_close_p90", "app_change_close_max",
            "app_change_pair_mean", "app_change_pair_max", "app_change_all_p90",
            "app_change_frame_mean", "app_spread_close_mean")


#: YOLOv5s up to its P4 and P5 outputs
BACKBONE_CUT = SubGraph(_INPUT, (_P4, _P5), "yolov5s_backbone")


class Backbone:
    """YOLOv5s P4 + P5 feature maps of an RGB frame, averaged over boxes."""

    def __init__(self, path: Path, threads=2):  # a thread count or onnx_common.CpuInference
        from pipeline.backends.onnx_common import cpu_session

        self.session = cpu_session(
            Path(path), threads, "YOLOv5s weights",
            f"restore models/{BACKBONE_FILE} (git checkout models/) or set VA_VIOLENCE=rule",
            cut=BACKBONE_CUT, model="backbone")

    def maps(self, image: np.ndarray, size_wh: tuple[int, int] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """The image's P4 (256, h/16, w/16) and P5 (512, h/32, w/32) maps: resized so that its
        long side is 512 px, or to ``size_wh`` (multiples of 32)."""
        import cv2

        h, w = image.shape[:2]
        scale = BACKBONE_LONG_SIDE_PX / float(max(h, w))
        rw, rh = size_wh or tuple(max(32, int(round(v * scale / 32)) * 32) for v in (w, h))
        x = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if rw < w else cv2.INTER_LINEAR)
        p4, p5 = self.session.run(None, {_INPUT: x.astype(np.float32)[None] / 255.0})
        return p4[0], p5[0]

    def vectors(self, image: np.ndarray, boxes_xyxy: Sequence[Sequence[float]]) -> np.ndarray:
        """(len(boxes) + 1, DIM): each box's mean P4 and P5 features, then the whole frame's."""
        return pool(self.maps(image), image.shape[:2], boxes_xyxy, whole=True)

    def pooled(self, image: np.ndarray, boxes_xyxy: Sequence[Sequence[float]]) -> np.ndarray:
        """(len(boxes), DIM): each box's mean P4 and P5 features."""
        return pool(self.maps(image), image.shape[:2], boxes_xyxy)


def pool(maps: tuple[np.ndarray, np.ndarray], size_hw: tuple[int, int],
         boxes_xyxy: Sequence[Sequence[float]], whole: bool = False) -> np.ndarray:
    """Each box's mean P4 and P5 features (boxes in the frame's pixels of ``size_hw``), and with
    ``whole`` a last row for the whole frame."""
    h, w = size_hw
    out = np.zeros((len(boxes_xyxy) + int(whole), DIM), np.float32)
    for k, fmap in ((slice(0, 256), maps[0]), (slice(256, DIM), maps[1])):
        fh, fw = fmap.shape[1:]
        for i, (x0, y0, x1, y1) in enumerate(boxes_xyxy):
            c0 = min(fw - 1, max(0, int(x0 / w * fw)))
            r0 = min(fh - 1, max(0, int(y0 / h * fh)))
            c1 = max(c0 + 1, min(fw, int(np.ceil(x1 / w * fw))))
            r1 = max(r0 + 1, min(fh, int(np.ceil(y1 / h * fh))))
            out[i, k] = fmap[:, r0:r1, c0:c1].mean(axis=(1, 2))
        if whole:
            out[-1, k] = fmap.mean(axis=(1, 2))
    return out


@dataclass(frozen=True)
class Appearance:
    """Per (frame number, track) the person's backbone vector, per frame number the frame's."""

    boxes: Mapping[tuple[int, int], np.ndarray]
    frames: Mapping[int, np.ndarray]

    def to_json(self) -> dict:
        enc = lambda v: np.asarray(v, np.float16).tobytes().hex()  # noqa: E731
        return {"boxes": [[f, o, enc(v)] for (f, o), v in self.boxes.items()],
                "frames": {str(f): enc(v) for f, v in self.frames.items()}}

    @classmethod
    def from_json(cls, d: Mapping) -> "Appearance":
        dec = lambda s: np.frombuffer(bytes.fromhex(s), np.float16).astype(np.float32)  # noqa: E731
        return cls({(int(f), int(o)): dec(v) for f, o, v in d["boxes"]},
                   {int(f): dec(v) for f, v in d["frames"].items()})


def appearance_of(frames: Sequence[Frame], observations: Sequence[PersonObservation],
                  backbone: Backbone) -> Appearance:
    """The ``Appearance`` of the people of ``observations`` in ``frames``. Vectors are rounded
    to float16, as the training cache keeps them, so training and the engine see the same."""
    by_frame: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        by_frame[o.frame_number].append(o)
    boxes: dict[tuple[int, int], np.ndarray] = {}
    out_f: dict[int, np.ndarray] = {}
    for fr in frames:
        people = by_frame.get(fr.frame_number)
        if not people:
            continue
        v = backbone.vectors(fr.image, [o.xyxy for o in people]).astype(np.float16).astype(np.float32)
        for o, row in zip(people, v[:-1]):
            boxes[(fr.frame_number, o.obj_id)] = row
        out_f[fr.frame_number] = v[-1]
    return Appearance(boxes, out_f)


def _cos_distance(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return float(1.0 - np.dot(a, b) / (na * nb))


def _stat(values: list[float], kind: str) -> float:
    if not values:
        return 0.0
    a = np.asarray(values, np.float64)
    return float(a.max() if kind == "max" else np.percentile(a, 90) if kind == "p90" else a.mean())


def window_features(app: Appearance | None, frames: Sequence[int],
                    close_pairs: Mapping[int, Sequence[tuple[int, int]]],
                    people: Mapping[int, Sequence[int]]) -> tuple[dict[str, float], np.ndarray]:
    """(``FEATURES``, the mean vector of the close people; of everyone when nobody is close) of
    a window: ``frames`` its sampled frame numbers in order, ``close_pairs`` and ``people`` per
    frame number the close pairs and the tracks seen."""
    feats = {k: 0.0 for k in FEATURES}
    if app is None:
        return feats, np.zeros(DIM, np.float32)
    ch_close, ch_all, ch_pair, ch_frame, spread = [], [], [], [], []
    close_vecs, all_vecs = [], []
    prev_f = None
    for f in frames:
        pairs = close_pairs.get(f, ())
        close = {t for p in pairs for t in p}
        for tid in people.get(f, ()):
            v = app.boxes.get((f, tid))
            if v is None:
                continue
            (close_vecs if tid in close else all_vecs).append(v)
            if prev_f is not None and (prev_f, tid) in app.boxes:
                d = _cos_distance(v, app.boxes[(prev_f, tid)])
                ch_all.append(d)
                if tid in close:
                    ch_close.append(d)
        for a, b in pairs:
            va, vb = app.boxes.get((f, a)), app.boxes.get((f, b))
            if va is None or vb is None:
                continue
            spread.append(_cos_distance(va, vb))
            if prev_f is not None:
                pa, pb = app.boxes.get((prev_f, a)), app.boxes.get((prev_f, b))
                if pa is not None and pb is not None:
                    ch_pair.append(_cos_distance(va + vb, pa + pb))
        if prev_f is not None and f in app.frames and prev_f in app.frames:
            ch_frame.append(_cos_distance(app.frames[f], app.frames[prev_f]))
        prev_f = f
    feats.update(app_change_close_mean=_stat(ch_close, "mean"),
                 app_change_close_p90=_stat(ch_close, "p90"),
                 app_change_close_max=_stat(ch_close, "max"),
                 app_change_pair_mean=_stat(ch_pair, "mean"),
                 app_change_pair_max=_stat(ch_pair, "max"),
                 app_change_all_p90=_stat(ch_all, "p90"),
                 app_change_frame_mean=_stat(ch_frame, "mean"),
                 app_spread_close_mean=_stat(spread, "mean"))
    vecs = close_vecs or all_vecs
    mean = np.mean(vecs, axis=0).astype(np.float32) if vecs else np.zeros(DIM, np.float32)
    return feats, mean
