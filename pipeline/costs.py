"""What a run will cost before it starts: the number of sampled frames and an estimated run time.

The per-frame costs are not typed by hand: ``python -m pipeline bench`` measures them (the CLI as
a user runs it, whole process) and writes them to ``pipeline/costs.json``; this module reads that
table. Estimates are for the offline CPU default on the machine the bench ran on (2 cores).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline.records import VideoInfo

log = logging.getLogger(__name__)

COSTS_FILE = Path(__file__).with_name("costs.json")


@dataclass(frozen=True)
class CostTable:
    """Measured costs of the default pipeline (the bench writes them)."""

    startup_s: float = 3.0  # process start, imports, model loading (engine only)
    store_s: float = 2.0  # database start, embedding and storing, beyond the engine
    regular_ms_per_frame: float = 100.0  # one sampled frame at the regular rate
    dense_ms_per_frame: float = 200.0  # short clips: every frame with the second detector
    measured_on: str = "defaults (no bench run yet)"

    @classmethod
    def load(cls, path: Path = COSTS_FILE) -> "CostTable":
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            log.debug("no cost table at %s (%s): using defaults", path, e)
            return cls()
        known = {k: raw[k] for k in asdict(cls()) if k in raw}
        try:
            return cls(**{k: (str(v) if k == "measured_on" else float(v))
                          for k, v in known.items()})
        except (TypeError, ValueError):
            return cls()

    def save(self, path: Path = COSTS_FILE) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


@dataclass(frozen=True)
class RunEstimate:
    frames_sampled: int
    frame_skip: int
    sampled_fps: float
    seconds: float  # whole run, storing included
    dense: bool  # a short clip analysed densely for interactions


def estimate_run(info: VideoInfo, settings, costs: CostTable | None = None,
                 store: bool = True) -> RunEstimate:
    """Sampled frames and estimated wall seconds of analysing ``info`` with ``settings``."""
    from pipeline.sampling import SamplingPlan

    costs = costs or CostTable.load()
    plan = SamplingPlan.for_video(info, settings)
    per = costs.dense_ms_per_frame if plan.dense else costs.regular_ms_per_frame
    seconds = costs.startup_s + (costs.store_s if store else 0.0) \
        + plan.frames_sampled * per / 1000.0
    return RunEstimate(frames_sampled=plan.frames_sampled, frame_skip=plan.frame_skip,
                       sampled_fps=round(plan.sampled_fps, 3), seconds=round(seconds, 1),
                       dense=plan.dense)
