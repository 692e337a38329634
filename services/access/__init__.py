"""Users, roles, sign-in sessions and the audit trail's service side."""
