//! How many times each address did something lately, in a sliding window: accounts registered
//! in-band (`[registration] max_per_ip` within `ip_window`: public registration must not let
//! one host create accounts by the thousand) and anonymous logins (`[auth]
//! anonymous_logins_per_ip` per hour: each makes an account too). Addresses are counted like
//! connections: IPv4 as is, IPv6 by /64.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::connections::key;

/// Addresses remembered before the expired ones are swept.
const SWEEP_AT: usize = 4096;

/// Events per address within a sliding window; `max` 0 allows none ([`Self::unlimited`] for no
/// limit).
pub struct AddressWindow {
    max: u32,
    window: Duration,
    recent: Mutex<Recent>,
}

/// When each address did it, oldest first.
type Recent = HashMap<IpAddr, VecDeque<Instant>>;

impl AddressWindow {
    pub fn new(max: u32, window: Duration) -> Self {
        AddressWindow {
            max,
            window,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// No limit: [`Self::try_record`] always succeeds and remembers nothing.
    pub fn unlimited() -> Self {
        Self::new(u32::MAX, Duration::ZERO)
    }

    /// Counts one more event from `ip` if it stays within the limit, in one step under one
    /// lock (two connections of one address cannot both take the last place); `false` when
    /// over it.
    pub fn try_record(&self, ip: IpAddr) -> bool {
        if self.window.is_zero() {
            return true;
        }
        let now = Instant::now();
        let Ok(mut recent) = self.recent.lock() else {
            return false;
        };
        if !self.allowed_locked(&mut recent, ip, now) {
            return false;
        }
        self.record_locked(&mut recent, ip, now);
        true
    }

    /// Whether `ip` may do it once more now.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let Ok(mut recent) = self.recent.lock() else {
            return false;
        };
        self.allowed_locked(&mut recent, ip, now)
    }

    /// Counts an event from `ip`.
    pub fn record(&self, ip: IpAddr) {
        let now = Instant::now();
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
        self.record_locked(&mut recent, ip, now);
    }

    fn allowed_locked(&self, recent: &mut Recent, ip: IpAddr, now: Instant) -> bool {
        let Some(times) = recent.get_mut(&key(ip)) else {
            return self.max > 0;
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        times.len() < usize::try_from(self.max).unwrap_or(usize::MAX)
    }

    fn record_locked(&self, recent: &mut Recent, ip: IpAddr, now: Instant) {
        if recent.len() >= SWEEP_AT {
            let window = self.window;
            recent.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        recent.entry(key(ip)).or_default().push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn per_address_within_the_window() {
        let l = AddressWindow::new(2, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let a_64: IpAddr = "2001:db8::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8::2".parse().unwrap();
        for ip in [a, a_64] {
            assert!(l.allowed(ip));
            l.record(ip);
        }
        l.record(a);
        assert!(!l.allowed(a));
        l.record(same_64);
        assert!(!l.allowed(a_64), "one /64 counts as one address");
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(l.allowed(a));
        assert!(l.allowed(a_64));
    }

    #[tokio::test(start_paused = true)]
    async fn try_record_counts_within_the_limit_only() {
        let l = AddressWindow::new(2, Duration::from_secs(3600));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.try_record(a));
        assert!(l.try_record(a));
        assert!(!l.try_record(a));
        assert!(l.try_record(b), "another address has its own count");
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(l.try_record(a));
        let none = AddressWindow::unlimited();
        assert!((0..1000).all(|_| none.try_record(a)));
        assert!(none.recent.lock().unwrap().is_empty());
    }
}
