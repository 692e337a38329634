"""pipeline/objects.py and backends/objects.py: person-object relations from boxes, the object
pass (every k-th sample, tracked, stored as object events, relations over several samples), and
the real YOLOv5s network shared with the dense pass's proposals."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_event, make_observation
from conftest import testdata_path as data_path
from pipeline import objects as O
from pipeline.records import (
    OBJECT_ID_BASE, EventType, Frame, ObjectClass, ObjectDetections, ObjectRelation, Relation,
)

PERSON = (100.0, 100.0, 160.0, 280.0)  # 60 x 180 px


def person(t: float = 0.0, box=PERSON, oid: int = 1):
    return make_observation(int(t * 10), t_s=t, obj_id=oid, xyxy=box,
                            keypoints=tuple((0.0, 0.0, 0.0) for _ in range(17)))


def test_relation_geometry():
    rel = O.relation_of
    assert rel(person(), ObjectClass.BACKPACK, np.array([110, 140, 150, 200], np.float32)) \
        is Relation.CARRYING
    assert rel(person(), ObjectClass.HANDBAG, np.array([150, 180, 180, 220], np.float32)) \
        is Relation.CARRYING  # at the hand, sticking out of the box
    assert rel(person(), ObjectClass.HANDBAG, np.array([300, 180, 330, 220], np.float32)) is None
    assert rel(person(), ObjectClass.BICYCLE, np.array([80, 200, 190, 290], np.float32)) \
        is Relation.RIDING
    assert rel(person(), ObjectClass.BICYCLE, np.array([200, 200, 310, 290], np.float32)) is None
    assert rel(person(), ObjectClass.BENCH, np.array([60, 180, 220, 260], np.float32)) \
        is Relation.SITTING_ON
    assert rel(person(), ObjectClass.CHAIR, np.array([60, 20, 220, 80], np.float32)) is None
    assert rel(person(), ObjectClass.CAR, np.array([80, 200, 190, 290], np.float32)) is None


class FakeDetector:
    """Scripted detections per sample index (the pass's own input; the model is tested below)."""

    name = "fake"

    def __init__(self, script):
        self.script, self.calls = script, 0

    def detect(self, frame):
        self.calls += 1
        boxes = self.script.get(frame.sample_index, [])
        if not boxes:
            return ObjectDetections.empty()
        return ObjectDetections(np.array([b for _, b in boxes], np.float32),
                                np.full(len(boxes), 0.8, np.float32), tuple(c for c, _ in boxes))


def frame(i: int, fps: float) -> Frame:
    return Frame(frame_number=i * 10, t_s=i / fps, image=np.zeros((400, 600, 3), np.uint8),
                 sample_index=i)


def run_pass(script, people_at, n=9, fps=1.5):
    det = FakeDetector(script)
    p = O.ObjectPass(det, fps)
    for i in range(n):
        f = frame(i, fps)
        if p.due(f):
            p.add(f, p.detect(f), people_at(i, f.t_s))
    return p, det


def test_pass_samples_objects_at_its_rate_and_stores_each_track_once():
    assert O.object_every(1.5) == 3 and O.object_every(0.5) == 1 and O.object_every(7.5) == 15
    car = (ObjectClass.CAR, (400, 50, 500, 120))
    p, det = run_pass({i: [car] for i in range(9)}, lambda i, t: [])
    assert det.calls == 3  # samples 0, 3, 6
    events = p.events()
    assert len(events) == 1
    e = events[0]
    assert e.event_type is EventType.OBJECT and e.object_class is ObjectClass.CAR
    assert e.obj_id >= OBJECT_ID_BASE and (e.start_t_s, e.end_t_s) == (0.0, 4.0)
    # two classes' trackers each count from 1: their tracks still get ids of their own
    van = (ObjectClass.TRUCK, (300, 50, 380, 120))
    both = run_pass({i: [car, van] for i in range(9)}, lambda i, t: [])[0].events()
    assert sorted(e.object_class.value for e in both) == ["car", "truck"]
    assert len({e.obj_id for e in both}) == 2


def test_carrying_needs_several_samples_and_the_bag_moving_along():
    def walker(i, t):
        dx = 30.0 * i
        return [person(t, (100 + dx, 100, 160 + dx, 280))]

    moving = {i: [(ObjectClass.BACKPACK, (110 + 30 * i, 140, 150 + 30 * i, 200))] for i in range(9)}
    p, _ = run_pass(moving, walker)
    assert p.relations() == {1: (ObjectRelation(Relation.CARRYING, ObjectClass.BACKPACK),)}
    out = p.apply([make_event(0.0, obj_id=1), make_event(0.0, obj_id=2)])
    assert out[0].relations and not out[1].relations
    once = {0: moving[0]}  # seen with the person on one sample only
    assert run_pass(once, walker)[0].relations() == {}


def test_riding_and_sitting_on():
    def rider(i, t):
        dx = 40.0 * i
        return [person(t, (100 + dx, 100, 160 + dx, 280))]

    bike = {i: [(ObjectClass.BICYCLE, (80 + 40 * i, 200, 190 + 40 * i, 290))] for i in range(9)}
    assert run_pass(bike, rider)[0].relations() == {
        1: (ObjectRelation(Relation.RIDING, ObjectClass.BICYCLE),)}
    bench = {i: [(ObjectClass.BENCH, (60, 180, 220, 260))] for i in range(9)}
    assert run_pass(bench, lambda i, t: [person(t)])[0].relations() == {
        1: (ObjectRelation(Relation.SITTING_ON, ObjectClass.BENCH),)}


# --- the real network ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def objects_backend():
    from pipeline.backends.objects import load_yolov5_objects
    from settings import Settings

    return load_yolov5_objects(Settings())


def _frame_of(rel: str, t_s: float) -> Frame:
    from pipeline.sampling import probe_video, read_frames

    path = data_path(rel)
    info = probe_video(path)
    n = int(round(t_s * info.fps))
    return read_frames(path, n, n, 1, info)[0]


def test_real_model_finds_the_parked_vehicles_and_the_classroom_chairs(objects_backend):
    f = _frame_of("clips/pedestrians/vtest_first20s.mp4", 4.0)
    found = objects_backend.detect(f)
    vehicles = [b for c, b in zip(found.object_class, found.xyxy)
                if c in (ObjectClass.CAR, ObjectClass.TRUCK)]
    # the white van and the car parked at the top right (looked at in the frame)
    assert vehicles and all(b[0] > 0.8 * f.width and b[3] < 0.2 * f.height for b in vehicles)
    assert ObjectClass.BICYCLE not in found.object_class
    chairs = objects_backend.detect(_frame_of("clips/intel/classroom.mp4", 1.0))
    assert chairs.object_class.count(ObjectClass.CHAIR) >= 3
    assert min(chairs.confidence) >= 0.25


def test_one_network_for_objects_and_proposals(objects_backend):
    from pipeline.backends.proposals import load_yolov5_proposals
    from settings import Settings

    proposals = load_yolov5_proposals(Settings())
    assert proposals.persons.network is objects_backend.network
    f = _frame_of("clips/intel/classroom.mp4", 1.0)
    before = objects_backend.network.session
    proposals.persons.boxes(f.image)
    out1, _ = objects_backend.network.raw(f.image)
    out2, _ = objects_backend.network.raw(f.image)  # the same frame: not run again
    assert out1 is out2 and objects_backend.network.session is before


def test_fitted_input_decodes_the_heads_as_the_exported_model_does(objects_backend):
    """The graph cut before its head, decoded here (grid, YOLO_ANCHORS, row order), gives the
    exported model's own rows where both read the same 640x640 input."""
    net = objects_backend.network
    image = np.random.default_rng(0).integers(0, 256, (480, 480, 3), np.uint8)
    fitted, s1 = net.raw_fitted(image)  # a square frame: the fitted canvas is 640x640 too
    full, s2 = net.raw(image.copy())  # another array: run, not reused
    assert s1 == s2 and fitted.shape == full.shape == (25200, 85)
    np.testing.assert_allclose(fitted, full, atol=1e-5)
    some, _ = net.raw_fitted(image.copy(), min_objectness=0.01)
    np.testing.assert_allclose(some, full[full[:, 4] >= 0.01], atol=1e-5)
    # the canvas: the long side 640, the other rounded up to the stride (32)
    assert net._letterbox(np.zeros((576, 768, 3), np.uint8), True)[0].shape == (1, 480, 640, 3)
    assert net._letterbox(np.zeros((1920, 1080, 3), np.uint8), True)[0].shape == (1, 640, 384, 3)
    assert net._letterbox(np.zeros((576, 768, 3), np.uint8), False)[0].shape == (1, 640, 640, 3)


def test_objects_read_a_frame_at_its_own_shape_and_free_it_when_the_pass_ends(objects_backend):
    net = objects_backend.network
    f = _frame_of("clips/pedestrians/vtest_first20s.mp4", 4.0)  # 768x576: read at 640x480
    objects_backend.release()
    fitted = objects_backend.detect(f)
    assert net._fitted is not None
    objects_backend.release()
    assert net._fitted is None
    net.raw(f.image)  # the dense pass's square read of this frame
    square = objects_backend.detect(f)  # reuses it: nothing more is run or opened
    assert net._fitted is None
    # the same objects either way (the parked car and van), boxes within a few pixels
    assert sorted(c.value for c in fitted.object_class) == sorted(c.value for c in square.object_class)
    from pipeline.backends.movenet import iou_matrix

    iou, _ = iou_matrix(fitted.xyxy, square.xyxy)
    assert len(fitted) >= 2 and (iou.max(axis=1) > 0.9).all()


def test_the_pass_lets_its_detector_free_what_it_held():
    class Releasing(FakeDetector):
        released = 0

        def release(self):
            self.released += 1

    det = Releasing({})
    p = O.ObjectPass(det, 1.5)
    p.finish()
    assert det.released == 1
    O.ObjectPass(FakeDetector({}), 1.5).finish()  # a detector without release: nothing to do


def test_a_person_misread_as_an_animal_is_dropped_and_walkers_sit_on_nothing():
    from pipeline.records import Action

    lying = (100.0, 200.0, 300.0, 260.0)
    p, _ = run_pass({i: [(ObjectClass.DOG, (105, 195, 295, 262)),
                         (ObjectClass.DOG, (400, 200, 460, 250))] for i in range(9)},
                    lambda i, t: [person(t, lying)])
    dogs = p.events()
    assert len(dogs) == 1 and dogs[0].xyxy[0] == 400.0  # the real dog only
    bench = {i: [(ObjectClass.BENCH, (60, 180, 220, 260))] for i in range(9)}
    walking = lambda i, t: [make_observation(int(t * 10), t_s=t, obj_id=1, xyxy=PERSON,
                                             action=Action.WALKING,
                                             keypoints=tuple((0.0, 0.0, 0.0)
                                                             for _ in range(17)))]
    assert run_pass(bench, walking)[0].relations() == {}
