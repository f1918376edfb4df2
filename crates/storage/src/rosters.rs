//! Rosters (RFC 6121 §2) and the subscription state of each contact (§3).

use std::fmt;

use async_trait::async_trait;

use crate::StorageError;

/// The `subscription` attribute of a roster item (RFC 6121 §2.1.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Subscription {
    /// Neither side is subscribed to the other's presence.
    #[default]
    None,
    /// The user is subscribed to the contact's presence.
    To,
    /// The contact is subscribed to the user's presence.
    From,
    /// Both.
    Both,
}

impl Subscription {
    /// The attribute value: `"none"`, `"to"`, `"from"` or `"both"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::To => "to",
            Self::From => "from",
            Self::Both => "both",
        }
    }

    /// Parses an attribute value (exact, lower-case); `None` for anything
    /// else, including `"remove"` (not a stored state).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "to" => Some(Self::To),
            "from" => Some(Self::From),
            "both" => Some(Self::Both),
            _ => None,
        }
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One contact on a user's roster, with its subscription state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RosterItem {
    /// The contact's bare JID, already normalised; stored and compared
    /// byte-for-byte, as given.
    pub jid: String,
    /// The user-assigned handle (`name` attribute), if any.
    pub name: Option<String>,
    /// The presence subscription between user and contact.
    pub subscription: Subscription,
    /// "Pending Out": the user sent `subscribe` and waits for an answer
    /// (shown as `ask='subscribe'`, RFC 6121 §2.1.2.2).
    pub ask_out: bool,
    /// "Pending In": the contact sent `subscribe` and the user has not
    /// answered yet.
    pub pending_in: bool,
    /// The user pre-approved a subscription request from the contact
    /// (RFC 6121 §3.4).
    pub preapproved: bool,
    /// The groups of the item, in order, without duplicates (RFC 6121
    /// §2.1.2.4); see [`check_distinct_groups`].
    pub groups: Vec<String>,
    /// The stored inbound subscription request stanza (XML text), redelivered
    /// at login until answered (RFC 6121 §3.1.3).
    pub pending_in_stanza: Option<String>,
    /// The item exists only to hold a "Pending In" request from a contact
    /// the user never added: it is not on the roster proper and is left out
    /// of roster results and pushes (RFC 6121 §3.1.3). Stored like any other
    /// field; the filtering is the caller's.
    pub hidden: bool,
}

impl RosterItem {
    /// An item for `jid` with no name, no groups and subscription `none`.
    pub fn new(jid: impl Into<String>) -> Self {
        Self {
            jid: jid.into(),
            ..Self::default()
        }
    }
}

/// Rejects a group list naming the same group twice.
///
/// Backends call this in [`RosterStore::put_item`] before writing, so a
/// duplicate fails with [`StorageError::Backend`] instead of being silently
/// merged. Callers should have rejected it already with `bad-request`
/// (RFC 6121 §2.3.3).
pub fn check_distinct_groups(groups: &[String]) -> Result<(), StorageError> {
    for (i, g) in groups.iter().enumerate() {
        if groups[..i].contains(g) {
            return Err(StorageError::backend(format!(
                "duplicate roster group {g:?}"
            )));
        }
    }
    Ok(())
}

/// How many items one account's roster holds, by kind: what the server's
/// limits are checked against (see [`RosterStore::counts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RosterCounts {
    /// Items on the roster proper (`hidden == false`).
    pub visible: u64,
    /// Items that only hold an inbound subscription request (`hidden ==
    /// true`).
    pub hidden: u64,
}

/// New items for one account's roster, for [`RosterStore::insert_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewRoster<'a> {
    /// The owning account's localpart, already normalised.
    pub localpart: &'a str,
    /// The owning account's domain, already normalised.
    pub domain: &'a str,
    /// The items to add; none of their JIDs may be on the roster yet.
    pub items: &'a [RosterItem],
}

/// The rosters of all accounts, one item per (account, contact JID).
///
/// `localpart` and `domain` name the owning account and, like `jid`, are
/// already normalised and compared byte-for-byte (see the crate docs).
///
/// Every change of an account's roster ([`Self::put_item`],
/// [`Self::remove_item`] of an existing item, and each non-empty entry of
/// [`Self::insert_many`]) increments that account's
/// roster version by one, atomically with the change (RFC 6121 §2.6). The
/// version starts at 0 and belongs to the account: deleting the account
/// deletes its roster and version.
#[async_trait]
pub trait RosterStore: Send + Sync {
    /// All items of the account, sorted by `jid` (UTF-8 byte order), including
    /// those that are only "Pending In". Empty for an unknown account.
    async fn items(&self, localpart: &str, domain: &str) -> Result<Vec<RosterItem>, StorageError>;

    /// The account's item for `jid`, or `None` if the account or the item does
    /// not exist.
    async fn item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<RosterItem>, StorageError>;

    /// Inserts the item, or replaces every field of the existing one with the
    /// same `jid`. Returns the new roster version.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist,
    /// and with [`StorageError::Backend`] if `item.groups` has duplicates
    /// ([`check_distinct_groups`]). Atomic.
    async fn put_item(
        &self,
        localpart: &str,
        domain: &str,
        item: &RosterItem,
    ) -> Result<u64, StorageError>;

    /// Removes the item for `jid`: `Some(new version)` if it existed, `None`
    /// (version unchanged) if not.
    ///
    /// Fails with [`StorageError::NotFound`] if the account does not exist.
    /// Atomic.
    async fn remove_item(
        &self,
        localpart: &str,
        domain: &str,
        jid: &str,
    ) -> Result<Option<u64>, StorageError>;

    /// Adds new items to the rosters of many accounts at once, all or
    /// nothing: on error nothing changed. Meant for bulk provisioning
    /// (`starling user import`); a backend makes it one transaction with
    /// statements prepared once (and multi-row inserts), not one
    /// [`Self::put_item`] per item.
    ///
    /// Each entry with at least one item is **one** change of its account's
    /// roster: the version increments by exactly one for it (RFC 6121 §2.6:
    /// any change yields a new version, so a client's cached copy is not
    /// taken as current). An entry without items changes nothing. The same
    /// account may appear in several entries; each is its own change.
    ///
    /// Unlike [`Self::put_item`] this never replaces an item. Fails with
    /// [`StorageError::NotFound`] if an entry's account does not exist (even
    /// an entry without items), with [`StorageError::AlreadyExists`] if an
    /// item's `jid` is on that roster already or appears twice among the
    /// batch's items for one account, and with [`StorageError::Backend`] if
    /// an item's groups have duplicates ([`check_distinct_groups`]). Atomic.
    async fn insert_many(&self, rosters: &[NewRoster<'_>]) -> Result<(), StorageError>;

    /// The account's current roster version: 0 if its roster never changed
    /// or the account does not exist.
    async fn version(&self, localpart: &str, domain: &str) -> Result<u64, StorageError>;

    /// How many visible and hidden items the account's roster holds (see
    /// [`RosterItem::hidden`]); both 0 for an unknown account. Called on
    /// every change that adds an item or a stored request, so a backend
    /// counts without reading the items (one aggregate query in SQL).
    async fn counts(&self, localpart: &str, domain: &str) -> Result<RosterCounts, StorageError>;
}
