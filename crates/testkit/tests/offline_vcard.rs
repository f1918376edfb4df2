//! End-to-end tests over real sockets of offline messages (XEP-0160 with XEP-0203 stamps),
//! vcard-temp (XEP-0054), software version (XEP-0092) and entity time (XEP-0202).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use starling_testkit::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const QUIET: Duration = Duration::from_millis(200);

const SERVICE_UNAVAILABLE: &str = "<error type='cancel'>\
    <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";

async fn add_users(server: &TestServer, users: &[&str]) {
    for u in users {
        server.add_user(u, PW).await;
    }
}

async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    server.login(user, PW, resource).await
}

/// Logs in and sends initial presence, which comes back first (RFC 6121 §4.2.2).
async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    server.online(user, PW, resource).await
}

async fn stored_count(server: &TestServer, user: &str) -> u64 {
    server
        .router()
        .context()
        .stores
        .offline
        .count(user, "localhost")
        .await
        .unwrap()
}

/// Seconds since the epoch of an XEP-0082 `CCYY-MM-DDThh:mm:ssZ` (days from the civil date after
/// H. Hinnant's `days_from_civil`).
fn parse_utc(s: &str) -> i64 {
    let b = s.as_bytes();
    assert_eq!(b.len(), 20, "{s}");
    for (i, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ] {
        assert_eq!(b[i], sep, "{s}");
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (hh, mm, ss) = (n(11..13), n(14..16), n(17..19));
    assert!((1..=12).contains(&m) && (1..=31).contains(&d), "{s}");
    assert!(hh < 24 && mm < 60 && ss < 60, "{s}");
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

#[test]
fn parse_utc_known_values() {
    assert_eq!(parse_utc("1970-01-01T00:00:00Z"), 0);
    assert_eq!(parse_utc("2000-02-29T00:00:00Z"), 951_782_400);
    assert_eq!(parse_utc("2038-01-19T03:14:08Z"), 2_147_483_648);
}

/// Asserts that `stamp` is within a minute of now.
fn assert_recent(stamp: &str) {
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let t = parse_utc(stamp);
    assert!(
        (now - t).abs() <= 60,
        "{stamp} is not within a minute of now ({now})"
    );
}

/// The `stamp` of the message's `<delay/>`, checked to be recent.
fn check_delay(message: &Element) {
    let delay = message.get_child("delay", "urn:xmpp:delay").unwrap();
    assert_recent(delay.attr("stamp").unwrap());
}

// ---------------------------------------------------------------------------------------------
// offline messages

#[tokio::test]
async fn offline_messages_are_stored_and_delivered_at_initial_presence() {
    let server = TestServer::start().await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    // bob has no session at all.
    alice
        .send_xml(
            "<message to='bob@localhost' type='chat' id='m1' xml:lang='en'><body>Hello &amp; „hi“</body>\
             <request xmlns='urn:xmpp:receipts'/><x xmlns='urn:example:custom' a='1'><y>z</y></x></message>",
        )
        .await
        .unwrap();
    alice
        .send_xml(
            "<message to='bob@localhost' id='m2'><subject>S</subject><body>normal</body></message>",
        )
        .await
        .unwrap();
    alice
        .send_xml("<message to='bob@localhost' id='m3'><received xmlns='urn:xmpp:receipts' id='r1'/></message>")
        .await
        .unwrap();
    // To a resource that does not exist: treated as to the bare JID (RFC 6121 §8.5.3.2.1).
    alice
        .send_xml("<message to='bob@localhost/gone' type='chat' id='m4'><body>4</body></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 4);

    // Binding alone does not deliver; initial presence does (XEP-0160 §2).
    let mut bob = login(&server, "bob", "b").await;
    bob.expect_silence(QUIET).await.unwrap();
    bob.send_xml("<presence/>").await.unwrap();
    bob.expect("<presence from='bob@localhost/b' to='bob@localhost/b'/>")
        .await
        .unwrap();
    let expected = [
        "<message to='bob@localhost' type='chat' id='m1' xml:lang='en' from='alice@localhost/a'>\
           <body>Hello &amp; „hi“</body><request xmlns='urn:xmpp:receipts'/>\
           <x xmlns='urn:example:custom' a='1'><y>z</y></x>\
           <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
        "<message to='bob@localhost' id='m2' from='alice@localhost/a'><subject>S</subject><body>normal</body>\
           <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
        "<message to='bob@localhost' id='m3' from='alice@localhost/a'>\
           <received xmlns='urn:xmpp:receipts' id='r1'/>\
           <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
        "<message to='bob@localhost/gone' type='chat' id='m4' from='alice@localhost/a'><body>4</body>\
           <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
    ];
    for want in expected {
        let got = bob.expect(want).await.unwrap();
        check_delay(&got);
    }
    bob.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 0);

    // Now bob is available: a new message goes straight to him, without a delay.
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='m5'><body>live</body></message>")
        .await
        .unwrap();
    bob.expect("<message to='bob@localhost' type='chat' id='m5' from='alice@localhost/a'><body>live</body></message>")
        .await
        .unwrap();
    bob.close().await.unwrap();
    // The old session's end (and its unavailable broadcast) is done before the next login, so
    // that the new resource does not see it.
    let bare = starling_proto::BareJid::new("bob@localhost").unwrap();
    for _ in 0..100 {
        if server
            .router()
            .context()
            .sessions
            .resources(&bare)
            .await
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Unbound first, then its end is broadcast.
    tokio::time::sleep(QUIET).await;

    // A second login gets nothing more.
    let mut bob = online(&server, "bob", "b2").await;
    bob.expect_silence(QUIET).await.unwrap();
    bob.close().await.unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn negative_priority_does_not_take_offline_messages() {
    let server = TestServer::start().await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    alice
        .send_xml("<message to='bob@localhost' id='m1'><body>1</body></message>")
        .await
        .unwrap();
    let mut bob = login(&server, "bob", "neg").await;
    bob.send_xml("<presence><priority>-1</priority></presence>")
        .await
        .unwrap();
    bob.expect("<presence from='bob@localhost/neg' to='bob@localhost/neg'><priority>-1</priority></presence>")
        .await
        .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 1);
    // Still offline for bare-JID messages (RFC 6121 §8.5.2.2.1): stored too.
    alice
        .send_xml("<message to='bob@localhost' id='m2'><body>2</body></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 2);
    // Another resource's initial presence with non-negative priority takes them.
    let mut bob2 = online(&server, "bob", "pos").await;
    for id in ["m1", "m2"] {
        bob2.expect(&format!(
            "<message to='bob@localhost' id='{id}' from='alice@localhost/a'><body>{}</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{{*}}'/></message>",
            &id[1..]
        ))
        .await
        .unwrap();
    }
    bob2.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn full_queue_bounces_the_overflowing_message() {
    let server = TestServer::start_with(|c| c.offline.max_messages = 2).await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    for i in 1..=2 {
        alice
            .send_xml(&format!(
                "<message to='bob@localhost' type='chat' id='m{i}'><body>{i}</body></message>"
            ))
            .await
            .unwrap();
    }
    alice.expect_silence(QUIET).await.unwrap();
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='m3'><body>3</body></message>")
        .await
        .unwrap();
    // A full queue: <resource-constraint/> of type wait (RFC 6120 §8.3.3.18), where XEP-0160
    // §2 step 3 suggests <service-unavailable/> (see the offline module's docs for why).
    alice
        .expect(
            "<message id='m3' to='alice@localhost/a' from='bob@localhost' type='error'>\
             <error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The recipient&apos;s offline message queue is full</text>\
             </error></message>",
        )
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 2);

    // Delivery makes room again.
    let mut bob = online(&server, "bob", "b").await;
    for i in 1..=2 {
        bob.expect(&format!(
            "<message to='bob@localhost' type='chat' id='m{i}' from='alice@localhost/a'><body>{i}</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{{*}}'/></message>"
        ))
        .await
        .unwrap();
    }
    bob.close().await.unwrap();
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='m4'><body>4</body></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn what_is_not_stored() {
    let server = TestServer::start().await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    // Headlines are dropped (XEP-0160 §3), silently (RFC 6121 §8.5.2.2.1).
    alice
        .send_xml("<message to='bob@localhost' type='headline' id='h'><body>news</body></message>")
        .await
        .unwrap();
    // Standalone chat states are not stored (XEP-0160 §3), and not bounced.
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    // Groupchat to a bare JID is an error (RFC 6121 §8.5.2.1.1).
    alice
        .send_xml("<message to='bob@localhost' type='groupchat' id='g'><body>room</body></message>")
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<message id='g' to='alice@localhost/a' from='bob@localhost' type='error'>{SERVICE_UNAVAILABLE}</message>"
        ))
        .await
        .unwrap();
    // XEP-0334 <no-store/>: bounced as if there were no offline storage.
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='ns'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>")
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<message id='ns' to='alice@localhost/a' from='bob@localhost' type='error'>{SERVICE_UNAVAILABLE}</message>"
        ))
        .await
        .unwrap();
    // No such account (RFC 6121 §8.5.1).
    alice
        .send_xml("<message to='nobody@localhost' type='chat' id='n'><body>?</body></message>")
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<message id='n' to='alice@localhost/a' from='nobody@localhost' type='error'>{SERVICE_UNAVAILABLE}</message>"
        ))
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 0);

    // A headline with the <store/> hint is kept (XEP-0334 §4.4).
    alice
        .send_xml("<message to='bob@localhost' type='headline' id='hs'><body>keep</body><store xmlns='urn:xmpp:hints'/></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 1);
    let mut bob = online(&server, "bob", "b").await;
    bob.expect(
        "<message to='bob@localhost' type='headline' id='hs' from='alice@localhost/a'><body>keep</body>\
         <store xmlns='urn:xmpp:hints'/><delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
    )
    .await
    .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn offline_storage_off_bounces_and_is_not_advertised() {
    let server = TestServer::start_with(|c| c.offline.max_messages = 0).await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='m1'><body>1</body></message>")
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<message id='m1' to='alice@localhost/a' from='bob@localhost' type='error'>{SERVICE_UNAVAILABLE}</message>"
        ))
        .await
        .unwrap();
    assert_eq!(stored_count(&server, "bob").await, 0);
    let features = server_features(&mut alice, "localhost").await;
    assert!(!features.contains(&"msgoffline".to_owned()), "{features:?}");
    server.stop().await;
}

#[tokio::test]
async fn offline_messages_survive_a_restart() {
    let server = TestServer::start().await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    alice
        .send_xml("<message to='bob@localhost' id='m1'><body>before restart</body></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    drop(alice);
    let server = server.restart().await;
    let mut bob = online(&server, "bob", "b").await;
    bob.expect(
        "<message to='bob@localhost' id='m1' from='alice@localhost/a'><body>before restart</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
    )
    .await
    .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// service discovery

/// The `var`s of the disco#info features of `to`.
async fn server_features(c: &mut Client, to: &str) -> Vec<String> {
    c.send_xml(&format!(
        "<iq type='get' id='disco' to='{to}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ))
    .await
    .unwrap();
    let reply = c.recv_element().await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    reply
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .filter(|c| c.name() == "feature")
        .map(|f| f.attr("var").unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn features_are_advertised() {
    let server = TestServer::start().await;
    add_users(&server, &["alice"]).await;
    let mut alice = login(&server, "alice", "a").await;
    let features = server_features(&mut alice, "localhost").await;
    for f in [
        "msgoffline",
        "vcard-temp",
        "jabber:iq:version",
        "urn:xmpp:time",
    ] {
        assert!(
            features.contains(&f.to_owned()),
            "{f} missing: {features:?}"
        );
    }
    let features = server_features(&mut alice, "alice@localhost").await;
    assert!(
        features.contains(&"vcard-temp".to_owned()),
        "vcard-temp missing on the account: {features:?}"
    );
    for f in ["msgoffline", "jabber:iq:version", "urn:xmpp:time"] {
        assert!(
            !features.contains(&f.to_owned()),
            "{f} on the account: {features:?}"
        );
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// vcard-temp

const VCARD: &str = "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN>\
    <N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N><NICKNAME>al &amp; „ali“</NICKNAME>\
    <EMAIL><INTERNET/><USERID>alice@example.org</USERID></EMAIL></vCard>";

#[tokio::test]
async fn vcard_get_set_and_access_rules() {
    let server = TestServer::start().await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;

    // §3.1: none stored yet: an empty vCard for oneself.
    alice
        .send_xml("<iq type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='v1' to='alice@localhost/a'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    // §3.3: another user's that does not exist: the same as a user that does not exist.
    bob.send_xml("<iq type='get' id='v2' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    bob.expect(&format!(
        "<iq id='v2' to='bob@localhost/b' from='alice@localhost' type='error'>{SERVICE_UNAVAILABLE}</iq>"
    ))
    .await
    .unwrap();

    // §3.2: set one's own.
    alice
        .send_xml(&format!("<iq type='set' id='v3'>{VCARD}</iq>"))
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='v3' to='alice@localhost/a'/>")
        .await
        .unwrap();
    assert_eq!(
        server
            .router()
            .context()
            .stores
            .vcards
            .vcard("alice", "localhost")
            .await
            .unwrap()
            .as_deref(),
        Some(VCARD)
    );
    alice
        .send_xml("<iq type='get' id='v4'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='v4' to='alice@localhost/a'>{VCARD}</iq>"
        ))
        .await
        .unwrap();
    // Addressed to one's own bare JID is the same.
    alice
        .send_xml("<iq type='get' id='v5' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='v5' from='alice@localhost' to='alice@localhost/a'>{VCARD}</iq>"
        ))
        .await
        .unwrap();
    // §3.3: others read it, answered by the server.
    bob.send_xml("<iq type='get' id='v6' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    bob.expect(&format!(
        "<iq type='result' id='v6' from='alice@localhost' to='bob@localhost/b'>{VCARD}</iq>"
    ))
    .await
    .unwrap();
    alice.expect_silence(QUIET).await.unwrap();

    // §3.2: nobody sets someone else's.
    bob.send_xml(
        "<iq type='set' id='v7' to='alice@localhost'><vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>",
    )
    .await
    .unwrap();
    bob.expect(
        "<iq id='v7' to='bob@localhost/b' from='alice@localhost' type='error'>\
         <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .await
    .unwrap();
    // A user that does not exist.
    bob.send_xml("<iq type='get' id='v8' to='nobody@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    bob.expect(&format!(
        "<iq id='v8' to='bob@localhost/b' from='nobody@localhost' type='error'>{SERVICE_UNAVAILABLE}</iq>"
    ))
    .await
    .unwrap();

    // Replace with an empty vCard, then with one too large: refused, the empty one stays.
    alice
        .send_xml("<iq type='set' id='v9' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='v9' from='alice@localhost' to='alice@localhost/a'/>")
        .await
        .unwrap();
    let photo = "QUJD".repeat(17 * 1024);
    alice
        .send_xml(&format!(
            "<iq type='set' id='v10'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE>\
             <BINVAL>{photo}</BINVAL></PHOTO></vCard></iq>"
        ))
        .await
        .unwrap();
    alice
        .expect(
            "<iq id='v10' to='alice@localhost/a' type='error'><error type='modify'>\
             <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the vCard exceeds 65536 bytes</text>\
             </error></iq>",
        )
        .await
        .unwrap();
    bob.send_xml("<iq type='get' id='v11' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    bob.expect("<iq type='result' id='v11' from='alice@localhost' to='bob@localhost/b'><vCard xmlns='vcard-temp'/></iq>")
        .await
        .unwrap();
    // Just under the limit is fine.
    let fits = format!(
        "<vCard xmlns='vcard-temp'><DESC>{}</DESC></vCard>",
        "x".repeat(65_536 - "<vCard xmlns='vcard-temp'><DESC></DESC></vCard>".len())
    );
    assert_eq!(fits.len(), 65_536);
    alice
        .send_xml(&format!("<iq type='set' id='v12'>{fits}</iq>"))
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='v12' to='alice@localhost/a'/>")
        .await
        .unwrap();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// software version and entity time

#[tokio::test]
async fn software_version() {
    let server = TestServer::start().await;
    add_users(&server, &["alice"]).await;
    let mut alice = login(&server, "alice", "a").await;
    alice
        .send_xml("<iq type='get' id='ver' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
        .await
        .unwrap();
    // No <os/> (XEP-0092 §5).
    alice
        .expect(&format!(
            "<iq type='result' id='ver' from='localhost' to='alice@localhost/a'>\
             <query xmlns='jabber:iq:version'><name>Starling</name><version>{}</version></query></iq>",
            env!("CARGO_PKG_VERSION")
        ))
        .await
        .unwrap();
    // Without 'to': the server answers too.
    alice
        .send_xml("<iq type='get' id='ver2'><query xmlns='jabber:iq:version'/></iq>")
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='ver2' to='alice@localhost/a'>\
             <query xmlns='jabber:iq:version'><name>Starling</name><version>{}</version></query></iq>",
            env!("CARGO_PKG_VERSION")
        ))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn entity_time() {
    let server = TestServer::start().await;
    add_users(&server, &["alice"]).await;
    let mut alice = login(&server, "alice", "a").await;
    alice
        .send_xml("<iq type='get' id='t1' to='localhost'><time xmlns='urn:xmpp:time'/></iq>")
        .await
        .unwrap();
    let reply = alice
        .expect(
            "<iq type='result' id='t1' from='localhost' to='alice@localhost/a'>\
             <time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>{*}</utc></time></iq>",
        )
        .await
        .unwrap();
    let utc = reply
        .get_child("time", "urn:xmpp:time")
        .and_then(|t| t.get_child("utc", "urn:xmpp:time"))
        .unwrap()
        .text();
    assert_recent(&utc);
    server.stop().await;
}

#[tokio::test]
async fn a_backlog_larger_than_the_session_queue_arrives_whole_and_in_order() {
    // More than one delivery batch and more than the session's outbound queue (512).
    const N: usize = 700;
    let server = TestServer::start().await;
    add_users(&server, &["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    for i in 0..N {
        alice
            .send_xml(&format!(
                "<message to='bob@localhost' type='chat' id='m{i}'><body>{i}</body></message>"
            ))
            .await
            .unwrap();
    }
    // Storing is one write transaction per message: wait until all are in.
    for _ in 0..200 {
        if stored_count(&server, "bob").await == N as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored_count(&server, "bob").await, N as u64);
    alice.expect_silence(QUIET).await.unwrap();
    let mut bob = online(&server, "bob", "b").await;
    for i in 0..N {
        bob.expect(&format!(
            "<message to='bob@localhost' type='chat' id='m{i}' from='alice@localhost/a'><body>{i}</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{{*}}'/></message>"
        ))
        .await
        .unwrap();
    }
    bob.expect_silence(QUIET).await.unwrap();
    assert_eq!(stored_count(&server, "bob").await, 0);
    server.stop().await;
}
