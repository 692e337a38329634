"""Body orientation from the 17 keypoints (default orientation backend, no extra model).

Convention (``pipeline.records``): degrees clockwise seen from above, 0 = facing the camera,
90 = facing the image's right, 180 = back to the camera, 270 = facing the image's left.

The angle is ``atan2(lateral, frontal)`` of two cues:

* frontal (cosine, -1..1): how wide the shoulders (and hips) look against an adult frontal
  width (0.75 x torso length, or 0.22 x box height) gives its magnitude: full width means
  front or back, zero width means a profile. Its sign comes from the face: nose and an eye seen
  -> toward the camera; not seen -> back to the camera. Pose models often swap left/right on
  people seen from behind, so the left/right order of the shoulders is only a tie-breaker.
* lateral (sine): which side of the head the camera sees. Facing the image's right, a person
  shows the camera their *right* side (right ear seen, left ear hidden) and the nose sits to
  the right of the ear/shoulder midline; facing left, the opposite. Its magnitude is
  ``sqrt(1 - frontal^2)``.

Confidence is the product of the keypoint evidence (mean shoulder score) and how decisive the
cues are; an orientation is ``None`` when the shoulders are not seen.
"""
from __future__ import annotations

import math

import numpy as np

from pipeline import thresholds as T
from pipeline.records import KP, Frame, Orientation, PersonDetections

_N, _LE, _RE, _LA, _RA = KP["nose"], KP["left_eye"], KP["right_eye"], KP["left_ear"], KP["right_ear"]
_LS, _RS, _LH, _RH = KP["left_shoulder"], KP["right_shoulder"], KP["left_hip"], KP["right_hip"]


def orientation_from_keypoints(kp: np.ndarray, box_height: float | None = None) -> Orientation:
    """One person's (17,3) keypoints -> ``Orientation`` (degrees in the engine's convention)."""
    kp = np.asarray(kp, dtype=np.float32).reshape(17, 3)
    seen = kp[:, 2] >= T.ORIENT_KP_MIN_SCORE
    if not (seen[_LS] and seen[_RS]):
        return Orientation(None, 0.0)
    sh_mid = (kp[_LS, :2] + kp[_RS, :2]) / 2
    sh_dx = float(kp[_LS, 0] - kp[_RS, 0])  # > 0: left shoulder on the image's right (frontal)
    hips = seen[_LH] and seen[_RH]
    if hips:
        hip_mid = (kp[_LH, :2] + kp[_RH, :2]) / 2
        torso = float(np.hypot(*(sh_mid - hip_mid)))
        full = T.ORIENT_SHOULDER_PER_TORSO * torso
    else:
        full = T.ORIENT_SHOULDER_PER_HEIGHT * float(box_height or 0.0)
    if full <= 1.0:
        full = max(abs(sh_dx), 1.0)
    width_frac = min(1.0, abs(sh_dx) / full)

    # Toward the camera or away? Two votes in -1..1.
    # (a) left/right order: facing the camera, the left shoulder/hip is on the image's right.
    order = float(np.clip(sh_dx / full, -1, 1))
    if hips:
        order = 0.6 * order + 0.4 * float(np.clip((kp[_LH, 0] - kp[_RH, 0]) / (0.7 * full), -1, 1))
    # (b) the face: a clearly seen nose and eye -> toward; a nose not seen, or no better seen
    # than the ears with no eye seen either (the back of the head) -> away.
    nose, eye = float(kp[_N, 2]), float(max(kp[_LE, 2], kp[_RE, 2]))
    ears = float(max(kp[_LA, 2], kp[_RA, 2]))
    if nose >= T.ORIENT_FACE_SEEN and eye >= T.ORIENT_FACE_SEEN and nose > ears + 0.05:
        face_vote = min(1.0, 0.5 + (nose - ears) * 2)
    elif nose < T.ORIENT_KP_MIN_SCORE or (nose + 0.05 < ears and eye < T.ORIENT_FACE_SEEN):
        # (pose models often score the ears of a frontal face above its nose: with the eyes
        # clearly seen that is still a face, so the ears alone never vote "away")
        face_vote = -min(1.0, 0.5 + (ears - nose) * 2)
    else:
        face_vote = 0.0
    toward = 0.5 * order + 0.5 * face_vote
    front_sign = 1.0 if toward >= 0 else -1.0
    face_decisive = min(1.0, abs(toward) * 1.5)
    frontal = front_sign * width_frac

    # Which side does the camera see? (+ = facing the image's right)
    lateral_votes = []
    ear_diff = float(kp[_RA, 2] - kp[_LA, 2])  # right ear seen better -> facing right
    if abs(ear_diff) > 0.1:
        lateral_votes.append(math.copysign(min(1.0, abs(ear_diff) / 0.4), ear_diff))
    if seen[_N]:
        ears = [j for j in (_LA, _RA) if seen[j]]
        ref_x = float(np.mean(kp[ears, 0])) if len(ears) == 2 else float(sh_mid[0])
        off = (float(kp[_N, 0]) - ref_x) / max(full, 1.0)
        if abs(off) > 0.05:
            lateral_votes.append(float(np.clip(off / 0.3, -1, 1)))
    lateral_sign = float(np.sign(np.mean(lateral_votes))) if lateral_votes else 0.0
    lateral = lateral_sign * math.sqrt(max(0.0, 1.0 - frontal * frontal))

    if lateral == 0.0 and abs(frontal) < 0.5:
        # A profile with no side cue: we cannot tell left from right.
        return Orientation(None, 0.0)
    deg = math.degrees(math.atan2(lateral, frontal)) % 360.0
    shoulder_score = float((kp[_LS, 2] + kp[_RS, 2]) / 2)
    side_decisive = min(1.0, abs(float(np.mean(lateral_votes)))) if lateral_votes else 0.5
    decisive = face_decisive * width_frac + side_decisive * (1.0 - width_frac)
    return Orientation(round(deg, 1), round(float(np.clip(shoulder_score * decisive, 0, 1)), 3))


class KeypointOrientation:
    """Implements ``OrientationEstimator``; stateless and cheap (microseconds a person)."""

    name = "keypoints"

    def estimate(self, frame: Frame, persons: PersonDetections) -> list[Orientation]:
        heights = persons.xyxy[:, 3] - persons.xyxy[:, 1] if len(persons) else []
        return [orientation_from_keypoints(persons.keypoints[i], float(heights[i]))
                for i in range(len(persons))]


def load_keypoint_orientation(settings) -> KeypointOrientation:
    """Registry factory (``VA_ORIENTATION=keypoints``)."""
    return KeypointOrientation()
