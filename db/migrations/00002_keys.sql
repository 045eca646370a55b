-- +goose Up

-- Schema 2: the password identifiers get a key of their own (meta
-- "password_key", wrapped by the data key, written by the first open of
-- the new librecord: the key is derived from the data key, which SQL never
-- sees), and a key rotation may be in progress (meta "rotation_key",
-- "rotation_cursor"). A librecord that knows only schema 1 would misread
-- both, so this version number is what makes it refuse the file.
--
-- The meta table is rebuilt into fresh pages: wrapped keys replaced by an
-- earlier librecord (before secure_delete) may linger in its old pages'
-- free space; with secure_delete on (db.Open's writer), dropping the old
-- table zeroes them.
CREATE TABLE meta_v2 (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO meta_v2 (key, value) SELECT key, value FROM meta;
DROP TABLE meta;
ALTER TABLE meta_v2 RENAME TO meta;

-- +goose Down
-- Nothing to undo in the schema; a file left mid-rotation is not for schema 1.
SELECT 1;
