"""The learned posture-and-motion classifier (pipeline/posture_model.py, models/actions.json):
its JSON model, its features, and the engine's stored actions on real clips against the labelled
set (models/actions_labels.csv)."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import tracked_frames
from pipeline.actions import PoseRules
from pipeline.posture_model import (
    CENTRED_NAMES, FEATURE_NAMES, centred, MODEL_PATH, RULES_KEEP, PostureClassifier, features, load_posture_trees,
    track_mean, track_vote,
)
from pipeline.records import Action, ActionEstimate, PersonObservation
from settings import Settings

LABELS = Path(__file__).resolve().parents[1] / "models" / "actions_labels.csv"


@pytest.fixture(scope="module")
def model() -> PostureClassifier:
    return load_posture_trees(Settings())


def test_model_is_json_with_the_features_of_the_code(model):
    spec = json.loads(MODEL_PATH.read_text())
    assert tuple(spec["feature_names"]) == FEATURE_NAMES
    assert {c for c in spec["classes"]} <= {"standing", "walking", "running", "sitting", "lying"}
    assert 0.0 <= spec["abstain_below"] < 1.0
    bad = dict(spec, feature_names=list(FEATURE_NAMES)[:-1])
    with pytest.raises(ValueError, match="re-run scripts/train_actions.py"):
        PostureClassifier(bad)


def test_cv_figures_beside_the_model_are_the_rules_and_the_model_on_one_set():
    cv = json.loads((MODEL_PATH.parent / "actions_cv.json").read_text())
    assert cv["n_cameras"] >= 20 and cv["n_labelled"] >= 600
    assert cv["rules"]["n"] == cv["model_abstain_smoothed"]["n"]
    # shipped because it beats the rules on grouped CV (what the engine stores: smoothed)
    assert cv["model_abstain_smoothed"]["accuracy"] > cv["rules_smoothed"]["accuracy"]


def test_held_out_labels_are_scored_but_never_trained_on():
    cv = json.loads((MODEL_PATH.parent / "actions_cv.json").read_text())
    spec = json.loads(MODEL_PATH.read_text())
    rows = list(csv.DictReader(open(LABELS)))
    postures = {"standing", "walking", "sitting", "lying"}
    held = [r for r in rows if r["source"] == "visual_held_out" and r["action"] in postures]
    trained = [r for r in rows if r["source"] != "visual_held_out" and r["action"] in postures]
    assert held and spec["n_train"] == cv["n_train"] == len(trained)
    assert cv["held_out"]["n"] == len(held)
    assert cv["all_with_held_out"]["n"] == len(held) + len(trained)


def test_labelled_set_covers_cameras_and_actions():
    rows = list(csv.DictReader(open(LABELS)))
    acts = Counter(r["action"] for r in rows)
    assert len(rows) >= 600 and len({r["camera"] for r in rows}) >= 20
    for a in ("standing", "walking", "sitting", "lying", "falling", "unknown"):
        assert acts[a] > 0, acts
    assert set(acts) <= {a.value for a in Action}


def _person(kp_xy, score=0.9):
    kp = np.zeros((17, 3), np.float32)
    kp[:, :2] = kp_xy
    kp[:, 2] = score
    return kp


def test_features_are_finite_where_the_body_is_seen_and_nan_without_history():
    # an upright person 200 px tall: shoulders at y=60, hips at 120, knees 170, ankles 220
    xy = np.array([[100, 30]] * 5 + [[90, 60], [110, 60], [85, 90], [115, 90], [85, 115],
                                      [115, 115], [93, 120], [107, 120], [93, 170], [107, 170],
                                      [93, 220], [107, 220]], np.float32)
    kp = _person(xy)
    f = features(kp, (80, 20, 120, 225), 5.0, 640, 480, 0.9, [], Action.STANDING)
    assert f.shape == (len(FEATURE_NAMES) - len(CENTRED_NAMES),)
    named = dict(zip(FEATURE_NAMES, f))
    assert named["torso_deg"] == pytest.approx(0.0, abs=1e-6)
    assert named["knee_angle"] == pytest.approx(180.0, abs=1e-3)
    assert np.isnan(named["hip_speed_bh_s"])  # no history
    past = [PersonObservation(0, 4.0, 1, (30, 20, 70, 225), 0.9,
                              tuple(map(tuple, _person(xy - [50, 0]))))]
    g = dict(zip(FEATURE_NAMES, features(kp, (80, 20, 120, 225), 5.0, 640, 480, 0.9, past,
                                         Action.WALKING)))
    assert g["hip_speed_bh_s"] == pytest.approx(50 / 205, rel=1e-3)  # 50 px in 1 s, 205 px tall
    assert g["rules_walking"] == 1.0 and g["rules_standing"] == 0.0


def test_centred_window_sees_both_sides_of_a_sample():
    # a person 205 px tall walks 50 px a second to the right; samples every 0.5 s
    xy = np.array([[100, 30]] * 5 + [[90, 60], [110, 60], [85, 90], [115, 90], [85, 115],
                                      [115, 115], [93, 120], [107, 120], [93, 170], [107, 170],
                                      [93, 220], [107, 220]], np.float32)
    track = [PersonObservation(k, 0.5 * k, 1, (80 + 25 * k, 20, 120 + 25 * k, 225), 0.9,
                               tuple(map(tuple, _person(xy + [25 * k, 0])))) for k in range(6)]
    C = {n: c for n, c in zip(CENTRED_NAMES, centred(track).T)}
    assert C["c_hip_speed_bh_s"] == pytest.approx(50 / 205, rel=1e-3)
    assert C["c_foot_speed_bh_s"] == pytest.approx(50 / 205, rel=1e-3)
    assert C["c_next_speed_bh_s"][0] == pytest.approx(50 / 205, rel=1e-3)  # the future counts
    assert np.isnan(C["c_next_speed_bh_s"][-1])  # nothing after the last sample
    assert np.all(C["c_size_change_s"] == 0.0)
    assert np.isnan(centred(track[:1])).all()


def test_track_vote_follows_the_majority_within_the_window_and_keeps_falls():
    S, W, F, L = Action.STANDING, Action.WALKING, Action.FALLING, Action.LYING
    ts = [0.0, 0.7, 1.4, 2.1, 2.8, 3.5]
    # a lone standing among walkers is walking; falling neither changes nor votes
    assert track_vote([W, W, S, W, W, F], ts, 1.4) == [W, W, W, W, W, F]
    # no strict majority (a tie): the answer stays
    assert track_vote([S, W], [0.0, 0.7], 1.4) == [S, W]
    # outside the window nothing counts: the lying after the fall stays lying
    assert track_vote([W, W, W, F, L, L], [0, 1, 2, 3, 6, 7], 2.1) == [W, W, W, F, L, L]
    assert track_vote([], []) == []

def test_track_mean_averages_the_probabilities_within_the_window():
    P = np.array([[1.0, 0.0], [0.0, 1.0], [np.nan, np.nan], [0.5, 0.5]])
    out = track_mean(P, [0.0, 1.0, 2.0, 9.0], 1.0)
    assert out[0] == pytest.approx([0.5, 0.5]) and out[1] == pytest.approx([0.5, 0.5])
    assert out[2] == pytest.approx([0.0, 1.0])  # its own row has none; its neighbour's counts
    assert out[3] == pytest.approx([0.5, 0.5])  # alone in its window

def test_rules_sitting_lying_falling_and_running_stand_and_weak_evidence_is_unknown(model):
    standing = model.classes.index(Action.STANDING)
    P = np.full((len(RULES_KEEP) + 1, len(model.classes)), 0.1 / (len(model.classes) - 1))
    P[:-1, standing] = 0.9
    P[-1] = 1.0 / len(model.classes)  # no class stands out
    rules = [ActionEstimate(a, 0.5) for a in RULES_KEEP] + [ActionEstimate(Action.STANDING, 0.5)]
    out = model.decide(P, rules)
    assert [o.action for o in out[:-1]] == list(RULES_KEEP)
    low = out[-1].action
    assert low is Action.UNKNOWN or P[-1].max() >= model.abstain_below
    lying = model.classes.index(Action.LYING)
    P2 = np.full((1, len(model.classes)), 0.01)
    P2[0, lying] = 1.0 - 0.01 * (len(model.classes) - 1)  # the trees: surely lying
    assert model.decide(P2, [ActionEstimate(Action.SITTING, 0.5)])[0].action is Action.LYING


def _actions(clip, detector, skip, model):
    """As the engine: the rules' answer in the sampled pass, then ``refine`` over each track."""
    hist: dict[int, list[PersonObservation]] = {}
    rows, size = [], (0, 0)
    for f, p in tracked_frames(clip, detector, skip):
        size = (f.width, f.height)
        p = p[p.tracker_id >= 0] if len(p) else p
        acts = model.recognize(f, p, hist)
        for i, a in enumerate(acts):
            oid = int(p.tracker_id[i])
            o = PersonObservation(f.frame_number, f.t_s, oid, tuple(p.xyxy[i]),
                                  float(p.confidence[i]), tuple(map(tuple, p.keypoints[i])),
                                  action=a.action, action_confidence=a.confidence)
            hist.setdefault(oid, []).append(o)
            rows.append(o)
    return [(o.t_s, o.obj_id, o.action) for o in model.refine(rows, *size)]


@pytest.fixture(scope="module")
def detector():
    from pipeline.backends.movenet import load_movenet

    return load_movenet(Settings())


def _stored(seq):
    """The per-track smoothing the engine applies before storing (postprocess)."""
    from types import SimpleNamespace

    from pipeline.postprocess import _smooth_actions

    by_track: dict[int, list] = {}
    for t, oid, a in seq:
        by_track.setdefault(oid, []).append((t, a))
    return [(t, oid, s) for oid, rows in by_track.items()
            for (t, _), s in zip(rows, _smooth_actions([SimpleNamespace(action=a)
                                                        for _, a in rows]))]


def test_pedestrians_walk_and_nobody_is_stored_sitting(detector, model):
    seq = _actions("clips/pedestrians/vtest_first20s.mp4", detector, 7, model)
    acts = Counter(a for t, _, a in seq if t >= 2.0)
    assert acts[Action.WALKING] >= 0.6 * sum(acts.values()), acts
    stored = Counter(a for _, _, a in _stored(seq))
    # the walker of track 51 at 14.7 s, whom the rules call sitting (a long stride), is walking
    # since the track's vote over +/-2.1 s (the rules alone store that one sitting)
    assert stored[Action.LYING] + stored[Action.FALLING] == 0, stored
    assert stored[Action.SITTING] == 0, stored


@pytest.mark.xfail(strict=True, reason="known failure (models/actions.md): the rules call the "
                   "brawlers of fi003, seen from above, sitting, and the trees keep the rules' "
                   "sitting (grouped CV finds overruling it costs accuracy)")
def test_fighters_in_fi003_are_not_stored_sitting(detector, model):
    from pipeline.interactions import interaction_frame_skip
    from pipeline.sampling import probe_video
    from conftest import testdata_path

    info = probe_video(testdata_path("clips/fight/fi003.mp4"))
    skip = interaction_frame_skip(info.fps, info.duration_s, Settings().frame_skip_for(info.fps))
    stored = Counter(a for _, _, a in _stored(_actions("clips/fight/fi003.mp4", detector, skip,
                                                       model)))
    assert stored[Action.SITTING] == 0 and stored[Action.LYING] == 0, stored


def test_fall01_man_lies_after_the_fall(detector, model, gt):
    ev = {e["type"]: e for e in gt["clips/falls/Fall01.mp4"]["events"]}
    seq = _stored(_actions("clips/falls/Fall01.mp4", detector, 4, model))
    after = [a for t, _, a in seq if t >= ev["lying"]["start"] + 0.3]
    assert after and sum(a is Action.LYING for a in after) >= 0.75 * len(after), after
    assert not any(a is Action.SITTING for a in after), after


def test_rules_remain_available_as_the_baseline():
    assert PoseRules().name == "pose_rules"
