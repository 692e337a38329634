"""Hard scene cuts between consecutive analysed frames, so that no track runs across one: a person
on one side of a cut and another on the other side must never become one track (a tall person
followed by a crouching one "fell").

PySceneDetect's ``ContentDetector`` scores a frame by the mean change of hue, saturation and
brightness from the previous frame (0-255). It runs on the frames the engine analyses anyway
(the sampled pass, a dense window), shrunk to ``CUT_SIZE_PX`` on the longer side first, so it
costs about 0.6 ms of CPU a frame and decodes nothing. Between samples 0.67 s apart people move
a lot, so a cut also needs the frame's colour histograms to move (``thresholds.CUT_*``, chosen
on other footage than the tests': ``scripts/measure_cuts.py``)."""
from __future__ import annotations

import numpy as np

from pipeline import thresholds as T
from pipeline.records import Frame

CUT_SIZE_PX = 160  # frames are compared at this size (the longer side)


class CutDetector:
    """``is_cut(frame)``: True when ``frame`` starts a new shot (the first frame never does).
    Feed it every frame of one pass in order; ``score`` is the last frame's content score."""

    def __init__(self, threshold: float | None = None):
        from scenedetect.detectors import ContentDetector

        self.threshold = T.CUT_CONTENT_SCORE if threshold is None else float(threshold)
        # min_scene_len 0: every frame above the threshold is a cut (samples are far apart)
        self._detector = ContentDetector(threshold=self.threshold, min_scene_len=0)
        self.score = 0.0
        self.hist_distance = 0.0
        self.min_hist_distance = T.CUT_HIST_DISTANCE
        self._hist: np.ndarray | None = None

    def is_cut(self, frame: Frame) -> bool:
        import cv2
        from scenedetect import FrameTimecode

        image = frame.image
        h, w = image.shape[:2]
        scale = CUT_SIZE_PX / max(h, w)
        if scale < 1:  # linear: 0.2 ms a 720p frame (area averaging 1.4 ms)
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_LINEAR)
        bgr = np.ascontiguousarray(image[..., ::-1])  # the detector reads BGR
        timecode = FrameTimecode(int(frame.frame_number), fps=100.0)
        cut = bool(self._detector.process_frame(timecode, bgr))
        self.score = float(self._detector._frame_score or 0.0)  # noqa: SLF001 - its last score
        hist = _colour_histogram(bgr)
        self.hist_distance = 0.0 if self._hist is None else float(
            cv2.compareHist(self._hist, hist, cv2.HISTCMP_BHATTACHARYYA))
        self._hist = hist
        return cut and self.hist_distance >= self.min_hist_distance


def _colour_histogram(bgr: np.ndarray) -> np.ndarray:
    """Hue, saturation and brightness histograms (32 bins each) side by side, summing to 1: a
    person moving keeps them, another camera (grey ones too, by brightness) changes them."""
    import cv2

    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    parts = [cv2.calcHist([hsv], [c], None, [32], [0, top])
             for c, top in ((0, 180), (1, 256), (2, 256))]
    h = np.concatenate(parts).astype(np.float32)
    return h / max(float(h.sum()), 1.0)
