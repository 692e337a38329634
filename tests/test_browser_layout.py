"""Issue 20's walkthrough defects that only a real browser shows (Debian's chromium through
Playwright, on seeded rows: no engine run): filters that survive a page change, Review's mark
buttons keeping their text and its list at full width at 1024 px, Video detail's figures not
cut ("com...", "30.0...") at 1024 px, and the "Actions over time" legend without a scrollbar.
Without chromium or Playwright this test FAILS."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app_support import REPO

pytestmark = [pytest.mark.browser, pytest.mark.db]

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


def _seed(pg_url: str) -> None:
    import psycopg

    from fixtures_services import reset_database

    reset_database(pg_url)
    from app_support import ensure_user
    from settings import Settings

    ensure_user(Settings(database_url=pg_url), "ana", "analyst")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        vid = conn.execute(
            "INSERT INTO db_video (name, analysis_status, duration_s, fps, frame_count, width,"
            " height) VALUES ('Fall01.mp4', 'completed', 7.2, 30, 216, 640, 480)"
            " RETURNING video_id").fetchone()[0]
        rows = [("person", t, a) for t, a in ((0.5, "standing"), (1.5, "walking"),
                                              (2.5, "walking"), (4.0, "falling"),
                                              (5.0, "sitting"), (6.0, "lying"))]
        rows += [("falling", 4.2, "falling"), ("violent", 1.0, "violent"),
                 ("anomaly", 2.0, "running")]
        for seq, (kind, t, action) in enumerate(rows):
            conn.execute(
                'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
                " confidence, obj_id, action, track_ids, start_t_s, end_t_s) VALUES (%s, %s,"
                " %s, %s, %s, 0.9, 0, %s, '{0}', %s, %s)",
                (vid, seq, kind, t, int(t * 30), action, None if kind == "person" else t - 0.3,
                 None if kind == "person" else t + 0.6))


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


def _open(page, url: str, heading: str) -> None:
    """A deep link in a fresh tab: the sign-in first, then the page it names."""
    from test_e2e_browser import _sign_in

    page.goto(url)
    _sign_in(page, "ana", heading)
    page.wait_for_timeout(2500)


def _clipped(page, selector: str) -> list[str]:
    """Texts of the elements matching ``selector`` that are cut (wider than their box)."""
    return page.eval_on_selector_all(
        selector, "els => els.filter(e => e.scrollWidth > e.clientWidth + 1)"
                  ".map(e => e.innerText)")


def test_layout_and_filters_in_chromium(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        _open(page, f"{app_url}/video", "Video detail")
        values = page.locator("[data-testid=stMetricValue]").all_inner_texts()
        assert "completed" in values and "30.00 fps" in values, values
        assert _clipped(page, "[data-testid=stMetricValue] div") == []

        _open(page, f"{app_url}/review", "Review")
        labels = " | ".join(page.locator("[data-testid=stButton] button").all_inner_texts())
        for name in ("Confirm", "False alarm", "Reviewed", "Mark all as reviewed (3)"):
            assert name in labels, labels
        assert _clipped(page, "[data-testid=stButton] button p") == []
        table = page.locator("[data-testid=stDataFrame]").first.bounding_box()
        main = page.locator("[data-testid=stMainBlockContainer]").first.bounding_box()
        assert table["width"] >= 0.7 * main["width"], (table, main)  # full width: all columns

        # Filters survive a visit to another page (Review -> Events -> Review).
        page.set_viewport_size({"width": 1440, "height": 900})
        page.locator("[data-testid=stMultiSelect]").first.locator("input").click()
        page.get_by_role("option", name="violent").click()
        page.keyboard.press("Escape")
        page.wait_for_timeout(2000)
        page.get_by_role("link", name="Events").click()
        page.get_by_role("heading", name="Events").first.wait_for()
        page.wait_for_timeout(3000)
        # The timeline's legend lists every action without a scrollbar.
        legend = page.locator(".js-plotly-plot .legend").first
        names = legend.locator(".legendtext").evaluate_all("els => els.map(e => e.textContent)")
        assert {"standing", "walking", "falling", "sitting", "lying"} <= set(names), names
        assert legend.locator(".scrollbar").count() == 0 or all(
            (b or {}).get("height", 0) == 0
            for b in (s.bounding_box() for s in legend.locator(".scrollbar").all()))
        page.get_by_role("link", name="Review").click()
        page.get_by_role("heading", name="Review").first.wait_for()
        page.wait_for_timeout(3000)
        chips = page.locator("[data-testid=stMultiSelect]").first.inner_text()
        assert "violent" in chips, chips
        browser.close()
