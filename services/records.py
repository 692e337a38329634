"""Records of the service layer: answers with their citations, and the outcome of an ingest."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from pipeline.records import JobStatus, mmss


@dataclass(frozen=True)
class Citation:
    event_id: int
    video_name: str
    t_s: float

    @property
    def label(self) -> str:
        return f"[event {self.event_id}, {self.video_name} {mmss(self.t_s)}]"


@dataclass(frozen=True)
class Answer:
    """The answer step's result: text whose every claim cites an event, or a plain 'nothing
    matches' when ``relevant`` is False."""

    text: str
    citations: tuple[Citation, ...] = ()
    relevant: bool = True
    source: str = "extractive"  # extractive | bedrock | openai
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class IngestOutcome:
    video_id: int
    name: str
    status: JobStatus
    n_events: int
    n_highlights: int
    n_embedded: int
    embedding_model: str | None
    output_dir: Path | None
    elapsed_s: float
    warning: str | None = None
    frames_sampled: int = 0
    #: ms per stage: the engine's (decode, detector...) and the job's own (start: database and
    #: models, embed, store)
    stage_ms: Mapping[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"video {self.video_id} ({self.name}): {self.status.value}; {self.n_events} events, "
                f"{self.n_highlights} highlights, {self.n_embedded} embedded with "
                f"{self.embedding_model} in {self.elapsed_s:.1f} s -> {self.output_dir}"
                + (f"; warning: {self.warning}" if self.warning else ""))
