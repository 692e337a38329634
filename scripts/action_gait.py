"""Tried for issue 23 (walking vs standing, round 7): does the legs' swing over the centred window
add to the posture classifier's features? A walker's ankles part and close and swing about the
hips from sample to sample; a person standing, even one shifting or fighting in place, keeps
them. Per cached row of ``var/actions/features.npz`` (``train_actions.py``), over the track's
samples within +/- ``posture_model.WINDOW_S`` whose ankles and hips are seen (score >= 0.2):

* ``gait_sep_std`` / ``gait_sep_range``: the spread of the ankles' distance apart, in box heights;
* ``gait_swing``: the spread of each ankle's horizontal offset from the hips, in box heights
  (mean of the two);
* ``gait_sep_now``: this sample's ankle distance in box heights.

Then the same grouped CV as ``action_pixel_motion.py`` (3 fold splits by camera; the shipped
decision) with and without them.

    python scripts/action_gait.py     # after train_actions.py has cached the features
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
from action_tracks import load_tracks  # noqa: E402
from pipeline.posture_model import WINDOW_S  # noqa: E402

NAMES = ("gait_sep_std", "gait_sep_range", "gait_swing", "gait_sep_now")
MIN_SCORE = 0.2
LH, RH, LA, RA = 11, 12, 15, 16


def track_features(rows: list[dict]) -> np.ndarray:
    """``NAMES`` for the rows of one track, sorted by time."""
    ts = np.array([r["t"] for r in rows])
    F = np.full((len(rows), len(NAMES)), np.nan)
    sep = np.full(len(rows), np.nan)
    off = np.full((len(rows), 2), np.nan)
    for j, r in enumerate(rows):
        kp = np.array(r["kp"], np.float64)
        h = max(r["box"][3] - r["box"][1], 1.0)
        if min(kp[LA, 2], kp[RA, 2]) >= MIN_SCORE:
            sep[j] = np.linalg.norm(kp[LA, :2] - kp[RA, :2]) / h
            if min(kp[LH, 2], kp[RH, 2]) >= MIN_SCORE:
                hx = (kp[LH, 0] + kp[RH, 0]) / 2
                off[j] = ((kp[LA, 0] - hx) / h, (kp[RA, 0] - hx) / h)
    for j in range(len(rows)):
        w = (ts >= ts[j] - WINDOW_S - 1e-6) & (ts <= ts[j] + WINDOW_S + 1e-6)
        s = sep[w][~np.isnan(sep[w])]
        o = off[w][~np.isnan(off[w]).any(1)]
        F[j, 3] = sep[j]
        if len(s) >= 2:
            F[j, 0], F[j, 1] = s.std(), s.max() - s.min()
        if len(o) >= 2:
            F[j, 2] = o.std(axis=0).mean()
    return F


def all_features(meta) -> np.ndarray:
    tracks = load_tracks()
    where = {}
    for i, m in enumerate(meta):
        where[(m[0], int(m[1]), int(m[2]))] = i
    F = np.full((len(meta), len(NAMES)), np.nan)
    for clip, data in tracks.items():
        by_track = defaultdict(list)
        for r in data["rows"]:
            by_track[r["track"]].append(r)
        for rows in by_track.values():
            rows.sort(key=lambda r: r["t"])
            G = track_features(rows)
            for r, f in zip(rows, G):
                i = where.get((clip, int(r["frame"]), int(r["track"])))
                if i is not None:
                    F[i] = f
    return F


def main() -> int:
    return AV.try_features("gait", all_features, NAMES, [("+ gait (4)", [0, 1, 2, 3]),
                           ("+ gait spread only (3)", [0, 1, 2])], digits=".3f")


if __name__ == "__main__":
    sys.exit(main())
