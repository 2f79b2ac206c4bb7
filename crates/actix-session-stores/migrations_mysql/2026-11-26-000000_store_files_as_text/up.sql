-- The uploaded file as the UTF-8 text it was checked to be (LONGTEXT: up to 4 GiB, so any
-- MAX_UPLOAD_BYTES fits), and its size for the storage cap.
ALTER TABLE sessions
    ADD COLUMN file LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    ADD COLUMN file_bytes BIGINT NOT NULL DEFAULT 0;
