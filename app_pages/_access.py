"""Sign-in for the pages: the sign-in form (local accounts, and single sign-on through
Streamlit's ``st.login`` where ``.streamlit/secrets.toml`` configures it), the session the
browser tab holds, the role check at the top of every page, and sign-out.

The tab keeps only a session token in its session state; every check (``current``, ``require``,
and each action in the services) verifies it against the database, so a forged or expired token,
a removed account or a lowered role is refused on the server."""
from __future__ import annotations

import streamlit as st

from app_pages import _resources as res
from services import workbench as wb

acc = wb.access
KEY = "auth.session"  # the session token; nothing else about the user is trusted from here
EXPIRED = "auth.expired"


def session() -> "wb.access.Session | None":
    token = st.session_state.get(KEY)
    return acc.Session(token) if isinstance(token, str) and token else None


def current(settings) -> "wb.access.Identity | None":
    """The signed-in user (checked in the database now), or None. A token that no longer
    passes (idle too long, signed out elsewhere, account removed) is dropped."""
    s = session()
    if s is None:
        return None
    who = acc.identity(settings, s)
    if who is None:
        st.session_state.pop(KEY, None)
        st.session_state[EXPIRED] = True
    return who


def identify() -> "wb.access.Identity | None":
    """``current`` for the entry file: None too when the settings or the database are not
    usable (the entry file then shows that error alone)."""
    try:
        return current(wb.load_settings())
    except wb.USER_ERRORS:
        return None


def require(role: "wb.Role | str") -> "wb.access.Identity":
    """The first line of every page: the signed-in user when their role allows ``role``;
    otherwise a plain message and a stopped page."""
    svc = res.services()
    who = current(svc.settings)
    if who is None:
        st.warning("You are not signed in (or your session expired). Reload the page to sign in.")
        st.stop()
    if not who.may(role):
        st.error(f"This page needs the {wb.Role(role).value} role; you are a {who.role.value}. "
                 f"An admin can change your role.")
        st.stop()
    return who


def live_check() -> None:
    """First line of a fragment that redraws by itself: when the session has ended (idle,
    signed out elsewhere, account removed), the whole app runs again and shows the sign-in."""
    s = session()
    if s is None:  # signed out in this tab: the sign-in is (being) drawn already
        return
    try:
        alive = acc.still_active(res.services().settings, s)
    except wb.USER_ERRORS:
        return  # the fragment shows the database problem itself
    if not alive:
        st.rerun(scope="app")


def sso_configured() -> bool:
    """An ``[auth]`` section in .streamlit/secrets.toml (OIDC for ``st.login``)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises rather than answer False
        return False


def sso_session(settings, user_info) -> "wb.access.Session | None":
    """The boundary between Streamlit's ``st.user`` and the users table: a session for the
    account with the provider's e-mail (its role is that account's), None when no one is
    signed in with the provider. Raises ``SignInError`` for an e-mail with no account."""
    if not user_info.get("is_logged_in"):
        return None
    if user_info.get("email_verified") is False:
        raise acc.SignInError("the identity provider has not verified your e-mail address")
    return acc.sign_in_sso(settings, user_info.get("email"))


def _signed_in(s: "wb.access.Session") -> None:
    st.session_state[KEY] = s.token
    st.session_state.pop(EXPIRED, None)
    st.rerun()


def sign_in_page() -> None:
    """What a browser that is not signed in sees, and all it sees."""
    svc = res.services()
    settings = svc.settings
    st.title("Sign in")
    if st.session_state.get(EXPIRED):
        st.info(f"Your session ended (signed out, or idle for more than "
                f"{settings.session_idle_minutes} minutes). Sign in again.")
    try:
        empty = acc.no_users(settings)
    except wb.USER_ERRORS as e:
        res.show_error(e, "Cannot read the accounts")
        st.stop()
    if empty:
        st.warning("This workbench has no accounts yet, and none is made by default. On the "
                   "server, create the first admin (it asks for a password):")
        st.code(acc.FIRST_ADMIN_COMMAND, language="bash")
        st.caption("Then reload this page. The admin adds the others on the Admin page or with "
                   "`python -m pipeline users add NAME --role viewer|analyst|admin`.")
        return
    sso = sso_configured()
    if sso and not st.session_state.get(EXPIRED):
        try:
            s = sso_session(settings, st.user.to_dict())
        except wb.USER_ERRORS as e:
            res.show_error(e, "Single sign-on refused")
            if st.button("Sign out of single sign-on", key="auth.sso_logout"):
                st.logout()
            s = None
        if s is not None:
            _signed_in(s)
    with st.form("auth.form"):
        name = st.text_input("User name", key="auth.name", autocomplete="username")
        password = st.text_input("Password", type="password", key="auth.password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            _signed_in(acc.sign_in(settings, name, password))
        except wb.USER_ERRORS as e:
            res.show_error(e, "Sign-in refused")
    if sso:
        st.divider()
        for provider in sso_providers():
            label = "Sign in with single sign-on" + (f" ({provider})" if provider else "")
            if st.button(label, key=f"auth.sso{'.' + provider if provider else ''}",
                         icon=":material/key:"):
                st.session_state.pop(EXPIRED, None)
                st.login(provider)


def sso_providers() -> list[str | None]:
    """None for one provider set in ``[auth]`` itself, else the names of ``[auth.NAME]``."""
    auth = st.secrets["auth"]
    if "client_id" in auth:
        return [None]
    return [k for k, v in auth.items() if hasattr(v, "keys")] or [None]


def sidebar(who: "wb.access.Identity") -> None:
    st.caption(f"Signed in as **{wb.text.md_text(who.name)}** ({who.role.value})")
    if st.button("Sign out", key="auth.sign_out", icon=":material/logout:"):
        try:
            acc.sign_out(res.services().settings, session())
        except wb.USER_ERRORS as e:
            res.show_error(e, "Sign-out")
        st.session_state.pop(KEY, None)
        st.session_state[EXPIRED] = True
        if sso_configured() and st.user.get("is_logged_in"):
            st.logout()
        st.rerun()
