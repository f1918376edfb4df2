//! Blocklists (XEP-0191) and the reports attached to blocks (XEP-0377).

use async_trait::async_trait;

use crate::StorageError;

/// One blocked JID of one account, as [`BlockingStore::all_blocklists`] lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockedJid {
    pub localpart: String,
    pub domain: String,
    /// The blocked JID as the module normalised it (a full JID, a bare JID, a domain, or
    /// `domain/resource`).
    pub jid: String,
}

/// A report a user attached to a block (XEP-0377 §5), kept for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbuseReport {
    /// The reporting account.
    pub localpart: String,
    pub domain: String,
    /// The JID reported (and blocked).
    pub jid: String,
    /// The reason, a URI (`urn:xmpp:reporting:spam`, `urn:xmpp:reporting:abuse`, …).
    pub reason: String,
    /// The user's explanation, if any.
    pub text: Option<String>,
    /// The archive ids (XEP-0359) of the messages reported, as the client named them.
    pub stanza_ids: Vec<String>,
    /// When the report was received, in microseconds since the Unix epoch.
    pub received_us: i64,
}

/// A stored report, with its place in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReport {
    /// Increases with every report stored.
    pub id: i64,
    pub report: AbuseReport,
}

/// Every account's blocklist and the reports users attached to blocks.
///
/// `localpart` and `domain` name the owning account, already normalised and compared
/// byte-for-byte (see the crate docs); so are the blocked JIDs, which the caller normalises.
/// Deleting the account deletes its blocklist and the reports it filed.
#[async_trait]
pub trait BlockingStore: Send + Sync {
    /// The account's blocked JIDs, in the order they were blocked; empty if it blocked nothing
    /// or does not exist.
    async fn blocklist(&self, localpart: &str, domain: &str) -> Result<Vec<String>, StorageError>;

    /// Every blocked JID of every account, grouped by account (accounts in no particular order,
    /// each account's JIDs in the order they were blocked). The server keeps them in memory: a
    /// blocklist is asked about for every stanza, and most accounts have none.
    async fn all_blocklists(&self) -> Result<Vec<BlockedJid>, StorageError>;

    /// Adds `jids` to the account's blocklist, atomically; JIDs already there (or named twice)
    /// are left as they are. Returns the JIDs that were added, in the order given.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    async fn block(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[String],
    ) -> Result<Vec<String>, StorageError>;

    /// Removes `jids` from the account's blocklist, atomically. Returns those that were there.
    async fn unblock(
        &self,
        localpart: &str,
        domain: &str,
        jids: &[String],
    ) -> Result<Vec<String>, StorageError>;

    /// Empties the account's blocklist. Returns what it held, in the order it was blocked.
    async fn unblock_all(&self, localpart: &str, domain: &str)
    -> Result<Vec<String>, StorageError>;

    /// Stores a report.
    ///
    /// Fails with [`StorageError::NotFound`] if the reporting account does not exist.
    async fn add_report(&self, report: &AbuseReport) -> Result<(), StorageError>;

    /// The newest `limit` reports, newest first; with `jid`, only those about that JID.
    async fn reports(
        &self,
        jid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredReport>, StorageError>;
}
