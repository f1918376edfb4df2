//! Issue 17 item 9: `GET /metrics` of a whole server in the Prometheus text exposition format
//! (version 0.0.4), after real logins and a real message over STARTTLS.
//!
//! Its own test binary, with one test: the metrics recorder is global to a process, so no other
//! test's connections, logins or stanzas may run beside this one; every count asserted here is
//! this test's own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use starling_testkit::client::Client;
use starling_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PW: &str = "correct horse battery staple";

/// `GET /metrics`: the response's head and body, after checking the status and content type.
async fn scrape(addr: SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.lines()
            .any(|l| l == "content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    body.to_owned()
}

/// Checks `text` against the Prometheus text exposition format 0.0.4 (every line a `# HELP`, a
/// `# TYPE` or a sample of a declared family with a numeric value; label values quoted) and
/// returns its samples, `name{labels}` → value.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut samples = HashMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(name_ok(name) && !help.is_empty(), "{line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            assert!(name_ok(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "{line}"
            );
            assert!(types.insert(name, ty).is_none(), "two TYPE lines: {line}");
        } else {
            assert!(!line.starts_with('#'), "{line}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
            };
            let name = series.split('{').next().unwrap();
            assert!(name_ok(name), "{line}");
            let labels = &series[name.len()..];
            if !labels.is_empty() {
                let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
                let inner = inner.unwrap_or_else(|| panic!("labels: {line}"));
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').unwrap();
                    assert!(name_ok(k), "{line}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "{line}"
                    );
                }
            }
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|f| types.get(f) == Some(&"histogram"))
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "no TYPE before {line}");
            assert!(samples.insert(series.to_owned(), value).is_none(), "{line}");
        }
    }
    samples
}

/// Scrapes until `done` holds for the samples (the server handles a closed stream on its own
/// time), at most 5 s.
async fn scrape_until(
    addr: SocketAddr,
    done: impl Fn(&HashMap<String, f64>) -> bool,
) -> (String, HashMap<String, f64>) {
    for _ in 0..100 {
        let text = scrape(addr).await;
        let samples = parse(&text);
        if done(&samples) {
            return (text, samples);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "metrics never reached the expected state:\n{}",
        scrape(addr).await
    );
}

fn has_line(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in:\n{text}"
    );
}

#[tokio::test]
async fn metrics_count_logins_connections_and_stanzas() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let addr = server.http_addr.unwrap();

    // Before anyone connects: every series is there, at zero, with its help text.
    let text = scrape(addr).await;
    parse(&text);
    for line in [
        "# TYPE starling_connections_open gauge",
        "starling_connections_open{transport=\"tcp\",tls=\"false\"} 0",
        "starling_connections_open{transport=\"tcp\",tls=\"true\"} 0",
        "starling_connections_open{transport=\"websocket\",tls=\"false\"} 0",
        "starling_connections_open{transport=\"bosh\",tls=\"true\"} 0",
        "starling_sessions_bound 0",
        "starling_stanzas_in_total{kind=\"message\"} 0",
        "starling_stanzas_out_total{kind=\"iq\"} 0",
        "starling_route_latency_seconds_count 0",
        "starling_sm_resumptions_total 0",
        "starling_sm_timeouts_total 0",
        "starling_offline_writes_total 0",
        "starling_mam_writes_total{archive=\"user\"} 0",
        "starling_upload_bytes_total 0",
        "# TYPE starling_upload_bytes_total counter",
        "# HELP starling_upload_bytes_total Bytes of files received through HTTP file upload (XEP-0363)",
    ] {
        has_line(&text, line);
    }

    // A wrong password: one SASL failure for the mechanism tried (RFC 6120 §6.5.10).
    let mut intruder = Client::connect(server.starttls_addr).await.unwrap();
    intruder.open_stream("localhost").await.unwrap();
    intruder.starttls("localhost").await.unwrap();
    assert!(
        intruder
            .authenticate(
                "localhost",
                "SCRAM-SHA-256",
                "alice",
                "wrong password",
                None
            )
            .await
            .is_err()
    );
    drop(intruder);

    // Two sessions over STARTTLS with SCRAM-SHA-256, each available (RFC 6121 §4.2), and one
    // message from one to the other (RFC 6121 §8.5.3.1).
    let mut alice = server.online("alice", PW, "phone").await;
    let mut bob = server.online("bob", PW, "desk").await;
    alice
        .send_xml("<message to='bob@localhost/desk' type='chat' id='m1'><body>hi</body></message>")
        .await
        .unwrap();
    bob.expect(
        "<message xmlns='jabber:client' from='alice@localhost/phone' to='bob@localhost/desk' \
         type='chat' id='m1'><body>hi</body></message>",
    )
    .await
    .unwrap();

    let (text, samples) = scrape_until(addr, |s| {
        s.get("starling_connections_open{transport=\"tcp\",tls=\"true\"}") == Some(&2.0)
    })
    .await;
    for line in [
        // The two sessions' connections, upgraded by STARTTLS; the intruder's is gone.
        "starling_connections_open{transport=\"tcp\",tls=\"true\"} 2",
        "starling_connections_open{transport=\"tcp\",tls=\"false\"} 0",
        "starling_sessions_bound 2",
        // Two initial presences and one message in; the two presence echoes and the message out.
        "starling_stanzas_in_total{kind=\"presence\"} 2",
        "starling_stanzas_in_total{kind=\"message\"} 1",
        "starling_stanzas_in_total{kind=\"iq\"} 0",
        "starling_stanzas_out_total{kind=\"presence\"} 2",
        "starling_stanzas_out_total{kind=\"message\"} 1",
        // The test client's mechanism (`Client::login`).
        "starling_sasl_successes_total{mechanism=\"SCRAM-SHA-256\"} 2",
        "starling_sasl_failures_total{mechanism=\"SCRAM-SHA-256\"} 1",
        // Each stanza from a client routed once, and timed.
        "starling_route_latency_seconds_count 3",
        "starling_route_latency_seconds_bucket{le=\"+Inf\"} 3",
        "# TYPE starling_route_latency_seconds histogram",
    ] {
        has_line(&text, line);
    }
    // Each connection holds an output buffer at least.
    assert!(samples["starling_session_buffer_bytes"] > 0.0, "{text}");
    assert!(
        samples["starling_route_latency_seconds_sum"] > 0.0,
        "{text}"
    );

    // Bob leaves: his connection and session are no longer counted.
    bob.close().await.unwrap();
    let (text, _) = scrape_until(addr, |s| {
        s.get("starling_sessions_bound") == Some(&1.0)
            && s.get("starling_connections_open{transport=\"tcp\",tls=\"true\"}") == Some(&1.0)
    })
    .await;
    has_line(&text, "starling_sessions_bound 1");
    drop(alice);
    server.stop().await;
}
