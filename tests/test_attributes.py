"""Per-track aggregation of age/gender (synthetic observation sequences)."""
from pipeline.attributes import summarize_attributes
from conftest import make_observation
from pipeline.records import Gender

KP0 = tuple((0.0, 0.0, 0.0) for _ in range(17))


def _obs(i, age=None, gender=Gender.UNKNOWN, score=None):
    return make_observation(i, i / 10, 1, xyxy=(0, 0, 10, 20), keypoints=KP0, age=age,
                            gender=gender, gender_score=score)


def test_median_age_and_majority_gender_with_share():
    obs = [_obs(0, 30, Gender.FEMALE, .9), _obs(1, 34, Gender.FEMALE, .8), _obs(2, 50, Gender.MALE, .8),
           _obs(3, 32, Gender.FEMALE, .9), _obs(4), _obs(5, 31, Gender.FEMALE, .95)]
    age, spread, gender, conf = summarize_attributes(obs)
    assert age == 32 and spread == 34 - 31
    assert gender is Gender.FEMALE and conf == 0.8


def test_unknown_without_enough_agreeing_frames():
    assert summarize_attributes([_obs(0), _obs(1, 40, Gender.MALE, .9), _obs(2)])[2] is Gender.UNKNOWN
    split = [_obs(0, 30, Gender.MALE, .9), _obs(1, 30, Gender.FEMALE, .9),
             _obs(2, 30, Gender.MALE, .9), _obs(3, 30, Gender.FEMALE, .9)]
    assert summarize_attributes(split)[2] is Gender.UNKNOWN
    assert summarize_attributes([_obs(0), _obs(1)]) == (None, None, Gender.UNKNOWN, None)
    assert summarize_attributes([]) == (None, None, Gender.UNKNOWN, None)


def test_a_still_image_needs_one_confident_frame():
    assert summarize_attributes([_obs(0, 36, Gender.FEMALE, .82)]) == (36.0, 0.0, Gender.FEMALE, 1.0)
