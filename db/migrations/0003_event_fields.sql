-- One typed event record: what every event has (or may have) gets its own column instead of a key
-- in the JSONB ``attributes``, which keeps only what is open-ended (keypoints, a rule's evidence,
-- per-frame readings). Orientation is kept as degrees AND as its label (0/90/180/270; the old
-- "orientation" key held the label here but degrees in processed_results.csv). ``track_ids`` are
-- the tracks involved in the event (obj_id first; a fight's other people after it).
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS orientation_deg real;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS orientation_label smallint
    CHECK (orientation_label IN (0, 90, 180, 270));
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS track_ids integer[] NOT NULL DEFAULT '{}';
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS raw_action text;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS action_confidence real;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS scene_description text;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS age real;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS start_t_s double precision;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS end_t_s double precision;

-- Backfill from the keys the earlier rows hold, then drop those keys from attributes (only rows
-- that still hold one of them: running this again changes nothing).
UPDATE db_event SET
    orientation_deg = CASE WHEN jsonb_typeof(attributes -> 'orientation_deg') = 'number'
                           THEN (attributes ->> 'orientation_deg')::real END,
    orientation_label = CASE WHEN jsonb_typeof(attributes -> 'orientation') = 'number'
                             AND (attributes ->> 'orientation')::numeric IN (0, 90, 180, 270)
                             THEN (attributes ->> 'orientation')::numeric::smallint END,
    track_ids = CASE WHEN obj_id IS NULL THEN '{}'::integer[] ELSE ARRAY[obj_id] END
        || COALESCE((SELECT array_agg(x::integer ORDER BY ord)
                     FROM jsonb_array_elements_text(
                         CASE WHEN jsonb_typeof(attributes -> 'other_obj_ids') = 'array'
                              THEN attributes -> 'other_obj_ids' ELSE '[]'::jsonb END)
                          WITH ORDINALITY AS o(x, ord)
                     WHERE x ~ '^-?[0-9]+$' AND x::integer IS DISTINCT FROM obj_id),
                    '{}'::integer[]),
    raw_action = attributes ->> 'raw_action',
    action_confidence = CASE WHEN jsonb_typeof(attributes -> 'action_confidence') = 'number'
                             THEN (attributes ->> 'action_confidence')::real END,
    scene_description = attributes ->> 'scene_analysis',
    age = CASE WHEN jsonb_typeof(attributes -> 'age') = 'number'
               THEN (attributes ->> 'age')::real END,
    start_t_s = CASE WHEN jsonb_typeof(attributes -> 'start_t_s') = 'number'
                     THEN (attributes ->> 'start_t_s')::double precision END,
    end_t_s = CASE WHEN jsonb_typeof(attributes -> 'end_t_s') = 'number'
                   THEN (attributes ->> 'end_t_s')::double precision END,
    attributes = attributes - ARRAY['obj_id', 'orientation', 'orientation_deg', 'other_obj_ids',
                                    'raw_action', 'action_confidence', 'scene_analysis', 'age',
                                    'start_t_s', 'end_t_s']
WHERE attributes ?| ARRAY['obj_id', 'orientation', 'orientation_deg', 'other_obj_ids',
                          'raw_action', 'action_confidence', 'scene_analysis', 'age',
                          'start_t_s', 'end_t_s'];
