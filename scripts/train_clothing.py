"""Train the clothing-colour namer (``models/clothing.json``) from the hand-labelled regions of
``datasets/clothing/labels.csv`` and measure it, and the hand-set rules, by cross-validation
grouped by recording (``source_video``: no recording is in both a fold's training and test part).

    python scripts/train_clothing.py            # CV report (models/clothing_cv.json)
    python scripts/train_clothing.py --force --out var/clothing.json  # and the model anyway

The model is written (fitted on all rows) only when its grouped-CV accuracy beats the rules'
by ``MARGIN`` on the same rows, or with ``--force`` (to ``--out``, default models/clothing.json,
which the engine loads in the rules' place when it is there).

Each region's pixels are re-read from its clip (../shared/datasets/surveillance-fight) and turned
into ``pipeline.clothing.FEATURE_NAMES``; rows named ``unknown`` are left out. The model is a
multinomial logistic regression (scikit-learn, standardised features), exported as a
``pipeline.trees`` logistic spec by ``train_violence.dump_model`` (no pickle) and checked
against scikit-learn's probabilities. The "unknown" threshold on the top probability is chosen
on the out-of-fold predictions (most right answers minus wrong ones). Writes
models/clothing.json and models/clothing_cv.json (the model card's figures).
"""
from __future__ import annotations

import argparse
import csv
import warnings
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from pipeline import clothing as C  # noqa: E402
from pipeline.media import crop_box, region_hsv  # noqa: E402

LABELS = ROOT / "datasets" / "clothing" / "labels.csv"
CLIPS = ROOT.parent / "shared" / "datasets" / "surveillance-fight" / "clips"
MODEL = ROOT / "models" / "clothing.json"
CV_OUT = ROOT / "models" / "clothing_cv.json"
FOLDS = 5
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)  # inverse regularisation strengths tried by the grouped CV
MARGIN = 0.03  # the model's CV accuracy must beat the rules' by this much to be written
THRESHOLDS = (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def regions():
    """Each named row of ``LABELS`` whose region is readable: (row, frame image, the frame's
    ``frame_stats``, region box), re-read from its clip (each frame read once)."""
    from pipeline.sampling import read_frames

    with open(LABELS) as f:
        rows = [r for r in csv.DictReader(f) if r["colour"] != "unknown"]
    frames: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    for r in rows:
        key = (r["clip"], int(r["frame"]))
        if key not in frames:
            image = read_frames(CLIPS / r["clip"], key[1], key[1], 1)[0].image
            frames[key] = (image, C.frame_stats(image))
        image, stats = frames[key]
        box = tuple(float(r[k]) for k in ("x", "y", "w", "h"))
        if crop_box(image, box, 0.0, 0.0) is None:
            continue
        yield r, image, stats, box


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Features, names, recordings and the rules' names of the named rows."""
    X, y, g, rules = [], [], [], []
    for r, image, stats, box in regions():
        X.append(C.region_features(crop_box(image, box, 0.0, 0.0), stats))
        y.append(r["colour"])
        g.append(r["source_video"])
        rules.append(C.name_region(region_hsv(image, box), float(stats[0])).value)  # its gain
    return np.array(X), np.array(y), np.array(g), np.array(rules)


def make(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


def folds(y, g, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, test rows) of each of the ``FOLDS`` folds of StratifiedGroupKFold by
    recording (``g``), shuffled by ``seed``."""
    from sklearn.model_selection import StratifiedGroupKFold

    split = StratifiedGroupKFold(FOLDS, shuffle=True, random_state=seed)
    return list(split.split(np.zeros((len(y), 1)), y, g))


def oof(X, y, g, c: float, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Out-of-fold probabilities (rows, all classes) of StratifiedGroupKFold by recording."""
    classes = sorted(set(y))
    P = np.zeros((len(y), len(classes)))
    for tr, te in folds(y, g, seed):
        m = make(c).fit(X[tr], y[tr])
        P[np.ix_(te, [classes.index(k) for k in m.classes_])] = m.predict_proba(X[te])
    return P, classes


def decide(P, classes, t: float) -> np.ndarray:
    k = P.argmax(axis=1)
    return np.where(P[np.arange(len(P)), k] >= t, np.array(classes)[k], "unknown")


def report(y, pred) -> dict:
    """Accuracy (an "unknown" answer counts as not right), coverage, per-name precision and
    recall, and the confusion (true -> answered -> count)."""
    answered = pred != "unknown"
    per = {}
    for c in sorted(set(y) | set(pred[answered])):
        tp = int(np.sum((pred == c) & (y == c)))
        n_pred, n_true = int(np.sum(pred == c)), int(np.sum(y == c))
        per[c] = {"n": n_true, "precision": round(tp / n_pred, 3) if n_pred else None,
                  "recall": round(tp / n_true, 3) if n_true else None}
    conf = {c: dict(Counter(pred[y == c]).most_common()) for c in sorted(set(y))}
    rec = [v["recall"] for c, v in per.items() if v["n"]]
    return {"n": int(len(y)), "accuracy": round(float(np.mean(pred == y)), 3),
            "coverage": round(float(np.mean(answered)), 3),
            "accuracy_answered": round(float(np.mean(pred[answered] == y[answered])), 3)
            if answered.any() else None,
            "balanced_recall": round(float(np.mean(rec)), 3), "per_name": per,
            "confusion": conf}


def utility(y, pred) -> float:
    """Right answers minus wrong ones ("unknown" costs nothing): a wrong colour hides the
    person from a search for the right one and shows them for the wrong one."""
    answered = pred != "unknown"
    return float(np.sum(pred[answered] == y[answered]) - np.sum(pred[answered] != y[answered]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="write the model even if it loses")
    ap.add_argument("--out", type=Path, default=MODEL)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)  # folds lacking a rare name
    warnings.filterwarnings("ignore", category=FutureWarning)
    X, y, g, rules = load()
    print(f"{len(y)} named regions from {len(set(g))} recordings: {dict(Counter(map(str, y)))}")
    res = {"rows": int(len(y)), "recordings": int(len(set(g))), "counts": dict(Counter(map(str, y))),
           "rules": report(y, rules), "candidates": {}}
    print(f"rules: accuracy {res['rules']['accuracy']} coverage {res['rules']['coverage']} "
          f"balanced recall {res['rules']['balanced_recall']}")
    for c in C_GRID:
        accs = []
        for seed in range(3):  # three fold splits: the choice should not hang on one
            P, classes = oof(X, y, g, c, seed)
            accs.append(float(np.mean(decide(P, classes, 0.0) == y)))
        res["candidates"][f"C={c}"] = round(float(np.mean(accs)), 3)
        print(f"logistic C={c}: accuracy (no threshold, 3 splits) {np.mean(accs):.3f}")
    c_best = max(C_GRID, key=lambda c: res["candidates"][f"C={c}"])
    res["C"] = c_best
    print(f"C={c_best} chosen")
    P, classes = oof(X, y, g, c_best, 0)
    utilities = {t: utility(y, decide(P, classes, t)) for t in THRESHOLDS}
    t_best = max(THRESHOLDS, key=lambda t: (utilities[t], -t))
    res["threshold_utility"] = {str(t): u for t, u in utilities.items()}
    res["unknown_below"] = t_best
    res["model_no_threshold"] = report(y, decide(P, classes, 0.0))
    res["model"] = report(y, decide(P, classes, t_best))
    for name in ("model_no_threshold", "model"):
        r = res[name]
        print(f"{name}: accuracy {r['accuracy']} coverage {r['coverage']} answered "
              f"{r['accuracy_answered']} balanced recall {r['balanced_recall']}")
    print(f"unknown below {t_best} (utility {utilities})")
    print(f"{'name':8s} {'n':>4s}  rules P/R      model P/R")
    for k in sorted(set(y), key=lambda k: -res["counts"][k]):
        a, b = res["rules"]["per_name"][k], res["model"]["per_name"][k]
        print(f"{k:8s} {a['n']:4d}  {a['precision']}/{a['recall']}  {b['precision']}/{b['recall']}")
    gain = res["model"]["accuracy"] - res["rules"]["accuracy"]
    res["shipped"] = bool(gain >= MARGIN)
    CV_OUT.write_text(json.dumps(res, indent=1))
    if not res["shipped"]:
        print(f"the model's CV accuracy is {gain:+.3f} against the rules' (needs +{MARGIN}): "
              + ("written anyway (--force)" if args.force else "not written"))
        if not args.force:
            return 0
    from train_violence import dump_model

    model = make(c_best).fit(X, y)
    spec = {"feature_version": C.FEATURE_VERSION, "classes": [str(k) for k in model.classes_],
            "unknown_below": t_best, "trained_on": f"{len(y)} regions, {len(set(g))} recordings",
            "model": dump_model(model, C.FEATURE_NAMES)}
    namer = C.LearnedNamer(spec)
    err = float(np.abs(namer.probabilities(X) - model.predict_proba(X)).max())
    assert err < 1e-6, err
    args.out.write_text(json.dumps(spec, separators=(",", ":")))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes; numpy vs scikit-learn max diff "
          f"{err:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
