"""services/media/storage.py against moto's S3 server (real S3 API on loopback) and the local folder."""
from __future__ import annotations

import io

import pytest

from db.records import StoredObject
from services.media import storage
from services.errors import InvalidName, StorageError

pytestmark = pytest.mark.s3


@pytest.mark.parametrize("name", ["../x.mp4", "a/../../b.mp4", "/etc/passwd", "C:\\x.mp4",
                                  "a\x00.mp4", "a\nb.mp4", "a\x1b[31m.mp4", "", "   ", "a/b.mp4",
                                  "x" * 300])
def test_bad_names_are_refused(name):
    with pytest.raises(InvalidName):
        storage.validate_name(name)


@pytest.mark.parametrize("name", ["clip.mp4", "<img src=x onerror=alert(1)>.mp4", "x'; DROP TABLE db_video; --.mp4",
                                  "caf\u00e9 (1).mov", "a..b.mp4", "..hidden.mp4"])
def test_odd_but_safe_names_pass(name):
    assert storage.validate_name(name) == name
    assert storage.highlight_key(7, 3, 4.25, "falling") == "highlights/7/run-3/4.2s_falling.jpg"


def test_s3_video_roundtrip_with_progress(s3_settings, tmp_path):
    data = b"\x00\x01fake-video" * 50_000
    obj = storage.put_video(s3_settings, "clip.mp4", io.BytesIO(data))
    import hashlib

    cid = hashlib.sha256(data).hexdigest()[:16]
    assert obj == StoredObject(s3_settings.s3_bucket_videos, f"videos/{cid}/clip.mp4")
    assert [o.key for o in storage.list_videos(s3_settings)] == [f"videos/{cid}/clip.mp4"]
    uri = storage.source_uri(s3_settings, obj)
    seen = []
    st = storage.get_storage(s3_settings)
    with st.fetch(uri, on_progress=seen.append) as path:
        assert path.read_bytes() == data
        kept = path
    assert not kept.exists()  # the temporary download is removed
    assert seen and seen[-1].fraction == 1.0 and seen[-1].stage == "download"
    assert storage.playable(s3_settings, uri).startswith(s3_settings.s3_endpoint_url)


def test_s3_highlights_go_under_video_id_and_run(s3_settings, tmp_path):
    jpg = tmp_path / "f.jpg"
    jpg.write_bytes(b"\xff\xd8jpeg")
    st = storage.get_storage(s3_settings)
    obj = st.put_highlight(12, 5, 4.3, "falling", jpg)
    assert obj == StoredObject(s3_settings.s3_bucket_highlights, "highlights/12/run-5/4.3s_falling.jpg")
    assert storage.read_bytes(s3_settings, obj) == b"\xff\xd8jpeg"
    st.delete([obj])
    with pytest.raises(StorageError, match="does not exist"):
        storage.read_bytes(s3_settings, obj)


def test_missing_key_and_bucket(s3_settings):
    st = storage.get_storage(s3_settings)
    with pytest.raises(StorageError, match="does not exist; check the key"):
        with st.fetch(f"s3://{s3_settings.s3_bucket_videos}/videos/nope.mp4"):
            pass
    with pytest.raises(StorageError, match="the bucket 'no-such-bucket-va' does not exist"):
        with st.fetch("s3://no-such-bucket-va/videos/x.mp4"):
            pass
    with pytest.raises(InvalidName):
        with st.fetch("s3://bucket/videos/../secret.mp4"):
            pass


def test_wrong_credentials(s3_settings, monkeypatch):
    from moto.core.authorization import enable_iam_authentication

    obj = storage.put_video(s3_settings, "c.mp4", io.BytesIO(b"abc"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    st = storage.Storage(s3_settings)  # a fresh client picks up the wrong keys
    with enable_iam_authentication():
        with pytest.raises(StorageError, match="S3 refused .*AWS_ACCESS_KEY_ID"):
            with st.fetch(storage.source_uri(s3_settings, obj)):
                pass


def test_unreachable_endpoint(db_settings):
    s = db_settings.with_overrides(s3_bucket_videos="b", s3_endpoint_url="http://127.0.0.1:9")
    with pytest.raises(StorageError, match="S3_ENDPOINT_URL|cannot reach"):
        storage.Storage(s).list_videos()


def test_local_storage_default(db_settings, tmp_path):
    src = tmp_path / "v.mp4"
    src.write_bytes(b"video")
    obj = storage.put_video(db_settings, "v.mp4", src)
    assert obj == StoredObject(None, f"videos/{storage.content_id(src)}/v.mp4")
    assert storage.list_videos(db_settings) == [obj]
    path = storage.source_uri(db_settings, obj)
    assert path.startswith(str(db_settings.data_dir)) and open(path, "rb").read() == b"video"
    h = storage.get_storage(db_settings).put_highlight(1, 1, 1.0, "collapse", src)
    assert h.bucket is None and storage.read_bytes(db_settings, h) == b"video"
    with pytest.raises(InvalidName):
        storage.read_bytes(db_settings, StoredObject(None, "highlights/../../etc/passwd"))
