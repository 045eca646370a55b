-- +goose Up

-- A change counter for servers that keep access and credentials in memory
-- (issue 9). Every change that can take a salon or a login away from a
-- live session, or remove messages, bumps it in its own transaction,
-- whichever process makes it (serve, or an admin command run next to it):
-- triggers, so that no write path can forget to. A server reads it before
-- each answer and drops what it cached when it moved. Its own group
-- commits (message inserts) and new users or salons do not bump it.
CREATE TABLE changes (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;

INSERT INTO changes (id, n) VALUES (1, 0);

-- +goose StatementBegin
CREATE TRIGGER changes_users_update AFTER UPDATE ON users
BEGIN UPDATE changes SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER changes_users_delete AFTER DELETE ON users
BEGIN UPDATE changes SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER changes_grants_insert AFTER INSERT ON grants
BEGIN UPDATE changes SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER changes_grants_delete AFTER DELETE ON grants
BEGIN UPDATE changes SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER changes_salons_update AFTER UPDATE ON salons
BEGIN UPDATE changes SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER changes_salons_delete AFTER DELETE ON salons
BEGIN UPDATE changes SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER changes_messages_delete AFTER DELETE ON messages
BEGIN UPDATE changes SET n = n + 1 WHERE id = 1; END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER changes_messages_delete;
DROP TRIGGER changes_salons_delete;
DROP TRIGGER changes_salons_update;
DROP TRIGGER changes_grants_delete;
DROP TRIGGER changes_grants_insert;
DROP TRIGGER changes_users_delete;
DROP TRIGGER changes_users_update;
DROP TABLE changes;
