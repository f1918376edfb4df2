-- vcard-temp (XEP-0054): at most one vCard per account, stored as the
-- serialized <vCard xmlns='vcard-temp'/> element. ON DELETE CASCADE: deleting
-- an account deletes its vCard.

CREATE TABLE vcards (
    account_id INTEGER PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    vcard      TEXT    NOT NULL
) STRICT;
