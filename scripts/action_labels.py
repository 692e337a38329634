"""The labelled action set, ``models/actions_labels.csv``: one row per person-sample (clip, sampled
frame, time, the engine's track and box at that frame, the action, where the label came from).

    python scripts/action_labels.py var/actions/sheets/*/   # merge visual labels + ground truth
    python scripts/action_labels.py --append var/actions/sheets/NEW/   # add one folder's labels
    python scripts/action_labels.py --append --held-out var/actions/sheets/NEW/
        # ... as a test set: source ``visual_held_out``, never trained on (train_actions.py)

Two sources:
* ``visual``: labelled by eye on the contact sheets of ``action_sheets.py``; the labeller's
  ``labels_visual.txt`` in the sheets folder holds ``n action`` lines (n indexes samples.csv);
  samples left out or labelled ``skip`` are not in the set, ``unknown`` ones are kept as such.
* ``visual_held_out``: labelled the same way, kept as a test set that ``train_actions.py`` never
  trains or tunes on (``--held-out``).
* ``ground_truth``: the main person (longest track) of the single-person clips of
  ../shared/testdata/ground_truth.json, inside its walking/standing/sitting/lying intervals and at
  least ``GT_MARGIN_S`` from their ends.
See models/actions_labelling.md for what each action means.
"""
from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from action_tracks import ROOT, SHARED, camera_of, fight_sources, load_tracks  # noqa: E402

LABELS = ROOT / "models" / "actions_labels.csv"
GT_MARGIN_S = 0.3
GT_MAIN_TRACK_CLIPS = {
    "falls/Fall01.mp4", "falls/Fall03.mp4", "falls/Fall04.mp4", "falls/Fall05.mp4",
    "falls/urfd-fall-01-cam0.mp4", "adl/S1_ADL_16.mp4", "adl/S3_ADL_15.mp4",
    "falls/S2_Fall_12.mp4",
}
POSTURES = {"standing", "walking", "running", "sitting", "lying"}
ALLOWED = POSTURES | {"unknown", "falling"}
FIELDS = ["clip", "camera", "frame", "t", "track", "x1", "y1", "x2", "y2", "action", "source"]


def gt_intervals() -> dict[str, list[tuple[str, float, float]]]:
    g = json.loads((SHARED / "testdata" / "ground_truth.json").read_text())
    out = {}
    for clip in GT_MAIN_TRACK_CLIPS:
        ev = g["clips/" + clip]["events"]
        out[clip] = [(e["type"], float(e["start"]), float(e["end"])) for e in ev
                     if e["type"] in POSTURES]
    return out


def main_track(rows: list[dict]) -> int | None:
    n = defaultdict(int)
    for r in rows:
        n[r["track"]] += 1
    return max(n, key=n.get) if n else None


def gt_label(intervals, t: float) -> str | None:
    for typ, a, b in intervals:
        if a + GT_MARGIN_S <= t <= b - GT_MARGIN_S:
            return typ
    return None


def ground_truth_rows(tracks: dict[str, dict]) -> list[dict]:
    out = []
    for clip, iv in sorted(gt_intervals().items()):
        if clip not in tracks:
            continue
        rows = tracks[clip]["rows"]
        main = main_track(rows)
        for r in rows:
            lab = gt_label(iv, r["t"]) if r["track"] == main else None
            if lab:
                out.append({"clip": clip, "frame": r["frame"], "t": r["t"], "track": r["track"],
                            "box": r["box"], "action": lab, "source": "ground_truth"})
    return out


def visual_rows(folder: Path, source: str = "visual") -> list[dict]:
    samples = {int(r["n"]): r for r in csv.DictReader(open(folder / "samples.csv"))}
    out = []
    for line in (folder / "labels_visual.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        for item in line.replace(",", " ").split(";"):
            parts = item.split()
            if len(parts) < 2:
                continue
            act = parts[-1]
            if act == "skip":
                continue
            if act not in ALLOWED:
                raise SystemExit(f"unknown action {act!r} in line {line!r}")
            for tok in parts[:-1]:
                lo, _, hi = tok.partition("-")
                for n in range(int(lo), int(hi or lo) + 1):
                    s = samples[n]
                    out.append({"clip": s["clip"], "frame": int(s["frame"]), "t": float(s["t"]),
                                "track": int(s["track"]),
                                "box": [float(s[k]) for k in ("x1", "y1", "x2", "y2")],
                                "action": act, "source": source})
    return out


def existing_rows() -> list[dict]:
    """The rows already in the file (the sheets they came from need not be on this machine)."""
    return [{"clip": r["clip"], "frame": int(r["frame"]), "t": float(r["t"]),
             "track": int(r["track"]), "box": [float(r[k]) for k in ("x1", "y1", "x2", "y2")],
             "action": r["action"], "source": r["source"]}
            for r in csv.DictReader(open(LABELS))]


def merge(folders: list[Path], append: bool = False, source: str = "visual") -> None:
    """Write the set from ground truth and the sheets' labels; ``append``: keep the file's rows
    (they win over a sheet's label of the same sample) and add the folders' new ones."""
    tracks = load_tracks()
    src = fight_sources()
    new = [r for f in folders for r in visual_rows(f, source)]
    rows = (existing_rows() if append else ground_truth_rows(tracks)) + new
    seen = set()
    with open(LABELS, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(FIELDS)
        # sorted() is stable: with ``append`` the file's row comes first for a repeated sample
        for r in sorted(rows, key=lambda r: (r["clip"], r["frame"], r["track"])):
            key = (r["clip"], r["frame"], r["track"])
            if key in seen:
                continue
            seen.add(key)
            wr.writerow([r["clip"], camera_of(r["clip"], src), r["frame"], r["t"], r["track"],
                         *r["box"], r["action"], r["source"]])
    print(f"{len(seen)} samples -> {LABELS}")


if __name__ == "__main__":
    args = sys.argv[1:]
    merge([Path(a) for a in args if not a.startswith("--")], append="--append" in args,
          source="visual_held_out" if "--held-out" in args else "visual")
