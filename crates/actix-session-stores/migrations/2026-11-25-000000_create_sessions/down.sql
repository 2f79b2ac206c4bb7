DROP INDEX sessions_expires_at_idx;
DROP TABLE sessions;
