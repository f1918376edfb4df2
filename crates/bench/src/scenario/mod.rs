//! The scenarios, and what they share: logging many users in with bounded concurrency, the
//! bench-wide clock, and readings of the server process.

pub mod chat;
pub mod fast;
pub mod hostile;
pub mod idle;
pub mod login;
pub mod mam;
pub mod muc;
pub mod pep;
pub mod presence;
pub mod s2s;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::procstat;
use crate::report::Report;
use crate::xmpp::{ConnError, LoginSteps, Session, Target};

/// Nanoseconds since the bench started: the one clock for send stamps and receive times.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The users of a run: `{prefix}{start}` … `{prefix}{start + count - 1}`.
#[derive(Clone, Debug)]
pub struct Users {
    pub prefix: String,
    pub start: u64,
    pub count: u64,
}

impl Users {
    pub fn name(&self, i: u64) -> String {
        format!("{}{}", self.prefix, self.start + i)
    }
}

/// The outcome of logging a set of users in.
pub struct LoginRound {
    /// One per user, in order; `None` where the login failed.
    pub sessions: Vec<Option<Session>>,
    /// Connect-to-presence latency of each successful login, in nanoseconds.
    pub latencies: Vec<u64>,
    /// The first few failures, with the user.
    pub failures: Vec<(String, ConnError)>,
    pub failed: usize,
    pub elapsed: Duration,
}

/// Logs every user in, at most `concurrency` at a time.
pub async fn login_all(
    target: &Arc<Target>,
    users: &Users,
    concurrency: usize,
    steps: LoginSteps,
) -> LoginRound {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..users.count {
        let target = Arc::clone(target);
        let permits = Arc::clone(&permits);
        let user = users.name(i);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let t0 = now_ns();
            let result = crate::xmpp::login(&target, &user, steps).await;
            (i, user, result, now_ns() - t0)
        });
    }
    let mut round = LoginRound {
        sessions: (0..users.count).map(|_| None).collect(),
        latencies: Vec::with_capacity(users.count as usize),
        failures: Vec::new(),
        failed: 0,
        elapsed: Duration::ZERO,
    };
    while let Some(done) = tasks.join_next().await {
        let Ok((i, user, result, ns)) = done else {
            round.failed += 1;
            continue;
        };
        match result {
            Ok(session) => {
                round.latencies.push(ns);
                round.sessions[i as usize] = Some(session);
            }
            Err(e) => {
                round.failed += 1;
                if round.failures.len() < 5 {
                    round.failures.push((user, e));
                }
            }
        }
    }
    round.elapsed = started.elapsed();
    round
}

/// Logs every user in with roster and initial presence (as a chat client does) and writes the
/// round into `report`; `None` (with `error=login` reported, the sessions closed) unless every
/// login succeeded.
pub async fn login_everyone(
    target: &Arc<Target>,
    users: &Users,
    concurrency: usize,
    report: &mut Report,
) -> Option<Vec<Option<Session>>> {
    let steps = LoginSteps {
        roster: true,
        presence: true,
    };
    let round = login_all(target, users, concurrency, steps).await;
    report.line(format!(
        "{} users logged in in {:.2} s ({} failed)",
        round.latencies.len(),
        round.elapsed.as_secs_f64(),
        round.failed
    ));
    for (user, e) in &round.failures {
        report.line(format!("{user} failed: {e}"));
    }
    if round.failed > 0 {
        report.field("error", "login");
        close_all(round.sessions).await;
        return None;
    }
    Some(round.sessions)
}

/// Closes sessions concurrently.
pub async fn close_all(sessions: Vec<Option<Session>>) {
    let mut tasks = JoinSet::new();
    for s in sessions.into_iter().flatten() {
        tasks.spawn(s.close());
    }
    while tasks.join_next().await.is_some() {}
}

/// Waits for the measurement window `[start, end)` (on [`now_ns`]'s clock) to pass and returns
/// the CPU the server and the generator used in it.
pub async fn cpu_over_window(start: u64, end: u64, server_pid: Option<u32>) -> CpuUse {
    cpu_over_window_of(start, end, &[server_pid])
        .await
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// As [`cpu_over_window`], for several server processes (the two ends of a server-to-server
/// link): one reading per pid, each with the generator's CPU over the same window.
pub async fn cpu_over_window_of(start: u64, end: u64, pids: &[Option<u32>]) -> Vec<CpuUse> {
    let until = |t: u64| tokio::time::sleep(Duration::from_nanos(t.saturating_sub(now_ns())));
    until(start).await;
    let first: Vec<CpuMark> = pids.iter().map(|&p| CpuMark::take(p)).collect();
    until(end).await;
    let last: Vec<CpuMark> = pids.iter().map(|&p| CpuMark::take(p)).collect();
    first.iter().zip(&last).map(|(a, b)| a.until(b)).collect()
}

/// CPU seconds of the server (when its pid is known) and of the generator, read together.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuMark {
    pub server: Option<f64>,
    pub generator: f64,
    pub at: Option<Instant>,
}

impl CpuMark {
    pub fn take(server_pid: Option<u32>) -> CpuMark {
        CpuMark {
            server: server_pid.and_then(|p| procstat::cpu_seconds_tree(p).ok()),
            generator: procstat::own_cpu_seconds(),
            at: Some(Instant::now()),
        }
    }

    /// CPU used between `self` and `later`: (server seconds, generator seconds, wall seconds).
    pub fn until(&self, later: &CpuMark) -> CpuUse {
        let wall = match (self.at, later.at) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        CpuUse {
            server: match (self.server, later.server) {
                (Some(a), Some(b)) => Some(b - a),
                _ => None,
            },
            generator: later.generator - self.generator,
            wall,
        }
    }
}

/// CPU used over a window.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub server: Option<f64>,
    pub generator: f64,
    pub wall: f64,
}

impl CpuUse {
    /// Server CPU as a share of one core, in percent.
    pub fn server_percent(&self) -> Option<f64> {
        self.server.map(|s| 100.0 * s / self.wall.max(1e-9))
    }

    pub fn generator_percent(&self) -> f64 {
        100.0 * self.generator / self.wall.max(1e-9)
    }

    /// Server CPU microseconds per unit of work.
    pub fn server_us_per(&self, units: u64) -> Option<f64> {
        self.server.map(|s| s * 1e6 / units.max(1) as f64)
    }

    pub fn describe(&self) -> String {
        match self.server_percent() {
            Some(s) => format!(
                "server CPU {s:.1}% of a core, generator CPU {:.1}%",
                self.generator_percent()
            ),
            None => format!(
                "server CPU unknown (no --server-pid), generator CPU {:.1}%",
                self.generator_percent()
            ),
        }
    }
}
