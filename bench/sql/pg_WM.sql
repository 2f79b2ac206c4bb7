-- WM on PostgreSQL: an upload's load, then its key rotation as textdrop sends it: one statement
-- (a data-modifying WITH) that deletes the old row if live and inserts the new one. Each client
-- rotates its own row between two ids (no two visitors share a cookie).
\set a 200000 + :client_id * 2
SELECT state, expires_at, created_at FROM sessions WHERE id IN (encode(sha256(:a::text::bytea), 'hex'), encode(sha256((:a + 1)::text::bytea), 'hex')) AND @LIVE@;
WITH gone AS (DELETE FROM sessions WHERE id IN (encode(sha256(:a::text::bytea), 'hex'), encode(sha256((:a + 1)::text::bytea), 'hex')) AND expires_at > (now() AT TIME ZONE 'utc') RETURNING id) INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) SELECT CASE WHEN gone.id = encode(sha256(:a::text::bytea), 'hex') THEN encode(sha256((:a + 1)::text::bytea), 'hex') ELSE encode(sha256(:a::text::bytea), 'hex') END, '@STATE@', (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc', 'upload ' || :a || random() || '@FILE@', 2520 FROM gone;
