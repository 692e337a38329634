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
