//! The connecting side (RFC 6120 §4–§6 as the initiating entity; XEP-0220 as the originating
//! server; XEP-0288 bidi; XEP-0368 direct TLS).
//!
//! One task per (local domain, remote domain) route: it connects (every target of
//! [`Resolver::targets`] in order, every address of each), encrypts (direct TLS with ALPN
//! `xmpp-server`, or STARTTLS — required unless `require_tls` is off), asks for bidi when
//! offered, authenticates with SASL EXTERNAL when offered (our certificate for the local
//! domain), else with dialback, and then writes the queued stanzas in order. Failures before
//! that bounce what waits; a connection that breaks later is opened again while stanzas wait.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::ClientConfig;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use starling_module_api::Context;
use starling_net::TlsManager;
use starling_proto::element::Ns;
use starling_proto::{Element, Jid, StanzaErrorCondition, StreamError, StreamErrorCondition, ns};
use starling_stream::{Frame, Limits, StreamHeader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::dialback;
use crate::resolve::Target;
use crate::verify::{CertProblem, Trust};
use crate::xml_stream::{ReadEnd, XmlStream};
use crate::{ALPN_XMPP_SERVER, Direction, LinkInfo, Shared};

/// TCP connect timeout per address.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Stanzas written in one go.
const WRITE_BATCH: usize = 64 * 1024;

/// Why a connection could not be made or authenticated, in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What the queued stanzas are answered with.
    pub condition: StanzaErrorCondition,
    /// Why, for the log and for `check-federation`.
    pub reason: String,
}

impl Failure {
    fn not_found(reason: impl Into<String>) -> Self {
        Failure {
            condition: StanzaErrorCondition::RemoteServerNotFound,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

/// The client side of TLS: any server certificate passes the handshake (judged afterwards by
/// [`Trust::check`]); we present `local`'s certificate for SASL EXTERNAL.
pub(crate) fn client_config(
    tls: &Arc<TlsManager>,
    trust: &Trust,
    local: &str,
    alpn: bool,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(tls.provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap_or_else(|_| unreachable!("ring supports the default versions"))
        .dangerous()
        .with_custom_certificate_verifier(trust.server_verifier())
        .with_client_cert_resolver(Arc::new(OwnCertificate {
            tls: Arc::clone(tls),
            domain: local.to_owned(),
        }));
    if alpn {
        config.alpn_protocols = vec![ALPN_XMPP_SERVER.to_vec()];
    }
    Arc::new(config)
}

/// Our certificate for one local domain, as served now (reloads and ACME renewals included).
#[derive(Debug)]
struct OwnCertificate {
    tls: Arc<TlsManager>,
    domain: String,
}

impl ResolvesClientCert for OwnCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.tls.certified_key(&self.domain)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A connection whose stream is open and whose features are read, before authentication.
pub(crate) struct Opened {
    pub(crate) stream: XmlStream,
    pub(crate) peer: SocketAddr,
    pub(crate) target: Target,
    /// The receiving server's stream id (the dialback key covers it).
    pub(crate) stream_id: String,
    pub(crate) features: Element,
    /// The peer's certificate judged for the remote domain (`Err` without TLS too).
    pub(crate) certificate: Result<(), CertProblem>,
}

/// How a connection was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// RFC 6120 §6 with our certificate.
    SaslExternal,
    /// XEP-0220.
    Dialback,
}

impl AuthMethod {
    /// As `s2s list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::SaslExternal => "SASL EXTERNAL",
            AuthMethod::Dialback => "dialback",
        }
    }
}

/// Connects to `remote` for `local`: the first target and address that answers, encrypted, the
/// stream open and its features read.
pub(crate) async fn open(shared: &Shared, local: &str, remote: &str) -> Result<Opened, Failure> {
    let targets = shared
        .resolver
        .targets(remote)
        .await
        .map_err(|e| Failure::not_found(e.to_string()))?;
    let mut last = Failure::not_found(format!("{remote}: no address to connect to"));
    for target in targets {
        let addrs = match shared.resolver.addresses(&target).await {
            Ok(a) => a,
            Err(e) => {
                last = Failure::not_found(e.to_string());
                continue;
            }
        };
        for addr in addrs {
            match open_at(shared, local, remote, &target, addr).await {
                Ok(opened) => return Ok(opened),
                Err(f) => {
                    tracing::debug!(%remote, %addr, reason = %f, "s2s connection attempt failed");
                    last = f;
                }
            }
        }
    }
    Err(last)
}

/// [`open`] at one address.
pub(crate) async fn open_at(
    shared: &Shared,
    local: &str,
    remote: &str,
    target: &Target,
    addr: SocketAddr,
) -> Result<Opened, Failure> {
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            return Err(Failure::not_found(format!(
                "{}: {}",
                place(target, addr),
                connect_error(&e)
            )));
        }
        Err(_) => {
            return Err(Failure {
                condition: StanzaErrorCondition::RemoteServerTimeout,
                reason: format!(
                    "{}: no answer to the TCP connection in {} s (a firewall dropping packets?)",
                    place(target, addr),
                    CONNECT_TIMEOUT.as_secs()
                ),
            });
        }
    };
    let limits = Limits {
        max_stanza_bytes: shared.settings.max_stanza_size,
        ..Limits::DEFAULT
    };
    let mut stream = XmlStream::new(tcp, limits);
    let name = ServerName::try_from(remote.to_owned())
        .map_err(|_| Failure::not_found(format!("{remote} is not a domain name")))?;
    let here = |what: String| Failure::not_found(format!("{}: {what}", place(target, addr)));
    if target.direct_tls {
        stream
            .connect_tls(shared.client_config(local, true), name.clone())
            .await
            .map_err(|e| here(format!("TLS handshake failed: {e}")))?;
    }
    let (mut header, mut features) = exchange_headers(&mut stream, local, remote)
        .await
        .map_err(&here)?;
    if !stream.is_tls() {
        if features.has_child("starttls", ns::TLS) {
            stream.send(&Element::new("starttls", ns::TLS));
            flush(&mut stream).await.map_err(&here)?;
            match stream.next().await {
                Ok(Frame::Element(e)) if e.is("proceed", ns::TLS) => {}
                Ok(Frame::Element(e)) if e.is("failure", ns::TLS) => {
                    return Err(here("the peer refused STARTTLS (<failure/>)".to_owned()));
                }
                other => return Err(here(format!("no answer to STARTTLS ({})", describe(other)))),
            }
            stream
                .connect_tls(shared.client_config(local, false), name)
                .await
                .map_err(|e| here(format!("TLS handshake failed: {e}")))?;
            (header, features) = exchange_headers(&mut stream, local, remote)
                .await
                .map_err(&here)?;
        } else if shared.settings.require_tls {
            let err = StreamError::new(StreamErrorCondition::PolicyViolation)
                .with_text("TLS is required");
            stream.close(Some(&err), (Some(local), Some(remote))).await;
            return Err(here(
                "the peer does not offer STARTTLS, and this server requires encryption ([s2s] require_tls)".to_owned(),
            ));
        }
    }
    let certificate = if stream.is_tls() {
        shared.trust.check(&stream.peer_certificates(), remote)
    } else {
        Err(CertProblem::None)
    };
    let stream_id = header.id.take().unwrap_or_default();
    Ok(Opened {
        stream,
        peer: addr,
        target: target.clone(),
        stream_id,
        features,
        certificate,
    })
}

/// Where a connection goes, for messages: the target, and the address when it is not the
/// target's own (`xmpp.example.org:5269 (STARTTLS, SRV …) at 192.0.2.1:5269`).
pub(crate) fn place(target: &Target, addr: SocketAddr) -> String {
    if target.host == addr.ip().to_string() && target.port == addr.port() {
        target.to_string()
    } else {
        format!("{target} at {addr}")
    }
}

fn connect_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (no XMPP server listening there)".to_owned()
        }
        io::ErrorKind::TimedOut => "connection timed out".to_owned(),
        _ => e.to_string(),
    }
}

fn describe(r: Result<Frame, ReadEnd>) -> String {
    match r {
        Ok(Frame::Element(e)) => format!("<{}/> instead", e.name()),
        Ok(Frame::Header(_)) => "a second stream header".to_owned(),
        Ok(Frame::Close) => "the peer closed the stream".to_owned(),
        Err(ReadEnd::Closed) => "the connection closed".to_owned(),
        Err(ReadEnd::Error(e)) => format!("invalid XML: {e}"),
    }
}

async fn flush(stream: &mut XmlStream) -> Result<(), String> {
    stream
        .flush()
        .await
        .map_err(|e| format!("write failed: {e}"))
}

/// Sends our header and reads the peer's header and features.
async fn exchange_headers(
    stream: &mut XmlStream,
    local: &str,
    remote: &str,
) -> Result<(StreamHeader, Element), String> {
    stream.send_header(Some(local), Some(remote), None);
    flush(stream).await?;
    let header = match stream.next().await {
        Ok(Frame::Header(h)) => h,
        other => return Err(format!("no stream header ({})", describe(other))),
    };
    if header.version.as_deref() != Some("1.0") {
        // A pre-RFC 6120 server (no features, dialback only): treated as one without TLS.
        return Ok((header, Element::new("features", ns::STREAM)));
    }
    match stream.next().await {
        Ok(Frame::Element(e)) if e.is("features", ns::STREAM) => Ok((header, e)),
        Ok(Frame::Element(e)) if e.is("error", ns::STREAM) => Err(format!(
            "the peer closed the stream: {}",
            stream_error_text(&e)
        )),
        other => Err(format!("no stream features ({})", describe(other))),
    }
}

/// `<stream:error>`'s condition and text, for a log line.
pub(crate) fn stream_error_text(e: &Element) -> String {
    let condition = e
        .children()
        .find(|c| c.ns() == ns::STREAMS && c.name() != "text")
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| "undefined-condition".to_owned());
    match e.get_child("text", ns::STREAMS).map(Element::text) {
        Some(t) if !t.is_empty() => format!("<{condition}/> ({t})"),
        _ => format!("<{condition}/>"),
    }
}

/// An authenticated outbound connection.
pub(crate) struct Established {
    pub(crate) stream: XmlStream,
    pub(crate) peer: SocketAddr,
    pub(crate) method: AuthMethod,
    pub(crate) bidi: bool,
}

/// Bidi (when offered), then SASL EXTERNAL (when offered), else dialback.
pub(crate) async fn authenticate(
    shared: &Shared,
    opened: Opened,
    local: &str,
    remote: &str,
) -> Result<Established, Failure> {
    authenticate_with(shared, opened, local, remote, true).await
}

/// [`authenticate`], with SASL EXTERNAL left out when `try_external` is false (for
/// `check-federation`, which tries dialback on its own too).
pub(crate) async fn authenticate_with(
    shared: &Shared,
    mut opened: Opened,
    local: &str,
    remote: &str,
    try_external: bool,
) -> Result<Established, Failure> {
    let here = |what: String| {
        Failure::not_found(format!("{}: {what}", place(&opened.target, opened.peer)))
    };
    let stream = &mut opened.stream;
    let mut bidi = false;
    if opened.features.has_child("bidi", "urn:xmpp:features:bidi") {
        stream.send(&Element::new("bidi", "urn:xmpp:bidi"));
        bidi = true;
    }
    let external = opened
        .features
        .get_child("mechanisms", ns::SASL)
        .is_some_and(|m| {
            m.children()
                .any(|c| c.name() == "mechanism" && c.text().trim() == "EXTERNAL")
        });
    let mut why_not_external = None;
    if try_external && external && shared.tls.certified_key(local).is_some() {
        // RFC 6120 §6.4.2 with the authorization identity our domain (XEP-0178 §3).
        let authzid = base64::engine::general_purpose::STANDARD.encode(local);
        stream.send(
            &Element::new("auth", ns::SASL)
                .with_attr("mechanism", "EXTERNAL")
                .with_text(authzid),
        );
        flush(stream).await.map_err(&here)?;
        match stream.next().await {
            Ok(Frame::Element(e)) if e.is("success", ns::SASL) => {
                stream.restart();
                let (_, features) = exchange_headers(stream, local, remote)
                    .await
                    .map_err(&here)?;
                let _ = features;
                return Ok(Established {
                    stream: opened.stream,
                    peer: opened.peer,
                    method: AuthMethod::SaslExternal,
                    bidi,
                });
            }
            Ok(Frame::Element(e)) if e.is("failure", ns::SASL) => {
                let condition = e
                    .children()
                    .find(|c| c.name() != "text")
                    .map(|c| c.name().to_owned())
                    .unwrap_or_default();
                let text = e
                    .get_child("text", ns::SASL)
                    .map(Element::text)
                    .unwrap_or_default();
                why_not_external = Some(format!(
                    "SASL EXTERNAL refused (<{condition}/>{})",
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    }
                ));
                tracing::info!(%local, %remote, peer = %opened.peer, reason = why_not_external.as_deref().unwrap_or_default(), "s2s SASL EXTERNAL refused (outbound); trying dialback");
            }
            other => {
                return Err(here(format!(
                    "no answer to SASL EXTERNAL ({})",
                    describe(other)
                )));
            }
        }
    }
    let dialback_offered = opened.features.has_child("dialback", dialback::FEATURE_NS)
        // A server that announces dialback only by declaring its namespace (RFC 3920 era).
        || opened.features.children().next().is_none();
    if !shared.settings.dialback || !dialback_offered {
        let mut reason = why_not_external.unwrap_or_else(|| {
            if external {
                "SASL EXTERNAL is offered but this server has no certificate for the domain"
                    .to_owned()
            } else {
                "the peer offers neither SASL EXTERNAL nor dialback".to_owned()
            }
        });
        if !shared.settings.dialback {
            reason.push_str("; dialback is off here ([s2s] dialback)");
        }
        return Err(here(reason));
    }
    // XEP-0220 §2.1: our key for this stream.
    let key = shared.keys.key(remote, local, &opened.stream_id);
    stream.send(&dialback::result_request(local, remote, &key));
    flush(stream).await.map_err(&here)?;
    loop {
        match stream.next().await {
            Ok(Frame::Element(e)) if e.is("result", dialback::NS) => {
                if e.attr("from") != Some(remote) || e.attr("to") != Some(local) {
                    continue;
                }
                return match e.attr("type") {
                    Some("valid") => Ok(Established {
                        stream: opened.stream,
                        peer: opened.peer,
                        method: AuthMethod::Dialback,
                        bidi,
                    }),
                    Some("invalid") => Err(here(format!(
                        "dialback refused: {remote} could not verify our key with this server (is this server reachable from there on port 5269 under {local}?)"
                    ))),
                    _ => {
                        let condition = e
                            .get_child("error", ns::SERVER)
                            .or_else(|| e.get_child("error", ns::CLIENT))
                            .and_then(|err| err.children().find(|c| c.ns() == ns::STANZAS))
                            .map(|c| c.name().to_owned())
                            .unwrap_or_else(|| "no condition".to_owned());
                        Err(here(format!("dialback error <{condition}/>")))
                    }
                };
            }
            Ok(Frame::Element(e)) if e.is("error", ns::STREAM) => {
                return Err(here(format!(
                    "the peer closed the stream: {}",
                    stream_error_text(&e)
                )));
            }
            // Anything else before the answer (a db:verify of another pair) is not ours.
            Ok(Frame::Element(_)) => continue,
            other => return Err(here(format!("no dialback answer ({})", describe(other)))),
        }
    }
}

/// The route's task: connect, authenticate, write; bounce on failure; reconnect while stanzas
/// wait after a connection ended.
pub(crate) async fn run(
    shared: Arc<Shared>,
    local: String,
    remote: String,
    route_id: u64,
    mut rx: mpsc::Receiver<Element>,
) {
    let Some(ctx) = shared.ctx().cloned() else {
        return;
    };
    let mut pending: Option<Element> = None;
    loop {
        let attempt = async {
            let opened = open(&shared, &local, &remote).await?;
            authenticate(&shared, opened, &local, &remote).await
        };
        let established = tokio::select! {
            r = tokio::time::timeout(shared.settings.connect_timeout, attempt) => match r {
                Ok(r) => r,
                Err(_) => Err(Failure {
                    condition: StanzaErrorCondition::RemoteServerTimeout,
                    reason: format!(
                        "no authenticated connection to {remote} within {} s",
                        shared.settings.connect_timeout.as_secs()
                    ),
                }),
            },
            _ = shared.shutdown.cancelled() => Err(Failure {
                condition: StanzaErrorCondition::RemoteServerTimeout,
                reason: "the server is shutting down".to_owned(),
            }),
        };
        let established = match established {
            Ok(e) => e,
            Err(failure) => {
                tracing::warn!(%local, %remote, reason = %failure, "cannot reach the remote server; bouncing its queued stanzas");
                shared.remove_route(&local, &remote, route_id);
                rx.close();
                if let Some(s) = pending.take() {
                    crate::bounce(&ctx, &s, failure.condition).await;
                }
                while let Ok(s) = rx.try_recv() {
                    crate::bounce(&ctx, &s, failure.condition).await;
                }
                return;
            }
        };
        tracing::info!(%local, %remote, peer = %established.peer, auth = established.method.as_str(), bidi = established.bidi, "s2s connection established (outbound)");
        let link = shared.next_id();
        shared.link_open(
            link,
            LinkInfo {
                direction: Direction::Outbound,
                peer: Some(established.peer),
                local: local.clone(),
                remote: vec![remote.clone()],
                auth: established.method.as_str().to_owned(),
                tls: established.stream.is_tls(),
                bidi: established.bidi,
                queued: 0,
                age_secs: 0,
            },
            None,
        );
        let end = pump(
            &shared,
            &ctx,
            established,
            &local,
            &remote,
            &mut rx,
            &mut pending,
        )
        .await;
        shared.link_close(link);
        match end {
            PumpEnd::Shutdown | PumpEnd::Idle => {
                shared.remove_route(&local, &remote, route_id);
                // What arrived meanwhile takes a new route.
                rx.close();
                while let Ok(s) = rx.try_recv() {
                    if let Some((l, r)) = crate::pair(&s) {
                        shared.enqueue(&ctx, l, r, s).await;
                    }
                }
                return;
            }
            PumpEnd::Broken => {
                if pending.is_none() && rx.is_empty() {
                    shared.remove_route(&local, &remote, route_id);
                    rx.close();
                    while let Ok(s) = rx.try_recv() {
                        if let Some((l, r)) = crate::pair(&s) {
                            shared.enqueue(&ctx, l, r, s).await;
                        }
                    }
                    return;
                }
                tracing::info!(%local, %remote, "s2s connection lost with stanzas waiting; reconnecting");
            }
        }
    }
}

enum PumpEnd {
    Shutdown,
    Idle,
    Broken,
}

async fn pump(
    shared: &Shared,
    ctx: &Context,
    established: Established,
    local: &str,
    remote: &str,
    rx: &mut mpsc::Receiver<Element>,
    pending: &mut Option<Element>,
) -> PumpEnd {
    let mut stream = established.stream;
    let server_ns = Ns::from_static(ns::SERVER);
    let client_ns = Ns::from_static(ns::CLIENT);
    let write = |stream: &mut XmlStream, mut s: Element| {
        s.rename_ns(ns::CLIENT, &server_ns);
        stream.send(&s);
    };
    if let Some(s) = pending.take() {
        write(&mut stream, s);
    }
    let idle = shared.settings.idle_timeout;
    loop {
        if stream.flush().await.is_err() {
            return PumpEnd::Broken;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => {
                let err = StreamError::new(StreamErrorCondition::SystemShutdown);
                stream.close(Some(&err), (Some(local), Some(remote))).await;
                return PumpEnd::Shutdown;
            }
            _ = tokio::time::sleep(idle) => {
                tracing::debug!(%local, %remote, "idle s2s connection closed (outbound)");
                stream.close(None, (None, None)).await;
                return PumpEnd::Idle;
            }
            s = rx.recv() => {
                let Some(s) = s else { return PumpEnd::Shutdown; };
                write(&mut stream, s);
                while stream.out.len() < WRITE_BATCH && let Ok(more) = rx.try_recv() {
                    write(&mut stream, more);
                }
            }
            frame = stream.next() => match frame {
                Ok(Frame::Element(mut e)) => {
                    if matches!(e.name(), "message" | "presence" | "iq") && e.ns() == ns::SERVER {
                        if !established.bidi {
                            let err = StreamError::new(StreamErrorCondition::UnsupportedStanzaType)
                                .with_text("stanzas go on a stream of their own unless bidi was negotiated");
                            stream.close(Some(&err), (None, None)).await;
                            return PumpEnd::Broken;
                        }
                        // XEP-0288: from the remote domain to ours only.
                        let from_ok = e.attr("from").and_then(|f| Jid::new(f).ok())
                            .is_some_and(|j| j.domain().as_str() == remote);
                        let to_ok = e.attr("to").and_then(|t| Jid::new(t).ok())
                            .is_some_and(|j| j.domain().as_str() == local);
                        if !from_ok || !to_ok {
                            let err = StreamError::new(StreamErrorCondition::InvalidFrom);
                            stream.close(Some(&err), (None, None)).await;
                            return PumpEnd::Broken;
                        }
                        e.rename_ns(ns::SERVER, &client_ns);
                        Box::pin(ctx.router.route(e)).await;
                    } else if e.is("error", ns::STREAM) {
                        tracing::info!(%local, %remote, error = %stream_error_text(&e), "the remote server closed the s2s stream");
                        stream.close(None, (None, None)).await;
                        return PumpEnd::Broken;
                    } else if e.is("verify", dialback::NS) {
                        // The peer checks a dialback key of ours on this (bidi) stream.
                        if let Some(answer) = shared.answer_verify(ctx, &e) {
                            stream.send(&answer);
                        }
                    }
                    // Anything else (whitespace pings are not frames; a late db:result) is ignored.
                }
                Ok(Frame::Close) => {
                    stream.close(None, (None, None)).await;
                    return PumpEnd::Broken;
                }
                Ok(Frame::Header(_)) | Err(ReadEnd::Error(_)) => {
                    let err = StreamError::new(StreamErrorCondition::NotWellFormed);
                    stream.close(Some(&err), (None, None)).await;
                    return PumpEnd::Broken;
                }
                Err(ReadEnd::Closed) => return PumpEnd::Broken,
            },
        }
    }
}

/// XEP-0220 §2.3 as the receiving server: asks `originating`'s authoritative server whether
/// `key` is the one it made for our stream `stream_id`, on a connection of its own.
pub(crate) async fn verify_key(
    shared: &Shared,
    receiving: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> Result<bool, Failure> {
    let mut opened = open(shared, receiving, originating).await?;
    let stream = &mut opened.stream;
    stream.send(&dialback::verify_request(
        receiving,
        originating,
        stream_id,
        key,
    ));
    flush(stream).await.map_err(Failure::not_found)?;
    let answer = loop {
        match stream.next().await {
            Ok(Frame::Element(e)) if e.is("verify", dialback::NS) => {
                if e.attr("id") == Some(stream_id) {
                    break e;
                }
            }
            Ok(Frame::Element(e)) if e.is("error", ns::STREAM) => {
                return Err(Failure::not_found(format!(
                    "{originating} closed the verification stream: {}",
                    stream_error_text(&e)
                )));
            }
            Ok(Frame::Element(_)) => {}
            other => {
                return Err(Failure::not_found(format!(
                    "no dialback verification from {originating} ({})",
                    describe(other)
                )));
            }
        }
    };
    stream.close(None, (None, None)).await;
    Ok(answer.attr("type") == Some("valid"))
}
