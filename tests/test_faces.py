"""Face boxes from head keypoints and the quality gate, on synthetic keypoints and real photos."""
import cv2
import numpy as np
import pytest

import conftest
from pipeline.faces import Abstain, add_face_boxes, crop, face_boxes, face_views, sharpness, view_abstentions
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
    kps = persons.keypoints[keep]
    views = face_views(img, boxes[keep], kps)
    assert all(view_abstentions(v) == () for v in views) and all(v.side_px > 80 for v in views)
    face = boxes[keep][0]
    assert sharpness(crop(img, face)) > 100
    # the same frame shrunk 3x: the face is ~30 px -> unusable, no model should run
    small = cv2.resize(img, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
    small_kps = kps * np.array([1 / 3, 1 / 3, 1], np.float32)
    for v in face_views(small, boxes[keep] / 3, small_kps):
        assert Abstain.SMALL in view_abstentions(v) and v.side_px < 40
    # heavily blurred: rejected by the variance of the Laplacian
    blurred = cv2.GaussianBlur(img, (0, 0), 6)
    for v in face_views(blurred, boxes[keep], kps):
        assert Abstain.BLURRED in view_abstentions(v)


# --- trust gates (synthetic readings: the decision rules themselves) -----------------------

def _view(**kw):
    from pipeline.faces import FaceView

    base = dict(side_px=80.0, sharpness=200.0, frame_chroma=30.0, yaw=0.05, roll_deg=3.0)
    return FaceView(**{**base, **kw})


def _kp(nose, leye, reye):
    kp = np.zeros((17, 3), np.float32)
    for j, (x, y) in zip((0, 1, 2), (nose, leye, reye)):
        kp[j] = (x, y, 0.9)
    return kp


def test_chroma_is_zero_for_grayscale_and_high_for_colour():
    from pipeline.faces import chroma

    grey = np.repeat(_rgb("images/basketball1.png")[:, :, :1], 3, axis=2)
    assert chroma(grey) == 0.0
    assert chroma(_rgb("images/astronaut.png")) > 20


def test_head_pose_from_keypoints():
    from pipeline.faces import head_pose

    # MoveNet's left eye is the person's left: on the image's right for a frontal face
    yaw, roll = head_pose(_kp((50, 60), (60, 50), (40, 50)))
    assert yaw == 0 and roll == 0
    yaw, _ = head_pose(_kp((58, 60), (60, 50), (40, 50)))  # nose near one eye: turned
    assert yaw == pytest.approx(0.4)
    _, roll = head_pose(_kp((50, 60), (60, 60), (40, 50)))  # eye line at 26.6 degrees
    assert roll == pytest.approx(26.57, abs=0.01)
    one_eye = _kp((50, 60), (60, 50), (40, 50))
    one_eye[2, 2] = 0.0
    assert head_pose(one_eye)[0] == float("inf")


def test_each_gate_withholds_gender():
    from pipeline import thresholds as T
    from pipeline.faces import AGE_SPOILERS, FaceReading, abstentions, to_attributes
    from pipeline.records import Gender

    good = FaceReading(_view(), p_male=0.9, p_male_flip=0.8, age=30.0, age_flip=34.0)
    a = to_attributes(good)
    assert abstentions(good) == () and a.gender is Gender.MALE
    assert a.gender_score == pytest.approx(0.85) and a.age == 32.0
    cases = {
        Abstain.GRAYSCALE: FaceReading(_view(frame_chroma=0.0), 0.01, 0.02, 24.0, 24.0),
        Abstain.PROFILE: FaceReading(_view(yaw=T.FACE_MAX_YAW + 0.1), 0.05, 0.1, 30.0, 30.0),
        Abstain.TILTED: FaceReading(_view(roll_deg=T.FACE_MAX_ROLL_DEG + 5), 0.9, 0.9, 30.0, 30.0),
        Abstain.FLIP_DISAGREES: FaceReading(_view(), 0.93, 0.36, 30.0, 30.0),
        Abstain.LOW_MARGIN: FaceReading(_view(), 0.6, 0.62, 30.0, 30.0),
        Abstain.SMALL: FaceReading(_view(side_px=T.FACE_MIN_SIDE_PX - 1)),
        Abstain.BLURRED: FaceReading(_view(sharpness=T.FACE_MIN_SHARPNESS - 1)),
    }
    for reason, r in cases.items():
        assert reason in abstentions(r), reason
        a = to_attributes(r)
        assert a.gender is Gender.UNKNOWN and a.gender_score is None, reason
        assert (a.age is None) == (reason in AGE_SPOILERS or r.age is None), reason
    assert to_attributes(None).gender is Gender.UNKNOWN
