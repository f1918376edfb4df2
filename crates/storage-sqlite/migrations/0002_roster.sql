-- Rosters (RFC 6121 §2) with subscription states (§3) and roster versions
-- (§2.6).
--
-- Everything hangs off accounts(id) ON DELETE CASCADE, directly or through
-- roster_items, so deleting an account deletes its roster and its version.
-- JIDs and group names are stored as given and compared byte-for-byte
-- (BINARY collation), like the identifiers in 0001.

CREATE TABLE roster_items (
    account_id        INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid               TEXT    NOT NULL,
    name              TEXT,
    subscription      TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out           INTEGER NOT NULL CHECK (ask_out IN (0, 1)),
    pending_in        INTEGER NOT NULL CHECK (pending_in IN (0, 1)),
    preapproved       INTEGER NOT NULL CHECK (preapproved IN (0, 1)),
    pending_in_stanza TEXT,
    PRIMARY KEY (account_id, jid)
) STRICT, WITHOUT ROWID;

-- position: the group's index in RosterItem::groups (order is kept);
-- UNIQUE (…, name): an item is in each group at most once.
CREATE TABLE roster_groups (
    account_id INTEGER NOT NULL,
    jid        TEXT    NOT NULL,
    position   INTEGER NOT NULL CHECK (position >= 0),
    name       TEXT    NOT NULL,
    PRIMARY KEY (account_id, jid, position),
    UNIQUE (account_id, jid, name),
    FOREIGN KEY (account_id, jid) REFERENCES roster_items (account_id, jid) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- One row per account whose roster ever changed; no row means version 0.
CREATE TABLE roster_versions (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL CHECK (version > 0)
) STRICT;
