"""pipeline/backends/onnx_common.py: one way to run the ONNX models on the CPU, OpenVINO (default)
or onnxruntime, float32 or bfloat16; compiled per input shape and cached; offline."""
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.backends.onnx_common import (AUTO_BF16, MODELS, CpuInference, OpenVinoSession,
                                           cpu_bf16, cpu_session)
from pipeline.errors import BackendUnavailable
from settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[1]
THUNDER = REPO / "models" / "movenet-thunder.onnx"
MULTIPOSE = REPO / "models" / "movenet-multipose.onnx"


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (1, h, w, 3)).astype(np.int32)


def test_cpu_bf16_reads_the_flags():
    assert cpu_bf16("processor : 0\nflags : fpu sse2 avx512f avx512_bf16\n")
    assert cpu_bf16("flags\t\t: fpu amx_tile amx_bf16 avx2\n")
    assert not cpu_bf16("flags : fpu sse2 avx2 avx512f\n")
    assert not cpu_bf16("")


def test_settings_choose_runtime_and_precision():
    s = Settings()
    assert (s.runtime, s.precision) == ("openvino", "auto")
    s = Settings.from_env({"VA_RUNTIME": "onnxruntime", "VA_PRECISION": "f32"})
    assert (s.runtime, s.precision) == ("onnxruntime", "f32")
    with pytest.raises(SettingsError, match="VA_RUNTIME='tensorrt'"):
        Settings.from_env({"VA_RUNTIME": "tensorrt"})
    with pytest.raises(SettingsError, match="VA_PRECISION=bf16 needs VA_RUNTIME=openvino"):
        Settings(runtime="onnxruntime", precision="bf16")


def test_inference_options_from_settings(tmp_path):
    cpu = CpuInference.from_settings(Settings(data_dir=tmp_path, cpu_threads=1))
    assert cpu == CpuInference(1, "openvino", "auto", tmp_path / "openvino-cache")
    # the default: the backbone at bf16 where the CPU has it, every detector model at f32
    assert cpu.precision_of("backbone") == ("bf16" if cpu_bf16() else "f32")
    assert {cpu.precision_of(m) for m in ("movenet", "thunder", "yolov5s")} == {"f32"}
    auto = CpuInference(precision="auto")
    want = {m: "bf16" if cpu_bf16() and m in AUTO_BF16 else "f32" for m in MODELS}
    assert {m: auto.precision_of(m) for m in MODELS} == want
    assert CpuInference(runtime="onnxruntime").effective_precision == "f32"
    assert CpuInference(precision="f32").describe() == "openvino f32"


def test_precision_per_model_from_one_setting(tmp_path):
    s = Settings.from_env({"VA_PRECISION": "bf16", "VA_PRECISION_MODELS": "backbone=f32, thunder=bf16"})
    cpu = CpuInference.from_settings(s)
    assert [cpu.precision_of(m) for m in ("movenet", "thunder", "backbone")] == ["bf16", "bf16", "f32"]
    assert cpu.effective_precision == "mixed"
    assert cpu.describe() == "openvino bf16 backbone=f32"  # the features cache's tag
    assert CpuInference(precision="bf16").describe() == "openvino bf16"
    assert CpuInference(runtime="onnxruntime", per_model=(("thunder", "bf16"),)).precision_of(
        "thunder") == "f32"
    with pytest.raises(SettingsError, match="VA_PRECISION_MODELS: 'yolo=bf16'"):
        Settings.from_env({"VA_PRECISION_MODELS": "yolo=bf16"})
    with pytest.raises(SettingsError, match="VA_PRECISION_MODELS: 'thunder=fp16'"):
        Settings.from_env({"VA_PRECISION_MODELS": "thunder=fp16"})
    # the session computes in its model's precision
    mixed = CpuInference(2, "openvino", "f32", tmp_path, per_model=(("thunder", "bf16"),))
    assert cpu_session(THUNDER, mixed, "Thunder", "fix", model="thunder").precision == "bf16"
    assert cpu_session(THUNDER, mixed, "Thunder", "fix", model="movenet").precision == "f32"


def test_openvino_f32_matches_onnxruntime_and_bf16_stays_close(tmp_path):
    x = _image(256, 256)
    outs = {}
    for runtime, precision in (("onnxruntime", "f32"), ("openvino", "f32"), ("openvino", "bf16")):
        s = cpu_session(THUNDER, CpuInference(2, runtime, precision, tmp_path), "Thunder", "fix")
        name = s.get_inputs()[0].name
        outs[precision if runtime == "openvino" else "ort"] = s.run(None, {name: x})[0]
    assert outs["ort"].shape == outs["f32"].shape == (1, 1, 17, 3)
    assert np.abs(outs["f32"] - outs["ort"]).max() < 1e-4
    # bf16 keeps 8 bits of mantissa: on noise (no person, so flat heatmaps) the keypoints move
    # by about a hundredth of the image, none by more than a tenth
    err = np.abs(outs["bf16"][..., :2] - outs["ort"][..., :2])
    assert err.mean() < 0.02 and err.max() < 0.1


def test_compiled_once_per_input_shape_and_cached_on_disk(tmp_path):
    cpu = CpuInference(2, "openvino", "f32", tmp_path / "cache")
    s = cpu_session(MULTIPOSE, cpu, "MoveNet weights", "fix")
    assert isinstance(s, OpenVinoSession)
    name = s.get_inputs()[0].name
    a = s.run(None, {name: _image(256, 384)})[0]
    s.run(None, {name: _image(256, 384, seed=1)})
    b = s.run(None, {name: _image(384, 288)})[0]
    assert (a.shape, b.shape) == ((1, 6, 56), (1, 6, 56))
    assert s.compiles == 2
    cached = sorted((tmp_path / "cache").iterdir())
    assert len(cached) >= 2  # one compiled blob per shape
    # a second process (here: session) loads the blobs instead of compiling new ones
    s2 = cpu_session(MULTIPOSE, cpu, "MoveNet weights", "fix")
    again = s2.run(None, {name: _image(256, 384)})[0]
    assert np.array_equal(again, a)
    assert sorted((tmp_path / "cache").iterdir()) == cached


def test_a_model_drops_its_graph_after_compiling_and_reads_it_again_for_a_new_shape(tmp_path):
    """Once compiled, a model's ov.Model (Thunder 15 MB resident, MultiPose ~19) is dropped;
    were its compiled model ever evicted, or a new input shape come (MultiPose on a video of
    another size), the file is read again and the results are those of a fresh session."""
    s = cpu_session(THUNDER, CpuInference(2, "openvino", "f32", tmp_path), "Thunder", "fix")
    name = s.get_inputs()[0].name
    a = s.run(None, {name: _image(256, 256)})[0]
    assert s._model is None
    s._compiled.clear()
    assert np.array_equal(s.run(None, {name: _image(256, 256)})[0], a) and s.compiles == 2
    m = cpu_session(MULTIPOSE, CpuInference(2, "openvino", "f32", tmp_path), "MoveNet", "fix")
    mname = m.get_inputs()[0].name
    m.run(None, {mname: _image(256, 384)})
    assert m._model is None
    b = m.run(None, {mname: _image(384, 288)})[0]  # a second shape: the file read again
    fresh = cpu_session(MULTIPOSE, CpuInference(2, "openvino", "f32", tmp_path), "MoveNet", "fix")
    assert m.compiles == 2 and np.array_equal(b, fresh.run(None, {mname: _image(384, 288)})[0])


def test_the_backbone_cut_drops_its_graph_and_is_cut_again_for_a_new_shape(tmp_path):
    from pipeline.appearance import BACKBONE_FILE, Backbone

    cpu = CpuInference(2, "openvino", "f32", tmp_path)
    bb = Backbone(REPO / "models" / BACKBONE_FILE, cpu)
    img = (np.random.default_rng(0).random((288, 384, 3)) * 255).astype(np.uint8)
    p4, _ = bb.maps(img)
    assert bb.session._model is None
    q4, _ = bb.maps(img, (256, 192))  # another shape: the cut made again from the file
    again, _ = Backbone(REPO / "models" / BACKBONE_FILE, cpu).maps(img, (256, 192))
    assert p4.shape != q4.shape and np.array_equal(q4, again)


def test_openvino_cuts_the_graph_itself_as_the_onnx_cut_would(tmp_path):
    """``_read_cut`` (OpenVINO keeps the nodes it needs of the model it read) gives the same
    backbone maps, bit for bit, as the ONNX-level cut onnxruntime is given; a tensor that is not
    in the file is a clear error."""
    from pipeline.appearance import BACKBONE_CUT, BACKBONE_FILE
    from pipeline.backends.onnx_common import SubGraph, onnx_subgraph

    path = REPO / "models" / BACKBONE_FILE
    cpu = CpuInference(2, "openvino", "f32", tmp_path)
    ours = cpu_session(path, cpu, "YOLOv5s weights", "fix", cut=BACKBONE_CUT)
    assert ours._model is None  # not even read until its first call
    onnx_level = OpenVinoSession(onnx_subgraph(path, BACKBONE_CUT), cpu)
    x = np.random.default_rng(0).random((1, 288, 384, 3), np.float32)
    for a, b in zip(ours.run(None, {BACKBONE_CUT.input_name: x}),
                    onnx_level.run(None, {BACKBONE_CUT.input_name: x})):
        assert a.shape[0] == 1 and np.array_equal(a, b)
    with pytest.raises(BackendUnavailable, match="no tensor nope:0"):
        cpu_session(path, cpu, "YOLOv5s weights", "fix",
                    cut=SubGraph(BACKBONE_CUT.input_name, ("nope:0",), "x")).run(
            None, {BACKBONE_CUT.input_name: x})


def test_release_frees_the_compiled_models_until_the_next_call(tmp_path):
    from pipeline.backends.onnx_common import release

    s = cpu_session(THUNDER, CpuInference(2, "openvino", "f32", tmp_path), "Thunder", "fix")
    name = s.get_inputs()[0].name
    a = s.run(None, {name: _image(256, 256)})[0]
    release(s)
    assert not s._compiled and s._model is None
    assert np.array_equal(s.run(None, {name: _image(256, 256)})[0], a) and s.compiles == 2
    ort = cpu_session(THUNDER, CpuInference(2, "onnxruntime", "f32", tmp_path), "Thunder", "fix")
    release(ort)  # onnxruntime holds nothing between calls: nothing to do
    assert np.allclose(ort.run(None, {name: _image(256, 256)})[0], a, atol=1e-4)


def test_the_disk_cache_keeps_the_most_recently_used_under_its_cap(tmp_path):
    import os
    from pipeline.backends.onnx_common import prune_cache

    for i in range(5):
        f = tmp_path / f"blob{i}"
        f.write_bytes(b"x" * 100)
        os.utime(f, (1000 + i, 1000 + i))
    prune_cache(tmp_path, max_bytes=250)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["blob3", "blob4"]
    (tmp_path / "blob5").write_bytes(b"x" * 100)
    prune_cache(tmp_path, max_bytes=250)  # once per process and folder
    assert len(list(tmp_path.iterdir())) == 3


def test_concurrent_calls_give_the_same_results(tmp_path):
    s = cpu_session(THUNDER, CpuInference(1, "openvino", "f32", None), "Thunder", "fix")
    name = s.get_inputs()[0].name
    inputs = [_image(256, 256, seed=i) for i in range(4)]
    alone = [s.run(None, {name: x})[0] for x in inputs]
    got: dict = {}

    def work(i):
        got[i] = s.run(None, {name: inputs[i]})[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert np.array_equal(got[i], alone[i])


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_missing_and_unreadable_files_name_the_file_and_fix(tmp_path, runtime):
    cpu = CpuInference(1, runtime, "auto", None)
    with pytest.raises(BackendUnavailable, match=r"X weights .*nothing.onnx are missing; do Y"):
        cpu_session(tmp_path / "nothing.onnx", cpu, "X weights", "do Y")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendUnavailable, match=r"X weights .*bad.onnx are unreadable \(.*\); do Y"):
        cpu_session(bad, cpu, "X weights", "do Y")


def test_onnxruntime_stays_selectable(tmp_path):
    from pipeline.backends.movenet import load_movenet

    det = load_movenet(Settings(runtime="onnxruntime", data_dir=tmp_path))
    assert type(det.session).__module__.startswith("onnxruntime")
    det = load_movenet(Settings(data_dir=tmp_path))
    assert isinstance(det.session, OpenVinoSession)


_OFFLINE_PROBE = r"""
import ipaddress, os, socket, sys
sys.path.insert(0, sys.argv[1])
LOG = sys.argv[3]  # a file: forked processes (the telemetry sends from one) append to it too


def record(what):
    with open(LOG, "a") as f:
        f.write(f"{os.getpid()} {what!r}\n")


def _is_local(address):
    if not isinstance(address, tuple):
        return True  # AF_UNIX path
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return address[0] == "localhost"


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def connect(self, address):
    if not _is_local(address):
        record(address)
        raise OSError("blocked by the offline test")
    return _connect(self, address)
def connect_ex(self, address):
    if not _is_local(address):
        record(address)
        return 111
    return _connect_ex(self, address)
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
_getaddrinfo = socket.getaddrinfo
def getaddrinfo(host, *a, **k):
    if host not in (None, "localhost", "127.0.0.1", "::1"):
        record(("dns", host))
        raise socket.gaierror("blocked by the offline test")
    return _getaddrinfo(host, *a, **k)
socket.getaddrinfo = getaddrinfo
import multiprocessing
_start = multiprocessing.Process.start
def start(self):
    record(("process", getattr(self, "_target", None)))
    return _start(self)
multiprocessing.Process.start = start

import numpy as np
from pathlib import Path
from settings import Settings
from pipeline.backends.registry import load_backend, load_dense_detector
from pipeline.records import Frame

s = Settings(data_dir=Path(sys.argv[2]))
det = load_backend("detector", "movenet", s)
dense = load_backend("proposals", "yolov5", s).around(det)
violence = load_backend("violence", "learned", s)
emb = load_backend("embedder", "minilm", s)
img = np.zeros((240, 320, 3), np.uint8)
det.detect([Frame(frame_number=0, t_s=0.0, image=img)])
dense.detect([Frame(frame_number=1, t_s=0.1, image=img)])
violence.backbone.vectors(img, [(10, 10, 50, 90)])
emb.embed(["a person walking"])
import time
time.sleep(1.0)  # a telemetry sender would have forked by now
import openvino.tools.ovc as ovc
print("TELEMETRY", type(ovc.telemetry).__module__)
"""


def test_openvino_stays_offline_and_its_telemetry_never_starts(tmp_path):
    """Load and run every default ONNX backend through OpenVINO in a fresh interpreter (HOME a
    new folder, as on a machine that never opted in or out) with every socket connection, name
    lookup and forked process recorded, and connections off loopback refused: none, OpenVINO's
    telemetry is its no-op stub, and nothing was written to ~/intel (client id, usage stats)."""
    log, home = tmp_path / "attempts.log", tmp_path / "home"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", _OFFLINE_PROBE, str(REPO), str(tmp_path), str(log)],
                         capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not log.exists(), log.read_text()
    assert "TELEMETRY openvino.tools.ovc.telemetry_stub" in out.stdout, out.stdout[-2000:]
    assert list(home.iterdir()) == []


def test_default_openvino_finds_the_people_onnxruntime_finds_on_real_frames(tmp_path):
    """The product's detector on vtest frames (small people: the 2x2 tiles run): OpenVINO at the
    default precision returns the people onnxruntime returns, keypoints within 0.05 px, so the
    thresholds and the models fitted on onnxruntime's outputs hold unchanged."""
    from conftest import testdata_path
    from pipeline.backends.movenet import load_movenet
    from pipeline.sampling import probe_video, read_frames

    clip = testdata_path("clips/pedestrians/vtest.avi")
    info = probe_video(clip)
    frames = [f for fn in range(0, 60, 12) for f in read_frames(clip, fn, fn, 1, info)]
    found = {}
    for runtime in ("onnxruntime", "openvino"):
        det = load_movenet(Settings(runtime=runtime, data_dir=tmp_path))
        found[runtime] = [det.detect([f])[0] for f in frames]
    n = [len(p.confidence) for p in found["onnxruntime"]]
    assert sum(n) >= 4 * len(frames)  # vtest's pedestrians
    for a, b in zip(found["onnxruntime"], found["openvino"]):
        assert len(a.confidence) == len(b.confidence)
        assert np.abs(a.xyxy - b.xyxy).max() < 0.05
        assert np.abs(a.keypoints[:, :, :2] - b.keypoints[:, :, :2]).max() < 0.05
        assert np.abs(a.confidence - b.confidence).max() < 1e-4
