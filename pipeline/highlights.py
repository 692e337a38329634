"""Falls and collapses from tracked poses, the in-between-frame refinement, merging with the
interaction episodes, and one highlight per episode per track.

Rules (thresholds in ``pipeline.thresholds``, section "falls and collapse"):

* **standing reference**: a track's observation that is upright (torso near vertical, a tall
  box, not sitting); its hip height and box height are the reference for a drop.
* **down**: lying (see ``actions.posture``) or a box at most ``DOWN_MAX_BOX_ASPECT`` times as
  tall as wide (a person on the floor seen end-on, or sprawled sitting after a backward fall),
  unless the box touches the frame's bottom edge (people walking out of view look short).
* **falling**: a down observation whose hips are at least ``FALL_MIN_DROP_BH`` body heights
  (body lengths for a lying reference: rolling off a bed) below those of a standing or lying
  reference at most ``FALL_MAX_TRANSITION_S`` (plus one sample
  interval, since the fall happens between samples) earlier, and the person is not upright again
  within ``FALL_MIN_DOWN_S`` (squats, bending and sitting down fail one of these tests).
  The frames between the reference and the down observation are then decoded (every
  ``FALL_REFINE_STEP_S``) and people detected on them (``detection.Observer.between``): the onset is the last frame whose hips
  are still within ``FALL_ONSET_DROP_BH`` of standing height, and the transition (onset to the
  first down frame) must take at most ``FALL_MAX_TRANSITION_S``, which confirms the fall.
* **collapse**: lying for at least ``COLLAPSE_MIN_LYING_S`` (gaps of missed detections up to
  ``COLLAPSE_MAX_GAP_S`` bridged), with or without a fall seen; its moment is when lying began.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from pipeline import interactions
from pipeline import thresholds as T
from pipeline.actions import Posture, posture
from pipeline.boxes import iou
from pipeline.detection import Observer
from pipeline.incidents import incidents
from pipeline.records import Episode, EventType, PersonObservation, VideoInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _P:
    """A track's observation with its posture."""

    t_s: float
    frame_number: int
    xyxy: tuple[float, float, float, float]
    p: Posture

    @property
    def down(self) -> bool:
        return _is_down(self.p)


def _is_down(p: Posture) -> bool:
    if p.lying:
        return True
    if p.box_aspect > T.DOWN_MAX_BOX_ASPECT:
        return False
    if p.cut_at_bottom:
        # a box cut by the bottom edge may be short because the person walks out of view:
        # only a visibly tilted body counts as down
        tilt = p.torso_deg if p.torso_deg is not None else p.axis_deg
        return tilt is not None and tilt > T.UPRIGHT_MAX_TORSO_DEG
    return True


def _by_track(observations: Sequence[PersonObservation], frame_height: int | None = None,
              ) -> dict[int, list[_P]]:
    tracks: dict[int, list[_P]] = {}
    for o in observations:
        if o.obj_id < 0:
            continue
        tracks.setdefault(o.obj_id, []).append(
            _P(o.t_s, o.frame_number, o.xyxy, posture(o.keypoints, o.xyxy, frame_height)))
    for v in tracks.values():
        v.sort(key=lambda s: s.t_s)
    return tracks


def _drop_bh(ref: _P, cur_centre_y: float, scale: float | None = None) -> float:
    return (cur_centre_y - ref.p.centre_y) / max(scale or ref.p.height_px, 1.0)


# --- falls ---------------------------------------------------------------------------------
def _fall_candidates(seq: list[_P], sample_dt: float) -> list[tuple[_P, _P, float]]:
    """(standing reference, first down observation, body scale px) that look like a fall."""
    out = []
    window = T.FALL_MAX_TRANSITION_S + sample_dt
    last_fall_t = -1e9
    for j, cur in enumerate(seq):
        if not cur.down or cur.t_s - last_fall_t < T.FALL_MIN_DOWN_S + window:
            continue
        # standing, or lying higher up (rolling off a bed or a sofa onto the floor)
        refs = [s for s in seq[:j] if (s.p.upright or s.p.lying)
                and 0 < cur.t_s - s.t_s <= window + 1e-6]
        if not refs:
            continue
        # the reference is the moment with the highest hips: during the fall the body may still
        # look upright while already dropping. The scale is the largest body height seen (a
        # partly detected person has a small box).
        scale = max(s.p.height_px for s in refs)
        ref = min(refs, key=lambda s: (s.p.centre_y, -s.t_s))
        if _drop_bh(ref, cur.p.centre_y, scale) < T.FALL_MIN_DROP_BH:
            continue
        # not upright again soon after (a squat or a stumble gets straight back up)
        later = [s for s in seq[j + 1:] if s.t_s - cur.t_s <= T.FALL_MIN_DOWN_S + 1e-6]
        if any(s.p.upright and _drop_bh(ref, s.p.centre_y, scale) < T.FALL_ONSET_DROP_BH * 2
               for s in later):
            continue
        out.append((ref, cur, scale))
        last_fall_t = cur.t_s
    return out


def _nearest(persons, box: np.ndarray) -> int | None:
    if not len(persons):
        return None
    c = (box[:2] + box[2:]) / 2
    size = max(box[2] - box[0], box[3] - box[1], 1.0)
    cs = (persons.xyxy[:, :2] + persons.xyxy[:, 2:]) / 2
    d = np.hypot(*(cs - c).T) / size
    i = int(np.argmin(d))
    return i if d[i] <= T.TRACK_RELINK_BH else None


def _refine(ref: _P, down: _P, scale: float, observer: Observer | None, fps: float,
            ) -> tuple[float, int, float, str] | None:
    """Detect people on the frames between ``ref`` and ``down`` (``Observer.between``, which keeps
    them in the run's stream): (onset_t, onset_frame, duration_s, how) or None when the
    in-between frames contradict a fall (the transition takes too long)."""
    if observer is None or down.frame_number - ref.frame_number <= 1:
        return ref.t_s, ref.frame_number, down.t_s - ref.t_s, "sampled frames"
    step = max(1, int(round(fps * T.FALL_REFINE_STEP_S)))
    onset_t, onset_f = ref.t_s, ref.frame_number
    first_down_t = down.t_s
    prev_box = np.asarray(ref.xyxy, np.float32)
    seen = 0
    for fr, persons in observer.between(ref.frame_number + step, down.frame_number - 1, step):
        i = _nearest(persons, prev_box)
        if i is None:
            continue
        seen += 1
        prev_box = persons.xyxy[i]
        p = posture(persons.keypoints[i], persons.xyxy[i], fr.height)
        drop = _drop_bh(ref, p.centre_y, scale)
        is_down = _is_down(p) and drop >= T.FALL_MIN_DROP_BH
        if is_down:
            first_down_t = min(first_down_t, fr.t_s)
            break
        if drop < T.FALL_ONSET_DROP_BH and (ref.p.lying or not p.lying):
            onset_t, onset_f = fr.t_s, fr.frame_number
    duration = first_down_t - onset_t
    if duration > T.FALL_MAX_TRANSITION_S + 1e-6:
        return None
    return onset_t, onset_f, duration, f"{seen} in-between frames"


def find_falls(seq: list[_P], obj_id: int, sample_dt: float, fps: float,
               observer: Observer | None = None) -> list[Episode]:
    episodes = []
    for ref, down, scale in _fall_candidates(seq, sample_dt):
        refined = _refine(ref, down, scale, observer, fps)
        if refined is None:
            log.debug("track %d: drop at %.2fs too slow for a fall", obj_id, down.t_s)
            continue
        onset_t, onset_f, duration, how = refined
        drop = _drop_bh(ref, down.p.centre_y, scale)
        conf = float(np.clip(0.5 + 0.5 * min(1.0, drop / (2 * T.FALL_MIN_DROP_BH))
                             * (1.0 if down.p.lying else 0.8), 0, 1))
        end = max(s.t_s for s in seq if s.t_s >= down.t_s and s.down) if seq else down.t_s
        episodes.append(Episode(
            event_type=EventType.FALLING, obj_id=obj_id, start_t_s=round(onset_t, 3),
            end_t_s=round(max(end, down.t_s), 3), peak_t_s=round(onset_t, 3),
            peak_frame_number=int(onset_f), confidence=round(conf, 3),
            reason=f"{'upright' if ref.p.upright else 'lying'} -> "
                   f"{'lying' if down.p.lying else 'down'} in {duration:.1f} s, "
                   f"hips dropped {drop:.2f} body heights ({how})"))
    return episodes


# --- collapse ------------------------------------------------------------------------------
def find_collapses(seq: list[_P], obj_id: int, sample_dt: float) -> list[Episode]:
    episodes = []
    max_gap = max(T.COLLAPSE_MAX_GAP_S, 1.5 * sample_dt)
    run: list[_P] = []

    def flush():
        if len(run) >= 2 and run[-1].t_s - run[0].t_s >= T.COLLAPSE_MIN_LYING_S - 1e-6:
            dur = run[-1].t_s - run[0].t_s
            conf = float(np.clip(0.5 + 0.1 * dur, 0, 0.95))
            episodes.append(Episode(
                event_type=EventType.COLLAPSE, obj_id=obj_id, start_t_s=round(run[0].t_s, 3),
                end_t_s=round(run[-1].t_s, 3), peak_t_s=round(run[0].t_s, 3),
                peak_frame_number=run[0].frame_number, confidence=round(conf, 3),
                reason=f"lying for {dur:.1f} s"))

    for s in seq:
        if s.p.lying and (not run or s.t_s - run[-1].t_s <= max_gap):
            run.append(s)
        elif s.p.lying:
            flush()
            run = [s]
        elif not s.p.lying and run and s.t_s - run[-1].t_s > 0:
            if s.p.upright or s.p.sitting:
                flush()
                run = []
    flush()
    return episodes


# --- all episodes ----------------------------------------------------------------------------
def merge_episodes(episodes: Sequence[Episode], gap_s: float = T.EPISODE_MERGE_GAP_S) -> list[Episode]:
    """One episode per event type per track per stretch of time: overlapping or nearby episodes
    (``gap_s``) of the same type and track are merged, keeping the earliest peak."""
    out: list[Episode] = []
    for e in sorted(episodes, key=lambda e: (e.event_type.value, e.obj_id, e.start_t_s)):
        last = out[-1] if out else None
        if (last is not None and last.event_type == e.event_type and last.obj_id == e.obj_id
                and e.start_t_s <= last.end_t_s + gap_s):
            best = last if last.confidence >= e.confidence else e
            out[-1] = Episode(
                event_type=e.event_type, obj_id=e.obj_id, start_t_s=last.start_t_s,
                end_t_s=max(last.end_t_s, e.end_t_s), peak_t_s=last.peak_t_s,
                peak_frame_number=last.peak_frame_number,
                confidence=max(last.confidence, e.confidence),
                other_obj_ids=tuple(sorted(set(last.other_obj_ids) | set(e.other_obj_ids))),
                reason=best.reason)
        else:
            out.append(e)
    return sorted(out, key=lambda e: (e.peak_t_s, e.obj_id, e.event_type.value))


def active_windows(windows: Sequence[tuple[float, float]],
                   observations: Sequence[PersonObservation]) -> list[tuple[float, float]]:
    """The windows in which at least two people are large enough (``DENSE_MIN_BODY_PX``) for
    limb speeds to be measured above keypoint jitter: small, distant people (a campus seen
    from a roof) would only add noise and cost."""
    out = []
    for a, b in windows:
        per_frame: dict[int, int] = {}
        for o in observations:
            if a <= o.t_s <= b and o.xyxy[3] - o.xyxy[1] >= T.DENSE_MIN_BODY_PX:
                per_frame[o.frame_number] = per_frame.get(o.frame_number, 0) + 1
        if any(n >= 2 for n in per_frame.values()):
            out.append((a, b))
    return out


def _within_budget(windows: list[tuple[float, float]], duration_s: float,
                   observations: Sequence[PersonObservation] = ()) -> list[tuple[float, float]]:
    """The windows to re-analyse, within ``DENSE_MAX_FRACTION`` of the video (or
    ``DENSE_MIN_BUDGET_S``): a crowd close together all the time must not turn the run into a
    dense one. When they all fit, all of them; otherwise the windows are cut into
    ``DENSE_PIECE_S`` pieces and the most agitated pieces of the sparse pass (``_agitation``:
    overlapping boxes of close people, moving) are taken, in time order."""
    budget = max(T.DENSE_MIN_BUDGET_S, T.DENSE_MAX_FRACTION * max(duration_s, 0.0))
    if sum(b - a for a, b in windows) <= budget:
        return list(windows)
    pieces = [(a + k * T.DENSE_PIECE_S, min(b, a + (k + 1) * T.DENSE_PIECE_S))
              for a, b in windows for k in range(int(np.ceil((b - a) / T.DENSE_PIECE_S - 1e-9)))]
    ranked = sorted(pieces, key=lambda p: -_agitation(p, observations))
    chosen, used = [], 0.0
    for a, b in ranked:
        if used + (b - a) > budget:
            break
        chosen.append((a, b))
        used += b - a
    log.info("dense re-analysis budget: %.0f of %.0f s chosen by agitation", used,
             sum(b - a for a, b in windows))
    out: list[list[float]] = []
    for a, b in sorted(chosen):
        if out and a <= out[-1][1] + 1e-6:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _agitation(piece: tuple[float, float], observations: Sequence[PersonObservation]) -> float:
    """How much a stretch of the sparse pass looks like a scuffle: per sampled frame, the box
    overlap (IoU) of close people plus how far those people moved since their previous sample
    (body heights per second); the stretch's highest frame."""
    a, b = piece
    prev: dict[int, PersonObservation] = {}
    by_frame: dict[int, list[PersonObservation]] = {}
    for o in sorted(observations, key=lambda o: o.t_s):
        if a - 2.0 <= o.t_s <= b:
            by_frame.setdefault(o.frame_number, []).append(o)
    best = 0.0
    for f in sorted(by_frame):
        obs = by_frame[f]
        score = 0.0
        for i, p in enumerate(obs):
            for q in obs[i + 1:]:
                h = max(1.0, (p.xyxy[3] - p.xyxy[1] + q.xyxy[3] - q.xyxy[1]) / 2)
                d = np.hypot((p.xyxy[0] + p.xyxy[2] - q.xyxy[0] - q.xyxy[2]) / 2,
                             (p.xyxy[1] + p.xyxy[3] - q.xyxy[1] - q.xyxy[3]) / 2) / h
                if d > T.VIOLENT_MAX_DISTANCE_BH:
                    continue
                score += iou(p.xyxy, q.xyxy)
                for o in (p, q):
                    last = prev.get(o.obj_id)
                    if last is not None and o.t_s > last.t_s:
                        move = np.hypot((o.xyxy[0] + o.xyxy[2] - last.xyxy[0] - last.xyxy[2]) / 2,
                                        (o.xyxy[1] + o.xyxy[3] - last.xyxy[1] - last.xyxy[3]) / 2)
                        score += 0.5 * min(2.0, move / h / (o.t_s - last.t_s))
        if obs[0].t_s >= a:
            best = max(best, score)
        for o in obs:
            prev[o.obj_id] = o
    return best


def find_episodes(observations: Sequence[PersonObservation], info: VideoInfo, sampled_fps: float,
                  observer: Observer | None = None, violence=None) -> list[Episode]:
    """Falls, collapses and (when ``pipeline.interactions`` is present) violent / grabbing /
    anomaly episodes, merged to one per episode per track, then to incidents
    (``pipeline.incidents``: a fall with the lying after it, a fight with everyone in it).

    ``observations`` are the sampled pass's. Interactions need samples ~0.13 s apart; when the
    run sampled more sparsely, the frames of the windows where people come close
    (``interactions.dense_windows``), large enough to measure (``active_windows``), are observed
    densely for them (``observer.dense``). Fall onsets are refined on the in-between frames
    (``observer.between``). Without an ``observer`` the sampled observations alone are used.
    ``violence`` (a ``ViolenceDetector``; None: the limb-speed rule) finds the violent episodes
    in the densely sampled observations only. Every peak is a frame of the observer's stream."""
    sample_dt = 1.0 / max(sampled_fps, 1e-6)
    tracks = _by_track(observations, info.height)
    episodes: list[Episode] = []
    for oid, seq in tracks.items():
        episodes += find_falls(seq, oid, sample_dt, info.fps, observer)
        episodes += find_collapses(seq, oid, sample_dt)
    obs, fps = list(observations), sampled_fps
    dense_dt = interactions.DENSE_SAMPLE_DT_S
    dense_obs = obs if sample_dt <= 2 * dense_dt else []
    if observer is not None and sample_dt > 2 * dense_dt:
        windows = active_windows(interactions.dense_windows(observations, sampled_fps),
                                 observations)
        windows = _within_budget(windows, info.duration_s, observations)
        if windows:
            extra = observer.dense(windows, dense_dt)
            observer.dense_done()  # its models go before the violence classifier's backbone
            outside = [o for o in obs if not any(a <= o.t_s <= b for a, b in windows)]
            obs = sorted(outside + extra, key=lambda o: (o.t_s, o.obj_id))
            dense_obs = extra
            fps = 1.0 / dense_dt
    violent = None
    if violence is not None:
        violent = _violent_per_shot(dense_obs, observer, violence, (info.width, info.height))
    episodes += interactions.find_interaction_episodes(obs, (info.width, info.height), fps,
                                                       violent=violent)
    return incidents(merge_episodes(episodes))


def _violent_per_shot(dense_obs, observer: Observer | None, violence, size) -> list[Episode]:
    """The violence classifier's episodes, scored within each shot (no window spans a scene
    cut, and the first frame after a cut has no motion: the cut is not a movement)."""
    import dataclasses

    from pipeline.violence import read_motion

    if observer is None or not dense_obs:
        return violence.episodes(dense_obs, None, size)
    out: list[Episode] = []
    for k, group in enumerate(observer.shot_groups(dense_obs)):
        motion = read_motion(group, observer.reader, getattr(violence, "backbone", None))
        if k:
            first = min(o.frame_number for o in group)
            motion = dataclasses.replace(
                motion, frames={f: v for f, v in motion.frames.items() if f != first},
                boxes={key: v for key, v in motion.boxes.items() if key[0] != first})
        out += violence.episodes(group, motion, size)
    return out
