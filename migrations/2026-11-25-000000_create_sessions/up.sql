-- Server-side session state for actix-session, kept by actix-session-stores' Store.
-- Portable on purpose: TEXT and TIMESTAMP mean the same on PostgreSQL and SQLite,
-- so one migration folder serves both backends.
CREATE TABLE sessions (
    -- SHA-256 (hex) of the session key; the key itself is only ever in the visitor's cookie.
    id TEXT PRIMARY KEY NOT NULL,
    -- JSON object of the session's state map.
    state TEXT NOT NULL,
    -- UTC, written and compared with the application's clock, never the database's now().
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
