//! Issue 17 items 4 and 6 on a whole server, over real sockets with raw HTTP/1.1 requests
//! (RFC 9112): XEP-0156 host-meta built on the listener's URL, and the `[web]` page off by
//! default, on with the CDN or a local `npm install converse.js` directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use starling_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    /// The value of header `name` (lowercase), if sent.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
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
    Reply {
        status: head[9..12].parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// XEP-0156 §3.3 (both forms) on the configured public URL: `https` → `wss` for the WebSocket
/// (RFC 7395 §3.3), and the BOSH URL (XEP-0206) on the same base.
#[tokio::test]
async fn host_meta_on_the_public_url() {
    let server = TestServer::start_with(|c| {
        c.http.public_url = Some("https://chat.example.org/xmpp".into());
    })
    .await;
    let addr = server.http_addr.unwrap();
    let xrd = request(addr, "GET", "/.well-known/host-meta").await;
    assert_eq!(xrd.status, 200);
    assert_eq!(xrd.header("content-type"), Some("application/xrd+xml"));
    assert_eq!(xrd.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        xrd.body,
        "<?xml version='1.0' encoding='utf-8'?>\n\
         <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  \
         <Link rel='urn:xmpp:alt-connections:websocket' \
         href='wss://chat.example.org/xmpp/xmpp-websocket'/>\n  \
         <Link rel='urn:xmpp:alt-connections:xbosh' \
         href='https://chat.example.org/xmpp/http-bind'/>\n\
         </XRD>\n"
    );
    let jrd = request(addr, "GET", "/.well-known/host-meta.json").await;
    assert_eq!(jrd.status, 200);
    assert_eq!(jrd.header("content-type"), Some("application/json"));
    assert_eq!(jrd.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        jrd.body,
        "{\"links\":[{\"href\":\"wss://chat.example.org/xmpp/xmpp-websocket\",\
         \"rel\":\"urn:xmpp:alt-connections:websocket\"},\
         {\"href\":\"https://chat.example.org/xmpp/http-bind\",\
         \"rel\":\"urn:xmpp:alt-connections:xbosh\"}]}"
    );
    let head = request(addr, "HEAD", "/.well-known/host-meta.json").await;
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(head.header("access-control-allow-origin"), Some("*"));
    // Off unless enabled.
    assert_eq!(request(addr, "GET", "/web").await.status, 404);
    assert_eq!(
        request(addr, "GET", "/web/dist/converse.min.js")
            .await
            .status,
        404
    );
    server.stop().await;
}

/// Without public_url the URLs name the address actually bound (the tests' port 0 resolved).
#[tokio::test]
async fn host_meta_on_the_bound_address() {
    let server = TestServer::start().await;
    let addr = server.http_addr.unwrap();
    let jrd = request(addr, "GET", "/.well-known/host-meta.json").await;
    assert_eq!(
        jrd.body,
        format!(
            "{{\"links\":[{{\"href\":\"ws://{addr}/xmpp-websocket\",\
             \"rel\":\"urn:xmpp:alt-connections:websocket\"}},\
             {{\"href\":\"http://{addr}/http-bind\",\
             \"rel\":\"urn:xmpp:alt-connections:xbosh\"}}]}}"
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn the_web_page_from_the_cdn() {
    let server = TestServer::start_with(|c| {
        c.http.public_url = Some("https://chat.example.org".into());
        c.web.enabled = true;
    })
    .await;
    let addr = server.http_addr.unwrap();
    let page = request(addr, "GET", "/web").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let cdn = format!(
        "https://cdn.conversejs.org/{}/dist/",
        starling_config::CONVERSE_VERSION
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with(&format!("default-src 'none'; script-src {cdn} 'sha256-")),
        "{csp}"
    );
    assert!(
        page.body.contains(&format!(
            "<script type=\"module\" src=\"{cdn}converse.min.js\"></script>"
        )),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!(
            "<link rel=\"stylesheet\" href=\"{cdn}converse.min.css\">"
        )),
        "{}",
        page.body
    );
    for setting in [
        "\"authentication\":\"login\"",
        "\"view_mode\":\"fullscreen\"",
        "\"websocket_url\":\"wss://chat.example.org/xmpp-websocket\"",
        "\"default_domain\":\"localhost\"",
        "\"discover_connection_methods\":false",
        "\"allow_registration\":false",
    ] {
        assert!(page.body.contains(setting), "{setting}: {}", page.body);
    }
    server.stop().await;
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A local `npm install converse.js` directory, and traversal attempts of every shape issue 17
/// names: 400 or 404, never a file outside it.
#[tokio::test]
async fn the_web_page_from_a_local_directory() {
    let converse = tempfile::tempdir().unwrap();
    let dist = converse.path().join("node_modules/converse.js/dist");
    write(&dist.join("converse.min.js"), "/* converse */");
    write(&dist.join("converse.min.css"), "body{}");
    write(&converse.path().join("package.json"), "SECRET");
    let dir = converse.path().to_path_buf();
    let server = TestServer::start_with(move |c| {
        c.web.enabled = true;
        c.web.converse_dir = Some(dir);
    })
    .await;
    let addr = server.http_addr.unwrap();
    let page = request(addr, "GET", "/web").await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").unwrap();
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
            .contains(&format!("\"websocket_url\":\"ws://{addr}/xmpp-websocket\"")),
        "{}",
        page.body
    );
    let js = request(addr, "GET", "/web/dist/converse.min.js").await;
    assert_eq!((js.status, js.body.as_str()), (200, "/* converse */"));
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    for path in [
        "/web/dist/../../../package.json",
        "/web/dist/%2e%2e/%2e%2e/%2e%2e/package.json",
        "/web/dist/%u002e%u002e/%u002e%u002e/%u002e%u002e/package.json",
        "/web/dist/..;/..;/..;/package.json",
        "/web/dist//etc/passwd",
        "/web/dist/%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json",
        "/web/../web/dist/converse.min.js",
    ] {
        let reply = request(addr, "GET", path).await;
        assert!(
            reply.status == 404 || reply.status == 400,
            "{path}: {}",
            reply.status
        );
        assert!(!reply.body.contains("SECRET"), "{path}");
        assert!(!reply.body.contains("root:"), "{path}");
    }
    server.stop().await;
}

/// A converse_dir without Converse.js stops the start with the key and what to do.
#[tokio::test]
async fn an_empty_converse_dir_is_named() {
    let data = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let mut config = starling_config::Config {
        data_dir: data.path().to_path_buf(),
        ..starling_config::Config::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.c2s.listen = vec![any];
    config.c2s.direct_tls_listen = vec![any];
    config.http.listen = vec![any];
    config.web.enabled = true;
    config.web.converse_dir = Some(empty.path().to_path_buf());
    let Err(e) = starling::server::start(&config).await else {
        panic!("started without Converse.js");
    };
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("web.converse_dir {}: ", empty.path().display())),
        "{message}"
    );
    assert!(message.contains("npm install converse.js"), "{message}");
}
