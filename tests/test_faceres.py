"""The 'faceres' attributes backend on real photos and clips (../shared/testdata)."""
import pytest

import attr_support as S
import conftest
from pipeline.errors import BackendUnavailable


@pytest.fixture(scope="module")
def estimator():
    from pipeline.backends.faceres import load_faceres
    from settings import Settings

    path = conftest.SHARED_MODELS / "faceres.onnx"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return load_faceres(Settings(faceres_path=path))


@pytest.mark.parametrize("rel", sorted(S.PHOTO_TRUTH))
def test_photo_gender_and_age(estimator, rel):
    S.assert_photo_reads_right(estimator, rel)


@pytest.mark.parametrize("rel,n_male,n_female", [
    ("clips/intel/face-demographics-walking.mp4", 1, 1),
    ("clips/intel/classroom.mp4", 3, 1),
])
def test_clip_tracks_right_or_unknown(estimator, rel, n_male, n_female):
    S.assert_genders_right_or_unknown(S.clip_track_genders(estimator, rel), n_male, n_female)


def test_missing_path_names_the_setting(tmp_path):
    from pipeline.backends.faceres import load_faceres
    from settings import Settings

    with pytest.raises(BackendUnavailable, match="VA_FACERES_PATH"):
        load_faceres(Settings())
    with pytest.raises(BackendUnavailable, match="VA_FACERES_PATH"):
        load_faceres(Settings(faceres_path=tmp_path / "nope.onnx"))


def test_unreadable_weights(tmp_path):
    from pipeline.backends.faceres import load_faceres
    from settings import Settings

    bad = tmp_path / "faceres.onnx"
    bad.write_text("not a model")
    with pytest.raises(BackendUnavailable) as e:
        load_faceres(Settings(faceres_path=bad))
    assert "\n" not in str(e.value) and "VA_FACERES_PATH" in str(e.value)
