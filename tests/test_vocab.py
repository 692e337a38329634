"""The vocabularies the pages show come from the Enums: one list each, every member coloured."""
from pipeline.records import Action, AgeGroup, EventType, Gender, JobStatus
from services import vocab


def test_filter_lists_follow_the_enums():
    assert vocab.ACTIONS == tuple(a.value for a in Action)
    assert vocab.EVENT_TYPES == tuple(t.value for t in EventType)
    assert vocab.HIGHLIGHT_TYPES == tuple(t.value for t in EventType)[1:]
    assert vocab.GENDERS == ("female", "male", "unknown")
    assert vocab.AGE_GROUPS == tuple(a.value for a in AgeGroup)


def test_every_member_has_a_colour():
    assert set(vocab.ACTION_COLOURS) == set(vocab.ACTIONS)
    assert set(vocab.EVENT_COLOURS) == set(vocab.EVENT_TYPES)
    assert set(vocab.GENDER_COLOURS) == set(vocab.GENDERS)


def test_statuses_split_into_active_and_final():
    assert set(vocab.ACTIVE) | set(vocab.FINAL) == set(JobStatus)
    assert JobStatus.QUEUED in vocab.ACTIVE and not set(vocab.ACTIVE) & set(vocab.FINAL)
