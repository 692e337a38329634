"""Defect 1 (data loss): two different videos with one file name never share storage keys; a
re-run of one never deletes or overwrites the other's frames; a second upload with the same
name does not replace the first."""
from __future__ import annotations

import io

import pytest

from rel_support import CALM, FIGHT, copy_clip, events, fast, frame_files
from services.media import storage
from services.jobs.ingest import analyze_source

pytestmark = [pytest.mark.db, pytest.mark.slow]


def test_same_name_in_two_folders_keeps_both_frames(db_settings, tmp_path):
    s = fast(db_settings)
    a = copy_clip(FIGHT, tmp_path / "a" / "Clip.mp4")
    b = copy_clip(FIGHT, tmp_path / "b" / "Clip.mp4")
    va = analyze_source(str(a), s).video_id
    frames_a = frame_files(s, events(s, va))
    assert frames_a and all(frames_a.values()), "fi001 has a violent highlight frame"
    vb = analyze_source(str(b), s).video_id
    assert vb != va
    frames_b = frame_files(s, events(s, vb))
    assert frames_b and not set(frames_a) & set(frames_b)  # no shared key
    # b becomes another video and is analysed again: a's frames are untouched.
    copy_clip(CALM, b)
    analyze_source(str(b), s)
    assert frame_files(s, events(s, va)) == frames_a
    assert all(k.startswith(f"highlights/{va}/") for k in frames_a)


def test_second_upload_with_the_same_name_keeps_the_first(db_settings):
    first = storage.put_video(db_settings, "entrance.mp4", io.BytesIO(b"camera one"))
    second = storage.put_video(db_settings, "entrance.mp4", io.BytesIO(b"camera two"))
    assert first.key != second.key
    assert storage.read_bytes(db_settings, first) == b"camera one"
    assert storage.read_bytes(db_settings, second) == b"camera two"
    again = storage.put_video(db_settings, "entrance.mp4", io.BytesIO(b"camera one"))
    assert again == first  # the same file again: the same key, no copy
    assert sorted(o.key for o in storage.list_videos(db_settings)) == sorted([first.key, second.key])


@pytest.mark.s3
def test_second_s3_upload_with_the_same_name_keeps_the_first(s3_settings):
    first = storage.put_video(s3_settings, "entrance.mp4", io.BytesIO(b"camera one"))
    second = storage.put_video(s3_settings, "entrance.mp4", io.BytesIO(b"camera two"))
    assert first.key != second.key and first.bucket == second.bucket
    assert storage.read_bytes(s3_settings, first) == b"camera one"
    assert storage.read_bytes(s3_settings, second) == b"camera two"


def test_stored_uploads_are_labelled_by_name(db_settings):
    from types import SimpleNamespace

    from services.media.sources import stored_videos

    storage.put_video(db_settings, "entrance.mp4", io.BytesIO(b"camera one"))
    storage.put_video(db_settings, "entrance.mp4", io.BytesIO(b"camera two"))
    storage.put_video(db_settings, "lobby.mp4", io.BytesIO(b"lobby"))
    labels = sorted(v.label for v in stored_videos(SimpleNamespace(settings=db_settings)))
    assert labels[2] == "lobby.mp4"
    assert labels[0].startswith("entrance.mp4 (") and labels[1].startswith("entrance.mp4 (")
    assert labels[0] != labels[1]
