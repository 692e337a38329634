"""Raw observations -> cleaned events (processed_results.csv, db_event) and per-track summaries.

* Tracks seen fewer than ``TRACK_MIN_OBSERVATIONS`` times (fewer when the whole video has fewer
  samples, e.g. a still image), seen for less than ``TRACK_MIN_DURATION_S`` (half the video
  for shorter ones), or present in less than ``TRACK_MIN_PRESENCE_FRAC`` of the
  samples of their own time span (flicker), are dropped unless an episode names them.
* Per track: age and gender aggregated over frames (``pipeline.attributes``: median age, majority
  gender with its share), and the action smoothed with a centred majority vote over
  ``ACTION_SMOOTH_SAMPLES`` samples (transitions such as falling are kept as they are); rows
  inside an episode carry its action (falling from the timed onset until the person is down,
  violent / grabbing / anomaly over the episode).
* One ``person`` event per kept observation, plus one event per episode (falling, collapse,
  violent, grabbing, anomaly) at the episode's peak.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Sequence

from pipeline import thresholds as T
from pipeline.attributes import summarize_attributes
from pipeline.event_types import Overlay, spec
from pipeline.incidents import track_ids
from pipeline.records import (
    Action, AgeGroup, Episode, Event, EventType, Gender, PersonObservation, TrackSummary,
    frozen_mapping,
)

_KEEP_RAW = {Action.FALLING, Action.VIOLENT, Action.GRABBING, Action.ANOMALY, Action.PAYING,
             Action.THEFT}


@dataclass(frozen=True)
class Cleaned:
    events: tuple[Event, ...]
    tracks: tuple[TrackSummary, ...]
    episodes: tuple[Episode, ...]
    dropped_tracks: tuple[int, ...] = ()


def kept_track_ids(observations: Sequence[PersonObservation], frames_sampled: int,
                   sampled_fps: float, protected: set[int] | None = None,
                   video_duration_s: float | None = None) -> set[int]:
    by_track: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        if o.obj_id >= 0:
            by_track[o.obj_id].append(o)
    need = max(1, min(T.TRACK_MIN_OBSERVATIONS, frames_sampled))
    dt = 1.0 / max(sampled_fps, 1e-6)
    span_all = (max(o.t_s for o in observations) - min(o.t_s for o in observations)
                if observations else 0.0)
    if video_duration_s is not None:
        span_all = max(span_all, video_duration_s)
    min_dur = 0.0 if frames_sampled <= 1 else min(T.TRACK_MIN_DURATION_S, 0.5 * span_all)
    keep = set()
    for oid, obs in by_track.items():
        if protected and oid in protected:
            keep.add(oid)
            continue
        n = len({o.frame_number for o in obs})
        if n < need:
            continue
        if max(o.t_s for o in obs) - min(o.t_s for o in obs) < min_dur - 1e-6:
            continue
        span_samples = (max(o.t_s for o in obs) - min(o.t_s for o in obs)) / dt + 1
        if n / max(span_samples, 1.0) < T.TRACK_MIN_PRESENCE_FRAC:
            continue
        keep.add(oid)
    return keep


def _smooth_actions(obs: list[PersonObservation]) -> list[Action]:
    half = T.ACTION_SMOOTH_SAMPLES // 2
    raw = [o.action for o in obs]
    out = []
    for i, a in enumerate(raw):
        if a in _KEEP_RAW:
            out.append(a)
            continue
        window = [x for x in raw[max(0, i - half): i + half + 1] if x not in _KEEP_RAW]
        top, count = Counter(window).most_common(1)[0]
        out.append(top if count > len(window) / 2 else a)
    return out


def _overlay_episodes(obs: list[PersonObservation], actions: list[Action],
                      episodes: Sequence[Episode]) -> list[Action]:
    """A track's rows inside one of its episodes carry the episode's action: violent, grabbing
    and anomaly over the whole episode (the other people of a fight too); falling from the
    timed onset until the person is first seen down (at most ``FALL_MAX_TRANSITION_S``)."""
    out = list(actions)
    oid = obs[0].obj_id if obs else None
    for e in episodes:
        if oid != e.obj_id and oid not in e.other_obj_ids:
            continue
        rule = spec(e.event_type)
        if rule.overlay is Overlay.ONSET:
            if oid != e.obj_id:
                continue
            end = e.start_t_s + T.FALL_MAX_TRANSITION_S
            for i, o in enumerate(obs):
                if e.start_t_s - 1e-6 <= o.t_s <= end:
                    if actions[i] in (Action.LYING, Action.SITTING) and o.t_s > e.start_t_s:
                        break  # down: the fall is over
                    out[i] = rule.episode_action
        elif rule.overlay is Overlay.SPAN:
            for i, o in enumerate(obs):
                if e.start_t_s - 1e-6 <= o.t_s <= e.end_t_s + 1e-6:
                    out[i] = rule.episode_action
    return out


def clean(observations: Sequence[PersonObservation], episodes: Sequence[Episode],
          frames_sampled: int, sampled_fps: float, video_duration_s: float | None = None) -> Cleaned:
    protected = {e.obj_id for e in episodes} | {o for e in episodes for o in e.other_obj_ids}
    keep = kept_track_ids(observations, frames_sampled, sampled_fps, protected, video_duration_s)
    by_track: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        if o.obj_id in keep:
            by_track[o.obj_id].append(o)
    dropped = sorted({o.obj_id for o in observations if o.obj_id >= 0} - keep)

    summaries: dict[int, TrackSummary] = {}
    events: list[Event] = []
    for oid, obs in sorted(by_track.items()):
        obs.sort(key=lambda o: (o.t_s, o.frame_number))
        age, spread, gender, gconf = summarize_attributes(obs)
        actions = _overlay_episodes(obs, _smooth_actions(obs), episodes)
        summaries[oid] = TrackSummary(
            obj_id=oid, first_t_s=obs[0].t_s, last_t_s=obs[-1].t_s, n_observations=len(obs),
            age=None if age is None else round(age, 1),
            age_spread=None if spread is None else round(spread, 1), gender=gender,
            gender_confidence=gconf,
            actions=frozen_mapping(dict(Counter(a.value for a in actions))))
        for o, act in zip(obs, actions):
            events.append(Event(
                event_type=EventType.PERSON, t_s=o.t_s, frame_number=o.frame_number, obj_id=oid,
                xyxy=o.xyxy, age_group=AgeGroup.from_age(age), gender=gender, action=act,
                confidence=round(float(o.det_confidence), 3), age=None if age is None else round(age, 1),
                orientation_deg=o.orientation_deg, scene_description=o.scene_description,
                keypoints=o.keypoints, track_ids=(oid,), raw_action=o.action,
                action_confidence=o.action_confidence,
                extra=frozen_mapping({"frame_age": o.age, "frame_gender": o.gender.value,
                                      "gender_confidence": gconf})))

    all_by_track: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        all_by_track[o.obj_id].append(o)
    for e in episodes:
        s = summaries.get(e.obj_id)
        near = min(all_by_track.get(e.obj_id, []), key=lambda o: abs(o.t_s - e.peak_t_s),
                   default=None)
        events.append(Event(
            event_type=e.event_type, t_s=e.peak_t_s, frame_number=e.peak_frame_number,
            obj_id=e.obj_id, xyxy=near.xyxy if near else (0.0, 0.0, 0.0, 0.0),
            age_group=s.age_group if s else AgeGroup.UNKNOWN,
            gender=s.gender if s else Gender.UNKNOWN,
            action=spec(e.event_type).episode_action or Action.UNKNOWN, confidence=e.confidence,
            age=s.age if s else None, orientation_deg=near.orientation_deg if near else None,
            scene_description=near.scene_description if near else None,
            keypoints=near.keypoints if near else (),
            track_ids=track_ids(e),
            start_t_s=e.start_t_s, end_t_s=e.end_t_s,
            extra=frozen_mapping({"reason": e.reason})))
    events.sort(key=lambda ev: (ev.t_s, ev.obj_id, ev.event_type.value))
    return Cleaned(events=tuple(events), tracks=tuple(summaries[k] for k in sorted(summaries)),
                   episodes=tuple(episodes), dropped_tracks=tuple(dropped))
