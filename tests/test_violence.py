"""pipeline/violence.py and scripts/train_violence.py: the shipped model loads and scores, the
JSON trees agree with scikit-learn, windows and episodes on synthetic poses, and the training
code on a handful of real clips (CI does not retrain the shipped model)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import violence as V
from pipeline.records import EventType
from settings import Settings
from test_interactions import _scene

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "surveillance-fight"
sys.path.insert(0, str(REPO / "scripts"))


def test_shipped_model_loads_through_the_registry_and_scores():
    from pipeline.backends.registry import load_backend

    det = load_backend("violence", "learned", Settings())
    assert det.name == "learned" and 0.0 < det.threshold < 1.0
    spec = json.loads((REPO / "models" / V.MODEL_FILE).read_text())
    assert spec["feature_version"] == V.FEATURE_VERSION
    assert tuple(spec["model"]["feature_names"]) == V.FEATURE_NAMES
    assert (REPO / "models" / V.MODEL_FILE).stat().st_size < 3_000_000
    fight = V.window_features(_scene(0.13, 16, 100, 70), None, (640, 480))
    calm = V.window_features(_scene(0.13, 16, 100, 0, partner_px=0), None, (640, 480))
    p = det.model.probability(np.stack([fight, calm]))
    assert np.all((0 <= p) & (p <= 1)) and np.isfinite(p).all()
    assert load_backend("violence", "rule", Settings()).name == "rule"


def test_missing_or_foreign_model_is_a_clear_error(tmp_path):
    from pipeline.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="VA_VIOLENCE=rule"):
        V.load_learned(Settings(models_dir=tmp_path))
    (tmp_path / V.MODEL_FILE).write_text(json.dumps({"feature_version": 999, "model": {}}))
    with pytest.raises(BackendUnavailable, match="feature version"):
        V.load_learned(Settings(models_dir=tmp_path))


def test_json_trees_agree_with_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    import train_violence as tv

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned side
    y = ((np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2) > 0.4).astype(int)
    for model in (HistGradientBoostingClassifier(max_depth=3, max_iter=30, random_state=0),):
        model.fit(x, y)
        ours = V.TreeEnsemble(tv.dump_model(model, [f"f{i}" for i in range(5)])).probability(x)
        assert np.abs(ours - model.predict_proba(x)[:, 1]).max() < 1e-9
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xf = np.nan_to_num(x)
    lr = make_pipeline(StandardScaler(), LogisticRegression()).fit(xf, y)
    ours = V.TreeEnsemble(tv.dump_model(lr, [f"f{i}" for i in range(5)])).probability(xf)
    assert np.abs(ours - lr.predict_proba(xf)[:, 1]).max() < 1e-9


def test_window_features_see_a_close_pair_fighting():
    names = V.FEATURE_NAMES
    fight = dict(zip(names, V.window_features(_scene(0.13, 16, 100, 70), None, (640, 480))))
    calm = dict(zip(names, V.window_features(_scene(0.13, 16, 100, 0, partner_px=0), None, (640, 480))))
    assert fight["people_max"] == calm["people_max"] == 2 and fight["close_frac"] == 1.0
    assert fight["limb_close_max"] > 1.0 > calm["limb_close_max"]
    assert fight["limb_both_p90"] > calm["limb_both_p90"]
    assert fight["rule_fires"] == 1.0 and calm["rule_fires"] == 0.0
    assert fight["pair_dist_min"] == pytest.approx(0.5)
    alone = dict(zip(names, V.window_features(_scene(0.13, 16, 100, 70)[::2], None, (640, 480))))
    assert alone["pair_dist_min"] == V.NO_PAIR_DISTANCE_BH and alone["close_frac"] == 0.0


def test_learned_episodes_are_one_per_stretch_on_the_people_involved():
    class Always:
        def probability(self, x):
            return np.full(len(np.atleast_2d(x)), 0.9)

    det = V.LearnedViolence.__new__(V.LearnedViolence)
    det.model, det.threshold, det.version = Always(), 0.5, "test"
    det.head = det.backbone = None
    obs = _scene(0.13, 40, 100, 70)  # 5.2 s of two people fighting
    eps = det.episodes(obs, None, (640, 480))
    assert len(eps) == 1 and eps[0].event_type is EventType.VIOLENT
    e = eps[0]
    assert {e.obj_id, *e.other_obj_ids} == {1, 2}
    assert e.start_t_s <= e.peak_t_s <= e.end_t_s and e.end_t_s - e.start_t_s > 3.0
    det.threshold = 0.95
    assert det.episodes(obs, None, (640, 480)) == []


def test_a_bystander_beside_the_fight_is_not_involved_unless_their_pixels_move():
    """fi003: the people watching a brawl stand within arm's reach of the fighters, and their
    poses jitter where boxes overlap, so limb speed alone made them fighters. A third person
    joins only if the image in their box moves ``INVOLVED_MIN_FLOW_RATIO`` times the scene."""
    from test_interactions import _person

    pair = _scene(0.13, 16, 100, 70)  # 1 punches 2 (2 stands 100 px to the left of 1)
    # person 3 stands beside 2, wrist swinging 30 px: limbs at ~1.2 body heights/s
    jitter = [_person(140, o.t_s, 3, wrist=(30.0 if k % 2 else 0.0, 0.0), frame=o.frame_number)
              for k, o in enumerate(o for o in pair if o.obj_id == 2)]
    obs = pair + jitter
    frames = sorted({o.frame_number for o in obs})

    def motion(third_flow):
        flow = {1: 3.0, 2: 2.5, 3: third_flow}
        box = {(o.frame_number, o.obj_id): (0.05, flow[o.obj_id], flow[o.obj_id], 0.3, 0.5)
               for o in obs}
        return V.Motion({f: (0.03, 1.0, 0.5, 1.5, 0.5, 0.2) for f in frames}, box)

    def involved(m):
        return V._window(obs, m, (640, 480)).involved

    assert involved(motion(0.6)) == (1, 2)  # watching: pixels still, pose jitter
    assert involved(motion(2.0)) == (1, 2, 3)  # joining in
    assert involved(None) == (1, 2, 3)  # no motion numbers: limb speeds decide, as before


def test_motion_numbers_of_frames_and_people():
    from pipeline.records import Frame, PersonObservation

    yy, xx = np.mgrid[0:80, 0:80]
    texture = (127 + 100 * np.sin(xx / 4.0) * np.cos(yy / 5.0)).astype(np.uint8)
    frames = []
    for k in range(4):  # a textured block sliding right 6 px (at 160 px wide) per frame
        img = np.zeros((120, 320, 3), np.uint8)
        x = 60 + 12 * k
        img[20:100, x:x + 80] = texture[:, :, None]
        frames.append(Frame(4 * k, 0.13 * k, img))
    kp = tuple((0.0, 0.0, 0.0) for _ in range(17))
    obs = [PersonObservation(f.frame_number, f.t_s, 1, (40.0, 10.0, 200.0, 110.0), 0.9, kp)
           for f in frames] + [PersonObservation(f.frame_number, f.t_s, 2, (260.0, 10.0, 318.0, 110.0),
                                                 0.9, kp) for f in frames]
    m = V.motion_of(frames, obs)
    assert sorted(m.frames) == [4, 8, 12]  # the first frame has no previous one
    mover, still = obs[1], obs[5]
    assert m.box(mover, "diff") > 0.05 and m.box(still, "diff") == 0.0
    assert m.box(mover, "mag") > 1.0 > m.box(still, "mag")
    assert m.box(mover, "coherence") > 0.8  # one way: a translation, not a scuffle
    assert m.frame(8, "grid_mag") >= m.frame(8, "mag") > 0
    again = V.Motion.from_json(json.loads(json.dumps(m.to_json())))
    assert again == m
    # the product reads the frames again through the engine's reader: same numbers
    by_number = {f.frame_number: f for f in frames}
    reader = lambda a, b, step: [by_number[i] for i in range(a, b + 1, step) if i in by_number]
    assert V.read_motion(obs, reader) == m


def test_backbone_vectors_follow_the_people_and_their_change():
    """The YOLOv5s backbone (the real network) pooled over boxes: one vector per person and
    one for the frame; a person whose appearance changes between samples scores a larger
    change than one who stays the same; the vectors survive the training cache's JSON."""
    from pipeline import appearance as A
    from pipeline.records import Frame, PersonObservation

    backbone = A.Backbone(REPO / "models" / A.BACKBONE_FILE)
    rng = np.random.default_rng(0)
    still = rng.integers(0, 255, (120, 60, 3), dtype=np.uint8)
    frames, obs = [], []
    kp = tuple((0.0, 0.0, 0.0) for _ in range(17))
    for k in range(4):
        img = np.full((240, 320, 3), 90, np.uint8)
        img[60:180, 40:100] = still
        img[60:180, 200:260] = rng.integers(0, 255, (120, 60, 3), dtype=np.uint8)  # changing
        frames.append(Frame(4 * k, 0.13 * k, img))
        obs += [PersonObservation(4 * k, 0.13 * k, 1, (40.0, 60.0, 100.0, 180.0), 0.9, kp),
                PersonObservation(4 * k, 0.13 * k, 2, (200.0, 60.0, 260.0, 180.0), 0.9, kp)]
    app = A.appearance_of(frames, obs, backbone)
    assert len(app.boxes) == 8 and len(app.frames) == 4
    assert all(v.shape == (A.DIM,) and np.isfinite(v).all() for v in app.boxes.values())
    nums = [f.frame_number for f in frames]
    one = A.window_features(app, nums, {}, {f: [1] for f in nums})[0]
    two = A.window_features(app, nums, {}, {f: [2] for f in nums})[0]
    assert one["app_change_all_p90"] < 1e-3 < two["app_change_all_p90"]
    feats, mean = A.window_features(app, nums, {f: [(1, 2)] for f in nums}, {f: [1, 2] for f in nums})
    assert feats["app_change_close_max"] == pytest.approx(two["app_change_all_p90"], rel=0.5)
    assert feats["app_spread_close_mean"] > 0 and mean.shape == (A.DIM,)
    again = A.Appearance.from_json(json.loads(json.dumps(app.to_json())))
    assert all(np.array_equal(again.boxes[k], v) for k, v in app.boxes.items())
    m = V.motion_of(frames, obs, backbone)  # the engine's path: the same vectors
    assert all(np.array_equal(m.appearance.boxes[k], v) for k, v in app.boxes.items())


@pytest.mark.skipif(not (DATASET / "labels.csv").exists(), reason="surveillance-fight dataset absent")
def test_training_code_runs_on_a_handful_of_clips(tmp_path):
    import train_violence as tv

    out, report = tmp_path / "violence.json", tmp_path / "cv.json"
    assert tv.main(["--limit", "6", "--cache", str(tmp_path / "cache"), "--out", str(out),
                    "--report", str(report)]) == 0
    model = V.LearnedViolence.from_file(out)
    r = json.loads(report.read_text())
    assert r["n_clips"] == 6 and "rule" in r["summary"] and 0 < model.threshold <= 1
    assert set(r["oof"]) and all(0 <= v[1] <= 1 for v in r["oof"].values())
