"""Shared test helpers. Real data lives in ../shared/testdata (beside the repo); tests that
need it skip with a reason when it is absent. Service fixtures (PostgreSQL, moto S3) live in
``fixtures_services.py``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VA_SHARED_DIR", REPO.parent / "shared"))
TESTDATA = SHARED / "testdata"
SHARED_MODELS = SHARED / "models"

pytest_plugins = ["fixtures_services"]


def testdata_path(rel: str) -> Path:
    """Path of a file under ../shared/testdata, or skip the test with a reason."""
    p = TESTDATA / rel
    if not p.exists():
        pytest.skip(f"test data {p} is absent (../shared/testdata is not beside the repo)")
    return p


def ground_truth() -> dict:
    p = TESTDATA / "ground_truth.json"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return json.loads(p.read_text())


@pytest.fixture(scope="session")
def gt() -> dict:
    return ground_truth()


@pytest.fixture(autouse=True)
def _no_network_models(monkeypatch):
    # Nothing may reach a model hub: fail fast instead of hanging on a download.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("YOLO_OFFLINE", "1")


def tracked_frames(rel: str, detector, skip: int):
    """(frame, tracked PersonDetections) for each sampled frame of a test clip, through the
    product's sampling, detector and tracker."""
    from pipeline.sampling import VideoFrames
    from pipeline.tracking import PersonTracker

    frames = VideoFrames(testdata_path(rel), skip)
    tracker = PersonTracker(frames.info.fps / skip)
    for f in frames:
        yield f, tracker.update(detector.detect([f])[0], f.t_s)


def make_video_without_frames(tmp_path: Path) -> Path:
    """A valid container with a video stream but not a single frame."""
    import av

    p = tmp_path / "noframes.mkv"
    c = av.open(str(p), "w")
    s = c.add_stream("libx264", rate=25)
    s.width, s.height = 64, 48
    c.start_encoding()
    c.close()
    return p
