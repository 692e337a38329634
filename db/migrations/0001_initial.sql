-- Initial schema. Applied once (tracked in schema_migration) under an advisory lock.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE IF NOT EXISTS db_video (
    video_id          bigserial PRIMARY KEY,
    name              text NOT NULL,
    source_uri        text,
    analysis_status   text NOT NULL DEFAULT 'pending'
                      CHECK (analysis_status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    analysis_progress real NOT NULL DEFAULT 0 CHECK (analysis_progress BETWEEN 0 AND 100),
    stage             text,
    frames_done       integer,
    frames_total      integer,
    eta_s             real,
    fps               double precision,
    duration_s        double precision,
    frame_count       integer,
    width             integer,
    height            integer,
    error_message     text,
    started_at        timestamptz,
    finished_at       timestamptz,
    worker_pid        integer,
    worker_host       text,
    heartbeat_at      timestamptz,
    token_usage       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS db_video_source_uri_idx ON db_video (source_uri);
CREATE INDEX IF NOT EXISTS db_video_status_idx ON db_video (analysis_status);

CREATE TABLE IF NOT EXISTS db_event (
    event_id            bigserial PRIMARY KEY,
    video_id            bigint NOT NULL REFERENCES db_video (video_id) ON DELETE CASCADE,
    seq                 integer NOT NULL,          -- order of the event within its run
    event_type          text NOT NULL,
    "timestamp"         double precision NOT NULL, -- seconds from the start of the video
    frame_number        integer NOT NULL,
    bbox_x              real,
    bbox_y              real,
    bbox_width          real,
    bbox_height         real,
    age_group           text,
    gender              text,
    action              text,
    confidence          real,
    s3_thumbnail_bucket text,
    s3_thumbnail_key    text,
    attributes          jsonb NOT NULL DEFAULT '{}'::jsonb, -- orientation, scene_analysis, obj_id, keypoints...
    obj_id              integer,
    sentence            text NOT NULL DEFAULT '',
    tsv                 tsvector GENERATED ALWAYS AS (to_tsvector('english', sentence)) STORED,
    -- The seed's column (Titan v2, 1024-d). Kept for compatibility and left NULL: vectors live in
    -- event_embedding together with the model that made them.
    embedding           vector(1024),
    UNIQUE (video_id, seq)
);
CREATE INDEX IF NOT EXISTS db_event_video_t_idx ON db_event (video_id, "timestamp");
CREATE INDEX IF NOT EXISTS db_event_type_idx ON db_event (event_type);
CREATE INDEX IF NOT EXISTS db_event_tsv_idx ON db_event USING gin (tsv);

-- One row per (event, embedding model). Each model gets its own partial HNSW index on an
-- expression cast to its dimension (see db/vectors.py); queries always filter on model.
CREATE TABLE IF NOT EXISTS event_embedding (
    event_id  bigint NOT NULL REFERENCES db_event (event_id) ON DELETE CASCADE,
    model     text NOT NULL,
    dim       integer NOT NULL,
    embedding vector NOT NULL,
    PRIMARY KEY (event_id, model),
    CHECK (vector_dims(embedding) = dim)
);

CREATE TABLE IF NOT EXISTS embedding_model (
    model      text PRIMARY KEY,
    dim        integer NOT NULL,
    index_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS db_track (
    video_id          bigint NOT NULL REFERENCES db_video (video_id) ON DELETE CASCADE,
    obj_id            integer NOT NULL,
    first_t_s         double precision NOT NULL,
    last_t_s          double precision NOT NULL,
    n_observations    integer NOT NULL,
    age               real,
    age_spread        real,
    age_group         text,
    gender            text,
    gender_confidence real,
    actions           jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (video_id, obj_id)
);
