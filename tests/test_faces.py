"""Face boxes from head keypoints and the quality gate, on synthetic keypoints and real photos."""
import cv2
import numpy as np
import pytest

import conftest
from pipeline.faces import add_face_boxes, crop, face_boxes, sharpness, usable_faces
from pipeline.records import KP, PersonDetections


def _frontal(cx=200.0, eye_y=100.0, eye_dist=40.0, score=0.8):
    kp = np.zeros((17, 3), np.float32)
    kp[KP["left_eye"]] = (cx + eye_dist / 2, eye_y, score)
    kp[KP["right_eye"]] = (cx - eye_dist / 2, eye_y, score)
    kp[KP["nose"]] = (cx, eye_y + 20, score)
    kp[KP["left_ear"]] = (cx + eye_dist, eye_y + 5, score)
    kp[KP["right_ear"]] = (cx - eye_dist, eye_y + 5, score)
    kp[KP["left_shoulder"]] = (cx + 80, eye_y + 120, score)
    kp[KP["right_shoulder"]] = (cx - 80, eye_y + 120, score)
    return kp


def test_frontal_face_box_is_centred_and_scaled_from_the_head():
    box = face_boxes(_frontal()[None])[0]
    assert np.isfinite(box).all()
    side = box[2] - box[0]
    # the largest of: eye distance x 2, ear distance x 0.92, nose-to-ear x 1.8
    assert side == pytest.approx(max(40 * 2.0, 80 * 0.92, 1.8 * np.hypot(40, 15)), rel=0.01)
    assert (box[0] + box[2]) / 2 == pytest.approx(200, abs=1)
    assert box[1] < 100 < box[3]  # the eye line lies inside the box


def test_back_turned_person_has_no_face():
    kp = _frontal()
    kp[[KP["nose"], KP["left_eye"], KP["right_eye"]], 2] = 0.05
    boxes = face_boxes(np.stack([_frontal(), kp]))
    assert np.isfinite(boxes[0]).all() and np.isnan(boxes[1]).all()


def test_add_face_boxes_keeps_detector_faces():
    kp = np.stack([_frontal(), _frontal(cx=400)])
    given = np.array([[1, 2, 50, 60], [np.nan] * 4], np.float32)
    p = PersonDetections(np.zeros((2, 4), np.float32), np.ones(2, np.float32), kp, face_xyxy=given)
    out = add_face_boxes(p)
    assert out.face_xyxy[0].tolist() == [1, 2, 50, 60]
    assert np.isfinite(out.face_xyxy[1]).all()


def _rgb(rel):
    return cv2.cvtColor(cv2.imread(str(conftest.testdata_path(rel))), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector():
    from pipeline.backends.movenet import MODEL_FILE, MoveNetDetector
    from settings import Settings

    # A portrait fills the frame: MoveNet finds such a large person best at a small input.
    return MoveNetDetector(Settings().models_dir / MODEL_FILE, threads=1, long_side=256)


def test_astronaut_face_box_matches_the_face(detector):
    img = _rgb("images/astronaut.png")
    persons = detector.detect_image(img)
    boxes = face_boxes(persons.keypoints)
    box = boxes[np.isfinite(boxes).all(axis=1)][0]
    # dlib's HOG face detector puts this face at (179, 83, 266, 170) (left, top, right, bottom).
    ref = np.array([179, 83, 266, 170], np.float32)
    inter = np.prod(np.clip(np.minimum(box[2:], ref[2:]) - np.maximum(box[:2], ref[:2]), 0, None))
    union = np.prod(box[2:] - box[:2]) + np.prod(ref[2:] - ref[:2]) - inter
    assert inter / union > 0.7


def test_quality_gate_rejects_small_and_blurred_faces(detector):
    img = _rgb("images/astronaut.png")
    persons = detector.detect_image(img)
    boxes = face_boxes(persons.keypoints)
    keep = np.isfinite(boxes).all(axis=1)
    ok, side = usable_faces(img, boxes[keep])
    assert ok.all() and (side > 80).all()
    face = boxes[keep][0]
    assert sharpness(crop(img, face)) > 100
    # the same frame shrunk 3x: the face is ~30 px -> unusable, no model should run
    small = cv2.resize(img, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
    ok_small, side_small = usable_faces(small, boxes[keep] / 3)
    assert not ok_small.any() and (side_small < 40).all()
    # heavily blurred: rejected by the variance of the Laplacian
    blurred = cv2.GaussianBlur(img, (0, 0), 6)
    ok_blur, _ = usable_faces(blurred, boxes[keep])
    assert not ok_blur.any()
