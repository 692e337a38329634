"""Users and access (issue 20) at the service layer, on the test PostgreSQL: argon2id hashes,
sessions checked in the database (forged, expired, signed-out, removed and demoted users are
refused), the sign-in throttle, every action refused for a role that may not do it, deletion
confirmed by the video's name, the append-only audit trail with a row for each action, single
sign-on by e-mail, and the ``users`` / ``audit`` commands."""
from __future__ import annotations

import io
import json

import psycopg
import pytest

from services.access import access

from services.jobs import housekeeping

from services.review import review
from services.access.access import OPERATOR, AccessDenied, Role, Session, SignInError

pytestmark = pytest.mark.db

PW = "a long enough password"


def _user(settings, name, role, email=None, password=PW):
    return access.add_user(settings, OPERATOR, name, role, password, email)


def _session(settings, name, role) -> Session:
    _user(settings, name, role)
    return access.sign_in(settings, name, PW)


def _video(conn, name, status="completed"):
    return conn.execute("INSERT INTO db_video (name, source_uri, analysis_status) VALUES"
                        " (%s, %s, %s) RETURNING video_id", (name, f"/x/{name}", status)
                        ).fetchone()[0]


def _incident(conn, vid):
    return conn.execute(
        'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number, confidence,'
        " obj_id) VALUES (%s, 0, 'falling', 1.0, 30, 0.9, 1) RETURNING event_id", (vid,)
    ).fetchone()[0]


def _last_audit_id(conn) -> int:
    return conn.execute("SELECT coalesce(max(audit_id), 0) FROM audit_log").fetchone()[0]


def _audit_since(conn, first: int) -> list[tuple]:
    return conn.execute("SELECT actor, action, video_id, event_id, detail FROM audit_log"
                        " WHERE audit_id > %s ORDER BY audit_id", (first,)).fetchall()


def test_passwords_are_argon2id_never_plain(db_settings, db_pool):
    _user(db_settings, "ana", "analyst")
    with db_pool.connection() as conn:
        (h,) = conn.execute("SELECT password_hash FROM app_user WHERE name = 'ana'").fetchone()
    assert h.startswith("$argon2id$") and PW not in h
    with pytest.raises(access.AccountError, match="at least 10 characters"):
        _user(db_settings, "bob", "viewer", password="short")
    with pytest.raises(access.AccountError, match="already exists"):
        _user(db_settings, "ana", "viewer")
    with pytest.raises(access.AccountError, match="not a valid user name"):
        _user(db_settings, "no spaces please", "viewer")
    with pytest.raises(access.AccountError, match="unknown role"):
        _user(db_settings, "carl", "superuser")


def test_sessions_are_checked_in_the_database(db_settings, db_pool):
    s = _session(db_settings, "vera", "viewer")
    who = access.identity(db_settings, s)
    assert (who.name, who.role, who.via) == ("vera", Role.VIEWER, "password")
    assert access.require(db_settings, s, Role.VIEWER).name == "vera"
    with pytest.raises(AccessDenied, match="needs the analyst role"):
        access.require(db_settings, s, Role.ANALYST)
    # A forged token (or none, or anything that is not a Session) is refused.
    for forged in (Session("forged-token"), Session(""), None, "vera", who):
        assert access.identity(db_settings, forged) is None
        with pytest.raises(AccessDenied, match="not signed in"):
            access.require(db_settings, forged, Role.VIEWER)
    # A role change takes effect on the session at once.
    access.set_role(db_settings, OPERATOR, "vera", "analyst")
    assert access.require(db_settings, s, Role.ANALYST).role is Role.ANALYST
    # The token itself is not stored, only its hash.
    with db_pool.connection() as conn:
        hashes = [r[0] for r in conn.execute("SELECT token_hash FROM app_session")]
    assert s.token not in hashes and len(hashes) == 1
    access.sign_out(db_settings, s)
    assert access.identity(db_settings, s) is None
    # A removed user's sessions end with the account.
    s2 = access.sign_in(db_settings, "vera", PW)
    _user(db_settings, "root", "admin")
    access.remove_user(db_settings, OPERATOR, "vera")
    assert access.identity(db_settings, s2) is None
    with pytest.raises(SignInError, match="wrong user name or password"):
        access.sign_in(db_settings, "vera", PW)


def test_idle_sessions_expire(db_settings, db_pool):
    settings = db_settings.with_overrides(session_idle_minutes=5)
    s = _session(settings, "ida", "viewer")
    with db_pool.connection() as conn:
        conn.execute("UPDATE app_session SET last_seen_at = now() - interval '4 minutes'")
    assert access.identity(settings, s) is not None  # active 4 minutes ago: still on (and touched)
    with db_pool.connection() as conn:
        conn.execute("UPDATE app_session SET last_seen_at = now() - interval '6 minutes'")
    assert access.identity(settings, s) is None
    with db_pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM app_session").fetchone()[0] == 0


def test_five_failed_sign_ins_make_the_name_wait_five_minutes(db_settings, db_pool):
    _user(db_settings, "tom", "analyst")
    with db_pool.connection() as conn:
        first = _last_audit_id(conn)
    for i in range(access.MAX_FAILURES):
        with pytest.raises(SignInError, match="wrong user name or password"):
            access.sign_in(db_settings, "tom", f"guess number {i}")
    # Now even the right password waits; another name is not affected.
    with pytest.raises(SignInError, match="too many failed sign-ins for tom: wait 5 minute"):
        access.sign_in(db_settings, "tom", PW)
    _user(db_settings, "ann", "viewer")
    assert access.sign_in(db_settings, "ann", PW)
    with db_pool.connection() as conn:
        (until,) = conn.execute("SELECT extract(epoch FROM locked_until - now())"
                                " FROM sign_in_throttle WHERE name = 'tom'").fetchone()
        assert 280 < float(until) <= 300  # recorded in the database
        rows = _audit_since(conn, first)
        failed = [r for r in rows if r[1] == "sign_in_failed" and r[0] == "tom"]
        assert len(failed) == access.MAX_FAILURES + 1 and "waiting" in failed[-1][4]
        # Five minutes later (moved in the database), the right password works again.
        conn.execute("UPDATE sign_in_throttle SET locked_until = now() - interval '1 second'")
    assert access.identity(db_settings, access.sign_in(db_settings, "tom", PW)).name == "tom"
    # A name with no account is throttled the same way (a lock says nothing about who exists).
    for i in range(access.MAX_FAILURES):
        with pytest.raises(SignInError):
            access.sign_in(db_settings, "nobody", f"guess {i}")
    with pytest.raises(SignInError, match="too many failed sign-ins"):
        access.sign_in(db_settings, "nobody", "anything at all")


def test_the_server_refuses_a_viewer_every_action(db_settings, db_pool):
    from services.jobs.job_views import cancel_analysis, launch
    from services.jobs.jobs import JobClient
    from services.setup import Services
    from services.media.sources import save_upload

    viewer = _session(db_settings, "vic", "viewer")
    analyst = _session(db_settings, "ali", "analyst")
    with db_pool.connection() as conn:
        vid = _video(conn, "clip.mp4")
        eid = _incident(conn, vid)
        failed = _video(conn, "bad.mp4", "failed")
    client = JobClient(db_settings)
    try:
        for actor in (viewer, Session("forged")):
            with pytest.raises(AccessDenied):
                launch(client, "/x/new.mp4", actor=actor)
            with pytest.raises(AccessDenied):
                cancel_analysis(client, vid, actor=actor)
            with pytest.raises(AccessDenied):
                review.set_mark(db_settings, eid, "confirmed", actor=actor)
            with pytest.raises(AccessDenied):
                review.clear_mark(db_settings, eid, actor=actor)
            with pytest.raises(AccessDenied):  # the marks' one writer, whatever the call
                review.write_marks(db_settings, [eid], "reviewed", actor=actor)
            with pytest.raises(AccessDenied):
                review.forget_mark(db_settings, 1, actor=actor)
            with pytest.raises(AccessDenied):
                save_upload(Services(db_settings), "a.mp4", b"data", actor=actor)
        for actor in (viewer, analyst):  # deleting and accounts are admins'
            with pytest.raises(AccessDenied):
                housekeeping.delete_video(db_settings, vid, actor=actor, confirm_name="clip.mp4")
            with pytest.raises(AccessDenied):
                housekeeping.clear_failed(db_settings, actor=actor)
            with pytest.raises(AccessDenied):
                housekeeping.delete_upload(db_settings, "local:videos/a.mp4", actor=actor)
            with pytest.raises(AccessDenied):
                access.add_user(db_settings, actor, "mallory", "admin", PW)
            with pytest.raises(AccessDenied):
                access.set_role(db_settings, actor, "vic", "admin")
            with pytest.raises(AccessDenied):
                access.audit_entries(db_settings, actor)
        # Nothing changed: no job, no mark, both videos and the roles as they were.
        with db_pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM db_video").fetchone()[0] == 2
            assert conn.execute("SELECT count(*) FROM event_review").fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 0
            denied = conn.execute("SELECT count(*) FROM audit_log WHERE action ="
                                  " 'access_denied' AND actor IN ('vic', 'ali')").fetchone()[0]
        assert denied >= 10
        assert access.identity(db_settings, viewer).role is Role.VIEWER
        # The analyst may launch, cancel and mark.
        new = launch(client, "/x/new.mp4", actor=analyst)
        assert cancel_analysis(client, new, actor=analyst)
        assert review.set_mark(db_settings, eid, "confirmed", actor=analyst).state.value \
            == "confirmed"
    finally:
        client.shutdown()
    assert failed


def test_deletion_is_admins_confirmed_by_the_name_and_audited(db_settings, db_pool):
    admin = _session(db_settings, "ada", "admin")
    with db_pool.connection() as conn:
        vid = _video(conn, "entrance.mp4")
        first = _last_audit_id(conn)
    with pytest.raises(housekeeping.ServiceError, match="type the video's name exactly: "
                                                        "entrance.mp4"):
        housekeeping.delete_video(db_settings, vid, actor=admin, confirm_name="entrance")
    msg = housekeeping.delete_video(db_settings, vid, actor=admin, confirm_name=" entrance.mp4 ")
    assert "Deleted entrance.mp4" in msg
    with db_pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM db_video").fetchone()[0] == 0
        rows = _audit_since(conn, first)
    assert [(r[0], r[1], r[2]) for r in rows] == [("ada", "delete", vid)]


def test_the_audit_trail_is_append_only(db_settings, db_pool):
    _session(db_settings, "ada", "admin")
    with db_pool.connection() as conn:
        for sql in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log",
                    "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                with conn.transaction():
                    conn.execute(sql)
        assert conn.execute("SELECT count(*) FROM audit_log WHERE actor = 'ada'"
                            ).fetchone()[0] >= 1


def test_every_action_leaves_an_audit_row(db_settings, db_pool):
    from services.jobs.job_views import cancel_analysis, launch
    from services.jobs.jobs import JobClient

    with db_pool.connection() as conn:
        first = _last_audit_id(conn)
        vid = _video(conn, "clip.mp4")
        eid = _incident(conn, vid)
    _user(db_settings, "ada", "admin")
    with pytest.raises(SignInError):
        access.sign_in(db_settings, "ada", "not the password")
    admin = access.sign_in(db_settings, "ada", PW)
    access.add_user(db_settings, admin, "ana", "viewer", PW)
    access.set_role(db_settings, admin, "ana", "analyst")
    access.reset_password(db_settings, admin, "ana", "another long password")
    client = JobClient(db_settings)
    try:
        new = launch(client, "/x/new.mp4", actor=admin)
        cancel_analysis(client, new, actor=admin)
    finally:
        client.shutdown()
    review.set_mark(db_settings, eid, "false_alarm", "a hug", actor=admin)
    housekeeping.delete_video(db_settings, vid, actor=admin, confirm_name="clip.mp4")
    access.remove_user(db_settings, admin, "ana")
    access.sign_out(db_settings, admin)
    with db_pool.connection() as conn:
        rows = _audit_since(conn, first)
    assert [r[1] for r in rows] == [
        "user_add", "sign_in_failed", "sign_in", "user_add", "role_change", "password_reset",
        "launch", "cancel", "review_mark", "delete", "user_remove", "sign_out"]
    assert rows[0][0].startswith("cli")  # the first admin came from the command line
    assert {r[0] for r in rows[2:]} == {"ada"}
    by = {r[1]: r for r in rows}
    assert by["launch"][2] == new and by["cancel"][2] == new
    assert by["review_mark"][2:4] == (vid, eid) and by["review_mark"][4] == "false_alarm: a hug"
    assert by["delete"][2] == vid
    assert by["role_change"][4] == "ana: viewer -> analyst"
    assert all(PW not in (r[4] or "") for r in rows)  # no password in the trail
    # The admin reads it back filtered (the Admin page and `pipeline audit` use this).
    got = access.audit_entries(db_settings, OPERATOR, access.AuditFilter(
        actions=(access.AuditAction.DELETE,), video_id=vid))
    # (newest first; the trail outlives the test database's resets, so ids can repeat)
    assert (got[0].actor, got[0].video_name, got[0].action) == ("ada", "clip.mp4",
                                                                access.AuditAction.DELETE)


def test_the_last_admin_cannot_be_demoted_or_removed(db_settings):
    _user(db_settings, "ada", "admin")
    with pytest.raises(access.AccountError, match="only admin"):
        access.set_role(db_settings, OPERATOR, "ada", "viewer")
    with pytest.raises(access.AccountError, match="only admin"):
        access.remove_user(db_settings, OPERATOR, "ada")


def test_single_sign_on_maps_the_email_to_the_account_and_its_role(db_settings):
    _user(db_settings, "sam", "analyst", email="Sam@Example.org", password=None)
    s = access.sign_in_sso(db_settings, "sam@example.ORG")
    who = access.identity(db_settings, s)
    assert (who.name, who.role, who.via) == ("sam", Role.ANALYST, "sso")
    with pytest.raises(SignInError, match="stranger@example.org has no account here"):
        access.sign_in_sso(db_settings, "stranger@example.org")
    with pytest.raises(SignInError, match="no e-mail"):
        access.sign_in_sso(db_settings, None)
    # An SSO-only account has no password to guess.
    with pytest.raises(SignInError, match="wrong user name or password"):
        access.sign_in(db_settings, "sam", "any password at all")


# --- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_env(db_settings, monkeypatch):
    from app_support import scrub_env

    scrub_env(monkeypatch)
    monkeypatch.setenv("DATABASE_URL", db_settings.database_url)
    monkeypatch.setenv("VA_DATA_DIR", str(db_settings.data_dir))
    return db_settings


def _cli(monkeypatch, capsys, *argv, stdin: str = ""):
    from services.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_users_and_audit_commands(cli_env, monkeypatch, capsys):
    rc, out, err = _cli(monkeypatch, capsys, "users", "add", "admin", "--role", "admin",
                        stdin=PW + "\n")
    assert (rc, out.strip()) == (0, "added admin as admin"), err
    assert access.identity(cli_env, access.sign_in(cli_env, "admin", PW)).role is Role.ADMIN
    rc, out, err = _cli(monkeypatch, capsys, "users", "add", "sam", "--role", "viewer",
                        "--email", "sam@example.org", "--sso-only")
    assert rc == 0, err
    rc, out, _ = _cli(monkeypatch, capsys, "users", "list", "--json")
    users = [json.loads(line) for line in out.splitlines()]
    assert [(u["name"], u["role"], u["password"]) for u in users] == [
        ("admin", "admin", True), ("sam", "viewer", False)]
    assert _cli(monkeypatch, capsys, "users", "set-role", "sam", "analyst")[1].strip() \
        == "sam is now analyst"
    rc, out, err = _cli(monkeypatch, capsys, "users", "reset-password", "admin",
                        stdin="a brand new password\n")
    assert rc == 0 and "a brand new password" not in out + err
    assert access.sign_in(cli_env, "admin", "a brand new password")
    # Bad input: one line, rc 2.
    rc, out, err = _cli(monkeypatch, capsys, "users", "add", "bob", "--role", "viewer",
                        stdin="short\n")
    assert rc == 2 and err.startswith("error: the password must have at least 10")
    rc, _, err = _cli(monkeypatch, capsys, "users", "remove", "nobody")
    assert rc == 2 and "no user nobody" in err and err.count("\n") == 1
    rc, _, err = _cli(monkeypatch, capsys, "users", "add", "eve", "--role", "viewer")
    assert rc == 2 and "no password on stdin" in err
    assert _cli(monkeypatch, capsys, "users", "remove", "sam")[0] == 0
    rc, out, _ = _cli(monkeypatch, capsys, "audit", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    actions = [r["action"] for r in rows]
    for a in ("user_add", "sign_in", "role_change", "password_reset", "user_remove"):
        assert a in actions, (a, actions)
    assert all(PW not in json.dumps(r) for r in rows)
    rc, out, _ = _cli(monkeypatch, capsys, "audit", "--action", "role_change", "--limit", "1")
    assert rc == 0 and out.count("\n") == 1 and "\trole_change\t" in out \
        and "sam: viewer -> analyst" in out
    rc, _, err = _cli(monkeypatch, capsys, "audit", "--action", "nonsense")
    assert rc == 2 and "role_change" in err


def test_launches_from_the_command_line_are_audited(cli_env, monkeypatch, capsys, tmp_path):
    """``pipeline enqueue`` and ``pipeline run`` (storing) leave a launch row naming the
    operator (``cli:<login>``) and the video, as a launch from the Analyze page does; a run
    refused before analysis (a missing file) leaves none."""
    from app_support import link_clips

    (clip,) = link_clips(tmp_path / "lib", "clips/intel/people-detection.mp4")
    with psycopg.connect(cli_env.database_url, autocommit=True) as conn:
        first = _last_audit_id(conn)
    rc, out, err = _cli(monkeypatch, capsys, "enqueue", "--input", str(clip))
    assert rc == 0, err
    queued = int(out.split()[-1])
    rc, out, err = _cli(monkeypatch, capsys, "run", "--input", str(clip), "--quiet",
                        "--output", str(tmp_path / "out"))
    assert rc == 0, err
    assert _cli(monkeypatch, capsys, "run", "--input", str(tmp_path / "missing.mp4"))[0] == 2
    with psycopg.connect(cli_env.database_url, autocommit=True) as conn:
        rows = _audit_since(conn, first)
    launches = [(actor, vid) for actor, action, vid, _, _ in rows if action == "launch"]
    assert len(launches) == 2 and {a for a, _ in launches} == {OPERATOR.name}
    assert launches[0][1] == queued and OPERATOR.name.startswith("cli")
