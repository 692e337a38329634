"""Deleting a video (rows, vectors, tracks, marks, frames; an upload's file, never a library
file), clearing failed jobs, and a picked video's facts (issue 13: Analyze)."""
from __future__ import annotations

import numpy as np
import pytest

from services.access.access import OPERATOR
from services.jobs import housekeeping
from services.review import review

pytestmark = pytest.mark.db


def _video(conn, name, uri, status="completed"):
    return conn.execute("INSERT INTO db_video (name, source_uri, analysis_status) VALUES"
                        " (%s, %s, %s) RETURNING video_id", (name, uri, status)).fetchone()[0]


def _event_with_frame(conn, storage_root, vid, key):
    (storage_root / key).parent.mkdir(parents=True, exist_ok=True)
    (storage_root / key).write_bytes(b"jpeg")
    eid = conn.execute(
        'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
        " s3_thumbnail_key) VALUES (%s, 0, 'falling', 1.0, 25, %s) RETURNING event_id",
        (vid, key)).fetchone()[0]
    conn.execute("INSERT INTO event_embedding (event_id, model, dim, embedding) VALUES"
                 " (%s, 'm', 3, %s)", (eid, np.ones(3, np.float32)))
    return eid


def test_delete_an_upload_and_keep_a_library_file(db_settings, db_pool, tmp_path):
    root = db_settings.data_dir / "storage"
    (root / "videos").mkdir(parents=True)
    (root / "videos" / "bad.mp4").write_text("not a video")
    lib = tmp_path / "lib.mp4"
    lib.write_bytes(b"x")
    with db_pool.connection() as conn:
        up = _video(conn, "bad.mp4", "local:videos/bad.mp4", "failed")
        own = _video(conn, "lib.mp4", str(lib))
        eid = _event_with_frame(conn, root, own, "highlights/lib.mp4/1.0s_falling.jpg")
        busy = _video(conn, "busy.mp4", str(lib), "processing")
    review.set_mark(db_settings, eid, "confirmed", actor=OPERATOR)

    msg = housekeeping.delete_video(db_settings, own, actor=OPERATOR, confirm_name="lib.mp4")
    assert "source stays" in msg and lib.exists()
    assert not (root / "highlights/lib.mp4/1.0s_falling.jpg").exists()
    with db_pool.connection() as conn:
        for table in ("db_event", "event_embedding", "event_review"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    assert "the upload" in housekeeping.delete_video(db_settings, up, actor=OPERATOR,
                                                     confirm_name="bad.mp4")
    assert not (root / "videos" / "bad.mp4").exists()
    with pytest.raises(housekeeping.JobConflict, match="cancel its analysis first"):
        housekeeping.delete_video(db_settings, busy, actor=OPERATOR, confirm_name="busy.mp4")
    with pytest.raises(housekeeping.ServiceError, match="does not exist"):
        housekeeping.delete_video(db_settings, own, actor=OPERATOR, confirm_name="lib.mp4")


def test_clear_failed_jobs(db_settings, db_pool):
    with db_pool.connection() as conn:
        ok = _video(conn, "a.mp4", "/x/a.mp4")
        _video(conn, "b.mp4", "/x/b.mp4", "failed")
        _video(conn, "c.mp4", "/x/c.mp4", "cancelled")
    assert housekeeping.clear_failed(db_settings, actor=OPERATOR) == 2
    with db_pool.connection() as conn:
        assert [r[0] for r in conn.execute("SELECT video_id FROM db_video")] == [ok]


def test_source_facts(tmp_path, db_settings):
    import av

    p = tmp_path / "clip.mp4"
    c = av.open(str(p), "w")
    s = c.add_stream("libx264", rate=10)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    for _ in range(25):
        for pkt in s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8),
                                                       format="rgb24")):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    facts = housekeeping.source_facts(db_settings, str(p))
    assert facts.text == "0:02.5 long, 10.00 fps, 64×48"
    bad = tmp_path / "bad.mp4"
    bad.write_text("hello")
    assert housekeeping.source_facts(db_settings, str(bad)) is None
    assert housekeeping.source_facts(db_settings, "s3://b/videos/x.mp4") is None


def test_a_bad_upload_is_refused_before_it_is_stored(db_settings):
    """issue 13, defect 4: a text file named bad.mp4 was stored and queued, and its error
    showed a server path."""
    from services.media import sources
    from services.setup import Services

    svc = Services(db_settings)
    with pytest.raises(sources.StorageError) as e:
        sources.save_upload(svc, "bad.mp4", b"this is not a video", actor=OPERATOR)
    msg = str(e.value)
    assert msg.startswith("bad.mp4 is not a video or photo") and "nothing was stored" in msg
    # issue 20: said once, without brackets in brackets ("(input bad.mp4 is not a readable
    # video (Invalid data ...; it may be ...); give a readable video ...)").
    assert msg.startswith("bad.mp4 is not a video or photo the workbench can read: invalid "
                          "data found when processing input; nothing was stored."), msg
    assert msg.count("(") <= 2 and "((" not in msg and ")" not in msg.split("(")[0]
    assert msg.count("readable video") == 0 and msg.lower().count("upload a video") == 1
    assert "/tmp" not in msg and "va-check" not in msg and str(db_settings.data_dir) not in msg
    assert not list((db_settings.data_dir / "storage").rglob("bad.mp4"))
