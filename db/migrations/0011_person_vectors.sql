-- The same person elsewhere (issue 24, item 4): one appearance vector per person track
-- (pipeline.person_vectors), with the model that made it. Like event_embedding, the column takes
-- any dimension and each model gets its own partial HNSW (cosine) index on the column cast to
-- its dimension, created with its first vectors (db/person_vectors.py); every query filters on
-- the model, so vectors of different models are never compared. A track's vector goes with its
-- track (re-runs replace both in one transaction) and with its video.
CREATE TABLE IF NOT EXISTS person_vector (
    video_id  bigint  NOT NULL,
    obj_id    integer NOT NULL,
    model     text    NOT NULL,
    dim       integer NOT NULL,
    n_samples integer NOT NULL,
    embedding vector  NOT NULL,
    PRIMARY KEY (video_id, obj_id, model),
    FOREIGN KEY (video_id, obj_id) REFERENCES db_track (video_id, obj_id) ON DELETE CASCADE,
    CHECK (vector_dims(embedding) = dim)
);
CREATE INDEX IF NOT EXISTS person_vector_model_idx ON person_vector (model, video_id);
