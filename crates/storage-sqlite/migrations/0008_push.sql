-- XEP-0357 push notification registrations: the app servers (jid, node) an
-- account asked to be notified at, with the publish-options form (the app
-- server's secret, serialised <x xmlns='jabber:x:data'/>) or NULL.
-- seq: the order of enabling (re-enabling replaces the row, so it becomes the
-- newest); the oldest go first when an account has too many.
-- Numbered 0008: 0007 is taken by the blocking list on another branch.
-- ON DELETE CASCADE: deleting an account deletes its registrations.

CREATE TABLE push_registrations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid        TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    options    TEXT
) STRICT;

-- One registration per (account, jid, node); look-ups by account (and the
-- cascade) use its prefix.
CREATE UNIQUE INDEX push_registrations_key ON push_registrations (account_id, jid, node);
