//! The bound session: what a connection binds, and what outlives that connection.
//!
//! A [`Session`] owns the full JID, the receiving end of its `SessionHandle` (the inbound queue),
//! the stanzas written to the client and not yet known to be received, and the state of XEP-0198
//! stream management. A [`Connection`](crate::connection::Connection) holds it while the client is
//! connected. When that connection is lost and the client enabled resumption, the session is
//! *detached*: the connection's task drops everything of the connection (parser, buffers, TLS) and
//! keeps only the session, still bound and still queueing, until either
//! - the client resumes on a new connection, which takes the session over ([`Takeover`]) and
//!   retransmits what was not acknowledged, or
//! - the resumption timeout passes (or the session is told to close, or the server shuts down),
//!   and the session ends ([`Session::end`]).
//!
//! Ending a session loses nothing the server took responsibility for: what was written but not
//! acknowledged, and what is still queued, is routed again ([`reroute`]): messages of type chat
//! and normal as if addressed to the bare JID (RFC 6121 §8.5.2, §8.5.3.2.1) — another resource,
//! else offline storage, which stamps them with a XEP-0203 delay — IQ requests answered with
//! `<service-unavailable/>` (RFC 6121 §8.5.3.2.2), and presence, groupchat, headline and errors
//! dropped, as RFC 6121 allows for a resource that is gone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use starling_module_api::{Event, SessionCommand, SessionHandle, SessionId};
use starling_proto::{
    BareJid, Element, FullJid, StanzaErrorCondition, StreamError, StreamErrorCondition, ns,
};
use starling_router::Router;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One bound resource and its queues.
pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) jid: FullJid,
    pub(crate) handle: SessionHandle,
    pub(crate) inbox: mpsc::Receiver<SessionCommand>,
    /// Stanzas serialised for the client and not yet known to have arrived: without stream
    /// management until the write completes, with it until the client acknowledges them
    /// (XEP-0198 §4). Oldest first, as the bytes written.
    pub(crate) unacked: Unacked,
    /// XEP-0198 state, once the client enabled it.
    pub(crate) sm: Option<Box<StreamMgmt>>,
    /// XEP-0352: the client said it is inactive.
    pub(crate) inactive: bool,
    /// What waits while the client is inactive ([`can_wait`]), oldest first, at most one
    /// presence per sender.
    pub(crate) held: Vec<Element>,
    /// The XEP-0388 `<user-agent id/>` of the client that bound it, if it gave one.
    pub(crate) user_agent: Option<Box<str>>,
}

/// Stanzas written to a client and not yet known to have arrived, kept as the bytes written
/// (the stanza without the framing's envelope: `Framing::stanza_in`): the element trees are
/// freed as soon as they are serialised. Freeing them later, when the acknowledgement comes and
/// their memory has gone cold, cost a third more CPU per message (measured with
/// `starling-bench --sm chat`); one buffer of bytes is freed cheaply, and is what a resumption
/// on an XML stream sends again as it is (`Framing::write_kept`). An empty queue holds no
/// memory.
#[derive(Debug, Default)]
pub(crate) struct Unacked {
    /// The stanzas' bytes from `head` on (what is before `head` was acknowledged).
    bytes: String,
    head: usize,
    /// Each stanza's length, oldest first.
    lens: VecDeque<u32>,
}

impl Unacked {
    fn push(&mut self, written: &str) {
        self.bytes.push_str(written);
        self.lens
            .push_back(u32::try_from(written.len()).unwrap_or(u32::MAX));
    }

    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Forgets the `n` oldest.
    fn drop_front(&mut self, n: usize) {
        let bytes: usize = self.lens.drain(..n).map(|l| l as usize).sum();
        self.head += bytes;
        if self.lens.is_empty() {
            *self = Unacked::default();
        } else if self.head > 64 * 1024 && self.head > self.bytes.len() / 2 {
            // A long-unacknowledged tail: keep the buffer from growing behind it.
            self.bytes.drain(..self.head);
            self.head = 0;
        }
    }

    pub(crate) fn clear(&mut self) {
        *self = Unacked::default();
    }

    /// Each stanza as kept, oldest first.
    pub(crate) fn stanzas(&self) -> impl Iterator<Item = &str> {
        let mut at = self.head;
        self.lens.iter().map(move |&l| {
            let s = self.bytes.get(at..at + l as usize).unwrap_or_default();
            at += l as usize;
            s
        })
    }
}

/// Stanzas held for an inactive client at most; one more flushes them all.
pub(crate) const MAX_HELD: usize = 256;

/// XEP-0352 §6: what may wait while the client is inactive: availability presence (not
/// subscription requests or errors) and messages that carry only a chat state. Anything else is
/// urgent, and flushes what waits before it.
pub(crate) fn can_wait(stanza: &Element) -> bool {
    match stanza.name() {
        "presence" => matches!(stanza.attr("type"), None | Some("unavailable")),
        "message" => starling_proto::is_standalone_chat_state(stanza),
        _ => false,
    }
}

/// XEP-0198 stream management state of a session.
pub(crate) struct StreamMgmt {
    /// Stanzas received from the client since `<enable/>`, modulo 2^32 (XEP-0198 §4).
    pub(crate) inbound: u32,
    /// Stanzas sent to the client since `<enable/>`, modulo 2^32. The client has acknowledged
    /// `sent - unacked.len()` of them.
    pub(crate) sent: u32,
    /// Stanzas written since the server last asked for an acknowledgement.
    pub(crate) since_request: u32,
    /// When the server's outstanding `<r/>` was sent (cleared by the client's `<a/>`).
    pub(crate) requested: Option<Instant>,
    /// Present when the client asked for resumption.
    pub(crate) resume: Option<Resumable>,
}

/// What a resumable session keeps to be found again.
pub(crate) struct Resumable {
    /// The id given to the client in `<enabled id/>` (unguessable).
    pub(crate) token: Arc<str>,
    /// How long the session waits for the client once detached.
    pub(crate) max: Duration,
    /// Woken when a new connection asks to take this session over; the request itself waits in
    /// the [`Resumptions`] table (a channel per session would cost far more memory).
    pub(crate) wake: Arc<Notify>,
}

/// A new connection's request for a session: the holder hands it over through `reply`.
pub(crate) struct Takeover {
    pub(crate) reply: oneshot::Sender<Box<Session>>,
}

/// What the client's `h` says (XEP-0198 §4).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    /// This many stanzas left the unacknowledged queue.
    Acked(usize),
    /// `h` acknowledges more than was sent: the client is confused (XEP-0198 §4,
    /// `<handled-count-too-high/>`). Carries the count sent.
    TooHigh(u32),
}

impl Session {
    pub(crate) fn new(
        id: SessionId,
        jid: FullJid,
        handle: SessionHandle,
        inbox: mpsc::Receiver<SessionCommand>,
    ) -> Self {
        Session {
            id,
            jid,
            handle,
            inbox,
            unacked: Unacked::default(),
            sm: None,
            inactive: false,
            held: Vec::new(),
            user_agent: None,
        }
    }

    /// Holds a stanza for an inactive client (see [`can_wait`]). A presence replaces the one
    /// held from the same sender: only the latest matters.
    pub(crate) fn hold(&mut self, stanza: Element) {
        if stanza.name() == "presence" {
            let from = stanza.attr("from");
            self.held
                .retain(|h| !(h.name() == "presence" && h.attr("from") == from));
        }
        self.held.push(stanza);
    }

    /// A stanza was serialised for the client as `bytes`: they stay in the unacknowledged queue
    /// until written (without stream management) or acknowledged (with it).
    pub(crate) fn written(&mut self, bytes: &str) {
        if let Some(sm) = self.sm.as_mut() {
            sm.sent = sm.sent.wrapping_add(1);
            sm.since_request = sm.since_request.saturating_add(1);
        }
        self.unacked.push(bytes);
    }

    /// The write of everything serialised so far completed. Without stream management that is
    /// all the server can know, and the stanzas are forgotten.
    pub(crate) fn write_completed(&mut self) {
        if self.sm.is_none() {
            self.unacked.clear();
        }
    }

    /// The client acknowledged `h` stanzas in all (XEP-0198 §4, modulo 2^32).
    pub(crate) fn ack(&mut self, h: u32) -> Ack {
        let Some(sm) = self.sm.as_mut() else {
            return Ack::Acked(0);
        };
        sm.requested = None;
        let pending = self.unacked.len() as u32;
        let acked_before = sm.sent.wrapping_sub(pending);
        let newly = h.wrapping_sub(acked_before);
        if newly > pending {
            // Behind what it acknowledged before (a late or repeated answer) is harmless;
            // ahead of what was sent is not. Half the counter's range tells them apart.
            if acked_before.wrapping_sub(h) < 1 << 31 {
                return Ack::Acked(0);
            }
            return Ack::TooHigh(sm.sent);
        }
        self.unacked.drop_front(newly as usize);
        Ack::Acked(newly as usize)
    }

    /// Whether the session may wait for its client after the connection is lost.
    pub(crate) fn resumable(&self) -> bool {
        self.sm.as_ref().is_some_and(|sm| sm.resume.is_some())
    }

    /// The detached session waits for its client. Returns the session when it must end (the
    /// timeout passed, it was told to close, or the server shuts down), `None` when a new
    /// connection took it over.
    pub(crate) async fn detach(
        mut self: Box<Self>,
        shutdown: &CancellationToken,
        resumptions: &Resumptions,
    ) -> Option<Box<Self>> {
        let Some((max, token, wake)) = self
            .sm
            .as_ref()
            .and_then(|sm| sm.resume.as_ref())
            .map(|r| (r.max, r.token.clone(), r.wake.clone()))
        else {
            return Some(self);
        };
        tracing::info!(id = self.id, jid = %self.jid, timeout = ?max,
            unacked = self.unacked.len(), "connection lost; the session waits for resumption");
        let deadline = tokio::time::sleep(max);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Some(self),
                () = self.handle.close_requested() => return Some(self),
                _ = &mut deadline => {
                    tracing::info!(id = self.id, jid = %self.jid, "resumption timed out");
                    starling_metrics::sm_timed_out();
                    return Some(self);
                }
                () = wake.notified() => {}
            }
            if let Some(t) = resumptions.take(&token) {
                match t.reply.send(self) {
                    Ok(()) => return None,
                    // The new connection gave up waiting: keep waiting for another.
                    Err(back) => self = back,
                }
            }
        }
    }

    /// Ends the session: it is closed to deliveries, what it still held is routed again, its
    /// resumption id is retired, and it leaves the registry (modules hear of it).
    pub(crate) async fn end(mut self: Box<Self>, router: &Router, resumptions: &Resumptions) {
        // Deliveries from now on are handed back to their senders' routers, which treat this
        // resource as gone.
        self.handle
            .close(StreamError::new(StreamErrorCondition::Reset));
        if let Some(sm) = self.sm.as_ref()
            && let Some(r) = sm.resume.as_ref()
        {
            resumptions.retire(&r.token, sm.inbound);
        }
        // What was written and not acknowledged, then what was queued and never written, in
        // the order the client would have seen it; routed before the resource leaves the
        // registry, so that a new session of the same account does not get it on top of its
        // backlog.
        self.inbox.close();
        let unacked = std::mem::take(&mut self.unacked);
        let mut undelivered: Vec<Element> = unacked
            .stanzas()
            .filter_map(|xml| match starling_stream::parse_written(xml, ns::CLIENT) {
                Ok(el) => Some(el),
                Err(e) => {
                    // Written by this server a moment ago: not expected.
                    tracing::error!(id = self.id, error = %e, "an unacknowledged stanza does not parse back");
                    None
                }
            })
            .collect();
        undelivered.append(&mut self.held);
        while let Ok(SessionCommand::Stanza(q)) = self.inbox.try_recv() {
            self.handle.dequeued(&q);
            undelivered.push(q.stanza);
        }
        if !undelivered.is_empty() {
            tracing::info!(
                id = self.id,
                stanzas = undelivered.len(),
                "routing undelivered stanzas again"
            );
            let twins = self.has_twins(router).await;
            for stanza in undelivered {
                Box::pin(reroute(router, stanza, twins)).await;
            }
        }
        if let Some(last) = router.sessions().unbind(&self.jid, self.id).await {
            router.emit(Event::Ended(last)).await;
        }
        tracing::info!(id = self.id, jid = %self.jid, "session ended");
    }
}

impl Session {
    /// Whether another resource of the account is available with this session's own
    /// (non-negative) priority: a message to the bare JID went to it too (RFC 6121 §8.5.2.1.1
    /// delivers to every resource of the highest priority).
    async fn has_twins(&self, router: &Router) -> bool {
        let sessions = router.sessions();
        let Some(own) = sessions.get(&self.jid).await.and_then(|e| e.priority) else {
            return false;
        };
        own >= 0
            && sessions
                .resources(&self.jid.to_bare())
                .await
                .iter()
                .any(|e| {
                    e.handle.id() != self.id && !e.handle.is_closing() && e.priority == Some(own)
                })
    }
}

/// Routes a stanza that a session which ended never delivered (see the module docs). `twins`:
/// another resource had the same priority, so a message to the bare JID reached it as well and
/// is not sent again (it would arrive twice there).
pub(crate) async fn reroute(router: &Router, stanza: Element, twins: bool) {
    match stanza.name() {
        "message" if twins && stanza.attr("to").is_some_and(|to| !to.contains('/')) => {
            tracing::debug!(
                "a message to the bare JID reached another resource too; not routed again"
            );
        }
        "message" => match stanza.attr("type").unwrap_or("normal") {
            // RFC 6121 §8.5.3.2.1: as if addressed to the bare JID. The session is closing, so
            // the router treats its resource as gone and does exactly that, keeping the address
            // the sender wrote.
            "chat" | "normal" => router.route_stanza(stanza).await,
            // Groupchat and headline are not worth keeping (RFC 6121 §8.5.3.2.1 drops
            // groupchat; headline is "fire and forget"); errors are never answered.
            _ => {}
        },
        "iq" if matches!(stanza.attr("type"), Some("get" | "set")) => {
            // RFC 6121 §8.5.3.2.2: the resource is gone.
            router
                .bounce(&stanza, StanzaErrorCondition::ServiceUnavailable)
                .await;
        }
        // Presence to a resource that is gone is dropped (RFC 6121 §8.5.3.2.3); IQ results and
        // errors have nobody left to read them.
        _ => {}
    }
}

/// Resumable sessions by resumption id, and the ids of sessions that ended recently (so that a
/// late `<resume/>` learns the `h` the server had reached: XEP-0198 §5).
#[derive(Default)]
pub struct Resumptions {
    inner: Mutex<ResumptionTable>,
}

#[derive(Default)]
struct ResumptionTable {
    live: HashMap<Arc<str>, Live>,
    /// Ended sessions' ids with their last inbound count, oldest first.
    gone: HashMap<Arc<str>, Gone>,
    gone_order: VecDeque<(Instant, Arc<str>)>,
}

struct Live {
    account: BareJid,
    wake: Arc<Notify>,
    /// A new connection's request, waiting for the holder to see it.
    pending: Option<Takeover>,
}

struct Gone {
    account: BareJid,
    h: u32,
}

/// How long an ended session's id is remembered for a late `<resume/>`.
const GONE_KEPT: Duration = Duration::from_secs(600);
/// At most this many ended ids are remembered.
const GONE_MAX: usize = 100_000;

/// What asking for a resumption gave, for the account asking.
pub(crate) enum Lookup {
    /// The session exists: its holder was woken and will answer here (unless it ends first).
    Pending(oneshot::Receiver<Box<Session>>),
    /// The session ended; the server had handled `h` of the client's stanzas.
    Gone(u32),
    Unknown,
}

impl Resumptions {
    pub fn new() -> Self {
        Resumptions::default()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, ResumptionTable> {
        // Every operation is a single insert or remove: a poisoned table is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new resumable session of `account` under `token`; returns what wakes its holder when
    /// a new connection asks for it.
    pub(crate) fn register(&self, token: Arc<str>, account: BareJid) -> Arc<Notify> {
        let wake = Arc::new(Notify::new());
        self.table().live.insert(
            token,
            Live {
                account,
                wake: wake.clone(),
                pending: None,
            },
        );
        wake
    }

    /// Asks for the session under `token` on behalf of `account` (another account's id is
    /// unknown to it). A request still pending from an earlier connection is replaced: that
    /// connection is told the session is not there.
    pub(crate) fn request(&self, token: &str, account: &BareJid) -> Lookup {
        let mut t = self.table();
        if let Some(live) = t.live.get_mut(token).filter(|l| l.account == *account) {
            let (reply, answer) = oneshot::channel();
            live.pending = Some(Takeover { reply });
            live.wake.notify_one();
            return Lookup::Pending(answer);
        }
        match t.gone.get(token).filter(|g| g.account == *account) {
            Some(g) => Lookup::Gone(g.h),
            None => Lookup::Unknown,
        }
    }

    /// The request waiting for the session under `token`, for its holder.
    pub(crate) fn take(&self, token: &str) -> Option<Takeover> {
        self.table().live.get_mut(token)?.pending.take()
    }

    /// The count the session under `token` had reached when it ended, if it did.
    pub(crate) fn ended_at(&self, token: &str, account: &BareJid) -> Option<u32> {
        let t = self.table();
        t.gone
            .get(token)
            .filter(|g| g.account == *account)
            .map(|g| g.h)
    }

    /// The session under `token` ended, having handled `h` of the client's stanzas.
    pub(crate) fn retire(&self, token: &Arc<str>, h: u32) {
        let mut t = self.table();
        let Some(live) = t.live.remove(token) else {
            return;
        };
        let now = Instant::now();
        while let Some((at, _)) = t.gone_order.front()
            && (now.duration_since(*at) > GONE_KEPT || t.gone_order.len() >= GONE_MAX)
        {
            if let Some((_, old)) = t.gone_order.pop_front() {
                t.gone.remove(&old);
            }
        }
        t.gone.insert(
            token.clone(),
            Gone {
                account: live.account,
                h,
            },
        );
        t.gone_order.push_back((now, token.clone()));
    }

    /// Resumable sessions right now (live or detached).
    pub fn len(&self) -> usize {
        self.table().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_with_sm(sent: u32) -> Session {
        let (tx, rx) = mpsc::channel(4);
        let mut s = Session::new(7, "u@d/r".parse().unwrap(), SessionHandle::new(7, tx), rx);
        s.sm = Some(Box::new(StreamMgmt {
            inbound: 0,
            sent,
            since_request: 0,
            requested: None,
            resume: None,
        }));
        s
    }

    fn msg(n: u32) -> String {
        format!("<message id='{n}'/>")
    }

    /// XEP-0198 §4: `h` counts modulo 2^32, so acknowledgements keep working when the counter
    /// wraps.
    #[test]
    fn acks_wrap_around() {
        let mut s = session_with_sm(u32::MAX - 1);
        for n in 0..4 {
            s.written(&msg(n));
        }
        assert_eq!(s.sm.as_ref().unwrap().sent, 2);
        // Acknowledged before: u32::MAX - 1. Two more: u32::MAX, then 0.
        assert_eq!(s.ack(0), Ack::Acked(2));
        assert_eq!(s.unacked.stanzas().next(), Some("<message id='2'/>"));
        assert_eq!(s.ack(2), Ack::Acked(2));
        assert!(s.unacked.is_empty());
        // A repeated (stale) answer is harmless.
        assert_eq!(s.ack(1), Ack::Acked(0));
        // More than was sent is not.
        assert_eq!(s.ack(3), Ack::TooHigh(2));
    }

    #[test]
    fn without_stream_management_a_completed_write_forgets() {
        let (tx, rx) = mpsc::channel(4);
        let mut s = Session::new(1, "u@d/r".parse().unwrap(), SessionHandle::new(1, tx), rx);
        s.written(&msg(1));
        s.write_completed();
        assert!(s.unacked.is_empty());
        let mut s = session_with_sm(0);
        s.written(&msg(1));
        s.write_completed();
        assert_eq!(s.unacked.len(), 1);
    }

    #[test]
    fn resumption_ids_belong_to_their_account() {
        let r = Resumptions::new();
        let alice: BareJid = "alice@d".parse().unwrap();
        let mallory: BareJid = "mallory@d".parse().unwrap();
        let token: Arc<str> = Arc::from("abc");
        let _wake = r.register(token.clone(), alice.clone());
        assert!(matches!(r.request("abc", &mallory), Lookup::Unknown));
        assert!(r.take("abc").is_none());
        assert!(matches!(r.request("abc", &alice), Lookup::Pending(_)));
        assert!(r.take("abc").is_some());
        r.retire(&token, 42);
        assert!(matches!(r.request("abc", &alice), Lookup::Gone(42)));
        assert!(matches!(r.request("abc", &mallory), Lookup::Unknown));
        assert_eq!(r.ended_at("abc", &alice), Some(42));
        assert!(r.is_empty());
    }
}
