-- +goose Up

-- Install-wide settings and secrets, one row each. Secret values are
-- encrypted (wrapped data key, identity private key); salts, KDF
-- parameters and the identity public key are not secret.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- AUTOINCREMENT everywhere: an id is never reused, so a new user never
-- inherits a removed user's client message ids, and a blob bound to a
-- removed salon's id never opens in a new salon of the same name.
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    pseudo     TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    -- HMAC (keyed by the data key) of Argon2id(password, install salt):
    -- the user's identifier, looked up on login.
    pass_id    BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL -- unix milliseconds, UTC
) STRICT;

CREATE TABLE salons (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL COLLATE NOCASE UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE grants (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    salon_id INTEGER NOT NULL REFERENCES salons (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, salon_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX grants_by_salon ON grants (salon_id, user_id);

-- Only what indexing and dedup need is in clear. Pseudo and text are in
-- blob, sealed with the data key and bound to every clear column of the
-- row. user_id has no foreign key on purpose: a removed user's messages
-- stay in the history (0 = system message).
CREATE TABLE messages (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    salon_id INTEGER NOT NULL REFERENCES salons (id) ON DELETE CASCADE,
    at       INTEGER NOT NULL, -- unix milliseconds, UTC
    user_id  INTEGER NOT NULL,
    cid      TEXT,             -- client message id; NULL for system messages
    portions INTEGER NOT NULL,
    blob     BLOB    NOT NULL
) STRICT;

-- "latest N", "N before id", "N after id" per salon: one range scan each.
CREATE INDEX messages_by_salon ON messages (salon_id, id);

-- Dedup of retried sends: one message per (user, cid), forever.
CREATE UNIQUE INDEX messages_by_cid ON messages (user_id, cid) WHERE cid IS NOT NULL;

-- +goose Down
DROP TABLE messages;
DROP TABLE grants;
DROP TABLE salons;
DROP TABLE users;
DROP TABLE meta;
