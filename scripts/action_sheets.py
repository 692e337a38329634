"""Labelling aid: contact sheets of the engine's people (from ``scripts/action_tracks.py``'s cache).

    python scripts/action_sheets.py var/actions/sheets/fight fight/   # FOLDER [CLIP PREFIX...]

Each cell shows one person-sample: the same crop window at t-0.6 s, t and t+0.6 s (the box drawn
on t), so that walking can be told from standing; its number indexes ``samples.csv`` in the same
folder (clip, frame, t, track, box). Samples of the single-person clips that
../shared/testdata/ground_truth.json labels are taken from there (``action_labels.py``) and not
drawn, nor are samples already in ``models/actions_labels.csv``.
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from action_tracks import load_tracks, path_of  # noqa: E402
from action_labels import LABELS, ground_truth_rows  # noqa: E402

PER_SHEET = 18
COLS = 3
MINI_W, MINI_H = 100, 130


def pick_samples(tracks: dict[str, dict]) -> list[dict]:
    """Per track, samples at least ``gap`` seconds apart (about 3 a track in a 2 s clip)."""
    out = []
    auto = {(r["clip"], r["frame"], r["track"]) for r in ground_truth_rows(tracks)}
    # samples already in the set hold their place in the track's spacing but are not drawn again
    labelled = ({(r["clip"], int(r["frame"]), int(r["track"]))
                 for r in csv.DictReader(open(LABELS))} if LABELS.exists() else set())
    for clip, data in tracks.items():
        gap = 1.3 if data["sampled_fps"] < 3 else (0.6 if clip.startswith(("falls/", "adl/", "intel/")) else 1.5)
        by_track = defaultdict(list)
        for r in data["rows"]:
            by_track[r["track"]].append(r)
        for tid, rows in sorted(by_track.items()):
            last = -1e9
            for r in rows:
                if (clip, r["frame"], tid) in auto:
                    continue
                if (clip, r["frame"], tid) in labelled:
                    last = r["t"]
                    continue
                if r["t"] - last >= gap - 1e-6:
                    out.append({"clip": clip, "frame": r["frame"], "t": r["t"], "track": tid,
                                "box": r["box"]})
                    last = r["t"]
    return out


def frames_of(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    got, i, top = {}, 0, max(wanted)
    while i <= top:
        ok, img = cap.read()
        if not ok:
            break
        if i in wanted:
            got[i] = img
        i += 1
    cap.release()
    return got


def cell(frames: dict[int, np.ndarray], s: dict, fps: float, n: int) -> np.ndarray:
    x0, y0, x1, y1 = s["box"]
    w, h = x1 - x0, y1 - y0
    cw, ch = max(w * 2.0, h * 0.8, 24), max(h * 1.4, w * 1.0, 30)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    minis = []
    for k, dt in enumerate((-0.6, 0.0, 0.6)):
        f = s["frame"] + int(round(dt * fps))
        img = frames.get(f)
        mini = np.full((MINI_H, MINI_W, 3), 40, np.uint8)
        if img is not None:
            H, W = img.shape[:2]
            a, b = int(max(0, cx - cw / 2)), int(max(0, cy - ch / 2))
            c, d = int(min(W, cx + cw / 2)), int(min(H, cy + ch / 2))
            crop = img[b:d, a:c].copy()
            if dt == 0.0:
                cv2.rectangle(crop, (int(x0 - a), int(y0 - b)), (int(x1 - a), int(y1 - b)),
                              (0, 255, 0), max(1, int(max(crop.shape[:2]) / 120)))
            if crop.size:
                sc = min(MINI_W / crop.shape[1], MINI_H / crop.shape[0])
                crop = cv2.resize(crop, (max(1, int(crop.shape[1] * sc)),
                                         max(1, int(crop.shape[0] * sc))))
                mini[:crop.shape[0], :crop.shape[1]] = crop
        minis.append(mini)
    out = np.concatenate(minis, axis=1)
    out = cv2.copyMakeBorder(out, 18, 4, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(out, f"{n}  {int(w)}x{int(h)}px", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 200), 1)
    return out


def render(folder: Path, prefixes: tuple[str, ...] = ("",)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tracks = {k: v for k, v in load_tracks().items() if k.startswith(prefixes)}
    samples = pick_samples(tracks)
    with open(folder / "samples.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["n", "clip", "frame", "t", "track", "x1", "y1", "x2", "y2"])
        for n, s in enumerate(samples):
            wr.writerow([n, s["clip"], s["frame"], s["t"], s["track"], *s["box"]])
    cells = {}
    by_clip = defaultdict(list)
    for n, s in enumerate(samples):
        by_clip[s["clip"]].append((n, s))
    for clip, items in by_clip.items():
        fps = tracks[clip]["fps"]
        wanted = {s["frame"] + int(round(dt * fps)) for _, s in items for dt in (-0.6, 0, 0.6)}
        frames = frames_of(path_of(clip), {w for w in wanted if w >= 0})
        for n, s in items:
            cells[n] = cell(frames, s, fps, n)
    order = sorted(cells)
    for p in range(0, len(order), PER_SHEET):
        chunk = [cells[n] for n in order[p:p + PER_SHEET]]
        while len(chunk) % COLS:
            chunk.append(np.full_like(chunk[0], 255))
        rows = [np.concatenate(chunk[i:i + COLS], axis=1) for i in range(0, len(chunk), COLS)]
        cv2.imwrite(str(folder / f"sheet_{p // PER_SHEET:03d}.png"), np.concatenate(rows, axis=0))
    print(f"{len(samples)} samples, {len(order)} cells, sheets in {folder}")


if __name__ == "__main__":
    render(Path(sys.argv[1] if len(sys.argv) > 1 else "var/actions/sheets"),
           tuple(sys.argv[2:]) or ("",))
