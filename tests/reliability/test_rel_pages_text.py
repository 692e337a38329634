"""Defects 8 and 4 in the app: user text (queries, video names, reasons that quote them) is shown
as text, never as markdown or HTML; a failed re-run is shown as such beside the kept result; a
partial result shows its warning."""
from __future__ import annotations

import re

import pytest

from app_support import all_text, new_app, reset_app_caches, set_app_env
from rel_support import FIGHT, copy_clip
from services.jobs.ingest import analyze_source

pytestmark = [pytest.mark.db, pytest.mark.slow]

NAME = "**x** [login here](evil) <b>bold</b> `code`.mp4"
QUERY = "**x** [login here](https://evil.example) \u202egnp.exe <img src=x onerror=alert(1)>"
RENDERED = re.compile(r"(?<!\\)\[login here(?<!\\)\]\(|(?<!\\)\*\*x(?<!\\)\*\*|<b>|<img|\u202e")


def _assert_literal(text: str):
    bad = RENDERED.findall(text)
    assert not bad, (bad, text[:2000])


@pytest.fixture
def app_with_hostile_video(pg_url, tmp_path, monkeypatch):
    from fixtures_services import reset_database
    from settings import Settings

    reset_database(pg_url)
    set_app_env(monkeypatch, pg_url, tmp_path / "var", None, VA_PROPOSALS="none")
    reset_app_caches()
    settings = Settings.from_env()
    clip = copy_clip(FIGHT, tmp_path / "in" / NAME)
    vid = analyze_source(str(clip), settings).video_id
    yield settings, clip, vid
    reset_app_caches()


def test_names_queries_and_reasons_render_as_text(app_with_hostile_video, monkeypatch):
    from services.media import storage as storage_mod
    from services.errors import StorageError

    settings, clip, vid = app_with_hostile_video

    # A re-run that fails with a reason quoting the name: the kept result and the failure show.
    def broken(*a, **k):
        raise StorageError(f"S3 failed on {NAME} (simulated)")

    with monkeypatch.context() as m:
        m.setattr(storage_mod.Storage, "put_highlight", broken)
        with pytest.raises(StorageError):
            analyze_source(str(clip), settings)

    at = new_app().run()
    assert not at.exception, at.exception
    _assert_literal(all_text(at))  # Analyze: the job list and the outcome

    at.session_state["video.id"] = vid
    at.switch_page("app_pages/video.py").run()
    assert not at.exception, at.exception
    shown = all_text(at)
    _assert_literal(shown)
    assert "A later analysis was failed" in shown and "earlier completed analysis" in shown

    at.switch_page("app_pages/search.py").run()
    at.text_input(key="search.query").input(QUERY)
    at.form_submit_button[0].click().run()
    assert not at.exception, at.exception
    _assert_literal(all_text(at))
