//! One client connection: TCP (optionally upgraded with STARTTLS), SASL (SCRAM-SHA-1/-256 or
//! PLAIN), resource binding, the roster and initial presence, all over raw XMPP; then a frame
//! reader and a writer for the scenarios. Frames are parsed with Starling's own stream decoder,
//! which accepts any well-formed server output (Prosody's and ejabberd's included).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use starling_proto::{Element, ns};
use starling_sasl::ScramHash;
use starling_sasl::client::{ScramClient, plain};
use starling_stream::{Decoder, Frame, Limits};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::cache::ScramCache;
use crate::ws::WsIo;

/// What went wrong on one connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the stream")]
    Closed,
    #[error("unparsable server output: {0}")]
    Decode(String),
    #[error("unexpected reply while {during}: {got}")]
    Unexpected { during: &'static str, got: String },
    #[error("the server does not offer {0}")]
    NotOffered(String),
    #[error("SASL: {0}")]
    Sasl(String),
    #[error("target: {0}")]
    Target(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// Transport security of the client streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// Plain TCP (the server must allow authentication without TLS).
    Off,
    /// STARTTLS before authenticating.
    Starttls,
}

/// SASL mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mech {
    #[value(name = "scram-sha-1")]
    ScramSha1,
    #[value(name = "scram-sha-256")]
    ScramSha256,
    #[value(name = "plain")]
    Plain,
}

impl Mech {
    fn name(self) -> &'static str {
        match self {
            Mech::ScramSha1 => "SCRAM-SHA-1",
            Mech::ScramSha256 => "SCRAM-SHA-256",
            Mech::Plain => "PLAIN",
        }
    }
}

/// The server under test and how to log in to it.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub domain: String,
    pub tls: TlsMode,
    pub mech: Mech,
    pub password: String,
    pub resource: String,
    pub timeout: Duration,
    /// Enable XEP-0198 stream management after binding (and answer the server's `<r/>`).
    pub sm: bool,
    /// Enable XEP-0280 message carbons after binding.
    pub carbons: bool,
    /// Over a WebSocket (RFC 7395) at this `ws://` URL instead of raw TCP: the TCP connection
    /// still goes to `addr` (and `tls` must be off).
    pub ws_url: Option<String>,
    /// Loopback source addresses to spread connections over (127.0.0.1, .2, …): one source
    /// address reaches one server port from at most ~28,000 ephemeral ports. 0 or 1: the
    /// kernel's choice.
    pub sources: u8,
    next_source: Arc<std::sync::atomic::AtomicUsize>,
    tls_config: Arc<ClientConfig>,
    pub cache: Arc<Mutex<ScramCache>>,
}

impl Target {
    pub fn new(
        addr: SocketAddr,
        domain: String,
        tls: TlsMode,
        mech: Mech,
        password: String,
        cache: ScramCache,
    ) -> Result<Target, rustls::Error> {
        Ok(Target {
            addr,
            domain,
            tls,
            mech,
            password,
            resource: "bench".to_owned(),
            timeout: Duration::from_secs(30),
            sm: false,
            carbons: false,
            ws_url: None,
            sources: 0,
            next_source: Arc::default(),
            tls_config: tls_config()?,
            cache: Arc::new(Mutex::new(cache)),
        })
    }
}

/// Resolves the target, refusing anything but loopback unless `allow_remote`.
pub async fn resolve(host: &str, port: u16, allow_remote: bool) -> Result<SocketAddr, ConnError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let Some(addr) = addrs.first().copied() else {
        return Err(ConnError::Target(format!("{host} resolves to nothing")));
    };
    if !allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(ConnError::Target(format!(
            "{host} is not a loopback address; a load test against another machine needs \
             --allow-remote (and its owner's consent)"
        )));
    }
    Ok(addr)
}

/// The benchmark accepts the server's certificate unseen (servers under test use self-signed
/// ones) but still checks handshake signatures, so the TLS work on both sides is the real one.
fn tls_config() -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(starling_net::tls::AcceptAnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Plain TCP, TLS, or a WebSocket (RFC 7395) read and written as the same byte stream.
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Ws(Box<WsIo>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Ws(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Ws(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Ws(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Ws(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

const READ_CHUNK: usize = 16 * 1024;

/// Reads frames from a byte stream with Starling's decoder.
pub struct FrameReader<R> {
    io: R,
    decoder: Decoder,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stanzas (message, presence, iq) received, modulo 2^32.
    stanzas: u32,
    /// `stanzas` when stream management was enabled (XEP-0198 counts from there).
    sm_base: Option<u32>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(io: R) -> Self {
        FrameReader {
            io,
            decoder: Decoder::new(Limits::DEFAULT),
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            stanzas: 0,
            sm_base: None,
        }
    }

    /// XEP-0198 §4: the `<a/>` answering a request, once stream management is enabled: every
    /// stanza read since `<enabled/>` counts as handled.
    pub fn ack(&self) -> Option<String> {
        let base = self.sm_base?;
        Some(format!(
            "<a xmlns='{}' h='{}'/>",
            ns::SM,
            self.stanzas.wrapping_sub(base)
        ))
    }

    /// The byte stream and what was read from it but not yet decoded, for reading raw bytes
    /// from here on.
    pub fn into_raw(self) -> (R, Vec<u8>) {
        let rest = self.buf[self.start..self.end].to_vec();
        (self.io, rest)
    }

    /// A fresh decoder (stream restart after SASL); buffered bytes are kept.
    fn restart(&mut self) {
        self.decoder = Decoder::new(Limits::DEFAULT);
    }

    /// The next frame from the server.
    pub async fn next(&mut self) -> Result<Frame, ConnError> {
        loop {
            if self.start < self.end {
                let mut input = &self.buf[self.start..self.end];
                let frame = self
                    .decoder
                    .next_frame(&mut input)
                    .map_err(|e| ConnError::Decode(e.to_string()))?;
                self.start = self.end - input.len();
                if let Some(frame) = frame {
                    if let Frame::Element(el) = &frame
                        && matches!(el.name(), "message" | "presence" | "iq")
                        && el.ns() == ns::CLIENT
                    {
                        self.stanzas = self.stanzas.wrapping_add(1);
                    }
                    return Ok(frame);
                }
            }
            // Everything buffered was consumed.
            self.start = 0;
            self.end = self.io.read(&mut self.buf).await?;
            if self.end == 0 {
                return Err(ConnError::Closed);
            }
        }
    }

    /// The next top-level element; the stream's end or a stream error is an error.
    pub async fn element(&mut self, during: &'static str) -> Result<Element, ConnError> {
        match self.next().await? {
            Frame::Element(el) if el.is("error", ns::STREAM) => Err(ConnError::Unexpected {
                during,
                got: el.to_xml(),
            }),
            Frame::Element(el) => Ok(el),
            Frame::Close => Err(ConnError::Closed),
            Frame::Header(_) => Err(ConnError::Unexpected {
                during,
                got: "a second stream header".to_owned(),
            }),
        }
    }
}

/// A logged-in session, ready to be split into its reader and writer.
pub struct Session {
    pub reader: FrameReader<tokio::io::ReadHalf<Io>>,
    pub writer: tokio::io::WriteHalf<Io>,
    /// The bound full JID.
    pub jid: String,
    /// Roster items received at login (0 when the roster was not fetched).
    pub roster_items: usize,
}

impl Session {
    /// Sends `</stream:stream>` and shuts the connection down (best effort).
    pub async fn close(mut self) {
        let _ = self.writer.write_all(b"</stream:stream>").await;
        let _ = self.writer.shutdown().await;
    }
}

/// What to do after binding.
#[derive(Clone, Copy, Debug)]
pub struct LoginSteps {
    pub roster: bool,
    pub presence: bool,
}

fn unexpected(during: &'static str, el: &Element) -> ConnError {
    ConnError::Unexpected {
        during,
        got: el.to_xml(),
    }
}

async fn open_stream<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader: &mut FrameReader<R>,
    writer: &mut W,
    domain: &str,
) -> Result<Element, ConnError> {
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
    );
    writer.write_all(header.as_bytes()).await?;
    match reader.next().await? {
        Frame::Header(_) => {}
        Frame::Element(el) => return Err(unexpected("opening the stream", &el)),
        Frame::Close => return Err(ConnError::Closed),
    }
    let features = reader.element("reading stream features").await?;
    if !features.is("features", ns::STREAM) {
        return Err(unexpected("reading stream features", &features));
    }
    Ok(features)
}

/// Connects `user` (a localpart) and logs in: STARTTLS if asked, SASL, bind, then `steps`.
pub async fn login(target: &Target, user: &str, steps: LoginSteps) -> Result<Session, ConnError> {
    tokio::time::timeout(target.timeout, login_inner(target, user, steps))
        .await
        .map_err(|_| ConnError::Timeout(target.timeout))?
}

/// A connection ready to authenticate: TCP, STARTTLS if asked, the stream opened.
pub struct Unauthenticated {
    pub reader: FrameReader<tokio::io::ReadHalf<Io>>,
    pub writer: tokio::io::WriteHalf<Io>,
    /// The stream features offered before authentication.
    pub features: Element,
}

/// Connects and opens the stream (after STARTTLS if the target asks for it), stopping before SASL.
pub async fn connect(target: &Target) -> Result<Unauthenticated, ConnError> {
    tokio::time::timeout(target.timeout, connect_inner(target))
        .await
        .map_err(|_| ConnError::Timeout(target.timeout))?
}

/// A TCP connection to the target, from the next source address when several are used.
async fn tcp_connect(target: &Target) -> Result<TcpStream, ConnError> {
    if target.sources <= 1 || !target.addr.ip().is_loopback() || !target.addr.is_ipv4() {
        return Ok(TcpStream::connect(target.addr).await?);
    }
    let n = target
        .next_source
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        % usize::from(target.sources);
    let source = std::net::Ipv4Addr::new(127, 0, 0, 1 + n as u8);
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    Ok(socket.connect(target.addr).await?)
}

async fn connect_inner(target: &Target) -> Result<Unauthenticated, ConnError> {
    let tcp = tcp_connect(target).await?;
    tcp.set_nodelay(true)?;
    let domain = target.domain.as_str();

    let io = match target.tls {
        TlsMode::Off => match &target.ws_url {
            None => Io::Plain(tcp),
            Some(url) => Io::Ws(Box::new(crate::ws::handshake(tcp, url).await?)),
        },
        TlsMode::Starttls if target.ws_url.is_some() => {
            return Err(ConnError::Target(
                "STARTTLS over a WebSocket: use --tls off (ws:// is plain)".to_owned(),
            ));
        }
        TlsMode::Starttls => {
            let mut tcp = tcp;
            starttls_negotiate(&mut FrameReader::new(&mut tcp), domain).await?;
            let name = ServerName::try_from(domain.to_owned())
                .map_err(|e| ConnError::Target(format!("{domain:?} is no server name: {e}")))?;
            let tls = TlsConnector::from(Arc::clone(&target.tls_config))
                .connect(name, tcp)
                .await?;
            Io::Tls(Box::new(tls))
        }
    };
    let (r, mut writer) = tokio::io::split(io);
    let mut reader = FrameReader::new(r);
    let features = open_stream(&mut reader, &mut writer, domain).await?;
    Ok(Unauthenticated {
        reader,
        writer,
        features,
    })
}

async fn login_inner(target: &Target, user: &str, steps: LoginSteps) -> Result<Session, ConnError> {
    let domain = target.domain.as_str();
    let Unauthenticated {
        mut reader,
        mut writer,
        features,
    } = connect_inner(target).await?;
    authenticate(target, user, &features, &mut reader, &mut writer).await?;

    reader.restart();
    let features = open_stream(&mut reader, &mut writer, domain).await?;
    if !features.has_child("bind", ns::BIND) {
        return Err(ConnError::NotOffered("resource binding".to_owned()));
    }
    writer
        .write_all(
            format!(
                "<iq type='set' id='bind'><bind xmlns='{}'><resource>{}</resource></bind></iq>",
                ns::BIND,
                target.resource
            )
            .as_bytes(),
        )
        .await?;
    let reply = wait_iq(&mut reader, "bind", "binding a resource").await?;
    let jid = reply
        .get_child("bind", ns::BIND)
        .and_then(|b| b.get_child("jid", ns::BIND))
        .map(|j| j.text())
        .ok_or_else(|| unexpected("binding a resource", &reply))?;
    if target.sm {
        // XEP-0198 §3, with resumption as mobile clients ask for it.
        if !features.has_child("sm", ns::SM) {
            return Err(ConnError::NotOffered("stream management".to_owned()));
        }
        writer
            .write_all(format!("<enable xmlns='{}' resume='true'/>", ns::SM).as_bytes())
            .await?;
        let enabled = reader.element("enabling stream management").await?;
        if !enabled.is("enabled", ns::SM) {
            return Err(unexpected("enabling stream management", &enabled));
        }
        reader.sm_base = Some(reader.stanzas);
    }
    if target.carbons {
        // XEP-0280 §4.
        writer
            .write_all(b"<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
            .await?;
        wait_iq(&mut reader, "carbons", "enabling carbons").await?;
    }
    // RFC 3921's session establishment, for servers that still require it (RFC 6121 §A).
    if let Some(session) = features.get_child("session", ns::SESSION)
        && !session.has_child("optional", ns::SESSION)
    {
        writer
            .write_all(
                format!(
                    "<iq type='set' id='sess'><session xmlns='{}'/></iq>",
                    ns::SESSION
                )
                .as_bytes(),
            )
            .await?;
        wait_iq(&mut reader, "sess", "establishing the session").await?;
    }
    let mut roster_items = 0;
    if steps.roster {
        writer
            .write_all(
                format!(
                    "<iq type='get' id='roster'><query xmlns='{}'/></iq>",
                    ns::ROSTER
                )
                .as_bytes(),
            )
            .await?;
        let reply = wait_iq(&mut reader, "roster", "fetching the roster").await?;
        roster_items = reply
            .get_child("query", ns::ROSTER)
            .map_or(0, |q| q.children().filter(|c| c.name() == "item").count());
    }
    if steps.presence {
        writer.write_all(b"<presence/>").await?;
    }
    Ok(Session {
        reader,
        writer,
        jid,
        roster_items,
    })
}

/// Waits for the `<proceed/>` after asking for STARTTLS on a fresh stream.
async fn starttls_negotiate(
    reader: &mut FrameReader<&mut TcpStream>,
    domain: &str,
) -> Result<(), ConnError> {
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}' version='1.0'>"
    );
    reader.io.write_all(header.as_bytes()).await?;
    match reader.next().await? {
        Frame::Header(_) => {}
        Frame::Element(el) => return Err(unexpected("opening the stream", &el)),
        Frame::Close => return Err(ConnError::Closed),
    }
    let features = reader.element("reading stream features").await?;
    if !features.has_child("starttls", ns::TLS) {
        return Err(ConnError::NotOffered("STARTTLS".to_owned()));
    }
    reader
        .io
        .write_all(format!("<starttls xmlns='{}'/>", ns::TLS).as_bytes())
        .await?;
    let reply = reader.element("starting TLS").await?;
    if !reply.is("proceed", ns::TLS) {
        return Err(unexpected("starting TLS", &reply));
    }
    // RFC 6120 §5.4.3.3: nothing received before the handshake counts; the reader is dropped.
    Ok(())
}

/// Waits for the iq reply with `id`, skipping anything else (pushes, presence, messages).
async fn wait_iq<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    id: &str,
    during: &'static str,
) -> Result<Element, ConnError> {
    loop {
        let el = reader.element(during).await?;
        if el.name() == "iq" && el.attr("id") == Some(id) {
            return if el.attr("type") == Some("result") {
                Ok(el)
            } else {
                Err(unexpected(during, &el))
            };
        }
    }
}

async fn send_sasl<W: AsyncWrite + Unpin>(
    writer: &mut W,
    name: &str,
    mech: Option<&str>,
    data: &[u8],
) -> Result<(), ConnError> {
    let payload = if data.is_empty() {
        "=".to_owned()
    } else {
        B64.encode(data)
    };
    let mech = mech.map_or(String::new(), |m| format!(" mechanism='{m}'"));
    writer
        .write_all(format!("<{name} xmlns='{}'{mech}>{payload}</{name}>", ns::SASL).as_bytes())
        .await?;
    Ok(())
}

fn sasl_payload(el: &Element) -> Result<Vec<u8>, ConnError> {
    let text = el.text();
    let text = text.trim();
    if text.is_empty() || text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text)
        .map_err(|e| ConnError::Sasl(format!("bad base64 from the server: {e}")))
}

/// `s=` and `i=` of a SCRAM server-first message.
fn salt_and_iterations(server_first: &[u8]) -> Option<(Vec<u8>, u32)> {
    let text = std::str::from_utf8(server_first).ok()?;
    let mut salt = None;
    let mut iterations = None;
    for part in text.split(',') {
        if let Some(s) = part.strip_prefix("s=") {
            salt = B64.decode(s).ok();
        } else if let Some(i) = part.strip_prefix("i=") {
            iterations = i.parse().ok();
        }
    }
    Some((salt?, iterations?))
}

async fn authenticate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    target: &Target,
    user: &str,
    features: &Element,
    reader: &mut FrameReader<R>,
    writer: &mut W,
) -> Result<(), ConnError> {
    let offered = features
        .get_child("mechanisms", ns::SASL)
        .is_some_and(|m| m.children().any(|c| c.text() == target.mech.name()));
    if !offered {
        return Err(ConnError::NotOffered(target.mech.name().to_owned()));
    }
    let hash = match target.mech {
        Mech::Plain => {
            send_sasl(
                writer,
                "auth",
                Some("PLAIN"),
                &plain(None, user, &target.password),
            )
            .await?;
            let reply = reader.element("authenticating").await?;
            return if reply.is("success", ns::SASL) {
                Ok(())
            } else {
                Err(unexpected("authenticating", &reply))
            };
        }
        Mech::ScramSha1 => ScramHash::Sha1,
        Mech::ScramSha256 => ScramHash::Sha256,
    };
    let mut client = ScramClient::new(hash, user, &target.password, None, None)
        .map_err(|e| ConnError::Sasl(e.to_string()))?;
    send_sasl(
        writer,
        "auth",
        Some(target.mech.name()),
        &client.client_first(),
    )
    .await?;
    let challenge = reader.element("authenticating").await?;
    if !challenge.is("challenge", ns::SASL) {
        return Err(unexpected("authenticating", &challenge));
    }
    let server_first = sasl_payload(&challenge)?;
    let cached = salt_and_iterations(&server_first).and_then(|(salt, i)| {
        let cache = target.cache.lock().ok()?;
        cache.get(hash, &salt, i).cloned()
    });
    let hit = cached.is_some();
    if let Some(salted) = cached {
        client = client.with_salted_password(salted);
    }
    let client_final = client
        .handle_server_first(&server_first)
        .map_err(|e| ConnError::Sasl(e.to_string()))?;
    if !hit
        && let Some(salted) = client.salted_password().cloned()
        && let Ok(mut cache) = target.cache.lock()
    {
        cache.misses += 1;
        cache.insert(salted);
    }
    send_sasl(writer, "response", None, &client_final).await?;
    let mut reply = reader.element("authenticating").await?;
    // Some servers send server-final in a challenge and want an empty response (RFC 6120 §6.3.10
    // allows either); the signature is checked in both cases.
    if reply.is("challenge", ns::SASL) {
        client
            .verify_server_final(&sasl_payload(&reply)?)
            .map_err(|e| ConnError::Sasl(e.to_string()))?;
        send_sasl(writer, "response", None, &[]).await?;
        reply = reader.element("authenticating").await?;
        if reply.is("success", ns::SASL) {
            return Ok(());
        }
        return Err(unexpected("authenticating", &reply));
    }
    if !reply.is("success", ns::SASL) {
        return Err(unexpected("authenticating", &reply));
    }
    client
        .verify_server_final(&sasl_payload(&reply)?)
        .map_err(|e| ConnError::Sasl(e.to_string()))
}

/// What a XEP-0484 FAST client keeps between its connections.
pub struct FastClient {
    pub user: String,
    /// Its XEP-0388 `<user-agent id/>` (a UUID).
    pub user_agent: String,
    /// The current FAST token (`HT-SHA-256-NONE`).
    pub token: String,
    /// The XEP-0198 session to resume.
    pub sm_id: String,
    /// Stanzas handled on that session (XEP-0198 `h`).
    pub inbound: u32,
}

/// A UUID (version 4 layout) for a bench client's `<user-agent id/>`, from the user's name.
pub fn user_agent_id(user: &str, salt: u64) -> String {
    use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
    let h = |k: u64| BuildHasherDefault::<DefaultHasher>::default().hash_one((user, salt, k));
    let (a, b) = (h(1), h(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn sasl2_user_agent(id: &str) -> String {
    format!("<user-agent id='{id}'><software>starling-bench</software></user-agent>")
}

/// The first login of a FAST client (XEP-0388 SASL2 with SCRAM, XEP-0386 Bind2 with XEP-0198
/// resumable stream management inline, and a XEP-0484 token asked for).
pub async fn sasl2_first_login(
    target: &Target,
    user: &str,
    user_agent: &str,
) -> Result<(Session, FastClient), ConnError> {
    tokio::time::timeout(target.timeout, async {
        let Unauthenticated {
            mut reader,
            mut writer,
            features,
        } = connect_inner(target).await?;
        let auth = features
            .get_child("authentication", ns::SASL2)
            .ok_or_else(|| ConnError::NotOffered("SASL2".to_owned()))?;
        let fast_offered = auth
            .get_child("inline", ns::SASL2)
            .and_then(|i| i.get_child("fast", ns::FAST))
            .is_some_and(|f| f.children().any(|m| m.text() == "HT-SHA-256-NONE"));
        if !fast_offered {
            return Err(ConnError::NotOffered("FAST with HT-SHA-256-NONE".to_owned()));
        }
        let hash = match target.mech {
            Mech::ScramSha1 => ScramHash::Sha1,
            Mech::ScramSha256 | Mech::Plain => ScramHash::Sha256,
        };
        let mech = if hash == ScramHash::Sha1 { "SCRAM-SHA-1" } else { "SCRAM-SHA-256" };
        let mut client = ScramClient::new(hash, user, &target.password, None, None)
            .map_err(|e| ConnError::Sasl(e.to_string()))?;
        let inline = format!(
            "{}<bind xmlns='{}'><tag>{}</tag><enable xmlns='{}' resume='true'/></bind>\
             <request-token xmlns='{}' mechanism='HT-SHA-256-NONE'/>",
            sasl2_user_agent(user_agent),
            ns::BIND2,
            target.resource,
            ns::SM,
            ns::FAST
        );
        writer
            .write_all(
                format!(
                    "<authenticate xmlns='{}' mechanism='{mech}'><initial-response>{}</initial-response>{inline}</authenticate>",
                    ns::SASL2,
                    B64.encode(client.client_first())
                )
                .as_bytes(),
            )
            .await?;
        let challenge = reader.element("authenticating (SASL2)").await?;
        if !challenge.is("challenge", ns::SASL2) {
            return Err(unexpected("authenticating (SASL2)", &challenge));
        }
        let server_first = B64
            .decode(challenge.text().trim())
            .map_err(|e| ConnError::Sasl(format!("bad base64 from the server: {e}")))?;
        let cached = salt_and_iterations(&server_first).and_then(|(salt, i)| {
            let cache = target.cache.lock().ok()?;
            cache.get(hash, &salt, i).cloned()
        });
        let hit = cached.is_some();
        if let Some(salted) = cached {
            client = client.with_salted_password(salted);
        }
        let client_final = client
            .handle_server_first(&server_first)
            .map_err(|e| ConnError::Sasl(e.to_string()))?;
        if !hit
            && let Some(salted) = client.salted_password().cloned()
            && let Ok(mut cache) = target.cache.lock()
        {
            cache.misses += 1;
            cache.insert(salted);
        }
        writer
            .write_all(
                format!("<response xmlns='{}'>{}</response>", ns::SASL2, B64.encode(client_final))
                    .as_bytes(),
            )
            .await?;
        let success = reader.element("authenticating (SASL2)").await?;
        if !success.is("success", ns::SASL2) {
            return Err(unexpected("authenticating (SASL2)", &success));
        }
        let data = success
            .get_child("additional-data", ns::SASL2)
            .map(|d| B64.decode(d.text().trim()).unwrap_or_default())
            .unwrap_or_default();
        client
            .verify_server_final(&data)
            .map_err(|e| ConnError::Sasl(e.to_string()))?;
        let token = success
            .get_child("token", ns::FAST)
            .and_then(|t| t.attr("token"))
            .ok_or_else(|| unexpected("asking for a FAST token", &success))?
            .to_owned();
        let sm_id = success
            .get_child("bound", ns::BIND2)
            .and_then(|b| b.get_child("enabled", ns::SM))
            .and_then(|e| e.attr("id"))
            .ok_or_else(|| unexpected("enabling stream management inline", &success))?
            .to_owned();
        let jid = success
            .get_child("authorization-identifier", ns::SASL2)
            .map(Element::text)
            .unwrap_or_default();
        reader.sm_base = Some(reader.stanzas);
        // The features of the bound stream.
        reader.element("reading stream features").await?;
        let fast = FastClient {
            user: user.to_owned(),
            user_agent: user_agent.to_owned(),
            token,
            sm_id,
            inbound: 0,
        };
        Ok((
            Session {
                reader,
                writer,
                jid,
                roster_items: 0,
            },
            fast,
        ))
    })
    .await
    .map_err(|_| ConnError::Timeout(target.timeout))?
}

/// A FAST reconnect (XEP-0484): after the TLS stream is open, one write (`<authenticate/>`
/// with the token, XEP-0198 `<resume/>` and a Bind2 fallback) and one reply. Returns the session
/// and whether it was resumed; a rotated token or a new stream management id is kept in
/// `fast`.
pub async fn fast_reconnect(
    target: &Target,
    fast: &mut FastClient,
) -> Result<(Session, bool), ConnError> {
    tokio::time::timeout(target.timeout, async {
        let Unauthenticated {
            mut reader,
            mut writer,
            ..
        } = connect_inner(target).await?;
        let mut msg = fast.user.as_bytes().to_vec();
        msg.push(0);
        msg.extend_from_slice(&starling_sasl::ht::initiator_hash(fast.token.as_bytes(), &[]));
        writer
            .write_all(
                format!(
                    "<authenticate xmlns='{}' mechanism='HT-SHA-256-NONE'><initial-response>{}</initial-response>\
                     {}<fast xmlns='{}'/><resume xmlns='{}' previd='{}' h='{}'/>\
                     <bind xmlns='{}'><tag>{}</tag><enable xmlns='{}' resume='true'/></bind></authenticate>",
                    ns::SASL2,
                    B64.encode(&msg),
                    sasl2_user_agent(&fast.user_agent),
                    ns::FAST,
                    ns::SM,
                    fast.sm_id,
                    fast.inbound,
                    ns::BIND2,
                    target.resource,
                    ns::SM,
                )
                .as_bytes(),
            )
            .await?;
        let success = reader.element("authenticating with FAST").await?;
        if !success.is("success", ns::SASL2) {
            return Err(unexpected("authenticating with FAST", &success));
        }
        let responder = success
            .get_child("additional-data", ns::SASL2)
            .and_then(|d| B64.decode(d.text().trim()).ok())
            .unwrap_or_default();
        if responder != starling_sasl::ht::responder_hash(fast.token.as_bytes(), &[]) {
            return Err(ConnError::Sasl("wrong HT responder hash".to_owned()));
        }
        if let Some(t) = success.get_child("token", ns::FAST).and_then(|t| t.attr("token")) {
            fast.token = t.to_owned();
        }
        let resumed = success.has_child("resumed", ns::SM);
        if resumed {
            // XEP-0198 §5: the count goes on.
            reader.sm_base = Some(reader.stanzas.wrapping_sub(fast.inbound));
        } else {
            let id = success
                .get_child("bound", ns::BIND2)
                .and_then(|b| b.get_child("enabled", ns::SM))
                .and_then(|e| e.attr("id"))
                .ok_or_else(|| unexpected("binding after a failed resumption", &success))?;
            fast.sm_id = id.to_owned();
            fast.inbound = 0;
            reader.sm_base = Some(reader.stanzas);
            reader.element("reading stream features").await?;
        }
        let jid = success
            .get_child("authorization-identifier", ns::SASL2)
            .map(Element::text)
            .unwrap_or_default();
        Ok((
            Session {
                reader,
                writer,
                jid,
                roster_items: 0,
            },
            resumed,
        ))
    })
    .await
    .map_err(|_| ConnError::Timeout(target.timeout))?
}

impl Session {
    /// XEP-0198 `h` of this session: stanzas received since stream management was enabled.
    pub fn handled(&self) -> u32 {
        self.reader
            .sm_base
            .map_or(0, |b| self.reader.stanzas.wrapping_sub(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_first_parameters() {
        assert_eq!(
            salt_and_iterations(b"r=abc,s=QSXCR+Q6sek8bf92,i=4096"),
            Some((B64.decode("QSXCR+Q6sek8bf92").unwrap(), 4096))
        );
        assert_eq!(salt_and_iterations(b"r=abc,i=4096"), None);
        assert_eq!(salt_and_iterations(b"r=abc,s=!!,i=4096"), None);
    }
}
