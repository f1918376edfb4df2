-- Disabled accounts (XEP-0133 §4.3 "Disable User"): the account keeps everything it owns, but
-- logins are refused with <account-disabled/> (RFC 6120 §6.5.1) until it is re-enabled. A column
-- of `accounts` rather than a table of its own, so that the login path reads it in the same
-- query as the credential.
ALTER TABLE accounts ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));
