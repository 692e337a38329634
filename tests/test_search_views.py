"""Search hits as the page lists them (issue 13, defect 2): identical sentences of one video
collapse into one hit with a count and a time span; hits below the relevance threshold are
flagged (the page labels them "closest, below the threshold", never "matches"); every person
hit gets a crop of the person from the analysed video."""
from __future__ import annotations

import numpy as np
import pytest

from db.records import Hit, StoredEvent
from services import search_views


def _hit(eid, t, sentence, video=1, sim=0.5, kind="person", bbox=(10, 5, 20, 30), frame=0):
    e = StoredEvent(event_id=eid, video_id=video, event_type=kind, t_s=t, frame_number=frame,
                    bbox=bbox, age_group="unknown", gender="unknown", action="walking",
                    confidence=0.9, obj_id=1, sentence=sentence)
    return Hit(event=e, video_name=f"v{video}", score=1.0 / eid, similarity=sim)


def test_identical_sentences_collapse_with_a_count_and_span():
    hits = [_hit(1, 1.0, "at 00:01 a man walking near the left"),
            _hit(2, 1.7, "at 00:02 a man walking near the left"),
            _hit(3, 2.3, "at 00:02 a man sitting"),
            _hit(4, 3.0, "at 00:03 A man walking  near the left"),
            _hit(5, 3.0, "at 00:03 a man walking near the left", video=2)]
    groups = search_views.group_hits(hits, relevant_ids={3})
    assert [(g.hit.event.event_id, g.count) for g in groups] == [(1, 3), (3, 1), (5, 1)]
    assert (groups[0].first_t_s, groups[0].last_t_s) == (1.0, 3.0)
    assert groups[0].event_ids == (1, 2, 4)
    assert [g.relevant for g in groups] == [False, True, False]


def test_unrelated_queries_are_below_the_threshold(monkeypatch):
    from settings import Settings

    hits = [_hit(1, 1.0, "at 00:01 a man falling", sim=0.62),
            _hit(2, 2.0, "at 00:02 a man walking", sim=0.12)]
    ids = search_views.relevant_ids(hits, Settings())
    assert ids == {1}


def test_a_person_hit_gets_a_crop_from_the_video(tmp_path):
    import av

    path = tmp_path / "v.mp4"
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for i in range(10):
        img = np.zeros((48, 64, 3), np.uint8)
        img[5:35, 10:30] = 250
        for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    from settings import Settings

    jpeg = search_views.hit_thumbnail(Settings(), _hit(1, 0.5, "x", frame=5), str(path))
    assert jpeg and jpeg[:2] == b"\xff\xd8"
    assert search_views.hit_thumbnail(Settings(), _hit(1, 0.5, "x"), "s3://b/videos/v.mp4") \
        is None
    assert search_views.hit_thumbnail(Settings(), _hit(1, 0.5, "x"), str(tmp_path / "gone")) \
        is None


def test_track_crops_come_from_neighbouring_samples_around_the_clearest_view():
    """issue 13, defect 11: crops of one track at its start, middle and end showed two or three
    different people at 0.5 sampled fps; neighbouring samples around the largest box do not
    straddle a switch far apart in time."""
    from services.tracks import crop_picks

    rows = [_hit(i + 1, float(i * 2), "x", bbox=(0, 0, 10 + (30 if i == 6 else i), 40),
                 frame=i * 60).event for i in range(10)]
    assert [e.frame_number for e in crop_picks(rows)] == [300, 360, 420]
    assert [e.frame_number for e in crop_picks(rows[:2])] == [0, 60]
    assert crop_picks([]) == []
    rows[0] = _hit(1, 0.0, "x", bbox=(0, 0, 99, 99)).event
    assert [e.frame_number for e in crop_picks(rows)] == [0, 60, 120]
