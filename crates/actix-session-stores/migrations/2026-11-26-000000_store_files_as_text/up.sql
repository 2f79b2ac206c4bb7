-- The uploaded file, stored as the UTF-8 text it was checked to be: not escaped, not split
-- into a JSON array inside the JSON state, so a file takes its own size at rest. `state` keeps
-- only the small session map (the file's name, size and line count). NULL: no file.
ALTER TABLE sessions ADD COLUMN file TEXT;
-- The size of `file` in bytes, summed for the total storage cap (MAX_STORED_BYTES).
ALTER TABLE sessions ADD COLUMN file_bytes BIGINT NOT NULL DEFAULT 0;
