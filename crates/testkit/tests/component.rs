//! Issue 12: XEP-0114 external components over real TCP. A small test component connects to the
//! component listener, authenticates with the handshake, and exchanges messages, presence and
//! IQs with users; every refusal the XEP and RFC 6120 define ends its stream with the right error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::client::Client;
use starling_testkit::server::{TestServer, component_digest};
use starling_testkit::{Element, Frame};

const PW: &str = "pw";
const DOMAIN: &str = "echo.localhost";
const SECRET: &str = "a long shared secret";

async fn server() -> TestServer {
    let server = TestServer::start_with(|c| {
        c.components.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.components.secrets = vec![(
            DOMAIN.to_owned(),
            starling_config::Secret(SECRET.to_owned()),
        )];
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    server
}

/// XEP-0114 §3: the stream header to `domain`; returns the server's stream id.
async fn open(server: &TestServer, domain: &str) -> (Client, String) {
    server.open_component(domain).await
}

/// A component authenticated at [`DOMAIN`].
async fn component(server: &TestServer) -> Client {
    server.component(DOMAIN, SECRET).await
}

async fn online(server: &TestServer, user: &str) -> Client {
    server.online(user, PW, "r").await
}

/// XEP-0114 §3: after the handshake, every stanza to the component's domain or a JID at it
/// reaches the component (in `jabber:component:accept`), and what it sends from its domain
/// reaches users (in `jabber:client`), messages, presence and IQs alike.
#[tokio::test]
async fn a_component_exchanges_stanzas_with_users() {
    let server = server().await;
    let mut comp = component(&server).await;
    let mut alice = online(&server, "alice").await;

    alice
        .send_xml(
            "<message to='bot@echo.localhost' id='m1' type='chat'><body>hello</body></message>",
        )
        .await
        .unwrap();
    comp.expect(
        "<message xmlns='jabber:component:accept' from='alice@localhost/r' to='bot@echo.localhost' id='m1' type='chat'>\
         <body>hello</body></message>",
    )
    .await
    .unwrap();
    comp.send_xml(
        "<message xmlns='jabber:component:accept' from='bot@echo.localhost/x' to='alice@localhost/r' id='m2' type='chat'>\
         <body>hello back</body></message>",
    )
    .await
    .unwrap();
    alice
        .expect("<message from='bot@echo.localhost/x' to='alice@localhost/r' id='m2' type='chat'><body>hello back</body></message>")
        .await
        .unwrap();

    // Presence to the domain itself.
    alice
        .send_xml("<presence to='echo.localhost'/>")
        .await
        .unwrap();
    comp.expect(
        "<presence xmlns='jabber:component:accept' from='alice@localhost/r' to='echo.localhost'/>",
    )
    .await
    .unwrap();

    // An IQ from a user, answered by the component.
    alice
        .send_xml(
            "<iq type='get' id='q1' to='echo.localhost'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await
        .unwrap();
    comp.expect(
        "<iq xmlns='jabber:component:accept' type='get' id='q1' from='alice@localhost/r' to='echo.localhost'>\
         <query xmlns='jabber:iq:version'/></iq>",
    )
    .await
    .unwrap();
    comp.send_xml(
        "<iq xmlns='jabber:component:accept' type='result' id='q1' from='echo.localhost' to='alice@localhost/r'>\
         <query xmlns='jabber:iq:version'><name>echo</name></query></iq>",
    )
    .await
    .unwrap();
    alice
        .expect("<iq type='result' id='q1' from='echo.localhost' to='alice@localhost/r'><query xmlns='jabber:iq:version'><name>echo</name></query></iq>")
        .await
        .unwrap();

    // An IQ from the component to a user's full JID, answered by the user.
    comp.send_xml(
        "<iq xmlns='jabber:component:accept' type='get' id='p1' from='echo.localhost' to='alice@localhost/r'>\
         <ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await
    .unwrap();
    alice
        .expect("<iq type='get' id='p1' from='echo.localhost' to='alice@localhost/r'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    alice
        .send_xml("<iq type='result' id='p1' to='echo.localhost'/>")
        .await
        .unwrap();
    comp.expect("<iq xmlns='jabber:component:accept' type='result' id='p1' from='alice@localhost/r' to='echo.localhost'/>")
        .await
        .unwrap();

    // XEP-0030 §4: the server lists the component among its items.
    alice
        .send_xml("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='result' id='d1' from='localhost' to='alice@localhost/r'>\
                 <query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.localhost'/><item jid='echo.localhost'/>\
                 <item jid='pubsub.localhost'/><item jid='upload.localhost'/></query></iq>",
        )
        .await
        .unwrap();

    // A stanza to a user that does not exist comes back to the component as an error
    // (RFC 6121 §8.5.1).
    comp.send_xml(
        "<message xmlns='jabber:component:accept' from='bot@echo.localhost' to='nobody@localhost' id='m3' type='chat'>\
         <body>?</body></message>",
    )
    .await
    .unwrap();
    comp.expect(
        "<message xmlns='jabber:component:accept' from='nobody@localhost' to='bot@echo.localhost' id='m3' type='error'>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    )
    .await
    .unwrap();
}

/// XEP-0114 §3: a wrong handshake digest is `<not-authorized/>`.
#[tokio::test]
async fn a_wrong_secret_is_not_authorized() {
    let server = server().await;
    let (mut c, id) = open(&server, DOMAIN).await;
    c.send_xml(&format!(
        "<handshake xmlns='jabber:component:accept'>{}</handshake>",
        component_digest(&id, "not the secret at all")
    ))
    .await
    .unwrap();
    c.expect_stream_error("not-authorized").await.unwrap();
}

/// RFC 6120 §4.9.3.6: a domain with no configured component is `<host-unknown/>`.
#[tokio::test]
async fn an_unknown_domain_is_host_unknown() {
    let server = server().await;
    let (mut c, _) = open(&server, "other.localhost").await;
    c.expect_stream_error("host-unknown").await.unwrap();
}

/// RFC 6120 §4.9.3.10: a component may only send from its own domain.
#[tokio::test]
async fn a_component_cannot_send_as_someone_else() {
    let server = server().await;
    let mut comp = component(&server).await;
    let mut bob = online(&server, "bob").await;
    comp.send_xml(
        "<message xmlns='jabber:component:accept' from='alice@localhost/r' to='bob@localhost/r'>\
         <body>I am Alice</body></message>",
    )
    .await
    .unwrap();
    comp.expect_stream_error("invalid-from").await.unwrap();
    bob.expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
}

/// A second connection for a domain that is served already is refused (`<conflict/>`); the
/// first keeps it. When the component disconnects, its domain is served no more.
#[tokio::test]
async fn one_connection_per_domain() {
    let server = server().await;
    let mut first = component(&server).await;
    let (mut second, id) = open(&server, DOMAIN).await;
    second
        .send_xml(&format!(
            "<handshake xmlns='jabber:component:accept'>{}</handshake>",
            component_digest(&id, SECRET)
        ))
        .await
        .unwrap();
    second.expect_stream_error("conflict").await.unwrap();

    let mut alice = online(&server, "alice").await;
    alice
        .send_xml("<message to='echo.localhost' id='m1'><body>still there?</body></message>")
        .await
        .unwrap();
    first
        .expect("<message xmlns='jabber:component:accept' from='alice@localhost/r' to='echo.localhost' id='m1'><body>still there?</body></message>")
        .await
        .unwrap();

    first.send_raw(b"</stream:stream>").await.unwrap();
    let Frame::Close = first.recv().await.unwrap() else {
        panic!("expected the server's </stream:stream>");
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // No component serves the domain now, and it is no local domain either.
    alice
        .send_xml("<iq type='get' id='q2' to='echo.localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let reply: Element = alice.recv_element().await.unwrap();
    assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
    assert_eq!(reply.attr("id"), Some("q2"));
}

/// XEP-0191 §3.3 with a component (a gateway's users are JIDs at its domain): a blocked JID
/// there gets nothing from the user, not even what the server sends for the user (presence
/// broadcasts), and what it sends is refused, also when the component writes its address in
/// another case (RFC 7622: the router compares canonical JIDs, so the component's `from` is
/// rewritten canonically, as c2s stamps a client's).
#[tokio::test]
async fn blocked_jids_at_a_component_are_blocked_both_ways() {
    let server = server().await;
    let item = starling_storage::RosterItem {
        subscription: starling_storage::Subscription::Both,
        ..starling_storage::RosterItem::new("spammer@echo.localhost")
    };
    server
        .router()
        .context()
        .stores
        .rosters
        .put_item("alice", "localhost", &item)
        .await
        .unwrap();
    let mut comp = component(&server).await;
    let mut alice = online(&server, "alice").await;
    // Initial presence and the probe went to the contact at the component.
    comp.drain(Duration::from_millis(300)).await;

    alice
        .send_xml("<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='spammer@echo.localhost'/></block></iq>")
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='b1' to='alice@localhost/r'/>")
        .await
        .unwrap();
    comp.expect(
        "<presence xmlns='jabber:component:accept' type='unavailable' from='alice@localhost/r' to='spammer@echo.localhost'/>",
    )
    .await
    .unwrap();
    // A broadcast while blocked does not leave the server.
    alice
        .send_xml("<presence><show>away</show></presence>")
        .await
        .unwrap();
    alice
        .expect("<presence from='alice@localhost/r' to='alice@localhost/r'><show>away</show></presence>")
        .await
        .unwrap();
    comp.expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    // Inbound, in another case.
    comp.send_xml(
        "<message xmlns='jabber:component:accept' from='Spammer@ECHO.localhost/x' to='alice@localhost/r' id='s1' type='chat'>\
         <body>buy now</body></message>",
    )
    .await
    .unwrap();
    comp.expect(
        "<message xmlns='jabber:component:accept' id='s1' type='error' from='alice@localhost/r' to='spammer@echo.localhost/x'>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    )
    .await
    .unwrap();
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
}
