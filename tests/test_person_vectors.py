"""pipeline/person_vectors.py: the clearest samples of a track, the descriptors through the real
YOLOv5s backbone, and on real footage a person's samples nearer each other than other people."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import make_observation, tracked_frames
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
    assert pv.for_run(None, MODELS, pv.Descriptor.HALVES) is None  # no backbone: no vectors
    assert pv.for_run(None, MODELS) is not None  # the default needs no network


def test_every_descriptor_gives_unit_vectors_of_its_size(backbone):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    people = [make_observation(0, xyxy=(40, 20, 120, 220)), make_observation(0, obj_id=2)]
    sizes = {pv.Descriptor.BACKBONE: 768, pv.Descriptor.P4: 256, pv.Descriptor.HALVES: 1536,
             pv.Descriptor.COLOUR: 144, pv.Descriptor.HALVES_COLOUR: 1680,
             pv.Descriptor.CROP: 768, pv.Descriptor.CROP_HALVES: 1536,
             pv.Descriptor.CROP_HALVES_COLOUR: 1680, pv.Descriptor.COLOUR_HSV: 192,
             pv.Descriptor.COLOUR_HSV4: 384, pv.Descriptor.HALVES_COLOUR_HSV4: 1920,
             pv.Descriptor.CROP_HALVES_COLOUR_HSV4: 1920}
    assert set(sizes) == set(pv.Descriptor)
    for d, n in sizes.items():
        vs = pv.describe(image, people, d, backbone)
        assert [v.shape for v in vs] == [(n,)] * 2, d
        assert all(abs(float(np.linalg.norm(v)) - 1) < 1e-4 for v in vs)
    with pytest.raises(ValueError, match="backbone"):
        pv.describe(image, people, pv.Descriptor.HALVES, None)


def test_the_model_id_names_the_weights_and_the_descriptor(backbone):
    model = pv.model_id(MODELS)
    assert pv.DEFAULT.value in model and pv.POOL in model
    halves = pv.model_id(MODELS, pv.Descriptor.HALVES)
    assert halves.startswith(BACKBONE_FILE + "#") and "/halves/" in halves
    assert len({pv.model_id(MODELS, d) for d in pv.Descriptor}) == len(pv.Descriptor)
    assert pv.for_run(backbone, MODELS).model == model


PAIRS = (("clips/adl/S1_ADL_16.mp4", "clips/falls/S1_Fall_13.mp4"),  # blue t-shirt
         ("clips/adl/S3_ADL_07.mp4", "clips/adl/S3_ADL_15.mp4"),  # light shirt, jeans
         ("clips/falls/Fall01.mp4", "clips/falls/Fall03.mp4"))  # the AON jersey


def test_on_real_footage_each_person_is_nearest_their_own_track_in_another_clip():
    """Three people, each in two clips (labelled by eye, datasets/search/same_person.json),
    through the product's sampling, detector, tracker and collector: each clip's main track
    is nearest the same person's track in the other clip."""
    from pipeline.backends.registry import load_backend
    from settings import Settings

    detector = load_backend("detector", "movenet", Settings(cpu_threads=2))
    found = {}
    for rel in (r for pair in PAIRS for r in pair):
        people = pv.for_run(None, MODELS)
        for i, (frame, persons) in enumerate(tracked_frames(rel, detector, 8)):
            if i >= 12:
                break
            people.add(frame, [make_observation(frame.frame_number, frame.t_s,
                                                int(persons.tracker_id[k]),
                                                xyxy=tuple(float(v) for v in persons.xyxy[k]),
                                                det_confidence=float(persons.confidence[k]),
                                                keypoints=tuple(map(tuple, persons.keypoints[k])))
                               for k in range(len(persons))])
        main = max(people.vectors(), key=lambda v: v.n_samples)
        found[rel] = main.vector
    for a, b in PAIRS:
        for q, want in ((a, b), (b, a)):
            sims = {r: float(np.dot(found[q], v)) for r, v in found.items() if r != q}
            assert max(sims, key=sims.get) == want, (q, sims)
