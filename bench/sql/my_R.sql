SELECT state, expires_at, created_at, file FROM sessions WHERE id = CONVERT(SHA2(1 + CONNECTION_ID() % 64, 256) USING ascii) AND @LIVE@
