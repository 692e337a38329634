"""pipeline/person_vectors.py: the clearest samples of a track, the descriptors through the real
YOLOv5s backbone, and on real footage a person's samples nearer each other than other people."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_observation, tracked_frames
from conftest import testdata_path as data_path
from pipeline import person_vectors as pv
from pipeline.appearance import BACKBONE_FILE, Backbone
from pipeline.records import Frame

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def backbone():
    return Backbone(MODELS / BACKBONE_FILE, 2)


def test_the_clearest_samples_are_kept_and_a_clear_one_beats_any_other(backbone):
    rng = np.random.default_rng(2)
    frame = lambda f: Frame(f, f / 10, rng.integers(0, 255, (240, 320, 3), np.uint8), f)  # noqa
    people = pv.PersonVectors(backbone, "m", pv.Descriptor.COLOUR, keep=2)
    people.add(frame(0), [make_observation(0, xyxy=(0, 0, 20, 40))])  # too small: not clear
    people.add(frame(1), [make_observation(1, xyxy=(0, 0, 60, 150))])
    people.add(frame(2), [make_observation(2, xyxy=(0, 0, 60, 200))])
    people.add(frame(3), [make_observation(3, xyxy=(0, 0, 60, 120))])  # not among the best 2
    hidden = make_observation(4, xyxy=(0, 0, 60, 230))
    people.add(frame(4), [hidden, make_observation(4, obj_id=2, xyxy=(10, 10, 70, 240))])
    assert people.described == 4  # frame 3's sample and the hidden one were never described
    (one, two) = people.vectors()
    assert (one.obj_id, one.n_samples, two.obj_id, two.n_samples) == (1, 2, 2, 1)
    assert people.vectors([2])[0].obj_id == 2
    alone = pv.PersonVectors(backbone, "m", pv.Descriptor.COLOUR)
    alone.add(frame(5), [make_observation(5, xyxy=(0, 0, 20, 40), det_confidence=0.2)])
    assert [v.n_samples for v in alone.vectors()] == [1]  # nothing clear: its best one
    with pytest.raises(ValueError, match="backbone"):
        pv.PersonVectors(None, "m", pv.Descriptor.HALVES)
    assert pv.for_run(None, MODELS) is None  # no backbone loaded: no vectors, no error


def test_every_descriptor_gives_unit_vectors_of_its_size(backbone):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    people = [make_observation(0, xyxy=(40, 20, 120, 220)), make_observation(0, obj_id=2)]
    sizes = {pv.Descriptor.BACKBONE: 768, pv.Descriptor.P4: 256, pv.Descriptor.HALVES: 1536,
             pv.Descriptor.COLOUR: 144, pv.Descriptor.HALVES_COLOUR: 1680,
             pv.Descriptor.CROP: 768, pv.Descriptor.CROP_HALVES: 1536,
             pv.Descriptor.CROP_HALVES_COLOUR: 1680}
    assert set(sizes) == set(pv.Descriptor)
    for d, n in sizes.items():
        vs = pv.describe(image, people, d, backbone)
        assert [v.shape for v in vs] == [(n,)] * 2, d
        assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-4 for v in vs)
    with pytest.raises(ValueError, match="backbone"):
        pv.describe(image, people, pv.Descriptor.HALVES, None)


def test_the_model_id_names_the_weights_and_the_descriptor(backbone):
    model = pv.model_id(MODELS)
    assert model.startswith(BACKBONE_FILE + "#") and model.endswith("/" + pv.DEFAULT.value)
    assert pv.model_id(MODELS, pv.Descriptor.COLOUR) != model
    assert pv.for_run(backbone, MODELS).model == model


def test_on_real_footage_a_person_is_nearest_their_own_other_samples(backbone):
    """vtest_first20s through the product's detector and tracker: each tracked person's sample
    is matched to the sample, among everyone's samples a second or more away, most like it;
    most matches are the same track."""
    from pipeline.backends.registry import load_backend
    from settings import Settings

    if not data_path("clips/pedestrians/vtest_first20s.mp4").is_file():
        pytest.skip("../shared/testdata is absent")
    detector = load_backend("detector", "movenet", Settings(cpu_threads=2))
    samples = []  # (track, t_s, vector)
    for i, (frame, persons) in enumerate(tracked_frames("clips/pedestrians/vtest_first20s.mp4",
                                                        detector, 7)):
        if i >= 14:
            break
        rows = [make_observation(frame.frame_number, frame.t_s, int(persons.tracker_id[k]),
                                 xyxy=tuple(float(v) for v in persons.xyxy[k]),
                                 keypoints=tuple(map(tuple, persons.keypoints[k])))
                for k in range(len(persons)) if persons.xyxy[k][3] - persons.xyxy[k][1] >= 60]
        for o, v in zip(rows, pv.describe(frame.image, rows, pv.DEFAULT, backbone)):
            samples.append((o.obj_id, o.t_s, v))
    right = n = 0
    for tid, t, v in samples:
        others = [(s[0], float(np.dot(v, s[2]))) for s in samples if abs(s[1] - t) >= 1.0]
        if not any(o[0] == tid for o in others):
            continue
        n += 1
        right += max(others, key=lambda o: o[1])[0] == tid
    assert n >= 20 and right >= 0.85 * n, (right, n)
