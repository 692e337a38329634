-- Objects (issue 24, item 1): an object track is one db_event of type 'object' whose class is
-- object_class (pipeline.records.ObjectClass, NULL for every other type); a person's events carry
-- their track's relations to objects as tokens 'relation:class' (pipeline.records.ObjectRelation,
-- e.g. 'carrying:backpack'). Both are search filters: a btree and a GIN index.
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS object_class text;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS relations text[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS db_event_object_class_idx ON db_event (object_class)
    WHERE object_class IS NOT NULL;
CREATE INDEX IF NOT EXISTS db_event_relations_idx ON db_event USING gin (relations)
    WHERE relations <> '{}';
