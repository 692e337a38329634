"""Episodes -> incidents: what an analyst reviews as one thing.

* A fall and the lying that follows it are one **falling** incident: a collapse of the same
  person that begins while the fall's episode lasts (or within ``INCIDENT_FALL_GAP_S`` of its
  end) is folded into the fall, whose end becomes the end of the lying. A collapse stays for
  someone found lying with no fall seen.
* Overlapping episodes of one event type across tracks (within ``INCIDENT_MERGE_GAP_S``) are
  one incident: from the earliest start to the latest end, the peak (moment, frame, confidence)
  of the most confident episode, and the union of the tracks involved (``obj_id`` is the
  peak's person, ``other_obj_ids`` the others). Only the involved tracks are named: a bystander
  keeps their own action.
* Running (anomaly) or reaching (grabbing) by a person involved in a fight, during the fight, is
  part of the fight's incident, not an incident of its own.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from pipeline.event_types import IncidentRule, with_rule
from pipeline.records import Episode, EventType

INCIDENT_MERGE_GAP_S = 0.5  # same-type episodes of different people this close are one incident
INCIDENT_FALL_GAP_S = 1.5  # a collapse starting this soon after a fall's end is its aftermath
_PART_OF_FIGHT = with_rule(IncidentRule.PART_OF_FIGHT)
_FALLS = with_rule(IncidentRule.FALL)
_FALL_AFTERMATH = with_rule(IncidentRule.FALL_AFTERMATH)
_FIGHTS = with_rule(IncidentRule.FIGHT)


def track_ids(e: Episode) -> tuple[int, ...]:
    """The tracks an episode involves: its person first, then the others."""
    return (e.obj_id,) + tuple(t for t in e.other_obj_ids if t != e.obj_id)


def _overlaps(a: Episode, b: Episode, gap_s: float) -> bool:
    return a.start_t_s <= b.end_t_s + gap_s and b.start_t_s <= a.end_t_s + gap_s


def _fold_collapses(episodes: list[Episode]) -> list[Episode]:
    falls = [e for e in episodes if e.event_type in _FALLS]
    out, extend = [], {}
    for e in episodes:
        if e.event_type in _FALL_AFTERMATH:
            fall = next((f for f in falls if f.obj_id == e.obj_id
                         and f.start_t_s - 1e-6 <= e.start_t_s <= f.end_t_s + INCIDENT_FALL_GAP_S),
                        None)
            if fall is not None:
                extend[id(fall)] = max(extend.get(id(fall), fall.end_t_s), e.end_t_s)
                continue
        out.append(e)
    return [replace(e, end_t_s=extend[id(e)],
                    reason=f"{e.reason}; lying until {extend[id(e)]:.1f} s")
            if id(e) in extend and extend[id(e)] > e.end_t_s else e for e in out]


def _merge_across_tracks(episodes: list[Episode], types: set[EventType] | None = None,
                         ) -> list[Episode]:
    out: list[Episode] = [e for e in episodes if types is not None and e.event_type not in types]
    for etype in dict.fromkeys(e.event_type for e in episodes
                               if types is None or e.event_type in types):
        group = sorted((e for e in episodes if e.event_type is etype), key=lambda e: e.start_t_s)
        clusters: list[list[Episode]] = []
        for e in group:
            if clusters and e.start_t_s <= max(c.end_t_s for c in clusters[-1]) + INCIDENT_MERGE_GAP_S:
                clusters[-1].append(e)
            else:
                clusters.append([e])
        for c in clusters:
            if len(c) == 1:
                out.append(c[0])
                continue
            best = max(c, key=lambda e: (e.confidence, -e.peak_t_s))
            ids = [t for e in [best] + c for t in track_ids(e)]
            others = tuple(dict.fromkeys(t for t in ids if t != best.obj_id))
            out.append(replace(best, start_t_s=min(e.start_t_s for e in c),
                               end_t_s=max(e.end_t_s for e in c), other_obj_ids=others,
                               reason=f"{best.reason} ({len(c)} episodes, people "
                                      f"{', '.join(str(t) for t in sorted(set(ids)))})"))
    return out


def _absorb_into_fights(episodes: list[Episode]) -> list[Episode]:
    fights = [e for e in episodes if e.event_type in _FIGHTS]
    return [e for e in episodes if not (
        e.event_type in _PART_OF_FIGHT and any(
            e.obj_id in track_ids(f) and _overlaps(e, f, INCIDENT_MERGE_GAP_S) for f in fights))]


def incidents(episodes: Sequence[Episode]) -> list[Episode]:
    """The incidents of a video's episodes (see the module docstring), in time order."""
    eps = _fold_collapses(list(episodes))
    eps = _merge_across_tracks(eps, set(_FIGHTS))  # the fights first: they absorb...
    eps = _absorb_into_fights(eps)  # ...their fighters' running and reaching
    eps = _merge_across_tracks(eps)
    return sorted(eps, key=lambda e: (e.peak_t_s, e.obj_id, e.event_type.value))
