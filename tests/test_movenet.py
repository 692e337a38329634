"""MoveNet MultiPose backend on real photos and frames; missing/unreadable weights."""
from __future__ import annotations


import numpy as np
import pytest

from conftest import testdata_path as data_path
from pipeline.backends.movenet import MODEL_FILE, input_size, load_movenet
from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable
from pipeline.records import KP
from pipeline.sampling import iter_frames, read_frames
from settings import Settings


@pytest.fixture(scope="module")
def detector():
    return load_movenet(Settings(cpu_threads=2))


def test_input_size_keeps_aspect_and_multiples_of_32():
    assert input_size(768, 576, 384) == (384, 288, 0.5)
    w, h, s = input_size(406, 720, 384)
    assert (w % 32, h % 32) == (0, 0) and h == 384 and w >= 406 * s


def test_one_person_in_a_portrait(detector):
    frame = next(iter_frames(data_path("images/messi5.jpg")))
    people = detector.detect([frame])[0]
    assert len(people) >= 1
    best = int(np.argmax(people.confidence))
    kp = people.keypoints[best]
    x0, y0, x1, y1 = people.xyxy[best]
    # the nose is inside the box, above the hips when those are seen
    assert x0 <= kp[KP["nose"], 0] <= x1 and y0 <= kp[KP["nose"], 1] <= y1
    assert kp[KP["nose"], 2] > 0.3


def test_crowded_frame_uses_tiles_and_finds_more_than_the_cap(detector):
    frame = read_frames(data_path("clips/pedestrians/vtest_first20s.mp4"), 160, 160, 1)[0]
    calls = detector.calls
    people = detector.detect([frame])[0]
    assert detector.calls - calls > 1  # small people -> tiles
    strong = people.confidence >= 0.2  # TRACK_ACTIVATION_SCORE
    assert strong.sum() >= 5, people.confidence
    # no duplicates: boxes of confident people overlap little
    b = people.xyxy[strong]
    for i in range(len(b)):
        for j in range(i + 1, len(b)):
            ix = max(0, min(b[i, 2], b[j, 2]) - max(b[i, 0], b[j, 0]))
            iy = max(0, min(b[i, 3], b[j, 3]) - max(b[i, 1], b[j, 1]))
            small = min((b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1]), (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1]))
            assert ix * iy / small < 0.8


def test_empty_room_has_no_confident_person(detector):
    clip = data_path("clips/intel/people-detection.mp4")
    frame = read_frames(clip, 20, 20, 1)[0]  # after the last passer-by has left
    people = detector.detect([frame])[0]
    assert (people.confidence >= 0.25).sum() == 0


def test_missing_weights_name_the_path_and_the_fix(tmp_path):
    with pytest.raises(BackendUnavailable) as ei:
        load_movenet(Settings(models_dir=tmp_path))
    msg = str(ei.value)
    assert str(tmp_path / MODEL_FILE) in msg and "VA_MODELS_DIR" in msg and "\n" not in msg


def test_unreadable_weights(tmp_path):
    (tmp_path / MODEL_FILE).write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BackendUnavailable) as ei:
        load_backend("detector", "movenet", Settings(models_dir=tmp_path))
    msg = str(ei.value)
    assert "unreadable" in msg and "\n" not in msg and "restore" in msg


def test_unknown_backend_name():
    with pytest.raises(BackendUnavailable) as ei:
        load_backend("detector", "nope", Settings())
    assert "movenet" in str(ei.value) and "VA_DETECTOR" in str(ei.value)


def test_consecutive_samples_of_small_people_run_fewer_tiles(detector):
    """Between full passes only the tiles holding the previous sample's people run; a frame out
    of sequence (sample_index 0, a dense pass) gets the full pass and every tile again."""
    import dataclasses

    from pipeline import thresholds as T

    clip = data_path("clips/pedestrians/vtest_first20s.mp4")
    frames = [dataclasses.replace(f, sample_index=i) for i, f in
              enumerate(read_frames(clip, 0, 14, 7))]  # samples 0, 1, 2 at 1.43 fps
    assert T.DET_FULL_PASS_EVERY >= 3
    calls, found = [], []
    for f in frames:
        c = detector.calls
        found.append(detector.detect([f])[0])
        calls.append(detector.calls - c)
    assert calls[0] == 5  # full pass + 2x2 tiles
    assert 1 <= calls[1] <= 4 and 1 <= calls[2] <= 4, calls
    strong = [int((p.confidence >= 0.2).sum()) for p in found]
    assert min(strong[1:]) >= strong[0] - 1, strong  # the same people are kept
    c = detector.calls
    detector.detect([dataclasses.replace(frames[2], sample_index=0)])
    assert detector.calls - c == 5
