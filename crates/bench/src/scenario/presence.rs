//! Presence fan-out: users whose rosters hold R mutual `both` contacts (provisioned beforehand,
//! e.g. with `starling user import --ring R`) log in and change presence; each change is broadcast
//! by the server to every available contact (RFC 6121 §4.4.2). Counted: presence stanzas received
//! from contacts in the measurement window (broadcasts/s).
//!
//! - `rate > 0`: that many presence changes per second in total, open loop;
//! - `rate = 0`: closed loop: a user sends its next change when the server has reflected the
//!   previous one to its own resource (§4.4.2: the sender's resources receive it too), with
//!   `window` changes in flight; after a second without reflection it sends anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use starling_stream::Frame;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{Users, close_all, cpu_over_window, login_all, now_ns};
use crate::report::Report;
use crate::xmpp::{LoginSteps, Target};

pub struct PresenceOpts {
    pub users: Users,
    pub concurrency: usize,
    /// Presence changes per second in total; 0 for the closed loop.
    pub rate: u64,
    pub window: usize,
    /// Quiet time after logging everyone in (initial broadcasts and probes settle).
    pub settle: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

pub async fn run(target: &Arc<Target>, opts: &PresenceOpts) -> Report {
    let mut report = Report::default();
    report.field("scenario", "presence");
    report.field("users", opts.users.count);
    report.field("rate", opts.rate);
    let steps = LoginSteps {
        roster: true,
        presence: true,
    };
    let round = login_all(target, &opts.users, opts.concurrency, steps).await;
    let contacts: usize = round
        .sessions
        .iter()
        .flatten()
        .map(|s| s.roster_items)
        .sum();
    let ok = round.latencies.len();
    report.line(format!(
        "{ok} users logged in in {:.2} s ({} failed), {:.1} contacts each on average",
        round.elapsed.as_secs_f64(),
        round.failed,
        contacts as f64 / ok.max(1) as f64
    ));
    for (user, e) in &round.failures {
        report.line(format!("{user} failed: {e}"));
    }
    report.num("contacts_avg", Some(contacts as f64 / ok.max(1) as f64), 1);
    if round.failed > 0 {
        report.field("error", "login");
        close_all(round.sessions).await;
        return report;
    }
    let start = now_ns() + (opts.settle + opts.warmup).as_nanos() as u64;
    let send_from = now_ns() + opts.settle.as_nanos() as u64;
    let end = start + opts.duration.as_nanos() as u64;
    let changes_in_window = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let n = round.sessions.len();
    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    for (i, session) in round.sessions.into_iter().enumerate() {
        let Some(session) = session else { continue };
        let own = bare(&session.jid).to_owned();
        let mut reader = session.reader;
        let mut writer = session.writer;
        let slots = Arc::new(Semaphore::new(opts.window.max(1)));
        let reflected = Arc::clone(&slots);
        let mut stop = stop_rx.clone();
        readers.spawn(async move {
            let mut broadcasts = 0u64;
            loop {
                tokio::select! {
                    frame = reader.next() => {
                        let Ok(Frame::Element(el)) = frame else { break };
                        if el.name() != "presence" || el.attr("type").is_some() {
                            continue;
                        }
                        let from = el.attr("from").map(bare).unwrap_or_default();
                        if from == own {
                            reflected.add_permits(1);
                        } else if (start..end).contains(&now_ns()) {
                            broadcasts += 1;
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
            (broadcasts, reader)
        });
        let changes_in_window = Arc::clone(&changes_in_window);
        let rate = opts.rate;
        writers.spawn(async move {
            tokio::time::sleep(Duration::from_nanos(send_from.saturating_sub(now_ns()))).await;
            let mut seq = 0u64;
            let mut ticks = (rate > 0).then(|| {
                let period = Duration::from_secs_f64(n as f64 / rate as f64);
                let offset = period.mul_f64(i as f64 / n as f64);
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            while now_ns() < end {
                match &mut ticks {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => {
                        if let Ok(Ok(p)) =
                            tokio::time::timeout(Duration::from_secs(1), slots.acquire()).await
                        {
                            p.forget();
                        }
                    }
                }
                seq += 1;
                let show = if seq.is_multiple_of(2) {
                    "away"
                } else {
                    "chat"
                };
                let stanza =
                    format!("<presence><show>{show}</show><status>s{seq}</status></presence>");
                if (start..end).contains(&now_ns()) {
                    changes_in_window.fetch_add(1, Ordering::Relaxed);
                }
                if writer.write_all(stanza.as_bytes()).await.is_err() {
                    break;
                }
            }
            writer
        });
    }
    let cpu = cpu_over_window(start, end, opts.server_pid).await;
    let mut writer_halves = Vec::new();
    while let Some(Ok(w)) = writers.join_next().await {
        writer_halves.push(w);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop_tx.send(true);
    let mut broadcasts = 0;
    while let Some(Ok((b, _reader))) = readers.join_next().await {
        broadcasts += b;
    }
    for mut w in writer_halves {
        let _ = w.write_all(b"</stream:stream>").await;
    }
    let secs = opts.duration.as_secs_f64();
    let changes = changes_in_window.load(Ordering::Relaxed);
    let per_s = broadcasts as f64 / secs;
    report.line(format!(
        "{changes} presence changes in {secs:.1} s ({:.0}/s): {broadcasts} broadcasts received, {per_s:.0}/s",
        changes as f64 / secs
    ));
    report.line(format!(
        "{}; server {} µs CPU per broadcast",
        cpu.describe(),
        cpu.server_us_per(broadcasts)
            .map_or("?".to_owned(), |u| format!("{u:.2}"))
    ));
    report.field("changes", changes);
    report.field("broadcasts", broadcasts);
    report.num("broadcasts_per_s", Some(per_s), 1);
    report.num("server_us_per_broadcast", cpu.server_us_per(broadcasts), 2);
    report.num("server_cpu_pct", cpu.server_percent(), 1);
    report.num("gen_cpu_pct", Some(cpu.generator_percent()), 1);
    report
}
