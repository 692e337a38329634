"""YOLO backend: a random-initialised YOLOv8n of the real architecture, saved the way ultralytics
saves checkpoints (``Model.save``), loaded through the registry, run on a real vtest frame."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import testdata_path as data_path
from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable
from pipeline.records import Frame, PersonDetections
from settings import Settings

torch = pytest.importorskip("torch")
pytest.importorskip("ultralytics")


def _frame(index: int = 0) -> Frame:
    import av

    path = data_path("clips/pedestrians/vtest_first20s.mp4")
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == index:
                return Frame(frame_number=i, t_s=i / 10.0, image=f.to_ndarray(format="rgb24"))
    raise AssertionError("clip too short")


def _save_tiny(path, names: dict[int, str], yaml: str = "yolov8n.yaml") -> None:
    """A YOLOv8n with random weights whose class logits vary, saved like ultralytics does."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel, PoseModel

    torch.manual_seed(0)
    cls = PoseModel if "pose" in yaml else DetectionModel
    model = cls(yaml, nc=len(names), verbose=False)
    model.names = dict(names)
    # Make the random head fire: 'person' on the coarse stride-32 grid (big boxes), 'face' on the
    # fine stride-8 grid (small boxes), nothing elsewhere; scores vary a little per anchor.
    person = [k for k, v in names.items() if v == "person"]
    face = [k for k, v in names.items() if v == "face"]
    levels = model.model[-1].cv3
    for seq in levels:
        torch.nn.init.normal_(seq[-1].weight, std=0.01)
        seq[-1].bias.data[:] = -10.0
    for k in person:
        levels[-1][-1].bias.data[k] = 3.0
    for k in face:
        levels[0][-1].bias.data[k] = 2.0
    wrapper = YOLO(yaml)
    wrapper.model = model
    # The trainer stores its arguments beside the model; the task travels there.
    wrapper.ckpt = {"train_args": {"task": "pose" if "pose" in yaml else "detect", "imgsz": 640}}
    wrapper.save(str(path))


@pytest.fixture(scope="module")
def tiny_face_person(tmp_path_factory):
    torch.set_num_threads(2)
    p = tmp_path_factory.mktemp("yolo") / "yolov8n-face-person.pt"
    # 'face' first: the mapping must go by name, not by index.
    _save_tiny(p, {0: "face", 1: "person"})
    return p


def test_detects_people_and_faces_mapped_by_name(tiny_face_person):
    det = load_backend("detector", "yolo", Settings(detector_weights=tiny_face_person))
    assert det.name == "yolo"
    assert det.classes.person_ids == (1,) and det.classes.face_ids == (0,)
    frames = [_frame(0), _frame(5)]
    out = det.detect(frames)
    assert len(out) == 2 and all(isinstance(d, PersonDetections) for d in out)

    # Same frame through ultralytics directly: our persons are exactly its class-1 boxes.
    raw = det.model.predict(np.ascontiguousarray(frames[0].image[..., ::-1]), conf=det.conf,
                            iou=0.7, classes=[1, 0], verbose=False)[0]
    raw_cls = raw.boxes.cls.cpu().numpy().astype(int)
    assert (raw_cls == 1).any() and (raw_cls == 0).any(), "tiny model should fire on both classes"
    d = out[0]
    raw_person = raw.boxes.xyxy.cpu().numpy()[raw_cls == 1]
    assert len(d) == len(raw_person) > 0
    np.testing.assert_allclose(np.sort(d.xyxy, axis=0), np.sort(raw_person, axis=0), atol=1e-3)

    h, w = frames[0].height, frames[0].width
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (len(d), 4)
    assert (d.xyxy[:, 0] >= -1).all() and (d.xyxy[:, 2] <= w + 1).all()
    assert (d.xyxy[:, 1] >= -1).all() and (d.xyxy[:, 3] <= h + 1).all()
    assert ((d.confidence >= det.conf) & (d.confidence <= 1)).all()
    # Detect model: no keypoints -> zeros with score 0.
    assert d.keypoints.shape == (len(d), 17, 3) and not d.keypoints.any()
    # Faces: a face box per person or NaN; each matched face lies (centre) inside its person box.
    assert d.face_xyxy is not None and d.face_xyxy.shape == (len(d), 4)
    has = ~np.isnan(d.face_xyxy[:, 0])
    assert has.any()
    cx = (d.face_xyxy[has, 0] + d.face_xyxy[has, 2]) / 2
    cy = (d.face_xyxy[has, 1] + d.face_xyxy[has, 3]) / 2
    pb = d.xyxy[has]
    assert ((cx >= pb[:, 0]) & (cx <= pb[:, 2]) & (cy >= pb[:, 1]) & (cy <= pb[:, 3])).all()
    raw_faces = raw.boxes.xyxy.cpu().numpy()[raw_cls == 0]
    for fb in d.face_xyxy[has]:  # every assigned face is one of the model's face boxes
        assert np.abs(raw_faces - fb).max(axis=1).min() < 1e-3
    # one face per person at most
    assert len({tuple(np.round(f, 2)) for f in d.face_xyxy[has]}) == int(has.sum())


def test_pose_weights_give_keypoints(tmp_path):
    torch.set_num_threads(2)
    p = tmp_path / "yolov8n-pose.pt"
    _save_tiny(p, {0: "person"}, yaml="yolov8n-pose.yaml")
    det = load_backend("detector", "yolo", Settings(detector_weights=p))
    assert det.is_pose and det.classes.face_ids == ()
    d = det.detect([_frame(0)])[0]
    assert len(d) > 0 and d.face_xyxy is None
    assert d.keypoints.shape == (len(d), 17, 3)
    assert d.keypoints[..., 2].max() > 0  # scores present
    assert ((d.keypoints[..., 2] >= 0) & (d.keypoints[..., 2] <= 1)).all()


def test_match_faces_assigns_each_face_once():
    from pipeline.backends.yolo import match_faces

    persons = np.array([[0, 0, 100, 300], [90, 0, 200, 300], [400, 0, 500, 300]], np.float32)
    faces = np.array([[30, 10, 70, 60], [120, 10, 160, 60], [700, 10, 740, 60]], np.float32)
    got = match_faces(persons, faces)
    np.testing.assert_array_equal(got[0], faces[0])
    np.testing.assert_array_equal(got[1], faces[1])
    assert np.isnan(got[2]).all()  # the third face is outside every person


def test_errors_are_one_line(tmp_path):
    with pytest.raises(BackendUnavailable, match="--detector-weights") as e:
        load_backend("detector", "yolo", Settings(detector="yolo"))
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match="do not exist"):
        load_backend("detector", "yolo", Settings(detector_weights=tmp_path / "nope.pt"))
    wrong = tmp_path / "notes.pt"
    wrong.write_text("this is not a checkpoint")
    with pytest.raises(BackendUnavailable, match="not an ultralytics YOLO checkpoint") as e:
        load_backend("detector", "yolo", Settings(detector_weights=wrong))
    assert "\n" not in str(e.value)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(BackendUnavailable, match=r"should end with \.pt"):
        load_backend("detector", "yolo", Settings(detector_weights=onnx))


def test_weights_without_person_class_are_refused(tmp_path):
    torch.set_num_threads(2)
    p = tmp_path / "cars.pt"
    _save_tiny(p, {0: "car", 1: "face"})
    with pytest.raises(BackendUnavailable, match="no 'person' class"):
        load_backend("detector", "yolo", Settings(detector_weights=p))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_refused(tiny_face_person):
    with pytest.raises(BackendUnavailable, match="no CUDA GPU") as e:
        load_backend("detector", "yolo", Settings(detector_weights=tiny_face_person, device="cuda"))
    assert "--device cpu" in str(e.value)
