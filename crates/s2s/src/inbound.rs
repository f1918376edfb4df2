//! The listener side (RFC 6120 as the receiving entity; XEP-0220 as the receiving and the
//! authoritative server; XEP-0288 bidi; XEP-0368 direct TLS).
//!
//! 1. The peer's header must name a domain served here in `to` (else `<host-unknown/>`) and be
//!    in `jabber:server`. Our header answers with a fresh stream id.
//! 2. Features before TLS: `<starttls><required/></starttls>` (with `require_tls` off, dialback
//!    too). After TLS: SASL EXTERNAL when the peer's certificate verifies for the domain in its
//!    header's `from` (serverAuth or clientAuth usage: [`Trust::check`](crate::Trust::check)),
//!    dialback, bidi. After SASL: bidi only.
//! 3. `<db:result/>`: the pair (from, to) is checked — with the peer's certificate when it
//!    verifies for `from` (XEP-0344 §2.4: no callback needed), else by asking `from`'s
//!    authoritative server on a connection of its own (XEP-0220 §2.3). `<db:verify/>`: we are
//!    the authoritative server, and answer from our key (XEP-0185). Several pairs may be
//!    authenticated on one stream (XEP-0220 §2.6 piggybacking).
//! 4. Stanzas: only in `jabber:server`, only after authentication (`<not-authorized/>`), only
//!    from an authenticated domain (`<invalid-from/>`),
//!    only to a domain served here (`<host-unknown/>`); routed like anything the server makes.
//!    With bidi, this stream also carries our stanzas to the peer's domain.
//!
//! Anything in the wrong place closes the stream with the RFC 6120 §4.9.3 condition and a
//! `<text/>` saying why; every refusal is logged with the reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::ServerConfig;
use starling_module_api::{Context, random_id};
use starling_net::TlsManager;
use starling_proto::element::Ns;
use starling_proto::{Element, Jid, StanzaErrorCondition, StreamError, StreamErrorCondition, ns};
use starling_stream::{Frame, Limits};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::verify::{CertProblem, Trust};
use crate::xml_stream::{ReadEnd, XmlStream};
use crate::{ALPN_XMPP_SERVER, Direction, LinkInfo, Pairs, Shared, dialback, outbound};

/// From connect to an authenticated stream.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Limits before authentication (a stranger's stanzas are small: features, auth, db:*).
const PREAUTH: Limits = Limits {
    max_stanza_bytes: 16 * 1024,
    ..Limits::PREAUTH
};

/// The TLS server configuration of the s2s listener: the hosts' certificates by SNI (live, so
/// reloads and ACME renewals reach new handshakes), a client certificate asked for but not
/// required, ALPN `xmpp-server` selected when offered (XEP-0368).
pub(crate) fn server_config(tls: &Arc<TlsManager>, trust: &Trust) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(tls.provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap_or_else(|_| unreachable!("ring supports the default versions"))
        .with_client_cert_verifier(trust.client_verifier())
        .with_cert_resolver(tls.live_resolver());
    config.alpn_protocols = vec![ALPN_XMPP_SERVER.to_vec()];
    Arc::new(config)
}

struct Inbound {
    shared: Arc<Shared>,
    ctx: Context,
    stream: XmlStream,
    peer: SocketAddr,
    link: u64,
    /// This stream's id (the dialback keys cover it).
    id: String,
    /// The domain the peer's header named in `to` (ours).
    local: Option<String>,
    /// The domain the peer's header named in `from`.
    claimed: Option<String>,
    /// Authenticated (remote, local) pairs.
    pairs: Pairs,
    /// SASL EXTERNAL succeeded for this domain.
    sasl: Option<String>,
    bidi: bool,
    /// Our stanzas to the peer (bidi): the route's queue.
    out_tx: mpsc::Sender<Element>,
    out_rx: mpsc::Receiver<Element>,
    /// Routes this stream serves (bidi): (local, remote, route id).
    adopted: Vec<(String, String, u64)>,
    /// Dialback verifications under way report here.
    verdicts_tx: mpsc::Sender<Verdict>,
    verdicts_rx: mpsc::Receiver<Verdict>,
}

/// The outcome of one dialback check.
struct Verdict {
    remote: String,
    local: String,
    outcome: Result<bool, String>,
}

/// What ends the stream.
enum End {
    /// The peer closed or the connection broke: nothing to send.
    Quiet,
    /// The peer sent `</stream:stream>`: answer with ours.
    Closed,
    /// Close with this error.
    Error(StreamError),
}

/// Closes a connection over the limits: our header, `<policy-violation/>`, the end (RFC 6120
/// §4.9.1.1, §4.9.3.14). Sent without reading the peer's header, as for any stream error
/// before it.
pub(crate) async fn refuse(tcp: TcpStream, settings: &crate::S2sSettings) {
    let mut stream = XmlStream::new(tcp, PREAUTH);
    let err = StreamError::new(StreamErrorCondition::PolicyViolation).with_text(format!(
        "too many connections (at most {} from one address, {} in all)",
        settings.max_connections_per_ip, settings.max_connections
    ));
    stream.close(Some(&err), (None, None)).await;
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    direct_tls: bool,
) {
    let Some(ctx) = shared.ctx().cloned() else {
        return;
    };
    let (out_tx, out_rx) = mpsc::channel(shared.settings.queue_len.max(1));
    let (verdicts_tx, verdicts_rx) = mpsc::channel(16);
    let link = shared.next_id();
    let mut conn = Inbound {
        stream: XmlStream::new(tcp, PREAUTH),
        ctx,
        peer,
        link,
        id: random_id(),
        local: None,
        claimed: None,
        pairs: Pairs::new(),
        sasl: None,
        bidi: false,
        out_tx,
        out_rx,
        adopted: Vec::new(),
        verdicts_tx,
        verdicts_rx,
        shared,
    };
    conn.shared.link_open(
        link,
        LinkInfo {
            direction: Direction::Inbound,
            peer: Some(peer),
            local: String::new(),
            remote: Vec::new(),
            auth: "negotiating".to_owned(),
            tls: false,
            bidi: false,
            queued: 0,
            age_secs: 0,
        },
        Some(&conn.out_tx.clone()),
    );
    let end = conn.run(direct_tls).await;
    conn.finish(end).await;
}

impl Inbound {
    async fn run(&mut self, direct_tls: bool) -> End {
        if direct_tls {
            let config = self.shared.server_config();
            match tokio::time::timeout(NEGOTIATION_TIMEOUT, self.stream.accept_tls(config)).await {
                Ok(Ok(())) => self.shared.link_update(self.link, |l| l.tls = true),
                _ => {
                    tracing::debug!(peer = %self.peer, "s2s direct TLS handshake failed");
                    return End::Quiet;
                }
            }
        }
        let deadline = tokio::time::sleep(NEGOTIATION_TIMEOUT);
        tokio::pin!(deadline);
        let idle = self.shared.settings.idle_timeout;
        loop {
            if self.stream.flush().await.is_err() {
                return End::Quiet;
            }
            let authenticated = !self.pairs.is_empty();
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => {
                    return End::Error(StreamError::new(StreamErrorCondition::SystemShutdown));
                }
                _ = &mut deadline, if !authenticated => {
                    tracing::info!(peer = %self.peer, claimed = ?self.claimed, "s2s peer did not authenticate in time");
                    return End::Error(StreamError::new(StreamErrorCondition::ConnectionTimeout)
                        .with_text("not authenticated in time"));
                }
                _ = tokio::time::sleep(idle), if authenticated => {
                    tracing::debug!(peer = %self.peer, "idle s2s connection closed (inbound)");
                    return End::Closed;
                }
                Some(v) = self.verdicts_rx.recv() => {
                    if let Some(end) = self.verdict(v) {
                        return end;
                    }
                }
                Some(s) = self.out_rx.recv(), if self.bidi => {
                    self.write_stanza(s);
                    while self.stream.out.len() < 64 * 1024 && let Ok(more) = self.out_rx.try_recv() {
                        self.write_stanza(more);
                    }
                }
                frame = self.stream.next() => {
                    let frame = match frame {
                        Ok(f) => f,
                        Err(ReadEnd::Closed) => return End::Quiet,
                        Err(ReadEnd::Error(e)) => return End::Error(e),
                    };
                    let step = match frame {
                        Frame::Header(h) => self.header(h),
                        Frame::Element(e) => Box::pin(self.element(e)).await,
                        Frame::Close => Err(End::Closed),
                    };
                    if let Err(end) = step {
                        return end;
                    }
                }
            }
        }
    }

    fn write_stanza(&mut self, mut s: Element) {
        s.rename_ns(ns::CLIENT, &Ns::from_static(ns::SERVER));
        self.stream.send(&s);
    }

    /// A stream header: the first, or a restart after TLS or SASL.
    fn header(&mut self, h: starling_stream::StreamHeader) -> Result<(), End> {
        let Some(to) =
            h.to.as_deref()
                .and_then(|t| Jid::new(t).ok())
                .filter(|j| j.node().is_none() && j.resource().is_none())
        else {
            self.stream
                .send_header(None, h.from.as_deref(), Some(&self.id));
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("the stream header must name a domain of this server in 'to'"),
            ));
        };
        let to = to.domain().as_str().to_owned();
        if !self.shared.is_served(&self.ctx, &to) {
            tracing::info!(peer = %self.peer, %to, "s2s stream for a domain not served here");
            self.stream
                .send_header(None, h.from.as_deref(), Some(&self.id));
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text(format!("{to} is not served here")),
            ));
        }
        if self.local.as_ref().is_some_and(|l| *l != to) {
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("'to' changed at a stream restart"),
            ));
        }
        let from = h
            .from
            .as_deref()
            .and_then(|f| Jid::new(f).ok())
            .map(|j| j.domain().as_str().to_owned());
        self.local = Some(to.clone());
        self.claimed = from.clone().or(self.claimed.take());
        self.shared.link_update(self.link, |l| l.local = to.clone());
        self.stream
            .send_header(Some(&to), from.as_deref(), Some(&self.id));
        if h.version.as_deref() != Some("1.0") {
            // RFC 3920-era peer: no features; dialback only (and it cannot do TLS).
            if self.shared.settings.require_tls {
                return Err(End::Error(
                    StreamError::new(StreamErrorCondition::PolicyViolation)
                        .with_text("TLS is required: a stream of version 1.0 with STARTTLS"),
                ));
            }
            return Ok(());
        }
        let mut features = Element::new("features", ns::STREAM);
        if !self.stream.is_tls() {
            let mut starttls = Element::new("starttls", ns::TLS);
            if self.shared.settings.require_tls {
                starttls.append_child(Element::new("required", ns::TLS));
            }
            features.append_child(starttls);
            if !self.shared.settings.require_tls && self.shared.settings.dialback {
                features.append_child(dialback_feature());
            }
        } else if self.sasl.is_none() {
            if let Some(claimed) = &self.claimed
                && self.certificate_for(claimed).is_ok()
            {
                features.append_child(
                    Element::new("mechanisms", ns::SASL)
                        .with_child(Element::new("mechanism", ns::SASL).with_text("EXTERNAL")),
                );
            }
            if self.shared.settings.dialback {
                features.append_child(dialback_feature());
            }
            features.append_child(Element::new("bidi", "urn:xmpp:features:bidi"));
        } else {
            features.append_child(Element::new("bidi", "urn:xmpp:features:bidi"));
        }
        self.stream.send(&features);
        Ok(())
    }

    fn certificate_for(&self, domain: &str) -> Result<(), CertProblem> {
        self.shared
            .trust
            .check(&self.stream.peer_certificates(), domain)
    }

    async fn element(&mut self, e: Element) -> Result<(), End> {
        if self.local.is_none() {
            return Err(End::Error(StreamError::new(
                StreamErrorCondition::NotWellFormed,
            )));
        }
        match (e.ns(), e.name()) {
            (ns::TLS, "starttls") => self.starttls().await,
            (ns::SASL, "auth") => self.sasl_auth(&e),
            (dialback::NS, "result") => self.db_result(&e),
            (dialback::NS, "verify") => {
                self.db_verify(&e);
                Ok(())
            }
            ("urn:xmpp:bidi", "bidi") => {
                if !self.stream.is_tls() && self.shared.settings.require_tls {
                    return Err(End::Error(
                        StreamError::new(StreamErrorCondition::PolicyViolation)
                            .with_text("TLS first"),
                    ));
                }
                self.bidi = true;
                self.shared.link_update(self.link, |l| l.bidi = true);
                Ok(())
            }
            (ns::STREAM, "error") => {
                tracing::info!(peer = %self.peer, claimed = ?self.claimed, error = %outbound::stream_error_text(&e), "s2s peer closed its stream with an error");
                Err(End::Quiet)
            }
            (ns::SERVER, "message" | "presence" | "iq") => self.stanza(e).await,
            (ns::SERVER, _) => Err(End::Error(StreamError::new(
                StreamErrorCondition::UnsupportedStanzaType,
            ))),
            _ => Err(End::Error(
                StreamError::new(StreamErrorCondition::InvalidNamespace).with_text(format!(
                    "<{}/> in {} is not expected here",
                    e.name(),
                    e.ns()
                )),
            )),
        }
    }

    async fn starttls(&mut self) -> Result<(), End> {
        if self.stream.is_tls() {
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::PolicyViolation)
                    .with_text("TLS is on already"),
            ));
        }
        self.stream.send(&Element::new("proceed", ns::TLS));
        if self.stream.flush().await.is_err() {
            return Err(End::Quiet);
        }
        let config = self.shared.server_config();
        match tokio::time::timeout(NEGOTIATION_TIMEOUT, self.stream.accept_tls(config)).await {
            Ok(Ok(())) => {
                self.shared.link_update(self.link, |l| l.tls = true);
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::info!(peer = %self.peer, claimed = ?self.claimed, error = %e, "s2s TLS handshake failed");
                Err(End::Quiet)
            }
            Err(_) => Err(End::Quiet),
        }
    }

    /// RFC 6120 §6.4 with EXTERNAL (§13.7.1.2): the authorization identity, when given, must be
    /// the header's `from`; the certificate must verify for it.
    fn sasl_auth(&mut self, e: &Element) -> Result<(), End> {
        let failure = |condition: &str, text: String| {
            Element::new("failure", ns::SASL)
                .with_child(Element::new(condition, ns::SASL))
                .with_child(Element::new("text", ns::SASL).with_text(text))
        };
        if !self.stream.is_tls() || self.sasl.is_some() || e.attr("mechanism") != Some("EXTERNAL") {
            self.stream.send(&failure(
                "invalid-mechanism",
                "only EXTERNAL, once, after TLS".to_owned(),
            ));
            return Ok(());
        }
        let Some(claimed) = self.claimed.clone() else {
            self.stream.send(&failure(
                "not-authorized",
                "the stream header named no 'from'".to_owned(),
            ));
            return Ok(());
        };
        let text = e.text();
        let text = text.trim();
        let authzid = if text.is_empty() || text == "=" {
            claimed.clone()
        } else {
            match base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(a) => a,
                None => {
                    self.stream.send(&failure(
                        "incorrect-encoding",
                        "the authorization identity is not base64 UTF-8".to_owned(),
                    ));
                    return Ok(());
                }
            }
        };
        if !authzid.eq_ignore_ascii_case(&claimed) {
            self.stream.send(&failure(
                "invalid-authzid",
                format!("{authzid} is not the stream's 'from' ({claimed})"),
            ));
            return Ok(());
        }
        if let Err(problem) = self.certificate_for(&claimed) {
            let local = self.local.as_deref().unwrap_or_default();
            tracing::info!(peer = %self.peer, %local, remote = %claimed, reason = %problem, "s2s SASL EXTERNAL refused (inbound)");
            self.stream
                .send(&failure("not-authorized", problem.to_string()));
            return Ok(());
        }
        self.stream.send(&Element::new("success", ns::SASL));
        self.stream.restart();
        self.sasl = Some(claimed.clone());
        let local = self.local.clone().unwrap_or_default();
        self.authorize(claimed, local, "SASL EXTERNAL");
        Ok(())
    }

    /// XEP-0220 §2.2: a request to authenticate the pair (from, to).
    fn db_result(&mut self, e: &Element) -> Result<(), End> {
        if e.attr("type").is_some() {
            // An answer to nothing we asked on this stream (XEP-0288 §3: never act on it).
            return Ok(());
        }
        if !self.shared.settings.dialback
            || (!self.stream.is_tls() && self.shared.settings.require_tls)
        {
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::PolicyViolation).with_text(
                    if self.shared.settings.dialback {
                        "TLS first"
                    } else {
                        "dialback is off here"
                    },
                ),
            ));
        }
        let domain = |a: Option<&str>| {
            a.and_then(|d| Jid::new(d).ok())
                .filter(|j| j.node().is_none() && j.resource().is_none())
                .map(|j| j.domain().as_str().to_owned())
        };
        let (Some(remote), Some(local)) = (domain(e.attr("from")), domain(e.attr("to"))) else {
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::ImproperAddressing)
                    .with_text("<db:result/> needs 'from' and 'to' domains"),
            ));
        };
        if !self.shared.is_served(&self.ctx, &local) {
            // XEP-0220 §2.4: an error for this pair, the stream stays.
            self.stream.send(&dialback::error_answer(
                e,
                StanzaErrorCondition::ItemNotFound,
            ));
            return Ok(());
        }
        if self.pairs.contains(&(remote.clone(), local.clone())) {
            self.stream
                .send(&dialback::result_answer(&local, &remote, true));
            return Ok(());
        }
        // XEP-0344 §2.4: a certificate that verifies for the originating domain is proof
        // enough; no callback.
        if self.certificate_for(&remote).is_ok() {
            self.stream
                .send(&dialback::result_answer(&local, &remote, true));
            self.authorize(remote, local, "dialback (certificate)");
            return Ok(());
        }
        let key = e.text().trim().to_owned();
        let shared = Arc::clone(&self.shared);
        let tx = self.verdicts_tx.clone();
        let id = self.id.clone();
        self.shared.tracker.spawn(async move {
            let outcome = tokio::time::timeout(
                shared.settings.connect_timeout,
                outbound::verify_key(&shared, &local, &remote, &id, &key),
            )
            .await
            .map_err(|_| format!("{remote}'s authoritative server did not answer in time"))
            .and_then(|r| r.map_err(|f| f.reason));
            let _ = tx
                .send(Verdict {
                    remote,
                    local,
                    outcome,
                })
                .await;
        });
        Ok(())
    }

    fn verdict(&mut self, v: Verdict) -> Option<End> {
        match v.outcome {
            Ok(true) => {
                self.stream
                    .send(&dialback::result_answer(&v.local, &v.remote, true));
                self.authorize(v.remote, v.local, "dialback");
                None
            }
            Ok(false) => {
                tracing::warn!(peer = %self.peer, remote = %v.remote, local = %v.local, "s2s dialback key refused by the authoritative server");
                self.stream
                    .send(&dialback::result_answer(&v.local, &v.remote, false));
                // XEP-0220 §2.4: an invalid key ends the stream when nothing else is
                // authenticated on it.
                self.pairs.is_empty().then(|| {
                    End::Error(
                        StreamError::new(StreamErrorCondition::NotAuthorized)
                            .with_text("dialback key not valid"),
                    )
                })
            }
            Err(reason) => {
                tracing::warn!(peer = %self.peer, remote = %v.remote, local = %v.local, %reason, "s2s dialback verification failed");
                let mut request = Element::new("result", dialback::NS);
                request.set_attr("from", v.remote.as_str());
                request.set_attr("to", v.local.as_str());
                self.stream.send(&dialback::error_answer(
                    &request,
                    StanzaErrorCondition::RemoteServerNotFound,
                ));
                None
            }
        }
    }

    /// XEP-0220 §2.3.2: we are the authoritative server for `to`.
    fn db_verify(&mut self, e: &Element) {
        if let Some(answer) = self.shared.answer_verify(&self.ctx, e) {
            self.stream.send(&answer);
        }
    }

    fn authorize(&mut self, remote: String, local: String, method: &str) {
        tracing::info!(peer = %self.peer, %remote, %local, auth = method, bidi = self.bidi, "s2s connection established (inbound)");
        // Stanzas may be large from now on.
        self.stream.set_limits(Limits {
            max_stanza_bytes: self.shared.settings.max_stanza_size,
            ..Limits::DEFAULT
        });
        if self.bidi
            && let Some(id) = self
                .shared
                .adopt_route(&local, &remote, self.out_tx.clone())
        {
            self.adopted.push((local.clone(), remote.clone(), id));
        }
        self.pairs.insert((remote.clone(), local));
        let method = method.to_owned();
        self.shared.link_update(self.link, |l| {
            if !l.remote.contains(&remote) {
                l.remote.push(remote);
            }
            l.auth = method;
        });
    }

    /// RFC 6120 §4.9.3.10 and §10.4: only from authenticated domains, only to ours.
    async fn stanza(&mut self, mut e: Element) -> Result<(), End> {
        let from = e.attr("from").and_then(|f| Jid::new(f).ok());
        let to = e.attr("to").and_then(|t| Jid::new(t).ok());
        let (Some(from), Some(to)) = (from, to) else {
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::ImproperAddressing)
                    .with_text("stanzas between servers need 'from' and 'to'"),
            ));
        };
        let from_domain = from.domain().as_str();
        let to_domain = to.domain().as_str();
        if self.pairs.is_empty() {
            tracing::info!(peer = %self.peer, claimed = ?self.claimed, "s2s stanza before authentication");
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("authenticate first (SASL EXTERNAL or dialback)"),
            ));
        }
        if !self.pairs.iter().any(|(r, _)| r == from_domain) {
            tracing::info!(peer = %self.peer, from = %from_domain, "s2s stanza from a domain not authenticated on this stream");
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text(format!("{from_domain} is not authenticated on this stream")),
            ));
        }
        if !self.shared.is_served(&self.ctx, to_domain) {
            return Err(End::Error(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text(format!("{to_domain} is not served here")),
            ));
        }
        // Canonical addresses, as c2s and components write them.
        if e.attr("from") != Some(from.as_str()) {
            e.set_attr("from", from.as_str());
        }
        if e.attr("to") != Some(to.as_str()) {
            e.set_attr("to", to.as_str());
        }
        e.rename_ns(ns::SERVER, &Ns::from_static(ns::CLIENT));
        Box::pin(self.ctx.router.route(e)).await;
        Ok(())
    }

    async fn finish(&mut self, end: End) {
        for (local, remote, id) in std::mem::take(&mut self.adopted) {
            self.shared.remove_route(&local, &remote, id);
        }
        self.shared.link_close(self.link);
        let header = (self.local.clone(), self.claimed.clone());
        match end {
            End::Quiet => self.stream.close(None, (None, None)).await,
            End::Closed => self.stream.close(None, (None, None)).await,
            End::Error(err) => {
                tracing::debug!(peer = %self.peer, claimed = ?self.claimed, error = %err, "closing s2s stream");
                self.stream
                    .close(Some(&err), (header.0.as_deref(), header.1.as_deref()))
                    .await;
            }
        }
        // Our stanzas still queued here (bidi) take another route.
        self.out_rx.close();
        while let Ok(s) = self.out_rx.try_recv() {
            if let Some((l, r)) = crate::pair(&s) {
                self.shared.enqueue(&self.ctx, l, r, s).await;
            }
        }
    }
}

fn dialback_feature() -> Element {
    Element::new("dialback", dialback::FEATURE_NS)
        .with_child(Element::new("errors", dialback::FEATURE_NS))
}
