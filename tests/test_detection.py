"""pipeline.detection: the one stream of observations (sampled, dense, refinement passes) and
the Observer that fills it, on a real clip with the product's MoveNet."""
from __future__ import annotations

import pytest

from conftest import make_observation, testdata_path as data_path
from pipeline.detection import Observations, Observer
from pipeline.records import Action, Gender, ObservationPass


def test_people_at_prefers_the_sampled_pass_and_lends_attributes_to_pose_rows():
    sampled = [make_observation(0, 0.0, 1, age=34.0, gender=Gender.FEMALE, action=Action.WALKING),
               make_observation(20, 2.0, 1, age=36.0, gender=Gender.FEMALE, action=Action.RUNNING)]
    dense = [make_observation(f, f / 10, 1, source=ObservationPass.DENSE) for f in (16, 20)]
    refine = [make_observation(4, 0.4, 7, source=ObservationPass.REFINE)]  # a track never sampled
    stream = Observations(sampled + dense + refine)
    assert len(stream) == 5 and stream.sampled == sampled
    assert stream.of(ObservationPass.DENSE) == dense
    assert stream.people_at(20) == [sampled[1]]  # a frame of both passes: the sampled rows
    (o,) = stream.people_at(16)
    assert o.source is ObservationPass.DENSE and o.xyxy == dense[0].xyxy
    assert (o.age, o.gender, o.action) == (36.0, Gender.FEMALE, Action.RUNNING)  # nearest: 2.0 s
    assert stream.people_at(4) == refine  # nothing to lend
    assert stream.people_at(5) == []
    assert stream.nearest_sampled_frame(10) == 0  # a tie goes to the earlier frame
    assert stream.nearest_sampled_frame(11) == 20


class _Counting:
    """The real detector, counting the frames it is given."""

    def __init__(self, detector):
        self.detector, self.frames = detector, 0

    def detect(self, frames):
        self.frames += len(frames)
        return self.detector.detect(frames)


@pytest.fixture(scope="module")
def movenet():
    from pipeline.backends.registry import load_backend
    from settings import Settings

    return load_backend("detector", "movenet", Settings(cpu_threads=2))


def test_observer_keeps_every_pass_in_one_stream(movenet):
    from pipeline.detection import pose_rows
    from pipeline.sampling import VideoFrames, read_frames
    from pipeline.tracking import PersonTracker

    frames = VideoFrames(data_path("clips/intel/classroom.mp4"), 10)
    det = _Counting(movenet)
    observer = Observer(frames.info, lambda s, e, st: read_frames(frames.info.path, s, e, st,
                                                                  frames.info), det)
    tracker = PersonTracker(frames.info.fps / 10)
    for f in frames:
        if f.sample_index > 3:
            break
        observer.stream.add(pose_rows(f, observer.track(f, det, tracker), ObservationPass.SAMPLED))
    sampled = observer.stream.sampled
    assert det.frames == 4 and len({o.obj_id for o in sampled}) >= 3

    # the refinement: lazy (stopping after two frames detects two), named after sampled tracks
    it = observer.between(1, 9, 2)
    got = [next(it), next(it)]
    assert det.frames == 6 and [f.frame_number for f, _ in got] == [1, 3]
    refine = observer.stream.of(ObservationPass.REFINE)
    assert {o.frame_number for o in refine} == {1, 3}
    assert {o.obj_id for o in refine} <= {o.obj_id for o in sampled} and refine

    # the dense windows: detected with the dense detector, named after the sampled tracks
    dense = observer.dense([(0.0, 1.0)], 0.2)
    assert dense and all(o.source is ObservationPass.DENSE for o in dense)
    assert observer.stream.of(ObservationPass.DENSE) == dense
    assert {o.obj_id for o in dense} & {o.obj_id for o in sampled}
    assert observer.stream.people_at(dense[0].frame_number)  # drawable without a detector


def test_dense_done_lets_the_dense_detector_free_its_models():
    from types import SimpleNamespace

    calls = []
    dense = SimpleNamespace(release=lambda: calls.append("dense"))
    main = SimpleNamespace(release=lambda: calls.append("main"))
    info = SimpleNamespace(fps=10.0)
    Observer(info, None, main, dense).dense_done()
    assert calls == ["dense"]  # the main detector (the sampled pass's) keeps its models
    Observer(info, None, main).dense_done()  # no dense detector of its own: nothing freed
    assert calls == ["dense"]
