//! Multi-user chat room archives (XEP-0313 Message Archive Management on a room's bare JID,
//! XEP-0313 §3.3.2): every archived message of a XEP-0045 room, in chronological order, queried
//! by sender, time, id and words of the body, paged (XEP-0059), and moderated (XEP-0425).
//!
//! A room archive is named by the room's [`RoomKey`] and belongs to no stored room: temporary
//! rooms, which [`crate::MucStore`] never sees, are archived too. The MUC engine deletes a
//! room's archive ([`RoomArchiveStore::delete_room`]) when the room is destroyed or a temporary
//! room vanishes. Queries take the user archive's types ([`ArchiveQuery`], [`ArchivePage`]).

use async_trait::async_trait;

use crate::{ArchiveBound, ArchivePage, ArchiveQuery, RoomKey, StorageError};

/// One message to archive, as [`RoomArchiveStore::append`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoomArchived {
    /// The room (service and localpart, normalised).
    pub key: RoomKey,
    /// The archive id (the XEP-0359 `<stanza-id by='room@service'/>` the room gave the
    /// message). Chosen by the caller, unique within the room's archive.
    pub id: String,
    /// When the room received the message: microseconds since the Unix epoch (UTC).
    pub timestamp_us: i64,
    /// The sender's nick in the room (the resource of its occupant JID `room@service/nick`),
    /// as the engine normalised it.
    pub nick: String,
    /// The sender's real bare JID (normalised), for moderation, whois and occupant ids;
    /// `None` when the engine does not know it.
    pub sender: Option<String>,
    /// The message stanza (XML text), stored as given.
    pub stanza: String,
    /// The text of its `<body/>`, for full-text search; `None` without one.
    pub body: Option<String>,
}

/// One archived room message with everything stored about it, as
/// [`RoomArchiveStore::message`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomArchivedMessage {
    /// The archive id given to [`RoomArchiveStore::append`].
    pub id: String,
    /// As given to [`RoomArchiveStore::append`].
    pub timestamp_us: i64,
    /// The sender's nick, as given.
    pub nick: String,
    /// The sender's real bare JID, as given.
    pub sender: Option<String>,
    /// The stanza, exactly as given, or the tombstone that replaced it
    /// ([`RoomArchiveStore::retract`]).
    pub stanza: String,
}

/// The archives of every room of every MUC service, one per room.
///
/// Services, room localparts, nicks and JIDs are normalised by the caller and compared
/// byte-for-byte (see the crate docs). The order of an archive is the order of
/// `timestamp_us`, and for equal timestamps the order of appending. Ids are compared
/// byte-for-byte. A room that has never had a message has an empty archive; no method fails
/// for an unknown room, except a query naming ids (which are not there).
///
/// Room archives belong to no account: deleting an account leaves the messages it sent in
/// rooms (they are the rooms' history), its nick and real JID with them.
///
/// # Queries
///
/// [`RoomArchiveStore::query`] means what [`crate::ArchiveStore::query`] means, except for
/// `with` and what a page holds:
///
/// * [`ArchiveQuery::with`]: in a MUC archive 'with' matches the message's publisher
///   (XEP-0313 §4.1.1), which a client names by its occupant JID `room@service/nick`. So a
///   [`crate::WithFilter`] with `resource: Some(nick)` matches the messages sent under that
///   nick, whatever `bare` is (the caller has checked that it is the room's JID). One with
///   `resource: None` matches the messages whose sender's real bare JID
///   ([`NewRoomArchived::sender`]) equals `bare`: only for those allowed to know real JIDs
///   (XEP-0313 §4.1.1 forbids it to a visitor of a semi-anonymous room; the caller decides).
/// * [`crate::ArchivedMessage::with`] in a page holds the sender's **nick** (no bare JID
///   names a room occupant), from which the caller builds `room@service/nick`.
#[async_trait]
pub trait RoomArchiveStore: Send + Sync {
    /// Appends every message of `batch` to its room's archive, as one atomic step (group
    /// commit: a caller collects the messages of many rooms and pays for one durable write).
    /// A message whose id its room's archive already holds (or that the batch holds twice for
    /// the room) fails the whole batch with [`StorageError::AlreadyExists`]; the same id in two
    /// rooms is fine. Returns how many were stored.
    async fn append(&self, batch: &[NewRoomArchived]) -> Result<u64, StorageError>;

    /// One page of the room's messages that match `query` (see the trait docs for `with`).
    /// An id named by `after_id`, `before_id`, `ids` or the position that is not in the
    /// room's archive fails with [`StorageError::NotFound`] (XEP-0313 §4.1.3, §4.3.2).
    async fn query(&self, key: &RoomKey, query: &ArchiveQuery)
    -> Result<ArchivePage, StorageError>;

    /// The message `id` of the room's archive (to check a moderation request, XEP-0425);
    /// `None` if the archive holds no such id.
    async fn message(
        &self,
        key: &RoomKey,
        id: &str,
    ) -> Result<Option<RoomArchivedMessage>, StorageError>;

    /// Moderation (XEP-0425, its 'Tombstones'): replaces the stored stanza of message `id` with
    /// `tombstone` (XML text, stored as given) and removes its body from full-text search. Its
    /// id, time, nick and sender stay, so that queries remain consistent (XEP-0313 §3.2).
    /// Whether the archive held the id; retracting twice replaces the tombstone.
    async fn retract(&self, key: &RoomKey, id: &str, tombstone: &str)
    -> Result<bool, StorageError>;

    /// The first and the last message of the room's archive (XEP-0313 §5 metadata); `None`
    /// when it is empty.
    async fn bounds(
        &self,
        key: &RoomKey,
    ) -> Result<Option<(ArchiveBound, ArchiveBound)>, StorageError>;

    /// How many messages the room's archive holds.
    async fn count(&self, key: &RoomKey) -> Result<u64, StorageError>;

    /// Deletes the room's archive (the room was destroyed, XEP-0045 §10.9, or a temporary room
    /// lost its last occupant) and returns how many messages it held. Its ids may be used
    /// again afterwards.
    async fn delete_room(&self, key: &RoomKey) -> Result<u64, StorageError>;

    /// Retention: deletes every message, of every room, older than `before_us`, and returns
    /// how many.
    async fn expire(&self, before_us: i64) -> Result<u64, StorageError>;

    /// The per-room cap: deletes the oldest messages of every room archive that holds more
    /// than `max`, leaving the newest `max`, and returns how many were deleted.
    async fn trim(&self, max: u64) -> Result<u64, StorageError>;
}
