"""Typed records that flow through the engine. One small frozen dataclass per concept.

No dict crosses a module border: stages take and return these. Only ``db/`` maps them to rows
and only ``pipeline/outputs.py`` maps them to CSV/JSON.

Conventions
-----------
* Times are seconds from the start of the video (``t_s``); ``frame_number`` is the index of the
  frame in the original video (0-based), whatever the frame skip.
* Boxes are pixel ``xyxy`` floats in the original frame's coordinates.
* Keypoints are the 17 COCO keypoints as ``(x, y, score)`` in pixels.
* Orientation: degrees clockwise as seen from above, 0 = facing the camera, 90 = facing the
  image's right, 180 = back to the camera, 270 = facing the image's left. ``orientation_label`` is
  the nearest of 0/90/180/270.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from pipeline.object_records import (  # noqa: F401 (the object vocabulary and records)
    OBJECT_ID_BASE, RELATION_CLASSES, ObjectClass, ObjectDetections, ObjectObservation,
    ObjectRelation, Relation, relation_tokens,
)

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
KP = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
COCO_SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)


class Action(str, Enum):
    STANDING = "standing"
    WALKING = "walking"
    RUNNING = "running"
    SITTING = "sitting"
    LYING = "lying"
    FALLING = "falling"
    VIOLENT = "violent"
    GRABBING = "grabbing"
    ANOMALY = "anomaly"
    # Only the VLM backend can tell these from pose and motion.
    PAYING = "paying"
    THEFT = "theft"
    UNKNOWN = "unknown"


class EventType(str, Enum):
    """Highlight / event kinds. ``PERSON`` is an ordinary per-person observation row."""

    PERSON = "person"
    FALLING = "falling"
    COLLAPSE = "collapse"
    VIOLENT = "violent"
    GRABBING = "grabbing"
    THEFT = "theft"
    ANOMALY = "anomaly"
    OBJECT = "object"  # an object's track (``object_class``), from the object pass


class Gender(str, Enum):
    FEMALE = "female"
    MALE = "male"
    UNKNOWN = "unknown"


class AgeGroup(str, Enum):
    YOUNG = "young"  # age < 30
    MIDDLE = "middle"  # 30 <= age < 60
    OLD = "old"  # age >= 60
    UNKNOWN = "unknown"

    @classmethod
    def from_age(cls, age: float | None) -> "AgeGroup":
        if age is None or not np.isfinite(age):
            return cls.UNKNOWN
        if age < 30:
            return cls.YOUNG
        if age < 60:
            return cls.MIDDLE
        return cls.OLD


class Colour(str, Enum):
    """Clothing colour names (a fixed palette, ``pipeline.clothing``); UNKNOWN when the frames
    are grayscale or infrared, or the part of the body was never seen clearly."""

    BLACK = "black"
    WHITE = "white"
    GREY = "grey"
    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    GREEN = "green"
    BLUE = "blue"
    PURPLE = "purple"
    PINK = "pink"
    BROWN = "brown"
    UNKNOWN = "unknown"


class ObservationPass(str, Enum):
    """Which pass of the engine saw a person (``pipeline.detection``), in the order drawing
    prefers them."""

    SAMPLED = "sampled"  # the run's sampled frames, all stages
    DENSE = "dense"  # the windows where people come close, pose only
    REFINE = "refine"  # the frames between a fall's standing and down frames, pose only


class JobStatus(str, Enum):
    PENDING = "pending"
    QUEUED = "queued"  # waiting in the job queue for a worker (services/jobs/jobs.py)
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def mmss(t_s: float | None) -> str:
    """Seconds as mm:ss (h:mm:ss past an hour), the way analysts read video times; '--:--' when
    unknown. Truncated like a player's clock (8.7 s is 00:08), as ``services.timefmt.clock``
    reads the same time on the pages."""
    if t_s is None or not np.isfinite(float(t_s)):
        return "--:--"
    s = max(0, int(np.floor(float(t_s) + 1e-6)))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60:02d}:{rem % 60:02d}"


def frozen_mapping(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    fps: float
    frame_count: int  # best estimate; exact after decoding
    width: int
    height: int  # width and height as a player shows the picture (after a phone's rotation)
    is_image: bool = False
    # (device, inode, size, mtime in ns) of the file when it was probed: every later open of the
    # file is checked against it (``sampling.check_identity``)
    identity: tuple[int, int, int, int] | None = None

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True, eq=False)
class Frame:
    """A decoded frame: RGB uint8 HxWx3."""

    frame_number: int
    t_s: float
    image: np.ndarray
    sample_index: int = 0  # 0, 1, 2... among sampled frames

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, eq=False)
class PersonDetections:
    """Columnar detections of people in one frame (after supervision's ``Detections``).

    ``xyxy`` (N,4) float32, ``confidence`` (N,), ``keypoints`` (N,17,3) x,y,score in pixels,
    optional ``face_xyxy`` (N,4) with NaN rows where no face box is known, and ``tracker_id`` (N,)
    int (-1 = untracked).
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    keypoints: np.ndarray
    face_xyxy: np.ndarray | None = None
    tracker_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be (N,4), got {self.xyxy.shape}")
        if self.confidence.shape != (n,):
            raise ValueError(f"confidence must be ({n},), got {self.confidence.shape}")
        if self.keypoints.shape != (n, 17, 3):
            raise ValueError(f"keypoints must be ({n},17,3), got {self.keypoints.shape}")
        if self.face_xyxy is not None and self.face_xyxy.shape != (n, 4):
            raise ValueError(f"face_xyxy must be ({n},4), got {self.face_xyxy.shape}")
        if self.tracker_id is not None and self.tracker_id.shape != (n,):
            raise ValueError(f"tracker_id must be ({n},), got {self.tracker_id.shape}")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> "PersonDetections":
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros((0,), np.float32),
            keypoints=np.zeros((0, 17, 3), np.float32),
        )

    def __getitem__(self, index) -> "PersonDetections":
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return PersonDetections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            keypoints=self.keypoints[index],
            face_xyxy=None if self.face_xyxy is None else self.face_xyxy[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
        )

    def with_tracker_id(self, tracker_id: np.ndarray) -> "PersonDetections":
        return PersonDetections(self.xyxy, self.confidence, self.keypoints, self.face_xyxy,
                                np.asarray(tracker_id, dtype=np.int64))

    def with_face_xyxy(self, face_xyxy: np.ndarray) -> "PersonDetections":
        return PersonDetections(self.xyxy, self.confidence, self.keypoints,
                                np.asarray(face_xyxy, dtype=np.float32), self.tracker_id)


@dataclass(frozen=True)
class Attributes:
    """Age/gender for one person in one frame. ``None`` / UNKNOWN when not trustworthy."""

    age: float | None = None
    gender: Gender = Gender.UNKNOWN
    gender_score: float | None = None  # confidence of ``gender`` (0.5..1)
    face_size_px: float | None = None


@dataclass(frozen=True)
class Orientation:
    degrees: float | None = None
    confidence: float = 0.0

    @property
    def label(self) -> int | None:
        if self.degrees is None:
            return None
        return int(round((self.degrees % 360) / 90.0) % 4) * 90


@dataclass(frozen=True)
class ActionEstimate:
    action: Action = Action.UNKNOWN
    confidence: float = 0.0


@dataclass(frozen=True)
class PersonObservation:
    """One person in one frame; ``source`` the pass that saw them (the sampled pass's rows are
    results_final.csv)."""

    frame_number: int
    t_s: float
    obj_id: int
    xyxy: tuple[float, float, float, float]
    det_confidence: float
    keypoints: tuple[tuple[float, float, float], ...]  # 17 x (x, y, score)
    age: float | None = None
    gender: Gender = Gender.UNKNOWN
    gender_score: float | None = None
    orientation_deg: float | None = None
    action: Action = Action.UNKNOWN
    action_confidence: float = 0.0
    scene_description: str | None = None
    source: ObservationPass = ObservationPass.SAMPLED

    @property
    def orientation_label(self) -> int | None:
        return Orientation(self.orientation_deg).label


@dataclass(frozen=True)
class SceneCaption:
    frame_number: int
    t_s: float
    text: str
    source: str  # backend name


@dataclass(frozen=True)
class TrackSummary:
    """Per-track aggregate (median age, majority gender with its share, action history)."""

    obj_id: int
    first_t_s: float
    last_t_s: float
    n_observations: int
    age: float | None
    age_spread: float | None  # inter-quartile range of per-frame ages
    gender: Gender
    gender_confidence: float | None  # share of the majority among confident frames
    actions: Mapping[str, int] = field(default_factory=dict)  # action -> count

    @property
    def age_group(self) -> AgeGroup:
        return AgeGroup.from_age(self.age)


@dataclass(frozen=True)
class Event:
    """A cleaned row of processed_results.csv (ready for ``db_event``).

    ``track_ids`` are the tracks involved (``obj_id`` first; a fight's other people after it).
    ``raw_action`` / ``action_confidence`` are the frame's own reading before per-track smoothing
    (person rows). ``start_t_s`` / ``end_t_s`` are a highlight's episode. ``extra`` holds only
    what is open-ended (rule evidence, per-frame readings).
    """

    event_type: EventType
    t_s: float
    frame_number: int
    obj_id: int
    xyxy: tuple[float, float, float, float]
    age_group: AgeGroup
    gender: Gender
    action: Action
    confidence: float
    age: float | None = None
    orientation_deg: float | None = None
    scene_description: str | None = None
    keypoints: tuple[tuple[float, float, float], ...] = ()
    highlight_file: str | None = None  # relative path under the output's highlights/
    track_ids: tuple[int, ...] = ()
    raw_action: Action | None = None
    action_confidence: float | None = None
    start_t_s: float | None = None
    end_t_s: float | None = None
    upper_colour: Colour = Colour.UNKNOWN  # the track's clothing (pipeline.clothing)
    lower_colour: Colour = Colour.UNKNOWN
    object_class: ObjectClass | None = None  # an OBJECT event's class
    relations: tuple[ObjectRelation, ...] = ()  # the track's objects (pipeline.objects)
    extra: Mapping[str, Any] = field(default_factory=lambda: frozen_mapping({}))

    @property
    def orientation_label(self) -> int | None:
        return Orientation(self.orientation_deg).label

    @property
    def other_track_ids(self) -> tuple[int, ...]:
        return tuple(t for t in self.track_ids if t != self.obj_id)


@dataclass(frozen=True)
class Episode:
    """A stretch of time in which something notable happened to one track (a fall, a fight...).

    Rules in ``highlights.py`` (falls, collapse) and ``interactions.py`` (violent, grabbing,
    anomaly) produce these; each becomes one highlight frame and one event row.
    """

    event_type: EventType
    obj_id: int
    start_t_s: float
    end_t_s: float
    peak_t_s: float  # the moment to show (e.g. the fall's timed onset)
    peak_frame_number: int
    confidence: float
    other_obj_ids: tuple[int, ...] = ()
    reason: str = ""  # short human-readable evidence, e.g. "upright -> lying in 0.6 s"


@dataclass(frozen=True)
class Highlight:
    t_s: float
    frame_number: int
    event_type: EventType
    obj_id: int
    confidence: float
    file: str  # relative to the output folder, e.g. "highlights/4.3s_falling.jpg"
    start_t_s: float | None = None  # the episode's extent
    end_t_s: float | None = None
    track_ids: tuple[int, ...] = ()  # the people involved (obj_id first)


@dataclass(frozen=True)
class RunProgress:
    fraction: float  # 0..1
    stage: str
    frames_done: int
    frames_total: int
    eta_s: float | None = None
    message: str = ""


@dataclass(frozen=True)
class RunResult:
    video: VideoInfo
    output_dir: Path
    observations: tuple[PersonObservation, ...]
    events: tuple[Event, ...]
    highlights: tuple[Highlight, ...]
    scenes: tuple[SceneCaption, ...]
    tracks: tuple[TrackSummary, ...]
    frames_sampled: int
    frames_skipped_undecodable: int = 0
    stage_ms: Mapping[str, float] = field(default_factory=dict)  # total ms per stage
    backends: Mapping[str, str] = field(default_factory=dict)  # stage -> backend name
    frames_decoded: int = 0
    #: (first, last) timestamp of the sampled frames analysed, seconds: what the result covers.
    covered_s: tuple[float, float] | None = None
    person_vectors: tuple = ()  # pipeline.person_vectors.PersonVector, one per track

    #: A run that decoded less than this share of the video's frames completes with a warning.
    MIN_DECODED_SHARE = 0.95

    @property
    def decoded_share(self) -> float:
        total = self.frames_decoded + self.frames_skipped_undecodable
        return 1.0 if total <= 0 else self.frames_decoded / total

    @property
    def decode_warning(self) -> str | None:
        """One line when part of the video could not be decoded, naming the time covered."""
        if self.decoded_share >= self.MIN_DECODED_SHARE:
            return None
        total = self.frames_decoded + self.frames_skipped_undecodable
        a, b = self.covered_s or (0.0, 0.0)
        dur = self.video.duration_s
        return (f"only {self.frames_decoded} of {total} frames ({self.decoded_share:.0%}) could "
                f"be decoded (damaged or truncated file); the results cover {a:.1f}-{b:.1f} s"
                + (f" of {dur:.1f} s" if dur else ""))


@dataclass(frozen=True)
class ChatReply:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
