-- MySQL / MariaDB: the same table as migrations/ (PostgreSQL and SQLite), in MySQL's types.
-- The id is the SHA-256 (hex) of the session key; the key itself is only ever in the cookie.
-- Times are UTC, written and compared with the application's clock (DATETIME(6): no time
-- zone conversion, microseconds like PostgreSQL's timestamp).
CREATE TABLE sessions (
    id CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    state TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL
) ENGINE = InnoDB;

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
