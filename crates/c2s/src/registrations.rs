//! How many accounts each address registered lately (`[registration] max_per_ip` within
//! `ip_window`): public registration must not let one host create accounts by the thousand.
//! Addresses are counted like connections: IPv4 as is, IPv6 by /64.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::connections::key;

/// Addresses remembered before the expired ones are swept.
const SWEEP_AT: usize = 4096;

/// Registrations per address within a sliding window.
pub struct RegistrationLimiter {
    max: u32,
    window: Duration,
    recent: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RegistrationLimiter {
    pub fn new(max: u32, window: Duration) -> Self {
        RegistrationLimiter {
            max,
            window,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may register one more account now.
    pub fn allowed(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let Ok(mut recent) = self.recent.lock() else {
            return false;
        };
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

    /// Counts a registration from `ip`.
    pub fn record(&self, ip: IpAddr) {
        let now = Instant::now();
        let Ok(mut recent) = self.recent.lock() else {
            return;
        };
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
        let l = RegistrationLimiter::new(2, Duration::from_secs(60));
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
}
