"""The command line's ``users`` and ``audit`` commands (registered by ``services/cli.py``).

``python -m pipeline users add NAME --role viewer|analyst|admin [--email E]`` reads the password
from stdin (or prompts twice on a terminal); ``users list [--json]``, ``users set-role NAME
ROLE``, ``users remove NAME``, ``users reset-password NAME``; ``python -m pipeline audit
[--json] [--actor NAME] [--action A] [--video-id N] [--limit N]``. The command line runs on the
server with the database's credentials, so it acts as the operator (an admin), recorded in the
audit trail as ``cli:<login>``. Passwords are never printed or logged."""
from __future__ import annotations

import argparse
import json
import sys

ROLES = ("viewer", "analyst", "admin")


def add_parsers(sub) -> None:
    u = sub.add_parser("users", help="local accounts: add, list, set-role, remove, "
                                     "reset-password")
    us = u.add_subparsers(dest="users_command", required=True)
    a = us.add_parser("add", help="add a user; the password is read from stdin (or prompted)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--email", default=None,
                   help="e-mail the identity provider gives for single sign-on (st.login)")
    a.add_argument("--sso-only", action="store_true",
                   help="no password: the user signs in only through single sign-on (--email)")
    ls = us.add_parser("list", help="the users and their roles")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    r = us.add_parser("set-role", help="change a user's role (takes effect at once)")
    r.add_argument("name")
    r.add_argument("role", choices=ROLES)
    rm = us.add_parser("remove", help="remove a user (the audit trail keeps their actions)")
    rm.add_argument("name")
    pw = us.add_parser("reset-password", help="set a new password (read from stdin or prompted); "
                                              "the user's sessions end")
    pw.add_argument("name")

    t = sub.add_parser("audit", help="the audit trail, newest first: who did what, when, on "
                                     "which video or incident")
    t.add_argument("--json", action="store_true", help="one JSON object per line")
    t.add_argument("--actor", default=None, help="only this user")
    t.add_argument("--action", action="append", default=None, metavar="ACTION",
                   help="only this action (repeat for several): sign_in, sign_in_failed, "
                        "sign_out, launch, cancel, delete, review_mark, role_change, user_add, "
                        "user_remove, password_reset, access_denied")
    t.add_argument("--video-id", type=int, default=None)
    t.add_argument("--limit", type=int, default=200)


def read_password(stdin=None, prompt=None) -> str:
    """The new password: prompted twice (no echo) on a terminal, else the first line of stdin."""
    from services.access.access import AccountError

    stdin = stdin or sys.stdin
    if stdin.isatty():
        import getpass

        first = (prompt or getpass.getpass)("Password: ")
        if first != (prompt or getpass.getpass)("Again: "):
            raise AccountError("the two passwords differ; run the command again")
        return first
    line = stdin.readline()
    if not line:
        raise AccountError("no password on stdin; pipe one in (e.g. from a secrets file) or run "
                           "the command on a terminal to be prompted")
    return line.rstrip("\r\n")


def cmd_users(args: argparse.Namespace) -> int:
    from services.access import access
    from settings import Settings

    settings = Settings.from_env()
    op = access.OPERATOR
    c = args.users_command
    if c == "add":
        if args.sso_only and not args.email:
            raise access.AccountError("--sso-only needs --email (the address the identity "
                                      "provider gives)")
        password = None if args.sso_only else read_password()
        u = access.add_user(settings, op, args.name, args.role, password, args.email)
        print(f"added {u.name} as {u.role.value}" + (f" ({u.email})" if u.email else ""))
    elif c == "list":
        for u in access.list_users(settings, op):
            if args.json:
                print(json.dumps({"name": u.name, "role": u.role.value, "email": u.email,
                                  "password": u.has_password,
                                  "created_at": u.created_at.isoformat() if u.created_at
                                  else None}))
            else:
                print(f"{u.name}\t{u.role.value}\t{u.email or '-'}")
    elif c == "set-role":
        u = access.set_role(settings, op, args.name, args.role)
        print(f"{u.name} is now {u.role.value}")
    elif c == "remove":
        access.remove_user(settings, op, args.name)
        print(f"removed {args.name}")
    elif c == "reset-password":
        access.reset_password(settings, op, args.name, read_password())
        print(f"password of {args.name} reset; their sessions ended")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from services.access import access
    from settings import Settings

    try:
        actions = tuple(access.AuditAction(a) for a in args.action or ())
    except ValueError as e:
        raise access.AccountError(f"{e}; use one of "
                                  f"{', '.join(a.value for a in access.AuditAction)}") from None
    filt = access.AuditFilter(actor=args.actor, actions=actions, video_id=args.video_id,
                              limit=args.limit)
    for r in access.audit_entries(Settings.from_env(), access.OPERATOR, filt):
        if args.json:
            print(json.dumps({"id": r.audit_id, "at": r.at.isoformat(), "actor": r.actor,
                              "action": r.action.value, "video_id": r.video_id,
                              "video": r.video_name, "incident_id": r.event_id,
                              "detail": r.detail}))
        else:
            subject = " ".join(x for x in (
                f"video {r.video_id}" if r.video_id is not None else "",
                f"({r.video_name})" if r.video_name else "",
                f"incident {r.event_id}" if r.event_id is not None else "") if x)
            print(f"{r.at.isoformat(timespec='seconds')}\t{r.actor}\t{r.action.value}\t"
                  f"{subject or '-'}\t{r.detail}")
    return 0


COMMANDS = {"users": cmd_users, "audit": cmd_audit}
