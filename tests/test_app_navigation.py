"""Workbench pages with AppTest: navigation, the empty state of every page on a fresh database,
and the set-up error states (database unreachable, a bad setting, a missing library folder),
shown as one plain line and never as a stack trace."""
from __future__ import annotations

import socket

import pytest

from app_support import all_text, new_app, reset_app_caches, set_app_env, texts

pytestmark = pytest.mark.db

PAGES = {
    "app_pages/analyze.py": "Analyze a video",
    "app_pages/review.py": "Review",
    "app_pages/events.py": "Events",
    "app_pages/search.py": "Search",
    "app_pages/video.py": "Video detail",
}


@pytest.fixture
def empty_app(db_settings, monkeypatch, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, library)
    reset_app_caches()
    yield
    reset_app_caches()


def test_navigation_reaches_every_page(empty_app):
    at = new_app().run()
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Analyze a video"]  # the default page
    for page, title in PAGES.items():
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert texts(at, "title") == [title], page
    # Back to the first page: the app keeps working after a round trip.
    at.switch_page("app_pages/analyze.py").run()
    assert texts(at, "title") == ["Analyze a video"]


def test_empty_states_explain_what_to_do(empty_app):
    at = new_app().run()
    text = all_text(at)
    assert "No videos in the library folder" in text
    assert "No videos analysed yet" in text
    assert "No analysis running" in text
    # What needs Bedrock / the VLM is said plainly, not faked.
    assert "paying and theft actions need the VLM" in text
    assert "Scene descriptions by Claude need Bedrock" in text
    expected = {
        "app_pages/review.py": "Nothing analysed yet",
        "app_pages/events.py": "No events yet",
        "app_pages/search.py": "Nothing to search yet",
        "app_pages/video.py": "No videos yet",
    }
    for page, phrase in expected.items():
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, texts(at, "error"))
        assert any(phrase in t for t in texts(at, "info")), (page, texts(at, "info"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_unreachable_is_one_plain_error_on_every_page(monkeypatch, tmp_path):
    url = f"postgresql://va@127.0.0.1:{_closed_port()}/va"
    set_app_env(monkeypatch, url, tmp_path / "var", None)
    reset_app_caches()
    try:
        at = new_app().run()
        for page in PAGES:
            at.switch_page(page).run()
            assert not at.exception, (page, at.exception)
            errors = texts(at.main, "error")
            assert errors, page
            assert "cannot reach PostgreSQL" in errors[0] and "DATABASE_URL" in errors[0]
            assert "Traceback" not in errors[0] and "\n" not in errors[0]
    finally:
        reset_app_caches()


def test_a_bad_setting_names_the_variable(monkeypatch, tmp_path, db_settings):
    set_app_env(monkeypatch, db_settings.database_url, tmp_path / "var", None,
                VA_FRAME_SKIP="often")
    reset_app_caches()
    try:
        at = new_app().run()
        assert not at.exception
        (err,) = texts(at, "error")
        assert "VA_FRAME_SKIP" in err and "whole number" in err
    finally:
        reset_app_caches()


def test_a_missing_library_folder_is_reported_not_crashed(monkeypatch, tmp_path, db_settings):
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir,
                tmp_path / "no-such-folder")
    reset_app_caches()
    try:
        at = new_app().run()
        assert not at.exception
        assert any("does not exist" in e and "VA_LIBRARY_DIR" in e for e in texts(at, "error"))
        # Upload is still offered.
        assert "Upload" in at.radio(key="analyze.origin").options
    finally:
        reset_app_caches()
