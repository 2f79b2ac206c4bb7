-- R on PostgreSQL: the load of a page that shows the file (bench/bench.sh fills @LIVE@).
\set n random(1, 64)
SELECT state, expires_at, created_at, file FROM sessions WHERE id = encode(sha256(:n::text::bytea), 'hex') AND @LIVE@;
