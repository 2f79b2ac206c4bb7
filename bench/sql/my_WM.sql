SELECT state, expires_at, created_at FROM sessions WHERE id = CONVERT(SHA2(CONCAT('wm', CONNECTION_ID()), 256) USING ascii) AND @LIVE@;
BEGIN;
DELETE FROM sessions WHERE id = CONVERT(SHA2(CONCAT('wm', CONNECTION_ID()), 256) USING ascii);
INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) VALUES (SHA2(CONCAT('wm', CONNECTION_ID()), 256), '@STATE@', UTC_TIMESTAMP(6) + INTERVAL 1 DAY, UTC_TIMESTAMP(6), CONCAT('upload ', RAND(), '@FILE@'), 2520);
COMMIT
