//! Server-to-server chat (issue 18): N senders log in to server A, N receivers (the same user
//! names) to server B, which serves another domain; sender i sends receiver i `type='chat'`
//! messages addressed to its bare JID at B's domain, so that every message crosses the s2s link
//! from A to B. The flow is [`chat`](super::chat)'s: each message carries its send stamp, and
//! with `rate = 0` each sender keeps at most `window` messages in flight (a slot is freed when
//! its receiver gets one): the throughput the pair of servers sustains over one link.
//!
//! Before the clock starts every sender sends one message (`<body>link</body>`) and the run
//! waits until every receiver has it: the s2s connection is then established (TLS,
//! authentication) and every route works, so neither the connection's setup nor a DNS timeout
//! falls in the window. The CPU of A and of B (`--server-pid`, `--peer-pid`) is read over the
//! window and reported per message for each side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use starling_proto::ns;
use starling_stream::Frame;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::chat::{Endpoint, FlowOpts, exchange};
use super::{Users, close_all, login_everyone};
use crate::report::Report;
use crate::stats::Percentiles;
use crate::xmpp::{Session, Target};

pub struct S2sOpts {
    /// Senders at A and receivers at B alike.
    pub users: Users,
    pub concurrency: usize,
    /// Messages per second offered in total; 0 for saturation.
    pub rate: u64,
    pub window: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// How long the first message of every sender may take to arrive (the link's setup).
    pub link_timeout: Duration,
    /// Server A (the senders' server).
    pub server_pid: Option<u32>,
    /// Server B (the receivers' server).
    pub peer_pid: Option<u32>,
}

/// Runs the scenario: `a` is the senders' server, `b` the receivers'.
pub async fn run(a: &Arc<Target>, b: &Arc<Target>, opts: &S2sOpts) -> Report {
    let mut report = Report::default();
    report.field("scenario", "s2s");
    report.field("users", opts.users.count);
    report.field("rate", opts.rate);
    report.field("a", &a.domain);
    report.field("b", &b.domain);
    if a.domain == b.domain {
        report.line("A and B must serve different domains");
        report.field("error", "config");
        return report;
    }
    let Some(senders) = login_everyone(a, &opts.users, opts.concurrency, &mut report).await else {
        return report;
    };
    let Some(receivers) = login_everyone(b, &opts.users, opts.concurrency, &mut report).await
    else {
        close_all(senders).await;
        return report;
    };
    let n = opts.users.count as usize;
    let to: Vec<String> = (0..n as u64)
        .map(|i| format!("{}@{}", opts.users.name(i), b.domain))
        .collect();
    let senders: Vec<Session> = senders.into_iter().flatten().collect();
    let receivers: Vec<Session> = receivers.into_iter().flatten().collect();
    let (senders, receivers, link) = open_link(senders, receivers, &to, opts.link_timeout).await;
    match link {
        Ok(took) => {
            report.line(format!(
                "the link {} → {} carried every sender's first message in {:.2} s",
                a.domain,
                b.domain,
                took.as_secs_f64()
            ));
            report.num("link_s", Some(took.as_secs_f64()), 2);
        }
        Err(why) => {
            report.line(format!("the link {} → {}: {why}", a.domain, b.domain));
            report.field("error", "link");
            close_all(senders.into_iter().map(Some).collect()).await;
            close_all(receivers.into_iter().map(Some).collect()).await;
            return report;
        }
    }

    // Endpoints 0..n send (sender i to receiver i at B), n..2n receive (freeing sender i).
    let mut endpoints: Vec<Option<Endpoint>> = Vec::with_capacity(2 * n);
    for (session, to) in senders.into_iter().zip(to) {
        endpoints.push(Some(Endpoint {
            session,
            to: Some(to),
            frees: None,
        }));
    }
    for (i, session) in receivers.into_iter().enumerate() {
        endpoints.push(Some(Endpoint {
            session,
            to: None,
            frees: Some(i),
        }));
    }
    let flow = FlowOpts {
        rate: opts.rate,
        window: opts.window,
        warmup: opts.warmup,
        duration: opts.duration,
        senders: n,
    };
    let outcome = exchange(endpoints, &flow, &[opts.server_pid, opts.peer_pid]).await;
    let cpu_a = outcome.cpu.first().copied().unwrap_or_default();
    let cpu_b = outcome.cpu.get(1).copied().unwrap_or_default();
    let received = outcome.received;
    let sent = outcome.sent;
    let secs = opts.duration.as_secs_f64();
    let lost = sent.saturating_sub(outcome.latencies.len() as u64);
    let pct = Percentiles::of(outcome.latencies);
    let throughput = received as f64 / secs;
    let us_a = cpu_a.server_us_per(received);
    let us_b = cpu_b.server_us_per(received);
    let both = us_a.zip(us_b).map(|(x, y)| x + y);
    let show = |u: Option<f64>| u.map_or("?".to_owned(), |u| format!("{u:.2}"));
    report.line(format!(
        "{} in {secs:.1} s: {sent} sent at {}, {received} received at {}: {throughput:.0} msg/s; {lost} not received within 2 s",
        if opts.rate > 0 {
            format!("offered {} msg/s", opts.rate)
        } else {
            format!("saturation (window {})", opts.window.max(1))
        },
        a.domain,
        b.domain,
    ));
    report.line(format!("latency: {pct}"));
    report.line(format!(
        "A ({}) {}; B ({}) {}",
        a.domain,
        cpu_a.describe(),
        b.domain,
        cpu_b.describe()
    ));
    report.line(format!(
        "CPU per message: A {} µs, B {} µs, both {} µs",
        show(us_a),
        show(us_b),
        show(both)
    ));
    report.field("sent", sent);
    report.field("received", received);
    report.field("late_or_lost", lost);
    report.num("msgs_per_s", Some(throughput), 1);
    report.num("p50_ms", Some(pct.p50.as_secs_f64() * 1e3), 3);
    report.num("p99_ms", Some(pct.p99.as_secs_f64() * 1e3), 3);
    report.num("p999_ms", Some(pct.p999.as_secs_f64() * 1e3), 3);
    report.num("a_us_per_msg", us_a, 2);
    report.num("b_us_per_msg", us_b, 2);
    report.num("server_us_per_msg", both, 2);
    report.num("a_cpu_pct", cpu_a.server_percent(), 1);
    report.num("b_cpu_pct", cpu_b.server_percent(), 1);
    report.num("gen_cpu_pct", Some(cpu_a.generator_percent()), 1);
    report
}

const LINK_BODY: &str = "link";

/// Every sender sends its receiver one message, and this waits until each has arrived (or
/// `timeout`): on failure, how many arrived and the first error a sender got back (an s2s
/// bounce such as `remote-server-not-found`).
async fn open_link(
    senders: Vec<Session>,
    receivers: Vec<Session>,
    to: &[String],
    timeout: Duration,
) -> (Vec<Session>, Vec<Session>, Result<Duration, String>) {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sending = JoinSet::new();
    for (i, (mut session, to)) in senders.into_iter().zip(to.iter().cloned()).enumerate() {
        let mut stop = stop_rx.clone();
        sending.spawn(async move {
            let first = format!(
                "<message to='{to}' type='chat' id='link{i}'><body>{LINK_BODY}</body></message>"
            );
            let mut error = match session.writer.write_all(first.as_bytes()).await {
                Ok(()) => None,
                Err(e) => Some(format!("cannot send: {e}")),
            };
            // Until told to stop: what comes back (an error bounce), and XEP-0198 requests.
            while error.is_none() {
                tokio::select! {
                    frame = session.reader.next() => match frame {
                        Ok(Frame::Element(el)) => {
                            if el.is("r", ns::SM) {
                                if let Some(a) = session.reader.ack() {
                                    let _ = session.writer.write_all(a.as_bytes()).await;
                                }
                            } else if el.name() == "message" && el.attr("type") == Some("error") {
                                let condition = el
                                    .get_child("error", ns::CLIENT)
                                    .and_then(|e| e.children().next().map(|c| c.name().to_owned()))
                                    .unwrap_or_else(|| "?".to_owned());
                                error = Some(format!("{to} bounced: {condition}"));
                            }
                        }
                        Ok(_) => {}
                        Err(e) => error = Some(format!("connection of the sender to {to}: {e}")),
                    },
                    _ = stop.changed() => break,
                }
            }
            (i, session, error)
        });
    }
    let mut receiving = JoinSet::new();
    for (i, mut session) in receivers.into_iter().enumerate() {
        receiving.spawn(async move {
            let arrived = loop {
                let frame = tokio::select! {
                    frame = session.reader.next() => frame,
                    _ = tokio::time::sleep_until(deadline) => break false,
                };
                match frame {
                    Ok(Frame::Element(el)) => {
                        if el.is("r", ns::SM) {
                            if let Some(a) = session.reader.ack() {
                                let _ = session.writer.write_all(a.as_bytes()).await;
                            }
                        } else if el.name() == "message"
                            && el
                                .get_child("body", ns::CLIENT)
                                .is_some_and(|b| b.text() == LINK_BODY)
                        {
                            break true;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break false,
                }
            };
            (i, session, arrived)
        });
    }
    let mut arrived = 0usize;
    let mut got: Vec<Option<Session>> = (0..receiving.len()).map(|_| None).collect();
    while let Some(done) = receiving.join_next().await {
        if let Ok((i, session, ok)) = done {
            arrived += usize::from(ok);
            if let Some(slot) = got.get_mut(i) {
                *slot = Some(session);
            }
        }
    }
    let took = started.elapsed();
    let _ = stop_tx.send(true);
    let mut sent: Vec<Option<Session>> = (0..sending.len()).map(|_| None).collect();
    let mut first_error = None;
    while let Some(done) = sending.join_next().await {
        if let Ok((i, session, error)) = done {
            if first_error.is_none() {
                first_error = error;
            }
            if let Some(slot) = sent.get_mut(i) {
                *slot = Some(session);
            }
        }
    }
    let total = got.len();
    let senders: Vec<Session> = sent.into_iter().flatten().collect();
    let receivers: Vec<Session> = got.into_iter().flatten().collect();
    let result = if arrived == total && senders.len() == total && receivers.len() == total {
        Ok(took)
    } else {
        Err(format!(
            "{arrived} of {total} first messages arrived within {:.0} s{}",
            timeout.as_secs_f64(),
            first_error.map_or(String::new(), |e| format!(" (first error: {e})"))
        ))
    };
    (senders, receivers, result)
}
