-- Portable mode (CLEANUP_MODE=portable, for PostgreSQL-compatible engines without ctid or
-- advisory locks) elects its sweeper, and serialises startup migrations, with a lease row per
-- job instead of PostgreSQL's advisory locks. textdrop creates this table itself in portable
-- mode before its first migration (the statements are idempotent), so that migration can run
-- under the lease too.
CREATE TABLE IF NOT EXISTS sweeper_lease (
    name TEXT PRIMARY KEY NOT NULL,
    -- The instance holding the lease, '' for nobody.
    holder TEXT NOT NULL,
    -- UTC, the app's clock: the lease is free once this has passed.
    expires_at TIMESTAMP NOT NULL
);

INSERT INTO sweeper_lease (name, holder, expires_at)
VALUES ('sweeper', '', '1970-01-01 00:00:00'), ('migrations', '', '1970-01-01 00:00:00')
ON CONFLICT (name) DO NOTHING;
