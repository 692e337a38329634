"""MEBOW backend: the HRNet + orientation-head code built from a (tiny) authors'-style experiment
yaml, random weights saved as a plain state dict like ``model_hboe.pth``, loaded through the
registry, run on a real vtest frame on the CPU."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import testdata_path as data_path
from pipeline.backends.registry import load_backend
from pipeline.errors import BackendUnavailable
from pipeline.records import Frame, Orientation, PersonDetections
from settings import Settings

torch = pytest.importorskip("torch")


def _yaml(channels=(8, 16, 32, 64), blocks=1, modules=(1, 1, 1)) -> str:
    """An experiment yaml laid out like the authors' segm-4_lr1e-3.yaml (MODEL part)."""
    def stage(n, m):  # STAGEn has n branches
        return (f"    STAGE{n}:\n      NUM_MODULES: {m}\n      NUM_BRANCHES: {n}\n"
                f"      BLOCK: BASIC\n      NUM_BLOCKS: {[blocks] * n}\n"
                f"      NUM_CHANNELS: {list(channels[:n])}\n      FUSE_METHOD: SUM\n")
    return ("MODEL:\n  NAME: pose_hrnet\n  NUM_JOINTS: 17\n  USE_FEATUREMAP: true\n"
            "  IMAGE_SIZE:\n  - 192\n  - 256\n  EXTRA:\n    FINAL_CONV_KERNEL: 1\n"
            + "".join(stage(n, m) for n, m in zip((2, 3, 4), modules)))


def _frame_and_people():
    import av

    with av.open(str(data_path("clips/pedestrians/vtest_first20s.mp4"))) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")
    # three walkers of vtest's first frame (approximate boxes) and one box half off the image
    xyxy = np.array([[330, 170, 390, 330], [480, 210, 540, 380], [60, 300, 130, 480],
                     [740, 100, 800, 260]], np.float32)
    persons = PersonDetections(xyxy=xyxy, confidence=np.ones(4, np.float32),
                               keypoints=np.zeros((4, 17, 3), np.float32))
    return Frame(0, 0.0, img), persons


def _save(tmp, *, hoe_bias=None):
    from pipeline.backends.hrnet import HRNetConfig, PoseHighResolutionNet
    import yaml

    cfg_path = tmp / "segm-tiny.yaml"
    cfg_path.write_text(_yaml())
    torch.manual_seed(0)
    model = PoseHighResolutionNet(HRNetConfig.from_yaml_dict(yaml.safe_load(cfg_path.read_text())))
    if hoe_bias is not None:
        torch.nn.init.zeros_(model.hoe_fc.weight)
        model.hoe_fc.bias.data[:] = torch.as_tensor(hoe_bias, dtype=torch.float32)
    w_path = tmp / "model_hboe.pth"
    torch.save(model.state_dict(), w_path)  # the authors publish a plain state dict
    return cfg_path, w_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(2)
    return _save(tmp_path_factory.mktemp("mebow"))


def test_orientation_per_person_in_one_batch(tiny):
    cfg, w = tiny
    est = load_backend("orientation", "mebow", Settings(mebow_cfg=cfg, mebow_weights=w))
    assert est.name == "mebow" and (est.width, est.height) == (192, 256)
    frame, persons = _frame_and_people()
    shapes = []
    hook = est.model.register_forward_hook(lambda m, i, o: shapes.append(tuple(i[0].shape)))
    out = est.estimate(frame, persons)
    hook.remove()
    assert shapes == [(4, 3, 256, 192)]
    assert len(out) == 4 and all(isinstance(o, Orientation) for o in out)
    for o in out:
        assert 0.0 <= o.degrees < 360.0
        assert 0.0 < o.confidence <= 1.0
        assert o.label in (0, 90, 180, 270)
    probs = est.probabilities(frame, persons)
    assert probs.shape == (4, 72)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(probs[0], probs[1])  # each person's own crop reaches the network
    assert est.estimate(frame, PersonDetections.empty()) == []


@pytest.mark.parametrize("bin_, label", [(0, 0), (18, 90), (36, 180), (54, 270), (71, 0)])
def test_bins_map_to_the_engine_convention(tmp_path, bin_, label):
    torch.set_num_threads(2)
    bias = np.zeros(72, np.float32)
    bias[bin_] = 12.0  # the head answers bin_ whatever the image
    cfg, w = _save(tmp_path, hoe_bias=bias)
    est = load_backend("orientation", "mebow", Settings(mebow_cfg=cfg, mebow_weights=w))
    frame, persons = _frame_and_people()
    o = est.estimate(frame, persons[[0]])[0]
    assert o.degrees == pytest.approx(bin_ * 5.0, abs=0.5) or (bin_ == 0 and o.degrees > 359.5)
    assert o.label == label and o.confidence > 0.95


def test_decode_wraps_around_zero():
    from pipeline.backends.mebow import decode_bins

    p = np.zeros((1, 72))
    p[0, [71, 0, 1]] = [0.3, 0.4, 0.3]
    deg, conf = decode_bins(p)
    assert min(deg[0], 360 - deg[0]) < 1.0 and conf[0] == pytest.approx(1.0)


def test_authors_w32_config_builds_the_real_network(tmp_path):
    """The W32 layout of experiments/coco/segm-4_lr1e-3.yaml: 96-channel head input, 72 bins."""
    from pipeline.backends.hrnet import HRNetConfig, PoseHighResolutionNet
    import yaml

    cfg = HRNetConfig.from_yaml_dict(yaml.safe_load(
        _yaml(channels=(32, 64, 128, 256), blocks=4, modules=(1, 4, 3))))
    model = PoseHighResolutionNet(cfg)
    assert model.hoe_layer2[0].conv1.in_channels == 96 and model.hoe_fc.out_features == 72
    n = sum(p.numel() for p in model.parameters())
    assert 35e6 < n < 45e6, n  # HRNet-W32 (28.5 M) + the orientation ResNet head


def test_errors_are_one_line(tmp_path, tiny):
    cfg, w = tiny
    with pytest.raises(BackendUnavailable, match="--mebow-cfg") as e:
        load_backend("orientation", "mebow", Settings(mebow_weights=w))
    assert "\n" not in str(e.value)
    with pytest.raises(BackendUnavailable, match="--mebow-weights"):
        load_backend("orientation", "mebow", Settings(mebow_cfg=cfg))
    bad_cfg = tmp_path / "other.yaml"
    bad_cfg.write_text("DATASET:\n  ROOT: x\n")
    with pytest.raises(BackendUnavailable, match="not a MEBOW/HRNet config"):
        load_backend("orientation", "mebow", Settings(mebow_cfg=bad_cfg, mebow_weights=w))
    wrong_w = tmp_path / "resnet.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong_w)
    with pytest.raises(BackendUnavailable, match="no MEBOW orientation head"):
        load_backend("orientation", "mebow", Settings(mebow_cfg=cfg, mebow_weights=wrong_w))
    w32 = tmp_path / "w32.yaml"
    w32.write_text(_yaml(channels=(32, 64, 128, 256)))
    with pytest.raises(BackendUnavailable, match="does not fit the network") as e:
        load_backend("orientation", "mebow", Settings(mebow_cfg=w32, mebow_weights=w))
    assert "\n" not in str(e.value)
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="no CUDA GPU"):
            load_backend("orientation", "mebow", Settings(mebow_cfg=cfg, mebow_weights=w, device="cuda"))
