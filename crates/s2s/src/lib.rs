//! Server-to-server streams (RFC 6120): federation with any other XMPP server.
//!
//! # Shape
//! * [`S2s`] is the service. The router hands it every stanza for a domain that is neither a
//!   virtual host nor a component ([`Components::set_remote`](starling_module_api::Components::set_remote)).
//!   It keeps one outbound route per (local domain, remote domain) pair: a bounded queue and
//!   the task that owns the connection. Stanzas wait in the queue while the connection is
//!   negotiated, go out in order once it is authenticated, and are bounced with
//!   `<remote-server-not-found/>` (no such server, refused, authentication failed) or
//!   `<remote-server-timeout/>` (nothing within [`S2sSettings::connect_timeout`]) when it
//!   cannot be — never dropped silently (issue 18). A full queue answers
//!   `<resource-constraint/>`.
//! * [`inbound`]: the listener side (STARTTLS required by default, XEP-0368 direct TLS, SASL
//!   EXTERNAL, XEP-0220 dialback with several domain pairs on one stream, XEP-0288 bidi).
//!   Stanzas from an authenticated peer are checked (`from` at an authenticated domain, else
//!   `<invalid-from/>`; `to` at a domain served here, else `<host-unknown/>`) and routed as
//!   anything the server generates.
//! * [`outbound`]: the connecting side, the same steps from the other end.
//! * [`resolve`]: `[s2s.hosts]`, SRV (`_xmpps-server._tcp`, `_xmpp-server._tcp`), A/AAAA.
//! * [`verify`]: peer certificates, judged after the handshake so that a certificate that does
//!   not verify leads to dialback instead of a failed handshake, and to a reason in one line.
//! * [`dialback`]: XEP-0220 elements and XEP-0185 keys.

pub mod check;
pub mod dialback;
pub mod inbound;
pub mod outbound;
pub mod resolve;
pub mod verify;
mod xml_stream;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rustls::{ClientConfig, ServerConfig};
use starling_module_api::{ComponentHandler, Context};
use starling_net::TlsManager;
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use dialback::DialbackKeys;
pub use resolve::{ResolveError, Resolver, Target};
pub use verify::{CertProblem, Trust, TrustError};

/// ALPN protocol of XEP-0368 direct TLS between servers.
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// Settings of the service.
#[derive(Clone, Debug)]
pub struct S2sSettings {
    /// `[s2s.hosts]`: domain (lowercase) → addresses, instead of DNS.
    pub hosts: HashMap<String, Vec<SocketAddr>>,
    /// The XEP-0185 dialback secret (random per start when not configured: keys then do not
    /// survive a restart, which only makes peers authenticate again).
    pub dialback_secret: String,
    /// Largest stanza a peer may send (default 512 KiB).
    pub max_stanza_size: usize,
    /// Stanzas waiting for one remote domain (default 10,000).
    pub queue_len: usize,
    /// From the first stanza for a domain to an authenticated connection; past it the queued
    /// stanzas get `<remote-server-timeout/>` (default 30 s).
    pub connect_timeout: Duration,
    /// An established connection with no traffic either way for this long is closed (default
    /// 10 min).
    pub idle_timeout: Duration,
    /// Refuse peers that do not encrypt (default: required).
    pub require_tls: bool,
    /// Offer and use XEP-0220 dialback when a certificate does not verify (default on).
    pub dialback: bool,
    /// Inbound connections at once, from all peers (default 1,000).
    pub max_connections: usize,
    /// Inbound connections at once from one IP address (default 32: a busy peer opens a few,
    /// plus dialback verifications).
    pub max_connections_per_ip: usize,
}

impl Default for S2sSettings {
    fn default() -> Self {
        S2sSettings {
            hosts: HashMap::new(),
            dialback_secret: starling_module_api::random_id(),
            max_stanza_size: 512 * 1024,
            queue_len: 10_000,
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            require_tls: true,
            dialback: true,
            max_connections: 1000,
            max_connections_per_ip: 32,
        }
    }
}

/// Which way a connection was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The peer connected to us.
    Inbound,
    /// We connected to the peer.
    Outbound,
}

/// One connection, for `starling s2s list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Which way.
    pub direction: Direction,
    /// The peer's address.
    pub peer: Option<SocketAddr>,
    /// Our domain (outbound) or the stream's `to` (inbound).
    pub local: String,
    /// The peer's domains authenticated on it (inbound: every pair's remote side).
    pub remote: Vec<String>,
    /// `SASL EXTERNAL`, `dialback`, or `negotiating`.
    pub auth: String,
    /// TLS is on.
    pub tls: bool,
    /// XEP-0288 bidirectional.
    pub bidi: bool,
    /// Stanzas waiting to be written on it.
    pub queued: usize,
    /// Seconds since it was opened.
    pub age_secs: u64,
}

struct LinkEntry {
    info: LinkInfo,
    opened: SystemTime,
    queue: Option<mpsc::WeakSender<Element>>,
}

/// Where stanzas for one (local, remote) pair go.
#[derive(Clone)]
struct Route {
    id: u64,
    tx: mpsc::Sender<Element>,
}

/// The server-to-server service; cheap to clone.
#[derive(Clone)]
pub struct S2s {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) settings: S2sSettings,
    pub(crate) resolver: Resolver,
    pub(crate) keys: DialbackKeys,
    pub(crate) trust: Trust,
    pub(crate) tls: Arc<TlsManager>,
    server_config: Arc<ServerConfig>,
    /// Set by [`S2s::start`].
    ctx: OnceLock<Context>,
    routes: Mutex<HashMap<(String, String), Route>>,
    links: Mutex<HashMap<u64, LinkEntry>>,
    /// Inbound connections open, per peer address (the limits of [`S2sSettings`]).
    inbound: Mutex<HashMap<std::net::IpAddr, usize>>,
    next_id: AtomicU64,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

impl S2s {
    /// The service with these settings, certificates and trusted roots. Attach it with
    /// [`start`](Self::start).
    pub fn new(
        settings: S2sSettings,
        tls: Arc<TlsManager>,
        trust: Trust,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        let server_config = inbound::server_config(&tls, &trust);
        S2s {
            shared: Arc::new(Shared {
                resolver: Resolver::new(settings.hosts.clone()),
                keys: DialbackKeys::new(&settings.dialback_secret),
                settings,
                trust,
                tls,
                server_config,
                ctx: OnceLock::new(),
                routes: Mutex::default(),
                links: Mutex::default(),
                inbound: Mutex::default(),
                next_id: AtomicU64::new(1),
                shutdown,
                tracker,
            }),
        }
    }

    /// Takes over the router's stanzas for remote domains.
    pub fn start(&self, ctx: Context) {
        let _ = self.shared.ctx.set(ctx.clone());
        let handler: Arc<dyn ComponentHandler> = Arc::new(self.clone());
        if !ctx.components.set_remote(handler) {
            tracing::warn!("another server-to-server service is attached already");
        }
    }

    /// The connections now, oldest first.
    pub fn list(&self) -> Vec<LinkInfo> {
        let links = self
            .shared
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = SystemTime::now();
        let mut list: Vec<(SystemTime, LinkInfo)> = links
            .values()
            .map(|l| {
                let mut info = l.info.clone();
                info.age_secs = now
                    .duration_since(l.opened)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                info.queued = l
                    .queue
                    .as_ref()
                    .and_then(mpsc::WeakSender::upgrade)
                    .map(|tx| tx.max_capacity() - tx.capacity())
                    .unwrap_or(0);
                (l.opened, info)
            })
            .collect();
        list.sort_by_key(|(opened, _)| *opened);
        list.into_iter().map(|(_, info)| info).collect()
    }

    /// Serves one inbound connection (the listener calls this per accepted socket). Beyond
    /// [`S2sSettings::max_connections`] in all or [`S2sSettings::max_connections_per_ip`] from
    /// the peer's address, the stream is closed at once with `<policy-violation/>`.
    pub async fn handle_inbound(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        direct_tls: bool,
    ) {
        let Some(_slot) = InboundSlot::take(&self.shared, peer.ip()) else {
            tracing::warn!(%peer, "s2s connection refused: too many inbound connections");
            inbound::refuse(tcp, &self.shared.settings).await;
            return;
        };
        inbound::handle(Arc::clone(&self.shared), tcp, peer, direct_tls).await;
    }

    /// The settings in use.
    pub fn settings(&self) -> &S2sSettings {
        &self.shared.settings
    }
}

#[async_trait]
impl ComponentHandler for S2s {
    async fn on_stanza(&self, ctx: &Context, stanza: Element) {
        let Some((local, remote)) = pair(&stanza) else {
            // No usable `from`: nothing can authenticate it to the peer.
            tracing::debug!(
                "stanza for a remote domain without a 'from' at a local domain; dropped"
            );
            return;
        };
        if !self.shared.is_served(ctx, &local) {
            tracing::debug!(%local, "stanza for a remote domain from a domain not served here; bounced");
            bounce(ctx, &stanza, StanzaErrorCondition::NotAllowed).await;
            return;
        }
        self.shared.enqueue(ctx, local, remote, stanza).await;
    }
}

/// The (from domain, to domain) of a stanza.
fn pair(stanza: &Element) -> Option<(String, String)> {
    let from = Jid::new(stanza.attr("from")?).ok()?;
    let to = Jid::new(stanza.attr("to")?).ok()?;
    Some((
        from.domain().as_str().to_owned(),
        to.domain().as_str().to_owned(),
    ))
}

impl Shared {
    pub(crate) fn ctx(&self) -> Option<&Context> {
        self.ctx.get()
    }

    /// A virtual host or a component domain of this server.
    pub(crate) fn is_served(&self, ctx: &Context, domain: &str) -> bool {
        ctx.is_local_domain(domain) || ctx.components.serves(domain)
    }

    /// XEP-0220 §2.3.2: the answer to a `<db:verify/>` request, as the authoritative server for
    /// its `to` (XEP-0185: the key recomputed from our secret); `None` for an answer (it has a
    /// `type`), which needs none. On whichever stream it comes: a peer may send it on its own
    /// connection, or on a bidirectional one we opened (Prosody does).
    pub(crate) fn answer_verify(&self, ctx: &Context, e: &Element) -> Option<Element> {
        if e.attr("type").is_some() {
            return None;
        }
        let (Some(receiving), Some(originating), Some(id)) =
            (e.attr("from"), e.attr("to"), e.attr("id"))
        else {
            return Some(dialback::error_answer(e, StanzaErrorCondition::BadRequest));
        };
        if !self.is_served(ctx, originating) {
            return Some(dialback::error_answer(
                e,
                StanzaErrorCondition::ItemNotFound,
            ));
        }
        let valid = self.keys.check(receiving, originating, id, &e.text());
        tracing::debug!(%receiving, %originating, valid, "dialback verification answered");
        Some(dialback::verify_answer(originating, receiving, id, valid))
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues `stanza` on the route for (local, remote), opening one when there is none.
    pub(crate) async fn enqueue(
        self: &Arc<Self>,
        ctx: &Context,
        local: String,
        remote: String,
        stanza: Element,
    ) {
        let mut stanza = stanza;
        // Twice at most: a route whose task just ended is replaced once.
        for _ in 0..2 {
            let route = self.route(&local, &remote);
            match route.tx.try_send(stanza) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(s)) => {
                    tracing::warn!(%local, %remote, "queue for the remote domain is full; stanza bounced");
                    bounce(ctx, &s, StanzaErrorCondition::ResourceConstraint).await;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(s)) => {
                    self.remove_route(&local, &remote, route.id);
                    stanza = s;
                }
            }
        }
        bounce(ctx, &stanza, StanzaErrorCondition::RemoteServerNotFound).await;
    }

    /// The route for (local, remote), spawning its outbound task when there is none.
    fn route(self: &Arc<Self>, local: &str, remote: &str) -> Route {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (local.to_owned(), remote.to_owned());
        if let Some(r) = routes.get(&key) {
            return r.clone();
        }
        let (tx, rx) = mpsc::channel(self.settings.queue_len.max(1));
        let route = Route {
            id: self.next_id(),
            tx,
        };
        routes.insert(key, route.clone());
        let shared = Arc::clone(self);
        let (local, remote, id) = (local.to_owned(), remote.to_owned(), route.id);
        self.tracker.spawn(async move {
            outbound::run(shared, local, remote, id, rx).await;
        });
        route
    }

    /// Forgets the route `id` for (local, remote), if it is still the current one.
    pub(crate) fn remove_route(&self, local: &str, remote: &str, id: u64) {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (local.to_owned(), remote.to_owned());
        if routes.get(&key).is_some_and(|r| r.id == id) {
            routes.remove(&key);
        }
    }

    /// Makes an inbound bidi stream the route for (local, remote) when no outbound one exists
    /// (XEP-0288 §2.2). Returns the route id, to remove it later.
    pub(crate) fn adopt_route(
        &self,
        local: &str,
        remote: &str,
        tx: mpsc::Sender<Element>,
    ) -> Option<u64> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (local.to_owned(), remote.to_owned());
        if routes.contains_key(&key) {
            return None;
        }
        let id = self.next_id();
        routes.insert(key, Route { id, tx });
        Some(id)
    }

    pub(crate) fn link_open(&self, id: u64, info: LinkInfo, queue: Option<&mpsc::Sender<Element>>) {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                LinkEntry {
                    info,
                    opened: SystemTime::now(),
                    queue: queue.map(mpsc::Sender::downgrade),
                },
            );
    }

    pub(crate) fn link_update(&self, id: u64, update: impl FnOnce(&mut LinkInfo)) {
        if let Some(l) = self
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id)
        {
            update(&mut l.info);
        }
    }

    pub(crate) fn link_close(&self, id: u64) {
        self.links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// A TLS client configuration presenting `local`'s certificate (for SASL EXTERNAL).
    pub(crate) fn client_config(&self, local: &str, alpn: bool) -> Arc<ClientConfig> {
        outbound::client_config(&self.tls, &self.trust, local, alpn)
    }

    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server_config)
    }
}

/// Answers `stanza` with `condition` when an answer is due: IQ requests and messages that are
/// no errors (RFC 6120 §8.3.1: never an error for an error); presence is not answered, as a
/// local contact's would not be.
pub(crate) async fn bounce(ctx: &Context, stanza: &Element, condition: StanzaErrorCondition) {
    let answer = match stanza.name() {
        "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
        "message" => stanza.attr("type") != Some("error"),
        _ => false,
    };
    if answer {
        ctx.router
            .route(starling_proto::error_reply(
                stanza,
                &StanzaError::new(condition),
            ))
            .await;
    } else {
        tracing::debug!(
            kind = stanza.name(),
            ?condition,
            "undeliverable stanza to a remote domain; no answer is due"
        );
    }
}

/// One counted inbound connection; released when dropped.
struct InboundSlot {
    shared: Arc<Shared>,
    ip: std::net::IpAddr,
}

impl InboundSlot {
    fn take(shared: &Arc<Shared>, ip: std::net::IpAddr) -> Option<InboundSlot> {
        let mut open = shared
            .inbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let total: usize = open.values().sum();
        let here = open.get(&ip).copied().unwrap_or(0);
        if total >= shared.settings.max_connections
            || here >= shared.settings.max_connections_per_ip
        {
            return None;
        }
        *open.entry(ip).or_insert(0) += 1;
        Some(InboundSlot {
            shared: Arc::clone(shared),
            ip,
        })
    }
}

impl Drop for InboundSlot {
    fn drop(&mut self) {
        let mut open = self
            .shared
            .inbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The remote domains with authenticated pairs on one inbound stream.
pub(crate) type Pairs = HashSet<(String, String)>;
