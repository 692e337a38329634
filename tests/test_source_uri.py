"""services/media/source_uri.py: the one parser and renderer of a video's source."""
import pytest

from services.media.source_uri import Scheme, SourceUri


@pytest.mark.parametrize("uri, scheme, bucket, key, name", [
    ("s3://bucket/videos/a.mp4", Scheme.S3, "bucket", "videos/a.mp4", "a.mp4"),
    ("local:videos/b.avi", Scheme.LOCAL, None, "videos/b.avi", "b.avi"),
    ("/data/c.mkv", Scheme.PATH, None, "/data/c.mkv", "c.mkv"),
])
def test_parse_and_render_round_trip(uri, scheme, bucket, key, name):
    src = SourceUri.parse(uri)
    assert (src.scheme, src.bucket, src.key, src.name) == (scheme, bucket, key, name)
    assert str(src) == uri
    assert src.is_stored is (scheme is not Scheme.PATH)


def test_uploads_are_local_keys_under_videos():
    assert SourceUri.parse("local:videos/x.mp4").is_upload
    assert not SourceUri.parse("local:other/x.mp4").is_upload
    assert not SourceUri.parse("s3://b/videos/x.mp4").is_upload
    assert str(SourceUri.s3("b", "k/x.mp4")) == "s3://b/k/x.mp4"
    assert str(SourceUri.local("videos/x.mp4")) == "local:videos/x.mp4"
