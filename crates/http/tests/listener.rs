//! The HTTP listener over real sockets: raw HTTP/1.1 requests (RFC 9112) on a TcpStream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use starling_http::{HttpListener, HttpSettings, ListenerLimits, MetricsSource, Readiness, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Ready while the flag is set.
struct Flag(AtomicBool);

#[async_trait::async_trait]
impl Readiness for Flag {
    async fn check(&self) -> Result<(), String> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("storage: database is locked\nsecond line".to_owned())
        }
    }
}

/// Never answers.
struct Stuck;

#[async_trait::async_trait]
impl Readiness for Stuck {
    async fn check(&self) -> Result<(), String> {
        std::future::pending().await
    }
}

async fn start(
    readiness: Arc<dyn Readiness>,
    settings: HttpSettings,
) -> (SocketAddr, CancellationToken) {
    start_with(readiness, None, settings, ListenerLimits::default()).await
}

async fn start_with(
    readiness: Arc<dyn Readiness>,
    metrics: Option<Arc<dyn MetricsSource>>,
    settings: HttpSettings,
    limits: ListenerLimits,
) -> (SocketAddr, CancellationToken) {
    let listener = HttpListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(listener.serve(router(readiness, metrics, &settings), stop.clone(), limits));
    (addr, stop)
}

/// Reads until the server closes the connection; `None` if it stays open for `wait`.
async fn closed_within(tcp: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    tokio::time::timeout(wait, tcp.read_to_end(&mut raw))
        .await
        .ok()
        .map(|_| raw)
}

/// Sends `request` as is and reads the whole response (the request asks the server to close).
async fn exchange_raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("response within 10 s")
        .unwrap();
    String::from_utf8(raw).unwrap()
}

/// [`exchange_raw`], as the status and the body.
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let text = exchange_raw(addr, request).await;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes()).await
}

#[tokio::test]
async fn health_ready_and_unknown_paths() {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let (addr, stop) = start(flag.clone(), HttpSettings::default()).await;
    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
    assert_eq!(get(addr, "/ready").await, (200, "ready".to_owned()));
    assert_eq!(get(addr, "/").await, (404, "not found".to_owned()));
    assert_eq!(get(addr, "/healthz").await.0, 404);
    // Not ready: 503 and the reason on one line; liveness is unaffected.
    flag.0.store(false, Ordering::SeqCst);
    assert_eq!(
        get(addr, "/ready").await,
        (
            503,
            "not ready: storage: database is locked second line".to_owned()
        )
    );
    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
    // RFC 9110 §15.5.6: another method on a known path.
    let (status, _) = exchange(
        addr,
        b"DELETE /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 405);
    stop.cancel();
}

/// Always the same two lines.
struct Fixed;

impl MetricsSource for Fixed {
    fn render(&self) -> String {
        "# TYPE starling_sessions_bound gauge\nstarling_sessions_bound 3\n".to_owned()
    }
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format_when_given() {
    let ready = Arc::new(Flag(AtomicBool::new(true)));
    let (addr, stop) = start_with(
        ready.clone(),
        Some(Arc::new(Fixed)),
        HttpSettings::default(),
        ListenerLimits::default(),
    )
    .await;
    let response = exchange_raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    // The Prometheus text exposition format, version 0.0.4.
    assert!(
        head.lines()
            .any(|l| l == "content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    assert_eq!(
        body,
        "# TYPE starling_sessions_bound gauge\nstarling_sessions_bound 3\n"
    );
    stop.cancel();

    // `[http] metrics = false`: the server gives no source, and the path is unknown.
    let (addr, stop) = start(ready, HttpSettings::default()).await;
    assert_eq!(get(addr, "/metrics").await, (404, "not found".to_owned()));
    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
    stop.cancel();
}

#[tokio::test]
async fn a_stuck_check_is_not_ready() {
    let settings = HttpSettings {
        ready_timeout: Duration::from_millis(200),
        ..HttpSettings::default()
    };
    let (addr, stop) = start(Arc::new(Stuck), settings).await;
    assert_eq!(
        get(addr, "/ready").await,
        (503, "not ready: no answer within 0.2 s".to_owned())
    );
    stop.cancel();
}

#[tokio::test]
async fn traversal_attempts_are_unknown_paths() {
    let (addr, stop) = start(
        Arc::new(Flag(AtomicBool::new(true))),
        HttpSettings::default(),
    )
    .await;
    for path in [
        "/../etc/passwd",
        "/%2e%2e/",
        "/%2e%2e/etc/passwd",
        "/health/../ready",
        "/%u002e%u002e/",
        "/..;/health",
        "//health",
    ] {
        let (status, _) = get(addr, path).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    stop.cancel();
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let settings = HttpSettings {
        max_body_bytes: 1024,
        ..HttpSettings::default()
    };
    let (addr, stop) = start(Arc::new(Flag(AtomicBool::new(true))), settings).await;
    // RFC 9110 §15.5.14: refused on the declared length, before the body is read.
    let request = "POST /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                   Content-Length: 1000000\r\n\r\n";
    assert_eq!(exchange(addr, request.as_bytes()).await.0, 413);
    // A body within the limit reaches routing (405: /health takes no POST).
    let mut request = b"POST /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                        Content-Length: 10\r\n\r\n"
        .to_vec();
    request.extend_from_slice(b"0123456789");
    assert_eq!(exchange(addr, &request).await.0, 405);
    stop.cancel();
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let (addr, stop) = start(
        Arc::new(Flag(AtomicBool::new(true))),
        HttpSettings::default(),
    )
    .await;
    assert_eq!(get(addr, "/health").await.0, 200);
    stop.cancel();
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "still accepting after shutdown");
}

/// A client that sends no request headers in time is disconnected (hyper's header read
/// timeout); one that sends them gets its answer.
#[tokio::test]
async fn silent_connections_are_closed() {
    let limits = ListenerLimits {
        header_timeout: Duration::from_millis(300),
        ..ListenerLimits::default()
    };
    let (addr, stop) = start_with(
        Arc::new(Flag(AtomicBool::new(true))),
        None,
        HttpSettings::default(),
        limits,
    )
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Half a request line, then nothing.
    silent.write_all(b"GET /hea").await.unwrap();
    let raw = closed_within(&mut silent, Duration::from_secs(5)).await;
    let raw = raw.expect("closed within 5 s");
    // hyper answers 408 or just closes; either way no 200.
    assert!(!String::from_utf8_lossy(&raw).contains(" 200 "), "{raw:?}");
    assert_eq!(get(addr, "/health").await, (200, "ok".to_owned()));
    stop.cancel();
}

/// Beyond `max_connections` a new connection is closed at once; once one ends, another is
/// served.
#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let limits = ListenerLimits {
        max_connections: 1,
        ..ListenerLimits::default()
    };
    let (addr, stop) = start_with(
        Arc::new(Flag(AtomicBool::new(true))),
        None,
        HttpSettings::default(),
        limits,
    )
    .await;
    let mut first = TcpStream::connect(addr).await.unwrap();
    // A keep-alive request: the connection stays open after the answer.
    first
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = first.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
    let mut second = TcpStream::connect(addr).await.unwrap();
    let raw = closed_within(&mut second, Duration::from_secs(5)).await;
    assert_eq!(
        raw.as_deref(),
        Some(&b""[..]),
        "the second connection is closed unanswered"
    );
    drop(first);
    let mut answered = false;
    for _ in 0..50 {
        if get_once(addr).await == Some(200) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answered, "no connection served after the first closed");
    stop.cancel();
}

/// One `GET /health` on a new connection; `None` if the connection is closed unanswered.
async fn get_once(addr: SocketAddr) -> Option<u16> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    String::from_utf8_lossy(raw.get(9..12)?).parse().ok()
}
