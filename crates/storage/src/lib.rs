//! Storage interfaces for Starling.
//!
//! Persistence is split **one narrow trait per concern**: this crate defines
//! [`AccountStore`] (accounts and their SCRAM credentials) and [`RosterStore`]
//! (rosters and subscription states, RFC 6121), [`OfflineStore`] (offline
//! messages, XEP-0160), [`VcardStore`] (vcard-temp, XEP-0054),
//! [`ArchiveStore`] (message archives, XEP-0313), [`BlockingStore`]
//! (blocklists, XEP-0191, and the reports attached to blocks, XEP-0377) and
//! [`PushStore`] (push notification registrations, XEP-0357), [`InviteStore`]
//! (invitations, XEP-0401/XEP-0379/XEP-0445), [`PrivateStore`] (private XML storage,
//! XEP-0049), [`FastTokenStore`] (FAST login tokens, XEP-0484), [`PubsubStore`]
//! (publish-subscribe nodes and items, XEP-0060, for PEP, XEP-0163, and pubsub services),
//! [`MucStore`] (persistent multi-user chat rooms and their affiliations, XEP-0045) and
//! [`RoomArchiveStore`] (the message archives of multi-user chat rooms, persistent or not:
//! XEP-0313 on a room's JID, moderated with XEP-0425) and [`UploadStore`] (HTTP upload slots
//! and the owners of stored files, XEP-0363); further
//! concerns each get their own trait in the same shape, and a
//! backend implements every trait it supports. [`Stores`] bundles one
//! `Arc<dyn …>` per trait and is what the server hands to its modules, so a
//! module sees only the concerns it asks for and never a database handle.
//!
//! The traits use [`async_trait`] so that they stay dyn-compatible
//! (`Arc<dyn AccountStore>`).
//!
//! # Contract every backend follows
//!
//! * Identifiers arrive **already normalised** (nodeprep for localparts,
//!   nameprep for domains). Backends store and compare them byte-for-byte: no
//!   case folding, no trimming, no Unicode normalisation of their own. Doing any
//!   of that here would make two stores disagree about which accounts exist.
//! * Accounts are unique on `(domain, localpart)`.
//! * Multi-step writes ([`AccountStore::create_account`],
//!   [`AccountStore::create_accounts`], [`AccountStore::set_credentials`],
//!   [`RosterStore::put_item`], [`RosterStore::insert_many`],
//!   [`RosterStore::remove_item`], [`OfflineStore::store`],
//!   [`PrivateStore::set`], every [`PubsubStore`] and [`MucStore`] write,
//!   [`ArchiveStore::append`], [`RoomArchiveStore::append`] and [`RoomArchiveStore::retract`])
//!   are atomic: on error nothing changed.
//! * The bulk writes ([`AccountStore::create_accounts`],
//!   [`RosterStore::insert_many`]) exist for provisioning thousands of
//!   accounts in seconds; they have no defaults built from the single-item
//!   methods because those could be neither atomic nor fast. A SQL backend
//!   runs each as one transaction with multi-row inserts (PostgreSQL could
//!   equally use `UNNEST` arrays or `COPY` into the same tables).
//! * Deleting an account deletes everything it owns (credentials, roster
//!   items and the roster version, offline messages, the vCard, the message
//!   archive and its preferences, the blocklist and the reports it filed, push
//!   registrations, private XML, the invitations that make someone its contact,
//!   FAST tokens, the pubsub nodes of its PEP service with their items, affiliations and
//!   subscriptions). Pubsub rows naming it only by JID (its subscriptions to and
//!   affiliations with other services' nodes) are the pubsub engine's to remove.
//!   MUC rooms belong to no account, so nothing there goes with it: the affiliations
//!   naming its JID (and its reserved nicks) stay until the MUC engine calls
//!   [`MucStore::forget_jid`], which also says which rooms that left without an owner.
//!   Room archives belong to their rooms, not to the senders: nothing in a
//!   [`RoomArchiveStore`] goes with an account (the messages it sent stay in the rooms'
//!   history, with its nick and real JID); an archive goes with its room
//!   ([`RoomArchiveStore::delete_room`]), on the MUC engine's call. Upload slots name their
//!   owner by JID: the upload service deletes the files and then the rows.
//! * Replacing an account's credentials ([`AccountStore::set_credentials`])
//!   deletes its FAST tokens in the same transaction: a password change
//!   revokes every token, whichever path made it.
//!
//! The [`conformance`] module holds a test suite every backend must pass; run
//! it from the backend's own tests against a fresh, empty store.
//!
//! # Hazards
//!
//! * [`Credential`] holds the SCRAM `StoredKey` and `ServerKey`
//!   (RFC 5802 §3). They are not passwords, but anyone holding `StoredKey` and
//!   an observed exchange, or `ServerKey`, can impersonate a party, so its
//!   `Debug` output redacts them; keep them out of logs.

mod accounts;
mod archive;
mod blocking;
pub mod conformance;
mod error;
mod fast;
mod invites;
mod muc;
mod offline;
mod private;
mod pubsub;
mod push;
mod room_archive;
mod rosters;
mod upload;
mod vcards;

use std::fmt;
use std::sync::Arc;

pub use accounts::{AccountStore, Credential, NewAccount, check_distinct_mechanisms};
pub use archive::{
    ArchiveBound, ArchiveDefault, ArchivePage, ArchivePrefs, ArchiveQuery, ArchiveStore,
    ArchivedMessage, NewArchived, PagePosition, WithFilter,
};
pub use blocking::{AbuseReport, BlockedJid, BlockingStore, StoredReport};
pub use error::{BoxError, StorageError};
pub use fast::{FastSlot, FastToken, FastTokenStore, FastUse};
pub use invites::{Invite, InviteStore};
pub use muc::{
    ForgottenJid, MucStore, RoomAffiliation, RoomConfig, RoomKey, RoomSubject, StoredRoom,
};
pub use offline::{OfflineMessage, OfflineOutcome, OfflineStore};
pub use private::{PrivateElement, PrivateStore};
pub use pubsub::{NodeConfig, NodeKey, PubsubStore, StoredItem, StoredNode, StoredSubscription};
pub use push::{PushEnabled, PushRegistration, PushStore};
pub use room_archive::{NewRoomArchived, RoomArchiveStore, RoomArchivedMessage};
pub use rosters::{
    NewRoster, RosterCounts, RosterItem, RosterStore, Subscription, check_distinct_groups,
};
pub use upload::{UploadSlot, UploadStore};
pub use vcards::VcardStore;

/// Everything a backend provides, handed to the server and modules.
///
/// Cheap to clone (one `Arc` per concern).
#[derive(Clone)]
pub struct Stores {
    /// Accounts and their SASL credentials.
    pub accounts: Arc<dyn AccountStore>,
    /// Rosters and subscription states (RFC 6121).
    pub rosters: Arc<dyn RosterStore>,
    /// Offline message queues (XEP-0160).
    pub offline: Arc<dyn OfflineStore>,
    /// vCards (XEP-0054).
    pub vcards: Arc<dyn VcardStore>,
    /// Message archives (XEP-0313).
    pub archive: Arc<dyn ArchiveStore>,
    /// Blocklists and abuse reports (XEP-0191, XEP-0377).
    pub blocking: Arc<dyn BlockingStore>,
    /// Push notification registrations (XEP-0357).
    pub push: Arc<dyn PushStore>,
    /// Invitations (XEP-0401, XEP-0379, XEP-0445).
    pub invites: Arc<dyn InviteStore>,
    /// Private XML storage (XEP-0049).
    pub private: Arc<dyn PrivateStore>,
    /// FAST tokens (XEP-0484).
    pub fast: Arc<dyn FastTokenStore>,
    /// Publish-subscribe nodes and items (XEP-0060), for PEP (XEP-0163) and pubsub services.
    pub pubsub: Arc<dyn PubsubStore>,
    /// Persistent multi-user chat rooms and their affiliations (XEP-0045).
    pub muc: Arc<dyn MucStore>,
    /// Multi-user chat room archives (XEP-0313 on a room's JID, XEP-0425 moderation).
    pub room_archive: Arc<dyn RoomArchiveStore>,
    /// HTTP upload slots and who owns the stored files (XEP-0363).
    pub upload: Arc<dyn UploadStore>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}
