ALTER TABLE sessions DROP COLUMN file_bytes;
ALTER TABLE sessions DROP COLUMN file;
