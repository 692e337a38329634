"""Tracking at sampled frame rates: stable ids for still people, one id through a fall."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tracked_frames
from pipeline.backends.movenet import load_movenet
from pipeline.records import PersonDetections
from pipeline.tracking import PersonTracker
from settings import Settings


@pytest.fixture(scope="module")
def detector():
    return load_movenet(Settings())


def _track(clip, detector, skip):
    return [(f.t_s, p) for f, p in tracked_frames(clip, detector, skip)]


def test_classroom_keeps_four_ids(detector):
    seq = _track("clips/intel/classroom.mp4", detector, 10)
    ids = [set(int(i) for i in p.tracker_id if i >= 0) for _, p in seq]
    assert all(len(s) == 4 for s in ids), ids
    assert len(set().union(*ids)) == 4  # nobody re-numbered


def test_a_falling_person_keeps_the_id(detector):
    # Fall02 at the default skip (20 at 29 fps: 0.69 s apart): the faller goes from a tall box
    # to a wide one on the floor between two samples.
    seq = _track("clips/falls/Fall02.mp4", detector, 20)
    faller = []
    for t, p in seq:
        # the faller is the left person (the sitting one is at the right edge)
        left = [int(i) for i, b in zip(p.tracker_id, p.xyxy) if i >= 0 and (b[0] + b[2]) / 2 < 250]
        faller += left
    assert len(faller) >= len(seq) - 2
    assert len(set(faller)) == 1, faller


def test_first_detection_gets_an_id_and_input_order_is_kept():
    tr = PersonTracker(1.5)
    boxes = np.array([[10, 10, 50, 110], [200, 20, 240, 120]], np.float32)
    p = PersonDetections(boxes, np.array([0.6, 0.5], np.float32), np.zeros((2, 17, 3), np.float32))
    a = tr.update(p, 0.0)
    assert list(a.tracker_id) == [a.tracker_id[0], a.tracker_id[1]] and min(a.tracker_id) >= 0
    # next sample: same people moved a little, given in the other order
    p2 = PersonDetections(boxes[::-1] + 8, np.array([0.5, 0.6], np.float32), np.zeros((2, 17, 3), np.float32))
    b = tr.update(p2, 0.67)
    assert list(b.tracker_id) == list(a.tracker_id[::-1])


def test_low_score_detection_never_starts_a_track():
    tr = PersonTracker(1.5)
    p = PersonDetections(np.array([[10, 10, 50, 110]], np.float32), np.array([0.15], np.float32),
                         np.zeros((1, 17, 3), np.float32))
    assert list(tr.update(p, 0.0).tracker_id) == [-1]
