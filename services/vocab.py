"""The vocabularies as the pages show them: order and colours derived from the Enums of
``pipeline.records`` (the one list of each). Widgets and plotly take the plain values."""
from __future__ import annotations

from typing import Mapping

from pipeline.event_types import EVENT_TYPES as EVENT_SPECS, INCIDENT_TYPES
from pipeline.records import (
    Action, AgeGroup, Colour, EventType, Gender, JobStatus, ObjectClass, Relation,
)

#: Jobs that are not over yet (the sidebar, the Analyze page's progress and the Cancel button).
ACTIVE = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.PROCESSING)
FINAL = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

ACTIONS = tuple(a.value for a in Action)
EVENT_TYPES = tuple(t.value for t in EventType)
HIGHLIGHT_TYPES = tuple(t.value for t in INCIDENT_TYPES)
GENDERS = tuple(g.value for g in Gender)
AGE_GROUPS = tuple(a.value for a in AgeGroup)
#: Clothing colour names (a filter: unknown is not one, it is stored as none).
COLOURS = tuple(c.value for c in Colour if c is not Colour.UNKNOWN)
ORIENTATION_LABELS = (0, 90, 180, 270)
#: Object classes (a filter: an object's track, or a person carrying / riding / sitting on one).
OBJECT_CLASSES = tuple(c.value for c in ObjectClass)
RELATIONS = tuple(r.value for r in Relation)

#: One colour per action in every chart (the alarming ones warm, everyday ones cool).
_ACTION_COLOURS: Mapping[Action, str] = {
    Action.STANDING: "#8da0cb", Action.WALKING: "#66c2a5", Action.RUNNING: "#1b9e77",
    Action.SITTING: "#7570b3", Action.LYING: "#fc8d62", Action.FALLING: "#d62728",
    Action.VIOLENT: "#8c1c13", Action.GRABBING: "#e6ab02", Action.ANOMALY: "#e7298a",
    Action.PAYING: "#a6761d", Action.THEFT: "#4d4d4d", Action.UNKNOWN: "#bdbdbd",
}
_EVENT_COLOURS: Mapping[EventType, str] = {s.event_type: s.colour for s in EVENT_SPECS}
_GENDER_COLOURS: Mapping[Gender, str] = {
    Gender.FEMALE: "#e377c2", Gender.MALE: "#1f77b4", Gender.UNKNOWN: "#bdbdbd",
}


def _by_value(colours: Mapping, enum) -> dict[str, str]:
    missing = [m.value for m in enum if m not in colours]
    if missing:
        raise ValueError(f"no colour for {enum.__name__} {missing}: add them in services/vocab.py")
    return {m.value: colours[m] for m in enum}


ACTION_COLOURS = _by_value(_ACTION_COLOURS, Action)
EVENT_COLOURS = _by_value(_EVENT_COLOURS, EventType)
GENDER_COLOURS = _by_value(_GENDER_COLOURS, Gender)
