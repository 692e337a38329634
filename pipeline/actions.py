"""Pose and motion rules: the default ``ActionRecognizer`` (``pose_rules``).

Posture comes from the keypoints of one frame (angles are measured from the image's vertical,
so they do not depend on the person's size or distance):

* torso angle: hip midpoint -> shoulder midpoint; body axis: shoulder midpoint -> ankle (or knee)
  midpoint; thigh angle: hip -> knee.
* **lying**: the torso or the body axis is far from vertical (``LYING_MIN_TORSO_DEG``), or, when
  the torso is not seen, a wide box (height/width <= ``LYING_MAX_BOX_ASPECT``) whose visible
  keypoints spread sideways.
* **sitting**: upright torso and thighs near horizontal (``SITTING_MIN_THIGH_DEG``); or upright
  torso with the legs hidden (``LEGS_MIN_MEAN_SCORE``), or unclear (``LEGS_CLEAR_MEAN_SCORE``)
  with a box no taller than ``SITTING_MAX_HEIGHT_PER_TORSO`` torso lengths (a standing body is
  ~3.3-3.5): people at desks or tables, unless they move.
* not upright and not lying: **sitting** when the box is wide (crouched or down on the floor,
  e.g. after a fall), else **standing** when bent over, whatever the box's motion.
* otherwise (upright) **standing**, and **walking** / **running** when the track's feet point
  moves faster than ``WALK_MIN_SPEED_BH_S`` / ``RUN_MIN_SPEED_BH_S`` body heights per second over
  the last ``MOTION_WINDOW_S`` seconds of its history.
* **falling** (a transition): lying now, and the previous sample upright or the last upright
  sighting within ``FALL_ACTION_HOLD_S`` (and within ``FALL_MAX_TRANSITION_S``).
  ``highlights.py`` times and confirms falls properly; this label is the per-frame view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.records import (
    KP, Action, ActionEstimate, Frame, PersonDetections, PersonObservation,
)

_LS, _RS, _LH, _RH = KP["left_shoulder"], KP["right_shoulder"], KP["left_hip"], KP["right_hip"]
_LK, _RK, _LA, _RA = KP["left_knee"], KP["right_knee"], KP["left_ankle"], KP["right_ankle"]
_HEAD = (KP["nose"], KP["left_eye"], KP["right_eye"], KP["left_ear"], KP["right_ear"])


@dataclass(frozen=True)
class Posture:
    """What one frame's keypoints say about a person's body."""

    torso_deg: float | None  # 0 = upright, 90 = horizontal
    axis_deg: float | None  # shoulders -> ankles/knees, from vertical
    thigh_deg: float | None  # hip -> knee, from vertical (mean of visible sides)
    box_aspect: float  # box height / width
    height_px: float  # body scale: box height when upright, longest box side otherwise
    feet_xy: tuple[float, float]  # ground contact point (ankles, else box bottom centre)
    centre_y: float  # hip (else box) centre height, px: drops in a fall
    legs_seen: bool
    upright: bool
    lying: bool
    sitting: bool
    cut_at_bottom: bool = False  # the box touches the frame's bottom edge (partly out of view)

    @property
    def label(self) -> Action:
        if self.lying:
            return Action.LYING
        if self.sitting:
            return Action.SITTING
        return Action.STANDING


def _mid(kp: np.ndarray, a: int, b: int) -> np.ndarray | None:
    ok = [j for j in (a, b) if kp[j, 2] >= T.KP_MIN_SCORE]
    if not ok:
        return None
    return kp[ok, :2].mean(axis=0)


def _angle_from_vertical(top: np.ndarray, bottom: np.ndarray) -> float | None:
    dx, dy = float(top[0] - bottom[0]), float(bottom[1] - top[1])
    if math.hypot(dx, dy) < 1e-3:
        return None
    return math.degrees(math.atan2(abs(dx), dy)) if dy >= 0 else 180.0 - math.degrees(
        math.atan2(abs(dx), -dy))


def posture(keypoints, xyxy, frame_height: int | None = None) -> Posture:
    """Posture of one person; ``frame_height`` lets a box cut by the frame's bottom edge (a
    person walking out of the picture) not count as a wide, lying body."""
    kp = np.asarray(keypoints, np.float32).reshape(17, 3)
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    cut = frame_height is not None and y1 >= frame_height * (1 - T.EDGE_MARGIN_FRAC)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    aspect = h / w
    sh, hip = _mid(kp, _LS, _RS), _mid(kp, _LH, _RH)
    knee, ankle = _mid(kp, _LK, _RK), _mid(kp, _LA, _RA)
    torso = _angle_from_vertical(sh, hip) if sh is not None and hip is not None else None
    foot = ankle if ankle is not None else knee
    axis = _angle_from_vertical(sh, foot) if sh is not None and foot is not None else None
    thighs = []
    for hj, kj in ((_LH, _LK), (_RH, _RK)):
        if kp[hj, 2] >= T.KP_MIN_SCORE and kp[kj, 2] >= T.KP_MIN_SCORE:
            a = _angle_from_vertical(kp[hj, :2], kp[kj, :2])
            if a is not None:
                thighs.append(a)
    thigh = float(np.mean(thighs)) if thighs else None
    # legs count as seen only when knees and ankles are found with some confidence: under a
    # desk MoveNet still guesses legs, but with low scores
    legs_seen = float(np.mean(kp[[_LK, _RK, _LA, _RA], 2])) >= T.LEGS_MIN_MEAN_SCORE
    torso_len = float(np.hypot(*(sh - hip))) if sh is not None and hip is not None else None

    # Lying: a horizontal torso (the body axis when the torso is not seen: a person sitting with
    # straight legs has a horizontal shoulder->ankle axis but an upright torso); or a wide box
    # whose torso is not clearly upright (lying along the camera's axis looks short and wide).
    tilt = torso if torso is not None else axis
    lying = tilt is not None and tilt >= T.LYING_MIN_TORSO_DEG and aspect <= T.LYING_MAX_ASPECT_WITH_KP
    if not lying and aspect <= T.LYING_MAX_BOX_ASPECT:
        if cut:  # legs cut off by the frame look wide too: need a tilted body to say lying
            lying = tilt is not None and tilt >= T.LYING_WIDE_BOX_MIN_TORSO_DEG
        else:
            lying = torso is None or torso >= T.LYING_WIDE_BOX_MIN_TORSO_DEG
    sitting = False
    if not lying and (torso is None or torso <= T.UPRIGHT_MAX_TORSO_DEG):
        if thigh is not None and thigh >= T.SITTING_MIN_THIGH_DEG and legs_seen:
            sitting = True
        elif not legs_seen and hip is not None:
            sitting = True  # an upper body whose legs are hidden (desk, table)
        elif (float(np.mean(kp[[_LK, _RK, _LA, _RA], 2])) < T.LEGS_CLEAR_MEAN_SCORE and torso_len
              and h <= T.SITTING_MAX_HEIGHT_PER_TORSO * torso_len):
            sitting = True  # legs unclear and the box no taller than an upper body
    upright = (not lying) and (not sitting) and (torso is None or torso <= T.UPRIGHT_MAX_TORSO_DEG) \
        and aspect >= T.UPRIGHT_MIN_BOX_ASPECT
    if ankle is not None:
        feet = (float(ankle[0]), float(ankle[1]))
    else:
        feet = ((x0 + x1) / 2, y1)
    centre_y = float(hip[1]) if hip is not None else (y0 + y1) / 2
    scale = h if upright else max(w, h)
    return Posture(torso, axis, thigh, aspect, scale, feet, centre_y, legs_seen, upright, lying,
                   sitting, cut)


def track_speed_bh_s(history: Sequence[PersonObservation], now: PersonObservation | None = None,
                     window_s: float = T.MOTION_WINDOW_S) -> float | None:
    """Speed of the feet point in body heights per second over the recent history."""
    obs = list(history) + ([now] if now is not None else [])
    if len(obs) < 2:
        return None
    t_end = obs[-1].t_s
    recent = [o for o in obs if t_end - o.t_s <= window_s + 1e-6]
    if len(recent) < 2:
        recent = obs[-2:]
    a, b = recent[0], recent[-1]
    dt = b.t_s - a.t_s
    if dt < T.MOTION_MIN_SPAN_S:
        return None  # over short spans detection jitter dominates
    pa, pb = posture(a.keypoints, a.xyxy), posture(b.keypoints, b.xyxy)
    scale = max(1.0, (pa.height_px + pb.height_px) / 2)
    dx, dy = pb.feet_xy[0] - pa.feet_xy[0], pb.feet_xy[1] - pa.feet_xy[1]
    # moving toward/away from the camera changes the apparent size more than the position: a
    # relative size change of x means a move of ~x times the distance, ~DEPTH_... body heights
    dz = T.DEPTH_BH_PER_LOG_SIZE * abs(math.log(max(pb.height_px, 1.0) / max(pa.height_px, 1.0)))
    return (math.hypot(dx, dy) / scale + dz) / dt


class PoseRules:
    """``ActionRecognizer`` from pose and motion; no model."""

    name = "pose_rules"

    def recognize(self, frame: Frame, persons: PersonDetections,
                  history: Mapping[int, Sequence[PersonObservation]]) -> list[ActionEstimate]:
        out: list[ActionEstimate] = []
        ids = persons.tracker_id if persons.tracker_id is not None else np.full(len(persons), -1)
        for i in range(len(persons)):
            p = posture(persons.keypoints[i], persons.xyxy[i], frame.height)
            past = list(history.get(int(ids[i]), ())) if ids[i] >= 0 else []
            out.append(self._classify(p, persons, i, frame.t_s, past))
        return out

    def _classify(self, p: Posture, persons: PersonDetections, i: int, t_s: float,
                  past: list[PersonObservation]) -> ActionEstimate:
        kp_conf = float(np.mean(persons.keypoints[i, :, 2]))
        if p.lying:
            recent = [o for o in past if t_s - o.t_s <= T.FALL_MAX_TRANSITION_S + 1e-6]
            upright_t = [o.t_s for o in recent if posture(o.keypoints, o.xyxy).upright]
            # falling is the transition: the first sample down after an upright one, and any
            # sample within FALL_ACTION_HOLD_S of the last upright sighting (dense sampling)
            if upright_t and (past[-1].t_s in upright_t
                              or t_s - max(upright_t) <= T.FALL_ACTION_HOLD_S + 1e-6):
                return ActionEstimate(Action.FALLING, round(min(1.0, 0.4 + kp_conf), 3))
            return ActionEstimate(Action.LYING, round(min(1.0, 0.3 + kp_conf), 3))
        here = PersonObservation(frame_number=-1, t_s=t_s, obj_id=-1,
                                 xyxy=tuple(float(v) for v in persons.xyxy[i]),
                                 det_confidence=float(persons.confidence[i]),
                                 keypoints=tuple(tuple(float(v) for v in k)
                                                 for k in persons.keypoints[i]))
        speed = track_speed_bh_s(past, here)
        if not p.upright and p.box_aspect < T.UPRIGHT_MIN_BOX_ASPECT:
            # not lying, but crouched or down on the floor (a wide box): whatever the box's
            # motion (getting up, a fall's aftermath), that is not walking
            return ActionEstimate(Action.SITTING, round(min(1.0, 0.2 + kp_conf), 3))
        if p.sitting and (speed is None or speed < T.WALK_MIN_SPEED_BH_S):
            return ActionEstimate(Action.SITTING, round(min(1.0, 0.3 + kp_conf), 3))
        if not p.upright and not p.sitting:  # bent over (a tall box, a tilted torso)
            return ActionEstimate(Action.STANDING, round(min(1.0, 0.1 + kp_conf), 3))
        if speed is not None and speed >= T.RUN_MIN_SPEED_BH_S and p.upright:
            return ActionEstimate(Action.RUNNING, round(min(1.0, 0.3 + kp_conf), 3))
        if speed is not None and speed >= T.WALK_MIN_SPEED_BH_S:
            return ActionEstimate(Action.WALKING, round(min(1.0, 0.3 + kp_conf), 3))
        conf = 0.2 + kp_conf if speed is not None else 0.1 + kp_conf
        return ActionEstimate(Action.STANDING, round(min(1.0, conf), 3))


def load_pose_rules(settings) -> PoseRules:
    """Registry factory (no weights)."""
    return PoseRules()
