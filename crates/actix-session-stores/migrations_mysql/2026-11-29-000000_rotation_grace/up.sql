-- Key rotation with a grace period (see migrations/ for the meaning of the columns).
ALTER TABLE sessions
    ADD COLUMN successor CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD COLUMN superseded_at DATETIME(6) NULL,
    ADD INDEX sessions_successor_idx (successor);
