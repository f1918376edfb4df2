//! One client connection: the loop, the stream header, features, STARTTLS, SASL, binding, stream
//! management and stanzas. What a connection binds is a [`Session`](crate::session::Session), which
//! can outlive it (XEP-0198 resumption).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use starling_module_api::{Event, SessionCommand, SessionHandle, random_id};
use starling_proto::{
    BareJid, Element, FullJid, Jid, StanzaError, StanzaErrorCondition, StreamError,
    StreamErrorCondition, error_reply, iq_result, ns,
};
use starling_sasl::{
    ChannelBindingType, ChannelBindings, Mechanism, SaslFailure, ServerSession, Step,
};
use starling_stream::{Frame, Limits, StreamHeader};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

mod anonymous;
mod register;

use crate::framing::{Framing, Opening, WebSocketFraming, XmlStream};
use crate::limiter::RateLimiter;
use crate::negotiation::{Input, Phase, Verdict, admit};
use crate::session::{Ack, Lookup, MAX_HELD, Resumable, Session, StreamMgmt};
use crate::{C2sShared, ListenerKind};

mod sasl2;
use sasl2::Sasl2Pending;

/// Bytes read from the socket at once, into the worker thread's buffer ([`read_pooled`]).
const READ_CHUNK: usize = 16 * 1024;
/// Stands for "never" when no timer is due (keepalives off).
const FAR_AWAY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Output buffer capacity a session keeps between writes (chat messages and presence fit).
const KEEP_OUT_CAPACITY: usize = 512;
/// SASL attempts before the stream is closed (RFC 6120 §6.4.5: at least 2, at most 5 retries).
const MAX_SASL_ATTEMPTS: u32 = 5;
/// `<text/>` of the `<temporary-auth-failure/>` for a locked address ([`crate::throttle`]).
const IP_LOCKED_TEXT: &str =
    "too many failed authentication attempts from your address; try again later";
/// `<text/>` of the `<temporary-auth-failure/>` for a locked account ([`crate::throttle`]).
const ACCOUNT_LOCKED_TEXT: &str =
    "too many failed authentication attempts for this account; try again later";
/// Stanzas taken from the queue per write.
const WRITE_BATCH: usize = 64;

/// What woke a bound connection, besides its socket and timers.
enum Wake {
    Stanza(SessionCommand),
    /// The session was told to close ([`SessionHandle::close`]).
    Close,
    /// A new connection asks to resume the session (the request waits in the
    /// [`Resumptions`](crate::Resumptions) table).
    Resume,
}

/// Resolves when a new connection asks to resume the session; never without resumption.
async fn resume_requested(sm: Option<&StreamMgmt>) {
    match sm.and_then(|sm| sm.resume.as_ref()) {
        Some(r) => r.wake.notified().await,
        None => std::future::pending().await,
    }
}

/// Waits for the bound session's queue, a request to close it, or a resumption; never resolves
/// before binding.
async fn wake(bound: Option<&mut Session>) -> Wake {
    let Some(b) = bound else {
        return std::future::pending().await;
    };
    let Session {
        handle, inbox, sm, ..
    } = b;
    tokio::select! {
        biased;
        () = handle.close_requested() => Wake::Close,
        () = resume_requested(sm.as_deref()) => Wake::Resume,
        // The session holds a sender itself, so the queue never closes while it runs.
        Some(cmd) = inbox.recv() => Wake::Stanza(cmd),
        else => std::future::pending().await,
    }
}

/// Resolves when a blocked write must give way: the session is told to close, or a new
/// connection resumes it.
async fn interrupt(bound: Option<&Session>) -> Wake {
    let Some(b) = bound else {
        return std::future::pending().await;
    };
    tokio::select! {
        biased;
        () = b.handle.close_requested() => Wake::Close,
        () = resume_requested(b.sm.as_deref()) => Wake::Resume,
    }
}

/// XEP-0198 §4: the client acknowledged more than the server sent.
fn too_high(h: u32, sent: u32) -> StreamError {
    let mut err = StreamError::new(StreamErrorCondition::UndefinedCondition)
        .with_text("the client acknowledged more stanzas than the server sent");
    err.app = Some(Box::new(
        Element::new("handled-count-too-high", ns::SM)
            .with_attr("h", h.to_string())
            .with_attr("send-count", sent.to_string()),
    ));
    err
}

/// Writes a stanza from the session's queue for the client and keeps it as unacknowledged; with
/// stream management, asks for an acknowledgement right after the stanza that reaches
/// `request_after` (XEP-0198 §4), so that the client's answer is predictable.
fn send_stanza(
    framing: &dyn Framing,
    out: &mut String,
    b: &mut Session,
    stanza: &Element,
    request_after: u32,
) {
    let start = out.len();
    framing.write_element(stanza, out);
    b.written(framing.stanza_in(out.get(start..).unwrap_or_default()));
    starling_metrics::stanza_out(stanza.name());
    if let Some(sm) = b.sm.as_deref_mut()
        && sm.requested.is_none()
        && sm.since_request >= request_after
    {
        sm.requested = Some(Instant::now());
        sm.since_request = 0;
        framing.write_element(&sm_request(), out);
    }
}

/// Sends what waited while the client was inactive (XEP-0352), in the order it arrived.
fn flush_held(
    framing: &dyn Framing,
    out: &mut String,
    b: &mut Session,
    request_after: u32,
    shared: &C2sShared,
) {
    if b.held.is_empty() {
        return;
    }
    shared.csi.flushes.fetch_add(1, Ordering::Relaxed);
    for stanza in std::mem::take(&mut b.held) {
        send_stanza(framing, out, b, &stanza, request_after);
    }
}

/// XEP-0198 §4: the server's request for an acknowledgement.
fn sm_request() -> Element {
    Element::new("r", ns::SM)
}

/// How long a resumption waits for the holder of the session to hand it over.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// What stream management's timers ask for.
enum AckTimer {
    Idle,
    /// Unacknowledged stanzas have waited: ask (`<r/>`).
    Request,
    /// The client never answered the last request: it is gone.
    Expired,
}

/// How the loop ended.
pub enum Flow {
    /// Go on reading.
    Continue,
    /// `<proceed/>` was sent: upgrade the socket to TLS.
    StartTls,
    /// The stream is over (closed by either side, or an error was sent): the session ends.
    Close,
    /// The connection was lost (the peer vanished, a write failed or timed out, no answer to a
    /// ping): a resumable session waits for its client (XEP-0198 §5).
    Lost,
}

/// Why output stopped.
enum Stop {
    /// An I/O failure or a write timeout: the peer is gone; nothing more can be sent.
    Gone,
    /// The session was asked to close while a write was blocked (a peer that does not read).
    CloseRequested,
}

/// How long the closing stream error may take to write: the peer may be the one not reading.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One client connection's state, kept across the STARTTLS upgrade.
pub struct Connection {
    id: u64,
    peer: SocketAddr,
    shared: Arc<C2sShared>,
    shutdown: CancellationToken,
    phase: Phase,
    secure: bool,
    tls_offered: bool,
    /// The domain the client asked for in its first header.
    domain: Option<String>,
    /// Whether our stream header for the current stream was sent.
    header_sent: bool,
    /// How frames travel on this connection (RFC 6120's XML stream over TCP).
    framing: Box<dyn Framing>,
    bindings: ChannelBindings,
    sasl: Option<Box<ServerSession>>,
    /// The normalised localpart looked up during SASL.
    sasl_user: Option<String>,
    /// The `<authenticate/>` of a XEP-0388 SASL2 exchange in progress (its inline requests
    /// wait for the outcome); `None` for legacy SASL.
    sasl2: Option<Box<Sasl2Pending>>,
    /// The XEP-0388 `<user-agent id/>` the client authenticated with (a UUID, lower case).
    user_agent: Option<Box<str>>,
    /// Whether the account looked up during SASL is disabled (read with its credential).
    sasl_disabled: bool,
    sasl_attempts: u32,
    /// The authenticated account.
    account: Option<BareJid>,
    /// The session this connection bound or resumed.
    bound: Option<Box<Session>>,
    /// A resumption was asked for while a write was blocked: handled at the top of the loop.
    resume_requested: bool,
    deadline: Instant,
    limiter: RateLimiter,
    out: String,
    /// When the last complete frame (stanza, header, close) arrived.
    last_frame: Instant,
    /// When the server last pinged an idle client (XEP-0199), if it has not answered since.
    ping_sent: Option<Instant>,
    /// What this session last added to the shared buffer gauge.
    buffered: usize,
    /// The invitation this stream presented before registering (XEP-0445).
    presented: Option<Box<register::Presented>>,
    /// The account an anonymous login made (RFC 4505): deleted when the connection ends.
    anonymous: Option<Box<BareJid>>,
    /// This connection in the open-connections gauge (`starling-metrics`).
    gauge: starling_metrics::ConnectionGauge,
    /// The mechanism label of the last authentication attempt, for the SASL counters.
    sasl_mechanism: crate::metrics::MechanismLabel,
}

impl Connection {
    pub fn new(
        id: u64,
        peer: SocketAddr,
        shared: Arc<C2sShared>,
        shutdown: CancellationToken,
    ) -> Self {
        let s = &shared.settings;
        Connection {
            id,
            peer,
            phase: Phase::AwaitHeader,
            secure: false,
            tls_offered: false,
            domain: None,
            header_sent: false,
            framing: Box::new(XmlStream::new(preauth_limits(&shared))),
            bindings: ChannelBindings::none(),
            sasl: None,
            sasl_user: None,
            sasl2: None,
            user_agent: None,
            sasl_disabled: false,
            sasl_attempts: 0,
            account: None,
            bound: None,
            resume_requested: false,
            deadline: Instant::now() + s.auth_timeout,
            limiter: RateLimiter::new(s.rate, s.burst),
            out: String::new(),
            last_frame: Instant::now(),
            ping_sent: None,
            buffered: 0,
            presented: None,
            anonymous: None,
            gauge: starling_metrics::ConnectionGauge::open(starling_metrics::Transport::Tcp, false),
            sasl_mechanism: crate::metrics::MechanismLabel::NONE,
            shared,
            shutdown,
        }
    }

    /// Runs a connection that arrived as a WebSocket (RFC 7395): `io` carries the framing's
    /// records ([`WebSocketFraming`]), `via` how it came and whether it counts as encrypted
    /// (see `handle_websocket`). No STARTTLS, no channel binding.
    /// The socket is closed when this returns (a close frame answers the client's, or ends a
    /// stream the server closed), so a lost connection's session waits for resumption without
    /// it.
    pub async fn run_websocket<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut io: S,
        via: crate::Via,
        refusal: Option<StreamError>,
    ) -> Flow {
        self.framing = Box::new(WebSocketFraming::new(preauth_limits(&self.shared)));
        self.secure = via.secure;
        self.gauge = starling_metrics::ConnectionGauge::open(via.transport, via.tls);
        let flow = match refusal {
            Some(err) => self.fail(&mut io, err).await,
            None => Box::pin(self.run(&mut io)).await,
        };
        // After a lost connection too: the client's close frame (a tab closed, a page left)
        // is answered, which is what ends the WebSocket cleanly on its side.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
        flow
    }

    /// Runs the connection: TLS first for direct TLS, the loop, and the STARTTLS upgrade.
    /// Returns how it ended ([`Flow::Close`] or [`Flow::Lost`]).
    pub async fn run_connection(&mut self, tcp: TcpStream, kind: ListenerKind) -> Flow {
        match kind {
            ListenerKind::DirectTls => {
                let tls = Arc::clone(&self.shared.tls);
                self.run_tls(Box::pin(tls.accept_direct_tls(tcp)), "TLS", None)
                    .await
            }
            ListenerKind::StartTls => {
                self.tls_offered = true;
                let mut tcp = tcp;
                // Boxed like the TLS loop below: the task does not reserve room for both.
                let flow = Box::pin(self.run(&mut tcp)).await;
                if !matches!(flow, Flow::StartTls) {
                    let _ = tcp.shutdown().await;
                    return flow;
                }
                let domain = self.domain.clone().unwrap_or_default();
                let acceptor = TlsAcceptor::from(self.shared.tls.starttls_config(&domain));
                self.run_tls(Box::pin(acceptor.accept(tcp)), "STARTTLS", Some(&domain))
                    .await
            }
        }
    }

    /// Completes a TLS handshake (before the authentication deadline) and runs the loop over it.
    /// The handshake arrives boxed and the TLS state is boxed: they live on the heap, only for
    /// TLS connections and the handshake only while it runs, instead of widening every
    /// connection's task. `fallback_name` names the certificate for channel binding when the
    /// client sent no SNI.
    async fn run_tls(
        &mut self,
        accept: Pin<Box<impl Future<Output = std::io::Result<TlsStream<TcpStream>>>>>,
        what: &str,
        fallback_name: Option<&str>,
    ) -> Flow {
        let mut tls = match tokio::time::timeout_at(self.deadline, accept).await {
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => {
                tracing::debug!(id = self.id, error = %e, "{what} handshake failed");
                return Flow::Close;
            }
            Err(_) => {
                tracing::debug!(id = self.id, "{what} handshake timed out");
                return Flow::Close;
            }
        };
        if starling_net::is_acme_validation(tls.get_ref().1) {
            // An ACME CA checking a TLS-ALPN-01 validation certificate: the handshake was all
            // (RFC 8737 §4, no application data); not a client.
            tracing::debug!(id = self.id, sni = ?tls.get_ref().1.server_name(), "ACME TLS-ALPN-01 validation handshake answered; closing");
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, tls.shutdown()).await;
            return Flow::Close;
        }
        let sni = tls.get_ref().1.server_name().map(str::to_owned);
        self.on_tls(tls.get_ref().1, sni.as_deref().or(fallback_name));
        let flow = Box::pin(self.run(&mut *tls)).await;
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, tls.shutdown()).await;
        flow
    }

    /// TLS is in place: a new stream begins (RFC 6120 §5.4.3.3) with a fresh parser, and the
    /// channel-binding data of this TLS connection is recorded for SCRAM-PLUS.
    fn on_tls(&mut self, conn: &rustls::ServerConnection, name: Option<&str>) {
        self.secure = true;
        self.gauge.secured();
        self.phase = Phase::AwaitHeader;
        self.header_sent = false;
        self.framing.restart(preauth_limits(&self.shared));
        let end_point = name
            .or(self
                .shared
                .router
                .server_info()
                .domains
                .first()
                .map(String::as_str))
            .and_then(|d| self.shared.tls.server_end_point(d));
        self.bindings = ChannelBindings {
            tls_exporter: starling_net::tls_exporter(conn),
            tls_server_end_point: end_point,
        };
    }

    /// Reports this session's buffers to the shared gauge (only a change touches the atomic).
    fn update_buffer_gauge(&mut self) {
        let now = self.framing.buffered_bytes() + self.out.capacity();
        if now != self.buffered {
            self.shared.account_buffers(self.buffered, now);
            self.buffered = now;
        }
    }

    /// Cleans up after the connection. A session it bound ends, unless the connection was lost
    /// and the client may resume it (XEP-0198 §5): then this task keeps only the session until
    /// the client comes back on another connection or the resumption timeout passes.
    pub async fn finish(mut self, how: Flow) {
        let anonymous = self.anonymous.take();
        // The connection's own state (parser, buffers, SASL) is dropped here, before waiting.
        let (shared, shutdown, bound) = self.into_session();
        if let Some(mut session) = bound {
            if matches!(how, Flow::Lost) && session.resumable() && !shutdown.is_cancelled() {
                // Modules see it on the session's address (push notifications); the connection
                // that takes the session over clears it.
                session.handle.set_detached(true);
                // Boxed, as is the end below: the connection task does not reserve room for
                // them while the connection runs.
                match Box::pin(session.detach(&shutdown, &shared.resumptions)).await {
                    Some(s) => session = s,
                    // Taken over by a new connection: it is that connection's now.
                    None => return,
                }
            }
            Box::pin(session.end(&shared.router, &shared.resumptions)).await;
        }
        // An anonymous account lives as long as its connection (never resumable): it goes
        // once its session ended and its contacts heard so.
        if let Some(account) = anonymous {
            Box::pin(anonymous::forget(&shared, &account)).await;
        }
    }

    /// Drops everything of the connection but what the session needs.
    fn into_session(self) -> (Arc<C2sShared>, CancellationToken, Option<Box<Session>>) {
        self.shared.account_buffers(self.buffered, 0);
        (self.shared, self.shutdown, self.bound)
    }

    /// The session loop over one byte stream.
    ///
    /// Timers are created once and re-armed only when they fire, never per stanza: a timer in
    /// tokio's wheel costs a lock to register and another to drop, and a busy session goes round
    /// this loop once per stanza. One "tick" serves the whitespace keepalive.
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut S) -> Flow {
        let keepalive = self.shared.settings.keepalive_interval;
        let mut last_write = Instant::now();
        let token = self.shutdown.clone();
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        let deadline = tokio::time::sleep_until(self.deadline);
        tokio::pin!(deadline);
        let tick = tokio::time::sleep_until(self.next_tick(last_write));
        tokio::pin!(tick);
        loop {
            if std::mem::take(&mut self.resume_requested)
                && let Some(flow) = self.hand_over(io).await
            {
                return flow;
            }
            self.update_buffer_gauge();
            let unbound = self.phase != Phase::Bound;
            let wait = self.limiter.wait_time();
            tokio::select! {
                biased;
                _ = &mut cancelled => {
                    return self.fail(io, StreamError::new(StreamErrorCondition::SystemShutdown)).await;
                }
                // RFC 6120 §4.9.3.4 / hardening: streams that do not authenticate and bind in time.
                _ = &mut deadline, if unbound => {
                    return self.fail(io, StreamError::new(StreamErrorCondition::ConnectionTimeout)
                        .with_text("authentication took too long")).await;
                }
                wake = wake(self.bound.as_deref_mut()) => match wake {
                    // Asked to close (a newer session took the resource, or the queue
                    // overflowed): this does not wait for queue space.
                    Wake::Close => {
                        let err = self.bound.as_ref().and_then(|b| b.handle.close_reason())
                            .unwrap_or_else(|| StreamError::new(StreamErrorCondition::PolicyViolation));
                        return self.fail(io, err).await;
                    }
                    Wake::Resume => {
                        if let Some(flow) = self.hand_over(io).await {
                            return flow;
                        }
                    }
                    Wake::Stanza(cmd) => {
                        self.deliver_batch(cmd);
                        if let Some(err) = self.unacked_overflow() {
                            return self.fail(io, err).await;
                        }
                        match self.flush(io).await {
                            Ok(()) => last_write = Instant::now(),
                            Err(Stop::Gone) => return Flow::Lost,
                            Err(Stop::CloseRequested) => continue,
                        }
                    }
                },
                _ = tokio::time::sleep(wait), if !wait.is_zero() => {}
                _ = &mut tick => {
                    let now = Instant::now();
                    // An idle bound session is pinged (XEP-0199 §4.2); without an answer in
                    // time it is closed, and with it a stanza left half sent.
                    if let Some(idle) = self.shared.settings.idle_timeout
                        && self.phase == Phase::Bound
                    {
                        let ping_timeout = self.shared.settings.ping_timeout;
                        match self.ping_sent {
                            Some(sent) if self.last_frame < sent && now >= sent + ping_timeout => {
                                // The client is presumed gone: a resumable session waits.
                                self.fail(io, StreamError::new(StreamErrorCondition::ConnectionTimeout)
                                    .with_text("no answer to the server's ping")).await;
                                return Flow::Lost;
                            }
                            Some(sent) if self.last_frame < sent => {}
                            _ if now >= self.last_frame + idle => {
                                self.write_ping();
                                self.ping_sent = Some(now);
                                match self.flush(io).await {
                                    Ok(()) => last_write = now,
                                    Err(Stop::Gone) => return Flow::Lost,
                                    Err(Stop::CloseRequested) => continue,
                                }
                            }
                            _ => {}
                        }
                    }
                    // XEP-0198 §4: an acknowledgement requested and never given means the
                    // client is gone; unacknowledged stanzas left for a while are asked about.
                    match self.ack_timer(now) {
                        AckTimer::Idle => {}
                        AckTimer::Expired => {
                            self.fail(io, StreamError::new(StreamErrorCondition::ConnectionTimeout)
                                .with_text("no acknowledgement of the server's request")).await;
                            return Flow::Lost;
                        }
                        AckTimer::Request => {
                            self.request_ack(now);
                            match self.flush(io).await {
                                Ok(()) => last_write = now,
                                Err(Stop::Gone) => return Flow::Lost,
                                Err(Stop::CloseRequested) => continue,
                            }
                        }
                    }
                    // Whitespace keepalive (RFC 6120 §4.6.1).
                    if let Some(k) = keepalive
                        && self.phase == Phase::Bound
                        && now >= last_write + k
                    {
                        self.framing.write_keepalive(&mut self.out);
                        match self.flush(io).await {
                            Ok(()) => last_write = now,
                            Err(Stop::Gone) => return Flow::Lost,
                            Err(Stop::CloseRequested) => continue,
                        }
                    }
                    // Fired early (there were writes or frames since it was armed): re-arm for
                    // when due.
                    let next = self.next_tick(last_write);
                    tick.as_mut().reset(next.max(now + Duration::from_millis(10)));
                }
                read = read_pooled(io, &mut self.limiter), if wait.is_zero() => {
                    let data = match read {
                        Ok(data) if data.is_empty() => {
                            // Without </stream:stream>: the connection is lost, not closed
                            // (XEP-0198 §5: only a clean close ends a resumable session).
                            tracing::debug!(id = self.id, "peer closed the connection");
                            return Flow::Lost;
                        }
                        Ok(data) => data,
                        Err(e) => {
                            tracing::debug!(id = self.id, error = %e, "read failed");
                            return Flow::Lost;
                        }
                    };
                    if !self.secure
                        && self.framing.is_byte_stream()
                        && !self.framing.opening_seen()
                        && data[0] == 0x16
                    {
                        // A TLS ClientHello on the STARTTLS port: XML would be noise to it.
                        tracing::info!(id = self.id, peer = %self.peer,
                            "TLS handshake received on a STARTTLS port (use the direct TLS port); closing");
                        return Flow::Close;
                    }
                    // Boxed: inline, the router's whole call chain would widen every session's
                    // loop future for as long as it lives (~2 KB more per idle connection,
                    // measured); one allocation per read costs less. It is kept under 1 KiB
                    // (tested below) by boxing the rarer paths inside it: glibc serves requests
                    // up to 1032 bytes from a per-thread cache, larger ones from a slow path whose
                    // cost grew with the number of sessions (1.5x per message at 5,000 users).
                    let flow = Box::pin(self.process(&data)).await;
                    drop(data);
                    let flow = match flow {
                        Ok(flow) => flow,
                        Err(e) => return self.fail(io, e).await,
                    };
                    if !self.out.is_empty() {
                        match self.flush(io).await {
                            Ok(()) => last_write = Instant::now(),
                            Err(Stop::Gone) => return Flow::Lost,
                            Err(Stop::CloseRequested) => continue,
                        }
                    }
                    match flow {
                        Flow::Continue => {}
                        other => {
                            if matches!(other, Flow::Close) {
                                let _ = io.shutdown().await;
                            }
                            return other;
                        }
                    }
                }
            }
        }
    }

    /// When the loop's timer must next fire: the whitespace keepalive, the idle ping, the
    /// ping's answer deadline, or stream management's acknowledgement timers, whichever comes
    /// first.
    fn next_tick(&self, last_write: Instant) -> Instant {
        let s = &self.shared.settings;
        let far = Instant::now() + FAR_AWAY;
        let keepalive = s.keepalive_interval.map_or(far, |k| last_write + k);
        let idle = match (s.idle_timeout, self.ping_sent) {
            (None, _) => far,
            (Some(_), Some(sent)) if self.last_frame < sent => sent + s.ping_timeout,
            (Some(idle), _) => self.last_frame + idle,
        };
        let ack = match self.bound.as_deref() {
            Some(b) => match b.sm.as_deref() {
                Some(sm) => match sm.requested {
                    Some(at) => at + s.ping_timeout,
                    None if !b.unacked.is_empty() => last_write + s.sm.request_interval,
                    None => far,
                },
                None => far,
            },
            None => far,
        };
        keepalive.min(idle).min(ack)
    }

    /// What stream management's timers ask for now.
    fn ack_timer(&self, now: Instant) -> AckTimer {
        let s = &self.shared.settings;
        let Some(b) = self.bound.as_deref() else {
            return AckTimer::Idle;
        };
        let Some(sm) = b.sm.as_deref() else {
            return AckTimer::Idle;
        };
        match sm.requested {
            Some(at) if now >= at + s.ping_timeout => AckTimer::Expired,
            Some(_) => AckTimer::Idle,
            None if !b.unacked.is_empty() && now >= self.last_frame + s.sm.request_interval => {
                AckTimer::Request
            }
            None => AckTimer::Idle,
        }
    }

    /// XEP-0198 §4: asks the client which stanzas it has received.
    fn request_ack(&mut self, now: Instant) {
        let Some(sm) = self.bound.as_deref_mut().and_then(|b| b.sm.as_deref_mut()) else {
            return;
        };
        sm.requested = Some(now);
        sm.since_request = 0;
        self.framing.write_element(&sm_request(), &mut self.out);
    }

    /// Writes a stanza the connection itself produces for the client (a reply, an error, a
    /// ping): once bound it counts like any delivered stanza for stream management.
    fn emit(&mut self, stanza: Element) {
        let request_after = self.shared.settings.sm.request_after;
        match self.bound.as_deref_mut() {
            Some(b) => send_stanza(&*self.framing, &mut self.out, b, &stanza, request_after),
            None => self.framing.write_element(&stanza, &mut self.out),
        }
    }

    /// XEP-0352 §4: `<active/>` or `<inactive/>`. Becoming active sends what waited.
    fn handle_csi(&mut self, e: &Element) {
        let request_after = self.shared.settings.sm.request_after;
        let Some(b) = self.bound.as_deref_mut() else {
            return;
        };
        b.inactive = e.name() == "inactive";
        // Modules see it on the session's address (push notifications).
        b.handle.set_inactive(b.inactive);
        tracing::trace!(id = self.id, inactive = b.inactive, "client state");
        if !b.inactive {
            flush_held(
                &*self.framing,
                &mut self.out,
                b,
                request_after,
                &self.shared,
            );
        }
    }

    /// XEP-0199 §4.2: a ping from the server to the client.
    fn write_ping(&mut self) {
        let Some(jid) = self.bound.as_ref().map(|b| &b.jid) else {
            return;
        };
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("s2c-ping-{}", random_id()))
            .with_attr("from", jid.domain().as_str())
            .with_attr("to", jid.to_string())
            .with_child(Element::new("ping", ns::PING));
        self.emit(ping);
    }

    /// Serialises one queued stanza and whatever else is waiting, up to a batch; they stay in
    /// the session's unacknowledged queue until written (or, with stream management,
    /// acknowledged). With stream management, asks for an acknowledgement once enough are
    /// outstanding (XEP-0198 §4).
    fn deliver_batch(&mut self, first: SessionCommand) {
        let Some(b) = self.bound.as_deref_mut() else {
            return;
        };
        let max_unacked = self.shared.settings.sm.max_unacked;
        let request_after = self.shared.settings.sm.request_after;
        let mut cmd = first;
        let mut n = 0;
        loop {
            let SessionCommand::Stanza(q) = cmd;
            b.handle.dequeued(&q);
            n += 1;
            if b.inactive && crate::session::can_wait(&q.stanza) && b.held.len() < MAX_HELD {
                // XEP-0352: it waits for the client to become active, or for something urgent.
                b.hold(q.stanza);
                self.shared.csi.held.fetch_add(1, Ordering::Relaxed);
            } else {
                flush_held(
                    &*self.framing,
                    &mut self.out,
                    b,
                    request_after,
                    &self.shared,
                );
                send_stanza(&*self.framing, &mut self.out, b, &q.stanza, request_after);
            }
            // Take the next stanza only if it will be written: one taken and dropped would be
            // a lost stanza.
            if n >= WRITE_BATCH || (b.sm.is_some() && b.unacked.len() >= max_unacked) {
                break;
            }
            match b.inbox.try_recv() {
                Ok(next) => cmd = next,
                Err(_) => break,
            }
        }
    }

    /// XEP-0198: the unacknowledged queue is full. The session ends as if its client had timed
    /// out (what it holds is routed again).
    fn unacked_overflow(&self) -> Option<StreamError> {
        let b = self.bound.as_deref()?;
        let max = self.shared.settings.sm.max_unacked;
        (b.sm.is_some() && b.unacked.len() >= max).then(|| {
            tracing::info!(id = self.id, jid = %b.jid, max, "unacknowledged stanzas reached the limit");
            StreamError::new(StreamErrorCondition::PolicyViolation).with_text(format!(
                "more than {max} stanzas unacknowledged: the client does not acknowledge"
            ))
        })
    }

    /// A new connection resumes this connection's session (XEP-0198 §5): hand it over and
    /// close this connection. `None` if the requester gave up meanwhile (go on as before).
    async fn hand_over<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> Option<Flow> {
        let token = self
            .bound
            .as_deref()?
            .sm
            .as_deref()?
            .resume
            .as_ref()?
            .token
            .clone();
        let t = self.shared.resumptions.take(&token)?;
        let session = self.bound.take()?;
        tracing::info!(id = self.id, jid = %session.jid, "session resumed on another connection; closing this one");
        // What was serialised here and not written is in the session's unacknowledged queue:
        // the new connection sends it.
        self.release_out();
        if let Err(back) = t.reply.send(session) {
            self.bound = Some(back);
            return None;
        }
        Some(
            self.fail(
                io,
                StreamError::new(StreamErrorCondition::Conflict)
                    .with_text("the session was resumed on another connection"),
            )
            .await,
        )
    }

    /// Feeds bytes to the decoder and handles every complete frame.
    async fn process(&mut self, data: &[u8]) -> Result<Flow, StreamError> {
        let mut input = data;
        loop {
            let frame = match self.framing.next_frame(&mut input) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(Flow::Continue),
                Err(e) => {
                    tracing::debug!(id = self.id, error = %e, "stream input rejected");
                    return Err(e.to_stream_error());
                }
            };
            match self.handle_frame(frame).await? {
                // One read can hold hundreds of small stanzas, each queued to some recipient
                // without waiting: give the recipients' sessions a turn every so often (tokio's
                // task budget, 128 units), so that a burst from one fast sender does not fill a
                // healthy reader's queue before that reader's task even runs.
                Flow::Continue => tokio::task::coop::consume_budget().await,
                // After <proceed/>, whatever else was read is plaintext pipelined by the peer: it is
                // never processed (RFC 6120 §5.4.3.3).
                Flow::StartTls => return Ok(Flow::StartTls),
                Flow::Close => return Ok(Flow::Close),
                Flow::Lost => return Ok(Flow::Lost),
            }
        }
    }

    async fn handle_frame(&mut self, frame: Frame) -> Result<Flow, StreamError> {
        self.last_frame = Instant::now();
        match frame {
            Frame::Header(h) => {
                self.handle_header(h)?;
                Ok(Flow::Continue)
            }
            Frame::Close => {
                // RFC 6120 §4.4: answer the closing tag with ours, then close.
                if !self.header_sent {
                    self.write_header(None);
                }
                self.framing.write_closing(&mut self.out);
                Ok(Flow::Close)
            }
            Frame::Element(e) => self.handle_element(e).await,
        }
    }

    fn handle_header(&mut self, h: StreamHeader) -> Result<(), StreamError> {
        let info = self.shared.router.server_info().clone();
        // RFC 6120 §4.7.2: 'to' names the service; clients must send it.
        let Some(to) = h.to.as_deref() else {
            self.write_header(h.from.as_deref());
            return Err(StreamError::new(StreamErrorCondition::ImproperAddressing)
                .with_text("a 'to' attribute is required on the stream header"));
        };
        let to = normalise_domain(to);
        match &self.domain {
            None if info.domains.contains(&to) => self.domain = Some(to),
            None => {
                self.write_header(h.from.as_deref());
                return Err(StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("this server does not serve that domain"));
            }
            // After a restart the client must keep addressing the same domain.
            Some(d) if *d == to => {}
            Some(_) => {
                self.write_header(h.from.as_deref());
                return Err(StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("the 'to' attribute must stay the same across stream restarts"));
            }
        }
        self.write_header(h.from.as_deref());
        // RFC 6120 §4.7.5: version 1.0 is required for features; a missing version means 0.9.
        match h.version.as_deref().and_then(parse_version) {
            Some((major, _)) if major >= 1 => {}
            _ => {
                return Err(StreamError::new(StreamErrorCondition::UnsupportedVersion)
                    .with_text("XMPP 1.0 is required"));
            }
        }
        self.phase = if self.account.is_some() {
            Phase::AwaitBind
        } else {
            Phase::PreAuth
        };
        let features = self.features();
        self.framing.write_element(&features, &mut self.out);
        Ok(())
    }

    fn write_header(&mut self, client_from: Option<&str>) {
        let domain = self
            .domain
            .clone()
            .or_else(|| self.shared.router.server_info().domains.first().cloned())
            .unwrap_or_default();
        let id = random_id();
        // RFC 6120 §4.7.2: answer the initiator's 'from' in 'to'.
        let opening = Opening {
            from: &domain,
            id: &id,
            to: client_from,
        };
        self.framing.write_opening(&opening, &mut self.out);
        self.header_sent = true;
    }

    /// The stream features for the current phase.
    fn features(&self) -> Element {
        let s = &self.shared.settings;
        let mut f = Element::new("features", ns::STREAM);
        if self.account.is_some() {
            // After SASL2 with Bind2 (XEP-0386) the stream is bound already: no binding offered.
            if self.bound.is_none() {
                f.append_child(Element::new("bind", ns::BIND));
                // RFC 6121 legacy session establishment: Smack and Spark still send it.
                f.append_child(
                    Element::new("session", ns::SESSION)
                        .with_child(Element::new("optional", ns::SESSION)),
                );
            }
            f.append_child(limits_feature(s.max_stanza_size));
            // XEP-0198 §2 (advertised after authentication, where <resume/> may replace bind);
            // not once enabled inline (XEP-0386 Bind2 with <enable/>): it cannot be enabled
            // twice. COMPAT(xmpp.js): @xmpp/client 0.14 answers an <sm/> feature after an
            // inline <enabled/> with <resume/>, fails, and turns stream management off.
            if self.bound.as_deref().is_none_or(|b| b.sm.is_none()) {
                f.append_child(Element::new("sm", ns::SM));
            }
            // XEP-0352 §3.
            f.append_child(Element::new("csi", ns::CSI));
            for extra in &self.shared.router.server_info().stream_features {
                f.append_child(extra.clone());
            }
            return f;
        }
        if !self.secure && self.tls_offered {
            let mut starttls = Element::new("starttls", ns::TLS);
            if s.require_encryption {
                starttls.append_child(Element::new("required", ns::TLS));
                // RFC 6120 §5.3.1: with TLS mandatory, only STARTTLS is offered.
                f.append_child(starttls);
                return f;
            }
            f.append_child(starttls);
        }
        let mut mechs = Element::new("mechanisms", ns::SASL);
        for m in self.offered_mechanisms() {
            mechs.append_child(Element::new("mechanism", ns::SASL).with_text(m.name()));
        }
        f.append_child(mechs);
        if let Some(auth) = self.sasl2_feature() {
            f.append_child(auth);
        }
        if self.plus_offered() {
            // XEP-0440: the channel-binding types this connection supports.
            let mut cb = Element::new("sasl-channel-binding", ns::SASL_CB);
            for t in ChannelBindingType::ALL {
                if self.bindings.get(t).is_some() {
                    cb.append_child(
                        Element::new("channel-binding", ns::SASL_CB).with_attr("type", t.name()),
                    );
                }
            }
            f.append_child(cb);
        }
        self.registration_features(&mut f);
        f.append_child(limits_feature(s.preauth_max_stanza_size));
        f
    }

    /// Whether -PLUS mechanisms are offered: TLS with channel-binding data to bind to (and
    /// XEP-0440 advertises the types); not on an anonymous host, which offers no SCRAM.
    fn plus_offered(&self) -> bool {
        self.secure && !self.bindings.is_empty() && !self.anonymous_host()
    }

    fn offered_mechanisms(&self) -> Vec<Mechanism> {
        if self.anonymous_host() {
            // RFC 4505, and only it: no account of an anonymous host has a password.
            return vec![Mechanism::Anonymous];
        }
        Mechanism::ALL
            .into_iter()
            .filter(|m| match m {
                // Never beside the others (see `anonymous`).
                Mechanism::Anonymous => false,
                // PLAIN only ever over TLS.
                Mechanism::Plain => self.secure && self.shared.settings.allow_plain,
                // `[auth] scram_hashes`: only the hashes the operator offers.
                m if m
                    .hash()
                    .is_some_and(|h| !self.shared.settings.scram_hashes.contains(&h)) =>
                {
                    false
                }
                m if m.is_plus() => self.plus_offered(),
                _ => true,
            })
            .collect()
    }

    async fn handle_element(&mut self, e: Element) -> Result<Flow, StreamError> {
        let input = Input::classify(&e);
        let s = &self.shared.settings;
        match admit(
            self.phase,
            self.secure,
            self.tls_offered,
            s.require_encryption,
            input,
        ) {
            Verdict::Accept => {}
            Verdict::StreamError(cond) => {
                let mut err = StreamError::new(cond);
                if cond == StreamErrorCondition::NotAuthorized {
                    err = err.with_text(if self.account.is_none() {
                        "authenticate first"
                    } else {
                        "bind a resource first"
                    });
                }
                return Err(err);
            }
            Verdict::TlsFailure => {
                // RFC 6120 §5.4.2.2: <failure/> then close the stream.
                self.framing
                    .write_element(&Element::new("failure", ns::TLS), &mut self.out);
                self.framing.write_closing(&mut self.out);
                return Ok(Flow::Close);
            }
            Verdict::SaslEncryptionRequired => {
                let sasl2 = input == Input::Sasl2Authenticate;
                self.sasl_attempts += 1;
                self.write_failure(sasl2, SaslFailure::EncryptionRequired, None);
                return self.check_attempts();
            }
            Verdict::SaslOutOfSequence => {
                let cond = if matches!(input, Input::SaslAbort | Input::Sasl2Abort) {
                    SaslFailure::Aborted
                } else {
                    SaslFailure::MalformedRequest
                };
                let sasl2 = matches!(input, Input::Sasl2Response | Input::Sasl2Abort);
                self.sasl = None;
                self.phase = Phase::PreAuth;
                self.sasl_attempts += 1;
                self.write_failure(sasl2, cond, None);
                return self.check_attempts();
            }
            Verdict::NotAllowed => {
                self.count_inbound();
                starling_metrics::stanza_in(e.name());
                let err = StanzaError::new(StanzaErrorCondition::NotAllowed)
                    .with_text("a resource is already bound on this stream");
                self.emit(error_reply(&e, &err));
                return Ok(Flow::Continue);
            }
        }
        let bound = self.phase == Phase::Bound;
        if matches!(input, Input::Stanza | Input::Session) || (bound && input == Input::Register) {
            // XEP-0198 §4: every stanza the client sends counts, whatever becomes of it.
            self.count_inbound();
            starling_metrics::stanza_in(e.name());
        }
        match input {
            Input::StartTls => {
                self.framing
                    .write_element(&Element::new("proceed", ns::TLS), &mut self.out);
                Ok(Flow::StartTls)
            }
            // Login steps are boxed to keep `process` small (see `run`).
            Input::Auth => Box::pin(self.handle_auth(&e)).await,
            Input::SaslResponse => Box::pin(self.handle_sasl_response(&e)).await,
            Input::SaslAbort | Input::Sasl2Abort => {
                self.sasl = None;
                self.phase = Phase::PreAuth;
                self.sasl_failure(SaslFailure::Aborted, None);
                self.check_attempts()
            }
            Input::Sasl2Authenticate => Box::pin(self.handle_sasl2_authenticate(e)).await,
            Input::Sasl2Response => Box::pin(self.handle_sasl2_response(&e)).await,
            Input::Bind => Box::pin(self.handle_bind(&e)).await,
            Input::Session => {
                // RFC 3921 §3 session establishment is a no-op today: answer it.
                let jid = self.bound.as_ref().map(|b| b.jid.to_string());
                let mut r = iq_result(&e);
                r.remove_attr("from");
                r.set_attr("to", jid.unwrap_or_default());
                self.emit(r);
                Ok(Flow::Continue)
            }
            Input::Stanza => self.handle_stanza(e).await,
            // Once bound, the register module's (password change, removal).
            Input::Register if bound && self.register_is_ours(&e) => {
                Box::pin(self.handle_register_bound(e)).await
            }
            Input::Register if bound => self.handle_stanza(e).await,
            Input::Register => Box::pin(self.handle_register(e)).await,
            Input::SmEnable => {
                self.handle_sm_enable(&e);
                Ok(Flow::Continue)
            }
            Input::SmResume => Box::pin(self.handle_sm_resume(&e)).await,
            Input::SmAck => self.handle_sm_ack(&e),
            Input::SmRequest => {
                // XEP-0198 §4: answer with what was handled. Without stream management there
                // is no count to give.
                if let Some(sm) = self.bound.as_deref().and_then(|b| b.sm.as_deref()) {
                    let h = sm.inbound;
                    self.framing.write_element(
                        &Element::new("a", ns::SM).with_attr("h", h.to_string()),
                        &mut self.out,
                    );
                }
                Ok(Flow::Continue)
            }
            Input::Csi => {
                self.handle_csi(&e);
                Ok(Flow::Continue)
            }
            Input::WrongNamespace | Input::Unknown => Ok(Flow::Continue),
        }
    }

    // ----- SASL (RFC 6120 §6) -----

    async fn handle_auth(&mut self, e: &Element) -> Result<Flow, StreamError> {
        // A locked address is refused before anything else (see `throttle`), whatever the
        // password: RFC 6120 §6.5.11, a temporary condition.
        self.sasl_mechanism = crate::metrics::MechanismLabel::of(e.attr("mechanism"));
        let now = std::time::Instant::now();
        if self
            .shared
            .throttle
            .ip_locked(self.peer.ip(), now)
            .is_some()
        {
            self.sasl_failure(SaslFailure::TemporaryAuthFailure, Some(IP_LOCKED_TEXT));
            return self.check_attempts();
        }
        let mech = e
            .attr("mechanism")
            .and_then(Mechanism::from_name)
            .filter(|m| self.offered_mechanisms().contains(m));
        let Some(mech) = mech else {
            self.sasl_failure(SaslFailure::InvalidMechanism, None);
            return self.check_attempts();
        };
        let initial = match decode_sasl_payload(&e.text()) {
            Ok(v) => v,
            Err(()) => {
                self.sasl_failure(SaslFailure::IncorrectEncoding, None);
                return self.check_attempts();
            }
        };
        let domain = self.domain.clone().unwrap_or_default();
        let (mut session, step) = ServerSession::start(
            mech,
            &domain,
            self.bindings.clone(),
            self.plus_offered(),
            initial.as_deref(),
        );
        session.set_unknown_user_iterations(self.shared.settings.scram_iterations);
        // XEP-0474 §5.1: the legacy mechanism list is what the client saw here.
        let offered = self.offered_mechanisms();
        self.set_downgrade_protection(&mut session, &offered);
        self.sasl_user = None;
        self.sasl2 = None;
        self.sasl = Some(Box::new(session));
        self.phase = Phase::Sasl;
        self.sasl_step(step).await
    }

    /// XEP-0474: hashes the mechanisms `offered` on the profile in use and the XEP-0440
    /// channel-binding types (advertised exactly when -PLUS is) into SCRAM's server-first.
    fn set_downgrade_protection(&self, session: &mut ServerSession, offered: &[Mechanism]) {
        let names: Vec<&str> = offered.iter().map(Mechanism::name).collect();
        let cb: Vec<&str> = self.bindings.available().iter().map(|t| t.name()).collect();
        let cb = self.plus_offered().then_some(cb.as_slice());
        session.set_downgrade_protection(&names, cb);
    }

    async fn handle_sasl_response(&mut self, e: &Element) -> Result<Flow, StreamError> {
        let payload = match decode_sasl_payload(&e.text()) {
            Ok(v) => v.unwrap_or_default(),
            Err(()) => {
                self.sasl = None;
                self.phase = Phase::PreAuth;
                self.sasl_failure(SaslFailure::IncorrectEncoding, None);
                return self.check_attempts();
            }
        };
        self.sasl_continue(&payload).await
    }

    /// Feeds the client's response (either profile) to the exchange.
    async fn sasl_continue(&mut self, payload: &[u8]) -> Result<Flow, StreamError> {
        let step = match self.sasl.as_mut() {
            Some(s) => s.step(payload),
            None => Step::Failure(SaslFailure::MalformedRequest),
        };
        self.sasl_step(step).await
    }

    async fn sasl_step(&mut self, mut step: Step) -> Result<Flow, StreamError> {
        loop {
            match step {
                Step::NeedCredentials { username, hash } => {
                    let account = self.sasl_account(&username);
                    if let Some(a) = &account
                        && let Some((cond, text)) = self.login_gate(a).await?
                    {
                        // Refused before the password is looked at: a lock holds for the right
                        // password too, and costs no PBKDF2 (see `throttle`).
                        self.sasl = None;
                        self.phase = Phase::PreAuth;
                        self.sasl_failure(cond, Some(&text));
                        return self.check_attempts();
                    }
                    let cred = self.lookup_credential(account, hash).await?;
                    step = match self.sasl.as_mut() {
                        Some(s) => s.provide_credentials(cred),
                        None => Step::Failure(SaslFailure::TemporaryAuthFailure),
                    };
                }
                Step::Challenge(data) => {
                    let challenge = if self.sasl2.is_some() {
                        // XEP-0388 §2.2: plain base64; no data is an empty element.
                        Element::new("challenge", ns::SASL2).with_text(B64.encode(&data))
                    } else {
                        Element::new("challenge", ns::SASL).with_text(encode_sasl_payload(&data))
                    };
                    self.framing.write_element(&challenge, &mut self.out);
                    return Ok(Flow::Continue);
                }
                Step::Success {
                    additional_data, ..
                } => {
                    let session = self.sasl.take();
                    let account = match session.filter(|s| s.mechanism() == Mechanism::Anonymous) {
                        // RFC 4505: the server picks the account (see `anonymous`).
                        Some(s) => match Box::pin(self.anonymous_login(s.anonymous_trace())).await?
                        {
                            Ok(account) => account,
                            Err((cond, text)) => {
                                self.phase = Phase::PreAuth;
                                self.sasl_failure(cond, Some(&text));
                                return self.check_attempts();
                            }
                        },
                        None => {
                            let Some(user) = self.sasl_user.take() else {
                                self.sasl_failure(SaslFailure::TemporaryAuthFailure, None);
                                return self.check_attempts();
                            };
                            let domain = self.domain.clone().unwrap_or_default();
                            match BareJid::new(&format!("{user}@{domain}")) {
                                Ok(j) => j,
                                Err(_) => {
                                    self.sasl_failure(SaslFailure::TemporaryAuthFailure, None);
                                    return self.check_attempts();
                                }
                            }
                        }
                    };
                    // The credentials are right; whether the account may log in is decided
                    // in one place for every login path (`login`).
                    if let Err(refusal) = crate::login::may_log_in(
                        &self.shared.stores,
                        &account,
                        Some(self.sasl_disabled),
                    )
                    .await
                    {
                        self.phase = Phase::PreAuth;
                        self.sasl_failure(refusal.failure(), Some(refusal.text()));
                        return self.check_attempts();
                    }
                    if self.sasl2.is_some() {
                        return Box::pin(self.sasl2_success(account, additional_data, None)).await;
                    }
                    let mut success = Element::new("success", ns::SASL);
                    if let Some(d) = additional_data {
                        success.append_text(encode_sasl_payload(&d));
                    }
                    self.framing.write_element(&success, &mut self.out);
                    tracing::info!(id = self.id, peer = %self.peer, %account, "authenticated");
                    starling_metrics::sasl_success(self.sasl_mechanism.name());
                    self.account = Some(account);
                    // RFC 6120 §6.4.6: the stream restarts: a fresh parser, the post-auth limits,
                    // and a new header is expected (bytes already received feed the new parser).
                    self.framing.restart(postauth_limits(&self.shared));
                    self.phase = Phase::AwaitHeader;
                    self.header_sent = false;
                    return Ok(Flow::Continue);
                }
                Step::Failure(f) => {
                    let (server_error, guessed) = self.sasl.as_ref().map_or((None, false), |s| {
                        (s.server_error(), s.credentials_rejected())
                    });
                    self.sasl = None;
                    self.phase = Phase::PreAuth;
                    if let Some(e) = server_error {
                        // RFC 5802 §7 server-final `e=...` (today: a channel-binding type we do
                        // not offer, like poezio's `tls-unique` on TLS 1.3). RFC 6120 has no
                        // additional data with failure (§6.4.5, §6.5: a condition and an
                        // optional <text/>), so the server-final message goes in <text/>. No
                        // password was tried: it counts neither toward the retries nor for the
                        // throttle, so the client can fall back to another mechanism.
                        self.write_sasl_failure(f, Some(&e.server_final()));
                        return Ok(Flow::Continue);
                    }
                    if guessed {
                        self.throttle_failure().await;
                    }
                    self.sasl_failure(f, None);
                    return self.check_attempts();
                }
            }
        }
    }

    /// The account `username` (SASLprep'd) names on this stream's domain, normalised; `None` if
    /// it is not a valid localpart (then no account can have it).
    fn sasl_account(&self, username: &str) -> Option<BareJid> {
        let domain = self.domain.as_deref().unwrap_or_default();
        BareJid::new(&format!("{username}@{domain}"))
            .ok()
            .filter(|b| b.node().is_some())
    }

    /// Looks up the SCRAM credential of `account` (from [`Self::sasl_account`]) for `hash`. A
    /// name that is not a valid localpart is simply unknown.
    async fn lookup_credential(
        &mut self,
        account: Option<BareJid>,
        hash: starling_sasl::ScramHash,
    ) -> Result<Option<starling_sasl::ScramCredential>, StreamError> {
        let Some(bare) = account else {
            return Ok(None);
        };
        let Some(node) = bare.node() else {
            return Ok(None);
        };
        let domain = bare.domain().as_str().to_owned();
        let localpart = node.as_str().to_owned();
        // PLAIN accepts a credential of any hash.
        let any_hash = self.sasl.as_ref().map(|s| s.mechanism()) == Some(Mechanism::Plain);
        let store = self.shared.stores.accounts.as_ref();
        let found =
            match starling_accounts::login_credential(store, &localpart, &domain, hash, any_hash)
                .await
            {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(id = self.id, error = %e, "credential lookup failed");
                    return Err(StreamError::new(StreamErrorCondition::InternalServerError));
                }
            };
        self.sasl_user = Some(localpart);
        self.sasl_disabled = found.as_ref().is_some_and(|f| f.disabled);
        Ok(found.map(|f| f.credential))
    }

    /// Records a password failure (a wrong proof or password, or an unknown user) with the
    /// throttle and waits out the delay it sets before the `<failure/>` goes out: in this
    /// session's own task, so no other session waits; a shutdown cuts the wait short.
    async fn throttle_failure(&mut self) {
        let domain = self.domain.as_deref().unwrap_or_default();
        let account = self.sasl_user.as_ref().map(|u| format!("{u}@{domain}"));
        let verdict = self.shared.throttle.record_failure(
            self.peer.ip(),
            account.as_deref(),
            std::time::Instant::now(),
        );
        if !verdict.delay.is_zero() {
            tracing::debug!(id = self.id, delay = ?verdict.delay, "holding the failure back");
            tokio::select! {
                _ = tokio::time::sleep(verdict.delay) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }

    /// Whether `account` may try to log in now: the one gate every login path (legacy SASL,
    /// SASL2 with a password, SASL2 with a FAST token) passes once it knows the account and
    /// before it checks credentials: a throttle lock (see `throttle`) holds for the right
    /// password too. The account's own rules (a disabled account) are asked after the
    /// credentials, in [`crate::login::may_log_in`].
    async fn login_gate(
        &mut self,
        account: &BareJid,
    ) -> Result<Option<(SaslFailure, String)>, StreamError> {
        let now = std::time::Instant::now();
        if self
            .shared
            .throttle
            .account_locked(account.as_str(), now)
            .is_some()
        {
            return Ok(Some((
                SaslFailure::TemporaryAuthFailure,
                ACCOUNT_LOCKED_TEXT.to_owned(),
            )));
        }
        Ok(None)
    }

    /// Answers a failed attempt and counts it toward [`MAX_SASL_ATTEMPTS`].
    fn sasl_failure(&mut self, f: SaslFailure, text: Option<&str>) {
        self.sasl_attempts += 1;
        self.write_sasl_failure(f, text);
    }

    /// Writes `<failure/>` with condition `f` and optional `<text/>` (RFC 6120 §6.5), in the
    /// namespace of the exchange (SASL2's ends with it), without counting it as an attempt.
    fn write_sasl_failure(&mut self, f: SaslFailure, text: Option<&str>) {
        let sasl2 = self.sasl2.take().is_some();
        self.write_failure(sasl2, f, text);
    }

    /// `<failure/>` of legacy SASL (RFC 6120 §6.5) or of SASL2 (XEP-0388 §2.6.2: the RFC 6120
    /// condition in its own namespace, `<text/>` in SASL2's).
    fn write_failure(&mut self, sasl2: bool, f: SaslFailure, text: Option<&str>) {
        tracing::info!(id = self.id, peer = %self.peer, condition = f.as_str(), text, sasl2, "authentication failed");
        starling_metrics::sasl_failure(self.sasl_mechanism.name());
        let outer = if sasl2 { ns::SASL2 } else { ns::SASL };
        let mut el = Element::new("failure", outer).with_child(Element::new(f.as_str(), ns::SASL));
        if let Some(t) = text {
            el.append_child(Element::new("text", outer).with_text(t));
        }
        self.framing.write_element(&el, &mut self.out);
    }

    fn check_attempts(&mut self) -> Result<Flow, StreamError> {
        if self.sasl_attempts >= MAX_SASL_ATTEMPTS {
            return Err(StreamError::new(StreamErrorCondition::PolicyViolation)
                .with_text("too many failed authentication attempts"));
        }
        Ok(Flow::Continue)
    }

    // ----- Resource binding (RFC 6120 §7) -----

    async fn handle_bind(&mut self, iq: &Element) -> Result<Flow, StreamError> {
        let Some(account) = self.account.clone() else {
            return Err(StreamError::new(StreamErrorCondition::NotAuthorized));
        };
        if iq.attr("type") != Some("set") || iq.attr("id").is_none() {
            self.reply_error(
                iq,
                StanzaErrorCondition::BadRequest,
                Some("bind is an iq of type 'set' with an id"),
            );
            return Ok(Flow::Continue);
        }
        let requested = iq
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("resource", ns::BIND))
            .map(|r| r.text())
            .filter(|r| !r.trim().is_empty());
        let jid = match requested {
            // RFC 6120 §7.7.2.1: a resource that fails resourceprep is a bad request.
            Some(r) => match account.with_resource_str(&r) {
                Ok(j) => j,
                Err(_) => {
                    self.reply_error(
                        iq,
                        StanzaErrorCondition::BadRequest,
                        Some("invalid resource"),
                    );
                    return Ok(Flow::Continue);
                }
            },
            None => match account.with_resource_str(&random_id()) {
                Ok(j) => j,
                Err(_) => return Err(StreamError::new(StreamErrorCondition::InternalServerError)),
            },
        };
        if !self.bind_jid(&account, jid.clone()).await {
            self.reply_error(
                iq,
                StanzaErrorCondition::ResourceConstraint,
                Some("too many resources bound for this account"),
            );
            return Ok(Flow::Continue);
        }
        let mut result = iq_result(iq);
        result.remove_attr("from");
        result.remove_attr("to");
        result.append_child(
            Element::new("bind", ns::BIND)
                .with_child(Element::new("jid", ns::BIND).with_text(jid.to_string())),
        );
        self.framing.write_element(&result, &mut self.out);
        self.shared.router.emit(Event::Bound(jid)).await;
        Ok(Flow::Continue)
    }

    /// Binds `jid` to this connection (RFC 6120 §7; XEP-0386 Bind2 too): a new session in the
    /// registry, the older session of the same resource closed with `<conflict/>`. `false` if
    /// the account holds `max_resources` already (§7.6.2.1, `<resource-constraint/>`); a
    /// resource that replaces one of the same name does not add one. The caller answers and
    /// then emits [`Event::Bound`].
    async fn bind_jid(&mut self, account: &BareJid, jid: FullJid) -> bool {
        let registry = self.shared.router.sessions().clone();
        let max = self.shared.settings.max_resources;
        let bound = registry.resources(account).await;
        if max > 0 && bound.len() >= max && !bound.iter().any(|e| e.jid == jid) {
            tracing::info!(id = self.id, %account, max, "resource limit reached");
            return false;
        }
        let s = &self.shared.settings;
        let (tx, inbox) = mpsc::channel(s.queue_len.max(1));
        let handle = SessionHandle::with_byte_limit(self.id, tx, s.queue_bytes);
        handle.set_peer(self.peer);
        if let Some(old) = registry.bind(jid.clone(), handle.clone()).await {
            // RFC 6120 §7.7.2.2: the new session wins; the old one is closed with <conflict/>.
            tracing::info!(id = self.id, %jid, old = old.handle.id(), "resource conflict: replacing the older session");
            old.handle.close(
                StreamError::new(StreamErrorCondition::Conflict)
                    .with_text("this resource was bound by a new session"),
            );
            // The old session is no longer in the registry, so its own end will not report it:
            // modules hear of it now (its contacts get its unavailable presence).
            self.shared.router.emit(Event::Ended(old)).await;
        }
        let mut session = Session::new(self.id, jid.clone(), handle, inbox);
        session.user_agent = self.user_agent.clone();
        self.bound = Some(Box::new(session));
        self.phase = Phase::Bound;
        tracing::info!(id = self.id, %jid, user_agent = self.user_agent.as_deref(), "resource bound");
        true
    }

    // ----- Stanzas (RFC 6120 §8) -----

    async fn handle_stanza(&mut self, mut e: Element) -> Result<Flow, StreamError> {
        let Some(jid) = self.bound.as_ref().map(|b| b.jid.clone()) else {
            return Err(StreamError::new(StreamErrorCondition::NotAuthorized));
        };
        // RFC 6120 §8.1.2.1: a client may only send as itself: its full JID or bare JID, which
        // the server stamps as the full JID. Anything else ends the stream.
        if let Some(from) = e.attr("from") {
            let ok = match Jid::new(from) {
                Ok(j) => j == jid.clone() || j == jid.to_bare(),
                Err(_) => false,
            };
            if !ok {
                return Err(StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("'from' must be this session's address"));
            }
        }
        e.set_attr("from", jid.to_string());
        if e.name() == "iq" {
            let ty = e.attr("type");
            // RFC 6120 §8.2.3: an IQ needs an id and one of the four types.
            if e.attr("id").is_none() || !matches!(ty, Some("get" | "set" | "result" | "error")) {
                if ty != Some("error") {
                    self.reply_error(
                        &e,
                        StanzaErrorCondition::BadRequest,
                        Some("an iq needs an 'id' and a valid 'type'"),
                    );
                }
                return Ok(Flow::Continue);
            }
        }
        // Everything else, presence included (availability, priority, subscriptions: the presence
        // module's), goes to the router. Boxed to keep `process` small (see `run`).
        Box::pin(self.shared.router.route_from_client(&jid, e)).await;
        Ok(Flow::Continue)
    }

    fn reply_error(&mut self, stanza: &Element, cond: StanzaErrorCondition, text: Option<&str>) {
        let mut err = StanzaError::new(cond);
        if let Some(t) = text {
            err = err.with_text(t);
        }
        let mut reply = error_reply(stanza, &err);
        // Replies generated by the server for the client's own stream carry no 'from'
        // (RFC 6120 §8.1.2.1: the server itself), except where the request had a 'to'.
        if stanza.attr("to").is_none() {
            reply.remove_attr("from");
        }
        self.emit(reply);
    }

    // ----- Stream management (XEP-0198) -----

    /// Counts a stanza received from the client (XEP-0198 §4).
    fn count_inbound(&mut self) {
        if let Some(sm) = self.bound.as_deref_mut().and_then(|b| b.sm.as_deref_mut()) {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
    }

    /// XEP-0198 §3: `<enable/>`, after binding, once.
    fn handle_sm_enable(&mut self, e: &Element) {
        if let Some(answer) = self.sm_enable(e) {
            self.framing.write_element(&answer, &mut self.out);
        }
    }

    /// `<failed/>` with a condition and text (XEP-0198 §3, §5).
    fn sm_failed(cond: StanzaErrorCondition, h: Option<u32>, text: &str) -> Element {
        tracing::debug!(
            condition = cond.as_str(),
            text,
            "stream management request refused"
        );
        let mut failed = Element::new("failed", ns::SM)
            .with_opt_attr("h", h.map(|h| h.to_string()))
            .with_child(Element::new(cond.as_str(), ns::STANZAS));
        failed.append_child(Element::new("text", ns::STANZAS).with_text(text));
        failed
    }

    /// Enables stream management as `e` (`<enable/>`) asks, on its own or inside Bind2
    /// (XEP-0198 §9.1): the `<enabled/>` or `<failed/>` to answer with.
    fn sm_enable(&mut self, e: &Element) -> Option<Element> {
        let settings = self.shared.settings.sm.clone();
        let account = self.account.clone()?;
        let can_resume = self.resumption_offered();
        let Some(b) = self.bound.as_deref_mut() else {
            return Some(Self::sm_failed(
                StanzaErrorCondition::UnexpectedRequest,
                None,
                "bind a resource before enabling stream management",
            ));
        };
        if b.sm.is_some() {
            return Some(Self::sm_failed(
                StanzaErrorCondition::UnexpectedRequest,
                None,
                "stream management is already enabled",
            ));
        }
        // Stanzas written before <enable/> are not counted by the client (§4): they are
        // forgotten like any write without stream management.
        b.unacked.clear();
        let mut enabled = Element::new("enabled", ns::SM);
        // §3: without resumption, <enabled/> has no 'resume' (and none on an anonymous host,
        // where a new login is a new account: nobody could resume).
        let resume = matches!(e.attr("resume"), Some("true" | "1")) && can_resume;
        let resumable = resume.then(|| {
            // §5: the client's preferred maximum is honoured up to the server's.
            let max = e
                .attr("max")
                .and_then(|m| m.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .map_or(settings.resume_timeout, |m| m.min(settings.resume_timeout));
            let token: Arc<str> = Arc::from(random_id());
            let wake = self.shared.resumptions.register(token.clone(), account);
            enabled.set_attr("id", &*token);
            enabled.set_attr("resume", "true");
            enabled.set_attr("max", max.as_secs().to_string());
            Resumable { token, max, wake }
        });
        b.sm = Some(Box::new(StreamMgmt {
            inbound: 0,
            sent: 0,
            since_request: 0,
            requested: None,
            resume: resumable,
        }));
        tracing::debug!(id = self.id, resume, "stream management enabled");
        Some(enabled)
    }

    /// XEP-0198 §4: the client's `<a h/>`.
    fn handle_sm_ack(&mut self, e: &Element) -> Result<Flow, StreamError> {
        let Some(b) = self.bound.as_deref_mut() else {
            return Ok(Flow::Continue);
        };
        let Some(h) = e.attr("h").and_then(|h| h.trim().parse::<u32>().ok()) else {
            return Err(StreamError::new(StreamErrorCondition::InvalidXml)
                .with_text("<a/> needs an 'h' between 0 and 4294967295"));
        };
        match b.ack(h) {
            Ack::Acked(_) => Ok(Flow::Continue),
            Ack::TooHigh(sent) => Err(too_high(h, sent)),
        }
    }

    /// XEP-0198 §5: `<resume previd h/>` instead of binding: take the session over from the
    /// connection (or the detached task) holding it, acknowledge what the client received,
    /// answer `<resumed/>` and send again what it did not.
    async fn handle_sm_resume(&mut self, e: &Element) -> Result<Flow, StreamError> {
        match self.resume_session(e).await? {
            Ok(resumed) => {
                self.framing.write_element(&resumed, &mut self.out);
                self.after_resumption().await;
            }
            Err(failed) => self.framing.write_element(&failed, &mut self.out),
        }
        Ok(Flow::Continue)
    }

    /// What follows `<resumed/>` (on its own or inside SASL2's `<success/>`): the stanzas the
    /// client had not acknowledged (written as they were on an XML stream, framed anew on a
    /// WebSocket), and the news for modules.
    async fn after_resumption(&mut self) {
        let Some(b) = self.bound.as_deref() else {
            return;
        };
        for stanza in b.unacked.stanzas() {
            self.framing.write_kept(stanza, &mut self.out);
        }
        let (jid, retransmit) = (b.jid.clone(), b.unacked.len());
        tracing::info!(id = self.id, %jid, retransmit, "session resumed");
        self.shared.router.emit(Event::Resumed(jid)).await;
    }

    /// Takes over the session `e` (`<resume previd h/>`) names (XEP-0198 §5, or inside SASL2,
    /// §9.2): `Ok(<resumed/>)` with the session now this connection's, or `Ok(<failed/>)`.
    async fn resume_session(
        &mut self,
        e: &Element,
    ) -> Result<Result<Element, Element>, StreamError> {
        let Some(account) = self.account.clone() else {
            return Err(StreamError::new(StreamErrorCondition::NotAuthorized));
        };
        if self.bound.is_some() {
            return Ok(Err(Self::sm_failed(
                StanzaErrorCondition::UnexpectedRequest,
                None,
                "a resource is already bound on this stream",
            )));
        }
        let (Some(previd), Some(h)) = (
            e.attr("previd"),
            e.attr("h").and_then(|h| h.trim().parse::<u32>().ok()),
        ) else {
            return Ok(Err(Self::sm_failed(
                StanzaErrorCondition::BadRequest,
                None,
                "<resume/> needs 'previd' and 'h'",
            )));
        };
        let answer = match self.shared.resumptions.request(previd, &account) {
            Lookup::Pending(answer) => answer,
            Lookup::Gone(handled) => {
                return Ok(Err(Self::sm_failed(
                    StanzaErrorCondition::ItemNotFound,
                    Some(handled),
                    "the session has ended",
                )));
            }
            Lookup::Unknown => {
                return Ok(Err(Self::sm_failed(
                    StanzaErrorCondition::ItemNotFound,
                    None,
                    "unknown session",
                )));
            }
        };
        let session = tokio::time::timeout(TAKEOVER_TIMEOUT, answer)
            .await
            .ok()
            .and_then(Result::ok);
        let Some(mut session) = session else {
            // It ended meanwhile.
            let handled = self.shared.resumptions.ended_at(previd, &account);
            return Ok(Err(Self::sm_failed(
                StanzaErrorCondition::ItemNotFound,
                handled,
                "the session has ended",
            )));
        };
        session.handle.set_detached(false);
        session.handle.set_peer(self.peer);
        let ack = session.ack(h);
        let inbound = session.sm.as_deref().map_or(0, |sm| sm.inbound);
        let retransmit = session.unacked.len();
        if let Some(sm) = session.sm.as_deref_mut() {
            // What is sent again counts toward the next request, as if sent now.
            sm.requested = None;
            sm.since_request = u32::try_from(retransmit).unwrap_or(u32::MAX);
        }
        self.bound = Some(session);
        self.phase = Phase::Bound;
        if let Ack::TooHigh(sent) = ack {
            // The session is ours now, and ends with this stream.
            return Err(too_high(h, sent));
        }
        starling_metrics::sm_resumed();
        Ok(Ok(Element::new("resumed", ns::SM)
            .with_attr("previd", previd)
            .with_attr("h", inbound.to_string())))
    }

    // ----- Output -----

    /// Writes `out`; a request to close interrupts a blocked write. What was written leaves
    /// `in_flight`; after a failure it stays there, for [`finish`](Self::finish) to route again.
    async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.shared.settings.write_timeout;
        let res = {
            let out = self.out.as_bytes();
            let write = async {
                io.write_all(out).await?;
                io.flush().await
            };
            tokio::select! {
                biased;
                r = tokio::time::timeout(timeout, write) => Some(r),
                w = interrupt(self.bound.as_deref()) => {
                    self.resume_requested = matches!(w, Wake::Resume);
                    None
                }
            }
        };
        self.release_out();
        match res {
            Some(Ok(Ok(()))) => {
                if let Some(b) = self.bound.as_deref_mut() {
                    b.write_completed();
                }
                Ok(())
            }
            None => {
                tracing::debug!(id = self.id, "write interrupted: the session is closing");
                Err(Stop::CloseRequested)
            }
            Some(Ok(Err(e))) => {
                tracing::debug!(id = self.id, error = %e, "write failed");
                Err(Stop::Gone)
            }
            Some(Err(_)) => {
                tracing::debug!(id = self.id, "write timed out");
                Err(Stop::Gone)
            }
        }
    }

    fn release_out(&mut self) {
        self.out.clear();
        if self.out.capacity() > KEEP_OUT_CAPACITY {
            // Do not keep a large buffer around after a large stanza: idle sessions hold at most
            // this much for output.
            self.out = String::new();
        }
    }

    /// Sends a stream error (after our header if none was sent, RFC 6120 §4.9.1.1), closes the
    /// stream and the connection.
    async fn fail<S: AsyncWrite + Unpin>(&mut self, io: &mut S, err: StreamError) -> Flow {
        tracing::debug!(id = self.id, peer = %self.peer, error = %err, "closing stream with error");
        if !self.header_sent {
            self.write_header(None);
        }
        self.framing.write_element(&err.to_element(), &mut self.out);
        self.framing.write_closing(&mut self.out);
        // Not interruptible (the session is closing already), and briefly: a peer that does
        // not read must not hold the session for the whole write timeout.
        let write = async {
            io.write_all(self.out.as_bytes()).await?;
            io.flush().await
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, write).await.is_err() {
            tracing::debug!(
                id = self.id,
                "the closing stream error could not be written in time"
            );
        }
        self.release_out();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
        Flow::Close
    }
}

thread_local! {
    /// The worker thread's read buffer: sessions read into it and keep only a copy of what
    /// arrived, so an idle session holds no read buffer at all.
    static READ_BUF: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// Reads what the socket has (at most the rate limiter's allowance) through the thread's buffer
/// and returns a copy sized to it; empty at end of stream. The buffer is borrowed only inside one
/// poll, never across an await, so tasks moving between worker threads are fine.
async fn read_pooled<S: AsyncRead + Unpin>(
    io: &mut S,
    limiter: &mut RateLimiter,
) -> std::io::Result<Vec<u8>> {
    let allowed = limiter.allowance(READ_CHUNK).clamp(1, READ_CHUNK);
    let data = std::future::poll_fn(|cx| {
        READ_BUF.with_borrow_mut(|buf| {
            let mut rb = tokio::io::ReadBuf::new(&mut buf[..allowed]);
            match std::pin::Pin::new(&mut *io).poll_read(cx, &mut rb) {
                std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(rb.filled().to_vec())),
                std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => std::task::Poll::Pending,
            }
        })
    })
    .await?;
    limiter.consume(data.len());
    Ok(data)
}

fn preauth_limits(shared: &C2sShared) -> Limits {
    Limits {
        max_stanza_bytes: shared.settings.preauth_max_stanza_size,
        max_elements: shared.settings.preauth_max_elements,
        ..Limits::PREAUTH
    }
}

fn postauth_limits(shared: &C2sShared) -> Limits {
    let s = &shared.settings;
    Limits {
        max_stanza_bytes: s.max_stanza_size,
        max_elements: s.max_elements,
        max_attributes_per_element: s.max_attributes_per_element,
        max_attributes: s.max_attributes,
        max_namespace_declarations: s.max_namespace_declarations,
        ..Limits::DEFAULT
    }
}

/// XEP-0478 stream limits advertisement.
fn limits_feature(max_bytes: usize) -> Element {
    Element::new("limits", ns::STREAM_LIMITS)
        .with_child(Element::new("max-bytes", ns::STREAM_LIMITS).with_text(max_bytes.to_string()))
}

/// RFC 6120 §6.4.2: no text is "no data"; `=` is an empty response.
fn decode_sasl_payload(text: &str) -> Result<Option<Vec<u8>>, ()> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t == "=" {
        return Ok(Some(Vec::new()));
    }
    B64.decode(t).map(Some).map_err(|_| ())
}

fn encode_sasl_payload(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_owned()
    } else {
        B64.encode(data)
    }
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn normalise_domain(d: &str) -> String {
    let d = d.trim_end_matches('.');
    match BareJid::new(d) {
        Ok(j) if j.node().is_none() => j.domain().as_str().to_owned(),
        _ => d.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_payload_encoding() {
        assert_eq!(decode_sasl_payload(""), Ok(None));
        assert_eq!(decode_sasl_payload(" \n"), Ok(None));
        assert_eq!(decode_sasl_payload("="), Ok(Some(vec![])));
        assert_eq!(decode_sasl_payload("AGE="), Ok(Some(vec![0, b'a'])));
        assert_eq!(decode_sasl_payload("!!"), Err(()));
        assert_eq!(encode_sasl_payload(b""), "=");
        assert_eq!(encode_sasl_payload(b"\0a"), "AGE=");
    }

    /// The size of the future an async method returns, without calling it.
    fn future_size<'a, A: 'a, Fut>(_f: impl FnOnce(&'a mut Connection, A) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn the_per_read_future_fits_the_allocators_cache() {
        // `run` boxes `process` once per read; above 1032 bytes glibc serves it from its slow
        // path (see `run`). Measured 768 bytes; the login steps and the router are boxed inside.
        let size = future_size(Connection::process);
        assert!(size <= 1024, "process() is {size} bytes");
        let stanza = future_size(Connection::handle_stanza);
        assert!(stanza <= 512, "handle_stanza() is {stanza} bytes");
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("1.0"), Some((1, 0)));
        assert_eq!(parse_version("2.13"), Some((2, 13)));
        assert_eq!(parse_version("1"), None);
        assert_eq!(parse_version("x.y"), None);
    }

    #[test]
    fn domains_are_normalised() {
        assert_eq!(normalise_domain("LocalHost."), "localhost");
        assert_eq!(normalise_domain("example.org"), "example.org");
    }
}
