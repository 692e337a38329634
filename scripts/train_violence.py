"""Learn the violence classifier from the surveillance-fight clips; write models/violence.json.

    flock /tmp/heavy.lock nice -n 5 .venv/bin/python scripts/train_violence.py

1. Features: each clip goes through the engine's short-clip pass (``pipeline.violence.
   observe_clip``: frames every ~0.13 s, the dense detector (MoveNet + YOLOv5s/Thunder), the
   tracker) and ``window_features``; cached in var/violence_features/ by clip name, file size and
   feature version.
2. Grouped 5-fold cross-validation (StratifiedGroupKFold by ``source_video``; clips without a
   source are one group each), seeded: the rule (``interactions``' violent rule on the same
   observations) against the learned candidates; accuracy, precision, recall, F1 and ROC AUC as
   mean +- std over the folds.
3. Per candidate, the operating threshold from its out-of-fold probabilities
   (``choose_threshold``: the best fold-mean accuracy with fold-mean precision at least
   ``TARGET_PRECISION``); the chosen candidate is the one with the best accuracy there.
4. The final model on all clips, dumped to JSON (trees as arrays; no pickle), checked against
   scikit-learn's own predictions, and the CV table to var/violence_cv.json (and stdout).

``--limit N`` uses N clips (the CI test), ``--out`` another model path.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import violence as V  # noqa: E402

DATASET = REPO.parent / "shared" / "datasets" / "surveillance-fight"
SEED = 20261127
N_FOLDS = 5
TARGET_PRECISION = 0.85  # the issue's bar: precision >= 0.85 (fold means) at the threshold
MIN_RECALL = 0.5

log = logging.getLogger("train_violence")


def load_labels(dataset: Path) -> list[dict]:
    with open(dataset / "labels.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["y"] = 1 if r["label"] == "fight" else 0
        r["group"] = r["source_video"] or f"clip:{r['clip']}"
    return rows


def _inference():
    """The runtime and precision the product runs (VA_RUNTIME, VA_PRECISION): features are
    extracted with what the engine will use."""
    from pipeline.backends.onnx_common import CpuInference
    from settings import Settings

    return CpuInference.from_settings(Settings.from_env())


def _cache_key(path: Path) -> str:
    tag = _inference().describe().replace(" ", "-")  # e.g. openvino-bf16
    h = hashlib.sha1(f"{path.name}:{path.stat().st_size}:{V.OBSERVATION_VERSION}:{tag}".encode()).hexdigest()
    return f"{path.stem}-o{V.OBSERVATION_VERSION}-{tag}-{h[:10]}.json"


def _obs_json(o) -> list:
    return [o.frame_number, o.t_s, o.obj_id, list(o.xyxy), o.det_confidence,
            [list(k) for k in o.keypoints]]


def _obs_from(r):
    from pipeline.records import PersonObservation

    return PersonObservation(frame_number=r[0], t_s=r[1], obj_id=r[2], xyxy=tuple(r[3]),
                             det_confidence=r[4], keypoints=tuple(tuple(k) for k in r[5]))


def extract(rows: list[dict], dataset: Path, cache_dir: Path, detector_factory, backbone_factory,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (N, F) with app_score NaN, rule verdicts (N,), close people's backbone vectors
    (N, D)) of the clips. What the detector and the frames give (observations, motion numbers,
    backbone vectors) is cached per clip; the features are computed from it. A cache entry
    without backbone vectors gets them from the clip's frames (decoded again; no detector)."""
    from pipeline.appearance import Appearance, appearance_of
    from pipeline.motion import clip_frames

    cache_dir.mkdir(parents=True, exist_ok=True)
    detector = backbone = None
    feats, rule, emb = [], [], []
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        path = dataset / r["clip"]
        cached = cache_dir / _cache_key(path)
        d = json.loads(cached.read_text()) if cached.exists() else None
        if backbone is None and (d is None or "appearance" not in d):
            backbone = backbone_factory()
        if d is None:
            if detector is None:
                detector = detector_factory()
            t = time.perf_counter()
            obs, motion, size = V.observe_clip(path, detector, backbone)
            d = {"clip": r["clip"], "size": list(size), "observations": [_obs_json(o) for o in obs],
                 "motion": motion.to_json(), "appearance": motion.appearance.to_json(),
                 "seconds": round(time.perf_counter() - t, 2)}
            cached.write_text(json.dumps(d))
            log.info("%d/%d %s %.1fs (elapsed %.0fs)", i + 1, len(rows), r["clip"], d["seconds"],
                     time.perf_counter() - t0)
        elif "appearance" not in d:
            _, _, frames = clip_frames(path)
            d["appearance"] = appearance_of(frames, [_obs_from(o) for o in d["observations"]],
                                            backbone).to_json()
            cached.write_text(json.dumps(d))
            log.info("%d/%d %s backbone vectors added (elapsed %.0fs)", i + 1, len(rows), r["clip"],
                     time.perf_counter() - t0)
        m = V.Motion.from_json(d["motion"])
        m = V.Motion(m.frames, m.boxes, Appearance.from_json(d["appearance"]))
        w = V._window([_obs_from(o) for o in d["observations"]], m, tuple(d["size"]))
        feats.append(w.features)
        emb.append(w.embedding)
        rule.append(w.features[V.FEATURE_NAMES.index("rule_fires")])
    return (np.asarray(feats, np.float64), np.asarray(rule, np.float64),
            np.asarray(emb, np.float64))


@dataclass(frozen=True)
class Candidate:
    """A learned candidate: its model, the features it uses (None: all) and whether the
    appearance head's score (``app_score``, learned out-of-fold) is one of them."""

    make: Callable
    features: tuple[str, ...] | None = None
    head: bool = False

    def columns(self) -> list[int]:
        names = [n for n in V.FEATURE_NAMES if n != "app_score"] if self.features is None \
            else list(self.features)
        return [V.FEATURE_NAMES.index(n) for n in names] + (
            [V.FEATURE_NAMES.index("app_score")] if self.head else [])


class Bag:
    """``k`` gradient-boosted tree models of different seeds (each sees a random half of the
    features per split), their logits averaged: steadier than one on 237 clips."""

    def __init__(self, make_one: Callable, k: int, seed: int):
        self.models = [make_one(seed + j) for j in range(k)]

    def fit(self, X, y) -> "Bag":
        for m in self.models:
            m.fit(X, y)
        return self

    def decision_function(self, X) -> np.ndarray:
        return np.mean([m.decision_function(X) for m in self.models], axis=0)

    def predict_proba(self, X) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.stack([1 - p, p], axis=1)


BASE_FEATURES = tuple(n for n in V.FEATURE_NAMES if not n.startswith("app_"))


def candidates(seed: int) -> dict[str, Candidate]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    slow_seeded = lambda s: HistGradientBoostingClassifier(  # noqa: E731
        max_depth=3, learning_rate=0.02, max_iter=300, min_samples_leaf=15,
        l2_regularization=2.0, max_features=0.5, random_state=s)
    slow = lambda: slow_seeded(seed)  # noqa: E731
    return {
        "hgb_shallow": Candidate(lambda: HistGradientBoostingClassifier(
            max_depth=3, learning_rate=0.05, max_iter=150, min_samples_leaf=10,
            l2_regularization=1.0, random_state=seed), BASE_FEATURES),
        "hgb_slow_subsampled": Candidate(slow, BASE_FEATURES),
        "logistic": Candidate(lambda: make_pipeline(StandardScaler(), LogisticRegression(
            C=0.3, max_iter=2000, random_state=seed)), BASE_FEATURES),
        "hgb_slow+appearance": Candidate(slow, None),
        "hgb_slow+appearance+head": Candidate(slow, None, head=True),
        "hgb_bag5+appearance+head": Candidate(lambda: Bag(slow_seeded, 5, seed), None, head=True),
    }


HEAD_C = 0.003  # strong L2: 768 backbone numbers, 237 clips


def make_head():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=HEAD_C, max_iter=5000))


def head_scores(E, y, groups, seed: int) -> np.ndarray:
    """Out-of-fold appearance-head scores (logits) of the clips, grouped folds."""
    out = np.zeros(len(y))
    for tr, te in folds(y, groups, seed):
        out[te] = make_head().fit(E[tr], y[tr]).decision_function(E[te])
    return out


def with_head(X, E, y, groups, tr, te, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X of the training rows, X of the test rows) with app_score filled: out-of-fold within
    the training rows (as the final model sees it), from a head fitted on them for the test."""
    col = V.FEATURE_NAMES.index("app_score")
    Xtr, Xte = X[tr].copy(), X[te].copy()
    Xtr[:, col] = head_scores(E[tr], y[tr], groups[tr], seed)
    Xte[:, col] = make_head().fit(E[tr], y[tr]).decision_function(E[te])
    return Xtr, Xte


def metrics(y: np.ndarray, pred: np.ndarray, score: np.ndarray | None) -> dict:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    out = {"accuracy": accuracy_score(y, pred),
           "precision": precision_score(y, pred, zero_division=0),
           "recall": recall_score(y, pred, zero_division=0),
           "f1": f1_score(y, pred, zero_division=0)}
    try:
        out["roc_auc"] = roc_auc_score(y, score if score is not None else pred)
    except ValueError:
        out["roc_auc"] = float("nan")
    return out


def folds(y: np.ndarray, groups: np.ndarray, seed: int, n_folds: int = N_FOLDS):
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(n_folds, len(set(groups)), int(np.bincount(y).min()))
    return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
        np.zeros(len(y)), y, groups))


def choose_threshold(y: np.ndarray, p: np.ndarray, splits, target: float = TARGET_PRECISION,
                     ) -> tuple[float, str]:
    """On a 0.01 grid, the threshold with the best fold-mean out-of-fold accuracy among those
    whose fold-mean out-of-fold precision is at least ``target`` with pooled recall at least
    ``MIN_RECALL`` (the issue's bar is measured as fold means); else the best accuracy."""
    rows = []
    for t in np.round(np.arange(0.05, 0.96, 0.01), 2):
        pred = p >= t
        if pred.sum() == 0:
            continue
        prec = float(np.mean([(y[te][pred[te]] == 1).mean() if pred[te].any() else 1.0
                              for _, te in splits]))
        acc = float(np.mean([(pred[te] == y[te]).mean() for _, te in splits]))
        rec = float(pred[y == 1].mean()) if (y == 1).any() else 0.0
        rows.append((float(t), prec, rec, acc))
    ok = [r for r in rows if r[1] >= target and r[2] >= MIN_RECALL]
    if ok:
        t = max(ok, key=lambda r: (r[3], -r[0]))
        return t[0], (f"best fold-mean out-of-fold accuracy among thresholds (0.01 grid) with "
                      f"fold-mean precision >= {target:.2f} and recall >= {MIN_RECALL:.2f}")
    if not rows:
        return 0.5, "no positive prediction: 0.5"
    t = max(rows, key=lambda r: (r[3], -r[0]))
    return t[0], f"precision {target:.2f} never reached with recall >= {MIN_RECALL:.2f}: best accuracy"


def cross_validate(X, E, y, groups, rule, seed: int) -> tuple[dict, dict]:
    """Per-candidate fold metrics at 0.5 and out-of-fold probabilities."""
    splits = folds(y, groups, seed)
    table: dict[str, list[dict]] = {"rule": []}
    oof: dict[str, np.ndarray] = {}
    for tr, te in splits:
        table["rule"].append(metrics(y[te], rule[te], None))
    for name, cand in candidates(seed).items():
        cols = cand.columns()
        p = np.zeros(len(y))
        table[name] = []
        for tr, te in splits:
            Xtr, Xte = with_head(X, E, y, groups, tr, te, seed) if cand.head else (X[tr], X[te])
            m = cand.make().fit(Xtr[:, cols], y[tr])
            p[te] = m.predict_proba(Xte[:, cols])[:, 1]
            table[name].append(metrics(y[te], (p[te] >= 0.5).astype(int), p[te]))
        oof[name] = p
    return table, {"splits": splits, "oof": oof}


def at_threshold(y, p, splits, t) -> list[dict]:
    return [metrics(y[te], (p[te] >= t).astype(int), p[te]) for _, te in splits]


def summarise(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    return {k: (float(np.nanmean([r[k] for r in rows])), float(np.nanstd([r[k] for r in rows])))
            for k in keys}


def dump_model(model, names, columns: list[int] | None = None) -> dict:
    """JSON spec of a fitted HistGradientBoostingClassifier or logistic pipeline; ``columns``:
    the index in ``names`` of each feature it was fitted on (None: all, in order)."""
    cols = np.arange(len(names)) if columns is None else np.asarray(columns, np.int64)
    if isinstance(model, Bag):  # the mean logit: every tree's value / k, the mean baseline
        parts = [dump_model(m, names, columns) for m in model.models]
        k = len(parts)
        for part in parts:
            for t in part["trees"]:
                t["value"] = [v / k for v in t["value"]]
        return {"kind": "trees", "feature_names": list(names),
                "baseline": float(np.mean([p["baseline"] for p in parts])),
                "trees": [t for p in parts for t in p["trees"]]}
    if hasattr(model, "_predictors"):
        trees = []
        for (pred,) in model._predictors:
            n = pred.nodes
            trees.append({"feature": cols[n["feature_idx"].astype(int)].tolist(),
                          "threshold": n["num_threshold"].astype(float).tolist(),
                          "left": n["left"].astype(int).tolist(),
                          "right": n["right"].astype(int).tolist(),
                          "is_leaf": n["is_leaf"].astype(int).tolist(),
                          "missing_left": n["missing_go_to_left"].astype(int).tolist(),
                          "value": n["value"].astype(float).tolist()})
        base = np.asarray(model._baseline_prediction).ravel()[0]
        return {"kind": "trees", "feature_names": list(names), "baseline": float(base),
                "trees": trees}
    scaler, lr = model.steps[0][1], model.steps[-1][1]
    mean, std = np.zeros(len(names)), np.ones(len(names))
    mean[cols], std[cols] = scaler.mean_, scaler.scale_
    if len(lr.coef_) > 1:  # multinomial (scripts/train_clothing.py): (features, classes)
        coef = np.zeros((len(names), len(lr.coef_)))
        coef[cols] = lr.coef_.T
        return {"kind": "logistic", "feature_names": list(names), "mean": mean.tolist(),
                "std": std.tolist(), "coef": coef.tolist(),
                "intercept": lr.intercept_.astype(float).tolist()}
    coef = np.zeros(len(names))
    coef[cols] = lr.coef_[0]
    return {"kind": "logistic", "feature_names": list(names), "mean": mean.tolist(),
            "std": std.tolist(), "coef": coef.tolist(), "intercept": float(lr.intercept_[0])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=DATASET)
    ap.add_argument("--cache", type=Path, default=REPO / "var" / "violence_features")
    ap.add_argument("--out", type=Path, default=REPO / "models" / V.MODEL_FILE)
    ap.add_argument("--report", type=Path, default=REPO / "var" / "violence_cv.json")
    ap.add_argument("--limit", type=int, default=0, help="use only this many clips (tests)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--candidate", default="", help="force a candidate instead of the CV's best")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    rows = load_labels(args.dataset)
    if args.limit:
        rng = np.random.default_rng(args.seed)  # half fights, half calm clips
        idx = []
        for label, n in ((1, args.limit // 2), (0, args.limit - args.limit // 2)):
            pool = [i for i, r in enumerate(rows) if r["y"] == label]
            idx += list(rng.choice(pool, size=min(n, len(pool)), replace=False))
        rows = [rows[i] for i in sorted(idx)]

    def detector_factory():
        from pipeline.backends.registry import load_backend, load_dense_detector
        from settings import Settings

        s = Settings.from_env()
        det = load_backend("detector", s.detector, s)
        return load_dense_detector(det, s) or det

    def backbone_factory():
        from pipeline.appearance import BACKBONE_FILE, Backbone
        from settings import Settings

        return Backbone(Path(Settings.from_env().models_dir) / BACKBONE_FILE, _inference())

    X, rule, E = extract(rows, args.dataset, args.cache, detector_factory, backbone_factory)
    np.savez(args.report.with_suffix(".npz"), X=X, rule=rule, E=E,
             y=np.array([r["y"] for r in rows]), groups=np.array([r["group"] for r in rows]),
             clips=np.array([r["clip"] for r in rows]))
    y = np.array([r["y"] for r in rows])
    groups = np.array([r["group"] for r in rows])
    t_extract = time.perf_counter() - t0
    table, cv = cross_validate(X, E, y, groups, rule, args.seed)
    summary = {k: summarise(v) for k, v in table.items()}
    learned = [k for k in table if k != "rule"]
    # the candidate with the best out-of-fold ROC AUC (threshold-free), ties: simpler first
    from sklearn.metrics import roc_auc_score

    aucs = {k: roc_auc_score(y, cv["oof"][k]) if len(set(y)) > 1 else 0.5 for k in learned}
    # the candidate with the best fold-mean accuracy at its own operating threshold (ties: AUC)
    thresholds = {k: choose_threshold(y, cv["oof"][k], cv["splits"]) for k in learned}
    at_thr = {k: summarise(at_threshold(y, cv["oof"][k], cv["splits"], thresholds[k][0]))
              for k in learned}
    best = args.candidate or max(learned, key=lambda k: (
        round(at_thr[k]["accuracy"][0], 4) if at_thr[k]["precision"][0] >= TARGET_PRECISION else 0,
        aucs[k]))
    thr, why = thresholds[best]
    chosen_rows = at_threshold(y, cv["oof"][best], cv["splits"], thr)
    summary[f"{best}@{thr:.3f}"] = summarise(chosen_rows)
    oof_pred = (cv["oof"][best] >= thr).astype(int)
    pooled = metrics(y, oof_pred, cv["oof"][best])
    cand = candidates(args.seed)[best]
    head_spec = None
    if cand.head:  # the trees learn from out-of-fold head scores; the head from all clips
        X = X.copy()
        X[:, V.FEATURE_NAMES.index("app_score")] = head_scores(E, y, groups, args.seed)
        head = make_head().fit(E, y)
        head_spec = dump_model(head, [f"backbone_{i}" for i in range(E.shape[1])])
        err = float(np.abs(V.TreeEnsemble(head_spec).raw(E) - head.decision_function(E)).max())
        if err > 1e-4:
            raise SystemExit(f"JSON appearance head disagrees with scikit-learn by {err}")
    model = cand.make().fit(X[:, cand.columns()], y)
    spec_model = dump_model(model, V.FEATURE_NAMES, cand.columns())
    check = V.TreeEnsemble(spec_model).probability(X)
    err = float(np.abs(check - model.predict_proba(X[:, cand.columns()])[:, 1]).max())
    if err > 1e-6:
        raise SystemExit(f"JSON model disagrees with scikit-learn by {err}")
    spec = {"version": f"violence-{best}-v{V.FEATURE_VERSION}-seed{args.seed}",
            "feature_version": V.FEATURE_VERSION, "threshold": round(thr, 4),
            "threshold_reason": why, "candidate": best, "n_clips": len(rows),
            "inference": _inference().describe(),  # the runtime and precision of its features
            "n_fight": int(y.sum()), "seed": args.seed, "model": spec_model,
            "appearance_head": head_spec}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(spec, separators=(",", ":")))
    report = {"n_clips": len(rows), "n_groups": len(set(groups)), "folds": len(cv["splits"]),
              "inference": _inference().describe(),
              "candidate": best, "oof_auc": aucs, "threshold": thr, "threshold_reason": why,
              "summary": summary, "pooled_oof_at_threshold": pooled,
              "at_own_threshold": {k: {"threshold": thresholds[k][0], **at_thr[k]} for k in learned},
              "rule_pooled": metrics(y, rule.astype(int), None),
              "oof": {r["clip"]: [int(r["y"]), round(float(p), 4), int(rr)]
                      for r, p, rr in zip(rows, cv["oof"][best], rule)},
              "extract_s": round(t_extract, 1), "total_s": round(time.perf_counter() - t0, 1)}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=1))
    print(f"{len(rows)} clips, {len(set(groups))} groups, {len(cv['splits'])} grouped folds")
    print(f"{'model':24s} {'accuracy':>13s} {'precision':>13s} {'recall':>13s} {'f1':>13s} {'roc_auc':>13s}")
    for k, s in summary.items():
        print(f"{k:24s} " + " ".join(f"{s[m][0]:.3f}+-{s[m][1]:.3f}" for m in
                                      ("accuracy", "precision", "recall", "f1", "roc_auc")))
    print()
    print("| model | accuracy | precision | recall | F1 | ROC AUC |")
    print("|---|---|---|---|---|---|")
    for k, s in summary.items():
        print(f"| {k} | " + " | ".join(f"{s[m][0]:.3f} ± {s[m][1]:.3f}" for m in
                                     ("accuracy", "precision", "recall", "f1", "roc_auc")) + " |")
    print()
    print("| at its own operating threshold | threshold | accuracy | precision | recall | F1 | ROC AUC |")
    print("|---|---|---|---|---|---|---|")
    for k, s in at_thr.items():
        print(f"| {k} | {thresholds[k][0]:.2f} | " + " | ".join(
            f"{s[m][0]:.3f} ± {s[m][1]:.3f}" for m in ("accuracy", "precision", "recall", "f1", "roc_auc")) + " |")
    print()
    print(f"chosen: {best} at threshold {thr:.3f} ({why}); pooled out-of-fold: "
          + ", ".join(f"{k} {v:.3f}" for k, v in pooled.items()))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) and {args.report} in "
          f"{time.perf_counter() - t0:.0f} s (features {t_extract:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
