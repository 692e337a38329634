-- Review marks survive re-runs (issue 20, item 5): a mark belongs to the moment the analyst
-- judged (video, incident type, episode start/end), not to an event id. A re-analysis deletes
-- and re-inserts the video's events; the mark's event_id then becomes NULL (ON DELETE SET NULL,
-- never CASCADE) and db.reviews.carry_over attaches it to the new run's incident of the same
-- type that overlaps it in time (at least half of either span), in the same transaction. A mark
-- no incident takes over stays, with event_id NULL: "no longer detected".
ALTER TABLE event_review ADD COLUMN IF NOT EXISTS mark_id bigserial;
ALTER TABLE event_review ADD COLUMN IF NOT EXISTS video_id bigint
    REFERENCES db_video (video_id) ON DELETE CASCADE;
ALTER TABLE event_review ADD COLUMN IF NOT EXISTS event_type text;
ALTER TABLE event_review ADD COLUMN IF NOT EXISTS start_t_s double precision;
ALTER TABLE event_review ADD COLUMN IF NOT EXISTS end_t_s double precision;
-- when a re-run's incident took the mark over (NULL: given on the incident it is on)
ALTER TABLE event_review ADD COLUMN IF NOT EXISTS carried_at timestamptz;
-- when a re-run no longer found its incident (NULL while it is on an incident)
ALTER TABLE event_review ADD COLUMN IF NOT EXISTS lost_at timestamptz;

UPDATE event_review r SET video_id = e.video_id, event_type = e.event_type,
       start_t_s = LEAST(COALESCE(e.start_t_s, e."timestamp"), e."timestamp"),
       end_t_s = GREATEST(COALESCE(e.end_t_s, e."timestamp"), e."timestamp")
  FROM db_event e WHERE e.event_id = r.event_id;

ALTER TABLE event_review ALTER COLUMN video_id SET NOT NULL;
ALTER TABLE event_review ALTER COLUMN event_type SET NOT NULL;
ALTER TABLE event_review ALTER COLUMN start_t_s SET NOT NULL;
ALTER TABLE event_review ALTER COLUMN end_t_s SET NOT NULL;
ALTER TABLE event_review DROP CONSTRAINT IF EXISTS event_review_pkey;
ALTER TABLE event_review ADD PRIMARY KEY (mark_id);
ALTER TABLE event_review ALTER COLUMN event_id DROP NOT NULL;
ALTER TABLE event_review ADD CONSTRAINT event_review_event_id_key UNIQUE (event_id);
ALTER TABLE event_review DROP CONSTRAINT IF EXISTS event_review_event_id_fkey;
ALTER TABLE event_review ADD CONSTRAINT event_review_event_id_fkey FOREIGN KEY (event_id)
    REFERENCES db_event (event_id) ON DELETE SET NULL;
CREATE INDEX IF NOT EXISTS event_review_video_idx ON event_review (video_id, event_type);
