"""Frame sampling: true timestamps at any fps, original frame numbers, images, bad inputs."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import make_video_without_frames, testdata_path as data_path
from pipeline.errors import VideoOpenError
from pipeline.sampling import VideoFrames, iter_frames, probe_video, read_frames


def make_video(path: Path, rate, n: int, fmt: str | None = None, size=(64, 48)) -> Path:
    """A tiny H.264 video whose frame i has red level (i * 7) % 256."""
    import av

    w, h = size
    c = av.open(str(path), "w", format=fmt)
    s = c.add_stream("libx264", rate=rate)
    s.width, s.height, s.pix_fmt = w, h, "yuv420p"
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 0] = (i * 7) % 256
        for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    return path


@pytest.mark.parametrize("rate", [10, 25, Fraction(30000, 1001), 60])
def test_timestamps_and_frame_numbers_for_any_fps(tmp_path, rate):
    fps = float(rate)
    n = int(round(fps * 2))  # two seconds
    video = make_video(tmp_path / "v.mp4", rate, n)
    info = probe_video(video)
    assert info.fps == pytest.approx(fps, rel=1e-3)
    assert info.frame_count == n
    frames = list(iter_frames(video, frame_skip=7))
    assert [f.frame_number for f in frames] == list(range(0, n, 7))
    assert [f.sample_index for f in frames] == list(range(len(frames)))
    for f in frames:
        assert f.t_s == pytest.approx(f.frame_number / fps, abs=1e-3)
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        assert abs(int(f.image[..., 0].mean()) - (f.frame_number * 7) % 256) <= 3  # right frame
    assert frames[-1].t_s < 2.0


def test_read_frames_numbers_like_the_sequential_pass(tmp_path):
    video = make_video(tmp_path / "v.mp4", Fraction(30000, 1001), 90)
    seq = VideoFrames(video, 1)
    ref = {f.frame_number: f for f in seq}
    got = read_frames(video, 40, 50, 5, seq.info, seq.keyframes)
    assert [f.frame_number for f in got] == [40, 45, 50]
    for f in got:
        assert f.t_s == pytest.approx(ref[f.frame_number].t_s, abs=1e-6)
        assert np.abs(f.image.astype(int) - ref[f.frame_number].image).mean() < 1


def test_read_frames_on_variable_frame_rate_clip():
    clip = data_path("clips/falls/S1_Fall_13.mp4")  # pts gaps: variable frame rate
    seq = VideoFrames(clip, 10)
    ref = {f.frame_number: f for f in seq}
    for fn in (10, 50, 120):
        got = read_frames(clip, fn, fn, 1, seq.info, seq.keyframes)
        assert [f.frame_number for f in got] == [fn]
        assert got[0].t_s == pytest.approx(ref[fn].t_s, abs=1e-6)
        assert np.array_equal(got[0].image, ref[fn].image)


def test_real_clip_sampling_matches_ground_truth_duration():
    clip = data_path("clips/pedestrians/vtest_first20s.mp4")
    frames = VideoFrames(clip, 20)
    got = [(f.frame_number, f.t_s) for f in frames]
    assert got[:3] == [(0, 0.0), (20, 2.0), (40, 4.0)]
    assert len(got) == 10 and frames.frames_decoded == 200 and frames.undecodable == 0


def test_still_image_is_a_one_frame_video():
    img = data_path("images/astronaut.png")
    info = probe_video(img)
    assert info.is_image and info.frame_count == 1
    frames = list(iter_frames(img, 20))
    assert len(frames) == 1 and frames[0].frame_number == 0 and frames[0].t_s == 0.0
    assert frames[0].image.shape == (512, 512, 3)


def _one_line_error(fn, *args) -> str:
    with pytest.raises(VideoOpenError) as ei:
        fn(*args)
    msg = str(ei.value)
    assert "\n" not in msg and "; " in msg, msg  # problem; fix
    return msg


def test_missing_path(tmp_path):
    msg = _one_line_error(probe_video, tmp_path / "nope.mp4")
    assert "does not exist" in msg and "check the path" in msg


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    assert "empty (0 bytes)" in _one_line_error(probe_video, p)


def test_text_file_named_mp4(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 20)
    assert "not a readable video" in _one_line_error(probe_video, p)


def test_truncated_mp4_is_refused(tmp_path):
    good = make_video(tmp_path / "v.mp4", 25, 50)
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated" in _one_line_error(probe_video, bad)


def test_truncated_stream_decodes_what_it_can(tmp_path):
    good = make_video(tmp_path / "v.ts", 25, 100, fmt="mpegts")
    bad = tmp_path / "cut.ts"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    frames = VideoFrames(bad, 1)
    got = list(frames)
    assert 20 < len(got) < 100
    assert [f.frame_number for f in got] == list(range(len(got)))


def test_video_without_frames(tmp_path):
    p = make_video_without_frames(tmp_path)
    _one_line_error(lambda: list(iter_frames(p, 1)))


def test_audio_only_file(tmp_path):
    import av

    p = tmp_path / "sound.mp4"
    c = av.open(str(p), "w")
    s = c.add_stream("aac", rate=44100)
    fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    fr.sample_rate = 44100
    for pkt in list(s.encode(fr)) + list(s.encode()):
        c.mux(pkt)
    c.close()
    assert "no video stream" in _one_line_error(probe_video, p)


def test_sampling_plan_is_worked_out_once_from_settings_and_rate():
    from pipeline.records import VideoInfo
    from pipeline.sampling import SamplingPlan
    from settings import Settings

    def info(fps, seconds, image=False):
        return VideoInfo(path=Path("x.mp4"), fps=fps, frame_count=int(round(fps * seconds)),
                         width=64, height=48, is_image=image)

    long = SamplingPlan.for_video(info(10.0, 79.5), Settings())  # vtest: every 7th frame
    assert (long.base_skip, long.frame_skip, long.frames_sampled, long.dense) == (7, 7, 114, False)
    assert abs(long.sampled_fps - 10.0 / 7) < 1e-9
    short = SamplingPlan.for_video(info(30.0, 7.0), Settings())  # a short clip: denser
    assert short.dense and (short.base_skip, short.frame_skip) == (20, 4)
    assert SamplingPlan.for_video(info(30.0, 600.0), Settings(frame_skip=10)).frame_skip == 10
    still = SamplingPlan.for_video(info(1.0, 1.0, image=True), Settings())
    assert (still.frame_skip, still.frames_sampled, still.dense) == (1, 1, False)
