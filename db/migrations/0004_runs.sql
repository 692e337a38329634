-- Runs are attempts (issue 10). Every analysis of a video is a row of db_run; the video's events,
-- tracks and highlight frames are those of its last completed run (db_video.completed_run_id),
-- switched in the same transaction as the events. A failed or cancelled attempt is kept here with
-- its reason while the video keeps its last completed result and status.
CREATE TABLE IF NOT EXISTS db_run (
    run_id              bigserial PRIMARY KEY,
    video_id            bigint NOT NULL REFERENCES db_video (video_id) ON DELETE CASCADE,
    status              text NOT NULL DEFAULT 'processing'
                        CHECK (status IN ('processing', 'completed', 'failed', 'cancelled')),
    error_message       text,
    warning             text,          -- e.g. "decoded 30% of the frames (0.0-2.1 s)"
    frames_decoded      integer,
    frames_undecodable  integer,
    covered_from_s      double precision,
    covered_to_s        double precision,
    worker_pid          integer,
    worker_host         text,
    token_usage         jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);
CREATE INDEX IF NOT EXISTS db_run_video_idx ON db_run (video_id, run_id DESC);

ALTER TABLE db_video ADD COLUMN IF NOT EXISTS completed_run_id bigint
    REFERENCES db_run (run_id) ON DELETE SET NULL;
ALTER TABLE db_video ADD COLUMN IF NOT EXISTS current_run_id bigint
    REFERENCES db_run (run_id) ON DELETE SET NULL;
ALTER TABLE db_video ADD COLUMN IF NOT EXISTS warning text;  -- of the completed run

-- Videos completed before this migration get their completed run, so a failed re-run keeps them.
INSERT INTO db_run (video_id, status, started_at, finished_at, token_usage)
SELECT video_id, 'completed', COALESCE(started_at, created_at), COALESCE(finished_at, updated_at),
       token_usage
FROM db_video WHERE analysis_status = 'completed' AND completed_run_id IS NULL;
UPDATE db_video v SET completed_run_id = r.run_id
FROM db_run r WHERE r.video_id = v.video_id AND r.status = 'completed' AND v.completed_run_id IS NULL;
