"""Issue 21, items 1 and 2: real footage as it arrives.

1. A phone clip stored sideways with rotation side data (what every player shows upright) is
   analysed upright: the display matrix is applied where frames are decoded (pipeline/sampling.py,
   the one decoder of every pass) and the displayed size is stored.
2. An input replaced or rewritten while it is analysed fails the job with "the input changed
   during analysis" (CLI: rc 2 with that line) instead of mixing two videos' frames.

The clips are made here with ffmpeg (Debian's, as ./test.sh installs it) from ../shared/testdata;
no footage is committed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import conftest
from conftest import REPO
from pipeline.errors import InputChanged
from pipeline.records import Action, EventType, JobStatus
from pipeline.sampling import VideoFrames, probe_video, read_frames
from rel_support import FIGHT, copy_clip, events, fast, runs, video
from services import database
from services.jobs.ingest import analyze_source

FALL01 = "clips/falls/Fall01.mp4"  # 406x720 portrait, the fall labelled at 4.0 s
CHANGED = "the input changed during analysis"


def _ffmpeg(*args: str) -> None:
    exe = shutil.which("ffmpeg")
    assert exe, "ffmpeg is missing: apt-get install ffmpeg (./test.sh does) to make the test media"
    subprocess.run([exe, "-loglevel", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def sideways(tmp_path_factory) -> Path:
    """Fall01 turned 90 degrees clockwise and re-encoded, as a phone stores portrait video."""
    d = tmp_path_factory.mktemp("phone")
    _ffmpeg("-i", str(conftest.testdata_path(FALL01)), "-vf", "transpose=1", "-c:v", "libx264",
            "-an", str(d / "raw.mp4"))
    return d / "raw.mp4"


def _phone(sideways: Path, rotate: int) -> Path:
    """``sideways`` with the rotation tag a phone writes (the issue's exact command)."""
    out = sideways.with_name(f"phone{rotate}.mp4")
    if not out.exists():
        _ffmpeg("-i", str(sideways), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(out))
    return out


def _as_player_shows(path: Path, frame_number: int) -> np.ndarray:
    """The frame as ffmpeg shows it (its autorotation: the reference for 'upright')."""
    from PIL import Image

    png = path.with_name(f"{path.stem}-{frame_number}.png")
    _ffmpeg("-i", str(path), "-vf", f"select=eq(n\\,{frame_number})", "-frames:v", "1", str(png))
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("rotate, size", [(90, (406, 720)), (180, (720, 406)),
                                          (270, (406, 720)), (0, (720, 406))])
def test_every_decoder_path_shows_the_frame_as_a_player_does(sideways, rotate, size):
    clip = _phone(sideways, rotate)
    info = probe_video(clip)
    assert (info.width, info.height) == size
    want = _as_player_shows(clip, 60)
    sampled = {f.frame_number: f.image for f in VideoFrames(clip, 20, info)}
    between = read_frames(clip, 59, 61, 1, info)  # the dense windows, refinement, highlights
    assert [f.frame_number for f in between] == [59, 60, 61]
    for image in (sampled[60], between[1].image):
        assert image.shape == (size[1], size[0], 3)
        assert np.array_equal(image, want)  # pixel for pixel what ffmpeg's player shows


@pytest.mark.parametrize("degrees, hflip, vflip", [
    (0, True, False), (0, False, True), (90, False, False), (90, True, False), (90, False, True),
    (180, False, True), (270, False, False), (270, True, False)])
def test_all_eight_orientations_with_mirrors(tmp_path, degrees, hflip, vflip):
    """EXIF's eight orientations as display matrices (PyAV writes them: rotation counter-clockwise,
    then the mirror): the frame comes out as the matrix says, the size is the displayed one."""
    import av

    h, w = 48, 64
    img = np.zeros((h, w, 3), np.uint8)
    img[:16, :16] = (255, 0, 0)
    img[:, -8:] = (0, 255, 0)
    img[-8:, :] = (0, 0, 255)
    path = tmp_path / "m.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt, s.options = w, h, "yuv444p", {"qp": "0"}
        s.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for _ in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    want = np.rot90(img, degrees // 90)
    want = want[:, ::-1] if hflip else want
    want = want[::-1] if vflip else want
    info = probe_video(path)
    assert (info.height, info.width) == want.shape[:2]
    got = next(iter(VideoFrames(path, 1, info))).image
    assert got.shape == want.shape and np.abs(got.astype(int) - want).mean() < 2


@pytest.mark.db
@pytest.mark.slow
def test_a_phone_clip_stored_sideways_is_analysed_upright(sideways, db_settings):
    """Before: no fall, a false collapse at 0.0 s, grabbing at 1.6 s, 35 of 54 rows lying, and
    720x406 stored."""
    out = analyze_source(str(_phone(sideways, 90)), db_settings.with_overrides(cpu_threads=2))
    assert out.status is JobStatus.COMPLETED
    v = video(db_settings, out.video_id)
    assert (v.width, v.height) == (406, 720)  # the displayed size
    evs = events(db_settings, out.video_id)
    alarms = [(e.event_type.value, e.t_s) for e in evs
              if e.event_type not in (EventType.PERSON, EventType.FALLING, EventType.OBJECT)]
    assert not alarms, alarms  # no collapse, grabbing, violent, anomaly
    falls = [e.t_s for e in evs if e.event_type is EventType.FALLING]
    assert len(falls) == 1 and abs(falls[0] - 4.0) <= 1.0, falls
    people = [e for e in evs if e.event_type is EventType.PERSON]
    before = [e for e in people if e.t_s < 3.5]  # standing and walking before the fall
    assert before and not [e.t_s for e in before if e.action is Action.LYING]


def _replace_when(path: Path, other: Path, at_stage: str, after_frames: int = 3):
    done = {"replaced": False}

    def on_progress(p):
        if not done["replaced"] and p.stage == at_stage and p.frames_done >= after_frames:
            os.replace(other, path)  # what `mv other path` does: a new file under the old name
            done["replaced"] = True

    return on_progress, done


@pytest.mark.db
@pytest.mark.slow
def test_input_replaced_mid_run_fails_the_job_with_the_reason(db_settings, tmp_path):
    """Before: completed, with the fall at 3.73 s instead of 4.23 s and no highlight frame."""
    rep = copy_clip(FALL01, tmp_path / "rep.mp4")
    other = copy_clip(FIGHT, tmp_path / "fi001.mp4")
    on_progress, done = _replace_when(rep, other, "analysing frames")
    with pytest.raises(InputChanged) as err:
        analyze_source(str(rep), fast(db_settings), on_progress=on_progress)
    assert done["replaced"]
    assert str(err.value).startswith(CHANGED) and "\n" not in str(err.value)
    with database.pooled(db_settings) as conn:
        (vid,), = conn.execute("SELECT video_id FROM db_video").fetchall()
    v = video(db_settings, vid)
    assert v.status is JobStatus.FAILED and v.error_message.startswith(CHANGED)
    assert [(s, e.split(":")[0]) for _, s, e, _ in runs(db_settings, vid)] == [("failed", CHANGED)]
    assert events(db_settings, vid) == []


def test_input_rewritten_in_place_is_noticed(tmp_path):
    """Same inode, other bytes (``cp other path``): the pass that read it fails at its end, and
    every later open fails too."""
    clip = copy_clip(FIGHT, tmp_path / "a.mp4")
    info = probe_video(clip)
    frames = iter(VideoFrames(clip, 20, info))
    next(frames)
    with open(clip, "r+b") as f:  # in place: the inode stays, the size and mtime change
        f.seek(0, os.SEEK_END)
        f.write(b"\0" * 1024)
    with pytest.raises(InputChanged, match=CHANGED):
        list(frames)
    with pytest.raises(InputChanged, match=CHANGED):
        read_frames(clip, 0, 3, 1, info)


@pytest.mark.slow
def test_cli_run_with_the_input_moved_over_exits_2_with_one_line(tmp_path):
    rep = copy_clip(FALL01, tmp_path / "rep.mp4")
    other = copy_clip(FIGHT, tmp_path / "fi001.mp4")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VA_", "POSTGRES_"))}
    env.update({"HF_HUB_OFFLINE": "1", "VA_DATA_DIR": str(tmp_path / "var"),
                "VA_PROPOSALS": "none", "VA_CPU_THREADS": "2"})
    p = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--input", str(rep),
                          "--no-store", "--output", str(tmp_path / "out")], cwd=REPO, env=env,
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    err = bytearray()
    moved = threading.Event()

    def read():
        while chunk := p.stderr.read1(4096):
            err.extend(chunk)
            if not moved.is_set() and b"analysing frames" in err:
                os.replace(other, rep)  # `mv fi001.mp4 rep.mp4` while rep.mp4 is analysed
                moved.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    rc = p.wait(timeout=300)
    t.join(timeout=10)
    text = err.decode(errors="replace")
    assert moved.is_set(), text[-2000:]
    last = text.replace("\r", "\n").strip().splitlines()[-1]
    assert rc == 2 and last.startswith(f"error: {CHANGED}"), text[-2000:]
    assert not (tmp_path / "out").exists()
