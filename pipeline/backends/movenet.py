"""People and 17 keypoints with Google's MoveNet MultiPose Lightning (ONNX, CPU by default).

Model I/O (the shared models README): input ``input:0`` int32 [1,H,W,3] RGB 0..255 with H and W
multiples of 32; output ``Identity:0`` [1,6,56]: 17 x (y, x, score) normalised to the input, then
box (ymin, xmin, ymax, xmax), then the person score. At most 6 people per call.

The frame is letterboxed (aspect kept, padded right/bottom) to ``long_side`` pixels. When the
model's cap is nearly reached, or the people found are small, the frame is also cut into
overlapping tiles, each run at the same input size, and the detections merged (NMS; detections
that touch a tile's inner border are dropped because the overlap shows that person whole in a
neighbouring tile or in the full-frame pass).

Consecutive sampled frames of small people (``Frame.sample_index`` n, n+1 of one video) cost
less: only the 2x2 tiles needed to hold every person of the previous frame whole (boxes grown by
``DET_TILE_MOTION_FRAC``) run, without the full-frame pass; every ``DET_FULL_PASS_EVERY``-th
sampled frame, a frame where a previous person fits no tile, or one where the chosen tiles find
nobody runs the full pass and every tile. Frames read out of sequence (dense passes, stills,
``detect_image``) always get the full treatment.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.backends.onnx_common import CpuInference, cpu_session
from pipeline.records import Frame, PersonDetections

log = logging.getLogger(__name__)

MODEL_FILE = "movenet-multipose.onnx"
MAX_PEOPLE = 6


def _ceil32(v: float) -> int:
    return max(32, int(math.ceil(v / 32.0)) * 32)


def input_size(width: int, height: int, long_side: int) -> tuple[int, int, float]:
    """(in_w, in_h, scale) for a ``width`` x ``height`` image letterboxed to ``long_side``."""
    scale = long_side / float(max(width, height))
    return _ceil32(width * scale), _ceil32(height * scale), scale


class MoveNetDetector:
    name = "movenet"

    def __init__(self, model_path: Path, threads: int | CpuInference = 2, long_side: int = T.DET_INPUT_LONG_SIDE,
                 min_person_score: float = T.DET_MIN_PERSON_SCORE, tiles: bool = True):
        self.model_path = Path(model_path)
        self.session = cpu_session(
            self.model_path, threads, "MoveNet weights",
            f"restore models/{MODEL_FILE} from the repository (git checkout models/) or set "
            f"VA_MODELS_DIR to the folder that holds it", model="movenet")
        self.input_name = self.session.get_inputs()[0].name
        self.long_side = int(long_side)
        self.min_person_score = float(min_person_score)
        self.tiles = tiles
        self.calls = 0  # model invocations (for the benchmark)
        # (frame size, sample_index, people rows) of the previous sampled frame of small people
        self._prev: tuple[tuple[int, int], int, np.ndarray] | None = None

    # -- one model call ---------------------------------------------------------------------
    def _run(self, image: np.ndarray, long_side: int | None = None) -> np.ndarray:
        """Raw people of one image as (N, 56) rows in the image's pixel coordinates:
        17 x (x, y, score), box (x1, y1, x2, y2), score."""
        import cv2

        h, w = image.shape[:2]
        in_w, in_h, scale = input_size(w, h, long_side or self.long_side)
        rw, rh = min(in_w, max(1, round(w * scale))), min(in_h, max(1, round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(image, (rw, rh), interpolation=interp)
        canvas = np.zeros((1, in_h, in_w, 3), np.int32)
        canvas[0, :rh, :rw] = resized
        out = self.session.run(None, {self.input_name: canvas})[0][0]  # (6, 56)
        self.calls += 1
        out = out[out[:, 55] >= self.min_person_score]
        if not len(out):
            return np.zeros((0, 56), np.float32)
        rows = np.empty_like(out, dtype=np.float32)
        kp = out[:, :51].reshape(-1, 17, 3)
        sx, sy = in_w / scale, in_h / scale  # normalised -> original pixels
        kp_xy = np.stack([kp[:, :, 1] * sx, kp[:, :, 0] * sy, kp[:, :, 2]], axis=2)
        rows[:, :51] = kp_xy.reshape(-1, 51)
        box = out[:, 51:55]
        rows[:, 51] = box[:, 1] * sx
        rows[:, 52] = box[:, 0] * sy
        rows[:, 53] = box[:, 3] * sx
        rows[:, 54] = box[:, 2] * sy
        rows[:, 55] = out[:, 55]
        rows[:, [51, 53]] = np.clip(rows[:, [51, 53]], 0, w - 1)
        rows[:, [52, 54]] = np.clip(rows[:, [52, 54]], 0, h - 1)
        kx = rows[:, 0:51:3]
        ky = rows[:, 1:51:3]
        rows[:, 0:51:3] = np.clip(kx, 0, w - 1)
        rows[:, 1:51:3] = np.clip(ky, 0, h - 1)
        return rows

    # -- tiling -----------------------------------------------------------------------------
    def _tile_grid(self, w: int, h: int, rows: np.ndarray) -> tuple[int, int]:
        n = len(rows)
        if n == 0:
            return 1, 1
        sizes = np.maximum(rows[:, 54] - rows[:, 52], rows[:, 53] - rows[:, 51])  # lying: width
        small = float(np.median(sizes)) < T.DET_SMALL_PERSON_FRAC * max(h, w)
        crowded = n >= T.DET_TILE_WHEN_PEOPLE
        if not (small or crowded):
            return 1, 1
        if small:
            return 2, 2
        return (1, 2) if w >= h else (2, 1)

    @staticmethod
    def _tile_rects(w: int, h: int, grid: tuple[int, int]) -> list[tuple[int, int, int, int]]:
        gr, gc = grid
        ov = T.DET_TILE_OVERLAP
        tw = int(math.ceil(w / (gc - (gc - 1) * ov))) if gc > 1 else w
        th = int(math.ceil(h / (gr - (gr - 1) * ov))) if gr > 1 else h
        rects = []
        for r in range(gr):
            for c in range(gc):
                x0 = 0 if gc == 1 else int(round(c * (w - tw) / (gc - 1)))
                y0 = 0 if gr == 1 else int(round(r * (h - th) / (gr - 1)))
                rects.append((x0, y0, min(w, x0 + tw), min(h, y0 + th)))
        return rects

    def _tiled(self, image: np.ndarray, grid: tuple[int, int],
               only: list[int] | None = None) -> list[np.ndarray]:
        h, w = image.shape[:2]
        found = []
        margin = 3.0
        for k, (x0, y0, x1, y1) in enumerate(self._tile_rects(w, h, grid)):
            if only is not None and k not in only:
                continue
            rows = self._run(image[y0:y1, x0:x1], T.DET_TILE_LONG_SIDE)
            if not len(rows):
                continue
            rows = rows.copy()
            # drop people cut by an inner tile border (they are whole in a neighbour)
            keep = np.ones(len(rows), bool)
            if x0 > 0:
                keep &= rows[:, 51] > margin
            if y0 > 0:
                keep &= rows[:, 52] > margin
            if x1 < w:
                keep &= rows[:, 53] < (x1 - x0) - 1 - margin
            if y1 < h:
                keep &= rows[:, 54] < (y1 - y0) - 1 - margin
            rows = rows[keep]
            rows[:, 0:51:3] += x0
            rows[:, 1:51:3] += y0
            rows[:, [51, 53]] += x0
            rows[:, [52, 54]] += y0
            found.append(rows)
        return found

    # -- public -----------------------------------------------------------------------------
    def detect_image(self, image: np.ndarray) -> PersonDetections:
        h, w = image.shape[:2]
        rows = self._run(image)
        parts = [rows]
        if self.tiles:
            grid = self._tile_grid(w, h, rows)
            if grid != (1, 1):
                parts += self._tiled(image, grid)
        # NMS also on a single pass: MoveNet sometimes returns a person twice (whole + part)
        rows = _nms(np.concatenate(parts, axis=0))
        return _to_detections(rows)

    def _tiles_holding(self, w: int, h: int, rows: np.ndarray) -> list[int]:
        """The fewest 2x2 tiles (greedy cover) that hold each person of ``rows``: whole with the
        motion margin when some tile can, else whole, else the tiles holding the box's centre
        (a person astride an inner border is seen whole only after a step either way)."""
        rects = np.asarray(self._tile_rects(w, h, (2, 2)), np.float32)
        box = rows[:, 51:55].astype(np.float32)

        def holds(grow: np.ndarray) -> np.ndarray:
            g = np.stack([box[:, 0] - grow, box[:, 1] - grow, box[:, 2] + grow,
                          box[:, 3] + grow], axis=1)
            g = np.clip(g, 0, [w, h, w, h])
            return ((g[:, None, 0] >= rects[None, :, 0]) & (g[:, None, 1] >= rects[None, :, 1])
                    & (g[:, None, 2] <= rects[None, :, 2]) & (g[:, None, 3] <= rects[None, :, 3]))

        moved = holds(T.DET_TILE_MOTION_FRAC * (box[:, 3] - box[:, 1]))
        whole = holds(np.zeros(len(box), np.float32))
        cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
        centre = ((cx[:, None] >= rects[None, :, 0]) & (cx[:, None] <= rects[None, :, 2])
                  & (cy[:, None] >= rects[None, :, 1]) & (cy[:, None] <= rects[None, :, 3]))
        cand = np.where(moved.any(1)[:, None], moved,
                        np.where(whole.any(1)[:, None], whole, centre))
        need = cand.any(axis=1)
        chosen: list[int] = []
        while need.any():
            k = int(np.argmax(cand[need].sum(axis=0)))
            chosen.append(k)
            need &= ~cand[:, k]
        return sorted(chosen)

    def _detect_sampled(self, frame: Frame) -> PersonDetections:
        image = frame.image
        h, w = image.shape[:2]
        prev, self._prev = self._prev, None
        only: list[int] | None = None
        if (self.tiles and prev is not None and prev[0] == (w, h)
                and prev[1] == frame.sample_index - 1
                and frame.sample_index % T.DET_FULL_PASS_EVERY != 0):
            only = self._tiles_holding(w, h, prev[2])
        rows = None
        if only:
            parts = self._tiled(image, (2, 2), only)
            rows = _nms(np.concatenate(parts, axis=0)) if parts else np.zeros((0, 56), np.float32)
            if not len(rows):
                rows = None  # nobody where people were: look at the whole frame
        if rows is None:
            rows = self._run(image)
            parts = [rows]
            grid = self._tile_grid(w, h, rows) if self.tiles else (1, 1)
            if grid != (1, 1):
                parts += self._tiled(image, grid)
            rows = _nms(np.concatenate(parts, axis=0))
            if grid != (2, 2):
                return _to_detections(rows)
        elif self._tile_grid(w, h, rows) != (2, 2):
            return _to_detections(rows)  # people grew or left: next frame gets the full pass
        self._prev = ((w, h), frame.sample_index, rows)
        return _to_detections(rows)

    def detect(self, frames: Sequence[Frame]) -> list[PersonDetections]:
        """People of each frame; consecutive sampled frames of small people run fewer tiles (see
        the module docstring)."""
        return [self._detect_sampled(f) for f in frames]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection-over-smaller-area between two sets of xyxy boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / np.maximum(union, 1e-6)
    iom = inter / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-6)
    return iou, iom


def _nms(rows: np.ndarray) -> np.ndarray:
    if len(rows) <= 1:
        return rows
    order = np.argsort(-rows[:, 55])
    rows = rows[order]
    boxes = rows[:, 51:55]
    iou, iom = iou_matrix(boxes, boxes)
    keep: list[int] = []
    suppressed = np.zeros(len(rows), bool)
    for i in range(len(rows)):
        if suppressed[i]:
            continue
        keep.append(i)
        dup = (iou[i] > T.DET_NMS_IOU) | (iom[i] > T.DET_NMS_IOMIN)
        suppressed |= dup
    return rows[keep]


def _to_detections(rows: np.ndarray) -> PersonDetections:
    if not len(rows):
        return PersonDetections.empty()
    kp = rows[:, :51].reshape(-1, 17, 3).astype(np.float32)
    return PersonDetections(
        xyxy=rows[:, 51:55].astype(np.float32),
        confidence=rows[:, 55].astype(np.float32),
        keypoints=kp,
    )


def load_movenet(settings) -> MoveNetDetector:
    """Registry factory: MoveNet MultiPose from ``settings.models_dir``."""
    path = Path(settings.models_dir) / MODEL_FILE
    return MoveNetDetector(path, threads=CpuInference.from_settings(settings))
