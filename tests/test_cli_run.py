"""``python -m pipeline run --no-store``: exit 0 only on success, one-line errors otherwise,
nothing half-written in --output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_video_without_frames, testdata_path as data_path


def _cli(args, tmp_path, env_extra=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    env.update({"VA_DATA_DIR": str(tmp_path / "var"), "VA_CPU_THREADS": "2"})
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pipeline", "run", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_run_no_store_end_to_end(tmp_path):
    out = tmp_path / "out"
    r = _cli(["--input", str(data_path("clips/intel/classroom.mp4")), "--output", str(out),
              "--no-store", "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "tracks" in r.stdout and str(out) in r.stdout
    for name in ("results_final.csv", "processed_results.csv", "highlights.json"):
        assert (out / name).is_file()
    assert isinstance(json.loads((out / "highlights.json").read_text()), list)


def _make_truncated(tmp_path: Path) -> Path:
    src = data_path("clips/intel/classroom.mp4").read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(src[: len(src) // 3])
    return p


def _make_no_frames(tmp_path: Path) -> Path:
    return make_video_without_frames(tmp_path)


def _file(name: str, data: bytes):
    def make(t: Path) -> Path:
        (t / name).write_bytes(data)
        return t / name
    return make


BAD = {
    "missing path": (lambda t: t / "missing.mp4", {}, [], "does not exist"),
    "zero-byte file": (_file("zero.mp4", b""), {}, [], "0 bytes"),
    "text file named .mp4": (_file("t.mp4", b"hello\n" * 50), {}, [], "not a readable video"),
    "truncated video": (_make_truncated, {}, [], "truncated"),
    "video with no frames": (_make_no_frames, {}, [], "video"),
    "unknown backend name": (None, {}, ["--detector", "nope"], "unknown detector backend"),
    "unreadable weights": (None, {"VA_MODELS_DIR": "{bad_models}"}, [], "unreadable"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_error_nonzero_exit_nothing_written(tmp_path, case):
    make, env, extra, expect = BAD[case]
    video = make(tmp_path) if make else data_path("clips/intel/people-detection.mp4")
    bad_models = tmp_path / "models"
    bad_models.mkdir()
    (bad_models / "movenet-multipose.onnx").write_bytes(b"\x08\x01garbage" * 64)
    env = {k: v.format(bad_models=bad_models) for k, v in env.items()}
    out = tmp_path / "out"
    r = _cli(["--input", str(video), "--output", str(out), "--no-store", "--quiet", *extra],
             tmp_path, env)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and expect in lines[0] and "; " in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert not any(p.name.startswith(".out.tmp") for p in tmp_path.iterdir())
