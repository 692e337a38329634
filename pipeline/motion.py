"""Motion numbers of densely sampled frames for the violence classifier (``pipeline.violence``):
frame differences and Farneback optical flow, per frame and inside each person's box, kept as a
few numbers (never the frames or flow fields), so memory does not grow with the video."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np

from pipeline import heap
from pipeline.records import Frame, PersonObservation

if TYPE_CHECKING:
    from pipeline.appearance import Appearance, Backbone

MOTION_WIDTH_PX = 160  # frames are compared at this width (grey)

# --- motion: frame differences and optical flow ---------------------------------------------------

FRAME_STATS = ("diff", "mag", "coherence", "grid_mag", "grid_dmag", "moving")
BOX_STATS = ("diff", "mag", "mag_p90", "coherence", "dmag")
_GRID = 4  # the frame is cut into GRID x GRID cells for the most agitated cell
_MOVING_PX = 1.0  # flow above this many px (at MOTION_WIDTH_PX) is motion


@dataclass(frozen=True)
class Motion:
    """Motion numbers of densely sampled frames (a frame against the previous sampled one, grey
    at ``MOTION_WIDTH_PX`` wide): per frame ``FRAME_STATS`` and per person (frame number,
    track) ``BOX_STATS``. Frame differences are 0..1; flow magnitudes are in px at that width
    per sampled interval; coherence is |mean flow| / mean |flow| over the moving pixels (1: all
    moving one way, a walk; near 0: limbs in every direction, a scuffle); dmag the change of
    flow magnitude since the previous interval (violent flows)."""

    frames: Mapping[int, tuple[float, ...]]
    boxes: Mapping[tuple[int, int], tuple[float, ...]]
    appearance: "Appearance | None" = None  # backbone vectors (pipeline.appearance)

    def frame(self, frame_number: int, stat: str) -> float | None:
        v = self.frames.get(frame_number)
        return None if v is None else v[FRAME_STATS.index(stat)]

    def box(self, o: PersonObservation, stat: str) -> float | None:
        v = self.boxes.get((o.frame_number, o.obj_id))
        return None if v is None else v[BOX_STATS.index(stat)]

    def to_json(self) -> dict:
        return {"frames": {str(k): list(v) for k, v in self.frames.items()},
                "boxes": [[f, o, *v] for (f, o), v in self.boxes.items()]}

    @classmethod
    def from_json(cls, d: Mapping) -> "Motion":
        return cls({int(k): tuple(v) for k, v in d["frames"].items()},
                   {(int(r[0]), int(r[1])): tuple(r[2:]) for r in d["boxes"]})


def _grey_small(image: np.ndarray) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = MOTION_WIDTH_PX / float(w)
    small = cv2.resize(image, (MOTION_WIDTH_PX, max(1, int(round(h * scale)))),
                       interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def _coherence(fx: np.ndarray, fy: np.ndarray, mag: np.ndarray) -> float:
    moving = mag > _MOVING_PX
    if moving.sum() < 4:
        return 1.0
    return float(np.hypot(fx[moving].mean(), fy[moving].mean()) / (mag[moving].mean() + 1e-6))


def motion_of(frames: Sequence[Frame], observations: Sequence[PersonObservation],
              backbone: "Backbone | None" = None) -> Motion:
    """The ``Motion`` of ``frames`` (evenly sampled) and of the people of ``observations`` in
    them; the first frame has none. With ``backbone``, also their ``Appearance``."""
    import cv2

    by_frame: dict[int, list[PersonObservation]] = defaultdict(list)
    for o in observations:
        by_frame[o.frame_number].append(o)
    out_f: dict[int, tuple[float, ...]] = {}
    out_b: dict[tuple[int, int], tuple[float, ...]] = {}
    prev = prev_mag = None
    for fr in sorted(frames, key=lambda f: f.frame_number):
        g = _grey_small(fr.image)
        if prev is None or prev.shape != g.shape:
            prev, prev_mag = g, None
            continue
        diff = np.abs(g.astype(np.float32) - prev.astype(np.float32)) / 255.0
        flow = cv2.calcOpticalFlowFarneback(prev, g, None, 0.5, 2, 9, 2, 5, 1.1, 0)
        fx, fy = flow[..., 0], flow[..., 1]
        mag = np.hypot(fx, fy)
        dmag = np.abs(mag - prev_mag) if prev_mag is not None else None
        h, w = g.shape
        cells = [(slice(h * i // _GRID, h * (i + 1) // _GRID), slice(w * j // _GRID, w * (j + 1) // _GRID))
                 for i in range(_GRID) for j in range(_GRID)]
        out_f[fr.frame_number] = (
            float(diff.mean()), float(mag.mean()), _coherence(fx, fy, mag),
            max(float(mag[c].mean()) for c in cells),
            max(float(dmag[c].mean()) for c in cells) if dmag is not None else 0.0,
            float((mag > _MOVING_PX).mean()))
        s = w / float(fr.width)
        for o in by_frame.get(fr.frame_number, ()):
            x0, y0, x1, y1 = (int(round(v * s)) for v in o.xyxy)
            x0, y0 = max(0, x0), max(0, y0)
            x1, y1 = min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))
            if x1 <= x0 or y1 <= y0:
                continue
            box = (slice(y0, y1), slice(x0, x1))
            m = mag[box]
            out_b[(fr.frame_number, o.obj_id)] = (
                float(diff[box].mean()), float(m.mean()), float(np.percentile(m, 90)),
                _coherence(fx[box], fy[box], m),
                float(dmag[box].mean()) if dmag is not None else 0.0)
        prev, prev_mag = g, mag
    app = None
    if backbone is not None:
        from pipeline.appearance import appearance_of

        app = appearance_of(frames, observations, backbone)
    return Motion(out_f, out_b, app)


def read_motion(observations: Sequence[PersonObservation], reader: Callable[[int, int, int], list[Frame]],
                backbone: "Backbone | None" = None) -> Motion:
    """The ``Motion`` of the frames of ``observations``: the frames are read again (decoding is
    cheap next to detection) in runs of evenly spaced frame numbers, a few at a time."""
    numbers = sorted({o.frame_number for o in observations})
    frames_out: dict[int, tuple[float, ...]] = {}
    boxes_out: dict[tuple[int, int], tuple[float, ...]] = {}
    app_boxes: dict = {}
    app_frames: dict = {}
    if len(numbers) < 2:
        return Motion(frames_out, boxes_out)
    step = int(np.bincount(np.diff(numbers)).argmax())
    runs, run = [], [numbers[0]]
    for f in numbers[1:]:
        if f - run[-1] <= 2 * step:
            run.append(f)
        else:
            runs.append(run)
            run = [f]
    runs.append(run)
    chunk = 48 * step  # bounded memory: 48 frames (+1 of overlap) at a time
    for run in runs:
        if len(run) < 2:
            continue
        a = run[0] - step if run[0] >= step else run[0]
        for c0 in range(a, run[-1] + 1, chunk):
            c1 = min(run[-1], c0 + chunk)
            frames = reader(c0, c1, step)
            sel = [o for o in observations if c0 <= o.frame_number <= c1]
            m = motion_of(frames, sel, backbone)
            frames_out.update(m.frames)
            boxes_out.update(m.boxes)
            if m.appearance is not None:
                app_boxes.update(m.appearance.boxes)
                app_frames.update(m.appearance.frames)
            del frames
            heap.give_back()  # the decoded frames and the backbone's activations
    if backbone is None:
        return Motion(frames_out, boxes_out)
    from pipeline.appearance import Appearance

    return Motion(frames_out, boxes_out, Appearance(app_boxes, app_frames))


# --- the short-clip pass of the violence classifier's training ---------------------------------

def clip_frames(path: Path):
    """(video info, frame skip, frames) of the short-clip pass: every
    ``interactions.DENSE_SAMPLE_DT_S``."""
    from pipeline import interactions
    from pipeline.sampling import VideoFrames, probe_video

    info = probe_video(Path(path))
    skip = interactions.interaction_frame_skip(info.fps, info.duration_s, 10 ** 6)
    return info, skip, list(VideoFrames(info.path, skip, info))


def observe_clip(path: Path, detector, backbone: "Backbone | None" = None,
                 ) -> tuple[list[PersonObservation], Motion, tuple[int, int]]:
    """The observations the engine's short-clip pass makes of ``path`` (frames every
    ``interactions.DENSE_SAMPLE_DT_S``, ``detector``, the tracker; attributes left out), the
    motion numbers (and with ``backbone`` the appearance) of those frames, and the frame size."""
    from pipeline.detection import detect_tracked
    from pipeline.tracking import PersonTracker

    info, skip, frames = clip_frames(path)
    tracker = PersonTracker(info.fps / skip)
    rows: list[PersonObservation] = []
    for fr in frames:
        persons = detect_tracked(fr, detector, tracker)
        for i in range(len(persons)):
            tid = int(persons.tracker_id[i])
            rows.append(PersonObservation(
                frame_number=fr.frame_number, t_s=fr.t_s, obj_id=tid,
                xyxy=tuple(round(float(v), 1) for v in persons.xyxy[i]),
                det_confidence=round(float(persons.confidence[i]), 4),
                keypoints=tuple((round(float(k[0]), 1), round(float(k[1]), 1), round(float(k[2]), 3))
                                for k in persons.keypoints[i])))
    return rows, motion_of(frames, rows, backbone), (info.width, info.height)
