""""Find this person in other videos" in a real browser (Debian's chromium through Playwright,
``streamlit run app.py`` on 127.0.0.1, the people seeded through the store step): on the Video
page the analyst picks a track, asks, sees the other video's track first and opens it.
Without chromium or Playwright this test FAILS (``app_support.require_browser``)."""
from __future__ import annotations

import re

import pytest

from app_support import REPO, require_browser
from test_app_similar import seed_people
from test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, _sign_in, server  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.db]


def test_find_this_person_in_other_videos_in_a_real_browser(server, pg_url):  # noqa: F811
    require_browser()
    from playwright.sync_api import sync_playwright

    from db import connection
    from settings import Settings

    conn = connection.connect_url(pg_url)
    try:
        ids = seed_people(conn, str(REPO.parent / "shared" / "testdata" / "clips" / "falls"
                                    / "Fall01.mp4"))
    finally:
        conn.close()
    assert Settings(database_url=pg_url)  # the server's database
    url, log = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(f"{url}/video?video_id={ids['a.mp4']}")
            _sign_in(page, "ana", "Video detail")
            find = page.get_by_role("button", name="Find this person in other videos")
            find.wait_for(timeout=60_000)
            find.click()
            page.get_by_role("heading", name="Track 1 of a.mp4: the same person elsewhere") \
                .wait_for(timeout=60_000)
            first = page.get_by_role("button", name="b.mp4 · track 7")
            first.wait_for(timeout=30_000)
            first.scroll_into_view_if_needed()
            (REPO / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(REPO / "test-artifacts" / "similar_hits.png"), full_page=True)
            first.click()
            page.wait_for_function(
                "id => location.search.includes('video_id=' + id)", arg=str(ids["b.mp4"]),
                timeout=60_000)
            page.get_by_role("heading", name=re.compile(r"^Event \d+: person at")) \
                .wait_for(timeout=60_000)
        finally:
            browser.close()
