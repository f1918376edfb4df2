-- Invitations (XEP-0401, XEP-0379, XEP-0445). token_hash: the hex SHA-256 of the token (the
-- token itself is never stored, so a copy of the database invites nobody).
-- username: the user name reserved for the invitee, or NULL.
-- contact_id: the account the invitee becomes a mutual contact of, or NULL; deleting that
-- account deletes its invitations (ON DELETE CASCADE).
-- register: 1 if the token may create an account.
-- Numbered 0012: 0010, 0011 and 0013 are taken by work on other branches.

CREATE TABLE invites (
    token_hash TEXT    PRIMARY KEY,
    domain     TEXT    NOT NULL,
    username   TEXT,
    contact_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    register   INTEGER NOT NULL CHECK (register IN (0, 1)),
    uses_left  INTEGER NOT NULL CHECK (uses_left > 0),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

-- The cascade from accounts, and reserved names.
CREATE INDEX invites_contact ON invites (contact_id);
CREATE INDEX invites_username ON invites (domain, username);
