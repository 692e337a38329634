"""Helpers for the workbench tests (AppTest pages, the job runner, the browser test): an app
environment on the embedded PostgreSQL of ``fixtures_services`` with a library folder of real
clips from ../shared/testdata, and small waiting helpers."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app.py"

# Variables that would change what the app under test sees (set by a developer's shell).
_SCRUB = ("VA_", "POSTGRES_", "S3_BUCKET_", "S3_ENDPOINT_URL", "AWS_BEDROCK_REGION",
          "DATABASE_URL", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class AppEnv:
    settings: object  # settings.Settings the app reads from the environment
    library: Path


def scrub_env(monkeypatch) -> None:
    for k in list(os.environ):
        if k.startswith(_SCRUB) and k not in ("VA_TEST_DATABASE_URL",):
            monkeypatch.delenv(k, raising=False)


def set_app_env(monkeypatch, database_url: str, data_dir: Path, library: Path | None,
                **extra: str) -> None:
    scrub_env(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("VA_DATA_DIR", str(data_dir))
    if library is not None:
        monkeypatch.setenv("VA_LIBRARY_DIR", str(library))
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


def reset_app_caches() -> None:
    """Forget the process-wide objects of an earlier test (settings, pool handle, worker)."""
    import streamlit as st

    from services import workbench

    workbench.shutdown_runners()
    st.cache_resource.clear()
    st.cache_data.clear()


def link_clips(library: Path, *rels: str) -> list[Path]:
    """Symlink real clips from ../shared/testdata into ``library`` (skips when absent)."""
    from conftest import testdata_path

    library.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in rels:
        src = testdata_path(rel)
        dst = library / src.name
        if not dst.exists():
            dst.symlink_to(src)
        out.append(dst)
    return out


TEST_PASSWORD = "correct horse battery staple"


def ensure_user(settings, name: str, role: str = "admin", email: str | None = None) -> None:
    """A real account in the test database (created by the command line's operator)."""
    from services.access import access

    try:
        access.add_user(settings, access.OPERATOR, name, role, TEST_PASSWORD, email)
    except access.AccountError as e:
        if "already exists" not in str(e):
            raise
        access.set_role(settings, access.OPERATOR, name, role)


def sign_in(at, role: str | None = "admin", name: str | None = None):
    """Sign an AppTest session in the way the sign-in form does: a real account of the test
    database (made when missing), a real ``access.sign_in``, and its session token in the
    session state. The pages and services still check that token in the database. With the
    database unreachable (or ``role`` None) the session stays signed out."""
    if role is None:
        return at
    from services.access import access
    from services.errors import USER_ERRORS
    from settings import Settings

    settings = Settings(database_url=os.environ["DATABASE_URL"])  # noqa: the app's database
    name = name or f"test-{role}"
    try:
        ensure_user(settings, name, role)
        session = access.sign_in(settings, name, TEST_PASSWORD)
    except USER_ERRORS:
        return at
    at.session_state["auth.session"] = session.token
    return at


def new_app(timeout: float = 60.0, role: str | None = "admin"):
    """A fresh AppTest session of the workbench (like a new browser tab), signed in as a user
    with ``role`` (None: signed out)."""
    from streamlit.testing.v1 import AppTest

    return sign_in(AppTest.from_file(str(APP), default_timeout=timeout), role)


def texts(at, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def all_text(at) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning",
                 "error", "success"):
        parts += texts(at, kind)
    return "\n".join(parts)


def wait_for(predicate, timeout: float, every: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def analyse(settings, clip: Path, timeout: float = 300.0, **options) -> int:
    """Run one real analysis through the product's runner; returns the video id."""
    from services import workbench

    svc = workbench.open_services(settings)
    runner = workbench.make_runner(svc)
    try:
        vid = workbench.start_analysis(runner, str(clip), workbench.AnalysisOptions(**options))
        assert runner.wait_idle(timeout), f"analysis of {clip.name} did not finish in {timeout} s"
    finally:
        workbench.shutdown_runners()
    return vid


CHROMIUM = Path("/usr/bin/chromium")


def require_browser() -> None:
    """Fail (never skip) when Debian's chromium or Playwright is missing: the browser tests must
    run in CI."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed at /usr/bin/chromium: the browser test "
                    "cannot run (apt-get install -y chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("Playwright is not installed (pip install -r requirements.txt)")


def stop_process(proc) -> None:
    """Terminate a server the test started; kill it when it does not stop within 20 s."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
