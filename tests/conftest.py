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


# --- record factories: a valid record with every field defaulted; tests name what they vary ---


def make_observation(frame_number: int = 0, t_s: float | None = None, obj_id: int = 1, **kw):
    """A ``PersonObservation`` (a standing 80x190 px person with 17 visible keypoints)."""
    from pipeline.records import PersonObservation

    fields = dict(xyxy=(80.0, 40.0, 160.0, 230.0), det_confidence=0.9,
                  keypoints=tuple((100.0 + j, 50.0 + 10 * j, 0.9) for j in range(17)))
    fields.update(kw)
    return PersonObservation(frame_number=frame_number,
                             t_s=frame_number / 10.0 if t_s is None else t_s, obj_id=obj_id,
                             **fields)


def make_event(t_s: float = 0.0, event_type=None, obj_id: int = 1, **kw):
    """An engine ``Event`` (a person row unless ``event_type`` says otherwise)."""
    from pipeline.records import Action, AgeGroup, Event, EventType, Gender

    fields = dict(frame_number=int(round(t_s * 25)), xyxy=(10.0, 20.0, 110.0, 220.0),
                  age_group=AgeGroup.MIDDLE, gender=Gender.MALE, action=Action.STANDING,
                  confidence=0.8, track_ids=(obj_id,))
    fields.update(kw)
    return Event(event_type=event_type or EventType.PERSON, t_s=float(t_s), obj_id=obj_id,
                 **fields)


def make_stored_event(event_id: int = 1, t_s: float = 0.0, obj_id: int | None = 1, **kw):
    """A ``StoredEvent`` as ``db.queries`` returns it (the vocabularies as the engine's Enums;
    tests may name them by their plain values)."""
    from db.records import StoredEvent
    from pipeline.records import Action, AgeGroup, EventType, Gender

    fields = dict(video_id=1, event_type=EventType.PERSON, frame_number=int(round(t_s * 30)),
                  bbox=(10.0, 20.0, 50.0, 120.0), age_group=AgeGroup.YOUNG, gender=Gender.MALE,
                  action=Action.STANDING, confidence=0.8,
                  track_ids=() if obj_id is None else (obj_id,))
    fields.update(kw)
    for name, enum in (("event_type", EventType), ("age_group", AgeGroup), ("gender", Gender),
                       ("action", Action), ("raw_action", Action)):
        if fields.get(name) is not None:
            fields[name] = enum(fields[name])
    return StoredEvent(event_id=event_id, t_s=float(t_s), obj_id=obj_id, **fields)


def photo_frame(rel: str, frame_number: int = 0, t_s: float = 0.0):
    """A ``Frame`` of a test photo under ../shared/testdata (RGB), or skip."""
    import cv2

    from pipeline.records import Frame

    img = cv2.cvtColor(cv2.imread(str(testdata_path(rel))), cv2.COLOR_BGR2RGB)
    return Frame(frame_number=frame_number, t_s=t_s, image=img)


def stored_video(settings, video_id: int):
    """The ``VideoRecord`` of ``video_id`` as the database holds it now (it must exist)."""
    from db import queries
    from services import database

    with database.pooled(settings) as conn:
        v = queries.get_video(conn, int(video_id))
    assert v is not None, f"video {video_id} is not in the database"
    return v
