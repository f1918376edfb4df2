//! XEP-0363 HTTP File Upload over real sockets: discovery of `upload.localhost` (§3), slot
//! requests answered with signed URLs (§4), the errors of §5 (file too large with the limit,
//! quota, bad requests, users of other servers), the upload itself over HTTP/1.1 (§6: the
//! announced size and type enforced, a slot used once), downloads with ranges and headers
//! that keep browsers from rendering uploads in the server's origin, CORS, path-traversal
//! attempts, expiry and account deletion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use starling_testkit::client::Client;
use starling_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PW: &str = "pw";
const NS: &str = "urn:xmpp:http:upload:0";
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const DOMAIN: &str = "echo.localhost";
const SECRET: &str = "a long shared secret";

async fn server_with(adjust: impl FnOnce(&mut starling_config::Config)) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.upload.max_file_size = 1000;
        c.upload.quota_per_user = 1500;
        c.components.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.components.secrets = vec![(
            DOMAIN.to_owned(),
            starling_config::Secret(SECRET.to_owned()),
        )];
        adjust(c);
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    server
}

async fn server() -> TestServer {
    server_with(|_| {}).await
}

async fn online(server: &TestServer, user: &str) -> Client {
    server.online(user, PW, "r").await
}

/// An HTTP response, header names in lower case.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (without the final empty line; `Connection: close` is added) and `body`, and
/// reads the whole response.
async fn http(addr: SocketAddr, head: &str, body: &[u8]) -> Response {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Response {
        status,
        headers,
        body,
    }
}

async fn get(addr: SocketAddr, path: &str, extra: &str) -> Response {
    http(addr, &format!("GET {path} HTTP/1.1{extra}"), b"").await
}

async fn put(addr: SocketAddr, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    let ct = content_type
        .map(|t| format!("\r\nContent-Type: {t}"))
        .unwrap_or_default();
    let head = format!("PUT {path} HTTP/1.1\r\nContent-Length: {}{ct}", body.len());
    http(addr, &head, body).await
}

/// A slot as the service handed it out: the paths (with the query) of its URLs on `addr`.
struct Slot {
    put: String,
    get: String,
    id: String,
}

/// Asks for a slot and returns its URLs' paths, asserting the exact answer (XEP-0363 §4).
async fn request_slot(
    c: &mut Client,
    addr: SocketAddr,
    filename: &str,
    size: usize,
    content_type: Option<&str>,
) -> Slot {
    let ct = content_type
        .map(|t| format!(" content-type='{t}'"))
        .unwrap_or_default();
    c.send_xml(&format!(
        "<iq type='get' id='s1' to='upload.localhost'><request xmlns='{NS}' filename='{filename}' size='{size}'{ct}/></iq>"
    ))
    .await
    .unwrap();
    let reply = c
        .expect(&format!(
            "<iq type='result' id='s1' from='upload.localhost' to='alice@localhost/r'>\
             <slot xmlns='{NS}'><put url='{{*}}'/><get url='{{*}}'/></slot></iq>"
        ))
        .await
        .unwrap();
    let slot = reply.get_child("slot", NS).unwrap();
    let put = slot.get_child("put", NS).unwrap().attr("url").unwrap();
    let get = slot.get_child("get", NS).unwrap().attr("url").unwrap();
    let base = format!("http://{addr}");
    let get = get
        .strip_prefix(&base)
        .expect("the GET URL on the listener")
        .to_owned();
    let put = put
        .strip_prefix(&base)
        .expect("the PUT URL on the listener")
        .to_owned();
    // The PUT URL is the GET URL with the signature (`?e=<expiry>&s=<HMAC>`).
    let query = put
        .strip_prefix(&format!("{get}?"))
        .expect("PUT = GET + query");
    assert!(query.starts_with("e=") && query.contains("&s="), "{query}");
    let id = get
        .strip_prefix("/upload/")
        .and_then(|r| r.split_once('/'))
        .map(|(id, _)| id.to_owned())
        .unwrap();
    assert_eq!(id.len(), 24, "{id}");
    Slot { put, get, id }
}

/// XEP-0363 §3: the server lists the upload service among its items, and the service
/// advertises its identity, the feature and the largest file size (XEP-0128).
#[tokio::test]
async fn discovery() {
    let server = server().await;
    let mut c = online(&server, "alice").await;
    c.send_xml("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='d1' from='localhost' to='alice@localhost/r'>\
         <query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.localhost'/>\
         <item jid='pubsub.localhost'/><item jid='upload.localhost'/></query></iq>",
    )
    .await
    .unwrap();
    c.send_xml("<iq type='get' id='d2' to='upload.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    c.expect(&format!(
        "<iq type='result' id='d2' from='upload.localhost' to='alice@localhost/r'>\
         <query xmlns='http://jabber.org/protocol/disco#info'>\
         <identity category='store' type='file' name='HTTP File Upload'/>\
         <feature var='http://jabber.org/protocol/disco#info'/>\
         <feature var='http://jabber.org/protocol/disco#items'/>\
         <feature var='urn:xmpp:ping'/>\
         <feature var='{NS}'/>\
         <x xmlns='jabber:x:data' type='result'>\
         <field var='FORM_TYPE' type='hidden'><value>{NS}</value></field>\
         <field var='max-file-size'><value>1000</value></field></x></query></iq>"
    ))
    .await
    .unwrap();
    server.stop().await;
}

/// Without an HTTP listener there is no upload service (its files could not be served).
#[tokio::test]
async fn no_service_without_http() {
    let server = server_with(|c| c.http.listen = vec![]).await;
    let mut c = online(&server, "alice").await;
    c.send_xml("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='d1' from='localhost' to='alice@localhost/r'>\
         <query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.localhost'/>\
         <item jid='pubsub.localhost'/></query></iq>",
    )
    .await
    .unwrap();
    server.stop().await;
}

/// XEP-0363 §4 and §6: a slot, the PUT (201), the GET with the file and its headers, a range
/// (RFC 9110 §14), HEAD, a second PUT refused (409), CORS preflight.
#[tokio::test]
async fn upload_and_download() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    let mut c = online(&server, "alice").await;
    let data: Vec<u8> = (0..=255u8).cycle().take(700).collect();
    // §4: the file name is kept, percent-encoded in the URL.
    let slot = request_slot(
        &mut c,
        addr,
        "my juliet ü.jpg",
        data.len(),
        Some("image/jpeg"),
    )
    .await;
    assert_eq!(
        slot.get,
        format!("/upload/{}/my%20juliet%20%C3%BC.jpg", slot.id)
    );
    // Not there before its PUT.
    assert_eq!(get(addr, &slot.get, "").await.status, 404);
    let r = put(addr, &slot.put, Some("image/jpeg"), &data).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(server.server().upload().unwrap().stored_bytes(), 700);
    // The file is where it belongs.
    let on_disk = server
        .data_dir()
        .join("upload")
        .join(&slot.id)
        .join("my juliet ü.jpg");
    assert_eq!(std::fs::read(&on_disk).unwrap(), data);

    let r = get(addr, &slot.get, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    assert_eq!(r.header("content-length"), Some("700"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; sandbox")
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("inline; filename=\"my juliet _.jpg\"; filename*=UTF-8''my%20juliet%20%C3%BC.jpg")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));

    // A range (RFC 9110 §14.2): 206 with Content-Range.
    let r = get(addr, &slot.get, "\r\nRange: bytes=10-19").await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &data[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/700"));
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let r = get(addr, &slot.get, "\r\nRange: bytes=-5").await;
    assert_eq!((r.status, r.body.as_slice()), (206, &data[695..]));
    let r = get(addr, &slot.get, "\r\nRange: bytes=700-800").await;
    assert_eq!(r.status, 416);

    // HEAD: the headers without the body.
    let r = http(addr, &format!("HEAD {} HTTP/1.1", slot.get), b"").await;
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("700"));

    // A slot is used once (the PUT URL stays valid for minutes).
    let r = put(addr, &slot.put, Some("image/jpeg"), &data).await;
    assert_eq!(r.status, 409);

    // CORS preflight of a browser client.
    let r = http(
        addr,
        &format!(
            "OPTIONS {} HTTP/1.1\r\nOrigin: https://web.example\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type",
            slot.put
        ),
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("PUT, GET, HEAD, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Content-Type, Authorization")
    );
    server.stop().await;
}

/// Uploads are never rendered by a browser in the server's origin: HTML and SVG come back as
/// `application/octet-stream` attachments; a slot asked without a type is one too; a large
/// body (beyond the listener's 64 KiB limit of its other routes) is streamed to disk.
#[tokio::test]
async fn active_content_is_an_attachment() {
    let server = server_with(|c| {
        c.upload.max_file_size = 300_000;
        c.upload.quota_per_user = 1_000_000;
    })
    .await;
    let addr = server.http_addr.unwrap();
    let mut c = online(&server, "alice").await;
    for (name, ct) in [
        ("page.html", Some("text/html")),
        ("pic.svg", Some("image/svg+xml")),
        ("what", None),
    ] {
        let body = b"<html><script>alert(1)</script></html>";
        let slot = request_slot(&mut c, addr, name, body.len(), ct).await;
        // Without a requested type, any Content-Type is taken (§6).
        let r = put(addr, &slot.put, Some(ct.unwrap_or("text/html")), body).await;
        assert_eq!(r.status, 201, "{name}");
        let r = get(addr, &slot.get, "").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/octet-stream"),
            "{name}"
        );
        assert_eq!(
            r.header("content-disposition"),
            Some(format!("attachment; filename=\"{name}\"; filename*=UTF-8''{name}").as_str())
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    }
    let big: Vec<u8> = (0..250_000u32).map(|i| (i % 251) as u8).collect();
    let slot = request_slot(
        &mut c,
        addr,
        "big.bin",
        big.len(),
        Some("application/octet-stream"),
    )
    .await;
    let r = put(addr, &slot.put, Some("application/octet-stream"), &big).await;
    assert_eq!(r.status, 201);
    let r = get(addr, &slot.get, "").await;
    assert_eq!((r.status, r.body.len()), (200, big.len()));
    assert!(r.body == big);
    server.stop().await;
}

/// XEP-0363 §5: a file over the limit is `not-acceptable` with `<file-too-large/>` and the
/// limit; the quota is `resource-constraint` (type wait); a missing or unusable file name,
/// size or content type is `bad-request`; the request is echoed as in the XEP's examples.
#[tokio::test]
async fn request_errors() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    let mut c = online(&server, "alice").await;
    c.send_xml(&format!(
        "<iq type='get' id='big' to='upload.localhost'><request xmlns='{NS}' filename='my-juliet.jpg' size='1001' content-type='image/jpeg'/></iq>"
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='error' id='big' from='upload.localhost' to='alice@localhost/r'>\
         <request xmlns='{NS}' filename='my-juliet.jpg' size='1001' content-type='image/jpeg'/>\
         <error type='modify'><not-acceptable xmlns='{STANZAS}'/>\
         <text xmlns='{STANZAS}'>File too large. The maximum file size is 1000 bytes</text>\
         <file-too-large xmlns='{NS}'><max-file-size>1000</max-file-size></file-too-large>\
         </error></iq>"
    ))
    .await
    .unwrap();

    // The quota counts slots handed out, uploaded or not: 1000 + 400 fit in 1500, 200 more not.
    request_slot(&mut c, addr, "a.bin", 1000, None).await;
    request_slot(&mut c, addr, "b.bin", 400, None).await;
    c.send_xml(&format!(
        "<iq type='get' id='q' to='upload.localhost'><request xmlns='{NS}' filename='c.bin' size='200'/></iq>"
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='error' id='q' from='upload.localhost' to='alice@localhost/r'>\
         <request xmlns='{NS}' filename='c.bin' size='200'/>\
         <error type='wait'><resource-constraint xmlns='{STANZAS}'/>\
         <text xmlns='{STANZAS}'>Quota reached: your files may take 1500 bytes together</text>\
         </error></iq>"
    ))
    .await
    .unwrap();
    // Another user has a quota of their own.
    let mut b = online(&server, "bob").await;
    b.send_xml(&format!(
        "<iq type='get' id='q' to='upload.localhost'><request xmlns='{NS}' filename='c.bin' size='200'/></iq>"
    ))
    .await
    .unwrap();
    b.expect(&format!(
        "<iq type='result' id='q' from='upload.localhost' to='bob@localhost/r'>\
         <slot xmlns='{NS}'><put url='{{*}}'/><get url='{{*}}'/></slot></iq>"
    ))
    .await
    .unwrap();

    for (attrs, text) in [
        ("size='10'", "a file name is required"),
        ("filename='..' size='10'", "a file name is required"),
        ("filename=' . ' size='10'", "a file name is required"),
        ("filename='' size='10'", "a file name is required"),
        ("filename='a.txt'", "the size must be a number of bytes"),
        (
            "filename='a.txt' size='-1'",
            "the size must be a number of bytes",
        ),
        (
            "filename='a.txt' size='ten'",
            "the size must be a number of bytes",
        ),
        (
            "filename='a.txt' size='10' content-type='text'",
            "the content type is not a media type",
        ),
    ] {
        c.send_xml(&format!(
            "<iq type='get' id='bad' to='upload.localhost'><request xmlns='{NS}' {attrs}/></iq>"
        ))
        .await
        .unwrap();
        c.expect(&format!(
            "<iq type='error' id='bad' from='upload.localhost' to='alice@localhost/r'>\
             <request xmlns='{NS}' {attrs}/>\
             <error type='modify'><bad-request xmlns='{STANZAS}'/>\
             <text xmlns='{STANZAS}'>{text}</text></error></iq>"
        ))
        .await
        .unwrap();
    }
    server.stop().await;
}

/// XEP-0363 §5 (a permanent error for an entity not allowed to upload): only accounts of this
/// server get slots; here a JID at an external component asks.
#[tokio::test]
async fn only_local_accounts() {
    let server = server().await;
    let mut comp = server.component(DOMAIN, SECRET).await;
    comp.send_xml(&format!(
        "<iq xmlns='jabber:component:accept' type='get' id='x1' from='bot@{DOMAIN}' to='upload.localhost'>\
         <request xmlns='{NS}' filename='a.txt' size='10'/></iq>"
    ))
    .await
    .unwrap();
    comp.expect(&format!(
        "<iq xmlns='jabber:component:accept' type='error' id='x1' from='upload.localhost' to='bot@{DOMAIN}'>\
         <request xmlns='{NS}' filename='a.txt' size='10'/>\
         <error type='cancel'><not-allowed xmlns='{STANZAS}'/>\
         <text xmlns='{STANZAS}'>only accounts of this server may upload files</text></error></iq>"
    ))
    .await
    .unwrap();
    server.stop().await;
}

/// XEP-0363 §6: the upload service rejects a PUT whose Content-Length is not the slot's size
/// (413 above it, 400 below), whose Content-Type is not the one requested (400), whose URL is
/// not signed, signed for something else or for another slot (403); unknown slots are 404.
#[tokio::test]
async fn put_refusals() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    let mut c = online(&server, "alice").await;
    let slot = request_slot(&mut c, addr, "a.txt", 10, Some("text/plain")).await;
    let ten = b"0123456789";
    // Too large, too small.
    assert_eq!(
        put(addr, &slot.put, Some("text/plain"), b"0123456789A")
            .await
            .status,
        413
    );
    assert_eq!(
        put(addr, &slot.put, Some("text/plain"), b"012345678")
            .await
            .status,
        400
    );
    // Another type, or none.
    assert_eq!(
        put(addr, &slot.put, Some("text/html"), ten).await.status,
        400
    );
    assert_eq!(put(addr, &slot.put, None, ten).await.status, 400);
    // Not signed, or badly.
    assert_eq!(
        put(addr, &slot.get, Some("text/plain"), ten).await.status,
        403
    );
    let (path, query) = slot.put.split_once("&s=").unwrap();
    let mut sig = query.to_owned();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    sig.replace_range(0..1, flipped);
    let forged = format!("{path}&s={sig}");
    assert_eq!(
        put(addr, &forged, Some("text/plain"), ten).await.status,
        403
    );
    // A later expiry with the same signature.
    let (get_path, rest) = slot.put.split_once("?e=").unwrap();
    let (expiry, sig) = rest.split_once("&s=").unwrap();
    let later = format!(
        "{get_path}?e={}&s={sig}",
        expiry.parse::<i64>().unwrap() + 3600
    );
    assert_eq!(put(addr, &later, Some("text/plain"), ten).await.status, 403);
    // Another slot's signature on this slot.
    let other = request_slot(&mut c, addr, "a.txt", 10, Some("text/plain")).await;
    let (_, other_query) = other.put.split_once('?').unwrap();
    let swapped = format!("{}?{other_query}", slot.get);
    assert_eq!(
        put(addr, &swapped, Some("text/plain"), ten).await.status,
        403
    );
    // The right name under another slot id, an unknown slot, another file name.
    let unknown = slot.put.replace(&slot.id, "AAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        put(addr, &unknown, Some("text/plain"), ten).await.status,
        404
    );
    let renamed = slot.put.replace("/a.txt?", "/b.txt?");
    assert_eq!(
        put(addr, &renamed, Some("text/plain"), ten).await.status,
        404
    );
    // Nothing was stored by any of these; the right request still works.
    assert_eq!(get(addr, &slot.get, "").await.status, 404);
    let r = put(addr, &slot.put, Some("Text/Plain"), ten).await;
    assert_eq!(r.status, 201);
    assert_eq!(get(addr, &slot.get, "").await.body, ten);
    // Text is served as itself, as an attachment.
    let r = get(addr, &slot.get, "").await;
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    server.stop().await;
}

/// Issue 17: path-traversal attempts on the upload routes (`..`, `%2e%2e`, `%u002e`, `..;/`,
/// `//`) get 400 or 404 and never a file outside the upload directory (here the server's
/// secret, one level above it, and a planted file two levels above).
#[tokio::test]
async fn path_traversal() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    let mut c = online(&server, "alice").await;
    let slot = request_slot(&mut c, addr, "a.txt", 4, Some("text/plain")).await;
    assert_eq!(
        put(addr, &slot.put, Some("text/plain"), b"safe")
            .await
            .status,
        201
    );
    let id = &slot.id;
    let planted = "planted secret 0123456789";
    std::fs::write(server.data_dir().join("planted.txt"), planted).unwrap();
    let secret = std::fs::read(server.data_dir().join("server-secret")).unwrap();
    let paths = [
        "/upload/../server-secret".to_owned(),
        "/upload/../../planted.txt".to_owned(),
        format!("/upload/{id}/../../server-secret"),
        format!("/upload/{id}/.."),
        format!("/upload/{id}/..%2f..%2fserver-secret"),
        format!("/upload/{id}/%2e%2e"),
        format!("/upload/{id}/%2e%2e%2f%2e%2e%2fserver-secret"),
        "/upload/%2e%2e/server-secret".to_owned(),
        "/upload/%2e%2e/%2e%2e%2fplanted.txt".to_owned(),
        "/upload/%u002e%u002e/server-secret".to_owned(),
        format!("/upload/{id}/%u002e%u002e%u2215server-secret"),
        "/upload/..;/server-secret".to_owned(),
        format!("/upload/{id}/..;/..;/server-secret"),
        format!("/upload/{id}/..;"),
        "/upload//server-secret".to_owned(),
        format!("/upload/{id}//a.txt"),
        "//upload/../server-secret".to_owned(),
        format!("/upload/{id}/%2fetc%2fpasswd"),
        format!("/upload/{id}/%5c..%5cserver-secret"),
        format!("/upload/{id}/.%2e/server-secret"),
        format!("/upload/{id}/a.txt%00.jpg"),
        format!("/upload/{id}/.tmp"),
        "/upload/.tmp/x".to_owned(),
    ];
    for path in &paths {
        for method in ["GET", "PUT", "HEAD"] {
            let head = format!("{method} {path} HTTP/1.1\r\nContent-Length: 4");
            let r = http(addr, &head, b"evil").await;
            assert!(
                r.status == 400 || r.status == 404,
                "{method} {path}: {}",
                r.status
            );
            assert!(
                !r.body
                    .windows(planted.len())
                    .any(|w| w == planted.as_bytes()),
                "{method} {path}"
            );
            assert!(
                secret.is_empty() || !r.body.windows(secret.len()).any(|w| w == secret),
                "{method} {path}"
            );
        }
    }
    // Nothing was written anywhere but the one slot.
    let mut dirs: Vec<String> = std::fs::read_dir(server.data_dir().join("upload"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    dirs.sort();
    let mut want = vec![".tmp".to_owned(), id.clone()];
    want.sort();
    assert_eq!(dirs, want);
    assert_eq!(
        std::fs::read_dir(server.data_dir().join("upload/.tmp"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_to_string(server.data_dir().join("planted.txt")).unwrap(),
        planted
    );
    // The file itself is still served.
    assert_eq!(get(addr, &slot.get, "").await.body, b"safe");
    server.stop().await;
}

/// Files expire after `expire_after_days` (slots never uploaded sooner), and go with their
/// account when it is deleted (XEP-0077 §3.2 removal).
#[tokio::test]
async fn expiry_and_account_deletion() {
    let server = server().await;
    let addr = server.http_addr.unwrap();
    let mut c = online(&server, "alice").await;
    let done = request_slot(&mut c, addr, "kept.txt", 3, None).await;
    assert_eq!(put(addr, &done.put, None, b"abc").await.status, 201);
    let pending = request_slot(&mut c, addr, "never.txt", 3, None).await;
    let upload = server.server().upload().unwrap().clone();
    let store = server.server().storage().stores().upload;
    let now = starling_upload::unix_now();
    // Nothing is old yet.
    assert_eq!(upload.expire(&*store, now).await, 0);
    // Two hours on, the slot never used is gone; the file stays (30 days by default).
    assert_eq!(upload.expire(&*store, now + 2 * 3600).await, 1);
    assert!(store.slot(&pending.id).await.unwrap().is_none());
    assert_eq!(get(addr, &done.get, "").await.status, 200);
    // 31 days on, the file goes too, from disk and from the store.
    assert_eq!(upload.expire(&*store, now + 31 * 86_400).await, 1);
    assert_eq!(get(addr, &done.get, "").await.status, 404);
    assert!(!server.data_dir().join("upload").join(&done.id).exists());
    assert_eq!(store.used("alice@localhost").await.unwrap(), 0);

    // Account deletion deletes the account's files.
    let kept = request_slot(&mut c, addr, "mine.txt", 3, None).await;
    assert_eq!(put(addr, &kept.put, None, b"xyz").await.status, 201);
    c.send_xml("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await
        .unwrap();
    c.expect("<iq type='result' id='rm' to='alice@localhost/r'/>")
        .await
        .unwrap();
    let gone = async {
        while store.slot(&kept.id).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .unwrap();
    assert_eq!(get(addr, &kept.get, "").await.status, 404);
    assert!(!server.data_dir().join("upload").join(&kept.id).exists());
    server.stop().await;
}
