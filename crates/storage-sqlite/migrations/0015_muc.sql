-- Multi-user chat (XEP-0045): the persistent rooms of every MUC service (conference.example.org)
-- and their affiliations. Temporary rooms and occupants are never stored.
-- muc_rooms.config: the room's configuration as data-form field values, JSON
-- [["var", ["value", …]], …], opaque to the store (its name and public flag are fields of it).
-- muc_rooms.subject, subject_by, subject_at: the current subject, all three NULL without one.
-- muc_affiliations: deleting a room deletes them (ON DELETE CASCADE). They name JIDs, local or
-- remote, and reference no account: deleting an account leaves them to the MUC engine.
-- Numbered 0015: 0014 is the last migration on main when this was written.

CREATE TABLE muc_rooms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service    TEXT    NOT NULL,
    room       TEXT    NOT NULL,
    config     TEXT    NOT NULL CHECK (json_valid(config)),
    subject    TEXT,
    subject_by TEXT,
    subject_at INTEGER,
    created_at INTEGER NOT NULL,
    CHECK ((subject IS NULL) = (subject_by IS NULL) AND (subject IS NULL) = (subject_at IS NULL)),
    -- Its index serves a room's look-up, a service's rooms in order and their count.
    UNIQUE (service, room)
) STRICT;

CREATE TABLE muc_affiliations (
    room_id     INTEGER NOT NULL REFERENCES muc_rooms (id) ON DELETE CASCADE,
    jid         TEXT    NOT NULL,
    affiliation TEXT    NOT NULL,
    nick        TEXT,
    reason      TEXT,
    -- Also the cascade from muc_rooms.
    PRIMARY KEY (room_id, jid)
) STRICT, WITHOUT ROWID;

-- A room's affiliations of one kind: whether an owner is left (forget_jid), the owner, admin,
-- member and ban lists (XEP-0045 §9–§10).
CREATE INDEX muc_affiliations_kind ON muc_affiliations (room_id, affiliation);
-- A reserved nick belongs to one JID per room (XEP-0045 §7.10), and who holds it.
CREATE UNIQUE INDEX muc_affiliations_nick ON muc_affiliations (room_id, nick)
    WHERE nick IS NOT NULL;
-- A JID's rooms across services (a per-user room limit, forgetting a deleted account).
CREATE INDEX muc_affiliations_jid ON muc_affiliations (jid);
