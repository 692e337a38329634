"""The workbench's service layer without a browser: time formatting, citation splitting, the
library listing of real clips, capabilities by configuration, and the event table + charts built
from stored-event records."""
from __future__ import annotations

from pathlib import Path

import pytest

from app_support import link_clips
from conftest import make_stored_event
from app_pages import _charts as charts
from services.records import Citation
from services import workbench as wb
from services.errors import StorageError
from settings import Settings


@pytest.mark.parametrize("t, want", [(0, "00:00"), (4.4, "00:04"), (4.6, "00:04"), (8.7, "00:08"),
                                     (65.4, "01:05"), (3725, "1:02:05"), (None, "--:--"),
                                     (float("nan"), "--:--"), (-3, "00:00")])
def test_mmss(t, want):
    assert wb.mmss(t) == want


def test_split_citations_keeps_text_and_finds_every_cited_event():
    a, b = Citation(12, "Fall01.mp4", 4.2), Citation(7, "fi001.mp4", 61.0)
    text = f"A man fell at 00:04 {a.label}. Two people fought {b.label}."
    parts = wb.split_citations(text)
    assert "".join(p for p, _ in parts) == text
    assert [eid for _, eid in parts if eid is not None] == [12, 7]
    assert ("[event 7, fi001.mp4 01:01]", 7) in parts
    assert wb.split_citations("nothing matches") == (("nothing matches", None),)


def test_library_lists_videos_only_sorted_and_reports_a_missing_folder(tmp_path):
    lib = tmp_path / "lib"
    link_clips(lib, "clips/falls/Fall01.mp4", "clips/intel/classroom.mp4",
               "images/astronaut.png")
    (lib / "notes.txt").write_text("not a video")
    (lib / ".hidden.mp4").write_text("")
    got = wb.library_videos(Settings(library_dir=lib))
    assert [v.label for v in got] == ["Fall01.mp4", "astronaut.png", "classroom.mp4"]
    assert all(Path(v.uri).is_absolute() and v.origin == "library" for v in got)
    assert wb.library_videos(Settings(library_dir=None)) == []
    with pytest.raises(StorageError, match="VA_LIBRARY_DIR"):
        wb.library_videos(Settings(library_dir=tmp_path / "missing"))


def test_capabilities_follow_the_configuration(tmp_path):
    plain = wb.capabilities(Settings(), check_cuda=False)
    assert (plain.detector, plain.action, plain.scene) == (
        ("movenet",), ("posture_trees", "pose_rules"), ("template",))
    assert plain.devices == ("cpu",)
    assert any("VA_VLM_PATH" in n for n in plain.notes)
    assert any("AWS_BEDROCK_REGION" in n for n in plain.notes)
    full = wb.capabilities(Settings(vlm_path=tmp_path, bedrock_region="us-east-1",
                                    mivolo_checkpoint=tmp_path / "m.pth.tar",
                                    mebow_cfg=tmp_path / "w32.yaml"), check_cuda=False)
    assert full.action == ("posture_trees", "pose_rules", "vlm")
    assert full.scene == ("template", "bedrock")
    assert "mivolo" in full.attributes and "mebow" in full.orientation
    assert full.notes == ()


def _event(eid, t, obj, action, etype="person", gender="male", age_group="young", orient=0):
    return make_stored_event(eid, t, obj, event_type=etype, age_group=age_group, gender=gender,
                             action=action, orientation_label=orient,
                             orientation_deg=float(orient), age=25.0)


def test_event_table_and_charts_from_stored_events():
    evs = [_event(1, 0.0, 1, "walking"), _event(2, 0.7, 1, "walking"),
           _event(3, 1.3, 1, "falling"), _event(4, 1.3, 1, "falling", etype="falling"),
           _event(5, 2.0, 1, "lying", orient=90), _event(6, 0.0, 2, "standing", gender="female",
                                                      age_group="old", orient=180)]
    df = wb.events_table(evs, {1: "Fall01.mp4"})
    assert list(df.columns) == wb.EVENT_TABLE_COLUMNS
    assert list(df["time"][:3]) == ["0:00", "0:00", "0:01"]  # the player's clock (timefmt)
    runs = charts.action_runs(df[df["event_type"] == "person"])
    track1 = runs[runs["track"] == "Fall01.mp4 · track 1"]
    assert list(track1["action"]) == ["walking", "falling", "lying"]
    assert list(track1["start_s"]) == [0.0, 1.3, 2.0]
    people = charts.per_track(df)
    assert sorted(people["gender"]) == ["female", "male"]
    for fig in (charts.timeline_figure(df), charts.counts_figure(df),
                charts.demographics_figure(df), charts.orientation_figure(df)):
        assert fig.data, fig.layout.title.text
    empty = wb.events_table([], {})
    assert not charts.timeline_figure(empty).data
    assert charts.timeline_figure(empty).layout.annotations[0].text == "No events to show"
