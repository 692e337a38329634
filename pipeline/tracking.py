"""Stable track ids across sampled frames: Roboflow's ByteTrack (the ``trackers`` package, the
successor of ``supervision.ByteTrack``) tuned for sampled input of ~0.5-1.5 frames per second.

Defaults assume 30 fps video, where a person barely moves between frames. Between two samples at
frame skip 20 a walker moves a body width or more, so:

* ``frame_rate`` is the *sampled* rate and real timestamps drive the Kalman prediction;
* association uses DIoU (IoU minus a normalised centre-distance penalty) so boxes that no longer
  overlap can still match the nearest prediction; the threshold is ``TRACK_MIN_SIMILARITY``;
* a lost track is kept ``TRACK_LOST_S`` seconds of video (occlusion, a missed detection);
* a track gets its id on its first detection (the stock tracker reports -1 until a second one,
  which would lose the first sample of every person);
* a track born in this frame, or a low-score detection that matched nothing (a lying person
  often scores low), is re-linked to a recently lost track whose last box centre lies within
  ``TRACK_RELINK_BH`` of that track's recent body size: a fall changes a tall box into a wide
  one (little overlap, yet the same person), and at 0.5 fps a walker may leave the predicted box.
"""
from __future__ import annotations

import numpy as np

from pipeline import thresholds as T
from pipeline.records import PersonDetections


def _make_tracker_class():
    from trackers import ByteTrackTracker
    from trackers.core.bytetrack.tracklet import ByteTrackTracklet

    class _ImmediateIdByteTrack(ByteTrackTracker):
        """ByteTrack that names a track when it is born (``minimum_consecutive_frames`` = 1)."""

        def _spawn_new_tracks(self, detection_boxes, confidences, unmatched_high_local,
                              high_indices, out_det_indices, out_tracker_ids) -> None:
            for det_local_idx in unmatched_high_local:
                global_idx = int(high_indices[det_local_idx])
                out_det_indices.append(global_idx)
                if float(confidences[global_idx]) >= self.track_activation_threshold:
                    track = ByteTrackTracklet(initial_bbox=detection_boxes[global_idx],
                                              state_estimator_class=self.state_estimator_class)
                    track.tracker_id = self._allocate_tracker_id()
                    self.tracks.append(track)
                    out_tracker_ids.append(track.tracker_id)
                else:
                    out_tracker_ids.append(-1)

    return _ImmediateIdByteTrack


class PersonTracker:
    """``update(persons, t_s)`` -> the same persons (same order) with ``tracker_id`` set;
    -1 marks a low-confidence detection that matched no track."""

    def __init__(self, sampled_fps: float):
        from trackers import DIoU

        cls = _make_tracker_class()
        self.sampled_fps = max(1e-3, float(sampled_fps))
        self._tracker = cls(
            lost_track_buffer=int(round(T.TRACK_LOST_S * 30)),  # counted in 30 fps frames
            frame_rate=self.sampled_fps,
            track_activation_threshold=T.TRACK_ACTIVATION_SCORE,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=T.TRACK_MIN_SIMILARITY,
            high_conf_det_threshold=T.TRACK_HIGH_SCORE,
            iou=DIoU(),
        )
        self._last_t: float | None = None
        self._alias: dict[int, int] = {}  # ByteTrack id -> stable id
        self._last_seen: dict[int, tuple[float, np.ndarray]] = {}  # stable id -> (t_s, xyxy)
        self._scale: dict[int, float] = {}  # stable id -> body size (px), slowly decaying max
        self._raw_of: dict[int, int] = {}  # stable id -> ByteTrack id currently carrying it

    def cut(self) -> None:
        """A scene cut: every track ends here (none is continued or re-linked across it); the
        people after it get new ids (the id counter goes on)."""
        self._tracker.tracks = []
        self._last_seen.clear()
        self._scale.clear()
        self._raw_of.clear()

    def update(self, persons: PersonDetections, t_s: float) -> PersonDetections:
        import supervision as sv

        n = len(persons)
        if self._last_t is not None and t_s <= self._last_t:
            t_s = self._last_t + 1e-3  # the tracker skips non-increasing timestamps
        self._last_t = t_s
        dets = sv.Detections(
            xyxy=persons.xyxy.astype(np.float32) if n else np.zeros((0, 4), np.float32),
            confidence=persons.confidence.astype(np.float32) if n else np.zeros((0,), np.float32),
            class_id=np.zeros(n, int),
            data={"row": np.arange(n)},
        )
        out = self._tracker.update(dets, timestamp=float(t_s))
        raw = np.full(n, -1, np.int64)
        if len(out):
            raw[np.asarray(out.data["row"], int)] = np.asarray(out.tracker_id, np.int64)
        ids = self._stable_ids(raw, persons.xyxy, t_s)
        return persons.with_tracker_id(ids)

    def _stable_ids(self, raw: np.ndarray, xyxy: np.ndarray, t_s: float) -> np.ndarray:
        from scipy.optimize import linear_sum_assignment

        ids = np.array([self._alias.get(int(r), int(r)) if r >= 0 else -1 for r in raw], np.int64)
        # rows that may continue a lost track: tracks born now, and low-score detections that
        # matched nothing (a lying or blurred person often scores below the activation score)
        new_rows = [i for i, r in enumerate(raw) if (r >= 0 and int(r) not in self._alias
                    and int(r) not in self._last_seen) or r < 0]
        present = set(int(i) for i in ids if i >= 0)
        lost = [sid for sid, (t, _) in self._last_seen.items()
                if sid not in present and t_s - t <= T.TRACK_LOST_S]
        if new_rows and lost:
            cost = np.full((len(new_rows), len(lost)), np.inf)
            for a, i in enumerate(new_rows):
                c_new = (xyxy[i, :2] + xyxy[i, 2:]) / 2
                for b, sid in enumerate(lost):
                    box = self._last_seen[sid][1]
                    c_old = (box[:2] + box[2:]) / 2
                    # the track's recent body size: a last box may be a partial detection
                    size = max(box[3] - box[1], box[2] - box[0], self._scale.get(sid, 0.0), 1.0)
                    d = float(np.hypot(*(c_new - c_old))) / size
                    if d <= T.TRACK_RELINK_BH:
                        cost[a, b] = d
            finite = np.where(np.isfinite(cost), cost, 1e6)
            for a, b in zip(*linear_sum_assignment(finite)):
                if np.isfinite(cost[a, b]):
                    i, sid = new_rows[a], lost[b]
                    ids[i] = sid
                    if raw[i] >= 0:
                        self._alias[int(raw[i])] = sid
                        old_raw = self._raw_of.get(sid)
                        # the old ByteTrack track must not claim another detection later
                        self._tracker.tracks = [tr for tr in self._tracker.tracks
                                                if tr.tracker_id != old_raw]
        for i, sid in enumerate(ids):
            if sid >= 0:
                self._last_seen[int(sid)] = (float(t_s), np.asarray(xyxy[i], np.float32).copy())
                size = float(max(xyxy[i][3] - xyxy[i][1], xyxy[i][2] - xyxy[i][0]))
                self._scale[int(sid)] = max(size, 0.8 * self._scale.get(int(sid), 0.0))
                if raw[i] >= 0:
                    self._raw_of[int(sid)] = int(raw[i])
                    self._alias.setdefault(int(raw[i]), int(sid))
        # forget tracks lost for good (memory stays bounded on long videos)
        for sid in [s for s, (t, _) in self._last_seen.items() if t_s - t > T.TRACK_LOST_S]:
            del self._last_seen[sid]
            self._scale.pop(sid, None)
        return ids


def track_people(tracker: PersonTracker, persons: PersonDetections, t_s: float) -> PersonDetections:
    return tracker.update(persons, t_s)
