//! The test client against scripted fake servers on 127.0.0.1 (plain TCP, STARTTLS, direct TLS),
//! with the server side of SASL from `starling_sasl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use starling_sasl::{ChannelBindings, Mechanism, SaslError, ScramCredential, ServerSession, Step};
use starling_stream::{Decoder, Frame, Limits, StreamHeader};
use starling_testkit::{
    ChannelBindingType, Client, Element, Security, TestError, assert_matches, ns, parse_xml,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

// ------------------------------------------------------------------ the fake server

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The server end of one connection, driven by the test script.
struct Peer {
    io: Box<dyn Io>,
    dec: Decoder,
    buf: Vec<u8>,
}

const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s1' version='1.0' xml:lang='en'>";
const STREAM_ERROR_NWF: &str = "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
    <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad</text></stream:error>";

impl Peer {
    fn new(io: Box<dyn Io>) -> Peer {
        Peer {
            io,
            dec: Decoder::new(Limits::DEFAULT),
            buf: Vec::new(),
        }
    }

    /// The next frame from the client; `None` on EOF.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            let mut input = &self.buf[..];
            let f = self.dec.next_frame(&mut input).unwrap();
            let consumed = self.buf.len() - input.len();
            self.buf.drain(..consumed);
            if f.is_some() {
                return f;
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.unwrap();
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn element(&mut self) -> Element {
        match self.frame().await {
            Some(Frame::Element(e)) => e,
            other => panic!("server expected an element, got {other:?}"),
        }
    }

    async fn send(&mut self, s: &str) {
        self.io.write_all(s.as_bytes()).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// Reads the client's stream header (fresh decoder) and answers with ours and `features`.
    async fn open(&mut self, features: &str) -> StreamHeader {
        self.dec = Decoder::new(Limits::DEFAULT);
        let Some(Frame::Header(h)) = self.frame().await else {
            panic!("server expected a stream header")
        };
        self.send(&format!("{SERVER_HEADER}{features}")).await;
        h
    }

    /// STARTTLS: reads `<starttls/>`, answers `<proceed/>`, accepts TLS; returns the binding data.
    async fn starttls(self, config: Arc<ServerConfig>) -> (Peer, ChannelBindings) {
        let mut peer = self;
        let req = peer.element().await;
        assert!(req.is("starttls", ns::TLS), "{req}");
        peer.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        assert!(peer.buf.is_empty());
        peer.tls(config).await
    }

    async fn tls(self, config: Arc<ServerConfig>) -> (Peer, ChannelBindings) {
        let tls = TlsAcceptor::from(config).accept(self.io).await.unwrap();
        let conn = tls.get_ref().1;
        let bindings = ChannelBindings {
            // RFC 9266: empty context (the client passes none; the same in TLS 1.3).
            tls_exporter: conn
                .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", Some(&[]))
                .ok(),
            // Our certificate is signed with SHA-256 (RFC 5929 §4.1).
            tls_server_end_point: Some(Sha256::digest(&cert().0[..]).to_vec()),
        };
        (Peer::new(Box::new(tls)), bindings)
    }

    /// Runs one SASL exchange with the real server implementation; user `juliet`, password
    /// `pencil`. Returns whether it succeeded.
    async fn sasl(&mut self, bindings: ChannelBindings) -> bool {
        let auth = self.element().await;
        assert!(auth.is("auth", ns::SASL), "{auth}");
        let mech = Mechanism::from_name(auth.attr("mechanism").unwrap()).unwrap();
        let initial = B64.decode(auth.text()).unwrap();
        let (mut session, mut step) =
            ServerSession::start(mech, "localhost", bindings, true, Some(&initial));
        loop {
            step = match step {
                Step::NeedCredentials { username, hash } => {
                    let cred = (username == "juliet")
                        .then(|| ScramCredential::generate(hash, "pencil", 4096).unwrap());
                    session.provide_credentials(cred)
                }
                Step::Challenge(data) => {
                    let c = format!(
                        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
                        B64.encode(data)
                    );
                    self.send(&c).await;
                    let resp = self.element().await;
                    assert!(resp.is("response", ns::SASL), "{resp}");
                    session.step(&B64.decode(resp.text()).unwrap())
                }
                Step::Success {
                    additional_data, ..
                } => {
                    let data = additional_data.map(|d| B64.encode(d)).unwrap_or_default();
                    self.send(&format!(
                        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{data}</success>"
                    ))
                    .await;
                    return true;
                }
                Step::Failure(f) => {
                    self.send(&format!(
                        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><{f}/>\
                         <text>no</text></failure>"
                    ))
                    .await;
                    return false;
                }
            }
        }
    }

    /// Answers one bind request with `juliet@localhost/<resource or "gen">`.
    async fn bind(&mut self) {
        let iq = self.element().await;
        assert!(iq.is("iq", ns::CLIENT), "{iq}");
        assert_eq!(iq.attr("type"), Some("set"));
        let bind = iq.get_child("bind", ns::BIND).unwrap();
        let resource = bind
            .get_child("resource", ns::BIND)
            .map(Element::text)
            .unwrap_or_else(|| "gen".to_owned());
        self.send(&format!(
            "<iq type='result' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>juliet@localhost/{resource}</jid></bind></iq>",
            iq.attr("id").unwrap()
        ))
        .await;
    }

    /// Waits for the client's `</stream:stream>`, answers it and closes.
    async fn close(mut self) {
        assert_eq!(self.frame().await, Some(Frame::Close));
        self.send("</stream:stream>").await;
        self.io.shutdown().await.unwrap();
    }
}

/// Accepts one connection on 127.0.0.1 and runs `script` on it.
async fn serve<F, Fut>(script: F) -> (SocketAddr, JoinHandle<()>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        script(Peer::new(Box::new(tcp))).await;
    });
    (addr, handle)
}

/// One self-signed P-256 certificate for `localhost` (DER cert, PKCS#8 key), shared by all tests.
fn cert() -> &'static (Vec<u8>, Vec<u8>) {
    static CERT: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
    CERT.get_or_init(|| {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.der().to_vec(), key.serialize_der())
    })
}

fn server_config(alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let (cert_der, key_der) = cert();
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.clone())),
            )
            .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

const FEATURES_STARTTLS: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
    <required/></starttls></stream:features>";
const FEATURES_SASL: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>SCRAM-SHA-256-PLUS</mechanism><mechanism>SCRAM-SHA-256</mechanism>\
    <mechanism>PLAIN</mechanism></mechanisms>\
    <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/>\
    <channel-binding type='tls-server-end-point'/></sasl-channel-binding></stream:features>";
const FEATURES_BIND: &str =
    "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>";

fn short(c: &mut Client) {
    c.set_timeout(Duration::from_millis(300));
}

// ------------------------------------------------------------------ plain TCP: expectations

#[tokio::test]
async fn open_stream_expect_and_stream_error() {
    let (addr, server) = serve(async |mut p: Peer| {
        let h = p.open(FEATURES_SASL).await;
        assert_eq!(h.to.as_deref(), Some("localhost"));
        assert_eq!(h.version.as_deref(), Some("1.0"));
        // What the client sent, exactly.
        let m = p.element().await;
        assert_eq!(
            m.to_xml(),
            "<message xmlns='jabber:client' to='romeo@localhost' type='chat'><body>hi &amp; bye</body></message>"
        );
        let raw = p.element().await;
        assert_eq!(raw.to_xml(), "<presence xmlns='jabber:client'/>");
        // A stanza trickling in byte by byte, then the error and the close in one write.
        for b in "<message from='romeo@localhost/a' id='x7' type='chat'><body>back</body></message>"
            .bytes()
        {
            p.send(std::str::from_utf8(&[b]).unwrap()).await;
        }
        p.send(&format!("{STREAM_ERROR_NWF}</stream:stream>")).await;
    })
    .await;

    let mut c = Client::connect(addr).await.unwrap();
    let (header, features) = c.open_stream("localhost").await.unwrap();
    assert_eq!(header.from.as_deref(), Some("localhost"));
    assert_eq!(header.id.as_deref(), Some("s1"));
    assert_eq!(header.lang.as_deref(), Some("en"));
    assert_eq!(c.stream_header(), Some(&header));
    assert_matches(FEATURES_SASL, &features);
    assert_eq!(c.features(), Some(&features));

    let msg = Element::new("message", ns::CLIENT)
        .with_attr("to", "romeo@localhost")
        .with_attr("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text("hi & bye"));
    c.send(&msg).await.unwrap();
    c.send_xml("<presence/>").await.unwrap();

    let got = c
        .expect(
            "<message from='romeo@localhost/a' id='{*}' type='chat'>
               <body>back</body>
             </message>",
        )
        .await
        .unwrap();
    assert_eq!(got.attr("id"), Some("x7"));
    let err = c.expect_stream_error("not-well-formed").await.unwrap();
    assert_eq!(
        err.get_child("text", ns::STREAMS)
            .map(Element::text)
            .as_deref(),
        Some("bad")
    );
    server.await.unwrap();
}

#[tokio::test]
async fn expect_reports_mismatch_and_close_tag() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send("<message type='normal'><body>x</body></message></stream:stream>")
            .await;
        // Keep the socket open until the client is done.
        assert_eq!(p.frame().await, None);
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let err = c
        .expect("<message type='chat'><body>x</body></message>")
        .await
        .unwrap_err();
    let TestError::Mismatch(msg) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        msg,
        "stanza mismatch at /message: attribute type: expected \"chat\", got \"normal\"\n\
         expected: <message type='chat'><body>x</body></message>\n  \
         actual: <message type='normal'><body>x</body></message>"
    );
    // The close tag is not an element.
    let err = c.expect("<message/>").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected: expected <message/>, got </stream:stream>"
    );
    drop(c);
    server.await.unwrap();
}

#[tokio::test]
async fn stream_error_without_close_tag_fails() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send(STREAM_ERROR_NWF).await;
        // Dropped without </stream:stream>.
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let err = c.expect_stream_error("not-well-formed").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected: expected </stream:stream> after the stream error, got connection closed by the server"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn stream_error_without_eof_times_out() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send(&format!("{STREAM_ERROR_NWF}</stream:stream>")).await;
        // The TCP connection stays open until the client gives up.
        assert_eq!(p.frame().await, None);
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    short(&mut c);
    let err = c.expect_stream_error("not-well-formed").await.unwrap_err();
    assert!(
        matches!(&err, TestError::Timeout { waiting_for, .. } if waiting_for == "the connection to close"),
        "{err:?}"
    );
    drop(c);
    server.await.unwrap();
}

#[tokio::test]
async fn stream_error_condition_must_match() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send(&format!("{STREAM_ERROR_NWF}</stream:stream>")).await;
        p.send(&format!("{STREAM_ERROR_NWF}</stream:stream>")).await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let err = c.expect_stream_error("policy-violation").await.unwrap_err();
    assert!(
        matches!(&err, TestError::Mismatch(m) if m.starts_with("expected stream error condition <policy-violation/>, got <stream:error><not-well-formed")),
        "{err:?}"
    );
    server.await.unwrap();

    // The XML form matches the whole element.
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send(&format!("{STREAM_ERROR_NWF}</stream:stream>")).await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.expect_stream_error(
        "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{*}</text></stream:error>",
    )
    .await
    .unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn silence_and_eof() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.send("<presence from='a@localhost'/>").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.expect_silence(Duration::from_millis(100)).await.unwrap();
    let err = c.expect_silence(Duration::from_secs(3)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected: expected silence, got <presence from='a@localhost'/>"
    );
    c.expect_eof().await.unwrap();
    // After EOF every receive says so.
    assert!(matches!(c.recv().await, Err(TestError::Eof)));
    server.await.unwrap();
}

#[tokio::test]
async fn expect_eof_fails_on_a_stanza_and_silence_fails_on_eof() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send("<message/>").await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let err = c.expect_eof().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected: expected the connection to close, got <message/>"
    );
    let err = c.expect_silence(Duration::from_secs(3)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected: expected silence, got connection closed by the server"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn partial_element_is_not_silence_and_recv_times_out() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send("<message><bo").await;
        assert_eq!(p.frame().await, None);
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    short(&mut c);
    let err = c.recv().await.unwrap_err();
    assert_eq!(err.to_string(), "timed out after 300ms waiting for a frame");
    let err = c
        .expect_silence(Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unexpected: expected silence, got part of an element"
    );
    drop(c);
    server.await.unwrap();
}

#[tokio::test]
async fn invalid_xml_from_the_server_is_an_error() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_BIND).await;
        p.send("<message></presence>").await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    assert!(matches!(c.recv().await, Err(TestError::Decode(_))));
    server.await.unwrap();
}

#[tokio::test]
async fn open_stream_requires_features() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(&format!("{STREAM_ERROR_NWF}</stream:stream>")).await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    let err = c.open_stream("localhost").await.unwrap_err();
    assert!(
        matches!(&err, TestError::Unexpected(m) if m.starts_with("expected <stream:features/>, got <stream:error>")),
        "{err:?}"
    );
    server.await.unwrap();
}

// ------------------------------------------------------------------ negotiation

#[tokio::test]
async fn starttls_scram_plus_tls_exporter_bind_close() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_STARTTLS).await;
        let (mut p, bindings) = p.starttls(server_config(&[])).await;
        p.open(FEATURES_SASL).await;
        assert!(p.sasl(bindings).await);
        p.open(FEATURES_BIND).await;
        p.bind().await;
        p.close().await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    let (_, features) = c.open_stream("localhost").await.unwrap();
    assert_matches(FEATURES_STARTTLS, &features);
    assert!(!c.is_tls());
    assert_eq!(c.channel_binding(ChannelBindingType::TlsExporter), None);
    let features = c.starttls("localhost").await.unwrap();
    assert_matches(FEATURES_SASL, &features);
    assert!(c.is_tls());
    assert_eq!(c.tls_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(c.alpn_protocol(), None);
    assert_eq!(c.peer_certificate(), Some(&cert().0[..]));
    assert_eq!(
        c.channel_binding(ChannelBindingType::TlsExporter)
            .unwrap()
            .len(),
        32
    );
    let features = c
        .authenticate("localhost", "SCRAM-SHA-256-PLUS", "juliet", "pencil", None)
        .await
        .unwrap();
    assert_matches(FEATURES_BIND, &features);
    let jid = c.bind(Some("balcony")).await.unwrap();
    assert_eq!(jid.to_string(), "juliet@localhost/balcony");
    assert_eq!(c.jid(), Some(&jid));
    c.close().await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn direct_tls_alpn_and_tls_server_end_point() {
    let (addr, server) = serve(async |p: Peer| {
        let (mut p, bindings) = p.tls(server_config(&[b"xmpp-client"])).await;
        p.open(FEATURES_SASL).await;
        assert!(p.sasl(bindings).await);
        p.open(FEATURES_BIND).await;
        p.bind().await;
        p.close().await;
    })
    .await;
    let mut c = Client::connect_direct_tls(addr, "localhost").await.unwrap();
    assert_eq!(c.alpn_protocol(), Some(&b"xmpp-client"[..]));
    assert_eq!(
        c.channel_binding(ChannelBindingType::TlsServerEndPoint),
        Some(Sha256::digest(&cert().0[..]).to_vec())
    );
    c.open_stream("localhost").await.unwrap();
    c.authenticate_with_binding(
        "localhost",
        "SCRAM-SHA-1-PLUS",
        "juliet",
        "pencil",
        None,
        Some(ChannelBindingType::TlsServerEndPoint),
    )
    .await
    .unwrap();
    let jid = c.bind(None).await.unwrap();
    assert_eq!(jid.to_string(), "juliet@localhost/gen");
    c.close().await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn login_with_starttls_and_direct_tls() {
    for security in [Security::StartTls, Security::DirectTls, Security::Plain] {
        let (addr, server) = serve(async move |p: Peer| {
            let (mut p, bindings) = match security {
                Security::DirectTls => p.tls(server_config(&[b"xmpp-client"])).await,
                Security::StartTls => {
                    let mut p = p;
                    p.open(FEATURES_STARTTLS).await;
                    p.starttls(server_config(&[])).await
                }
                Security::Plain => (p, ChannelBindings::none()),
            };
            p.open(FEATURES_SASL).await;
            assert!(p.sasl(bindings).await);
            p.open(FEATURES_BIND).await;
            p.bind().await;
            p.close().await;
        })
        .await;
        let c = Client::login(addr, security, "localhost", "juliet", "pencil", Some("r"))
            .await
            .unwrap();
        assert_eq!(c.is_tls(), security != Security::Plain);
        assert_eq!(c.jid().unwrap().to_string(), "juliet@localhost/r");
        c.close().await.unwrap();
        server.await.unwrap();
    }
}

#[tokio::test]
async fn sasl_failure_then_plain_success() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_SASL).await;
        assert!(!p.sasl(ChannelBindings::none()).await);
        assert!(!p.sasl(ChannelBindings::none()).await);
        assert!(p.sasl(ChannelBindings::none()).await);
        p.open(FEATURES_BIND).await;
        assert_eq!(p.frame().await, None);
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let err = c
        .authenticate("localhost", "SCRAM-SHA-256", "juliet", "wrong", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TestError::SaslFailure(f) if f == "not-authorized"),
        "{err:?}"
    );
    let err = c
        .authenticate("localhost", "PLAIN", "juliet", "wrong", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TestError::SaslFailure(f) if f == "not-authorized"),
        "{err:?}"
    );
    let features = c
        .authenticate("localhost", "PLAIN", "juliet", "pencil", None)
        .await
        .unwrap();
    assert_matches(FEATURES_BIND, &features);
    // Without TLS there is nothing to bind to.
    let err = c
        .authenticate("localhost", "SCRAM-SHA-256-PLUS", "juliet", "pencil", None)
        .await
        .unwrap_err();
    assert!(matches!(err, TestError::Invalid(_)), "{err:?}");
    drop(c);
    server.await.unwrap();
}

#[tokio::test]
async fn wrong_server_signature_is_rejected() {
    let (addr, server) = serve(async |mut p: Peer| {
        p.open(FEATURES_SASL).await;
        let auth = p.element().await;
        let initial = B64.decode(auth.text()).unwrap();
        let (mut s, step) = ServerSession::start(
            Mechanism::ScramSha256,
            "localhost",
            ChannelBindings::none(),
            false,
            Some(&initial),
        );
        assert!(matches!(step, Step::NeedCredentials { .. }));
        let cred =
            ScramCredential::generate(starling_sasl::ScramHash::Sha256, "pencil", 4096).unwrap();
        let Step::Challenge(first) = s.provide_credentials(Some(cred)) else {
            panic!()
        };
        p.send(&format!(
            "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</challenge>",
            B64.encode(first)
        ))
        .await;
        let _response = p.element().await;
        // A server that does not know the password cannot produce this signature.
        let bogus = format!("v={}", B64.encode([0u8; 32]));
        p.send(&format!(
            "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</success>",
            B64.encode(bogus)
        ))
        .await;
    })
    .await;
    let mut c = Client::connect(addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let err = c
        .authenticate("localhost", "SCRAM-SHA-256", "juliet", "pencil", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TestError::Sasl(SaslError::ServerSignatureMismatch)),
        "{err:?}"
    );
    server.await.unwrap();
}

#[test]
fn parse_xml_is_reexported() {
    assert!(parse_xml("<iq/>").is("iq", ns::CLIENT));
}
