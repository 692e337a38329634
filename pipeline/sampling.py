"""Frame sampling with PyAV: decode sequentially, convert only the sampled frames to RGB.

* ``frame_number`` is the frame's index in the original video (0-based), whatever the frame skip.
* ``t_s`` is the frame's presentation time (pts x time_base) minus the stream's start time, so
  any frame rate (10, 25, 29.97, 60, variable) gives true seconds; when a frame has no pts the
  time falls back to ``frame_number / fps``.
* A still image (JPEG/PNG/BMP/WebP) is a one-frame video.
* Frames are upright, as a player shows them: a phone clip stored sideways with a display
  matrix (rotation side data, possibly mirrored) is turned before any model sees it, and
  ``VideoInfo.width``/``height`` are the displayed size (``_upright``). Every pass decodes
  through this module, so every pass sees the same picture.
* The file is checked at every open and after every pass against its identity when probed
  (device, inode, size, mtime): a file replaced or rewritten during the analysis raises
  :class:`~pipeline.errors.InputChanged` instead of mixing two videos' frames.
* Bad input raises :class:`~pipeline.errors.VideoOpenError` with a one-line message naming the
  problem and the fix. Undecodable packets of a damaged video are skipped and counted
  (``VideoFrames.undecodable``); a video that yields no frame at all is an error.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.errors import InputChanged, VideoOpenError
from pipeline.records import Frame, VideoInfo

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_FIX = "give a readable video (MP4/AVI/MKV/MOV) or a JPEG/PNG image"


def _check_path(path: Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise VideoOpenError(f"input {path} does not exist; check the path (and that the file was copied)")
    if path.is_dir():
        raise VideoOpenError(f"input {path} is a folder, not a video file; give the path of one video file")
    if path.stat().st_size == 0:
        raise VideoOpenError(f"input {path} is empty (0 bytes); copy or upload the video again")
    return path


def file_identity(path: Path) -> tuple[int, int, int, int]:
    st = Path(path).stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def check_identity(info: VideoInfo) -> None:
    """Raise ``InputChanged`` when ``info.path`` is no longer the file that was probed."""
    if info.identity is None:
        return
    try:
        now = file_identity(info.path)
    except OSError:
        now = None
    if now != info.identity:
        raise InputChanged(
            f"the input changed during analysis: {info.path.name} was replaced, modified or "
            f"removed after the analysis began; analyse it again once the file is complete")


def _display_ops(frame) -> tuple[bool, bool, bool] | None:
    """(transpose, flip rows, flip columns) that turn ``frame`` as its display matrix says, or
    None when it is shown as stored. The matrix maps a stored pixel (p, q) to the shown one
    (a*p + c*q, b*p + d*q) (libavutil/display.h); PyAV's ``frame.rotation`` gives only the angle,
    the matrix also a mirror."""
    try:
        sd = frame.side_data.get("DISPLAYMATRIX")
    except (AttributeError, KeyError, ValueError):
        return None
    if sd is None:
        return None
    m = np.frombuffer(bytes(sd), dtype="<i4")
    if m.size < 5:
        return None
    a, b, c, d = (int(m[0]), int(m[1]), int(m[3]), int(m[4]))
    if abs(a) + abs(d) >= abs(b) + abs(c):  # 0 or 180 degrees, maybe mirrored
        ops = (False, d < 0, a < 0)
    else:  # 90 or 270 degrees: rows and columns swap
        ops = (True, b < 0, c < 0)
    return ops if any(ops) else None


def _upright(frame) -> np.ndarray:
    """``frame`` as RGB, turned as a player shows it (see ``_display_ops``)."""
    image = frame.to_ndarray(format="rgb24")
    ops = _display_ops(frame)
    if ops is None:
        return image
    import cv2  # ~1 ms a 720p frame, a third of numpy's strided copy

    transpose, flip_rows, flip_cols = ops
    if transpose:
        image = cv2.transpose(image)
    if flip_rows or flip_cols:
        image = cv2.flip(image, -1 if flip_rows and flip_cols else (0 if flip_rows else 1))
    return image


def _first_frame_ops(container, stream) -> tuple[bool, bool, bool] | None:
    """The display transform of the first decodable frame (within the first 64 packets)."""
    import av

    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= 64:
                break
            try:
                for frame in packet.decode():
                    return _display_ops(frame)
            except av.error.FFmpegError:
                continue
    except av.error.FFmpegError:
        pass
    return None


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise VideoOpenError(f"input {path} is not a readable image ({e}); {_FIX}") from None


def _open_container(path: Path, info: VideoInfo | None = None):
    import av

    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e).split(":")[0]
        if "moov atom" in str(e):
            reason = "its index (moov atom) is missing"
        elif "end of file" in str(reason).lower():
            reason = "it ends before any frame"
        raise VideoOpenError(
            f"input {path} is not a readable video ({reason}; it may be truncated, damaged, empty "
            f"or not a video at all); {_FIX}"
        ) from None
    if not container.streams.video:
        container.close()
        raise VideoOpenError(
            f"input {path} has no video stream with frames (audio/data only, or no frames); {_FIX}"
        )
    if info is not None:
        try:
            check_identity(info)  # the file just opened is the one that was probed
        except InputChanged:
            container.close()
            raise
    return container


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    return 25.0


def probe_video(path: Path) -> VideoInfo:
    """Size, fps and (estimated) frame count without decoding the whole file."""
    path = _check_path(Path(path))
    identity = file_identity(path)
    if _is_image(path):
        img = _read_image(path)
        return VideoInfo(path=path, fps=1.0, frame_count=1, width=int(img.shape[1]),
                         height=int(img.shape[0]), is_image=True, identity=identity)
    container = _open_container(path)
    try:
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        count = int(stream.frames or 0)
        if count <= 0:
            dur = None
            if stream.duration is not None and stream.time_base is not None:
                dur = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                dur = container.duration / 1_000_000
            count = int(round(dur * fps)) if dur else 0
        width, height = int(stream.width or 0), int(stream.height or 0)
        if width <= 0 or height <= 0:
            raise VideoOpenError(f"input {path} has a video stream without a picture size; {_FIX}")
        ops = _first_frame_ops(container, stream)
        if ops is not None and ops[0]:
            width, height = height, width  # shown turned by 90 or 270 degrees
        return VideoInfo(path=path, fps=fps, frame_count=count, width=width, height=height,
                         identity=identity)
    finally:
        container.close()


@dataclass(frozen=True)
class SamplingPlan:
    """Which frames of a video the engine analyses, worked out once from the settings
    (``--sample-fps`` / ``--frame-skip``) and the video's rate: ``base_skip`` is the settings'
    skip at this rate; ``frame_skip`` the one used, denser for a short clip so that fast
    interactions (fights) can be measured (``interactions.interaction_frame_skip``)."""

    base_skip: int
    frame_skip: int
    sampled_fps: float
    frames_sampled: int
    is_image: bool = False

    @property
    def dense(self) -> bool:
        """A short clip analysed densely (the dense detector's pass)."""
        return not self.is_image and self.frame_skip < self.base_skip

    @classmethod
    def for_video(cls, info: VideoInfo, settings) -> SamplingPlan:
        from pipeline.interactions import interaction_frame_skip

        if info.is_image:
            return cls(base_skip=1, frame_skip=1, sampled_fps=1.0, frames_sampled=1,
                       is_image=True)
        base = settings.frame_skip_for(info.fps)
        skip = interaction_frame_skip(info.fps, info.duration_s, base)
        return cls(base_skip=base, frame_skip=skip, sampled_fps=info.fps / skip,
                   frames_sampled=max(1, -(-max(info.frame_count, 1) // skip)))


class VideoFrames:
    """Iterate the sampled frames of one video (every ``frame_skip``-th frame, starting at 0).

    After iteration ``frames_decoded`` holds the number of decoded frames and ``undecodable`` the
    number of packets that failed to decode (damaged or truncated data).
    """

    def __init__(self, path: Path, frame_skip: int = 1, info: VideoInfo | None = None):
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be 1 or more, got {frame_skip}")
        self.info = info or probe_video(path)
        self.path = self.info.path
        self.frame_skip = int(frame_skip)
        self.frames_decoded = 0
        self.undecodable = 0
        # (pts, frame index) of every keyframe seen: lets read_frames seek and still number
        # frames exactly like this sequential pass, even for variable frame rate video.
        self.keyframes: list[tuple[int, int]] = []

    @property
    def expected_samples(self) -> int:
        return max(1, -(-max(self.info.frame_count, 1) // self.frame_skip))

    def __iter__(self) -> Iterator[Frame]:
        if self.info.is_image:
            check_identity(self.info)
            self.frames_decoded = 1
            yield Frame(frame_number=0, t_s=0.0, image=_read_image(self.path), sample_index=0)
            return
        import av

        container = _open_container(self.path, self.info)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = self.info.fps
            tb = stream.time_base
            start_pts = stream.start_time
            index = 0
            sample_index = 0
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as e:  # damaged data: skip, count, go on
                    self.undecodable += 1
                    log.debug("undecodable packet in %s: %s", self.path, e)
                    continue
                for frame in decoded:
                    if frame.key_frame and frame.pts is not None:
                        self.keyframes.append((int(frame.pts), index))
                    if index % self.frame_skip == 0:
                        t_s = _frame_time(frame, tb, start_pts, index, fps)
                        yield Frame(frame_number=index, t_s=t_s, image=_upright(frame),
                                    sample_index=sample_index)
                        sample_index += 1
                    index += 1
            self.frames_decoded = index
        finally:
            container.close()
        check_identity(self.info)  # not rewritten in place while this pass read it
        if index == 0:
            raise VideoOpenError(
                f"input {self.path} has no decodable frames (an empty, truncated or damaged video stream); {_FIX}"
            )
        if self.info.frame_count and index < self.info.frame_count:
            # Frames the header promises but the data does not deliver (truncated file).
            self.undecodable = max(self.undecodable, self.info.frame_count - index)
        if self.undecodable:
            log.warning("%s: %d frame(s) could not be decoded and were skipped", self.path,
                        self.undecodable)


def _frame_time(frame, time_base, start_pts, index: int, fps: float) -> float:
    pts = frame.pts
    if pts is not None and time_base is not None:
        t = float((pts - (start_pts or 0)) * time_base)
        if t >= 0:
            return round(t, 6)
    return round(index / fps, 6)


def iter_frames(path: Path, frame_skip: int = 1) -> Iterator[Frame]:
    """Sampled frames of a video or image; see :class:`VideoFrames`."""
    return iter(VideoFrames(path, frame_skip))


def read_frames(path: Path, start_frame: int, end_frame: int, step: int = 1,
                info: VideoInfo | None = None,
                keyframes: list[tuple[int, int]] | None = None) -> list[Frame]:
    """Frames ``start_frame..end_frame`` (inclusive) every ``step``: seek to the keyframe before
    ``start_frame`` and decode forward. Used to look between two sampled frames.

    With ``keyframes`` (``VideoFrames.keyframes`` of an earlier pass) frames are numbered exactly
    as that pass numbered them; without, the number comes from the frame's time x fps (exact for
    constant frame rate)."""
    info = info or probe_video(path)
    step = max(1, int(step))
    if info.is_image:
        check_identity(info)
        return [Frame(0, 0.0, _read_image(info.path))] if start_frame <= 0 <= end_frame else []
    import av

    container = _open_container(info.path, info)
    out: list[Frame] = []
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 1000)
        start_pts = stream.start_time or 0
        fps = info.fps
        anchor = None  # (pts, index) of the keyframe we seek to
        if keyframes:
            before = [k for k in keyframes if k[1] <= max(0, start_frame)]
            anchor = before[-1] if before else (keyframes[0] if keyframes[0][1] == 0 else None)
        target_pts = anchor[0] if anchor else int(start_pts + (max(0, start_frame) / fps) / tb)
        try:
            container.seek(target_pts, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            container.seek(0)
            anchor = None
        prev_idx = -1
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                continue
            for frame in decoded:
                if anchor is not None:
                    if frame.pts is not None and frame.pts < anchor[0]:
                        continue  # leading frames of an open GOP belong before the keyframe
                    idx = anchor[1] if prev_idx < 0 else prev_idx + 1
                elif frame.pts is None:
                    idx = prev_idx + 1
                else:
                    idx = int(round(float((frame.pts - start_pts) * tb) * fps))
                prev_idx = idx
                if idx > end_frame:
                    return out
                if idx >= start_frame and (idx - start_frame) % step == 0:
                    out.append(Frame(frame_number=idx, t_s=_frame_time(frame, tb, start_pts, idx, fps),
                                     image=_upright(frame)))
    finally:
        container.close()
        check_identity(info)
    return out


class Prefetch:
    """Iterate ``frames`` with the next ``depth`` frames decoded ahead on a thread: decoding (PyAV
    releases the GIL) overlaps the models' work on the current frame. Errors of the decoder are
    raised where the frame would have been; ``close()`` stops the thread early."""

    _END = object()

    def __init__(self, frames, depth: int = 2):
        import queue
        import threading

        self._q: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._fill, args=(iter(frames),), daemon=True,
                                   name="va-decode")
        self._t.start()

    def _put(self, item) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, it) -> None:
        try:
            for frame in it:
                if not self._put((frame, None)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put((None, e))
            return
        self._put((self._END, None))

    def __iter__(self):
        return self

    def __next__(self) -> Frame:
        item, err = self._q.get()
        if err is not None:
            raise err
        if item is self._END:
            self._t.join()
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._t.join(timeout=5)
