//! Where a remote domain's server listens (RFC 6120 §3.2, XEP-0368).
//!
//! 1. `[s2s.hosts]` overrides DNS for a domain (tests, private deployments).
//! 2. SRV records `_xmpps-server._tcp.<domain>` (direct TLS, XEP-0368) and
//!    `_xmpp-server._tcp.<domain>` (STARTTLS), merged and ordered by priority, then weight
//!    (RFC 2782), direct TLS first at equal priority. A single record with target `.` means the
//!    service is decidedly not available there (RFC 2782, RFC 6120 §3.2.1 step 2).
//! 3. No SRV record at all: the domain's own A/AAAA records on port 5269 (RFC 6120 §3.2.2).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

/// The default s2s port (RFC 6120 §14.7).
pub const DEFAULT_PORT: u16 = 5269;

/// One place to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name to connect to (from SRV, or the domain itself).
    pub host: String,
    /// Port.
    pub port: u16,
    /// XEP-0368 direct TLS (TLS first, ALPN `xmpp-server`), else STARTTLS.
    pub direct_tls: bool,
    /// Where the target came from, for diagnostics (`SRV _xmpp-server._tcp`, `A/AAAA`, `[s2s.hosts]`).
    pub source: &'static str,
    /// Addresses already known (an override), else resolved at connect time.
    pub addrs: Vec<SocketAddr>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} ({}, {})",
            self.host,
            self.port,
            if self.direct_tls {
                "direct TLS"
            } else {
                "STARTTLS"
            },
            self.source
        )
    }
}

/// Why a domain cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The domain publishes `.` as its SRV target: it takes no server-to-server connections.
    #[error("{0} says in DNS (SRV target '.') that it offers no XMPP server-to-server service")]
    NoService(String),
    /// Neither SRV nor A/AAAA records.
    #[error(
        "{0} has no _xmpp-server._tcp SRV record and no A/AAAA record: the domain does not exist in DNS or is misspelt"
    )]
    NotFound(String),
    /// The resolver itself failed (no network, SERVFAIL).
    #[error("DNS lookup for {domain} failed: {reason}")]
    Lookup {
        /// The domain.
        domain: String,
        /// The resolver's words.
        reason: String,
    },
}

/// DNS with the override table.
#[derive(Clone)]
pub struct Resolver {
    overrides: HashMap<String, Vec<SocketAddr>>,
    dns: Option<TokioResolver>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("overrides", &self.overrides)
            .field("dns", &self.dns.is_some())
            .finish()
    }
}

impl Resolver {
    /// The system's resolver (`/etc/resolv.conf`) behind `overrides` (domain → addresses,
    /// keys lowercase). Without a usable system configuration only the overrides resolve.
    pub fn new(overrides: HashMap<String, Vec<SocketAddr>>) -> Self {
        let dns = match TokioResolver::builder_tokio() {
            Ok(builder) => match builder.build() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "no DNS resolver: only [s2s.hosts] domains are reachable");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "no DNS resolver configuration: only [s2s.hosts] domains are reachable");
                None
            }
        };
        Resolver { overrides, dns }
    }

    /// The places to try for `domain`, best first.
    pub async fn targets(&self, domain: &str) -> Result<Vec<Target>, ResolveError> {
        let key = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some(addrs) = self.overrides.get(&key) {
            return Ok(addrs
                .iter()
                .map(|a| Target {
                    host: a.ip().to_string(),
                    port: a.port(),
                    direct_tls: false,
                    source: "[s2s.hosts]",
                    addrs: vec![*a],
                })
                .collect());
        }
        let Some(dns) = &self.dns else {
            return Err(ResolveError::Lookup {
                domain: key,
                reason: "no DNS resolver configured on this machine".to_owned(),
            });
        };
        let fqdn = format!("{key}.");
        let mut records = Vec::new();
        let mut no_service = false;
        let mut failure = None;
        for (service, direct_tls) in [("_xmpps-server._tcp", true), ("_xmpp-server._tcp", false)] {
            match dns.srv_lookup(format!("{service}.{fqdn}")).await {
                Ok(lookup) => {
                    for record in lookup.answers() {
                        if let RData::SRV(srv) = &record.data {
                            let target = srv.target.to_ascii();
                            let target = target.trim_end_matches('.');
                            if target.is_empty() {
                                no_service = true;
                                continue;
                            }
                            records.push(Srv {
                                priority: srv.priority,
                                weight: srv.weight,
                                direct_tls,
                                host: target.to_owned(),
                                port: srv.port,
                                source: if direct_tls {
                                    "SRV _xmpps-server._tcp"
                                } else {
                                    "SRV _xmpp-server._tcp"
                                },
                            });
                        }
                    }
                }
                Err(e) if e.is_no_records_found() => {}
                Err(e) => failure = Some(e.to_string()),
            }
        }
        if !records.is_empty() {
            return Ok(order(records));
        }
        if no_service {
            return Err(ResolveError::NoService(key));
        }
        // RFC 6120 §3.2.2: the domain itself, port 5269.
        match dns.lookup_ip(fqdn.as_str()).await {
            Ok(ips) => {
                let addrs: Vec<SocketAddr> = ips
                    .iter()
                    .map(|ip| SocketAddr::new(ip, DEFAULT_PORT))
                    .collect();
                if addrs.is_empty() {
                    return Err(ResolveError::NotFound(key));
                }
                Ok(vec![Target {
                    host: key,
                    port: DEFAULT_PORT,
                    direct_tls: false,
                    source: "A/AAAA (no SRV record)",
                    addrs,
                }])
            }
            Err(e) if e.is_no_records_found() => match failure {
                Some(reason) => Err(ResolveError::Lookup {
                    domain: key,
                    reason,
                }),
                None => Err(ResolveError::NotFound(key)),
            },
            Err(e) => Err(ResolveError::Lookup {
                domain: key,
                reason: e.to_string(),
            }),
        }
    }

    /// The addresses of `target` (its own, or looked up now).
    pub async fn addresses(&self, target: &Target) -> Result<Vec<SocketAddr>, ResolveError> {
        if !target.addrs.is_empty() {
            return Ok(target.addrs.clone());
        }
        if let Ok(ip) = target.host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, target.port)]);
        }
        let Some(dns) = &self.dns else {
            return Err(ResolveError::Lookup {
                domain: target.host.clone(),
                reason: "no DNS resolver configured on this machine".to_owned(),
            });
        };
        match dns.lookup_ip(format!("{}.", target.host)).await {
            Ok(ips) => Ok(ips
                .iter()
                .map(|ip| SocketAddr::new(ip, target.port))
                .collect()),
            Err(e) if e.is_no_records_found() => Err(ResolveError::NotFound(target.host.clone())),
            Err(e) => Err(ResolveError::Lookup {
                domain: target.host.clone(),
                reason: e.to_string(),
            }),
        }
    }
}

#[derive(Debug, Clone)]
struct Srv {
    priority: u16,
    weight: u16,
    direct_tls: bool,
    host: String,
    port: u16,
    source: &'static str,
}

/// RFC 2782: lowest priority first; within one priority, heavier weight first (a stable
/// deterministic order rather than a weighted draw: one server opens few connections per peer,
/// so spreading load by chance gains little and makes failures harder to reproduce); direct TLS
/// before STARTTLS at equal priority and weight (XEP-0368 §3).
fn order(mut records: Vec<Srv>) -> Vec<Target> {
    records.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.weight.cmp(&a.weight))
            .then(b.direct_tls.cmp(&a.direct_tls))
    });
    records
        .into_iter()
        .map(|r| Target {
            host: r.host,
            port: r.port,
            direct_tls: r.direct_tls,
            source: r.source,
            addrs: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, direct_tls: bool, host: &str) -> Srv {
        Srv {
            priority,
            weight,
            direct_tls,
            host: host.into(),
            port: 5269,
            source: "test",
        }
    }

    /// RFC 2782 (priority, then weight) and XEP-0368 §3 (direct TLS first among equals).
    #[test]
    fn srv_order() {
        let ordered = order(vec![
            srv(20, 0, false, "backup"),
            srv(10, 5, false, "light"),
            srv(10, 50, false, "heavy"),
            srv(10, 50, true, "heavy-tls"),
        ]);
        let hosts: Vec<&str> = ordered.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts, ["heavy-tls", "heavy", "light", "backup"]);
    }

    /// `[s2s.hosts]` answers before DNS, case-insensitively.
    #[tokio::test]
    async fn overrides_first() {
        let addr: SocketAddr = "127.0.0.2:5269".parse().unwrap_or_else(|_| unreachable!());
        let r = Resolver::new(HashMap::from([("example.org".to_owned(), vec![addr])]));
        let t = r.targets("Example.ORG.").await;
        assert_eq!(
            t,
            Ok(vec![Target {
                host: "127.0.0.2".into(),
                port: 5269,
                direct_tls: false,
                source: "[s2s.hosts]",
                addrs: vec![addr],
            }])
        );
    }
}
