//! The event bus: lifecycle news for whoever wants it.
//!
//! Hooks transform stanzas; events inform. A hook sits in a stanza's path and can change or stop
//! it; an event says that something happened (a resource was bound, became available, ended; a
//! roster item changed) and every listener hears it, whatever the others do. News goes over this
//! bus rather than through calls from one module into another, so that modules depend on the
//! news, not on each other: the roster module announces a change and the presence module, which
//! listens, sends the presence that goes with it, with no call back into the roster module.
//!
//! The router calls listeners one after the other, in registration order, and awaits each: when
//! [`StanzaRouter::emit`](crate::StanzaRouter::emit) returns, every listener has acted, so an
//! emitter can rely on the order of what follows (the roster module answers a roster set only
//! after the presence module sent the `unsubscribe`/`unsubscribed` that its removal causes).

use async_trait::async_trait;
use starling_proto::{BareJid, Element, FullJid};
use starling_storage::RosterItem;

use crate::{Context, SessionEntry};

/// Something that happened to a session or an account.
#[derive(Clone, Debug)]
pub enum Event {
    /// A resource was bound (RFC 6120 §7). Emitted by c2s.
    Bound(FullJid),
    /// The session sent its initial presence (RFC 6121 §4.2), which has been broadcast, and its
    /// pending subscription requests were delivered. Emitted by the presence module.
    Available(FullJid),
    /// The session sent unavailable presence (RFC 6121 §4.5) after being available, which has
    /// been broadcast; the session goes on. Emitted by the presence module.
    Unavailable(FullJid),
    /// A detached session was resumed (XEP-0198 §5) and kept its JID: its registry entry and
    /// presence are what they were, so modules need not redo anything. Emitted by c2s once
    /// stream management exists.
    Resumed(FullJid),
    /// A bound session ended (stream closed, error, TCP drop, or replaced by a newer session of
    /// the same resource). The entry is the one removed from the registry, last presence
    /// included. Emitted by c2s.
    Ended(SessionEntry),
    /// An item of `account`'s roster changed and was stored (RFC 6121 §2: a roster set or remove,
    /// or a subscription state change, §3). `before` and `after` are the item as stored
    /// (`None`: absent); hidden items (requests from contacts not on the roster, §3.1.3) are
    /// included, with their `hidden` flag. Emitted by the roster service after the roster push.
    /// Boxed: roster items are large and this is the rarest event.
    RosterChanged {
        account: BareJid,
        contact: BareJid,
        before: Option<Box<RosterItem>>,
        after: Option<Box<RosterItem>>,
    },
    /// A new account was created by in-band registration (XEP-0077 §3.1) and stored. With
    /// `contact`, it registered with an invitation that makes it and that local account mutual
    /// contacts (XEP-0379, XEP-0401 §5.3.2), which the listener of the invitations module
    /// establishes. Emitted by c2s, before the registration's result is sent.
    Registered {
        account: BareJid,
        contact: Option<BareJid>,
    },
    /// An account and everything it owns were deleted from the store (XEP-0077 §3.2 removal,
    /// an administrator's command, `starling user del` through the control socket). Modules
    /// forget what they keep in memory for it, so that an account created again under the
    /// name starts afresh. Its sessions are being closed.
    AccountDeleted(BareJid),
    /// The account replaced its vCard (XEP-0054 §3.2), now stored. Emitted by the vcard module
    /// before its result is sent: XEP-0398 publishes the vCard's photo as the PEP avatar.
    VcardChanged(BareJid),
    /// The account stored private XML (XEP-0049 §2.3) under these namespaces, now stored.
    /// Emitted by the private module before its result is sent: XEP-0402 §5 keeps bookmarks
    /// stored as `storage:bookmarks` and as Bookmarks 2 the same.
    PrivateChanged {
        account: BareJid,
        namespaces: Vec<String>,
    },
    /// A group chat message to all (XEP-0045 §7.4) naming an occupant was queued to the
    /// occupant's session `to` while that session is away (detached, waiting for a XEP-0198
    /// resumption, or inactive, XEP-0352). `message` is the message as the session got it.
    /// Emitted by the conference service after the delivery; the push module wakes the device
    /// (XEP-0357).
    Mentioned { to: FullJid, message: Element },
}

/// Hears every [`Event`]. Registered with
/// [`Registrar::events`](crate::Registrar::events); a listener matches the events it wants and
/// ignores the rest.
#[async_trait]
pub trait EventListener: Send + Sync {
    async fn on_event(&self, ctx: &Context, event: &Event);
}
