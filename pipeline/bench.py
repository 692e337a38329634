"""``python -m pipeline bench``: what a user runs, timed whole.

Each measured run is the CLI (``python -m pipeline run``) as a subprocess on a clip at the
default 1.5 sampled frames per second: wall time of the whole process (imports, model loading,
the embedded database's start and stop, embedding and storing included), real-time factor,
peak resident memory of the largest process of its tree (psutil, every 20 ms) and the stages'
ms per sampled frame (the run reports them with the hidden ``--timings`` flag). Modes:

* ``default``: the CLI with storing (the product as a user runs it: OpenVINO, default precision);
* ``no-store``: the CLI with ``--no-store`` (the engine and its files only);
* ``ort``, ``ort-nost``: the same two with ``VA_RUNTIME=onnxruntime``, interleaved with them (the
  runtime's gain is a ratio within one run); ``bf16-nost``: ``--no-store``, ``VA_PRECISION=bf16``;
* ``previous``: the previous default (commit ``PREVIOUS_COMMIT``, checked out in a temporary git
  worktree) with storing, at the same rate (``--frame-skip`` from the rate: it has no
  ``--sample-fps``); skipped with a note when git or the commit is not there;
* ``baseline``: the naive way, in this process (seek and decode each sampled frame, run the
  per-person stages one person at a time; no tracking, events, outputs or storing);
* ``10min``: the default on a 10-minute video made by remuxing vtest.avi end to end (PyAV, no
  re-encoding), to show memory flat in video length.

Default clip (a benchmark may read ../shared): pedestrians/vtest.avi (768x576, 10 fps, 79.5 s,
about 7 people). With the default clip the measured costs are written to ``pipeline/costs.json``
(``pipeline/costs.py``: the Analyze page's estimate). Other helpers on the machine share its
cores: the load average is printed, and figures taken under load are lower bounds.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from settings import MAX_FRAME_SKIP, REPO_ROOT, Settings

log = logging.getLogger(__name__)

SHARED = REPO_ROOT.parent / "shared" / "testdata" / "clips"
DEFAULT_CLIP = SHARED / "pedestrians" / "vtest.avi"
DENSE_CLIP = SHARED / "falls" / "Fall01.mp4"  # a short clip: the dense passes' cost per frame
#: The previous default the bench compares with (frame skip 20, sentence-transformers on torch,
#: one vector per sampled frame, 2x2 tiles on every frame with small people).
PREVIOUS_COMMIT = "1bcb611"
LONG_VIDEO_S = 600.0
ENGINE_STAGES = ("decode", "detector", "tracking", "attributes", "orientation", "action",
                 "scene", "objects", "object_tracking", "highlights", "postprocess", "outputs")


@dataclass
class Timing:
    clip: str
    mode: str
    duration_s: float
    frames_sampled: int
    frame_skip: int
    wall_s: float
    stage_ms: dict = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    events: int = 0
    embedded: int = 0
    note: str = ""

    @property
    def realtime(self) -> float:
        return self.duration_s / self.wall_s if self.wall_s > 0 else 0.0

    def ms_per_frame(self, stage: str) -> float:
        return self.stage_ms.get(stage, 0.0) / max(1, self.frames_sampled)

    @property
    def engine_ms(self) -> float:
        return sum(self.stage_ms.get(s, 0.0) for s in ENGINE_STAGES)


# --- measuring a process -----------------------------------------------------------------------


class _TreePeak:
    """Peak RSS of the largest process in a process tree (sampled every 20 ms)."""

    def __init__(self, pid: int):
        import psutil

        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()

    def _watch(self):
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    self.peak = max(self.peak, p.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(0.02)

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        return self.peak / 2**20


#: The other runtime (``ort`` rows) and precision (``bf16`` row) the default is measured against.
ONNXRUNTIME, BF16 = {"VA_RUNTIME": "onnxruntime"}, {"VA_PRECISION": "bf16"}


def _clean_env(data_dir: Path, extra: dict | None = None) -> dict:
    """The environment of a measured run: no VA_* of the caller (an older checkout rejects names it
    does not know), the hub off, its own data folder (database, runs), then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VA_DATA_DIR=str(data_dir),
               PYTHONWARNINGS="ignore", **(extra or {}))
    return env


def run_cli(repo: Path, args: list[str], data_dir: Path, timeout_s: float = 1800.0,
            env: dict | None = None) -> tuple[float, float, dict]:
    """(wall s, peak RSS MB of the largest process, the run's own timings) of one CLI run."""
    with tempfile.TemporaryDirectory(prefix="va-bench-") as tmp:
        timings = Path(tmp) / "timings.json"
        cmd = [sys.executable, "-m", "pipeline", "run", "--quiet", "--output",
               str(Path(tmp) / "out")] + args
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd + ["--timings", str(timings)], cwd=repo,
                                env=_clean_env(data_dir, env), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        peak = _TreePeak(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        finally:
            wall = time.perf_counter() - t0
            rss = peak.stop()
        if proc.returncode != 0 and "--timings" in err and "unrecognized" in err:
            # an older checkout without --timings: run it again without
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=repo, env=_clean_env(data_dir, env),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            peak = _TreePeak(proc.pid)
            out, err = proc.communicate(timeout=timeout_s)
            wall = time.perf_counter() - t0
            rss = peak.stop()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                               f"{(err or out).strip().splitlines()[-1:]}")
        data = json.loads(timings.read_text()) if timings.is_file() else {}
        if not data:  # the older CLI prints "N sampled frames, ..." or "... N events ..."
            words = out.split()
            for i, w in enumerate(words[1:], 1):
                if w.startswith("events") and words[i - 1].isdigit():
                    data["events"] = int(words[i - 1])
        return wall, rss, data


def measure(clip: Path, mode: str, repo: Path, args: list[str], data_dir: Path,
            settings: Settings, env: dict | None = None) -> Timing:
    from pipeline.sampling import SamplingPlan, probe_video

    info = probe_video(clip)
    frame_skip = SamplingPlan.for_video(info, settings).frame_skip
    duration_s = info.duration_s
    wall, rss, data = run_cli(repo, ["--input", str(clip)] + args, data_dir, env=env)
    frames = int(data.get("frames_sampled") or -(-max(1, info.frame_count) // frame_skip))
    t = Timing(clip.name, mode, duration_s, frames, frame_skip, wall,
               dict(data.get("stage_ms") or {}), rss, int(data.get("events") or 0),
               int(data.get("embedded") or 0))
    print(f"measured {clip.name} {mode} {' '.join(args)} {env or ''}: {wall:.1f} s, x{t.realtime:.2f} real "
          f"time, peak {rss:.0f} MB, {frames} frames, stages {t.stage_ms}", file=sys.stderr,
          flush=True)
    return t


# --- the previous default, from git ------------------------------------------------------------


class PreviousCheckout:
    """``PREVIOUS_COMMIT`` in a temporary git worktree (removed on exit), or None."""

    def __init__(self, commit: str = PREVIOUS_COMMIT):
        self.commit = commit
        self.path: Path | None = None
        self.why = ""

    def __enter__(self) -> "PreviousCheckout":
        if shutil.which("git") is None:
            self.why = "git is not installed"
            return self
        tmp = Path(tempfile.mkdtemp(prefix="va-previous-"))
        r = subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach",
                            str(tmp / "repo"), self.commit], capture_output=True, text=True)
        if r.returncode != 0:
            self.why = f"commit {self.commit} is not in this clone ({r.stderr.strip()[:120]})"
            shutil.rmtree(tmp, ignore_errors=True)
            return self
        self.path = tmp / "repo"
        return self

    def __exit__(self, *exc):
        if self.path is not None:
            subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force",
                            str(self.path)], capture_output=True)
            shutil.rmtree(self.path.parent, ignore_errors=True)


# --- a long video ------------------------------------------------------------------------------


def make_long_video(src: Path, out: Path, target_s: float = LONG_VIDEO_S) -> Path:
    """``src`` repeated end to end until ``target_s`` (packets remuxed with shifted timestamps;
    no re-encoding). Kept in ``out`` and reused."""
    import av

    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part" + out.suffix)
    with av.open(str(src)) as first:
        s = first.streams.video[0]
        dur_s = float(s.frames / float(s.average_rate)) if s.frames else first.duration / 1e6
    reps = max(1, int(-(-target_s // dur_s)))
    with av.open(str(tmp), "w", format="avi" if out.suffix == ".avi" else None) as dst:
        ostream = None
        offset = 0
        for _ in range(reps):
            with av.open(str(src)) as inp:
                istream = inp.streams.video[0]
                if ostream is None:
                    ostream = dst.add_stream_from_template(istream)
                last = offset
                for packet in inp.demux(istream):
                    if packet.dts is None:
                        continue
                    packet.dts += offset
                    if packet.pts is not None:
                        packet.pts += offset
                    last = max(last, int(packet.pts if packet.pts is not None else packet.dts)
                               + int(packet.duration or 1))
                    packet.stream = ostream
                    dst.mux(packet)
                offset = last
    tmp.rename(out)
    return out


# --- the naive baseline (in this process) ------------------------------------------------------


def bench_baseline(clip: Path, settings: Settings, backends, frame_skip: int) -> Timing:
    """The naive way: seek and decode each sampled frame on its own, and run the per-person stages
    one person at a time; no tracking, events, outputs or storing."""
    from pipeline.sampling import probe_video, read_frames

    info = probe_video(clip)
    stage_ms: dict[str, float] = defaultdict(float)
    count = {"frames": 0}
    det = backends.detector  # the settings' regular skip: the main detector
    t0 = time.perf_counter()
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
    wall = time.perf_counter() - t0
    import psutil

    return Timing(clip.name, "baseline", info.duration_s, count["frames"], frame_skip, wall,
                  dict(stage_ms), psutil.Process().memory_info().rss / 2**20,
                  note="in-process, engine stages only, models loaded beforehand")


# --- the table ---------------------------------------------------------------------------------

STAGES = ("decode", "detector", "tracking", "attributes", "action", "objects", "highlights", "outputs")


def format_table(rows: list[Timing], runtime: str = "default runtime") -> str:
    head = (f"{'clip':<18} {'mode':<9} {'skip':>4} {'frames':>6} {'wall_s':>7} {'x RT':>6} "
            f"{'rssMB':>6} " + " ".join(f"{s[:6]:>6}" for s in STAGES)
            + f" {'start':>6} {'embed':>6} {'store':>6} {'events':>6} {'vecs':>5}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.clip[:18]:<18} {r.mode:<9} {r.frame_skip:>4} {r.frames_sampled:>6} "
            f"{r.wall_s:>7.1f} {r.realtime:>6.2f} {r.peak_rss_mb:>6.0f} "
            + " ".join(f"{r.ms_per_frame(s):>6.1f}" for s in STAGES)
            + "".join(f" {r.stage_ms[k] / 1000:>6.2f}" if k in r.stage_ms else f" {'':>6}"
                      for k in ("start", "embed", "store"))
            + f" {r.events:>6} {r.embedded:>5}" + (f"  ({r.note})" if r.note else ""))
    lines.append("(wall_s: whole process; x RT: video seconds per wall second; rssMB: peak resident "
                 "memory of the largest process; stage columns: ms per sampled frame; start, "
                 "embed, store: seconds for the database and models, embedding, storing; vecs: "
                 "vectors stored)")
    load = os.getloadavg()
    lines.append(f"load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min) on {os.cpu_count()} "
                 f"cores: figures taken under load are lower bounds")
    by_mode = {(r.clip, r.mode): r for r in rows}
    for (clip, mode), r in by_mode.items():
        other = {"default": "ort", "no-store": "ort-nost", "bf16-nost": "ort-nost"}.get(mode)
        o = by_mode.get((clip, other))
        if o is not None:
            what = "openvino bf16" if mode == "bf16-nost" else runtime
            lines.append(f"{clip}: {mode} ({what}) vs {other} (onnxruntime f32): {r.wall_s:.1f} vs "
                         f"{o.wall_s:.1f} s whole run (x{o.wall_s / max(r.wall_s, 1e-9):.2f}); "
                         f"detector {r.ms_per_frame('detector'):.0f} vs "
                         f"{o.ms_per_frame('detector'):.0f} ms per sampled frame; peak RSS "
                         f"{r.peak_rss_mb:.0f} vs {o.peak_rss_mb:.0f} MB")
        if mode != "default":
            continue
        for other in ("previous", "baseline"):
            o = by_mode.get((clip, other))
            if o is not None:
                what = "per sampled frame (engine)" if other == "baseline" else "whole run"
                a = r.engine_ms / max(1, r.frames_sampled) if other == "baseline" else r.wall_s
                b = o.wall_s * 1000 / max(1, o.frames_sampled) if other == "baseline" else o.wall_s
                lines.append(f"{clip}: default vs {other}: {a:.1f} vs {b:.1f} "
                             f"{'ms' if other == 'baseline' else 's'} {what} (x{b / max(a, 1e-9):.2f})"
                             + ("" if other == "baseline" else
                                f"; peak RSS {r.peak_rss_mb:.0f} vs {o.peak_rss_mb:.0f} MB"))
    return "\n".join(lines)


def costs_from(default: Timing, no_store: Timing, dense: Timing | None):
    from pipeline.costs import CostTable

    startup = max(0.0, no_store.wall_s - no_store.engine_ms / 1000.0)
    per = no_store.engine_ms / max(1, no_store.frames_sampled)
    dense_ms = ((dense.wall_s - startup) * 1000.0 / max(1, dense.frames_sampled)
                if dense is not None else CostTable().dense_ms_per_frame)
    # storing: the run's own stages (two runs' wall-time difference is 0 when noise inverts it)
    store = sum(default.stage_ms.get(k, 0.0) for k in ("start", "embed", "store")) / 1000.0
    store = store if store > 0 else max(0.0, default.wall_s - no_store.wall_s)
    return CostTable(startup_s=round(startup, 2), store_s=round(store, 2),
                     regular_ms_per_frame=round(per, 1), dense_ms_per_frame=round(dense_ms, 1),
                     measured_on=f"{default.clip}, {time.strftime('%Y-%m-%d')}, "
                                 f"{os.cpu_count()} cores, load {os.getloadavg()[1]:.1f}")


# --- main --------------------------------------------------------------------------------------


def main(args: argparse.Namespace | None = None) -> int:
    from pipeline.sampling import SamplingPlan, probe_video

    if args is None:
        args = argparse.Namespace(clips=None, quick=False, no_baseline=False, no_previous=False,
                                  no_long=False, sample_fps=None)
    settings = Settings.from_env()
    if getattr(args, "sample_fps", None):
        settings = settings.with_overrides(sample_fps=args.sample_fps)
    clips = [Path(c) for c in args.clips] if args.clips else [DEFAULT_CLIP]
    missing = [str(c) for c in clips if not c.exists()]
    if missing:
        from pipeline.errors import VideoOpenError

        raise VideoOpenError(f"benchmark clip(s) {missing} not found; give --clips PATH... or put "
                             f"../shared/testdata beside the repository")
    quick = bool(getattr(args, "quick", False))
    work = Path(settings.data_dir) / "bench"
    rate = ["--sample-fps", str(settings.sample_fps)]
    rows: list[Timing] = []
    found: dict[str, Timing] = {}
    for clip in clips:
        info = probe_video(clip)
        skip = SamplingPlan.for_video(info, settings).base_skip
        if quick:  # the smoke test: one engine-only run
            rows.append(measure(clip, "no-store", REPO_ROOT, rate + ["--no-store"], work / "new",
                                settings))
            continue
        # untimed: the database's first start (initdb, migrations) is a one-off
        run_cli(REPO_ROOT, ["--input", str(clip), "--frame-skip", str(MAX_FRAME_SKIP)], work / "new")
        ort = not getattr(args, "no_onnxruntime", False)
        # untimed whole runs first: OpenVINO compiles each input shape once, then loads its blob
        for env in (None, ONNXRUNTIME, BF16) if ort else (None,):
            run_cli(REPO_ROOT, ["--input", str(clip), "--no-store"] + rate, work / "new", env=env)
        # the default runtime and onnxruntime interleaved: the ratio is taken under one load
        for mode, extra, env in (("default", [], None), ("ort", [], ONNXRUNTIME),
                                 ("no-store", ["--no-store"], None),
                                 ("ort-nost", ["--no-store"], ONNXRUNTIME),
                                 ("bf16-nost", ["--no-store"], BF16)):
            if env is None or ort:
                found[mode] = measure(clip, mode, REPO_ROOT, rate + extra, work / "new",
                                      settings, env)
                rows.append(found[mode])
        if not getattr(args, "no_previous", False):
            with PreviousCheckout() as prev:
                if prev.path is None:
                    print(f"previous default not measured: {prev.why}", file=sys.stderr)
                else:
                    run_cli(prev.path, ["--input", str(clip), "--frame-skip", str(MAX_FRAME_SKIP)],
                            work / "previous")
                    t = measure(clip, "previous", prev.path, ["--frame-skip", str(skip)],
                                work / "previous", settings)
                    t.note = f"commit {PREVIOUS_COMMIT}"
                    rows.append(t)
        if not getattr(args, "no_baseline", False):
            from pipeline.backends.registry import load_backends

            rows.append(bench_baseline(clip, settings, load_backends(settings), skip))
    if not quick and not args.clips:
        if DENSE_CLIP.exists():
            found["dense"] = measure(DENSE_CLIP, "no-store", REPO_ROOT, rate + ["--no-store"],
                                     work / "new", settings)
            rows.append(found["dense"])
        if not getattr(args, "no_long", False):
            long_clip = make_long_video(DEFAULT_CLIP, work / "vtest_x8.avi")
            t = measure(long_clip, "default", REPO_ROOT, rate, work / "new", settings)
            t.mode, t.note = "10min", f"vtest.avi x{round(t.duration_s / 79.5)}"
            rows.append(t)
        costs = costs_from(found["default"], found["no-store"], found.get("dense"))
        costs.save()
        print(f"wrote pipeline/costs.json: {costs}", file=sys.stderr)
    from pipeline.backends.onnx_common import CpuInference

    print(format_table(rows, CpuInference.from_settings(settings).describe()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
