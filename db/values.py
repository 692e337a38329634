"""Values as PostgreSQL takes them: finite floats or NULL, Enum values, text without NUL."""
from __future__ import annotations

import math
from typing import Any


def finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


def clean_text(s: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; nothing else is altered."""
    return None if s is None else s.replace("\x00", "")
