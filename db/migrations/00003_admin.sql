-- +goose Up

-- Moderation and retention (issue 11).

-- When the host disabled the user (unix milliseconds, UTC); NULL while
-- enabled. A disabled user's login is refused and their sessions end at
-- their next request; their messages stay.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;

-- How long the salon keeps its messages, in milliseconds; 0 keeps them
-- forever (the default). serve and `librecord prune` delete older ones.
ALTER TABLE salons ADD COLUMN retain_ms INTEGER NOT NULL DEFAULT 0 CHECK (retain_ms >= 0);

-- +goose Down
ALTER TABLE salons DROP COLUMN retain_ms;
ALTER TABLE users DROP COLUMN disabled_at;
