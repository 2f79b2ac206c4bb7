CREATE INDEX sessions_successor_idx ON sessions (successor);
ALTER TABLE sessions DROP COLUMN predecessor;
