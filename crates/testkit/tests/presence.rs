//! End-to-end tests of presence (RFC 6121 §4), message routing by priority (§8.5.2) and roster
//! pushes (§2.1.6) over real sockets. The subscription scenarios of the seeds are in
//! `tests/scripts/`; these cover what those do not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const QUIET: Duration = Duration::from_millis(200);

async fn server_with_users(users: &[&str]) -> TestServer {
    TestServer::with_users(users, PW).await
}

async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    server.login(user, PW, resource).await
}

async fn drain(c: &mut Client) {
    c.drain(QUIET).await;
}

#[tokio::test]
async fn broadcast_probe_unavailable_on_drop_and_directed_presence() {
    let server = server_with_users(&["alice", "bob", "carol"]).await;
    server.befriend("alice", "bob").await;

    let mut alice = login(&server, "alice", "a").await;
    alice
        .send_xml("<presence><show>away</show></presence>")
        .await
        .unwrap();
    // §4.2.2: reflected to the account's own available resources; bob is offline.
    alice
        .expect("<presence from='alice@localhost/a' to='alice@localhost/a'><show>away</show></presence>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();

    let mut bob = login(&server, "bob", "b").await;
    bob.send_xml("<presence/>").await.unwrap();
    bob.expect("<presence from='bob@localhost/b' to='bob@localhost/b'/>")
        .await
        .unwrap();
    // §4.2.2 probe: alice's current presence.
    bob.expect(
        "<presence from='alice@localhost/a' to='bob@localhost/b'><show>away</show></presence>",
    )
    .await
    .unwrap();
    alice
        .expect("<presence from='bob@localhost/b' to='alice@localhost'/>")
        .await
        .unwrap();

    // An update is broadcast too, without probing again.
    bob.send_xml("<presence><status>busy</status></presence>")
        .await
        .unwrap();
    bob.expect(
        "<presence from='bob@localhost/b' to='bob@localhost/b'><status>busy</status></presence>",
    )
    .await
    .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    alice
        .expect("<presence from='bob@localhost/b' to='alice@localhost'><status>busy</status></presence>")
        .await
        .unwrap();

    // §4.5.2: TCP drops without </stream:stream>: contacts hear it.
    drop(bob);
    alice
        .expect("<presence type='unavailable' from='bob@localhost/b' to='alice@localhost'/>")
        .await
        .unwrap();

    // §4.6: directed presence to a non-contact, then logout: it hears too (§4.6.3).
    let mut carol = login(&server, "carol", "c").await;
    alice
        .send_xml("<presence to='carol@localhost/c' id='d1'><show>chat</show></presence>")
        .await
        .unwrap();
    carol
        .expect("<presence to='carol@localhost/c' id='d1' from='alice@localhost/a'><show>chat</show></presence>")
        .await
        .unwrap();
    alice.close().await.unwrap();
    carol
        .expect("<presence type='unavailable' from='alice@localhost/a' to='carol@localhost/c'/>")
        .await
        .unwrap();
    carol.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn explicit_unavailable_and_replaced_session() {
    let server = server_with_users(&["alice", "bob"]).await;
    server.befriend("alice", "bob").await;
    let mut alice = login(&server, "alice", "a").await;
    alice.send_xml("<presence/>").await.unwrap();
    alice
        .expect("<presence from='alice@localhost/a' to='alice@localhost/a'/>")
        .await
        .unwrap();
    let mut bob = login(&server, "bob", "b").await;
    bob.send_xml("<presence/>").await.unwrap();
    bob.expect("<presence from='bob@localhost/b' to='bob@localhost/b'/>")
        .await
        .unwrap();
    bob.expect("<presence from='alice@localhost/a' to='bob@localhost/b'/>")
        .await
        .unwrap();
    alice
        .expect("<presence from='bob@localhost/b' to='alice@localhost'/>")
        .await
        .unwrap();

    bob.send_xml("<presence type='unavailable'><status>gone</status></presence>")
        .await
        .unwrap();
    alice
        .expect("<presence type='unavailable' from='bob@localhost/b' to='alice@localhost'><status>gone</status></presence>")
        .await
        .unwrap();
    bob.expect("<presence type='unavailable' from='bob@localhost/b' to='bob@localhost/b'><status>gone</status></presence>")
        .await
        .unwrap();
    bob.expect_silence(QUIET).await.unwrap();

    // A new session for alice's resource replaces the old one: contacts hear the old one leave.
    bob.send_xml("<presence/>").await.unwrap();
    bob.expect("<presence from='bob@localhost/b' to='bob@localhost/b'/>")
        .await
        .unwrap();
    bob.expect("<presence from='alice@localhost/a' to='bob@localhost/b'/>")
        .await
        .unwrap();
    alice
        .expect("<presence from='bob@localhost/b' to='alice@localhost'/>")
        .await
        .unwrap();
    let _alice2 = login(&server, "alice", "a").await;
    alice.expect_stream_error("conflict").await.unwrap();
    bob.expect("<presence type='unavailable' from='alice@localhost/a' to='bob@localhost'/>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn probes_reveal_nothing_to_strangers_and_bad_types_are_refused() {
    let server = server_with_users(&["alice", "mallory"]).await;
    let mut alice = login(&server, "alice", "a").await;
    alice.send_xml("<presence/>").await.unwrap();
    alice
        .expect("<presence from='alice@localhost/a' to='alice@localhost/a'/>")
        .await
        .unwrap();
    let mut mallory = login(&server, "mallory", "m").await;
    // §4.3.2: no presence for a prober without a subscription, and the same (nothing) for an
    // account that does not exist.
    for to in ["alice@localhost", "nobody@localhost"] {
        mallory
            .send_xml(&format!("<presence type='probe' to='{to}'/>"))
            .await
            .unwrap();
    }
    mallory.expect_silence(QUIET).await.unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    // A subscription request to an account that does not exist cannot be delivered: an error
    // (§3.1.2), and nothing on mallory's roster (see tests/roster_limits.rs).
    mallory
        .send_xml("<presence type='subscribe' to='nobody@localhost' id='s1'/>")
        .await
        .unwrap();
    mallory
        .expect("<presence type='error' id='s1' from='nobody@localhost' to='mallory@localhost/m'>\
                 <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such account</text></error></presence>")
        .await
        .unwrap();
    mallory
        .send_xml("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    mallory
        .expect("<iq type='result' id='r1' to='mallory@localhost/m'><query xmlns='jabber:iq:roster' ver='0'/></iq>")
        .await
        .unwrap();
    // RFC 6121 §4.7.1: no other presence types exist.
    mallory
        .send_xml("<presence type='online' id='p1'/>")
        .await
        .unwrap();
    mallory
        .expect("<presence type='error' id='p1' to='mallory@localhost/m'><error type='modify'>\
                 <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>unknown presence type</text></error></presence>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn messages_to_the_bare_jid_follow_priorities() {
    let server = server_with_users(&["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    let mut low = login(&server, "bob", "low").await;
    let mut high = login(&server, "bob", "high").await;
    let mut neg = login(&server, "bob", "neg").await;
    let mut silent = login(&server, "bob", "silent").await; // never sends presence
    for (c, p) in [(&mut low, 1), (&mut high, 5), (&mut neg, -1)] {
        c.send_xml(&format!("<presence><priority>{p}</priority></presence>"))
            .await
            .unwrap();
    }
    // Let every reflection arrive, then ignore them.
    tokio::time::sleep(QUIET).await;
    for c in [&mut low, &mut high, &mut neg] {
        drain(c).await;
    }

    // §8.5.2.1.1: chat and normal go to the highest non-negative priority only.
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='m1'><body>1</body></message>")
        .await
        .unwrap();
    high.expect("<message to='bob@localhost' type='chat' id='m1' from='alice@localhost/a'><body>1</body></message>")
        .await
        .unwrap();
    // Headline: every non-negative available resource.
    alice
        .send_xml("<message to='bob@localhost' type='headline' id='m2'><body>2</body></message>")
        .await
        .unwrap();
    for c in [&mut high, &mut low] {
        c.expect("<message to='bob@localhost' type='headline' id='m2' from='alice@localhost/a'><body>2</body></message>")
            .await
            .unwrap();
    }
    // §8.5.3.2.1: a full JID with no such resource is treated as the bare JID.
    alice
        .send_xml("<message to='bob@localhost/gone' type='chat' id='m3'><body>3</body></message>")
        .await
        .unwrap();
    high.expect("<message to='bob@localhost/gone' type='chat' id='m3' from='alice@localhost/a'><body>3</body></message>")
        .await
        .unwrap();
    // §8.5.3.1: a connected resource gets messages to its full JID, available or not.
    alice
        .send_xml("<message to='bob@localhost/silent' type='chat' id='m4'><body>4</body></message>")
        .await
        .unwrap();
    silent
        .expect("<message to='bob@localhost/silent' type='chat' id='m4' from='alice@localhost/a'><body>4</body></message>")
        .await
        .unwrap();
    // Groupchat to a bare JID is an error.
    alice
        .send_xml("<message to='bob@localhost' type='groupchat' id='m5'><body>5</body></message>")
        .await
        .unwrap();
    alice
        .expect("<message type='error' id='m5' from='bob@localhost' to='alice@localhost/a'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        .await
        .unwrap();
    for c in [&mut low, &mut neg, &mut silent, &mut high] {
        c.expect_silence(QUIET).await.unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn roster_pushes_go_to_interested_resources_with_versions() {
    let server = server_with_users(&["alice"]).await;
    let mut a1 = login(&server, "alice", "one").await;
    let mut a2 = login(&server, "alice", "two").await;
    let mut uninterested = login(&server, "alice", "three").await;
    for c in [&mut a1, &mut a2] {
        c.send_xml("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>")
            .await
            .unwrap();
        let to = c.jid().unwrap().to_string();
        c.expect(&format!(
            "<iq type='result' id='g' to='{to}'><query xmlns='jabber:iq:roster' ver='0'/></iq>"
        ))
        .await
        .unwrap();
    }
    // Several groups in order, a non-ASCII name; 'subscription' and 'ask' from a client are
    // ignored (§2.1.2.2, §2.1.2.5).
    a1.send_xml(
        "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>\
         <item jid='Jürgen@Example.ORG' name='Jürgen „Jü“ 王' subscription='both' ask='subscribe'>\
         <group>Zebra</group><group>Ärzte</group></item></query></iq>",
    )
    .await
    .unwrap();
    let item = "<item jid='jürgen@example.org' name='Jürgen „Jü“ 王' subscription='none'>\
                <group>Zebra</group><group>Ärzte</group></item>";
    for (c, to) in [(&mut a1, "one"), (&mut a2, "two")] {
        c.expect(&format!(
            "<iq type='set' id='{{*}}' to='alice@localhost/{to}'><query xmlns='jabber:iq:roster' ver='1'>{item}</query></iq>"
        ))
        .await
        .unwrap();
    }
    a1.expect("<iq type='result' id='s1' to='alice@localhost/one'/>")
        .await
        .unwrap();
    uninterested.expect_silence(QUIET).await.unwrap();

    // §2.6.3: the current version gets an empty result; an older one the whole roster.
    a2.send_xml("<iq type='get' id='g2'><query xmlns='jabber:iq:roster' ver='1'/></iq>")
        .await
        .unwrap();
    a2.expect("<iq type='result' id='g2' to='alice@localhost/two'/>")
        .await
        .unwrap();
    a2.send_xml("<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='0'/></iq>")
        .await
        .unwrap();
    a2.expect(&format!(
        "<iq type='result' id='g3' to='alice@localhost/two'><query xmlns='jabber:iq:roster' ver='1'>{item}</query></iq>"
    ))
    .await
    .unwrap();

    // Removal: pushed with subscription='remove' and a new version; again: item-not-found.
    for round in 0..2 {
        a2.send_xml(
            "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>\
             <item jid='jürgen@example.org' subscription='remove'/></query></iq>",
        )
        .await
        .unwrap();
        if round == 0 {
            for (c, to) in [(&mut a1, "one"), (&mut a2, "two")] {
                c.expect(&format!(
                    "<iq type='set' id='{{*}}' to='alice@localhost/{to}'><query xmlns='jabber:iq:roster' ver='2'>\
                     <item jid='jürgen@example.org' subscription='remove'/></query></iq>"
                ))
                .await
                .unwrap();
            }
            a2.expect("<iq type='result' id='rm' to='alice@localhost/two'/>")
                .await
                .unwrap();
        } else {
            a2.expect(
                "<iq type='error' id='rm' to='alice@localhost/two'><error type='cancel'>\
                       <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                       <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></error></iq>",
            )
            .await
            .unwrap();
        }
    }
    a1.expect_silence(QUIET).await.unwrap();
    uninterested.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}

/// Logs in, requests the roster (becoming an interested resource), sends initial presence and
/// reads what that brings until quiet.
async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = login(server, user, resource).await;
    c.send_xml("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    c.send_xml("<presence/>").await.unwrap();
    drain(&mut c).await;
    c
}

#[tokio::test]
async fn removing_a_contact_cancels_both_subscriptions() {
    let server = server_with_users(&["alice", "bob"]).await;
    server.befriend("alice", "bob").await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    drain(&mut alice).await;

    alice
        .send_xml(
            "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>\
             <item jid='bob@localhost' subscription='remove'/></query></iq>",
        )
        .await
        .unwrap();
    alice
        .expect("<iq type='set' id='{*}' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='2'>\
                 <item jid='bob@localhost' subscription='remove'/></query></iq>")
        .await
        .unwrap();
    // RFC 6121 §2.5.2: bob's subscription to alice ends (he sees her go) and so does hers to him.
    bob.expect("<presence type='unavailable' from='alice@localhost/a' to='bob@localhost'/>")
        .await
        .unwrap();
    bob.expect(
        "<iq type='set' id='{*}' to='bob@localhost/b'><query xmlns='jabber:iq:roster' ver='2'>\
                <item jid='alice@localhost' subscription='from'/></query></iq>",
    )
    .await
    .unwrap();
    bob.expect("<presence type='unsubscribed' from='alice@localhost' to='bob@localhost'/>")
        .await
        .unwrap();
    bob.expect(
        "<iq type='set' id='{*}' to='bob@localhost/b'><query xmlns='jabber:iq:roster' ver='3'>\
                <item jid='alice@localhost' subscription='none'/></query></iq>",
    )
    .await
    .unwrap();
    bob.expect("<presence type='unsubscribe' from='alice@localhost' to='bob@localhost'/>")
        .await
        .unwrap();
    // §3.3.3: and alice's client hears bob go unavailable.
    alice
        .expect("<presence type='unavailable' from='bob@localhost/b' to='alice@localhost'/>")
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='rm' to='alice@localhost/a'/>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    // Presence no longer flows either way.
    bob.send_xml("<presence><show>dnd</show></presence>")
        .await
        .unwrap();
    bob.expect("<presence from='bob@localhost/b' to='bob@localhost/b'><show>dnd</show></presence>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn revoking_a_subscription_sends_unavailable_first() {
    let server = server_with_users(&["alice", "bob"]).await;
    server.befriend("alice", "bob").await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    drain(&mut alice).await;
    // alice revokes bob's subscription to her presence: Both → To (A.2.4), and for bob
    // Both → From (A.3.4).
    alice
        .send_xml("<presence type='unsubscribed' to='bob@localhost' id='u1'/>")
        .await
        .unwrap();
    alice
        .expect("<iq type='set' id='{*}' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='2'>\
                 <item jid='bob@localhost' subscription='to'/></query></iq>")
        .await
        .unwrap();
    // RFC 6121 §3.2.2: while still subscribed, bob first sees alice go unavailable.
    bob.expect("<presence type='unavailable' from='alice@localhost/a' to='bob@localhost'/>")
        .await
        .unwrap();
    bob.expect(
        "<iq type='set' id='{*}' to='bob@localhost/b'><query xmlns='jabber:iq:roster' ver='2'>\
                <item jid='alice@localhost' subscription='from'/></query></iq>",
    )
    .await
    .unwrap();
    bob.expect("<presence type='unsubscribed' to='bob@localhost' id='u1' from='alice@localhost'/>")
        .await
        .unwrap();
    // alice's updates no longer reach bob; bob's still reach alice.
    alice
        .send_xml("<presence><show>xa</show></presence>")
        .await
        .unwrap();
    alice
        .expect(
            "<presence from='alice@localhost/a' to='alice@localhost/a'><show>xa</show></presence>",
        )
        .await
        .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    bob.send_xml("<presence><show>chat</show></presence>")
        .await
        .unwrap();
    bob.expect(
        "<presence from='bob@localhost/b' to='bob@localhost/b'><show>chat</show></presence>",
    )
    .await
    .unwrap();
    alice
        .expect(
            "<presence from='bob@localhost/b' to='alice@localhost'><show>chat</show></presence>",
        )
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_pre_approved_request_is_granted_at_once() {
    let server = server_with_users(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    // RFC 6121 §3.4: alice approves before bob asks: noted on a new item, not routed.
    alice
        .send_xml("<presence type='subscribed' to='bob@localhost'/>")
        .await
        .unwrap();
    alice
        .expect("<iq type='set' id='{*}' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='1'>\
                 <item jid='bob@localhost' subscription='none' approved='true'/></query></iq>")
        .await
        .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    // bob asks: the request is not delivered to alice; bob gets 'subscribed' and her presence.
    bob.send_xml("<presence type='subscribe' to='alice@localhost' id='s1'/>")
        .await
        .unwrap();
    bob.expect(
        "<iq type='set' id='{*}' to='bob@localhost/b'><query xmlns='jabber:iq:roster' ver='1'>\
                <item jid='alice@localhost' subscription='none' ask='subscribe'/></query></iq>",
    )
    .await
    .unwrap();
    alice
        .expect("<iq type='set' id='{*}' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='2'>\
                 <item jid='bob@localhost' subscription='from'/></query></iq>")
        .await
        .unwrap();
    bob.expect(
        "<iq type='set' id='{*}' to='bob@localhost/b'><query xmlns='jabber:iq:roster' ver='2'>\
                <item jid='alice@localhost' subscription='to'/></query></iq>",
    )
    .await
    .unwrap();
    bob.expect("<presence type='subscribed' from='alice@localhost' to='bob@localhost'/>")
        .await
        .unwrap();
    bob.expect("<presence from='alice@localhost/a' to='bob@localhost'/>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    server.stop().await;
}
