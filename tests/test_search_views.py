"""Search hits as the page lists them (issue 13, defect 2): identical sentences of one video
collapse into one hit with a count and a time span; hits below the relevance threshold are
flagged (the page labels them "closest, below the threshold", never "matches"); every person
hit gets a crop of the person from the analysed video."""
from __future__ import annotations

import numpy as np
import pytest

from db.records import Hit, StoredEvent
from pipeline.records import Action, AgeGroup, EventType, Gender
from services.search import search_views


def _hit(eid, t, sentence, video=1, sim=0.5, kind="person", bbox=(10, 5, 20, 30), frame=0):
    e = StoredEvent(event_id=eid, video_id=video, event_type=EventType(kind), t_s=t,
                    frame_number=frame, bbox=bbox, age_group=AgeGroup.UNKNOWN,
                    gender=Gender.UNKNOWN, action=Action.WALKING,
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


def test_track_crop_candidates_spread_over_the_track_with_its_clearest_view():
    from services.media.tracks import crop_candidates

    rows = [_hit(i + 1, float(i * 2), "x", bbox=(0, 0, 10 + (30 if i == 7 else 0), 40),
                 frame=i * 20).event for i in range(30)]
    picked = [e.frame_number for e in crop_candidates(rows, k=6)]
    assert picked[0] == 0 and picked[-1] == 580 and 140 in picked and len(picked) <= 6
    assert crop_candidates(rows[:4], k=6) == rows[:4] and crop_candidates([]) == []


# A track of vtest_first20s.mp4 at 0.5 sampled fps (every 20th frame) whose id passes from one
# pedestrian (dark coat and trousers) to another (red and navy jacket, jeans) between 14 and
# 16 s. Boxes (x, y, w, h) of the two people from MoveNet tracked at 5 fps, where each keeps
# one id; the first person's largest box is the sample before the jump.
DARK = [(40, (434, 186, 24, 84)), (60, (365, 168, 20, 67)), (80, (259, 173, 27, 70)),
        (100, (349, 200, 33, 75)), (120, (507, 214, 33, 82)), (140, (675, 235, 31, 100))]
RED = [(160, (656, 103, 20, 55)), (180, (680, 100, 21, 57))]


def test_a_track_card_shows_one_person_when_the_track_jumps_to_another():
    """issue 13, defect 11: track cards showed crops of 2-3 different people under one track at
    a low sampling rate. Picking neighbours of the clearest view straddles this jump; the card
    keeps the samples whose path and clothes agree."""
    from conftest import testdata_path
    from pipeline.media import clothes_histogram, same_person_crops, same_person_picks
    from pipeline.sampling import probe_video, read_frames

    path = testdata_path("clips/pedestrians/vtest_first20s.mp4")
    rows = DARK + RED
    best = max(range(len(rows)), key=lambda i: rows[i][1][2] * rows[i][1][3])
    assert {f for f, _ in rows[best - 1:best + 2]} & {f for f, _ in RED}  # the naive pick mixes
    info = probe_video(path)
    hists = [clothes_histogram(read_frames(path, f, f, 1, info=info)[0].image, b)
             for f, b in rows]
    t_s = [f / info.fps for f, _ in rows]
    picks = [rows[i][0] for i in same_person_picks(t_s, [b for _, b in rows], hists, 3)]
    assert len(picks) == 3 and set(picks) <= {f for f, _ in DARK}, picks
    crops = same_person_crops(path, [(f, f / info.fps, b) for f, b in rows], 3, 120)
    assert len(crops) == 3 and all(c[:2] == b"\xff\xd8" for c in crops)


def test_the_answer_counts_the_moments_the_page_lists():
    """Issue 20: the answer said "2 matching moments" while the list said "Matching moments
    (5)": one person walking, seen in rows whose sentences differ (where in the frame), was one
    moment to the answer and three to the list."""
    from services.search import answer

    hits = [_hit(1, 1.0, "at 00:01 a man walking near the left"),
            _hit(2, 1.7, "at 00:01 a man walking in the middle"),
            _hit(3, 2.3, "at 00:02 a man walking near the right"),
            _hit(4, 9.0, "at 00:09 a man walking near the right"),
            _hit(5, 3.0, "at 00:03 a man walking near the left", video=2),
            _hit(6, 4.0, "at 00:04 a man walking", video=3), _hit(7, 5.0, "x", video=4),
            _hit(8, 6.0, "y", video=5), _hit(9, 7.0, "z", video=6)]
    groups = search_views.group_hits(hits, relevant_ids={h.event.event_id for h in hits})
    moments = [g for g in groups if g.relevant]
    assert [g.event_ids for g in moments][:2] == [(1, 2, 3, 4), (5,)]
    text = answer.extractive_answer("a man walking", hits).text
    assert text.startswith(f"{len(moments)} matching moments, the best {answer.MAX_CITED}: ")
