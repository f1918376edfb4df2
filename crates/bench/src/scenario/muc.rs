//! Multi-user chat (XEP-0045), issue 16 item 6: `rooms` rooms of `occupants` occupants each on
//! the MUC service `service` (e.g. `conference.localhost`), every occupant posting groupchat
//! messages that the room reflects to all its occupants, the sender included (§7.4).
//!
//! - Users: each user is in exactly one room: user `r × occupants + k` (from `--start`) is
//!   occupant `k` of room `r`, with its user name as nick. So the run needs
//!   `rooms × occupants` accounts (one more with `join_flood`). Rooms are named
//!   `NONCE-rR` (this run's nonce), so every run creates its rooms afresh.
//! - Joining (§7.2): presence to `room@service/nick` with
//!   `<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>` (no discussion
//!   history). Occupant 0 of each room joins first; when its self-presence (status 110) says
//!   201 (room created, §10.1.1: locked until configured) it accepts the instant room with an
//!   empty `jabber:x:data` submit in a `muc#owner` IQ set (§10.1.2), and only then do the
//!   room's other occupants join; at most `concurrency` joins wait for their self-presence at
//!   once, over all rooms. The time from a join presence to its self-presence is the join
//!   latency. An occupant is complete once it has its self-presence and the presence of every
//!   other occupant of its room (existing occupants come before the self-presence, §7.2.3;
//!   later joiners after). Posting starts when every occupant is complete and `settle` has
//!   passed (at most `join_max` after the logins: then with whoever is in).
//! - Posting: `<message type='groupchat'><body>NONCE/T</body></message>`, T the send time on
//!   the bench's clock. `rate > 0`: that many posts per second in total, open loop, spread
//!   evenly over the occupants; `rate = 0`: closed loop: each occupant keeps `window` posts in
//!   flight, a slot freed when the room reflects one of its own posts back (after 10 s without
//!   one it posts anyway).
//! - Counted: deliveries (this run's groupchat messages received, own reflections included)
//!   that arrive in the measurement window (deliveries/s, server CPU per delivery);
//!   `expected` = Σ over posts sent in the window of the sender's room size (its occupants
//!   that had joined), `delivered` = deliveries of those posts received by the end (every own
//!   reflection back, at most 60 s after the window, then 2 s more), `lost` the difference;
//!   post→delivery latency into a fixed-size histogram (memory constant however long the run).
//!   Message errors (`type='error'`) are counted apart.
//! - `noisy_rate = R`: room 0 is noisy: its occupants post R posts per second in total, open
//!   loop, whatever `rate` says for the others; `posts`, `expected`, `delivered`, `lost`,
//!   deliveries/s and latency then count the other rooms only (the quiet rooms), and the noisy
//!   room's posts, deliveries and refusals (`message_errors` of its occupants) are reported
//!   apart: whether one room's flood slows the others.
//! - `join_flood = N` (a separate mode, no posting): one room of N occupants is filled as
//!   above; then one more user joins it `flood_rounds` times (leaving in between): the time
//!   until its self-presence arrives, which §7.2.3 puts after the presence of all N occupants
//!   (the presence flood to the joiner), and how many occupant presences came before it.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use starling_proto::{Element, ns};
use starling_stream::Frame;
use tokio::io::{AsyncWriteExt as _, WriteHalf};
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::JoinSet;

use super::{CpuMark, Users, close_all, cpu_over_window, login_all, now_ns};
use crate::report::Report;
use crate::stats::Histogram;
use crate::xmpp::{FrameReader, Io, LoginSteps, Target};

/// XEP-0045's namespaces and XEP-0004's.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
pub const NS_DATA: &str = "jabber:x:data";

pub struct MucOpts {
    /// The first user; the run uses as many as it needs from there.
    pub users: Users,
    /// Joins waiting for their self-presence at once, and logins in flight.
    pub concurrency: usize,
    /// The MUC service's domain.
    pub service: String,
    pub rooms: u64,
    pub occupants: u64,
    /// Posts per second in total; 0 for the closed loop.
    pub rate: u64,
    /// Posts in flight per occupant in the closed loop.
    pub window: usize,
    /// With R > 0: room 0 is noisy (its occupants post R/s in total, open loop) and the
    /// figures count the other rooms only.
    pub noisy_rate: u64,
    /// With N > 0: the join-flood mode (one room of N occupants, one more joining).
    pub join_flood: u64,
    pub flood_rounds: u32,
    /// Quiet time after every occupant is complete, before posting.
    pub settle: Duration,
    /// The joins may take this long in all (after the logins).
    pub join_max: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

impl MucOpts {
    /// Accounts the run needs.
    pub fn needed(&self) -> u64 {
        if self.join_flood > 0 {
            self.join_flood.saturating_add(1)
        } else {
            self.rooms.saturating_mul(self.occupants)
        }
    }
}

/// After the window, own reflections still missing are waited for this long at most…
const DRAIN_MAX: Duration = Duration::from_secs(60);
/// … and deliveries of the window's posts still count if they arrive this long after that.
const GRACE: Duration = Duration::from_secs(2);
/// In the closed loop an occupant posts anyway after this long without its reflection.
const NO_REFLECTION_WAIT: Duration = Duration::from_secs(10);
/// A flood join (or leave) waits this long for its self-presence at most.
const FLOOD_WAIT: Duration = Duration::from_secs(60);

/// The join presence of §7.2 with no history requested (§7.2.14).
pub fn join_stanza(room: &str, nick: &str) -> String {
    format!(
        "<presence to='{room}/{nick}'><x xmlns='{NS_MUC}'><history maxstanzas='0'/></x></presence>"
    )
}

/// Leaving the room (§7.14).
pub fn leave_stanza(room: &str, nick: &str) -> String {
    format!("<presence to='{room}/{nick}' type='unavailable'/>")
}

/// The owner's acceptance of the default configuration: an instant room (§10.1.2).
pub fn instant_room_stanza(room: &str, id: &str) -> String {
    format!(
        "<iq type='set' to='{room}' id='{id}'><query xmlns='{NS_MUC_OWNER}'>\
         <x xmlns='{NS_DATA}' type='submit'/></query></iq>"
    )
}

/// A groupchat post (§7.4) carrying this run's nonce and its send time.
pub fn post_stanza(buf: &mut String, room: &str, seq: u64, nonce: &str, t: u64) {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(
        buf,
        "<message to='{room}' type='groupchat' id='m{seq}'><body>{nonce}/{t}</body></message>"
    );
}

/// The send time in a body `NONCE/T`, if it is this run's.
pub fn stamp_of(body: &str, nonce: &str) -> Option<u64> {
    body.strip_prefix(nonce)?.strip_prefix('/')?.parse().ok()
}

/// A presence from the occupant's room, as the occupant sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum RoomPresence<'a> {
    /// Its own presence (§7.2.3: status 110, or its own nick for a server that omits it):
    /// available after a join, with `created` for status 201 (§10.1.1); unavailable after a
    /// leave.
    Own { available: bool, created: bool },
    /// Another occupant's.
    Other { nick: &'a str, available: bool },
    /// A join refused (§7.2.5 onwards): the `<error/>`.
    Error(String),
}

/// Classifies a presence coming from `room` (the room's bare JID) for the occupant `nick`;
/// `None` for anything else.
pub fn room_presence<'a>(el: &'a Element, room: &str, nick: &str) -> Option<RoomPresence<'a>> {
    if el.name() != "presence" {
        return None;
    }
    let from = el.attr("from")?;
    let (bare, resource) = from.split_once('/').unwrap_or((from, ""));
    if !bare.eq_ignore_ascii_case(room) {
        return None;
    }
    let available = match el.attr("type") {
        None => true,
        Some("unavailable") => false,
        Some("error") => {
            let error = el.get_child("error", ns::CLIENT).unwrap_or(el);
            return Some(RoomPresence::Error(error.to_xml()));
        }
        Some(_) => return None,
    };
    let mut own = resource == nick;
    let mut created = false;
    if resource.is_empty() {
        // The room's own presence (ejabberd sends one, e.g. for a room avatar): no occupant.
        return None;
    }
    for x in el.children().filter(|x| x.is("x", NS_MUC_USER)) {
        for status in x.children().filter(|s| s.is("status", NS_MUC_USER)) {
            match status.attr("code") {
                Some("110") => own = true,
                Some("201") => created = true,
                _ => {}
            }
        }
    }
    Some(if own {
        RoomPresence::Own { available, created }
    } else {
        RoomPresence::Other {
            nick: resource,
            available,
        }
    })
}

/// A groupchat message from `room` carrying this run's stamp: (sender's nick, send time).
pub fn groupchat_stamp<'a>(el: &'a Element, room: &str, nonce: &str) -> Option<(&'a str, u64)> {
    if el.name() != "message" || el.attr("type") != Some("groupchat") {
        return None;
    }
    let (bare, nick) = el.attr("from")?.split_once('/')?;
    if !bare.eq_ignore_ascii_case(room) {
        return None;
    }
    let sent = stamp_of(&el.get_child("body", ns::CLIENT)?.text(), nonce)?;
    Some((nick, sent))
}

/// `<service-unavailable/>` for an IQ get or set (RFC 6120 §8.2.3): nothing waits on a bench
/// client. `None` for anything else.
pub fn refusal(iq: &Element) -> Option<String> {
    if iq.name() != "iq" || !matches!(iq.attr("type"), Some("get" | "set")) {
        return None;
    }
    let reply = Element::new("iq", ns::CLIENT)
        .with_opt_attr("to", iq.attr("from"))
        .with_attr("id", iq.attr("id").unwrap_or_default())
        .with_attr("type", "error")
        .with_child(
            Element::new("error", ns::CLIENT)
                .with_attr("type", "cancel")
                .with_child(Element::new("service-unavailable", ns::STANZAS)),
        );
    let mut out = String::new();
    reply.write_in_stream(ns::CLIENT, &mut out);
    Some(out)
}

type Writer = Arc<Mutex<WriteHalf<Io>>>;
type Reader = FrameReader<tokio::io::ReadHalf<Io>>;

/// The next element for the scenario: stream management requests and IQ gets/sets from the
/// server are answered here. `None` when the stream ends.
async fn next_element(reader: &mut Reader, writer: &Writer) -> Option<Element> {
    loop {
        let Ok(Frame::Element(el)) = reader.next().await else {
            return None;
        };
        let out = if el.is("r", ns::SM) {
            reader.ack()
        } else if let Some(r) = refusal(&el) {
            Some(r)
        } else {
            return Some(el);
        };
        if let Some(out) = out
            && writer.lock().await.write_all(out.as_bytes()).await.is_err()
        {
            return None;
        }
    }
}

/// The measurement phases on [`now_ns`]'s clock, set when posting begins; `u64::MAX` before.
struct Timeline {
    start: AtomicU64,
    end: AtomicU64,
}

impl Timeline {
    fn new() -> Timeline {
        Timeline {
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
        }
    }
    fn get(&self) -> (u64, u64) {
        (
            self.start.load(Ordering::Relaxed),
            self.end.load(Ordering::Relaxed),
        )
    }
}

/// What every occupant task shares.
struct Shared {
    nonce: String,
    occupants: u64,
    join_permits: Semaphore,
    join_latency: Histogram,
    delivery_latency: Histogram,
    timeline: Timeline,
    joined: AtomicU64,
    complete: AtomicU64,
    created: AtomicU64,
    /// Occupants of each room that have their self-presence.
    room_size: Vec<AtomicU64>,
    /// Own reflections received, whenever (against `posted`).
    reflected: AtomicU64,
    posted: AtomicU64,
    /// Room 0 is noisy (`noisy_rate`): its occupants' counts go to `noisy`.
    noisy: bool,
    /// The noisy room's deliveries in the window, posts in the window, and refusals.
    noisy_deliveries: AtomicU64,
    noisy_posts: AtomicU64,
    noisy_errors: AtomicU64,
}

/// What one occupant's reader counted.
#[derive(Default)]
struct Counts {
    in_window: u64,
    delivered: u64,
    before: u64,
    message_errors: u64,
    join_error: Option<String>,
    owner_error: Option<String>,
    first_message_error: Option<String>,
}

/// One occupant: joins (creating the room when first), then counts what the room sends.
#[allow(clippy::too_many_arguments)]
async fn occupant(
    shared: Arc<Shared>,
    mut reader: Reader,
    writer: Writer,
    room_index: usize,
    room: String,
    nick: String,
    first: Option<watch::Sender<bool>>,
    mut unlocked: watch::Receiver<bool>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) -> (Counts, Reader) {
    let mut c = Counts::default();
    if first.is_none() && unlocked.wait_for(|u| *u).await.is_err() {
        return (c, reader);
    }
    let mut others: Option<HashSet<String>> = Some(HashSet::new());
    let Ok(permit) = shared.join_permits.acquire().await else {
        return (c, reader);
    };
    let t0 = now_ns();
    let join = join_stanza(&room, &nick);
    let mut joined = writer.lock().await.write_all(join.as_bytes()).await.is_ok();
    let mut created = false;
    // Until the self-presence; then, for a room just created, until the owner's IQ result.
    while joined {
        let el = tokio::select! {
            el = next_element(&mut reader, &writer) => el,
            _ = stop.changed() => None,
        };
        let Some(el) = el else {
            joined = false;
            break;
        };
        match room_presence(&el, &room, &nick) {
            Some(RoomPresence::Own {
                available: true,
                created: new,
            }) => {
                created = new;
                break;
            }
            Some(RoomPresence::Other {
                nick,
                available: true,
            }) => {
                if let Some(o) = &mut others {
                    o.insert(nick.to_owned());
                }
            }
            Some(RoomPresence::Error(e)) => {
                c.join_error = Some(e);
                joined = false;
            }
            _ => {}
        }
    }
    if joined {
        shared.join_latency.record(now_ns().saturating_sub(t0));
        shared.joined.fetch_add(1, Ordering::Relaxed);
        shared.room_size[room_index].fetch_add(1, Ordering::Relaxed);
    }
    if joined && created {
        shared.created.fetch_add(1, Ordering::Relaxed);
        let iq = instant_room_stanza(&room, "own1");
        if writer.lock().await.write_all(iq.as_bytes()).await.is_ok() {
            loop {
                let el = tokio::select! {
                    el = next_element(&mut reader, &writer) => el,
                    _ = stop.changed() => None,
                };
                let Some(el) = el else { break };
                if el.name() == "iq" && el.attr("id") == Some("own1") {
                    if el.attr("type") != Some("result") {
                        c.owner_error = Some(el.to_xml());
                    }
                    break;
                }
                if let Some(RoomPresence::Other {
                    nick,
                    available: true,
                }) = room_presence(&el, &room, &nick)
                    && let Some(o) = &mut others
                {
                    o.insert(nick.to_owned());
                }
            }
        }
    }
    drop(permit);
    // The room's other occupants may join now (they fail on their own if this join did).
    if let Some(first) = first {
        let _ = first.send(true);
    }
    if !joined {
        return (c, reader);
    }
    let check = |others: &mut Option<HashSet<String>>| {
        if others
            .as_ref()
            .is_some_and(|o| o.len() as u64 + 1 >= shared.occupants)
        {
            // Complete: the set is no longer needed.
            *others = None;
            shared.complete.fetch_add(1, Ordering::Relaxed);
        }
    };
    check(&mut others);
    loop {
        let el = tokio::select! {
            el = next_element(&mut reader, &writer) => el,
            _ = stop.changed() => None,
        };
        let Some(el) = el else { break };
        let now = now_ns();
        if el.name() == "presence" {
            if let Some(RoomPresence::Other {
                nick,
                available: true,
            }) = room_presence(&el, &room, &nick)
                && let Some(o) = &mut others
            {
                o.insert(nick.to_owned());
                check(&mut others);
            }
            continue;
        }
        if el.name() != "message" {
            continue;
        }
        let noisy = shared.noisy && room_index == 0;
        if el.attr("type") == Some("error") {
            if noisy {
                shared.noisy_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            c.message_errors += 1;
            if c.first_message_error.is_none() {
                let error = el.get_child("error", ns::CLIENT).unwrap_or(&el);
                c.first_message_error = Some(error.to_xml());
            }
            // A refused post frees its slot as its reflection would have.
            slots.add_permits(1);
            continue;
        }
        let Some((from, sent)) = groupchat_stamp(&el, &room, &shared.nonce) else {
            continue;
        };
        let (start, end) = shared.timeline.get();
        if from == nick {
            shared.reflected.fetch_add(1, Ordering::Relaxed);
            slots.add_permits(1);
        }
        if noisy {
            if (start..end).contains(&now) {
                shared.noisy_deliveries.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if now < start {
            c.before += 1;
        }
        if (start..end).contains(&now) {
            c.in_window += 1;
        }
        if (start..end).contains(&sent) {
            c.delivered += 1;
            shared.delivery_latency.record(now.saturating_sub(sent));
        }
    }
    (c, reader)
}

/// A run's nonce: the wall clock's nanoseconds and the pid, in hex.
fn nonce() -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}", t ^ (u64::from(std::process::id()) << 40))
}

pub async fn run(target: &Arc<Target>, opts: &MucOpts) -> Report {
    let mut report = Report::default();
    let flood = opts.join_flood > 0;
    let (rooms, occupants) = if flood {
        (1, opts.join_flood)
    } else {
        (opts.rooms, opts.occupants)
    };
    report.field("scenario", if flood { "muc_join_flood" } else { "muc" });
    report.field("rooms", rooms);
    report.field("occupants", occupants);
    report.field("rate", opts.rate);
    let users = Users {
        count: opts.needed(),
        ..opts.users.clone()
    };
    let steps = LoginSteps {
        roster: false,
        presence: true,
    };
    let round = login_all(target, &users, opts.concurrency, steps).await;
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
        return report;
    }
    let mut sessions = round.sessions;
    let flooder = if flood {
        sessions.pop().flatten()
    } else {
        None
    };

    let nonce = nonce();
    let room_jid = |r: u64| format!("{nonce}-r{r}@{}", opts.service);
    let shared = Arc::new(Shared {
        nonce: nonce.clone(),
        occupants,
        join_permits: Semaphore::new(opts.concurrency.max(1)),
        join_latency: Histogram::default(),
        delivery_latency: Histogram::default(),
        timeline: Timeline::new(),
        joined: AtomicU64::new(0),
        complete: AtomicU64::new(0),
        created: AtomicU64::new(0),
        room_size: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
        reflected: AtomicU64::new(0),
        posted: AtomicU64::new(0),
        noisy: opts.noisy_rate > 0 && rooms > 1,
        noisy_deliveries: AtomicU64::new(0),
        noisy_posts: AtomicU64::new(0),
        noisy_errors: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let window = opts.window.max(1);
    let mut readers = JoinSet::new();
    let mut posters: Vec<(usize, String, Writer, Arc<Semaphore>)> = Vec::new();
    let joining = Instant::now();
    let mut unlocks: Vec<Option<watch::Sender<bool>>> = Vec::new();
    let mut unlocked_rx = Vec::new();
    for _ in 0..rooms {
        let (tx, rx) = watch::channel(false);
        unlocks.push(Some(tx));
        unlocked_rx.push(rx);
    }
    for (u, session) in sessions.into_iter().enumerate() {
        let Some(session) = session else { continue };
        let r = u / occupants as usize;
        let nick = users.name(u as u64);
        let room = room_jid(r as u64);
        let writer: Writer = Arc::new(Mutex::new(session.writer));
        let slots = Arc::new(Semaphore::new(window));
        posters.push((r, room.clone(), Arc::clone(&writer), Arc::clone(&slots)));
        readers.spawn(occupant(
            Arc::clone(&shared),
            session.reader,
            writer,
            r,
            room,
            nick,
            unlocks[r].take(),
            unlocked_rx[r].clone(),
            slots,
            stop_rx.clone(),
        ));
    }
    drop(unlocks);
    let total = rooms * occupants;
    while shared.complete.load(Ordering::Relaxed) < total && joining.elapsed() < opts.join_max {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let join_time = joining.elapsed();
    let (joined, complete) = (
        shared.joined.load(Ordering::Relaxed),
        shared.complete.load(Ordering::Relaxed),
    );
    let jl = shared.join_latency.percentiles();
    report.line(format!(
        "{joined} of {total} occupants joined {rooms} rooms ({} created, instant), {complete} \
         saw their whole room, in {:.2} s{}; join latency: {jl}",
        shared.created.load(Ordering::Relaxed),
        join_time.as_secs_f64(),
        if complete < total {
            " (join_max reached)"
        } else {
            ""
        }
    ));
    report.field("joined", joined);
    report.field("complete", complete);
    report.field("rooms_created", shared.created.load(Ordering::Relaxed));
    report.num("join_s", Some(join_time.as_secs_f64()), 2);
    let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
    report.num("join_p50_ms", ms(jl.p50), 3);
    report.num("join_p99_ms", ms(jl.p99), 3);
    tokio::time::sleep(opts.settle).await;

    if let Some(flooder) = flooder {
        flood_rounds(flooder, &room_jid(0), &users.name(total), opts, &mut report).await;
        let _ = stop_tx.send(true);
        let counts = collect(&mut readers, &mut report).await;
        for (_, _, w, _) in posters {
            let _ = w.lock().await.write_all(b"</stream:stream>").await;
        }
        if joined < total {
            report.field("error", "join");
        }
        drop(counts);
        return report;
    }

    // Posting.
    let send_from = now_ns();
    let start = send_from + opts.warmup.as_nanos() as u64;
    let end = start + opts.duration.as_nanos() as u64;
    shared.timeline.end.store(end, Ordering::Relaxed);
    shared.timeline.start.store(start, Ordering::Relaxed);
    let posts_in_window = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(AtomicU64::new(0));
    // With a noisy room, `rate` is spread over the quiet rooms' occupants, `noisy_rate` over
    // the noisy one's.
    let noisy_count = if shared.noisy { occupants as usize } else { 0 };
    let n = posters.len() - noisy_count;
    let mut writers = JoinSet::new();
    for (i, (r, room, writer, slots)) in posters.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let (posts_in_window, expected) = (Arc::clone(&posts_in_window), Arc::clone(&expected));
        let nonce = nonce.clone();
        let noisy = shared.noisy && r == 0;
        let (rate, n) = if noisy {
            (opts.noisy_rate, noisy_count)
        } else {
            (opts.rate, n)
        };
        writers.spawn(async move {
            let mut buf = String::with_capacity(256);
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
                        let wait = NO_REFLECTION_WAIT.min(left);
                        if let Ok(Ok(p)) = tokio::time::timeout(wait, slots.acquire()).await {
                            p.forget();
                        } else if now_ns() >= end {
                            break;
                        }
                    }
                }
                seq += 1;
                let t = now_ns();
                if t >= end {
                    break;
                }
                if noisy {
                    if (start..end).contains(&t) {
                        shared.noisy_posts.fetch_add(1, Ordering::Relaxed);
                    }
                } else if (start..end).contains(&t) {
                    posts_in_window.fetch_add(1, Ordering::Relaxed);
                    expected.fetch_add(
                        shared.room_size[r].load(Ordering::Relaxed),
                        Ordering::Relaxed,
                    );
                }
                post_stanza(&mut buf, &room, seq, &nonce, t);
                shared.posted.fetch_add(1, Ordering::Relaxed);
                if writer.lock().await.write_all(buf.as_bytes()).await.is_err() {
                    break;
                }
            }
            writer
        });
    }
    let cpu = cpu_over_window(start, end, opts.server_pid).await;
    let mut writer_halves = Vec::new();
    while let Some(w) = writers.join_next().await {
        if let Ok(w) = w {
            writer_halves.push(w);
        }
    }
    let draining = Instant::now();
    while shared.reflected.load(Ordering::Relaxed) < shared.posted.load(Ordering::Relaxed)
        && draining.elapsed() < DRAIN_MAX
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = draining.elapsed();
    let unreflected = shared
        .posted
        .load(Ordering::Relaxed)
        .saturating_sub(shared.reflected.load(Ordering::Relaxed));
    tokio::time::sleep(GRACE).await;
    let _ = stop_tx.send(true);
    let total_counts = collect(&mut readers, &mut report).await;
    for w in writer_halves {
        let _ = w.lock().await.write_all(b"</stream:stream>").await;
    }

    let secs = opts.duration.as_secs_f64();
    let posts = posts_in_window.load(Ordering::Relaxed);
    let expected = expected.load(Ordering::Relaxed);
    let delivered = total_counts.delivered;
    let lost = expected.saturating_sub(delivered);
    let per_s = total_counts.in_window as f64 / secs;
    let latency = shared.delivery_latency.percentiles();
    report.line(format!(
        "{} in {secs:.1} s: {posts} posts ({:.0}/s, {} errors), {} deliveries received: \
         {per_s:.0}/s",
        if opts.rate > 0 {
            format!("offered {} posts/s", opts.rate)
        } else {
            format!("closed loop (window {window})")
        },
        posts as f64 / secs,
        total_counts.message_errors,
        total_counts.in_window,
    ));
    report.line(format!(
        "expected {expected} deliveries (room sizes, sender included), delivered {delivered} \
         by {GRACE:?} after the last reflection, {lost} lost or late; every own post reflected \
         within {:.1} s after the window ({unreflected} not after {DRAIN_MAX:?})",
        drained.as_secs_f64()
    ));
    report.line(format!("post to delivery: {latency}"));
    report.line(format!(
        "{}; server {} µs CPU per delivery",
        cpu.describe(),
        cpu.server_us_per(total_counts.in_window)
            .map_or("?".to_owned(), |u| format!("{u:.2}"))
    ));
    report.field("posts", posts);
    report.field("message_errors", total_counts.message_errors);
    report.field("deliveries", total_counts.in_window);
    report.num("deliveries_per_s", Some(per_s), 1);
    report.field("expected", expected);
    report.field("delivered", delivered);
    report.field("lost", lost);
    report.field("unreflected", unreflected);
    report.num("drain_s", Some(drained.as_secs_f64()), 1);
    report.num("p50_ms", ms(latency.p50), 3);
    report.num("p99_ms", ms(latency.p99), 3);
    report.num("p999_ms", ms(latency.p999), 3);
    report.num(
        "server_us_per_delivery",
        cpu.server_us_per(total_counts.in_window),
        2,
    );
    report.num("server_cpu_pct", cpu.server_percent(), 1);
    report.num("gen_cpu_pct", Some(cpu.generator_percent()), 1);
    if shared.noisy {
        let (posts, deliveries, errors) = (
            shared.noisy_posts.load(Ordering::Relaxed),
            shared.noisy_deliveries.load(Ordering::Relaxed),
            shared.noisy_errors.load(Ordering::Relaxed),
        );
        report.line(format!(
            "the noisy room (room 0, offered {} posts/s): {posts} posts in the window, {} deliveries/s, {errors} refused; the figures above are the other rooms'",
            opts.noisy_rate,
            deliveries as f64 / secs
        ));
        report.field("noisy_rate", opts.noisy_rate);
        report.field("noisy_posts", posts);
        report.num("noisy_deliveries_per_s", Some(deliveries as f64 / secs), 1);
        report.field("noisy_refused", errors);
    }
    if joined < total {
        report.field("error", "join");
    }
    report
}

/// Gathers the occupants' counts, reporting the first errors.
async fn collect(readers: &mut JoinSet<(Counts, Reader)>, report: &mut Report) -> Counts {
    let mut total = Counts::default();
    let mut join_errors = 0u64;
    while let Some(r) = readers.join_next().await {
        let Ok((c, _reader)) = r else { continue };
        total.in_window += c.in_window;
        total.delivered += c.delivered;
        total.before += c.before;
        total.message_errors += c.message_errors;
        if c.join_error.is_some() {
            join_errors += 1;
        }
        total.join_error = total.join_error.or(c.join_error);
        total.owner_error = total.owner_error.or(c.owner_error);
        total.first_message_error = total.first_message_error.or(c.first_message_error);
    }
    let short = |e: &str| e.chars().take(300).collect::<String>();
    for (what, e) in [
        ("first join error", &total.join_error),
        ("first room configuration error", &total.owner_error),
        ("first message error", &total.first_message_error),
    ] {
        if let Some(e) = e {
            report.line(format!("{what}: {}", short(e)));
        }
    }
    report.field("join_errors", join_errors);
    total
}

/// The join-flood mode: one more user joins the full room `flood_rounds` times, leaving in
/// between; each time, the wait for its self-presence and the occupant presences before it.
async fn flood_rounds(
    session: crate::xmpp::Session,
    room: &str,
    nick: &str,
    opts: &MucOpts,
    report: &mut Report,
) {
    let mut reader = session.reader;
    let writer: Writer = Arc::new(Mutex::new(session.writer));
    let times = Histogram::default();
    let mut before_self = Vec::new();
    let mut failures = 0u32;
    let mut first_error = None;
    let rounds = opts.flood_rounds.max(1);
    let mark = CpuMark::take(opts.server_pid);
    for _ in 0..rounds {
        let t0 = now_ns();
        if writer
            .lock()
            .await
            .write_all(join_stanza(room, nick).as_bytes())
            .await
            .is_err()
        {
            failures += 1;
            break;
        }
        let mut seen = 0u64;
        let joined = tokio::time::timeout(FLOOD_WAIT, async {
            loop {
                let el = next_element(&mut reader, &writer).await?;
                match room_presence(&el, room, nick) {
                    Some(RoomPresence::Own {
                        available: true, ..
                    }) => return Some(Ok(())),
                    Some(RoomPresence::Other {
                        available: true, ..
                    }) => seen += 1,
                    Some(RoomPresence::Error(e)) => return Some(Err(e)),
                    _ => {}
                }
            }
        })
        .await;
        match joined {
            Ok(Some(Ok(()))) => {
                times.record(now_ns().saturating_sub(t0));
                before_self.push(seen);
            }
            Ok(Some(Err(e))) => {
                failures += 1;
                first_error.get_or_insert(e);
                continue;
            }
            _ => {
                failures += 1;
                break;
            }
        }
        // Leave, and wait for the own unavailable presence (§7.14).
        if writer
            .lock()
            .await
            .write_all(leave_stanza(room, nick).as_bytes())
            .await
            .is_err()
        {
            break;
        }
        let left = tokio::time::timeout(FLOOD_WAIT, async {
            loop {
                let el = next_element(&mut reader, &writer).await?;
                if let Some(RoomPresence::Own {
                    available: false, ..
                }) = room_presence(&el, room, nick)
                {
                    return Some(());
                }
            }
        })
        .await;
        if !matches!(left, Ok(Some(()))) {
            break;
        }
    }
    let cpu = mark.until(&CpuMark::take(opts.server_pid));
    let _ = writer.lock().await.write_all(b"</stream:stream>").await;
    let p = times.percentiles();
    let joins = p.count as u64;
    let presences = before_self.iter().min().copied().unwrap_or(0);
    report.line(format!(
        "join flood: {joins} joins of a room of {} occupants ({failures} failed): self-presence \
         after {p}; {}–{} occupant presences before it",
        opts.join_flood,
        presences,
        before_self.iter().max().copied().unwrap_or(0)
    ));
    if let Some(e) = first_error {
        report.line(format!(
            "first flood join error: {}",
            e.chars().take(300).collect::<String>()
        ));
    }
    report.line(format!(
        "{} over the joins and leaves; server {} µs CPU per join (and leave)",
        cpu.describe(),
        cpu.server_us_per(joins)
            .map_or("?".to_owned(), |u| format!("{u:.0}"))
    ));
    let ms = |d: Duration| Some(d.as_secs_f64() * 1e3);
    report.field("flood_joins", joins);
    report.field("flood_failed", failures);
    report.field("presences_before_self", presences);
    report.num("flood_p50_ms", ms(p.p50), 3);
    report.num("flood_max_ms", ms(p.max), 3);
    report.num("server_us_per_join", cpu.server_us_per(joins), 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_stream::{Decoder, Limits};

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

    /// XEP-0045 §7.2 (Example 18, with §7.2.14's `maxstanzas='0'`), §7.14 and §10.1.2
    /// (Example 157): the stanzas the bench sends.
    #[test]
    fn stanzas() {
        let room = "n1-r0@conference.localhost";
        assert_eq!(
            join_stanza(room, "bench1"),
            "<presence to='n1-r0@conference.localhost/bench1'>\
             <x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
        );
        assert_eq!(
            leave_stanza(room, "bench1"),
            "<presence to='n1-r0@conference.localhost/bench1' type='unavailable'/>"
        );
        assert_eq!(
            instant_room_stanza(room, "own1"),
            "<iq type='set' to='n1-r0@conference.localhost' id='own1'>\
             <query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>"
        );
        let mut buf = String::from("old");
        post_stanza(&mut buf, room, 7, "n1", 12345);
        assert_eq!(
            buf,
            "<message to='n1-r0@conference.localhost' type='groupchat' id='m7'>\
             <body>n1/12345</body></message>"
        );
    }

    /// §7.2.3 (Examples 22–24) and §10.1.1 (Example 153): occupant presences, the own
    /// presence with 110 (and 201 for a new room), one without 110 but with the own nick, the
    /// own unavailable presence after leaving (§7.14), an error (§7.2.9), others' rooms.
    #[test]
    fn room_presences() {
        let room = "coven@chat.shakespeare.lit";
        let other = parse(
            "<presence from='coven@chat.shakespeare.lit/firstwitch' to='hag66@shakespeare.lit/pda'>\
             <x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='owner' role='moderator'/></x></presence>",
        );
        assert_eq!(
            room_presence(&other, room, "thirdwitch"),
            Some(RoomPresence::Other {
                nick: "firstwitch",
                available: true
            })
        );
        let own = parse(
            "<presence from='coven@chat.shakespeare.lit/3w' to='hag66@shakespeare.lit/pda'>\
             <x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='member' role='participant'/><status code='110'/></x></presence>",
        );
        assert_eq!(
            room_presence(&own, room, "thirdwitch"),
            Some(RoomPresence::Own {
                available: true,
                created: false
            }),
            "110 names the own presence even when the service changed the nick (§7.2.3)"
        );
        let created = parse(
            "<presence from='Coven@chat.shakespeare.lit/firstwitch' to='crone1@shakespeare.lit/desktop'>\
             <x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='owner' role='moderator'/>\
             <status code='110'/><status code='201'/></x></presence>",
        );
        assert_eq!(
            room_presence(&created, room, "firstwitch"),
            Some(RoomPresence::Own {
                available: true,
                created: true
            })
        );
        let no_110 = parse("<presence from='coven@chat.shakespeare.lit/thirdwitch'/>");
        assert_eq!(
            room_presence(&no_110, room, "thirdwitch"),
            Some(RoomPresence::Own {
                available: true,
                created: false
            })
        );
        let left = parse(
            "<presence from='coven@chat.shakespeare.lit/thirdwitch' type='unavailable'>\
             <x xmlns='http://jabber.org/protocol/muc#user'>\
             <item affiliation='member' role='none'/><status code='110'/></x></presence>",
        );
        assert_eq!(
            room_presence(&left, room, "thirdwitch"),
            Some(RoomPresence::Own {
                available: false,
                created: false
            })
        );
        let error = parse(
            "<presence from='coven@chat.shakespeare.lit/thirdwitch' type='error'>\
             <x xmlns='http://jabber.org/protocol/muc'/>\
             <error by='coven@chat.shakespeare.lit' type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>",
        );
        let Some(RoomPresence::Error(e)) = room_presence(&error, room, "thirdwitch") else {
            panic!("not an error");
        };
        assert!(e.contains("item-not-found"), "{e}");
        let elsewhere = parse("<presence from='other@chat.shakespeare.lit/thirdwitch'/>");
        assert_eq!(room_presence(&elsewhere, room, "thirdwitch"), None);
        let room_itself = parse(
            "<presence from='coven@chat.shakespeare.lit'><x xmlns='vcard-temp:x:update'/></presence>",
        );
        assert_eq!(room_presence(&room_itself, room, "thirdwitch"), None);
        let contact = parse("<presence from='hag66@shakespeare.lit/pda'/>");
        assert_eq!(room_presence(&contact, room, "thirdwitch"), None);
    }

    /// §7.4 (Example 49): the reflected groupchat message comes from the sender's occupant
    /// JID; only this run's stamps count.
    #[test]
    fn groupchat_stamps() {
        let room = "n1-r3@conference.localhost";
        let msg = parse(
            "<message from='n1-r3@conference.localhost/bench9' to='bench2@localhost/bench' \
             type='groupchat' id='m4'><body>n1/987</body></message>",
        );
        assert_eq!(groupchat_stamp(&msg, room, "n1"), Some(("bench9", 987)));
        assert_eq!(groupchat_stamp(&msg, room, "n2"), None);
        assert_eq!(
            groupchat_stamp(&msg, "n1-r4@conference.localhost", "n1"),
            None
        );
        // The room subject (§7.2.15) and a chat message are not posts.
        let subject = parse(
            "<message from='n1-r3@conference.localhost' type='groupchat'><subject/></message>",
        );
        assert_eq!(groupchat_stamp(&subject, room, "n1"), None);
        let chat = parse(
            "<message from='n1-r3@conference.localhost/bench9' type='chat'><body>n1/1</body></message>",
        );
        assert_eq!(groupchat_stamp(&chat, room, "n1"), None);
        assert_eq!(stamp_of("n1/12x", "n1"), None);
    }

    /// RFC 6120 §8.2.3: an IQ get the bench does not serve is refused; results are not
    /// answered.
    #[test]
    fn refuses_requests() {
        let ping = parse(
            "<iq type='get' from='conference.localhost' id='p&amp;1'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(
            refusal(&ping).as_deref(),
            Some(
                "<iq to='conference.localhost' id='p&amp;1' type='error'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
            )
        );
        assert_eq!(refusal(&parse("<iq type='result' id='x'/>")), None);
        assert_eq!(refusal(&parse("<presence/>")), None);
    }

    #[test]
    fn accounts_needed() {
        let opts = MucOpts {
            users: Users {
                prefix: "bench".to_owned(),
                start: 1,
                count: 0,
            },
            concurrency: 1,
            service: "conference.localhost".to_owned(),
            rooms: 10,
            occupants: 20,
            rate: 0,
            window: 1,
            noisy_rate: 0,
            join_flood: 0,
            flood_rounds: 1,
            settle: Duration::ZERO,
            join_max: Duration::ZERO,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            server_pid: None,
        };
        assert_eq!(opts.needed(), 200);
        let flood = MucOpts {
            join_flood: 500,
            ..opts
        };
        assert_eq!(flood.needed(), 501);
    }
}
