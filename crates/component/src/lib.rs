//! XEP-0114 external components: a service in its own process (a gateway, a bot framework, a MUC
//! or pubsub implementation) connects to the server, proves it knows the domain's shared secret,
//! and from then on receives every stanza addressed to its domain or to any JID at it, and sends
//! stanzas from that domain to anyone.
//!
//! # Procedure (XEP-0114 §3)
//! 1. The component opens `<stream:stream xmlns='jabber:component:accept' to='DOMAIN'>`. A
//!    domain with no configured secret is `<host-unknown/>`; another content namespace is
//!    `<invalid-namespace/>`.
//! 2. The server answers with its header and a fresh stream id, and waits (at most
//!    [`ComponentSettings::handshake_timeout`]) for `<handshake>` carrying the lowercase hex
//!    SHA-1 of the id followed by the secret; it compares in constant time. A wrong digest is
//!    `<not-authorized/>`, anything before the handshake `<not-authorized/>` too.
//! 3. `<handshake/>` (empty) confirms, and the domain is attached to the router's
//!    [`Components`](starling_module_api::Components). A domain already served by another
//!    connection is `<conflict/>` (the first connection keeps it).
//! 4. Stanzas flow. What the component sends must come from its domain (or a JID at it), or
//!    the stream ends with `<invalid-from/>` (RFC 6120 §4.9.3.10); it is moved from
//!    `jabber:component:accept` to `jabber:client` and routed like anything the server
//!    generates. What is addressed to the domain is moved the other way and written out.
//! 5. When the stream ends the domain is detached; stanzas still queued for it get
//!    `<service-unavailable/>` back (IQ requests and messages; presence is dropped).
//!
//! The queue towards a component is bounded ([`ComponentSettings::queue_len`]): a stanza that
//! does not fit is answered with `<resource-constraint/>` (type wait) instead of waiting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha1::Digest as _;
use starling_module_api::{ComponentHandler, Context, random_id};
use starling_proto::element::Ns;
use starling_proto::{Element, Jid, StanzaErrorCondition, StreamError, StreamErrorCondition, ns};
use starling_router::Router;
use starling_stream::{Decoder, Frame, Limits, StreamHeader};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Settings of the component listener.
#[derive(Clone, Debug)]
pub struct ComponentSettings {
    /// Component domain → shared secret.
    pub secrets: Vec<(String, String)>,
    /// Largest stanza a component may send.
    pub max_stanza_size: usize,
    /// Stanzas waiting to be written to one component.
    pub queue_len: usize,
    /// Time from connect to a completed handshake.
    pub handshake_timeout: Duration,
}

impl Default for ComponentSettings {
    fn default() -> Self {
        ComponentSettings {
            secrets: Vec::new(),
            max_stanza_size: 256 * 1024,
            queue_len: 1024,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

impl ComponentSettings {
    fn secret(&self, domain: &str) -> Option<&str> {
        self.secrets
            .iter()
            .find(|(d, _)| d == domain)
            .map(|(_, s)| s.as_str())
    }
}

/// What a component stream reads at once.
const READ_CHUNK: usize = 16 * 1024;
/// How long the closing stream error may take to write.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The handshake digest of XEP-0114 §3: lowercase hex SHA-1 of the stream id and the secret.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let digest = sha1::Sha1::digest(format!("{stream_id}{secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where stanzas for an attached component go: its connection's queue.
struct Link {
    tx: mpsc::Sender<Element>,
}

#[async_trait]
impl ComponentHandler for Link {
    async fn on_stanza(&self, ctx: &Context, stanza: Element) {
        if let Err(e) = self.tx.try_send(stanza) {
            let (stanza, condition) = match e {
                mpsc::error::TrySendError::Full(s) => (s, StanzaErrorCondition::ResourceConstraint),
                mpsc::error::TrySendError::Closed(s) => {
                    (s, StanzaErrorCondition::ServiceUnavailable)
                }
            };
            bounce(ctx, &stanza, condition).await;
        }
    }
}

/// Answers `stanza` with `condition` unless no answer is due (errors, results, presence).
async fn bounce(ctx: &Context, stanza: &Element, condition: StanzaErrorCondition) {
    let answer = match stanza.name() {
        "iq" => matches!(stanza.attr("type"), Some("get" | "set")),
        "message" => stanza.attr("type") != Some("error"),
        _ => false,
    };
    if answer {
        let err = starling_proto::StanzaError::new(condition);
        ctx.router
            .route(starling_proto::error_reply(stanza, &err))
            .await;
    }
}

/// Serves one component connection until it ends.
pub async fn handle_component_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    settings: Arc<ComponentSettings>,
    router: Arc<Router>,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let mut conn = Conn {
        tcp,
        peer,
        // One stream from header to end (no restart in XEP-0114), so one decoder with the
        // stanza limits; before the handshake the timeout bounds what a stranger can do, and
        // the listener belongs on loopback or a private network anyway.
        decoder: Decoder::new(Limits {
            max_stanza_bytes: settings.max_stanza_size,
            ..Limits::DEFAULT
        }),
        out: String::new(),
        id: random_id(),
        domain: None,
        header_sent: false,
        carry: Vec::new(),
        closed: false,
    };
    let err = conn.run(&settings, &router, &shutdown).await;
    if let Some(err) = err {
        conn.fail(err).await;
    }
}

struct Conn {
    tcp: TcpStream,
    peer: SocketAddr,
    decoder: Decoder,
    out: String,
    id: String,
    /// The component's domain, once its header named a configured one.
    domain: Option<String>,
    header_sent: bool,
    /// Bytes read but not yet framed (a component that sends its first stanzas right behind
    /// the handshake).
    carry: Vec<u8>,
    /// The component closed its stream (`</stream:stream>`).
    closed: bool,
}

/// What `next` read.
enum Input {
    Header(StreamHeader),
    Element(Element),
    /// `</stream:stream>` or the end of the connection.
    End,
}

impl Conn {
    /// Runs the stream; returns the stream error to close it with, if any.
    async fn run(
        &mut self,
        settings: &ComponentSettings,
        router: &Arc<Router>,
        shutdown: &CancellationToken,
    ) -> Option<StreamError> {
        let negotiated = tokio::select! {
            r = tokio::time::timeout(settings.handshake_timeout, self.negotiate(settings)) => match r {
                Ok(r) => r,
                Err(_) => Err(Some(StreamError::new(StreamErrorCondition::ConnectionTimeout)
                    .with_text("no handshake in time"))),
            },
            _ = shutdown.cancelled() => Err(Some(StreamError::new(StreamErrorCondition::SystemShutdown))),
        };
        let domain = match negotiated {
            Ok(domain) => domain,
            Err(err) => return err,
        };
        let (tx, mut rx) = mpsc::channel(settings.queue_len.max(1));
        let link: Arc<dyn ComponentHandler> = Arc::new(Link { tx });
        if let Err(e) = router.components().attach(&domain, Arc::clone(&link)) {
            tracing::warn!(peer = %self.peer, %domain, error = %e, "component refused");
            return Some(StreamError::new(StreamErrorCondition::Conflict).with_text(e.to_string()));
        }
        Element::new("handshake", ns::COMPONENT).write_in_stream(ns::COMPONENT, &mut self.out);
        tracing::info!(peer = %self.peer, %domain, "component connected");
        let result = self.serve(&domain, router, &mut rx, shutdown).await;
        // Detached before the closing tag goes out: once the component sees it, the domain is
        // served no more.
        router.components().detach(&domain, &link);
        if self.closed {
            // RFC 6120 §4.4: answer the closing tag with ours.
            self.out.push_str("</stream:stream>");
            let _ = self.flush().await;
        }
        drop(link);
        // What was still queued for it: answered, not lost silently.
        rx.close();
        let ctx = router.context().clone();
        while let Ok(stanza) = rx.try_recv() {
            bounce(&ctx, &stanza, StanzaErrorCondition::ServiceUnavailable).await;
        }
        tracing::info!(peer = %self.peer, %domain, "component disconnected");
        result
    }

    /// Header, our header, handshake (XEP-0114 §3). Returns the authenticated domain.
    async fn negotiate(
        &mut self,
        settings: &ComponentSettings,
    ) -> Result<String, Option<StreamError>> {
        let header = match self.next().await? {
            Input::Header(h) => h,
            // Connected and went away (a port probe): nothing to answer.
            Input::End => return Err(None),
            Input::Element(_) => {
                return Err(Some(StreamError::new(StreamErrorCondition::NotWellFormed)));
            }
        };
        let Some(to) = header.to.as_deref() else {
            self.write_header(None);
            return Err(Some(
                StreamError::new(StreamErrorCondition::ImproperAddressing)
                    .with_text("a 'to' naming the component's domain is required"),
            ));
        };
        let domain = starling_proto::BareJid::new(to)
            .ok()
            .filter(|j| j.node().is_none())
            .map(|j| j.domain().as_str().to_owned());
        let Some((domain, secret)) =
            domain.and_then(|d| settings.secret(&d).map(|s| (d, s.to_owned())))
        else {
            self.write_header(None);
            tracing::info!(peer = %self.peer, to, "component for an unknown domain");
            return Err(Some(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("no component is configured for that domain"),
            ));
        };
        self.write_header(Some(&domain));
        self.domain = Some(domain.clone());
        self.flush().await?;
        let handshake = match self.next().await? {
            Input::Element(e) => e,
            _ => return Err(None),
        };
        if handshake.name() == "handshake" && handshake.ns() != ns::COMPONENT {
            return Err(Some(StreamError::new(
                StreamErrorCondition::InvalidNamespace,
            )));
        }
        if !handshake.is("handshake", ns::COMPONENT) {
            return Err(Some(
                StreamError::new(StreamErrorCondition::NotAuthorized).with_text("handshake first"),
            ));
        }
        let expected = handshake_digest(&self.id, &secret);
        let given = handshake.text().trim().to_ascii_lowercase();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            tracing::warn!(peer = %self.peer, %domain, "component handshake failed");
            return Err(Some(StreamError::new(StreamErrorCondition::NotAuthorized)));
        }
        Ok(domain)
    }

    /// The stream after the handshake: stanzas both ways.
    async fn serve(
        &mut self,
        domain: &str,
        router: &Arc<Router>,
        rx: &mut mpsc::Receiver<Element>,
        shutdown: &CancellationToken,
    ) -> Option<StreamError> {
        let client = Ns::from_static(ns::CLIENT);
        let component = Ns::from_static(ns::COMPONENT);
        let carried = std::mem::take(&mut self.carry);
        if let Err(e) = self.feed(&carried, domain, router, &client).await {
            return e;
        }
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if let Err(e) = self.flush().await {
                return e;
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    return Some(StreamError::new(StreamErrorCondition::SystemShutdown));
                }
                stanza = rx.recv() => {
                    let mut stanza = stanza?;
                    stanza.rename_ns(ns::CLIENT, &component);
                    stanza.write_in_stream(ns::COMPONENT, &mut self.out);
                    // Whatever else is waiting goes in the same write.
                    while self.out.len() < READ_CHUNK
                        && let Ok(mut more) = rx.try_recv()
                    {
                        more.rename_ns(ns::CLIENT, &component);
                        more.write_in_stream(ns::COMPONENT, &mut self.out);
                    }
                }
                read = self.tcp.read(&mut buf) => {
                    let n = match read {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => n,
                    };
                    if let Err(e) = self.feed(&buf[..n], domain, router, &client).await {
                        return e;
                    }
                }
            }
        }
    }

    /// Frames and routes what the component sent. `Err(None)`: the stream ended cleanly.
    async fn feed(
        &mut self,
        data: &[u8],
        domain: &str,
        router: &Arc<Router>,
        client: &Ns,
    ) -> Result<(), Option<StreamError>> {
        let mut input = data;
        loop {
            let frame = match self.decoder.next_frame(&mut input) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Some(e.to_stream_error())),
            };
            let mut stanza = match frame {
                Frame::Element(e) => e,
                Frame::Close => {
                    self.closed = true;
                    return Err(None);
                }
                Frame::Header(_) => {
                    return Err(Some(StreamError::new(StreamErrorCondition::NotWellFormed)));
                }
            };
            if !matches!(stanza.name(), "message" | "presence" | "iq") {
                return Err(Some(StreamError::new(
                    StreamErrorCondition::UnsupportedStanzaType,
                )));
            }
            if stanza.ns() != ns::COMPONENT {
                return Err(Some(StreamError::new(
                    StreamErrorCondition::InvalidNamespace,
                )));
            }
            // RFC 6120 §4.9.3.10 / XEP-0114 §3: only from the component's domain.
            let from = stanza
                .attr("from")
                .and_then(|f| Jid::new(f).ok())
                .filter(|j| j.domain().as_str() == domain);
            let Some(from) = from else {
                return Err(Some(
                    StreamError::new(StreamErrorCondition::InvalidFrom)
                        .with_text(format!("'from' must be a JID at {domain}")),
                ));
            };
            // Written canonically (RFC 7622), as c2s stamps a client's: modules compare
            // addresses as strings (a blocklist, a roster).
            if stanza.attr("from") != Some(from.as_str()) {
                stanza.set_attr("from", from.as_str());
            }
            stanza.rename_ns(ns::COMPONENT, client);
            Box::pin(router.route_stanza(stanza)).await;
        }
    }

    /// The next header, element or end of the stream, during negotiation.
    async fn next(&mut self) -> Result<Input, Option<StreamError>> {
        let mut buf = [0u8; 4096];
        loop {
            let carried = std::mem::take(&mut self.carry);
            let mut input = carried.as_slice();
            let frame = self
                .decoder
                .next_frame(&mut input)
                .map_err(|e| Some(e.to_stream_error()))?;
            self.carry = input.to_vec();
            if let Some(f) = frame {
                return Ok(frame_input(f));
            }
            let n = match self.tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return Ok(Input::End),
                Ok(n) => n,
            };
            self.carry.extend_from_slice(&buf[..n]);
        }
    }

    fn write_header(&mut self, domain: Option<&str>) {
        self.out.push_str(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' id='",
        );
        self.out.push_str(&self.id);
        self.out.push('\'');
        if let Some(d) = domain {
            self.out.push_str(" from='");
            starling_proto::element::escape_attr(d, &mut self.out);
            self.out.push('\'');
        }
        self.out.push('>');
        self.header_sent = true;
    }

    async fn flush(&mut self) -> Result<(), Option<StreamError>> {
        if self.out.is_empty() {
            return Ok(());
        }
        let res = self.tcp.write_all(self.out.as_bytes()).await;
        self.out.clear();
        res.map_err(|_| None)
    }

    /// Closes the stream with `err` (after our header if none was sent, RFC 6120 §4.9.1.1).
    async fn fail(&mut self, err: StreamError) {
        tracing::debug!(peer = %self.peer, domain = ?self.domain, error = %err, "closing component stream");
        if !self.header_sent {
            let domain = self.domain.clone();
            self.write_header(domain.as_deref());
        }
        err.to_element()
            .write_in_stream(ns::COMPONENT, &mut self.out);
        self.out.push_str("</stream:stream>");
        let write = async {
            self.tcp.write_all(self.out.as_bytes()).await?;
            self.tcp.shutdown().await
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, write).await;
    }
}

fn frame_input(f: Frame) -> Input {
    match f {
        Frame::Header(h) => Input::Header(h),
        Frame::Element(e) => Input::Element(e),
        Frame::Close => Input::End,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0114 §3: the handshake is the lowercase hex SHA-1 of the stream id followed by the
    /// secret (the values checked against coreutils' `sha1sum`).
    #[test]
    fn the_handshake_is_hex_sha1_of_id_and_secret() {
        assert_eq!(
            handshake_digest("3BF96D32", "sesame"),
            "7a98dc4c9e92493d7fd66a25364c862637789c45"
        );
        assert_eq!(
            handshake_digest("a", "b"),
            "da23614e02469a0d7c7bd1bdab5c9c474b1904dc"
        );
    }
}
