"""Clothing colours per track: upper- and lower-body colour names from a fixed palette
(``Colour``), read from the clearest samples' crops.

Each sampled person's upper body (shoulders to hips) and lower body (hips to knees) are placed
by the keypoints when they are seen, else by shares of the box (``media.CLOTHES_PARTS``); their
pixels (``media.region_hsv``) are each named from hue, saturation and value, and the part's colour
is the name most of its pixels have. Per track the ``CLEAREST`` samples (largest box, surest
keypoints) vote. Grayscale and infrared frames give no colour.

A learned namer (``LearnedNamer``: a multinomial logistic regression over ``region_features``,
read from ``models/clothing.json`` and evaluated with numpy; scripts/train_clothing.py) takes
the rules' place when that file is there (``load_namer``). It is not shipped: on the
hand-labelled regions of datasets/clothing its grouped cross-validation did not beat the rules
(models/clothing.md).
"""
from __future__ import annotations

import dataclasses
import heapq
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

from pipeline.media import CLOTHES_PARTS, crop_box, region_hsv
from pipeline.records import KP, Colour, Event, Frame, PersonObservation

CLEAREST = 5  # samples per track that vote
MIN_KP_SCORE = 0.3
MIN_PART_PX = 6  # a part narrower or shorter than this is not read
GRAY_MAX_CHANNEL_DIFF = 12  # a frame whose pixels' channels differ less than this is grayscale

# Palette indices in the order of _NAMES.
_NAMES = (Colour.BLACK, Colour.WHITE, Colour.GREY, Colour.RED, Colour.ORANGE, Colour.YELLOW,
          Colour.GREEN, Colour.BLUE, Colour.PURPLE, Colour.PINK, Colour.BROWN)
_I = {c: i for i, c in enumerate(_NAMES)}
#: Hue bands in degrees (0-360): the upper bound of each and its name.
_HUES = ((15, Colour.RED), (40, Colour.ORANGE), (68, Colour.YELLOW), (165, Colour.GREEN),
         (260, Colour.BLUE), (290, Colour.PURPLE), (340, Colour.PINK), (361, Colour.RED))


@dataclasses.dataclass(frozen=True)
class RuleParams:
    """The rules' thresholds (``pixel_names``, ``name_region``, ``exposure_gain``). Saturation
    and value are OpenCV's 0-255 (value after the frame's gain). The defaults are the shipped
    ones (``RULES``); scripts/train_clothing.py --rules measures other values by grouped
    cross-validation on datasets/clothing (models/clothing.md)."""

    black_v: float = 45  # darker than this: black, whatever the hue
    dark_v: float = 70  # darker than this and ...
    dark_s: float = 100  # ... less saturated than this: black
    black_achro_v: float = 85  # an achromatic pixel darker than this: black (grey from here)
    achro_s: float = 50  # less saturated than this: achromatic (black, grey or white)
    achro_sv: float = 50 * 255 * 0.55  # saturation x value under this: achromatic too (dim tints)
    white_v: float = 150  # an achromatic pixel at least this bright: white (grey below)
    white_tint_s: float = 90  # less saturated than this and ...
    white_tint_v: float = 190  # ... at least this bright: white (under warm or cold light)
    orange_brown_v: float = 135  # an orange pixel darker than this: brown
    yellow_brown_v: float = 120  # a yellow pixel darker than this: brown
    warm_brown_s: float = 110  # a red, orange or yellow pixel less saturated than this and ...
    warm_brown_v: tuple[float, float] = (60, 150)  # ... this dark (from, to): brown
    pink_s: float = 120  # a red pixel less saturated than this and ...
    pink_v: float = 170  # ... at least this bright: pink
    min_share: float = 0.25  # the winning name must cover this share of the part's pixels
    gain_target: float = 235  # ``exposure_gain`` brings the frame's brightest pixels to this
    max_gain: float = 1.6  # ... by at most this factor


RULES = RuleParams()  # the product's thresholds


def pixel_names(hsv: np.ndarray, gain=1.0, p: RuleParams = RULES) -> np.ndarray:
    """Palette index (into ``_NAMES``) of each pixel of an OpenCV HSV array; ``gain`` scales
    the value channel for the frame's exposure (``exposure_gain``; a number, or an array
    broadcast against the pixels)."""
    h = hsv[..., 0].astype(np.float32) * 2.0
    s = hsv[..., 1].astype(np.float32)
    v = np.minimum(255.0, hsv[..., 2].astype(np.float32) * gain)
    out = np.full(h.shape, _I[Colour.GREY], np.int8)
    for upper, name in reversed(_HUES):
        out[h < upper] = _I[name]
    warm = (out == _I[Colour.ORANGE]) | (out == _I[Colour.YELLOW]) | (out == _I[Colour.RED])
    out[(out == _I[Colour.ORANGE]) & (v < p.orange_brown_v)] = _I[Colour.BROWN]
    out[(out == _I[Colour.YELLOW]) & (v < p.yellow_brown_v)] = _I[Colour.BROWN]
    out[warm & (s < p.warm_brown_s) & (v < p.warm_brown_v[1]) & (v >= p.warm_brown_v[0])] = \
        _I[Colour.BROWN]
    out[(out == _I[Colour.RED]) & (s < p.pink_s) & (v >= p.pink_v)] = _I[Colour.PINK]
    achromatic = (s < p.achro_s) | (s * v < p.achro_sv)
    out[achromatic] = _I[Colour.GREY]
    out[achromatic & (v >= p.white_v)] = _I[Colour.WHITE]
    out[(s < p.white_tint_s) & (v >= p.white_tint_v)] = _I[Colour.WHITE]
    out[(v < p.black_v) | ((v < p.dark_v) & (s < p.dark_s))
        | (achromatic & (v < p.black_achro_v))] = _I[Colour.BLACK]
    return out


# --- the learned namer (models/clothing.json, scripts/train_clothing.py) -----------------------

FEATURE_VERSION = 1
_HUE_BINS, _SAT_EDGES = 12, (0, 40, 80, 140, 256)
_VAL_EDGES = (0, 30, 60, 90, 130, 180, 256)
FRAME_NAMES = ("frame_gain", "frame_r", "frame_g", "frame_b", "frame_v", "frame_s")
FEATURE_NAMES = (
    tuple(f"hs_{h}_{s}" for h in range(_HUE_BINS) for s in range(len(_SAT_EDGES) - 1))
    + tuple(f"v_{i}" for i in range(len(_VAL_EDGES) - 1))
    + tuple(f"rule_{c.value}" for c in _NAMES)
    + ("wb_r", "wb_g", "rel_v", "s_p50", "s_p90", "v_p10", "v_p50", "v_p90")
    + FRAME_NAMES)


def frame_stats(image: np.ndarray, gain: float | None = None) -> np.ndarray:
    """The whole frame's exposure and white balance (``FRAME_NAMES``): ``exposure_gain`` (or
    ``gain``, when the caller has it already), the gray-world channel means (each over their
    mean), mean value and saturation (0-1)."""
    import cv2

    px = np.ascontiguousarray(image[::8, ::8, :3])
    m = px.reshape(-1, 3).astype(np.float64).mean(axis=0)
    hsv = cv2.cvtColor(px, cv2.COLOR_RGB2HSV).reshape(-1, 3)
    gain = exposure_gain(image) if gain is None else gain
    return np.array([gain, *(m / max(float(m.mean()), 1.0)),
                     hsv[:, 2].mean() / 255.0, hsv[:, 1].mean() / 255.0])


def region_features(rgb: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """``FEATURE_NAMES`` of one region (RGB pixels) in a frame of ``frame_stats`` ``stats``:
    the share of its pixels in each hue x saturation bin and value bin, the rules' share of
    each name (``pixel_names``), its white-balanced chromaticity, value relative to the frame's
    brightest, saturation and value percentiles, and the frame's own figures."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    n = float(len(hsv))
    h = np.minimum(hsv[:, 0].astype(np.int64) * _HUE_BINS // 180, _HUE_BINS - 1)
    s = np.searchsorted(_SAT_EDGES, hsv[:, 1], side="right") - 1
    hs = np.bincount(h * (len(_SAT_EDGES) - 1) + s,
                     minlength=_HUE_BINS * (len(_SAT_EDGES) - 1)) / n
    v = np.bincount(np.searchsorted(_VAL_EDGES, hsv[:, 2], side="right") - 1,
                    minlength=len(_VAL_EDGES) - 1) / n
    rules = np.bincount(pixel_names(hsv, float(stats[0])).ravel(), minlength=len(_NAMES)) / n
    mean = rgb.reshape(-1, 3).astype(np.float64).mean(axis=0) / np.maximum(stats[1:4], 1e-3)
    chroma = mean / max(float(mean.sum()), 1e-3)
    sp = np.percentile(hsv[:, 1], (50, 90)) / 255.0
    vp = np.percentile(hsv[:, 2], (10, 50, 90)) / 255.0
    rel_v = min(2.0, float(vp[1]) * float(stats[0]))
    return np.concatenate([hs, v, rules, chroma[:2], [rel_v], sp, vp, stats])


class LearnedNamer:
    """The multinomial model of ``models/clothing.json`` (a ``pipeline.trees`` spec, evaluated
    with numpy): a region's colour name, or UNKNOWN when its top probability is under the
    spec's ``unknown_below``."""

    def __init__(self, spec: dict):
        from pipeline.trees import TreeEnsemble

        if int(spec.get("feature_version", -1)) != FEATURE_VERSION or \
                tuple(spec["model"]["feature_names"]) != FEATURE_NAMES:
            raise ValueError("models/clothing.json was trained on other features; re-run "
                             "scripts/train_clothing.py")
        self.classes = tuple(Colour(c) for c in spec["classes"])
        self.model = TreeEnsemble(spec["model"])
        self.unknown_below = float(spec["unknown_below"])

    @classmethod
    def from_file(cls, path) -> "LearnedNamer":
        import json

        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        raw = np.atleast_2d(self.model.raw(X))
        raw = raw - raw.max(axis=1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(axis=1, keepdims=True)

    def name(self, rgb: np.ndarray | None, stats: np.ndarray) -> Colour:
        if rgb is None or min(rgb.shape[:2]) < MIN_PART_PX:
            return Colour.UNKNOWN
        p = self.probabilities(region_features(rgb, stats))[0]
        k = int(np.argmax(p))
        return self.classes[k] if p[k] >= self.unknown_below else Colour.UNKNOWN


MODEL_FILE = "clothing.json"


def load_namer(models_dir) -> LearnedNamer | None:
    """The learned namer of ``models_dir``/clothing.json; None (the rules) when it is absent."""
    from pathlib import Path

    path = Path(models_dir) / MODEL_FILE
    return LearnedNamer.from_file(path) if path.is_file() else None


def name_region(hsv: np.ndarray | None, gain: float = 1.0, p: RuleParams = RULES) -> Colour:
    """The palette name most of the region's pixels have (UNKNOWN: too small, or no name
    covers ``p.min_share`` of it)."""
    if hsv is None or min(hsv.shape[:2]) < MIN_PART_PX:
        return Colour.UNKNOWN
    counts = np.bincount(pixel_names(hsv, gain, p).ravel(), minlength=len(_NAMES))
    best = int(np.argmax(counts))
    return _NAMES[best] if counts[best] >= p.min_share * counts.sum() else Colour.UNKNOWN


def is_grayscale(image: np.ndarray) -> bool:
    """True for a grayscale or infrared frame (its channels nearly equal everywhere)."""
    px = image[::8, ::8].astype(np.int16)
    if px.ndim < 3 or px.shape[-1] < 3:
        return True
    diff = np.max(np.abs(px - px.mean(axis=-1, keepdims=True)), axis=-1)
    return float(np.percentile(diff, 99)) < GRAY_MAX_CHANNEL_DIFF


def frame_brightness(image: np.ndarray) -> float:
    """The frame's brightest pixels' value (99th percentile of each pixel's largest channel)."""
    return float(np.percentile(image[::8, ::8].max(axis=-1), 99))


def gain_for(bright: float, p: RuleParams = RULES) -> float:
    """``exposure_gain`` of a frame whose ``frame_brightness`` is ``bright``."""
    return float(np.clip(p.gain_target / max(bright, 1.0), 1.0, p.max_gain))


def exposure_gain(image: np.ndarray, p: RuleParams = RULES) -> float:
    """How much to brighten a dim frame so that its brightest pixels read as white (1 to
    ``p.max_gain``): indoor footage shows a white shirt at about half the full value."""
    return gain_for(frame_brightness(image), p)


def _pt(kps, name: str):
    x, y, s = kps[KP[name]]
    return (float(x), float(y)) if s >= MIN_KP_SCORE else None


def body_parts(xyxy: Sequence[float], keypoints: Sequence[Sequence[float]]
               ) -> tuple[tuple[float, float, float, float], tuple[float, float, float, float]]:
    """(upper, lower) regions (x, y, w, h) of one person: shoulders to hips and hips to knees
    (narrowed to the body's middle) where those keypoints are sure, else shares of the box."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    w, h = x1 - x0, y1 - y0
    box = [(x0 + 0.2 * w, y0 + t * h, 0.6 * w, (b - t) * h) for t, b in CLOTHES_PARTS]
    if len(keypoints) != len(KP):
        return box[0], box[1]
    sh = [p for p in (_pt(keypoints, "left_shoulder"), _pt(keypoints, "right_shoulder")) if p]
    hp = [p for p in (_pt(keypoints, "left_hip"), _pt(keypoints, "right_hip")) if p]
    kn = [p for p in (_pt(keypoints, "left_knee"), _pt(keypoints, "right_knee")) if p]
    upper, lower = box
    if not kn:  # knees unseen (behind a desk, out of frame): the box's lower share is not legs
        lower = (lower[0], lower[1], lower[2], 0.0)
    if sh and hp:  # the torso: shoulders to hips, trimmed at both ends
        upper = _between(sh, hp, w, share=0.12, pad_ends=2) or upper
    if hp and kn:  # the thighs: hips to knees, trimmed at the hips
        lower = _between(hp, kn, w, share=0.1, pad_ends=1) or lower
    return upper, lower


def _between(top_pts, bottom_pts, w: float, share: float, pad_ends: int):
    """The region (x, y, width, height) from the joints ``top_pts`` down to ``bottom_pts``:
    0.7 of their spread wide (at least ``share`` of the box width ``w``), trimmed by ``share`` of
    its height at the top (and at the bottom too with ``pad_ends`` 2); None when under
    MIN_PART_PX tall."""
    top, bottom = np.mean([p[1] for p in top_pts]), np.mean([p[1] for p in bottom_pts])
    if bottom - top < MIN_PART_PX:
        return None
    xs = [p[0] for p in top_pts + bottom_pts]
    cx, half = float(np.mean(xs)), max((max(xs) - min(xs)) / 2 * 0.7, share * w)
    pad = share * (bottom - top)
    return (cx - half, top + pad, 2 * half, bottom - top - pad_ends * pad)


def clarity(obs: PersonObservation) -> float:
    """How clearly a sample shows the clothes: box height times the torso and hips' keypoint
    confidence, a third of it when the box is not upright (lying, bent: the parts overlap)."""
    x0, y0, x1, y1 = obs.xyxy
    upright = (y1 - y0) >= 1.3 * (x1 - x0)
    names = ("left_shoulder", "right_shoulder", "left_hip", "right_hip", "left_knee", "right_knee")
    conf = (float(np.mean([obs.keypoints[KP[n]][2] for n in names]))
            if len(obs.keypoints) == len(KP) else 0.3)
    return max(0.0, float(y1 - y0)) * (0.2 + conf) * (1.0 if upright else 0.33)


@dataclasses.dataclass(frozen=True)
class ClothingReading:
    """One sample's colours and how clearly it showed them."""

    clarity: float
    upper: Colour
    lower: Colour


def read_person(image: np.ndarray, obs: PersonObservation, gain: float = 1.0,
                namer: LearnedNamer | None = None, stats: np.ndarray | None = None
                ) -> ClothingReading:
    """One sample's colours: by ``namer`` (``stats``: the frame's ``frame_stats``) when given,
    else by the rules (``name_region``)."""
    upper, lower = body_parts(obs.xyxy, obs.keypoints)
    if namer is not None:
        stats = frame_stats(image) if stats is None else stats
        return ClothingReading(clarity(obs), namer.name(crop_box(image, upper, 0.0, 0.0), stats),
                               namer.name(crop_box(image, lower, 0.0, 0.0), stats))
    return ClothingReading(clarity(obs), name_region(region_hsv(image, upper), gain),
                           name_region(region_hsv(image, lower), gain))


def vote(readings: Iterable[ClothingReading]) -> tuple[Colour, Colour]:
    """The track's (upper, lower): the name most of its readings give (ties: the clearest)."""
    out = []
    readings = sorted(readings, key=lambda r: -r.clarity)
    for part in ("upper", "lower"):
        counts: Counter = Counter()
        for r in readings:
            c = getattr(r, part)
            if c is not Colour.UNKNOWN:
                counts[c] += 1.0 + 1e-6 * r.clarity
        out.append(counts.most_common(1)[0][0] if counts else Colour.UNKNOWN)
    return out[0], out[1]


class ClothingColours:
    """Collects readings of each track's clearest samples during a run; ``apply`` writes the
    track's colours onto its events."""

    def __init__(self, keep: int = CLEAREST, namer: LearnedNamer | None = None):
        self.keep = keep
        self.namer = namer  # None: the rules (``load_namer`` finds no models/clothing.json)
        self._best: dict[int, list[tuple[float, int, ClothingReading]]] = {}
        self._n = 0

    def add(self, frame: Frame, rows: Sequence[PersonObservation]) -> None:
        if not rows or is_grayscale(frame.image):
            return
        gain = stats = None
        for obs in rows:
            c = clarity(obs)
            heap = self._best.setdefault(int(obs.obj_id), [])
            if len(heap) >= self.keep and c <= heap[0][0]:
                continue  # not among the clearest: not read at all
            self._n += 1
            gain = exposure_gain(frame.image) if gain is None else gain
            if self.namer is not None and stats is None:
                stats = frame_stats(frame.image, gain)
            item = (c, self._n, read_person(frame.image, obs, gain, self.namer, stats))
            if len(heap) < self.keep:
                heapq.heappush(heap, item)
            else:
                heapq.heapreplace(heap, item)

    def colours(self) -> dict[int, tuple[Colour, Colour]]:
        return {oid: vote(r for _, _, r in heap) for oid, heap in self._best.items()}

    def apply(self, events: Sequence[Event]) -> list[Event]:
        """The events with their track's colours (a fight's other people keep none)."""
        found = self.colours()
        out = []
        for e in events:
            up, low = found.get(int(e.obj_id), (Colour.UNKNOWN, Colour.UNKNOWN))
            out.append(dataclasses.replace(e, upper_colour=up, lower_colour=low)
                       if (up, low) != (Colour.UNKNOWN, Colour.UNKNOWN) else e)
        return out
