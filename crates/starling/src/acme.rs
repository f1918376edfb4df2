//! The ACME service of a server (`[acme]`, crate `starling-acme`): which certificates it keeps,
//! taken from the configuration and the router's component domains.

use std::sync::Arc;
use std::time::Duration;

use starling_config::{AcmeChallenge, Config};
use starling_net::TlsManager;
use starling_router::Router;

/// The ACME service `config` asks for, or `None` when `[acme]` is off. Hosts with configured
/// certificate files are the operator's; every other host gets a certificate for itself and the
/// component domains under it (`conference.`, `pubsub.`, `upload.`: whatever the modules
/// registered, read from the router so a new service is covered without a list here).
pub fn service(
    config: &Config,
    router: &Router,
    tls: &Arc<TlsManager>,
) -> Option<Arc<starling_acme::Acme>> {
    let acme = &config.acme;
    if !acme.enabled {
        return None;
    }
    // Validated: a contact is required when enabled.
    let contact = acme.contact.clone()?;
    let hosts: Vec<starling_acme::HostNames> = config
        .hosts
        .iter()
        .filter(|h| {
            if h.certificate.is_some() {
                tracing::info!(domain = %h.domain, "ACME: the host has certificate files configured; not managing them");
            }
            h.certificate.is_none()
        })
        .map(|h| starling_acme::HostNames {
            domain: h.domain.clone(),
            services: router.components().items_for(&h.domain),
        })
        .collect();
    let targets = starling_acme::targets(&hosts, &config.data_dir);
    let challenge = match acme.challenge {
        AcmeChallenge::Http01 => {
            if !config.http.listen.iter().any(|a| a.port() == 80) {
                tracing::warn!(
                    "ACME: no [http] listen address is on port 80, where the CA validates \
                     (HTTP-01); forward port 80's /.well-known/acme-challenge/ to the HTTP listener"
                );
            }
            starling_acme::ChallengeKind::Http01
        }
        AcmeChallenge::TlsAlpn01 => {
            let tls_ports = config.c2s.direct_tls_listen.iter();
            if !tls_ports
                .chain(&config.http.tls_listen)
                .any(|a| a.port() == 443)
            {
                tracing::warn!(
                    "ACME: neither [c2s] direct_tls_listen nor [http] tls_listen is on port 443, \
                     where the CA validates (TLS-ALPN-01); forward port 443 to one of them \
                     (passing TLS through, not terminating it)"
                );
            }
            starling_acme::ChallengeKind::TlsAlpn01
        }
    };
    let mut settings =
        starling_acme::AcmeSettings::new(acme.directory.clone(), contact, config.data_dir.clone());
    settings.ca_file = acme.ca_file.clone();
    settings.renew_before = Duration::from_secs(acme.renew_before_days.saturating_mul(86_400));
    settings.challenge = challenge;
    Some(starling_acme::Acme::new(
        settings,
        targets,
        tls.clone(),
        starling_acme::Challenges::default(),
    ))
}
