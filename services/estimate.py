"""Before a run: how many frames the chosen sampling rate analyses and about how long the run
takes, from the costs the bench measured (``pipeline/costs.py``). Only local videos (the library
folder, the workbench's own storage) are probed; an S3 video is estimated after its download."""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.costs import CostTable, RunEstimate, estimate_run
from pipeline.errors import PipelineError

log = logging.getLogger("va.services.estimate")

#: The job's share done by which its ETA is the run's own, not the estimate's.
ETA_BLEND_UNTIL = 0.5


def local_path(settings, uri: str) -> Path | None:
    """The local file behind ``uri`` (a path or ``local:videos/x.mp4``), or None (S3)."""
    if uri.startswith("s3://"):
        return None
    if uri.startswith("local:"):
        from services.storage import validate_name

        key = uri[len("local:"):]
        for part in key.split("/"):
            validate_name(part, "key part")  # no "..": a key never leaves the storage folder
        return Path(settings.data_dir) / "storage" / key
    return Path(uri)


def estimate_source(settings, uri: str, sample_fps: float | None = None,
                    costs: CostTable | None = None) -> RunEstimate | None:
    """Sampled frames and estimated seconds for ``uri`` at ``sample_fps`` (None: the setting);
    None when the video is not local or cannot be read (the run itself will say why)."""
    from pipeline.sampling import probe_video

    from services.errors import ServiceError

    try:
        path = local_path(settings, uri)
    except ServiceError:
        return None
    if path is None or not path.is_file():
        return None
    try:
        info = probe_video(path)
    except PipelineError as e:
        log.debug("no estimate for %s: %s", uri, e)
        return None
    s = settings.with_overrides(sample_fps=sample_fps) if sample_fps else settings
    return estimate_run(info, s, costs)


def job_estimate_s(settings, uri: str) -> float | None:
    """The whole job's estimated seconds (as the Analyze page showed it before launch), or None
    (an S3 video, an unreadable file): the job's ETA before its first analysed frame."""
    try:
        est = estimate_source(settings, uri)
    except (OSError, ValueError) as e:
        log.debug("no estimate for %s: %s", uri, e)
        return None
    return None if est is None else float(est.seconds)


def remaining_s(estimate_s: float | None, elapsed_s: float, reported_eta_s: float | None,
                fraction: float = 0.0) -> float | None:
    """The job's ETA: before the run has its own (models loading, the first frame) what is left
    of the estimate; then a blend that moves from the estimate to the run's own ETA (from its
    frame rate so far, noisy over its first frames) as the job passes ``fraction`` 0 -> 0.5,
    never less than what is left of the estimate: the run's own counts only its frames, not
    finding events (dense re-analysis) or storing, and read '00:00' for 20 s on vtest. None
    when neither is known (an S3 video before its first frames)."""
    left = None if estimate_s is None else float(estimate_s) - max(0.0, float(elapsed_s))
    if left is not None and left <= 0:
        left = None  # overrun: the estimate says nothing any more
    if reported_eta_s is None or left is None:
        eta = left if reported_eta_s is None else float(reported_eta_s)
    else:
        w = min(1.0, max(0.0, float(fraction)) / ETA_BLEND_UNTIL)
        eta = max(left, (1.0 - w) * left + w * float(reported_eta_s))
    return None if eta is None else round(eta, 1)
