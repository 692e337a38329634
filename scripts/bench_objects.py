"""The object pass's cost per sampled frame (issue 24: <= 30 ms at the default runtime).

Decodes vtest.avi's sampled frames once (1.5 sampled fps, the product's default), then runs the
object pass (``pipeline.objects.ObjectPass``: YOLOv5s on every ``object_every``-th sample,
per-class ByteTrack, relations with no people) over them ``--repeats`` times in this process,
and prints the median total per sampled frame, with one YOLOv5s inference alone beside it, in
wall time and in CPU time (all threads: what the work costs whatever else runs). The baseline in
the same run: the same pass with YOLOv5s read at the proposals' 640x640 square (what the object
pass did before it read each frame at its own shape, ``YoloV5Coco.raw_fitted``), and the ratio.
The load on the machine is printed too: a wall time taken under load is an upper bound.

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
    from pipeline.objects import ObjectPass, object_every
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
    net = backend.network
    backend.detect(frames[0])  # compile
    net.raw(frames[0].image)

    def one_pass(square: bool) -> tuple[float, float, int]:
        """(wall ms, CPU ms) per sampled frame of the pass, and its YOLOv5s detections."""
        p = ObjectPass(backend, sampled_fps)
        t0, c0 = time.perf_counter(), time.process_time()
        n_inf = 0
        for f in frames:
            if p.due(f):
                if square:
                    net.raw(f.image)  # the square read; detect then reuses it
                p.add(f, p.detect(f), [])
                n_inf += 1
            net._last = (None, None, 1.0)  # no reuse across frames or repeats
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        one_pass.tracks = len(p.events())
        return 1000 * wall / len(frames), 1000 * cpu / len(frames), n_inf

    res = {"fitted": ([], [], [], []), "square": ([], [], [], [])}
    for _ in range(args.repeats):
        for mode in ("fitted", "square"):  # alternated: the same load for both
            per_frame, cpu_frame, per_inference, cpu_inference = res[mode]
            wall, cpu, n_inf = one_pass(mode == "square")
            per_frame.append(wall)
            cpu_frame.append(cpu)
            tracks = one_pass.tracks
            t1, c1 = time.perf_counter(), time.process_time()
            for f in frames[:n_inf]:
                net._last = (None, None, 1.0)
                if mode == "square":
                    net.raw(f.image)
                backend.detect(f)
            per_inference.append(1000 * (time.perf_counter() - t1) / n_inf)
            cpu_inference.append(1000 * (time.process_time() - c1) / n_inf)
    load = os.getloadavg()
    med = statistics.median
    print(f"video {args.video.name}: {len(frames)} sampled frames at {sampled_fps:.2f} fps, "
          f"objects every {object_every(sampled_fps)} samples ({tracks} object tracks)")
    print(f"runtime {args.runtime} {args.precision}, {settings.cpu_threads} threads, "
          f"{args.repeats} repeats; load average {load[0]:.1f} / {load[1]:.1f} on "
          f"{os.cpu_count()} CPUs")
    for mode, label in (("fitted", "the frame's own shape (the product)"),
                        ("square", "640x640 square (baseline)")):
        per_frame, cpu_frame, per_inference, cpu_inference = res[mode]
        print(f"{label}: object pass per sampled frame median {med(per_frame):.1f} ms "
              f"(min {min(per_frame):.1f}); one detection median {med(per_inference):.1f} ms "
              f"(min {min(per_inference):.1f}); CPU time, all threads: {med(cpu_frame):.1f} ms "
              f"per sampled frame, {med(cpu_inference):.1f} ms per detection")
    print(f"ratio baseline / product: object pass "
          f"{med(res['square'][0]) / med(res['fitted'][0]):.2f}x, one detection "
          f"{med(res['square'][2]) / med(res['fitted'][2]):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
