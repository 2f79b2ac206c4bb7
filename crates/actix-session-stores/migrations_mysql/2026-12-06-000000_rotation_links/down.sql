ALTER TABLE sessions
    ADD INDEX sessions_successor_idx (successor),
    DROP COLUMN predecessor;
