-- N on PostgreSQL: a new session's insert.
INSERT INTO sessions (id, state, expires_at, created_at, file, file_bytes) VALUES (md5(random()::text || clock_timestamp()::text) || md5(random()::text), '@STATE@', (now() AT TIME ZONE 'utc') + interval '1 day', now() AT TIME ZONE 'utc', '@FILE@', 2520);
