//! Certificates without effort: ACME (RFC 8555) with the HTTP-01 or the TLS-ALPN-01 (RFC 8737)
//! challenge.
//!
//! With `[acme] enabled = true` the server keeps one certificate per virtual host whose
//! certificate it manages (no `certificate`/`key` configured), covering the host and the
//! service subdomains it serves (`conference.`, `pubsub.`, `upload.`: the router's component
//! domains under the host). The certificate replaces the host's files under
//! `<data_dir>/certs/` (the self-signed placeholder until the first one arrives) and is
//! hot-swapped into the [`TlsManager`](starling_net::TlsManager): c2s (STARTTLS and direct TLS)
//! and HTTPS use it for the next handshake, established connections keep theirs. The TLS
//! manager serves a host's certificate for its subdomains' SNI too.
//!
//! Parts:
//! * [`challenge`]: the challenge chosen ([`ChallengeKind`], `[acme] challenge`), the pending
//!   HTTP-01 challenges and the `/.well-known/acme-challenge/{token}` route the HTTP listener
//!   serves;
//! * [`tls_alpn`]: the TLS-ALPN-01 validation certificate of a pending challenge, put in the TLS
//!   manager's [`AcmeValidations`](starling_net::AcmeValidations), which answers `acme-tls/1`
//!   handshakes on c2s direct TLS and HTTPS with it;
//! * `account`: the ACME account, kept in `<data_dir>/acme/account.json` (mode 0600);
//! * `issue`: one request, from order to downloaded chain (instant-acme does the protocol);
//! * [`certificate`]: reading what is on disk, deciding when to renew;
//! * [`service`]: the loop that checks, requests, installs, retries and logs.
//!
//! # Hazards
//!
//! * The CA validates HTTP-01 on port 80 of every name: the HTTP listener must be reachable
//!   there (`[http] listen = ["0.0.0.0:80"]`, or a proxy forwarding the challenge path).
//!   TLS-ALPN-01 is validated on port 443: c2s direct TLS or the HTTPS listener must be
//!   reachable there, without a proxy terminating TLS in front.
//! * Names no public CA certifies (`localhost`, `*.localhost`, IP addresses, single labels) are
//!   left out ([`eligible`]); a host with none left has no target.
//! * Let's Encrypt limits failed validations (five per name and hour): the retry delay starts
//!   at ten minutes and doubles; test against the staging directory first.

mod account;
pub mod certificate;
pub mod challenge;
mod issue;
pub mod service;
pub mod tls_alpn;

use std::net::IpAddr;
use std::path::Path;

pub use account::ACCOUNT_FILE;
pub use challenge::{ChallengeKind, Challenges, routes};
pub use issue::{Failure, Issued};
pub use service::{Acme, AcmeSettings, LETS_ENCRYPT, LETS_ENCRYPT_STAGING, Status, Target};

/// A host whose certificate ACME keeps, with the service domains the server runs for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNames {
    /// The host's domain.
    pub domain: String,
    /// Component domains (`conference.example.org`, ...). Those under the host go into its
    /// certificate; for the first host, also those under no host at all.
    pub services: Vec<String>,
}

/// Whether a public CA can certify `name`: a DNS name with at least two labels, not
/// `localhost` or under it, not an IP address.
pub fn eligible(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() || !name.contains('.') {
        return false;
    }
    !(name == "localhost" || name.ends_with(".localhost"))
}

/// The certificates to keep: one per host, its names the host then its eligible service
/// domains, the files where the TLS manager reads the host's managed certificate.
pub fn targets(hosts: &[HostNames], data_dir: &Path) -> Vec<Target> {
    let under = |name: &str, host: &str| {
        name.strip_suffix(host)
            .is_some_and(|rest| rest.ends_with('.'))
    };
    let mut out = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        if !eligible(&host.domain) {
            tracing::warn!(domain = %host.domain, "ACME: no public CA certifies this name; it keeps its self-signed certificate");
            continue;
        }
        let mut names = vec![host.domain.clone()];
        for service in &host.services {
            let mine = under(service, &host.domain)
                || (i == 0 && !hosts.iter().any(|h| under(service, &h.domain)));
            if mine && eligible(service) && !names.contains(service) {
                names.push(service.clone());
            }
        }
        let (certificate, key) = starling_net::managed_certificate_paths(data_dir, &host.domain);
        out.push(Target {
            names,
            certificate,
            key,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_publicly_certifiable_names() {
        assert!(eligible("example.org"));
        assert!(eligible("conference.example.org"));
        assert!(!eligible("localhost"));
        assert!(!eligible("conference.localhost"));
        assert!(!eligible("127.0.0.1"));
        assert!(!eligible("::1"));
        assert!(!eligible("intranet"));
    }

    #[test]
    fn each_host_gets_its_subdomains_and_the_first_the_homeless_ones() {
        let hosts = [
            HostNames {
                domain: "example.org".into(),
                services: vec![
                    "conference.example.org".into(),
                    "pubsub.example.org".into(),
                    "rooms.elsewhere.net".into(),
                ],
            },
            HostNames {
                domain: "example.net".into(),
                services: vec![
                    "conference.example.net".into(),
                    "rooms.elsewhere.net".into(),
                ],
            },
            HostNames {
                domain: "localhost".into(),
                services: vec!["conference.localhost".into()],
            },
        ];
        let dir = Path::new("/var/lib/starling");
        let t = targets(&hosts, dir);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[0].names,
            [
                "example.org",
                "conference.example.org",
                "pubsub.example.org",
                "rooms.elsewhere.net"
            ]
        );
        assert_eq!(t[0].certificate, dir.join("certs/example.org.crt"));
        assert_eq!(t[0].key, dir.join("certs/example.org.key"));
        assert_eq!(t[1].names, ["example.net", "conference.example.net"]);
    }
}
