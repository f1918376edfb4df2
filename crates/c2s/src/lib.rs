//! The client-to-server session: one task per connection, from the first byte to the last.
//!
//! Flow: [`handle_connection`] optionally accepts TLS first (XEP-0368 direct TLS), then runs the
//! session loop generic over the byte stream. The loop reads (paced by a rate limiter), feeds the
//! stream [`Decoder`](starling_stream::Decoder), and hands each top-level element to the
//! negotiation state machine ([`negotiation`]) or, once a resource is bound, to the router.
//! STARTTLS ends the loop with "upgrade": the caller wraps the TCP socket in TLS and enters the same
//! loop again with a fresh decoder. Anything the peer pipelined after `<starttls/>` was read as
//! plaintext and is dropped unprocessed (the Postfix CVE-2011-0411 class of bug).
//!
//! Output is serialised into one buffer and written at once per batch; stanzas for this session
//! arrive through a bounded queue (`SessionHandle`), so a client that does not read cannot grow the
//! server's memory without bound.

mod address_window;
mod connection;
pub mod connections;
pub mod framing;
mod limiter;
pub mod login;
mod metrics;
pub mod negotiation;
mod session;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use starling_accounts::fast::ServerSecret;
use starling_net::TlsManager;
use starling_router::Router;
use starling_storage::Stores;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

pub use connection::{Connection, Flow};
pub use session::Resumptions;
pub use throttle::{AuthThrottle, ThrottleSettings};

/// XEP-0198 stream management settings.
#[derive(Clone, Debug)]
pub struct SmSettings {
    /// How long a session whose connection was lost waits for its client to resume it (the
    /// `max` offered; a client's smaller preference is honoured). Zero: no resumption.
    pub resume_timeout: Duration,
    /// Stanzas sent and not acknowledged that a session may hold; reaching it ends the
    /// session as a timeout does.
    pub max_unacked: usize,
    /// Unacknowledged stanzas after which the server asks for an acknowledgement.
    pub request_after: u32,
    /// Quiet time after which unacknowledged stanzas are asked about.
    pub request_interval: Duration,
}

impl Default for SmSettings {
    fn default() -> Self {
        SmSettings {
            resume_timeout: Duration::from_secs(300),
            max_unacked: 1000,
            request_after: 5,
            request_interval: Duration::from_secs(5),
        }
    }
}

/// Settings of the c2s listeners, derived from the configuration.
#[derive(Clone, Debug)]
pub struct C2sSettings {
    /// Refuse SASL until TLS is in place.
    pub require_encryption: bool,
    /// Offer PLAIN (only ever over TLS).
    pub allow_plain: bool,
    pub max_stanza_size: usize,
    pub preauth_max_stanza_size: usize,
    pub preauth_max_elements: usize,
    /// Per-stanza limits after authentication besides bytes (see `starling_stream::Limits`).
    pub max_elements: usize,
    pub max_attributes_per_element: usize,
    pub max_attributes: usize,
    pub max_namespace_declarations: usize,
    /// Time from connect until a resource must be bound.
    pub auth_timeout: Duration,
    /// Read rate in bytes per second (0 = unlimited) and burst.
    pub rate: u64,
    pub burst: Duration,
    /// Whitespace keepalive interval.
    pub keepalive_interval: Option<Duration>,
    /// Silence after which a bound session is pinged (XEP-0199); `None` disables.
    pub idle_timeout: Option<Duration>,
    /// How long the client has to answer that ping before its session is closed.
    pub ping_timeout: Duration,
    /// Iterations announced for unknown users (match real accounts').
    pub scram_iterations: u32,
    /// Stanzas that may wait for a slow reader before its session is closed.
    pub queue_len: usize,
    /// Bytes of stanzas (estimated) that may wait for a slow reader before its session is closed.
    pub queue_bytes: usize,
    /// Resources one account may bind at once (0 = unlimited).
    pub max_resources: usize,
    /// Connections one address (IPv6: one /64) and the whole server may hold (0 = unlimited).
    pub connection_limits: connections::ConnectionLimits,
    /// How long a write may block before the peer is considered gone.
    pub write_timeout: Duration,
    /// Delays and locks after failed password attempts ([`throttle`]).
    pub throttle: ThrottleSettings,
    /// XEP-0198 stream management.
    pub sm: SmSettings,
    /// Who may register in-band (XEP-0077, XEP-0445).
    pub registration: starling_accounts::registration::Policy,
    /// Accounts one address may register within [`Self::registration_window`].
    pub registrations_per_ip: u32,
    pub registration_window: Duration,
    /// How long a XEP-0484 FAST token is valid from its issue; zero turns FAST off.
    pub fast_token_lifetime: Duration,
    /// The hashes whose SCRAM mechanisms (and -PLUS variants) are offered.
    pub scram_hashes: Vec<starling_sasl::ScramHash>,
    /// The anonymous hosts: SASL ANONYMOUS (RFC 4505) is their only mechanism, each login
    /// makes a random account that is deleted when its connection ends (see
    /// `connection/anonymous.rs`).
    pub anonymous_hosts: Vec<String>,
    /// Anonymous logins one address may make within [`ANONYMOUS_WINDOW`]; 0 = unlimited.
    pub anonymous_logins_per_ip: u32,
}

/// The window of [`C2sSettings::anonymous_logins_per_ip`].
pub const ANONYMOUS_WINDOW: Duration = Duration::from_secs(3600);

impl Default for C2sSettings {
    fn default() -> Self {
        C2sSettings {
            require_encryption: true,
            allow_plain: true,
            max_stanza_size: 256 * 1024,
            preauth_max_stanza_size: 8 * 1024,
            preauth_max_elements: 32,
            max_elements: starling_stream::Limits::DEFAULT.max_elements,
            max_attributes_per_element: starling_stream::Limits::DEFAULT.max_attributes_per_element,
            max_attributes: starling_stream::Limits::DEFAULT.max_attributes,
            max_namespace_declarations: starling_stream::Limits::DEFAULT.max_namespace_declarations,
            auth_timeout: Duration::from_secs(60),
            rate: 10 * 1024,
            burst: Duration::from_secs(2),
            keepalive_interval: Some(Duration::from_secs(300)),
            idle_timeout: Some(Duration::from_secs(300)),
            ping_timeout: Duration::from_secs(60),
            scram_iterations: starling_sasl::DEFAULT_ITERATIONS,
            queue_len: 512,
            queue_bytes: starling_module_api::DEFAULT_MAX_QUEUED_BYTES,
            max_resources: 10,
            connection_limits: connections::ConnectionLimits {
                per_address: 100,
                total: 50_000,
            },
            write_timeout: Duration::from_secs(60),
            throttle: ThrottleSettings::default(),
            sm: SmSettings::default(),
            registration: starling_accounts::registration::Policy {
                open: false,
                invites: true,
                min_password_length: 8,
            },
            registrations_per_ip: 3,
            registration_window: Duration::from_secs(3600),
            fast_token_lifetime: Duration::from_secs(14 * 86_400),
            scram_hashes: starling_sasl::ScramHash::ALL.to_vec(),
            anonymous_hosts: Vec::new(),
            anonymous_logins_per_ip: 20,
        }
    }
}

/// What every session shares.
pub struct C2sShared {
    pub settings: C2sSettings,
    pub tls: Arc<TlsManager>,
    pub router: Arc<Router>,
    pub stores: Stores,
    /// Failed-login counts and locks, per address and per account, for every session.
    pub throttle: AuthThrottle,
    /// Resumable sessions (XEP-0198 §5).
    pub resumptions: Resumptions,
    /// XEP-0352 counts.
    pub csi: CsiCounters,
    /// The server's secret: XEP-0484 FAST tokens and XEP-0386 stable resources are derived
    /// from it ([`starling_accounts::fast`]). Random per process unless the server sets the one
    /// kept in its data directory ([`C2sShared::with_secret`]).
    pub secret: ServerSecret,
    next_id: AtomicU64,
    pub connections: Arc<connections::Connections>,
    /// Bytes the sessions hold in buffers (see [`C2sShared::buffered_bytes`]).
    buffered: AtomicUsize,
    /// Recent in-band registrations per address.
    pub registrations: address_window::AddressWindow,
    /// Recent anonymous logins per address.
    pub anonymous_logins: address_window::AddressWindow,
}

impl C2sShared {
    pub fn new(
        settings: C2sSettings,
        tls: Arc<TlsManager>,
        router: Arc<Router>,
        stores: Stores,
    ) -> Self {
        let settings_limits = settings.connection_limits;
        let settings_registrations = (settings.registrations_per_ip, settings.registration_window);
        let anonymous_logins = match settings.anonymous_logins_per_ip {
            0 => address_window::AddressWindow::unlimited(),
            n => address_window::AddressWindow::new(n, ANONYMOUS_WINDOW),
        };
        C2sShared {
            throttle: AuthThrottle::new(settings.throttle.clone()),
            resumptions: Resumptions::new(),
            csi: CsiCounters::default(),
            secret: {
                let mut bytes = [0u8; starling_accounts::fast::SECRET_LEN];
                rand::fill(&mut bytes[..]);
                ServerSecret::from_bytes(bytes)
            },
            settings,
            tls,
            router,
            stores,
            // Session ids are unique across restarts (a random start; later across nodes):
            // a late message for a session of a previous run can never reach a new one.
            next_id: AtomicU64::new(rand::random::<u64>() >> 1),
            connections: connections::Connections::new(settings_limits),
            buffered: AtomicUsize::new(0),
            registrations: address_window::AddressWindow::new(
                settings_registrations.0,
                settings_registrations.1,
            ),
            anonymous_logins,
        }
    }

    /// Uses `secret` (the one kept in the data directory, so that FAST tokens and stable
    /// resources survive a restart).
    pub fn with_secret(mut self, secret: ServerSecret) -> Self {
        self.secret = secret;
        self
    }

    /// Bytes all sessions hold in buffers right now: partial input held by their parsers and
    /// their output buffers' capacity. A gauge for the metrics endpoint; memory per idle
    /// connection stays low only while this does.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Moves the gauge from a session's previous figure to its new one.
    fn account_buffers(&self, before: usize, now: usize) {
        if now > before {
            self.buffered.fetch_add(now - before, Ordering::Relaxed);
        } else if before > now {
            self.buffered.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    fn next_session_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// What client state indication (XEP-0352) did, since the server started.
#[derive(Debug, Default)]
pub struct CsiCounters {
    /// Stanzas held for inactive clients.
    pub held: AtomicU64,
    /// Times held stanzas were sent (the client became active, or something urgent came).
    pub flushes: AtomicU64,
}

/// How the listener the connection came from works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain TCP, upgraded with STARTTLS (RFC 6120 §5).
    StartTls,
    /// TLS from the first byte (XEP-0368).
    DirectTls,
}

/// Serves one client connection until it ends.
pub async fn handle_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: Arc<C2sShared>,
    shutdown: CancellationToken,
) {
    use tracing::Instrument as _;
    let _ = tcp.set_nodelay(true);
    let admitted = match shared.connections.admit(peer.ip()) {
        Ok(a) => a,
        Err(refusal) => {
            refuse(tcp, peer, kind, &shared, refusal).await;
            return;
        }
    };
    let id = shared.next_session_id();
    let span = tracing::debug_span!("c2s", id, %peer);
    async move {
        let _admitted = admitted;
        let mut connection = Connection::new(id, peer, shared.clone(), shutdown);
        tracing::debug!(?kind, "connection accepted");
        let how = connection.run_connection(tcp, kind).await;
        connection.finish(how).await;
        tracing::debug!("connection closed");
    }
    .instrument(span)
    .await
}

/// How a client connection that is not a TCP stream of its own came (WebSocket, BOSH).
#[derive(Clone, Copy, Debug)]
pub struct Via {
    /// For the connections gauge of `/metrics`.
    pub transport: starling_metrics::Transport,
    /// The HTTP connection it came on speaks TLS.
    pub tls: bool,
    /// Treated as encrypted: TLS, or where the operator trusts plain HTTP (see below).
    pub secure: bool,
}

/// Serves one client that connected over WebSocket (RFC 7395) until it ends. `io` carries the
/// records of [`framing::WebSocketFraming`] (the HTTP listener turns them into WebSocket
/// messages; BOSH sessions speak it through a pipe). `via.secure`: the WebSocket came over TLS, or from where the operator trusts plain
/// HTTP (a reverse proxy on this host): PLAIN may be offered and SASL is not refused for lack
/// of encryption. The connection limits are those of TCP clients; a connection over them gets
/// its stream error in the framing's messages.
pub async fn handle_websocket<S>(
    io: S,
    peer: SocketAddr,
    via: Via,
    shared: Arc<C2sShared>,
    shutdown: CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    use tracing::Instrument as _;
    let id = shared.next_session_id();
    let span = tracing::debug_span!("c2s", id, %peer);
    async move {
        let (admitted, refusal) = match shared.connections.admit(peer.ip()) {
            Ok(a) => (Some(a), None),
            Err(refusal) => (None, Some(refusal_error(peer, refusal))),
        };
        let _admitted = admitted;
        let mut connection = Connection::new(id, peer, shared.clone(), shutdown);
        tracing::debug!(secure = via.secure, transport = ?via.transport, "connection accepted");
        let how = connection.run_websocket(io, via, refusal).await;
        connection.finish(how).await;
        tracing::debug!("connection closed");
    }
    .instrument(span)
    .await
}

/// The stream error for a connection over a limit: `<policy-violation/>` for the address's
/// limit, `<resource-constraint/>` (RFC 6120 §4.9.3.17) for the server's.
fn refusal_error(peer: SocketAddr, refusal: connections::Refusal) -> starling_proto::StreamError {
    use starling_proto::{StreamError, StreamErrorCondition};
    match refusal {
        connections::Refusal::Address(n) => {
            tracing::debug!(%peer, limit = n, "connection refused: too many from this address");
            StreamError::new(StreamErrorCondition::PolicyViolation)
                .with_text(format!("more than {n} connections from your address"))
        }
        connections::Refusal::Total(n) => {
            tracing::warn!(%peer, limit = n, "connection refused: the server holds its maximum");
            StreamError::new(StreamErrorCondition::ResourceConstraint)
                .with_text("the server is at its connection limit")
        }
    }
}

/// Turns away a connection over a limit. On the STARTTLS port the stream is opened and closed
/// with a stream error at once (RFC 6120 §4.9.1.1): `<policy-violation/>` for the address's
/// limit, `<resource-constraint/>` (§4.9.3.17) for the server's. On the direct TLS port the TCP
/// connection is closed without a handshake, which would cost more than the refusal.
async fn refuse(
    mut tcp: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: &C2sShared,
    refusal: connections::Refusal,
) {
    use starling_proto::ns;
    use tokio::io::AsyncWriteExt as _;
    let err = refusal_error(peer, refusal);
    if kind == ListenerKind::StartTls {
        let domain = shared
            .router
            .server_info()
            .domains
            .first()
            .cloned()
            .unwrap_or_default();
        let mut out = String::from(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' from='",
        );
        starling_proto::element::escape_attr(&domain, &mut out);
        out.push_str("' version='1.0'>");
        err.to_element().write_in_stream(ns::CLIENT, &mut out);
        out.push_str("</stream:stream>");
        let write = async {
            tcp.write_all(out.as_bytes()).await?;
            tcp.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
    }
}
