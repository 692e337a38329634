"""Highlights and media: annotated highlight frames, stored frame bytes, playable videos."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from pipeline.records import EventType, mmss
from db.records import StoredEvent, StoredObject, VideoRecord
from services.errors import StorageError
from services.search.events_table import EventQuery, list_events, video_names
from services.setup import Services
from services.media.source_uri import SourceUri
from services.vocab import HIGHLIGHT_TYPES
from settings import Settings

log = logging.getLogger("va.workbench")


@dataclass(frozen=True)
class HighlightItem:
    event: StoredEvent
    video_name: str

    @property
    def tracks_label(self) -> str:
        ids = self.event.people
        if not ids:
            return "no track"
        return (f"track {ids[0]}" if len(ids) == 1
                else "tracks " + ", ".join(str(t) for t in ids))

    @property
    def caption(self) -> str:
        return f"{self.event.event_type.value} · {mmss(self.event.t_s)} · {self.tracks_label}"

    @property
    def frame(self) -> StoredObject | None:
        e = self.event
        return StoredObject(e.thumbnail_bucket, e.thumbnail_key) if e.thumbnail_key else None


def highlights(settings: Settings, video_ids: Sequence[int] = (),
               event_types: Sequence[EventType | str] = ()) -> list[HighlightItem]:
    """Highlight events (those with an annotated frame), in video then time order."""
    types = tuple(event_types) or HIGHLIGHT_TYPES
    names = video_names(settings)
    evs = list_events(settings, EventQuery(video_ids=tuple(video_ids), event_types=types))
    return [HighlightItem(e, names.get(e.video_id, f"video {e.video_id}"))
            for e in evs if e.thumbnail_key]


def frame_bytes(svc: Services, obj: StoredObject | None) -> bytes | None:
    """The JPEG of a stored frame, or None when it is gone (shown as 'frame missing')."""
    if obj is None:
        return None
    from services.media import storage

    try:
        return storage.read_bytes(svc.settings, obj)
    except StorageError as e:
        log.warning("frame %s unavailable: %s", obj.uri, e)
        return None


def video_media(svc: Services, video: VideoRecord) -> str | None:
    """Something ``st.video`` can play: a local path, or a presigned URL for an S3 video."""
    uri = video.source_uri or ""
    if SourceUri.parse(uri).is_stored:
        from services.media import storage

        try:
            return storage.playable(svc.settings, uri)
        except StorageError as e:
            log.warning("cannot play %s: %s", uri, e)
            return None
    p = Path(uri) if uri else None
    return str(p) if p is not None and p.is_file() else None


def player_width(video: VideoRecord | None, portrait_px: int = 360) -> int | str:
    """Portrait phone videos at a readable size instead of the column's full width."""
    if video is not None and video.width and video.height and video.height > video.width:
        return portrait_px
    return "stretch"


STILL_EXTENSIONS = (".jpg", ".jpeg", ".png")


def media_kind(video: VideoRecord) -> str:
    """How the Video page shows the source: 'image' (a photo: shown as a picture), 'video' (a
    decodable video: a player), or 'none' (not read as a video: a failed or unprobed file gets no
    empty black player)."""
    uri = (video.source_uri or "").lower()
    if uri.endswith(STILL_EXTENSIONS) or video.frame_count == 1:
        return "image"
    if video.fps and video.duration_s and video.duration_s > 0:
        return "video"
    return "none"


def still_bytes(svc: Services, video: VideoRecord) -> bytes | None:
    """The photo itself (local path or stored object), or None when it is not reachable."""
    uri = video.source_uri or ""
    from services.media import storage

    try:
        src = SourceUri.parse(uri)
        if src.is_local:
            return storage.read_bytes(svc.settings, StoredObject(None, src.key))
        if src.is_s3:
            bucket, key = storage.parse_s3_uri(uri)
            return storage.read_bytes(svc.settings, StoredObject(bucket, key))
        p = Path(uri)
        return p.read_bytes() if uri and p.is_file() else None
    except (StorageError, OSError) as e:
        log.warning("cannot read the photo %s: %s", uri, e)
        return None
