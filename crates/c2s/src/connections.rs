//! Connection limits: how many client connections one address (an IPv4 address, or an IPv6 /64,
//! which one subscriber usually holds whole) and the whole server may hold at once.
//!
//! Memory is bounded by the connections themselves: an address has an entry only while it has a
//! connection open, and the total is capped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The limits; 0 means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub per_address: usize,
    pub total: usize,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The address already holds `per_address` connections.
    Address(usize),
    /// The server holds `total` connections.
    Total(usize),
}

/// Open connections by address.
#[derive(Debug)]
pub struct Connections {
    limits: ConnectionLimits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Held for as long as the connection is open; dropping it frees the slot.
#[derive(Debug)]
pub struct Admitted {
    owner: Arc<Connections>,
    key: IpAddr,
}

/// The address connections are counted under: IPv6 by /64, IPv4 (and IPv4-mapped IPv6) as is.
pub(crate) fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
        v4 => v4,
    }
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            state: Mutex::new(State::default()),
        })
    }

    /// Counts a new connection from `ip`, or says why it is refused.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let key = key(ip);
        let mut st = match self.state.lock() {
            Ok(st) => st,
            Err(poisoned) => poisoned.into_inner(),
        };
        if self.limits.total > 0 && st.total >= self.limits.total {
            return Err(Refusal::Total(self.limits.total));
        }
        let n = st.by_address.get(&key).copied().unwrap_or(0);
        if self.limits.per_address > 0 && n >= self.limits.per_address {
            return Err(Refusal::Address(self.limits.per_address));
        }
        st.by_address.insert(key, n + 1);
        st.total += 1;
        Ok(Admitted {
            owner: Arc::clone(self),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.state.lock().map(|s| s.total).unwrap_or(0)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut st = match self.owner.state.lock() {
            Ok(st) => st,
            Err(poisoned) => poisoned.into_inner(),
        };
        st.total = st.total.saturating_sub(1);
        if let Some(n) = st.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                st.by_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn per_address_and_total_limits() {
        let c = Connections::new(ConnectionLimits {
            per_address: 2,
            total: 3,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_same_64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let a1 = c.admit(a).unwrap();
        let _a2 = c.admit(a).unwrap();
        assert_eq!(c.admit(a).unwrap_err(), Refusal::Address(2));
        let _b1 = c.admit(b).unwrap();
        assert_eq!(c.admit(b_same_64).unwrap_err(), Refusal::Total(3));
        drop(a1);
        assert_eq!(c.open(), 2);
        let _b2 = c.admit(b_same_64).unwrap();
        assert_eq!(c.admit(b).unwrap_err(), Refusal::Total(3));
    }

    #[test]
    fn zero_is_unlimited_and_entries_go_with_their_connections() {
        let c = Connections::new(ConnectionLimits {
            per_address: 0,
            total: 0,
        });
        let held: Vec<_> = (0..100)
            .map(|i| c.admit(IpAddr::from([10, 0, 0, i as u8])).unwrap())
            .collect();
        assert_eq!(c.open(), 100);
        drop(held);
        assert_eq!(c.open(), 0);
        assert!(c.state.lock().unwrap().by_address.is_empty());
    }
}
