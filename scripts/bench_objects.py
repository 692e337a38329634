"""The object pass's cost per sampled frame (issue 24: <= 30 ms at the default runtime).

Decodes vtest.avi's sampled frames once (1.5 sampled fps, the product's default), then runs the
object pass (``pipeline.objects.ObjectPass``: YOLOv5s on every ``object_every``-th sample,
per-class ByteTrack, relations with no people) over them ``--repeats`` times in this process,
and prints the median total per sampled frame, with one YOLOv5s inference alone beside it, in
wall time and in CPU time (all threads: what the work costs whatever else runs). The load on the
machine is printed too: a wall time taken under load is an upper bound.

    python scripts/bench_objects.py [--seconds 60] [--repeats 5] [--runtime openvino]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
VTEST = ROOT.parent / "shared" / "testdata" / "clips" / "pedestrians" / "vtest.avi"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="video seconds to sample")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runtime", default="openvino", choices=("openvino", "onnxruntime"))
    ap.add_argument("--precision", default="f32", choices=("f32", "bf16", "auto"))
    ap.add_argument("--video", type=Path, default=VTEST)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)

    from pipeline.backends.objects import load_yolov5_objects
    from pipeline.objects import ObjectPass
    from pipeline.sampling import VideoFrames, probe_video
    from settings import Settings

    settings = Settings(runtime=args.runtime, precision=args.precision, cpu_threads=args.threads)
    info = probe_video(args.video)
    skip = settings.frame_skip_for(info.fps)
    sampled_fps = info.fps / skip
    frames = []
    for f in VideoFrames(args.video, skip, info):
        if f.t_s > args.seconds:
            break
        frames.append(f)
    backend = load_yolov5_objects(settings)
    backend.detect(frames[0])  # compile
    per_frame, per_inference, cpu_frame, cpu_inference = [], [], [], []
    for _ in range(args.repeats):
        p = ObjectPass(backend, sampled_fps)
        t0, c0 = time.perf_counter(), time.process_time()
        n_inf = 0
        for f in frames:
            if p.due(f):
                p.add(f, p.detect(f), [])
                n_inf += 1
            backend.network._last = (None, None, 1.0)  # no reuse across repeats
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        per_frame.append(1000 * total / len(frames))
        cpu_frame.append(1000 * cpu / len(frames))
        t1, c1 = time.perf_counter(), time.process_time()
        for f in frames[:n_inf]:
            backend.network._last = (None, None, 1.0)
            backend.detect(f)
        per_inference.append(1000 * (time.perf_counter() - t1) / n_inf)
        cpu_inference.append(1000 * (time.process_time() - c1) / n_inf)
    load = os.getloadavg()
    print(f"video {args.video.name}: {len(frames)} sampled frames at {sampled_fps:.2f} fps, "
          f"objects every {p.every} samples ({len(p.events())} object tracks)")
    print(f"runtime {args.runtime} {args.precision}, {settings.cpu_threads} threads, "
          f"{args.repeats} repeats; load average {load[0]:.1f} / {load[1]:.1f} on "
          f"{os.cpu_count()} CPUs")
    print(f"object pass per sampled frame: median {statistics.median(per_frame):.1f} ms "
          f"(min {min(per_frame):.1f})")
    print(f"one YOLOv5s detection: median {statistics.median(per_inference):.1f} ms "
          f"(min {min(per_inference):.1f})")
    # CPU time (all threads of this process) is what the work costs whatever else runs: on a
    # quiet machine the wall time is about it divided by the threads (less when they overlap)
    print(f"CPU time, all threads: object pass {statistics.median(cpu_frame):.1f} ms per "
          f"sampled frame, one detection {statistics.median(cpu_inference):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
