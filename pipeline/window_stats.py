"""The numbers one violence window's features summarise (``pipeline.violence._window``): per
frame the people and their close pairs, per close person their limb, leg and body speeds, box
size change, motion inside their box and pose; then the features, the people involved and the
moment of the window's peak activity."""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from pipeline import interactions
from pipeline import thresholds as T
from pipeline.boxes import iou
from pipeline.motion import BOX_STATS, FRAME_STATS, Motion
from pipeline.records import KP

NO_PAIR_DISTANCE_BH = 5.0  # "distance" of the closest pair when fewer than two people are seen
TOUCH_DISTANCE_BH = 0.8  # box centres this close (mean body heights): within arm's reach
# A third person joins a fight's people only if the image inside their box moves at least this
# many times the window's mean optical flow: a bystander's pose can jitter where boxes overlap,
# but the pixels of someone standing or watching barely move; the fighters' move most.
INVOLVED_MIN_FLOW_RATIO = 1.5

_LS, _RS, _LH, _RH = KP["left_shoulder"], KP["right_shoulder"], KP["left_hip"], KP["right_hip"]
_LW, _RW = KP["left_wrist"], KP["right_wrist"]
_LEGS = tuple(KP[k] for k in ("left_knee", "right_knee", "left_ankle", "right_ankle"))


@dataclass(frozen=True)
class _Window:
    features: np.ndarray
    embedding: np.ndarray  # the close people's mean backbone vector (pipeline.appearance)
    involved: tuple[int, ...]
    peak_t_s: float
    peak_frame_number: int


def _leg_speed(s0, s1, frame_size) -> float | None:
    """Knees/ankles relative to the hips' midpoint, body heights per second."""
    if s0 is None or s1.dt is None or not (0 < s1.dt <= T.INTER_MAX_DT_S):
        return None
    u0, u1 = interactions._usable(s0.kp, frame_size), interactions._usable(s1.kp, frame_size)
    if not (u0[_LH] and u0[_RH] and u1[_LH] and u1[_RH]):
        return None
    r0 = (s0.kp[_LH, :2] + s0.kp[_RH, :2]) / 2
    r1 = (s1.kp[_LH, :2] + s1.kp[_RH, :2]) / 2
    v = [float(np.hypot(*((s1.kp[j, :2] - r1) - (s0.kp[j, :2] - r0)))) / s1.scale / s1.dt
         for j in _LEGS if u0[j] and u1[j]]
    return max(v) if v else None


def _stat(values: list[float], kind: str, empty: float = 0.0) -> float:
    if not values:
        return empty
    a = np.asarray(values, np.float64)
    if kind == "max":
        return float(a.max())
    if kind == "p90":
        return float(np.percentile(a, 90))
    return float(a.mean())


class WindowStats:
    """Add the window's frames in order (``add_frame``), then read ``features``, ``involved``
    and ``peak``."""

    def __init__(self, tracks, motion: Motion | None, frame_size: tuple[int, int]):
        self.tracks, self.motion = tracks, motion
        self.by_frame: dict[int, dict[int, object]] = defaultdict(dict)
        self.leg: dict[int, float | None] = {}
        for tid, samples in tracks.items():
            prev = None
            for s in samples:
                self.by_frame[s.obs.frame_number][tid] = s
                self.leg[id(s)] = _leg_speed(prev, s, frame_size)
                prev = s
        self.scales = {tid: s[0].scale for tid, s in tracks.items() if s}
        self.counts, self.close_frames, self.dists, self.ious_max = [], 0, [], []
        self.limb_close, self.limb_both, self.limb_all = [], [], []
        self.leg_close, self.body_close = [], []
        self.scale_change, self.approach, self.kp_close, self.wrist_up = [], [], [], []
        self.box_close: dict[str, list[float]] = {k: [] for k in BOX_STATS}
        self.flow_all: list[float] = []
        self.frame_st: dict[str, list[float]] = {k: [] for k in FRAME_STATS}
        self.hot = 0
        self.pair_activity: dict[tuple[int, int], float] = defaultdict(float)
        self.touching: dict[int, set[int]] = defaultdict(set)
        self.track_act: dict[int, list[float]] = defaultdict(list)
        self.track_flow: dict[int, list[float]] = defaultdict(list)
        self.prev_dist: dict[tuple[int, int], tuple[float, float]] = {}
        self.peak_sample: tuple[float, object] = (-1.0, None)
        self.close_pairs: dict[int, list[tuple[int, int]]] = defaultdict(list)

    def add_frame(self, frame: int) -> None:
        people, motion = self.by_frame[frame], self.motion
        self.counts.append(len(people))
        if motion is not None and frame in motion.frames:
            for k in FRAME_STATS:
                self.frame_st[k].append(motion.frame(frame, k))
        for s in people.values():
            self._add_person(s)
        frame_ious, in_pair = self._add_pairs(frame, people)
        if frame_ious:
            self.ious_max.append(max(frame_ious))
        if in_pair:
            self.close_frames += 1
        for tid in in_pair:
            self._add_close(tid, people[tid])

    def _add_person(self, s) -> None:
        if s.limb_speed is not None:
            self.limb_all.append(s.limb_speed)
        m = self.motion.box(s.obs, "mag") if self.motion is not None else None
        if m is not None:
            self.flow_all.append(m)
            self.track_flow[s.obs.obj_id].append(m)
        self.track_act[s.obs.obj_id].append(max(s.limb_speed or 0.0, self.leg.get(id(s)) or 0.0))

    def _add_pairs(self, frame: int, people) -> tuple[list[float], set[int]]:
        """Every pair's distance, overlap and approach speed; the close pairs' limb speeds."""
        ids = sorted(people)
        frame_ious, in_pair = [], set()
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                sa, sb = people[a], people[b]
                d = interactions._pair_distance_bh(sa.obs, sb.obs, self.scales)
                self.dists.append(d)
                frame_ious.append(iou(sa.obs.xyxy, sb.obs.xyxy))
                if (a, b) in self.prev_dist:
                    t0, d0 = self.prev_dist[(a, b)]
                    dt = sa.obs.t_s - t0
                    if 0 < dt <= T.INTER_MAX_DT_S:
                        self.approach.append(abs(d - d0) / dt)
                self.prev_dist[(a, b)] = (sa.obs.t_s, d)
                if d > T.VIOLENT_MAX_DISTANCE_BH:
                    continue
                in_pair |= {a, b}
                self.close_pairs[frame].append((a, b))
                self._add_close_pair(a, b, sa, sb, d)
        return frame_ious, in_pair

    def _add_close_pair(self, a: int, b: int, sa, sb, d: float) -> None:
        if d <= TOUCH_DISTANCE_BH:
            self.touching[a].add(b)
            self.touching[b].add(a)
        la, lb = sa.limb_speed or 0.0, sb.limb_speed or 0.0
        self.limb_both.append(min(la, lb))
        if max(la, lb) >= T.VIOLENT_MIN_LIMB_SPEED_BH_S:
            self.hot += 1
        act = max(la, lb) + min(la, lb)
        self.pair_activity[(a, b)] = max(self.pair_activity[(a, b)], act)
        if act > self.peak_sample[0]:
            self.peak_sample = (act, sa if la >= lb else sb)

    def _add_close(self, tid: int, s) -> None:
        """A person in a close pair: their speeds, size change, motion and pose."""
        if s.limb_speed is not None:
            self.limb_close.append(s.limb_speed)
        if self.leg.get(id(s)) is not None:
            self.leg_close.append(self.leg[id(s)])
        if s.body_speed is not None:
            self.body_close.append(s.body_speed)
        if s.dt is not None:
            prev_h = next((p.height for p in self.tracks[tid] if p.obs.t_s < s.obs.t_s
                           and s.obs.t_s - p.obs.t_s <= s.dt + 1e-6), None)
            if prev_h:
                self.scale_change.append(
                    abs(math.log(max(s.height, 1.0) / max(prev_h, 1.0))) / s.dt)
        if self.motion is not None and (s.obs.frame_number, tid) in self.motion.boxes:
            for k in BOX_STATS:
                self.box_close[k].append(self.motion.box(s.obs, k))
        kp = s.kp
        self.kp_close.append(float(kp[:, 2].mean()))
        seen = kp[:, 2] >= T.LIMB_KP_MIN_SCORE
        up = any(seen[wr] and seen[sh] and kp[wr, 1] < kp[sh, 1]
                 for wr, sh in ((_LW, _LS), (_RW, _RS)))
        self.wrist_up.append(1.0 if up else 0.0)

    def features(self, rule) -> dict[str, float]:
        """The window's features (all but the appearance ones); ``rule``: the rule's episodes."""
        box, fr = self.box_close, self.frame_st
        n_frames = max(1, len(self.counts))
        flow_close_mean = _stat(box["mag"], "mean")
        flow_frame_mean = _stat(fr["mag"], "mean")
        lists = {"limb_close": self.limb_close, "limb_both": self.limb_both,
                 "limb_all": self.limb_all, "leg_close": self.leg_close,
                 "body_close": self.body_close}
        feats = {f"{name}_{kind}": _stat(values, kind)
                 for name, values in lists.items() for kind in ("max", "p90")}
        return feats | dict(
            people_mean=_stat(self.counts, "mean"), people_max=_stat(self.counts, "max"),
            close_frac=self.close_frames / n_frames,
            pair_dist_min=min(self.dists) if self.dists else NO_PAIR_DISTANCE_BH,
            pair_iou_max=_stat(self.ious_max, "max"), pair_iou_mean=_stat(self.ious_max, "mean"),
            limb_close_mean=_stat(self.limb_close, "mean"),
            scale_change_p90=_stat(self.scale_change, "p90"),
            approach_p90=_stat(self.approach, "p90"),
            motion_close_max=_stat(box["diff"], "max"), motion_close_p90=_stat(box["diff"], "p90"),
            motion_close_mean=_stat(box["diff"], "mean"),
            motion_frame_mean=_stat(fr["diff"], "mean"),
            flow_close_mean=flow_close_mean, flow_close_p90=_stat(box["mag"], "p90"),
            flow_close_max=_stat(box["mag"], "max"),
            flow_close_peak_p90=_stat(box["mag_p90"], "p90"),
            coh_close_mean=_stat(box["coherence"], "mean", 1.0),
            dflow_close_mean=_stat(box["dmag"], "mean"), dflow_close_p90=_stat(box["dmag"], "p90"),
            flow_all_p90=_stat(self.flow_all, "p90"),
            flow_frame_mean=flow_frame_mean,
            flow_frame_std=float(np.std(fr["mag"])) if fr["mag"] else 0.0,
            coh_frame_mean=_stat(fr["coherence"], "mean", 1.0),
            flow_cell_p90=_stat(fr["grid_mag"], "p90"), flow_cell_max=_stat(fr["grid_mag"], "max"),
            dflow_cell_mean=_stat(fr["grid_dmag"], "mean"),
            dflow_cell_p90=_stat(fr["grid_dmag"], "p90"),
            moving_frac=_stat(fr["moving"], "mean"),
            flow_ratio=flow_close_mean / (flow_frame_mean + 0.05),
            hot_frac=self.hot / n_frames, wrist_up_frac=_stat(self.wrist_up, "mean"),
            kp_score_close=_stat(self.kp_close, "mean"),
            rule_fires=1.0 if rule else 0.0,
            rule_confidence=max((e.confidence for e in rule), default=0.0),
        )

    def involved(self, flow_frame_mean: float) -> tuple[int, ...]:
        """The most active close pair, and whoever comes within touching distance of one of them
        while moving limbs fast and moving more than the scene does (bystanders stand, sit,
        watch or walk by)."""
        involved: set[int] = set()
        if self.pair_activity:
            pair = set(max(self.pair_activity, key=self.pair_activity.get))
            involved |= pair
            min_flow = INVOLVED_MIN_FLOW_RATIO * flow_frame_mean
            for tid in pair:
                for other in self.touching[tid] - involved:
                    acts = self.track_act.get(other, [])
                    flow = self.track_flow.get(other)
                    if (acts and np.percentile(acts, 90) >= T.VIOLENT_MIN_LIMB_SPEED_BH_S
                            and (self.motion is None or (flow and np.mean(flow) >= min_flow))):
                        involved.add(other)
        return tuple(sorted(involved))

    def peak(self, observations) -> tuple[float, int]:
        """(time, frame number) of the most active close pair's moment, else the middle."""
        if self.peak_sample[1] is not None:
            pk = self.peak_sample[1].obs
            return pk.t_s, pk.frame_number
        if observations:
            mid = sorted(observations, key=lambda o: o.t_s)[len(observations) // 2]
            return mid.t_s, mid.frame_number
        return 0.0, 0
