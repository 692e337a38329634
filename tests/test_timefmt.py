"""Times as the pages write them (issue 13, defect 8) and counted nouns (defect 12)."""
import math

import pytest

from services import timefmt


@pytest.mark.parametrize("t, precise, want", [
    (0.0, False, "0:00"), (4.6, False, "0:04"), (8.7, False, "0:08"), (59.99, False, "0:59"),
    (61.0, False, "1:01"), (3600 + 62, False, "1:01:02"), (4.6, True, "0:04.6"),
    (4.69, True, "0:04.6"), (0.3, True, "0:00.3"), (2.9, True, "0:02.9"), (65.25, True, "1:05.2"),
    (-1.0, False, "0:00"), (None, False, timefmt.UNKNOWN), (math.nan, True, timefmt.UNKNOWN),
])
def test_clock(t, precise, want):
    assert timefmt.clock(t, precise) == want


def test_short_clips_show_tenths_so_rows_differ():
    # Fall01 is about 7 s: whole seconds would make every row read 0:00-0:06.
    assert [timefmt.at(t, 7.2) for t in (0.3, 0.7, 4.6)] == ["0:00.3", "0:00.7", "0:04.6"]
    assert timefmt.at(75.4, 600.0) == "1:15"
    assert timefmt.span(4.0, 6.25, 7.2) == "0:04.0–0:06.2"
    assert timefmt.span(4.0, 4.02, 7.2) == "0:04.0"


def test_duration_reads_like_the_player():
    # The player shows 0:08 for an 8.7 s clip; never a rounded-up 00:09.
    assert timefmt.clock(8.7) == "0:08"
    assert timefmt.duration(8.7) == "0:08.7"
    assert timefmt.duration(125.0) == "2:05"


@pytest.mark.parametrize("t, start, caption", [
    (0.3, 0, "Plays from the start, 0.3 s before the event (0:00.3)."),
    (4.6, 2, "Plays from 0:02.0, 2.6 s before the event (0:04.6)."),
    (10.0, 8, "Plays from 0:08.0, 2.0 s before the event (0:10.0)."),
])
def test_play_caption_matches_where_the_player_starts(t, start, caption):
    assert timefmt.play_from(t) == start
    assert timefmt.play_caption(t, 7.0 if t < 5 else 30.0) == caption


def test_counted():
    assert timefmt.counted(1, "event") == "1 event"
    assert timefmt.counted(0, "event") == "0 events"
    assert timefmt.counted(3, "person", "people") == "3 people"


@pytest.mark.parametrize("longest, top, step", [
    (2.9, 2.9, 0.1), (2.93, 3.0, 0.1), (7.2, 7.2, 0.1), (0.0, 0.1, 0.1), (80.4, 81.0, 1.0),
    (None, 0.1, 0.1),
])
def test_slider_range_ends_on_the_end(longest, top, step):
    # issue 13, defect 9: fi003 (2.9 s) had a maximum of 2.9 with steps of 0.5, so the end
    # handle could not reach the end.
    got_top, got_step = timefmt.slider_range(longest)
    assert (got_top, got_step) == (top, step)
    n = got_top / got_step
    assert abs(n - round(n)) < 1e-6 and got_top >= (longest or 0)


@pytest.mark.parametrize("n, text", [(1, "every frame"), (2, "every 2nd frame"),
                                     (3, "every 3rd frame"), (7, "every 7th frame"),
                                     (11, "every 11th frame"), (13, "every 13th frame"),
                                     (22, "every 22nd frame")])
def test_every_nth_frame(n, text):
    assert timefmt.every_nth(n) == text  # the Analyze page said 'every 3th frame'
