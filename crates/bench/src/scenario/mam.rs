//! Message Archive Management (XEP-0313): filling archives fast, and querying them.
//!
//! - [`fill`] (`mam-fill`) writes a synthetic history straight into Starling's SQLite database
//!   through the server's own store ([`ArchiveStore::append`], the call the server's archive
//!   writer makes, in large transactions): no XMPP, so a million rows take seconds, not the
//!   minutes the server would need to route them. Users chat in pairs drawn at random among
//!   their `peers` nearest numbers; every exchanged message is stored twice, as the server
//!   stores a message between two local users: in the sender's archive (peer: the recipient's
//!   bare JID) and in the recipient's (peer: the sender's full JID, with the recipient's
//!   `<stanza-id/>` in the stanza). Timestamps rise evenly over the last `days` days, so live
//!   messages come after them. Bodies are pseudo-words with a long-tailed (log-uniform)
//!   vocabulary of [`VOCABULARY`] words, 1 to 15 words (≈ 45 characters) each, so the
//!   full-text index grows as it would with text. The archive's bytes on disk are the growth of
//!   the database's files (`x.db`, `x.db-wal`, `x.db-shm`) over the fill, per row.
//! - [`query`] (`mam-query`) logs the users in and asks, in a loop, for the last `max`
//!   messages of the asker's own archive (`<set><max>50</max><before/></set>`): the latency of
//!   each query runs from the IQ's send to the IQ result with `<fin/>` (every `<result/>`
//!   message read before it). `inflight` lanes query at once (1: one query at a time, the
//!   server's service time; more: throughput), each lane taking its users in turn. Before the
//!   warm-up, each user queries once, one at a time: those first reads after the server's start
//!   are reported apart (`cold_*`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use starling_proto::{Element, ns};
use starling_storage::NewArchived;
use starling_storage_sqlite::SqliteStorage;
use starling_stream::Frame;
use tokio::io::AsyncWriteExt as _;
use tokio::task::JoinSet;

use super::{Users, close_all, cpu_over_window, login_everyone, now_ns};
use crate::report::Report;
use crate::stats::Percentiles;
use crate::xmpp::{ConnError, Session, Target};

/// XEP-0313's namespace (version 2).
pub const NS_MAM: &str = "urn:xmpp:mam:2";
/// XEP-0059 result set management.
pub const NS_RSM: &str = "http://jabber.org/protocol/rsm";
/// Distinct words of the synthetic bodies.
pub const VOCABULARY: u64 = 20_000;

pub struct FillOpts {
    pub users: Users,
    /// The server's database file (`data_dir/starling.db` unless configured otherwise).
    pub db: PathBuf,
    /// The domain of the accounts.
    pub domain: String,
    /// Archived rows in total, over all archives (two per exchanged message).
    pub rows: u64,
    /// Rows per transaction.
    pub batch: usize,
    /// Each user talks with this many others (its nearest numbers).
    pub peers: u64,
    /// The history spans this many days, ending now.
    pub days: u64,
    /// Seed of the generator: the same seed writes the same history (ids included).
    pub seed: u64,
}

/// splitmix64: a small, fast, seedable generator; quality enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is negligible for small n).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An archive id as the server makes them: 12 random bytes, base64url without padding.
    fn id(&mut self) -> String {
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&self.next().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next().to_le_bytes()[..4]);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

const SYLLABLES: [&str; 32] = [
    "ka", "lo", "mi", "ne", "ta", "ri", "so", "ve", "du", "pa", "xe", "bo", "ly", "ze", "fi", "gu",
    "an", "el", "is", "or", "un", "ch", "th", "st", "qu", "wa", "yo", "be", "ce", "de", "ge", "he",
];

/// The word of a vocabulary rank: its base-32 digits as syllables (1 to 3).
fn word(rank: u64, out: &mut String) {
    let mut r = rank;
    loop {
        out.push_str(SYLLABLES[(r % 32) as usize]);
        r /= 32;
        if r == 0 {
            break;
        }
    }
}

/// A body of 1 to 15 words, ranks log-uniform over the vocabulary (frequent words are short).
fn body(rng: &mut Rng) -> String {
    let words = 1 + rng.below(15);
    let mut s = String::with_capacity(64);
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        let rank = (VOCABULARY as f64).powf(rng.unit()) as u64 - 1;
        word(rank, &mut s);
    }
    s
}

/// The database's three files: their total size in bytes (missing ones count 0).
pub fn db_bytes(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        })
        .sum()
}

/// The two archive rows of one message from `from` (sent from resource `resource`) to `to`,
/// as the server stores them (see the module docs).
fn message_rows(
    rng: &mut Rng,
    from: &str,
    to: &str,
    domain: &str,
    resource: &str,
    seq: u64,
    ts: i64,
) -> [NewArchived; 2] {
    let from_bare = format!("{from}@{domain}");
    let to_bare = format!("{to}@{domain}");
    let from_full = format!("{from_bare}/{resource}");
    let text = body(rng);
    let sent = Element::new("message", ns::CLIENT)
        .with_attr("to", to_bare.clone())
        .with_attr("type", "chat")
        .with_attr("id", format!("f{seq}"))
        .with_attr("from", from_full.clone())
        .with_child(Element::new("body", ns::CLIENT).with_text(text.clone()));
    let recipient_id = rng.id();
    let mut received = sent.clone();
    received.append_child(
        Element::new("stanza-id", ns::SID)
            .with_attr("by", to_bare.clone())
            .with_attr("id", recipient_id.clone()),
    );
    [
        NewArchived {
            localpart: from.to_owned(),
            domain: domain.to_owned(),
            id: rng.id(),
            timestamp_us: ts,
            with: to_bare,
            with_resource: String::new(),
            stanza: sent.to_xml(),
            body: Some(text.clone()),
        },
        NewArchived {
            localpart: to.to_owned(),
            domain: domain.to_owned(),
            id: recipient_id,
            timestamp_us: ts,
            with: from_bare,
            with_resource: resource.to_owned(),
            stanza: received.to_xml(),
            body: Some(text),
        },
    ]
}

/// Writes the synthetic history (see the module docs). The accounts must exist.
pub async fn fill(opts: &FillOpts) -> anyhow::Result<Report> {
    let mut report = Report::default();
    report.field("scenario", "mam-fill");
    let n = opts.users.count;
    if n < 2 {
        bail!("mam-fill needs at least two users");
    }
    if !opts.db.exists() {
        bail!(
            "{} does not exist: provision the users first (starling user import)",
            opts.db.display()
        );
    }
    let peers = opts.peers.clamp(1, n - 1);
    let batch = opts.batch.max(2);
    let bytes_before = db_bytes(&opts.db);
    let storage = SqliteStorage::open(&opts.db)
        .await
        .with_context(|| format!("opening {}", opts.db.display()))?;
    let stores = storage.stores();
    let already: u64 = {
        let mut total = 0;
        for i in 0..n {
            total += stores
                .archive
                .count(&opts.users.name(i), &opts.domain)
                .await?;
        }
        total
    };
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let span_us = (opts.days.max(1) * 86_400_000_000) as i64;
    let messages = opts.rows.div_ceil(2);
    let step_us = (span_us / messages.max(1) as i64).max(1);
    let first_us = now_us - step_us * messages as i64;
    let mut rng = Rng(opts.seed);
    let started = Instant::now();
    let mut rows = Vec::with_capacity(batch + 1);
    let mut stored = 0u64;
    let mut written = 0u64;
    for m in 0..messages {
        let a = rng.below(n);
        // A partner among the `peers` next numbers (wrapping): conversations, not noise.
        let b = (a + 1 + rng.below(peers)) % n;
        let (from, to) = if rng.below(2) == 0 { (a, b) } else { (b, a) };
        let ts = first_us + step_us * m as i64;
        let pair = message_rows(
            &mut rng,
            &opts.users.name(from),
            &opts.users.name(to),
            &opts.domain,
            "phone",
            m,
            ts,
        );
        // An odd row count stores only the sender's copy of the last message.
        let take = if written + 2 > opts.rows { 1 } else { 2 };
        rows.extend(pair.into_iter().take(take));
        written += take as u64;
        if rows.len() >= batch || m + 1 == messages {
            let expected = rows.len() as u64;
            let done = stores.archive.append(&rows).await?;
            if done != expected {
                bail!(
                    "only {done} of {expected} rows were stored: are {}{}…{}{} provisioned on {}?",
                    opts.users.prefix,
                    opts.users.start,
                    opts.users.prefix,
                    opts.users.start + n - 1,
                    opts.domain
                );
            }
            stored += done;
            rows.clear();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut total = 0;
    for i in 0..n {
        total += stores
            .archive
            .count(&opts.users.name(i), &opts.domain)
            .await?;
    }
    storage.close().await;
    // Closing the last connection checkpoints the WAL into the file (and removes it).
    let bytes_after = db_bytes(&opts.db);
    let per_row = bytes_after.saturating_sub(bytes_before) as f64 / stored.max(1) as f64;
    report.line(format!(
        "{stored} rows ({messages} messages between {n} users, each with {peers} peers, over {} \
         days) appended in {secs:.1} s: {:.0} rows/s; archives now hold {total} rows ({already} \
         before)",
        opts.days,
        stored as f64 / secs.max(1e-9)
    ));
    report.line(format!(
        "database files: {bytes_before} bytes before, {bytes_after} after: {per_row:.0} bytes \
         per archived row (rows, indexes and full-text index); {:.0} bytes per row over the \
         whole database",
        bytes_after as f64 / total.max(1) as f64
    ));
    report.field("rows", stored);
    report.field("archive_rows", total);
    report.num("rows_per_s", Some(stored as f64 / secs.max(1e-9)), 0);
    report.num("fill_s", Some(secs), 1);
    report.field("db_bytes", bytes_after);
    report.num("bytes_per_row", Some(per_row), 1);
    report.num(
        "db_bytes_per_row",
        Some(bytes_after as f64 / total.max(1) as f64),
        1,
    );
    Ok(report)
}

pub struct QueryOpts {
    pub users: Users,
    pub concurrency: usize,
    /// Messages asked for per query (`<max/>`).
    pub max: usize,
    /// Queries in flight at once (lanes).
    pub inflight: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

/// What one lane measured in the window.
#[derive(Default)]
struct LaneResult {
    latencies: Vec<u64>,
    /// Result messages of the queries in the window.
    results: u64,
    /// Queries whose page held fewer than `max` messages.
    short: u64,
    errors: u64,
    first_error: Option<String>,
}

/// One query on `session`: the result messages until the IQ result with `<fin/>`.
async fn one_query(session: &mut Session, id: &str, max: usize) -> Result<u64, ConnError> {
    let iq = format!(
        "<iq type='set' id='{id}'><query xmlns='{NS_MAM}' queryid='{id}'>\
         <set xmlns='{NS_RSM}'><max>{max}</max><before/></set></query></iq>"
    );
    session.writer.write_all(iq.as_bytes()).await?;
    let mut results = 0;
    loop {
        let el = match session.reader.next().await? {
            Frame::Element(el) => el,
            Frame::Close => return Err(ConnError::Closed),
            Frame::Header(_) => continue,
        };
        if el.is("r", ns::SM) {
            if let Some(a) = session.reader.ack() {
                session.writer.write_all(a.as_bytes()).await?;
            }
            continue;
        }
        match el.name() {
            "message"
                if el
                    .get_child("result", NS_MAM)
                    .is_some_and(|r| r.attr("queryid") == Some(id)) =>
            {
                results += 1;
            }
            "iq" if el.attr("id") == Some(id) => {
                if el.attr("type") == Some("result") && el.has_child("fin", NS_MAM) {
                    return Ok(results);
                }
                return Err(ConnError::Unexpected {
                    during: "querying the archive",
                    got: el.to_xml(),
                });
            }
            _ => {}
        }
    }
}

pub async fn query(target: &Arc<Target>, opts: &QueryOpts) -> Report {
    let mut report = Report::default();
    report.field("scenario", "mam-query");
    report.field("users", opts.users.count);
    report.field("max", opts.max);
    report.field("inflight", opts.inflight);
    let Some(logged_in) = login_everyone(target, &opts.users, opts.concurrency, &mut report).await
    else {
        return report;
    };
    // A first pass, one query per user and one at a time, before the warm-up and the window:
    // the first read of each archive after the server started (its caches cold) is reported
    // apart, and the window measures archives that were read before.
    let mut sessions: Vec<Session> = logged_in.into_iter().flatten().collect();
    let mut cold = Vec::with_capacity(sessions.len());
    for (i, s) in sessions.iter_mut().enumerate() {
        let t0 = now_ns();
        match one_query(s, &format!("cold{i}"), opts.max).await {
            Ok(_) => cold.push(now_ns().saturating_sub(t0)),
            Err(e) => {
                report.line(format!(
                    "first query of {} failed: {e}",
                    opts.users.name(i as u64)
                ));
                report.field("error", "query");
                close_all(sessions.into_iter().map(Some).collect()).await;
                return report;
            }
        }
    }
    let cold = Percentiles::of(cold);
    report.line(format!("first query of each user (cold): {cold}"));
    let lanes = opts.inflight.clamp(1, sessions.len().max(1));
    let mut per_lane: Vec<Vec<Session>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, s) in sessions.into_iter().enumerate() {
        per_lane[i % lanes].push(s);
    }
    let start = now_ns() + opts.warmup.as_nanos() as u64;
    let end = start + opts.duration.as_nanos() as u64;
    let max = opts.max;
    let mut tasks = JoinSet::new();
    for (lane, mut sessions) in per_lane.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut out = LaneResult::default();
            let mut n = 0u64;
            'run: while now_ns() < end {
                for s in &mut sessions {
                    if now_ns() >= end {
                        break 'run;
                    }
                    n += 1;
                    let id = format!("mam{lane}x{n}");
                    let t0 = now_ns();
                    let outcome = one_query(s, &id, max).await;
                    let counted = (start..end).contains(&t0);
                    match outcome {
                        Ok(results) => {
                            if counted {
                                out.latencies.push(now_ns().saturating_sub(t0));
                                out.results += results;
                                if results < max as u64 {
                                    out.short += 1;
                                }
                            }
                        }
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert_with(|| e.to_string());
                            // The stream is in an unknown state: this lane stops.
                            break 'run;
                        }
                    }
                }
            }
            (out, sessions)
        });
    }
    let cpu = cpu_over_window(start, end, opts.server_pid).await;
    let mut all = LaneResult::default();
    let mut sessions = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let Ok((lane, s)) = done else {
            all.errors += 1;
            continue;
        };
        all.latencies.extend(lane.latencies);
        all.results += lane.results;
        all.short += lane.short;
        all.errors += lane.errors;
        if all.first_error.is_none() {
            all.first_error = lane.first_error;
        }
        sessions.extend(s.into_iter().map(Some));
    }
    close_all(sessions).await;
    let queries = all.latencies.len() as u64;
    let secs = opts.duration.as_secs_f64();
    let pct = Percentiles::of(all.latencies);
    report.line(format!(
        "{queries} queries for the last {max} messages in {secs:.1} s, {lanes} in flight: {:.0} \
         queries/s, {:.1} results per query ({} short pages), {} errors",
        queries as f64 / secs,
        all.results as f64 / queries.max(1) as f64,
        all.short,
        all.errors
    ));
    if let Some(e) = &all.first_error {
        report.line(format!("first error: {e}"));
    }
    report.line(format!("latency: {pct}"));
    report.line(format!(
        "{}; server {} µs CPU per query",
        cpu.describe(),
        cpu.server_us_per(queries)
            .map_or("?".to_owned(), |u| format!("{u:.1}"))
    ));
    report.field("queries", queries);
    report.field("errors", all.errors);
    report.field("short_pages", all.short);
    report.num(
        "results_per_query",
        Some(all.results as f64 / queries.max(1) as f64),
        1,
    );
    report.num("queries_per_s", Some(queries as f64 / secs), 1);
    report.num("p50_ms", Some(pct.p50.as_secs_f64() * 1e3), 3);
    report.num("p99_ms", Some(pct.p99.as_secs_f64() * 1e3), 3);
    report.num("p999_ms", Some(pct.p999.as_secs_f64() * 1e3), 3);
    report.num("max_ms", Some(pct.max.as_secs_f64() * 1e3), 3);
    report.num("cold_p50_ms", Some(cold.p50.as_secs_f64() * 1e3), 3);
    report.num("cold_max_ms", Some(cold.max.as_secs_f64() * 1e3), 3);
    report.num("server_us_per_query", cpu.server_us_per(queries), 1);
    report.num("server_cpu_pct", cpu.server_percent(), 1);
    report.num("gen_cpu_pct", Some(cpu.generator_percent()), 1);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_bodies() {
        let mut w = String::new();
        word(0, &mut w);
        assert_eq!(w, "ka");
        w.clear();
        word(32 * 2 + 1, &mut w);
        assert_eq!(w, "lomi");
        let mut rng = Rng(7);
        for _ in 0..1000 {
            let b = body(&mut rng);
            let n = b.split(' ').count();
            assert!((1..=15).contains(&n), "{b}");
        }
    }

    #[test]
    fn ids_look_like_the_servers() {
        let mut rng = Rng(1);
        let id = rng.id();
        assert_eq!(id.len(), 16);
        assert_ne!(id, rng.id());
    }

    #[test]
    fn a_message_is_archived_twice() {
        let mut rng = Rng(3);
        let [sent, received] = message_rows(&mut rng, "a1", "a2", "localhost", "phone", 9, 5);
        assert_eq!(
            (sent.localpart.as_str(), sent.with.as_str()),
            ("a1", "a2@localhost")
        );
        assert_eq!(
            (
                received.localpart.as_str(),
                received.with.as_str(),
                received.with_resource.as_str()
            ),
            ("a2", "a1@localhost", "phone")
        );
        assert!(received.stanza.contains(&received.id));
        assert!(!sent.stanza.contains("stanza-id"));
        assert_eq!(sent.body, received.body);
    }
}
