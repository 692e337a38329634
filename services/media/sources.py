"""Videos the analyst can pick: the local library folder, stored videos (S3 or the local
storage folder) and uploads."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from services.errors import StorageError
from services.setup import Services
from services.media.source_uri import SourceUri
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

    @property
    def is_upload(self) -> bool:
        """A file uploaded to the workbench (one an admin may delete)."""
        return self.origin == "upload" and SourceUri.parse(self.uri).is_upload


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
    from services.media import storage

    objs = storage.list_videos(svc.settings)
    names = [obj.key.rsplit("/", 1)[-1] for obj in objs]
    out = []
    for obj, name in zip(objs, names):
        rel = obj.key.removeprefix(storage.VIDEOS_PREFIX)
        # Uploads live under videos/{content id}/{name}: the label is the name, with the start
        # of the content id only when two different files share it.
        label = name if names.count(name) == 1 or "/" not in rel else \
            f"{name} ({rel.split('/', 1)[0][:8]})"
        out.append(VideoSource(label=label, uri=storage.source_uri(svc.settings, obj),
                               origin="s3" if obj.bucket else "upload"))
    return out


def check_upload(name: str, data: bytes) -> None:
    """Refuse, before anything is stored or queued, an upload that is not a video or photo the
    engine can open (a text file named bad.mp4). The reason names the file, never a server
    path."""
    import tempfile

    from pipeline.errors import PipelineError
    from pipeline.sampling import probe_video

    with tempfile.TemporaryDirectory(prefix="va-check-") as tmp:
        path = Path(tmp) / f"upload{Path(name).suffix.lower()}"
        path.write_bytes(data)
        try:
            probe_video(path)
        except PipelineError as e:
            raise StorageError(
                f"{name} is not a video or photo the workbench can read: "
                f"{_why(str(e), str(path), tmp)}; nothing was stored. Upload a video (.mp4, "
                f".avi, .mov, .mkv, ...) or a photo (.jpg, .png)") from e


def _why(message: str, path: str, tmp: str) -> str:
    """The decoder's own reason out of the engine's message, without the engine's advice and
    the path (the upload message gives its own: once, with no brackets in brackets)."""
    text = " ".join(message.replace(path, "").replace(tmp, "").split())
    text = text.split("; give ")[0]
    head, sep, inner = text.partition("is not a readable video (")
    if sep:
        text = inner.split("; it may be ")[0].rstrip(")")
    else:
        text = "it " + text.removeprefix("input").strip()
    text = text.strip(" ;")
    return (text[:1].lower() + text[1:])[:200] or "it cannot be opened"


def save_upload(svc: Services, filename: str, data: bytes, *, actor) -> VideoSource:
    """Store an uploaded video through the storage module (S3 ``videos/`` or the local folder).
    Analysts and admins only (an upload is the first half of a launch)."""
    from services.access import access
    from services.media import storage

    access.require(svc.settings, actor, access.Role.ANALYST)

    name = Path(filename).name
    check_upload(name, data)
    obj = storage.put_video(svc.settings, name, io.BytesIO(data))
    return VideoSource(label=name, uri=storage.source_uri(svc.settings, obj), origin="upload",
                       size_bytes=len(data))
