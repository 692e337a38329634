"""pipeline/costs.py: sampled frames and the estimated run time before a run."""
from __future__ import annotations

from pathlib import Path

from pipeline.costs import CostTable, estimate_run
from pipeline.records import VideoInfo
from settings import Settings


def _info(fps: float, seconds: float, image: bool = False) -> VideoInfo:
    return VideoInfo(path=Path("x.mp4"), fps=fps, frame_count=int(round(fps * seconds)),
                     width=768, height=576, is_image=image)


COSTS = CostTable(startup_s=2.0, store_s=1.0, regular_ms_per_frame=100.0,
                  dense_ms_per_frame=300.0, measured_on="test")


def test_estimate_follows_the_sampling_rate():
    s = Settings()
    e = estimate_run(_info(10.0, 79.5), s, COSTS)  # vtest: every 7th frame, 1.43/s
    assert (e.frame_skip, e.frames_sampled, e.dense) == (7, 114, False)
    assert e.seconds == round(2.0 + 1.0 + 114 * 0.1, 1)
    assert estimate_run(_info(10.0, 79.5), s, COSTS, store=False).seconds == round(2.0 + 11.4, 1)
    faster = estimate_run(_info(30.0, 600.0), s.with_overrides(sample_fps=0.5), COSTS)
    assert (faster.frame_skip, faster.frames_sampled) == (60, 300)
    assert estimate_run(_info(30.0, 600.0), s.with_overrides(frame_skip=10, sample_fps=0.5),
                        COSTS).frame_skip == 10  # the frame skip wins


def test_short_clips_are_dense_and_stills_are_one_frame():
    e = estimate_run(_info(30.0, 7.0), Settings(), COSTS)
    assert e.dense and e.frame_skip == 4 and e.frames_sampled == 53
    still = estimate_run(_info(1.0, 1.0, image=True), Settings(), COSTS)
    assert still.frames_sampled == 1 and not still.dense


def test_cost_table_round_trips_and_survives_a_bad_file(tmp_path):
    p = tmp_path / "costs.json"
    COSTS.save(p)
    assert CostTable.load(p) == COSTS
    p.write_text("{not json")
    assert CostTable.load(p) == CostTable()
    assert CostTable.load().regular_ms_per_frame > 0  # the shipped table (written by the bench)


def test_estimate_of_a_source(tmp_path):
    from conftest import testdata_path
    from services.jobs.estimate import estimate_source

    s = Settings(data_dir=tmp_path)
    clip = testdata_path("clips/pedestrians/vtest.avi")
    e = estimate_source(s, str(clip), 1.5, COSTS)
    assert (e.frame_skip, e.frames_sampled) == (7, 114)
    assert estimate_source(s, str(clip), 0.5, COSTS).frames_sampled == 40  # every 20th
    assert estimate_source(s, "s3://bucket/videos/x.mp4") is None  # not downloaded yet
    assert estimate_source(s, "local:../../etc/passwd") is None
    assert estimate_source(s, str(tmp_path / "missing.mp4")) is None
