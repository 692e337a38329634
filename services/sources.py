"""Videos the analyst can pick: the local library folder, stored videos (S3 or the local
storage folder) and uploads."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from services.errors import StorageError
from services.setup import Services
from settings import Settings

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts",
                    ".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class VideoSource:
    """A video the analyst can pick: ``uri`` is what ``analyze_source`` takes."""

    label: str
    uri: str
    origin: str  # library | s3 | upload
    size_bytes: int | None = None


def library_videos(settings: Settings) -> list[VideoSource]:
    """Videos (and stills) in the local library folder, sorted by name."""
    root = settings.library_dir
    if root is None:
        return []
    root = Path(root)
    if not root.is_dir():
        raise StorageError(f"the library folder {root} does not exist; create it or fix "
                           f"VA_LIBRARY_DIR")
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith("."):
            out.append(VideoSource(label=str(p.relative_to(root)), uri=str(p.resolve()),
                                   origin="library", size_bytes=p.stat().st_size))
    return out


def stored_videos(svc: Services) -> list[VideoSource]:
    """Videos under ``videos/`` of the storage: S3_BUCKET_VIDEOS when configured, else the local
    storage folder (where uploads go)."""
    from services import storage

    return [VideoSource(label=obj.key.removeprefix(storage.VIDEOS_PREFIX),
                        uri=storage.source_uri(svc.settings, obj),
                        origin="s3" if obj.bucket else "upload")
            for obj in storage.list_videos(svc.settings)]


def save_upload(svc: Services, filename: str, data: bytes) -> VideoSource:
    """Store an uploaded video through the storage module (S3 ``videos/`` or the local folder)."""
    from services import storage

    name = Path(filename).name
    obj = storage.put_video(svc.settings, name, io.BytesIO(data))
    return VideoSource(label=name, uri=storage.source_uri(svc.settings, obj), origin="upload",
                       size_bytes=len(data))
