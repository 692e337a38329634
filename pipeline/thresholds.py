"""Every rule threshold of the engine, in one documented place.

Units are in the names: ``_S`` seconds, ``_FRAC`` a fraction of something named, ``_DEG`` degrees,
``_BH`` multiples of the person's body height (so rules do not depend on image size or camera
distance), ``_PX`` pixels. Values were chosen from physical reasoning about people and checked on
the real clips of the shared test data (keypoint tables and rendered frames), not fitted per clip.
"""
from __future__ import annotations

# --- person detection (MoveNet MultiPose) ---------------------------------------------------
DET_INPUT_LONG_SIDE = 384  # letterboxed input's long side (px); 384x288 is ~30 ms on 2 cores.
#   MoveNet Lightning was trained near 256 px: people filling much of the frame (falls filmed
#   close up) are found better at 256-384 than at 512; small people get tiles instead.
DET_MIN_PERSON_SCORE = 0.12  # candidates kept for the tracker: lying or blurred people score
#   0.12-0.3; such low scores only continue an existing track, never start one (see TRACK_*)
DET_TILE_WHEN_PEOPLE = 5  # the model returns at most 6: at 5+ there may be more -> tiles
DET_SMALL_PERSON_FRAC = 0.25  # median box height below this fraction of the frame -> 2x2 tiles
DET_TILE_LONG_SIDE = 384  # tiles hold small people; 2x2 tiles at 384 see them at ~1.7x the full
#   pass's scale (512 finds ~10% more people in vtest for 1.5x the cost)
DET_TILE_OVERLAP = 0.3  # tiles overlap by this fraction of their size
DET_FULL_PASS_EVERY = 3  # between two sampled frames of small people (consecutive samples of
#   one video) only the tiles that hold the previous frame's people run, and no full-frame pass; every 3rd sampled frame (~2 s at 1.5 fps)
#   the full pass and every tile run again, so people who come in are found within ~2 s
DET_TILE_MOTION_FRAC = 0.2  # a previous box grown by this fraction of its height on each side
#   where a tile can hold it so (a brisk step between samples); the tiles overlap by ~100 px, so
#   a larger margin would force both tiles for everyone near an inner border
DET_NMS_IOU = 0.5  # two boxes with more IoU are one person
DET_NMS_IOMIN = 0.8  # ...or when the smaller box lies this much inside the larger one
KP_MIN_SCORE = 0.25  # keypoints below this score are treated as unseen
EDGE_MARGIN_FRAC = 0.02  # a box within this fraction of the frame's bottom edge is cut by it

# --- second person detector for the dense passes (``backends/proposals.py``) ----------------
PROP_MIN_SCORE = 0.3  # YOLOv5s person score (objectness x class): lower adds coats, chairs, posters
PROP_NMS_IOU = 0.5  # YOLOv5s boxes overlapping more are one person
PROP_MATCH_IOU = 0.3  # a YOLOv5s box overlapping a MoveNet person this much is that person...
PROP_MATCH_IOMIN = 0.7  # ...or lying this much inside one (a part of them)
PROP_CROP_PAD = 1.25  # Thunder sees a square crop this much larger than the box's long side
PROP_MIN_POSE_SCORE = 0.15  # mean of the 10 best Thunder keypoint scores: below, no pose -> drop

# --- tracking (ByteTrack on sampled frames, ~0.5-1.5 fps) -----------------------------------
TRACK_ACTIVATION_SCORE = 0.2  # a detection this confident may start a track (MoveNet's scores
#   for real people in surveillance footage are often only 0.25-0.5)
TRACK_HIGH_SCORE = 0.2  # first association round uses detections above this; lower ones may
#   only continue a track (ByteTrack's second round, or the re-link below)
TRACK_MIN_SIMILARITY = 0.35  # DIoU shifted to 0..1 ((DIoU+1)/2): 0.35 = DIoU -0.3, i.e. boxes
#   need not overlap; a centre offset of about a body width from the prediction still matches
TRACK_LOST_S = 6.0  # keep a lost track this long (seconds of video) before dropping it
TRACK_RELINK_BH = 1.0  # a new track whose centre is within this many (old) box heights of a
#   track lost less than TRACK_LOST_S ago continues it (falls reshape the box; walkers at 0.5 fps)
TRACK_MIN_OBSERVATIONS = 2  # tracks seen fewer times are noise (unless the video has fewer samples)
TRACK_MIN_DURATION_S = 1.0  # tracks seen for a shorter time (first to last sighting) are passers-by
#   at the frame edge or detector ghosts: too short to describe (relaxed for shorter videos)
TRACK_MIN_PRESENCE_FRAC = 0.3  # tracks present in fewer of the samples of their span flicker
ACTION_SMOOTH_SAMPLES = 3  # per-track action: centred majority vote over this many samples

# --- posture and motion (pose rules, pipeline/actions.py) -----------------------------------
UPRIGHT_MAX_TORSO_DEG = 35.0  # torso (hip-mid -> shoulder-mid) within this of vertical: upright
UPRIGHT_MIN_BOX_ASPECT = 1.2  # an upright adult's box is clearly taller than wide
LYING_MIN_TORSO_DEG = 60.0  # torso or body axis this far from vertical: a horizontal body
LYING_MAX_ASPECT_WITH_KP = 1.6  # ...and a box no taller than this x its width (a bent-over
#   standing person has a tilted torso but a tall box)
LYING_MAX_BOX_ASPECT = 0.8  # a box this wide (height/width) is lying unless the torso is seen
LYING_WIDE_BOX_MIN_TORSO_DEG = 30.0  # ...clearly upright (under this angle: sitting on the floor)
SITTING_MIN_THIGH_DEG = 50.0  # upright torso with thighs this far from vertical: sitting
SITTING_MAX_HEIGHT_PER_TORSO = 3.2  # legs hidden and a box at most this many torso lengths
#   tall: an upper body (sitting at a desk); a whole standing body is ~3.3-3.5 torso lengths
LEGS_MIN_MEAN_SCORE = 0.3  # mean knee+ankle score below this: the legs are hidden (MoveNet
#   still guesses legs under a desk, at ~0.1-0.27; clearly seen legs score 0.5-0.85)
LEGS_CLEAR_MEAN_SCORE = 0.4  # below this the legs are unclear: trust the box height rule
WALK_MIN_SPEED_BH_S = 0.25  # feet point speed in body heights per second: walking (normal walking
#   is ~0.7 BH/s; detection jitter of a still person stays under ~0.1 BH/s)
RUN_MIN_SPEED_BH_S = 1.5  # running is ~1.8 BH/s and up
MOTION_WINDOW_S = 3.0  # history window for speed estimates
DEPTH_BH_PER_LOG_SIZE = 3.0  # walking toward the camera: body heights moved per unit change of
#   log(box height) (= camera distance / body height, ~3 for people 4-6 m away)
MOTION_MIN_SPAN_S = 0.9  # speeds are measured over at least this much time (jitter)

# --- falls and collapse (highlights, pipeline/highlights.py) --------------------------------
FALL_MAX_TRANSITION_S = 2.0  # upright -> down within this time is a fall (a fall takes ~0.5-1.5 s;
#   sitting or lying down on purpose takes longer)
FALL_HIGHLIGHT_AFTER_S = 1.0  # a falling highlight shows the onset and the person this long after
FALL_ACTION_HOLD_S = 1.0  # a person down is labelled "falling" (the per-frame action) for at most
#   this long after the last upright sighting, or until the next sample; "lying" after that
FALL_MIN_DROP_BH = 0.3  # hips fall by at least this many standing body heights (standing hips
#   are ~0.5 BH above the floor; a person on the floor has dropped 0.35-0.65 BH in the clips)
FALL_ONSET_DROP_BH = 0.08  # hips still within this of standing height: the fall has not begun
FALL_MIN_DOWN_S = 1.0  # not upright again within this time after going down (squats, stumbles)
FALL_REFINE_STEP_S = 0.1  # decode every this many seconds between two samples to time a fall
DOWN_MAX_BOX_ASPECT = 1.0  # a box no taller than wide: the person is on the floor (or sprawled)
COLLAPSE_MIN_LYING_S = 3.0  # lying on the floor this long is a collapse
COLLAPSE_MAX_GAP_S = 1.5  # missed detections of a lying person up to this long do not break it
EPISODE_MERGE_GAP_S = 2.0  # same-type episodes of one track this close are one episode
DENSE_MAX_FRACTION = 0.1  # at most this fraction of a video is re-analysed densely...
DENSE_MIN_BUDGET_S = 6.0  # ...or this many seconds, whichever is more
DENSE_PIECE_S = 2.0  # windows over the budget are cut into pieces this long; the most agitated
#   pieces of the sparse pass (close people's boxes overlapping and moving) are re-analysed
DENSE_CHUNK_S = 2.0  # dense windows are decoded this many seconds at a time (bounded memory)
DENSE_MIN_BODY_PX = 120  # sparse runs re-analyse close people densely for interactions only
#   when at least two are this tall (px): on smaller bodies keypoint jitter of a few pixels
#   reads as fast limb motion

# =============================================================================================
# Faces, age/gender, orientation, interactions (pipeline/faces.py, attributes.py,
# interactions.py, backends/age_gender.py, faceres.py, keypoint_orientation.py)
# =============================================================================================

# --- faces from head keypoints (pipeline/faces.py) ----------------------------------------
FACE_KP_MIN_SCORE = 0.3  # a head keypoint counts as visible at or above this MoveNet score
# Face side in px from head geometry (calibrated on dlib's face box for astronaut.png):
FACE_SIDE_PER_EYE_DIST = 2.0  # eye-to-eye distance x 2 (frontal faces)
FACE_SIDE_PER_EAR_DIST = 0.92  # ear-to-ear distance (frontal and three-quarter faces)
FACE_SIDE_PER_NOSE_EAR = 1.8  # nose-to-ear distance (profiles)
FACE_SIDE_PER_SHOULDER = 0.45  # shoulder width (fallback when the head geometry is short)
FACE_TOP_ABOVE_EYES = 0.25  # box top = eye line - 0.25 x side (dlib's box: brows to chin)

# --- face quality gate (applied BEFORE any age/gender model runs) -------------------------
# Both age/gender models are near chance on faces under ~40 px; below this side no model runs.
FACE_MIN_SIDE_PX = 40.0
# Variance of the Laplacian of the face crop resized to 64x64 grey: below this the face is
# too blurred (motion, focus, compression) for a trustworthy answer.
FACE_MIN_SHARPNESS = 20.0

# --- per-frame age/gender trust gates (pipeline/faces.py: abstentions) ---------------------
# Measured with scripts/eval_demographics.py on every labelled face of the shared test data
# (README, "Demographics"): the seed answered 12 % of the faces with 66 % precision.
# P(male) is the mean of the face and its mirror image; below this confidence: UNKNOWN.
GENDER_MIN_SCORE = 0.70
# Mean over the frame of max(R,G,B) - min(R,G,B), 0..255: black-and-white and infrared footage
# (codec noise, coloured overlays) stays under 5, colour footage above. Without skin or lip colour
# the gender networks read grey men as women with high confidence, so gender is withheld there
# (age is kept).
FACE_MIN_FRAME_CHROMA = 5.0
# Head turn: |nose x - eyes' mid x| / eye distance = (nose depth / eye distance) x tan(turn);
# the nose tip sits ~0.6 eye distances in front of the eyes, so 0.35 is a ~30 degree turn. The
# models were trained on near-frontal faces: profiles mostly read female, and give no age.
FACE_MAX_YAW = 0.35
# Eye line tilt. The 5-point alignment undoes some roll, but a head tilted further is a person
# bending or falling (motion blur, odd light), whose readings are wrong. No age either.
FACE_MAX_ROLL_DEG = 20.0
FACE_MEASURE_MIN_SIDE_PX = 12.0  # scripts/eval_demographics.py runs the model down to this side
# Mirror image: a face whose P(male) and its mirror's fall on opposite sides of 0.5 is UNKNOWN
# (no threshold: the decision itself must survive a left-right flip).

# --- per-track aggregation (pipeline/attributes.py) ---------------------------------------
ATTR_MIN_AGREEING_FRAMES = 2  # confident frames that must agree (1 for a one-frame track)
ATTR_MIN_GENDER_SHARE = 0.70  # majority share among confident frames to report a gender

# --- orientation from keypoints (backends/keypoint_orientation.py) ------------------------
ORIENT_KP_MIN_SCORE = 0.25  # a keypoint counts as seen at or above this score
ORIENT_SHOULDER_PER_TORSO = 0.75  # full frontal shoulder width / torso length (adult build)
ORIENT_SHOULDER_PER_HEIGHT = 0.22  # ... / box height, when the torso is not seen
ORIENT_FACE_SEEN = 0.35  # mean score of nose + best eye above this: face toward the camera

# --- interactions: violent, grabbing, anomaly (pipeline/interactions.py) -------------------
# Body scale: a track's 80th-percentile box height (robust to boxes cut by the frame edge).
# Limb speed: wrist/elbow motion relative to the shoulder midpoint, body heights per second.
INTER_KP_MIN_SCORE = 0.3  # grabbing: arm keypoints below this score are not used
LIMB_KP_MIN_SCORE = 0.2  # limb speed (violent): keypoints below this score are not used. Fighters
#   in dark or IR footage score 0.2-0.3 on their arms; the jitter such keypoints add is answered
#   by VIOLENT_MIN_LIMB_SPEED_BH_S (a lower floor lets in wrong arms that make calm crowds fight)
INTER_MIN_DT_S = 0.11  # ...and at least this far apart (shorter: keypoint jitter dominates)
INTER_MAX_DT_S = 0.4  # speeds only between samples at most this far apart (denser sampling)
INTER_BORDER_FRAC = 0.02  # keypoints this close to the frame edge are unreliable
# Violent: walking arm swing is ~0.3-0.6 body heights/s; a punch or shove moves the wrist
# ~0.3 body heights in ~0.15 s (2+ /s). Sustained: at least 2 fast samples of a close pair.
# 1.0 sits well above arm swing and keypoint jitter (people walking past each other close to the
# camera) and below fights, which reach 1.3-3.3.
VIOLENT_MIN_LIMB_SPEED_BH_S = 1.0
VIOLENT_MAX_DISTANCE_BH = 1.8  # box centres within this many (mean) body heights: "close"
VIOLENT_MIN_SAMPLES = 2
VIOLENT_MAX_GAP_S = 0.8  # fast samples further apart than this start a new episode
# A fight involves two moving bodies: during the episode the other person must move too, either
# the limbs (a still person's keypoint jitter stays under ~0.2 body heights/s; in the fight clips
# the partner's wrists move at 0.56-0.9) or the whole body (shoved or stepping in; box jitter
# of a still person reaches ~0.25 at dense sampling). One person falling next to someone who
# does not move (Fall02: the faller's flailing arms beside a motionless person) is not a fight.
VIOLENT_PARTNER_MIN_LIMB_SPEED_BH_S = 0.4
VIOLENT_PARTNER_MIN_BODY_SPEED_BH_S = 0.5
# Grabbing: an arm reaching out: wrist far from its shoulder (extended arm) and either above the
# shoulder (toward a high shelf) or far out to the side, held for a moment.
GRAB_MIN_REACH_BH = 0.25  # shoulder-to-wrist distance (a straight adult arm is ~0.35)
GRAB_MIN_ELBOW_DEG = 140.0  # elbow angle: the arm is (nearly) straight
GRAB_ABOVE_SHOULDER_BH = 0.05  # wrist this far above its shoulder: reaching up
GRAB_MIN_SIDE_REACH_BH = 0.25  # ...or wrist this far sideways from the body's box centre
GRAB_MAX_DROP_FRAC = 0.5  # ...or the wrist's drop below the shoulder < this x arm length (raised)
GRAB_MIN_HOLD_S = 0.4  # the reach must be seen over at least this long (2+ samples)
GRAB_MAX_BODY_SPEED_BH_S = 0.5  # a person walking by swings arms; reaching happens standing
# Anomaly = running: the body's centre moving faster than any walk (walking ~0.5-1 body
# heights/s, running >= ~2), sustained over 2 intervals, the box size stable.
ANOMALY_RUN_SPEED_BH_S = 2.0
ANOMALY_MIN_INTERVALS = 2
ANOMALY_MAX_SCALE_CHANGE = 1.25  # box height ratio between samples above this: detection jump

# --- one person's crops on a track card (``media.same_person_picks``) ------------------------
#   At 0.5-1.5 sampled fps a track can pass from one person to another; the card shows only
#   crops that agree on where the person went and what they wear.
IDENTITY_MAX_SPEED_BH_S = 3.0  # a box centre moving faster than this (body heights a second,
#   beyond sprinting: ANOMALY runs at 2) between consecutive samples is another person...
IDENTITY_JUMP_SLACK_BH = 0.5  # ...plus this much for box jitter and a bent-over pose
IDENTITY_MAX_COLOUR_DIST = 0.5  # Bhattacharyya distance between the median hue-saturation
#   histograms (upper and lower body) of the samples before and after a cut: over 0.5, about
#   half the colour mass moved, i.e. other clothes, not another pose or light (reasoned, then
#   checked, not fitted)
IDENTITY_CANDIDATES = 12  # samples of a track compared (evenly spread; frames are decoded)

# --- scene cuts (``cuts.CutDetector``) -------------------------------------------------------
#   Samples 0.67 s apart differ by motion as well as by cuts: a fighter close to the camera
#   changes half the frame, so the content score alone cuts shots; the colour histograms stay
#   put under motion and move at a cut, so a cut needs both (scripts/measure_cuts.py measures
#   them on the surveillance-fight set). A jump cut within one camera's view is not seen.
CUT_CONTENT_SCORE = 27.0  # PySceneDetect's content score (mean HSV change, 0-255) at or above
#   which a frame starts a new shot: every track ends there...
CUT_HIST_DISTANCE = 0.2  # ...when its colour histograms also moved this far (Bhattacharyya)
