-- Clothing colours (issue 24, item 2): each person event carries its track's upper- and
-- lower-body colour names (pipeline.records.Colour; NULL: unknown, e.g. grayscale footage).
-- They are search filters, so each has a btree index.
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS upper_colour text;
ALTER TABLE db_event ADD COLUMN IF NOT EXISTS lower_colour text;
CREATE INDEX IF NOT EXISTS db_event_upper_colour_idx ON db_event (upper_colour)
    WHERE upper_colour IS NOT NULL;
CREATE INDEX IF NOT EXISTS db_event_lower_colour_idx ON db_event (lower_colour)
    WHERE lower_colour IS NOT NULL;
