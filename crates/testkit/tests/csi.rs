//! Issue 12: XEP-0352 client state indication over real sockets. While a client says it is
//! inactive, presence updates and chat-state-only messages wait (only the latest presence of
//! each sender); they are sent, in the order they came, when the client becomes active or before
//! anything urgent (a message with a body, an IQ, a subscription request).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";

async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    server.online(user, PW, resource).await
}

fn presence(show: &str) -> String {
    format!("<presence to='alice@localhost/phone'><show>{show}</show></presence>")
}

fn expect_presence(from: &str, show: &str) -> String {
    format!("<presence from='{from}' to='alice@localhost/phone'><show>{show}</show></presence>")
}

const COMPOSING: &str = "<message to='alice@localhost/phone' type='chat'>\
    <composing xmlns='http://jabber.org/protocol/chatstates'/></message>";

/// XEP-0352 §3 and §6: the feature is offered; while inactive, presence and chat states wait
/// (the latest presence per sender only, moved to where it arrived last), and a message with a
/// body sends them first, in order.
#[tokio::test]
async fn inactive_clients_get_presence_and_chat_states_with_the_next_message() {
    let server = TestServer::with_users(&["alice", "bob", "carol"], PW).await;
    let mut alice = online(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob", "r").await;
    let mut carol = online(&server, "carol", "r").await;
    alice
        .send_xml("<inactive xmlns='urn:xmpp:csi:0'/>")
        .await
        .unwrap();
    bob.send_xml(&presence("away")).await.unwrap();
    carol.send_xml(&presence("xa")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    bob.send_xml(COMPOSING).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    bob.send_xml(&presence("dnd")).await.unwrap();
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(server.server().csi_counts(), (4, 0));

    bob.send_xml(
        "<message to='alice@localhost/phone' type='chat' id='m1'><body>hi</body></message>",
    )
    .await
    .unwrap();
    alice
        .expect(&expect_presence("carol@localhost/r", "xa"))
        .await
        .unwrap();
    alice
        .expect(
            "<message from='bob@localhost/r' to='alice@localhost/phone' type='chat'>\
                 <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        )
        .await
        .unwrap();
    alice
        .expect(&expect_presence("bob@localhost/r", "dnd"))
        .await
        .unwrap();
    alice
        .expect("<message from='bob@localhost/r' to='alice@localhost/phone' type='chat' id='m1'><body>hi</body></message>")
        .await
        .unwrap();
    alice
        .expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(server.server().csi_counts(), (4, 1));
    // Still inactive: the next presence waits again.
    bob.send_xml(&presence("chat")).await.unwrap();
    alice
        .expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
}

/// XEP-0352 §4: `<active/>` sends what waited; from then on everything flows at once.
#[tokio::test]
async fn becoming_active_sends_what_waited() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let mut alice = online(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob", "r").await;
    alice
        .send_xml("<inactive xmlns='urn:xmpp:csi:0'/>")
        .await
        .unwrap();
    bob.send_xml(&presence("away")).await.unwrap();
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    alice
        .send_xml("<active xmlns='urn:xmpp:csi:0'/>")
        .await
        .unwrap();
    alice
        .expect(&expect_presence("bob@localhost/r", "away"))
        .await
        .unwrap();
    bob.send_xml(&presence("dnd")).await.unwrap();
    alice
        .expect(&expect_presence("bob@localhost/r", "dnd"))
        .await
        .unwrap();
}

/// XEP-0352 §6: an IQ is urgent (so is a subscription request): what waited goes first.
#[tokio::test]
async fn an_iq_is_urgent() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let mut alice = online(&server, "alice", "phone").await;
    let mut bob = online(&server, "bob", "r").await;
    alice
        .send_xml("<inactive xmlns='urn:xmpp:csi:0'/>")
        .await
        .unwrap();
    bob.send_xml(&presence("away")).await.unwrap();
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    bob.send_xml(
        "<iq type='get' id='v' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await
    .unwrap();
    alice
        .expect(&expect_presence("bob@localhost/r", "away"))
        .await
        .unwrap();
    alice
        .expect("<iq type='get' id='v' from='bob@localhost/r' to='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>")
        .await
        .unwrap();
    bob.send_xml("<presence to='alice@localhost' type='subscribe'/>")
        .await
        .unwrap();
    alice
        .expect("<presence from='bob@localhost' to='alice@localhost' type='subscribe'/>")
        .await
        .unwrap();
}
