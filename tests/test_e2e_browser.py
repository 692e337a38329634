"""End to end in a real browser: ``streamlit run app.py`` on 127.0.0.1 (a free port, a temporary
data folder, the embedded PostgreSQL of the test session, a library folder holding the dev fall
clip Fall01), driven by Playwright in Debian's chromium. It starts the analysis, watches the
progress bar move and reach done, opens Highlights and sees the fall, runs a search and sees a
cited answer. Screenshots go to test-artifacts/ (look at them: they are what an analyst sees)."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app_support import REPO, link_clips

pytestmark = [pytest.mark.browser, pytest.mark.db, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not become healthy in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(pg_url, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    from fixtures_services import reset_database

    reset_database(pg_url)
    library = tmp_path / "library"
    link_clips(library, "clips/falls/Fall01.mp4")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VA_", "POSTGRES_", "S3_BUCKET_", "DATABASE_URL",
                                "AWS_BEDROCK_REGION"))}
    env.update(DATABASE_URL=pg_url, VA_DATA_DIR=str(tmp_path / "var"),
               VA_LIBRARY_DIR=str(library), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               YOLO_OFFLINE="1", OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    port = _free_port()
    log = tmp_path / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "app.py"),
             "--server.address", "127.0.0.1", "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"e2e_{name}.png"), full_page=True)


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)


def test_analyst_flow_in_a_real_browser(server):
    from playwright.sync_api import expect, sync_playwright

    url, log = server
    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            # A deep link as the fresh server's first request (a citation opened after a
            # restart) still gets the app's navigation, not Streamlit's file-list sidebar.
            page.goto(f"{url}/search")
            page.get_by_role("heading", name="Search").first.wait_for()
            expect(page.locator('[data-testid="stSidebarNav"] a', has_text="Video detail")) \
                .to_be_visible()
            page.goto(url)
            page.get_by_role("heading", name="Analyze a video").wait_for()
            expect(page.get_by_role("combobox", name="Video in the library folder")) \
                .to_have_value("Fall01.mp4")
            _shot(page, "1_analyze")

            page.get_by_role("button", name="Start analysis").click()
            # The progress bar moves and reaches done.
            bar = page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
            seen: list[int] = []
            done = page.get_by_text("Fall01.mp4 is done")
            deadline = time.monotonic() + 300
            shot_mid = False
            while time.monotonic() < deadline:
                if done.count():
                    break
                for t in bar.all_inner_texts():
                    m = re.search(r"(\d+)%", t)
                    if m and (not seen or int(m.group(1)) != seen[-1]):
                        seen.append(int(m.group(1)))
                        if not shot_mid and 0 < seen[-1] < 100:
                            _shot(page, "2_progress")
                            shot_mid = True
                time.sleep(0.25)
            else:
                _shot(page, "2_timeout")
                pytest.fail(f"no 'done' after 300 s; progress seen {seen}\n"
                            f"{log.read_text()[-3000:]}")
            assert len(set(seen)) >= 2, f"the progress bar did not move: {seen}"
            assert seen == sorted(seen), f"progress went backwards: {seen}"
            expect(page.get_by_role("link", name="Open highlights")).to_be_visible()
            _shot(page, "3_done")

            _nav(page, "Highlights")
            page.locator('[data-testid="stImage"] img, [data-testid="stMain"] '
                         '[data-testid="stAlert"]').first.wait_for()
            if page.get_by_text("No highlights for these filters").count():
                _shot(page, "4_no_highlights")
                pytest.fail("Fall01 gave no highlight: the engine's fall rules must find its "
                            "fall (issue 2)")
            cards = page.locator('[data-testid="stMarkdownContainer"]',
                                 has_text=re.compile(r"(falling|collapse) · \d\d:\d\d · track"))
            expect(cards.first).to_be_visible()
            _shot(page, "4_highlights")
            page.locator('[data-testid="stMain"] [data-testid="stButton"] button',
                         has_text=re.compile(r"Open$")).first.click()
            page.locator('[data-testid="stVideo"]').first.wait_for()
            _shot(page, "5_highlight_open")

            _nav(page, "Search")
            page.get_by_label("Question").fill("a person falls down")
            page.get_by_role("button", name="Search").click()
            page.get_by_role("heading", name="Answer").wait_for()
            citation = page.locator('a[href*="video?video_id="]').first
            expect(citation).to_be_visible()
            assert re.search(r"event \d+", citation.inner_text())
            _shot(page, "6_search")

            page.locator("button", has_text=re.compile(r"event \d+, ")).first.click()
            page.get_by_role("heading", name="Video detail").wait_for()
            page.get_by_role("heading", name=re.compile(r"^Event \d+: ")).wait_for()
            _shot(page, "7_video_detail")
        finally:
            browser.close()
