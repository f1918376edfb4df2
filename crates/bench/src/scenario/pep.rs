//! PEP fan-out (XEP-0163): users whose rosters hold R mutual `both` contacts (provisioned as for
//! the presence scenario) come online with XEP-0115 entity capabilities that advertise
//! `http://jabber.org/protocol/tune+notify`, then publish to their own tune node. The server
//! sends each item to every available contact whose caps ask for it and to the publisher's own
//! resources (XEP-0163 §4). Counted: the `<message><event/></message>` notifications received
//! in the measurement window (notifications/s), the publish IQ's round trip, the time from a
//! publish to each of its notifications, and expected notifications against delivered ones.
//!
//! - Caps: every client advertises the same `ver` ([`Caps::ver`], XEP-0115 §5.1) and answers
//!   the server's disco#info query for `node#ver` (or without a node) with exactly that info:
//!   servers resolve a hash by asking one or several advertisers, from the server's JID
//!   (ejabberd, Starling) or from the contact's (Prosody). Any other IQ get/set is answered
//!   `<service-unavailable/>` so that nothing waits on the client.
//! - Once logged in, before its presence, each user publishes one seed item, retried after an
//!   error (up to 10 times), a few users at a time: the first publish creates the node
//!   (XEP-0163 §3), and a server's node creations should not weigh on the window (ejabberd's
//!   concurrent creations abort each other's Mnesia transactions: `seed_retries`). Items of
//!   seeds carry the stamp 0 and their notifications are not counted.
//! - The initial presences go out at the pace of the logins (as in the presence scenario, where
//!   each login ends with its presence). Then the scenario settles: at least `settle`, until
//!   every user has received the presence of all its contacts and then nothing for a second,
//!   while the server used under 10% of a core when its pid is known; at most `settle_max`
//!   (the presence burst, the caps queries, and last-item notifications sent at presence time,
//!   counted apart as `early`). Then every user publishes:
//!   `rate > 0`: that many publishes per second in total, open loop, spread evenly;
//!   `rate = 0`: closed loop: a user publishes its next item when the IQ result of the
//!   previous one arrives, `window` publishes in flight (after 30 s without one it sends
//!   anyway).
//! - Every item carries `<title>NONCE/T</title>`: this run's nonce and its send time on the
//!   bench's clock. Notifications of this run only are counted (items left on the nodes by an
//!   earlier run come back as last items with another nonce: `stale`); those of publishes
//!   sent in the window and received before the end (every publish answered, at most 60 s
//!   after the window, then 2 s more) are `delivered`, against
//!   `expected` = Σ over those publishes that the server accepted of the publisher's roster
//!   size, plus one per publish when the server notifies the publisher's own resource (seen
//!   at least once). Refused publishes in the window are `publish_errors`.
//! - A notification received twice (same publisher, same item: ejabberd sends the publisher's
//!   own notification to its bare and to its full JID) counts once, the copy as a `duplicate`.
//! - Items are published with the id `current` (XEP-0060's recommended ItemID for singleton
//!   nodes, as clients publish PEP data), so each node holds one item on every server whatever
//!   its `max_items`.
//!
//! Latencies go into fixed-size histograms: memory stays constant however long the run.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha1::Digest as _;
use starling_proto::{Element, ns};
use starling_stream::Frame;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::JoinSet;

use super::{CpuMark, Users, close_all, cpu_over_window, login_all, now_ns};
use crate::report::Report;
use crate::stats::Histogram;
use crate::xmpp::{LoginSteps, Session, Target};

/// XEP-0060's namespaces.
pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// XEP-0118 User Tune: the node and its payload's namespace.
pub const NS_TUNE: &str = "http://jabber.org/protocol/tune";
/// The caps node of the bench's clients (XEP-0115 §4: a URI identifying the software).
pub const CAPS_NODE: &str = "https://starling.invalid/bench";
/// The item id of every publish.
const ITEM_ID: &str = "current";

pub struct PepOpts {
    pub users: Users,
    pub concurrency: usize,
    /// Publishes per second in total; 0 for the closed loop.
    pub rate: u64,
    /// Publishes in flight per user in the closed loop.
    pub window: usize,
    /// Wait after the initial presences (caps resolved, last items drained): at least this…
    pub settle: Duration,
    /// … and then until no client has received anything for a second, up to this.
    pub settle_max: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

/// After the window, publishes still unanswered are waited for this long at most…
const DRAIN_MAX: Duration = Duration::from_secs(60);
/// … and the notifications of the window's publishes still count if they arrive this long
/// after that.
const GRACE: Duration = Duration::from_secs(2);
/// Silence that tells the server has settled after the initial presences…
const QUIET: Duration = Duration::from_secs(1);
/// … with less CPU than this (percent of a core) over the last such while.
const IDLE_PERCENT: f64 = 10.0;

/// The phases on [`now_ns`]'s clock, set when the server has settled: publishing from
/// `send_from`, the measurement window `[start, end)`. Unset, all are `u64::MAX`.
struct Timeline {
    send_from: AtomicU64,
    start: AtomicU64,
    end: AtomicU64,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            send_from: AtomicU64::new(u64::MAX),
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
        }
    }
}

impl Timeline {
    fn set(&self, send_from: u64, start: u64, end: u64) {
        self.end.store(end, Ordering::Relaxed);
        self.start.store(start, Ordering::Relaxed);
        self.send_from.store(send_from, Ordering::Relaxed);
    }

    /// `(send_from, start, end)`.
    fn get(&self) -> (u64, u64, u64) {
        (
            self.send_from.load(Ordering::Relaxed),
            self.start.load(Ordering::Relaxed),
            self.end.load(Ordering::Relaxed),
        )
    }
}

/// In the closed loop, a user publishes anyway after this long without a reply (which the
/// server owes: RFC 6120 §8.2.3; a saturated server is not sent more than it answers).
const NO_REPLY_WAIT: Duration = Duration::from_secs(30);
/// The seed publish: its stamp (outside any window), attempts, the wait for each reply, and
/// how many users seed at once (ejabberd's node creations abort each other when many run at
/// once: 1,000 at once left most users without a node after ten attempts).
const SEED_STAMP: u64 = 0;
const SEED_TRIES: u32 = 10;
const SEED_WAIT: Duration = Duration::from_secs(5);
const SEED_CONCURRENCY: usize = 4;

/// How one user's seed publish went.
#[derive(Default)]
struct Seed {
    created: bool,
    retries: u64,
}

/// What a client says it is and supports (XEP-0030 disco#info), from which its caps `ver`
/// is computed.
#[derive(Clone, Debug)]
pub struct Caps {
    /// (category, type, xml:lang, name) of each identity.
    pub identities: Vec<[String; 4]>,
    pub features: Vec<String>,
}

impl Caps {
    /// The bench's client: a pc client that wants tune notifications.
    pub fn bench() -> Caps {
        Caps {
            identities: vec![[
                "client".to_owned(),
                "pc".to_owned(),
                String::new(),
                "starling-bench".to_owned(),
            ]],
            features: [
                ns::CAPS,
                ns::DISCO_INFO,
                NS_TUNE,
                "http://jabber.org/protocol/tune+notify",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }

    /// The verification string of XEP-0115 §5.1 (no extended forms): the identities sorted,
    /// each `category/type/lang/name<`, then the features sorted, each `var<`.
    pub fn verification_string(&self) -> String {
        let mut identities = self.identities.clone();
        identities.sort();
        let mut features = self.features.clone();
        features.sort();
        let mut s = String::new();
        for [category, kind, lang, name] in &identities {
            s.push_str(&format!("{category}/{kind}/{lang}/{name}<"));
        }
        for f in &features {
            s.push_str(f);
            s.push('<');
        }
        s
    }

    /// The `ver` with `hash='sha-1'` (§5.1 steps 9–10): base64 of the SHA-1 of the string.
    pub fn ver(&self) -> String {
        let digest = sha1::Sha1::digest(self.verification_string().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(digest)
    }

    /// The disco#info `<query/>` of this client, with `node` when the query named one.
    pub fn query(&self, node: Option<&str>) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO).with_opt_attr("node", node);
        for [category, kind, lang, name] in &self.identities {
            let mut id = Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", category.as_str())
                .with_attr("type", kind.as_str())
                .with_attr("name", name.as_str());
            if !lang.is_empty() {
                id.set_attr_ns(ns::XML, "lang", lang.as_str());
            }
            q.append_child(id);
        }
        for f in &self.features {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f.as_str()));
        }
        q
    }

    /// The initial presence advertising these caps (XEP-0115 §3).
    pub fn presence(&self) -> String {
        format!(
            "<presence><c xmlns='{}' hash='sha-1' node='{CAPS_NODE}' ver='{}'/></presence>",
            ns::CAPS,
            self.ver()
        )
    }
}

/// The reply a client owes to an IQ get or set from the server (RFC 6120 §8.2.3): the caps
/// disco#info for a disco#info query naming no node or `caps_node` (`node#ver`), and
/// `<service-unavailable/>` for anything else. `None` for results, errors and other stanzas.
pub fn answer(iq: &Element, caps: &Caps, caps_node: &str) -> Option<(String, bool)> {
    if iq.name() != "iq" || !matches!(iq.attr("type"), Some("get" | "set")) {
        return None;
    }
    let mut reply = Element::new("iq", ns::CLIENT)
        .with_opt_attr("to", iq.attr("from"))
        .with_attr("id", iq.attr("id").unwrap_or_default());
    let disco = iq.get_child("query", ns::DISCO_INFO).filter(|q| {
        iq.attr("type") == Some("get") && q.attr("node").is_none_or(|n| n == caps_node)
    });
    let is_disco = disco.is_some();
    match disco {
        Some(q) => {
            reply.set_attr("type", "result");
            reply.append_child(caps.query(q.attr("node")));
        }
        None => {
            reply.set_attr("type", "error");
            reply.append_child(
                Element::new("error", ns::CLIENT)
                    .with_attr("type", "cancel")
                    .with_child(Element::new("service-unavailable", ns::STANZAS)),
            );
        }
    }
    let mut out = String::new();
    reply.write_in_stream(ns::CLIENT, &mut out);
    Some((out, is_disco))
}

/// The send time in an item's `<title>NONCE/T</title>`, if it is this run's.
pub fn stamp_of(title: &str, nonce: &str) -> Option<u64> {
    title.strip_prefix(nonce)?.strip_prefix('/')?.parse().ok()
}

/// The send time in a publish IQ's id `pSEQ.T`.
pub fn iq_stamp(id: &str) -> Option<u64> {
    id.strip_prefix('p')?.split_once('.')?.1.parse().ok()
}

/// The titles of the tune items in a notification, if it is one.
fn notification_titles(el: &Element) -> Option<impl Iterator<Item = String> + '_> {
    if el.name() != "message" {
        return None;
    }
    let items = el
        .get_child("event", NS_PUBSUB_EVENT)?
        .children()
        .filter(|i| i.is("items", NS_PUBSUB_EVENT) && i.attr("node") == Some(NS_TUNE));
    Some(items.flat_map(|i| {
        i.children()
            .filter(|it| it.is("item", NS_PUBSUB_EVENT))
            .map(|it| {
                it.get_child("tune", NS_TUNE)
                    .and_then(|t| t.get_child("title", NS_TUNE))
                    .map(Element::text)
                    .unwrap_or_default()
            })
    }))
}

fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// Notifications remembered per client to tell duplicates.
const RECENT: usize = 256;

/// The last few keys seen, to tell a duplicate from a new one in constant memory.
struct Recent {
    order: VecDeque<u64>,
    seen: HashSet<u64>,
    cap: usize,
}

impl Recent {
    fn new(cap: usize) -> Recent {
        Recent {
            order: VecDeque::with_capacity(cap + 1),
            seen: HashSet::with_capacity(cap + 1),
            cap,
        }
    }

    /// Whether `key` is new among the last `cap` keys (it is then remembered, and the oldest
    /// forgotten).
    fn insert(&mut self, key: u64) -> bool {
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// A notification's identity: its publisher and its item's send time.
fn dedup_key(from: &str, sent: u64) -> u64 {
    use std::hash::{BuildHasher as _, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one((from, sent))
}

/// What one client's reader counted.
#[derive(Default)]
struct Counts {
    /// This run's notifications that arrived in the window.
    in_window: u64,
    /// Notifications of publishes sent in the window, from contacts and from the own account.
    delivered_contacts: u64,
    delivered_own: u64,
    /// Notifications before the publishing began (last items sent at presence time, seeds).
    early: u64,
    /// Notifications after it carrying another run's items.
    stale: u64,
    /// Second copies of a notification already received (same publisher, same item).
    duplicates: u64,
    /// Disco#info queries answered, other IQs refused.
    disco: u64,
    refused: u64,
    /// Publishes sent in the window that the server refused.
    publish_errors: u64,
    /// The notifications those would have sent to contacts.
    refused_contacts: u64,
    first_error: Option<String>,
    /// The client's roster size.
    roster: u64,
}

/// A publish of one tune item, `<title>NONCE/T</title>`, with the id `pSEQ.T`.
fn publish_stanza(buf: &mut String, nonce: &str, seq: u64, t: u64) {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(
        buf,
        "<iq type='set' id='p{seq}.{t}'><pubsub xmlns='{NS_PUBSUB}'><publish node='{NS_TUNE}'>\
         <item id='{ITEM_ID}'><tune xmlns='{NS_TUNE}'><title>{nonce}/{t}</title></tune></item>\
         </publish></pubsub></iq>"
    );
}

/// One user's seed: a publish (which creates the node, XEP-0163 §3), retried after an error
/// or a silence, before the user's presence; what else arrives meanwhile is answered (IQs,
/// stream management requests) or dropped.
async fn seed(session: &mut Session, caps: &Caps, caps_node: &str, nonce: &str, i: usize) -> Seed {
    let mut seed = Seed::default();
    let mut buf = String::new();
    let id = format!("p0.{SEED_STAMP}");
    for attempt in 0..SEED_TRIES {
        publish_stanza(&mut buf, nonce, 0, SEED_STAMP);
        if session.writer.write_all(buf.as_bytes()).await.is_err() {
            return seed;
        }
        let reply = tokio::time::timeout(SEED_WAIT, async {
            loop {
                let Ok(Frame::Element(el)) = session.reader.next().await else {
                    return None;
                };
                let out = if el.is("r", ns::SM) {
                    session.reader.ack()
                } else if el.name() == "iq" && el.attr("id") == Some(id.as_str()) {
                    return Some(el.attr("type") == Some("result"));
                } else {
                    answer(&el, caps, caps_node).map(|(reply, _)| reply)
                };
                if let Some(out) = out
                    && session.writer.write_all(out.as_bytes()).await.is_err()
                {
                    return None;
                }
            }
        })
        .await;
        match reply {
            Ok(Some(true)) => {
                seed.created = true;
                return seed;
            }
            Ok(None) => return seed,
            Ok(Some(false)) | Err(_) => {}
        }
        seed.retries += 1;
        // Apart from the others retrying too.
        let backoff = 20 + (i as u64 * 37 + u64::from(attempt) * 101) % 200;
        tokio::time::sleep(Duration::from_millis(backoff)).await;
    }
    seed
}

/// Seeds every user's node, [`SEED_CONCURRENCY`] users at a time; the sessions come back in
/// their order.
async fn seed_all(
    sessions: Vec<Option<Session>>,
    caps: &Arc<Caps>,
    caps_node: &Arc<str>,
    nonce: &Arc<str>,
) -> (Vec<Option<Session>>, Vec<Seed>) {
    let permits = Arc::new(Semaphore::new(SEED_CONCURRENCY));
    let mut tasks = JoinSet::new();
    let n = sessions.len();
    for (i, session) in sessions.into_iter().enumerate() {
        let Some(mut session) = session else { continue };
        let (caps, caps_node, nonce) = (Arc::clone(caps), Arc::clone(caps_node), Arc::clone(nonce));
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let s = seed(&mut session, &caps, &caps_node, &nonce, i).await;
            (i, session, s)
        });
    }
    let mut out: Vec<Option<Session>> = (0..n).map(|_| None).collect();
    let mut seeds = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, session, s)) = done {
            out[i] = Some(session);
            seeds.push(s);
        }
    }
    (out, seeds)
}

/// A run's nonce: the wall clock's nanoseconds and the pid, in hex.
fn nonce() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}", t ^ (u64::from(std::process::id()) << 40))
}

pub async fn run(target: &Arc<Target>, opts: &PepOpts) -> Report {
    let mut report = Report::default();
    report.field("scenario", "pep");
    report.field("users", opts.users.count);
    report.field("rate", opts.rate);
    // Roster fetched (the server then knows the client is interested in presence); the
    // initial presence, with caps, is sent once the reader runs to answer the caps query.
    let steps = LoginSteps {
        roster: true,
        presence: false,
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

    let caps = Arc::new(Caps::bench());
    let caps_node: Arc<str> = format!("{CAPS_NODE}#{}", caps.ver()).into();
    let presence = caps.presence();
    let nonce: Arc<str> = nonce().into();
    let seeding = Instant::now();
    let login_time = round.elapsed;
    let (sessions, seeds) = seed_all(round.sessions, &caps, &caps_node, &nonce).await;
    let seed_retries: u64 = seeds.iter().map(|s| s.retries).sum();
    let unseeded = seeds.iter().filter(|s| !s.created).count();
    report.line(format!(
        "{} nodes seeded in {:.2} s, {SEED_CONCURRENCY} at a time ({seed_retries} retries), \
         {unseeded} users without a node",
        seeds.len() - unseeded,
        seeding.elapsed().as_secs_f64()
    ));
    // Set once the server has settled; until then every notification is early.
    let timeline = Arc::new(Timeline::default());
    let last_rx = Arc::new(AtomicU64::new(now_ns()));
    // Users who have received the presence of every contact.
    let all_online = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = watch::channel(false);
    let publishes = Arc::new(AtomicU64::new(0));
    // Publishes after the seeds, sent and answered, whenever.
    let (sent, replied) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    // Σ of the publishers' roster sizes over the publishes in the window.
    let expected_contacts = Arc::new(AtomicU64::new(0));
    let publish_rtt = Arc::new(Histogram::default());
    let notify_latency = Arc::new(Histogram::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let n = sessions.len();
    // The initial presences go out at the pace the logins went (the presence scenario's
    // pace, where each login ends with its presence): all at once, 1,000 users × 50 contacts
    // queued ejabberd's sessions behind its roster table until its overload guard killed 746
    // of them (on a busy machine).
    let presence_gap = login_time.div_f64(n.max(1) as f64);
    let ramp = tokio::time::Instant::now();
    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let Some(session) = session else { continue };
        let own = bare(&session.jid).to_owned();
        let roster = session.roster_items as u64;
        let title_nonce = Arc::clone(&nonce);
        let mut reader = session.reader;
        let writer = Arc::new(Mutex::new(session.writer));
        let slots = Arc::new(Semaphore::new(opts.window.max(1)));
        let replies = Arc::clone(&slots);
        let mut stop = stop_rx.clone();
        let (caps, caps_node, nonce) = (
            Arc::clone(&caps),
            Arc::clone(&caps_node),
            Arc::clone(&nonce),
        );
        let (publish_rtt, notify_latency) = (Arc::clone(&publish_rtt), Arc::clone(&notify_latency));
        let out = Arc::clone(&writer);
        let presence = presence.clone();
        let presence_at = ramp + presence_gap.mul_f64(i as f64);
        let (timeline_r, last_rx) = (Arc::clone(&timeline), Arc::clone(&last_rx));
        let all_online = Arc::clone(&all_online);
        let replied = Arc::clone(&replied);
        readers.spawn(async move {
            // Contacts seen available, until all of them have been.
            let mut online: Option<HashSet<String>> = Some(HashSet::new());
            if roster == 0 {
                online = None;
                all_online.fetch_add(1, Ordering::Relaxed);
            }
            let mut c = Counts {
                roster,
                ..Counts::default()
            };
            let mut recent = Recent::new(RECENT);
            tokio::time::sleep_until(presence_at).await;
            if out
                .lock()
                .await
                .write_all(presence.as_bytes())
                .await
                .is_err()
            {
                return c;
            }
            loop {
                let el = tokio::select! {
                    frame = reader.next() => match frame {
                        Ok(Frame::Element(el)) => el,
                        _ => break,
                    },
                    _ = stop.changed() => break,
                };
                let now = now_ns();
                last_rx.store(now, Ordering::Relaxed);
                if el.is("r", ns::SM) {
                    if let Some(a) = reader.ack()
                        && out.lock().await.write_all(a.as_bytes()).await.is_err()
                    {
                        break;
                    }
                    continue;
                }
                if el.name() == "presence" {
                    if el.attr("type").is_none()
                        && let Some(seen) = &mut online
                        && let Some(from) = el.attr("from").map(bare)
                        && from != own
                    {
                        seen.insert(from.to_owned());
                        if seen.len() as u64 >= roster {
                            online = None;
                            all_online.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    continue;
                }
                let (send_from, start, end) = timeline_r.get();
                if let Some(titles) = notification_titles(&el) {
                    let from = el.attr("from").map(bare).unwrap_or_default();
                    let from_own = from == own;
                    for title in titles {
                        if now < send_from {
                            c.early += 1;
                            continue;
                        }
                        let Some(sent) = stamp_of(&title, &nonce) else {
                            c.stale += 1;
                            continue;
                        };
                        if sent == SEED_STAMP {
                            c.early += 1;
                            continue;
                        }
                        if !recent.insert(dedup_key(from, sent)) {
                            c.duplicates += 1;
                            continue;
                        }
                        if (start..end).contains(&now) {
                            c.in_window += 1;
                        }
                        if (start..end).contains(&sent) {
                            notify_latency.record(now.saturating_sub(sent));
                            if from_own {
                                c.delivered_own += 1;
                            } else {
                                c.delivered_contacts += 1;
                            }
                        }
                    }
                    continue;
                }
                if el.name() != "iq" {
                    continue;
                }
                if let Some((reply, disco)) = answer(&el, &caps, &caps_node) {
                    if disco {
                        c.disco += 1;
                    } else {
                        c.refused += 1;
                    }
                    if out.lock().await.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                    continue;
                }
                let Some(sent) = el.attr("id").and_then(iq_stamp) else {
                    continue;
                };
                let ok = el.attr("type") == Some("result");
                if !ok && c.first_error.is_none() {
                    // The condition, not the echoed payload.
                    let error = el.get_child("error", ns::CLIENT).unwrap_or(&el);
                    c.first_error = Some(error.to_xml());
                }
                if sent == SEED_STAMP {
                    // A seed's reply that came after its wait.
                    continue;
                }
                if (start..end).contains(&sent) {
                    if ok {
                        publish_rtt.record(now.saturating_sub(sent));
                    } else {
                        c.publish_errors += 1;
                    }
                }
                replied.fetch_add(1, Ordering::Relaxed);
                replies.add_permits(1);
            }
            c
        });
        let publishes = Arc::clone(&publishes);
        let expected_contacts = Arc::clone(&expected_contacts);
        let sent = Arc::clone(&sent);
        let rate = opts.rate;
        let timeline = Arc::clone(&timeline);
        let mut go = go_rx.clone();
        writers.spawn(async move {
            let mut buf = String::with_capacity(512);
            if go.wait_for(|go| *go).await.is_err() {
                return writer;
            }
            let (_, start, end) = timeline.get();
            let mut ticks = (rate > 0).then(|| {
                let period = Duration::from_secs_f64(n as f64 / rate as f64);
                let offset = period.mul_f64(i as f64 / n as f64);
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            let mut seq = 0u64;
            while now_ns() < end {
                match &mut ticks {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => {
                        let left = Duration::from_nanos(end.saturating_sub(now_ns()));
                        if let Ok(Ok(p)) =
                            tokio::time::timeout(left.min(NO_REPLY_WAIT), slots.acquire()).await
                        {
                            p.forget();
                        }
                    }
                }
                let t = now_ns();
                if t >= end {
                    break;
                }
                seq += 1;
                sent.fetch_add(1, Ordering::Relaxed);
                if (start..end).contains(&t) {
                    publishes.fetch_add(1, Ordering::Relaxed);
                    expected_contacts.fetch_add(roster, Ordering::Relaxed);
                }
                publish_stanza(&mut buf, &title_nonce, seq, t);
                if writer.lock().await.write_all(buf.as_bytes()).await.is_err() {
                    break;
                }
            }
            writer
        });
    }

    // Settled: at least the settle time, every user has seen all its contacts online (the
    // presence burst is over), and then no client has received anything for a while and the
    // server (when its pid is known) has been idle for a second (caps queries and last items
    // are over: a server can work for seconds without a word); at most settle_max.
    let settle_start = Instant::now();
    let mut everyone_online = None;
    let mut mark = CpuMark::take(opts.server_pid);
    let mut server_idle = opts.server_pid.is_none();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let waited = settle_start.elapsed();
        if everyone_online.is_none() && all_online.load(Ordering::Relaxed) >= n {
            everyone_online = Some(waited);
        }
        if opts.server_pid.is_some() && mark.at.is_some_and(|at| at.elapsed() >= QUIET) {
            let now = CpuMark::take(opts.server_pid);
            server_idle = mark
                .until(&now)
                .server_percent()
                .is_none_or(|p| p < IDLE_PERCENT);
            mark = now;
        }
        let quiet = Duration::from_nanos(now_ns().saturating_sub(last_rx.load(Ordering::Relaxed)));
        if waited >= opts.settle_max
            || (waited >= opts.settle && everyone_online.is_some() && quiet >= QUIET && server_idle)
        {
            break;
        }
    }
    let settled = settle_start.elapsed();
    let send_from = now_ns();
    let start = send_from + opts.warmup.as_nanos() as u64;
    let end = start + opts.duration.as_nanos() as u64;
    timeline.set(send_from, start, end);
    let _ = go_tx.send(true);
    report.line(format!(
        "settled in {:.1} s: {}{}",
        settled.as_secs_f64(),
        match everyone_online {
            Some(t) => format!(
                "every user saw all its contacts online after {:.1} s",
                t.as_secs_f64()
            ),
            None => format!(
                "{} of {n} users saw all their contacts online",
                all_online.load(Ordering::Relaxed)
            ),
        },
        if settled >= opts.settle_max {
            " (settle_max reached)"
        } else {
            ""
        }
    ));
    let cpu = cpu_over_window(start, end, opts.server_pid).await;
    let mut writer_halves = Vec::new();
    while let Some(w) = writers.join_next().await {
        if let Ok(w) = w {
            writer_halves.push(w);
        }
    }
    // Every publish answered (a saturated server has a backlog), at most DRAIN_MAX; then the
    // notifications of the last ones.
    let draining = Instant::now();
    while replied.load(Ordering::Relaxed) < sent.load(Ordering::Relaxed)
        && draining.elapsed() < DRAIN_MAX
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = draining.elapsed();
    let unanswered = sent
        .load(Ordering::Relaxed)
        .saturating_sub(replied.load(Ordering::Relaxed));
    tokio::time::sleep(GRACE).await;
    let _ = stop_tx.send(true);
    let mut total = Counts::default();
    while let Some(r) = readers.join_next().await {
        let Ok(c) = r else { continue };
        total.in_window += c.in_window;
        total.delivered_contacts += c.delivered_contacts;
        total.delivered_own += c.delivered_own;
        total.early += c.early;
        total.stale += c.stale;
        total.duplicates += c.duplicates;
        total.disco += c.disco;
        total.refused += c.refused;
        total.publish_errors += c.publish_errors;
        total.refused_contacts += c.publish_errors * c.roster;
        if total.first_error.is_none() {
            total.first_error = c.first_error;
        }
    }
    for w in writer_halves {
        let _ = w.lock().await.write_all(b"</stream:stream>").await;
    }

    let secs = opts.duration.as_secs_f64();
    let publishes = publishes.load(Ordering::Relaxed);
    let own_notified = total.delivered_own > 0;
    // Refused publishes notify nobody.
    let accepted = publishes.saturating_sub(total.publish_errors);
    let expected_contacts = expected_contacts
        .load(Ordering::Relaxed)
        .saturating_sub(total.refused_contacts);
    let expected_own = if own_notified { accepted } else { 0 };
    let expected = expected_contacts + expected_own;
    let delivered = total.delivered_contacts + total.delivered_own;
    let lost = expected_contacts.saturating_sub(total.delivered_contacts)
        + expected_own.saturating_sub(total.delivered_own);
    let per_s = total.in_window as f64 / secs;
    let rtt = publish_rtt.percentiles();
    let latency = notify_latency.percentiles();
    report.line(format!(
        "caps ver {}: {} disco#info queries answered, {} other IQs refused; {} notifications \
         before publishing (last items, seeds), {} of earlier runs after",
        caps.ver(),
        total.disco,
        total.refused,
        total.early,
        total.stale
    ));
    report.line(format!(
        "{} in {secs:.1} s: {publishes} publishes ({:.0}/s, {} errors), {} notifications received: \
         {per_s:.0}/s (and {} duplicates)",
        if opts.rate > 0 {
            format!("offered {} publishes/s", opts.rate)
        } else {
            format!("closed loop (window {})", opts.window.max(1))
        },
        publishes as f64 / secs,
        total.publish_errors,
        total.in_window,
        total.duplicates
    ));
    report.line(format!(
        "expected {expected} notifications (roster sizes{}), delivered {delivered} by {GRACE:?} \
         after the last reply ({} to contacts, {} to the publisher), {lost} lost or late",
        if own_notified {
            " + the publisher's own resource"
        } else {
            "; the publisher's own resource got none"
        },
        total.delivered_contacts,
        total.delivered_own
    ));
    report.line(format!(
        "after the window: replies to every publish within {:.1} s ({unanswered} unanswered after \
         {DRAIN_MAX:?})",
        drained.as_secs_f64()
    ));
    if let Some(e) = &total.first_error {
        report.line(format!(
            "first publish error: {}",
            e.chars().take(300).collect::<String>()
        ));
    }
    report.line(format!("publish round trip: {rtt}"));
    report.line(format!("publish to notification: {latency}"));
    report.line(format!(
        "{}; server {} µs CPU per notification",
        cpu.describe(),
        cpu.server_us_per(total.in_window)
            .map_or("?".to_owned(), |u| format!("{u:.2}"))
    ));
    let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
    report.field("publishes", publishes);
    report.field("publish_errors", total.publish_errors);
    report.field("notifications", total.in_window);
    report.num("notifications_per_s", Some(per_s), 1);
    report.field("expected", expected);
    report.field("delivered", delivered);
    report.field("lost", lost);
    report.field("duplicates", total.duplicates);
    report.num("drain_s", Some(drained.as_secs_f64()), 1);
    report.field("unanswered", unanswered);
    report.field("own_notified", u8::from(own_notified));
    report.field("disco_queries", total.disco);
    report.field("early", total.early);
    report.field("stale", total.stale);
    report.num("settle_s", Some(settled.as_secs_f64()), 1);
    report.field("seed_retries", seed_retries);
    report.field("unseeded", unseeded);
    report.num("pub_p50_ms", ms(rtt.p50), 3);
    report.num("pub_p99_ms", ms(rtt.p99), 3);
    report.num("notify_p50_ms", ms(latency.p50), 3);
    report.num("notify_p99_ms", ms(latency.p99), 3);
    report.num(
        "server_us_per_notification",
        cpu.server_us_per(total.in_window),
        2,
    );
    report.num("server_cpu_pct", cpu.server_percent(), 1);
    report.num("gen_cpu_pct", Some(cpu.generator_percent()), 1);
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_stream::{Decoder, Limits};

    /// XEP-0115 §5.2, the simple example: Exodus 0.9.1's identity and four features.
    #[test]
    fn ver_of_the_simple_example() {
        let exodus = Caps {
            identities: vec![[
                "client".to_owned(),
                "pc".to_owned(),
                String::new(),
                "Exodus 0.9.1".to_owned(),
            ]],
            features: [
                "http://jabber.org/protocol/muc",
                "http://jabber.org/protocol/caps",
                "http://jabber.org/protocol/disco#items",
                "http://jabber.org/protocol/disco#info",
            ]
            .map(str::to_owned)
            .to_vec(),
        };
        assert_eq!(
            exodus.verification_string(),
            "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
             http://jabber.org/protocol/muc<"
        );
        assert_eq!(exodus.ver(), "QgayPKawpkPSDYmwT/WM94uAlu0=");
    }

    fn parse(xml: &str) -> Element {
        let doc = format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='{}'>{xml}",
            ns::STREAM
        );
        let mut rest = doc.as_bytes();
        let mut d = Decoder::new(Limits::DEFAULT);
        assert!(matches!(
            d.next_frame(&mut rest),
            Ok(Some(Frame::Header(_)))
        ));
        match d.next_frame(&mut rest) {
            Ok(Some(Frame::Element(el))) => el,
            other => panic!("no element in {xml}: {other:?}"),
        }
    }

    /// The bench's client and the presence it sends (XEP-0115 §3, §5.1): the ver names the
    /// disco#info it answers with.
    #[test]
    fn bench_caps_and_presence() {
        let caps = Caps::bench();
        assert_eq!(
            caps.verification_string(),
            "client/pc//starling-bench<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/tune<\
             http://jabber.org/protocol/tune+notify<"
        );
        assert_eq!(
            caps.presence(),
            format!(
                "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
                 node='https://starling.invalid/bench' ver='{}'/></presence>",
                caps.ver()
            )
        );
    }

    /// A notification seen twice among the last few is a duplicate; one older than those is
    /// forgotten.
    #[test]
    fn duplicates_among_recent_notifications() {
        let mut recent = Recent::new(2);
        let (a, b, c) = (
            dedup_key("u1@localhost", 5),
            dedup_key("u2@localhost", 5),
            dedup_key("u1@localhost", 6),
        );
        assert!(recent.insert(a));
        assert!(recent.insert(b));
        assert!(!recent.insert(a), "a second copy");
        assert!(recent.insert(c));
        assert!(recent.insert(a), "forgotten after two newer ones");
        assert_eq!((recent.order.len(), recent.seen.len()), (2, 2));
    }

    /// What Starling's caps module (XEP-0115 §5.4) checks before it trusts a disco#info result
    /// for a ver: the bench's answer passes, so Starling resolves the bench's caps.
    #[test]
    fn starling_trusts_the_bench_caps() {
        let caps = Caps::bench();
        let node = format!("{CAPS_NODE}#{}", caps.ver());
        assert_eq!(
            starling_modules::caps::verify("sha-1", &caps.ver(), &caps.query(Some(&node))),
            Ok(())
        );
    }

    /// XEP-0115 §6.2: the server's disco#info query for `node#ver` gets exactly the info the
    /// ver was computed from; other requests get `<service-unavailable/>` (RFC 6120 §8.2.3).
    #[test]
    fn answers_the_caps_query_and_refuses_the_rest() {
        let caps = Caps::bench();
        let node = format!("{CAPS_NODE}#{}", caps.ver());
        let query = parse(&format!(
            "<iq type='get' from='localhost' to='u1@localhost/bench' id='c&amp;1'>\
             <query xmlns='http://jabber.org/protocol/disco#info' node='{node}'/></iq>"
        ));
        let (reply, disco) = answer(&query, &caps, &node).unwrap();
        assert!(disco);
        assert_eq!(
            reply,
            format!(
                "<iq to='localhost' id='c&amp;1' type='result'>\
                 <query xmlns='http://jabber.org/protocol/disco#info' node='{node}'>\
                 <identity category='client' type='pc' name='starling-bench'/>\
                 <feature var='http://jabber.org/protocol/caps'/>\
                 <feature var='http://jabber.org/protocol/disco#info'/>\
                 <feature var='http://jabber.org/protocol/tune'/>\
                 <feature var='http://jabber.org/protocol/tune+notify'/></query></iq>"
            )
        );
        let ping =
            parse("<iq type='get' from='localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
        let (reply, disco) = answer(&ping, &caps, &node).unwrap();
        assert!(!disco);
        assert_eq!(
            reply,
            "<iq to='localhost' id='p1' type='error'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
        // Another node's info is not ours to give.
        let other = parse(
            "<iq type='get' from='localhost' id='o1'>\
             <query xmlns='http://jabber.org/protocol/disco#info' node='x#y'/></iq>",
        );
        assert!(!answer(&other, &caps, &node).unwrap().1);
        let result = parse("<iq type='result' id='p1.5'/>");
        assert_eq!(answer(&result, &caps, &node), None);
    }

    /// XEP-0163 §4.3.1: a notification comes from the publisher's bare JID; the item's title
    /// carries this run's nonce and the send time.
    #[test]
    fn notification_items_and_stamps() {
        let msg = parse(
            "<message from='u2@localhost' to='u1@localhost/bench' type='headline'>\
             <event xmlns='http://jabber.org/protocol/pubsub#event'>\
             <items node='http://jabber.org/protocol/tune'><item id='current'>\
             <tune xmlns='http://jabber.org/protocol/tune'><title>ab12/987</title></tune>\
             </item></items></event></message>",
        );
        let titles: Vec<String> = notification_titles(&msg).unwrap().collect();
        assert_eq!(titles, ["ab12/987"]);
        assert_eq!(stamp_of(&titles[0], "ab12"), Some(987));
        assert_eq!(stamp_of(&titles[0], "ab1"), None);
        assert_eq!(stamp_of("ab12/x", "ab12"), None);
        assert!(
            notification_titles(&parse("<message><body>hi</body></message>"))
                .is_none_or(|mut t| t.next().is_none())
        );
        assert_eq!(iq_stamp("p3.123456"), Some(123_456));
        assert_eq!(iq_stamp("p0.0"), Some(SEED_STAMP));
        assert_eq!(iq_stamp("disco1"), None);
    }
}
