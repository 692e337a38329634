-- Jobs on procrastinate (services/jobs.py): the queue itself lives in procrastinate's tables
-- (applied by db/connection.py as migration 0005b_procrastinate_schema); db_video keeps what the
-- app shows. 'queued' is a stored status now (waiting for a worker), not an in-memory splice;
-- attempts counts the runs a job started (a worker killed mid-job means another attempt);
-- queue_job_id links to procrastinate_jobs.id, batch_job_id to an AWS Batch job.
ALTER TABLE db_video ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0;
ALTER TABLE db_video ADD COLUMN IF NOT EXISTS queue_job_id bigint;
ALTER TABLE db_video ADD COLUMN IF NOT EXISTS batch_job_id text;
ALTER TABLE db_video DROP CONSTRAINT IF EXISTS db_video_analysis_status_check;
ALTER TABLE db_video ADD CONSTRAINT db_video_analysis_status_check
    CHECK (analysis_status IN ('pending', 'queued', 'processing', 'completed', 'failed', 'cancelled'));
