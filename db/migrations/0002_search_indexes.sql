-- Filters the planner can use (see db/queries.py: only the filters that are set are in a query, as
-- plain comparisons): db_event (video_id, "timestamp") and (event_type) exist since 0001; action
-- filters (a rare action such as falling) get their own btree, so a selective action filter is
-- answered from the index (exact distances on few vectors) instead of an HNSW scan that must skip
-- most candidates, and the full-text side can AND it with the GIN index. Idempotent.
CREATE INDEX IF NOT EXISTS db_event_action_idx ON db_event (action);
