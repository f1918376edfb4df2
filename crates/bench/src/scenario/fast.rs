//! Reconnect storm with XEP-0484 FAST: N users log in once with SCRAM over XEP-0388 SASL2
//! (Bind2 and resumable XEP-0198 stream management inline, a FAST token asked for), then, for
//! each round, every user drops its connection (as a phone losing its network does) and
//! reconnects with the token: STARTTLS, then one write (authentication, `<resume/>`, a Bind2
//! fallback) answered by one `<success/>` with `<resumed/>`. Reports SCRAM logins/s and FAST
//! reconnects/s side by side.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{CpuMark, Users, now_ns};
use crate::report::Report;
use crate::stats::Percentiles;
use crate::xmpp::{
    ConnError, FastClient, Session, Target, fast_reconnect, sasl2_first_login, user_agent_id,
};

pub struct FastOpts {
    pub users: Users,
    pub concurrency: usize,
    pub rounds: u32,
    pub server_pid: Option<u32>,
}

type Slot = Option<(Option<Session>, FastClient)>;

pub async fn run(target: &Arc<Target>, opts: &FastOpts) -> Report {
    let mut report = Report::default();
    report.field("scenario", "fast");
    report.field("users", opts.users.count);
    report.field("concurrency", opts.concurrency);
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    // The first logins: SCRAM over SASL2.
    let before = CpuMark::take(opts.server_pid);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..opts.users.count {
        let (target, permits, user) =
            (Arc::clone(target), Arc::clone(&permits), opts.users.name(i));
        tasks.spawn(async move {
            let _p = permits.acquire_owned().await;
            let t0 = now_ns();
            let ua = user_agent_id(&user, 0);
            (
                i,
                sasl2_first_login(&target, &user, &ua).await,
                now_ns() - t0,
            )
        });
    }
    let mut clients: Vec<Slot> = (0..opts.users.count).map(|_| None).collect();
    let (mut lat, mut failed, mut first_error) = (Vec::new(), 0u64, None::<ConnError>);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, Ok((s, f)), ns)) => {
                lat.push(ns);
                clients[i as usize] = Some((Some(s), f));
            }
            Ok((_, Err(e), _)) => {
                failed += 1;
                first_error.get_or_insert(e);
            }
            Err(_) => failed += 1,
        }
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let cpu = before.until(&CpuMark::take(opts.server_pid));
    let ok = lat.len() as u64;
    let scram_rate = ok as f64 / elapsed;
    let pct = Percentiles::of(lat);
    let scram_us = cpu.server_us_per(ok);
    report.line(format!(
        "SCRAM (SASL2 + Bind2 + SM + token): {ok} logged in, {failed} failed, in {elapsed:.2} s: \
         {scram_rate:.0} logins/s; {pct}; server {} µs CPU per login",
        scram_us.map_or("?".to_owned(), |u| format!("{u:.0}"))
    ));
    report.num("scram_p50_ms", Some(pct.p50.as_secs_f64() * 1e3), 2);
    report.num("scram_p99_ms", Some(pct.p99.as_secs_f64() * 1e3), 2);
    report.num("scram_server_us_per_login", scram_us, 0);
    if let Some(e) = first_error.take() {
        report.line(format!("first failure: {e}"));
    }
    report.num("scram_logins_per_s", Some(scram_rate), 1);
    let (mut last_rate, mut last_failed, mut last_resumed) = (None, 0, 0);
    let mut last_detail = None;
    for round in 1..=opts.rounds.max(1) {
        let before = CpuMark::take(opts.server_pid);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for (i, slot) in clients.iter_mut().enumerate() {
            let Some((session, mut fast)) = slot.take() else {
                continue;
            };
            let (target, permits) = (Arc::clone(target), Arc::clone(&permits));
            tasks.spawn(async move {
                let _p = permits.acquire_owned().await;
                if let Some(s) = session {
                    fast.inbound = s.handled();
                    // Dropped without </stream:stream>: the session waits to be resumed.
                    drop(s);
                }
                let t0 = now_ns();
                let r = fast_reconnect(&target, &mut fast).await;
                (i, r, fast, now_ns() - t0)
            });
        }
        let (mut lat, mut failed, mut resumed) = (Vec::new(), 0u64, 0u64);
        while let Some(done) = tasks.join_next().await {
            let Ok((i, r, fast, ns)) = done else {
                failed += 1;
                continue;
            };
            match r {
                Ok((s, was_resumed)) => {
                    lat.push(ns);
                    resumed += u64::from(was_resumed);
                    clients[i] = Some((Some(s), fast));
                }
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                    clients[i] = Some((None, fast));
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        let cpu = before.until(&CpuMark::take(opts.server_pid));
        let ok = lat.len() as u64;
        let rate = ok as f64 / elapsed;
        let pct = Percentiles::of(lat);
        let us = cpu.server_us_per(ok);
        report.line(format!(
            "round {round}: FAST {ok} reconnected ({resumed} resumed), {failed} failed, in {elapsed:.2} s: \
             {rate:.0} reconnects/s; {pct}; server {} µs CPU per reconnect",
            us.map_or("?".to_owned(), |u| format!("{u:.0}"))
        ));
        last_detail = Some((pct, us));
        if let Some(e) = first_error.take() {
            report.line(format!("round {round}: first failure: {e}"));
        }
        (last_rate, last_failed, last_resumed) = (Some(rate), failed, resumed);
    }
    report.field("fast_failed", last_failed);
    report.field("fast_resumed", last_resumed);
    report.num("fast_reconnects_per_s", last_rate, 1);
    if let Some((pct, us)) = last_detail {
        report.num("fast_p50_ms", Some(pct.p50.as_secs_f64() * 1e3), 2);
        report.num("fast_p99_ms", Some(pct.p99.as_secs_f64() * 1e3), 2);
        report.num("fast_server_us_per_reconnect", us, 0);
    }
    let mut close = JoinSet::new();
    for (s, _) in clients.into_iter().flatten() {
        if let Some(s) = s {
            close.spawn(s.close());
        }
    }
    while close.join_next().await.is_some() {}
    report
}
