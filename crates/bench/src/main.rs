//! `starling-bench`: see the library's documentation and `--help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use starling_bench::cache::ScramCache;
use starling_bench::report::Report;
use starling_bench::scenario::{self, Users};
use starling_bench::xmpp::{Mech, Target, TlsMode};

/// A load generator for XMPP servers: login storm, idle hold, chat (also between two servers),
/// presence and PEP fan-out.
///
/// Users are `{prefix}{start}` … `{prefix}{start+users-1}` with one password, created beforehand
/// (for Starling: `starling user import`). The last line of output is `RESULT key=value …`.
#[derive(Parser)]
#[command(name = "starling-bench", version)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args)]
struct Common {
    /// Server host (must resolve to loopback unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    #[arg(long, default_value_t = 5222, global = true)]
    port: u16,
    /// The XMPP domain the users belong to.
    #[arg(long, default_value = "localhost", global = true)]
    domain: String,
    #[arg(long, value_enum, default_value = "starttls", global = true)]
    tls: TlsMode,
    /// Raw XMPP over TCP, or XMPP over WebSocket (RFC 7395; `ws://HOST:PORT` + --ws-path, with
    /// --tls off).
    #[arg(long, value_enum, default_value = "tcp", global = true)]
    transport: Transport,
    /// The WebSocket endpoint's path (--transport ws).
    #[arg(long, default_value = "/xmpp-websocket", global = true)]
    ws_path: String,
    #[arg(long, value_enum, default_value = "scram-sha-1", global = true)]
    mech: Mech,
    #[arg(long, default_value = "bench", global = true)]
    prefix: String,
    /// Number of the first user.
    #[arg(long, default_value_t = 1, global = true)]
    start: u64,
    /// Number of users.
    #[arg(long, default_value_t = 1000, global = true)]
    users: u64,
    #[arg(long, default_value = "pw", global = true)]
    password: String,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 100, global = true)]
    concurrency: usize,
    /// The server's pid: its CPU time (and RSS, for `idle`) are read from /proc, children included.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Where SCRAM salted passwords are kept between runs.
    #[arg(long, default_value = "target/bench/scram-cache", global = true)]
    scram_cache: PathBuf,
    /// Allow a target that is not on loopback.
    #[arg(long, global = true)]
    allow_remote: bool,
    /// Generator threads (1: a single-threaded runtime, for pinning with taskset).
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// Enable XEP-0198 stream management (with resumption) after binding, and acknowledge.
    #[arg(long, global = true)]
    sm: bool,
    /// Enable XEP-0280 message carbons after binding (every session gets copies).
    #[arg(long, global = true)]
    carbons: bool,
    /// Spread connections over this many loopback source addresses (127.0.0.1 …), to hold
    /// more than one address's ~28,000 ephemeral ports (1 to 250).
    #[arg(long, default_value_t = 1, global = true, value_parser = clap::value_parser!(u8).range(1..=250))]
    source_addrs: u8,
    /// Abort the run after this many seconds.
    #[arg(long, default_value_t = 1800, global = true)]
    time_limit: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    Tcp,
    Ws,
}

#[derive(Subcommand)]
enum Scenario {
    /// N users log in (STARTTLS, SASL, bind, roster, presence), C at a time: sessions/s, latency.
    Login {
        /// Repeat the storm this many times (sessions close between rounds).
        #[arg(long, default_value_t = 1)]
        rounds: u32,
    },
    /// Reconnect storm: SCRAM login over SASL2 (Bind2, SM, a FAST token), then every round all
    /// users drop and reconnect with XEP-0484 FAST + resumption: logins/s beside reconnects/s.
    Fast {
        /// Reconnect rounds after the first logins.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Server RSS per held idle connection (needs --server-pid).
    Idle {
        /// Seconds to wait after the logins before reading RSS.
        #[arg(long, default_value_t = 5.0)]
        settle: f64,
    },
    /// Pairs exchange chat messages: throughput, end-to-end latency, server CPU per message.
    Chat {
        /// Offered messages per second in total; 0 saturates (closed loop).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Messages in flight per sender when saturating.
        #[arg(long, default_value_t = 16)]
        window: usize,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Server-to-server chat (issue 18): USERS senders at this server (A) send chat messages to
    /// the same user names at a second server (B: --peer-port, --peer-domain), one sender to
    /// one receiver, so that all of them cross the s2s link A → B: throughput, end-to-end
    /// latency, the CPU per message of A (--server-pid) and of B (--peer-pid).
    S2s {
        /// Server B's host (must resolve to loopback unless --allow-remote).
        #[arg(long, default_value = "127.0.0.1")]
        peer_host: String,
        /// Server B's client port (same --tls as A).
        #[arg(long)]
        peer_port: u16,
        /// Server B's domain (not A's).
        #[arg(long)]
        peer_domain: String,
        /// Server B's pid: its CPU time is read from /proc, children included.
        #[arg(long)]
        peer_pid: Option<u32>,
        /// Offered messages per second in total; 0 saturates (closed loop).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Messages in flight per sender when saturating.
        #[arg(long, default_value_t = 16)]
        window: usize,
        /// Seconds every sender's first message may take to reach its receiver (the link's
        /// setup: connection, TLS, authentication) before the run gives up.
        #[arg(long, default_value_t = 60.0)]
        link_timeout: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// A hostile shape (issue 11): server CPU and RSS read from /proc around it, and the bytes
    /// the recipient receives, against the bytes sent (needs --server-pid).
    Hostile {
        #[arg(long, value_enum)]
        shape: scenario::hostile::Shape,
        /// Complete shapes: how many times the shape is sent.
        #[arg(long, default_value_t = 10)]
        repeat: u32,
        /// Seconds given to the server to read what was sent before memory is read.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
    },
    /// Fills the users' message archives (XEP-0313) straight in Starling's SQLite database, through
    /// its archive store (no server needed; the accounts must exist): rows/s, bytes on disk per
    /// archived message. See `scenario::mam`.
    MamFill {
        /// The database file (the server's `data_dir/starling.db`).
        #[arg(long)]
        db: PathBuf,
        /// Archived rows in total (two per message between two users: the sender's copy and
        /// the recipient's).
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Rows per transaction.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Each user chats with this many others.
        #[arg(long, default_value_t = 10)]
        peers: u64,
        /// The history spans this many days, ending now.
        #[arg(long, default_value_t = 365)]
        days: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// XEP-0313 queries for the last N messages of each user's archive, in a loop: latency
    /// (IQ sent to `<fin/>` received), queries/s, server CPU per query.
    MamQuery {
        /// Messages per page (RSM `<max/>`, with an empty `<before/>`: the last page).
        #[arg(long, default_value_t = 50)]
        max: usize,
        /// Queries in flight at once, each lane querying for its users in turn.
        #[arg(long, default_value_t = 1)]
        inflight: usize,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Users with R contacts change presence: broadcasts/s.
    Presence {
        /// Presence changes per second in total; 0: closed loop on the server's reflection.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Changes in flight per user in the closed loop.
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Seconds of quiet after logins (initial presence, probes).
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// PEP fan-out (XEP-0163): users with R contacts advertise tune+notify in their caps
    /// (XEP-0115) and publish to their tune node: notifications/s, publish round trip, server
    /// CPU per notification, expected against delivered notifications.
    Pep {
        /// Publishes per second in total; 0: closed loop on each publish's IQ result.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Publishes in flight per user in the closed loop.
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Seconds after the initial presences (caps queries answered, last items drained)
        /// before the first publish, at least; then until every user has seen its contacts
        /// online, nothing has arrived for a second, and the server (--server-pid) used under
        /// 10% of a core in that second.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        /// Seconds of settling at most.
        #[arg(long, default_value_t = 120.0)]
        settle_max: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Multi-user chat (XEP-0045): ROOMS rooms of OCCUPANTS occupants (each user in one room:
    /// the first ROOMS×OCCUPANTS users) join, creating the rooms as instant rooms, then post
    /// groupchat messages: deliveries/s (each post reaches every occupant, the sender too),
    /// post→delivery latency, server CPU per delivery, expected against delivered. With
    /// --join-flood N: one room of N occupants, and the time one more user's join takes.
    Muc {
        /// The MUC service.
        #[arg(long, default_value = "conference.localhost")]
        service: String,
        #[arg(long, default_value_t = 100)]
        rooms: u64,
        #[arg(long, default_value_t = 50)]
        occupants: u64,
        /// Posts per second in total; 0: closed loop on each post's reflection to its sender.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Posts in flight per occupant in the closed loop.
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// With R > 0, room 0 is noisy: its occupants post R posts/s in total, open loop,
        /// whatever the others do; the run's figures then count the other rooms only, and the
        /// noisy room's posts and refusals are reported apart (does one room slow the others?).
        #[arg(long, default_value_t = 0)]
        noisy_rate: u64,
        /// Instead of posting: fill one room with N occupants (N+1 users needed), then another
        /// user joins it --flood-rounds times: the time until its self-presence arrives.
        #[arg(long, default_value_t = 0)]
        join_flood: u64,
        #[arg(long, default_value_t = 10)]
        flood_rounds: u32,
        /// Seconds after every occupant has seen its whole room, before posting.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
        /// Seconds the joins may take in all.
        #[arg(long, default_value_t = 120.0)]
        join_max: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
}

fn seconds(name: &str, s: f64) -> anyhow::Result<Duration> {
    if !(0.0..=3600.0).contains(&s) {
        bail!("--{name} must be between 0 and 3600 seconds, not {s}");
    }
    Ok(Duration::from_secs_f64(s))
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let c = &cli.common;
    if let Scenario::MamFill {
        db,
        rows,
        batch,
        peers,
        days,
        seed,
    } = &cli.scenario
    {
        // Offline: no connection, no target.
        let opts = scenario::mam::FillOpts {
            users: Users {
                prefix: c.prefix.clone(),
                start: c.start,
                count: c.users,
            },
            db: db.clone(),
            domain: c.domain.clone(),
            rows: *rows,
            batch: *batch,
            peers: *peers,
            days: *days,
            seed: *seed,
        };
        return scenario::mam::fill(&opts).await;
    }
    if c.users == 0 || c.users > starling_bench::MAX_USERS {
        bail!(
            "--users must be between 1 and {}",
            starling_bench::MAX_USERS
        );
    }
    let addr = starling_bench::xmpp::resolve(&c.host, c.port, c.allow_remote).await?;
    let cache = ScramCache::load(Some(&c.scram_cache), &c.password)
        .with_context(|| format!("cannot read {}", c.scram_cache.display()))?;
    let mut target = Target::new(
        addr,
        c.domain.clone(),
        c.tls,
        c.mech,
        c.password.clone(),
        cache,
    )?;
    target.sm = c.sm;
    target.carbons = c.carbons;
    target.sources = c.source_addrs;
    if c.transport == Transport::Ws {
        if c.tls != TlsMode::Off {
            bail!("--transport ws speaks ws:// (no TLS): give --tls off");
        }
        if !c.ws_path.starts_with('/') {
            bail!("--ws-path must start with /");
        }
        let host = if c.host.contains(':') {
            format!("[{}]", c.host)
        } else {
            c.host.clone()
        };
        target.ws_url = Some(format!("ws://{host}:{}{}", c.port, c.ws_path));
    }
    let target = Arc::new(target);
    let users = Users {
        prefix: c.prefix.clone(),
        start: c.start,
        count: c.users,
    };
    let report = match cli.scenario {
        Scenario::Login { rounds } => {
            let opts = scenario::login::LoginOpts {
                users,
                concurrency: c.concurrency,
                rounds,
                server_pid: c.server_pid,
            };
            scenario::login::run(&target, &opts).await
        }
        Scenario::Fast { rounds } => {
            let opts = scenario::fast::FastOpts {
                users,
                concurrency: c.concurrency,
                rounds,
                server_pid: c.server_pid,
            };
            scenario::fast::run(&target, &opts).await
        }
        Scenario::Idle { settle } => {
            let Some(server_pid) = c.server_pid else {
                bail!("idle measures the server's memory: give --server-pid");
            };
            let opts = scenario::idle::IdleOpts {
                users,
                concurrency: c.concurrency,
                settle: seconds("settle", settle)?,
                server_pid,
            };
            scenario::idle::run(&target, &opts)
                .await
                .context("reading the server's memory")?
        }
        Scenario::Chat {
            rate,
            window,
            warmup,
            duration,
        } => {
            let opts = scenario::chat::ChatOpts {
                users,
                concurrency: c.concurrency,
                rate,
                window,
                warmup: seconds("warmup", warmup)?,
                duration: seconds("duration", duration)?,
                server_pid: c.server_pid,
            };
            scenario::chat::run(&target, &opts).await
        }
        Scenario::S2s {
            peer_host,
            peer_port,
            peer_domain,
            peer_pid,
            rate,
            window,
            link_timeout,
            warmup,
            duration,
        } => {
            if c.transport == Transport::Ws {
                bail!("s2s speaks raw TCP to both servers: leave --transport at tcp");
            }
            let peer_addr =
                starling_bench::xmpp::resolve(&peer_host, peer_port, c.allow_remote).await?;
            let peer_cache = ScramCache::load(Some(&c.scram_cache), &c.password)
                .with_context(|| format!("cannot read {}", c.scram_cache.display()))?;
            let mut peer = Target::new(
                peer_addr,
                peer_domain,
                c.tls,
                c.mech,
                c.password.clone(),
                peer_cache,
            )?;
            peer.sm = c.sm;
            peer.carbons = c.carbons;
            peer.sources = c.source_addrs;
            let peer = Arc::new(peer);
            let opts = scenario::s2s::S2sOpts {
                users,
                concurrency: c.concurrency,
                rate,
                window,
                warmup: seconds("warmup", warmup)?,
                duration: seconds("duration", duration)?,
                link_timeout: seconds("link-timeout", link_timeout)?,
                server_pid: c.server_pid,
                peer_pid,
            };
            let report = scenario::s2s::run(&target, &peer, &opts).await;
            if let Ok(mut cache) = peer.cache.lock()
                && let Err(e) = cache.save()
            {
                eprintln!("warning: cannot save {}: {e}", c.scram_cache.display());
            }
            report
        }
        Scenario::Hostile {
            shape,
            repeat,
            settle,
        } => {
            let Some(server_pid) = c.server_pid else {
                bail!("hostile measures the server's CPU and memory: give --server-pid");
            };
            let opts = scenario::hostile::HostileOpts {
                users,
                concurrency: c.concurrency,
                shape,
                repeat: repeat.max(1),
                settle: seconds("settle", settle)?,
                server_pid,
            };
            scenario::hostile::run(&target, &opts).await?
        }
        // Returned above, before any connection.
        Scenario::MamFill { .. } => bail!("mam-fill needs no server"),
        Scenario::MamQuery {
            max,
            inflight,
            warmup,
            duration,
        } => {
            let opts = scenario::mam::QueryOpts {
                users,
                concurrency: c.concurrency,
                max,
                inflight,
                warmup: seconds("warmup", warmup)?,
                duration: seconds("duration", duration)?,
                server_pid: c.server_pid,
            };
            scenario::mam::query(&target, &opts).await
        }
        Scenario::Presence {
            rate,
            window,
            settle,
            warmup,
            duration,
        } => {
            let opts = scenario::presence::PresenceOpts {
                users,
                concurrency: c.concurrency,
                rate,
                window,
                settle: seconds("settle", settle)?,
                warmup: seconds("warmup", warmup)?,
                duration: seconds("duration", duration)?,
                server_pid: c.server_pid,
            };
            scenario::presence::run(&target, &opts).await
        }
        Scenario::Pep {
            rate,
            window,
            settle,
            settle_max,
            warmup,
            duration,
        } => {
            let opts = scenario::pep::PepOpts {
                users,
                concurrency: c.concurrency,
                rate,
                window,
                settle: seconds("settle", settle)?,
                settle_max: seconds("settle-max", settle_max)?,
                warmup: seconds("warmup", warmup)?,
                duration: seconds("duration", duration)?,
                server_pid: c.server_pid,
            };
            scenario::pep::run(&target, &opts).await
        }
        Scenario::Muc {
            service,
            rooms,
            occupants,
            rate,
            window,
            noisy_rate,
            join_flood,
            flood_rounds,
            settle,
            join_max,
            warmup,
            duration,
        } => {
            if join_flood == 0 && (rooms == 0 || occupants == 0) {
                bail!("--rooms and --occupants must be at least 1");
            }
            let opts = scenario::muc::MucOpts {
                users,
                concurrency: c.concurrency,
                service,
                rooms,
                occupants,
                rate,
                window,
                noisy_rate,
                join_flood,
                flood_rounds,
                settle: seconds("settle", settle)?,
                join_max: seconds("join-max", join_max)?,
                warmup: seconds("warmup", warmup)?,
                duration: seconds("duration", duration)?,
                server_pid: c.server_pid,
            };
            if opts.needed() > c.users {
                bail!(
                    "muc needs {} users (rooms × occupants, or join-flood + 1): give --users {0}",
                    opts.needed()
                );
            }
            scenario::muc::run(&target, &opts).await
        }
    };
    if let Ok(mut cache) = target.cache.lock()
        && let Err(e) = cache.save()
    {
        eprintln!("warning: cannot save {}: {e}", c.scram_cache.display());
    }
    Ok(report)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = cli.common.threads.max(1);
    let limit = Duration::from_secs(cli.common.time_limit);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(async { tokio::time::timeout(limit, run(cli)).await }) {
        Ok(Ok(report)) => {
            // A closed stdout (a pipe into `head`) is not worth a panic.
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            for line in &report.lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = writeln!(out, "{}", report.result_line());
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!(
                "error: the run exceeded --time-limit ({} s)",
                limit.as_secs()
            );
            ExitCode::FAILURE
        }
    }
}
