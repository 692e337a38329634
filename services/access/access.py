"""Users and access: local accounts (argon2id password hashes), single sign-on by e-mail, sign-in
sessions with an idle expiry, the sign-in throttle, the role check every action makes, and the
audit trail's writes.

Every action that changes something takes the acting user (``actor``): a ``Session`` (a signed-in
browser; its token is checked against the database on every call, so a role change or a removed
account takes effect at once and a forged or expired token is refused) or ``OPERATOR`` (the
command line on the server, which can reach the database anyway). ``require`` is the one check.
No Streamlit here; the pages keep a ``Session`` in their session state.
"""
from __future__ import annotations

import getpass
import hashlib
import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import Union

from db import audit as audit_db
from db import users as users_db
from db.audit import AuditAction, AuditEntry, AuditFilter
from db.users import Role, UserRow
from services import database
from services.errors import ServiceError

log = logging.getLogger("va.services.access.access")

#: Failed sign-ins for one name, within FAILURE_WINDOW_S of each other, before it must wait.
MAX_FAILURES = 5
LOCK_S = 5 * 60
FAILURE_WINDOW_S = 15 * 60
MIN_PASSWORD_CHARS = 10
#: What a fresh workbench (no accounts) tells its first visitor to run on the server.
FIRST_ADMIN_COMMAND = "python -m pipeline users add admin --role admin"

__all__ = ["Role", "AuditAction", "AuditEntry", "AuditFilter", "UserRow", "Session",
           "Identity", "OPERATOR", "AccessDenied", "SignInError", "AccountError", "require",
           "identity", "sign_in", "sign_in_sso", "sign_out", "no_users", "list_users",
           "add_user", "set_role", "remove_user", "reset_password", "audit_entries",
           "audit_actors", "record", "FIRST_ADMIN_COMMAND"]


class AccessDenied(ServiceError):
    """Not signed in, signed out, expired, or a role that may not do this."""


class SignInError(ServiceError):
    """A sign-in refused: wrong name or password, a name that must wait, an unknown e-mail."""


class AccountError(ServiceError):
    """A user-management request that cannot be done (bad name, short password, last admin)."""


@dataclass(frozen=True)
class Session:
    """A signed-in browser session, as a page holds it. Only the token's hash is stored."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class Operator:
    """The command line on the server (it reaches the database directly): acts as an admin."""

    @property
    def name(self) -> str:
        try:
            return f"cli:{getpass.getuser()}"
        except (KeyError, OSError):
            return "cli"


OPERATOR = Operator()
Actor = Union[Session, Operator]


@dataclass(frozen=True)
class Identity:
    """Who acts, with the role the database gives them now."""

    name: str
    role: Role
    via: str  # password | sso | cli

    def may(self, role: Role | str) -> bool:
        return self.role.allows(Role(role))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _hasher():
    from argon2 import PasswordHasher, Type

    return PasswordHasher(type=Type.ID)  # argon2id, argon2-cffi's RFC 9106 low-memory profile


def _idle_s(settings) -> int:
    return int(settings.session_idle_minutes) * 60


def record(conn, who: str, action: AuditAction | str, **kw) -> int:
    """One audit row on an open connection (inside the action's own transaction)."""
    return audit_db.record(conn, who, action, **kw)


def event_subject(conn, event_id: int) -> dict:
    return audit_db.event_subject(conn, event_id)


def video_subject(conn, video_id: int) -> dict:
    return audit_db.video_subject(conn, video_id)


# --- the check ---------------------------------------------------------------------------------


def identity(settings, session: Session | None) -> Identity | None:
    """The signed-in user behind ``session`` (marking it active), or None when it is missing,
    unknown (forged), expired after the idle time, or its user was removed."""
    if not isinstance(session, Session) or not session.token:
        return None
    with database.pooled(settings) as conn:
        u = users_db.touch_session(conn, _token_hash(session.token), _idle_s(settings))
    return None if u is None else Identity(name=u.name, role=u.role, via=u.via)


def still_active(settings, session: Session | None) -> bool:
    """Whether ``session`` is still signed in, without counting this as activity: for the live
    parts of a page that redraw every second (they must not keep an idle session alive, nor keep
    showing data to one that ended)."""
    if not isinstance(session, Session) or not session.token:
        return False
    with database.pooled(settings) as conn:
        return users_db.session_alive(conn, _token_hash(session.token), _idle_s(settings))


def require(settings, actor: Actor | None, role: Role | str) -> Identity:
    """The acting user when their current role allows ``role``; else ``AccessDenied``."""
    needed = Role(role)
    if isinstance(actor, Operator):
        return Identity(name=actor.name, role=Role.ADMIN, via="cli")
    who = identity(settings, actor) if isinstance(actor, Session) else None
    if who is None:
        raise AccessDenied("you are not signed in (or your session expired); sign in again")
    if not who.may(needed):
        with database.pooled(settings) as conn:
            record(conn, who.name, AuditAction.ACCESS_DENIED,
                   detail=f"needs {needed.value}, has {who.role.value}")
        raise AccessDenied(f"{who.name} is a {who.role.value}; this needs the {needed.value} "
                           f"role (an admin can change roles)")
    return who


# --- signing in and out ------------------------------------------------------------------------


def no_users(settings) -> bool:
    with database.pooled(settings) as conn:
        return users_db.count_users(conn) == 0


def _open(conn, user: UserRow, via: str) -> Session:
    token = secrets.token_urlsafe(32)
    users_db.open_session(conn, _token_hash(token), user.user_id, via)
    return Session(token)


def sign_in(settings, name: str, password: str) -> Session:
    """A new session for a local account, or ``SignInError``. Five failures for one name (known
    or not) within 15 minutes make that name wait 5 minutes; every attempt is audited."""
    name = (name or "").strip()[:100]  # what is typed is recorded: bounded
    if not name or not password:
        raise SignInError("enter your user name and password")
    # The failures and audit rows must be committed: nothing is raised inside the block (the
    # pool rolls a connection's transaction back when an exception leaves it).
    refused: str | None = None
    with database.pooled(settings) as conn:
        wait = users_db.locked_for_s(conn, name)
        if wait > 0:
            record(conn, name, AuditAction.SIGN_IN_FAILED, detail="refused: waiting after "
                   f"{MAX_FAILURES} failed sign-ins")
            refused = (f"too many failed sign-ins for {name}: wait "
                       f"{max(1, round(wait / 60))} minute(s) and try again")
        elif not (ok := _verify(users_db.password_hash(conn, name), password)):
            left = users_db.note_failure(conn, name, MAX_FAILURES, LOCK_S, FAILURE_WINDOW_S)
            record(conn, name, AuditAction.SIGN_IN_FAILED,
                   detail="wrong name or password" + ("; now waits 5 minutes" if left == 0
                                                      else f" ({left} of {MAX_FAILURES})"))
            refused = "wrong user name or password" + (
                f"; after {MAX_FAILURES} failed sign-ins {name} must wait {LOCK_S // 60} "
                f"minutes" if left == 0 else "")
        else:
            users_db.clear_failures(conn, name)
            users_db.drop_idle_sessions(conn, _idle_s(settings))  # tabs closed without signing out
            user = users_db.get_user(conn, name)
            if ok == "rehash":
                users_db.set_password_hash(conn, name, _hasher().hash(password))
            session = _open(conn, user, "password")
            record(conn, name, AuditAction.SIGN_IN, detail=f"password, role {user.role.value}")
    if refused is not None:
        raise SignInError(refused)
    return session


def _verify(stored: str | None, password: str) -> bool | str:
    from argon2.exceptions import InvalidHashError, VerificationError

    ph = _hasher()
    if not stored:  # unknown name or an SSO-only account: same work, same answer
        try:
            ph.verify(_dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            pass
        return False
    try:
        ph.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return "rehash" if ph.check_needs_rehash(stored) else True


_DUMMY: list[str] = []  # a real hash of a random password, made once


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(_hasher().hash(secrets.token_hex(16)))
    return _DUMMY[0]


def sign_in_sso(settings, email: str | None) -> Session:
    """A session for the account whose e-mail the identity provider vouched for (``st.user``
    after ``st.login``); its role is that account's. An unknown e-mail is refused and audited."""
    email = (email or "").strip().lower()
    if not email:
        raise SignInError("the identity provider gave no e-mail address; ask an admin")
    with database.pooled(settings) as conn:
        user = users_db.user_by_email(conn, email)
        if user is None:
            record(conn, email, AuditAction.SIGN_IN_FAILED, detail="single sign-on: no account")
        else:
            session = _open(conn, user, "sso")
            record(conn, user.name, AuditAction.SIGN_IN,
                   detail=f"single sign-on ({email}), role {user.role.value}")
    if user is None:
        raise SignInError(f"{email} has no account here; an admin adds it with `python -m "
                          f"pipeline users add NAME --role viewer --email {email} --sso-only`")
    return session


def sign_out(settings, session: Session | None) -> None:
    if not isinstance(session, Session):
        return
    with database.pooled(settings) as conn:
        name = users_db.close_session(conn, _token_hash(session.token))
        if name is not None:
            record(conn, name, AuditAction.SIGN_OUT)


# --- accounts (admin) --------------------------------------------------------------------------


def _check_password(password: str) -> str:
    if password is None or len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if "\x00" in password:
        raise AccountError("the password contains a NUL character")
    return password


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountError(f"unknown role {role!r}; use one of "
                           f"{', '.join(r.value for r in Role)}") from None


def list_users(settings, actor: Actor) -> list[UserRow]:
    require(settings, actor, Role.ADMIN)
    with database.pooled(settings) as conn:
        return users_db.list_users(conn)


def add_user(settings, actor: Actor, name: str, role: Role | str, password: str | None,
             email: str | None = None) -> UserRow:
    """A new account. ``password`` None = single sign-on only (then ``email`` is required)."""
    import psycopg

    who = require(settings, actor, Role.ADMIN)
    role = _role(role)
    name = (name or "").strip()
    if not users_db.valid_name(name):
        raise AccountError(f"{name!r} is not a valid user name: 1-64 letters, digits, '.', '_', "
                           f"'@' or '-', starting with a letter or digit")
    if password is None and not email:
        raise AccountError("give a password or an e-mail for single sign-on")
    hashed = None if password is None else _hasher().hash(_check_password(password))
    try:
        with database.pooled(settings) as conn, conn.transaction():
            user = users_db.add_user(conn, name, role, hashed, email)
            record(conn, who.name, AuditAction.USER_ADD,
                   detail=f"{name} as {role.value}" + (f" ({user.email})" if user.email else ""))
    except psycopg.errors.UniqueViolation:
        raise AccountError(f"a user {name} (or that e-mail) already exists; pick another name, "
                           f"or use set-role / reset-password") from None
    return user


def _existing(conn, name: str) -> UserRow:
    user = users_db.get_user(conn, name)
    if user is None:
        raise AccountError(f"no user {name}; `python -m pipeline users list` shows them")
    return user


def set_role(settings, actor: Actor, name: str, role: Role | str) -> UserRow:
    who = require(settings, actor, Role.ADMIN)
    role = _role(role)
    with database.pooled(settings) as conn, conn.transaction():
        user = _existing(conn, name)
        if user.role is Role.ADMIN and role is not Role.ADMIN and users_db.count_admins(conn) <= 1:
            raise AccountError(f"{name} is the only admin; make another admin first")
        users_db.set_role(conn, name, role)
        record(conn, who.name, AuditAction.ROLE_CHANGE,
               detail=f"{name}: {user.role.value} -> {role.value}")
    return replace(user, role=role)


def remove_user(settings, actor: Actor, name: str) -> None:
    who = require(settings, actor, Role.ADMIN)
    with database.pooled(settings) as conn, conn.transaction():
        user = _existing(conn, name)
        if user.role is Role.ADMIN and users_db.count_admins(conn) <= 1:
            raise AccountError(f"{name} is the only admin; make another admin first")
        users_db.remove_user(conn, name)  # their sessions go with them
        record(conn, who.name, AuditAction.USER_REMOVE, detail=f"{name} ({user.role.value})")


def reset_password(settings, actor: Actor, name: str, password: str) -> None:
    """A new password; the user's open sessions end (they sign in again)."""
    who = require(settings, actor, Role.ADMIN)
    hashed = _hasher().hash(_check_password(password))
    with database.pooled(settings) as conn, conn.transaction():
        _existing(conn, name)
        users_db.set_password_hash(conn, name, hashed)
        users_db.close_user_sessions(conn, name)
        users_db.clear_failures(conn, name)
        record(conn, who.name, AuditAction.PASSWORD_RESET, detail=name)


# --- reading the trail (admin) -----------------------------------------------------------------


def audit_entries(settings, actor: Actor, filt: AuditFilter | None = None) -> list[AuditEntry]:
    require(settings, actor, Role.ADMIN)
    with database.pooled(settings) as conn:
        return audit_db.entries(conn, filt)


def audit_actors(settings, actor: Actor) -> list[str]:
    require(settings, actor, Role.ADMIN)
    with database.pooled(settings) as conn:
        return audit_db.actors(conn)
