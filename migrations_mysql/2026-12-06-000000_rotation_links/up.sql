-- Rotation links on the new row (see migrations/ for why). Adding a NULL column at the end is
-- instant on MariaDB 10.3+ and MySQL 8.0.12+.
ALTER TABLE sessions
    ADD COLUMN predecessor CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL;

UPDATE sessions AS newer JOIN sessions AS older
    ON older.successor = newer.id AND older.id <> newer.id
SET newer.predecessor = older.id;

ALTER TABLE sessions DROP INDEX sessions_successor_idx;
