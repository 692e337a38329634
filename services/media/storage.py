"""Storage of videos and highlight frames: a local folder by default, S3 (boto3) when configured.

* Uploaded videos live under ``videos/{content id}/{name}`` (the first 16 hex digits of the
  file's SHA-256): two different files with one name never share a key, and uploading the same
  file again finds the same key. In ``S3_BUCKET_VIDEOS`` or ``{data_dir}/storage/videos``.
* Highlight frames are keyed by the video's id and the run (attempt) that made them:
  ``highlights/{video_id}/run-{run_id}/{timestamp}s_{action}.jpg`` in ``S3_BUCKET_HIGHLIGHTS`` or
  ``{data_dir}/storage/highlights``. A re-run writes beside the frames the stored events point
  to; the switch happens with the events (``services.jobs.ingest``). The returned ``StoredObject``
  (bucket, key) is what ``db_event`` records (bucket ``None`` = the local folder).
* ``settings.s3_endpoint_url`` points boto3 at an S3-compatible store (MinIO, moto...).
* Names that are ``.`` or ``..``, absolute paths, separators or control characters raise
  ``InvalidName`` (``a..b.mp4`` is a plain name).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from pipeline.progress import Stage
from pipeline.records import RunProgress
from db.records import StoredObject
from services.errors import InvalidName, StorageError
from services.media.source_uri import SourceUri

log = logging.getLogger("va.services.media.storage")

VIDEOS_PREFIX = "videos/"
HIGHLIGHTS_PREFIX = "highlights/"
MAX_NAME_CHARS = 255
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".jpg",
                  ".jpeg", ".png"}


def validate_name(name: str, what: str = "name") -> str:
    """A single path component that is safe as a file name and an S3 key part."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidName(f"the {what} is empty; give a file name such as clip.mp4")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidName(f"the {what} has {len(name)} characters; use at most {MAX_NAME_CHARS}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise InvalidName(f"the {what} {name!r} contains control characters; rename the file")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise InvalidName(f"the {what} {name!r} is an absolute path; give a bare file name")
    if "/" in name or "\\" in name:
        raise InvalidName(f"the {what} {name!r} contains a path separator; give a bare file name")
    if name.strip() in (".", ".."):
        raise InvalidName(f"the {what} {name!r} is not a file name; give a bare file name")
    return name


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key). The key's parts are checked like names."""
    src = SourceUri.parse(uri)
    if not src.is_s3:
        raise InvalidName(f"{uri!r} is not an s3:// address; use s3://bucket/key")
    bucket, key = src.bucket, src.key
    if not bucket or not key:
        raise InvalidName(f"{uri!r} needs a bucket and a key, as in s3://bucket/videos/clip.mp4")
    for part in key.split("/"):
        validate_name(part, "S3 key part")
    return bucket, key


def highlight_prefix(video_id: int, run_id: int) -> str:
    """Where one run (attempt) of one video keeps its highlight frames."""
    return f"{HIGHLIGHTS_PREFIX}{int(video_id)}/run-{int(run_id)}/"


def highlight_key(video_id: int, run_id: int, t_s: float, action: str) -> str:
    """The seed's ``{timestamp}s_{action}.jpg`` inside the video's and run's prefix."""
    action = validate_name(str(action) or "event", "action")
    return f"{highlight_prefix(video_id, run_id)}{float(t_s):.1f}s_{action}.jpg"


CONTENT_ID_HEX = 16


def content_id(path: Path) -> str:
    """The first 16 hex digits of the file's SHA-256: an upload's folder under ``videos/``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:CONTENT_ID_HEX]


def video_key(name: str, cid: str) -> str:
    validate_name(name, "video name")
    return f"{VIDEOS_PREFIX}{cid}/{name}"


ProgressFn = Callable[[RunProgress], None]


class Storage:
    """One storage for the process; thread-safe (boto3 clients are)."""

    def __init__(self, settings):
        self.settings = settings
        self.root = Path(settings.data_dir) / "storage"
        self._client = None
        self._lock = threading.Lock()

    # --- S3 plumbing -------------------------------------------------------------------------

    @property
    def s3(self):
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3", endpoint_url=self.settings.s3_endpoint_url,
                    region_name=self.settings.aws_region,
                    config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                  connect_timeout=5, read_timeout=60))
            return self._client

    def _s3_error(self, e: Exception, what: str) -> StorageError:
        from botocore.exceptions import (
            ClientError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError,
        )

        if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
            return StorageError(f"no AWS credentials for {what}; set AWS_ACCESS_KEY_ID and "
                                f"AWS_SECRET_ACCESS_KEY (or an instance role / AWS_PROFILE)")
        if isinstance(e, EndpointConnectionError):
            return StorageError(f"cannot reach S3 for {what} ({e}); check S3_ENDPOINT_URL and "
                                f"the network")
        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return StorageError(f"{what} does not exist; check the key (videos are under "
                                    f"{VIDEOS_PREFIX}{{name}})")
            if code == "NoSuchBucket":
                return StorageError(f"the bucket of {what} does not exist; check "
                                    f"S3_BUCKET_VIDEOS / S3_BUCKET_HIGHLIGHTS")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403",
                        "ExpiredToken", "InvalidToken", "Forbidden"):
                return StorageError(f"S3 refused {what} ({code}); check AWS_ACCESS_KEY_ID / "
                                    f"AWS_SECRET_ACCESS_KEY and that they may use the bucket")
            return StorageError(f"S3 failed on {what} ({code or e}); check the bucket settings")
        return StorageError(f"S3 failed on {what} ({type(e).__name__}: {e})")

    def _call(self, what: str, fn, *args, **kw):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kw)
        except (ClientError, BotoCoreError) as e:
            raise self._s3_error(e, what) from e

    # --- videos ------------------------------------------------------------------------------

    @property
    def videos_in_s3(self) -> bool:
        return bool(self.settings.s3_bucket_videos)

    @property
    def highlights_in_s3(self) -> bool:
        return bool(self.settings.s3_bucket_highlights)

    def list_videos(self) -> list[str]:
        """Keys under ``videos/`` without the prefix (``{content id}/{name}``, or ``{name}`` as
        stored before uploads had their own folder), sorted."""
        if self.videos_in_s3:
            names: list[str] = []
            paginator = self.s3.get_paginator("list_objects_v2")
            pages = self._call(f"s3://{self.settings.s3_bucket_videos}/{VIDEOS_PREFIX}", lambda: list(
                paginator.paginate(Bucket=self.settings.s3_bucket_videos, Prefix=VIDEOS_PREFIX)))
            for page in pages:
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(VIDEOS_PREFIX):]
                    if name and name.count("/") <= 1 and not name.endswith("/"):
                        names.append(name)
            return sorted(names)
        folder = self.root / "videos"
        if not folder.is_dir():
            return []
        found = [p for p in folder.iterdir() if p.is_file()]
        found += [q for p in folder.iterdir() if p.is_dir() for q in p.iterdir() if q.is_file()]
        return sorted(p.relative_to(folder).as_posix() for p in found
                      if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."))

    def video_uri(self, name: str) -> str:
        validate_name(name, "video name")
        if self.videos_in_s3:
            return f"s3://{self.settings.s3_bucket_videos}/{VIDEOS_PREFIX}{name}"
        return str(self.root / "videos" / name)

    def put_video(self, name: str, src: Path) -> str:
        """Store an (uploaded) video under ``videos/{content id}/{name}``; returns its source
        URI. Another file with the same name gets another key; nothing is replaced."""
        validate_name(name, "video name")
        src = Path(src)
        key = video_key(name, content_id(src))
        if self.videos_in_s3:
            self._call(f"s3://{self.settings.s3_bucket_videos}/{key}", self.s3.upload_file,
                       str(src), self.settings.s3_bucket_videos, key)
            return f"s3://{self.settings.s3_bucket_videos}/{key}"
        dest = self.root / key
        if dest.is_file():
            return str(dest)  # the same content under the same name: already stored
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{name}.part")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
        return str(dest)

    @contextmanager
    def fetch(self, source: str, on_progress: ProgressFn | None = None) -> Iterator[Path]:
        """A local path for ``source`` (``s3://bucket/key`` is downloaded to a temporary file,
        removed afterwards, with progress; a local path is used as it is)."""
        src = SourceUri.parse(source)
        if not src.is_s3:
            yield self._local_file(src)
            return
        bucket, key = parse_s3_uri(source)
        what = f"s3://{bucket}/{key}"
        head = self.head(bucket, key)
        total = int(head.get("ContentLength") or 0)
        suffix = Path(key).suffix if Path(key).suffix.lower() in VIDEO_SUFFIXES else ".mp4"
        tmpdir = Path(tempfile.mkdtemp(prefix="va-download-"))
        path = tmpdir / f"video{suffix}"
        done = [0]

        def callback(n: int) -> None:
            done[0] += n
            if on_progress is not None and total:
                on_progress(RunProgress(fraction=min(1.0, done[0] / total), stage=Stage.DOWNLOAD,
                                        frames_done=0, frames_total=0,
                                        message=f"{done[0]}/{total} bytes"))

        try:
            self._call(what, self.s3.download_file, bucket, key, str(path), Callback=callback)
            yield path
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def head(self, bucket: str, key: str) -> dict:
        """The object's metadata; a missing bucket is named as such (S3 answers a HEAD on a
        missing bucket with a bare 404, like a missing key)."""
        what = f"s3://{bucket}/{key}"
        try:
            return self._call(what, self.s3.head_object, Bucket=bucket, Key=key)
        except StorageError as e:
            from botocore.exceptions import ClientError

            cause = e.__cause__
            code = str(cause.response.get("Error", {}).get("Code", "")) \
                if isinstance(cause, ClientError) else ""
            if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                try:
                    self.s3.head_bucket(Bucket=bucket)
                except ClientError as be:
                    bcode = str(be.response.get("Error", {}).get("Code", ""))
                    if bcode in ("404", "NoSuchBucket", "NotFound"):
                        raise StorageError(
                            f"the bucket {bucket!r} does not exist (looking for {what}); check "
                            f"the bucket name, S3_BUCKET_VIDEOS and S3_ENDPOINT_URL") from be
            raise

    def _local_file(self, src: SourceUri) -> Path:
        """A ``local:`` key's file in the storage folder (no ".." leaves it), or the path."""
        if not src.is_local:
            return Path(src.key)
        for part in src.key.split("/"):
            validate_name(part, "key part")
        return self.root / src.key

    def check_source(self, source: str) -> None:
        """Raise ``StorageError``/``InvalidName`` when ``source`` cannot be read: a missing local
        file, a missing S3 bucket or key. Cheap: no download."""
        src = SourceUri.parse(source)
        if src.is_s3:
            self.head(*parse_s3_uri(source))
            return
        p = self._local_file(src)
        if not p.exists():
            raise StorageError(f"{p} does not exist; check the path")
        if not p.is_file():
            raise StorageError(f"{p} is not a file; give a video file")

    # --- highlights --------------------------------------------------------------------------

    def put_highlight(self, video_id: int, run_id: int, t_s: float, action: str,
                      src: Path) -> StoredObject:
        key = highlight_key(video_id, run_id, t_s, action)
        if self.highlights_in_s3:
            bucket = self.settings.s3_bucket_highlights
            self._call(f"s3://{bucket}/{key}", self.s3.upload_file, str(src), bucket, key,
                       ExtraArgs={"ContentType": "image/jpeg"})
            return StoredObject(bucket, key)
        dest = self.root / key
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        except OSError as e:  # a full disk (ENOSPC), a quota, a read-only folder
            dest.unlink(missing_ok=True)  # no half-written frame
            raise StorageError(_write_failed(dest, e)) from e
        return StoredObject(None, key)

    def read(self, obj: StoredObject) -> bytes:
        """The bytes of a stored frame (for the UI)."""
        if obj.bucket:
            what = f"s3://{obj.bucket}/{obj.key}"
            body = self._call(what, self.s3.get_object, Bucket=obj.bucket, Key=obj.key)["Body"]
            return body.read()
        for part in obj.key.split("/"):
            validate_name(part, "key part")
        path = self.root / obj.key
        if not path.is_file():
            raise StorageError(f"{path} does not exist; re-run the analysis of that video")
        return path.read_bytes()

    def delete(self, objs: list[StoredObject]) -> None:
        """Best-effort removal (old highlight frames a new run no longer uses)."""
        by_bucket: dict[str | None, list[str]] = {}
        for o in objs:
            by_bucket.setdefault(o.bucket, []).append(o.key)
        for bucket, keys in by_bucket.items():
            try:
                if bucket:
                    for i in range(0, len(keys), 1000):
                        self._call(f"s3://{bucket}", self.s3.delete_objects, Bucket=bucket,
                                   Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
                else:
                    for k in keys:
                        (self.root / k).unlink(missing_ok=True)
            except (StorageError, OSError) as e:
                log.warning("could not delete old highlight frames: %s", e)

    def delete_prefix(self, bucket_is_s3: bool, prefix: str) -> None:
        """Best-effort removal of every highlight frame under ``prefix`` (a failed or cancelled
        attempt's frames)."""
        try:
            if bucket_is_s3 and self.highlights_in_s3:
                bucket = self.settings.s3_bucket_highlights
                pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                          Prefix=prefix)
                keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
                self.delete([StoredObject(bucket, k) for k in keys])
            else:
                shutil.rmtree(self.root / prefix, ignore_errors=True)
        except Exception as e:  # noqa: BLE001 - clean-up only; the frames are unreferenced
            log.warning("could not remove the frames under %s: %s", prefix, e)


# --- module-level helpers (what the workbench and ingest call) --------------------------------

_stores: dict[tuple, Storage] = {}
_stores_lock = threading.Lock()


def _write_failed(dest: Path, err: OSError) -> str:
    import errno

    why = ("the disk is full" if err.errno in (errno.ENOSPC, errno.EDQUOT) else
           " ".join((err.strerror or type(err).__name__).split()))
    return (f"could not write {dest.name} to {dest.parent} ({why}); free space there (the data "
            f"folder, VA_DATA_DIR) and start the analysis again")


def get_storage(settings) -> Storage:
    """One ``Storage`` per storage configuration (its boto3 client is reused)."""
    key = (str(settings.data_dir), settings.s3_bucket_videos, settings.s3_bucket_highlights,
           settings.s3_endpoint_url, settings.aws_region)
    with _stores_lock:
        st = _stores.get(key)
        if st is None:
            st = _stores[key] = Storage(settings)
        return st


def list_videos(settings) -> list[StoredObject]:
    """Videos under ``videos/`` as stored objects (bucket None = the local folder)."""
    st = get_storage(settings)
    bucket = settings.s3_bucket_videos or None
    return [StoredObject(bucket, f"{VIDEOS_PREFIX}{n}") for n in st.list_videos()]


def put_video(settings, name: str, data) -> StoredObject:
    """Store an uploaded video (a path or a binary file object) under
    ``videos/{content id}/{name}``."""
    st = get_storage(settings)
    validate_name(name, "video name")
    if isinstance(data, (str, Path)):
        uri = st.put_video(name, Path(data))
    else:
        with tempfile.NamedTemporaryFile(prefix="va-upload-", suffix=Path(name).suffix,
                                         delete=False) as tmp:
            shutil.copyfileobj(data, tmp)
        try:
            uri = st.put_video(name, Path(tmp.name))
        finally:
            Path(tmp.name).unlink(missing_ok=True)
    if SourceUri.parse(uri).is_s3:
        return StoredObject(*parse_s3_uri(uri))
    return StoredObject(None, Path(uri).relative_to(st.root).as_posix())


def source_uri(settings, obj: StoredObject) -> str:
    """What ``services.jobs.ingest.analyze_source`` takes for a stored video."""
    if obj.bucket:
        return f"s3://{obj.bucket}/{obj.key}"
    return str(local_path(settings, obj.key))


def local_path(settings, key: str) -> Path:
    for part in key.split("/"):
        validate_name(part, "key part")
    return get_storage(settings).root / key


def read_bytes(settings, obj: StoredObject) -> bytes:
    return get_storage(settings).read(obj)


def playable(settings, uri: str, expires_s: int = 3600) -> str:
    """A local path or a presigned URL that a browser can play."""
    st = get_storage(settings)
    src = SourceUri.parse(uri)
    if src.is_local:
        path = local_path(settings, src.key)
        if not path.is_file():
            raise StorageError(f"{path} does not exist; upload the video again")
        return str(path)
    bucket, key = parse_s3_uri(uri)
    return st._call(uri, st.s3.generate_presigned_url, "get_object",
                    Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s)
