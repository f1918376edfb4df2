//! Multi-user chat (XEP-0045): conference services at component domains
//! (`conference.example.org` by default), each holding rooms.
//!
//! - The service ([`Muc`]) registers each of its domains as a component domain: every stanza to
//!   the domain or a JID at it reaches [`Service::on_stanza`]. Stanzas to the domain itself
//!   (disco, unique room names) are answered there; stanzas to a room or an occupant go to the
//!   room's task.
//! - Each live room is one task ([`room`]) owning the room's state: settings, affiliations,
//!   occupants and their sessions, history, subject. Stanzas reach it through an unbounded queue
//!   (presence, in particular unavailable presence, is never refused: a lost one would leave a
//!   ghost occupant), and a room with more than [`Limits::room_queue`] messages waiting refuses
//!   new ones with `<resource-constraint/>`: one noisy room fills its own queue, not the
//!   others'. A room's task ends when the room is empty and has nothing to keep in memory
//!   (a temporary room then vanishes, XEP-0045 §10.1; a persistent one stays in the
//!   [`MucStore`](starling_storage::MucStore) and is loaded again by the next stanza to it).
//! - Occupants are sessions. The presence module sends unavailable presence to every occupant
//!   JID a session sent directed presence to when it ends (RFC 6121 §4.6.3); the service also
//!   keeps which rooms each session is in, so that [`Event::Ended`] (a stream closed, or a
//!   stream-management session that was not resumed in time, never a mere TCP drop during the
//!   wait) removes the session from them whatever presence tracking did.
//! - When an account is deleted, its affiliations go ([`MucStore::forget_jid`]) and the live
//!   rooms forget it; a room left without an owner is destroyed.

// Stanza errors are this crate's refusals, returned on the rare path of a request; they are not
// boxed for the lint's sake.
#![allow(clippy::result_large_err)]

pub mod affiliation;
mod room;
mod service;
pub mod settings;

use std::sync::Arc;

pub use service::{Limits, Muc, MucOptions, Rate, Service};

/// `http://jabber.org/protocol/muc`: the join extension (XEP-0045 §19.1).
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// `http://jabber.org/protocol/muc#user` (§19.2).
pub const NS_USER: &str = "http://jabber.org/protocol/muc#user";
/// `http://jabber.org/protocol/muc#admin` (§19.3).
pub const NS_ADMIN: &str = "http://jabber.org/protocol/muc#admin";
/// `http://jabber.org/protocol/muc#owner` (§19.4).
pub const NS_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// `http://jabber.org/protocol/muc#unique` (§10.1.4).
pub const NS_UNIQUE: &str = "http://jabber.org/protocol/muc#unique";
/// XEP-0317 hats.
pub const NS_HATS: &str = "urn:xmpp:hats:0";
/// XEP-0421 occupant ids.
pub const NS_OCCUPANT_ID: &str = "urn:xmpp:occupant-id:0";
/// XEP-0410 self-ping answered by the room.
pub const NS_SELF_PING: &str = "http://jabber.org/protocol/muc#self-ping-optimization";
/// XEP-0045 §7.4: groupchat messages are reflected with the sender's id.
pub const NS_STABLE_ID: &str = "http://jabber.org/protocol/muc#stable_id";

/// What the service hands a room's task.
pub(crate) type Shared = Arc<service::Shared>;
