//! SASL failures that are not password guesses, and the login throttle (delays and locks), over
//! real sockets against an in-process server. Each test asserts the exact elements a client
//! receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use starling_testkit::bystanders::Bystanders;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "correct horse battery staple";
/// Sessions that keep pinging the server throughout each test (issue 11: other users unhurt).
const BYSTANDERS: usize = 20;
const HERE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// What the server answers a channel-binding type it does not offer: RFC 5802 §7's
/// server-final `e=unsupported-channel-binding-type` in `<text/>` (RFC 6120 §6.5 has no
/// additional data with failure), with `<malformed-request/>` (RFC 6120 §6.5.8).
const UNSUPPORTED_CB: &str = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <malformed-request/><text>e=unsupported-channel-binding-type</text></failure>";
const NOT_AUTHORIZED: &str =
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
const ACCOUNT_LOCKED: &str = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <temporary-auth-failure/>\
    <text>too many failed authentication attempts for this account; try again later</text>\
    </failure>";
const IP_LOCKED: &str = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <temporary-auth-failure/>\
    <text>too many failed authentication attempts from your address; try again later</text>\
    </failure>";

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

/// A TLS stream from `from`, ready for SASL.
async fn secure_stream(server: &TestServer, from: IpAddr) -> Client {
    let mut c = Client::connect_from(server.starttls_addr, from)
        .await
        .unwrap();
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
/// and the attempt is no password guess: it counts neither toward the retries (RFC 6120 §6.4.5,
/// five here) nor for the throttle (here set to lock at the first counted failure), so SCRAM-SHA-1
/// with the right password then succeeds on the same stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poezio_tls_unique_is_unsupported_not_a_wrong_password() {
    let server = TestServer::start_with(|c| {
        c.auth.account_lock_after = 1;
        c.auth.ip_lock_after = 1;
        c.auth.failures_before_delay = 0;
    })
    .await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    server.add_user("user", PW).await;
    let mut c = secure_stream(&server, HERE).await;
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
    // The stream is open, nothing was counted against "user" or this address.
    c.authenticate("localhost", "SCRAM-SHA-1", "user", PW, None)
        .await
        .unwrap();
    let jid = c.bind(Some("poezio")).await.unwrap();
    assert_eq!(jid.to_string(), "user@localhost/poezio");
    c.close().await.unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// COMPAT(poezio): the rest of slixmpp's fallback. Each failure makes it try the next mechanism
/// it likes: the three -PLUS ones with `tls-unique` (unsupported, not counted), then plain SCRAM
/// with the gs2 flag `y` ("I could bind, but you seem not to"), which RFC 5802 §6 requires us to
/// refuse as a downgrade since -PLUS was advertised (counted: three of the five retries), then
/// PLAIN over TLS, which logs in. Before the fix the -PLUS attempts counted too and the stream
/// was closed before PLAIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poezio_falls_back_to_plain_within_the_retries() {
    let server = TestServer::with_users(&["user"], PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut c = secure_stream(&server, HERE).await;
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
    bystanders.stop().await;
    server.stop().await;
}

/// The lock semantics (see `starling_c2s::throttle`): an account locked after its limit is
/// refused from every address, the right password too, while other accounts from the same
/// address still log in; an address locked after its limit is refused for every account, while
/// other addresses still log in. RFC 6120 §6.5.11: `<temporary-auth-failure/>`, with a `<text/>`
/// that says why. Delays are off here (`failures_before_delay` out of reach).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_per_account_and_per_address() {
    let server = TestServer::start_with(|c| {
        c.auth.failures_before_delay = 1000;
        c.auth.account_lock_after = 3;
        c.auth.ip_lock_after = 5;
    })
    .await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    for u in ["alice", "bob", "carol"] {
        server.add_user(u, PW).await;
    }

    // Three wrong passwords for alice from here lock alice.
    let mut c = secure_stream(&server, HERE).await;
    for _ in 0..3 {
        exchange(&mut c, &plain("alice", "wrong"), NOT_AUTHORIZED).await;
    }
    // Her right password is refused now, from here (PLAIN) ...
    exchange(&mut c, &plain("alice", PW), ACCOUNT_LOCKED).await;
    // ... and from elsewhere (SCRAM: refused at its first message, no challenge).
    let mut c = secure_stream(&server, ELSEWHERE).await;
    exchange(
        &mut c,
        &auth("SCRAM-SHA-256", "n,,n=alice,r=abcdefgh"),
        ACCOUNT_LOCKED,
    )
    .await;
    // bob logs in from the same address: three failures are below the address's limit.
    let mut bob = secure_stream(&server, HERE).await;
    bob.authenticate("localhost", "SCRAM-SHA-256", "bob", PW, None)
        .await
        .unwrap();
    bob.bind(Some("one")).await.unwrap();

    // Two wrong passwords for carol make five from here: the address is locked (carol is not).
    let mut c = secure_stream(&server, HERE).await;
    for _ in 0..2 {
        exchange(&mut c, &plain("carol", "wrong"), NOT_AUTHORIZED).await;
    }
    // Now every account is refused from here, before any password is looked at.
    exchange(&mut c, &plain("bob", PW), IP_LOCKED).await;
    let mut c = secure_stream(&server, HERE).await;
    exchange(
        &mut c,
        &auth("SCRAM-SHA-1", "n,,n=carol,r=abcdefgh"),
        IP_LOCKED,
    )
    .await;
    // From elsewhere, bob and carol log in; alice is still locked.
    for user in ["bob", "carol"] {
        let mut c = secure_stream(&server, ELSEWHERE).await;
        c.authenticate("localhost", "SCRAM-SHA-1", user, PW, None)
            .await
            .unwrap();
        c.bind(Some("two")).await.unwrap();
    }
    let mut c = secure_stream(&server, ELSEWHERE).await;
    exchange(&mut c, &plain("alice", PW), ACCOUNT_LOCKED).await;
    // The session that logged in before the lock is untouched.
    bob.send_xml("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    bob.expect("<iq type='result' id='p1' from='localhost' to='bob@localhost/one'/>")
        .await
        .unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// Malformed requests, aborts and unknown mechanisms are no password guesses: with locks at the
/// first counted failure, none of them locks anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_password_failures_count() {
    let server = TestServer::start_with(|c| {
        c.auth.account_lock_after = 1;
        c.auth.ip_lock_after = 1;
    })
    .await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    server.add_user("alice", PW).await;
    let mut c = secure_stream(&server, HERE).await;
    exchange(
        &mut c,
        &auth("SCRAM-SHA-256", "n,,n=alice"),
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><malformed-request/></failure>",
    )
    .await;
    exchange(
        &mut c,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>",
        "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</challenge>",
    )
    .await;
    exchange(
        &mut c,
        "<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>",
    )
    .await;
    exchange(
        &mut c,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'/>",
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>",
    )
    .await;
    c.authenticate("localhost", "SCRAM-SHA-256", "alice", PW, None)
        .await
        .unwrap();
    c.bind(Some("x")).await.unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// An attacker's failures are answered later and later, and after the account's limit even the
/// right password is refused; meanwhile 20 bystander sessions keep getting their pings answered
/// (XEP-0199 §4) within a second: the delays are waited out in the attacker's own session task. Nothing here
/// measures time: the delays (1 s, 2 s) only have to end within the client's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_and_a_lock_leave_bystanders_alone() {
    let server = TestServer::start_with(|c| {
        c.auth.failures_before_delay = 1;
        c.auth.max_delay = Duration::from_secs(2);
        c.auth.account_lock_after = 3;
        c.auth.ip_lock_after = 0;
    })
    .await;
    server.add_user("alice", PW).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;

    let mut attacker = secure_stream(&server, ELSEWHERE).await;
    // Answered at once, after 1 s, after 2 s (the third locks alice).
    for _ in 0..3 {
        exchange(&mut attacker, &plain("alice", "guess"), NOT_AUTHORIZED).await;
    }
    exchange(&mut attacker, &plain("alice", PW), ACCOUNT_LOCKED).await;
    drop(attacker);
    // alice is locked for everyone now, bystanders' addresses included.
    let mut c = secure_stream(&server, HERE).await;
    exchange(&mut c, &plain("alice", PW), ACCOUNT_LOCKED).await;
    bystanders.stop().await;
    server.stop().await;
}
