"""A video's source as the product spells it: ``s3://bucket/key`` (an object in S3),
``local:key`` (a key in the local storage folder) or a plain file path. ``SourceUri`` is the one
place that parses and renders these (tests/test_boundaries.py keeps it so)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath

S3_PREFIX = "s3://"
LOCAL_PREFIX = "local:"


class Scheme(str, Enum):
    S3 = "s3"
    LOCAL = "local"
    PATH = "path"


@dataclass(frozen=True)
class SourceUri:
    """``bucket`` is S3's only; ``key`` is the S3 key, the storage key of a ``local:`` URI or the
    file path. Parsing checks nothing else (``services.media.storage.parse_s3_uri`` checks names)."""

    scheme: Scheme
    key: str
    bucket: str | None = None

    @classmethod
    def parse(cls, uri: str) -> SourceUri:
        uri = str(uri)
        if uri.startswith(S3_PREFIX):
            bucket, _, key = uri[len(S3_PREFIX):].partition("/")
            return cls(Scheme.S3, key, bucket)
        if uri.startswith(LOCAL_PREFIX):
            return cls(Scheme.LOCAL, uri[len(LOCAL_PREFIX):])
        return cls(Scheme.PATH, uri)

    @classmethod
    def s3(cls, bucket: str, key: str) -> SourceUri:
        return cls(Scheme.S3, key, bucket)

    @classmethod
    def local(cls, key: str) -> SourceUri:
        return cls(Scheme.LOCAL, key)

    @property
    def is_s3(self) -> bool:
        return self.scheme is Scheme.S3

    @property
    def is_local(self) -> bool:
        return self.scheme is Scheme.LOCAL

    @property
    def is_path(self) -> bool:
        return self.scheme is Scheme.PATH

    @property
    def is_stored(self) -> bool:
        """In the product's storage (S3 or the local storage folder), not a file path."""
        return self.scheme is not Scheme.PATH

    @property
    def is_upload(self) -> bool:
        """A file uploaded to the workbench (the local storage folder's ``videos/``)."""
        return self.scheme is Scheme.LOCAL and self.key.startswith("videos/")

    @property
    def name(self) -> str:
        """The last part of the key or path."""
        return PurePosixPath(self.key).name

    def __str__(self) -> str:
        if self.scheme is Scheme.S3:
            return f"{S3_PREFIX}{self.bucket}/{self.key}"
        if self.scheme is Scheme.LOCAL:
            return f"{LOCAL_PREFIX}{self.key}"
        return self.key
