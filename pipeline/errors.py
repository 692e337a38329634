"""Domain errors. Each message says what was expected, what was found and how to fix it,
in one line, so the CLI and the UI can show it as is."""
from __future__ import annotations


class PipelineError(Exception):
    """Base class: a problem the user can fix. ``str(e)`` is one line."""


class VideoOpenError(PipelineError):
    """The input is missing, empty, not a video, truncated or has no frames."""


class InputChanged(PipelineError):
    """The input file was replaced or modified while it was being analysed."""


class BackendUnavailable(PipelineError):
    """An unknown backend name, missing/unreadable weights, or a device that is not there."""


class StageError(PipelineError):
    def __init__(self, stage: str, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage = stage


class Cancelled(PipelineError):
    """The run was stopped by its stop flag. Nothing was written."""
