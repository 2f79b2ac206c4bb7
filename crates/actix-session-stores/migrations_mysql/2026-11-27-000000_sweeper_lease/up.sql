-- The lease rows of portable mode, kept in step with migrations/ (MySQL itself elects its
-- sweeper with GET_LOCK; a Galera cluster, which refuses GET_LOCK, would need these).
CREATE TABLE IF NOT EXISTS sweeper_lease (
    name VARCHAR(32) CHARACTER SET ascii NOT NULL PRIMARY KEY,
    holder VARCHAR(64) CHARACTER SET ascii NOT NULL,
    expires_at DATETIME(6) NOT NULL
) ENGINE = InnoDB;

INSERT IGNORE INTO sweeper_lease (name, holder, expires_at)
VALUES ('sweeper', '', '1970-01-01 00:00:00'), ('migrations', '', '1970-01-01 00:00:00');
