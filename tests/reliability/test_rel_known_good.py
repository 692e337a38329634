"""The fault campaign's cases that were already handled (issue 10): kept covered, cheaply. Bad
inputs, odd formats and timing, hostile names, traversal, unknown settings, two runs of one video
at once, a full disk, a missing S3 key, SQL injection in search, jobs back to back."""
from __future__ import annotations

import errno
from fractions import Fraction

import numpy as np
import pytest

from pipeline.errors import VideoOpenError
from pipeline.records import JobStatus
from pipeline.sampling import VideoFrames, probe_video
from rel_support import FIGHT, copy_clip, fast, runs, video
from services import database
from services.media import storage
from services.errors import InvalidName, JobConflict, StorageError
from services.jobs.ingest import analyze_source
from settings import Settings, SettingsError


def _make(path, rate=25, n=10, size=(64, 48), pts=None):
    import av

    w, h = size
    c = av.open(str(path), "w")
    s = c.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    if pts is not None:
        s.time_base = Fraction(1, 1000)
    for i in range(n):
        f = av.VideoFrame.from_ndarray(np.full((h, w, 3), (i * 9) % 256, np.uint8), format="rgb24")
        if pts is not None:
            f.pts, f.time_base = pts[i], Fraction(1, 1000)
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


def _audio_only(path):
    import av

    c = av.open(str(path), "w")
    s = c.add_stream("aac", rate=8000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                       layout="mono")
    frame.sample_rate = 8000
    for p in list(s.encode(frame)) + list(s.encode()):
        c.mux(p)
    c.close()
    return path


@pytest.mark.parametrize("kind", ["missing", "zero-byte", "text-as-mp4", "audio-only"])
def test_unreadable_inputs_are_one_line(kind, tmp_path):
    p = tmp_path / ("a.m4a" if kind == "audio-only" else "a.mp4")
    if kind == "zero-byte":
        p.write_bytes(b"")
    elif kind == "text-as-mp4":
        p.write_text("hello")
    elif kind == "audio-only":
        _audio_only(p)
    with pytest.raises(VideoOpenError) as err:
        probe_video(p)
    assert "\n" not in str(err.value)


def test_4k_frame(tmp_path):
    v = _make(tmp_path / "4k.mp4", n=2, size=(3840, 2160))
    info = probe_video(v)
    assert (info.width, info.height) == (3840, 2160)
    assert [f.image.shape for f in VideoFrames(v, 1)] == [(2160, 3840, 3)] * 2


def test_one_frame_video(tmp_path):
    v = _make(tmp_path / "one.mp4", n=1)
    assert [f.frame_number for f in VideoFrames(v, 20)] == [0]


def test_60_fps_timing(tmp_path):
    v = _make(tmp_path / "60.mp4", rate=60, n=120)
    frames = list(VideoFrames(v, 30))
    assert [round(f.t_s, 3) for f in frames] == [0.0, 0.5, 1.0, 1.5]


def test_variable_frame_rate_timing(tmp_path):
    pts = [0, 40, 80, 400, 440, 1000]  # ms: gaps of 0.32 s and 0.56 s
    v = _make(tmp_path / "vfr.mkv", rate=25, n=len(pts), pts=pts)
    assert [round(f.t_s, 2) for f in VideoFrames(v, 1)] == [p / 1000 for p in pts]


@pytest.mark.parametrize("name", ["x'); DROP TABLE db_event; --.mp4", "<script>alert(1)<script>.mp4",
                                  "caf\u00e9 \"quoted\" (1).mov", "a..b.mp4"])
def test_hostile_names_are_plain_names(name):
    assert storage.validate_name(name) == name


@pytest.mark.parametrize("name", ["../x.mp4", "..", "/etc/passwd", "a/../../b", "C:\\x.mp4",
                                  "a\u202eb.mp4"])
def test_traversal_and_control_characters_are_refused(name):
    with pytest.raises(InvalidName):
        storage.validate_name(name)


def test_unknown_settings_are_refused():
    with pytest.raises(SettingsError, match="VA_FRAMESKIP"):
        Settings.from_env({"VA_FRAMESKIP": "10"})


@pytest.mark.db
def test_two_runs_of_one_video_at_once(db_settings, tmp_path):
    from db import store

    clip = _make(tmp_path / "v.mp4")
    first = analyze_source(str(clip), fast(db_settings))
    holder = database.connect(db_settings)
    try:
        assert store.try_lock_video(holder, first.video_id)
        with pytest.raises(JobConflict):
            analyze_source(str(clip), fast(db_settings))
    finally:
        holder.close()
    assert video(db_settings, first.video_id).status is JobStatus.COMPLETED


@pytest.mark.db
@pytest.mark.slow
def test_full_disk_fails_the_attempt_with_the_reason(db_settings, tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    clip = copy_clip(FIGHT, tmp_path / "v.mp4")
    monkeypatch.setattr(storage.shutil, "copyfile", full)
    with pytest.raises(StorageError, match="the disk is full"):  # one line, not the OSError
        analyze_source(str(clip), fast(db_settings))
    (vid,) = [r[0] for r in _videos(db_settings)]
    v = video(db_settings, vid)
    assert v.status is JobStatus.FAILED and "the disk is full" in v.error_message
    assert [r[1] for r in runs(db_settings, vid)] == ["failed"]


def _videos(settings):
    with database.pooled(settings) as conn:
        return conn.execute("SELECT video_id FROM db_video").fetchall()


@pytest.mark.s3
def test_missing_s3_key(s3_settings):
    with pytest.raises(StorageError, match="does not exist"):
        analyze_source(f"s3://{s3_settings.s3_bucket_videos}/videos/none.mp4", s3_settings)


@pytest.mark.db
@pytest.mark.parametrize("query", ["'; DROP TABLE db_event; --", "x' OR '1'='1", "%_\\",
                                   ") UNION SELECT password FROM pg_shadow --"])
def test_sql_injection_strings_in_search_are_text(query, db_settings):
    from services.search.search import search

    hits = search(query, top_k=5, settings=db_settings)
    assert isinstance(hits, list)
    with database.pooled(db_settings) as conn:
        assert conn.execute("SELECT to_regclass('db_event')").fetchone()[0] is not None


@pytest.mark.db
def test_jobs_back_to_back(db_settings, tmp_path):
    from pipeline.backends.registry import load_backends

    s = fast(db_settings)
    backends = load_backends(s)
    ids = []
    for i in range(5):
        clip = _make(tmp_path / f"v{i}.mp4", n=8 + i)
        ids.append(analyze_source(str(clip), s, backends=backends).video_id)
    assert len(set(ids)) == 5
    assert all(video(s, v).status is JobStatus.COMPLETED for v in ids)
