//! Addresses written non-canonically (RFC 7622 §3.2, RFC 6122 stringprep: case, fullwidth
//! letters) are delivered with `to` rewritten to the normalised JID the stanza was routed by.
//! Each test asserts the exact stanza the recipient receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::bystanders::Bystanders;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
/// Sessions that keep pinging the server throughout each test (issue 11: other users unhurt).
const BYSTANDERS: usize = 20;
const QUIET: Duration = Duration::from_millis(200);

/// RFC 7622 §3.2 (RFC 6122 §2.2-2.4): the localpart and domainpart are case-folded, the
/// resourcepart is not; `BOB@LOCALHOST/Phone` is `bob@localhost/Phone`, and that is what bob's
/// client sees in `to`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upper_case_to_is_delivered_canonical() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = server.login("alice", PW, "pc").await;
    let mut bob = server.login("bob", PW, "Phone").await;
    alice
        .send_xml("<message to='BOB@LOCALHOST/Phone' type='chat' id='m1'><body>hi</body></message>")
        .await
        .unwrap();
    bob.expect(
        "<message to='bob@localhost/Phone' type='chat' id='m1' from='alice@localhost/pc'>\
         <body>hi</body></message>",
    )
    .await
    .unwrap();
    // The resourcepart keeps its case: another case is another resource (no such session).
    alice
        .send_xml(
            "<iq to='bob@localhost/PHONE' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await
        .unwrap();
    alice
        .expect(
            "<iq from='bob@localhost/PHONE' to='alice@localhost/pc' type='error' id='q1'>\
             <error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
        .await
        .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// RFC 7622 §3.2.1 / §3.3.1 (RFC 6122 nameprep and nodeprep map with NFKC): fullwidth letters
/// are the ASCII ones. The server's reply to an IQ addressed to `ＬＯＣＡＬＨＯＳＴ` comes from
/// `localhost`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fullwidth_to_is_delivered_canonical() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = server.login("alice", PW, "pc").await;
    let mut bob = server.login("bob", PW, "Phone").await;
    alice
        .send_xml(
            "<message to='\u{FF42}\u{FF4F}\u{FF42}@\u{FF4C}\u{FF4F}\u{FF43}\u{FF41}\u{FF4C}\
             \u{FF48}\u{FF4F}\u{FF53}\u{FF54}/Phone' id='m2'><body>wide</body></message>",
        )
        .await
        .unwrap();
    bob.expect(
        "<message to='bob@localhost/Phone' id='m2' from='alice@localhost/pc'>\
         <body>wide</body></message>",
    )
    .await
    .unwrap();
    alice
        .send_xml(
            "<iq to='\u{FF2C}\u{FF2F}\u{FF23}\u{FF21}\u{FF2C}\u{FF28}\u{FF2F}\u{FF33}\u{FF34}' \
             type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/pc'/>")
        .await
        .unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// Presence is handled by the presence module, which normalises on its own: a subscription
/// request written to `Bob@LocalHost` reaches bob addressed to `bob@localhost` (RFC 6121
/// §3.1.3), and alice's roster holds `bob@localhost` (RFC 6121 §3.1.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_to_a_non_canonical_address() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = server.login("alice", PW, "pc").await;
    let mut bob = server.login("bob", PW, "Phone").await;
    bob.send_xml("<presence/>").await.unwrap();
    bob.expect("<presence from='bob@localhost/Phone' to='bob@localhost/Phone'/>")
        .await
        .unwrap();
    alice
        .send_xml("<presence type='subscribe' to='Bob@LocalHost' id='s1'/>")
        .await
        .unwrap();
    bob.expect("<presence type='subscribe' to='bob@localhost' id='s1' from='alice@localhost'/>")
        .await
        .unwrap();
    alice
        .send_xml("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='result' id='r1' to='alice@localhost/pc'><query xmlns='jabber:iq:roster' ver='1'>\
             <item jid='bob@localhost' subscription='none' ask='subscribe'/></query></iq>",
        )
        .await
        .unwrap();
    bystanders.stop().await;
    server.stop().await;
}
