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
from collections import defaultdict
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
from pipeline.records import KP, Episode, EventType, PersonObservation
from pipeline.trees import TreeEnsemble

FEATURE_VERSION = 3  # the window features (FEATURE_NAMES and how they are computed)
OBSERVATION_VERSION = 1  # what observe_clip records (the training script's cache)
MODEL_FILE = "violence.json"
WINDOW_S = 2.0  # the training clips are ~2 s
HOP_S = 0.5
MIN_WINDOW_S = 1.0  # shorter stretches of dense samples are not scored
NO_PAIR_DISTANCE_BH = 5.0  # "distance" of the closest pair when fewer than two people are seen
TOUCH_DISTANCE_BH = 0.8  # box centres this close (mean body heights): within arm's reach
# a third person joins a fight's people only if the image inside their box moves at least this
# many times the window's mean optical flow (a bystander's pose can jitter when boxes overlap,
# the pixels of someone standing or watching barely move; the fighters' move most)
INVOLVED_MIN_FLOW_RATIO = 1.5

_LS, _RS, _LH, _RH = KP["left_shoulder"], KP["right_shoulder"], KP["left_hip"], KP["right_hip"]
_LW, _RW = KP["left_wrist"], KP["right_wrist"]
_LEGS = tuple(KP[k] for k in ("left_knee", "right_knee", "left_ankle", "right_ankle"))

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

def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def _leg_speed(s0, s1, frame_size) -> float | None:
    """Knees/ankles relative to the hips' midpoint, body heights per second."""
    if s0 is None or s1.dt is None or not (0 < s1.dt <= T.INTER_MAX_DT_S):
        return None
    u0, u1 = interactions._usable(s0.kp, frame_size), interactions._usable(s1.kp, frame_size)
    if not (u0[_LH] and u0[_RH] and u1[_LH] and u1[_RH]):
        return None
    r0 = (s0.kp[_LH, :2] + s0.kp[_RH, :2]) / 2
    r1 = (s1.kp[_LH, :2] + s1.kp[_RH, :2]) / 2
    v = [float(np.hypot(*((s1.kp[j, :2] - r1) - (s0.kp[j, :2] - r0)))) / s1.scale / s1.dt
         for j in _LEGS if u0[j] and u1[j]]
    return max(v) if v else None


def _stat(values: list[float], kind: str, empty: float = 0.0) -> float:
    if not values:
        return empty
    a = np.asarray(values, np.float64)
    if kind == "max":
        return float(a.max())
    if kind == "p90":
        return float(np.percentile(a, 90))
    return float(a.mean())


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


@dataclass(frozen=True)
class _Window:
    features: np.ndarray
    embedding: np.ndarray  # the close people's mean backbone vector (pipeline.appearance)
    involved: tuple[int, ...]
    peak_t_s: float
    peak_frame_number: int


def _window(observations: Sequence[PersonObservation], motion: Motion | None,
            frame_size: tuple[int, int]) -> _Window:
    tracks = interactions._motion_tracks(observations, frame_size)
    by_frame: dict[int, dict[int, object]] = defaultdict(dict)
    leg: dict[int, float | None] = {}
    for tid, samples in tracks.items():
        prev = None
        for s in samples:
            by_frame[s.obs.frame_number][tid] = s
            leg[id(s)] = _leg_speed(prev, s, frame_size)
            prev = s
    scales = {tid: s[0].scale for tid, s in tracks.items() if s}
    counts, close_frames, dists, ious_max = [], 0, [], []
    limb_close, limb_both, limb_all, leg_close, body_close = [], [], [], [], []
    scale_change, approach, kp_close, wrist_up = [], [], [], []
    box_close: dict[str, list[float]] = {k: [] for k in BOX_STATS}
    flow_all: list[float] = []
    frame_st: dict[str, list[float]] = {k: [] for k in FRAME_STATS}
    hot = 0
    pair_activity: dict[tuple[int, int], float] = defaultdict(float)
    touching: dict[int, set[int]] = defaultdict(set)
    track_act: dict[int, list[float]] = defaultdict(list)
    track_flow: dict[int, list[float]] = defaultdict(list)
    prev_dist: dict[tuple[int, int], tuple[float, float]] = {}
    peak = (-1.0, None)
    close_pairs: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for frame in sorted(by_frame):
        people = by_frame[frame]
        counts.append(len(people))
        if motion is not None and frame in motion.frames:
            for k in FRAME_STATS:
                frame_st[k].append(motion.frame(frame, k))
        for s in people.values():
            if s.limb_speed is not None:
                limb_all.append(s.limb_speed)
            m = motion.box(s.obs, "mag") if motion is not None else None
            if m is not None:
                flow_all.append(m)
                track_flow[s.obs.obj_id].append(m)
            track_act[s.obs.obj_id].append(max(s.limb_speed or 0.0, leg.get(id(s)) or 0.0))
        ids = sorted(people)
        frame_ious, in_pair = [], set()
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                sa, sb = people[a], people[b]
                d = interactions._pair_distance_bh(sa.obs, sb.obs, scales)
                dists.append(d)
                frame_ious.append(_iou(sa.obs.xyxy, sb.obs.xyxy))
                if (a, b) in prev_dist:
                    t0, d0 = prev_dist[(a, b)]
                    dt = sa.obs.t_s - t0
                    if 0 < dt <= T.INTER_MAX_DT_S:
                        approach.append(abs(d - d0) / dt)
                prev_dist[(a, b)] = (sa.obs.t_s, d)
                if d > T.VIOLENT_MAX_DISTANCE_BH:
                    continue
                in_pair |= {a, b}
                close_pairs[frame].append((a, b))
                if d <= TOUCH_DISTANCE_BH:
                    touching[a].add(b)
                    touching[b].add(a)
                la, lb = sa.limb_speed or 0.0, sb.limb_speed or 0.0
                limb_both.append(min(la, lb))
                if max(la, lb) >= T.VIOLENT_MIN_LIMB_SPEED_BH_S:
                    hot += 1
                act = max(la, lb) + min(la, lb)
                pair_activity[(a, b)] = max(pair_activity[(a, b)], act)
                if act > peak[0]:
                    peak = (act, sa if la >= lb else sb)
        if frame_ious:
            ious_max.append(max(frame_ious))
        if in_pair:
            close_frames += 1
        for tid in in_pair:
            s = people[tid]
            if s.limb_speed is not None:
                limb_close.append(s.limb_speed)
            if leg.get(id(s)) is not None:
                leg_close.append(leg[id(s)])
            if s.body_speed is not None:
                body_close.append(s.body_speed)
            if s.dt is not None:
                prev_h = next((p.height for p in tracks[tid] if p.obs.t_s < s.obs.t_s
                               and s.obs.t_s - p.obs.t_s <= s.dt + 1e-6), None)
                if prev_h:
                    scale_change.append(abs(math.log(max(s.height, 1.0) / max(prev_h, 1.0))) / s.dt)
            if motion is not None and (s.obs.frame_number, tid) in motion.boxes:
                for k in BOX_STATS:
                    box_close[k].append(motion.box(s.obs, k))
            kp = s.kp
            kp_close.append(float(kp[:, 2].mean()))
            seen = kp[:, 2] >= T.LIMB_KP_MIN_SCORE
            up = any(seen[wr] and seen[sh] and kp[wr, 1] < kp[sh, 1]
                     for wr, sh in ((_LW, _LS), (_RW, _RS)))
            wrist_up.append(1.0 if up else 0.0)
    n_frames = max(1, len(counts))
    rule = interactions._violent(tracks)
    flow_close_mean = _stat(box_close["mag"], "mean")
    flow_frame_mean = _stat(frame_st["mag"], "mean")
    feats = dict(
        people_mean=_stat(counts, "mean"), people_max=_stat(counts, "max"),
        close_frac=close_frames / n_frames,
        pair_dist_min=min(dists) if dists else NO_PAIR_DISTANCE_BH,
        pair_iou_max=_stat(ious_max, "max"), pair_iou_mean=_stat(ious_max, "mean"),
        limb_close_max=_stat(limb_close, "max"), limb_close_p90=_stat(limb_close, "p90"),
        limb_close_mean=_stat(limb_close, "mean"),
        limb_both_max=_stat(limb_both, "max"), limb_both_p90=_stat(limb_both, "p90"),
        limb_all_max=_stat(limb_all, "max"), limb_all_p90=_stat(limb_all, "p90"),
        leg_close_max=_stat(leg_close, "max"), leg_close_p90=_stat(leg_close, "p90"),
        body_close_max=_stat(body_close, "max"), body_close_p90=_stat(body_close, "p90"),
        scale_change_p90=_stat(scale_change, "p90"), approach_p90=_stat(approach, "p90"),
        motion_close_max=_stat(box_close["diff"], "max"),
        motion_close_p90=_stat(box_close["diff"], "p90"),
        motion_close_mean=_stat(box_close["diff"], "mean"),
        motion_frame_mean=_stat(frame_st["diff"], "mean"),
        flow_close_mean=flow_close_mean, flow_close_p90=_stat(box_close["mag"], "p90"),
        flow_close_max=_stat(box_close["mag"], "max"),
        flow_close_peak_p90=_stat(box_close["mag_p90"], "p90"),
        coh_close_mean=_stat(box_close["coherence"], "mean", 1.0),
        dflow_close_mean=_stat(box_close["dmag"], "mean"),
        dflow_close_p90=_stat(box_close["dmag"], "p90"),
        flow_all_p90=_stat(flow_all, "p90"),
        flow_frame_mean=flow_frame_mean,
        flow_frame_std=float(np.std(frame_st["mag"])) if frame_st["mag"] else 0.0,
        coh_frame_mean=_stat(frame_st["coherence"], "mean", 1.0),
        flow_cell_p90=_stat(frame_st["grid_mag"], "p90"),
        flow_cell_max=_stat(frame_st["grid_mag"], "max"),
        dflow_cell_mean=_stat(frame_st["grid_dmag"], "mean"),
        dflow_cell_p90=_stat(frame_st["grid_dmag"], "p90"),
        moving_frac=_stat(frame_st["moving"], "mean"),
        flow_ratio=flow_close_mean / (flow_frame_mean + 0.05),
        hot_frac=hot / n_frames, wrist_up_frac=_stat(wrist_up, "mean"),
        kp_score_close=_stat(kp_close, "mean"),
        rule_fires=1.0 if rule else 0.0,
        rule_confidence=max((e.confidence for e in rule), default=0.0),
    )
    app, embedding = A.window_features(motion.appearance if motion is not None else None,
                                       sorted(by_frame), close_pairs,
                                       {f: sorted(p) for f, p in by_frame.items()})
    feats.update(app, app_score=0.0)
    values = np.array([feats[n] for n in FEATURE_NAMES], np.float64)
    # the people involved: the most active close pair, and whoever comes within touching
    # distance of one of them while moving limbs fast and moving more than the scene does
    # (bystanders stand, sit, watch or walk by)
    involved: set[int] = set()
    if pair_activity:
        pair = set(max(pair_activity, key=pair_activity.get))
        involved |= pair
        min_flow = INVOLVED_MIN_FLOW_RATIO * flow_frame_mean
        for tid in pair:
            for other in touching[tid] - involved:
                acts = track_act.get(other, [])
                flow = track_flow.get(other)
                if (acts and np.percentile(acts, 90) >= T.VIOLENT_MIN_LIMB_SPEED_BH_S
                        and (motion is None or (flow and np.mean(flow) >= min_flow))):
                    involved.add(other)
    if peak[1] is not None:
        pk = peak[1].obs
        peak_t, peak_f = pk.t_s, pk.frame_number
    elif observations:
        mid = sorted(observations, key=lambda o: o.t_s)[len(observations) // 2]
        peak_t, peak_f = mid.t_s, mid.frame_number
    else:
        peak_t, peak_f = 0.0, 0
    return _Window(values, embedding, tuple(sorted(involved)), peak_t, peak_f)


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
