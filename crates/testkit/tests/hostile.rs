//! Issue 11 over real sockets: stanzas shaped to hurt other users (the "stanza of death", namespace
//! amplification) and the first-login bytes of real clients. Each test asserts the exact stanzas
//! the recipient receives, and that twenty bystander sessions keep getting their pings answered
//! within a second throughout (`starling_testkit::bystanders`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use starling_testkit::bystanders::Bystanders;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
/// Sessions that keep pinging the server throughout each test (issue 11: other users unhurt).
const BYSTANDERS: usize = 20;

async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    server.online(user, PW, resource).await
}

/// Namespaces in XML §3: `xml:` is bound by definition. A child in the XML namespace reaches the
/// recipient as `<xml:foo/>` (a strict parser accepts it) whether it is delivered at once or
/// stored offline (XEP-0160) and delivered at the next login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xml_prefixed_child_is_delivered_intact() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    let death =
        "<message to='bob@localhost' type='chat' id='d1'><body>hi</body><xml:foo/></message>";
    alice.send_xml(death).await.unwrap();
    let got = bob
        .expect(
            "<message to='bob@localhost' type='chat' id='d1' from='alice@localhost/a'>\
             <body>hi</body><xml:foo/></message>",
        )
        .await
        .unwrap();
    let mut wire = String::new();
    got.write_in_stream(starling_proto::ns::CLIENT, &mut wire);
    assert!(
        wire.ends_with("<body>hi</body><xml:foo/></message>"),
        "{wire}"
    );
    // Bob's stream goes on.
    bob.send_xml("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    bob.expect("<iq type='result' id='p1' to='bob@localhost/b'/>")
        .await
        .unwrap();

    // Offline: stored, then delivered with its delay stamp (it used to be dropped as unreadable).
    bob.close().await.unwrap();
    let offline = death.replace("d1", "d2");
    alice.send_xml(&offline).await.unwrap();
    alice.drain(Duration::from_millis(200)).await;
    let mut bob = server.login("bob", PW, "b").await;
    bob.send_xml("<presence/>").await.unwrap();
    bob.expect("<presence from='bob@localhost/b' to='bob@localhost/b'/>")
        .await
        .unwrap();
    bob.expect(
        "<message to='bob@localhost' type='chat' id='d2' from='alice@localhost/a'>\
         <body>hi</body><xml:foo/>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
    )
    .await
    .unwrap();
    bystanders.stop().await;
}

/// A 16 KB namespace bound once to a prefix and used by 2,000 children: the recipient gets it
/// once (the audit measured 28 KB in, 32 MB delivered), and the offline store keeps about what came in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_declared_once_is_delivered_once() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    // Just under rxml's 16 KiB token limit.
    let uri = format!("urn:{}", "u".repeat(16 * 1024 - 8));
    let children = "<p:a/>".repeat(2000);
    let stanza =
        format!("<message to='bob@localhost' id='amp'><x xmlns:p='{uri}'>{children}</x></message>");
    let before = bob.bytes_received();
    alice.send_xml(&stanza).await.unwrap();
    let got = bob.recv_element().await.unwrap();
    let delivered = bob.bytes_received() - before;
    assert_eq!(got.attr("id"), Some("amp"));
    let x = got.get_child("x", "jabber:client").unwrap();
    assert_eq!(x.children().count(), 2000);
    assert!(x.children().all(|c| c.is("a", &uri)));
    // The server adds `from='alice@localhost/a'`; nothing else grows.
    let from = " from='alice@localhost/a'".len() as u64;
    assert!(
        delivered <= stanza.len() as u64 + from,
        "{} bytes sent, {delivered} delivered",
        stanza.len()
    );

    bob.close().await.unwrap();
    alice
        .send_xml(&stanza.replace("'amp'", "'amp2'"))
        .await
        .unwrap();
    alice.drain(Duration::from_millis(200)).await;
    let stored = server
        .router()
        .context()
        .stores
        .offline
        .load("bob", "localhost")
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    // Stored as a document of its own (`xmlns='jabber:client'`) with a delay stamp.
    assert!(
        stored[0].stanza.len() < stanza.len() + 200,
        "{} bytes in, {} stored",
        stanza.len(),
        stored[0].stanza.len()
    );
    bystanders.stop().await;
}

/// go-sendxmpp (go-xmpp) sends a line break after `</auth>`; it reaches the parser of the
/// restarted stream before the new header. Whitespace before the document element is legal
/// (XML 1.0 §2.8; RFC 6120 §4.3.3 restarts the stream), so the login goes on. These are the
/// client's bytes, with its PLAIN credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sendxmpp_logs_in() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    let header = "<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>\n";
    c.send_raw(header.as_bytes()).await.unwrap();
    c.recv().await.unwrap(); // header
    c.recv_element().await.unwrap(); // features
    // The TLS upgrade and the new stream's header and features (the testkit's own bytes).
    c.starttls("localhost").await.unwrap();
    let creds = base64::engine::general_purpose::STANDARD.encode(b"\0alice\0pw");
    c.send_raw(
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    c.expect("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    c.reset_decoder();
    c.send_raw(header.as_bytes()).await.unwrap();
    c.recv().await.unwrap();
    let features = c.recv_element().await.unwrap();
    assert!(features.has_child("bind", "urn:ietf:params:xml:ns:xmpp-bind"));
    c.send_raw(
        b"<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
          <resource>go-sendxmpp</resource></bind></iq>\n",
    )
    .await
    .unwrap();
    c.expect(
        "<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@localhost/go-sendxmpp</jid></bind></iq>",
    )
    .await
    .unwrap();
    bystanders.stop().await;
}

/// RFC 6120 §8.2.3 and RFC 6121 §8.5.3.2.2 / §8.5.2.2.3: an IQ of type result that nobody can
/// take is silently ignored; answering it with an error would let two entities bounce errors
/// at each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iq_result_to_nobody_gets_no_error() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = server.login("alice", PW, "a").await;
    for to in [
        "bob@localhost/gone",
        "nobody@localhost",
        "nobody@localhost/x",
        "remote.example",
    ] {
        alice
            .send_xml(&format!("<iq type='result' id='r1' to='{to}'/>"))
            .await
            .unwrap();
    }
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    // A get to the same missing resource is still answered (RFC 6121 §8.5.3.2.2).
    alice
        .send_xml(
            "<iq type='get' id='g1' to='bob@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='error' id='g1' from='bob@localhost/gone' to='alice@localhost/a'>\
             <error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
        .await
        .unwrap();
    bystanders.stop().await;
}

/// RFC 6120 §7.6.2.1: an account that has bound as many resources as the server allows gets
/// <resource-constraint/> for one more; re-binding a resource it has (a conflict, §7.7.2.2) is
/// still allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_per_account_are_limited() {
    let server = TestServer::start_with(|c| c.c2s.max_resources = 2).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    server.add_user("alice", PW).await;
    let _one = server.login("alice", PW, "one").await;
    let _two = server.login("alice", PW, "two").await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.starttls("localhost").await.unwrap();
    c.authenticate("localhost", "SCRAM-SHA-256", "alice", PW, None)
        .await
        .unwrap();
    c.send_xml(
        "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>three</resource></bind></iq>",
    )
    .await
    .unwrap();
    c.expect(
        "<iq type='error' id='b1'><error type='wait'>\
         <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>too many resources bound for this account</text>\
         </error></iq>",
    )
    .await
    .unwrap();
    // Taking over an existing resource is not one more.
    c.send_xml(
        "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>two</resource></bind></iq>",
    )
    .await
    .unwrap();
    c.expect(
        "<iq type='result' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <jid>alice@localhost/two</jid></bind></iq>",
    )
    .await
    .unwrap();
    bystanders.stop().await;
}

/// Connections per address and in total are limited (`c2s.max_connections_per_ip`,
/// `c2s.max_connections`): one more is opened and closed at once with a stream error (RFC 6120
/// §4.9.1.1), <policy-violation/> for the address, <resource-constraint/> (§4.9.3.17) for the
/// server; a closed connection frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_and_in_total_are_limited() {
    let server = TestServer::start_with(|c| {
        c.c2s.max_connections_per_ip = 2;
        // Three for the test, the rest for the bystanders (each from an address of its own).
        c.c2s.max_connections = 3 + BYSTANDERS;
    })
    .await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let refused = |mut c: Client, condition: &'static str, text: &'static str| async move {
        assert!(matches!(
            c.recv().await.unwrap(),
            starling_testkit::Frame::Header(_)
        ));
        let err = c.expect_stream_error(condition).await.unwrap();
        assert_eq!(
            err.get_child("text", "urn:ietf:params:xml:ns:xmpp-streams")
                .unwrap()
                .text(),
            text
        );
        c.expect_eof().await.unwrap();
    };
    let mut a1 = Client::connect(server.starttls_addr).await.unwrap();
    a1.open_stream("localhost").await.unwrap();
    let mut a2 = Client::connect(server.starttls_addr).await.unwrap();
    a2.open_stream("localhost").await.unwrap();
    let a3 = Client::connect(server.starttls_addr).await.unwrap();
    refused(
        a3,
        "policy-violation",
        "more than 2 connections from your address",
    )
    .await;
    // Another address (127.0.0.2 is loopback too) still gets in, up to the total.
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let mut b1 = Client::connect_from(server.starttls_addr, other)
        .await
        .unwrap();
    b1.open_stream("localhost").await.unwrap();
    let b2 = Client::connect_from(server.starttls_addr, other)
        .await
        .unwrap();
    refused(
        b2,
        "resource-constraint",
        "the server is at its connection limit",
    )
    .await;
    // A closed connection frees its slot.
    a1.close().await.unwrap();
    let mut again = None;
    for _ in 0..50 {
        let mut c = Client::connect(server.starttls_addr).await.unwrap();
        if c.open_stream("localhost").await.is_ok() {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the slot was not freed");
    bystanders.stop().await;
}

/// XEP-0199 §4.2: a bound session that sends nothing for `c2s.idle_timeout` is pinged by the
/// server; an answer keeps it, silence for `c2s.ping_timeout` closes it with
/// <connection-timeout/> (RFC 6120 §4.9.3.4), and a stanza left half sent goes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_pinged_and_silent_ones_closed() {
    let server = TestServer::start_with(|c| {
        c.c2s.idle_timeout = Some(Duration::from_secs(1));
        c.c2s.ping_timeout = Duration::from_secs(1);
        c.c2s.keepalive_interval = None;
    })
    .await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    server.add_user("alice", PW).await;
    server.add_user("bob", PW).await;
    let mut alice = server.login("alice", PW, "a").await;
    let ping = alice
        .expect("<iq type='get' id='{*}' from='localhost' to='alice@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    alice
        .send_xml(&format!(
            "<iq type='result' id='{}' to='localhost'/>",
            ping.attr("id").unwrap()
        ))
        .await
        .unwrap();
    // Answered: still there, and pinged again after the next silence.
    alice
        .expect("<iq type='get' id='{*}' from='localhost' to='alice@localhost/a'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();

    // Bob leaves a stanza half sent and answers nothing.
    let mut bob = server.login("bob", PW, "b").await;
    bob.send_raw(b"<message to='alice@localhost'><body>never fini")
        .await
        .unwrap();
    bob.expect("<iq type='get' id='{*}' from='localhost' to='bob@localhost/b'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let err = bob.expect_stream_error("connection-timeout").await.unwrap();
    assert_eq!(
        err.get_child("text", "urn:ietf:params:xml:ns:xmpp-streams")
            .unwrap()
            .text(),
        "no answer to the server's ping"
    );
    bob.expect_eof().await.unwrap();
    bystanders.stop().await;
}
