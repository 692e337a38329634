"""Violence: window features from tracked poses and frame differences, the learned classifier
(gradient-boosted trees read from JSON, no pickle) and the hand-set rule it replaced.

A *window* is ``WINDOW_S`` seconds of densely sampled observations (samples ~0.13 s apart: the
short-clip pass or the dense re-analysis of a longer video where people come close). Its
features (``FEATURE_NAMES``) summarise, over that window:

* people and closeness: people per frame, how often two are close (box centres within
  ``VIOLENT_MAX_DISTANCE_BH`` mean body heights), the smallest distance, box overlap (IoU);
* limb speeds relative to the body (wrists/elbows from the shoulders, ankles/knees from the
  hips) in body heights per second, for people in a close pair and for everyone; the slower of
  a close pair (a fight has two moving bodies); body (box centre) speed and box size changes;
* motion energy: the mean absolute difference of consecutive sampled frames (grey, 160 px
  wide) inside each person's box, and over the whole frame (camera noise, crowds);
* the rule's own verdict (``interactions`` violent rule) and pose quality (keypoint scores).
* appearance (``pipeline.appearance``): how fast the close people's YOLOv5s-backbone vectors
  change, and ``app_score``, the model's linear head on their mean vector.

``scripts/train_violence.py`` learns the classifier from the surveillance-fight clips with the
same code (``observe_clip`` is the short-clip pass of ``run.run_video`` without attributes), and
writes ``models/violence.json``: feature names, version, the trees and the operating threshold
chosen from grouped cross-validation (``models/violence.md``).

At run time (``VA_VIOLENCE``): ``learned`` (default) scores sliding windows (``WINDOW_S`` long,
every ``HOP_S``), and each stretch of windows at or above the threshold is one violent episode
on the people involved (the close pair moving most, plus those within arm's reach of them
whose limbs and pixels move like a fighter's; bystanders are left out); ``rule`` is the
limb-speed rule of ``interactions``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pipeline import appearance as A
from pipeline import interactions
from pipeline import thresholds as T
from pipeline.motion import (  # noqa: F401  (re-exported: the training script and tests use them)
    BOX_STATS, FRAME_STATS, MOTION_WIDTH_PX, Motion, motion_of, observe_clip, read_motion,
)
from pipeline.records import Episode, EventType, PersonObservation
from pipeline.trees import TreeEnsemble
from pipeline.window_stats import (  # noqa: F401  (the window's constants, where callers find them)
    INVOLVED_MIN_FLOW_RATIO, NO_PAIR_DISTANCE_BH, TOUCH_DISTANCE_BH, WindowStats, _Window,
)

FEATURE_VERSION = 3  # the window features (FEATURE_NAMES and how they are computed)
OBSERVATION_VERSION = 1  # what observe_clip records (the training script's cache)
MODEL_FILE = "violence.json"
WINDOW_S = 2.0  # the training clips are ~2 s
HOP_S = 0.5
MIN_WINDOW_S = 1.0  # shorter stretches of dense samples are not scored

FEATURE_NAMES = (
    "people_mean", "people_max", "close_frac", "pair_dist_min", "pair_iou_max", "pair_iou_mean",
    "limb_close_max", "limb_close_p90", "limb_close_mean", "limb_both_max", "limb_both_p90",
    "limb_all_max", "limb_all_p90", "leg_close_max", "leg_close_p90",
    "body_close_max", "body_close_p90", "scale_change_p90", "approach_p90",
    "motion_close_max", "motion_close_p90", "motion_close_mean", "motion_frame_mean",
    "flow_close_mean", "flow_close_p90", "flow_close_max", "flow_close_peak_p90",
    "coh_close_mean", "dflow_close_mean", "dflow_close_p90", "flow_all_p90",
    "flow_frame_mean", "flow_frame_std", "coh_frame_mean", "flow_cell_p90", "flow_cell_max",
    "dflow_cell_mean", "dflow_cell_p90", "moving_frac", "flow_ratio",
    "hot_frac", "wrist_up_frac", "kp_score_close", "rule_fires", "rule_confidence",
) + A.FEATURES + ("app_score",)  # app_score: the appearance head (0 until applied)



# --- features -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class WindowScore:
    """One scored window: its span, the classifier's probability, and the people involved."""

    start_t_s: float
    end_t_s: float
    probability: float
    involved: tuple[int, ...]
    peak_t_s: float
    peak_frame_number: int
    first: bool = False  # the first window of its stretch of dense samples
    last: bool = False  # the last one


def _window(observations: Sequence[PersonObservation], motion: Motion | None,
            frame_size: tuple[int, int]) -> _Window:
    """One window's ``FEATURE_NAMES`` vector, its people's mean backbone vector, the people
    involved and the moment of its peak activity."""
    tracks = interactions._motion_tracks(observations, frame_size)
    stats = WindowStats(tracks, motion, frame_size)
    for frame in sorted(stats.by_frame):
        stats.add_frame(frame)
    feats = stats.features(interactions._violent(tracks))
    app, embedding = A.window_features(motion.appearance if motion is not None else None,
                                       sorted(stats.by_frame), stats.close_pairs,
                                       {f: sorted(p) for f, p in stats.by_frame.items()})
    feats.update(app, app_score=0.0)
    values = np.array([feats[n] for n in FEATURE_NAMES], np.float64)
    return _Window(values, embedding, stats.involved(feats["flow_frame_mean"]),
                   *stats.peak(observations))


def window_features(observations: Sequence[PersonObservation], motion: Motion | None,
                    frame_size: tuple[int, int]) -> np.ndarray:
    """The ``FEATURE_NAMES`` vector of one window of dense observations."""
    return _window(observations, motion, frame_size).features


# --- the classifier -----------------------------------------------------------------------------

class LearnedViolence:
    """``VA_VIOLENCE=learned``: the classifier of ``models/violence.json`` on sliding windows."""

    name = "learned"

    def __init__(self, spec: Mapping, backbone: A.Backbone | None = None):
        if int(spec.get("feature_version", -1)) != FEATURE_VERSION:
            raise ValueError(f"violence model has feature version {spec.get('feature_version')}, "
                             f"the engine computes version {FEATURE_VERSION}")
        if tuple(spec["model"]["feature_names"]) != FEATURE_NAMES:
            raise ValueError("violence model's feature names differ from the engine's")
        self.model = TreeEnsemble(spec["model"])
        self.threshold = float(spec["threshold"])
        self.version = str(spec.get("version", ""))
        head = spec.get("appearance_head")  # a logistic head on the backbone vectors, or None
        self.head = TreeEnsemble(head) if head else None
        self.backbone = backbone  # None: no appearance (its features 0, app_score missing)

    @classmethod
    def from_file(cls, path: Path, backbone: A.Backbone | None = None) -> "LearnedViolence":
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f), backbone)

    def probability(self, windows: Sequence[_Window]) -> np.ndarray:
        """The classifier's probability of each window (the appearance head fills app_score)."""
        x = np.stack([w.features for w in windows])
        if self.head is not None and self.backbone is not None:
            x[:, FEATURE_NAMES.index("app_score")] = self.head.raw(np.stack([w.embedding for w in windows]))
        return self.model.probability(x)

    def score_windows(self, observations: Sequence[PersonObservation], motion: Motion | None,
                      frame_size: tuple[int, int]) -> list[WindowScore]:
        """Windows of ``WINDOW_S`` every ``HOP_S`` over each stretch of dense observations."""
        obs = sorted(observations, key=lambda o: o.t_s)
        out: list[WindowScore] = []
        for lo, hi in _stretches(obs):
            span = hi - lo
            if span < MIN_WINDOW_S - 1e-6:
                continue
            n = max(1, int(math.ceil((span - WINDOW_S) / HOP_S - 1e-6)) + 1) if span > WINDOW_S else 1
            starts = [lo + k * HOP_S for k in range(n)]
            if span > WINDOW_S:
                starts[-1] = min(starts[-1], hi - WINDOW_S)
            wins, spans = [], []
            for a in starts:
                b = a + WINDOW_S
                sel = [o for o in obs if a - 1e-6 <= o.t_s <= b + 1e-6]
                wins.append(_window(sel, motion, frame_size))
                spans.append((a, min(b, hi)))
            probs = self.probability(wins)
            out += [WindowScore(a, b, round(float(p), 4), w.involved, w.peak_t_s,
                                w.peak_frame_number, first=k == 0, last=k == len(wins) - 1)
                    for k, ((a, b), w, p) in enumerate(zip(spans, wins, probs))]
        return out

    def episodes(self, observations: Sequence[PersonObservation], motion: Motion | None,
                 frame_size: tuple[int, int]) -> list[Episode]:
        """One violent episode per stretch of windows scoring at or above the threshold."""
        scored = [w for w in self.score_windows(observations, motion, frame_size)
                  if w.probability >= self.threshold and len(w.involved) >= 2]
        episodes = []
        for run in interactions._runs(scored, lambda w: w.start_t_s, HOP_S + 1e-6):
            best = max(run, key=lambda w: w.probability)
            involved = sorted({t for w in run for t in w.involved})
            lead = best.involved[0] if best.involved else involved[0]
            # where the fight is: the core windows score at least halfway from the threshold to
            # the peak; a core window whose predecessor is not core holds the onset in the part
            # the predecessor lacks (its last HOP_S), and the last core window the end in its
            # first HOP_S (the stretch's own first and last windows keep their edges)
            level = (self.threshold + best.probability) / 2
            core = [w for w in run if w.probability >= level] or [best]
            start = core[0].start_t_s + (0.0 if core[0].first else WINDOW_S - HOP_S)
            end = core[-1].end_t_s - (0.0 if core[-1].last else WINDOW_S - HOP_S)
            if start > end:  # one core window: the fight is somewhere in it
                start = core[0].start_t_s + (HOP_S if len(run) > 1 and not core[0].first else 0.0)
                end = core[-1].end_t_s - (HOP_S if len(run) > 1 and not core[-1].last else 0.0)
            start, end = min(start, best.peak_t_s), max(end, best.peak_t_s)
            episodes.append(Episode(
                event_type=EventType.VIOLENT, obj_id=lead, start_t_s=round(start, 3),
                end_t_s=round(max(end, start), 3), peak_t_s=round(best.peak_t_s, 3),
                peak_frame_number=best.peak_frame_number, confidence=round(best.probability, 3),
                other_obj_ids=tuple(t for t in involved if t != lead),
                reason=f"violence classifier {best.probability:.2f} (threshold "
                       f"{self.threshold:.2f}) over {len(run)} window(s), people "
                       f"{', '.join(str(t) for t in involved)}"))
        return episodes


class RuleViolence:
    """``VA_VIOLENCE=rule``: the hand-set limb-speed rule (the baseline the classifier beat)."""

    name = "rule"
    threshold = 0.5

    def episodes(self, observations: Sequence[PersonObservation], motion: Motion | None,
                 frame_size: tuple[int, int]) -> list[Episode]:
        return interactions._violent(interactions._motion_tracks(observations, frame_size))


def _stretches(obs: Sequence[PersonObservation]) -> list[tuple[float, float]]:
    """(start, end) of runs of observations without gaps longer than ``INTER_MAX_DT_S`` x 2."""
    out: list[list[float]] = []
    for o in obs:
        if out and o.t_s - out[-1][1] <= 2 * T.INTER_MAX_DT_S:
            out[-1][1] = o.t_s
        else:
            out.append([o.t_s, o.t_s])
    return [(a, b) for a, b in out]


def load_learned(settings) -> LearnedViolence:
    from pipeline.errors import BackendUnavailable

    path = Path(settings.models_dir) / MODEL_FILE
    if not path.exists():
        raise BackendUnavailable(
            f"violence model {path} is missing; restore models/{MODEL_FILE} from the repository, "
            f"rebuild it with scripts/train_violence.py, or set VA_VIOLENCE=rule")
    try:
        det = LearnedViolence.from_file(path)
    except (ValueError, KeyError, json.JSONDecodeError) as e:
        raise BackendUnavailable(f"violence model {path} cannot be used ({e}); rebuild it with "
                                 f"scripts/train_violence.py or set VA_VIOLENCE=rule") from None
    from pipeline.backends.onnx_common import CpuInference

    det.backbone = A.Backbone(Path(settings.models_dir) / A.BACKBONE_FILE,  # the appearance
                              CpuInference.from_settings(settings))
    return det


def load_rule(settings) -> RuleViolence:
    return RuleViolence()
