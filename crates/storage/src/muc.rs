//! Multi-user chat (XEP-0045) rooms: their configuration, subject and affiliations.
//!
//! Only **persistent** rooms (`muc#roomconfig_persistentroom`) are stored. A temporary room
//! lives in the MUC engine's memory and is gone when its last occupant leaves; the engine writes
//! a room here when it becomes persistent and deletes it when it stops being so. Occupants,
//! roles and presence are never stored: they last as long as the occupants' sessions.
//!
//! The store knows no protocol: a room's configuration and an affiliation are strings it keeps
//! as given; what they mean, defaults and limits are the engine's business. The one exception is
//! [`MucStore::forget_jid`], which must know that `owner` is the affiliation a room needs.

use async_trait::async_trait;

use crate::StorageError;

/// A room's configuration as data-form field values (`muc#roomconfig_roomname` → `["Lobby"]`),
/// in the order given; opaque to the store, which returns it exactly as set (XEP-0045 §10.2).
pub type RoomConfig = Vec<(String, Vec<String>)>;

/// Names a room: the MUC service's domain (`conference.example.org`) and the room's localpart
/// within it, both normalised by the caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomKey {
    /// The service's domain, normalised (nameprep).
    pub service: String,
    /// The room's localpart, normalised (nodeprep).
    pub room: String,
}

impl RoomKey {
    /// The room `room` of `service`.
    pub fn new(service: impl Into<String>, room: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            room: room.into(),
        }
    }
}

/// A room's subject (XEP-0045 §8.1), as last set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSubject {
    /// The subject's text, byte-for-byte (it may be empty, newlines and all).
    pub text: String,
    /// Who set it, as the engine records it (the occupant's room nick, so that the subject can
    /// be sent from `room@service/nick` to later occupants).
    pub by: String,
    /// When it was set, Unix seconds.
    pub at: i64,
}

/// A persistent room as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRoom {
    /// Which room.
    pub key: RoomKey,
    /// The room's configuration (its name, whether it is public, … are fields of it).
    pub config: RoomConfig,
    /// The current subject, `None` if none was ever set or it was cleared.
    pub subject: Option<RoomSubject>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// One affiliation with a room (XEP-0045 §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomAffiliation {
    /// The affiliated bare JID, normalised; local or remote.
    pub jid: String,
    /// `owner`, `admin`, `member` or `outcast`, as given (`none` is the absence of a row).
    pub affiliation: String,
    /// The nick the JID reserved in the room (XEP-0045 §7.10), normalised by the caller;
    /// unique within the room.
    pub nick: Option<String>,
    /// Why it was granted (a ban's `<reason/>`, XEP-0045 §9.1), as given.
    pub reason: Option<String>,
}

/// What [`MucStore::forget_jid`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForgottenJid {
    /// Every room the JID had an affiliation with, sorted by service, then room.
    pub rooms: Vec<RoomKey>,
    /// The rooms among those where the JID was an owner and no owner is left, sorted the same
    /// way: the engine decides what becomes of them (destroy them, or name a new owner).
    pub ownerless: Vec<RoomKey>,
}

/// The persistent rooms of every MUC service.
///
/// Services, room localparts, JIDs and nicks are normalised by the caller and compared
/// byte-for-byte (see the crate docs). Writes to a room that does not exist fail with
/// [`StorageError::NotFound`]; reads of one return nothing (`None`, empty, 0), so a caller that
/// must tell "no room" from "no affiliations" asks [`MucStore::room`]. Every write is atomic.
///
/// Rooms belong to no account: deleting an account leaves the affiliations naming its JID
/// (they may as well name remote JIDs), and the MUC engine removes them with
/// [`MucStore::forget_jid`] when it hears of the deletion.
#[async_trait]
pub trait MucStore: Send + Sync {
    /// Creates the room `key` with `config`, without a subject or affiliations.
    ///
    /// Fails with [`StorageError::AlreadyExists`] if the room exists (and changes nothing).
    async fn create_room(
        &self,
        key: &RoomKey,
        config: &RoomConfig,
        created_at: i64,
    ) -> Result<(), StorageError>;

    /// The room, `None` if it does not exist.
    async fn room(&self, key: &RoomKey) -> Result<Option<StoredRoom>, StorageError>;

    /// The rooms of `service` with their configuration (for disco#items, XEP-0045 §6.3),
    /// sorted by localpart (UTF-8 byte order); empty for an unknown service.
    async fn rooms(&self, service: &str) -> Result<Vec<StoredRoom>, StorageError>;

    /// How many rooms `service` has.
    async fn room_count(&self, service: &str) -> Result<u64, StorageError>;

    /// Replaces the room's configuration whole (XEP-0045 §10.2).
    async fn set_config(&self, key: &RoomKey, config: &RoomConfig) -> Result<(), StorageError>;

    /// Sets the room's subject, or with `None` clears it.
    async fn set_subject(
        &self,
        key: &RoomKey,
        subject: Option<&RoomSubject>,
    ) -> Result<(), StorageError>;

    /// Deletes the room with its affiliations (XEP-0045 §10.9).
    async fn delete_room(&self, key: &RoomKey) -> Result<(), StorageError>;

    /// Stores `affiliation`, replacing the JID's affiliation with the room (its kind, nick and
    /// reason all change).
    ///
    /// Fails with [`StorageError::AlreadyExists`] if another JID reserved the same nick in the
    /// room (XEP-0045 §7.10), and changes nothing.
    async fn set_affiliation(
        &self,
        key: &RoomKey,
        affiliation: &RoomAffiliation,
    ) -> Result<(), StorageError>;

    /// Removes `jid`'s affiliation with the room (its reserved nick with it); whether it had
    /// one.
    async fn remove_affiliation(&self, key: &RoomKey, jid: &str) -> Result<bool, StorageError>;

    /// `jid`'s affiliation with the room, `None` without one.
    async fn affiliation(
        &self,
        key: &RoomKey,
        jid: &str,
    ) -> Result<Option<RoomAffiliation>, StorageError>;

    /// The room's affiliations, sorted by JID; with `Some(kind)` only those of that kind (the
    /// owner, admin, member and ban lists of XEP-0045 §9–§10).
    async fn affiliations(
        &self,
        key: &RoomKey,
        kind: Option<&str>,
    ) -> Result<Vec<RoomAffiliation>, StorageError>;

    /// The affiliation that reserved `nick` in the room, `None` if no JID did.
    async fn nick_holder(
        &self,
        key: &RoomKey,
        nick: &str,
    ) -> Result<Option<RoomAffiliation>, StorageError>;

    /// `jid`'s affiliations with the rooms of `service` (`None`: of every service), sorted by
    /// service, then room; for a per-user room limit and for clean-up.
    async fn rooms_of(
        &self,
        service: Option<&str>,
        jid: &str,
    ) -> Result<Vec<(RoomKey, RoomAffiliation)>, StorageError>;

    /// Removes `jid`'s affiliations with every room of every service (an account was
    /// deleted), in one transaction; which rooms they were, and which of them lost their last
    /// owner (affiliation exactly `owner`).
    async fn forget_jid(&self, jid: &str) -> Result<ForgottenJid, StorageError>;
}
