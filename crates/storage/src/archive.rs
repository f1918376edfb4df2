//! User message archives (XEP-0313 Message Archive Management): every
//! archived message of an account, in chronological order, queried by peer,
//! time, id and words of the body, and paged (XEP-0059).

use async_trait::async_trait;

use crate::StorageError;

/// One message to archive, as [`ArchiveStore::append`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArchived {
    /// The owning account's localpart (normalised).
    pub localpart: String,
    /// The owning account's domain (normalised).
    pub domain: String,
    /// The archive id (the XEP-0359 `<stanza-id/>` the server gave the
    /// message). Chosen by the caller, unique within the account's archive.
    pub id: String,
    /// When the server received the message: microseconds since the Unix
    /// epoch (UTC).
    pub timestamp_us: i64,
    /// The other party's bare JID (normalised): the recipient of a message the
    /// account sent, the sender of one it received; the account's own bare
    /// JID for a message to itself.
    pub with: String,
    /// The other party's resource, empty when it had none.
    pub with_resource: String,
    /// The message stanza (XML text), stored as given.
    pub stanza: String,
    /// The text of its `<body/>`, for full-text search; `None` without one.
    pub body: Option<String>,
}

/// One archived message, as queries return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The archive id given to [`ArchiveStore::append`].
    pub id: String,
    /// As given to [`ArchiveStore::append`].
    pub timestamp_us: i64,
    /// The other party's bare JID, as given.
    pub with: String,
    /// The stanza, exactly as given.
    pub stanza: String,
}

/// The peer a query is limited to (XEP-0313 §4.1.1 'with').
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithFilter {
    /// The bare JID (normalised).
    pub bare: String,
    /// With a resource, only messages exchanged with that very resource
    /// match; without, every resource of `bare` does.
    pub resource: Option<String>,
}

/// Where a page starts (XEP-0059 §2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PagePosition {
    /// The first `max` matches (no `<after/>` or `<before/>`).
    #[default]
    First,
    /// The `max` matches right after the message with this id (`<after/>`).
    After(String),
    /// The `max` matches right before the message with this id
    /// (`<before>id</before>`).
    Before(String),
    /// The last `max` matches (an empty `<before/>`).
    Last,
    /// The `max` matches from this position (0-based) among all matches
    /// (`<index/>`).
    Index(u64),
}

/// An archive query: the filters of XEP-0313 §4.1 and a page (XEP-0059).
/// Every filter given must match (they combine with AND).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveQuery {
    /// Messages exchanged with this peer only.
    pub with: Option<WithFilter>,
    /// Messages at or after this time (µs since the epoch) only.
    pub start_us: Option<i64>,
    /// Messages at or before this time only.
    pub end_us: Option<i64>,
    /// Messages after the one with this id only ('after-id').
    pub after_id: Option<String>,
    /// Messages before the one with this id only ('before-id').
    pub before_id: Option<String>,
    /// Only the messages with these ids ('ids'); empty: no such filter.
    pub ids: Vec<String>,
    /// Only messages whose body contains every word of this text (XEP-0431
    /// full-text search); matching ignores case and diacritics.
    pub fulltext: Option<String>,
    /// Where the page starts.
    pub position: PagePosition,
    /// At most this many messages in the page. 0 asks only for the count.
    pub max: usize,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    /// The page's messages, in chronological order.
    pub messages: Vec<ArchivedMessage>,
    /// Whether the page reaches the end of the matches in the direction of
    /// paging: the newest match for [`PagePosition::First`], `After` and
    /// `Index`, the oldest for `Before` and `Last` (XEP-0313 §4.3.3
    /// `complete`).
    pub complete: bool,
    /// How many messages match the filters, whatever the page.
    pub count: u64,
    /// The position of the page's first message among all matches.
    pub first_index: Option<u64>,
}

/// The first or last message of an archive (XEP-0313 §5 metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveBound {
    /// Its archive id.
    pub id: String,
    /// Its time (µs since the epoch).
    pub timestamp_us: i64,
}

/// Which messages an account archives by default (XEP-0313 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveDefault {
    /// Every message.
    #[default]
    Always,
    /// None.
    Never,
    /// Those exchanged with contacts in the roster.
    Roster,
}

/// An account's archiving preferences (XEP-0313 §6).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchivePrefs {
    /// The rule for JIDs in neither list.
    pub default: ArchiveDefault,
    /// JIDs whose messages are always archived (bare or full, as given).
    pub always: Vec<String>,
    /// JIDs whose messages are never archived.
    pub never: Vec<String>,
}

/// The message archives of all accounts, one per account.
///
/// The order of an archive is the order of `timestamp_us`, and for equal
/// timestamps the order of appending. Ids are compared byte-for-byte. Deleting
/// the account deletes its archive and preferences.
#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Appends every message of `batch` to its account's archive, as one
    /// atomic step (group commit: a caller collects the messages of many
    /// senders and pays for one durable write). A message for an account that
    /// does not exist is skipped; one whose id its archive already holds
    /// fails the whole batch with [`StorageError::AlreadyExists`]. Returns
    /// how many were stored.
    async fn append(&self, batch: &[NewArchived]) -> Result<u64, StorageError>;

    /// One page of the account's messages that match `query`. An unknown
    /// account has an empty archive. An id named by `after_id`, `before_id`,
    /// `ids` or the position that is not in the archive fails with
    /// [`StorageError::NotFound`] (XEP-0313 §4.1.3, §4.3.2).
    async fn query(
        &self,
        localpart: &str,
        domain: &str,
        query: &ArchiveQuery,
    ) -> Result<ArchivePage, StorageError>;

    /// The first and the last message of the account's archive; `None` when
    /// it is empty (or the account does not exist).
    async fn bounds(
        &self,
        localpart: &str,
        domain: &str,
    ) -> Result<Option<(ArchiveBound, ArchiveBound)>, StorageError>;

    /// The account's preferences; the defaults (always, no lists) when never
    /// set or the account does not exist.
    async fn prefs(&self, localpart: &str, domain: &str) -> Result<ArchivePrefs, StorageError>;

    /// Replaces the account's preferences.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    async fn set_prefs(
        &self,
        localpart: &str,
        domain: &str,
        prefs: &ArchivePrefs,
    ) -> Result<(), StorageError>;

    /// Retention: deletes every message, of every account, older than
    /// `before_us`, and returns how many.
    async fn expire(&self, before_us: i64) -> Result<u64, StorageError>;

    /// The per-account cap: deletes the oldest messages of every archive that
    /// holds more than `max`, leaving the newest `max`, and returns how many
    /// were deleted.
    async fn trim(&self, max: u64) -> Result<u64, StorageError>;

    /// How many messages the account's archive holds; 0 for an unknown
    /// account.
    async fn count(&self, localpart: &str, domain: &str) -> Result<u64, StorageError>;
}
