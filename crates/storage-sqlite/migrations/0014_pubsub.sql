-- Publish-subscribe (XEP-0060) for PEP (XEP-0163, one service per account: its bare JID) and
-- pubsub services (pubsub.example.org).
-- pubsub_nodes.owner_id: the account that owns a PEP service, or NULL; deleting the account
-- deletes its nodes (ON DELETE CASCADE), and deleting a node deletes its items, affiliations and
-- subscriptions (ON DELETE CASCADE from pubsub_nodes).
-- config: the node's configuration as data-form field values, JSON [["var", ["value", …]], …],
-- opaque to the store.
-- pubsub_items.seq: the order of publication; republishing an id replaces its row, so it becomes
-- the newest. Items are read newest first and the oldest go first beyond max_items.
-- Numbered 0014: 0013 is the last migration on main when this was written.

CREATE TABLE pubsub_nodes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service    TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    owner_id   INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    config     TEXT    NOT NULL CHECK (json_valid(config)),
    created_at INTEGER NOT NULL,
    UNIQUE (service, node)
) STRICT;

-- The cascade from accounts.
CREATE INDEX pubsub_nodes_owner ON pubsub_nodes (owner_id);

CREATE TABLE pubsub_items (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id      INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
    item_id      TEXT    NOT NULL,
    publisher    TEXT,
    payload      TEXT    NOT NULL,
    published_at INTEGER NOT NULL
) STRICT;

-- One item per (node, id).
CREATE UNIQUE INDEX pubsub_items_key ON pubsub_items (node_id, item_id);
-- A node's items newest first (scanned backwards), the eviction of the oldest, the cascade.
CREATE INDEX pubsub_items_order ON pubsub_items (node_id, seq);

CREATE TABLE pubsub_affiliations (
    node_id     INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
    jid         TEXT    NOT NULL,
    affiliation TEXT    NOT NULL,
    PRIMARY KEY (node_id, jid)
) STRICT, WITHOUT ROWID;

CREATE TABLE pubsub_subscriptions (
    node_id INTEGER NOT NULL REFERENCES pubsub_nodes (id) ON DELETE CASCADE,
    jid     TEXT    NOT NULL,
    subid   TEXT    NOT NULL,
    state   TEXT    NOT NULL,
    PRIMARY KEY (node_id, jid, subid)
) STRICT, WITHOUT ROWID;

-- A JID's subscriptions across nodes (XEP-0060 §5.6).
CREATE INDEX pubsub_subscriptions_jid ON pubsub_subscriptions (jid);
