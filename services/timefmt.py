"""Times and counts as the pages write them.

Video players show ``m:ss`` and cut the fraction off (0:08 for 8.7 s), so these do too: a time
never reads later than the player's clock at that moment. Short clips (under ``SHORT_CLIP_S``)
get tenths (``0:04.6``): on a 7 s clip every event would otherwise read 0:00-0:06 in whole
seconds. Past an hour: ``h:mm:ss``. ``st.video`` starts at whole seconds only, so
``play_from`` says exactly where the player starts and how far before the event that is.
"""
from __future__ import annotations

import math

SHORT_CLIP_S = 60.0  # clips shorter than this show tenths of a second
PLAY_LEAD_S = 2.0  # the player starts this long before an event (st.video: whole seconds)
UNKNOWN = "–:––"


def _finite(t_s) -> float | None:
    try:
        v = float(t_s)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def precise_for(duration_s: float | None) -> bool:
    """Tenths for clips shorter than a minute (and when the length is unknown but the times are
    small: callers pass the largest time they show)."""
    d = _finite(duration_s)
    return d is not None and d < SHORT_CLIP_S


def clock(t_s, precise: bool = False) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour), or ``m:ss.s`` when ``precise``. Truncated, like a
    player's clock: 4.69 s is 0:04.6 and 8.7 s is 0:08."""
    v = _finite(t_s)
    if v is None:
        return UNKNOWN
    v = max(0.0, v)
    if precise and v < 3600:
        tenths = int(math.floor(v * 10 + 1e-6))
        m, rest = divmod(tenths, 600)
        return f"{m}:{rest // 10:02d}.{rest % 10}"
    s = int(math.floor(v + 1e-6))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def at(t_s, duration_s: float | None) -> str:
    """An event's time in a video of ``duration_s`` seconds."""
    return clock(t_s, precise_for(duration_s))


def span(start_s, end_s, duration_s: float | None) -> str:
    """``0:04.0–0:06.2``; one time when start and end read the same."""
    a, b = at(start_s, duration_s), at(end_s, duration_s)
    return a if a == b else f"{a}–{b}"


def duration(d_s) -> str:
    """A video's length as its player shows it (0:08 for 8.7 s), with tenths on short clips."""
    return clock(d_s, precise_for(d_s))


def play_from(t_s, lead_s: float = PLAY_LEAD_S) -> int:
    """Whole second the player starts at to show an event at ``t_s`` with ``lead_s`` before it."""
    v = _finite(t_s) or 0.0
    return max(0, int(math.floor(v - lead_s)))


def play_caption(t_s, duration_s: float | None, what: str = "the event") -> str:
    """What the player does, in words that match it: 'Plays from 0:02, 2.6 s before the event
    (0:04.6).' or 'Plays from the start, 0.3 s before the event (0:00.3).'"""
    v = max(0.0, _finite(t_s) or 0.0)
    start = play_from(v)
    lead = v - start
    where = "the start" if start == 0 else at(start, duration_s)
    return f"Plays from {where}, {lead:.1f} s before {what} ({at(v, duration_s)})."


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 event', '3 events', '0 events'."""
    n = int(n)
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def slider_range(longest_s) -> tuple[float, float]:
    """(maximum, step) for a time slider over videos up to ``longest_s`` long: tenths on short
    clips, whole seconds beyond; the maximum is a whole number of steps at or past the end, so
    the end handle sits on the end (a 2.9 s clip: 2.9 in steps of 0.1, not 2.9 in steps of
    0.5)."""
    v = max(0.1, _finite(longest_s) or 0.0)
    step = 0.1 if v < SHORT_CLIP_S else 1.0
    top = math.ceil(round(v / step, 6)) * step
    return round(top, 1), step


def every_nth(n: int) -> str:
    """'every frame', 'every 2nd frame', 'every 3rd', 'every 11th', 'every 22nd' ..."""
    n = int(n)
    if n <= 1:
        return "every frame"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"every {n}{suffix} frame"
