//! Issue 17: XMPP over WebSocket (RFC 7395) at `/xmpp-websocket` of a whole server, over real
//! sockets with a real WebSocket client (tungstenite): the handshake, the framing of every
//! message, SASL and binding, chat with a TCP client, stream errors, keepalives, the connection
//! limits, and stream management resuming a session on a new WebSocket (XEP-0198 §5).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use starling_proto::Element;
use starling_testkit::matcher::{matches, parse_xml, try_parse_xml};
use starling_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
const SERVER_OPEN: &str = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='{*}' \
     from='localhost' version='1.0' xml:lang='en'/>";
const CLOSE: &str = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

/// What arrived on the WebSocket.
#[derive(Debug, PartialEq)]
enum Got {
    Text(String),
    Ping,
    Close,
    /// The socket ended without a close frame.
    End,
}

/// A TCP connection, or TLS over one.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

struct Ws {
    ws: WebSocketStream<Box<dyn Stream>>,
}

/// A TLS client that accepts any certificate (the test server's is self-signed) but checks
/// the handshake's signatures.
async fn tls_connect(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(starling_net::tls::AcceptAnyCert(
            provider,
        )))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}

impl Ws {
    async fn connect(addr: SocketAddr) -> Ws {
        let tcp = TcpStream::connect(addr).await.unwrap();
        Self::handshake(format!("ws://{addr}/xmpp-websocket"), Box::new(tcp)).await
    }

    /// Over HTTPS (`[http] tls_listen`).
    async fn connect_tls(addr: SocketAddr) -> Ws {
        let tls = tls_connect(addr).await;
        Self::handshake(
            format!("wss://localhost:{}/xmpp-websocket", addr.port()),
            Box::new(tls),
        )
        .await
    }

    async fn handshake(url: String, io: Box<dyn Stream>) -> Ws {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "xmpp".parse().unwrap());
        let (ws, response) = tokio_tungstenite::client_async(request, io).await.unwrap();
        // RFC 7395 §3.1: the server's handshake names the subprotocol.
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "xmpp"
        );
        Ws { ws }
    }

    async fn send(&mut self, xml: &str) {
        self.ws.send(Message::text(xml)).await.unwrap();
    }

    async fn recv(&mut self) -> Got {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("a WebSocket message within 5 s");
            return match next {
                Some(Ok(Message::Text(t))) => Got::Text(t.as_str().to_owned()),
                Some(Ok(Message::Ping(_))) => Got::Ping,
                Some(Ok(Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) => Got::Close,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(_)) | None => Got::End,
            };
        }
    }

    /// The next message, which must be one complete element matching `expected` (see
    /// `starling_testkit::matcher`; the expected XML is in the `jabber:client` namespace).
    async fn expect(&mut self, expected: &str) -> Element {
        let got = self.recv().await;
        let Got::Text(text) = got else {
            panic!("expected {expected}, got {got:?}")
        };
        let actual = try_parse_xml(&text)
            .unwrap_or_else(|e| panic!("a message that is not one element ({e}): {text}"));
        if let Err(e) = matches(&parse_xml(expected), &actual) {
            panic!("{e}\nexpected {expected}\n     got {text}");
        }
        actual
    }

    /// The next message's text, exactly.
    async fn expect_text(&mut self) -> String {
        match self.recv().await {
            Got::Text(t) => t,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// RFC 7395 §3.6: `<close/>`, then the WebSocket closes.
    async fn expect_closed(&mut self) {
        self.expect(CLOSE).await;
        assert!(matches!(self.recv().await, Got::Close | Got::End));
    }

    /// Opens the stream and returns the features.
    async fn open(&mut self) -> Element {
        self.send(OPEN).await;
        self.expect(SERVER_OPEN).await;
        let features = self.expect_text().await;
        assert!(
            features
                .starts_with("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"),
            "{features}"
        );
        try_parse_xml(&features).unwrap()
    }

    /// SASL PLAIN, the restart, and binding `resource`.
    async fn login(&mut self, user: &str, password: &str, resource: &str) {
        self.open().await;
        self.authenticate(user, password).await;
        self.restart_and_bind(user, resource).await;
    }

    async fn authenticate(&mut self, user: &str, password: &str) {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{credentials}</auth>"
        ))
        .await;
        self.expect("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .await;
    }

    async fn restart_and_bind(&mut self, user: &str, resource: &str) {
        // RFC 7395 §3.7: the client restarts the stream with a new <open/>.
        let features = self.open().await;
        assert!(features.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
        self.send(&format!(
            "<iq xmlns='jabber:client' type='set' id='b1'><bind \
             xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>"
        ))
        .await;
        self.expect(&format!(
            "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>{user}@localhost/{resource}</jid></bind></iq>"
        ))
        .await;
    }
}

async fn server() -> TestServer {
    TestServer::start().await
}

/// Sends a raw HTTP request and reads the response head (and the body when it is short).
async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// RFC 7395 §3.1: the handshake must ask for the `xmpp` subprotocol; the answer names it.
#[tokio::test]
async fn the_xmpp_subprotocol_is_required() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    let upgrade = "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
                   Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let without = raw_http(addr, &format!("{upgrade}Connection: close\r\n\r\n")).await;
    assert!(without.starts_with("HTTP/1.1 400 "), "{without}");
    assert!(
        without.ends_with("the WebSocket subprotocol \"xmpp\" is required (RFC 7395 §3.1)"),
        "{without}"
    );
    // A browser opening the URL is told to upgrade (RFC 9110 §15.5.22).
    let plain = raw_http(
        addr,
        "GET /xmpp-websocket HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 426 "), "{plain}");
    assert!(plain.contains("upgrade: websocket\r\n"), "{plain}");
    let other = raw_http(
        addr,
        &format!("{upgrade}Sec-WebSocket-Protocol: mqtt\r\n\r\n"),
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 400 "), "{other}");
    let with = raw_http(
        addr,
        &format!("{upgrade}Sec-WebSocket-Protocol: chat, xmpp\r\n\r\n"),
    )
    .await;
    assert!(with.starts_with("HTTP/1.1 101 "), "{with}");
    assert!(with.contains("sec-websocket-protocol: xmpp\r\n"), "{with}");
    // RFC 6455 §4.2.2: the accept key for the sample nonce.
    assert!(
        with.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{with}"
    );
    server.stop().await;
}

/// RFC 7395 §3.3–§3.4, §3.7 and §3.6: open, SASL, restart, bind; every message one element with
/// its namespace; a chat with a TCP client both ways; the close handshake.
#[tokio::test]
async fn a_websocket_client_chats_with_a_tcp_client() {
    let server = server().await;
    server.add_user("juliet", "balcony-secret").await;
    server.add_user("romeo", "montague-secret").await;
    let addr = server.http_addr.unwrap();
    let mut ws = Ws::connect(addr).await;
    let features = ws.open().await;
    // From loopback the WebSocket counts as secure: no STARTTLS (there is none on a
    // WebSocket), PLAIN offered; no -PLUS (nothing to bind to).
    assert!(!features.has_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls"));
    let mechanisms: Vec<String> = features
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .unwrap()
        .children()
        .map(Element::text)
        .collect();
    assert!(mechanisms.contains(&"PLAIN".to_owned()), "{mechanisms:?}");
    assert!(
        mechanisms.contains(&"SCRAM-SHA-256".to_owned()),
        "{mechanisms:?}"
    );
    assert!(
        !mechanisms.iter().any(|m| m.ends_with("-PLUS")),
        "{mechanisms:?}"
    );
    ws.authenticate("juliet", "balcony-secret").await;
    ws.restart_and_bind("juliet", "browser").await;

    let mut romeo = server.online("romeo", "montague-secret", "phone").await;
    romeo
        .send_xml("<message to='juliet@localhost/browser' type='chat' id='m1'><body>Hi there</body></message>")
        .await
        .unwrap();
    // RFC 7395 §3.3.3: the stanza declares jabber:client itself.
    assert_eq!(
        ws.expect_text().await,
        "<message xmlns='jabber:client' to='juliet@localhost/browser' type='chat' id='m1' \
         from='romeo@localhost/phone'><body>Hi there</body></message>"
    );
    ws.send(
        "<message xmlns='jabber:client' to='romeo@localhost/phone' type='chat' id='m2'>\
         <body>Hello from a browser</body></message>",
    )
    .await;
    romeo
        .expect(
            "<message to='romeo@localhost/phone' type='chat' id='m2' \
             from='juliet@localhost/browser'><body>Hello from a browser</body></message>",
        )
        .await
        .unwrap();
    // RFC 7395 §3.6: the client's <close/> is answered with <close/>, then the socket closes.
    ws.send(CLOSE).await;
    ws.expect_closed().await;
    server.stop().await;
}

/// RFC 7395 §3.5 (with RFC 6120 §4.9): a stream error is a `<stream:error/>` message declaring
/// its prefix, then `<close/>`, then the socket closes; here for an element before `<open/>`
/// (§3.4) and for a message over the stanza limit (RFC 6120 §13.12).
#[tokio::test]
async fn stream_errors_are_framed() {
    let server = server().await;
    server.add_user("juliet", "balcony-secret").await;
    let addr = server.http_addr.unwrap();

    let mut ws = Ws::connect(addr).await;
    ws.send("<iq xmlns='jabber:client' type='get' id='1'/>")
        .await;
    ws.expect(SERVER_OPEN).await;
    assert_eq!(
        ws.expect_text().await,
        "<stream:error xmlns:stream='http://etherx.jabber.org/streams'><bad-format \
         xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text \
         xmlns='urn:ietf:params:xml:ns:xmpp-streams'>the stream must begin with &lt;open/> \
         (RFC 7395 §3.4)</text></stream:error>"
    );
    ws.expect_closed().await;

    // Before authentication the limit is 8 KiB.
    let mut ws = Ws::connect(addr).await;
    ws.open().await;
    let big = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        "A".repeat(9000)
    );
    ws.send(&big).await;
    ws.expect(
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza exceeds the limit of 8192 \
         bytes</text><stanza-too-big xmlns='urn:xmpp:errors'/></stream:error>",
    )
    .await;
    ws.expect_closed().await;

    // A second <open/> without a restart.
    let mut ws = Ws::connect(addr).await;
    ws.login("juliet", "balcony-secret", "a").await;
    ws.send(OPEN).await;
    ws.expect(
        "<stream:error><bad-format xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>&lt;open/> only begins a stream \
         (RFC 7395 §3.4, §3.7)</text></stream:error>",
    )
    .await;
    ws.expect_closed().await;
    server.stop().await;
}

/// RFC 7395 §3.8: keepalives are WebSocket pings, never whitespace.
#[tokio::test]
async fn keepalives_are_pings() {
    let server =
        TestServer::start_with(|c| c.c2s.keepalive_interval = Some(Duration::from_secs(1))).await;
    server.add_user("juliet", "balcony-secret").await;
    let mut ws = Ws::connect(server.http_addr.unwrap()).await;
    ws.login("juliet", "balcony-secret", "a").await;
    assert_eq!(ws.recv().await, Got::Ping);
    server.stop().await;
}

/// XEP-0198 §5: a session whose WebSocket was lost is resumed on a new WebSocket, and what was
/// not acknowledged is sent again.
#[tokio::test]
async fn stream_management_resumes_on_a_new_websocket() {
    let server = server().await;
    server.add_user("juliet", "balcony-secret").await;
    server.add_user("romeo", "montague-secret").await;
    let addr = server.http_addr.unwrap();
    let mut ws = Ws::connect(addr).await;
    ws.login("juliet", "balcony-secret", "browser").await;
    ws.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = ws
        .expect("<enabled xmlns='urn:xmpp:sm:3' id='{*}' resume='true' max='{*}'/>")
        .await;
    let previd = enabled.attr("id").unwrap().to_owned();

    let mut romeo = server.online("romeo", "montague-secret", "phone").await;
    let message = "<message xmlns='jabber:client' to='juliet@localhost/browser' type='chat' \
                   id='m1' from='romeo@localhost/phone'><body>Are you there?</body></message>";
    romeo
        .send_xml("<message to='juliet@localhost/browser' type='chat' id='m1'><body>Are you there?</body></message>")
        .await
        .unwrap();
    assert_eq!(ws.expect_text().await, message);
    // The browser tab goes away without acknowledging anything nor sending <close/>: the
    // WebSocket's own close is answered at once (RFC 6455 §5.5.1), the session waits.
    ws.ws.close(None).await.unwrap();
    assert_eq!(ws.recv().await, Got::Close);
    drop(ws);

    let mut ws = Ws::connect(addr).await;
    ws.open().await;
    ws.authenticate("juliet", "balcony-secret").await;
    ws.open().await;
    ws.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await;
    ws.expect(&format!(
        "<resumed xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await;
    assert_eq!(ws.expect_text().await, message);
    // The resumed session is Juliet's full JID still: Romeo reaches it.
    romeo
        .send_xml("<message to='juliet@localhost/browser' type='chat' id='m2'><body>Good.</body></message>")
        .await
        .unwrap();
    ws.expect(
        "<message to='juliet@localhost/browser' type='chat' id='m2' \
         from='romeo@localhost/phone'><body>Good.</body></message>",
    )
    .await;
    server.stop().await;
}

/// The per-address connection limit holds for WebSockets too; the one over it gets its stream
/// error in the framing (RFC 6120 §4.9.3.12 policy-violation, RFC 7395 §3.5).
#[tokio::test]
async fn the_connection_limit_holds_for_websockets() {
    let server = TestServer::start_with(|c| c.c2s.max_connections_per_ip = 1).await;
    let addr = server.http_addr.unwrap();
    let mut first = Ws::connect(addr).await;
    first.open().await;
    let mut second = Ws::connect(addr).await;
    second.expect(SERVER_OPEN).await;
    second
        .expect(
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>more than 1 connections from \
             your address</text></stream:error>",
        )
        .await;
    second.expect_closed().await;
    server.stop().await;
}

/// `[http] tls_listen`: the same routes over TLS with the host's certificate; a WebSocket over
/// it is a client like any other.
#[tokio::test]
async fn https_serves_health_and_websocket() {
    let server = TestServer::start_with(|c| {
        c.http.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    })
    .await;
    server.add_user("juliet", "balcony-secret").await;
    let addrs = server.server().http_addrs.clone();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    let https = addrs[1];
    let mut tls = tls_connect(https).await;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
    let mut ws = Ws::connect_tls(https).await;
    ws.login("juliet", "balcony-secret", "secure").await;
    ws.send(CLOSE).await;
    ws.expect_closed().await;
    server.stop().await;
}

/// Enables resumable stream management on a logged-in WebSocket; returns the session id.
async fn enable_sm(ws: &mut Ws) -> String {
    ws.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let enabled = ws
        .expect("<enabled xmlns='urn:xmpp:sm:3' id='{*}' resume='true' max='{*}'/>")
        .await;
    enabled.attr("id").unwrap().to_owned()
}

/// XEP-0198 §5 and RFC 6121 §8.5.3.2.2: an IQ request a WebSocket client never acknowledged,
/// in a session that ends (no resumption in time), is answered to its sender with
/// `<service-unavailable/>`: what stream management kept parses back whatever the framing.
#[tokio::test]
async fn an_unacknowledged_stanza_of_a_websocket_session_is_not_lost() {
    let server = TestServer::start_with(|c| {
        c.stream_management.resume_timeout = Duration::from_secs(1);
    })
    .await;
    server.add_user("juliet", "balcony-secret").await;
    server.add_user("romeo", "montague-secret").await;
    let mut ws = Ws::connect(server.http_addr.unwrap()).await;
    ws.login("juliet", "balcony-secret", "browser").await;
    enable_sm(&mut ws).await;
    let mut romeo = server.online("romeo", "montague-secret", "phone").await;
    romeo
        .send_xml("<iq type='get' id='v1' to='juliet@localhost/browser'><query xmlns='jabber:iq:version'/></iq>")
        .await
        .unwrap();
    ws.expect(
        "<iq type='get' id='v1' from='romeo@localhost/phone' to='juliet@localhost/browser'>\
         <query xmlns='jabber:iq:version'/></iq>",
    )
    .await;
    drop(ws);
    romeo
        .expect(
            "<iq type='error' id='v1' from='juliet@localhost/browser' to='romeo@localhost/phone'>\
             <error type='cancel'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
        .await
        .unwrap();
    server.stop().await;
}

/// XEP-0198 §5 across transports: a session begun on a WebSocket is resumed over TCP, and one
/// begun over TCP on a WebSocket; the stanza not acknowledged comes again in the new
/// connection's framing.
#[tokio::test]
async fn sessions_resume_across_tcp_and_websocket() {
    let server = server().await;
    server.add_user("juliet", "balcony-secret").await;
    server.add_user("romeo", "montague-secret").await;
    let mut romeo = server.online("romeo", "montague-secret", "phone").await;

    // WebSocket first, then TCP.
    let mut ws = Ws::connect(server.http_addr.unwrap()).await;
    ws.login("juliet", "balcony-secret", "browser").await;
    let previd = enable_sm(&mut ws).await;
    romeo
        .send_xml(
            "<message to='juliet@localhost/browser' type='chat' id='w1'><body>one</body></message>",
        )
        .await
        .unwrap();
    ws.expect(
        "<message to='juliet@localhost/browser' type='chat' id='w1' \
         from='romeo@localhost/phone'><body>one</body></message>",
    )
    .await;
    drop(ws);
    let mut tcp = starling_testkit::Client::connect(server.starttls_addr)
        .await
        .unwrap();
    tcp.open_stream(&server.domain).await.unwrap();
    tcp.starttls(&server.domain).await.unwrap();
    tcp.authenticate(
        &server.domain,
        "SCRAM-SHA-256",
        "juliet",
        "balcony-secret",
        None,
    )
    .await
    .unwrap();
    tcp.send_xml(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await
    .unwrap();
    tcp.expect(&format!(
        "<resumed xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await
    .unwrap();
    tcp.expect(
        "<message to='juliet@localhost/browser' type='chat' id='w1' \
         from='romeo@localhost/phone'><body>one</body></message>",
    )
    .await
    .unwrap();

    // Now TCP first (the resumed session, still unacknowledged), then a WebSocket.
    romeo
        .send_xml(
            "<message to='juliet@localhost/browser' type='chat' id='w2'><body>two</body></message>",
        )
        .await
        .unwrap();
    tcp.expect(
        "<message to='juliet@localhost/browser' type='chat' id='w2' \
         from='romeo@localhost/phone'><body>two</body></message>",
    )
    .await
    .unwrap();
    drop(tcp);
    let mut ws = Ws::connect(server.http_addr.unwrap()).await;
    ws.open().await;
    ws.authenticate("juliet", "balcony-secret").await;
    ws.open().await;
    ws.send(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await;
    ws.expect(&format!(
        "<resumed xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await;
    // Each stanza one message, declaring jabber:client (RFC 7395 §3.3.3).
    for (id, body) in [("w1", "one"), ("w2", "two")] {
        assert_eq!(
            ws.expect_text().await,
            format!(
                "<message xmlns='jabber:client' to='juliet@localhost/browser' type='chat' \
                 id='{id}' from='romeo@localhost/phone'><body>{body}</body></message>"
            )
        );
    }
    server.stop().await;
}
