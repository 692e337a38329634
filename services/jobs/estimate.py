"""Before a run: how many frames the chosen sampling rate analyses and about how long the run
takes, from the costs the bench measured (``pipeline/costs.py``). Only local videos (the library
folder, the workbench's own storage) are probed; an S3 video is estimated after its download."""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.costs import CostTable, RunEstimate, estimate_run
from pipeline.errors import PipelineError

log = logging.getLogger("va.services.jobs.estimate")


def local_path(settings, uri: str) -> Path | None:
    """The local file behind ``uri`` (a path or ``local:videos/x.mp4``), or None (S3)."""
    from services.media.source_uri import SourceUri

    src = SourceUri.parse(uri)
    if src.is_s3:
        return None
    if src.is_local:
        from services.media.storage import validate_name

        key = src.key
        for part in key.split("/"):
            validate_name(part, "key part")  # no "..": a key never leaves the storage folder
        return Path(settings.data_dir) / "storage" / key
    return Path(uri)


def probe_local(settings, uri: str):
    """``uri``'s local video as probed (a path or ``local:videos/x.mp4``), or None (S3, a
    missing or unreadable file: the run itself says why)."""
    from pipeline.sampling import probe_video

    from services.errors import ServiceError

    try:
        path = local_path(settings, uri)
    except ServiceError:
        return None
    if path is None or not path.is_file():
        return None
    try:
        return probe_video(path)
    except PipelineError as e:
        log.debug("cannot probe %s: %s", uri, e)
        return None


def estimate_source(settings, uri: str, sample_fps: float | None = None,
                    costs: CostTable | None = None) -> RunEstimate | None:
    """Sampled frames and estimated seconds for ``uri`` at ``sample_fps`` (None: the setting);
    None when the video is not local or cannot be read (the run itself will say why)."""
    info = probe_local(settings, uri)
    if info is None:
        return None
    s = settings.with_overrides(sample_fps=sample_fps) if sample_fps else settings
    return estimate_run(info, s, costs)


def job_estimate_s(settings, uri: str, info=None) -> float | None:
    """The whole job's estimated seconds (as the Analyze page showed it before launch), or None
    (an S3 video, an unreadable file): the job's ETA before its first analysed frame. ``info``:
    the video as already probed (not probed again)."""
    try:
        est = estimate_source(settings, uri) if info is None else estimate_run(info, settings)
    except (OSError, ValueError) as e:
        log.debug("no estimate for %s: %s", uri, e)
        return None
    return None if est is None else float(est.seconds)
