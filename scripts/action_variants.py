"""Variants of the posture classifier measured by the same grouped CV as scripts/train_actions.py
(folds by camera; every row of a held-out camera predicted, so per-track smoothing is measured).

    python scripts/action_variants.py            # after train_actions.py has cached the features
    python scripts/action_variants.py --scene    # + the scene-perspective features (tried)
    python scripts/action_variants.py --failures # + contact sheets of the mistakes per confusion

Prints one row per variant: accuracy and per-posture precision / recall over the labelled
standing/walking/sitting/lying samples, mean over ``SEEDS`` fold splits (spread in brackets).
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import train_actions as TA  # noqa: E402
from action_tracks import load_tracks  # noqa: E402

from pipeline.posture_model import FEATURE_NAMES  # noqa: E402

_NAN = float('nan')

#: tried, not shipped: the scene's perspective and the track's context (``scene``), computed over all of a video's
#: rows after the pass
SCENE_NAMES = ("s_h_ratio", "s_w_ratio", "s_exp_h_frame", "s_speed_exp", "s_track_h_ratio",
               "s_h_ratio_dev", "s_track_speed")


def expected_height(boxes: np.ndarray, frame_h: int) -> tuple[float, float] | None:
    """``(a, b)`` with an upright person's box height ~ a + b * (box bottom y), fitted to the
    video's boxes not cut by the frame: least squares, then again on the boxes at least 0.9 of
    the fit (short boxes are sitting, lying or cut people). None with under 8 boxes."""
    if len(boxes) == 0:
        return None
    y2, h = boxes[:, 3], boxes[:, 3] - boxes[:, 1]
    ok = (y2 < 0.98 * frame_h) & (boxes[:, 1] > 0.01 * frame_h) & (h > 1.0)
    if ok.sum() < 8:
        return None
    y2, h = y2[ok], h[ok]
    keep = np.ones(len(h), bool)
    a, b = float(np.percentile(h, 75)), 0.0
    for _ in range(3):
        if np.ptp(y2[keep]) >= 0.05 * frame_h and keep.sum() >= 8:
            b, a = (float(v) for v in np.polyfit(y2[keep], h[keep], 1))
            b = max(b, 0.0)  # nearer the camera (lower in the image) is never smaller
            a = float(np.median(h[keep] - b * y2[keep]))
        else:
            a, b = float(np.percentile(h[keep], 75)), 0.0
        nxt = h >= 0.9 * (a + b * y2)
        if nxt.sum() < 8 or (nxt == keep).all():
            break
        keep = nxt
    return a, b


def scene(boxes: np.ndarray, tracks: np.ndarray, speed: np.ndarray,
          frame_h: int) -> np.ndarray:
    """``SCENE_NAMES`` of a video's rows: the box's height and width in an upright person's
    expected height at the same image row (``expected_height``), that expected height in frame
    heights, the centred hip speed (``c_hip_speed_bh_s``) in expected heights, the track's
    median height ratio and the sample's difference from it, the track's median speed."""
    n = len(boxes)
    out = np.full((n, len(SCENE_NAMES)), _NAN)
    fit = expected_height(boxes, frame_h)
    if fit is None:
        return out
    exp = np.maximum(fit[0] + fit[1] * boxes[:, 3], 0.02 * frame_h)
    h, w = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    out[:, 0], out[:, 1], out[:, 2] = h / exp, w / exp, exp / frame_h
    out[:, 3] = speed * h / exp
    for tid in np.unique(tracks):
        m = tracks == tid
        out[m, 4] = np.median(out[m, 0])
        sp = speed[m][~np.isnan(speed[m])]
        out[m, 6] = np.median(sp) if len(sp) else _NAN
    out[:, 5] = out[:, 0] - out[:, 4]
    return out

SEEDS = (20261207, 1, 2)
BEST_HALF_S = 2.1
FOUR = ["standing", "walking", "sitting", "lying"]


def scene_features(meta, X) -> np.ndarray:
    heights = {c: d["height"] for c, d in load_tracks().items()}
    speed = X[:, list(FEATURE_NAMES).index("c_hip_speed_bh_s")]
    S = np.full((len(meta), len(SCENE_NAMES)), np.nan)
    by_clip = defaultdict(list)
    for i, m in enumerate(meta):
        by_clip[m[0]].append(i)
    for clip, rows in by_clip.items():
        rows = np.array(rows)
        boxes = np.array([meta[i][3:7] for i in rows], float)
        tracks = np.array([meta[i][2] for i in rows])
        S[rows] = scene(boxes, tracks, speed[rows], heights[clip])
    return S


def cv_probs(X, li, y, g, all_groups, classes, seed, params=None, training=None):
    """Out-of-fold probabilities of every row of the test cameras (folds grouped by camera).
    ``training(tr)``: the (features, labels, groups) to fit on for the fold's training samples
    ``tr``; by default their own rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedGroupKFold

    P = np.full((len(X), len(classes)), np.nan)
    for tr, te in StratifiedGroupKFold(TA.N_FOLDS, shuffle=True, random_state=seed).split(
            np.zeros(len(y)), y, g):
        Xt, yt, gt = training(tr) if training else (X[li[tr]], y[tr], g[tr])
        m = HistGradientBoostingClassifier(random_state=TA.SEED, **(params or TA.PARAMS)).fit(
            Xt, yt, sample_weight=TA.camera_weights(gt))
        rows = np.where(np.isin(all_groups, list(set(g[te]))))[0]
        P[rows] = m.predict_proba(X[rows])[:, [list(m.classes_).index(c) for c in classes]]
    return P


def decide(P, classes, rules, keep, override=1.01):
    top = np.array(classes)[np.nan_to_num(P).argmax(1)]
    pmax = np.nan_to_num(P).max(1)
    over = (rules == "sitting") & (top != "sitting") & (pmax >= override)
    out = np.where(np.isin(rules, list(keep)) & ~over, rules, top)
    return np.where(np.isnan(P).any(1) & ~np.isin(rules, list(keep)), "unknown", out)


def prob_smooth(P, meta, half):
    """Mean of the class probabilities over the track's samples within +/- ``half`` samples."""
    out = P.copy()
    by_track = defaultdict(list)
    for i, m in enumerate(meta):
        by_track[(m[0], m[2])].append(i)
    for rows in by_track.values():
        rows.sort(key=lambda i: meta[i][7])
        Q = P[rows]
        for j, i in enumerate(rows):
            out[i] = np.nanmean(Q[max(0, j - half): j + half + 1], axis=0)
    return out


def smooth_n(pred, meta, n):
    if n <= 1:
        return np.asarray(pred, dtype=object)
    old = TA.T.ACTION_SMOOTH_SAMPLES
    TA.T.ACTION_SMOOTH_SAMPLES = n
    try:
        return TA.smooth(pred, meta, vote_s=None)
    finally:
        TA.T.ACTION_SMOOTH_SAMPLES = old


def score(y, pred) -> dict:
    pred = np.asarray(pred).astype(str)
    r = {"acc": float(np.mean(pred == y)), "cov": float(np.mean(pred != "unknown"))}
    for c in FOUR:
        said, tp = np.sum(pred == c), np.sum((pred == c) & (y == c))
        r[c] = (tp / said if said else np.nan, tp / max(np.sum(y == c), 1))
    return r


def fmt(name, rs) -> str:
    acc = [r["acc"] for r in rs]
    s = f"{name:58s} {np.mean(acc):.3f} ({min(acc):.3f}-{max(acc):.3f}) cov {np.mean([r['cov'] for r in rs]):.2f}"
    for c in FOUR:
        s += f" {c[:5]} {np.nanmean([r[c][0] for r in rs]):.2f}/{np.mean([r[c][1] for r in rs]):.2f}"
    return s


def load():
    d = np.load(TA.FEATURES, allow_pickle=True)
    X, meta, rules = d["X"], d["meta"], d["rules"]
    idx, lab, cams = TA.match_labels(meta)
    keep = np.isin(lab, FOUR)
    li, y, g = idx[keep], lab[keep], np.array(cams)[keep]
    row_group = {meta[i][0]: c for i, c in zip(idx, cams)}
    all_groups = np.array([row_group.get(m[0], "cam:" + m[0]) for m in meta])
    return X, meta, rules, li, y, g, all_groups, idx, lab


def probs_for(name, XX, li, y, g, all_groups):
    cache = ROOT / "var" / "actions" / f"variant_P_{name}.npy"
    if cache.exists() and cache.stat().st_mtime > TA.FEATURES.stat().st_mtime:
        return list(np.load(cache))
    Ps = [cv_probs(XX, li, y, g, all_groups, FOUR, s) for s in SEEDS]
    np.save(cache, np.array(Ps))
    return Ps


def compare_features(variants, meta, rules, li, y, g, all_groups) -> None:
    """For each (name, feature matrix): the grouped CV over ``SEEDS`` fold splits, per frame
    (the rules' sitting/lying kept) and with the shipped decision as stored (mean over the
    track, rules kept, votes); one printed row each."""
    def shipped(P):
        return TA.smooth(decide(TA.track_average(P, meta), FOUR, rules, TA.KEEP), meta)[li]

    for name, XX in variants:
        Ps = [cv_probs(XX, li, y, g, all_groups, FOUR, s) for s in SEEDS]
        print(fmt(f"{name} | per frame, rules keep",
                  [score(y, decide(P, FOUR, rules, TA.KEEP)[li]) for P in Ps]))
        print(fmt(f"{name} | shipped decision", [score(y, shipped(P)) for P in Ps]), flush=True)


def try_features(what: str, compute, names, variants, digits: str = "+.2f") -> int:
    """A round's new features (``compute(meta)``: one column per name, NaN where unread): their
    median per posture, then ``compare_features`` of today's 45 against today's plus each
    variant's columns (``variants``: (name, column indices))."""
    X, meta, rules, li, y, g, all_groups, idx, lab = load()
    F = compute(meta)
    print(f"{len(y)} samples, {len(set(g))} cameras; {what} missing on "
          f"{int(np.isnan(F[li]).any(1).sum())} labelled samples")
    for c in FOUR:
        m = y == c
        print(f"  {c:9s} " + "  ".join(f"{n} {np.nanmedian(F[li][m, j]):{digits}}"
                                       for j, n in enumerate(names)))
    compare_features([("today's 45", X)]
                     + [(n, np.hstack([X, F[:, cols]])) for n, cols in variants],
                     meta, rules, li, y, g, all_groups)
    return 0


def main() -> int:
    X, meta, rules, li, y, g, all_groups, idx, lab = load()
    print(f"{len(y)} samples, {len(set(g))} cameras")
    classes = FOUR
    keep = TA.KEEP
    for r in (("rules, per frame", rules), ("rules, smoothed (vote 3)", TA.smooth(rules, meta, vote_s=None))):
        print(fmt(r[0], [score(y, r[1][li])]))
    for hs in (0.7, 1.4, 2.1):
        print(fmt(f"rules | time vote +-{hs} s, then vote 3",
                  [score(y, TA.smooth(rules, meta, hs)[li])]))
    Ps = probs_for("today", X, li, y, g, all_groups)
    if "--scene" in sys.argv:
        S = scene_features(meta, X)
        for nm, XX in (("scene", np.hstack([X, S])), ("scene4", np.hstack([X, S[:, :4]]))):
            Q = probs_for(nm, XX, li, y, g, all_groups)
            for sm in (1, 3, 5):
                print(fmt(f"+ {nm} | rules keep | vote {sm}",
                          [score(y, smooth_n(decide(P, classes, rules, keep), meta, sm)[li])
                           for P in Q]), flush=True)
    dec = [decide(P, classes, rules, keep) for P in Ps]
    for sm in (1, 3, 5, 7):
        print(fmt(f"today's 45 | rules keep | vote {sm}",
                  [score(y, smooth_n(d, meta, sm)[li]) for d in dec]), flush=True)
    for hs in (0.7, 1.0, 1.4, 2.1, 3.0):
        print(fmt(f"today's 45 | rules keep | time vote +-{hs} s, then vote 3",
                  [score(y, TA.smooth(d, meta, hs)[li]) for d in dec]),
              flush=True)
    print(fmt("today's 45 | probabilities averaged +-2.1 s, then time vote +-2.1 s (shipped)",
              [score(y, TA.smooth(decide(TA.track_average(P, meta), classes, rules, keep), meta)
                     [li]) for P in Ps]), flush=True)
    best = [TA.smooth(d, meta, BEST_HALF_S) for d in dec]
    hi = X[:, list(FEATURE_NAMES).index("log_box_h_frame")]
    kp = X[:, list(FEATURE_NAMES).index("kp_mean")]
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        rs = []
        for P, b in zip(Ps, best):
            weak = (np.nan_to_num(P).max(1) < t) & ~np.isin(rules, list(keep))
            rs.append(score(y, np.where(weak, "unknown", b)[li]))
        print(fmt(f"best + unknown where the trees' p < {t}", rs), flush=True)
    for frac in (0.05, 0.08, 0.12):
        weak = hi < np.log(frac)
        print(fmt(f"best + unknown where the box < {frac} of the frame's height",
                  [score(y, np.where(weak, "unknown", b)[li]) for b in best]), flush=True)
    for k in (0.3, 0.4):
        print(fmt(f"best + unknown where mean keypoint score < {k}",
                  [score(y, np.where(kp < k, "unknown", b)[li]) for b in best]), flush=True)
    if "--failures" in sys.argv:
        failure_sheets(best[0][li], y, meta, li)
    return 0


def failure_sheets(pred, y, meta, li, per=18) -> None:
    """Contact sheets of the out-of-fold mistakes (first split), one folder per confusion, the
    cell's number indexing ``failures.csv``."""
    import cv2

    from action_sheets import cell, frames_of
    from action_tracks import path_of

    tracks = load_tracks()
    out = ROOT / "var" / "actions" / "failures"
    out.mkdir(parents=True, exist_ok=True)
    rows = [(n, meta[i], y[n], pred[n]) for n, i in enumerate(li) if pred[n] != y[n]]
    with open(out / "failures.csv", "w") as f:
        f.write("n,clip,frame,track,label,answer\n")
        for n, m, lab, p in rows:
            f.write(f"{n},{m[0]},{m[1]},{m[2]},{lab},{p}\n")
    for pair in sorted({(r[2], r[3]) for r in rows}):
        items = [r for r in rows if (r[2], r[3]) == pair][:per]
        cells = []
        for n, m, _, _ in items:
            fps = tracks[m[0]]["fps"]
            want = {int(m[1]) + int(round(dt * fps)) for dt in (-0.6, 0, 0.6)}
            fr = frames_of(path_of(m[0]), {w for w in want if w >= 0})
            cells.append(cell(fr, {"box": [float(v) for v in m[3:7]], "frame": int(m[1])},
                              fps, n))
        while len(cells) % 3:
            cells.append(np.full_like(cells[0], 255))
        img = np.concatenate([np.concatenate(cells[k:k + 3], axis=1)
                              for k in range(0, len(cells), 3)], axis=0)
        cv2.imwrite(str(out / f"{pair[0]}_as_{pair[1]}.png"), img)
    print(f"{len(rows)} mistakes -> {out}")


if __name__ == "__main__":
    sys.exit(main())
