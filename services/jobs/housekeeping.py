"""Before and after a run: what a picked video is (length, frame rate, size), deleting a video
(its rows, vectors, tracks, review marks, highlight frames and, for an upload, the file) and
clearing failed jobs from the history."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError
from db.records import StoredObject
from services.media.source_uri import SourceUri
from pipeline.records import JobStatus
from services import database, timefmt
from services.errors import JobConflict, ServiceError

log = logging.getLogger("va.services.jobs.housekeeping")


@dataclass(frozen=True)
class VideoFacts:
    duration_s: float
    fps: float
    width: int
    height: int
    is_image: bool

    @property
    def text(self) -> str:
        if self.is_image:
            return f"a photo, {self.width}×{self.height}"
        return (f"{timefmt.duration(self.duration_s)} long, {self.fps:.2f} fps, "
                f"{self.width}×{self.height}")


def _local_file(settings, uri: str) -> Path | None:
    src = SourceUri.parse(uri)
    if src.is_s3:
        return None
    if src.is_local:
        from services.media import storage

        return storage.local_path(settings, src.key)
    return Path(uri)


def source_facts(settings, uri: str) -> VideoFacts | None:
    """Length, frame rate and size of a local video (library or upload); None for an S3 video
    (known after its download) or a file that is not a video (the run says why)."""
    from pipeline.sampling import probe_video

    try:
        path = _local_file(settings, uri)
        if path is None or not path.is_file():
            return None
        info = probe_video(path)
    except (PipelineError, ServiceError, OSError) as e:
        log.debug("no facts for %s: %s", uri, e)
        return None
    return VideoFacts(duration_s=info.duration_s, fps=info.fps, width=info.width,
                      height=info.height, is_image=info.is_image)


def delete_video(settings, video_id: int, *, actor, confirm_name: str) -> str:
    """Delete a video: its row, events, vectors, tracks and review marks (one transaction), its
    highlight frames, and the file when it is an upload in the workbench's storage (a library
    file or an S3 source is the analyst's and stays). Admins only; ``confirm_name`` must be the
    video's name as typed by the admin; recorded in the audit trail. Refused while its analysis
    runs."""
    from services.access import access

    who = access.require(settings, actor, access.Role.ADMIN)
    return _delete(settings, int(video_id), who.name, confirm_name=confirm_name)


def _delete(settings, video_id: int, who: str, confirm_name: str | None = None,
            why: str = "") -> str:
    from db import queries, store
    from services.access import access
    from services.media import storage

    with database.pooled(settings) as conn:
        v = queries.get_video(conn, int(video_id))
        if v is None:
            raise ServiceError(f"video {video_id} does not exist (any more); reload the page")
        if confirm_name is not None and (confirm_name or "").strip() != v.name:
            raise ServiceError(f"to delete it, type the video's name exactly: {v.name}")
        if v.status in (JobStatus.PENDING, JobStatus.PROCESSING):
            raise JobConflict(f"{v.name} is being analysed; cancel its analysis first, then "
                              f"delete it")
        with conn.transaction():
            frames = store.delete_video(conn, int(video_id))
            access.record(conn, who, access.AuditAction.DELETE, video_id=int(video_id),
                          video_name=v.name, detail=(why or "video and its results")
                          + f", {len(frames)} highlight frame(s)")
    storage.get_storage(settings).delete(frames)
    uri = SourceUri.parse(v.source_uri or "")
    if uri.is_upload:
        storage.get_storage(settings).delete([StoredObject(None, uri.key)])
        return f"Deleted {v.name}: its results, {len(frames)} highlight frame(s) and the upload."
    return f"Deleted {v.name}'s results and {len(frames)} highlight frame(s); the source stays."


def delete_upload(settings, uri: str, *, actor) -> None:
    """Delete an uploaded file that has no analysis (e.g. a file that is not a video). Admins
    only, audited."""
    from services.access import access
    from services.media import storage

    who = access.require(settings, actor, access.Role.ADMIN)
    src = SourceUri.parse(uri)
    if not src.is_upload:
        raise ServiceError("only files uploaded to the workbench can be deleted here")
    storage.get_storage(settings).delete([StoredObject(None, src.key)])
    with database.pooled(settings) as conn:
        access.record(conn, who.name, access.AuditAction.DELETE,
                      video_name=uri[len("local:videos/"):], detail="an upload with no analysis")


def clear_failed(settings, *, actor) -> int:
    """Remove failed and cancelled jobs (and anything they stored) from the history. Admins
    only; each deletion is audited."""
    from db import queries
    from services.access import access

    who = access.require(settings, actor, access.Role.ADMIN)
    done = 0
    with database.pooled(settings) as conn:
        ids = [v.video_id for v in queries.list_videos(
            conn, statuses=[JobStatus.FAILED.value, JobStatus.CANCELLED.value])]
    for vid in ids:
        try:
            _delete(settings, vid, who.name, why="cleared as a failed or cancelled job")
            done += 1
        except ServiceError as e:  # restarted meanwhile
            log.info("not cleared: %s", e)
    return done
