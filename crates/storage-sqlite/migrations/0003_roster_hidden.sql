-- An item that exists only to hold an inbound subscription request ("Pending In") from a
-- contact the user never added: it is not on the roster proper, so roster results and pushes
-- leave it out (RFC 6121 §3.1.3). It becomes visible when the user adds or approves the contact.
ALTER TABLE roster_items ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1));
