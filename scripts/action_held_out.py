"""Round 6 of the action model: should the held-out labels (``visual_held_out``: fight scenes with
people on the floor, the GMDCSA24/URFD falls' lying samples) be trained on? Folds drawn over the
earlier and the held-out samples together (grouped by camera, 3 splits); in each, the trees are
fitted on (A) the earlier labels of the training cameras only, as shipped, or (B) all their
labels; both decide as shipped (mean and vote over +/-2.1 s, the stored abstain threshold) and are
scored on all, the earlier and the held-out samples of the test cameras.

    python scripts/action_held_out.py       # after scripts/train_actions.py (cached features)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import action_variants as AV  # noqa: E402
import train_actions as TA  # noqa: E402

CLASSES = ["standing", "walking", "sitting", "lying"]


def samples(meta):
    """The earlier and the held-out posture samples together: row indices, labels, cameras,
    which are held out, and every row's camera (for the folds)."""
    parts = [TA.match_labels(meta), TA.match_labels(meta, held_out=True)]
    idx = np.concatenate([p[0] for p in parts])
    lab = np.concatenate([p[1] for p in parts])
    cams = np.array(list(parts[0][2]) + list(parts[1][2]))
    held = np.r_[np.zeros(len(parts[0][0]), bool), np.ones(len(parts[1][0]), bool)]
    keep = np.isin(lab, CLASSES)
    row_group = {meta[i][0]: c for i, c in zip(idx, cams)}
    all_groups = np.array([row_group.get(m[0], "cam:" + m[0]) for m in meta])
    return idx[keep], lab[keep], cams[keep], held[keep], all_groups


def stored(X, meta, rules, li, y, g, all_groups, seed, use, t) -> np.ndarray:
    """Each sample's stored answer: folds by camera over all samples (split ``seed``), trees
    fitted on the training cameras' samples in ``use``, decided as shipped with the abstain
    threshold ``t``."""
    P = AV.cv_probs(X, li, y, g, all_groups, CLASSES, seed, training=lambda tr: (
        X[li[tr[use[tr]]]], y[tr[use[tr]]], g[tr[use[tr]]]))
    return TA.stored_answers(P, meta, CLASSES, t, rules)[li].astype(str)


def main() -> int:
    d = np.load(TA.FEATURES, allow_pickle=True)  # our own cache file, never user input
    X, meta, rules = d["X"], d["meta"], d["rules"]
    li, y, g, held, all_groups = samples(meta)
    t_ship = json.loads(TA.MODEL_PATH.read_text())["abstain_below"]
    print(f"{len(y)} samples ({held.sum()} held out), threshold {t_ship}")
    for seed in AV.SEEDS:
        for name, use in (("A: earlier labels (shipped)", ~held), ("B: all labels", held | ~held)):
            st = stored(X, meta, rules, li, y, g, all_groups, seed, use, t_ship)
            ok = st == y
            prec = " ".join(f"{c} {np.mean(y[st == c] == c):.2f}" for c in CLASSES)
            print(f"split {seed:>8} {name:28} all {ok.mean():.3f}  earlier {ok[~held].mean():.3f}"
                  f"  held out {ok[held].mean():.3f}  precision: {prec}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
