"""Output files: columns, names, and the all-or-nothing move into place."""
from __future__ import annotations

import csv
import json

import pytest

from conftest import make_observation, testdata_path as data_path
from pipeline.outputs import (
    PROCESSED_COLUMNS, RESULTS_COLUMNS, highlight_name, write_outputs,
)
from pipeline.records import (
    Action, AgeGroup, Episode, Event, EventType, Gender,
)
from pipeline.sampling import probe_video, read_frames


def _obs(frame_number, t_s, oid=1):
    return make_observation(frame_number, t_s, oid, det_confidence=0.8, age=34.0,
                            gender=Gender.FEMALE, gender_score=0.9, orientation_deg=10.0,
                            action=Action.STANDING, action_confidence=0.7,
                            scene_description="One person is visible." if frame_number == 0
                            else None)


def _inputs():
    clip = data_path("clips/intel/classroom.mp4")
    info = probe_video(clip)
    obs = [_obs(0, 0.0), _obs(20, 1.333)]
    ep = Episode(EventType.FALLING, 1, 1.2, 2.0, 1.333, 20, 0.9, reason="test")
    events = [Event(EventType.PERSON, o.t_s, o.frame_number, 1, o.xyxy, AgeGroup.MIDDLE,
                    Gender.FEMALE, Action.STANDING, 0.8, keypoints=o.keypoints) for o in obs]
    events.append(Event(EventType.FALLING, 1.333, 20, 1, obs[1].xyxy, AgeGroup.MIDDLE,
                        Gender.FEMALE, Action.FALLING, 0.9))

    def reader(s, e, st):
        return read_frames(clip, s, e, st, info)

    return info, obs, events, [ep], reader


def test_files_columns_and_highlight(tmp_path):
    info, obs, events, eps, reader = _inputs()
    w = write_outputs(tmp_path / "out", info, obs, events, eps, reader)
    out = tmp_path / "out"
    rows = list(csv.DictReader(open(out / "results_final.csv")))
    assert list(rows[0]) == RESULTS_COLUMNS and len(rows) == 2
    assert rows[0]["bbox_width"] == "80.0" and rows[0]["orientation_label"] == "0"
    assert len(json.loads(rows[0]["keypoints"])) == 17
    proc = list(csv.DictReader(open(out / "processed_results.csv")))
    assert list(proc[0]) == PROCESSED_COLUMNS
    fall = [r for r in proc if r["event_type"] == "falling"][0]
    attrs = json.loads(fall["attributes"])
    assert attrs["highlight_file"] == "highlights/1.3s_falling.jpg" and attrs["obj_id"] == 1
    hl = json.loads((out / "highlights.json").read_text())
    assert hl[0]["file"] == "highlights/1.3s_falling.jpg" and hl[0]["event_type"] == "falling"
    from PIL import Image

    img = Image.open(out / hl[0]["file"])
    assert img.size == (info.width, info.height)
    assert w.highlights[0].file == hl[0]["file"]


def test_existing_folder_only_our_files_replaced(tmp_path):
    info, obs, events, eps, reader = _inputs()
    out = tmp_path / "out"
    (out / "highlights").mkdir(parents=True)
    (out / "highlights" / "old.jpg").write_bytes(b"x")
    (out / "results_final.csv").write_text("old")
    (out / "notes.txt").write_text("mine")
    write_outputs(out, info, obs, events, eps, reader)
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "highlights" / "old.jpg").exists()
    assert (out / "results_final.csv").read_text().startswith("frame_number,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_leaves_the_folder_as_it_was(tmp_path):
    info, obs, events, eps, _ = _inputs()
    out = tmp_path / "out"
    out.mkdir()
    (out / "results_final.csv").write_text("old")

    def broken_reader(s, e, st):
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError):
        write_outputs(out, info, obs, events, eps, broken_reader)
    assert (out / "results_final.csv").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_highlight_names_are_unique():
    taken = set()
    assert highlight_name(4.26, "falling", taken, 1) == "4.3s_falling.jpg"
    assert highlight_name(4.31, "falling", taken, 2) == "4.3s_falling_2.jpg"
