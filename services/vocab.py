"""Vocabularies the pages offer as filters, in the order they show them."""
from __future__ import annotations

from pipeline.records import JobStatus

ACTIVE = (JobStatus.PENDING, JobStatus.PROCESSING)
HIGHLIGHT_TYPES = ("falling", "collapse", "violent", "grabbing", "theft", "anomaly")
EVENT_TYPES = ("person",) + HIGHLIGHT_TYPES
ACTIONS = ("standing", "walking", "running", "sitting", "lying", "falling", "violent",
           "grabbing", "anomaly", "paying", "theft", "unknown")
GENDERS = ("female", "male", "unknown")
AGE_GROUPS = ("young", "middle", "old", "unknown")
