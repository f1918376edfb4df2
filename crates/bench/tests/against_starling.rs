//! The generator against a real Starling (in-process, real TLS, SCRAM and SQLite): it logs in,
//! counts and measures what it should. Counts only; no timing is asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use starling_bench::cache::ScramCache;
use starling_bench::report::Report;
use starling_bench::scenario::{self, Users};
use starling_bench::xmpp::{Mech, Target, TlsMode, resolve};
use starling_testkit::server::TestServer;

const USERS: [&str; 5] = ["bench1", "bench2", "bench3", "bench4", "bench5"];

fn target(server: &TestServer, tls: TlsMode, mech: Mech, cache: &std::path::Path) -> Arc<Target> {
    let cache = ScramCache::load(Some(cache), "pw").unwrap();
    Arc::new(
        Target::new(
            server.starttls_addr,
            server.domain.clone(),
            tls,
            mech,
            "pw".into(),
            cache,
        )
        .unwrap(),
    )
}

fn users(count: u64) -> Users {
    Users {
        prefix: "bench".into(),
        start: 1,
        count,
    }
}

fn field<'a>(r: &'a Report, key: &str) -> &'a str {
    r.get(key)
        .unwrap_or_else(|| panic!("no {key} in {}", r.result_line()))
}

#[tokio::test]
async fn login_storm_logs_everyone_in_and_caches_salted_passwords() {
    let server = TestServer::with_users(&USERS, "pw").await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("scram");
    let opts = scenario::login::LoginOpts {
        users: users(5),
        concurrency: 2,
        rounds: 2,
        server_pid: Some(std::process::id()),
    };
    let t = target(&server, TlsMode::Starttls, Mech::ScramSha256, &cache);
    let report = scenario::login::run(&t, &opts).await;
    assert_eq!(field(&report, "ok"), "5", "{:?}", report.lines);
    assert_eq!(field(&report, "failed"), "0");
    // The first round derived each user's salted password once; the second used them.
    assert_eq!(field(&report, "scram_cache_misses"), "5");
    t.cache.lock().unwrap().save().unwrap();

    let t = target(&server, TlsMode::Starttls, Mech::ScramSha256, &cache);
    let report = scenario::login::run(&t, &opts).await;
    assert_eq!(field(&report, "ok"), "5");
    assert_eq!(
        report.get("scram_cache_misses"),
        None,
        "{}",
        report.result_line()
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_counted_failure() {
    let server = TestServer::with_users(&USERS[..2], "pw").await;
    let dir = tempfile::tempdir().unwrap();
    let cache = ScramCache::load(None, "wrong").unwrap();
    let t = Arc::new(
        Target::new(
            server.starttls_addr,
            server.domain.clone(),
            TlsMode::Starttls,
            Mech::ScramSha1,
            "wrong".into(),
            cache,
        )
        .unwrap(),
    );
    drop(dir);
    let opts = scenario::login::LoginOpts {
        users: users(2),
        concurrency: 2,
        rounds: 1,
        server_pid: None,
    };
    let report = scenario::login::run(&t, &opts).await;
    assert_eq!(field(&report, "ok"), "0");
    assert_eq!(field(&report, "failed"), "2");
    assert!(
        report.lines.iter().any(|l| l.contains("not-authorized")),
        "{:?}",
        report.lines
    );
}

#[tokio::test]
async fn chat_at_a_fixed_rate_delivers_every_message_with_a_latency() {
    // Starling's default refuses authentication without TLS; this also checks plain TCP mode.
    let server = TestServer::start_with(|c| c.c2s.require_encryption = false).await;
    for u in &USERS[..4] {
        server.add_user(u, "pw").await;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = target(
        &server,
        TlsMode::Off,
        Mech::ScramSha1,
        &dir.path().join("scram"),
    );
    let opts = scenario::chat::ChatOpts {
        users: users(4),
        concurrency: 4,
        rate: 200,
        window: 4,
        warmup: Duration::from_millis(200),
        duration: Duration::from_millis(800),
        server_pid: None,
    };
    let report = scenario::chat::run(&t, &opts).await;
    let sent: u64 = field(&report, "sent").parse().unwrap();
    assert!(sent > 0, "{:?}", report.lines);
    // Every message sent in the window arrived (each latency sample is one of them).
    assert_eq!(field(&report, "late_or_lost"), "0", "{:?}", report.lines);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.contains(&format!("({sent} samples)"))),
        "{:?}",
        report.lines
    );
}

#[tokio::test]
async fn saturated_chat_keeps_messages_flowing_and_loses_none() {
    let server = TestServer::with_users(&USERS[..2], "pw").await;
    let dir = tempfile::tempdir().unwrap();
    let t = target(
        &server,
        TlsMode::Starttls,
        Mech::ScramSha1,
        &dir.path().join("scram"),
    );
    let opts = scenario::chat::ChatOpts {
        users: users(2),
        concurrency: 2,
        rate: 0,
        window: 8,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        server_pid: None,
    };
    let report = scenario::chat::run(&t, &opts).await;
    let received: u64 = field(&report, "received").parse().unwrap();
    assert!(received > 0, "{:?}", report.lines);
    assert_eq!(field(&report, "late_or_lost"), "0", "{:?}", report.lines);
}

#[tokio::test]
async fn pep_publishes_in_a_closed_loop_and_counts_what_it_expects() {
    // No rosters: only the publisher's own resource can be notified (XEP-0163 §4), and it is
    // expected only once the server notifies it; a server without PEP answers with errors,
    // which free the loop's slot all the same.
    let server = TestServer::with_users(&USERS[..2], "pw").await;
    let dir = tempfile::tempdir().unwrap();
    let t = target(
        &server,
        TlsMode::Starttls,
        Mech::ScramSha1,
        &dir.path().join("scram"),
    );
    let opts = scenario::pep::PepOpts {
        users: users(2),
        concurrency: 2,
        rate: 0,
        window: 2,
        settle: Duration::from_millis(200),
        settle_max: Duration::from_secs(5),
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        server_pid: None,
    };
    let report = scenario::pep::run(&t, &opts).await;
    let publishes: u64 = field(&report, "publishes").parse().unwrap();
    assert!(publishes > 1, "{:?}", report.lines);
    assert_eq!(field(&report, "lost"), "0", "{:?}", report.lines);
    assert_eq!(field(&report, "contacts_avg"), "0.0");
}

#[tokio::test]
async fn targets_off_loopback_are_refused_unless_allowed() {
    let err = resolve("192.0.2.7", 5222, false).await.unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
    assert_eq!(
        resolve("192.0.2.7", 5222, true).await.unwrap().to_string(),
        "192.0.2.7:5222"
    );
    assert!(
        resolve("127.0.0.1", 5222, false)
            .await
            .unwrap()
            .ip()
            .is_loopback()
    );
}

/// The hostile scenario counts bytes and closed connections right (issue 11's shapes): the
/// namespace-amplification stanza is delivered at its own size plus the stamped `from`, the
/// pre-authentication `<auth>` with 100 attributes passes Starling's limit of 16 per element and
/// every such connection is closed, and unfinished stanzas within the limits are held open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_shapes_are_measured_against_their_size() {
    let server = TestServer::with_users(&USERS, "pw").await;
    let dir = tempfile::tempdir().unwrap();
    let t = target(
        &server,
        TlsMode::Starttls,
        Mech::ScramSha1,
        &dir.path().join("scram"),
    );
    let opts = |shape, count| scenario::hostile::HostileOpts {
        users: users(count),
        concurrency: 2,
        shape,
        repeat: 3,
        settle: Duration::from_millis(300),
        server_pid: std::process::id(),
    };
    use scenario::hostile::Shape;

    let report = scenario::hostile::run(&t, &opts(Shape::NsChildren, 2))
        .await
        .unwrap();
    assert_eq!(field(&report, "closed"), "0", "{:?}", report.lines);
    let bytes_in: u64 = field(&report, "bytes_in").parse().unwrap();
    let bytes_out: u64 = field(&report, "bytes_out").parse().unwrap();
    // 3 × the stamped ` from='bench1@localhost/bench'` (30 bytes).
    assert_eq!(bytes_out, bytes_in + 3 * 30, "{:?}", report.lines);

    let report = scenario::hostile::run(&t, &opts(Shape::PreAuth, 3))
        .await
        .unwrap();
    assert_eq!(field(&report, "connections"), "3", "{:?}", report.lines);
    assert_eq!(field(&report, "closed"), "3", "{:?}", report.lines);

    let report = scenario::hostile::run(&t, &opts(Shape::Partial, 3))
        .await
        .unwrap();
    assert_eq!(field(&report, "connections"), "2", "{:?}", report.lines);
    assert_eq!(field(&report, "closed"), "0", "{:?}", report.lines);
}

/// Issue 17 item 11: the same scenarios over XMPP over WebSocket (RFC 7395) at
/// `/xmpp-websocket`: SCRAM login (a loopback WebSocket counts as secure), saturated chat with
/// stream management (the `<r/>`/`<a/>` exchange over WebSocket messages) and the idle hold.
#[tokio::test]
async fn the_scenarios_run_over_websocket() {
    let server = TestServer::with_users(&USERS[..4], "pw").await;
    let http = server.http_addr.expect("the test server's HTTP listener");
    let dir = tempfile::tempdir().unwrap();
    let ws_target = |sm: bool| {
        let cache = ScramCache::load(Some(&dir.path().join("scram")), "pw").unwrap();
        let mut t = Target::new(
            http,
            server.domain.clone(),
            TlsMode::Off,
            Mech::ScramSha1,
            "pw".into(),
            cache,
        )
        .unwrap();
        t.ws_url = Some(format!("ws://{http}/xmpp-websocket"));
        t.sm = sm;
        Arc::new(t)
    };
    let opts = scenario::chat::ChatOpts {
        users: users(4),
        concurrency: 4,
        rate: 0,
        window: 8,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        server_pid: None,
    };
    let report = scenario::chat::run(&ws_target(true), &opts).await;
    let received: u64 = field(&report, "received").parse().unwrap();
    assert!(received > 0, "{:?}", report.lines);
    assert_eq!(field(&report, "late_or_lost"), "0", "{:?}", report.lines);

    let opts = scenario::idle::IdleOpts {
        users: users(4),
        concurrency: 4,
        settle: Duration::from_millis(100),
        server_pid: std::process::id(),
    };
    let report = scenario::idle::run(&ws_target(false), &opts).await.unwrap();
    assert_eq!(field(&report, "held"), "4", "{:?}", report.lines);
    assert_eq!(field(&report, "failed"), "0", "{:?}", report.lines);

    // STARTTLS has no meaning on a ws:// connection.
    let mut t = Target::new(
        http,
        server.domain.clone(),
        TlsMode::Starttls,
        Mech::ScramSha1,
        "pw".into(),
        ScramCache::load(None, "pw").unwrap(),
    )
    .unwrap();
    t.ws_url = Some(format!("ws://{http}/xmpp-websocket"));
    let e = starling_bench::xmpp::connect(&t).await.err().unwrap();
    assert!(e.to_string().contains("--tls off"), "{e}");
}
