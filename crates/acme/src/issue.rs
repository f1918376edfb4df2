//! One certificate request (RFC 8555 §7.4): a new order for the names, each authorization's
//! challenge answered (HTTP-01 through [`Challenges`], TLS-ALPN-01 through the TLS manager's
//! [`AcmeValidations`]) and declared ready (§7.5.1), the order polled until ready, finalized
//! with a CSR for a new ECDSA P-256 key, and the chain downloaded.
//!
//! A service subdomain whose validation fails (no DNS record for `pubsub.example.org`, say)
//! does not cost the host its certificate: the order is made again without the failed
//! subdomains, and the failure is reported with the certificate. The host's own name failing
//! fails the request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, Problem,
    RetryPolicy,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use starling_net::AcmeValidations;

use crate::challenge::{ChallengeKind, Challenges};

/// Why a name could not be certified: the domain, the ACME problem type (RFC 8555 §6.7, e.g.
/// `urn:ietf:params:acme:error:connection`) or what failed on our side, and the detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub domain: String,
    /// The problem document's `type`; for failures without one (the CA unreachable, a timeout),
    /// a short description of the kind of failure, not a URN.
    pub problem: String,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.domain, self.problem, self.detail)
    }
}

impl Failure {
    pub(crate) fn new(domain: &str, problem: &str, detail: impl Into<String>) -> Self {
        Failure {
            domain: domain.to_owned(),
            problem: problem.to_owned(),
            detail: detail.into(),
        }
    }

    fn from_problem(domain: &str, problem: &Problem) -> Self {
        // A subproblem names the identifier it is about (RFC 8555 §6.7.1): prefer the first.
        if let Some(sub) = problem.subproblems.first() {
            let domain = match &sub.identifier {
                Some(Identifier::Dns(name)) => name.as_str(),
                _ => domain,
            };
            return Failure::new(
                domain,
                sub.r#type.as_deref().unwrap_or("unknown problem"),
                sub.detail.clone().unwrap_or_default(),
            );
        }
        Failure::new(
            domain,
            problem.r#type.as_deref().unwrap_or("unknown problem"),
            problem.detail.clone().unwrap_or_default(),
        )
    }

    pub(crate) fn from_error(domain: &str, error: &instant_acme::Error) -> Self {
        match error {
            instant_acme::Error::Api(problem) => Failure::from_problem(domain, problem),
            instant_acme::Error::Timeout(_) => {
                Failure::new(domain, "timeout", "the CA did not finish the order in time")
            }
            other => Failure::new(domain, "request failed", error_chain(other)),
        }
    }
}

/// An error and its sources on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

/// A certificate obtained.
#[derive(Debug)]
pub struct Issued {
    /// PEM chain, leaf first.
    pub chain_pem: String,
    /// PEM PKCS#8 private key.
    pub key_pem: String,
    /// The names certified (those requested less `dropped`).
    pub names: Vec<String>,
    /// Service subdomains left out because their validation failed.
    pub dropped: Vec<Failure>,
}

/// How long the CA may take to validate and to issue.
fn polling() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(Duration::from_secs(120))
}

/// Where the answers to the CA's challenges go: the kind of challenge chosen, and the tables of
/// both kinds (each shared with what serves it).
#[derive(Clone, Debug)]
pub(crate) struct Responder {
    pub kind: ChallengeKind,
    /// HTTP-01: token → key authorization, served by the challenge route.
    pub challenges: Challenges,
    /// TLS-ALPN-01: name → validation certificate, served by the TLS manager.
    pub validations: AcmeValidations,
}

impl Responder {
    fn challenge_type(&self) -> ChallengeType {
        match self.kind {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }

    /// Publishes the answer to the challenge of `token` for `domain`. Returns what to
    /// [`withdraw`](Self::withdraw) it by.
    fn publish(
        &self,
        domain: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<String, Failure> {
        match self.kind {
            ChallengeKind::Http01 => {
                self.challenges.insert(token, key_authorization);
                Ok(token.to_owned())
            }
            ChallengeKind::TlsAlpn01 => {
                let certificate = crate::tls_alpn::validation_key(domain, key_authorization)
                    .map_err(|detail| {
                        Failure::new(domain, "validation certificate failed", detail)
                    })?;
                self.validations.insert(domain, certificate);
                Ok(domain.to_owned())
            }
        }
    }

    fn withdraw(&self, key: &str) {
        match self.kind {
            ChallengeKind::Http01 => self.challenges.remove(key),
            ChallengeKind::TlsAlpn01 => self.validations.remove(key),
        }
    }
}

/// Requests a certificate for `names` (the host first). On failure, the failures of every name
/// that failed, the host's first.
pub(crate) async fn issue(
    account: &Account,
    responder: &Responder,
    names: &[String],
) -> Result<Issued, Vec<Failure>> {
    let Some(host) = names.first() else {
        return Err(vec![Failure::new("", "no names", "nothing to certify")]);
    };
    match order(account, responder, names).await {
        Ok((chain_pem, key_pem)) => Ok(Issued {
            chain_pem,
            key_pem,
            names: names.to_vec(),
            dropped: Vec::new(),
        }),
        Err(failures) => {
            let host_failed = failures.iter().any(|f| f.domain == *host);
            let remaining: Vec<String> = names
                .iter()
                .filter(|n| !failures.iter().any(|f| f.domain == **n))
                .cloned()
                .collect();
            if host_failed || remaining.len() == names.len() || remaining.is_empty() {
                return Err(sort_host_first(failures, host));
            }
            tracing::info!(
                domain = %host,
                left_out = %failures.iter().map(|f| f.domain.as_str()).collect::<Vec<_>>().join(", "),
                "ACME: requesting the certificate again without the subdomains that failed validation"
            );
            let (chain_pem, key_pem) = order(account, responder, &remaining)
                .await
                .map_err(|f| sort_host_first(f, host))?;
            Ok(Issued {
                chain_pem,
                key_pem,
                names: remaining,
                dropped: failures,
            })
        }
    }
}

fn sort_host_first(mut failures: Vec<Failure>, host: &str) -> Vec<Failure> {
    failures.sort_by_key(|f| f.domain != host);
    failures
}

/// Withdraws the answers it was given when dropped.
struct Published<'a> {
    responder: &'a Responder,
    keys: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for key in &self.keys {
            self.responder.withdraw(key);
        }
    }
}

/// One order, from creation to the downloaded chain. Returns (chain, key) in PEM.
async fn order(
    account: &Account,
    responder: &Responder,
    names: &[String],
) -> Result<(String, String), Vec<Failure>> {
    let host = names.first().map(String::as_str).unwrap_or_default();
    let fail = |e: instant_acme::Error| vec![Failure::from_error(host, &e)];
    let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(fail)?;
    let mut published = Published {
        responder,
        keys: Vec::new(),
    };
    {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization.map_err(fail)?;
            let domain = authorization.identifier().to_string();
            match authorization.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(vec![Failure::new(
                        &domain,
                        "authorization not pending",
                        format!("the CA says the authorization is {other:?}"),
                    )]);
                }
            }
            let kind = responder.kind;
            let Some(mut challenge) = authorization.challenge(responder.challenge_type()) else {
                return Err(vec![Failure::new(
                    &domain,
                    &format!("no {kind} challenge"),
                    format!(
                        "the CA offers no {} challenge for this name",
                        kind.as_str().to_ascii_uppercase()
                    ),
                )]);
            };
            let key_authorization = challenge.key_authorization();
            let key = responder
                .publish(&domain, &challenge.token, key_authorization.as_str())
                .map_err(|failure| vec![failure])?;
            published.keys.push(key);
            challenge
                .set_ready()
                .await
                .map_err(|e| vec![Failure::from_error(&domain, &e)])?;
        }
    }

    let status = match order.poll_ready(&polling()).await {
        Ok(status) => status,
        Err(instant_acme::Error::Api(_)) => OrderStatus::Invalid,
        Err(e) => return Err(fail(e)),
    };
    if status != OrderStatus::Ready {
        return Err(authorization_failures(&mut order, host).await);
    }
    drop(published);

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| vec![Failure::new(host, "key generation failed", e.to_string())])?;
    let csr = rcgen::CertificateParams::new(names.to_vec())
        .and_then(|mut params| {
            params.distinguished_name = rcgen::DistinguishedName::new();
            params.serialize_request(&key)
        })
        .map_err(|e| vec![Failure::new(host, "CSR generation failed", e.to_string())])?;
    order.finalize_csr(csr.der()).await.map_err(fail)?;
    let chain_pem = order.poll_certificate(&polling()).await.map_err(fail)?;
    let key_pem = key.serialize_pem();
    check_pair(&chain_pem, &key_pem)
        .map_err(|detail| vec![Failure::new(host, "unusable certificate", detail)])?;
    Ok((chain_pem, key_pem))
}

/// The failed authorizations of an invalid order, with their challenges' problems
/// (RFC 8555 §7.1.4: the challenge's `error`).
async fn authorization_failures(order: &mut instant_acme::Order, host: &str) -> Vec<Failure> {
    let order_error = order.state().error.clone();
    let mut failures = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = match authorization {
            Ok(a) => a,
            Err(e) => {
                failures.push(Failure::from_error(host, &e));
                break;
            }
        };
        let state = match authorization.refresh().await {
            Ok(state) => state,
            Err(e) => {
                failures.push(Failure::from_error(host, &e));
                continue;
            }
        };
        // Still pending: the CA stopped at another name's failure.
        if state.status != AuthorizationStatus::Invalid {
            continue;
        }
        let domain = state.identifier().to_string();
        let failure = match state.challenges.iter().find_map(|c| c.error.as_ref()) {
            Some(problem) => Failure::from_problem(&domain, problem),
            None => Failure::new(
                &domain,
                "authorization failed",
                format!("the authorization is {:?}", state.status),
            ),
        };
        failures.push(failure);
    }
    if failures.is_empty() {
        failures.push(match order_error {
            Some(problem) => Failure::from_problem(host, &problem),
            None => Failure::new(host, "order invalid", "the CA marked the order invalid"),
        });
    }
    failures
}

/// The chain parses and its leaf belongs to the key: what the TLS manager will check at load,
/// checked before anything is written.
fn check_pair(chain_pem: &str, key_pem: &str) -> Result<(), String> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the chain is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the CA sent no certificate".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| e.to_string())?;
    CertifiedKey::new(chain, signing)
        .keys_match()
        .map_err(|e| format!("the certificate does not match the key: {e}"))
}
