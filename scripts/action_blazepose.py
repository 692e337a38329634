"""Round 9 for issue 23 (tried, not shipped): does a second, top-down pose model add to the
posture classifier?

MoveNet MultiPose reads every person of a frame at once, small; its keypoints of people seen
from above, crouched or on the floor are the classifier's weak spot. BlazePose GHUM "full"
(``pose_landmark_full.tflite``, Apache-2.0, inside PyPI ``mediapipe==0.10.14``:
``pip download mediapipe==0.10.14 --no-deps``, then unzip
``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``; OpenVINO reads the .tflite
itself, about 5 ms a person on 2 cores) reads one person on a 256x256 crop and gives 33
landmarks in the crop and in metres (3D, hip-centred), so joint angles that foreshortening hides
in 2D can be read. The crop is mediapipe's own ROI rule on the tracked box: square, 1.25 x its
longer side, turned so the MoveNet hips-to-shoulders line points up (upright where those
keypoints are unsure). ``BODY_NAMES``: presence, 3D knee and hip angles, thigh and shin against
the torso, the legs' visibility, the torso's inclination in the image, the shoulders-to-ankles
extent along the torso, 2D knee and hip angles.

Per cached row of ``var/actions/features.npz`` (``train_actions.py``) the row's frame is decoded
again and read; then the grouped CV of ``action_variants.py`` (3 fold splits by camera, the
shipped decision) without the body columns, with them and without the 3D angles; then
``action_held_out.py``'s protocol A (trained on the earlier labels, scored on the held-out ones
too) without and with them.

    python scripts/action_blazepose.py --model /path/to/pose_landmark_full.tflite
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
import action_held_out as HO  # noqa: E402
import action_variants as AV  # noqa: E402
import train_actions as TA  # noqa: E402
from action_tracks import load_tracks, path_of  # noqa: E402
from pipeline.records import KP  # noqa: E402

CACHE = ROOT / "var" / "actions" / "body_pose.npy"
BODY_NAMES = ("bp_presence", "bp_knee_min", "bp_knee_mean", "bp_hip_mean", "bp_thigh_incl",
              "bp_shin_incl", "bp_leg_vis", "bp_torso_incl", "bp_extent", "bp2_knee_mean",
              "bp2_hip_mean")
SIZE = 256
SCALE = 1.25
MIN_SIDE_PX = 8.0  # a crop side under this is not read (NaN)
MIN_KP_SCORE = 0.2  # the MoveNet hips and shoulders that turn the crop
_SH, _HIP, _KNEE, _ANK = (11, 12), (23, 24), (25, 26), (27, 28)  # BlazePose landmarks
_MN = [KP[k] for k in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
UNREAD = (float("nan"),) * len(BODY_NAMES)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def _between(u, v) -> float:
    """The angle between two vectors, degrees."""
    cos = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-9))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def _joint(p: np.ndarray, a: int, b: int, c: int) -> float:
    return _between(p[a] - p[b], p[c] - p[b])


def roi(box: Sequence[float], keypoints) -> tuple[float, float, float, float]:
    """(centre x, centre y, side, clockwise turn in degrees) of the person's crop."""
    x1, y1, x2, y2 = (float(v) for v in box)
    angle = 0.0
    kp = np.asarray(keypoints, dtype=float)
    if kp.ndim == 2 and len(kp) == 17 and kp[_MN, 2].min() >= MIN_KP_SCORE:
        d = kp[_MN[:2], :2].mean(0) - kp[_MN[2:], :2].mean(0)  # hips -> shoulders, y down
        angle = float(np.degrees(np.arctan2(d[0], -d[1])))
    return (x1 + x2) / 2, (y1 + y2) / 2, SCALE * max(x2 - x1, y2 - y1), angle


def crop(image: np.ndarray, cx: float, cy: float, side: float, angle: float) -> np.ndarray:
    """The ROI as a SIZE x SIZE float RGB crop in [0, 1] (the model's input), body axis up."""
    import cv2

    M = cv2.getRotationMatrix2D((cx, cy), angle, SIZE / side)
    M[:, 2] += (SIZE / 2 - cx, SIZE / 2 - cy)
    out = cv2.warpAffine(image, M, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(np.float32) / 255.0


def body_features(landmarks: np.ndarray, presence: float, world: np.ndarray,
                  angle: float) -> tuple[float, ...]:
    """``BODY_NAMES`` from one crop's outputs: ``landmarks`` 39 x 5 (crop x, y, z, visibility
    and presence logits), ``world`` 39 x 3 (metres, in the crop's axes), the crop's turn."""
    vis = _sigmoid(landmarks[:, 3])
    knees = [_joint(world, h, k, a) for h, k, a in zip(_HIP, _KNEE, _ANK)]
    hips = [_joint(world, s, h, k) for s, h, k in zip(_SH, _HIP, _KNEE)]
    hip_mid, sh_mid = world[list(_HIP)].mean(0), world[list(_SH)].mean(0)
    axis = hip_mid - sh_mid  # down the torso
    thigh = np.mean([_between(world[k] - world[h], axis) for h, k in zip(_HIP, _KNEE)])
    shin = np.mean([_between(world[a] - world[k], axis) for k, a in zip(_KNEE, _ANK)])
    t = np.radians(angle)  # the torso in the image: the crop's turn undone
    image_axis = np.array([axis[0] * np.cos(t) - axis[1] * np.sin(t),
                           axis[0] * np.sin(t) + axis[1] * np.cos(t), axis[2]])
    seg = (np.linalg.norm(axis)
           + np.mean([np.linalg.norm(world[k] - world[h]) for h, k in zip(_HIP, _KNEE)])
           + np.mean([np.linalg.norm(world[a] - world[k]) for k, a in zip(_KNEE, _ANK)]))
    unit = axis / (np.linalg.norm(axis) + 1e-9)
    extent = float((world[list(_ANK)].mean(0) - sh_mid) @ unit) / (seg + 1e-9)
    xy = np.c_[landmarks[:, :2], np.zeros(len(landmarks))]
    knees2 = [_joint(xy, h, k, a) for h, k, a in zip(_HIP, _KNEE, _ANK)]
    hips2 = [_joint(xy, s, h, k) for s, h, k in zip(_SH, _HIP, _KNEE)]
    vals = (presence, min(knees), np.mean(knees), np.mean(hips), thigh, shin,
            vis[list(_KNEE + _ANK)].mean(), _between(image_axis, np.array([0.0, 1.0, 0.0])),
            extent, np.mean(knees2), np.mean(hips2))
    return tuple(round(float(v), 4) for v in vals)


class BodyPose:
    """The landmark model on the CPU through OpenVINO, float32 (at bf16, OpenVINO's default on a
    CPU with AVX512_BF16, its landmarks move by up to 12 px of the 256 and the 3D knee angle of
    standing people reads 102 degrees instead of 152). ``read(image, boxes, keypoints)``:
    ``BODY_NAMES`` per person."""

    def __init__(self, path: Path, cpu):
        from pipeline.backends.onnx_common import OpenVinoSession, _core

        model = _core().read_model(str(path))  # OpenVINO's TFLite frontend
        by_size = {int(np.prod(o.get_partial_shape().to_shape())): o.get_any_name()
                   for o in model.outputs}
        self.session = OpenVinoSession(model, cpu, precision="f32")
        self._names = [by_size[195], by_size[1], by_size[117]]  # landmarks, presence, world
        self._input = self.session.get_inputs()[0].name

    def read(self, image: np.ndarray, boxes, keypoints) -> list[tuple[float, ...]]:
        out = []
        for box, kp in zip(boxes, keypoints):
            cx, cy, side, angle = roi(box, kp)
            if side < MIN_SIDE_PX:
                out.append(UNREAD)
                continue
            lm, flag, world = self.session.run(self._names,
                                               {self._input: crop(image, cx, cy, side, angle)[None]})
            out.append(body_features(np.asarray(lm).reshape(39, 5), float(np.ravel(flag)[0]),
                                     np.asarray(world).reshape(39, 3), angle))
        return out


def read_rows(meta, model: Path) -> np.ndarray:
    """``BODY_NAMES`` of every row of ``meta`` (clip, frame, track, box, t): each clip's frames
    decoded once, the track's MoveNet keypoints turning the crop."""
    from pipeline.backends.onnx_common import CpuInference
    from pipeline.sampling import VideoFrames

    reader = BodyPose(model, CpuInference(threads=2))
    tracks = load_tracks()
    by_clip: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for i, m in enumerate(meta):
        by_clip[m[0]][int(m[1])].append((i, int(m[2]), [float(v) for v in m[3:7]]))
    B = np.full((len(meta), len(BODY_NAMES)), np.nan)
    for clip, frames in sorted(by_clip.items()):
        kps = {(r["frame"], r["track"]): r["kp"] for r in tracks[clip]["rows"]}
        last = max(frames)
        for frame in VideoFrames(path_of(clip), int(tracks[clip]["frame_skip"])):
            rows = frames.get(frame.frame_number, ())
            if rows:
                B[[i for i, _, _ in rows]] = reader.read(
                    frame.image, [b for _, _, b in rows],
                    [kps.get((frame.frame_number, t), []) for _, t, _ in rows])
            if frame.frame_number >= last:
                break
    return B


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True,
                    help="pose_landmark_full.tflite (from the PyPI mediapipe==0.10.14 wheel)")
    args = ap.parse_args(argv)
    X, meta, rules, li, y, g, all_groups, idx, lab = AV.load()
    if CACHE.exists() and CACHE.stat().st_mtime > TA.FEATURES.stat().st_mtime:
        B = np.load(CACHE)
    else:
        B = read_rows(meta, args.model)
        np.save(CACHE, B)
    n = len(BODY_NAMES)
    print(f"{len(y)} samples, {len(set(g))} cameras; body unread on "
          f"{int(np.isnan(B[li]).any(1).sum())} labelled samples")
    for c in AV.FOUR:
        print(f"  {c:9s} " + "  ".join(f"{name} {np.nanmedian(B[li][y == c, j]):+.2f}"
                                       for j, name in enumerate(BODY_NAMES)))
    no3d = [0, 6, 7, 8, 9, 10]
    AV.compare_features([(f"without the body ({X.shape[1]})", X),
                         (f"+ body ({n})", np.hstack([X, B])),
                         ("+ body without the 3D joint angles", np.hstack([X, B[:, no3d]]))],
                        meta, rules, li, y, g, all_groups)
    held_out(np.hstack([X, B]), meta, rules, n)
    return 0


def held_out(X, meta, rules, n: int) -> None:
    """``action_held_out.py``'s protocol A (folds over the earlier and the held-out samples by
    camera, trees fitted on the earlier labels of the training cameras) without and with the
    body columns, each with the abstain threshold stored in models/actions.json."""
    li, y, g, held, all_groups = HO.samples(meta)
    t = json.loads(TA.MODEL_PATH.read_text())["abstain_below"]
    for name, XX in (("without the body", X[:, :-n]), ("with the body", X)):
        res = []
        for seed in AV.SEEDS:
            ok = HO.stored(XX, meta, rules, li, y, g, all_groups, seed, ~held, t) == y
            res.append(f"{ok.mean():.3f} / {ok[~held].mean():.3f} / {ok[held].mean():.3f}")
        print(f"held-out protocol, {name:17} (all / earlier / held out), 3 splits: "
              + ";  ".join(res), flush=True)


if __name__ == "__main__":
    sys.exit(main())
