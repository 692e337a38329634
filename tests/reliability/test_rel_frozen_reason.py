"""Issue 21, item 7: a job stopped by a frozen database says so once (the hint was repeated),
and the reason recorded when the database is back says that the database froze (it said that
the worker had stopped without finishing). Uses its own embedded server (freezing the session's
would stall other tests)."""
from __future__ import annotations

import time

import pytest

import conftest
from rel_support import FIGHT
from services import database
from services.errors import DatabaseUnavailable
from settings import Settings
from test_rel_frozen_db import own_server  # noqa: F401 - the fixture

pytestmark = [pytest.mark.db, pytest.mark.slow]


def test_frozen_database_reason_said_once_and_recorded(own_server, tmp_path):  # noqa: F811
    from services.jobs.ingest import analyze_source

    url, freeze, thaw, _ = own_server
    s = Settings(database_url=url, data_dir=tmp_path / "var", proposals="none")
    frozen = []

    def on_progress(p):
        if not frozen and p.stage == "analysing frames" and p.fraction > 0.2:
            freeze()
            frozen.append(time.monotonic())

    with pytest.raises(DatabaseUnavailable) as err:
        analyze_source(str(conftest.testdata_path(FIGHT)), s, on_progress=on_progress)
    msg = str(err.value)
    print(msg)
    assert "did not answer within" in msg
    assert msg.count("start the analysis again") == 1, msg
    assert msg.count("check PostgreSQL") == 1, msg
    thaw()
    # The next process that opens the database (any start, `pipeline jobs`, a worker's
    # recovery) records the end the job could not.
    database.mark_stale_jobs(s)
    with database.pooled(s) as conn:
        runs = conn.execute("SELECT status, error_message FROM db_run").fetchall()
        video = conn.execute("SELECT analysis_status, error_message FROM db_video").fetchone()
    assert len(runs) == 1 and runs[0][0] == "failed", runs
    assert "did not answer within" in runs[0][1], runs
    assert "worker" not in runs[0][1], runs
    assert video[0] == "failed" and "did not answer within" in video[1], video
    assert not list((s.data_dir / "pending-ends").glob("*.json"))
