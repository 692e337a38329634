"""The learned posture-and-motion classifier: the default ``ActionRecognizer`` (``posture_trees``).

Standing, walking, running, sitting and lying come from gradient-boosted trees
(``models/actions.json``, written by scripts/train_actions.py, evaluated with numpy by
``pipeline.trees``; no pickle, no scikit-learn at run time) over ``FEATURE_NAMES``: the body's
geometry in this frame (torso, thigh and shank inclination, knee and hip angles, the box's
aspect, where hips, shoulders and ankles sit in the box, the hip height above the ankles in body
heights and torso lengths, keypoint confidences) and the track's motion over the past
``WINDOW_S`` seconds (hip displacement in body heights per second, change of size and of torso
angle). A person whose most likely posture has a probability below the model's
``abstain_below`` (chosen by grouped cross-validation) is ``unknown``.

The rules (``pipeline.actions``) run first and their answer is one of the features; where they
say sitting, lying, falling (the transition) or running, that answer stands: grouped CV found the
trees no better there (see models/actions.md). The trees decide the rest: standing vs walking,
and people the rules call upright who are in fact sitting or lying. Violent, grabbing and anomaly are laid
over by the interaction episodes downstream, as before.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.actions import PoseRules, posture
from pipeline.records import (
    KP, Action, ActionEstimate, Frame, PersonDetections, PersonObservation,
)
from pipeline.trees import TreeEnsemble

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "actions.json"
WINDOW_S = 1.4  # motion: the oldest sample of the track at most this long ago (~1 s at 1.5/s)
_LS, _RS, _LH, _RH = KP["left_shoulder"], KP["right_shoulder"], KP["left_hip"], KP["right_hip"]
_LK, _RK, _LA, _RA = KP["left_knee"], KP["right_knee"], KP["left_ankle"], KP["right_ankle"]
_HEAD = [KP[k] for k in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
_LEGS = [_LK, _RK, _LA, _RA]

FEATURE_NAMES = (
    "torso_deg", "axis_deg", "thigh_deg", "shank_deg", "knee_angle", "hip_angle",
    "box_aspect", "log_box_h_frame", "hip_in_box", "shoulder_in_box", "ankle_in_box",
    "knee_in_box", "hip_above_ankle_bh", "hip_above_ankle_torso", "box_h_per_torso",
    "box_w_per_torso", "kp_mean", "kp_legs", "kp_hips", "kp_shoulders", "kp_head",
    "cut_bottom", "cut_side", "det_conf", "rule_lying", "rule_sitting", "rule_upright",
    "legs_seen",
    "hip_speed_bh_s", "hip_vy_bh_s", "size_change_s", "torso_change_deg",
    "step_speed_bh_s",
    "rules_standing", "rules_walking", "rules_sitting", "rules_lying", "rules_falling",
)
#: the rules' answers the classifier leaves as they are (see ``PostureClassifier``)
RULES_KEEP = (Action.SITTING, Action.LYING, Action.FALLING, Action.RUNNING)
_RULE_CODES = (Action.STANDING, Action.WALKING, Action.SITTING, Action.LYING, Action.FALLING)
_NAN = float("nan")


def _mid(kp: np.ndarray, a: int, b: int) -> np.ndarray | None:
    ok = [j for j in (a, b) if kp[j, 2] >= T.KP_MIN_SCORE]
    return kp[ok, :2].mean(axis=0) if ok else None


def _vert_deg(top, bottom) -> float:
    dx, dy = float(top[0] - bottom[0]), float(bottom[1] - top[1])
    if math.hypot(dx, dy) < 1e-3:
        return _NAN
    return math.degrees(math.atan2(abs(dx), dy))  # 0 upright, 90 horizontal, 180 upside down


def _joint_deg(kp: np.ndarray, a: int, b: int, c: int) -> float:
    """Interior angle at ``b`` of a-b-c, degrees (180 = straight)."""
    if min(kp[a, 2], kp[b, 2], kp[c, 2]) < T.KP_MIN_SCORE:
        return _NAN
    u, v = kp[a, :2] - kp[b, :2], kp[c, :2] - kp[b, :2]
    nu, nv = float(np.hypot(*u)), float(np.hypot(*v))
    if nu < 1e-3 or nv < 1e-3:
        return _NAN
    return math.degrees(math.acos(max(-1.0, min(1.0, float(u @ v) / (nu * nv)))))


def _nanmean(vals) -> float:
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else _NAN


def _n(v) -> float:
    return _NAN if v is None else float(v)


def _hip_point(kp: np.ndarray, box) -> np.ndarray:
    hip = _mid(kp, _LH, _RH)
    if hip is not None:
        return hip
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float32)


def geometry(kp: np.ndarray, box, frame_w: int, frame_h: int, det_conf: float) -> list[float]:
    """The per-frame features (the first 28 of ``FEATURE_NAMES``)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    p = posture(kp, box, frame_h)
    sh, hip = _mid(kp, _LS, _RS), _mid(kp, _LH, _RH)
    knee, ankle = _mid(kp, _LK, _RK), _mid(kp, _LA, _RA)
    shank = _nanmean([_vert_deg(kp[k, :2], kp[a, :2]) for k, a in ((_LK, _LA), (_RK, _RA))
                      if min(kp[k, 2], kp[a, 2]) >= T.KP_MIN_SCORE])
    knee_a = _nanmean([_joint_deg(kp, _LH, _LK, _LA), _joint_deg(kp, _RH, _RK, _RA)])
    hip_a = _nanmean([_joint_deg(kp, _LS, _LH, _LK), _joint_deg(kp, _RS, _RH, _RK)])
    torso_len = float(np.hypot(*(sh - hip))) if sh is not None and hip is not None else _NAN
    torso_len = torso_len if torso_len > 1.0 else _NAN
    foot = ankle if ankle is not None else knee

    def in_box(pt):
        return _NAN if pt is None else (float(pt[1]) - y0) / h

    above = _NAN if hip is None or foot is None else float(foot[1] - hip[1])
    m = 0.02
    cut_side = float(x0 <= frame_w * m or x1 >= frame_w * (1 - m) or y0 <= frame_h * m)
    return [
        _n(p.torso_deg), _n(p.axis_deg), _n(p.thigh_deg), shank, knee_a, hip_a,
        h / w, math.log(h / max(frame_h, 1)), in_box(hip), in_box(sh), in_box(ankle),
        in_box(knee), above / h, above / torso_len, h / torso_len, w / torso_len,
        float(kp[:, 2].mean()), float(kp[_LEGS, 2].mean()), float(kp[[_LH, _RH], 2].mean()),
        float(kp[[_LS, _RS], 2].mean()), float(kp[_HEAD, 2].max()),
        float(p.cut_at_bottom), cut_side, float(det_conf), float(p.lying), float(p.sitting),
        float(p.upright), float(p.legs_seen),
    ]


def motion(kp: np.ndarray, box, t_s: float, torso_deg: float,
           past: Sequence[PersonObservation]) -> list[float]:
    """The track's motion features (5 of ``FEATURE_NAMES``) from its past samples (the rules'
    feet speed over 3 s is in their answer, a feature too)."""
    recent = [o for o in past if 1e-6 < t_s - o.t_s <= WINDOW_S + 1e-6]
    if not recent:
        return [_NAN] * 5
    first, prev = recent[0], recent[-1]
    h_now = max(float(box[3]) - float(box[1]), 1.0)

    def speed(o: PersonObservation) -> tuple[float, float, float]:
        okp = np.asarray(o.keypoints, np.float32).reshape(17, 3)
        h_then = max(o.xyxy[3] - o.xyxy[1], 1.0)
        scale = (h_now + h_then) / 2
        d = _hip_point(kp, box) - _hip_point(okp, o.xyxy)
        dt = t_s - o.t_s
        return float(np.hypot(*d)) / scale / dt, float(d[1]) / scale / dt, \
            math.log(h_now / h_then) / dt

    sp, vy, size = speed(first)
    okp = np.asarray(first.keypoints, np.float32).reshape(17, 3)
    osh, ohip = _mid(okp, _LS, _RS), _mid(okp, _LH, _RH)
    then = _vert_deg(osh, ohip) if osh is not None and ohip is not None else _NAN
    return [sp, vy, abs(size), torso_deg - then, speed(prev)[0]]


def features(kp, box, t_s: float, frame_w: int, frame_h: int, det_conf: float,
             past: Sequence[PersonObservation], rules: Action) -> np.ndarray:
    """``FEATURE_NAMES`` of one person-sample; ``past``: the track's earlier sampled rows;
    ``rules``: the pose rules' action of the same sample."""
    kp = np.asarray(kp, np.float32).reshape(17, 3)
    g = geometry(kp, box, frame_w, frame_h, det_conf)
    return np.asarray(g + motion(kp, box, t_s, g[0], past)
                      + [float(rules is a) for a in _RULE_CODES], np.float64)


class PostureClassifier:
    """``ActionRecognizer``: the trees of ``models/actions.json`` (see the module docstring)."""

    name = "posture_trees"

    def __init__(self, spec: Mapping):
        if tuple(spec["feature_names"]) != FEATURE_NAMES:
            raise ValueError("models/actions.json was trained on other features; re-run "
                             "scripts/train_actions.py")
        self.classes = tuple(Action(c) for c in spec["classes"])
        # every class's trees in one ensemble: one pass per depth level for all of them
        self._bases = np.array([float(m["baseline"]) for m in spec["models"]])
        self._ends = np.cumsum([len(m["trees"]) for m in spec["models"]])
        self.trees = TreeEnsemble({"kind": "trees", "feature_names": FEATURE_NAMES, "baseline": 0.0,
                                   "trees": [t for m in spec["models"] for t in m["trees"]]})
        self.abstain_below = float(spec["abstain_below"])
        self.override_above = float(spec.get("override_rules_above", 1.01))
        self.rules = PoseRules()

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        per_tree = self.trees.tree_values(X)
        raw = np.add.reduceat(per_tree, np.r_[0, self._ends[:-1]], axis=1) + self._bases
        raw -= raw.max(axis=1, keepdims=True)
        e = np.exp(raw)
        return e / e.sum(axis=1, keepdims=True)

    def decide(self, P: np.ndarray, rules: Sequence[ActionEstimate]) -> list[ActionEstimate]:
        """The rules' sitting, lying, falling and running stand (grouped CV: the rules' sitting
        and lying recall is higher than the trees'); elsewhere the trees' most likely posture,
        or ``unknown`` below ``abstain_below``; a rules' sitting that the trees call lying with
        probability >= ``override_rules_above`` is lying (a person on the floor after a fall)."""
        out = []
        for p, r in zip(P, rules):
            k = int(np.argmax(p))
            overruled = (r.action is Action.SITTING and self.classes[k] is Action.LYING
                         and p[k] >= self.override_above)
            if r.action in RULES_KEEP and not overruled:
                out.append(r)
                continue
            act = self.classes[k] if p[k] >= self.abstain_below else Action.UNKNOWN
            out.append(ActionEstimate(act, round(float(p[k]), 3)))
        return out

    def recognize(self, frame: Frame, persons: PersonDetections,
                  history: Mapping[int, Sequence[PersonObservation]]) -> list[ActionEstimate]:
        if not len(persons):
            return []
        ids = persons.tracker_id if persons.tracker_id is not None else np.full(len(persons), -1)
        rules = self.rules.recognize(frame, persons, history)
        X = np.stack([features(persons.keypoints[i], persons.xyxy[i], frame.t_s, frame.width,
                               frame.height, persons.confidence[i],
                               list(history.get(int(ids[i]), ())) if ids[i] >= 0 else [],
                               rules[i].action)
                      for i in range(len(persons))])
        return self.decide(self.probabilities(X), rules)


def load_posture_trees(settings) -> PostureClassifier:
    """Registry factory: the shipped model (``models/actions.json``)."""
    return PostureClassifier(json.loads(MODEL_PATH.read_text()))
