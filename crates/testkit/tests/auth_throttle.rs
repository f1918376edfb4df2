//! SASL failures that are not password guesses, over real sockets against an in-process server.
//! Each test asserts the exact elements a client receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "correct horse battery staple";

/// What the server answers a channel-binding type it does not offer: RFC 5802 §7's
/// server-final `e=unsupported-channel-binding-type` in `<text/>` (RFC 6120 §6.5 has no
/// additional data with failure), with `<malformed-request/>` (RFC 6120 §6.5.8).
const UNSUPPORTED_CB: &str = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <malformed-request/><text>e=unsupported-channel-binding-type</text></failure>";
const NOT_AUTHORIZED: &str =
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";

/// `<auth/>` with `payload` as its initial response.
fn auth(mechanism: &str, payload: &str) -> String {
    format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>{}</auth>",
        B64.encode(payload)
    )
}

fn plain(user: &str, password: &str) -> String {
    auth("PLAIN", &format!("\0{user}\0{password}"))
}

/// A TLS stream, ready for SASL.
async fn secure_stream(server: &TestServer) -> Client {
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.starttls("localhost").await.unwrap();
    c
}

/// Sends `request` and asserts the next element is `expected`.
async fn exchange(c: &mut Client, request: &str, expected: &str) {
    c.send_xml(request).await.unwrap();
    c.expect(expected).await.unwrap();
}

/// COMPAT(poezio): poezio on slixmpp 1.8.3 starts with SCRAM-SHA-1-PLUS and channel binding
/// `tls-unique` (RFC 5929 §3), which TLS 1.3 does not define (RFC 9266 §1) and which this
/// server never offers (XEP-0440 lists tls-exporter and tls-server-end-point). Its exact bytes:
/// gs2-header `p=tls-unique,,`, client-first-message-bare `n=user,r=<decimal nonce>`.
///
/// RFC 5802 §7 / RFC 6120 §6.4.5: the answer is a `<failure/>` carrying the server-error-value,
/// and the attempt is no password guess: it does not count toward the retries (RFC 6120 §6.4.5,
/// five here), so SCRAM-SHA-1 with the right password then succeeds on the same stream.
#[tokio::test]
async fn poezio_tls_unique_is_unsupported_not_a_wrong_password() {
    let server = TestServer::with_users(&["user"], PW).await;
    let mut c = secure_stream(&server).await;
    // Six attempts: more than the five retries a stream gets.
    for _ in 0..6 {
        exchange(
            &mut c,
            &auth(
                "SCRAM-SHA-1-PLUS",
                "p=tls-unique,,n=user,r=8419250731941614",
            ),
            UNSUPPORTED_CB,
        )
        .await;
    }
    // The stream is still open: nothing was counted.
    c.authenticate("localhost", "SCRAM-SHA-1", "user", PW, None)
        .await
        .unwrap();
    let jid = c.bind(Some("poezio")).await.unwrap();
    assert_eq!(jid.to_string(), "user@localhost/poezio");
    c.close().await.unwrap();
    server.stop().await;
}

/// COMPAT(poezio): the rest of slixmpp's fallback. Each failure makes it try the next mechanism
/// it likes: the three -PLUS ones with `tls-unique` (unsupported, not counted), then plain SCRAM
/// with the gs2 flag `y` ("I could bind, but you seem not to"), which RFC 5802 §6 requires us to
/// refuse as a downgrade since -PLUS was advertised (counted: three of the five retries), then
/// PLAIN over TLS, which logs in. Before the fix the -PLUS attempts counted too and the stream
/// was closed before PLAIN.
#[tokio::test]
async fn poezio_falls_back_to_plain_within_the_retries() {
    let server = TestServer::with_users(&["user"], PW).await;
    let mut c = secure_stream(&server).await;
    for mech in [
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-512-PLUS",
    ] {
        let first = "p=tls-unique,,n=user,r=2718281828459045";
        exchange(&mut c, &auth(mech, first), UNSUPPORTED_CB).await;
    }
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let first = "y,,n=user,r=3141592653589793";
        exchange(&mut c, &auth(mech, first), NOT_AUTHORIZED).await;
    }
    c.send_xml(&plain("user", PW)).await.unwrap();
    c.expect("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    c.open_stream("localhost").await.unwrap();
    assert_eq!(
        c.bind(Some("poezio")).await.unwrap().to_string(),
        "user@localhost/poezio"
    );
    server.stop().await;
}
