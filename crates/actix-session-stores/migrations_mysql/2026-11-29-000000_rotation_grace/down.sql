ALTER TABLE sessions
    DROP INDEX sessions_successor_idx,
    DROP COLUMN superseded_at,
    DROP COLUMN successor;
