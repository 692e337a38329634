"""The thin service layer of the Streamlit workbench: the ONLY project module pages import.

Plain functions and small frozen records; no Streamlit here (``pages/_resources.py`` wraps the
factories in ``st.cache_resource``). It composes the real services: the database reads in
``db.queries`` (through ``services.database``), files in ``services.storage``, analyses through
``services.jobs`` (procrastinate workers) -> ``services.ingest.analyze_source``, and ``services.search`` /
``services.answer`` for questions. It adds no analysis logic of its own.
"""
from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from db.errors import DatabaseUnavailable as _DbUnavailable
from pipeline.errors import PipelineError
from pipeline.records import (
    Answer, Hit, JobStatus, SearchFilters, StoredEvent, StoredObject, TrackSummary, VideoRecord,
    mmss,
)
from services import database
from services.errors import ServiceError, StorageError
from services.jobs import (
    AnalysisOptions, DbJobStore, JobClient, NoQueue, QueueSnapshot, make_client,
)
from settings import Settings, SettingsError

log = logging.getLogger("va.workbench")

#: Problems the analyst can fix: pages show ``str(e)`` in ``st.error``, never a stack trace.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ServiceError, PipelineError, SettingsError, _DbUnavailable)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts",
                    ".jpg", ".jpeg", ".png")
ACTIVE = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.PROCESSING)
HIGHLIGHT_TYPES = ("falling", "collapse", "violent", "grabbing", "theft", "anomaly")
EVENT_TYPES = ("person",) + HIGHLIGHT_TYPES
ACTIONS = ("standing", "walking", "running", "sitting", "lying", "falling", "violent",
           "grabbing", "anomaly", "paying", "theft", "unknown")
GENDERS = ("female", "male", "unknown")
AGE_GROUPS = ("young", "middle", "old", "unknown")

__all__ = [
    "USER_ERRORS", "AnalysisOptions", "JobClient", "DbJobStore", "QueueSnapshot", "Services", "VideoSource",
    "Capabilities", "JobView", "HighlightItem", "TrackCard", "SearchView", "SearchFilters",
    "VideoRecord", "StoredEvent", "Hit", "Answer",
]


# --- formatting --------------------------------------------------------------------------------


# --- set-up ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Services:
    """What the pages share in a process: the settings, with the database opened and migrated
    (the pool and the storage client are cached per configuration by their own modules)."""

    settings: Settings


def load_settings() -> Settings:
    return Settings.from_env()


def settings_key(settings: Settings) -> str:
    """A stable cache key for ``st.cache_resource`` (Settings holds Paths, not hashed by it)."""
    return repr(settings)


def open_services(settings: Settings) -> Services:
    """Open the database (embedded PostgreSQL when none is configured) and migrate it; jobs left
    'processing' by a worker that is gone are marked failed (``mark_stale_jobs``)."""
    database.get_pool(settings)
    stale = database.mark_stale_jobs(settings)
    if stale:
        log.warning("marked %d stale job(s) failed: %s", len(stale), stale)
    return Services(settings)


def make_runner(services: Services) -> JobClient:
    """This process's job client: it enqueues and cancels; with ``VA_WORKERS=local`` (the
    default) it also runs a worker in this process (``services.jobs``)."""
    client = make_client(services.settings)
    _RUNNERS.append(client)
    return client


_RUNNERS: list[JobClient] = []


def shutdown_runners(timeout: float = 30.0) -> None:
    """Stop every local worker this process started (tests; the app's process exit)."""
    while _RUNNERS:
        _RUNNERS.pop().shutdown(timeout)


# --- capabilities ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """Backends the analyst may pick: heavy ones only when their weights/cloud are configured."""

    detector: tuple[str, ...]
    attributes: tuple[str, ...]
    orientation: tuple[str, ...]
    action: tuple[str, ...]
    scene: tuple[str, ...]
    devices: tuple[str, ...]
    bedrock: bool
    openai: bool
    vlm: bool
    s3_videos: bool
    library: bool
    notes: tuple[str, ...] = ()


def _cuda_available() -> bool:
    """A CUDA GPU torch can use. Machines with no NVIDIA device skip importing torch."""
    import shutil

    if not (Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi")):
        return False
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver reads as "no GPU"
        return False


def capabilities(settings: Settings, check_cuda: bool = True) -> Capabilities:
    s = settings
    faceres = s.faceres_path or (Path(s.models_dir) / "faceres.onnx")
    notes: list[str] = []
    if not s.bedrock_enabled and not s.openai_enabled:
        notes.append("Scene descriptions by Claude need Bedrock (set AWS_BEDROCK_REGION) or an "
                     "OpenAI-compatible VLM endpoint (VA_OPENAI_BASE_URL); without them, scenes "
                     "are described from what was detected (people, actions, positions).")
    if not s.vlm_path:
        notes.append("The paying and theft actions need the VLM action model (set VA_VLM_PATH); "
                     "pose rules find standing, walking, running, sitting, lying, falling, "
                     "violent, grabbing and anomaly only.")
    if not (s.bedrock_enabled or s.openai_enabled):
        notes.append("Search answers are written from the matching events (extractive); answers "
                     "by Claude need AWS_BEDROCK_REGION or VA_OPENAI_BASE_URL.")
    return Capabilities(
        detector=("movenet",) + (("yolo",) if s.detector_weights else ()),
        attributes=("age_gender",) + (("faceres",) if Path(faceres).is_file() else ())
        + (("mivolo",) if s.mivolo_checkpoint else ()),
        orientation=("keypoints",) + (("mebow",) if s.mebow_cfg else ()),
        action=("pose_rules",) + (("vlm",) if s.vlm_path else ()),
        scene=("template",) + (("bedrock",) if s.bedrock_enabled else ())
        + (("openai",) if s.openai_enabled else ()),
        devices=("cpu",) + (("cuda",) if check_cuda and _cuda_available() else ()),
        bedrock=s.bedrock_enabled, openai=s.openai_enabled, vlm=bool(s.vlm_path),
        s3_videos=bool(s.s3_bucket_videos), library=s.library_dir is not None,
        notes=tuple(notes),
    )


# --- video sources -----------------------------------------------------------------------------


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


# --- jobs and videos ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobView:
    """A video's job state as the Analyze page shows it."""

    video_id: int
    name: str
    status: str  # pending | queued | processing | completed | failed | cancelled
    percent: float
    stage: str
    frames_done: int | None
    frames_total: int | None
    eta_s: float | None
    error: str | None
    n_events: int | None
    active: bool
    attempts: int = 0
    worker: str | None = None

    @property
    def progress_text(self) -> str:
        parts = [f"{self.percent:.0f}%", self.stage or self.status]
        if self.frames_total:
            parts.append(f"frames {self.frames_done or 0}/{self.frames_total}")
        if self.active and self.eta_s is not None:
            parts.append(f"ETA {mmss(self.eta_s)}")
        return " · ".join(parts)


def list_videos(settings: Settings, statuses: Sequence[str] = ()) -> list[VideoRecord]:
    from db import queries

    with database.pooled(settings) as conn:
        return queries.list_videos(conn, statuses=list(statuses))


def get_video(settings: Settings, video_id: int) -> VideoRecord | None:
    from db import queries

    with database.pooled(settings) as conn:
        return queries.get_video(conn, int(video_id))


def job_views(settings: Settings, snapshot: QueueSnapshot | None = None,
              limit: int = 50) -> list[JobView]:
    """All jobs, newest first, as stored in ``db_video`` ('queued' included). Jobs whose worker
    stopped heartbeating are retried or failed first (at most every few seconds per process), so
    a running app never keeps showing a dead job as 'processing'."""
    _recover_throttled(settings)
    out = []
    for v in list_videos(settings)[:limit]:
        status = v.status.value
        queued = v.status is JobStatus.QUEUED
        out.append(JobView(
            video_id=v.video_id, name=v.name, status=status,
            percent=0.0 if queued else float(v.progress),
            stage=v.stage or ("waiting in the queue" if queued else status),
            frames_done=v.frames_done, frames_total=v.frames_total, eta_s=v.eta_s,
            error=v.error_message, n_events=v.n_events, active=v.status in ACTIVE,
            attempts=v.attempts, worker=v.worker))
    return out


_RECOVERY: dict[str, JobClient] = {}


def _recover_throttled(settings: Settings) -> None:
    key = settings_key(settings)
    client = _RECOVERY.get(key)
    if client is None:
        client = _RECOVERY.setdefault(key, JobClient(settings, queue=NoQueue()))
    client.recover()


def start_analysis(runner: JobClient, source: VideoSource | str,
                   options: AnalysisOptions | None = None) -> int:
    """Queue an analysis for a worker; returns the video's id. Bad names fail here, at once."""
    from services.ingest import source_name

    uri = source.uri if isinstance(source, VideoSource) else str(source)
    return runner.submit(uri, options or AnalysisOptions(), name=source_name(uri))


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventQuery:
    """Filters of the Events/Highlights pages (empty = everything)."""

    video_ids: tuple[int, ...] = ()
    event_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    genders: tuple[str, ...] = ()
    age_groups: tuple[str, ...] = ()
    t_min_s: float | None = None
    t_max_s: float | None = None

    def to_filters(self) -> SearchFilters:
        return SearchFilters(video_ids=tuple(self.video_ids), t_min_s=self.t_min_s,
                             t_max_s=self.t_max_s, event_types=tuple(self.event_types),
                             actions=tuple(self.actions), genders=tuple(self.genders),
                             age_groups=tuple(self.age_groups))


def list_events(settings: Settings, query: EventQuery | None = None,
                limit: int = 20000) -> list[StoredEvent]:
    from db import queries

    with database.pooled(settings) as conn:
        return queries.list_events(conn, (query or EventQuery()).to_filters(), limit=limit)


EVENT_TABLE_COLUMNS = [
    "event_id", "video_id", "video", "time", "t_s", "frame_number", "event_type", "obj_id",
    "action", "confidence", "age_group", "age", "gender", "orientation", "orientation_deg",
    "bbox_x", "bbox_y", "bbox_width", "bbox_height", "scene", "thumbnail",
]


def events_table(events: Iterable[StoredEvent], video_names: dict[int, str]) -> pd.DataFrame:
    """The event table the Events page shows, filters and downloads (one row per event)."""
    rows = []
    for e in events:
        a = dict(e.attributes)
        orient = a.get("orientation")
        rows.append({
            "event_id": e.event_id, "video_id": e.video_id,
            "video": video_names.get(e.video_id, f"video {e.video_id}"),
            "time": mmss(e.t_s), "t_s": round(e.t_s, 2), "frame_number": e.frame_number,
            "event_type": e.event_type, "obj_id": e.obj_id if e.obj_id is not None
            else a.get("obj_id"), "action": e.action, "confidence": round(e.confidence, 3),
            "age_group": e.age_group, "age": a.get("age"), "gender": e.gender,
            "orientation": None if orient is None else int(orient),
            "orientation_deg": a.get("orientation_deg"),
            "bbox_x": e.bbox[0], "bbox_y": e.bbox[1], "bbox_width": e.bbox[2],
            "bbox_height": e.bbox[3], "scene": a.get("scene_analysis"),
            "thumbnail": (StoredObject(e.thumbnail_bucket, e.thumbnail_key).uri
                          if e.thumbnail_key else None),
        })
    df = pd.DataFrame(rows, columns=EVENT_TABLE_COLUMNS)
    return df.astype({"obj_id": "Int64", "orientation": "Int64"}) if not df.empty else df


def events_csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode("utf-8")


def video_names(settings: Settings) -> dict[int, str]:
    return {v.video_id: v.name for v in list_videos(settings)}


# --- highlights and frames ---------------------------------------------------------------------


@dataclass(frozen=True)
class HighlightItem:
    event: StoredEvent
    video_name: str

    @property
    def caption(self) -> str:
        track = f"track {self.event.obj_id}" if self.event.obj_id is not None else "no track"
        return f"{self.event.event_type} · {mmss(self.event.t_s)} · {track}"

    @property
    def frame(self) -> StoredObject | None:
        e = self.event
        return StoredObject(e.thumbnail_bucket, e.thumbnail_key) if e.thumbnail_key else None


def highlights(settings: Settings, video_ids: Sequence[int] = (),
               event_types: Sequence[str] = ()) -> list[HighlightItem]:
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
    from services import storage

    try:
        return storage.read_bytes(svc.settings, obj)
    except StorageError as e:
        log.warning("frame %s unavailable: %s", obj.uri, e)
        return None


def get_event(settings: Settings, event_id: int) -> StoredEvent | None:
    from db import queries

    with database.pooled(settings) as conn:
        rows = queries.get_events(conn, [int(event_id)])
    return rows[0] if rows else None


def video_media(svc: Services, video: VideoRecord) -> str | None:
    """Something ``st.video`` can play: a local path, or a presigned URL for an S3 video."""
    uri = video.source_uri or ""
    if uri.startswith(("s3://", "local:")):
        from services import storage

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


# --- tracks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackCard:
    """A person (track) of one video as the Events page shows it."""

    video_id: int
    summary: TrackSummary
    age_group: str
    action_history: tuple[tuple[float, str], ...]  # (t_s, action) at each change
    thumbnails: tuple[StoredObject, ...] = ()  # the track's highlight frames
    samples: tuple[tuple[int, tuple[float, float, float, float]], ...] = ()  # (frame, bbox xywh)

    @property
    def title(self) -> str:
        s = self.summary
        return f"Track {s.obj_id} · {mmss(s.first_t_s)}–{mmss(s.last_t_s)}"

    @property
    def age_text(self) -> str:
        s = self.summary
        if s.age is None:
            return "age unknown (face too small or unclear)"
        spread = f" ± {s.age_spread / 2:.0f}" if s.age_spread else ""
        return f"about {s.age:.0f}{spread} years ({self.age_group})"

    @property
    def gender_text(self) -> str:
        s = self.summary
        g = getattr(s.gender, "value", s.gender)
        if g == "unknown":
            return "gender unknown"
        conf = f" ({s.gender_confidence:.0%} of frames)" if s.gender_confidence else ""
        return f"{g}{conf}"


def track_cards(settings: Settings, video_id: int) -> list[TrackCard]:
    from db import queries

    with database.pooled(settings) as conn:
        tracks = queries.list_tracks(conn, int(video_id))
        events = queries.list_events(conn, SearchFilters(video_ids=(int(video_id),)))
    by_track: dict[int, list[StoredEvent]] = {}
    for e in events:
        if e.obj_id is not None:
            by_track.setdefault(int(e.obj_id), []).append(e)
    cards = []
    for t in tracks:
        evs = sorted(by_track.get(int(t.obj_id), []), key=lambda e: e.t_s)
        history: list[tuple[float, str]] = []
        for e in evs:
            if e.event_type == "person" and (not history or history[-1][1] != e.action):
                history.append((e.t_s, e.action))
        thumbs = tuple(StoredObject(e.thumbnail_bucket, e.thumbnail_key)
                       for e in evs if e.thumbnail_key)[:4]
        people = [e for e in evs if e.event_type == "person" and e.bbox[2] > 0]
        picks = [people[round(i * (len(people) - 1) / 2)] for i in range(3)] if people else []
        samples = tuple(dict.fromkeys((e.frame_number, e.bbox) for e in picks))
        cards.append(TrackCard(video_id=int(video_id), summary=t, age_group=t.age_group.value,
                               action_history=tuple(history), thumbnails=thumbs,
                               samples=samples))
    return cards


def person_crops(video: VideoRecord, card: TrackCard, height_px: int = 160) -> list[bytes]:
    """JPEG crops of the track's person at a few of its frames (start, middle, end), read from
    the source video when it is a local file; [] otherwise (S3 sources show highlight frames)."""
    uri = video.source_uri or ""
    path = Path(uri)
    if not card.samples or uri.startswith(("s3://", "local:")) or not path.is_file():
        return []
    from PIL import Image

    from pipeline.sampling import probe_video, read_frames

    try:
        info = probe_video(path)
        out = []
        for frame_number, (x, y, w, h) in card.samples:
            frames = read_frames(path, frame_number, frame_number, 1, info=info)
            if not frames:
                continue
            img = frames[0].image
            H, W = img.shape[:2]
            pad_w, pad_h = 0.1 * w, 0.05 * h
            x0, y0 = max(0, int(x - pad_w)), max(0, int(y - pad_h))
            x1, y1 = min(W, int(x + w + pad_w)), min(H, int(y + h + pad_h))
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            crop = Image.fromarray(img[y0:y1, x0:x1])
            crop.thumbnail((height_px * 2, height_px))
            buf = io.BytesIO()
            crop.save(buf, format="JPEG", quality=85)
            out.append(buf.getvalue())
        return out
    except PipelineError as e:  # the file changed or went away since the analysis
        log.warning("no person crops from %s: %s", path, e)
        return []


# --- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchView:
    query: str
    hits: tuple[Hit, ...]
    answer: Answer | None
    segments: tuple[tuple[str, int | None], ...] = ()  # answer text split at its citations


_CITE = re.compile(r"\[event (\d+)[^\]]*\]")


def split_citations(text: str) -> tuple[tuple[str, int | None], ...]:
    """The answer as (text, None) and (citation label, event_id) pieces, in order."""
    out: list[tuple[str, int | None]] = []
    pos = 0
    for m in _CITE.finditer(text):
        if m.start() > pos:
            out.append((text[pos:m.start()], None))
        out.append((m.group(0), int(m.group(1))))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], None))
    return tuple(out)


class SearchEmbedder:
    """The UI's own query embedder (the worker keeps its own for the jobs), serialised by a
    lock so several browser sessions can search at once; same ``name``/``dim`` as the model."""

    def __init__(self, inner):
        import threading

        self._inner = inner
        self._lock = threading.Lock()
        self.name = inner.name
        self.dim = inner.dim

    def embed(self, texts):
        with self._lock:
            return self._inner.embed(texts)


def load_search_embedder(settings: Settings) -> SearchEmbedder:
    """Build the query embedder (held in ``st.cache_resource`` by the pages)."""
    from pipeline.backends.registry import load_backend

    return SearchEmbedder(load_backend("embedder", settings.embedder, settings))


def run_search(settings: Settings, query: str, filters: SearchFilters | None = None,
               top_k: int = 10, with_answer: bool = True,
               embedder: SearchEmbedder | None = None) -> SearchView:
    from services import search as search_service

    hits = tuple(search_service.search(query, filters or SearchFilters(), top_k,
                                       settings=settings, embedder=embedder))
    answer = None
    if with_answer:
        from services import answer as answer_service

        answer = answer_service.answer(query, list(hits), settings=settings)
    return SearchView(query=query, hits=hits, answer=answer,
                      segments=split_citations(answer.text) if answer else ())
