"""The 'age_gender' attributes backend on real photos and clips (../shared/testdata)."""
import numpy as np
import pytest

import attr_support as S
import conftest
from pipeline.records import Attributes, Frame, Gender, PersonDetections


@pytest.fixture(scope="module")
def estimator():
    from pipeline.backends.age_gender import load_age_gender
    from settings import Settings

    return load_age_gender(Settings())


@pytest.mark.parametrize("rel", sorted(S.PHOTO_TRUTH))
def test_photo_gender_and_age(estimator, rel):
    S.assert_photo_reads_right(estimator, rel)


def test_no_face_no_model_and_unknown(estimator):
    img = np.full((200, 200, 3), 128, np.uint8)
    kp = np.zeros((1, 17, 3), np.float32)  # nothing seen: no face box
    p = PersonDetections(np.array([[10, 10, 100, 190]], np.float32), np.ones(1, np.float32), kp)
    assert estimator.estimate(Frame(0, 0.0, img), p) == [Attributes()]
    assert estimator.estimate(Frame(0, 0.0, img), PersonDetections.empty()) == []


def test_small_faces_are_unknown(estimator):
    import cv2

    img = cv2.imread(str(conftest.testdata_path("images/astronaut.png")))[:, :, ::-1]
    persons = S.portrait_detector().detect_image(np.ascontiguousarray(img))
    small = np.ascontiguousarray(cv2.resize(img, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA))
    scaled = PersonDetections(persons.xyxy * 0.3, persons.confidence,
                              persons.keypoints * np.array([0.3, 0.3, 1], np.float32))
    for a in estimator.estimate(Frame(0, 0.0, small), scaled):
        assert a.gender is Gender.UNKNOWN and a.age is None


@pytest.mark.parametrize("rel,n_male,n_female", [
    ("clips/intel/face-demographics-walking.mp4", 1, 1),
    ("clips/intel/classroom.mp4", 3, 1),
])
def test_clip_tracks_right_or_unknown(estimator, rel, n_male, n_female):
    S.assert_genders_right_or_unknown(S.clip_track_genders(estimator, rel), n_male, n_female)
