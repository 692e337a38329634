"""Round 4 of the posture classifier's decision (issue #23), measured by the grouped CV of
scripts/action_variants.py (5 folds by camera, mean over its 3 fold splits ``SEEDS``):

1. a second-stage (stacked) decision: per sample, the track window's features (the trees'
   probabilities averaged over +/- 2.1 s and the sample's own, the rules' answer and the
   share of each rules' answer in the window, the rules' posture flags and the leg evidence,
   the centred motion features, the hand decision's answer) fed to a small gradient-boosted
   model trained on out-of-fold first-stage probabilities, replacing ``decide`` + vote;
2. the trees overruling the rules' sitting only where its evidence is weak (legs hidden, box
   cut by the frame, low leg keypoint scores), the threshold chosen inside the training folds;
3. per-class abstention thresholds (``unknown``) chosen inside the training folds.

Nesting: in each outer fold the first stage is trained on the training cameras; its
probabilities for the training cameras' rows come from an inner grouped 4-fold CV over those
cameras only (out of fold), so everything chosen or fitted (the second stage, thresholds) sees
no test camera and no in-sample probability.

    python scripts/action_stack.py          # 1 (full stage), 2 and 3 (~3 min on 2 cores)
    python scripts/action_stack.py --more   # + the smaller / restricted second stages (skips 2)

Tried in round 4, none shipped (models/actions.md, "Round 4"). "base" is the shipped decision
(no abstention) under the same protocol.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import action_variants as AV  # noqa: E402
import train_actions as TA  # noqa: E402

from pipeline.posture_model import CENTRED_NAMES, FEATURE_NAMES, TRACK_VOTE_S  # noqa: E402

FOUR = AV.FOUR
INNER_FOLDS = 4
RULE_CODES = ("standing", "walking", "sitting", "lying", "falling")
FLAGS = ("rule_sitting", "rule_lying", "rule_upright", "legs_seen", "kp_legs", "kp_mean",
         "cut_bottom", "cut_side", "box_aspect", "hip_above_ankle_bh")
STACK_PARAMS = dict(max_iter=80, learning_rate=0.08, max_depth=3, min_samples_leaf=20,
                    l2_regularization=1.0)
OVER_GRID = (0.5, 0.6, 0.7, 0.8, 0.9, 1.01)
ABST_GRID = np.round(np.arange(0.30, 0.96, 0.05), 2)
F = {n: i for i, n in enumerate(FEATURE_NAMES)}


def first_stage(X, li, y, g, all_groups, train_idx, seed):
    """Per-frame probabilities: ``P_out`` for every row of the outer test cameras (model on
    all training cameras); ``P_in`` for every row of the training cameras, out of fold over an
    inner grouped CV of the training cameras."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedGroupKFold

    def fit_pred(tr, rows):
        m = HistGradientBoostingClassifier(random_state=TA.SEED, **TA.PARAMS).fit(
            X[li[tr]], y[tr], sample_weight=TA.camera_weights(g[tr]))
        return m.predict_proba(X[rows])[:, [list(m.classes_).index(c) for c in FOUR]]

    P_in = np.full((len(X), 4), np.nan)
    ytr, gtr = y[train_idx], g[train_idx]
    for itr, ite in StratifiedGroupKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(
            np.zeros(len(ytr)), ytr, gtr):
        rows = np.where(np.isin(all_groups, list(set(gtr[ite]))))[0]
        P_in[rows] = fit_pred(train_idx[itr], rows)
    return P_in


def hand(P, meta, rules, t=0.0, over_weak=None):
    """The shipped decision on per-frame probabilities ``P`` (NaN outside the cameras in
    question): track mean +/- 2.1 s, ``decide`` (override sitting->lying 0.85 on the own
    probabilities), track vote +/- 2.1 s, postprocess's vote 3. ``over_weak``: (mask, thr):
    where ``mask`` (the rules' sitting on weak evidence) the averaged trees' standing/walking
    at p >= thr overrules the rules' sitting."""
    Pm = TA.track_average(P, meta)
    d = TA.decide(np.nan_to_num(Pm), FOUR, t, rules, P_own=np.nan_to_num(P))
    if over_weak is not None:
        mask, thr = over_weak
        top = np.array(FOUR)[np.nan_to_num(Pm).argmax(1)]
        o = mask & (rules == "sitting") & np.isin(top, ["standing", "walking"]) & (
            np.nan_to_num(Pm).max(1) >= thr) & (d == "sitting")
        d = np.where(o, top, d)
    d = np.where(np.isnan(P).any(1), "unknown", d)
    return TA.smooth(d, meta).astype(str), Pm


def window_share(meta, rules):
    """Share of each rules' answer among the track's samples within +/- 2.1 s; log count."""
    S = np.zeros((len(meta), len(RULE_CODES) + 1))
    for rows in TA.tracks_of(meta):
        t = np.array([meta[i][7] for i in rows], float)
        lo = np.searchsorted(t, t - TRACK_VOTE_S - 1e-6, "left")
        hi = np.searchsorted(t, t + TRACK_VOTE_S + 1e-6, "right")
        r = rules[rows]
        for j, i in enumerate(rows):
            w = r[lo[j]:hi[j]]
            S[i, :-1] = [np.mean(w == c) for c in RULE_CODES]
            S[i, -1] = np.log(len(w))
    return S


def stack_features(X, P, Pm, handdec, rules, share):
    onehot = np.stack([rules == c for c in RULE_CODES], 1).astype(float)
    hd = np.stack([handdec == c for c in FOUR], 1).astype(float)
    C = X[:, [F[n] for n in CENTRED_NAMES]]
    fl = X[:, [F[n] for n in FLAGS]]
    return np.hstack([Pm, P, onehot, share, hd, fl, C])


def weak_mask(X, kind):
    legs_hidden = X[:, F["legs_seen"]] < 0.5
    cut = (X[:, F["cut_bottom"]] > 0.5) | (X[:, F["cut_side"]] > 0.5)
    low = np.nan_to_num(X[:, F["kp_legs"]], nan=0.0) < 0.3
    return {"hidden": legs_hidden, "cut": cut, "hidden|cut": legs_hidden | cut,
            "hidden|cut|lowlegs": legs_hidden | cut | low}[kind]


def abstain(pred, conf, t_by_class):
    out = pred.copy()
    for c, t in t_by_class.items():
        if t is not None:
            out[(pred == c) & (conf < t)] = "unknown"
    return out


def choose_abstain(yl, pred_l, conf_l, target=0.80):
    """Per class (standing, sitting): the lowest threshold whose precision on the training
    rows reaches ``target``; None where none does (no abstention for that class)."""
    out = {}
    for c in ("standing", "sitting"):
        out[c] = None
        for t in ABST_GRID:
            said = (pred_l == c) & (conf_l >= t)
            if said.sum() >= 5 and np.mean(yl[said] == c) >= target:
                out[c] = float(t)
                break
    return out


def _fit(kind, Z, yy, gg):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    w = TA.camera_weights(gg)
    if kind == "logreg":
        m = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=2000))
        return m.fit(np.nan_to_num(Z), yy, logisticregression__sample_weight=w)
    return HistGradientBoostingClassifier(random_state=TA.SEED, **STACK_PARAMS).fit(Z, yy,
                                                                                    sample_weight=w)


def _proba(m, Z, kind):
    Z = np.nan_to_num(Z) if kind == "logreg" else Z
    cl = list(m.classes_)
    Q = np.zeros((len(Z), 4))
    pr = m.predict_proba(Z)
    for k, c in enumerate(FOUR):
        if c in cl:
            Q[:, k] = pr[:, cl.index(c)]
    return Q


def more_stacks(X, meta, rules, li, y, g, all_groups, tr, te, test_rows, train_rows,
                P_te, P_in, Pm_te, Pm_in, base_te, base_in, share, preds, seed):
    """Smaller second stages: (a) probabilities + the rules' and hand answers only, boosted
    trees; (b) the same, logistic regression; (c) the full features, but the rules' sitting,
    lying, falling and running stand as in ``decide`` (the stage decides only the rest)."""
    def small(P, Pm, hd):
        onehot = np.stack([rules == c for c in RULE_CODES], 1).astype(float)
        h = np.stack([hd == c for c in FOUR], 1).astype(float)
        return np.hstack([Pm, P, onehot, share, h])

    Zs_in = small(np.nan_to_num(P_in), np.nan_to_num(Pm_in), base_in)
    Zs_te = small(np.nan_to_num(P_te), np.nan_to_num(Pm_te), base_te)
    Zf_in = stack_features(X, np.nan_to_num(P_in), np.nan_to_num(Pm_in), base_in, rules, share)
    Zf_te = stack_features(X, np.nan_to_num(P_te), np.nan_to_num(Pm_te), base_te, rules, share)
    pre_te = np.where(np.isnan(P_te).any(1), "unknown", TA.decide(
        np.nan_to_num(Pm_te), FOUR, 0.0, rules, P_own=np.nan_to_num(P_te)))
    free = ~np.isin(rules, list(TA.KEEP))
    for name, kind, Zi, Zt, only_free in (("small, trees", "hgb", Zs_in, Zs_te, False),
                                          ("small, logreg", "logreg", Zs_in, Zs_te, False),
                                          ("full, logreg", "logreg", Zf_in, Zf_te, False),
                                          ("full, trees, rules' sitting/lying kept", "hgb",
                                           Zf_in, Zf_te, True),
                                          ("small, trees, rules' sitting/lying kept", "hgb",
                                           Zs_in, Zs_te, True),
                                          ("full, trees, standing<->walking only", "hgb",
                                           Zf_in, Zf_te, "sw")):
        sw = np.isin(pre_te, ["standing", "walking"])
        if only_free == "sw":
            sel = np.isin(y[tr], ["standing", "walking"]) & free[li[tr]]
        else:
            sel = free[li[tr]] if only_free else np.ones(len(tr), bool)
        m = _fit(kind, Zi[li[tr][sel]], y[tr][sel], g[tr][sel])
        Q = np.full((len(X), 4), np.nan)
        Q[test_rows] = _proba(m, Zt[test_rows], kind)
        top = np.array(FOUR)[np.nan_to_num(Q).argmax(1)]
        if only_free == "sw":
            d = np.where(free & sw & np.isin(top, ["standing", "walking"]), top, pre_te)
        elif only_free:
            d = np.where(free, top, pre_te)
        else:
            d = np.where(np.isin(rules, ["falling", "running"]), rules, top)
        d = np.where(np.isnan(Q).any(1), "unknown", d)
        preds[f"stack {name} + vote 3"][te] = TA.smooth(d, meta, vote_s=None).astype(str)[li[te]]
        preds[f"stack {name} + time vote + vote 3"][te] = TA.smooth(d, meta).astype(str)[li[te]]


def main() -> int:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedGroupKFold

    X, meta, rules, li, y, g, all_groups, idx, lab = AV.load()
    print(f"{len(y)} samples, {len(set(g))} cameras", flush=True)
    share = window_share(meta, rules)
    rows_of = {}
    res = defaultdict(list)
    chosen = defaultdict(list)
    for seed, P_oof in zip(AV.SEEDS, AV.probs_for("today", X, li, y, g, all_groups)):
        preds = defaultdict(lambda: np.empty(len(y), dtype=object))
        for tr, te in StratifiedGroupKFold(TA.N_FOLDS, shuffle=True, random_state=seed).split(
                np.zeros(len(y)), y, g):
            test_rows = np.isin(all_groups, list(set(g[te])))
            train_rows = np.isin(all_groups, list(set(g[tr])))
            P_te = np.where(test_rows[:, None], P_oof, np.nan)  # outer model, test cameras
            P_in = first_stage(X, li, y, g, all_groups, tr, seed)  # inner OOF, train cameras
            P_in = np.where(train_rows[:, None], P_in, np.nan)
            # baseline (shipped), no abstention
            base_te, Pm_te = hand(P_te, meta, rules)
            base_in, Pm_in = hand(P_in, meta, rules)
            preds["base"][te] = base_te[li[te]]
            # 2. weak-evidence overrule, kind and threshold chosen on the inner OOF rows
            best = (np.mean(base_in[li[tr]] == y[tr]), None, 1.01)
            for kind in () if "--more" in sys.argv else (
                    "hidden", "cut", "hidden|cut", "hidden|cut|lowlegs"):
                m = weak_mask(X, kind)
                for thr in OVER_GRID[:-1]:
                    acc = np.mean(hand(P_in, meta, rules, over_weak=(m, thr))[0][li[tr]] == y[tr])
                    if acc > best[0] + 1e-9:
                        best = (acc, kind, thr)
            chosen["weak"].append(best[1:])
            if best[1] is None:
                preds["weak"][te] = base_te[li[te]]
            else:
                preds["weak"][te] = hand(P_te, meta, rules,
                                         over_weak=(weak_mask(X, best[1]), best[2]))[0][li[te]]
            for kind in () if "--more" in sys.argv else (
                    "hidden|cut", "hidden|cut|lowlegs"):  # fixed kind, thr chosen inside
                m = weak_mask(X, kind)
                accs = [np.mean(hand(P_in, meta, rules, over_weak=(m, thr))[0][li[tr]] == y[tr])
                        for thr in OVER_GRID]
                thr = OVER_GRID[int(np.argmax(accs))]
                chosen[f"weak {kind}"].append(thr)
                preds[f"weak {kind}"][te] = hand(P_te, meta, rules,
                                                 over_weak=(m, thr))[0][li[te]]
            if "--more" in sys.argv:
                more_stacks(X, meta, rules, li, y, g, all_groups, tr, te, test_rows, train_rows,
                            P_te, P_in, Pm_te, Pm_in, base_te, base_in, share, preds, seed)
            # 1. stacked decision
            Z_in = stack_features(X, np.nan_to_num(P_in), np.nan_to_num(Pm_in),
                                  base_in, rules, share)
            Z_te = stack_features(X, np.nan_to_num(P_te), np.nan_to_num(Pm_te),
                                  base_te, rules, share)
            st = HistGradientBoostingClassifier(random_state=TA.SEED, **STACK_PARAMS).fit(
                Z_in[li[tr]], y[tr], sample_weight=TA.camera_weights(g[tr]))
            order = [list(st.classes_).index(c) for c in FOUR]
            Q_te = np.full((len(X), 4), np.nan)
            Q_te[test_rows] = st.predict_proba(Z_te[test_rows])[:, order]
            # the second stage's own probabilities for the training rows must be out of fold
            # too, for the abstention thresholds: a grouped CV of the second stage on them
            Q_in = np.full((len(X), 4), np.nan)
            for itr, ite in StratifiedGroupKFold(INNER_FOLDS, shuffle=True,
                                                 random_state=seed).split(
                    np.zeros(len(tr)), y[tr], g[tr]):
                s2 = HistGradientBoostingClassifier(random_state=TA.SEED, **STACK_PARAMS).fit(
                    Z_in[li[tr[itr]]], y[tr[itr]], sample_weight=TA.camera_weights(g[tr[itr]]))
                rws = np.where(np.isin(all_groups, list(set(g[tr[ite]]))))[0]
                Q_in[rws] = s2.predict_proba(Z_in[rws])[:, [list(s2.classes_).index(c)
                                                             for c in FOUR]]
            for name, Q, rowsmask in (("te", Q_te, test_rows), ("in", Q_in, train_rows)):
                top = np.array(FOUR)[np.nan_to_num(Q).argmax(1)]
                d = np.where(np.isin(rules, ["falling", "running"]), rules, top)
                d = np.where(np.isnan(Q).any(1), "unknown", d)
                conf = np.nan_to_num(Q).max(1)
                sm = TA.smooth(d, meta, vote_s=None).astype(str)
                vt = TA.smooth(d, meta).astype(str)
                rows_of[name] = (d, conf, sm, vt)
            d_te, c_te, sm_te, vt_te = rows_of["te"]
            d_in, c_in, sm_in, vt_in = rows_of["in"]
            preds["stack, per frame"][te] = d_te[li[te]]
            preds["stack + vote 3"][te] = sm_te[li[te]]
            preds["stack + time vote 2.1 s + vote 3"][te] = vt_te[li[te]]
            # 3. per-class abstention: on the stacked decision (before postprocess's vote 3) and
            # on the shipped decision (the averaged trees' probability of the answer)
            ts = choose_abstain(y[tr], d_in[li[tr]], c_in[li[tr]])
            chosen["abst stack"].append(ts)
            preds["stack + vote 3 + per-class unknown"][te] = TA.smooth(
                abstain(d_te, c_te, ts), meta, vote_s=None).astype(str)[li[te]]
            pm_in = np.nan_to_num(Pm_in)
            conf_in = np.where(np.isin(base_in, FOUR), pm_in[np.arange(len(X)),
                               [FOUR.index(b) if b in FOUR else 0 for b in base_in]], 1.0)
            ts2 = choose_abstain(y[tr], base_in[li[tr]], conf_in[li[tr]])
            chosen["abst base"].append(ts2)
            pm_te = np.nan_to_num(Pm_te)
            conf_te = np.where(np.isin(base_te, FOUR), pm_te[np.arange(len(X)),
                               [FOUR.index(b) if b in FOUR else 0 for b in base_te]], 1.0)
            preds["shipped + per-class unknown"][te] = abstain(base_te, conf_te, ts2)[li[te]]
        for k, v in preds.items():
            res[k].append(AV.score(y, v.astype(str)))
        print(f"seed {seed} done", flush=True)
        for k in res:
            print(AV.fmt(k, res[k]), flush=True)
    print("\n== mean over splits ==")
    for k in res:
        print(AV.fmt(k, res[k]))
    for k, v in chosen.items():
        print(k, v)
    return 0


if __name__ == "__main__":
    sys.exit(main())
