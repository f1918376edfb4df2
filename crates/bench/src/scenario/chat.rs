//! Chat: users in pairs (0↔1, 2↔3, …) send each other `type='chat'` messages addressed to the
//! bare JID, each carrying its send time (`t=<ns>` on the bench's one clock) in the body, so the
//! receiver measures end-to-end latency without clock skew.
//!
//! - `rate > 0`: open loop at that many messages per second in total, spread evenly over the
//!   senders and staggered: latency percentiles at a fixed offered load;
//! - `rate = 0`: saturation, closed loop: each sender keeps at most `window` messages in flight
//!   (a slot is freed when its partner receives one): the throughput the server sustains.
//!
//! Counting happens in a measurement window after a warm-up: received = messages that arrived in
//! the window, latency = messages sent in the window (arriving up to a grace period later).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use starling_proto::ns;
use starling_stream::Frame;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::JoinSet;

use super::{CpuUse, Users, close_all, cpu_over_window_of, login_everyone, now_ns};
use crate::report::Report;
use crate::stats::Percentiles;
use crate::xmpp::{Session, Target};

pub struct ChatOpts {
    pub users: Users,
    pub concurrency: usize,
    /// Messages per second offered in total; 0 for saturation.
    pub rate: u64,
    pub window: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

const GRACE: Duration = Duration::from_secs(2);
/// Messages written at once by a saturated sender, at most.
const MAX_BATCH: usize = 32;

/// Parses the send stamp out of a body `t=<ns>`.
pub fn stamp_of(body: &str) -> Option<u64> {
    body.strip_prefix("t=")?.parse().ok()
}

pub async fn run(target: &Arc<Target>, opts: &ChatOpts) -> Report {
    let mut report = Report::default();
    report.field("scenario", "chat");
    report.field("users", opts.users.count);
    report.field("rate", opts.rate);
    let Some(sessions) = login_everyone(target, &opts.users, opts.concurrency, &mut report).await
    else {
        return report;
    };
    if opts.users.count < 2 {
        report.line("chat needs at least two users");
        report.field("error", "login");
        close_all(sessions).await;
        return report;
    }
    // Even count: a last unpaired user only listens.
    let n = opts.users.count as usize;
    let senders = n - n % 2;
    let endpoints = sessions
        .into_iter()
        .enumerate()
        .map(|(i, session)| {
            let partner = i ^ 1;
            session.map(|session| Endpoint {
                session,
                to: (i < senders)
                    .then(|| format!("{}@{}", opts.users.name(partner as u64), target.domain)),
                frees: (partner < senders).then_some(partner),
            })
        })
        .collect();
    let flow = FlowOpts {
        rate: opts.rate,
        window: opts.window,
        warmup: opts.warmup,
        duration: opts.duration,
        senders,
    };
    let outcome = exchange(endpoints, &flow, &[opts.server_pid]).await;
    let cpu = outcome.cpu.first().copied().unwrap_or_default();
    let received = outcome.received;
    let secs = opts.duration.as_secs_f64();
    let sent = outcome.sent;
    let lost = sent.saturating_sub(outcome.latencies.len() as u64);
    let pct = Percentiles::of(outcome.latencies);
    let throughput = received as f64 / secs;
    report.line(format!(
        "{} in {secs:.1} s: {} sent, {received} received: {throughput:.0} msg/s; {} not received within {:?}",
        if opts.rate > 0 {
            format!("offered {} msg/s", opts.rate)
        } else {
            format!("saturation (window {})", flow.window.max(1))
        },
        sent,
        lost,
        GRACE
    ));
    report.line(format!("latency: {pct}"));
    report.line(format!(
        "{}; server {} µs CPU per message",
        cpu.describe(),
        cpu.server_us_per(received)
            .map_or("?".to_owned(), |u| format!("{u:.2}"))
    ));
    report.field("sent", sent);
    report.field("received", received);
    report.field("late_or_lost", lost);
    report.num("msgs_per_s", Some(throughput), 1);
    report.num("p50_ms", Some(pct.p50.as_secs_f64() * 1e3), 3);
    report.num("p99_ms", Some(pct.p99.as_secs_f64() * 1e3), 3);
    report.num("p999_ms", Some(pct.p999.as_secs_f64() * 1e3), 3);
    report.num("server_us_per_msg", cpu.server_us_per(received), 2);
    report.num("server_cpu_pct", cpu.server_percent(), 1);
    report.num("gen_cpu_pct", Some(cpu.generator_percent()), 1);
    report
}

/// One logged-in user in a message flow: where it sends, and whose window its arrivals free.
pub struct Endpoint {
    pub session: Session,
    /// The address this user sends `type='chat'` messages to; `None`: it only listens.
    pub to: Option<String>,
    /// The index of the endpoint whose messages arrive here: each arrival frees one of that
    /// sender's slots when saturating.
    pub frees: Option<usize>,
}

/// How a flow is driven and counted.
pub struct FlowOpts {
    /// Messages per second offered in total; 0 for saturation.
    pub rate: u64,
    /// Messages in flight per sender when saturating.
    pub window: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The senders are the endpoints `0..senders` (the rate is spread over them).
    pub senders: usize,
}

/// What a flow measured.
pub struct Outcome {
    /// Messages sent in the window.
    pub sent: u64,
    /// Messages received in the window.
    pub received: u64,
    /// Send-to-receive latency (ns) of each message sent in the window that arrived.
    pub latencies: Vec<u64>,
    /// CPU over the window, one reading per pid asked for (the generator's in each).
    pub cpu: Vec<CpuUse>,
}

/// Runs a flow of stamped chat messages among `endpoints` (see the module's documentation):
/// a warm-up, the measurement window, then a grace period for late arrivals; the sessions are
/// closed at the end. The CPU of each of `pids` is read over the window.
pub async fn exchange(
    endpoints: Vec<Option<Endpoint>>,
    opts: &FlowOpts,
    pids: &[Option<u32>],
) -> Outcome {
    let n = endpoints.len();
    let senders = opts.senders;
    let window = opts.window.max(1);
    let slots: Vec<Arc<Semaphore>> = (0..n).map(|_| Arc::new(Semaphore::new(window))).collect();
    let start = now_ns() + opts.warmup.as_nanos() as u64;
    let end = start + opts.duration.as_nanos() as u64;
    let sent_in_window = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    let mut listeners = Vec::new();
    for (i, endpoint) in endpoints.into_iter().enumerate() {
        let Some(Endpoint { session, to, frees }) = endpoint else {
            continue;
        };
        let mut reader = session.reader;
        // Shared with the reader, which answers the server's XEP-0198 requests at once.
        let writer = Arc::new(Mutex::new(session.writer));
        // Reader: count, measure, free the sender's slot.
        let sender_slots = frees.and_then(|s| slots.get(s)).cloned();
        let saturating = opts.rate == 0;
        let mut stop = stop_rx.clone();
        let acks = Arc::clone(&writer);
        readers.spawn(async move {
            let mut received = 0u64;
            let mut latencies = Vec::new();
            loop {
                tokio::select! {
                    frame = reader.next() => {
                        let Ok(Frame::Element(el)) = frame else { break };
                        if el.is("r", ns::SM) {
                            if let Some(a) = reader.ack()
                                && acks.lock().await.write_all(a.as_bytes()).await.is_err()
                            {
                                break;
                            }
                            continue;
                        }
                        if el.name() != "message" {
                            continue;
                        }
                        let Some(sent) = el.get_child("body", ns::CLIENT).and_then(|b| stamp_of(&b.text())) else {
                            continue;
                        };
                        let now = now_ns();
                        if (start..end).contains(&now) {
                            received += 1;
                        }
                        if (start..end).contains(&sent) {
                            latencies.push(now.saturating_sub(sent));
                        }
                        if saturating && let Some(s) = &sender_slots {
                            s.add_permits(1);
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
            (received, latencies, reader)
        });
        let Some(to) = to.filter(|_| i < senders) else {
            // Keeps the connection open without sending.
            listeners.push(writer);
            continue;
        };
        let my_slots = Arc::clone(&slots[i]);
        let sent_in_window = Arc::clone(&sent_in_window);
        let rate = opts.rate;
        writers.spawn(async move {
            let mut seq = 0u64;
            let mut buf = String::with_capacity(256);
            let push = |buf: &mut String, seq: &mut u64| {
                *seq += 1;
                let t = now_ns();
                if (start..end).contains(&t) {
                    sent_in_window.fetch_add(1, Ordering::Relaxed);
                }
                use std::fmt::Write as _;
                let _ = write!(
                    buf,
                    "<message to='{to}' type='chat' id='m{seq}'><body>t={t}</body></message>"
                );
            };
            if rate > 0 {
                // Open loop: this sender's share of the rate, phase-shifted by its index.
                let period = Duration::from_secs_f64(senders as f64 / rate as f64);
                let offset = period.mul_f64(i as f64 / senders as f64);
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                while now_ns() < end {
                    ticks.tick().await;
                    buf.clear();
                    push(&mut buf, &mut seq);
                    if writer.lock().await.write_all(buf.as_bytes()).await.is_err() {
                        break;
                    }
                }
            } else {
                while now_ns() < end {
                    let permit =
                        tokio::time::timeout(Duration::from_secs(1), my_slots.acquire()).await;
                    let Ok(Ok(permit)) = permit else { continue };
                    permit.forget();
                    let extra = my_slots.available_permits().min(MAX_BATCH - 1);
                    if extra > 0
                        && let Ok(p) = my_slots.try_acquire_many(extra as u32)
                    {
                        p.forget();
                    }
                    buf.clear();
                    for _ in 0..=extra {
                        push(&mut buf, &mut seq);
                    }
                    if writer.lock().await.write_all(buf.as_bytes()).await.is_err() {
                        break;
                    }
                }
            }
            writer
        });
    }

    let cpu = cpu_over_window_of(start, end, pids).await;
    let mut writer_halves = listeners;
    while let Some(w) = writers.join_next().await {
        if let Ok(w) = w {
            writer_halves.push(w);
        }
    }
    tokio::time::sleep(GRACE).await;
    let _ = stop_tx.send(true);
    let mut received = 0;
    let mut latencies = Vec::new();
    while let Some(r) = readers.join_next().await {
        if let Ok((n, mut l, _reader)) = r {
            received += n;
            latencies.append(&mut l);
        }
    }
    for w in writer_halves {
        let _ = w.lock().await.write_all(b"</stream:stream>").await;
    }
    Outcome {
        sent: sent_in_window.load(Ordering::Relaxed),
        received,
        latencies,
        cpu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        assert_eq!(stamp_of("t=123456789"), Some(123_456_789));
        assert_eq!(stamp_of("hello"), None);
        assert_eq!(stamp_of("t=12x"), None);
    }
}
