"""Choose the clothing-colour rules' thresholds (``pipeline.clothing.RuleParams``) by nested
cross-validation grouped by recording, on the hand-labelled regions of datasets/clothing.

    python scripts/tune_clothing_rules.py          # report -> models/clothing_rules_cv.json

Outer loop: the grouped folds of scripts/train_clothing.py (``folds``: StratifiedGroupKFold,
5 folds by ``source_video``). In each outer fold the thresholds are chosen on the training
recordings only, by coordinate descent over ``GRID`` (coarse steps, a handful of thresholds,
starting from today's values; a value replaces the current one only when it names more
training regions right; ties go to the value nearest the current one), and the held-out
recordings are named with them. The out-of-fold names of all folds are the nested figure,
compared with today's rules (``RULES``, not fitted: their names on the same rows).

``folds(seed 0)`` is the headline split (the one models/clothing.md reports for the learned
namer; StratifiedGroupKFold's ``shuffle`` only reorders groups whose class mix ties, so other
seeds give this same split here). As checks on how much the figure hangs on that one split:
leave-one-recording-out, and GroupKFold(5) with its groups shuffled (seeds 1-3).

New values would be worth shipping only when the headline nested accuracy beats today's by
``MARGIN``, the checks' mean gain does too, and no name with ``MIN_N`` or more labels loses more
than ``MAX_LOSS`` recall on the headline split;
the values to ship are then the ones chosen the same way on all rows (printed; written into
``pipeline/clothing.py`` by hand).

The regions' HSV pixels and their frames' brightness are read once (train_clothing.regions)
and cached in var/clothing/rules_hsv.npz (keyed by labels.csv's content).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from pipeline import clothing as C  # noqa: E402
from pipeline.media import region_hsv  # noqa: E402
from pipeline.records import Colour  # noqa: E402
import train_clothing as T  # noqa: E402

CACHE = ROOT / "var" / "clothing" / "rules_hsv.npz"
OUT = ROOT / "models" / "clothing_rules_cv.json"
CHECK_SEEDS = (1, 2, 3)
MARGIN = 0.03
MIN_N, MAX_LOSS = 10, 0.1
#: The thresholds searched and their coarse values (today's among them).
GRID = {
    "black_v": (30, 38, 45, 55),
    "dark_v": (55, 62, 70, 80, 90),
    "black_achro_v": (60, 70, 85, 100, 115),
    "achro_s": (35, 42, 50, 60, 70),
    "white_v": (130, 150, 170, 190, 210),
    "white_tint_v": (170, 190, 210, 230, 256),
    "orange_brown_v": (105, 120, 135, 150, 165),
}
SWEEPS = 4


@dataclasses.dataclass
class Data:
    px: np.ndarray  # (pixels, 3) OpenCV HSV of all regions, one after another
    region: np.ndarray  # (pixels,) each pixel's region
    small: np.ndarray  # (regions,) under MIN_PART_PX a side: UNKNOWN
    bright: np.ndarray  # (regions,) the frame's frame_brightness
    y: np.ndarray  # (regions,) names by eye
    g: np.ndarray  # (regions,) recordings


def load() -> Data:
    key = hashlib.sha1(T.LABELS.read_bytes()).hexdigest()
    if CACHE.is_file():
        z = np.load(CACHE, allow_pickle=False)
        if str(z["key"]) == key:
            return Data(z["px"], z["region"], z["small"], z["bright"], z["y"], z["g"])
    px, region, small, bright, y, g, today = [], [], [], [], [], [], []
    for r, image, stats, box in T.regions():
        hsv = region_hsv(image, box)
        i = len(y)
        px.append(hsv.reshape(-1, 3))
        region.append(np.full(hsv.shape[0] * hsv.shape[1], i, np.int32))
        small.append(min(hsv.shape[:2]) < C.MIN_PART_PX)
        bright.append(C.frame_brightness(image))
        y.append(r["colour"])
        g.append(r["source_video"])
        today.append(C.name_region(hsv, float(stats[0])).value)  # the frame's exposure_gain
    d = Data(np.concatenate(px), np.concatenate(region), np.array(small), np.array(bright),
             np.array(y), np.array(g))
    assert list(names(d, C.RULES)) == today  # the vectorised rules are the product's
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(CACHE, key=key, px=d.px, region=d.region, small=d.small,
                        bright=d.bright, y=d.y, g=d.g)
    return d


def names(d: Data, p: C.RuleParams) -> np.ndarray:
    """``name_region`` of every region with thresholds ``p`` (all regions at once)."""
    gain = np.clip(p.gain_target / np.maximum(d.bright, 1.0), 1.0, p.max_gain).astype(np.float32)
    k = len(C._NAMES)
    pn = C.pixel_names(d.px, gain[d.region], p).astype(np.int64)
    counts = np.bincount(d.region * k + pn, minlength=len(d.y) * k).reshape(len(d.y), k)
    best = counts.argmax(axis=1)
    ok = (counts[np.arange(len(best)), best] >= p.min_share * counts.sum(axis=1)) & ~d.small
    labels = np.array([c.value for c in C._NAMES])
    return np.where(ok, labels[best], Colour.UNKNOWN.value)


def valid(p: C.RuleParams) -> bool:
    return p.black_v <= p.dark_v and p.black_achro_v < p.white_v <= p.white_tint_v


def choose(d: Data, rows: np.ndarray, start: C.RuleParams = C.RULES) -> C.RuleParams:
    """Coordinate descent over ``GRID`` on ``rows``: the thresholds naming most of them right."""
    memo: dict = {}

    def right(p):
        if p not in memo:
            memo[p] = int(np.sum(names(d, p)[rows] == d.y[rows]))
        return memo[p]

    p = start
    for _ in range(SWEEPS):
        moved = False
        for field, values in GRID.items():
            now = getattr(p, field)
            cands = [dataclasses.replace(p, **{field: v}) for v in values]
            cands = [q for q in cands if valid(q)]
            best = max(right(q) for q in cands)
            if best <= right(p):
                continue
            q = min((q for q in cands if right(q) == best),
                    key=lambda q: abs(getattr(q, field) - now))
            p, moved = q, True
        if not moved:
            break
    return p


def changed(p: C.RuleParams) -> dict:
    return {f: getattr(p, f) for f in GRID if getattr(p, f) != getattr(C.RULES, f)}


def main() -> int:
    d = load()
    print(f"{len(d.y)} named regions, {len(set(d.g))} recordings, {len(d.px)} pixels")
    today = names(d, C.RULES)
    res = {"rows": int(len(d.y)), "grid": GRID, "today": T.report(d.y, today), "splits": {}}
    print(f"today's rules: accuracy {res['today']['accuracy']} "
          f"balanced recall {res['today']['balanced_recall']}")
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    splits = {"headline": T.folds(d.y, d.g, 0),
              "leave-one-recording-out": list(LeaveOneGroupOut().split(d.y, d.y, d.g))}
    for seed in CHECK_SEEDS:
        splits[f"groupkfold-{seed}"] = list(
            GroupKFold(T.FOLDS, shuffle=True, random_state=seed).split(d.y, d.y, d.g))
    for split, pairs in splits.items():
        pred = np.empty(len(d.y), "<U16")
        chosen = []
        for tr, te in pairs:
            p = choose(d, tr)
            pred[te] = names(d, p)[te]
            chosen.append(changed(p))
            if split == "headline":
                print(f"  fold: train {np.mean(names(d, p)[tr] == d.y[tr]):.3f} (today "
                      f"{np.mean(today[tr] == d.y[tr]):.3f}), held-out {np.mean(pred[te] == d.y[te]):.3f}"
                      f" (today {np.mean(today[te] == d.y[te]):.3f}) {changed(p)}")
        rep = T.report(d.y, pred)
        res["splits"][split] = {"nested": rep, "chosen": chosen}
        print(f"{split}: nested accuracy {rep['accuracy']} (today {res['today']['accuracy']}) "
              f"balanced recall {rep['balanced_recall']}")
    counts = Counter(map(str, d.y))
    head = res["splits"]["headline"]["nested"]
    gain = head["accuracy"] - res["today"]["accuracy"]
    checks = [v["nested"]["accuracy"] - res["today"]["accuracy"]
              for k, v in res["splits"].items() if k != "headline"]
    losses = {k: res["today"]["per_name"][k]["recall"] - head["per_name"][k]["recall"]
              for k, n in counts.items() if n >= MIN_N}
    res["accuracy_gain"] = round(gain, 3)
    res["checks_mean_gain"] = round(float(np.mean(checks)), 3)
    res["recall_loss"] = {k: round(v, 3) for k, v in losses.items()}
    res["ship"] = bool(gain >= MARGIN and np.mean(checks) >= MARGIN
                       and max(losses.values()) <= MAX_LOSS)
    full = choose(d, np.arange(len(d.y)))
    res["chosen_on_all_rows"] = changed(full)
    res["all_rows_fit"] = T.report(d.y, names(d, full))  # in-sample: optimistic
    print(f"{'name':8s} {'n':>4s}  today P/R    nested P/R (headline)")
    for k in sorted(counts, key=lambda k: -counts[k]):
        a, b = res["today"]["per_name"][k], head["per_name"][k]
        print(f"{k:8s} {a['n']:4d}  {a['precision']}/{a['recall']}  {b['precision']}/{b['recall']}")
    print(f"headline accuracy gain {res['accuracy_gain']}, checks' mean {res['checks_mean_gain']}"
          f" (each needs >= {MARGIN}); recall loss (n >= {MIN_N}) {res['recall_loss']} "
          f"(at most {MAX_LOSS})")
    print(f"chosen on all rows: {res['chosen_on_all_rows']} (in-sample accuracy "
          f"{res['all_rows_fit']['accuracy']}); ship: {res['ship']}")
    OUT.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
