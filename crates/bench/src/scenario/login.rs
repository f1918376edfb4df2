//! Login storm: N users connect, (STARTTLS,) authenticate, bind, fetch the roster and send
//! initial presence, at most C at a time; sessions per second and latency percentiles. The
//! sessions stay open until the whole round is done, then close; `rounds` repeats it (a server
//! that ages badly shows it in the later rounds).

use std::sync::Arc;

use super::{CpuMark, Users, close_all, login_all};
use crate::report::Report;
use crate::stats::Percentiles;
use crate::xmpp::{LoginSteps, Target};

pub struct LoginOpts {
    pub users: Users,
    pub concurrency: usize,
    pub rounds: u32,
    pub server_pid: Option<u32>,
}

pub async fn run(target: &Arc<Target>, opts: &LoginOpts) -> Report {
    let mut report = Report::default();
    report.field("scenario", "login");
    report.field("users", opts.users.count);
    report.field("concurrency", opts.concurrency);
    let steps = LoginSteps {
        roster: true,
        presence: true,
    };
    let mut rates = Vec::new();
    let mut last = None;
    for round in 1..=opts.rounds.max(1) {
        let before = CpuMark::take(opts.server_pid);
        let result = login_all(target, &opts.users, opts.concurrency, steps).await;
        let cpu = before.until(&CpuMark::take(opts.server_pid));
        let ok = result.latencies.len() as u64;
        let rate = ok as f64 / result.elapsed.as_secs_f64().max(1e-9);
        let pct = Percentiles::of(result.latencies);
        report.line(format!(
            "round {round}: {ok} logged in, {} failed, in {:.2} s: {rate:.0} sessions/s; {pct}",
            result.failed,
            result.elapsed.as_secs_f64()
        ));
        report.line(format!(
            "round {round}: {}; server {} µs CPU per login",
            cpu.describe(),
            cpu.server_us_per(ok)
                .map_or("?".to_owned(), |u| format!("{u:.0}"))
        ));
        for (user, e) in &result.failures {
            report.line(format!("round {round}: {user} failed: {e}"));
        }
        rates.push(rate);
        close_all(result.sessions).await;
        last = Some((ok, result.failed, pct, cpu));
        // Let the server notice the closes before the next round.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    if let Some((ok, failed, pct, cpu)) = last {
        report.field("ok", ok);
        report.field("failed", failed);
        report.num("sessions_per_s", rates.last().copied(), 1);
        report.num("first_sessions_per_s", rates.first().copied(), 1);
        report.num("p50_ms", Some(pct.p50.as_secs_f64() * 1e3), 3);
        report.num("p99_ms", Some(pct.p99.as_secs_f64() * 1e3), 3);
        report.num("server_us_per_login", cpu.server_us_per(ok), 1);
        report.num("server_cpu_pct", cpu.server_percent(), 1);
        report.num("gen_cpu_pct", Some(cpu.generator_percent()), 1);
    }
    if let Ok(cache) = target.cache.lock()
        && cache.misses > 0
    {
        report.line(format!(
            "note: {} logins ran PBKDF2 in the generator (salted passwords not cached yet); \
             run again for figures",
            cache.misses
        ));
        report.field("scram_cache_misses", cache.misses);
    }
    report
}
