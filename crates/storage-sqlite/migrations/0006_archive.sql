-- User message archives (XEP-0313) and their preferences.
--
-- seq: an AUTOINCREMENT key, so the order of appending survives deletes and
-- is the tie-break between equal timestamps (the archive's order is ts, seq).
-- id: the archive id the server gave the message (its XEP-0359 stanza-id),
-- unique per account.
-- with_bare / with_resource: the other party, for the 'with' filter.
-- body: the text of <body/>, indexed for full-text search (XEP-0431) by
-- archive_fts; NULL when the message has none.
-- ON DELETE CASCADE: deleting an account deletes its archive.

CREATE TABLE archive_messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    id            TEXT    NOT NULL,
    ts            INTEGER NOT NULL,
    with_bare     TEXT    NOT NULL,
    with_resource TEXT    NOT NULL,
    stanza        TEXT    NOT NULL,
    body          TEXT
) STRICT;

-- Id lookups (paging anchors, 'ids'), and uniqueness per account.
CREATE UNIQUE INDEX archive_messages_id ON archive_messages (account_id, id);
-- Pages in archive order (the rowid, seq, ends every index), time ranges,
-- retention per account, and the foreign key's cascade.
CREATE INDEX archive_messages_time ON archive_messages (account_id, ts);
-- Pages of one conversation.
CREATE INDEX archive_messages_with ON archive_messages (account_id, with_bare, ts);

-- Full-text index of the bodies, kept by the triggers below (an external
-- content table: the text is stored once, in archive_messages). unicode61
-- with remove_diacritics 2: matching ignores case and accents.
CREATE VIRTUAL TABLE archive_fts USING fts5 (
    body,
    content = 'archive_messages',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER archive_messages_fts_insert AFTER INSERT ON archive_messages
WHEN new.body IS NOT NULL
BEGIN
    INSERT INTO archive_fts (rowid, body) VALUES (new.seq, new.body);
END;

CREATE TRIGGER archive_messages_fts_delete AFTER DELETE ON archive_messages
WHEN old.body IS NOT NULL
BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body) VALUES ('delete', old.seq, old.body);
END;

-- Preferences (XEP-0313 §6): the default rule, and the JIDs always or never
-- archived. A JID is in one list only.
CREATE TABLE archive_prefs (
    account_id   INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    default_rule TEXT    NOT NULL CHECK (default_rule IN ('always', 'never', 'roster'))
) STRICT;

CREATE TABLE archive_prefs_jids (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid        TEXT    NOT NULL,
    always     INTEGER NOT NULL CHECK (always IN (0, 1)),
    PRIMARY KEY (account_id, jid)
) STRICT;
