//! Issue 11: a client that stops reading. Its session is closed promptly with the stream's
//! queue bound, not after a write timeout, and no message sent to it vanishes: each one reaches
//! the client's socket, or is stored offline (XEP-0160) and delivered at the next login, or goes
//! back to its sender as an error (RFC 6121 §8.5.2.2.1). Twenty bystander sessions keep getting
//! ping results (XEP-0199) within a second throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use starling_testkit::bystanders::Bystanders;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;
use starling_testkit::{Element, Frame};

const PW: &str = "pw";
/// 8 MB in all: more than the kernel buffers between the server and a reader that does not read
/// (on Linux's defaults, up to 4 MiB of send buffer on the server's side).
const MESSAGES: usize = 4000;

async fn online(server: &TestServer, user: &str) -> Client {
    server.online(user, PW, "r").await
}

fn id_of(e: &Element) -> Option<usize> {
    e.attr("id")?.strip_prefix('m')?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_closed_and_loses_nothing() {
    let server = TestServer::start_with(|c| {
        // Fast enough to fill buffers quickly, paced enough that the sender does not monopolise
        // a worker thread (what fills a queue is then the reader that does not read).
        c.c2s.rate = 2_000_000;
        c.c2s.max_queued_stanzas = 128;
        c.c2s.max_queued_bytes = 256 * 1024;
        c.offline.max_messages = 10_000;
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let mut alice = online(&server, "alice").await;
    let mut bob = online(&server, "bob").await;

    // Bystanders ping throughout; every ping must be answered within a second.
    let bystanders = Bystanders::start(&server, 20).await;

    // Bob reads nothing from here on; Alice sends 4,000 messages of 2 KB to his bare JID.
    let body = "x".repeat(2000);
    for i in 0..MESSAGES {
        alice
            .send_xml(&format!(
                "<message to='bob@localhost' type='chat' id='m{i}'><body>{body}</body></message>"
            ))
            .await
            .unwrap();
    }
    // Everything Alice sent has been routed once her ping is answered (in order, RFC 6120 §10.1);
    // her 8 MB are read at most 2 MB/s, on a machine that may be running other tests.
    alice.set_timeout(Duration::from_secs(120));
    alice
        .send_xml("<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='sync' to='alice@localhost/r'/>")
        .await
        .unwrap();
    // The session is closed once its queue is full (128 stanzas or 256 KiB behind what the
    // kernel buffers hold), without waiting for the 60 s write timeout: at the latest when the
    // last message was routed, so it is gone (unbound) within a moment of Alice's answer.
    let bob_jid = starling_testkit::FullJid::new("bob@localhost/r").unwrap();
    let mut waited = 0;
    while server.router().sessions().get(&bob_jid).await.is_some() {
        assert!(waited < 200, "bob's session was not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    println!(
        "bob's session was gone {} ms after Alice's last message was routed",
        waited * 100
    );
    // Alice got no errors: everything bob could not take was stored.
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();

    // What reached bob's socket before the close.
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut live = 0;
    loop {
        match bob.recv().await {
            Ok(Frame::Element(e)) if e.name() == "message" => {
                *seen.entry(id_of(&e).unwrap()).or_default() += 1;
                live += 1;
            }
            Ok(Frame::Element(e)) => {
                // The stream error, if it could be written after the backlog.
                assert!(e.is("error", "http://etherx.jabber.org/streams"), "{e}");
                assert!(e.has_child("policy-violation", "urn:ietf:params:xml:ns:xmpp-streams"));
            }
            // The end: EOF, or a stanza cut off by the close.
            other => {
                println!("bob's old stream ended with {other:?}");
                break;
            }
        }
    }
    assert!(
        live < MESSAGES,
        "the reader was never slow ({live} delivered live)"
    );

    // The rest comes from offline storage at the next login, in order.
    let mut bob = online(&server, "bob").await;
    let mut stored = 0;
    loop {
        let e = match bob.recv_element().await {
            Ok(e) => e,
            Err(err) => panic!("after {stored} offline messages: {err}"),
        };
        assert!(e.is("message", "jabber:client"), "{e}");
        if let Some(id) = id_of(&e) {
            assert!(e.has_child("delay", "urn:xmpp:delay"), "{e}");
            *seen.entry(id).or_default() += 1;
            stored += 1;
        }
        if seen.len() == MESSAGES {
            break;
        }
    }
    let missing: Vec<usize> = (0..MESSAGES).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{} messages lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Only the batch being written when the session closed can arrive twice.
    let twice = seen.values().filter(|n| **n > 1).count();
    assert!(twice <= 64, "{twice} messages arrived twice");
    println!("{live} delivered live, {stored} stored offline, {twice} twice");

    bystanders.stop().await;
}
