"""MiVOLO backend: the real MiVOLO network code (VOLO + face/body cross attention) at reduced depth
and width, random weights, saved in the authors' ``.pth.tar`` format, loaded through the registry,
run on real photos from ../shared/testdata on the CPU."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from conftest import testdata_path as data_path
from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable
from pipeline.records import Attributes, Frame, Gender, PersonDetections
from settings import Settings

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

SMALL = dict(layers=(1, 1, 1, 1), embed_dims=(64, 128, 128, 128), num_heads=(2, 4, 4, 4),
             mlp_ratio=3.0, stem_hidden_dim=16)
AGES = dict(min_age=1.0, max_age=95.0, avg_age=48.0)


def _rgb(rel: str) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(data_path(rel))), cv2.COLOR_BGR2RGB)


def _save(path, *, in_chans=6, head_bias=None, **extra):
    from pipeline.backends.mivolo_arch import MiVOLOModel

    torch.manual_seed(0)
    model = MiVOLOModel(img_size=224, in_chans=in_chans, num_classes=3, **SMALL)
    if head_bias is not None:  # a head that answers a known constant
        for lin in (model.head, model.aux_head):
            torch.nn.init.zeros_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        model.head.bias.data[:] = torch.tensor(head_bias)
    # As the authors' timm training script saves it (args Namespace included).
    torch.save({"epoch": 3, "arch": "mivolo_d1_224", "state_dict": model.state_dict(),
                "args": argparse.Namespace(model="mivolo_d1_224", input_size=[6, 224, 224]),
                "no_gender": False, "with_persons_model": in_chans == 6, **AGES, **extra}, path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.set_num_threads(2)
    return _save(tmp_path_factory.mktemp("mivolo") / "model_imdb_cross_person_tiny.pth.tar")


def _astronaut() -> tuple[Frame, PersonDetections]:
    img = _rgb("images/astronaut.png")  # 512x512, one woman; face about (165,40)-(290,200)
    persons = PersonDetections(
        xyxy=np.array([[40, 20, 340, 511], [350, 0, 480, 300], [5, 480, 35, 510]], np.float32),
        confidence=np.array([0.9, 0.6, 0.5], np.float32),
        keypoints=np.zeros((3, 17, 3), np.float32),
        face_xyxy=np.array([[165, 40, 290, 200], [np.nan] * 4, [np.nan] * 4], np.float32),
    )
    return Frame(0, 0.0, img), persons


def test_face_and_body_in_one_batch(ckpt):
    est = load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=ckpt))
    assert est.name == "mivolo" and est.meta.with_persons and est.meta.input_size == 224
    frame, persons = _astronaut()
    calls = []
    hook = est.model.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    out = est.estimate(frame, persons)
    hook.remove()
    assert calls == [(2, 6, 224, 224)]  # one forward for the two usable persons
    assert len(out) == 3 and all(isinstance(a, Attributes) for a in out)
    for a in out[:2]:  # face+body, then body-only
        assert 0.0 <= a.age <= 100.0
        assert a.gender in (Gender.MALE, Gender.FEMALE)
        assert 0.5 <= a.gender_score <= 1.0
    assert out[0].face_size_px == pytest.approx(160.0)
    assert out[1].face_size_px is None
    assert out[2] == Attributes()  # 30 px body, no face: unknown, never a guess
    # Batching does not mix people: alone, person 0 gets the same answer.
    alone = est.estimate(frame, persons[[0]])
    assert alone[0].age == pytest.approx(out[0].age, abs=1e-3)
    assert alone[0].gender_score == pytest.approx(out[0].gender_score, abs=1e-4)
    # Different inputs give different outputs (the crops really reach the network).
    assert out[0].age != pytest.approx(out[1].age, abs=1e-3)


def test_output_mapping_gender_order_and_age_denormalisation(tmp_path):
    torch.set_num_threads(2)
    p = _save(tmp_path / "const.pth.tar", head_bias=[2.0, -1.0, 0.25])
    est = load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=p))
    frame, persons = _astronaut()
    a = est.estimate(frame, persons)[0]
    assert a.gender == Gender.MALE  # logit 0 is male in the authors' head
    assert a.gender_score == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-4)
    assert a.age == pytest.approx(0.25 * (95 - 1) + 48, abs=1e-3)
    p2 = _save(tmp_path / "const_f.pth.tar", head_bias=[-1.0, 1.0, -0.25])
    b = load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=p2)).estimate(frame, persons)[0]
    assert b.gender == Gender.FEMALE and b.age == pytest.approx(-0.25 * 94 + 48, abs=1e-3)


def test_face_only_checkpoint_needs_faces(tmp_path):
    torch.set_num_threads(2)
    p = _save(tmp_path / "model_utk_age_gender_4.23_97.69.pth.tar", in_chans=3)
    est = load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=p))
    assert not est.meta.with_persons
    frame, persons = _astronaut()
    out = est.estimate(frame, persons)
    assert out[0].gender in (Gender.MALE, Gender.FEMALE)
    assert out[1] == Attributes() and out[2] == Attributes()


def test_letterbox_crop_matches_the_authors_resize():
    """The batched roi_align letterbox equals the authors' cv2 ``class_letterbox`` within 3/255."""
    import cv2
    from pipeline.backends.torch_common import crop_boxes, frame_tensor

    img = _rgb("images/messi5.jpg")
    box = np.array([[100, 20, 180, 200]], np.float32)  # tall box -> black bars left and right
    ours = crop_boxes(frame_tensor(img, torch.device("cpu")), torch.from_numpy(box), (224, 224),
                      letterbox=True)[0].permute(1, 2, 0).numpy()
    x1, y1, x2, y2 = box[0].astype(int)
    crop = img[y1:y2, x1:x2]
    r = 224 / max(crop.shape[:2])
    nw, nh = round(crop.shape[1] * r), round(crop.shape[0] * r)
    ref = np.zeros((224, 224, 3), np.uint8)
    left, top = (224 - nw) // 2, (224 - nh) // 2
    ref[top:top + nh, left:left + nw] = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ref = ref.astype(np.float32) / 255
    assert np.abs(ours[:, :50]).max() == 0 and np.abs(ours[:, -50:]).max() == 0  # bars are black
    core = slice(left + 3, left + nw - 3)
    assert np.median(np.abs(ours[:, core] - ref[:, core])) < 3 / 255


def test_body_crop_blacks_out_faces_and_neighbours():
    from pipeline.backends.mivolo import _body_cutout_mask

    persons = torch.tensor([[0, 0, 100, 200], [80, 0, 180, 200]], dtype=torch.float32)
    faces = torch.tensor([[30, 10, 60, 40], [float("nan")] * 4])
    inside, cut = _body_cutout_mask(persons, faces, 56)
    assert inside.shape == cut.shape == (2, 56, 56)
    # person 0: its face (top) and the right neighbour's overlap are cut; its middle is kept
    assert cut[0, 5, 25] and cut[0, 28, 38] and not cut[0, 28, 25]
    # person 1: person 0's box snaps to the crop's left edge (within 30 %) and is cut there
    assert cut[1, 28, 15] and not cut[1, 28, 35]
    assert inside[0, 28, 28] and not inside[0, 28, 2]  # letterbox bars are outside the box


def test_errors_are_one_line(tmp_path, ckpt):
    with pytest.raises(BackendUnavailable, match="--checkpoint") as e:
        load_backend("attributes", "mivolo", Settings())
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match="do not exist"):
        load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=tmp_path / "x.pth.tar"))
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(BackendUnavailable, match="cannot be read as a PyTorch checkpoint") as e:
        load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=junk))
    assert "\n" not in str(e.value)
    other = tmp_path / "hrnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3)}, other)  # e.g. MEBOW weights by mistake
    with pytest.raises(BackendUnavailable, match="not a MiVOLO checkpoint"):
        load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=other))
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
            load_backend("attributes", "mivolo", Settings(mivolo_checkpoint=ckpt, device="cuda"))


def test_with_persons_off_feeds_faces_only(ckpt):
    """Without the seed's --with-persons a face+body checkpoint runs faces only: body-only
    people are unknown and the body channels are zeros."""
    est = load_backend("attributes", "mivolo",
                       Settings(mivolo_checkpoint=ckpt, mivolo_with_persons=False))
    frame, persons = _astronaut()
    seen = []
    hook = est.model.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    out = est.estimate(frame, persons)
    hook.remove()
    assert len(seen) == 1 and seen[0].shape == (1, 6, 224, 224)  # only the person with a face
    body = seen[0][:, 3:]
    assert float((body - body.amin((2, 3), keepdim=True)).abs().max()) == 0.0  # a blank crop
    assert out[0].gender in (Gender.MALE, Gender.FEMALE) and out[1] == Attributes()
