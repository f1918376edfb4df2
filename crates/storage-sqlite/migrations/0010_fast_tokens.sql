-- XEP-0484 FAST tokens: at most two per (account, client), in slots 0 (current: used since
-- it was issued) and 1 (new: issued, not used yet). The token itself is not stored: `nonce`
-- is what the server derives it from, with a secret kept in a file outside the database, so a
-- copy of this file alone lets nobody log in.
-- expires_at: seconds since the Unix epoch. last_count: the highest XEP-0484 'count' a login
-- with the token carried (NULL: none), stored as the two's-complement i64 of the u64.
-- Numbered 0010: 0009 is the archive's, other numbers are taken by parallel work.
-- ON DELETE CASCADE: deleting an account deletes its tokens; a password change deletes them
-- in the same transaction (crates/storage-sqlite/src/accounts.rs).

CREATE TABLE fast_tokens (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_agent TEXT    NOT NULL,
    slot       INTEGER NOT NULL CHECK (slot IN (0, 1)),
    mechanism  TEXT    NOT NULL,
    nonce      BLOB    NOT NULL,
    expires_at INTEGER NOT NULL,
    last_count INTEGER,
    PRIMARY KEY (account_id, user_agent, slot)
) STRICT;

-- The hourly sweep of expired tokens.
CREATE INDEX fast_tokens_expiry ON fast_tokens (expires_at);
