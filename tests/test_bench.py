"""The benchmark command on a short real clip: the CLI timed as a subprocess, the table's header
and the row (a smoke test, not a timing assertion)."""
from __future__ import annotations

import argparse

from conftest import testdata_path as data_path
from pipeline import bench


def test_bench_smoke_on_a_short_clip(capsys):
    clip = data_path("clips/intel/classroom.mp4")
    before = bench.DEFAULT_CLIP  # the quick mode never writes the cost table
    rc = bench.main(argparse.Namespace(clips=[str(clip)], quick=True, no_baseline=True,
                                       no_previous=True, no_long=True, sample_fps=None))
    assert rc == 0 and bench.DEFAULT_CLIP == before
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["clip", "mode", "skip", "frames", "wall_s", "x"]
    (row,) = [ln.split() for ln in lines if ln.startswith("classroom.mp4 ")]
    assert row[1] == "no-store" and int(row[3]) > 0 and float(row[4]) > 0 and float(row[6]) > 50
    assert any(ln.startswith("load average") for ln in lines)


def test_long_video_is_remuxed_end_to_end(tmp_path):
    from pipeline.sampling import probe_video

    src = data_path("clips/intel/classroom.mp4")
    out = bench.make_long_video(src, tmp_path / "long.mp4", target_s=3 * probe_video(src).duration_s)
    a, b = probe_video(src), probe_video(out)
    assert abs(b.duration_s - 3 * a.duration_s) < 0.5 and (b.width, b.height) == (a.width, a.height)


def test_costs_take_storing_from_the_runs_own_stages():
    """The Analyze page's storing estimate is the default run's database start, embedding and
    storing, not the difference of two runs' wall times (0 whenever the --no-store run was
    the slower one, as under load it can be)."""
    from pipeline.bench import Timing, costs_from

    stages = {"detector": 20000.0, "highlights": 10000.0}
    default = Timing("v", "default", 80.0, 100, 7, 40.3,
                     {**stages, "start": 800.0, "embed": 600.0, "store": 300.0})
    no_store = Timing("v", "no-store", 80.0, 100, 7, 41.4, dict(stages))
    table = costs_from(default, no_store, None)
    assert table.store_s == 1.7
    assert table.regular_ms_per_frame == 300.0 and table.startup_s == 11.4
    older = Timing("v", "default", 80.0, 100, 7, 45.0, dict(stages))  # no storing stages
    assert costs_from(older, no_store, None).store_s == 3.6
