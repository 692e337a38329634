"""The object vocabulary (re-exported by ``pipeline.records``, where every vocabulary lives):
``ObjectClass``, the COCO classes of the YOLOv5s model that analysts search for, ``Relation``, what
a person does with an object, and ``ObjectRelation``, one of those facts about a person's track.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

#: The 80 labels of the COCO-trained YOLOv5s model (``models/yolov5s-coco.onnx``), in its output
#: order (class index i is column 5 + i).
COCO_LABELS = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)


class ObjectClass(str, Enum):
    """The COCO classes the object pass keeps (values are the model's labels): what people
    carry, ride or sit on, vehicles and animals. The others (food, kitchenware, sports gear...)
    are dropped: in surveillance footage they are rarer than the false detections they bring."""

    BICYCLE = "bicycle"
    CAR = "car"
    MOTORCYCLE = "motorcycle"
    BUS = "bus"
    TRUCK = "truck"
    BENCH = "bench"
    DOG = "dog"
    CAT = "cat"
    BACKPACK = "backpack"
    UMBRELLA = "umbrella"
    HANDBAG = "handbag"
    SUITCASE = "suitcase"
    SKATEBOARD = "skateboard"
    BOTTLE = "bottle"
    CUP = "cup"
    KNIFE = "knife"
    CHAIR = "chair"
    COUCH = "couch"
    BED = "bed"
    DINING_TABLE = "dining table"
    LAPTOP = "laptop"
    CELL_PHONE = "cell phone"

    @property
    def coco_index(self) -> int:
        return COCO_LABELS.index(self.value)

    @property
    def phrase(self) -> str:
        """"a backpack", "an umbrella": the words of a sentence."""
        word = _WORDS.get(self.value, self.value)
        return ("an " if word[0] in "aeiou" else "a ") + word


#: The words a sentence uses for a class: the analysts' synonyms beside the model's label (its
#: "truck" is any van, pickup or lorry).
_WORDS = {
    "bicycle": "bicycle (bike)", "car": "car (vehicle)", "motorcycle": "motorcycle (motorbike)",
    "bus": "bus (vehicle)", "truck": "van or truck (vehicle)", "bench": "bench (seat)",
    "backpack": "backpack (bag, rucksack)", "handbag": "handbag (bag)",
    "suitcase": "suitcase (luggage, bag)", "chair": "chair (seat)", "couch": "couch (sofa)",
    "dining table": "table", "cell phone": "phone (mobile)", "bottle": "bottle",
}


class Relation(str, Enum):
    """What a person does with an object, from their boxes over several samples
    (``pipeline.objects``)."""

    CARRYING = "carrying"  # a bag, backpack, suitcase or umbrella at the hands or torso, moving along
    RIDING = "riding"  # a bicycle or motorcycle under the person
    SITTING_ON = "sitting_on"  # a chair, bench or couch under the hips

    @property
    def phrase(self) -> str:
        return {"sitting_on": "sitting on"}.get(self.value, self.value)


#: The classes each relation can hold with.
RELATION_CLASSES: dict[Relation, tuple[ObjectClass, ...]] = {
    Relation.CARRYING: (ObjectClass.BACKPACK, ObjectClass.HANDBAG, ObjectClass.SUITCASE,
                        ObjectClass.UMBRELLA),
    Relation.RIDING: (ObjectClass.BICYCLE, ObjectClass.MOTORCYCLE),
    Relation.SITTING_ON: (ObjectClass.CHAIR, ObjectClass.BENCH, ObjectClass.COUCH),
}


@dataclass(frozen=True, order=True)
class ObjectRelation:
    """A person's track ``relation`` an object of ``object_class`` (e.g. carrying a backpack)."""

    relation: Relation
    object_class: ObjectClass

    @property
    def token(self) -> str:
        """How it is stored and filtered on ("carrying:backpack")."""
        return f"{self.relation.value}:{self.object_class.value}"

    @classmethod
    def from_token(cls, token: str) -> "ObjectRelation":
        rel, _, cls_name = str(token).partition(":")
        return cls(Relation(rel), ObjectClass(cls_name))

    @property
    def phrase(self) -> str:
        """"carrying a backpack", "sitting on a bench"."""
        return f"{self.relation.phrase} {self.object_class.phrase}"


def relation_tokens(classes=(), relations=()) -> list[str]:
    """The stored tokens of the relations with one of ``classes`` (any class when empty) that are
    one of ``relations`` (any relation when empty): what a filter compares with; [] when both
    are empty."""
    if not classes and not relations:
        return []
    return [ObjectRelation(rel, c).token for rel, allowed in RELATION_CLASSES.items()
            for c in allowed
            if (not classes or c in classes) and (not relations or rel in relations)]


@dataclass(frozen=True, eq=False)
class ObjectDetections:
    """Columnar object detections in one frame: ``xyxy`` (N,4) float32 pixels, ``confidence``
    (N,), ``object_class`` N classes."""

    xyxy: np.ndarray
    confidence: np.ndarray
    object_class: tuple[ObjectClass, ...]

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4) or self.confidence.shape != (n,) or len(self.object_class) != n:
            raise ValueError(f"ObjectDetections: xyxy {self.xyxy.shape}, confidence "
                             f"{self.confidence.shape} and {len(self.object_class)} classes differ")

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> "ObjectDetections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), ())


@dataclass(frozen=True)
class ObjectObservation:
    """One tracked object in one sampled frame (``obj_id`` counts from ``OBJECT_ID_BASE``, so it
    never names a person's track)."""

    frame_number: int
    t_s: float
    obj_id: int
    object_class: ObjectClass
    xyxy: tuple[float, float, float, float]
    confidence: float


#: Object tracks' ids start here (people's tracks count from 1 in the same video).
OBJECT_ID_BASE = 10000
