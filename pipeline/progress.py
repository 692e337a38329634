"""A job's progress: its stages (``Stage``: the name shown, the unit of its done/total counts
and its share of the job's 0-100 % bar) and its ETA, worked out here only. The engine fills the
analysis part of the bar (``ENGINE_SPAN``); the service layer's steps (download, upload, embed,
store) fill the rest."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum


class Stage(str, Enum):
    """A progress stage. ``span`` is its share of the job's bar in percent (None: a moment, not
    a share: it shows while waiting); ``unit`` what its done/total counts ("" when nothing worth
    showing)."""

    def __new__(cls, value: str, unit: str = "", span: tuple[float, float] | None = None):
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.unit = unit
        obj.span = span
        return obj

    # Before a job runs (written while queued or at its start).
    LOADING_MODELS = "loading models"  # a worker loads the analysis models (its first job)
    STARTING = "starting"
    # The job's steps, in order.
    DOWNLOAD = ("download", "", (0.0, 5.0))
    ANALYSING = ("analysing frames", "frames", (5.0, 77.0))  # the engine from here...
    FINDING_EVENTS = ("finding events", "frames", (77.0, 81.0))
    WRITING_OUTPUTS = ("writing outputs", "frames", (81.0, 85.0))  # ...to here
    DONE = "done"  # the engine's end, not the job's: STORING follows
    UPLOADING = ("uploading highlights", "highlights", (85.0, 90.0))
    LOADING_TEXT_MODEL = "loading the text model"  # the embedder is still loading
    EMBEDDING = ("embedding", "sentences", (90.0, 98.0))
    STORING_EVENTS = ("storing events", "events", (98.0, 100.0))
    STORING = "storing results"  # the engine is done; frames, vectors and events follow

    def __str__(self) -> str:
        return self.value

    def at(self, fraction: float) -> float:
        """The job's percent when this stage is ``fraction`` (0..1) done."""
        lo, hi = self.span or (0.0, 0.0)
        return lo + (hi - lo) * max(0.0, min(1.0, float(fraction)))


#: The engine's part of the job's bar: a ``RunProgress.fraction`` of 0..1 maps into it.
ENGINE_SPAN = (Stage.ANALYSING.span[0], Stage.WRITING_OUTPUTS.span[1])


def engine_fraction(stage: Stage, fraction: float) -> float:
    """The engine's 0..1 fraction when its ``stage`` is ``fraction`` done (DONE: 1)."""
    if stage.span is None:  # starting: 0; done: 1
        return 1.0 if stage is Stage.DONE else 0.0
    lo, hi = ENGINE_SPAN
    return (stage.at(fraction) - lo) / (hi - lo)


def unit_of(stage: str | None) -> str:
    """The unit of a stored stage's done/total counts ("" for none or an unknown stage)."""
    try:
        return Stage(stage).unit
    except ValueError:
        return ""


# --- the ETA -----------------------------------------------------------------------------------

#: The job passes this fraction before its ETA is the run's own rather than the estimate's.
ETA_BLEND_UNTIL = 0.5
#: How old a row's ETA may be and still be counted down by its age (beyond: the app's clock
#: and the database's disagree, and the stored value is shown as is).
ETA_COUNTDOWN_MAX_S = 120.0


def run_eta_s(elapsed_s: float, fraction: float) -> float | None:
    """The engine's own ETA from its rate so far (None over its first 1 %)."""
    if fraction <= 0.01:
        return None
    return round(elapsed_s * (1 - fraction) / fraction, 1)


def remaining_s(estimate_s: float | None, elapsed_s: float, reported_eta_s: float | None,
                fraction: float = 0.0) -> float | None:
    """The job's ETA: before the run has its own (models loading, the first frame) what is left
    of the estimate; then a blend that moves from the estimate to the run's own ETA (from its
    frame rate so far, noisy over its first frames) as the job passes ``fraction`` 0 -> 0.5,
    never less than what is left of the estimate: the run's own counts only its frames, not
    finding events (dense re-analysis) or storing. None when neither is known (an S3 video
    before its first frames)."""
    left = None if estimate_s is None else float(estimate_s) - max(0.0, float(elapsed_s))
    if left is not None and left <= 0:
        left = None  # overrun: the estimate says nothing any more
    if reported_eta_s is None or left is None:
        eta = left if reported_eta_s is None else float(reported_eta_s)
    else:
        w = min(1.0, max(0.0, float(fraction)) / ETA_BLEND_UNTIL)
        eta = max(left, (1.0 - w) * left + w * float(reported_eta_s))
    return None if eta is None else round(eta, 1)


def eta_now(eta_s: float | None, updated_at, now: datetime | None = None) -> float | None:
    """The stored ETA less the seconds since it was written: it keeps counting down between the
    job's writes (models loading write nothing for a while)."""
    if eta_s is None or updated_at is None:
        return eta_s
    age = ((now or datetime.now(timezone.utc)) - updated_at).total_seconds()
    if not 0.0 <= age <= ETA_COUNTDOWN_MAX_S:
        return eta_s
    return max(0.0, float(eta_s) - age)
