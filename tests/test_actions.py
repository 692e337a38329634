"""Pose/motion rules on real clips (ground truth in ../shared/testdata/ground_truth.json)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from conftest import tracked_frames
from pipeline.actions import load_pose_rules, posture
from pipeline.backends.movenet import load_movenet
from pipeline.records import Action, PersonObservation
from settings import Settings


@pytest.fixture(scope="module")
def detector():
    return load_movenet(Settings())


def _actions(clip, detector, skip):
    """(t_s, obj_id, action) for every tracked person of every sampled frame."""
    rules = load_pose_rules(Settings())
    history: dict[int, list[PersonObservation]] = {}
    out = []
    for f, p in tracked_frames(clip, detector, skip):
        p = p[p.tracker_id >= 0] if len(p) else p
        acts = rules.recognize(f, p, history)
        for i, a in enumerate(acts):
            oid = int(p.tracker_id[i])
            out.append((f.t_s, oid, a.action))
            history.setdefault(oid, []).append(PersonObservation(
                f.frame_number, f.t_s, oid, tuple(p.xyxy[i]), float(p.confidence[i]),
                tuple(map(tuple, p.keypoints[i])), action=a.action))
    return out


def test_classroom_people_sit(detector, gt):
    assert gt["clips/intel/classroom.mp4"]["events"][0]["type"] == "sitting"
    acts = Counter(a for _, _, a in _actions("clips/intel/classroom.mp4", detector, 10))
    assert acts[Action.SITTING] >= 0.75 * sum(acts.values()), acts


def test_sitting_on_the_floor_is_not_lying(detector, gt):
    assert any(e["type"] == "sitting" for e in gt["clips/adl/S3_ADL_15.mp4"]["events"])
    acts = Counter(a for _, _, a in _actions("clips/adl/S3_ADL_15.mp4", detector, 15))
    n = sum(acts.values())
    assert acts[Action.LYING] <= 0.15 * n and acts[Action.SITTING] >= 0.8 * n, acts


def test_pedestrians_walk(detector, gt):
    assert gt["clips/pedestrians/vtest_first20s.mp4"]["events"][0]["type"] == "walking"
    acts = Counter(a for t, _, a in _actions("clips/pedestrians/vtest_first20s.mp4", detector, 10)
                   if t >= 2.0)  # a speed needs history
    assert acts[Action.WALKING] >= 0.6 * sum(acts.values()), acts
    assert acts[Action.LYING] + acts[Action.FALLING] + acts[Action.SITTING] <= 1, acts


def test_fall_clip_standing_then_lying(detector, gt):
    ev = {e["type"]: e for e in gt["clips/falls/Fall01.mp4"]["events"]}
    seq = _actions("clips/falls/Fall01.mp4", detector, 10)
    before = [a for t, _, a in seq if t < ev["falling"]["start"] - 0.5]
    after = [a for t, _, a in seq if t >= ev["lying"]["start"] + 0.5]
    assert all(a in (Action.STANDING, Action.WALKING) for a in before), before
    assert after and sum(a in (Action.LYING, Action.FALLING) for a in after) >= 0.75 * len(after), after


def test_posture_geometry():
    # a synthetic upright skeleton: shoulders above hips above knees above ankles
    kp = np.zeros((17, 3), np.float32)
    for j, (x, y) in {5: (40, 40), 6: (60, 40), 11: (42, 100), 12: (58, 100), 13: (42, 150),
                      14: (58, 150), 15: (42, 200), 16: (58, 200), 0: (50, 20)}.items():
        kp[j] = (x, y, 0.9)
    up = posture(kp, (30, 10, 70, 205))
    assert up.upright and not up.lying and not up.sitting and up.torso_deg < 5
    # the same body rotated by 90 degrees (lying along the image's x axis)
    rot = kp.copy()
    rot[:, 0], rot[:, 1] = kp[:, 1], 300 - kp[:, 0]
    down = posture(rot, (10, 230, 205, 270))
    assert down.lying and not down.upright and down.torso_deg > 80
