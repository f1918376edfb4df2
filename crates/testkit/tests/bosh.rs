//! Issue 17: XMPP over BOSH (XEP-0124, XEP-0206) at `/http-bind` of a whole server, over real
//! sockets with raw HTTP/1.1 requests: session creation, SASL with the stream restart, binding,
//! chat with a TCP client on held requests, request ids (window, retransmission), unknown
//! sessions, termination, stream errors, CORS, and stream management resuming a session whose
//! BOSH session went inactive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use starling_proto::Element;
use starling_testkit::matcher::{matches, parse_xml, try_parse_xml};
use starling_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";

/// An HTTP response: status, header lines (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on its own connection and reads the whole response.
async fn http(addr: SocketAddr, method: &str, body: &str) -> Answer {
    exchange(TcpStream::connect(addr).await.unwrap(), method, body).await
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

async fn exchange<S>(mut tcp: S, method: &str, body: &str) -> Answer
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!(
        "{method} /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A TLS peer may end without close_notify once the response is complete.
    let _ = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut raw))
        .await
        .expect("a response within 20 s");
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn post(addr: SocketAddr, body: &str) -> Answer {
    http(addr, "POST", body).await
}

/// A BOSH session of a test client.
struct Bosh {
    addr: SocketAddr,
    sid: String,
    /// The next request's id.
    rid: u64,
    authid: String,
}

const FIRST_RID: u64 = 1_573_741_820;

impl Bosh {
    /// Creates a session (`wait` 5 s, `hold` 1) and returns it with the creation answer.
    async fn create(addr: SocketAddr) -> (Bosh, String) {
        let answer = post(
            addr,
            &format!(
                "<body content='text/xml; charset=utf-8' hold='1' rid='{FIRST_RID}' \
                 to='localhost' ver='1.6' wait='5' xml:lang='en' xmpp:version='1.0' \
                 xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh'/>"
            ),
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let body = try_parse_xml(&answer.body).unwrap();
        let bosh = Bosh {
            addr,
            sid: body
                .attr("sid")
                .unwrap_or_else(|| panic!("no sid: {}", answer.body))
                .to_owned(),
            rid: FIRST_RID + 1,
            authid: body.attr("authid").unwrap_or_default().to_owned(),
        };
        (bosh, answer.body)
    }

    /// A request with `attrs` on `<body/>` and `payloads` inside; its answer's body text.
    async fn send_with(&mut self, attrs: &str, payloads: &str) -> String {
        let rid = self.rid;
        self.rid += 1;
        self.send_rid(rid, attrs, payloads).await.body
    }

    async fn send_rid(&self, rid: u64, attrs: &str, payloads: &str) -> Answer {
        let body = if payloads.is_empty() {
            format!(
                "<body rid='{rid}' sid='{}' xmlns='{HTTPBIND}'{attrs}/>",
                self.sid
            )
        } else {
            format!(
                "<body rid='{rid}' sid='{}' xmlns='{HTTPBIND}'{attrs}>{payloads}</body>",
                self.sid
            )
        };
        let answer = post(self.addr, &body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer
    }

    async fn send(&mut self, payloads: &str) -> String {
        self.send_with("", payloads).await
    }

    /// Sends `payloads` and polls until an answer holds something; that answer.
    async fn send_and_receive(&mut self, payloads: &str) -> String {
        let mut got = self.send(payloads).await;
        while got == format!("<body xmlns='{HTTPBIND}'/>") {
            got = self.send("").await;
        }
        got
    }

    /// SASL PLAIN (XEP-0206 §5): `<success/>` in the answer.
    async fn authenticate(&mut self, user: &str, password: &str) {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        let answer = self
            .send_and_receive(&format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' \
                 mechanism='PLAIN'>{credentials}</auth>"
            ))
            .await;
        assert_eq!(
            answer,
            format!(
                "<body xmlns='{HTTPBIND}'><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
                 </body>"
            )
        );
    }

    /// XEP-0206 §5: the restart request; the new stream's features are the answer.
    async fn restart(&mut self) -> Element {
        let answer = self
            .send_with(
                " to='localhost' xml:lang='en' xmpp:restart='true' \
                 xmlns:xmpp='urn:xmpp:xbosh'",
                "",
            )
            .await;
        assert!(
            answer.starts_with(&format!(
                "<body xmlns='{HTTPBIND}'><stream:features \
                 xmlns:stream='http://etherx.jabber.org/streams'>"
            )),
            "{answer}"
        );
        let body = try_parse_xml(&answer).unwrap();
        body.children().next().unwrap().clone()
    }

    async fn bind(&mut self, user: &str, resource: &str) {
        let answer = self
            .send_and_receive(&format!(
                "<iq xmlns='jabber:client' type='set' id='bind_1'><bind \
                 xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource>\
                 </bind></iq>"
            ))
            .await;
        assert_eq!(
            answer,
            format!(
                "<body xmlns='{HTTPBIND}'><iq xmlns='jabber:client' id='bind_1' type='result'>\
                 <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>{user}@localhost/{resource}\
                 </jid></bind></iq></body>"
            )
        );
    }

    async fn login(addr: SocketAddr, user: &str, password: &str, resource: &str) -> Bosh {
        let (mut bosh, _) = Bosh::create(addr).await;
        bosh.authenticate(user, password).await;
        let features = bosh.restart().await;
        assert!(features.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
        bosh.bind(user, resource).await;
        bosh
    }
}

/// The payloads of an answer: what is inside `<body/>`.
fn payloads(answer: &str) -> String {
    let open = format!("<body xmlns='{HTTPBIND}'>");
    match answer.strip_prefix(&open) {
        Some(rest) => rest.strip_suffix("</body>").unwrap().to_owned(),
        None => {
            assert_eq!(answer, empty_body());
            String::new()
        }
    }
}

fn empty_body() -> String {
    format!("<body xmlns='{HTTPBIND}'/>")
}

fn item_not_found() -> String {
    format!("<body xmlns='{HTTPBIND}' type='terminate' condition='item-not-found'/>")
}

/// XEP-0124 §7.1–§7.2 and XEP-0206 §4: the session creation answer's attributes, exactly (the
/// server's maxima where the client asked more), the stream id as `authid`, the features; the
/// headers (§7.1 `content`, CORS).
#[tokio::test]
async fn session_creation() {
    let server = TestServer::start().await;
    let addr = server.http_addr.unwrap();
    let (bosh, text) = Bosh::create(addr).await;
    assert_eq!(bosh.sid.len(), 32, "{}", bosh.sid);
    assert!(!bosh.authid.is_empty());
    let body = try_parse_xml(&text).unwrap();
    let head = format!(
        "<body xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' \
         xmlns:stream='http://etherx.jabber.org/streams' sid='{}' wait='5' requests='2' \
         polling='2' inactivity='60' maxpause='120' hold='1' ver='1.6' from='localhost' \
         authid='{}' xmpp:version='1.0'><stream:features \
         xmlns:stream='http://etherx.jabber.org/streams'><mechanisms \
         xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
        bosh.sid, bosh.authid
    );
    assert!(text.starts_with(&head), "{text}\n{head}");
    let features = body
        .get_child("features", "http://etherx.jabber.org/streams")
        .unwrap();
    let mechanisms: Vec<String> = features
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .unwrap()
        .children()
        .map(Element::text)
        .collect();
    // From loopback the session counts as secure: PLAIN is offered.
    assert!(mechanisms.contains(&"PLAIN".to_owned()), "{mechanisms:?}");

    // A client asking more than the maxima gets them; `ver` is the lower of the two (§7.2).
    let answer = post(
        addr,
        &format!(
            "<body hold='3' rid='42' to='localhost' ver='2.0' wait='3600' xmlns='{HTTPBIND}'/>"
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/xml; charset=utf-8")
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    let body = try_parse_xml(&answer.body).unwrap();
    assert_eq!(body.attr("wait"), Some("60"));
    assert_eq!(body.attr("hold"), Some("1"));
    assert_eq!(body.attr("requests"), Some("2"));
    assert_eq!(body.attr("ver"), Some("1.11"));

    // §7.1: `content` names the Content-Type of every answer in the session.
    let answer = post(
        addr,
        &format!(
            "<body content='text/html' rid='7' to='localhost' ver='1.11' xmlns='{HTTPBIND}'/>"
        ),
    )
    .await;
    assert_eq!(answer.header("content-type"), Some("text/html"));

    // The CORS preflight.
    let answer = http(addr, "OPTIONS", "").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("Content-Type")
    );
    assert_eq!(answer.header("access-control-max-age"), Some("86400"));
    server.stop().await;
}

/// XEP-0206 §5 (SASL, restart, bind), XEP-0124 §8 and §11 (a held request answered as soon as
/// a stanza arrives), §13 (terminate): a BOSH client chats with a TCP client both ways.
#[tokio::test]
async fn a_bosh_client_chats_with_a_tcp_client() {
    let server = TestServer::start().await;
    server.add_user("juliet", "balcony-secret").await;
    server.add_user("romeo", "montague-secret").await;
    let addr = server.http_addr.unwrap();
    let mut bosh = Bosh::login(addr, "juliet", "balcony-secret", "browser").await;
    let mut romeo = server.online("romeo", "montague-secret", "phone").await;

    // An empty request is held (§8) until Romeo's message comes.
    let rid = bosh.rid;
    bosh.rid += 1;
    let held = {
        let (addr, sid) = (bosh.addr, bosh.sid.clone());
        tokio::spawn(async move {
            let poll = Bosh {
                addr,
                sid,
                rid,
                authid: String::new(),
            };
            poll.send_rid(rid, "", "").await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished());
    romeo
        .send_xml("<message to='juliet@localhost/browser' type='chat' id='m1'><body>Hi there</body></message>")
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(2), held)
        .await
        .expect("the held request answered at once")
        .unwrap();
    assert_eq!(
        answer.body,
        format!(
            "<body xmlns='{HTTPBIND}'><message xmlns='jabber:client' \
             to='juliet@localhost/browser' type='chat' id='m1' from='romeo@localhost/phone'>\
             <body>Hi there</body></message></body>"
        )
    );

    // A message from BOSH; with nothing to answer, the request is answered empty after `wait`.
    let started = std::time::Instant::now();
    let answer = bosh
        .send(
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
    assert_eq!(answer, empty_body());
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // §13: terminate, with a last payload forwarded.
    let answer = bosh
        .send_with(
            " type='terminate'",
            "<message xmlns='jabber:client' to='romeo@localhost/phone' id='m3'>\
             <body>Bye</body></message>",
        )
        .await;
    assert_eq!(
        answer,
        format!("<body xmlns='{HTTPBIND}' type='terminate'/>")
    );
    romeo
        .expect(
            "<message to='romeo@localhost/phone' id='m3' from='juliet@localhost/browser'>\
             <body>Bye</body></message>",
        )
        .await
        .unwrap();
    // The session is gone.
    assert_eq!(bosh.send("").await, item_not_found());
    server.stop().await;
}

/// XEP-0124 §14.2–§14.3 and §17: request ids in a window; a request sent again gets the same
/// answer (and its payloads are not forwarded twice); a `rid` beyond the window, an unknown
/// `sid`, bad XML and the wrong namespace are terminal conditions in HTTP 200 answers; a legacy
/// client (no `ver`, §17.1) gets HTTP 404 instead.
#[tokio::test]
async fn request_ids_and_terminal_conditions() {
    let server = TestServer::start().await;
    server.add_user("juliet", "balcony-secret").await;
    let addr = server.http_addr.unwrap();

    // Retransmission: the same answer again, and the stream went on once only.
    let (mut bosh, _) = Bosh::create(addr).await;
    bosh.authenticate("juliet", "balcony-secret").await;
    let last = bosh.rid - 1;
    let credentials = base64::engine::general_purpose::STANDARD.encode("\0juliet\0balcony-secret");
    let again = bosh
        .send_rid(
            last,
            "",
            &format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' \
                 mechanism='PLAIN'>{credentials}</auth>"
            ),
        )
        .await;
    assert_eq!(
        again.body,
        format!(
            "<body xmlns='{HTTPBIND}'><success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></body>"
        )
    );
    let features = bosh.restart().await;
    assert!(features.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
    // A request too old to be kept (the creation's): item-not-found, and the session ends.
    let answer = bosh.send_rid(FIRST_RID, "", "").await;
    assert_eq!(answer.body, item_not_found());
    assert_eq!(bosh.send("").await, item_not_found());

    // Beyond the window of `requests` (2): item-not-found, the session ends.
    let (bosh, _) = Bosh::create(addr).await;
    let answer = bosh.send_rid(FIRST_RID + 3, "", "").await;
    assert_eq!(answer.body, item_not_found());
    let answer = bosh.send_rid(FIRST_RID + 1, "", "").await;
    assert_eq!(answer.body, item_not_found());

    // An unknown sid.
    let answer = post(
        addr,
        &format!("<body rid='5' sid='no-such-session' xmlns='{HTTPBIND}'/>"),
    )
    .await;
    assert_eq!((answer.status, answer.body), (200, item_not_found()));
    // Not XML, not a <body/> of httpbind, no rid.
    let bad_request =
        format!("<body xmlns='{HTTPBIND}' type='terminate' condition='bad-request'/>");
    for bad in [
        format!("<body rid='5' xmlns='{HTTPBIND}'><message>"),
        "<body rid='5' xmlns='jabber:client'/>".to_owned(),
        format!("<body xmlns='{HTTPBIND}'/>"),
        "hello".to_owned(),
    ] {
        let answer = post(addr, &bad).await;
        assert_eq!((answer.status, &answer.body), (200, &bad_request), "{bad}");
    }

    // §17.1: a legacy client gets the HTTP code.
    let answer = post(
        addr,
        &format!("<body rid='100' to='localhost' wait='5' hold='1' xmlns='{HTTPBIND}'/>"),
    )
    .await;
    let sid = try_parse_xml(&answer.body)
        .unwrap()
        .attr("sid")
        .unwrap()
        .to_owned();
    let answer = post(
        addr,
        &format!("<body rid='110' sid='{sid}' xmlns='{HTTPBIND}'/>"),
    )
    .await;
    assert_eq!((answer.status, answer.body), (404, item_not_found()));
    server.stop().await;
}

/// XEP-0124 §11: a request beyond `hold` releases the held one with an empty answer; answers
/// come in `rid` order. At shutdown the held one ends the session (§17.2, RFC 6120 §4.9.3.22).
#[tokio::test]
async fn a_new_request_releases_the_held_one() {
    let server = TestServer::start().await;
    let addr = server.http_addr.unwrap();
    let (bosh, _) = Bosh::create(addr).await;
    let first = {
        let (addr, sid) = (bosh.addr, bosh.sid.clone());
        tokio::spawn(async move {
            let b = Bosh {
                addr,
                sid,
                rid: 0,
                authid: String::new(),
            };
            b.send_rid(FIRST_RID + 1, "", "").await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!first.is_finished());
    let second = {
        let (addr, sid) = (bosh.addr, bosh.sid.clone());
        tokio::spawn(async move {
            let b = Bosh {
                addr,
                sid,
                rid: 0,
                authid: String::new(),
            };
            b.send_rid(FIRST_RID + 2, "", "").await
        })
    };
    let first = tokio::time::timeout(Duration::from_secs(2), first)
        .await
        .expect("the first request released at once")
        .unwrap();
    assert_eq!(first.body, empty_body());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished());
    // At shutdown the held request carries the stream's end (XEP-0124 §17.2).
    let started = std::time::Instant::now();
    let ((), second) = tokio::join!(server.stop(), second);
    assert_eq!(
        second.unwrap().body,
        format!(
            "<body xmlns='{HTTPBIND}' type='terminate' condition='remote-stream-error' \
             xmlns:stream='http://etherx.jabber.org/streams'><stream:error \
             xmlns:stream='http://etherx.jabber.org/streams'><system-shutdown \
             xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></body>"
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// XEP-0124 §17.2 (`remote-stream-error`) and XEP-0206 §6: a stream the server ends with an
/// error ends the BOSH session, the `<stream:error/>` inside; here the per-address connection
/// limit, which holds for BOSH sessions as for any client connection.
#[tokio::test]
async fn a_stream_error_terminates_the_session() {
    let server = TestServer::start_with(|c| c.c2s.max_connections_per_ip = 1).await;
    let addr = server.http_addr.unwrap();
    let (_first, _) = Bosh::create(addr).await;
    let (second, body) = Bosh::create(addr).await;
    assert_eq!(
        body,
        format!(
            "<body xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' \
             xmlns:stream='http://etherx.jabber.org/streams' sid='{}' wait='5' requests='2' \
             polling='2' inactivity='60' maxpause='120' hold='1' ver='1.6' from='localhost' \
             authid='{}' xmpp:version='1.0' type='terminate' condition='remote-stream-error'>\
             <stream:error xmlns:stream='http://etherx.jabber.org/streams'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>more than 1 connections from \
             your address</text></stream:error></body>",
            second.sid, second.authid
        )
    );
    assert_eq!(
        second.send_rid(FIRST_RID + 1, "", "").await.body,
        item_not_found()
    );
    server.stop().await;
}

/// XEP-0124 §10 (inactivity, here shortened by a `pause` below `inactivity`) and XEP-0198 §5:
/// a BOSH session the client stopped polling is dropped like a lost connection; the XMPP
/// session waits and is resumed over a new BOSH session, with what was not acknowledged.
#[tokio::test]
async fn stream_management_resumes_after_the_bosh_session_went_inactive() {
    let server = TestServer::start().await;
    server.add_user("juliet", "balcony-secret").await;
    server.add_user("romeo", "montague-secret").await;
    let addr = server.http_addr.unwrap();
    let mut bosh = Bosh::login(addr, "juliet", "balcony-secret", "browser").await;
    let answer = bosh
        .send_and_receive("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await;
    let body = try_parse_xml(&answer).unwrap();
    let enabled = body.children().next().unwrap();
    matches(
        &parse_xml("<enabled xmlns='urn:xmpp:sm:3' id='{*}' resume='true' max='{*}'/>"),
        enabled,
    )
    .unwrap();
    let previd = enabled.attr("id").unwrap().to_owned();

    let mut romeo = server.online("romeo", "montague-secret", "phone").await;
    romeo
        .send_xml("<message to='juliet@localhost/browser' type='chat' id='m1'><body>Are you there?</body></message>")
        .await
        .unwrap();
    let message = "<message xmlns='jabber:client' to='juliet@localhost/browser' type='chat' \
                   id='m1' from='romeo@localhost/phone'><body>Are you there?</body></message>";
    assert_eq!(
        bosh.send_and_receive("").await,
        format!("<body xmlns='{HTTPBIND}'>{message}</body>")
    );
    // §10: a pause of 1 s, answered at once and empty; then no request comes.
    assert_eq!(bosh.send_with(" pause='1'", "").await, empty_body());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The BOSH session is gone.
    assert_eq!(bosh.send("").await, item_not_found());

    let (mut bosh, _) = Bosh::create(addr).await;
    bosh.authenticate("juliet", "balcony-secret").await;
    bosh.restart().await;
    // What the answers carry, wrappers aside (the two may come in one answer or two).
    let mut got = payloads(
        &bosh
            .send(&format!(
                "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
            ))
            .await,
    );
    while !got.contains("<message ") {
        got.push_str(&payloads(&bosh.send("").await));
    }
    assert_eq!(
        got,
        format!("<resumed xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>{message}")
    );
    // The resumed session is Juliet's full JID still: Romeo reaches it.
    romeo
        .send_xml("<message to='juliet@localhost/browser' type='chat' id='m2'><body>Good.</body></message>")
        .await
        .unwrap();
    let got = bosh.send_and_receive("").await;
    assert!(got.contains("id='m2'"), "{got}");
    server.stop().await;
}

/// The request size limit of `/http-bind` is its own (the largest stanza and some slack), not
/// the listener's 64 KiB for other routes: 100 KiB pass, 300 KiB get `413` (RFC 9110 §15.5.14).
#[tokio::test]
async fn the_request_limit_is_the_stanza_limit() {
    let server = TestServer::start().await;
    let addr = server.http_addr.unwrap();
    let padding = "x".repeat(100 * 1024);
    let answer = post(
        addr,
        &format!(
            "<body rid='1' to='localhost' ver='1.11' wait='5' hold='1' \
             xmlns='{HTTPBIND}'>{padding}</body>"
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains(" sid='"), "{}", answer.body);
    let padding = "x".repeat(300 * 1024);
    let answer = post(
        addr,
        &format!("<body rid='1' to='localhost' xmlns='{HTTPBIND}'>{padding}</body>"),
    )
    .await;
    assert_eq!(answer.status, 413);
    server.stop().await;
}

/// XEP-0124 §14.2: requests that arrive out of order are forwarded in `rid` order.
#[tokio::test]
async fn payloads_are_forwarded_in_rid_order() {
    let server = TestServer::start().await;
    server.add_user("juliet", "balcony-secret").await;
    server.add_user("romeo", "montague-secret").await;
    let addr = server.http_addr.unwrap();
    let mut bosh = Bosh::login(addr, "juliet", "balcony-secret", "browser").await;
    let mut romeo = server.online("romeo", "montague-secret", "phone").await;
    let (first, second) = (bosh.rid, bosh.rid + 1);
    bosh.rid += 2;
    let message = |id: &str| {
        format!(
            "<message xmlns='jabber:client' to='romeo@localhost/phone' id='{id}'>\
             <body>{id}</body></message>"
        )
    };
    let later = {
        let (addr, sid, payload) = (bosh.addr, bosh.sid.clone(), message("second"));
        tokio::spawn(async move {
            let b = Bosh {
                addr,
                sid,
                rid: 0,
                authid: String::new(),
            };
            b.send_rid(second, "", &payload).await
        })
    };
    // The later request waits for the earlier one: nothing is forwarded yet.
    romeo
        .expect_silence(Duration::from_millis(500))
        .await
        .unwrap();
    let earlier = bosh.send_rid(first, "", &message("first")).await;
    // Answered (empty) when the later request came after it and was held (§11).
    assert_eq!(earlier.body, empty_body());
    for id in ["first", "second"] {
        romeo
            .expect(&format!(
                "<message to='romeo@localhost/phone' id='{id}' \
                 from='juliet@localhost/browser'><body>{id}</body></message>"
            ))
            .await
            .unwrap();
    }
    drop(later);
    server.stop().await;
}

/// XEP-0124 §19.1 (Security Considerations): a session created over HTTPS is secure, and its
/// requests are refused over plain HTTP (`403`) without ending it.
#[tokio::test]
async fn a_session_created_over_https_stays_on_https() {
    let server = TestServer::start_with(|c| {
        c.http.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    })
    .await;
    let (plain, https) = (server.server().http_addrs[0], server.server().http_addrs[1]);
    let answer = exchange(
        tls_connect(https).await,
        "POST",
        &format!(
            "<body hold='1' rid='{FIRST_RID}' to='localhost' ver='1.11' wait='1' \
             xmlns='{HTTPBIND}'/>"
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    let sid = try_parse_xml(&answer.body)
        .unwrap()
        .attr("sid")
        .unwrap()
        .to_owned();
    let request = format!(
        "<body rid='{}' sid='{sid}' xmlns='{HTTPBIND}'/>",
        FIRST_RID + 1
    );
    let answer = http(plain, "POST", &request).await;
    assert_eq!(answer.status, 403);
    let answer = exchange(tls_connect(https).await, "POST", &request).await;
    assert_eq!((answer.status, answer.body), (200, empty_body()));
    server.stop().await;
}
