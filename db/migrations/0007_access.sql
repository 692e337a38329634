-- Users and access (issue 20): local accounts with roles, sign-in sessions, the sign-in throttle
-- and the append-only audit trail.
--
-- app_user: one row per person. password_hash is an argon2id hash (argon2-cffi), never a plain or
-- fast hash; NULL for an account that signs in only through single sign-on (matched by e-mail).
CREATE TABLE IF NOT EXISTS app_user (
    user_id       bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    email         text CHECK (email IS NULL OR email = lower(email)),
    role          text NOT NULL CHECK (role IN ('viewer', 'analyst', 'admin')),
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS app_user_email_idx ON app_user (email) WHERE email IS NOT NULL;

-- A signed-in browser session. Only the SHA-256 of the session token is stored; the token lives
-- in the browser session's server-side state. last_seen_at drives the idle expiry
-- (VA_SESSION_IDLE_MINUTES). A removed user's sessions go with the user.
CREATE TABLE IF NOT EXISTS app_session (
    token_hash   text PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES app_user (user_id) ON DELETE CASCADE,
    via          text NOT NULL CHECK (via IN ('password', 'sso')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS app_session_user_idx ON app_session (user_id);

-- Failed sign-ins per typed name (existing or not, so a lock says nothing about which names
-- exist): after 5 failures the name waits 5 minutes (services/access.py holds the numbers).
CREATE TABLE IF NOT EXISTS sign_in_throttle (
    name            text PRIMARY KEY,
    failures        integer NOT NULL DEFAULT 0,
    last_failure_at timestamptz,
    locked_until    timestamptz
);

-- The audit trail: who did what, when, on which video / incident. Append-only: a trigger refuses
-- UPDATE, DELETE and TRUNCATE, so no code path of the product can rewrite it. No foreign keys: a
-- row outlives the video, incident or user it names (the names are copied in).
CREATE TABLE IF NOT EXISTS audit_log (
    audit_id   bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      text NOT NULL,
    action     text NOT NULL,
    video_id   bigint,
    video_name text,
    event_id   bigint,
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_log_at_idx ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON audit_log (actor);
CREATE INDEX IF NOT EXISTS audit_log_action_idx ON audit_log (action);
CREATE INDEX IF NOT EXISTS audit_log_video_idx ON audit_log (video_id);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END
$$;
CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
