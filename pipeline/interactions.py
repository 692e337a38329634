"""Violent, grabbing and anomaly episodes from tracked poses over time.

All rules are in body heights (a track's 80th-percentile box height, which boxes cut by the frame
edge do not shrink) and seconds, so they hold at any image size and camera distance. Thresholds
live in ``pipeline.thresholds`` (section "interactions").

* **violent**: two or more people close (box centres within ``VIOLENT_MAX_DISTANCE_BH`` mean body
  heights) while at least one of them moves a wrist or elbow fast relative to their own
  shoulders (``VIOLENT_MIN_LIMB_SPEED_BH_S``; walking arm swing is ~0.3-0.6 body heights/s, a
  punch or shove 2+), sustained over ``VIOLENT_MIN_SAMPLES`` samples, and the other person moves
  too during the episode (limbs at ``VIOLENT_PARTNER_MIN_LIMB_SPEED_BH_S`` or body at
  ``VIOLENT_PARTNER_MIN_BODY_SPEED_BH_S``: a fight has two moving bodies; one person falling
  beside a motionless one is not a fight). One episode per pair, on the more agitated person,
  the other in ``other_obj_ids``. Limb keypoints count from ``LIMB_KP_MIN_SCORE``. Both people
  need keypoints, so the dense passes also run a second person detector
  (``backends/proposals.py``) for the fighters MoveNet misses.
* **grabbing**: one arm reaching out: wrist far from its shoulder with a (nearly) straight elbow,
  and above the shoulder, raised well away from hanging (the shoulder-to-wrist drop under half
  the arm's length: reaching forward to a shelf), or far out to the side of the body, while the
  person is not walking, held over at least ``GRAB_MIN_HOLD_S``.
* **anomaly**: running: the body's centre moving at ``ANOMALY_RUN_SPEED_BH_S`` or more (a walk
  is 0.5-1 body heights/s) over ``ANOMALY_MIN_INTERVALS`` consecutive intervals with a stable box
  size. (A person down among standing people is the engine's fall/collapse highlight.)

Sampling: limb speed needs samples close in time. Speeds are only measured between samples at
most ``INTER_MAX_DT_S`` apart; at the default frame skip (20 at 30 fps = 0.67 s) no violent or
running episode can be found from the regular samples alone. The engine gets denser samples in
one of two documented ways:

* ``interaction_frame_skip(fps, duration_s, frame_skip)``: short clips (up to
  ``DENSE_CLIP_MAX_S``) are analysed whole at ``DENSE_SAMPLE_DT_S`` between samples;
* ``dense_windows(observations, sampled_fps)``: in longer videos, the time windows where people
  are close together (candidate fights); the engine decodes the frames in between
  (``sampling.read_frames``), detects and tracks them, and passes the dense observations here.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.records import KP, Episode, EventType, PersonObservation

# Dense sampling for interactions (see module docstring).
DENSE_CLIP_MAX_S = 10.0  # clips up to this long are analysed whole at the dense rate
DENSE_SAMPLE_DT_S = 0.13  # ~7.5 samples/s: a punch spans one or two intervals
DENSE_WINDOW_PAD_S = 1.0  # seconds added before/after a candidate window

_LS, _RS, _LE, _RE, _LW, _RW = (KP[k] for k in (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist"))
_LH, _RH = KP["left_hip"], KP["right_hip"]
_LIMBS = (_LE, _RE, _LW, _RW)
_ARMS = ((_LS, _LE, _LW), (_RS, _RE, _RW))


@dataclass(frozen=True)
class _Sample:
    """One observation with its motion since the track's previous sample."""

    obs: PersonObservation
    kp: np.ndarray  # (17, 3)
    centre: np.ndarray  # box centre (2,)
    height: float  # this box's height
    scale: float  # the track's body height (px)
    limb_speed: float | None  # body heights / s, relative to the shoulders
    body_speed: float | None  # body heights / s of the box centre
    dt: float | None


def interaction_frame_skip(fps: float, duration_s: float, frame_skip: int) -> int:
    """Frame skip at which to analyse a whole clip so that interactions can be measured:
    ``frame_skip`` for long videos, a denser skip for clips up to ``DENSE_CLIP_MAX_S``."""
    if duration_s <= 0 or duration_s > DENSE_CLIP_MAX_S or fps <= 0:
        return frame_skip
    return max(1, min(frame_skip, int(round(fps * DENSE_SAMPLE_DT_S))))


def dense_windows(observations: Sequence[PersonObservation], sampled_fps: float,
                  ) -> list[tuple[float, float]]:
    """Time windows (start_s, end_s) where two people are close at the regular sampling: where
    the engine should decode denser frames before calling ``find_interaction_episodes``."""
    by_frame: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        by_frame[o.frame_number].append(o)
    scales = _track_scales(observations)
    times = []
    for obs in by_frame.values():
        for i in range(len(obs)):
            for j in range(i + 1, len(obs)):
                if _pair_distance_bh(obs[i], obs[j], scales) <= T.VIOLENT_MAX_DISTANCE_BH:
                    times.append(obs[i].t_s)
                    break
    windows: list[list[float]] = []
    for t in sorted(set(times)):
        lo, hi = t - DENSE_WINDOW_PAD_S, t + DENSE_WINDOW_PAD_S
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = hi
        else:
            windows.append([lo, hi])
    return [(max(0.0, a), b) for a, b in windows]


def find_interaction_episodes(observations: Sequence[PersonObservation],
                              frame_size: tuple[int, int], sampled_fps: float,
                              violent: Sequence[Episode] | None = None) -> list[Episode]:
    """Violent, grabbing and anomaly episodes (see the module docstring for the rules).

    ``frame_size`` is (width, height) in pixels; ``sampled_fps`` the sampling rate of
    ``observations`` (only used to bound gaps when timestamps are irregular). ``violent``: the
    violent episodes found by a violence backend (``pipeline.violence``); None: this module's
    limb-speed rule."""
    tracks = _motion_tracks(observations, frame_size)
    episodes = _violent(tracks) if violent is None else list(violent)
    violent_spans = [(e.obj_id, e.start_t_s, e.end_t_s) for e in episodes] + [
        (o, e.start_t_s, e.end_t_s) for e in episodes for o in e.other_obj_ids]
    episodes += _grabbing(tracks, violent_spans)
    episodes += _running(tracks)
    return sorted(episodes, key=lambda e: (e.peak_t_s, e.obj_id, e.event_type.value))


# --- features -------------------------------------------------------------------------------

def _track_scales(observations: Sequence[PersonObservation]) -> dict[int, float]:
    heights: dict[int, list[float]] = defaultdict(list)
    for o in observations:
        heights[o.obj_id].append(o.xyxy[3] - o.xyxy[1])
    return {tid: max(1.0, float(np.percentile(h, 80))) for tid, h in heights.items()}


def _centre(o: PersonObservation) -> np.ndarray:
    x0, y0, x1, y1 = o.xyxy
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2], np.float64)


def _pair_distance_bh(a: PersonObservation, b: PersonObservation, scales: dict[int, float]) -> float:
    mean_h = (scales.get(a.obj_id, 1.0) + scales.get(b.obj_id, 1.0)) / 2
    return float(np.hypot(*(_centre(a) - _centre(b)))) / max(mean_h, 1.0)


def _usable(kp: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    w, h = frame_size
    m = T.INTER_BORDER_FRAC
    return ((kp[:, 2] >= T.LIMB_KP_MIN_SCORE) & (kp[:, 0] > m * w) & (kp[:, 0] < (1 - m) * w)
            & (kp[:, 1] > m * h) & (kp[:, 1] < (1 - m) * h))


def _motion_tracks(observations: Sequence[PersonObservation],
                   frame_size: tuple[int, int]) -> dict[int, list[_Sample]]:
    scales = _track_scales(observations)
    by_track: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        if o.obj_id >= 0:
            by_track[o.obj_id].append(o)
    out: dict[int, list[_Sample]] = {}
    for tid, obs in by_track.items():
        obs.sort(key=lambda o: (o.t_s, o.frame_number))
        scale = scales[tid]
        samples: list[_Sample] = []
        for o in obs:
            # Speeds span at least INTER_MIN_DT_S: over shorter intervals keypoint jitter
            # (a few px) dominates the motion.
            prev = next((p for p in reversed(samples)
                         if o.t_s - p.obs.t_s >= T.INTER_MIN_DT_S - 1e-6), None)
            kp = np.asarray(o.keypoints, np.float64).reshape(17, 3)
            centre = _centre(o)
            height = o.xyxy[3] - o.xyxy[1]
            limb = body = dt = None
            if prev is not None:
                dt = o.t_s - prev.obs.t_s
                if 0 < dt <= T.INTER_MAX_DT_S:
                    limb = _limb_speed(prev.kp, kp, frame_size, scale, dt)
                    ratio = max(height, 1.0) / max(prev.height, 1.0)
                    if 1 / T.ANOMALY_MAX_SCALE_CHANGE <= ratio <= T.ANOMALY_MAX_SCALE_CHANGE:
                        body = float(np.hypot(*(centre - prev.centre))) / scale / dt
            s = _Sample(o, kp, centre, height, scale, limb, body, dt)
            samples.append(s)
        out[tid] = samples
    return out


def _limb_speed(kp0: np.ndarray, kp1: np.ndarray, frame_size, scale: float, dt: float) -> float | None:
    u0, u1 = _usable(kp0, frame_size), _usable(kp1, frame_size)
    if not (u0[_LS] and u0[_RS] and u1[_LS] and u1[_RS]):
        return None
    ref0 = (kp0[_LS, :2] + kp0[_RS, :2]) / 2
    ref1 = (kp1[_LS, :2] + kp1[_RS, :2]) / 2
    speeds = [float(np.hypot(*((kp1[j, :2] - ref1) - (kp0[j, :2] - ref0)))) / scale / dt
              for j in _LIMBS if u0[j] and u1[j]]
    return max(speeds) if speeds else None


# --- violent --------------------------------------------------------------------------------

def _violent(tracks: dict[int, list[_Sample]]) -> list[Episode]:
    by_frame: dict[int, dict[int, _Sample]] = defaultdict(dict)
    for tid, samples in tracks.items():
        for s in samples:
            by_frame[s.obs.frame_number][tid] = s
    scales = {tid: s[0].scale for tid, s in tracks.items() if s}
    hot: dict[tuple[int, int], list[tuple[_Sample, _Sample]]] = defaultdict(list)
    for frame in sorted(by_frame):
        people = by_frame[frame]
        ids = sorted(people)
        for a_i, a in enumerate(ids):
            for b in ids[a_i + 1:]:
                sa, sb = people[a], people[b]
                if _pair_distance_bh(sa.obs, sb.obs, scales) > T.VIOLENT_MAX_DISTANCE_BH:
                    continue
                fast = max(sa.limb_speed or 0.0, sb.limb_speed or 0.0)
                if fast >= T.VIOLENT_MIN_LIMB_SPEED_BH_S:
                    hot[(a, b)].append((sa, sb))
    episodes = []
    for (a, b), pairs in hot.items():
        for run in _runs(pairs, lambda p: p[0].obs.t_s, T.VIOLENT_MAX_GAP_S):
            if len(run) < T.VIOLENT_MIN_SAMPLES:
                continue
            peak = max(run, key=lambda p: max(p[0].limb_speed or 0, p[1].limb_speed or 0))
            sa, sb = peak
            lead, other = (sa, sb) if (sa.limb_speed or 0) >= (sb.limb_speed or 0) else (sb, sa)
            top = max(lead.limb_speed or 0.0, other.limb_speed or 0.0)
            if not _partner_moves(tracks.get(other.obs.obj_id, ()), run[0][0].obs.t_s
                                  - (run[0][0].dt or 0.0), run[-1][0].obs.t_s):
                continue
            conf = _confidence(top / T.VIOLENT_MIN_LIMB_SPEED_BH_S, len(run), T.VIOLENT_MIN_SAMPLES)
            episodes.append(Episode(
                event_type=EventType.VIOLENT, obj_id=lead.obs.obj_id,
                start_t_s=run[0][0].obs.t_s - (run[0][0].dt or 0.0), end_t_s=run[-1][0].obs.t_s,
                peak_t_s=lead.obs.t_s, peak_frame_number=lead.obs.frame_number,
                confidence=conf, other_obj_ids=(other.obs.obj_id,),
                reason=f"{len(run)} samples of fast limbs ({top:.1f} body heights/s) "
                       f"with person {other.obs.obj_id} close by"))
    return _merge_violent(episodes)


def _partner_moves(samples: Sequence[_Sample], start_s: float, end_s: float) -> bool:
    """Whether a person moves their limbs or body during [start_s, end_s] (see the thresholds)."""
    during = [s for s in samples if start_s - 1e-6 <= s.obs.t_s <= end_s + 1e-6]
    limb = max((s.limb_speed or 0.0 for s in during), default=0.0)
    body = max((s.body_speed or 0.0 for s in during), default=0.0)
    return (limb >= T.VIOLENT_PARTNER_MIN_LIMB_SPEED_BH_S
            or body >= T.VIOLENT_PARTNER_MIN_BODY_SPEED_BH_S)


def _merge_violent(episodes: list[Episode]) -> list[Episode]:
    """A person in several overlapping pair-episodes gets one: the most confident."""
    episodes = sorted(episodes, key=lambda e: -e.confidence)
    kept: list[Episode] = []
    for e in episodes:
        clash = next((k for k in kept if k.obj_id == e.obj_id
                      and e.start_t_s <= k.end_t_s and k.start_t_s <= e.end_t_s), None)
        if clash is None:
            kept.append(e)
    return kept


# --- grabbing -------------------------------------------------------------------------------

def _reaching(s: _Sample) -> bool:
    kp, scale = s.kp, s.scale
    seen = kp[:, 2] >= T.INTER_KP_MIN_SCORE
    if s.body_speed is not None and s.body_speed > T.GRAB_MAX_BODY_SPEED_BH_S:
        return False
    cx = s.centre[0]
    for sh, el, wr in _ARMS:
        if not (seen[sh] and seen[el] and seen[wr]):
            continue
        reach = float(np.hypot(*(kp[wr, :2] - kp[sh, :2]))) / scale
        if reach < T.GRAB_MIN_REACH_BH or _angle(kp[sh, :2], kp[el, :2], kp[wr, :2]) < T.GRAB_MIN_ELBOW_DEG:
            continue
        drop = (kp[wr, 1] - kp[sh, 1]) / scale  # > 0: wrist below the shoulder
        up = -drop >= T.GRAB_ABOVE_SHOULDER_BH
        raised = drop <= T.GRAB_MAX_DROP_FRAC * reach  # arm well away from hanging down
        side = abs(kp[wr, 0] - cx) / scale >= T.GRAB_MIN_SIDE_REACH_BH
        if up or raised or side:
            return True
    return False


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    v1, v2 = a - b, c - b
    n = float(np.linalg.norm(v1) * np.linalg.norm(v2))
    if n < 1e-6:
        return 0.0
    return math.degrees(math.acos(float(np.clip(np.dot(v1, v2) / n, -1.0, 1.0))))


def _grabbing(tracks: dict[int, list[_Sample]], violent_spans) -> list[Episode]:
    episodes = []
    for tid, samples in tracks.items():
        reach = [s for s in samples if _reaching(s) and not any(
            v_id == tid and a <= s.obs.t_s <= b for v_id, a, b in violent_spans)]
        for run in _consecutive(samples, reach):
            held = run[-1].obs.t_s - run[0].obs.t_s
            if len(run) < 2 or held < T.GRAB_MIN_HOLD_S:
                continue
            peak = run[len(run) // 2]
            episodes.append(Episode(
                event_type=EventType.GRABBING, obj_id=tid, start_t_s=run[0].obs.t_s,
                end_t_s=run[-1].obs.t_s, peak_t_s=peak.obs.t_s,
                peak_frame_number=peak.obs.frame_number,
                confidence=_confidence(held / T.GRAB_MIN_HOLD_S, len(run), 2),
                reason=f"arm extended out/up for {held:.1f} s"))
    return episodes


# --- anomaly (running) ----------------------------------------------------------------------

def _running(tracks: dict[int, list[_Sample]]) -> list[Episode]:
    episodes = []
    for tid, samples in tracks.items():
        fast = [s for s in samples if s.body_speed is not None
                and s.body_speed >= T.ANOMALY_RUN_SPEED_BH_S]
        for run in _consecutive(samples, fast):
            if len(run) < T.ANOMALY_MIN_INTERVALS:
                continue
            peak = max(run, key=lambda s: s.body_speed or 0.0)
            speed = float(np.median([s.body_speed for s in run]))
            episodes.append(Episode(
                event_type=EventType.ANOMALY, obj_id=tid,
                start_t_s=run[0].obs.t_s - (run[0].dt or 0.0), end_t_s=run[-1].obs.t_s,
                peak_t_s=peak.obs.t_s, peak_frame_number=peak.obs.frame_number,
                confidence=_confidence(speed / T.ANOMALY_RUN_SPEED_BH_S, len(run),
                                       T.ANOMALY_MIN_INTERVALS),
                reason=f"running at {speed:.1f} body heights/s"))
    return episodes


# --- helpers --------------------------------------------------------------------------------

def _consecutive(samples: list[_Sample], chosen: list[_Sample]) -> list[list[_Sample]]:
    """``chosen`` (a subsequence of a track's ``samples``) cut into runs of samples that follow
    each other in the track (no unchosen sample of the track in between)."""
    index = {id(s): i for i, s in enumerate(samples)}
    runs: list[list[_Sample]] = []
    for s in chosen:
        if runs and index[id(s)] == index[id(runs[-1][-1])] + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def _runs(items, time_of, max_gap_s: float) -> list[list]:
    runs: list[list] = []
    for it in sorted(items, key=time_of):
        if runs and time_of(it) - time_of(runs[-1][-1]) <= max_gap_s:
            runs[-1].append(it)
        else:
            runs.append([it])
    return runs


def _confidence(strength: float, n: int, n_min: int) -> float:
    """0.5 at the thresholds, toward 1 with stronger and longer evidence."""
    s = 1.0 - 0.5 * math.exp(-max(0.0, strength - 1.0)) * (n_min / max(n, n_min))
    return round(float(min(0.99, max(0.5, s))), 3)
