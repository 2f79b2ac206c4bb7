DROP INDEX sessions_successor_idx;
ALTER TABLE sessions DROP COLUMN superseded_at;
ALTER TABLE sessions DROP COLUMN successor;
