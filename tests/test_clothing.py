"""pipeline/clothing.py: clothing colour names on synthetic coloured crops (every palette
colour, upper and lower apart, placed by the keypoints), none on grayscale frames, the track vote,
and a check on real crops of ../shared/testdata (boxes and keypoints as the engine found them)."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest

from conftest import testdata_path as data_path
from pipeline import clothing
from pipeline.records import KP, Colour, Event, EventType, Frame, PersonObservation, AgeGroup, Gender, Action

#: An RGB shade of each palette colour (as clothes look on camera: not pure primaries).
SHADES = {
    Colour.BLACK: (25, 25, 30), Colour.WHITE: (235, 235, 230), Colour.GREY: (128, 128, 132),
    Colour.RED: (190, 30, 35), Colour.ORANGE: (240, 130, 30), Colour.YELLOW: (230, 210, 40),
    Colour.GREEN: (40, 150, 60), Colour.BLUE: (40, 70, 180), Colour.PURPLE: (120, 50, 160),
    Colour.PINK: (240, 120, 180), Colour.BROWN: (120, 75, 40),
}


def person(upper_rgb, lower_rgb, background=(90, 140, 90), size=(240, 320)):
    """A frame with a person box (x 100-180, y 40-300): head, upper body (shoulders y 80 to
    hips y 170), lower body (to knees y 240, then legs), with keypoints where they are drawn."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = background
    img[40:80, 125:155] = (200, 160, 130)  # head
    img[80:170, 105:175] = upper_rgb
    img[170:300, 110:170] = lower_rgb
    kps = np.zeros((17, 3), np.float32)
    for name, (x, y) in {"left_shoulder": (165, 82), "right_shoulder": (115, 82),
                         "left_hip": (158, 170), "right_hip": (122, 170),
                         "left_knee": (156, 240), "right_knee": (124, 240),
                         "left_ankle": (155, 295), "right_ankle": (125, 295)}.items():
        kps[KP[name]] = (x, y, 0.9)
    obs = PersonObservation(frame_number=0, t_s=0.0, obj_id=1, xyxy=(100.0, 40.0, 180.0, 300.0),
                            det_confidence=0.9, keypoints=tuple(tuple(map(float, k)) for k in kps))
    return img, obs


@pytest.mark.parametrize("colour", list(SHADES))
def test_each_palette_colour_is_named_on_the_upper_body(colour):
    img, obs = person(SHADES[colour], (30, 30, 35))
    r = clothing.read_person(img, obs)
    assert (r.upper, r.lower) == (colour, Colour.BLACK)


@pytest.mark.parametrize("colour", list(SHADES))
def test_each_palette_colour_is_named_on_the_lower_body(colour):
    img, obs = person((235, 235, 230), SHADES[colour])
    r = clothing.read_person(img, obs)
    assert (r.upper, r.lower) == (Colour.WHITE, colour)


def test_hue_bands_name_saturated_colours_all_round_the_wheel():
    expect = [(0, Colour.RED), (30, Colour.ORANGE), (55, Colour.YELLOW), (120, Colour.GREEN),
              (210, Colour.BLUE), (275, Colour.PURPLE), (320, Colour.PINK), (355, Colour.RED)]
    for hue, colour in expect:
        rgb = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue / 360, 0.85, 0.9))
        img, obs = person(rgb, rgb)
        assert clothing.read_person(img, obs).upper is colour, hue


def test_regions_follow_the_keypoints_not_the_box():
    img, obs = person((190, 30, 35), (40, 70, 180))
    upper, lower = clothing.body_parts(obs.xyxy, obs.keypoints)
    assert 80 <= upper[1] and upper[1] + upper[3] <= 170  # shoulders to hips
    assert 170 <= lower[1] and lower[1] + lower[3] <= 240  # hips to knees
    # without keypoints the box's shares are used
    box_upper, _ = clothing.body_parts(obs.xyxy, ())
    assert box_upper[1] == pytest.approx(40 + 0.15 * 260)


def test_grayscale_and_infrared_frames_give_no_colour():
    img, obs = person((190, 30, 35), (40, 70, 180))
    gray = np.repeat(img.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    ir = np.clip(gray.astype(int) + np.array([0, 6, 0]), 0, 255).astype(np.uint8)  # faint tint
    assert clothing.is_grayscale(gray) and clothing.is_grayscale(ir)
    assert not clothing.is_grayscale(img)
    cc = clothing.ClothingColours()
    cc.add(Frame(0, 0.0, gray), [obs])
    assert cc.colours() == {}
    ev = Event(event_type=EventType.PERSON, t_s=0.0, frame_number=0, obj_id=1, xyxy=obs.xyxy,
               age_group=AgeGroup.UNKNOWN, gender=Gender.UNKNOWN, action=Action.STANDING,
               confidence=0.9)
    assert cc.apply([ev])[0].upper_colour is Colour.UNKNOWN


def test_track_vote_keeps_the_clearest_samples_and_writes_events():
    cc = clothing.ClothingColours(keep=3)
    red, obs = person((190, 30, 35), (40, 70, 180))
    for i in range(3):
        cc.add(Frame(i, float(i), red), [obs])
    # a smaller (less clear) sample in green is not among the 3 clearest: it is not read
    green, small = person((40, 150, 60), (40, 150, 60))
    small = PersonObservation(**{**small.__dict__, "xyxy": (100.0, 40.0, 180.0, 120.0)})
    cc.add(Frame(9, 9.0, green), [small])
    assert cc.colours() == {1: (Colour.RED, Colour.BLUE)}
    ev = Event(event_type=EventType.PERSON, t_s=1.0, frame_number=1, obj_id=1, xyxy=obs.xyxy,
               age_group=AgeGroup.UNKNOWN, gender=Gender.MALE, action=Action.WALKING,
               confidence=0.9)
    other = Event(**{**ev.__dict__, "obj_id": 2})
    out = cc.apply([ev, other])
    assert (out[0].upper_colour, out[0].lower_colour) == (Colour.RED, Colour.BLUE)
    assert out[1].upper_colour is Colour.UNKNOWN


#: Real crops: (clip, frame, box, [shoulders, hips, knees] keypoints as MoveNet found them,
#: what the clothes are by eye).
REAL = [
    ("intel/store-aisle-detection.mp4", 14, (340, 55, 394, 268),
     [(352.7, 116.8, 0.66), (379.5, 125.1, 0.66), (353.1, 177.5, 0.67), (372.9, 183.1, 0.78),
      (349.4, 211.0, 0.53), (374.8, 222.5, 0.63)], (Colour.BLUE, Colour.BLACK)),  # teal top, leggings
    ("intel/store-aisle-detection.mp4", 58, (305, 108, 381, 269),
     [(316.5, 157.5, 0.44), (370.0, 150.4, 0.41), (328.3, 234.0, 0.64), (356.5, 233.2, 0.45),
      (311.8, 219.0, 0.15), (375.3, 227.3, 0.21)], (Colour.BROWN, None)),  # suede jacket
    ("intel/face-demographics-walking.mp4", 18, (255, 92, 332, 269),
     [(325.9, 136.8, 0.84), (278.6, 133.9, 0.76), (308.5, 199.1, 0.82), (282.8, 197.3, 0.84),
      (299.2, 249.4, 0.66), (287.4, 247.9, 0.72)], (Colour.BLACK, None)),  # navy shirt, jeans
]


@pytest.mark.parametrize("clip,frame,box,kps,expect", REAL)
def test_real_crops_are_named_as_they_look(clip, frame, box, kps, expect):
    from pipeline.sampling import read_frames

    path = data_path("clips/" + clip)
    image = read_frames(path, frame, frame, 1)[0].image
    keypoints = [(0.0, 0.0, 0.0)] * 17
    for name, kp in zip(("left_shoulder", "right_shoulder", "left_hip", "right_hip",
                         "left_knee", "right_knee"), kps):
        keypoints[KP[name]] = kp
    obs = PersonObservation(frame_number=frame, t_s=0.0, obj_id=1, xyxy=tuple(map(float, box)),
                            det_confidence=0.9, keypoints=tuple(keypoints))
    assert not clothing.is_grayscale(image)
    r = clothing.read_person(image, obs, clothing.exposure_gain(image))
    assert r.upper is expect[0]
    if expect[1] is not None:
        assert r.lower is expect[1]


# --- the learned namer (models/clothing.json) and its label set --------------------------------

def _fitted_namer(unknown_below=0.0):
    """A multinomial logistic regression on random features of ``FEATURE_NAMES``, exported the
    way scripts/train_clothing.py does (train_violence.dump_model), and its LearnedNamer."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import train_violence as tv

    rng = np.random.default_rng(0)
    X = rng.random((200, len(clothing.FEATURE_NAMES)))
    y = np.array(["black", "blue", "red"])[np.argmax(X[:, :3] + 0.2 * rng.random((200, 3)), 1)]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000)).fit(X, y)
    spec = {"feature_version": clothing.FEATURE_VERSION, "classes": list(model.classes_),
            "unknown_below": unknown_below,
            "model": tv.dump_model(model, clothing.FEATURE_NAMES)}
    return model, clothing.LearnedNamer(spec), X


def test_json_namer_agrees_with_scikit_learn():
    import json

    model, namer, X = _fitted_namer()
    spec_again = json.loads(json.dumps({"feature_version": clothing.FEATURE_VERSION,
                                        "classes": [c.value for c in namer.classes],
                                        "unknown_below": 0.0,
                                        "model": {"kind": "logistic",
                                                  "feature_names": namer.model.feature_names,
                                                  "mean": namer.model.mean.tolist(),
                                                  "std": namer.model.std.tolist(),
                                                  "coef": namer.model.coef.tolist(),
                                                  "intercept": namer.model.intercept.tolist()}}))
    for n in (namer, clothing.LearnedNamer(spec_again)):
        np.testing.assert_allclose(n.probabilities(X[:7]), model.predict_proba(X[:7]), atol=1e-9)
    assert namer.classes == (Colour.BLACK, Colour.BLUE, Colour.RED)


def test_namer_abstains_below_its_threshold_and_rules_stand_without_the_file(tmp_path):
    _, sure, _ = _fitted_namer(0.0)
    _, shy, _ = _fitted_namer(1.01)
    img, obs = person((190, 30, 35), (40, 70, 180))
    stats = clothing.frame_stats(img)
    assert len(clothing.region_features(img[80:170, 105:175], stats)) == len(
        clothing.FEATURE_NAMES)
    assert sure.name(img[80:170, 105:175], stats) in sure.classes
    assert shy.name(img[80:170, 105:175], stats) is Colour.UNKNOWN
    assert sure.name(img[80:83, 105:175], stats) is Colour.UNKNOWN  # too small to read
    # the engine's path: a namer names the parts; without models/clothing.json the rules do
    r = clothing.read_person(img, obs, namer=sure)
    assert r.upper in sure.classes and r.lower in sure.classes
    assert clothing.load_namer(tmp_path) is None
    cc = clothing.ClothingColours(namer=clothing.load_namer(tmp_path))
    cc.add(Frame(0, 0.0, img), [obs])
    assert cc.colours() == {1: (Colour.RED, Colour.BLUE)}
    with pytest.raises(ValueError, match="other features"):
        clothing.LearnedNamer({"feature_version": -1, "classes": [], "unknown_below": 0,
                               "model": {"feature_names": []}})


def test_clothing_label_set_is_whole_and_keeps_the_benchmark_unseen():
    import csv
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    with open(repo / "datasets" / "clothing" / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"clip", "source_video", "frame", "box_x", "box_y", "box_w", "box_h",
                            "part", "x", "y", "w", "h", "colour"}
    names = {c.value for c in Colour}
    assert all(r["colour"] in names and r["part"] in ("upper", "lower") for r in rows)
    assert all(float(r["w"]) >= 1 and float(r["h"]) >= 1 for r in rows)
    named = [r for r in rows if r["colour"] != "unknown"]
    assert len(named) >= 250 and len({r["source_video"] for r in named}) >= 25
    # fi003 and nofi001 (the search benchmark's) and their recording are not in it
    excluded = {"7q6KJoSgxmY"}
    assert not any(r["source_video"] in excluded or r["clip"] in ("fi003.mp4", "nofi001.mp4")
                   or not r["source_video"] for r in rows)
    fight = repo.parent / "shared" / "datasets" / "surveillance-fight" / "labels.csv"
    if fight.is_file():  # each clip's recording as the data set gives it
        with open(fight) as f:
            source = {Path(r["clip"]).name: r["source_video"] for r in csv.DictReader(f)}
        assert {source["fi003.mp4"], source["nofi001.mp4"]} == excluded
        assert all(source[r["clip"]] == r["source_video"] for r in rows)
