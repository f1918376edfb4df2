//! XEP-0156 host-meta and the web client page over real sockets: raw HTTP/1.1 requests
//! (RFC 9112), so that encoded and dotted paths reach the server exactly as written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use starling_http::hostmeta::{self, HostMeta, Transports};
use starling_http::web::{self, WebClient, WebClientSettings};
use starling_http::{HttpListener, HttpSettings, Readiness, Router, router_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

struct Ready;

#[async_trait::async_trait]
impl Readiness for Ready {
    async fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

async fn start(routes: Router) -> (SocketAddr, CancellationToken) {
    let listener = HttpListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let stop = CancellationToken::new();
    let app = router_with(Arc::new(Ready), None, &HttpSettings::default(), routes);
    tokio::spawn(listener.serve(app, stop.clone(), starling_http::ListenerLimits::default()));
    (addr, stop)
}

struct Reply {
    status: u16,
    /// Header lines, names lowercased.
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn request(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// XEP-0156 §3.3: both forms, their media types (RFC 6415 §3, Appendix A), CORS for browsers
/// of other origins, and HEAD (RFC 9110 §9.3.2).
#[tokio::test]
async fn host_meta_xml_and_json() {
    let meta = HostMeta::new("https://chat.example.org", Transports::default());
    let (addr, stop) = start(hostmeta::routes(meta)).await;
    let xrd = request(addr, "GET", "/.well-known/host-meta").await;
    assert_eq!(xrd.status, 200);
    assert_eq!(xrd.header("content-type"), Some("application/xrd+xml"));
    assert_eq!(xrd.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        xrd.body,
        "<?xml version='1.0' encoding='utf-8'?>\n\
         <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  \
         <Link rel='urn:xmpp:alt-connections:websocket' \
         href='wss://chat.example.org/xmpp-websocket'/>\n\
         </XRD>\n"
    );
    let jrd = request(addr, "GET", "/.well-known/host-meta.json").await;
    assert_eq!(jrd.status, 200);
    assert_eq!(jrd.header("content-type"), Some("application/json"));
    assert_eq!(jrd.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        jrd.body,
        "{\"links\":[{\"href\":\"wss://chat.example.org/xmpp-websocket\",\
         \"rel\":\"urn:xmpp:alt-connections:websocket\"}]}"
    );
    let head = request(addr, "HEAD", "/.well-known/host-meta").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.header("content-type"), Some("application/xrd+xml"));
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        request(addr, "POST", "/.well-known/host-meta").await.status,
        405
    );
    stop.cancel();
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A directory as `npm install converse.js` leaves it (only the files the test reads), and a
/// secret beside it that no request may reach.
fn npm_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("node_modules/converse.js/dist");
    write(&dist.join("converse.min.js"), "/* converse */");
    write(&dist.join("converse.min.css"), "body{}");
    write(
        &dist.join("locales/de-LC_MESSAGES-converse-po.js"),
        "/* de */",
    );
    write(&dir.path().join("secret.txt"), "SECRET");
    write(&dist.join(".hidden"), "SECRET");
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), dist.join("link.js")).unwrap();
    dir
}

fn settings(dir: Option<&Path>) -> WebClientSettings {
    WebClientSettings {
        base_url: "http://127.0.0.1:5280".into(),
        websocket_url: "ws://127.0.0.1:5280/xmpp-websocket".into(),
        domain: "localhost".into(),
        converse_url: "https://cdn.conversejs.org/14.0.0/dist".into(),
        converse_dir: dir.map(Path::to_path_buf),
        allow_registration: false,
    }
}

#[tokio::test]
async fn the_page_from_a_local_directory() {
    let dir = npm_dir();
    let client = WebClient::new(&settings(Some(dir.path()))).unwrap();
    let csp = client.csp().to_owned();
    let (addr, stop) = start(web::routes(client)).await;
    let page = request(addr, "GET", "/web").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("content-security-policy"), Some(csp.as_str()));
    assert!(
        csp.starts_with("default-src 'none'; script-src 'self' 'sha256-"),
        "{csp}"
    );
    assert!(
        page.body
            .contains("<script type=\"module\" src=\"/web/dist/converse.min.js\"></script>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("\"websocket_url\":\"ws://127.0.0.1:5280/xmpp-websocket\""),
        "{}",
        page.body
    );
    let js = request(addr, "GET", "/web/dist/converse.min.js").await;
    assert_eq!((js.status, js.body.as_str()), (200, "/* converse */"));
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(js.header("x-content-type-options"), Some("nosniff"));
    let css = request(addr, "GET", "/web/dist/converse.min.css").await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let de = request(
        addr,
        "GET",
        "/web/dist/locales/de-LC_MESSAGES-converse-po.js",
    )
    .await;
    assert_eq!((de.status, de.body.as_str()), (200, "/* de */"));
    let head = request(addr, "HEAD", "/web/dist/converse.min.js").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    // Issue 17: traversal attempts get 400 or 404, never a file outside the directory.
    for path in [
        "/web/dist/../../../secret.txt",
        "/web/dist/..%2f..%2f..%2fsecret.txt",
        "/web/dist/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/web/dist/%2E%2E/%2E%2E/%2E%2E/secret.txt",
        "/web/dist/%u002e%u002e/%u002e%u002e/%u002e%u002e/secret.txt",
        "/web/dist/..;/..;/..;/secret.txt",
        "/web/dist//etc/passwd",
        "/web/dist/locales/../../../../secret.txt",
        "/web/dist/.hidden",
        "/web/dist/link.js",
        "/web/dist/",
        "/web/dist/locales",
        "/web/dist/missing.js",
        "/web//dist/converse.min.js",
        "/web/dist/converse.min.js%00",
        "/web/dist/..\\..\\..\\secret.txt",
    ] {
        let reply = request(addr, "GET", path).await;
        assert!(
            reply.status == 404 || reply.status == 400,
            "{path}: {}",
            reply.status
        );
        assert!(!reply.body.contains("SECRET"), "{path}");
    }
    stop.cancel();
}

/// With the CDN, `/web/dist/` serves nothing.
#[tokio::test]
async fn the_page_from_the_cdn() {
    let client = WebClient::new(&settings(None)).unwrap();
    let (addr, stop) = start(web::routes(client)).await;
    let page = request(addr, "GET", "/web").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(
            "<script type=\"module\" src=\"https://cdn.conversejs.org/14.0.0/dist/converse.min.js\"></script>"
        ),
        "{}",
        page.body
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with(
            "default-src 'none'; script-src https://cdn.conversejs.org/14.0.0/dist/ 'sha256-"
        ),
        "{csp}"
    );
    assert_eq!(
        request(addr, "GET", "/web/dist/converse.min.js")
            .await
            .status,
        404
    );
    stop.cancel();
}
