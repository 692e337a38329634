"""Measure the scene-cut scores (pipeline/cuts.py: PySceneDetect's content score and the colour
histograms' distance, on frames shrunk to CUT_SIZE_PX on the longer side) on footage that is not
the acceptance test: ../shared/datasets/surveillance-fight (237 clips of shops, cafes, streets, buses; fights are the hardest case, whole-frame motion).

* within: consecutive frames of one clip, at the product's sampling (1.5 a second) and at the
  dense sampling of short clips (every ~0.13 s): no cut is expected (a clip that holds a cut of
  its own shows up at the top and is printed to be looked at);
* across: the last sampled frame of one clip and the first of a clip from another source video
  (a hard cut between two cameras).

Prints percentiles of both, the largest within scores with their clips, the cost per frame, and
the separation at candidate thresholds. Usage: .venv/bin/python scripts/measure_cuts.py
"""
from __future__ import annotations

import csv
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "datasets" / "surveillance-fight"


def main() -> None:
    from pipeline.cuts import CutDetector
    from pipeline.records import Frame
    from pipeline.sampling import VideoFrames, probe_video

    rows = list(csv.DictReader(open(DATA / "labels.csv")))
    within: list[tuple[float, str, str, int]] = []
    ends: list[tuple[str, Frame, Frame]] = []
    n_frames, spent = 0, 0.0
    for r in rows:
        path = DATA / r["clip"]
        info = probe_video(path)
        for mode, dt in (("sampled", 1 / 1.5), ("dense", 0.13)):
            skip = max(1, int(round(info.fps * dt)))
            det = CutDetector()
            frames = list(VideoFrames(path, skip, info))
            for f in frames:
                t = time.perf_counter()
                det.is_cut(f)
                spent += time.perf_counter() - t
                n_frames += 1
                if f.sample_index > 0:
                    within.append((det.score, det.hist_distance, mode, r["clip"], f.frame_number))
            if mode == "sampled" and frames:
                ends.append((r["source_video"], frames[0], frames[-1]))
    rng = random.Random(0)
    across = []
    for src, first, last in ends:
        others = [e for e in ends if e[0] != src]
        for _ in range(3):
            _, nxt, _ = rng.choice(others)
            import cv2

            # one video keeps its frame size across a cut: the next camera at this one's size
            h, w = last.image.shape[:2]
            nxt = Frame(nxt.frame_number, nxt.t_s, cv2.resize(nxt.image, (w, h)))
            det = CutDetector()
            det.is_cut(last)
            det.is_cut(nxt)
            across.append((det.score, det.hist_distance))
    import json

    Path("/tmp/cut_scores.json").write_text(json.dumps({"within": within, "across": across}))
    report(within, across, n_frames, spent)


def report(within, across, n_frames, spent):
    w = np.array([(s, h) for s, h, *_ in within])
    a = np.array(across)
    q = (50, 90, 99, 99.9, 100)
    print(f"clips {len(set(c for *_, c, _ in within))}, frames scored {n_frames}, "
          f"{1000 * spent / max(n_frames, 1):.2f} ms a frame")
    for mode in ("sampled", "dense"):
        m = np.array([(s, h) for s, h, md, *_ in within if md == mode])
        print(f"within ({mode}, {len(m)} pairs) percentiles {q}: content "
              f"{np.percentile(m[:, 0], q).round(1)} "
              f"histogram {np.percentile(m[:, 1], q).round(2)}")
    q0 = (0, 1, 5, 10, 50)
    print(f"across ({len(a)} pairs) percentiles {q0}: content {np.percentile(a[:, 0], q0).round(1)}"
          f" histogram {np.percentile(a[:, 1], q0).round(2)}")
    print("largest within scores (content, histogram):")
    for s, h, mode, clip, fn in sorted(within, reverse=True)[:12]:
        print(f"  {s:6.1f} {h:5.2f} {mode:8s} {clip} frame {fn}")
    for thr in (20, 25, 27, 30, 35, 40):
        for hd in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3):
            fc = int(((w[:, 0] >= thr) & (w[:, 1] >= hd)).sum())
            mc = int(((a[:, 0] < thr) | (a[:, 1] < hd)).sum())
            print(f"content {thr} histogram {hd}: false cuts {fc}/{len(w)}, "
                  f"missed cuts {mc}/{len(a)}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--report"]:  # again from the scores of the last run
        import json

        d = json.loads(Path("/tmp/cut_scores.json").read_text())
        report([tuple(x) for x in d["within"]], d["across"], 0, 0.0)
    else:
        main()
