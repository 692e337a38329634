"""Per-track aggregation of per-frame age/gender: the last trust gate, disagreement across a
track's frames.

Per frame, the backends answer only what passes ``pipeline.faces``' gates (size, blur, colour,
head turn and tilt, mirror image, margin). A track's age is the median over its frames with an
age, with the inter-quartile range as its spread. Its
gender is the majority among frames with a trusted gender, reported with the majority's share as
its confidence, and only when at least ``ATTR_MIN_AGREEING_FRAMES`` frames agree (one for a
one-frame track such as a still image) and the share reaches ``ATTR_MIN_GENDER_SHARE``;
otherwise UNKNOWN. Age follows the same rule: too few confident frames -> ``None``.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from pipeline import thresholds as T
from pipeline.records import Gender, PersonObservation


def summarize_attributes(
    observations: Sequence[PersonObservation],
) -> tuple[float | None, float | None, Gender, float | None]:
    """Observations of one track -> ``(age, age_spread, gender, gender_confidence)``."""
    n = len(observations)
    if n == 0:
        return None, None, Gender.UNKNOWN, None
    need = min(T.ATTR_MIN_AGREEING_FRAMES, n)

    ages = np.array([o.age for o in observations if o.age is not None and np.isfinite(o.age)],
                    dtype=np.float64)
    age = spread = None
    if len(ages) >= need:
        age = float(np.median(ages))
        q1, q3 = np.percentile(ages, [25, 75])
        spread = float(q3 - q1)

    votes = Counter(o.gender for o in observations if o.gender is not Gender.UNKNOWN)
    gender, confidence = Gender.UNKNOWN, None
    if votes:
        top, count = votes.most_common(1)[0]
        share = count / sum(votes.values())
        if count >= need and share >= T.ATTR_MIN_GENDER_SHARE:
            gender, confidence = top, round(float(share), 3)
    return age, spread, gender, confidence
