"""Accounts, sign-in sessions and the sign-in throttle (migration 0007). SQL only: hashing,
tokens, the rules on roles and the audit rows are in ``services/access/access.py``. Functions take an
open psycopg connection."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class Role(str, Enum):
    """What a user may do; each role may do everything the roles before it may."""

    VIEWER = "viewer"    # browse, search, play
    ANALYST = "analyst"  # + launch and cancel analyses, review marks
    ADMIN = "admin"      # + delete videos, manage users, read the audit trail

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: "Role") -> bool:
        return self.rank >= Role(needed).rank


@dataclass(frozen=True)
class UserRow:
    user_id: int
    name: str
    email: str | None
    role: Role
    has_password: bool
    created_at: datetime | None


@dataclass(frozen=True)
class SessionUser:
    """The user behind a live session."""

    user_id: int
    name: str
    role: Role
    via: str


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # as the table's CHECK says


def valid_name(name: str) -> bool:
    return bool(name) and _NAME.fullmatch(name) is not None


_USER = "user_id, name, email, role, password_hash IS NOT NULL, created_at"


def _user(r) -> UserRow:
    return UserRow(user_id=int(r[0]), name=r[1], email=r[2], role=Role(r[3]),
                   has_password=bool(r[4]), created_at=r[5])


def count_users(conn) -> int:
    return int(conn.execute("SELECT count(*) FROM app_user").fetchone()[0])


def list_users(conn) -> list[UserRow]:
    return [_user(r) for r in conn.execute(f"SELECT {_USER} FROM app_user ORDER BY name")]


def get_user(conn, name: str) -> UserRow | None:
    r = conn.execute(f"SELECT {_USER} FROM app_user WHERE name = %s", (name,)).fetchone()
    return None if r is None else _user(r)


def user_by_email(conn, email: str) -> UserRow | None:
    r = conn.execute(f"SELECT {_USER} FROM app_user WHERE email = %s",
                     (email.strip().lower(),)).fetchone()
    return None if r is None else _user(r)


def password_hash(conn, name: str) -> str | None:
    r = conn.execute("SELECT password_hash FROM app_user WHERE name = %s", (name,)).fetchone()
    return None if r is None else r[0]


def add_user(conn, name: str, role: Role, password_hash: str | None,
             email: str | None) -> UserRow:
    r = conn.execute(
        f"INSERT INTO app_user (name, role, password_hash, email) VALUES (%s, %s, %s, %s)"
        f" RETURNING {_USER}",
        (name, Role(role).value, password_hash, email.strip().lower() if email else None)
    ).fetchone()
    return _user(r)


def set_role(conn, name: str, role: Role) -> bool:
    return conn.execute("UPDATE app_user SET role = %s WHERE name = %s",
                        (Role(role).value, name)).rowcount == 1


def set_password_hash(conn, name: str, password_hash: str) -> bool:
    return conn.execute("UPDATE app_user SET password_hash = %s WHERE name = %s",
                        (password_hash, name)).rowcount == 1


def remove_user(conn, name: str) -> bool:
    return conn.execute("DELETE FROM app_user WHERE name = %s", (name,)).rowcount == 1


def count_admins(conn) -> int:
    return int(conn.execute("SELECT count(*) FROM app_user WHERE role = 'admin'").fetchone()[0])


# --- sessions ----------------------------------------------------------------------------------


def open_session(conn, token_hash: str, user_id: int, via: str) -> None:
    conn.execute("INSERT INTO app_session (token_hash, user_id, via) VALUES (%s, %s, %s)",
                 (token_hash, int(user_id), via))


def touch_session(conn, token_hash: str, idle_s: int) -> SessionUser | None:
    """The session's user when it was active within ``idle_s`` seconds (and marks it active
    now); None for an unknown or idle session (an idle one is deleted)."""
    r = conn.execute(
        "UPDATE app_session s SET last_seen_at = now() FROM app_user u"
        " WHERE s.token_hash = %s AND u.user_id = s.user_id"
        " AND s.last_seen_at > now() - make_interval(secs => %s)"
        " RETURNING u.user_id, u.name, u.role, s.via", (token_hash, int(idle_s))).fetchone()
    if r is None:
        conn.execute("DELETE FROM app_session WHERE token_hash = %s", (token_hash,))
        return None
    return SessionUser(user_id=int(r[0]), name=r[1], role=Role(r[2]), via=r[3])


def session_alive(conn, token_hash: str, idle_s: int) -> bool:
    """Whether the session is there and active within ``idle_s`` (without marking it active)."""
    return conn.execute(
        "SELECT 1 FROM app_session WHERE token_hash = %s AND last_seen_at > now() -"
        " make_interval(secs => %s)", (token_hash, int(idle_s))).fetchone() is not None


def close_session(conn, token_hash: str) -> str | None:
    """Delete a session; returns its user's name (None when it was not there)."""
    r = conn.execute(
        "DELETE FROM app_session s USING app_user u WHERE s.token_hash = %s"
        " AND u.user_id = s.user_id RETURNING u.name", (token_hash,)).fetchone()
    return None if r is None else r[0]


def close_user_sessions(conn, name: str) -> int:
    return conn.execute("DELETE FROM app_session s USING app_user u WHERE u.name = %s"
                        " AND u.user_id = s.user_id", (name,)).rowcount


def drop_idle_sessions(conn, idle_s: int) -> int:
    return conn.execute("DELETE FROM app_session WHERE last_seen_at <= now() -"
                        " make_interval(secs => %s)", (int(idle_s),)).rowcount


# --- the sign-in throttle ----------------------------------------------------------------------


def locked_for_s(conn, name: str) -> float:
    """Seconds this name still waits before it may try again (0 when it may)."""
    r = conn.execute(
        "SELECT greatest(0, extract(epoch FROM locked_until - now())) FROM sign_in_throttle"
        " WHERE name = %s AND locked_until > now()", (name,)).fetchone()
    return 0.0 if r is None else float(r[0])


def note_failure(conn, name: str, max_failures: int, lock_s: int, window_s: int) -> int:
    """Count a failed sign-in for ``name`` (failures older than ``window_s`` are forgotten);
    the ``max_failures``-th locks the name for ``lock_s`` seconds. Returns the failures so far
    (0 after a lock starts)."""
    r = conn.execute(
        "INSERT INTO sign_in_throttle AS t (name, failures, last_failure_at) VALUES (%s, 1, now())"
        " ON CONFLICT (name) DO UPDATE SET last_failure_at = now(), failures = CASE"
        "   WHEN t.last_failure_at < now() - make_interval(secs => %s) THEN 1"
        "   ELSE t.failures + 1 END"
        " RETURNING failures", (name, int(window_s))).fetchone()
    failures = int(r[0])
    if failures >= max_failures:
        conn.execute("UPDATE sign_in_throttle SET failures = 0, locked_until = now() +"
                     " make_interval(secs => %s) WHERE name = %s", (int(lock_s), name))
        return 0
    return failures


def clear_failures(conn, name: str) -> None:
    conn.execute("DELETE FROM sign_in_throttle WHERE name = %s", (name,))
