-- The full-text index of archived bodies (XEP-0431) is brought up to date in
-- batches instead of by a trigger per row: FTS5 writes a new segment at every
-- commit, and with the archive's small, frequent transactions that was about
-- half the cost of archiving a message. Rows with seq > indexed_seq are not
-- indexed yet; the store indexes them once enough are waiting, and always
-- before a full-text query, so a search never misses a message.

CREATE TABLE archive_fts_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_seq INTEGER NOT NULL
) STRICT;

-- Everything archived so far was indexed by the old trigger.
INSERT INTO archive_fts_state (id, indexed_seq)
SELECT 1, COALESCE(MAX(seq), 0) FROM archive_messages;

DROP TRIGGER archive_messages_fts_insert;

-- A row that was never indexed must not be 'deleted' from the index (that
-- would corrupt an external-content FTS5 table).
DROP TRIGGER archive_messages_fts_delete;
CREATE TRIGGER archive_messages_fts_delete AFTER DELETE ON archive_messages
WHEN old.body IS NOT NULL
 AND old.seq <= (SELECT indexed_seq FROM archive_fts_state WHERE id = 1)
BEGIN
    INSERT INTO archive_fts (archive_fts, rowid, body) VALUES ('delete', old.seq, old.body);
END;
