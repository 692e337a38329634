"""A colour query in a real browser (Debian's chromium through Playwright, on seeded rows: no
engine run): "a man in a red jacket" on the Search page finds the man in red, not the one in
blue (in the matching moments), and says what it understood.
Without chromium or Playwright this test FAILS."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app_support import REPO

pytestmark = [pytest.mark.browser, pytest.mark.db]


def _seed(pg_url: str) -> None:
    import psycopg

    from app_support import ensure_user
    from fixtures_services import reset_database
    from settings import Settings

    reset_database(pg_url)
    ensure_user(Settings(database_url=pg_url), "ana", "analyst")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        vid = conn.execute(
            "INSERT INTO db_video (name, analysis_status, duration_s, fps, frame_count, width,"
            " height) VALUES ('lobby.mp4', 'completed', 6.0, 30, 180, 640, 480)"
            " RETURNING video_id").fetchone()[0]
        people = ((1, "red", "blue", "{carrying:backpack}",
                   "a man in a red top (jacket, shirt) and blue trousers (pants), carrying a "
                   "backpack, was walking"),
                  (2, "blue", "black", "{}",
                   "a man in a blue top (jacket, shirt) and black trousers (pants), was walking"))
        seq = 0
        for t in (0.5, 1.5, 2.5):
            for oid, up, low, rels, text in people:
                conn.execute(
                    'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
                    " confidence, obj_id, action, gender, age_group, track_ids, sentence,"
                    " upper_colour, lower_colour, relations) VALUES (%s, %s, 'person', %s, %s,"
                    " 0.9, %s, 'walking', 'male', 'middle', %s, %s, %s, %s, %s)",
                    (vid, seq, t, int(t * 30), oid, [oid], f"at 00:0{int(t)} {text}", up, low,
                     rels))
                seq += 1


@pytest.fixture
def app_url(pg_url, tmp_path):
    from app_support import require_browser

    require_browser()
    from test_e2e_browser import _free_port, _wait_healthy

    _seed(pg_url)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VA_", "POSTGRES_", "S3_BUCKET_", "DATABASE_URL"))}
    env.update(DATABASE_URL=pg_url, VA_DATA_DIR=str(tmp_path / "var"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    port, log = _free_port(), tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"), "--server.address",
             "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"], cwd=REPO, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        from app_support import stop_process

        stop_process(proc)


def _matching(body: str) -> str:
    """The "Matching moments" part of the page's text (not the closest ones below it)."""
    start = body.find("Matching moments")
    assert start >= 0, body[:2000]
    end = body.find("Closest moments", start)
    return body[start:end if end >= 0 else None]


def test_a_colour_query_in_chromium(app_url):
    from playwright.sync_api import sync_playwright

    from test_browser_layout import ARGS, CHROMIUM
    from test_e2e_browser import _sign_in

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{app_url}/search")
        _sign_in(page, "ana", "Search")
        page.get_by_label("Question").fill("a man in a red jacket")
        page.get_by_role("button", name="Search").click()
        page.get_by_text("understood:").first.wait_for(timeout=120_000)
        page.get_by_text("Matching moments").first.wait_for(timeout=120_000)
        page.get_by_text("red top").last.wait_for(timeout=60_000)
        page.wait_for_timeout(2000)  # the rest of the list
        body = page.locator("[data-testid=stMain]").inner_text()
        assert "gender: male; upper body: red" in body, body[:2000]
        found = _matching(body)
        assert "red top" in found and "blue top" not in found, body[:3000]
        browser.close()
