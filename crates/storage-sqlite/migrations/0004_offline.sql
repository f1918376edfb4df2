-- Offline messages (XEP-0160): one queue per account, in arrival order.
--
-- AUTOINCREMENT: ids only ever grow and are never reused, not even after the
-- newest row was deleted. Delivery deletes "up to and including the last id
-- handed over", so a reused id could delete a message that arrived later and
-- was never delivered.
-- ON DELETE CASCADE: deleting an account deletes its queue.

CREATE TABLE offline_messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    stanza     TEXT    NOT NULL
) STRICT;

-- Loads, counts and deletes are per account, in id order; also serves the
-- foreign key's cascade.
CREATE INDEX offline_messages_account ON offline_messages (account_id, id);
