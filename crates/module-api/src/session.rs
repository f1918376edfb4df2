//! Sessions as the router and modules see them: a handle to send to, and the registry of who is
//! bound where.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use starling_proto::{BareJid, Element, FullJid, Node, StreamError, ns};
use tokio::sync::{Notify, mpsc};

/// Unique id of a session within this server process.
pub type SessionId = u64;

/// Bytes of queued stanzas a session may hold for a slow reader, by default (see [`SessionHandle`]).
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 1024 * 1024;

/// What can be asked of a session through its queue.
#[derive(Debug)]
pub enum SessionCommand {
    /// Deliver this stanza (already addressed and stamped). Boxed, so that a command is one
    /// word: every session's queue allocates its first block of 32 slots up front, and idle
    /// sessions should not pay for 32 inline elements.
    Stanza(Box<Queued>),
}

/// A stanza in a session's queue, with the weight it was counted at (so that taking it off the
/// queue does not walk the tree again).
#[derive(Debug)]
pub struct Queued {
    pub stanza: Element,
    weight: usize,
}

impl Queued {
    fn new(stanza: Element, weight: usize) -> Box<Queued> {
        Box::new(Queued { stanza, weight })
    }
}

/// What a session's handles share besides the queue: the order to close, which must never wait
/// for queue space (a reader too slow to empty its queue is exactly the one to close), and the
/// bytes queued.
#[derive(Debug)]
struct Control {
    kill: Notify,
    closing: AtomicBool,
    reason: Mutex<Option<StreamError>>,
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// What c2s says of the client behind the session ([`DETACHED`], [`INACTIVE`]).
    state: AtomicU8,
    /// The client's address on its current connection (set by c2s at bind and resumption),
    /// for administrators (XEP-0133 §4.10 user statistics).
    peer: Mutex<Option<std::net::SocketAddr>>,
}

/// [`SessionHandle::is_detached`]'s bit of `Control::state`.
const DETACHED: u8 = 1;
/// [`SessionHandle::is_inactive`]'s bit of `Control::state`.
const INACTIVE: u8 = 2;

/// What a bulk delivery ([`StanzaRouter::offer_to`](crate::StanzaRouter::offer_to),
/// [`SessionHandle::offer`]) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// An outbound hook dropped it (see [`OutboundHook`](crate::OutboundHook)): as good as
    /// delivered for the caller, who must not keep it for later.
    Dropped,
    /// The queue is half full: try again later.
    NoRoom,
    /// The session is gone or closing.
    Gone,
}

/// What the outbound path ([`StanzaRouter::deliver_to`](crate::StanzaRouter::deliver_to)) did
/// with a stanza the session could take. (One it could not take is handed back.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivered {
    /// Queued to the session.
    Queued,
    /// An outbound hook dropped it: handled, not to be routed elsewhere.
    Dropped,
}

/// The address of a session: what the registry hands out and the router delivers to. Today it is
/// always local, a cheap, cloneable handle to the queue of a session in this process; a clustered
/// registry will hand out addresses of sessions on other nodes. Modules never queue to it
/// themselves: they deliver through the router's one outbound path
/// ([`StanzaRouter::deliver_to`](crate::StanzaRouter::deliver_to), `offer_to`,
/// `offer_waiting_to`), where outbound hooks (blocking, client state) see every stanza; the
/// queueing methods below are that path's last step. Three words: `SessionEntry` clones and registry look-ups copy it, and
/// a delivery is one `try_send`, so keep it that way (`handle_stays_three_words` pins the size).
///
/// The queue is bounded by stanzas (the channel's capacity) and by bytes (an estimate of each
/// stanza's serialised size). A stanza that does not fit is handed back to the caller
/// ([`SessionHandle::deliver`]), which routes it elsewhere, and the session is told to close with
/// `<policy-violation/>`; from then on every delivery to it is handed back, and the session
/// hands what it still held to the router when it ends. Nothing is dropped silently.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    id: SessionId,
    tx: mpsc::Sender<SessionCommand>,
    ctl: Arc<Control>,
}

/// An estimate of a stanza's serialised size (names, attributes and text, with their markup),
/// for the queue's byte bound.
pub fn stanza_weight(el: &Element) -> usize {
    let attrs: usize = el
        .attrs()
        .iter()
        .map(|a| a.name.len() + a.value.len() + 4)
        .sum();
    let children: usize = el
        .nodes()
        .iter()
        .map(|n| match n {
            Node::Element(e) => stanza_weight(e),
            Node::Text(t) => t.len(),
            Node::Raw(xml) => xml.len(),
        })
        .sum();
    2 * el.name().len() + 5 + attrs + children
}

impl SessionHandle {
    /// A handle with the default byte bound ([`DEFAULT_MAX_QUEUED_BYTES`]).
    pub fn new(id: SessionId, tx: mpsc::Sender<SessionCommand>) -> Self {
        Self::with_byte_limit(id, tx, DEFAULT_MAX_QUEUED_BYTES)
    }

    /// A handle whose queue holds at most `max_bytes` of stanzas (a single larger stanza is still
    /// accepted into an empty queue).
    pub fn with_byte_limit(
        id: SessionId,
        tx: mpsc::Sender<SessionCommand>,
        max_bytes: usize,
    ) -> Self {
        SessionHandle {
            id,
            tx,
            ctl: Arc::new(Control {
                kill: Notify::new(),
                closing: AtomicBool::new(false),
                reason: Mutex::new(None),
                queued_bytes: AtomicUsize::new(0),
                max_bytes,
                state: AtomicU8::new(0),
                peer: Mutex::new(None),
            }),
        }
    }

    pub fn id(&self) -> SessionId {
        self.id
    }

    /// Queues a stanza, or hands it back when the session is gone, closing, or cannot take it
    /// (then it is told to close: its peer does not read fast enough). The last step of the
    /// router's outbound path; nothing else calls it.
    pub fn deliver(&self, stanza: Element) -> Result<(), Element> {
        if self.is_closing() || self.tx.is_closed() {
            return Err(stanza);
        }
        let weight = stanza_weight(&stanza);
        let before = self.ctl.queued_bytes.fetch_add(weight, Ordering::Relaxed);
        if before > 0 && before + weight > self.ctl.max_bytes {
            self.ctl.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
            self.overflow(format!(
                "more than {} bytes queued: the client is not reading",
                self.ctl.max_bytes
            ));
            return Err(stanza);
        }
        match self
            .tx
            .try_send(SessionCommand::Stanza(Queued::new(stanza, weight)))
        {
            Ok(()) => Ok(()),
            Err(e) => {
                self.ctl.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
                let full = matches!(e, mpsc::error::TrySendError::Full(_));
                let SessionCommand::Stanza(queued) = e.into_inner();
                if full {
                    self.overflow(format!(
                        "more than {} stanzas queued: the client is not reading",
                        self.tx.max_capacity()
                    ));
                }
                Err(queued.stanza)
            }
        }
    }

    /// Queues a stanza of a bulk delivery if the queue is less than half full, without waiting
    /// and without closing the session when it is not ([`Offer::NoRoom`]: the stanza is dropped,
    /// the caller still holds it in storage). The last step of the router's `offer_to`.
    pub fn offer(&self, stanza: Element) -> Offer {
        if self.is_closing() || self.tx.is_closed() {
            return Offer::Gone;
        }
        let weight = stanza_weight(&stanza);
        let queued = self.ctl.queued_bytes.load(Ordering::Relaxed);
        let bytes_ok = queued == 0 || queued + weight <= self.ctl.max_bytes / 2;
        if !bytes_ok || self.tx.capacity() <= self.tx.max_capacity() / 2 {
            return Offer::NoRoom;
        }
        self.ctl.queued_bytes.fetch_add(weight, Ordering::Relaxed);
        match self
            .tx
            .try_send(SessionCommand::Stanza(Queued::new(stanza, weight)))
        {
            Ok(()) => Offer::Queued,
            Err(e) => {
                self.ctl.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
                match e {
                    mpsc::error::TrySendError::Full(_) => Offer::NoRoom,
                    mpsc::error::TrySendError::Closed(_) => Offer::Gone,
                }
            }
        }
    }

    /// Queues a stanza, waiting while the queue is half full: for bulk delivery from a task other
    /// than the session's own (the session drains its queue meanwhile). Never call it from the
    /// session's own task: it would wait for itself. Returns false when the session is gone or
    /// closing. The last step of the router's `offer_waiting_to`.
    pub async fn send_waiting(&self, stanza: Element) -> bool {
        if self.is_closing() {
            return false;
        }
        let weight = stanza_weight(&stanza);
        // Bulk delivery uses at most half of the queue, in stanzas and in bytes, and waits for
        // room: the other half stays for live traffic, which must never overflow because a
        // backlog is being replayed.
        loop {
            let queued = self.ctl.queued_bytes.load(Ordering::Relaxed);
            let bytes_ok = queued == 0 || queued + weight <= self.ctl.max_bytes / 2;
            let slots_ok = self.tx.capacity() > self.tx.max_capacity() / 2;
            if bytes_ok && slots_ok {
                break;
            }
            if self.is_closing() || self.tx.is_closed() {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.ctl.queued_bytes.fetch_add(weight, Ordering::Relaxed);
        let ok = self
            .tx
            .send(SessionCommand::Stanza(Queued::new(stanza, weight)))
            .await
            .is_ok();
        if !ok {
            self.ctl.queued_bytes.fetch_sub(weight, Ordering::Relaxed);
        }
        ok
    }

    /// The session took `queued` off its queue.
    pub fn dequeued(&self, queued: &Queued) {
        let w = queued.weight;
        let _ = self
            .ctl
            .queued_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(w))
            });
    }

    fn overflow(&self, why: String) {
        if !self.ctl.closing.load(Ordering::Relaxed) {
            // One line per session, not one per stanza.
            tracing::warn!(session = self.id, "{why}; closing the session");
        }
        self.close(
            StreamError::new(starling_proto::StreamErrorCondition::PolicyViolation).with_text(why),
        );
    }

    /// Asks the session to close its stream with `error` (the first reason given wins). Never
    /// blocks and never waits for queue space.
    pub fn close(&self, error: StreamError) {
        if let Ok(mut r) = self.ctl.reason.lock()
            && r.is_none()
        {
            *r = Some(error);
        }
        self.ctl.closing.store(true, Ordering::Release);
        self.ctl.kill.notify_one();
    }

    /// Resolves once the session was asked to close (for the session's own loop).
    pub async fn close_requested(&self) {
        if self.is_closing() {
            return;
        }
        self.ctl.kill.notified().await;
    }

    /// Why the session was asked to close.
    pub fn close_reason(&self) -> Option<StreamError> {
        self.ctl.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Whether the session was asked to close: deliveries to it are handed back.
    pub fn is_closing(&self) -> bool {
        self.ctl.closing.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Whether the session has no connection: stream management keeps it, still bound and
    /// queueing, until its client resumes it or the resumption timeout ends it (XEP-0198 §5).
    /// Set by c2s; one atomic load (push notifications ask it for every message to a pushed
    /// session).
    pub fn is_detached(&self) -> bool {
        self.ctl.state.load(Ordering::Acquire) & DETACHED != 0
    }

    /// Whether the client said it is inactive (XEP-0352 §4) and has not said active since.
    /// Set by c2s; one atomic load.
    pub fn is_inactive(&self) -> bool {
        self.ctl.state.load(Ordering::Acquire) & INACTIVE != 0
    }

    /// c2s: the session lost its connection and waits for a resumption (`true`), or a new
    /// connection took it over (`false`). Nothing else sets it.
    pub fn set_detached(&self, detached: bool) {
        self.set_state(DETACHED, detached);
    }

    /// c2s: the client sent `<inactive/>` (`true`) or `<active/>` (`false`). Nothing else sets
    /// it.
    pub fn set_inactive(&self, inactive: bool) {
        self.set_state(INACTIVE, inactive);
    }

    /// The address of the client's connection: the one that bound the session, or the last
    /// that resumed it. `None` for a session without one (tests).
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        self.ctl.peer.lock().ok().and_then(|p| *p)
    }

    /// c2s: the session is now served over a connection from `addr` (at bind, and when a new
    /// connection resumes it). Nothing else sets it.
    pub fn set_peer(&self, addr: std::net::SocketAddr) {
        if let Ok(mut p) = self.ctl.peer.lock() {
            *p = Some(addr);
        }
    }

    fn set_state(&self, bit: u8, on: bool) {
        if on {
            self.ctl.state.fetch_or(bit, Ordering::Release);
        } else {
            self.ctl.state.fetch_and(!bit, Ordering::Release);
        }
    }
}

/// The bound resources of one account, as [`SessionRegistry::resources`] returns them.
pub type Resources = Arc<[SessionEntry]>;

/// One bound resource.
#[derive(Clone, Debug)]
pub struct SessionEntry {
    pub jid: FullJid,
    pub handle: SessionHandle,
    /// `None` until the session sends available presence; then its priority (RFC 6121 §4.7.2.3).
    pub priority: Option<i8>,
    /// The last available presence the session broadcast (stamped, without 'to'), answered to
    /// probes and sent to newly subscribed contacts (RFC 6121 §4.3.2). `None` while unavailable.
    pub presence: Option<Arc<Element>>,
}

/// The priority of an available presence stanza: its `<priority/>` child, 0 when absent or not an
/// integer in -128..=127 (RFC 6121 §4.7.2.3).
pub fn presence_priority(presence: &Element) -> i8 {
    presence
        .get_child("priority", ns::CLIENT)
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0)
}

impl SessionEntry {
    /// Whether the session has sent available presence (RFC 6121 §4.2).
    pub fn is_available(&self) -> bool {
        self.presence.is_some()
    }

    /// Available with a non-negative priority: eligible for messages to the bare JID.
    pub fn receives_bare_messages(&self) -> bool {
        matches!(self.priority, Some(p) if p >= 0)
    }
}

/// Who is bound where. The local implementation is a map in memory; a clustered one (sessions on
/// other nodes, reached over the network) can replace it without touching modules, which is why
/// every method is async even though the local map never waits.
#[async_trait]
pub trait SessionRegistry: Send + Sync {
    /// Binds `jid` to `handle`. If the resource was already bound, the older session's entry is
    /// returned (the caller closes it with `<conflict/>` and reports it ended).
    async fn bind(&self, jid: FullJid, handle: SessionHandle) -> Option<SessionEntry>;
    /// Removes the binding if it still belongs to session `id`, returning its last entry.
    async fn unbind(&self, jid: &FullJid, id: SessionId) -> Option<SessionEntry>;
    /// The session bound to `jid`.
    async fn get(&self, jid: &FullJid) -> Option<SessionEntry>;
    /// Every bound resource of `bare`: a snapshot, shared rather than copied (it is asked for
    /// every message to a bare JID).
    async fn resources(&self, bare: &BareJid) -> Resources;
    /// Every account with a bound resource, each with its resources (detached sessions waiting
    /// for a XEP-0198 resumption included): a snapshot for administrators (XEP-0133 online
    /// users, announcements), shared rather than copied per account. In no particular order.
    async fn all(&self) -> Vec<Resources>;
    /// Records a session's broadcast presence (`None`: unavailable) and the priority it carries.
    /// Returns the previous presence, or `None` if session `id` is not bound to `jid`.
    #[allow(clippy::option_option)]
    async fn set_presence(
        &self,
        jid: &FullJid,
        id: SessionId,
        presence: Option<Arc<Element>>,
    ) -> Option<Option<Arc<Element>>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_stays_three_words() {
        // Cloned into every registry entry and every look-up's result (see SessionHandle).
        assert_eq!(
            std::mem::size_of::<SessionHandle>(),
            3 * std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn detached_and_inactive_are_independent_and_shared_by_clones() {
        let (tx, _rx) = mpsc::channel(1);
        let h = SessionHandle::new(1, tx);
        let clone = h.clone();
        assert!(!h.is_detached() && !h.is_inactive());
        h.set_inactive(true);
        assert!(clone.is_inactive() && !clone.is_detached());
        h.set_detached(true);
        assert!(clone.is_inactive() && clone.is_detached());
        h.set_inactive(false);
        assert!(!clone.is_inactive() && clone.is_detached());
        h.set_detached(false);
        assert!(!clone.is_inactive() && !clone.is_detached());
    }
}
