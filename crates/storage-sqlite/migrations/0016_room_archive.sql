-- Multi-user chat room archives (XEP-0313 on a room's JID, XEP-0425 moderation).
--
-- room_archive_rooms: one row per room that has (or had) archived messages, naming it by
-- service and localpart. Not muc_rooms: temporary rooms, which are never stored there, are
-- archived too. The integer id keeps the service and room names out of every message row and
-- index entry; "the room" in the indexes below is this id. AUTOINCREMENT: a room archived again
-- after its archive was deleted gets a new id, so a stale id deletes or finds nothing.
-- room_archive_messages: as archive_messages (0006), with room_id for the owner:
--   seq: an AUTOINCREMENT key, so the order of appending survives deletes and is the
--   tie-break between equal timestamps (the archive's order is ts, seq), and so that
--   room_archive_fts_state.indexed_seq never points past a reused number.
--   id: the room's XEP-0359 stanza-id for the message, unique per room.
--   nick: the sender's nick in the room; sender: its real bare JID, NULL when unknown.
--   stanza: the message, or the XEP-0425 tombstone that replaced it.
--   body: the text of <body/> for full-text search (XEP-0431); NULL without one, and once
--   the message is retracted.
-- ON DELETE CASCADE: deleting a room's row deletes its archive. No reference to accounts:
-- deleting an account leaves the rooms' history alone.

CREATE TABLE room_archive_rooms (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    UNIQUE (service, room)
) STRICT;

CREATE TABLE room_archive_messages (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id INTEGER NOT NULL REFERENCES room_archive_rooms (id) ON DELETE CASCADE,
    id      TEXT    NOT NULL,
    ts      INTEGER NOT NULL,
    nick    TEXT    NOT NULL,
    sender  TEXT,
    stanza  TEXT    NOT NULL,
    body    TEXT
) STRICT;

-- Id lookups (paging anchors, 'ids', moderation), and uniqueness per room.
CREATE UNIQUE INDEX room_archive_messages_id ON room_archive_messages (room_id, id);
-- Pages in archive order (the rowid, seq, ends every index), time ranges, retention per room,
-- and the foreign key's cascade.
CREATE INDEX room_archive_messages_time ON room_archive_messages (room_id, ts);
-- Pages of one occupant's messages ('with' an occupant JID).
CREATE INDEX room_archive_messages_nick ON room_archive_messages (room_id, nick, ts);

-- Full-text index of the bodies, an external content table (the text is stored once, in
-- room_archive_messages); unicode61 with remove_diacritics 2: matching ignores case and
-- accents. Filled in batches as 0009 does for user archives: rows with seq > indexed_seq are
-- not indexed yet, and the store indexes them once enough are waiting and before every
-- full-text query.
CREATE VIRTUAL TABLE room_archive_fts USING fts5 (
    body,
    content = 'room_archive_messages',
    content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE room_archive_fts_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_seq INTEGER NOT NULL
) STRICT;

INSERT INTO room_archive_fts_state (id, indexed_seq) VALUES (1, 0);

-- Only a row that was indexed is 'deleted' from the index, with the very text indexed (anything
-- else corrupts an external-content FTS5 table).
CREATE TRIGGER room_archive_messages_fts_delete AFTER DELETE ON room_archive_messages
WHEN old.body IS NOT NULL
 AND old.seq <= (SELECT indexed_seq FROM room_archive_fts_state WHERE id = 1)
BEGIN
    INSERT INTO room_archive_fts (room_archive_fts, rowid, body)
    VALUES ('delete', old.seq, old.body);
END;

-- A retraction sets body to NULL: an indexed row leaves the index (and a new body, should one
-- ever be set, takes its place). A row not indexed yet is indexed later with its body then.
CREATE TRIGGER room_archive_messages_fts_update AFTER UPDATE OF body ON room_archive_messages
WHEN old.seq <= (SELECT indexed_seq FROM room_archive_fts_state WHERE id = 1)
BEGIN
    INSERT INTO room_archive_fts (room_archive_fts, rowid, body)
    SELECT 'delete', old.seq, old.body WHERE old.body IS NOT NULL;
    INSERT INTO room_archive_fts (rowid, body)
    SELECT new.seq, new.body WHERE new.body IS NOT NULL;
END;
