//! Issue 12: XEP-0198 stream management over real sockets. A session survives the loss of its
//! TCP connection: the client resumes it on a new one and gets exactly the stanzas it had not
//! acknowledged, once, in order; a client that never comes back finds its messages at the next
//! login; nothing acknowledged is ever lost. "Dropping the socket" below drops the test client's
//! TCP stream without `</stream:stream>`, as a phone losing its network does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";

/// Connects, STARTTLS, authenticates as `user`: ready to bind or resume.
async fn authenticated(server: &TestServer, user: &str) -> Client {
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    c.starttls(&server.domain).await.unwrap();
    let features = c
        .authenticate(&server.domain, "SCRAM-SHA-256", user, PW, None)
        .await
        .unwrap();
    // XEP-0198 §2: offered after authentication.
    assert!(
        features.get_child("sm", "urn:xmpp:sm:3").is_some(),
        "no <sm/> feature"
    );
    c
}

/// Logs in, enables resumable stream management and sends initial presence.
async fn online_with_sm(server: &TestServer, user: &str, resource: &str) -> (Client, String) {
    let mut c = server.login(user, PW, resource).await;
    c.send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    let enabled = c
        .expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='{*}' id='{*}'/>")
        .await
        .unwrap();
    let id = enabled.attr("id").unwrap().to_owned();
    c.send_xml("<presence/>").await.unwrap();
    c.expect(&format!(
        "<presence from='{user}@localhost/{resource}' to='{user}@localhost/{resource}'/>"
    ))
    .await
    .unwrap();
    (c, id)
}

async fn online(server: &TestServer, user: &str) -> Client {
    server.online(user, PW, "r").await
}

fn chat(to: &str, id: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>{id}</body></message>")
}

async fn expect_chat(c: &mut Client, from: &str, id: &str) -> Element {
    c.expect(&format!(
        "<message from='{from}' to='alice@localhost/phone' type='chat' id='{id}'><body>{id}</body></message>"
    ))
    .await
    .unwrap()
}

/// XEP-0198 §3: enabling before a resource is bound is refused with `<unexpected-request/>`,
/// and so is enabling twice.
#[tokio::test]
async fn enable_needs_a_bound_resource_and_happens_once() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let mut c = authenticated(&server, "alice").await;
    c.send_xml("<enable xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    c.expect(
        "<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></failed>",
    )
    .await
    .unwrap();
    c.bind(Some("phone")).await.unwrap();
    // Without resume: no id, no max.
    c.send_xml("<enable xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    let enabled = c.expect("<enabled xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    assert_eq!(enabled.attr("id"), None);
    c.send_xml("<enable xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    c.expect(
        "<failed xmlns='urn:xmpp:sm:3'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></failed>",
    )
    .await
    .unwrap();
}

/// XEP-0198 §5: the client's preferred `max` is honoured up to the server's limit.
#[tokio::test]
async fn the_clients_max_is_honoured_up_to_the_servers() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let mut c = server.login("alice", PW, "phone").await;
    c.send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true' max='60'/>")
        .await
        .unwrap();
    c.expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='60' id='{*}'/>")
        .await
        .unwrap();
    let mut d = server.login("alice", PW, "laptop").await;
    d.send_xml("<enable xmlns='urn:xmpp:sm:3' resume='1' max='86400'/>")
        .await
        .unwrap();
    d.expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='300' id='{*}'/>")
        .await
        .unwrap();
}

/// XEP-0198 §4: `<r/>` is answered with the count of stanzas the server received since
/// `<enable/>`; the server asks for acknowledgements itself after `request_after` (5) stanzas.
#[tokio::test]
async fn counts_and_requests() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let (mut alice, _) = online_with_sm(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob").await;
    // Alice sent one stanza since enabling: her presence.
    alice.send_xml("<r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    alice
        .expect("<a xmlns='urn:xmpp:sm:3' h='1'/>")
        .await
        .unwrap();
    // An IQ answered with an error counts too.
    alice
        .send_xml("<iq type='get' id='x' to='localhost'><nothing xmlns='urn:example'/></iq>")
        .await
        .unwrap();
    alice
        .expect("<iq type='error' id='x' from='localhost' to='alice@localhost/phone'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        .await
        .unwrap();
    alice.send_xml("<r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    alice
        .expect("<a xmlns='urn:xmpp:sm:3' h='2'/>")
        .await
        .unwrap();
    // Sent to Alice so far: her presence echo (1) and the error (2). The server asks after the
    // fifth unacknowledged stanza: m3.
    for i in 1..=5 {
        bob.send_xml(&chat("alice@localhost/phone", &format!("m{i}")))
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    loop {
        let e = alice.recv_element().await.unwrap();
        if e.is("r", "urn:xmpp:sm:3") {
            break;
        }
        got.push(e.attr("id").unwrap_or_default().to_owned());
    }
    assert_eq!(
        got,
        ["m1", "m2", "m3"],
        "the request comes after five stanzas"
    );
    // presence echo (1), error (2), m1..m3 (3..5): the fifth was m3.
    alice
        .send_xml("<a xmlns='urn:xmpp:sm:3' h='5'/>")
        .await
        .unwrap();
    expect_chat(&mut alice, "bob@localhost/r", "m4").await;
    expect_chat(&mut alice, "bob@localhost/r", "m5").await;
}

/// XEP-0198 §5: after a TCP drop, `<resume/>` on a new connection gets `<resumed h/>` with
/// the server's count, then exactly the stanzas the client had not acknowledged — including
/// one that arrived while no connection was there — once and in order; the session goes on
/// as before (same JID, no new presence needed).
#[tokio::test]
async fn resume_after_a_tcp_drop_retransmits_exactly_the_unacknowledged() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let (mut alice, id) = online_with_sm(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob").await;
    for i in 1..=3 {
        bob.send_xml(&chat("alice@localhost/phone", &format!("m{i}")))
            .await
            .unwrap();
    }
    for i in 1..=3 {
        expect_chat(&mut alice, "bob@localhost/r", &format!("m{i}")).await;
    }
    // Alice's presence echo was stanza 1, m1..m3 are 2..4; she acknowledges up to m1 only.
    alice
        .send_xml("<a xmlns='urn:xmpp:sm:3' h='2'/>")
        .await
        .unwrap();
    alice.send_xml("<r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    alice
        .expect("<a xmlns='urn:xmpp:sm:3' h='1'/>")
        .await
        .unwrap();
    drop(alice);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Sent while Alice has no connection: it waits in her session.
    bob.send_xml(&chat("alice@localhost/phone", "m4"))
        .await
        .unwrap();
    // No error comes back to Bob: the session still exists.
    bob.expect_silence(Duration::from_millis(300))
        .await
        .unwrap();

    let mut alice = authenticated(&server, "alice").await;
    // She received m1 and m2 before the drop (h = 3).
    alice
        .send_xml(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='3'/>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<resumed xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
        ))
        .await
        .unwrap();
    expect_chat(&mut alice, "bob@localhost/r", "m3").await;
    expect_chat(&mut alice, "bob@localhost/r", "m4").await;
    alice
        .send_xml("<a xmlns='urn:xmpp:sm:3' h='5'/>")
        .await
        .unwrap();
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    // The session goes on: stanzas both ways, counts continued.
    bob.send_xml(&chat("alice@localhost/phone", "m5"))
        .await
        .unwrap();
    expect_chat(&mut alice, "bob@localhost/r", "m5").await;
    alice
        .send_xml("<message to='bob@localhost/r' type='chat' id='back'><body>hi</body></message>")
        .await
        .unwrap();
    bob.expect("<message from='alice@localhost/phone' to='bob@localhost/r' type='chat' id='back'><body>hi</body></message>")
        .await
        .unwrap();
    alice.send_xml("<r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    alice
        .expect("<a xmlns='urn:xmpp:sm:3' h='2'/>")
        .await
        .unwrap();
    alice
        .expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
}

/// XEP-0198 §5: a resumption while the old connection is still open (the server has not
/// noticed the drop) takes the session over; the old connection is closed.
#[tokio::test]
async fn a_resume_racing_the_old_connection_closes_it() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let (mut old, id) = online_with_sm(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob").await;
    bob.send_xml(&chat("alice@localhost/phone", "m1"))
        .await
        .unwrap();
    expect_chat(&mut old, "bob@localhost/r", "m1").await;

    let mut new = authenticated(&server, "alice").await;
    new.send_xml(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
    ))
    .await
    .unwrap();
    new.expect(&format!(
        "<resumed xmlns='urn:xmpp:sm:3' previd='{id}' h='1'/>"
    ))
    .await
    .unwrap();
    // m1 (stanza 2) was not acknowledged: sent again on the new connection.
    expect_chat(&mut new, "bob@localhost/r", "m1").await;
    old.expect_stream_error("conflict").await.unwrap();
    bob.send_xml(&chat("alice@localhost/phone", "m2"))
        .await
        .unwrap();
    expect_chat(&mut new, "bob@localhost/r", "m2").await;
}

/// XEP-0198 §5: an unknown id is `<item-not-found/>`; so is another account's id (it must not
/// reveal that the session exists); the stream stays usable for binding.
#[tokio::test]
async fn unknown_or_foreign_ids_are_not_found() {
    let server = TestServer::with_users(&["alice", "mallory"], PW).await;
    let (_alice, id) = online_with_sm(&server, "alice", "phone").await;
    let mut m = authenticated(&server, "mallory").await;
    for previd in ["no-such-id", id.as_str()] {
        m.send_xml(&format!(
            "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
        ))
        .await
        .unwrap();
        let failed = m
            .expect("<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></failed>")
            .await
            .unwrap();
        assert_eq!(failed.attr("h"), None);
    }
    m.bind(Some("r")).await.unwrap();
}

/// XEP-0198 §5 and RFC 6121 §8.5.2.2.1: a session whose client does not come back within the
/// timeout ends; the messages it had not had acknowledged go to offline storage (with a
/// XEP-0203 delay) and arrive, once, at the next login. A late `<resume/>` fails with
/// `<item-not-found/>` and the `h` the server had reached.
#[tokio::test]
async fn without_resumption_unacknowledged_messages_arrive_at_the_next_login() {
    let server = TestServer::start_with(|c| {
        c.stream_management.resume_timeout = Duration::from_secs(1);
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let mut alice = server.login("alice", PW, "phone").await;
    alice
        .send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    let enabled = alice
        .expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='1' id='{*}'/>")
        .await
        .unwrap();
    let id = enabled.attr("id").unwrap().to_owned();
    alice.send_xml("<presence/>").await.unwrap();
    alice.drain(Duration::from_millis(100)).await;
    let mut bob = online(&server, "bob").await;
    for i in 1..=2 {
        bob.send_xml(&chat("alice@localhost/phone", &format!("m{i}")))
            .await
            .unwrap();
        expect_chat(&mut alice, "bob@localhost/r", &format!("m{i}")).await;
    }
    drop(alice);
    // m3 arrives while she is detached; the session then times out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.send_xml(&chat("alice@localhost/phone", "m3"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Nothing bounced to Bob.
    bob.expect_silence(Duration::from_millis(100))
        .await
        .unwrap();

    let mut late = authenticated(&server, "alice").await;
    late.send_xml(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='0'/>"
    ))
    .await
    .unwrap();
    // She had sent one stanza (her presence) before the drop.
    late.expect("<failed xmlns='urn:xmpp:sm:3' h='1'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></failed>")
        .await
        .unwrap();
    late.bind(Some("phone")).await.unwrap();
    late.send_xml("<presence/>").await.unwrap();
    late.expect("<presence from='alice@localhost/phone' to='alice@localhost/phone'/>")
        .await
        .unwrap();
    for i in 1..=3 {
        let id = format!("m{i}");
        late.expect(&format!(
            "<message from='bob@localhost/r' to='alice@localhost/phone' type='chat' id='{id}'><body>{id}</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{{*}}'/></message>"
        ))
        .await
        .unwrap();
    }
    late.expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
}

/// XEP-0198 §4 / RFC 6121 §8.5.3.2.2: an IQ request the client never acknowledged, in a
/// session that ends, is answered to its sender with `<service-unavailable/>`.
#[tokio::test]
async fn an_unacknowledged_iq_is_answered_when_the_session_ends() {
    let server = TestServer::start_with(|c| {
        c.stream_management.resume_timeout = Duration::from_secs(1);
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let (mut alice, _) = online_with_sm(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob").await;
    bob.send_xml(
        "<iq type='get' id='v1' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await
    .unwrap();
    alice
        .expect("<iq type='get' id='v1' from='bob@localhost/r' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>")
        .await
        .unwrap();
    drop(alice);
    bob.expect("<iq type='error' id='v1' from='alice@localhost/phone' to='bob@localhost/r'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        .await
        .unwrap();
}

/// XEP-0198 §4: acknowledging more than was sent ends the stream with
/// `<undefined-condition/>` and `<handled-count-too-high/>`.
#[tokio::test]
async fn acknowledging_too_much_is_a_stream_error() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let (mut alice, _) = online_with_sm(&server, "alice", "phone").await;
    alice
        .send_xml("<a xmlns='urn:xmpp:sm:3' h='7'/>")
        .await
        .unwrap();
    alice
        .expect_stream_error(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{*}</text>\
             <handled-count-too-high xmlns='urn:xmpp:sm:3' h='7' send-count='1'/></stream:error>",
        )
        .await
        .unwrap();
}

/// The unacknowledged queue is bounded (`stream_management.max_unacked`): a client that never
/// acknowledges is closed like one that timed out, and nothing is lost: what it held is stored
/// offline and delivered at the next login.
#[tokio::test]
async fn the_unacknowledged_queue_is_bounded_and_loses_nothing() {
    let server = TestServer::start_with(|c| {
        c.stream_management.max_unacked = 10;
        c.stream_management.request_after = 1000;
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let (mut alice, _) = online_with_sm(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob").await;
    // Presence echo is 1; nine messages fill the queue to ten.
    for i in 1..=9 {
        bob.send_xml(&chat("alice@localhost/phone", &format!("m{i}")))
            .await
            .unwrap();
    }
    for i in 1..=9 {
        expect_chat(&mut alice, "bob@localhost/r", &format!("m{i}")).await;
    }
    alice.expect_stream_error("policy-violation").await.unwrap();
    // Once her session has stored what it held, later messages queue behind them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 10..=12 {
        bob.send_xml(&chat("alice@localhost/phone", &format!("m{i}")))
            .await
            .unwrap();
    }
    bob.expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
    let mut again = server.login("alice", PW, "phone").await;
    again.send_xml("<presence/>").await.unwrap();
    again
        .expect("<presence from='alice@localhost/phone' to='alice@localhost/phone'/>")
        .await
        .unwrap();
    for i in 1..=12 {
        let id = format!("m{i}");
        again
            .expect(&format!(
                "<message from='bob@localhost/r' to='alice@localhost/phone' type='chat' id='{id}'><body>{id}</body>\
                 <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{{*}}'/></message>"
            ))
            .await
            .unwrap();
    }
}

/// Issue 12: on shutdown, every session's unacknowledged messages are stored before exit — a
/// live one's and a detached one's — and delivered after the restart.
#[tokio::test]
async fn shutdown_stores_what_live_and_detached_sessions_held() {
    let server = TestServer::with_users(&["alice", "bob", "carol"], PW).await;
    let (mut alice, _) = online_with_sm(&server, "alice", "phone").await;
    let (mut carol, _) = online_with_sm(&server, "carol", "phone").await;
    let mut bob = online(&server, "bob").await;
    bob.send_xml(&chat("alice@localhost/phone", "to-alice"))
        .await
        .unwrap();
    bob.send_xml(&chat("carol@localhost/phone", "to-carol"))
        .await
        .unwrap();
    for (c, user) in [(&mut alice, "alice"), (&mut carol, "carol")] {
        c.expect(&format!(
            "<message from='bob@localhost/r' to='{user}@localhost/phone' type='chat' id='to-{user}'><body>to-{user}</body></message>"
        ))
        .await
        .unwrap();
    }
    // Carol's connection drops: her session is detached. Alice's stays live.
    drop(carol);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = server.restart().await;
    for user in ["alice", "carol"] {
        let mut c = server.login(user, PW, "phone").await;
        c.send_xml("<presence/>").await.unwrap();
        c.expect(&format!(
            "<presence from='{user}@localhost/phone' to='{user}@localhost/phone'/>"
        ))
        .await
        .unwrap();
        c.expect(&format!(
            "<message from='bob@localhost/r' to='{user}@localhost/phone' type='chat' id='to-{user}'><body>to-{user}</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{{*}}'/></message>"
        ))
        .await
        .unwrap();
        c.expect_silence(Duration::from_millis(200)).await.unwrap();
    }
    drop(alice);
}

/// Everything that arrives within `d`.
async fn collect(c: &mut Client, d: Duration) -> Vec<Element> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, c.recv_element()).await {
        got.push(e);
    }
    got
}

fn messages_with_id<'a>(got: &'a [Element], id: &str) -> Vec<&'a Element> {
    got.iter()
        .filter(|e| e.name() == "message" && e.attr("id") == Some(id))
        .collect()
}

/// RFC 6121 §8.5.2.1.1: a message to the bare JID goes to every available resource of the
/// highest priority. When one of them ends without resumption, what it had not acknowledged is
/// not sent again to another resource of the same priority (that one has it already); when it
/// was the only resource of its priority, the others get it (§8.5.3.2.1), once.
#[tokio::test]
async fn an_ended_session_sends_bare_messages_only_to_resources_that_lacked_them() {
    let server = TestServer::start_with(|c| {
        c.stream_management.resume_timeout = Duration::from_secs(1);
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let mut bob = online(&server, "bob").await;

    // Same priority: both resources get m1; the phone's copy is not routed again.
    let (mut phone, _) = online_with_sm(&server, "alice", "phone").await;
    let mut laptop = server.login("alice", PW, "laptop").await;
    laptop.send_xml("<presence/>").await.unwrap();
    laptop.drain(Duration::from_millis(200)).await;
    phone.drain(Duration::from_millis(200)).await;
    bob.send_xml(&chat("alice@localhost", "m1")).await.unwrap();
    phone
        .expect("<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m1'><body>m1</body></message>")
        .await
        .unwrap();
    laptop
        .expect("<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m1'><body>m1</body></message>")
        .await
        .unwrap();
    drop(phone);
    let got = collect(&mut laptop, Duration::from_millis(2000)).await;
    assert!(
        messages_with_id(&got, "m1").is_empty(),
        "m1 came twice to the laptop: {got:?}"
    );

    // A higher priority: only the phone gets m2; when it ends, the laptop gets it, once.
    let mut phone = server.login("alice", PW, "phone").await;
    phone
        .send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    phone
        .expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='1' id='{*}'/>")
        .await
        .unwrap();
    phone
        .send_xml("<presence><priority>5</priority></presence>")
        .await
        .unwrap();
    phone.drain(Duration::from_millis(200)).await;
    laptop.drain(Duration::from_millis(200)).await;
    bob.send_xml(&chat("alice@localhost", "m2")).await.unwrap();
    phone
        .expect("<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m2'><body>m2</body></message>")
        .await
        .unwrap();
    laptop
        .expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
    drop(phone);
    let got = collect(&mut laptop, Duration::from_millis(2000)).await;
    let m2 = messages_with_id(&got, "m2");
    assert_eq!(m2.len(), 1, "the laptop should get m2 once: {got:?}");
    assert_eq!(m2[0].attr("to"), Some("alice@localhost"));
    // The phone's session ended: the laptop saw it go.
    assert!(
        got.iter().any(|e| e.name() == "presence"
            && e.attr("from") == Some("alice@localhost/phone")
            && e.attr("type") == Some("unavailable")),
        "{got:?}"
    );
}
