"""The learned posture-and-motion classifier: the default ``ActionRecognizer`` (``posture_trees``).

Standing, walking, running, sitting and lying come from gradient-boosted trees
(``models/actions.json``, written by scripts/train_actions.py, evaluated with numpy by
``pipeline.trees``; no pickle, no scikit-learn at run time) over ``FEATURE_NAMES``: the body's
geometry in this frame (torso, thigh and shank inclination, knee and hip angles, the box's
aspect, where hips, shoulders and ankles sit in the box, the hip height above the ankles in body
heights and torso lengths, keypoint confidences), the track's motion over the past
``WINDOW_S`` seconds (hip displacement in body heights per second, change of size and of torso
angle) and over the centred window t +/- ``WINDOW_S`` (``centred``: hips, feet and box centre
displacement, size change, the hips' path). A person whose most likely posture has a
probability below the model's ``abstain_below`` (chosen by grouped cross-validation) is
``unknown``.

Two steps, as the engine runs them (``pipeline/run.py``): ``recognize``, in the sampled pass,
gives the rules' answer (``pipeline.actions``, causal); ``refine``, once the pass is over, reads
each track in time order and lets the trees decide with the samples on both sides. The rules'
answer is one of the features; where they say sitting, lying, falling (the transition) or
running, that answer stands: grouped CV found the trees no better there (see
models/actions.md). The trees decide the rest: standing vs walking, and people the rules call
upright who are in fact sitting or lying. Last, each track's answers are put to a majority
vote over +/- ``TRACK_VOTE_S`` (``track_mean`` of the trees' probabilities before deciding,
``track_vote`` of the answers after). Violent, grabbing and anomaly are laid
over by the interaction episodes downstream, as before.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
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
#: ``refine``'s window over a track: the trees' probabilities averaged, then the answers put to
#: a majority vote, over the track's samples within +/- this many seconds (grouped CV,
#: models/actions.md: vote alone 1.4 s 0.817, 2.1 s 0.826, 3.0 s 0.830; mean + vote 0.835)
TRACK_VOTE_S = 2.1
_NOT_VOTED = (Action.FALLING, Action.RUNNING)  # transitions and rare answers stay as they are
_LS, _RS, _LH, _RH = KP["left_shoulder"], KP["right_shoulder"], KP["left_hip"], KP["right_hip"]
_LK, _RK, _LA, _RA = KP["left_knee"], KP["right_knee"], KP["left_ankle"], KP["right_ankle"]
_HEAD = [KP[k] for k in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
_LEGS = [_LK, _RK, _LA, _RA]

#: motion over the centred window t +/- ``WINDOW_S`` (the track's samples on both sides)
CENTRED_NAMES = ("c_hip_speed_bh_s", "c_hip_vy_bh_s", "c_size_change_s", "c_foot_speed_bh_s",
                 "c_path_speed_bh_s", "c_next_speed_bh_s", "c_box_x_speed_bh_s")
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
) + CENTRED_NAMES
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


def centred(track: Sequence[PersonObservation]) -> np.ndarray:
    """``CENTRED_NAMES`` of every sample of one track (sorted by time): displacement of the
    hips, the feet (ankles, else the box's bottom centre) and the box's centre between the
    first and the last sample within +/- ``WINDOW_S``, in mean box heights per second; the change
    of apparent size; the hips' path length; the hips' speed to the last later sample."""
    out = np.full((len(track), len(CENTRED_NAMES)), _NAN)
    if len(track) < 2:
        return out
    ts = np.array([o.t_s for o in track])
    boxes = np.array([o.xyxy for o in track], np.float64)
    hs = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    hips, feet = np.empty((len(track), 2)), np.empty((len(track), 2))
    for j, o in enumerate(track):
        kp = np.asarray(o.keypoints, np.float32).reshape(17, 3)
        hips[j] = _hip_point(kp, o.xyxy)
        a = _mid(kp, _LA, _RA)
        feet[j] = a if a is not None else ((boxes[j, 0] + boxes[j, 2]) / 2, boxes[j, 3])
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    lo = np.searchsorted(ts, ts - WINDOW_S - 1e-6, "left")
    hi = np.searchsorted(ts, ts + WINDOW_S + 1e-6, "right") - 1
    for j in range(len(track)):
        a, b = lo[j], hi[j]
        dt = ts[b] - ts[a]
        if dt < 0.2:
            continue
        sc = hs[a:b + 1].mean() * dt
        path = np.linalg.norm(np.diff(hips[a:b + 1], axis=0), axis=1).sum()
        ahead = ts[b] - ts[j]
        nxt = (np.linalg.norm(hips[b] - hips[j]) / hs[a:b + 1].mean() / ahead
               if ahead >= 0.2 else _NAN)
        out[j] = (np.linalg.norm(hips[b] - hips[a]) / sc, (hips[b, 1] - hips[a, 1]) / sc,
                  abs(math.log(hs[b] / hs[a])) / dt, np.linalg.norm(feet[b] - feet[a]) / sc,
                  path / sc, nxt, abs(cx[b] - cx[a]) / sc)
    return out


def features(kp, box, t_s: float, frame_w: int, frame_h: int, det_conf: float,
             past: Sequence[PersonObservation], rules: Action) -> np.ndarray:
    """``FEATURE_NAMES`` of one person-sample but the centred ones (``centred``); ``past``: the
    track's earlier sampled rows; ``rules``: the pose rules' action of the same sample."""
    kp = np.asarray(kp, np.float32).reshape(17, 3)
    g = geometry(kp, box, frame_w, frame_h, det_conf)
    return np.asarray(g + motion(kp, box, t_s, g[0], past)
                      + [float(rules is a) for a in _RULE_CODES], np.float64)


def track_mean(P: np.ndarray, ts: Sequence[float], half_s: float = TRACK_VOTE_S) -> np.ndarray:
    """One track's class probabilities (rows in time order), each the mean of the rows within
    +/- ``half_s`` seconds (NaN rows ignored)."""
    t = np.asarray(ts, np.float64)
    lo = np.searchsorted(t, t - half_s - 1e-6, "left")
    hi = np.searchsorted(t, t + half_s + 1e-6, "right")
    out = np.array(P, np.float64)
    for j in range(len(t)):
        win = P[lo[j]:hi[j]]
        win = win[~np.isnan(win).any(axis=1)]
        if len(win):
            out[j] = win.mean(axis=0)
    return out

def track_vote(actions: Sequence[Action], ts: Sequence[float],
               half_s: float = TRACK_VOTE_S) -> list[Action]:
    """One track's answers (in time order) replaced by the strict majority of the answers
    within +/- ``half_s`` seconds; falling and running neither change nor vote."""
    t = np.asarray(ts, np.float64)
    lo = np.searchsorted(t, t - half_s - 1e-6, "left")
    hi = np.searchsorted(t, t + half_s + 1e-6, "right")
    out = list(actions)
    for j, a in enumerate(actions):
        if a in _NOT_VOTED:
            continue
        win = [b for b in actions[lo[j]:hi[j]] if b not in _NOT_VOTED]
        top, n = Counter(win).most_common(1)[0]
        if n > len(win) / 2:
            out[j] = top
    return out


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

    def decide(self, P: np.ndarray, rules: Sequence[ActionEstimate],
               P_own: np.ndarray | None = None) -> list[ActionEstimate]:
        """The rules' sitting, lying, falling and running stand (grouped CV: the rules' sitting
        and lying recall is higher than the trees'); elsewhere the trees' most likely posture,
        or ``unknown`` below ``abstain_below``; a rules' sitting that the trees call lying with
        probability >= ``override_rules_above`` on the sample's own ``P_own`` (default ``P``;
        ``refine`` passes the probabilities before the track's mean, which would blur the
        moment a person is down) is lying (a person on the floor after a fall)."""
        out = []
        for p, q, r in zip(P, P if P_own is None else P_own, rules):
            kq = int(np.argmax(q))
            if (r.action is Action.SITTING and self.classes[kq] is Action.LYING
                    and q[kq] >= self.override_above):
                out.append(ActionEstimate(Action.LYING, round(float(q[kq]), 3)))
                continue
            if r.action in RULES_KEEP:
                out.append(r)
                continue
            k = int(np.argmax(p))
            act = self.classes[k] if p[k] >= self.abstain_below else Action.UNKNOWN
            out.append(ActionEstimate(act, round(float(p[k]), 3)))
        return out

    def recognize(self, frame: Frame, persons: PersonDetections,
                  history: Mapping[int, Sequence[PersonObservation]]) -> list[ActionEstimate]:
        """The sampled pass's answer: the rules' (causal). ``refine`` replaces it once the
        track's next samples are seen."""
        return self.rules.recognize(frame, persons, history)

    def refine(self, observations: Sequence[PersonObservation], frame_w: int,
               frame_h: int) -> list[PersonObservation]:
        """The sampled pass's rows (their ``action`` the rules', from ``recognize``) with the
        trees' decision over the centred window, averaged and voted over each track's
        +/- ``TRACK_VOTE_S``; same rows, same order."""
        by_track: dict[int, list[int]] = {}
        for i, o in enumerate(observations):
            by_track.setdefault(o.obj_id if o.obj_id >= 0 else -1 - i, []).append(i)
        X = np.empty((len(observations), len(FEATURE_NAMES)))
        for rows in by_track.values():
            rows.sort(key=lambda i: observations[i].t_s)
            track = [observations[i] for i in rows]
            C = centred(track)
            for j, i in enumerate(rows):
                o = observations[i]
                past = [p for p in track[max(0, j - 64):j] if o.t_s - p.t_s <= WINDOW_S + 1e-6]
                X[i, :-len(CENTRED_NAMES)] = features(o.keypoints, o.xyxy, o.t_s, frame_w,
                                                      frame_h, o.det_confidence, past, o.action)
                X[i, -len(CENTRED_NAMES):] = C[j]
        if not len(observations):
            return []
        rules = [ActionEstimate(o.action, o.action_confidence or 0.0) for o in observations]
        own = self.probabilities(X)
        P = own.copy()
        for rows in by_track.values():  # the track's mean over +/- TRACK_VOTE_S
            P[rows] = track_mean(own[rows], [observations[i].t_s for i in rows])
        dec = self.decide(P, rules, own)
        for rows in by_track.values():  # then its vote over +/- TRACK_VOTE_S
            voted = track_vote([dec[i].action for i in rows], [observations[i].t_s for i in rows])
            for i, a in zip(rows, voted):
                if a is not dec[i].action:
                    dec[i] = ActionEstimate(a, dec[i].confidence)
        return [dataclasses.replace(o, action=d.action, action_confidence=d.confidence)
                for o, d in zip(observations, dec)]


def load_posture_trees(settings) -> PostureClassifier:
    """Registry factory: the shipped model (``models/actions.json``)."""
    return PostureClassifier(json.loads(MODEL_PATH.read_text()))
