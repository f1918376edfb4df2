//! The test client: one XMPP client connection over a real socket, with assertions on what the
//! server sends. See the crate documentation for the procedure and its hazards.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use sha2::{Digest as _, Sha256};
use starling_proto::{Element, FullJid, ns};
use starling_sasl::client::{ScramClient, plain};
use starling_sasl::{ChannelBindingType, Mechanism, SaslError};
use starling_stream::{DecodeError, Decoder, Frame, StreamHeader};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::matcher::{TEST_LIMITS, matches, parse_xml, to_stream_xml};

/// Default time [`Client::recv`] and the `expect*` methods wait.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// ALPN protocol for XEP-0368 direct TLS.
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// RFC 9266 §2 exporter label of `tls-exporter`.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Everything that can go wrong in a test conversation.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// A socket error (connect, read, write) other than the peer closing the connection.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// Building the TLS configuration failed.
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),
    /// Nothing (or not enough) arrived in time.
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        after: Duration,
        waiting_for: String,
    },
    /// The server closed the connection (EOF, reset, or TLS without close_notify).
    #[error("connection closed by the server")]
    Eof,
    /// The server sent something the stream decoder rejects.
    #[error("server sent invalid XML: {0}")]
    Decode(#[from] DecodeError),
    /// A frame arrived that the step did not allow (the message shows it).
    #[error("unexpected: {0}")]
    Unexpected(String),
    /// An element did not match the expected one ([`crate::matches()`] message).
    #[error("{0}")]
    Mismatch(String),
    /// The server answered SASL with `<failure/>`; the defined condition (RFC 6120 §6.5).
    #[error("SASL failure: {0}")]
    SaslFailure(String),
    /// The SCRAM client rejected a server message (e.g. a wrong server signature).
    #[error("SASL client error: {0}")]
    Sasl(#[from] SaslError),
    /// The test asked for something impossible (unknown mechanism, no TLS for `-PLUS`, ...).
    #[error("invalid use: {0}")]
    Invalid(String),
}

/// Result type of the test client.
pub type Result<T, E = TestError> = std::result::Result<T, E>;

/// How [`Client::login`] secures the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// No TLS at all.
    Plain,
    /// STARTTLS after the first stream header (RFC 6120 §5).
    StartTls,
    /// TLS from the first byte (XEP-0368), ALPN `xmpp-client`.
    DirectTls,
}

/// The transport under the XMPP stream.
enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while STARTTLS swaps the transport, or after a failed handshake.
    Gone,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Gone => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Gone => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    fn tls(&self) -> Option<&rustls::ClientConnection> {
        match self {
            Conn::Tls(s) => Some(s.get_ref().1),
            _ => None,
        }
    }
}

/// Whether a read error means the peer closed the connection.
fn is_closed(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    matches!(
        e.kind(),
        // UnexpectedEof: TLS ended without close_notify.
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe
    )
}

/// A short description of a frame for error messages.
fn describe(frame: &Frame) -> String {
    match frame {
        Frame::Header(h) => format!("stream header {h:?}"),
        Frame::Element(e) => to_stream_xml(e),
        Frame::Close => "</stream:stream>".to_owned(),
    }
}

/// One SASL server message.
enum SaslReply {
    Challenge(Vec<u8>),
    /// `<success/>` with its additional data, if any.
    Success(Option<Vec<u8>>),
}

/// A client connection under test. Every wait is bounded by [`Client::timeout`].
pub struct Client {
    conn: Conn,
    decoder: Decoder,
    /// Received bytes the decoder has not consumed yet.
    buf: Vec<u8>,
    eof: bool,
    timeout: Duration,
    jid: Option<FullJid>,
    peer_cert: Option<Vec<u8>>,
    header: Option<StreamHeader>,
    features: Option<Element>,
    next_id: u64,
    /// Bytes read from the connection so far (after TLS).
    received: u64,
    /// Open `jabber:server` streams from this domain instead of `jabber:client` ones (a
    /// hand-driven peer server in s2s tests).
    server_from: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tls", &self.is_tls())
            .field("jid", &self.jid)
            .field("buffered", &self.buf.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl Client {
    fn new(conn: Conn, peer_cert: Option<Vec<u8>>) -> Client {
        Client {
            conn,
            decoder: Decoder::new(TEST_LIMITS),
            buf: Vec::new(),
            eof: false,
            timeout: DEFAULT_TIMEOUT,
            jid: None,
            peer_cert,
            header: None,
            features: None,
            next_id: 0,
            received: 0,
            server_from: None,
        }
    }

    /// From now on, stream headers are those of a server `from` (`xmlns='jabber:server'`,
    /// `xmlns:db` declared, `from`): the client plays a peer server (RFC 6120 s2s, XEP-0220).
    pub fn as_server(&mut self, from: &str) {
        self.server_from = Some(from.to_owned());
    }

    /// TCP connect; no stream header is sent yet.
    pub async fn connect(addr: SocketAddr) -> Result<Client> {
        let tcp = with_timeout(DEFAULT_TIMEOUT, "TCP connect", TcpStream::connect(addr)).await??;
        tcp.set_nodelay(true)?;
        Ok(Client::new(Conn::Tcp(tcp), None))
    }

    /// Like [`connect`](Self::connect), from the local address `from`: any address of
    /// 127.0.0.0/8 works over loopback on Linux, so tests can have clients at several addresses
    /// (per-address limits) without leaving the machine.
    pub async fn connect_from(addr: SocketAddr, from: IpAddr) -> Result<Client> {
        let socket = match from {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(from, 0))?;
        let tcp = with_timeout(DEFAULT_TIMEOUT, "TCP connect", socket.connect(addr)).await??;
        tcp.set_nodelay(true)?;
        Ok(Client::new(Conn::Tcp(tcp), None))
    }

    /// TCP connect and TLS handshake at once (XEP-0368 direct TLS): ALPN `xmpp-client`,
    /// SNI = `domain` (none if `domain` is an IP address), any certificate accepted.
    pub async fn connect_direct_tls(addr: SocketAddr, domain: &str) -> Result<Client> {
        let tcp = with_timeout(DEFAULT_TIMEOUT, "TCP connect", TcpStream::connect(addr)).await??;
        tcp.set_nodelay(true)?;
        let (tls, cert) = tls_handshake(
            tcp,
            domain,
            vec![ALPN_XMPP_CLIENT.to_vec()],
            DEFAULT_TIMEOUT,
        )
        .await?;
        Ok(Client::new(Conn::Tls(tls), cert))
    }

    /// How long each receive waits (default [`DEFAULT_TIMEOUT`]).
    /// Bytes read from the connection so far (after TLS), frames not yet decoded included.
    pub fn bytes_received(&self) -> u64 {
        self.received
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long each receive (and send) waits.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The bound full JID, after [`bind`](Self::bind).
    pub fn jid(&self) -> Option<&FullJid> {
        self.jid.as_ref()
    }

    /// The server's leaf certificate (DER), on a TLS connection.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        self.peer_cert.as_deref()
    }

    /// Whether the connection is TLS (direct or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.conn.tls().is_some()
    }

    /// The ALPN protocol the server selected, on a TLS connection.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.tls().and_then(|c| c.alpn_protocol())
    }

    /// The negotiated TLS version, on a TLS connection.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.tls().and_then(|c| c.protocol_version())
    }

    /// The header of the server's current stream, after [`open_stream`](Self::open_stream).
    pub fn stream_header(&self) -> Option<&StreamHeader> {
        self.header.as_ref()
    }

    /// The `<stream:features/>` of the current stream, after [`open_stream`](Self::open_stream).
    pub fn features(&self) -> Option<&Element> {
        self.features.as_ref()
    }

    /// Channel-binding data of this connection as the client computes it: `tls-exporter`
    /// (RFC 9266: 32 bytes, label `EXPORTER-Channel-Binding`, no context) or
    /// `tls-server-end-point` (RFC 5929 §4.1: SHA-256 of the server's leaf certificate, which is
    /// right for SHA-256-signed certificates such as the test ones). `None` without TLS.
    pub fn channel_binding(&self, ty: ChannelBindingType) -> Option<Vec<u8>> {
        let conn = self.conn.tls()?;
        match ty {
            ChannelBindingType::TlsExporter => conn
                .export_keying_material(vec![0u8; 32], EXPORTER_LABEL, None)
                .ok(),
            ChannelBindingType::TlsServerEndPoint => self
                .peer_cert
                .as_deref()
                .map(|der| Sha256::digest(der).to_vec()),
        }
    }

    /// A fresh stanza id with `prefix`.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    // ------------------------------------------------------------------ sending

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        let timeout = self.timeout;
        with_timeout(timeout, "sending", self.conn.write_all(bytes)).await??;
        Ok(())
    }

    /// Sends an element serialised for a `jabber:client` stream.
    pub async fn send(&mut self, el: &Element) -> Result<()> {
        self.send_raw(to_stream_xml(el).as_bytes()).await
    }

    /// Sends XML text as it is.
    pub async fn send_xml(&mut self, xml: &str) -> Result<()> {
        self.send_raw(xml.as_bytes()).await
    }

    /// Sends an initial stream header to `domain` and starts a fresh decoder for the server's
    /// stream, without reading anything. Bytes already received and not yet decoded are kept.
    pub async fn send_stream_header(&mut self, domain: &str) -> Result<()> {
        let mut header = String::from("<?xml version='1.0'?><stream:stream to='");
        starling_proto::element::escape_attr(domain, &mut header);
        match &self.server_from {
            None => header.push_str(
                "' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            ),
            Some(from) => {
                header.push_str("' from='");
                starling_proto::element::escape_attr(from, &mut header);
                header.push_str(
                    "' version='1.0' xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
                     xmlns:stream='http://etherx.jabber.org/streams'>",
                );
            }
        }
        self.send_raw(header.as_bytes()).await?;
        self.reset_decoder();
        Ok(())
    }

    /// Starts a fresh decoder (a new stream from the server is expected), keeping undecoded bytes.
    /// [`send_stream_header`](Self::send_stream_header) does this; use it after sending a
    /// hand-written header with [`send_raw`](Self::send_raw).
    pub fn reset_decoder(&mut self) {
        self.decoder = Decoder::new(TEST_LIMITS);
        self.header = None;
        self.features = None;
    }

    /// Opens a stream: sends the header, then reads the server's header and its
    /// `<stream:features/>`, which must come next.
    pub async fn open_stream(&mut self, domain: &str) -> Result<(StreamHeader, Element)> {
        self.send_stream_header(domain).await?;
        let header = match self.recv().await? {
            Frame::Header(h) => h,
            other => {
                return Err(TestError::Unexpected(format!(
                    "expected the server's stream header, got {}",
                    describe(&other)
                )));
            }
        };
        self.header = Some(header.clone());
        let features = self.recv_element().await?;
        if !features.is("features", ns::STREAM) {
            return Err(TestError::Unexpected(format!(
                "expected <stream:features/>, got {}",
                to_stream_xml(&features)
            )));
        }
        self.features = Some(features.clone());
        Ok((header, features))
    }

    // ------------------------------------------------------------------ receiving

    /// Decodes the next frame, reading as needed, without a time limit.
    async fn next_frame(&mut self) -> Result<Frame> {
        let mut chunk = [0u8; 8192];
        loop {
            let mut input = &self.buf[..];
            let res = self.decoder.next_frame(&mut input);
            let consumed = self.buf.len() - input.len();
            self.buf.drain(..consumed);
            if let Some(frame) = res? {
                return Ok(frame);
            }
            if self.eof {
                return Err(TestError::Eof);
            }
            match self.conn.read(&mut chunk).await {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.received += n as u64;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e) if is_closed(&e) => self.eof = true,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next frame (header, element or `</stream:stream>`) within the timeout; `Err` on timeout,
    /// EOF or invalid XML.
    pub async fn recv(&mut self) -> Result<Frame> {
        let timeout = self.timeout;
        with_timeout(timeout, "a frame", self.next_frame()).await?
    }

    /// The next frame, which must be an element.
    pub async fn recv_element(&mut self) -> Result<Element> {
        match self.recv().await? {
            Frame::Element(e) => Ok(e),
            other => Err(TestError::Unexpected(format!(
                "expected an element, got {}",
                describe(&other)
            ))),
        }
    }

    /// Asserts that the next element matches `expected` (see [`crate::matcher`]) and returns it.
    /// Panics if `expected` is not well-formed.
    pub async fn expect(&mut self, expected: &str) -> Result<Element> {
        let exp = parse_xml(expected);
        let actual = match self.recv().await {
            Ok(Frame::Element(e)) => e,
            Ok(other) => {
                return Err(TestError::Unexpected(format!(
                    "expected {}, got {}",
                    to_stream_xml(&exp),
                    describe(&other)
                )));
            }
            Err(e) => {
                return Err(TestError::Unexpected(format!(
                    "expected {}, got {e}",
                    to_stream_xml(&exp)
                )));
            }
        };
        matches(&exp, &actual).map_err(TestError::Mismatch)?;
        Ok(actual)
    }

    /// Asserts the server ends the stream with an error: the next element must be
    /// `<stream:error/>` whose defined condition is `condition` (e.g. `"not-well-formed"`; or, if
    /// `condition` starts with `<`, the whole error element must match that XML), then
    /// `</stream:stream>` must follow, then EOF. Returns the error element.
    pub async fn expect_stream_error(&mut self, condition: &str) -> Result<Element> {
        let el = match self.recv().await {
            Ok(Frame::Element(e)) => e,
            Ok(other) => {
                return Err(TestError::Unexpected(format!(
                    "expected a <{condition}/> stream error, got {}",
                    describe(&other)
                )));
            }
            Err(e) => {
                return Err(TestError::Unexpected(format!(
                    "expected a <{condition}/> stream error, got {e}"
                )));
            }
        };
        if !el.is("error", ns::STREAM) {
            return Err(TestError::Unexpected(format!(
                "expected a <{condition}/> stream error, got {}",
                to_stream_xml(&el)
            )));
        }
        if condition.starts_with('<') {
            matches(&parse_xml(condition), &el).map_err(TestError::Mismatch)?;
        } else {
            // RFC 6120 §4.9.2: exactly one defined condition; <text/> and app conditions may follow.
            let defined: Vec<&Element> = el
                .children()
                .filter(|c| c.ns() == ns::STREAMS && c.name() != "text")
                .collect();
            if defined.len() != 1 || defined[0].name() != condition {
                return Err(TestError::Mismatch(format!(
                    "expected stream error condition <{condition}/>, got {}",
                    to_stream_xml(&el)
                )));
            }
        }
        // RFC 6120 §4.9.1.1: the error is followed by the closing tag and the end of the TCP connection.
        match self.recv().await {
            Ok(Frame::Close) => {}
            Ok(other) => {
                return Err(TestError::Unexpected(format!(
                    "expected </stream:stream> after the stream error, got {}",
                    describe(&other)
                )));
            }
            Err(e) => {
                return Err(TestError::Unexpected(format!(
                    "expected </stream:stream> after the stream error, got {e}"
                )));
            }
        }
        self.expect_eof().await?;
        Ok(el)
    }

    /// Asserts the server closes the connection (EOF or reset) within the timeout, sending no
    /// further frame before it.
    pub async fn expect_eof(&mut self) -> Result<()> {
        let timeout = self.timeout;
        match with_timeout(timeout, "the connection to close", self.next_frame()).await? {
            Err(TestError::Eof) => Ok(()),
            Err(e) => Err(e),
            Ok(frame) => Err(TestError::Unexpected(format!(
                "expected the connection to close, got {}",
                describe(&frame)
            ))),
        }
    }

    /// Reads and drops whatever arrives until nothing has for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) {
        while let Ok(Ok(_)) = tokio::time::timeout(quiet, self.recv_element()).await {}
    }

    /// Asserts nothing arrives within `d`: no frame, no partial element, no EOF.
    pub async fn expect_silence(&mut self, d: Duration) -> Result<()> {
        match tokio::time::timeout(d, self.next_frame()).await {
            Err(_elapsed) if self.decoder.in_stanza() => Err(TestError::Unexpected(
                "expected silence, got part of an element".to_owned(),
            )),
            Err(_elapsed) => Ok(()),
            Ok(Ok(frame)) => Err(TestError::Unexpected(format!(
                "expected silence, got {}",
                describe(&frame)
            ))),
            Ok(Err(e)) => Err(TestError::Unexpected(format!("expected silence, got {e}"))),
        }
    }

    // ------------------------------------------------------------------ negotiation

    /// STARTTLS (RFC 6120 §5.4): `<starttls/>`, `<proceed/>`, TLS handshake (any certificate,
    /// SNI = `domain`, no ALPN), then a new stream. Returns its features.
    pub async fn starttls(&mut self, domain: &str) -> Result<Element> {
        if self.is_tls() {
            return Err(TestError::Invalid(
                "STARTTLS on a TLS connection".to_owned(),
            ));
        }
        self.send_xml("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await?;
        self.upgrade_after_starttls(domain).await
    }

    /// The second half of [`starttls`](Self::starttls), for tests that send `<starttls/>` themselves
    /// (for example with other data pipelined after it): waits for `<proceed/>`, shakes hands and
    /// opens the new stream; returns its features.
    pub async fn upgrade_after_starttls(&mut self, domain: &str) -> Result<Element> {
        let reply = self.recv_element().await?;
        if !reply.is("proceed", ns::TLS) {
            return Err(TestError::Unexpected(format!(
                "expected <proceed/>, got {}",
                to_stream_xml(&reply)
            )));
        }
        // RFC 6120 §5.4.3.3: nothing received in plaintext after <proceed/> may be processed.
        self.buf.clear();
        let Conn::Tcp(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(TestError::Invalid("connection is gone".to_owned()));
        };
        let (tls, cert) = tls_handshake(tcp, domain, Vec::new(), self.timeout).await?;
        self.conn = Conn::Tls(tls);
        self.peer_cert = cert;
        let (_, features) = self.open_stream(domain).await?;
        Ok(features)
    }

    /// SASL (RFC 6120 §6) with `mechanism` (`"SCRAM-SHA-256"`, `"SCRAM-SHA-1-PLUS"`, `"PLAIN"`,
    /// ...). For `-PLUS` the channel-binding type is chosen from the XEP-0440 advertisement in
    /// the current features (`tls-exporter` preferred, on TLS 1.3). On `<success/>` the SCRAM
    /// server signature is verified and the stream restarted; returns the new features. On
    /// `<failure/>`: `Err(TestError::SaslFailure(condition))`.
    pub async fn authenticate(
        &mut self,
        domain: &str,
        mechanism: &str,
        user: &str,
        password: &str,
        authzid: Option<&str>,
    ) -> Result<Element> {
        self.authenticate_with_binding(domain, mechanism, user, password, authzid, None)
            .await
    }

    /// [`authenticate`](Self::authenticate) with an explicit channel-binding type for `-PLUS`
    /// mechanisms (`None`: choose as `authenticate` does).
    pub async fn authenticate_with_binding(
        &mut self,
        domain: &str,
        mechanism: &str,
        user: &str,
        password: &str,
        authzid: Option<&str>,
        binding: Option<ChannelBindingType>,
    ) -> Result<Element> {
        let mech = Mechanism::from_name(mechanism)
            .ok_or_else(|| TestError::Invalid(format!("unsupported mechanism {mechanism:?}")))?;
        if binding.is_some() && !mech.is_plus() {
            return Err(TestError::Invalid(format!(
                "{mechanism} does not use channel binding"
            )));
        }
        match mech.hash() {
            None => {
                self.send_auth(mech, &plain(authzid, user, password))
                    .await?;
                match self.sasl_reply().await? {
                    SaslReply::Success(_) => {}
                    SaslReply::Challenge(_) => {
                        return Err(TestError::Unexpected(
                            "a <challenge/> in reply to PLAIN".to_owned(),
                        ));
                    }
                }
            }
            Some(hash) => {
                let cb = if mech.is_plus() {
                    let ty = binding.or_else(|| self.pick_binding()).ok_or_else(|| {
                        TestError::Invalid("no channel binding on this connection".to_owned())
                    })?;
                    let data = self.channel_binding(ty).ok_or_else(|| {
                        TestError::Invalid(format!("no {ty} data on this connection"))
                    })?;
                    Some((ty, data))
                } else {
                    None
                };
                let mut scram = ScramClient::new(hash, user, password, cb, authzid)?;
                self.send_auth(mech, &scram.client_first()).await?;
                let server_first = match self.sasl_reply().await? {
                    SaslReply::Challenge(data) => data,
                    SaslReply::Success(_) => {
                        return Err(TestError::Unexpected(
                            "<success/> before the SCRAM exchange finished".to_owned(),
                        ));
                    }
                };
                let client_final = scram.handle_server_first(&server_first)?;
                self.send_sasl("response", &client_final).await?;
                match self.sasl_reply().await? {
                    // RFC 6120 §6.3.10: server-final as additional data with success.
                    SaslReply::Success(Some(data)) => scram.verify_server_final(&data)?,
                    SaslReply::Success(None) => {
                        return Err(TestError::Unexpected(
                            "<success/> without the SCRAM server-final message".to_owned(),
                        ));
                    }
                    // Or as a last challenge, answered with an empty response.
                    SaslReply::Challenge(data) => {
                        scram.verify_server_final(&data)?;
                        self.send_sasl("response", &[]).await?;
                        match self.sasl_reply().await? {
                            SaslReply::Success(None) => {}
                            SaslReply::Success(Some(d)) if d.is_empty() => {}
                            _ => {
                                return Err(TestError::Unexpected(
                                    "SCRAM went on after server-final".to_owned(),
                                ));
                            }
                        }
                    }
                }
            }
        }
        // RFC 6120 §6.4.6: restart the stream; bytes already received belong to the new stream.
        let (_, features) = self.open_stream(domain).await?;
        Ok(features)
    }

    /// The channel-binding type for `-PLUS`: what the server advertised (XEP-0440), preferring
    /// `tls-exporter` where this connection can compute it (TLS 1.3).
    fn pick_binding(&self) -> Option<ChannelBindingType> {
        let exporter_ok = self.tls_version() == Some(rustls::ProtocolVersion::TLSv1_3);
        let advertised: Option<Vec<ChannelBindingType>> = self
            .features
            .as_ref()
            .and_then(|f| f.get_child("sasl-channel-binding", ns::SASL_CB))
            .map(|cb| {
                cb.children()
                    .filter(|c| c.is("channel-binding", ns::SASL_CB))
                    .filter_map(|c| c.attr("type").and_then(ChannelBindingType::from_name))
                    .collect()
            });
        let offered = |ty| advertised.as_ref().is_none_or(|a| a.contains(&ty));
        if exporter_ok && offered(ChannelBindingType::TlsExporter) {
            Some(ChannelBindingType::TlsExporter)
        } else if self.is_tls() && offered(ChannelBindingType::TlsServerEndPoint) {
            Some(ChannelBindingType::TlsServerEndPoint)
        } else {
            None
        }
    }

    async fn send_auth(&mut self, mech: Mechanism, initial: &[u8]) -> Result<()> {
        // RFC 6120 §6.4.2: an empty initial response is sent as "=".
        let payload = if initial.is_empty() {
            "=".to_owned()
        } else {
            BASE64.encode(initial)
        };
        let auth = Element::new("auth", ns::SASL)
            .with_attr("mechanism", mech.name())
            .with_text(payload);
        self.send(&auth).await
    }

    async fn send_sasl(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut el = Element::new(name, ns::SASL);
        if !data.is_empty() {
            el.append_text(BASE64.encode(data));
        }
        self.send(&el).await
    }

    /// Reads `<challenge/>`, `<success/>` or `<failure/>`.
    async fn sasl_reply(&mut self) -> Result<SaslReply> {
        let el = self.recv_element().await?;
        let decode = |el: &Element| -> Result<Option<Vec<u8>>> {
            let text = el.text();
            let text = text.trim();
            match text {
                "" => Ok(None),
                "=" => Ok(Some(Vec::new())),
                t => BASE64.decode(t).map(Some).map_err(|_| {
                    TestError::Unexpected(format!("invalid base64 in {}", to_stream_xml(el)))
                }),
            }
        };
        if el.is("challenge", ns::SASL) {
            Ok(SaslReply::Challenge(decode(&el)?.unwrap_or_default()))
        } else if el.is("success", ns::SASL) {
            Ok(SaslReply::Success(decode(&el)?))
        } else if el.is("failure", ns::SASL) {
            let condition = el
                .children()
                .find(|c| c.ns() == ns::SASL && c.name() != "text")
                .map(|c| c.name().to_owned())
                .unwrap_or_default();
            Err(TestError::SaslFailure(condition))
        } else {
            Err(TestError::Unexpected(format!(
                "expected a SASL reply, got {}",
                to_stream_xml(&el)
            )))
        }
    }

    /// Resource binding (RFC 6120 §7): `resource` `None` asks the server to generate one.
    /// Returns the bound full JID, which [`jid`](Self::jid) then reports.
    pub async fn bind(&mut self, resource: Option<&str>) -> Result<FullJid> {
        let id = self.new_id("bind");
        let mut bind = Element::new("bind", ns::BIND);
        if let Some(r) = resource {
            bind.append_child(Element::new("resource", ns::BIND).with_text(r));
        }
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.as_str())
            .with_child(bind);
        self.send(&iq).await?;
        let reply = self.recv_element().await?;
        let jid_text = (reply.is("iq", ns::CLIENT)
            && reply.attr("id") == Some(id.as_str())
            && reply.attr("type") == Some("result"))
        .then(|| reply.get_child("bind", ns::BIND))
        .flatten()
        .and_then(|b| b.get_child("jid", ns::BIND))
        .map(Element::text);
        let Some(jid_text) = jid_text else {
            return Err(TestError::Unexpected(format!(
                "expected a bind result for id {id:?}, got {}",
                to_stream_xml(&reply)
            )));
        };
        let jid = FullJid::new(jid_text.trim()).map_err(|e| {
            TestError::Unexpected(format!("bound JID {jid_text:?} is not a full JID: {e}"))
        })?;
        self.jid = Some(jid.clone());
        Ok(jid)
    }

    /// Connects with `security`, opens the stream (STARTTLS first if asked), authenticates with
    /// SCRAM-SHA-256 and binds `resource` (`None`: server-generated).
    pub async fn login(
        addr: SocketAddr,
        security: Security,
        domain: &str,
        user: &str,
        password: &str,
        resource: Option<&str>,
    ) -> Result<Client> {
        let mut client = match security {
            Security::DirectTls => Client::connect_direct_tls(addr, domain).await?,
            Security::Plain | Security::StartTls => Client::connect(addr).await?,
        };
        client.open_stream(domain).await?;
        if security == Security::StartTls {
            client.starttls(domain).await?;
        }
        client
            .authenticate(domain, "SCRAM-SHA-256", user, password, None)
            .await?;
        client.bind(resource).await?;
        Ok(client)
    }

    /// Ends the stream (RFC 6120 §4.4): sends `</stream:stream>`, then waits for the server's
    /// `</stream:stream>` and EOF. Elements that arrive before the server's closing tag are
    /// discarded (use [`expect_silence`](Self::expect_silence) first to assert there are none),
    /// except a stream error, which fails.
    pub async fn close(mut self) -> Result<()> {
        self.send_raw(b"</stream:stream>").await?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next_frame())
                .await
                .map_err(|_| TestError::Timeout {
                    after: self.timeout,
                    waiting_for: "the server's </stream:stream>".to_owned(),
                })??;
            match frame {
                Frame::Close => break,
                Frame::Element(e) if e.is("error", ns::STREAM) => {
                    return Err(TestError::Unexpected(format!(
                        "stream error while closing: {}",
                        to_stream_xml(&e)
                    )));
                }
                Frame::Element(_) | Frame::Header(_) => {}
            }
        }
        self.expect_eof().await
    }
}

/// Runs `fut` with a time limit, turning the elapsed case into [`TestError::Timeout`].
async fn with_timeout<F: Future>(d: Duration, waiting_for: &str, fut: F) -> Result<F::Output> {
    tokio::time::timeout(d, fut)
        .await
        .map_err(|_| TestError::Timeout {
            after: d,
            waiting_for: waiting_for.to_owned(),
        })
}

/// TLS client handshake accepting any certificate; returns the stream and the leaf certificate.
async fn tls_handshake(
    tcp: TcpStream,
    domain: &str,
    alpn: Vec<Vec<u8>>,
    timeout: Duration,
) -> Result<(Box<TlsStream<TcpStream>>, Option<Vec<u8>>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(starling_net::tls::AcceptAnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    let name = ServerName::try_from(domain.to_owned())
        .map_err(|e| TestError::Invalid(format!("{domain:?} is no server name: {e}")))?;
    let connector = TlsConnector::from(Arc::new(config));
    let tls = with_timeout(timeout, "the TLS handshake", connector.connect(name, tcp)).await??;
    let cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|c| c.to_vec());
    Ok((Box::new(tls), cert))
}
