"""Tried for issue 23 (walking vs standing): does the pixels' motion inside a person's box, read
from the frames just before and after the sampled one, add to the posture classifier's features?

The keypoint motion the classifier has is measured between samples 0.67 s apart (1.5 samples/s)
and is noisy for small people and for walkers seen head-on; the frames around a sample cost
nothing more to decode (the sampled pass decodes every frame). Per cached row of
``var/actions/features.npz`` (``train_actions.py``):

* the frame difference |f(t) - f(t - g)| and |f(t + g) - f(t)|, g the frames in ~0.1 s (at
  least 1), grey, blurred 3x3, averaged over the two sides;
* the frame's noise: the median difference over the whole frame (static scene, sensor noise,
  compression, a hand-held camera's shake);
* ``pm_upper`` / ``pm_lower``: log of (mean difference + 1) / (noise + 1) in the box's upper and
  lower halves; ``pm_legs_minus_torso``; ``pm_moving``: the share of the box's pixels whose
  difference exceeds max(8, 3 x noise).

Then the same grouped CV as ``action_variants.py`` (3 fold splits by camera; the shipped
decision: the rules' sitting/lying kept, probabilities averaged over +/-2.1 s, time vote, vote
3) with and without these 4 features.

    python scripts/action_pixel_motion.py     # after train_actions.py has cached the features
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
from action_tracks import load_tracks, path_of  # noqa: E402

NAMES = ("pm_upper", "pm_lower", "pm_legs_minus_torso", "pm_moving")
CACHE = ROOT / "var" / "actions" / "pixel_motion.npy"
GAP_S = 0.1


def _grey(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.blur(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), (3, 3)).astype(np.int16)


def clip_features(clip: str, rows: list[tuple[int, int, tuple]], fps: float) -> np.ndarray:
    """``NAMES`` for ``rows`` (row index, frame number, box) of one clip."""
    from pipeline.sampling import VideoFrames

    gap = max(1, int(round(GAP_S * fps)))
    frames_needed = {fn + d for _, fn, _ in rows for d in (-gap, 0, gap)}
    top = max(frames_needed)
    grey: dict[int, np.ndarray] = {}
    for frame in VideoFrames(path_of(clip), 1):
        if frame.frame_number in frames_needed:
            grey[frame.frame_number] = _grey(frame.image)
        if frame.frame_number >= top:
            break
    out = np.full((len(rows), len(NAMES)), np.nan)
    for k, (_, fn, box) in enumerate(rows):
        if fn not in grey:
            continue
        diffs = [np.abs(grey[fn] - grey[o]) for o in (fn - gap, fn + gap) if o in grey]
        if not diffs:
            continue
        d = np.mean(diffs, axis=0)
        noise = float(np.median(d))
        H, W = d.shape
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(W, x2), min(H, y2)
        if x2 - x1 < 2 or y2 - y1 < 4:
            continue
        ym = (y1 + y2) // 2
        up, lo = float(d[y1:ym, x1:x2].mean()), float(d[ym:y2, x1:x2].mean())
        out[k, 0] = np.log((up + 1) / (noise + 1))
        out[k, 1] = np.log((lo + 1) / (noise + 1))
        out[k, 2] = out[k, 1] - out[k, 0]
        out[k, 3] = float(np.mean(d[y1:y2, x1:x2] > max(8.0, 3 * noise)))
    return out


def all_features(meta) -> np.ndarray:
    if CACHE.exists() and CACHE.stat().st_mtime > TA.FEATURES.stat().st_mtime:
        return np.load(CACHE)
    tracks = load_tracks()
    by_clip = defaultdict(list)
    for i, m in enumerate(meta):
        by_clip[m[0]].append((i, int(m[1]), tuple(float(v) for v in m[3:7])))
    F = np.full((len(meta), len(NAMES)), np.nan)
    for clip, rows in sorted(by_clip.items()):
        F[[i for i, _, _ in rows]] = clip_features(clip, rows, float(tracks[clip]["fps"]))
        print(f"  {clip}: {len(rows)} rows", file=sys.stderr, flush=True)
    np.save(CACHE, F)
    return F


def main() -> int:
    return AV.try_features("pixel motion", all_features, NAMES, [
        ("+ pixel motion (4)", [0, 1, 2, 3]), ("+ pixel motion, legs only (2)", [1, 3])])


if __name__ == "__main__":
    sys.exit(main())
