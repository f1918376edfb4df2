//! The renewal loop: every certificate checked at start and whenever its renewal time comes,
//! requested when [`certificate::plan`] says so, installed in place of the old one and
//! hot-swapped through [`TlsManager::install_managed`] (new handshakes get it; established connections
//! keep theirs). A failure is one warning line naming the domain, the ACME problem type and the
//! detail, and the next attempt comes after a delay that doubles with each failure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use instant_acme::Account;
use starling_net::TlsManager;
use tokio_util::sync::CancellationToken;

use crate::certificate::{self, CertInfo, Plan, unix_seconds};
use crate::challenge::{ChallengeKind, Challenges};
use crate::issue::{self, Failure, Responder};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How the service talks to its CA and when it renews.
#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory: String,
    /// The account's contact, `mailto:` URL.
    pub contact: String,
    /// A PEM root to trust for the CA's own HTTPS instead of the system's (a private or test
    /// CA); `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Renew this long before expiry (or with a third of the lifetime left, if sooner).
    pub renew_before: Duration,
    /// Where the account lives (`<data_dir>/acme/account.json`).
    pub data_dir: PathBuf,
    /// The delay after a first failure; doubled after each further one, up to `retry_max`.
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// The longest the service sleeps between checks (certificate files replaced by hand
    /// are noticed then).
    pub recheck: Duration,
    /// The challenge the CA is asked to validate (default HTTP-01).
    pub challenge: ChallengeKind,
}

impl AcmeSettings {
    /// Settings with the default timings: retries after 10 minutes, doubling up to 12 hours,
    /// a check at least every 12 hours.
    pub fn new(directory: String, contact: String, data_dir: PathBuf) -> Self {
        AcmeSettings {
            directory,
            contact,
            ca_file: None,
            renew_before: Duration::from_secs(30 * 86_400),
            data_dir,
            retry_first: Duration::from_secs(600),
            retry_max: Duration::from_secs(12 * 3600),
            recheck: Duration::from_secs(12 * 3600),
            challenge: ChallengeKind::Http01,
        }
    }
}

/// One certificate to keep: a host and its service subdomains, and the files the TLS manager
/// reads for the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The names, the host first (it is the name logs and status use).
    pub names: Vec<String>,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// What the service knows of one certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The certificate installed last (or found valid on disk).
    pub certificate: Option<CertInfo>,
    /// How many requests failed in a row.
    pub failures: u32,
    /// The failures of the last attempt (empty after a success), host first; after a success
    /// without some subdomains, theirs.
    pub last_failures: Vec<Failure>,
    /// Certificates installed since start.
    pub installed: u32,
    /// After a failure: no new request before this time.
    pub retry_at: Option<SystemTime>,
}

/// The ACME service of a server.
pub struct Acme {
    settings: AcmeSettings,
    targets: Vec<Target>,
    responder: Responder,
    tls: Arc<TlsManager>,
    account: tokio::sync::Mutex<Option<Account>>,
    status: Mutex<HashMap<String, Status>>,
    /// Signalled after every attempt (tests wait on it).
    changed: tokio::sync::Notify,
}

impl Acme {
    /// A service for `targets`, installing into `tls`, answering HTTP-01 challenges from
    /// `challenges` (serve them with [`routes`](crate::routes)) or TLS-ALPN-01 ones from `tls`'s
    /// [`acme_validations`](TlsManager::acme_validations), as `settings.challenge` says.
    pub fn new(
        settings: AcmeSettings,
        targets: Vec<Target>,
        tls: Arc<TlsManager>,
        challenges: Challenges,
    ) -> Arc<Self> {
        let responder = Responder {
            kind: settings.challenge,
            challenges,
            validations: tls.acme_validations(),
        };
        Arc::new(Acme {
            settings,
            targets,
            responder,
            tls,
            account: tokio::sync::Mutex::new(None),
            status: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// The pending HTTP-01 challenges, for [`routes`](crate::routes).
    pub fn challenges(&self) -> Challenges {
        self.responder.challenges.clone()
    }

    /// The challenge the CA is asked to validate.
    pub fn challenge(&self) -> ChallengeKind {
        self.responder.kind
    }

    /// The certificates kept.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// What is known of `domain`'s certificate (a host, the first name of a target).
    pub fn status(&self, domain: &str) -> Option<Status> {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(domain)
            .cloned()
    }

    /// Waits until `check` holds for `domain`'s status, re-evaluated after each attempt.
    pub async fn wait_for(&self, domain: &str, check: impl Fn(&Status) -> bool) -> Status {
        loop {
            let notified = self.changed.notified();
            if let Some(status) = self.status(domain).filter(|s| check(s)) {
                return status;
            }
            notified.await;
        }
    }

    /// Checks every certificate at once and then whenever one is due, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let now = SystemTime::now();
        let mut next: Vec<SystemTime> = vec![now; self.targets.len()];
        loop {
            for (i, target) in self.targets.iter().enumerate() {
                if next.get(i).is_some_and(|t| *t <= SystemTime::now()) {
                    let at = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        at = self.attempt(target) => at,
                    };
                    if let Some(slot) = next.get_mut(i) {
                        *slot = at;
                    }
                    self.changed.notify_waiters();
                }
            }
            let now = SystemTime::now();
            let soonest = next
                .iter()
                .min()
                .copied()
                .unwrap_or(now + self.settings.recheck);
            let sleep = soonest
                .duration_since(now)
                .unwrap_or_default()
                .min(self.settings.recheck);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// One look at `target`: a request if one is needed. Returns when to look again.
    async fn attempt(&self, target: &Target) -> SystemTime {
        let host = target.names.first().cloned().unwrap_or_default();
        let now = SystemTime::now();
        let path = target.certificate.clone();
        let current = match tokio::task::spawn_blocking(move || certificate::read_info(&path)).await
        {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                tracing::warn!(domain = %host, error = %e, "ACME: the certificate on disk is unreadable; requesting a new one");
                None
            }
            Err(_) => None,
        };
        let reason = match certificate::plan(
            current.as_ref(),
            &target.names,
            self.settings.renew_before,
            now,
        ) {
            Plan::RenewAt(at) => {
                self.update(&host, |s| s.certificate = current.clone());
                tracing::debug!(domain = %host, renew_at = unix_seconds(at), "ACME: certificate good");
                return at;
            }
            Plan::Issue(reason) => reason,
        };
        // Names left out after a failed validation are asked for again only after the delay.
        if let certificate::Reason::NamesMissing(_) = reason
            && let Some(retry) = self.retry_pending(&host, current.as_ref(), now)
        {
            return retry;
        }
        tracing::info!(domain = %host, names = %target.names.join(", "), %reason, challenge = %self.responder.kind, "ACME: requesting a certificate");
        let result = match self.account(&host).await {
            Ok(account) => issue::issue(&account, &self.responder, &target.names).await,
            Err(failure) => Err(vec![failure]),
        };
        match result {
            Ok(issued) => self.install(target, &host, issued).await,
            Err(failures) => self.failed(&host, failures, now),
        }
    }

    /// After a certificate was installed without some names: when to ask for them again, if
    /// that is later than now.
    fn retry_pending(
        &self,
        host: &str,
        current: Option<&CertInfo>,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let status = self.status(host)?;
        if status.last_failures.is_empty() || current.is_none() {
            return None;
        }
        status.retry_at.filter(|at| *at > now)
    }

    async fn account(&self, host: &str) -> Result<Account, Failure> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let account = crate::account::load_or_create(
            &self.settings.data_dir,
            &self.settings.directory,
            &self.settings.contact,
            self.settings.ca_file.as_deref(),
            host,
        )
        .await?;
        *slot = Some(account.clone());
        Ok(account)
    }

    async fn install(&self, target: &Target, host: &str, issued: issue::Issued) -> SystemTime {
        let now = SystemTime::now();
        let cert_path = target.certificate.clone();
        let tls = self.tls.clone();
        let chain = issued.chain_pem.clone();
        let domain = host.to_owned();
        let written = tokio::task::spawn_blocking(move || {
            tls.install_managed(&domain, chain.as_bytes(), issued.key_pem.as_bytes())
                .map_err(|e| e.to_string())?;
            certificate::read_info(&cert_path).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        let info = match written {
            Ok(Some(info)) => info,
            Ok(None) => {
                let failure = Failure::new(host, "install failed", "the certificate vanished");
                return self.failed(host, vec![failure], now);
            }
            Err(detail) => {
                return self.failed(
                    host,
                    vec![Failure::new(host, "install failed", detail)],
                    now,
                );
            }
        };
        tracing::info!(
            domain = %host,
            names = %issued.names.join(", "),
            issuer = %info.issuer,
            serial = %info.serial,
            not_after = unix_seconds(info.not_after),
            "ACME: certificate installed"
        );
        let renew_at =
            certificate::renewal_time(info.not_before, info.not_after, self.settings.renew_before);
        let dropped = issued.dropped;
        for failure in &dropped {
            tracing::warn!(
                "ACME: {} left out of {host}'s certificate: {}: {}",
                failure.domain,
                failure.problem,
                failure.detail
            );
        }
        let mut retry = None;
        self.update(host, |s| {
            s.certificate = Some(info.clone());
            s.installed += 1;
            if dropped.is_empty() {
                s.failures = 0;
            } else {
                s.failures += 1;
                retry = s.last_attempt_delay(&self.settings);
            }
            s.retry_at = retry.map(|d| now + d);
            s.last_failures = dropped.clone();
        });
        match retry {
            Some(delay) => renew_at.min(now + delay),
            None => renew_at,
        }
    }

    /// Records a failed request and logs it on one line. Returns when to try again.
    fn failed(&self, host: &str, failures: Vec<Failure>, now: SystemTime) -> SystemTime {
        let mut delay = self.settings.retry_first;
        self.update(host, |s| {
            s.failures += 1;
            delay = s.last_attempt_delay(&self.settings).unwrap_or(delay);
            s.retry_at = Some(now + delay);
            s.last_failures = failures.clone();
        });
        if let Some(first) = failures.first() {
            // One line: the first failure in full, the others by name and problem type.
            let others: Vec<String> = failures
                .iter()
                .skip(1)
                .map(|f| format!("{}: {}", f.domain, f.problem))
                .collect();
            let others = if others.is_empty() {
                String::new()
            } else {
                format!(" (also {})", others.join(", "))
            };
            tracing::warn!(
                retry_in_s = delay.as_secs(),
                "ACME: no certificate for {}: {}: {}{others}",
                first.domain,
                first.problem,
                first.detail,
            );
        }
        now + delay
    }

    fn update(&self, host: &str, change: impl FnOnce(&mut Status)) {
        let mut map = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        change(map.entry(host.to_owned()).or_default());
    }
}

impl Status {
    /// The delay after the failures counted so far: `retry_first` doubled per further failure,
    /// at most `retry_max`. `None` without failures.
    fn last_attempt_delay(&self, settings: &AcmeSettings) -> Option<Duration> {
        let n = self.failures.checked_sub(1)?;
        let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
        Some(
            settings
                .retry_first
                .saturating_mul(factor)
                .min(settings.retry_max),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_up_to_the_maximum() {
        let mut settings = AcmeSettings::new(String::new(), String::new(), PathBuf::new());
        settings.retry_first = Duration::from_secs(600);
        settings.retry_max = Duration::from_secs(3 * 3600);
        let delay = |failures| {
            Status {
                failures,
                ..Status::default()
            }
            .last_attempt_delay(&settings)
        };
        assert_eq!(delay(0), None);
        assert_eq!(delay(1), Some(Duration::from_secs(600)));
        assert_eq!(delay(2), Some(Duration::from_secs(1200)));
        assert_eq!(delay(5), Some(Duration::from_secs(9600)));
        assert_eq!(delay(6), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(delay(1000), Some(Duration::from_secs(3 * 3600)));
    }
}
