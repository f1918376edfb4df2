//! What one connection and one stanza cost in memory, pinned so that a change which widens them
//! shows up here (issue 5: ≤ 8 KiB per idle connection without TLS, ≤ 16 KiB with it). Bounds
//! are the sizes measured in a debug build at the time, rounded up a little; a failure means a
//! per-connection struct grew: box what is rare (as the TLS state is) or justify a new bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use starling_c2s::{C2sSettings, C2sShared, ListenerKind, handle_connection};
use starling_module_api::SessionCommand;
use starling_proto::Element;
use starling_testkit::server::TestServer;

#[tokio::test]
async fn a_connection_task_stays_small() {
    let server = TestServer::start().await;
    let running = server.server();
    let shared = Arc::new(C2sShared::new(
        C2sSettings::default(),
        running.tls.clone(),
        running.router.clone(),
        running.storage().stores(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let peer = tcp.local_addr().unwrap();
    let task = handle_connection(
        tcp,
        peer,
        ListenerKind::StartTls,
        shared,
        Default::default(),
    );
    // The TLS state (~1.2 KB) and the session loop are boxed when used, so a plain connection
    // does not carry room for them.
    let size = std::mem::size_of_val(&task);
    assert!(size <= 1800, "the connection task is {size} bytes");
    assert!(
        size_of::<starling_c2s::Connection>() <= 1100,
        "{}",
        size_of::<starling_c2s::Connection>()
    );
}

#[test]
fn queued_stanzas_are_two_words() {
    // Every session's queue allocates a block of 32 slots up front.
    assert!(size_of::<SessionCommand>() <= 16);
    assert!(size_of::<Element>() <= 96, "{}", size_of::<Element>());
}

#[tokio::test]
async fn the_buffer_gauge_follows_a_partial_stanza() {
    let server = TestServer::with_users(&["alice"], "pw").await;
    let mut alice = server.login("alice", "pw", "gauge").await;
    let gauge = || server.server().session_buffer_bytes();
    // Settled after login: only output buffers, at most 512 bytes each.
    let settled = gauge();
    assert!(settled <= 512, "{settled}");

    // Half a stanza: the parser holds its bytes.
    let head = format!(
        "<message to='alice@localhost/gauge'><body>{}",
        "x".repeat(3000)
    );
    alice.send_raw(head.as_bytes()).await.unwrap();
    let mut held = 0;
    for _ in 0..100 {
        held = gauge();
        if held >= settled + 3000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        held >= settled + 3000,
        "gauge {held} after 3000 bytes of a stanza"
    );

    // The rest: the stanza is routed (back to alice) and the parser lets go.
    alice.send_raw(b"</body></message>").await.unwrap();
    let echoed = alice.recv_element().await.unwrap();
    assert_eq!(echoed.name(), "message");
    let mut after = usize::MAX;
    for _ in 0..100 {
        after = gauge();
        if after < 3000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(after < 3000, "gauge {after} after the stanza completed");
    alice.close().await.unwrap();
    for _ in 0..100 {
        if gauge() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gauge(), 0);
}
