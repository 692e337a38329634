"""Issue 20's done-when test for review marks: the real engine analyses Fall01, the analyst
confirms its fall on the Review page (key Y's button) and calls a second incident a false alarm
with the CLI; the Analyze page and the CLI's ``run`` say how many marks the video has before the
re-run; the re-run (``python -m pipeline run``, the real engine and the real replace_events on
the embedded PostgreSQL) finds the fall again under a new event id and the mark is carried over;
the incident the new run does not find keeps its mark, listed as "no longer detected"."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app_support import (
    all_text, analyse, link_clips, new_app, reset_app_caches, set_app_env, texts,
)
from conftest import REPO
from services.review import review

pytestmark = [pytest.mark.db, pytest.mark.slow]


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=dict(
        os.environ), capture_output=True, text=True, timeout=timeout)


def test_rerun_of_a_marked_video_carries_the_mark_and_keeps_the_vanished_one(
        db_settings, db_pool, tmp_path, monkeypatch):
    (clip,) = link_clips(tmp_path / "library", "clips/falls/Fall01.mp4")
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, tmp_path / "library")
    reset_app_caches()
    vid = analyse(db_settings, clip)
    first = review.review_items(db_settings, review.IncidentFilter(video_ids=(vid,)))
    (fall,) = [i for i in first if i.event.event_type.value == "falling"]

    # An incident of an earlier analysis that this engine does not report (a fight at 1-2 s).
    with db_pool.connection() as conn:
        ghost = conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids, start_t_s, end_t_s) VALUES (%s, 100000,"
            " 'violent', 1.5, 45, 0.7, 1, 'violent', '{1}', 1.0, 2.0) RETURNING event_id",
            (vid,)).fetchone()[0]

    at = new_app().run()
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, at.exception
    at.multiselect(key="review.types").set_value(["falling"]).run()
    at.button(key="review.confirm").click().run()  # Y
    assert not at.exception, at.exception
    r = _cli("review", "mark", str(ghost), "false_alarm", "--note", "nobody fights here")
    assert r.returncode == 0, r.stderr

    at.switch_page("app_pages/analyze.py").run()  # before launch: how many marks
    warn = " ".join(texts(at, "warning"))
    assert f"Video {vid} has 2 review marks (1 confirmed, 1 false alarm)" in warn.replace(
        "\\", ""), warn

    r = _cli("run", "--input", str(clip), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"note: Video {vid} has 2 review marks (1 confirmed, 1 false alarm)" in r.stderr

    r = _cli("review", "list", "--video-id", str(vid), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    falls = [x for x in rows if x["event_type"] == "falling"]
    assert len(falls) == 1 and falls[0]["incident_id"] not in (None, fall.event_id)
    assert (falls[0]["mark"], falls[0]["status"]) == (
        "confirmed", "carried over from the earlier analysis")
    assert abs(falls[0]["start_t_s"] - fall.start_s) < 1.0
    (gone,) = [x for x in rows if x["event_type"] == "violent"]
    assert (gone["incident_id"], gone["mark"], gone["note"], gone["status"]) == (
        None, "false_alarm", "nobody fights here", "no longer detected")

    reset_app_caches()
    at = new_app().run()
    at.switch_page("app_pages/review.py").run()
    assert not at.exception, at.exception
    assert "carried over from the earlier analysis" in all_text(at)
    (exp,) = [x for x in at.expander if x.label.startswith("No longer detected")]
    assert any("nobody fights here" in t for t in texts(exp, "markdown"))
