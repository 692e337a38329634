"""The dense passes' second person detector (YOLOv5s boxes + MoveNet Thunder keypoints) on real
frames of the shared test data, and its settings and errors."""
from __future__ import annotations

import numpy as np
import pytest

import conftest
from pipeline.backends.movenet import iou_matrix, load_movenet
from pipeline.backends.proposals import (
    THUNDER_FILE, YOLO_FILE, ThunderPose, YoloV5Persons, load_yolov5_proposals,
)
from pipeline.backends.registry import load_dense_detector
from pipeline.errors import BackendUnavailable
from pipeline.records import KP
from pipeline.sampling import VideoFrames
from settings import DEFAULT_MODELS_DIR, Settings


@pytest.fixture(scope="module")
def proposals():
    return load_yolov5_proposals(Settings())


def _first_frame(rel):
    return next(iter(VideoFrames(conftest.testdata_path(rel), 1)))


def test_yolo_finds_the_pedestrians_and_nobody_in_an_empty_scene(proposals):
    frame = _first_frame("clips/pedestrians/vtest_first20s.mp4")  # truth: 3-10 people at a time
    boxes, scores = proposals.persons.boxes(frame.image)
    assert 3 <= len(boxes) <= 12, scores
    h, w = frame.image.shape[:2]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 3] - boxes[:, 1] > boxes[:, 2] - boxes[:, 0]).mean() > 0.8  # upright people
    assert ((scores >= 0.3) & (scores <= 1)).all()
    # people-detection.mp4: an empty room ("no person" in the ground truth); in its first 0.7 s a
    # woman leaves through the door at the left edge (too briefly for the engine to keep a track).
    # From 1 s on nobody is there, and YOLOv5s must find nobody.
    frames = list(VideoFrames(conftest.testdata_path("clips/intel/people-detection.mp4"), 2))
    assert len(proposals.persons.boxes(frames[0].image)[0]) >= 1  # the woman at the door
    empty = [f for f in frames if f.t_s >= 1.0]
    assert len(empty) >= 5
    assert all(len(proposals.persons.boxes(f.image)[0]) == 0 for f in empty)


def test_thunder_puts_the_keypoints_on_the_person(proposals):
    import cv2

    image = np.ascontiguousarray(
        cv2.imread(str(conftest.testdata_path("images/astronaut.png")))[:, :, ::-1])
    boxes, _ = proposals.persons.boxes(image)
    assert len(boxes) >= 1
    box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
    kp = proposals.pose.keypoints(image, box)
    assert kp.shape == (17, 3)
    head = kp[[KP["nose"], KP["left_eye"], KP["right_eye"]]]
    assert (head[:, 2] > 0.5).all()
    x1, y1, x2, y2 = box
    assert ((head[:, 0] > x1) & (head[:, 0] < x2)).all()
    assert (head[:, 1] < y1 + 0.5 * (y2 - y1)).all()  # the face is in the box's upper half
    assert kp[KP["left_shoulder"], 1] > head[:, 1].max()  # shoulders below the eyes


def test_supplement_adds_the_fighters_movenet_misses_without_doubling_anyone():
    settings = Settings()
    movenet = load_movenet(settings)
    dense = load_dense_detector(movenet, settings)
    assert dense.name == "movenet+yolov5"
    added = 0
    for f in list(VideoFrames(conftest.testdata_path("clips/fight/fi020.mp4"), 10)):
        base = movenet.detect([f])[0]
        both = dense.detect([f])[0]
        assert len(both) >= len(base)
        np.testing.assert_array_equal(both.xyxy[:len(base)], base.xyxy)  # MoveNet's kept as is
        new = both.xyxy[len(base):]
        if len(new) and len(base):
            iou, _ = iou_matrix(new, base.xyxy)
            assert iou.max() < 0.3
        added += len(new)
    # fi020 (dark, crowded shop): MoveNet sees at most one of the brawling men per frame
    assert added >= 3, added


def test_proposals_setting_and_errors(tmp_path):
    movenet = load_movenet(Settings())
    assert load_dense_detector(movenet, Settings(proposals="none")) is None
    assert load_dense_detector(movenet, Settings(detector="yolo")) is None  # finds people itself
    with pytest.raises(BackendUnavailable, match="VA_PROPOSALS"):
        load_dense_detector(movenet, Settings(proposals="detr"))
    with pytest.raises(BackendUnavailable, match=f"{YOLO_FILE}.*missing.*VA_PROPOSALS=none"):
        YoloV5Persons(tmp_path / YOLO_FILE)
    bad = tmp_path / THUNDER_FILE
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendUnavailable, match="unreadable.*VA_PROPOSALS=none"):
        ThunderPose(bad)
    assert (DEFAULT_MODELS_DIR / YOLO_FILE).is_file() and (DEFAULT_MODELS_DIR / THUNDER_FILE).is_file()
