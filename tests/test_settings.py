from pathlib import Path

import pytest

from settings import Settings, SettingsError


def test_defaults_are_offline_cpu():
    s = Settings.from_env({})
    assert s.frame_skip is None and s.sample_fps == 1.5 and s.device == "cpu"
    assert (s.detector, s.attributes, s.orientation, s.action, s.scene, s.embedder) == (
        "movenet", "age_gender", "keypoints", "posture_trees", "template", "minilm")
    assert s.embedded_database and not s.s3_enabled and not s.bedrock_enabled
    assert (s.models_dir / "movenet-multipose.onnx").is_file()


def test_seed_names_are_read():
    s = Settings.from_env({
        "POSTGRES_HOST": "db.local", "POSTGRES_PASSWORD": "p@ss/word", "POSTGRES_USER": "va",
        "POSTGRES_DB": "video", "S3_BUCKET_VIDEOS": "vids", "S3_BUCKET_HIGHLIGHTS": "hl",
        "AWS_BEDROCK_REGION": "us-west-2", "VA_FRAME_SKIP": "10", "VA_DATA_DIR": "/tmp/x",
    })
    assert s.database_url == "postgresql://va:p%40ss%2Fword@db.local:5432/video"
    assert s.s3_bucket_videos == "vids" and s.s3_bucket_highlights == "hl" and s.s3_enabled
    assert s.bedrock_region == "us-west-2" and s.bedrock_enabled
    assert s.frame_skip == 10 and s.data_dir == Path("/tmp/x")


def test_database_url_wins_over_parts():
    s = Settings.from_env({"DATABASE_URL": "postgresql://a@b/c", "POSTGRES_HOST": "x"})
    assert s.database_url == "postgresql://a@b/c"


@pytest.mark.parametrize("env, needle", [
    ({"VA_FRAME_SKIP": "ten"}, "VA_FRAME_SKIP"),
    ({"VA_FRAME_SKIP": "0"}, "VA_FRAME_SKIP"),
    ({"VA_SAMPLE_FPS": "0"}, "VA_SAMPLE_FPS"),
    ({"VA_SAMPLE_FPS": "fast"}, "VA_SAMPLE_FPS"),
    ({"VA_DEVICE": "tpu"}, "VA_DEVICE"),
    ({"VA_DETECTR": "yolo"}, "VA_DETECTR"),
])
def test_bad_values_name_the_variable(env, needle):
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_overrides_reject_unknown_fields():
    s = Settings.from_env({})
    assert s.with_overrides(frame_skip=5, device=None).frame_skip == 5
    with pytest.raises(SettingsError, match="unknown setting"):
        s.with_overrides(frame_skipp=5)


def test_sampling_rate_gives_the_frame_skip_and_frame_skip_wins():
    s = Settings.from_env({})
    # the seed's rate: every 20th frame of 30 fps video; 10 fps CCTV -> every 7th (1.43/s)
    assert [s.frame_skip_for(f) for f in (30.0, 29.97, 25.0, 10.0, 1.0)] == [20, 20, 17, 7, 1]
    assert Settings.from_env({"VA_SAMPLE_FPS": "3"}).frame_skip_for(30.0) == 10
    both = Settings.from_env({"VA_SAMPLE_FPS": "3", "VA_FRAME_SKIP": "4"})
    assert both.frame_skip_for(30.0) == 4 and both.frame_skip_for(10.0) == 4


def test_every_field_has_its_variable():
    """A new field is a new VA_<FIELD> variable, with no list to update beside it."""
    from dataclasses import fields

    from settings import SEED_FIELDS

    for f in fields(Settings):
        if f.name in SEED_FIELDS:
            continue
        raw = {"bool": "1", "int": "5", "float": "2.5"}.get(str(f.type).split("|")[0].strip(),
                                                           f.metadata.get("example") or
                                                           f.metadata.get("choices", ("cpu",))[0])
        s = Settings.from_env({"VA_" + f.name.upper(): raw})
        got = getattr(s, f.name)
        assert str(got) in (raw, "True", str(Path(raw))), (f.name, got)
