"""Shared helpers for the attributes-backend tests: real photos and clips through the product's
detector, tracker and an attributes backend."""
from __future__ import annotations

import cv2
import numpy as np

import conftest
from pipeline.attributes import summarize_attributes
from pipeline.records import Frame, Gender, PersonObservation

# Eileen Collins (born 1956) in a 1990s portrait: ~35-40. Messi ~23 in this photo.
PHOTO_TRUTH = {"images/astronaut.png": (Gender.FEMALE, 37.5), "images/messi5.jpg": (Gender.MALE, 23.0)}


def portrait_detector():
    from pipeline.backends.movenet import MODEL_FILE, MoveNetDetector
    from settings import Settings

    return MoveNetDetector(Settings().models_dir / MODEL_FILE, threads=1, long_side=256)


def photo_attributes(estimator, rel: str):
    img = cv2.cvtColor(cv2.imread(str(conftest.testdata_path(rel))), cv2.COLOR_BGR2RGB)
    persons = portrait_detector().detect_image(img)
    assert len(persons) >= 1
    best = int(np.argmax(persons.confidence))
    return estimator.estimate(Frame(0, 0.0, img), persons[best])[0]


def assert_photo_reads_right(estimator, rel: str) -> None:
    """The photo's gender with a confident score and its age within 10 years of the truth."""
    gender, age = PHOTO_TRUTH[rel]
    a = photo_attributes(estimator, rel)
    assert a.gender is gender and a.gender_score >= 0.7
    assert abs(a.age - age) <= 10
    assert a.face_size_px >= 40


def clip_track_genders(estimator, rel: str, frame_skip: int = 5) -> dict[int, Gender]:
    from pipeline.backends.movenet import load_movenet
    from pipeline.sampling import iter_frames, probe_video
    from pipeline.tracking import PersonTracker
    from settings import Settings

    path = conftest.testdata_path(rel)
    info = probe_video(path)
    det = load_movenet(Settings())
    tracker = PersonTracker(info.fps / frame_skip)
    by_track: dict[int, list[PersonObservation]] = {}
    for fr in iter_frames(path, frame_skip):
        persons = tracker.update(det.detect_image(fr.image), fr.t_s)
        for i, a in enumerate(estimator.estimate(fr, persons)):
            tid = int(persons.tracker_id[i])
            if tid < 0:
                continue
            by_track.setdefault(tid, []).append(PersonObservation(
                fr.frame_number, fr.t_s, tid, tuple(map(float, persons.xyxy[i])),
                float(persons.confidence[i]), tuple(map(tuple, persons.keypoints[i].tolist())),
                age=a.age, gender=a.gender, gender_score=a.gender_score))
    return {tid: summarize_attributes(obs)[2] for tid, obs in by_track.items()}


def assert_genders_right_or_unknown(genders: dict[int, Gender], n_male: int, n_female: int):
    """Tracks cannot be matched to people by hand here, so: no more tracks of a gender than
    there are people of it (a wrong confident guess would exceed the count)."""
    assert genders, "no tracks"
    males = sum(g is Gender.MALE for g in genders.values())
    females = sum(g is Gender.FEMALE for g in genders.values())
    assert males <= n_male and females <= n_female, genders
