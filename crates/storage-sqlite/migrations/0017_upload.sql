-- XEP-0363 HTTP File Upload: one row per slot handed out. owner: the bare JID that asked for it
-- (no account reference: deleting an account leaves its rows to the upload service, which
-- deletes the files on disk first). content_type: NULL when the request named none.
-- completed: 1 once the PUT stored the file. created_at: seconds since the Unix epoch.
-- Numbered 0017: 0016 is the last migration on main when this was written.

CREATE TABLE upload_slots (
    id           TEXT    PRIMARY KEY,
    owner        TEXT    NOT NULL,
    filename     TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size >= 0),
    content_type TEXT,
    created_at   INTEGER NOT NULL,
    completed    INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1))
) STRICT, WITHOUT ROWID;

-- The quota sum and an owner's slots.
CREATE INDEX upload_slots_owner ON upload_slots (owner, created_at);
-- The expiry sweep, oldest first.
CREATE INDEX upload_slots_created ON upload_slots (created_at);
