"""Admin: the accounts (add, change a role, reset a password, remove) and the audit trail (who
did what, when, on which video or incident), filterable. Admins only: the page checks the role,
and so does every service it calls."""
from __future__ import annotations

from datetime import datetime, time, timezone

import streamlit as st

from app_pages import _access as auth
from app_pages import _resources as res
from services import workbench as wb

acc = wb.access
who = auth.require(wb.Role.ADMIN)
settings = res.services().settings
ROLES = [r.value for r in wb.Role]

st.title("Admin")
flash = st.session_state.pop("admin.flash", None)
if flash:
    st.success(flash)


def _done(message: str) -> None:
    st.session_state["admin.flash"] = message
    st.rerun()


# --- users ---------------------------------------------------------------------------------------
st.subheader("Users")
try:
    users = acc.list_users(settings, auth.session())
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the accounts")
    st.stop()
st.dataframe([{"name": u.name, "role": u.role.value, "e-mail (single sign-on)": u.email or "",
               "password": "set" if u.has_password else "none (single sign-on only)",
               "created": u.created_at} for u in users],
             hide_index=True, width="stretch", key="admin.users")
st.caption("viewer: browse, search, play · analyst: + start and cancel analyses, review marks · "
           "admin: + delete videos, users, the audit trail")

add, change = st.columns(2, gap="large")
with add.form("admin.add", clear_on_submit=True):
    st.markdown("**Add a user**")
    name = st.text_input("User name", key="admin.add_name")
    role = st.selectbox("Role", ROLES, key="admin.add_role")
    email = st.text_input("E-mail for single sign-on (optional)", key="admin.add_email")
    password = st.text_input(f"Password (at least {acc.MIN_PASSWORD_CHARS} characters; empty = "
                             f"single sign-on only)", type="password", key="admin.add_password",
                             autocomplete="new-password")
    if st.form_submit_button("Add user", type="primary"):
        try:
            acc.add_user(settings, auth.session(), name, role, password or None, email or None)
            _done(f"Added {name} as {role}.")
        except wb.USER_ERRORS as e:
            res.show_error(e, "Could not add the user")

with change.container(border=True):
    st.markdown("**Change a user**")
    names = [u.name for u in users]
    target = st.selectbox("User", names, key="admin.target")
    current = next((u for u in users if u.name == target), None)
    if current is not None:
        new_role = st.selectbox("Role", ROLES, index=ROLES.index(current.role.value),
                                key=f"admin.role.{target}")
        if st.button("Change the role", key="admin.set_role",
                     disabled=new_role == current.role.value):
            try:
                acc.set_role(settings, auth.session(), target, new_role)
                _done(f"{target} is now {new_role}.")
            except wb.USER_ERRORS as e:
                res.show_error(e, "Could not change the role")
        new_pw = st.text_input("New password", type="password", key=f"admin.pw.{target}",
                               autocomplete="new-password")
        if st.button("Reset the password", key="admin.reset", disabled=not new_pw):
            try:
                acc.reset_password(settings, auth.session(), target, new_pw)
                _done(f"{target}'s password was reset; their sessions ended.")
            except wb.USER_ERRORS as e:
                res.show_error(e, "Could not reset the password")
        with st.popover("Remove this user", icon=":material/person_remove:",
                        disabled=target == who.name):
            st.caption(f"{target} can no longer sign in; the audit trail keeps their actions.")
            if st.button(f"Remove {target}", key="admin.remove", type="primary"):
                try:
                    acc.remove_user(settings, auth.session(), target)
                    _done(f"Removed {target}.")
                except wb.USER_ERRORS as e:
                    res.show_error(e, "Could not remove the user")

# --- the audit trail -----------------------------------------------------------------------------
st.subheader("Audit trail")
st.caption("Append-only: the database refuses to change or delete its rows. Newest first.")
with st.container(border=True):
    f1, f2, f3, f4 = st.columns([1.5, 2.5, 1, 2], vertical_alignment="bottom")
    try:
        actors = acc.audit_actors(settings, auth.session())
    except wb.USER_ERRORS as e:
        res.show_error(e, "Cannot read the audit trail")
        st.stop()
    actor = f1.selectbox("Who", ["everyone"] + actors, key="admin.audit_actor")
    actions = f2.multiselect("What", [a.value for a in wb.AuditAction], key="admin.audit_actions",
                             placeholder="Every action")
    video = f3.number_input("Video id", min_value=0, value=0, step=1, key="admin.audit_video",
                            help="0 = every video")
    days = f4.date_input("Between", value=(), key="admin.audit_days")
since = until = None
if isinstance(days, (tuple, list)) and len(days) == 2:
    since = datetime.combine(days[0], time.min, tzinfo=timezone.utc)
    until = datetime.combine(days[1], time.max, tzinfo=timezone.utc)
filt = wb.AuditFilter(actor=None if actor == "everyone" else actor,
                      actions=tuple(wb.AuditAction(a) for a in actions),
                      video_id=int(video) or None, since=since, until=until, limit=1000)
try:
    rows = acc.audit_entries(settings, auth.session(), filt)
except wb.USER_ERRORS as e:
    res.show_error(e, "Cannot read the audit trail")
    st.stop()
st.dataframe([{"when (UTC)": r.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
               "who": r.actor, "what": r.action.value, "video": r.video_id,
               "video name": r.video_name or "", "incident": r.event_id, "detail": r.detail}
              for r in rows], hide_index=True, width="stretch", key="admin.audit")
st.caption(f"{len(rows)} row(s) shown (at most 1000). The same from the command line: "
           f"`python -m pipeline audit --json`.")
