//! XEP-0280 Message Carbons (revision 1.0.1) over real sockets: enabling, received and sent
//! copies, which messages are copied (§6.1), `<private/>` (§9), the per-session state and its
//! end, and what nobody else can do to an account's carbons. Section numbers are the XEP's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const QUIET: Duration = Duration::from_millis(200);
const CARBONS: &str = "urn:xmpp:carbons:2";

async fn server() -> TestServer {
    TestServer::with_users(&["alice", "bob", "mallory"], PW).await
}

/// `user` online with each of `resources` (initial presence sent), in that order, and nothing
/// left unread: a new resource's presence reaches the account's other resources.
async fn devices(server: &TestServer, user: &str, resources: &[&str]) -> Vec<Client> {
    let mut clients = Vec::new();
    for r in resources {
        clients.push(server.online(user, PW, r).await);
    }
    for c in &mut clients {
        c.drain(QUIET).await;
    }
    clients
}

async fn one(server: &TestServer, user: &str, resource: &str) -> Client {
    devices(server, user, &[resource]).await.remove(0)
}

/// §4: enables carbons for `c`'s session, no 'to', and awaits the empty result.
async fn enable(c: &mut Client) {
    let me = c.jid().unwrap().to_string();
    c.send_xml(&format!(
        "<iq type='set' id='on'><enable xmlns='{CARBONS}'/></iq>"
    ))
    .await
    .unwrap();
    c.expect(&format!("<iq type='result' id='on' to='{me}'/>"))
        .await
        .unwrap();
}

/// A carbon for `to` (a resource of alice) of kind `received` or `sent`, of type `ty`,
/// wrapping `inner` (written with its `xmlns='jabber:client'`), as §7 and §8 give it.
fn carbon(kind: &str, to: &str, ty: Option<&str>, inner: &str) -> String {
    let ty = ty.map(|t| format!(" type='{t}'")).unwrap_or_default();
    format!(
        "<message from='alice@localhost' to='{to}'{ty}><{kind} xmlns='{CARBONS}'>\
         <forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></{kind}></message>"
    )
}

async fn silent(clients: &mut [&mut Client]) {
    for c in clients {
        c.expect_silence(QUIET).await.unwrap();
    }
}

/// §4, §5 and §10.1: enable and disable are answered with an empty result each time, without
/// 'to' or addressed to one's own bare JID (the reply then comes from it); the payloads are
/// understood in an IQ set to the account only (the XEP's examples have no 'to').
#[tokio::test]
async fn enable_and_disable_are_answered_every_time() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    for (id, payload) in [
        ("e1", "enable"),
        ("e2", "enable"),
        ("d1", "disable"),
        ("d2", "disable"),
    ] {
        a.send_xml(&format!(
            "<iq type='set' id='{id}'><{payload} xmlns='{CARBONS}'/></iq>"
        ))
        .await
        .unwrap();
        a.expect(&format!(
            "<iq type='result' id='{id}' to='alice@localhost/a'/>"
        ))
        .await
        .unwrap();
    }
    for (id, payload) in [("e3", "enable"), ("d3", "disable")] {
        a.send_xml(&format!(
            "<iq type='set' id='{id}' to='alice@localhost'><{payload} xmlns='{CARBONS}'/></iq>"
        ))
        .await
        .unwrap();
        a.expect(&format!(
            "<iq type='result' id='{id}' from='alice@localhost' to='alice@localhost/a'/>"
        ))
        .await
        .unwrap();
    }
    // A get, or a set to the server's domain: nobody handles those (RFC 6120 §8.4).
    a.send_xml(&format!(
        "<iq type='get' id='g1'><enable xmlns='{CARBONS}'/></iq>"
    ))
    .await
    .unwrap();
    a.expect(
        "<iq type='error' id='g1' to='alice@localhost/a'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .await
    .unwrap();
    a.send_xml(&format!(
        "<iq type='set' id='h1' to='localhost'><enable xmlns='{CARBONS}'/></iq>"
    ))
    .await
    .unwrap();
    a.expect(
        "<iq type='error' id='h1' from='localhost' to='alice@localhost/a'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .await
    .unwrap();
    a.expect_silence(QUIET).await.unwrap();
}

async fn features(c: &mut Client, to: &str) -> Vec<String> {
    c.send_xml(&format!(
        "<iq type='get' id='disco' to='{to}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
    ))
    .await
    .unwrap();
    let reply = c.recv_element().await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    reply
        .children()
        .flat_map(Element::children)
        .filter_map(|f| f.attr("var").map(str::to_owned))
        .collect()
}

/// §3 and §6.2: the server's disco#info has the feature, and the rules feature since the
/// server implements every rule of §6.1; clients look at the server's features (Conversations
/// and Gajim ask the server), not the account's.
#[tokio::test]
async fn disco_advertises_carbons_and_its_rules() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let server_features = features(&mut a, "localhost").await;
    for f in [CARBONS, "urn:xmpp:carbons:rules:0"] {
        assert!(
            server_features.iter().any(|s| s == f),
            "{f}: {server_features:?}"
        );
    }
    let account_features = features(&mut a, "alice@localhost").await;
    assert!(
        !account_features
            .iter()
            .any(|s| s.starts_with("urn:xmpp:carbons")),
        "{account_features:?}"
    );
}

/// §7: a message to one resource's full JID is copied, wrapped, to every other enabled resource
/// and to no resource without carbons; the resource it was addressed to gets only the original.
#[tokio::test]
async fn received_copies_of_a_message_to_a_full_jid() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b", "c"]).await;
    let mut bob = one(&server, "bob", "r").await;
    enable(&mut alice[0]).await;
    enable(&mut alice[1]).await;
    bob.send_xml(
        "<message to='alice@localhost/a' type='chat' id='m1'><body>What man art thou?</body>\
         <thread>0e31</thread></message>",
    )
    .await
    .unwrap();
    let original = "<message from='bob@localhost/r' to='alice@localhost/a' type='chat' id='m1'>\
                    <body>What man art thou?</body><thread>0e31</thread></message>";
    alice[0].expect(original).await.unwrap();
    alice[1]
        .expect(&carbon(
            "received",
            "alice@localhost/b",
            Some("chat"),
            &original.replacen("<message ", "<message xmlns='jabber:client' ", 1),
        ))
        .await
        .unwrap();
    let [a, b, c] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, c, &mut bob]).await;
}

/// §7 (revision 0.10 removed the distinction between bare and full JIDs): a message to the bare
/// JID goes to the top-priority resources (RFC 6121 §8.5.2.1.1) and is copied to the other
/// enabled ones; with equal priorities every resource got the original and none gets a carbon.
#[tokio::test]
async fn received_copies_of_a_message_to_the_bare_jid() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b", "c"]).await;
    let mut bob = one(&server, "bob", "r").await;
    for c in alice.iter_mut() {
        enable(c).await;
    }
    bob.send_xml("<message to='alice@localhost' type='chat' id='m1'><body>all</body></message>")
        .await
        .unwrap();
    for c in alice.iter_mut() {
        c.expect(
            "<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m1'>\
             <body>all</body></message>",
        )
        .await
        .unwrap();
        c.expect_silence(QUIET).await.unwrap();
    }

    // a now has the highest priority: it alone gets the original, b a carbon; c disabled.
    alice[0]
        .send_xml("<presence><priority>5</priority></presence>")
        .await
        .unwrap();
    alice[2]
        .send_xml(&format!(
            "<iq type='set' id='off'><disable xmlns='{CARBONS}'/></iq>"
        ))
        .await
        .unwrap();
    for c in alice.iter_mut() {
        c.drain(QUIET).await;
    }
    bob.send_xml("<message to='alice@localhost' type='chat' id='m2'><body>top</body></message>")
        .await
        .unwrap();
    alice[0]
        .expect(
            "<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m2'>\
             <body>top</body></message>",
        )
        .await
        .unwrap();
    alice[1]
        .expect(&carbon(
            "received",
            "alice@localhost/b",
            Some("chat"),
            "<message xmlns='jabber:client' from='bob@localhost/r' to='alice@localhost' \
             type='chat' id='m2'><body>top</body></message>",
        ))
        .await
        .unwrap();
    let [a, b, c] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, c, &mut bob]).await;
}

/// §8: what a resource sends is copied as `<sent/>` to the account's other enabled resources,
/// whether or not the sender enabled carbons, never to the sender itself (even when enabled)
/// nor to resources without carbons.
#[tokio::test]
async fn sent_copies_go_to_the_senders_other_enabled_resources() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b", "c"]).await;
    let mut bob = one(&server, "bob", "r").await;
    enable(&mut alice[0]).await;
    enable(&mut alice[1]).await;
    alice[0]
        .send_xml("<message to='bob@localhost' type='chat' id='s1'><body>Neither, fair saint</body></message>")
        .await
        .unwrap();
    bob.expect(
        "<message from='alice@localhost/a' to='bob@localhost' type='chat' id='s1'>\
         <body>Neither, fair saint</body></message>",
    )
    .await
    .unwrap();
    alice[1]
        .expect(&carbon(
            "sent",
            "alice@localhost/b",
            Some("chat"),
            "<message xmlns='jabber:client' from='alice@localhost/a' to='bob@localhost' \
             type='chat' id='s1'><body>Neither, fair saint</body></message>",
        ))
        .await
        .unwrap();
    // c has no carbons and sends: a and b get the copy.
    alice[2]
        .send_xml("<message to='bob@localhost/r' type='chat' id='s2'><body>from c</body></message>")
        .await
        .unwrap();
    bob.expect(
        "<message from='alice@localhost/c' to='bob@localhost/r' type='chat' id='s2'>\
         <body>from c</body></message>",
    )
    .await
    .unwrap();
    for (i, to) in [(0, "alice@localhost/a"), (1, "alice@localhost/b")] {
        alice[i]
            .expect(&carbon(
                "sent",
                to,
                Some("chat"),
                "<message xmlns='jabber:client' from='alice@localhost/c' to='bob@localhost/r' \
                 type='chat' id='s2'><body>from c</body></message>",
            ))
            .await
            .unwrap();
    }
    let [a, b, c] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, c, &mut bob]).await;
}

/// §7 and §8 together: a message from one resource to another of the same account reaches the
/// addressee as the original, and each other enabled resource once, as a `<sent/>` copy; the
/// sender gets nothing back.
#[tokio::test]
async fn a_message_between_own_resources_arrives_once_everywhere() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b", "c"]).await;
    for c in alice.iter_mut() {
        enable(c).await;
    }
    alice[0]
        .send_xml("<message to='alice@localhost/b' type='chat' id='n1'><body>note</body></message>")
        .await
        .unwrap();
    let original = "<message from='alice@localhost/a' to='alice@localhost/b' type='chat' id='n1'>\
                    <body>note</body></message>";
    alice[1].expect(original).await.unwrap();
    alice[2]
        .expect(&carbon(
            "sent",
            "alice@localhost/c",
            Some("chat"),
            &original.replacen("<message ", "<message xmlns='jabber:client' ", 1),
        ))
        .await
        .unwrap();
    let [a, b, c] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, c]).await;
}

/// §9 and XEP-0334 §4.3: `<private/>` (with or without `<no-copy/>`), or `<no-copy/>` alone,
/// stops copies on both sides; the original is delivered as sent, `<private/>` included
/// (revision 0.14 lifted the requirement to remove it).
#[tokio::test]
async fn private_and_no_copy_messages_are_not_copied() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b"]).await;
    let mut bob = one(&server, "bob", "r").await;
    enable(&mut alice[1]).await;
    for (id, hints) in [
        ("p1", format!("<private xmlns='{CARBONS}'/>")),
        ("p2", "<no-copy xmlns='urn:xmpp:hints'/>".to_owned()),
        (
            "p3",
            format!("<private xmlns='{CARBONS}'/><no-copy xmlns='urn:xmpp:hints'/>"),
        ),
    ] {
        bob.send_xml(&format!(
            "<message to='alice@localhost/a' type='chat' id='{id}'><body>secret</body>{hints}</message>"
        ))
        .await
        .unwrap();
        alice[0]
            .expect(&format!(
                "<message from='bob@localhost/r' to='alice@localhost/a' type='chat' id='{id}'>\
                 <body>secret</body>{hints}</message>"
            ))
            .await
            .unwrap();
        alice[0]
            .send_xml(&format!(
                "<message to='bob@localhost/r' type='chat' id='{id}r'><body>sh</body>{hints}</message>"
            ))
            .await
            .unwrap();
        bob.expect(&format!(
            "<message from='alice@localhost/a' to='bob@localhost/r' type='chat' id='{id}r'>\
             <body>sh</body>{hints}</message>"
        ))
        .await
        .unwrap();
    }
    let [a, b] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, &mut bob]).await;
}

/// §6.1: groupchat is never copied, headlines are not instant messaging, a normal message
/// without a body or IM payload is not either.
#[tokio::test]
async fn groupchat_headline_and_empty_normal_messages_are_not_copied() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b"]).await;
    let mut bob = one(&server, "bob", "r").await;
    enable(&mut alice[1]).await;
    for (id, ty, content) in [
        ("g1", " type='groupchat'", "<body>room talk</body>"),
        ("h1", " type='headline'", "<body>news</body>"),
        ("n1", "", "<x xmlns='urn:example:other'/>"),
    ] {
        bob.send_xml(&format!(
            "<message to='alice@localhost/a' id='{id}'{ty}>{content}</message>"
        ))
        .await
        .unwrap();
        alice[0]
            .expect(&format!(
                "<message from='bob@localhost/r' to='alice@localhost/a' id='{id}'{ty}>{content}</message>"
            ))
            .await
            .unwrap();
        alice[0]
            .send_xml(&format!(
                "<message to='bob@localhost/r' id='{id}r'{ty}>{content}</message>"
            ))
            .await
            .unwrap();
        bob.expect(&format!(
            "<message from='alice@localhost/a' to='bob@localhost/r' id='{id}r'{ty}>{content}</message>"
        ))
        .await
        .unwrap();
    }
    let [a, b] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, &mut bob]).await;
}

/// §6.1 (IM payloads) and §10.2 (chat states are copied on purpose): a chat state alone, a
/// receipt in a message without type, a chat marker, a body-less OMEMO message are copied, and
/// the copy keeps the original's type (absent stays absent).
#[tokio::test]
async fn chat_states_receipts_markers_and_omemo_are_copied() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b"]).await;
    let mut bob = one(&server, "bob", "r").await;
    enable(&mut alice[1]).await;
    let received = [
        (
            " type='chat'",
            Some("chat"),
            "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
        ),
        ("", None, "<received xmlns='urn:xmpp:receipts' id='m1'/>"),
        (
            " type='normal'",
            Some("normal"),
            "<encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted>",
        ),
    ];
    for (i, (ty_attr, ty, payload)) in received.iter().enumerate() {
        bob.send_xml(&format!(
            "<message to='alice@localhost/a' id='i{i}'{ty_attr}>{payload}</message>"
        ))
        .await
        .unwrap();
        alice[0]
            .expect(&format!(
                "<message from='bob@localhost/r' to='alice@localhost/a' id='i{i}'{ty_attr}>{payload}</message>"
            ))
            .await
            .unwrap();
        alice[1]
            .expect(&carbon(
                "received",
                "alice@localhost/b",
                *ty,
                &format!(
                    "<message xmlns='jabber:client' from='bob@localhost/r' to='alice@localhost/a' \
                     id='i{i}'{ty_attr}>{payload}</message>"
                ),
            ))
            .await
            .unwrap();
    }
    alice[0]
        .send_xml("<message to='bob@localhost/r' id='o1'><displayed xmlns='urn:xmpp:chat-markers:0' id='i0'/></message>")
        .await
        .unwrap();
    bob.expect(
        "<message from='alice@localhost/a' to='bob@localhost/r' id='o1'>\
         <displayed xmlns='urn:xmpp:chat-markers:0' id='i0'/></message>",
    )
    .await
    .unwrap();
    alice[1]
        .expect(&carbon(
            "sent",
            "alice@localhost/b",
            None,
            "<message xmlns='jabber:client' from='alice@localhost/a' to='bob@localhost/r' id='o1'>\
             <displayed xmlns='urn:xmpp:chat-markers:0' id='i0'/></message>",
        ))
        .await
        .unwrap();
    let [a, b] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, &mut bob]).await;
}

/// §6.1: an error answering a copied message is copied (a peer's error, and the server's own
/// for an account that does not exist); an error answering a message that was not copied, or
/// with an id nothing used, is not.
#[tokio::test]
async fn errors_answering_copied_messages_are_copied() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b"]).await;
    let mut bob = one(&server, "bob", "r").await;
    enable(&mut alice[1]).await;
    let sent_carbon = |to: &str, id: &str| {
        carbon(
            "sent",
            "alice@localhost/b",
            Some("chat"),
            &format!(
                "<message xmlns='jabber:client' from='alice@localhost/a' to='{to}' type='chat' \
                 id='{id}'><body>x</body></message>"
            ),
        )
    };

    // bob's client answers with an error.
    alice[0]
        .send_xml("<message to='bob@localhost/r' type='chat' id='m1'><body>x</body></message>")
        .await
        .unwrap();
    alice[1]
        .expect(&sent_carbon("bob@localhost/r", "m1"))
        .await
        .unwrap();
    bob.expect("<message from='alice@localhost/a' to='bob@localhost/r' type='chat' id='m1'><body>x</body></message>")
        .await
        .unwrap();
    let error = "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
    bob.send_xml(&format!(
        "<message to='alice@localhost/a' type='error' id='m1'>{error}</message>"
    ))
    .await
    .unwrap();
    let bobs = format!(
        "<message from='bob@localhost/r' to='alice@localhost/a' type='error' id='m1'>{error}</message>"
    );
    alice[0].expect(&bobs).await.unwrap();
    alice[1]
        .expect(&carbon(
            "received",
            "alice@localhost/b",
            Some("error"),
            &bobs.replacen("<message ", "<message xmlns='jabber:client' ", 1),
        ))
        .await
        .unwrap();

    // The server answers for an account that does not exist (RFC 6121 §8.5.1).
    alice[0]
        .send_xml("<message to='nobody@localhost' type='chat' id='m2'><body>x</body></message>")
        .await
        .unwrap();
    alice[1]
        .expect(&sent_carbon("nobody@localhost", "m2"))
        .await
        .unwrap();
    let bounce = "<message id='m2' to='alice@localhost/a' from='nobody@localhost' type='error'>\
                  <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>";
    alice[0].expect(bounce).await.unwrap();
    alice[1]
        .expect(&carbon(
            "received",
            "alice@localhost/b",
            Some("error"),
            &bounce.replacen("<message ", "<message xmlns='jabber:client' ", 1),
        ))
        .await
        .unwrap();

    // A headline is not copied, nor is alice's error answering it; nor an error with an id
    // nothing used.
    bob.send_xml(
        "<message to='alice@localhost/a' type='headline' id='h1'><body>news</body></message>",
    )
    .await
    .unwrap();
    alice[0]
        .expect("<message from='bob@localhost/r' to='alice@localhost/a' type='headline' id='h1'><body>news</body></message>")
        .await
        .unwrap();
    for id in ["h1", "zz"] {
        alice[0]
            .send_xml(&format!(
                "<message to='bob@localhost/r' type='error' id='{id}'>{error}</message>"
            ))
            .await
            .unwrap();
        bob.expect(&format!(
            "<message from='alice@localhost/a' to='bob@localhost/r' type='error' id='{id}'>{error}</message>"
        ))
        .await
        .unwrap();
    }
    let [a, b] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, &mut bob]).await;
}

/// §4: carbons belong to the session that enabled them. When it ends, a new session binding the
/// same resource starts without them, whether the old one closed first or was replaced.
#[tokio::test]
async fn a_new_session_of_the_same_resource_starts_without_carbons() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let mut b = one(&server, "alice", "b").await;
    let mut bob = one(&server, "bob", "r").await;
    a.drain(QUIET).await;
    enable(&mut b).await;
    b.close().await.unwrap();
    let mut b = one(&server, "alice", "b").await;
    a.drain(QUIET).await;
    bob.send_xml("<message to='alice@localhost/a' type='chat' id='m1'><body>1</body></message>")
        .await
        .unwrap();
    a.expect("<message from='bob@localhost/r' to='alice@localhost/a' type='chat' id='m1'><body>1</body></message>")
        .await
        .unwrap();
    b.expect_silence(QUIET).await.unwrap();

    // Enabled, then replaced by a new session of the same resource (RFC 6120 §7.7.2.2).
    enable(&mut b).await;
    // The replacement hears the old session's unavailable presence (it has the same JID): not
    // what this test is about, so it reads whatever comes.
    let mut b2 = server.login("alice", PW, "b").await;
    b.expect_stream_error("conflict").await.unwrap();
    b2.send_xml("<presence/>").await.unwrap();
    b2.drain(QUIET).await;
    a.drain(QUIET).await;
    bob.send_xml("<message to='alice@localhost/a' type='chat' id='m2'><body>2</body></message>")
        .await
        .unwrap();
    a.expect("<message from='bob@localhost/r' to='alice@localhost/a' type='chat' id='m2'><body>2</body></message>")
        .await
        .unwrap();
    b2.expect_silence(QUIET).await.unwrap();
    // Its own enable works.
    enable(&mut b2).await;
    bob.send_xml("<message to='alice@localhost/a' type='chat' id='m3'><body>3</body></message>")
        .await
        .unwrap();
    a.expect("<message from='bob@localhost/r' to='alice@localhost/a' type='chat' id='m3'><body>3</body></message>")
        .await
        .unwrap();
    b2.expect(&carbon(
        "received",
        "alice@localhost/b",
        Some("chat"),
        "<message xmlns='jabber:client' from='bob@localhost/r' to='alice@localhost/a' \
         type='chat' id='m3'><body>3</body></message>",
    ))
    .await
    .unwrap();
}

/// §4.1 and §5: another account's session can neither enable nor disable an account's carbons.
/// The answer is `<service-unavailable/>`, the same as for an account that does not exist
/// (RFC 6121 §8.5.1), so it tells nothing about the account.
#[tokio::test]
async fn another_account_cannot_enable_or_disable() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b", "c"]).await;
    let mut bob = one(&server, "bob", "r").await;
    let mut mallory = one(&server, "mallory", "m").await;
    enable(&mut alice[2]).await;
    for (id, to, payload) in [
        ("x1", "alice@localhost", "enable"),
        ("x2", "alice@localhost", "disable"),
        ("x3", "nobody@localhost", "enable"),
    ] {
        mallory
            .send_xml(&format!(
                "<iq type='set' id='{id}' to='{to}'><{payload} xmlns='{CARBONS}'/></iq>"
            ))
            .await
            .unwrap();
        mallory
            .expect(&format!(
                "<iq type='error' id='{id}' from='{to}' to='mallory@localhost/m'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            ))
            .await
            .unwrap();
    }
    bob.send_xml("<message to='alice@localhost/a' type='chat' id='m1'><body>hi</body></message>")
        .await
        .unwrap();
    alice[0]
        .expect("<message from='bob@localhost/r' to='alice@localhost/a' type='chat' id='m1'><body>hi</body></message>")
        .await
        .unwrap();
    // b never enabled; c still has carbons.
    alice[2]
        .expect(&carbon(
            "received",
            "alice@localhost/c",
            Some("chat"),
            "<message xmlns='jabber:client' from='bob@localhost/r' to='alice@localhost/a' \
             type='chat' id='m1'><body>hi</body></message>",
        ))
        .await
        .unwrap();
    let [a, b, c] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, c, &mut bob, &mut mallory]).await;
}

/// §11 and §7's impersonation example: a message whose top-level child is a carbon, from anyone
/// but the account's bare JID, is delivered as it came, with its real sender, and never copied
/// or wrapped again, to a full JID or to the bare JID.
#[tokio::test]
async fn forged_carbons_are_delivered_as_sent_and_never_copied() {
    let server = server().await;
    let mut alice = devices(&server, "alice", &["a", "b"]).await;
    let mut bob = one(&server, "bob", "r").await;
    alice[0]
        .send_xml("<presence><priority>5</priority></presence>")
        .await
        .unwrap();
    alice[0].drain(QUIET).await;
    alice[1].drain(QUIET).await;
    enable(&mut alice[1]).await;
    let forged = format!(
        "<received xmlns='{CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='mallory@localhost/m' to='alice@localhost/a' type='chat'>\
         <body>Thou shall meet me tonite</body></message></forwarded></received>"
    );
    for to in ["alice@localhost/a", "alice@localhost"] {
        bob.send_xml(&format!(
            "<message to='{to}' type='chat' id='f'>{forged}</message>"
        ))
        .await
        .unwrap();
        alice[0]
            .expect(&format!(
                "<message from='bob@localhost/r' to='{to}' type='chat' id='f'>{forged}</message>"
            ))
            .await
            .unwrap();
    }
    let [a, b] = &mut alice[..] else {
        unreachable!()
    };
    silent(&mut [a, b, &mut bob]).await;
}

// ------------------------------------------------------------------ with stream management

/// Connects, STARTTLS, authenticates as `user`: ready to bind or resume (XEP-0198).
async fn authenticated(server: &TestServer, user: &str) -> Client {
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    c.starttls(&server.domain).await.unwrap();
    c.authenticate(&server.domain, "SCRAM-SHA-256", user, PW, None)
        .await
        .unwrap();
    c
}

/// alice/b with resumable stream management and carbons, available; returns the client, its
/// resumption id and the number of stanzas it has received (all of them read).
async fn resumable_with_carbons(server: &TestServer) -> (Client, String, u32) {
    let mut b = server.login("alice", PW, "b").await;
    b.send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    let enabled = b
        .expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='{*}' id='{*}'/>")
        .await
        .unwrap();
    let id = enabled.attr("id").unwrap().to_owned();
    enable(&mut b).await;
    b.send_xml("<presence/>").await.unwrap();
    // The IQ result, then the presence echo and whatever else came (not the server's <r/>).
    let mut count = 1;
    while let Ok(Ok(e)) = tokio::time::timeout(QUIET, b.recv_element()).await {
        if matches!(e.name(), "message" | "presence" | "iq") {
            count += 1;
        }
    }
    (b, id, count)
}

/// XEP-0198 resumption keeps the session, and with it its carbons: what was copied while it
/// was detached comes with the retransmission, and new messages are copied after it.
#[tokio::test]
async fn resumption_keeps_carbons_on() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let mut bob = one(&server, "bob", "r").await;
    let (mut b, id, count) = resumable_with_carbons(&server).await;
    a.drain(QUIET).await;
    b.send_xml(&format!("<a xmlns='urn:xmpp:sm:3' h='{count}'/>"))
        .await
        .unwrap();
    drop(b);
    tokio::time::sleep(QUIET).await;
    let chat = |id: &str| {
        format!("<message to='alice@localhost/a' type='chat' id='{id}'><body>{id}</body></message>")
    };
    let copy = |id: &str| {
        carbon(
            "received",
            "alice@localhost/b",
            Some("chat"),
            &format!(
                "<message xmlns='jabber:client' from='bob@localhost/r' to='alice@localhost/a' \
                 type='chat' id='{id}'><body>{id}</body></message>"
            ),
        )
    };
    bob.send_xml(&chat("m1")).await.unwrap();
    a.drain(QUIET).await;

    let mut b = authenticated(&server, "alice").await;
    b.send_xml(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{id}' h='{count}'/>"
    ))
    .await
    .unwrap();
    b.expect(&format!(
        "<resumed xmlns='urn:xmpp:sm:3' previd='{id}' h='{{*}}'/>"
    ))
    .await
    .unwrap();
    b.expect(&copy("m1")).await.unwrap();
    bob.send_xml(&chat("m2")).await.unwrap();
    b.expect(&copy("m2")).await.unwrap();
    b.expect_silence(QUIET).await.unwrap();
}

/// §10.3: a carbon that a session which then ended never acknowledged is not routed again (the
/// account's other resources had their own copy or the original), so it neither reaches another
/// resource nor waits in offline storage for the next login.
#[tokio::test]
async fn carbons_an_ended_session_never_took_are_dropped() {
    let server = TestServer::start_with(|c| {
        c.stream_management.resume_timeout = Duration::from_secs(1);
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let mut a = one(&server, "alice", "a").await;
    let mut bob = one(&server, "bob", "r").await;
    let (mut b, _id, _count) = resumable_with_carbons(&server).await;
    a.drain(QUIET).await;
    bob.send_xml("<message to='alice@localhost/a' type='chat' id='m1'><body>m1</body></message>")
        .await
        .unwrap();
    a.expect("<message from='bob@localhost/r' to='alice@localhost/a' type='chat' id='m1'><body>m1</body></message>")
        .await
        .unwrap();
    b.expect(&carbon(
        "received",
        "alice@localhost/b",
        Some("chat"),
        "<message xmlns='jabber:client' from='bob@localhost/r' to='alice@localhost/a' \
         type='chat' id='m1'><body>m1</body></message>",
    ))
    .await
    .unwrap();
    // a leaves, b is lost without acknowledging the carbon; its session times out.
    a.close().await.unwrap();
    drop(b);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    bob.drain(QUIET).await;
    let mut c = server.login("alice", PW, "c").await;
    c.send_xml("<presence/>").await.unwrap();
    c.expect("<presence from='alice@localhost/c' to='alice@localhost/c'/>")
        .await
        .unwrap();
    c.expect_silence(Duration::from_millis(300)).await.unwrap();
}
