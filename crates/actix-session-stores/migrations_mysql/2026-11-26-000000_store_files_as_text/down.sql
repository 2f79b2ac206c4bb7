ALTER TABLE sessions DROP COLUMN file_bytes, DROP COLUMN file;
