"""Issue 21, items 5 and 6: one-line errors with exit code 2 instead of tracebacks (a symlink loop
as --input for run and enqueue; a full disk while the highlight frames are copied; a search
--event-type outside the vocabulary), and ``enqueue`` refusing what ``run`` refuses (a missing
path, a text file, a folder) without queueing a row."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import pytest

import conftest
from conftest import REPO
from pipeline.records import EventType
from rel_support import FIGHT, runs
from services import database


def _cli(args, tmp_path, pg_url=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VA_", "POSTGRES_"))}
    env.update({"HF_HUB_OFFLINE": "1", "VA_DATA_DIR": str(tmp_path / "var")})
    if pg_url:
        env["DATABASE_URL"] = pg_url
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _one_line_rc2(p):
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr


def _counts(settings):
    with database.pooled(settings) as conn:
        return (conn.execute("SELECT count(*) FROM db_video").fetchone()[0],
                conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0])


@pytest.mark.db
@pytest.mark.parametrize("command", ["run", "enqueue"])
def test_symlink_loop_is_one_line(command, db_settings, pg_url, tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    a.symlink_to(b)
    b.symlink_to(a)
    p = _cli([command, "--input", str(a)], tmp_path, pg_url)
    _one_line_rc2(p)
    assert "loop" in p.stderr
    assert _counts(db_settings) == (0, 0)


@pytest.mark.db
@pytest.mark.parametrize("kind", ["missing", "text", "directory"])
def test_enqueue_checks_local_inputs_like_run(kind, db_settings, pg_url, tmp_path):
    path = tmp_path / "clip.mp4"
    if kind == "text":
        path.write_text("this is not a video")
    elif kind == "directory":
        path.mkdir()
    good = conftest.testdata_path(FIGHT)
    # The good input is listed first: nothing is queued when any input is refused.
    p = _cli(["enqueue", "--input", str(good), "--input", str(path)], tmp_path, pg_url)
    _one_line_rc2(p)
    assert str(path) in p.stderr
    assert p.stdout == ""
    assert _counts(db_settings) == (0, 0)


@pytest.mark.parametrize("value", ["nonsense", "falling'; DROP TABLE db_event; --", "1=1"])
def test_search_event_type_lists_the_allowed_values(value, pg_url, tmp_path):
    p = _cli(["search", "a person falls", "--event-type", value, "--no-answer"], tmp_path,
             pg_url)
    _one_line_rc2(p)
    for t in EventType:
        assert t.value in p.stderr
    assert "is not an event type" in p.stderr


@pytest.mark.db
@pytest.mark.slow
def test_disk_full_while_copying_highlight_frames(db_settings, pg_url, tmp_path, monkeypatch,
                                                  capsys):
    """The copy of a highlight frame into the storage folder raises ENOSPC (simulated: the
    storage's copy is patched to raise the OSError a full disk gives; the engine's own output
    files are written normally)."""
    from services import cli

    real = shutil.copyfile
    calls = []

    def copy(src, dst, *a, **k):
        if "highlights" in str(dst) and str(dst).startswith(str(db_settings.data_dir)):
            calls.append(dst)
            with open(dst, "wb") as f:  # a partial frame, as a full disk leaves one
                f.write(b"\xff\xd8")
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(shutil, "copyfile", copy)
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("VA_DATA_DIR", str(db_settings.data_dir))
    monkeypatch.setenv("VA_PROPOSALS", "none")
    rc = cli.main(["run", "--input", str(conftest.testdata_path(FIGHT)), "--quiet",
                   "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert calls, "no highlight frame was copied: the test did not reach the fault"
    assert rc == 2, err[-2000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "disk is full" in lines[0], err[-2000:]
    assert "Traceback" not in err
    (vid,) = [r[0] for r in _video_ids(db_settings)]
    (run,) = runs(db_settings, vid)
    assert run[1] == "failed" and "disk is full" in run[2], run
    frames = db_settings.data_dir / "storage" / "highlights"
    assert not any(p.is_file() for p in frames.rglob("*")) if frames.exists() else True


def _video_ids(settings):
    with database.pooled(settings) as conn:
        return conn.execute("SELECT video_id FROM db_video").fetchall()
