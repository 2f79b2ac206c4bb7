-- Key rotation with a grace period (ROTATION_GRACE_SECS). An upload writes the session under a
-- new key; the record under the old key is kept, read-only, for the grace period, so a visitor
-- whose browser never received the new key still sees the previous file.
-- `successor`: the id of the record that replaced this one (NULL: the current record).
-- `superseded_at`: when it was replaced. Its expiry is cut to two grace periods after that:
-- readable for the first, then kept only so a late use of the old key can be counted.
ALTER TABLE sessions ADD COLUMN successor TEXT;
ALTER TABLE sessions ADD COLUMN superseded_at TIMESTAMP;
-- "Forget my data now" and the next rotation delete the record a key superseded by this index.
CREATE INDEX sessions_successor_idx ON sessions (successor);
