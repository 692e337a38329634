"""The benchmark command on a short real clip: both modes timed, the table and the ratio line."""
from __future__ import annotations

import argparse

from conftest import testdata_path as data_path
from pipeline import bench


def test_bench_table_on_a_short_clip(capsys):
    clip = data_path("clips/intel/classroom.mp4")
    rc = bench.main(argparse.Namespace(clips=[str(clip)], frame_skip=20, no_baseline=False))
    assert rc == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["clip", "mode", "skip", "frames", "fr/s"] and "x RT" in lines[0]
    rows = [ln for ln in lines if ln.startswith("classroom.mp4 ")]
    assert [r.split()[1] for r in rows] == ["engine", "baseline"]
    engine = rows[0].split()
    assert int(engine[3]) > 0 and float(engine[4]) > 0 and float(engine[5]) > 0  # frames, fr/s, xRT
    assert any(ln.startswith("classroom.mp4: engine") and "per sampled frame" in ln for ln in lines)
