-- Private XML storage (XEP-0049): per account, one element per (namespace, name), stored as its
-- serialization. ON DELETE CASCADE: deleting an account deletes its elements.

CREATE TABLE private_xml (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    xml        TEXT    NOT NULL,
    PRIMARY KEY (account_id, namespace, name)
) STRICT, WITHOUT ROWID;
