//! Issue 17 (groundwork): the HTTP listener of a whole server, over real sockets, with raw
//! HTTP/1.1 requests (RFC 9112): liveness, readiness from the real storage, unknown paths,
//! traversal attempts, body limits, and a bind failure that names the address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use starling_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> TestServer {
    TestServer::start_with(|c| c.http.listen = vec!["127.0.0.1:0".parse().unwrap()]).await
}

/// Sends `request` and reads the response to the end (requests ask the server to close):
/// the status code and the body.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 "), "{text:?}");
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

#[tokio::test]
async fn health_and_ready() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    assert_eq!(server.server().http_addrs, vec![addr]);
    assert_ne!(addr.port(), 0);
    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
    assert_eq!(get(addr, "/ready").await, (200, "ready".to_owned()));
    // HEAD is GET without the body (RFC 9110 §9.3.2).
    let (status, body) = exchange(
        addr,
        b"HEAD /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    server.stop().await;
}

#[tokio::test]
async fn not_ready_when_storage_fails() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    assert_eq!(get(addr, "/ready").await.0, 200);
    // A closed pool fails every query, as a lost database would.
    server.server().storage().close().await;
    let (status, body) = get(addr, "/ready").await;
    assert_eq!(status, 503);
    assert!(body.starts_with("not ready: storage: "), "{body}");
    assert!(!body.contains('\n'), "{body:?}");
    // Liveness does not depend on storage.
    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
}

/// `/metrics` is served by default (its contents: `tests/metrics.rs`), and `[http] metrics =
/// false` leaves the path unknown while the rest of the listener serves as before.
#[tokio::test]
async fn metrics_on_by_default_and_off_when_configured() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.lines()
            .any(|l| l == "# TYPE starling_sessions_bound gauge"),
        "{body}"
    );
    server.stop().await;

    let server = TestServer::start_with(|c| {
        c.http.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.http.metrics = false;
    })
    .await;
    let addr = server.http_addr.unwrap();
    assert_eq!(get(addr, "/metrics").await, (404, "not found".to_owned()));
    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_traversal() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    assert_eq!(get(addr, "/").await, (404, "not found".to_owned()));
    for path in [
        "/../etc/passwd",
        "/%2e%2e/",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%u002e%u002e/etc/passwd",
        "/..;/health",
        "//etc/passwd",
        "/health/../../etc/passwd",
    ] {
        let (status, body) = get(addr, path).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(!body.contains("root:"), "{path}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    // RFC 9110 §15.5.14: 413 on the declared length, before the body is sent.
    let request = "POST /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                   Content-Length: 10485760\r\n\r\n";
    assert_eq!(exchange(addr, request.as_bytes()).await.0, 413);
    server.stop().await;
}

#[tokio::test]
async fn empty_list_disables_the_listener() {
    let server = TestServer::start_with(|c| c.http.listen = Vec::new()).await;
    assert_eq!(server.http_addr, None);
    assert!(server.server().http_addrs.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_taken_address_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = starling_config::Config {
        data_dir: dir.path().to_path_buf(),
        ..starling_config::Config::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.c2s.listen = vec![any];
    config.c2s.direct_tls_listen = vec![any];
    config.http.listen = vec![addr];
    let Err(e) = starling::server::start(&config).await else {
        panic!("started on a taken address");
    };
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("cannot listen for HTTP on {addr}: ")),
        "{message}"
    );
}
