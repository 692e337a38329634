"""Every event type's facts in one declaration (``EVENT_TYPES``), as ``backends.registry``'s
``BackendSpec`` does for backends: what the sentence says, the colour charts draw it in, the action
its people carry during an episode, how its episodes become incidents, how urgent it is on the
Review page and where its measured precision lives. Adding an event type = a member of
``records.EventType``, the rule that finds its episodes, and one ``EventTypeSpec`` here; postprocess,
incidents, the sentences (services.search.embeddings), the vocabularies (services.vocab) and Review
(services.review.review) read this table."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pipeline.records import Action, EventType


class Severity(str, Enum):
    """Frigate's two review levels: an ``alert`` (someone may be hurt or harmed: look now) or a
    ``detection`` (worth a look when there is time)."""

    ALERT = "alert"
    DETECTION = "detection"


class Overlay(str, Enum):
    """How an episode's action is written onto its people's rows (``postprocess``)."""

    NONE = "none"  # the rows keep their own action
    ONSET = "onset"  # its person only, from the timed onset until first seen down (a fall)
    SPAN = "span"  # every person involved, over the whole episode


class IncidentRule(str, Enum):
    """How an episode joins others into the incident an analyst reviews (``incidents``)."""

    OWN = "own"  # merged only with overlapping episodes of its own type across people
    FALL = "fall"  # absorbs its person's collapse that follows it
    FALL_AFTERMATH = "fall_aftermath"  # folded into its person's fall when one precedes it
    FIGHT = "fight"  # merged across people first; absorbs its fighters' PART_OF_FIGHT episodes
    PART_OF_FIGHT = "part_of_fight"  # dropped when its person is in a fight at that moment


@dataclass(frozen=True)
class EventTypeSpec:
    """One event type. ``phrase`` is what its sentence says (None: the row's action says it);
    ``episode_action`` the action of its event row and, per ``overlay``, of its people's rows;
    ``severity`` None = not an incident (not on the Review page); ``precision_key`` names its
    entry of ``models/detectors.json`` (measured precision, with the document it comes from);
    ``found_by`` the module whose rule finds it (for a reader)."""

    event_type: EventType
    colour: str
    phrase: str | None = None
    episode_action: Action | None = None
    overlay: Overlay = Overlay.NONE
    incident: IncidentRule = IncidentRule.OWN
    severity: Severity | None = None
    precision_key: str | None = None
    found_by: str = ""

    @property
    def is_incident(self) -> bool:
        return self.severity is not None


#: THE table of event types, in the order the pages list them.
EVENT_TYPES: tuple[EventTypeSpec, ...] = (
    EventTypeSpec(EventType.PERSON, "#9ecae1", found_by="pipeline.postprocess (every sample)"),
    EventTypeSpec(EventType.FALLING, "#d62728",
                  "fell down to the floor (a fall: lost balance and dropped)",
                  Action.FALLING, Overlay.ONSET, IncidentRule.FALL, Severity.ALERT, "falling",
                  "pipeline.highlights"),
    EventTypeSpec(EventType.COLLAPSE, "#fc8d62",
                  "collapsed and stayed lying on the floor (a person down, not getting up)",
                  Action.LYING, Overlay.NONE, IncidentRule.FALL_AFTERMATH, Severity.ALERT,
                  "collapse", "pipeline.highlights"),
    EventTypeSpec(EventType.VIOLENT, "#8c1c13",
                  "was fighting with another person (violent fight: hitting, pushing, struggling)",
                  Action.VIOLENT, Overlay.SPAN, IncidentRule.FIGHT, Severity.ALERT, "violent",
                  "pipeline.violence, pipeline.interactions"),
    EventTypeSpec(EventType.GRABBING, "#e6ab02",
                  "reached out and grabbed something (an arm stretched to an object or shelf)",
                  Action.GRABBING, Overlay.SPAN, IncidentRule.PART_OF_FIGHT, Severity.DETECTION,
                  "grabbing", "pipeline.interactions"),
    EventTypeSpec(EventType.THEFT, "#4d4d4d",
                  "took something and hid it (possible theft, shoplifting)",
                  Action.THEFT, Overlay.SPAN, IncidentRule.OWN, Severity.ALERT, "theft",
                  "pipeline.backends.vlm"),
    EventTypeSpec(EventType.ANOMALY, "#e7298a",
                  "did something unusual (anomaly: running, or down among standing people)",
                  Action.ANOMALY, Overlay.SPAN, IncidentRule.PART_OF_FIGHT, Severity.DETECTION,
                  "anomaly", "pipeline.interactions"),
    EventTypeSpec(EventType.OBJECT, "#bcbd22", found_by="pipeline.objects (object tracks)"),
)

SPECS: dict[EventType, EventTypeSpec] = {s.event_type: s for s in EVENT_TYPES}
_missing = [t.value for t in EventType if t not in SPECS]
if _missing:
    raise ValueError(f"no EventTypeSpec for {_missing}: declare them in pipeline/event_types.py")


def spec(event_type: EventType) -> EventTypeSpec:
    return SPECS[EventType(event_type)]


#: The incident types (Review's items), in table order.
INCIDENT_TYPES: tuple[EventType, ...] = tuple(s.event_type for s in EVENT_TYPES if s.is_incident)


def is_incident(event_type: EventType) -> bool:
    return SPECS[EventType(event_type)].is_incident


def with_rule(*rules: IncidentRule) -> frozenset[EventType]:
    """The event types whose incident rule is one of ``rules``."""
    return frozenset(s.event_type for s in EVENT_TYPES if s.incident in rules)
