-- Accounts and their SCRAM credentials.
--
-- Identifiers are stored exactly as given (already nodeprep/nameprep'd) and
-- compared with the default BINARY collation, i.e. byte-for-byte.
--
-- AUTOINCREMENT: ids are never reused, so a row in some later per-account
-- table can never end up pointing at a different, newer account.
-- Every per-account table must reference accounts(id) ON DELETE CASCADE so
-- that deleting an account deletes what it owns (needs PRAGMA foreign_keys=ON,
-- which the backend sets on every connection).

CREATE TABLE accounts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    domain     TEXT    NOT NULL,
    localpart  TEXT    NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (domain, localpart)
) STRICT;

CREATE TABLE credentials (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    mechanism  TEXT    NOT NULL,
    salt       BLOB    NOT NULL,
    iterations INTEGER NOT NULL CHECK (iterations BETWEEN 0 AND 4294967295),
    stored_key BLOB    NOT NULL,
    server_key BLOB    NOT NULL,
    PRIMARY KEY (account_id, mechanism)
) STRICT, WITHOUT ROWID;
