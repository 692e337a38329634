"""The vocabularies the pages show come from the Enums: one list each, every member coloured."""
from pipeline.records import Action, AgeGroup, EventType, Gender, JobStatus, ObjectClass
from services import vocab


def test_filter_lists_follow_the_enums():
    assert vocab.ACTIONS == tuple(a.value for a in Action)
    assert vocab.EVENT_TYPES == tuple(t.value for t in EventType)
    # incidents only: not the person rows, not the object tracks
    assert vocab.HIGHLIGHT_TYPES == tuple(t.value for t in EventType
                                          if t not in (EventType.PERSON, EventType.OBJECT))
    assert vocab.OBJECT_CLASSES == tuple(c.value for c in ObjectClass)
    assert "bicycle" in vocab.OBJECT_CLASSES and "person" not in vocab.OBJECT_CLASSES
    assert vocab.GENDERS == ("female", "male", "unknown")
    assert vocab.AGE_GROUPS == tuple(a.value for a in AgeGroup)


def test_every_member_has_a_colour():
    assert set(vocab.ACTION_COLOURS) == set(vocab.ACTIONS)
    assert set(vocab.EVENT_COLOURS) == set(vocab.EVENT_TYPES)
    assert set(vocab.GENDER_COLOURS) == set(vocab.GENDERS)


def test_statuses_split_into_active_and_final():
    assert set(vocab.ACTIVE) | set(vocab.FINAL) == set(JobStatus)
    assert JobStatus.QUEUED in vocab.ACTIVE and not set(vocab.ACTIVE) & set(vocab.FINAL)
