-- Review marks (issue 13): an analyst's verdict on an event (an incident / highlight): looked at
-- ('reviewed'), a real incident ('confirmed') or a false alarm ('false_alarm'), with an optional
-- note and when it was given. One mark per event; no row = unreviewed. A re-analysis replaces the
-- video's events, and their marks go with them (ON DELETE CASCADE): marks belong to what the
-- analyst saw.
CREATE TABLE IF NOT EXISTS event_review (
    event_id    bigint PRIMARY KEY REFERENCES db_event (event_id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('reviewed', 'confirmed', 'false_alarm')),
    note        text NOT NULL DEFAULT '',
    reviewed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_review_state_idx ON event_review (state);
