-- Blocklists (XEP-0191) and the reports attached to blocks (XEP-0377).
--
-- blocklist.seq: an AUTOINCREMENT key, so that the list keeps the order the
-- JIDs were blocked in (and a JID blocked again goes to the end).
-- abuse_report_ids: the archive ids a report names, in the order given.
-- ON DELETE CASCADE: deleting an account deletes its blocklist and the reports
-- it filed.

CREATE TABLE blocklist (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid        TEXT    NOT NULL
) STRICT;

-- One entry per JID per account; also the account's list in order (the rowid
-- ends the index) and the foreign key's cascade.
CREATE UNIQUE INDEX blocklist_jid ON blocklist (account_id, jid);

CREATE TABLE abuse_reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    jid         TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    text        TEXT,
    received_us INTEGER NOT NULL
) STRICT;

CREATE INDEX abuse_reports_account ON abuse_reports (account_id);
CREATE INDEX abuse_reports_jid ON abuse_reports (jid, id);

CREATE TABLE abuse_report_ids (
    report_id INTEGER NOT NULL REFERENCES abuse_reports (id) ON DELETE CASCADE,
    pos       INTEGER NOT NULL,
    stanza_id TEXT    NOT NULL,
    PRIMARY KEY (report_id, pos)
) STRICT, WITHOUT ROWID;
