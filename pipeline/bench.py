"""``python -m pipeline bench``: per-stage milliseconds per sampled frame, sampled frames per
second, real-time factor and peak memory of the engine, against a naive baseline in the same
run (seek-and-decode for every sampled frame, and attributes/orientation/action called one
person at a time).

Default clips (a benchmark may read ../shared): vtest_first20s (768x576, 10 fps, 3-10 people)
and Fall01 (406x720, 30 fps), plus the full 79.5 s vtest.avi for the engine only, to show that
peak memory does not grow with video length.
"""
from __future__ import annotations

import argparse
import gc
import logging
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

SHARED = REPO_ROOT.parent / "shared" / "testdata" / "clips"
DEFAULT_CLIPS = [SHARED / "pedestrians" / "vtest_first20s.mp4", SHARED / "falls" / "Fall01.mp4"]
LONG_CLIP = SHARED / "pedestrians" / "vtest.avi"


@dataclass
class Timing:
    clip: str
    mode: str
    duration_s: float
    frames_sampled: int
    frame_skip: int
    wall_s: float
    stage_ms: dict = field(default_factory=dict)
    peak_growth_mb: float = 0.0  # peak RSS minus RSS at the start of this measurement
    peak_rss_mb: float = 0.0
    persons: int = 0
    cpu_s: float = 0.0  # process CPU time (all threads): wall x cores when the machine is idle

    @property
    def fps_sampled(self) -> float:
        return self.frames_sampled / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def realtime(self) -> float:
        return self.duration_s / self.wall_s if self.wall_s > 0 else 0.0

    def ms_per_frame(self, stage: str) -> float:
        return self.stage_ms.get(stage, 0.0) / max(1, self.frames_sampled)


class _RssPeak:
    """Peak resident memory of this process while a block runs (sampled every 20 ms)."""

    def __enter__(self):
        import psutil

        self._p = psutil.Process()
        self.peak = self._p.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._p.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._p.memory_info().rss)


def _measure(fn):
    """(result, wall s, peak RSS growth MB over the start, peak RSS MB, CPU s). No tracemalloc:
    tracing every allocation would slow the Python parts and distort the timings."""
    import psutil

    gc.collect()
    before = psutil.Process().memory_info().rss
    t0, c0 = time.perf_counter(), time.process_time()
    with _RssPeak() as rss:
        out = fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return out, wall, max(0, rss.peak - before) / 2**20, rss.peak / 2**20, cpu


def bench_engine(clip: Path, settings: Settings, backends) -> Timing:
    from pipeline.run import effective_frame_skip, run_video
    from pipeline.sampling import probe_video

    info = probe_video(clip)
    with tempfile.TemporaryDirectory() as tmp:
        result, wall, py_mb, rss_mb, cpu = _measure(
            lambda: run_video(clip, Path(tmp) / "out", settings, backends=backends))
    return Timing(clip.name, "engine", info.duration_s, result.frames_sampled,
                  effective_frame_skip(info, settings.frame_skip), wall, dict(result.stage_ms),
                  py_mb, rss_mb, len(result.observations), cpu)


def bench_baseline(clip: Path, settings: Settings, backends, frame_skip: int) -> Timing:
    """The naive way: seek and decode each sampled frame on its own (the detector the engine
    used on this clip: the dense one for a short clip), and run the per-person stages one person
    at a time; no tracking, events or outputs."""
    from pipeline.run import pass_detector
    from pipeline.sampling import probe_video, read_frames

    info = probe_video(clip)
    stage_ms: dict[str, float] = defaultdict(float)
    count = {"frames": 0, "persons": 0}

    det = pass_detector(info, frame_skip, settings, backends)

    def work():
        for fn in range(0, max(1, info.frame_count), frame_skip):
            t = time.perf_counter()
            frames = read_frames(clip, fn, fn, 1, info)  # a seek per sampled frame
            stage_ms["decode"] += (time.perf_counter() - t) * 1000
            if not frames:
                continue
            frame = frames[0]
            t = time.perf_counter()
            persons = det.detect([frame])[0]
            stage_ms["detector"] += (time.perf_counter() - t) * 1000
            for i in range(len(persons)):
                one = persons[i]
                for stage, fn_ in (("attributes", backends.attributes.estimate),
                                   ("orientation", backends.orientation.estimate)):
                    t = time.perf_counter()
                    fn_(frame, one)
                    stage_ms[stage] += (time.perf_counter() - t) * 1000
                t = time.perf_counter()
                backends.action.recognize(frame, one, {})
                stage_ms["action"] += (time.perf_counter() - t) * 1000
            count["frames"] += 1
            count["persons"] += len(persons)

    _, wall, py_mb, rss_mb, cpu = _measure(work)
    return Timing(clip.name, "baseline", info.duration_s, count["frames"], frame_skip, wall,
                  dict(stage_ms), py_mb, rss_mb, count["persons"], cpu)


def warm_up(clip: Path, backends) -> None:
    """One untimed pass of each model on the clip's first frame: onnxruntime plans each new
    input shape on first use, and the tracker imports supervision (~1 s) when first built; both
    would otherwise be charged to whichever run comes first."""
    from pipeline.sampling import iter_frames
    from pipeline.tracking import PersonTracker

    PersonTracker(1.0)
    frame = next(iter(iter_frames(clip, 1)))
    persons = backends.dense.detect([frame])[0]  # runs the main detector too
    backends.attributes.estimate(frame, persons)
    backends.orientation.estimate(frame, persons)


STAGES = ("decode", "detector", "tracking", "attributes", "orientation", "action", "scene",
          "highlights", "outputs")


def format_table(rows: list[Timing]) -> str:
    head = (f"{'clip':<22} {'mode':<8} {'skip':>4} {'frames':>6} {'fr/s':>6} {'x RT':>6} "
            + " ".join(f"{s[:6]:>6}" for s in STAGES) + f" {'+MB':>6} {'rssMB':>6} {'cpu_s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.clip[:22]:<22} {r.mode:<8} {r.frame_skip:>4} {r.frames_sampled:>6} "
            f"{r.fps_sampled:>6.2f} {r.realtime:>6.2f} "
            + " ".join(f"{r.ms_per_frame(s):>6.1f}" for s in STAGES)
            + f" {r.peak_growth_mb:>6.1f} {r.peak_rss_mb:>6.0f} {r.cpu_s:>6.1f}")
    lines.append("(stage columns: ms per sampled frame; x RT: video seconds per wall second; +MB:"
                 " peak memory growth during the run; rssMB: peak resident memory; cpu_s: process CPU seconds)")
    try:
        import os

        load = os.getloadavg()[0]
        lines.append(f"load average {load:.1f} on {os.cpu_count()} cores: wall times include "
                     f"waiting for other processes when the load exceeds the core count")
    except OSError:
        pass
    by_clip: dict[str, dict[str, Timing]] = defaultdict(dict)
    for r in rows:
        by_clip[r.clip][r.mode] = r
    for clip, modes in by_clip.items():
        if "engine" in modes and "baseline" in modes:
            e, b = modes["engine"], modes["baseline"]
            e_ms = e.wall_s * 1000 / max(1, e.frames_sampled)
            b_ms = b.wall_s * 1000 / max(1, b.frames_sampled)
            lines.append(
                f"{clip}: engine {e_ms:.0f} ms vs baseline {b_ms:.0f} ms per sampled frame "
                f"(x{b_ms / max(e_ms, 1e-9):.2f}); decode x"
                f"{b.ms_per_frame('decode') / max(e.ms_per_frame('decode'), 1e-9):.2f}; "
                f"people found {e.persons / max(1, e.frames_sampled):.1f} vs "
                f"{b.persons / max(1, b.frames_sampled):.1f} per frame")
    return "\n".join(lines)


def main(args: argparse.Namespace | None = None) -> int:
    from pipeline.backends.registry import load_backends

    if args is None:
        args = argparse.Namespace(clips=None, frame_skip=20, no_baseline=False)
    settings = Settings.from_env().with_overrides(frame_skip=args.frame_skip)
    clips = [Path(c) for c in args.clips] if args.clips else list(DEFAULT_CLIPS)
    missing = [str(c) for c in clips if not c.exists()]
    if missing:
        from pipeline.errors import VideoOpenError

        raise VideoOpenError(f"benchmark clip(s) {missing} not found; give --clips PATH... or put "
                             f"../shared/testdata beside the repository")
    backends = load_backends(settings)
    rows: list[Timing] = []
    for clip in clips + ([LONG_CLIP] if not args.clips and LONG_CLIP.exists() else []):
        warm_up(clip, backends)
    for clip in clips:
        e = bench_engine(clip, settings, backends)
        rows.append(e)
        if not args.no_baseline:
            rows.append(bench_baseline(clip, settings, backends, e.frame_skip))
    if not args.clips and LONG_CLIP.exists():
        rows.append(bench_engine(LONG_CLIP, settings, backends))  # memory vs video length
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
