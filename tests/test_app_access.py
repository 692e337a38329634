"""Sign-in and roles in the workbench's pages (AppTest, the test PostgreSQL): a browser that is not
signed in sees only the sign-in form (on every page), a fresh workbench says how to make the
first admin, the form signs in and throttles, a forged session state is refused, an idle
session ends, a viewer gets no launch, cancel, upload, mark or delete control on any page and
no Admin page, the admin page lists users and the audit trail, and single sign-on maps
``st.user``'s e-mail to the account's role."""
from __future__ import annotations

import pytest

from app_support import (
    TEST_PASSWORD, all_text, ensure_user, new_app, reset_app_caches, set_app_env, texts,
)

pytestmark = pytest.mark.db

PAGES = ("app_pages/analyze.py", "app_pages/review.py", "app_pages/events.py",
         "app_pages/search.py", "app_pages/video.py")
#: Controls that change something: none may be drawn for a viewer.
ACTION_KEYS = ("analyze.start", "analyze.delete_video", "analyze.clear_failed",
               "analyze.delete_upload", "review.confirm", "review.false_alarm",
               "review.reviewed", "review.clear")


@pytest.fixture
def seeded(db_settings, db_pool, monkeypatch, tmp_path):
    """A completed video with a fall incident, a failed job, and a clip in the library."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "clip.mp4").write_bytes(b"not really a video")
    with db_pool.connection() as conn:
        vid = conn.execute("INSERT INTO db_video (name, analysis_status, duration_s) VALUES"
                           " ('Fall01.mp4', 'completed', 7.2) RETURNING video_id").fetchone()[0]
        conn.execute(
            'INSERT INTO db_event (video_id, seq, event_type, "timestamp", frame_number,'
            " confidence, obj_id, action, track_ids, start_t_s, end_t_s) VALUES"
            " (%s, 0, 'falling', 4.2, 126, 0.9, 1, 'falling', '{1}', 4.0, 5.1)", (vid,))
        conn.execute("INSERT INTO db_video (name, analysis_status, error_message) VALUES"
                     " ('bad.mp4', 'failed', 'not a video')")
    set_app_env(monkeypatch, db_settings.database_url, db_settings.data_dir, library)
    reset_app_caches()
    yield db_settings
    reset_app_caches()


def _keys(at) -> set[str]:
    return {w.key for kind in ("button", "text_input", "file_uploader", "radio", "selectbox")
            for w in at.get(kind) if getattr(w, "key", None)}


def _labels(at) -> list[str]:
    return [str(b.label) for b in at.button]


def _is_sign_in(at) -> bool:
    return texts(at, "title") == ["Sign in"]


def test_a_browser_that_is_not_signed_in_sees_only_the_sign_in(seeded):
    ensure_user(seeded, "ada", "admin")
    at = new_app(role=None).run()
    assert not at.exception, at.exception
    assert _is_sign_in(at)
    for page in PAGES + ("app_pages/admin.py",):
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert _is_sign_in(at), (page, texts(at, "title"))
        assert not at.dataframe and not at.metric and "Fall01" not in all_text(at)
        assert [str(b.label) for b in at.button] == ["Sign in"]
        assert "No analysis running." not in texts(at.sidebar, "caption")


def test_a_fresh_workbench_shows_the_command_for_the_first_admin(seeded):
    at = new_app(role=None).run()
    assert _is_sign_in(at)
    assert [c.value for c in at.code] == ["python -m pipeline users add admin --role admin"]
    assert "none is made by default" in all_text(at)
    assert not at.text_input  # no form: there is no account to sign in to


def test_the_form_signs_in_and_throttles_a_name(seeded):
    ensure_user(seeded, "ada", "analyst")
    at = new_app(role=None).run()
    at.text_input(key="auth.name").input("ada")
    at.text_input(key="auth.password").input("wrong password")
    at.button[0].click().run()
    assert _is_sign_in(at) and any("wrong user name or password" in e
                                   for e in texts(at, "error"))
    at.text_input(key="auth.name").input("ada")
    at.text_input(key="auth.password").input(TEST_PASSWORD)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Analyze a video"]
    assert "Signed in as **ada** (analyst)" in texts(at.sidebar, "caption")
    # Sign out: back to the form, and the old token is dead in the database.
    token = at.session_state["auth.session"]
    at.button(key="auth.sign_out").click().run()
    assert _is_sign_in(at)
    forged = new_app(role=None)
    forged.session_state["auth.session"] = token
    assert _is_sign_in(forged.run())
    # Five failures make the name wait, even with the right password.
    for _ in range(5):
        at.text_input(key="auth.name").input("ada")
        at.text_input(key="auth.password").input("another wrong one")
        at.button[0].click().run()
    at.text_input(key="auth.name").input("ada")
    at.text_input(key="auth.password").input(TEST_PASSWORD)
    at.button[0].click().run()
    assert _is_sign_in(at)
    assert any("too many failed sign-ins for ada" in e for e in texts(at, "error"))


def test_a_forged_session_state_is_refused(seeded):
    ensure_user(seeded, "ada", "admin")
    for forged in ("made-up-token", "ada", "test-admin"):
        at = new_app(role=None)
        at.session_state["auth.session"] = forged
        at.session_state["auth.user"] = "ada"  # whatever else a forger might try
        at.session_state["auth.role"] = "admin"
        at.run()
        assert not at.exception, at.exception
        assert _is_sign_in(at), forged
        at.switch_page("app_pages/analyze.py").run()
        assert _is_sign_in(at) and "analyze.start" not in _keys(at)


def test_an_idle_session_ends(seeded, db_pool):
    at = new_app().run()
    assert texts(at, "title") == ["Analyze a video"]
    with db_pool.connection() as conn:
        conn.execute("UPDATE app_session SET last_seen_at = now() - interval '31 minutes'")
    at.run()
    assert _is_sign_in(at)
    assert any("idle for more than 30 minutes" in t for t in texts(at, "info"))


def test_a_viewer_gets_no_launch_cancel_mark_or_delete_control(seeded):
    # The same pages for an admin draw those controls (so this test can fail).
    admin = new_app(role="admin").run()
    admin_keys = set()
    for page in PAGES:
        admin.switch_page(page).run()
        assert not admin.exception, (page, admin.exception)
        admin_keys |= _keys(admin)
    assert {"analyze.start", "analyze.delete_video", "analyze.clear_failed",
            "review.confirm"} <= admin_keys

    at = new_app(role="viewer").run()
    assert not at.exception, at.exception
    assert "Upload" not in at.radio(key="analyze.origin").options
    assert any("Analysts start and cancel analyses" in t for t in texts(at, "info"))
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not _keys(at) & set(ACTION_KEYS), (page, _keys(at) & set(ACTION_KEYS))
        assert not [label for label in _labels(at)
                    if label.startswith(("Delete", "Start", "Cancel", "Confirm", "Clear"))]
    assert "Signed in as **test-viewer** (viewer)" in texts(at.sidebar, "caption")
    # No Admin page for a viewer, and the page refuses one that gets there anyway.
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/admin.py")


def test_the_admin_page_lists_users_and_the_audit_trail(seeded):
    at = new_app(role="admin").run()
    at.switch_page("app_pages/admin.py").run()
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Admin"]
    users = at.dataframe[0].value
    assert list(users["name"]) == ["test-admin"] and list(users["role"]) == ["admin"]
    at.text_input(key="admin.add_name").input("vic")
    at.selectbox(key="admin.add_role").set_value("viewer")
    at.text_input(key="admin.add_password").input("a long enough password")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Added vic as viewer." in texts(at, "success")
    assert list(at.dataframe[0].value["name"]) == ["test-admin", "vic"]
    trail = at.dataframe[1].value
    assert {"user_add", "sign_in"} <= set(trail["what"])
    at.multiselect(key="admin.audit_actions").select("user_add").run()
    assert set(at.dataframe[1].value["what"]) == {"user_add"}


def test_single_sign_on_maps_the_email_to_the_role(seeded):
    from services.access import access

    access.add_user(seeded, access.OPERATOR, "sam", "viewer", None, "sam@example.org")
    sso = {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback",
                    "cookie_secret": "x" * 32, "client_id": "workbench",
                    "client_secret": "secret",
                    "server_metadata_url": "http://127.0.0.1:1/.well-known/openid-configuration"}}
    at = new_app(role=None)
    at.secrets = sso
    at.user = {"is_logged_in": False}
    at.run()
    assert _is_sign_in(at) and at.button(key="auth.sso").label == "Sign in with single sign-on"
    # Back from the identity provider: st.user carries the e-mail; the account gives the role.
    at = new_app(role=None)
    at.secrets = sso
    at.user = {"is_logged_in": True, "email": "Sam@Example.org", "email_verified": True}
    at.run()
    assert not at.exception, at.exception
    assert texts(at, "title") == ["Analyze a video"]
    assert "Signed in as **sam** (viewer)" in texts(at.sidebar, "caption")
    assert "analyze.start" not in _keys(at)
    # An e-mail with no account is refused, and says what an admin runs.
    at = new_app(role=None)
    at.secrets = sso
    at.user = {"is_logged_in": True, "email": "stranger@example.org"}
    at.run()
    assert _is_sign_in(at)
    assert any("stranger@example.org has no account here" in e for e in texts(at, "error"))


def test_pages_act_only_as_the_signed_in_user():
    """The pages reach the actions through the checked functions, as the session's user: never
    as the command line's operator, never through the unchecked queue calls."""
    from app_support import REPO

    bad = []
    for f in sorted((REPO / "app_pages").glob("*.py")) + [REPO / "app.py"]:
        text = f.read_text()
        for needle in ("OPERATOR", "Operator", "start_analysis(", "runner.cancel(", ".submit("):
            if needle in text:
                bad.append(f"{f.name}: {needle}")
        # Every page checks the signed-in user's role before it draws anything.
        if f.parent.name == "app_pages" and not f.name.startswith("_"):
            first = next(line for line in text.splitlines() if line.startswith(
                ("who = ", "auth.require", "svc = ", "settings = ", "st.")))
            if "auth.require(" not in first:
                bad.append(f"{f.name}: first statement is not auth.require: {first}")
    assert not bad, bad


def test_live_parts_do_not_keep_an_idle_session_alive(seeded, db_pool):
    """The sidebar and the Analyze page redraw every second; that is not activity: a session
    idle past its time ends there too (the next redraw shows the sign-in)."""
    from services.access import access
    from settings import Settings

    settings = Settings(database_url=seeded.database_url)
    at = new_app().run()
    session = access.Session(at.session_state["auth.session"])
    with db_pool.connection() as conn:
        conn.execute("UPDATE app_session SET last_seen_at = now() - interval '10 minutes'")
    assert access.still_active(settings, session)  # 10 of 30 idle minutes: still on
    with db_pool.connection() as conn:
        (seen,) = conn.execute("SELECT now() - last_seen_at FROM app_session").fetchone()
    assert seen.total_seconds() > 590  # the check did not count as activity
    with db_pool.connection() as conn:
        conn.execute("UPDATE app_session SET last_seen_at = now() - interval '31 minutes'")
    assert not access.still_active(settings, session)
    assert not access.still_active(settings, access.Session("forged"))
