//! Authentication throttling: a growing delay, then a temporary lock, after failed password
//! attempts, per client address and per account, shared by every session through
//! [`C2sShared`](crate::C2sShared). The same idea as Prosody's `mod_limit_auth` and ejabberd's
//! `mod_fail2ban`, built in.
//!
//! # What counts
//!
//! Only password failures: a wrong SCRAM proof, a wrong PLAIN password, an unknown user
//! ([`ServerSession::credentials_rejected`](starling_sasl::ServerSession::credentials_rejected)).
//! Malformed requests, unsupported channel-binding types, downgrades, aborts and refusals during a
//! lock are not counted: none of them tests a password.
//!
//! # Semantics
//!
//! Two tables count failures: one per client address (an IPv4 address, or the /64 an IPv6 address
//! is in, since one host usually has a whole /64) and one per account (`user@domain`, normalised;
//! a name that is no valid localpart is counted by address only, as no account can have it).
//!
//! - **Window.** A key's count starts with its first failure and lasts [`lock_window`]; a failure
//!   after that starts a new count (a fixed window, not a sliding one).
//! - **Delay.** A failure's `<failure/>` is held back by `2^(n − free − 1)` seconds, at most
//!   [`max_delay`], where `n` is the larger of the address's and the account's count including
//!   this failure and `free` is [`failures_before_delay`]: with the defaults (3, 10 s) the 4th
//!   failure waits 1 s, the 5th 2 s, the 6th 4 s, the 7th 8 s, then 10 s each. The session waits
//!   in its own task; no other session is held up.
//! - **Lock.** When an address reaches [`ip_lock_after`] failures in its window, every
//!   authentication from it (any account, the right password included) is refused with
//!   `<temporary-auth-failure/>` for [`lock_duration`]; other addresses are not affected. When an
//!   account reaches [`account_lock_after`], every authentication as that account (from any
//!   address) is refused for [`lock_duration`]; other accounts, from the same address too, are
//!   not affected (until that address reaches its own limit). Refusals are not failures: they
//!   neither extend nor renew a lock. When a lock ends, the key starts from zero.
//! - **Log.** Each lock is logged once, at `warn`, as one line ([`LockEvent`]'s `Display`):
//!   `authentication locked: ip=203.0.113.7 account=alice@example.org failures=10 for=300s scope=account`
//!   (`account=-` when the name is no valid localpart). fail2ban can match it (README, "Login
//!   throttling").
//!
//! # Bounds
//!
//! Each table holds at most [`max_tracked`] keys (default [`DEFAULT_MAX_TRACKED`] = 32,768): a
//! key is an address (16 bytes) or a 64-bit keyed hash of the account name (names of any length
//! cost the same), an entry 40 bytes, a slot at most 64 bytes (pinned in a test). With the hash
//! table's load factor each table's allocation stays under 65,536 slots × 65 bytes ≈ 4 MiB, so both
//! together stay under 8.5 MiB whatever an attacker sends. When a table is full, entries whose
//! window and lock are over are dropped first; then unlocked entries with the fewest failures
//! (the least evidence); locks are never dropped early. If only locked entries remain, a new key
//! is not tracked until one ends.
//!
//! # Hazards
//!
//! - **Locking others out.** Anyone who knows an account's name can lock it for
//!   [`lock_duration`] by failing [`account_lock_after`] times. That is the price of stopping a
//!   guesser who spreads attempts over many addresses; keep the duration short, let fail2ban ban
//!   the addresses in the log, or set `account_lock_after = 0`.
//! - **Shared addresses.** Users behind one NAT share an address count; `ip_lock_after` should be
//!   well above what honest typos produce (default 20 in 10 minutes, like ejabberd's 20).
//! - **Clock.** Every method takes `now` (a monotonic [`Instant`]) so tests drive the state
//!   machine without sleeping.
//!
//! [`lock_window`]: ThrottleSettings::lock_window
//! [`max_delay`]: ThrottleSettings::max_delay
//! [`failures_before_delay`]: ThrottleSettings::failures_before_delay
//! [`ip_lock_after`]: ThrottleSettings::ip_lock_after
//! [`account_lock_after`]: ThrottleSettings::account_lock_after
//! [`lock_duration`]: ThrottleSettings::lock_duration
//! [`max_tracked`]: ThrottleSettings::max_tracked

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The first delay; each further failure doubles it, up to `max_delay`.
pub const BASE_DELAY: Duration = Duration::from_secs(1);

/// Default bound on the keys each table tracks (see the module docs for the memory it means).
pub const DEFAULT_MAX_TRACKED: usize = 32_768;

/// The throttle's settings (the `[auth]` keys of the configuration, plus the table bound).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// Failures of an address or account in its window that get their answer at once.
    pub failures_before_delay: u32,
    /// The longest a failure's answer is held back; zero disables delays.
    pub max_delay: Duration,
    /// Failures of one account in its window that lock it; 0 never locks accounts.
    pub account_lock_after: u32,
    /// Failures from one address in its window that lock it; 0 never locks addresses.
    pub ip_lock_after: u32,
    /// How long a key's failures are counted, from its first.
    pub lock_window: Duration,
    /// How long a lock lasts.
    pub lock_duration: Duration,
    /// Most keys each table tracks.
    pub max_tracked: usize,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            failures_before_delay: 3,
            max_delay: Duration::from_secs(10),
            account_lock_after: 10,
            ip_lock_after: 20,
            lock_window: Duration::from_secs(600),
            lock_duration: Duration::from_secs(300),
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

/// What a lock covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockScope {
    /// Every authentication from an address (IPv6: its /64).
    Ip,
    /// Every authentication as an account.
    Account,
}

impl LockScope {
    /// `"ip"` or `"account"`, as in the log line.
    pub fn as_str(&self) -> &'static str {
        match self {
            LockScope::Ip => "ip",
            LockScope::Account => "account",
        }
    }
}

/// A lock that just began: what the log line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockEvent {
    pub scope: LockScope,
    /// The address of the failure that caused it.
    pub ip: IpAddr,
    /// The account of that failure (`None`: the name was no valid localpart).
    pub account: Option<String>,
    /// The count that reached the limit.
    pub failures: u32,
    /// How long the lock lasts.
    pub duration: Duration,
}

impl fmt::Display for LockEvent {
    /// `authentication locked: ip=<ip> account=<user@domain or -> failures=<n> for=<s>s
    /// scope=<ip|account>`: one line, fields in this order, values without spaces (account names
    /// are nodeprep'd, which forbids spaces and control characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "authentication locked: ip={} account={} failures={} for={}s scope={}",
            self.ip,
            self.account.as_deref().unwrap_or("-"),
            self.failures,
            self.duration.as_secs(),
            self.scope.as_str()
        )
    }
}

/// What a recorded failure means for its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// How long to hold the `<failure/>` back.
    pub delay: Duration,
    /// Locks this failure started (already logged).
    pub locks: Vec<LockEvent>,
}

/// The shared throttle state. Cheap to query; every method holds the lock only for a table
/// lookup or update, never across an await.
pub struct AuthThrottle {
    settings: ThrottleSettings,
    /// Keys the account hash, so names cannot be chosen to collide.
    hasher: RandomState,
    tables: Mutex<Tables>,
}

struct Tables {
    ips: Table<IpKey>,
    accounts: Table<u64>,
}

/// An address as counted: IPv4 whole, IPv6 by its /64 (IPv4-mapped IPv6 counts as IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IpKey {
    V4(u32),
    V6(u64),
}

impl IpKey {
    fn of(ip: IpAddr) -> IpKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => IpKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

impl fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ips, accounts) = self.tracked();
        f.debug_struct("AuthThrottle")
            .field("settings", &self.settings)
            .field("tracked_ips", &ips)
            .field("tracked_accounts", &accounts)
            .finish()
    }
}

impl AuthThrottle {
    pub fn new(settings: ThrottleSettings) -> Self {
        AuthThrottle {
            settings,
            hasher: RandomState::new(),
            tables: Mutex::new(Tables {
                ips: Table::default(),
                accounts: Table::default(),
            }),
        }
    }

    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave a table half-updated in a way that matters
        // (each update is a few field writes): keep serving.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn account_key(&self, account: &str) -> u64 {
        self.hasher.hash_one(account)
    }

    /// Until when authentication from `ip` is refused, if it is now.
    pub fn ip_locked(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        self.tables().ips.locked_until(IpKey::of(ip), now)
    }

    /// Until when authentication as `account` (`user@domain`, normalised) is refused, if it is.
    pub fn account_locked(&self, account: &str, now: Instant) -> Option<Instant> {
        let key = self.account_key(account);
        self.tables().accounts.locked_until(key, now)
    }

    /// Records a password failure from `ip` for `account` (`None` if the name is no valid
    /// localpart) at `now`: how long to delay the answer, and the locks it started, each logged
    /// once here.
    pub fn record_failure(&self, ip: IpAddr, account: Option<&str>, now: Instant) -> Verdict {
        let s = &self.settings;
        let account_key = account.map(|a| self.account_key(a));
        let (by_ip, by_account) = {
            let mut t = self.tables();
            let by_ip = t.ips.record(IpKey::of(ip), now, s, s.ip_lock_after);
            let by_account =
                account_key.and_then(|k| t.accounts.record(k, now, s, s.account_lock_after));
            (by_ip, by_account)
        };
        let mut locks = Vec::new();
        for (scope, rec) in [(LockScope::Ip, by_ip), (LockScope::Account, by_account)] {
            if let Some(Recorded {
                failures,
                locked: true,
            }) = rec
            {
                let event = LockEvent {
                    scope,
                    ip,
                    account: account.map(str::to_owned),
                    failures,
                    duration: s.lock_duration,
                };
                tracing::warn!("{event}");
                locks.push(event);
            }
        }
        let n = [by_ip, by_account]
            .into_iter()
            .flatten()
            .map(|r| r.failures)
            .max()
            .unwrap_or(0);
        Verdict {
            delay: self.delay_for(n),
            locks,
        }
    }

    /// The delay for the `n`th failure of a window (see the module docs).
    pub fn delay_for(&self, n: u32) -> Duration {
        let s = &self.settings;
        if n <= s.failures_before_delay || s.max_delay.is_zero() {
            return Duration::ZERO;
        }
        // 2^20 s is beyond any sensible cap already; the shift cannot overflow.
        let doublings = (n - s.failures_before_delay - 1).min(20);
        BASE_DELAY
            .saturating_mul(1u32 << doublings)
            .min(s.max_delay)
    }

    /// Keys tracked now: (addresses, accounts).
    pub fn tracked(&self) -> (usize, usize) {
        let t = self.tables();
        (t.ips.map.len(), t.accounts.map.len())
    }
}

/// One key's state.
#[derive(Clone, Copy, Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

impl Entry {
    fn fresh(now: Instant) -> Entry {
        Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
        }
    }

    fn is_locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until)
    }

    /// Nothing left to remember: no lock in force and the window over.
    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        match self.locked_until {
            Some(until) => now >= until,
            None => now.saturating_duration_since(self.window_start) >= window,
        }
    }

    /// Brings the entry up to `now`: an ended lock or a passed window starts afresh.
    fn refresh(&mut self, now: Instant, window: Duration) {
        if self.is_stale(now, window) {
            *self = Entry::fresh(now);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Recorded {
    /// The key's count including this failure (or the count that locked it, if it is locked).
    failures: u32,
    /// This failure started a lock.
    locked: bool,
}

struct Table<K> {
    map: HashMap<K, Entry>,
}

impl<K> Default for Table<K> {
    fn default() -> Self {
        Table {
            map: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Table<K> {
    fn locked_until(&self, key: K, now: Instant) -> Option<Instant> {
        self.map
            .get(&key)
            .filter(|e| e.is_locked(now))
            .and_then(|e| e.locked_until)
    }

    /// Counts a failure of `key`; `None` if the table is full of locks and the key is new.
    fn record(
        &mut self,
        key: K,
        now: Instant,
        s: &ThrottleSettings,
        lock_after: u32,
    ) -> Option<Recorded> {
        if !self.map.contains_key(&key) && self.map.len() >= s.max_tracked {
            self.make_room(now, s);
            if self.map.len() >= s.max_tracked {
                return None;
            }
        }
        let e = self.map.entry(key).or_insert_with(|| Entry::fresh(now));
        e.refresh(now, s.lock_window);
        if e.is_locked(now) {
            // An attempt that was under way when the lock began: the lock stands as it is.
            return Some(Recorded {
                failures: e.failures,
                locked: false,
            });
        }
        e.failures = e.failures.saturating_add(1);
        let locked = lock_after > 0 && e.failures >= lock_after;
        if locked {
            // An absurd duration that overflows the clock is a lock for as long as it can be.
            e.locked_until = Some(
                now.checked_add(s.lock_duration)
                    .unwrap_or(now + Duration::from_secs(365 * 24 * 3600)),
            );
        }
        Some(Recorded {
            failures: e.failures,
            locked,
        })
    }

    /// Frees at least one slot if anything but locks is there (see the module docs).
    fn make_room(&mut self, now: Instant, s: &ThrottleSettings) {
        self.map.retain(|_, e| !e.is_stale(now, s.lock_window));
        while self.map.len() >= s.max_tracked {
            let fewest = self
                .map
                .values()
                .filter(|e| !e.is_locked(now))
                .map(|e| e.failures)
                .min();
            let Some(fewest) = fewest else { return };
            self.map
                .retain(|_, e| e.is_locked(now) || e.failures > fewest);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const S: Duration = Duration::from_secs(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn settings() -> ThrottleSettings {
        ThrottleSettings {
            failures_before_delay: 2,
            max_delay: 5 * S,
            account_lock_after: 4,
            ip_lock_after: 6,
            lock_window: 60 * S,
            lock_duration: 30 * S,
            max_tracked: 1000,
        }
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let t = AuthThrottle::new(ThrottleSettings {
            account_lock_after: 0,
            ip_lock_after: 0,
            ..settings()
        });
        let t0 = Instant::now();
        let delays: Vec<u64> = (0..8)
            .map(|i| {
                t.record_failure(ip(1), Some("alice@localhost"), t0 + i * S)
                    .delay
                    .as_secs()
            })
            .collect();
        // Two free, then 1, 2, 4 and the 5 s cap.
        assert_eq!(delays, [0, 0, 1, 2, 4, 5, 5, 5]);
        // No delays at all with max_delay 0.
        let t = AuthThrottle::new(ThrottleSettings {
            max_delay: Duration::ZERO,
            ..settings()
        });
        assert!((0..10).all(|_| t.record_failure(ip(1), None, t0).delay.is_zero()));
        // Enormous counts do not overflow.
        assert_eq!(t.delay_for(u32::MAX), Duration::ZERO);
        let t = AuthThrottle::new(ThrottleSettings {
            max_delay: Duration::MAX,
            ..settings()
        });
        assert_eq!(t.delay_for(u32::MAX), S * (1 << 20));
    }

    #[test]
    fn the_larger_count_decides_the_delay() {
        let t = AuthThrottle::new(settings());
        let t0 = Instant::now();
        // Three failures for three accounts from one address: the address's count decides.
        for (i, a) in ["a@x", "b@x", "c@x"].into_iter().enumerate() {
            let v = t.record_failure(ip(1), Some(a), t0);
            assert_eq!(v.delay, if i < 2 { Duration::ZERO } else { S }, "{a}");
        }
        // A fresh address failing for an account that has failed three times: the account's.
        t.record_failure(ip(2), Some("d@x"), t0);
        t.record_failure(ip(3), Some("d@x"), t0);
        assert_eq!(t.record_failure(ip(4), Some("d@x"), t0).delay, S);
    }

    #[test]
    fn an_account_locks_after_its_limit_from_any_address() {
        let t = AuthThrottle::new(settings());
        let t0 = Instant::now();
        for i in 1..=3u8 {
            let v = t.record_failure(ip(i), Some("alice@localhost"), t0);
            assert!(v.locks.is_empty());
        }
        assert_eq!(t.account_locked("alice@localhost", t0), None);
        let v = t.record_failure(ip(4), Some("alice@localhost"), t0 + S);
        assert_eq!(
            v.locks,
            [LockEvent {
                scope: LockScope::Account,
                ip: ip(4),
                account: Some("alice@localhost".to_owned()),
                failures: 4,
                duration: 30 * S,
            }]
        );
        // Locked for everyone, until exactly lock_duration after the locking failure.
        assert_eq!(
            t.account_locked("alice@localhost", t0 + S),
            Some(t0 + 31 * S)
        );
        assert_eq!(
            t.account_locked("alice@localhost", t0 + 30 * S),
            Some(t0 + 31 * S)
        );
        assert_eq!(t.account_locked("alice@localhost", t0 + 31 * S), None);
        // Other accounts and the addresses (below their limit) are not locked.
        assert_eq!(t.account_locked("bob@localhost", t0 + S), None);
        assert_eq!(t.ip_locked(ip(4), t0 + S), None);
    }

    #[test]
    fn an_address_locks_after_its_limit_for_every_account() {
        let t = AuthThrottle::new(settings());
        let t0 = Instant::now();
        let mut events = Vec::new();
        for i in 0..6 {
            events.extend(t.record_failure(ip(9), Some(&format!("u{i}@x")), t0).locks);
        }
        assert_eq!(
            events,
            [LockEvent {
                scope: LockScope::Ip,
                ip: ip(9),
                account: Some("u5@x".to_owned()),
                failures: 6,
                duration: 30 * S,
            }]
        );
        assert_eq!(t.ip_locked(ip(9), t0), Some(t0 + 30 * S));
        assert_eq!(t.ip_locked(ip(10), t0), None);
        assert_eq!(t.account_locked("u5@x", t0), None);
    }

    #[test]
    fn both_locks_can_start_at_once() {
        let t = AuthThrottle::new(ThrottleSettings {
            account_lock_after: 3,
            ip_lock_after: 3,
            ..settings()
        });
        let t0 = Instant::now();
        t.record_failure(ip(1), Some("a@x"), t0);
        t.record_failure(ip(1), Some("a@x"), t0);
        let scopes: Vec<LockScope> = t
            .record_failure(ip(1), Some("a@x"), t0)
            .locks
            .iter()
            .map(|e| e.scope)
            .collect();
        assert_eq!(scopes, [LockScope::Ip, LockScope::Account]);
    }

    #[test]
    fn failures_during_a_lock_neither_count_nor_renew_it() {
        let t = AuthThrottle::new(settings());
        let t0 = Instant::now();
        for _ in 0..4 {
            t.record_failure(ip(1), Some("a@x"), t0);
        }
        let until = t.account_locked("a@x", t0);
        assert_eq!(until, Some(t0 + 30 * S));
        // An attempt that was already under way fails later: no new lock, no renewal.
        let v = t.record_failure(ip(2), Some("a@x"), t0 + 10 * S);
        assert!(v.locks.is_empty());
        assert_eq!(t.account_locked("a@x", t0 + 10 * S), until);
        // After the lock the count starts from zero: three more failures do not lock again.
        for k in 0..3 {
            let v = t.record_failure(ip(3 + k), Some("a@x"), t0 + 31 * S);
            assert!(v.locks.is_empty());
        }
        assert_eq!(t.account_locked("a@x", t0 + 31 * S), None);
        assert_eq!(
            t.record_failure(ip(7), Some("a@x"), t0 + 31 * S)
                .locks
                .len(),
            1
        );
    }

    #[test]
    fn a_window_that_passes_starts_the_count_again() {
        let t = AuthThrottle::new(settings());
        let t0 = Instant::now();
        for _ in 0..3 {
            t.record_failure(ip(1), Some("a@x"), t0);
        }
        // 60 s after the first failure the window is over: this is the first of a new one.
        let v = t.record_failure(ip(1), Some("a@x"), t0 + 60 * S);
        assert!(v.locks.is_empty());
        assert!(v.delay.is_zero());
        assert_eq!(t.account_locked("a@x", t0 + 60 * S), None);
    }

    #[test]
    fn zero_limits_never_lock() {
        let t = AuthThrottle::new(ThrottleSettings {
            account_lock_after: 0,
            ip_lock_after: 0,
            ..settings()
        });
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(t.record_failure(ip(1), Some("a@x"), t0).locks.is_empty());
        }
        assert_eq!(t.ip_locked(ip(1), t0), None);
        assert_eq!(t.account_locked("a@x", t0), None);
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let t = AuthThrottle::new(settings());
        let t0 = Instant::now();
        let host = |low: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, low));
        for k in 0..6 {
            t.record_failure(host(k), None, t0);
        }
        assert!(t.ip_locked(host(999), t0).is_some(), "same /64");
        let next_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert_eq!(t.ip_locked(next_64, t0), None);
        for _ in 0..6 {
            t.record_failure(ip(1), None, t0);
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert!(t.ip_locked(mapped, t0).is_some());
    }

    #[test]
    fn the_tables_stay_bounded_and_keep_locks_and_evidence() {
        let t = AuthThrottle::new(ThrottleSettings {
            max_tracked: 8,
            ..settings()
        });
        let t0 = Instant::now();
        // One locked account and one with three failures.
        for _ in 0..4 {
            t.record_failure(ip(1), Some("locked@x"), t0);
        }
        for _ in 0..3 {
            t.record_failure(ip(2), Some("suspect@x"), t0);
        }
        // A flood of single failures from many addresses for many names.
        for i in 0..10_000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.record_failure(addr, Some(&format!("n{i}@x")), t0 + S);
            let (ips, accounts) = t.tracked();
            assert!(ips <= 8 && accounts <= 8, "{ips} {accounts} at {i}");
        }
        // The lock survived; so did the entry with the most failures.
        assert!(t.account_locked("locked@x", t0 + S).is_some());
        let v = t.record_failure(ip(3), Some("suspect@x"), t0 + S);
        assert_eq!(
            v.locks.len(),
            1,
            "the fourth failure locks: its count was kept"
        );
    }

    #[test]
    fn entries_whose_window_is_over_go_first() {
        let t = AuthThrottle::new(ThrottleSettings {
            max_tracked: 2,
            ip_lock_after: 0,
            ..settings()
        });
        let t0 = Instant::now();
        // "old" has three failures but its window ends at t0 + 60 s; "new" has one, later.
        for _ in 0..3 {
            t.record_failure(ip(1), Some("old@x"), t0);
        }
        t.record_failure(ip(1), Some("new@x"), t0 + 50 * S);
        // The table is full; a third name at t0 + 70 s drops "old" (stale), not "new".
        t.record_failure(ip(1), Some("third@x"), t0 + 70 * S);
        assert_eq!(t.tracked(), (1, 2));
        // "new" kept its count: three more failures make four, which locks.
        for _ in 0..2 {
            assert!(
                t.record_failure(ip(1), Some("new@x"), t0 + 71 * S)
                    .locks
                    .is_empty()
            );
        }
        assert_eq!(
            t.record_failure(ip(1), Some("new@x"), t0 + 71 * S)
                .locks
                .len(),
            1
        );
    }

    #[test]
    fn a_table_full_of_locks_takes_no_new_keys() {
        let t = AuthThrottle::new(ThrottleSettings {
            max_tracked: 2,
            account_lock_after: 1,
            ip_lock_after: 0,
            ..settings()
        });
        let t0 = Instant::now();
        t.record_failure(ip(1), Some("a@x"), t0);
        t.record_failure(ip(1), Some("b@x"), t0);
        // Not tracked: no lock, no delay from the account table; the two locks stand.
        let v = t.record_failure(ip(2), Some("c@x"), t0);
        assert!(v.locks.is_empty());
        assert_eq!(t.account_locked("c@x", t0), None);
        assert!(t.account_locked("a@x", t0).is_some());
        assert!(t.account_locked("b@x", t0).is_some());
        // Once the locks end, new keys are tracked again.
        let v = t.record_failure(ip(2), Some("c@x"), t0 + 31 * S);
        assert_eq!(v.locks.len(), 1);
    }

    #[test]
    fn the_log_line_is_exact() {
        let event = LockEvent {
            scope: LockScope::Account,
            ip: ip(7),
            account: Some("alice@localhost".to_owned()),
            failures: 10,
            duration: Duration::from_secs(300),
        };
        assert_eq!(
            event.to_string(),
            "authentication locked: ip=192.0.2.7 account=alice@localhost failures=10 for=300s scope=account"
        );
        let event = LockEvent {
            scope: LockScope::Ip,
            ip: "2001:db8::1".parse().unwrap(),
            account: None,
            failures: 20,
            duration: Duration::from_secs(300),
        };
        assert_eq!(
            event.to_string(),
            "authentication locked: ip=2001:db8::1 account=- failures=20 for=300s scope=ip"
        );
    }

    #[test]
    fn slots_are_small() {
        // The memory bound in the module docs rests on these.
        assert!(std::mem::size_of::<Entry>() <= 40);
        assert!(std::mem::size_of::<(IpKey, Entry)>() <= 64);
        assert!(std::mem::size_of::<(u64, Entry)>() <= 64);
    }
}
