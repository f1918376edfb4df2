//! `starling check-federation DOMAIN`: what works with a remote server, and for what does not,
//! why, in one line each.
//!
//! It resolves the domain (SRV for both services, else A/AAAA), connects to every target with
//! its method (STARTTLS, direct TLS), shows the certificate chain the peer presents and which of
//! its names match, and tries SASL EXTERNAL and dialback for real from one of our domains (the
//! remote server then calls this server back to verify the dialback key: that step needs the
//! running server reachable on its s2s port, and works because both use the dialback secret
//! kept in the data directory).

use std::fmt::Write as _;

use rustls_pki_types::CertificateDer;

use crate::S2s;
use crate::outbound::{self, AuthMethod};
use crate::resolve::Target;
use crate::verify::LeafInfo;

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// It works.
    pub ok: bool,
    /// What was tried.
    pub what: String,
    /// What came of it: details when it works, the reason when it does not.
    pub detail: String,
}

/// Everything found, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The findings.
    pub findings: Vec<Finding>,
    /// Certificate chains seen, per target, as text.
    pub chains: Vec<(String, Vec<String>)>,
}

impl Report {
    fn push(&mut self, ok: bool, what: impl Into<String>, detail: impl Into<String>) {
        self.findings.push(Finding {
            ok,
            what: what.into(),
            detail: detail.into(),
        });
    }

    /// Whether messages can flow: some target connected and authenticated.
    pub fn federates(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.ok && f.what.starts_with("authentication"))
    }

    /// The report as the command prints it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{} {}: {}",
                if f.ok { "ok  " } else { "FAIL" },
                f.what,
                f.detail
            );
        }
        for (target, chain) in &self.chains {
            let _ = writeln!(out, "\ncertificate chain of {target}:");
            for (i, c) in chain.iter().enumerate() {
                let _ = writeln!(out, "  {i}: {c}");
            }
        }
        out
    }
}

fn describe_chain(chain: &[CertificateDer<'static>]) -> Vec<String> {
    chain
        .iter()
        .map(|c| match LeafInfo::parse(c) {
            Ok(info) => {
                let names: Vec<String> = info.names.iter().map(ToString::to_string).collect();
                format!(
                    "subject {}; issuer {}; valid {} to {}; names [{}]; usage [{}]",
                    info.subject,
                    info.issuer,
                    info.not_before,
                    info.not_after,
                    names.join(", "),
                    if info.usages.is_empty() {
                        "any".to_owned()
                    } else {
                        info.usages.join(", ")
                    }
                )
            }
            Err(e) => e.to_string(),
        })
        .collect()
}

/// `step` within `[s2s] connect_timeout` (a peer that never answers a dialback request, say).
async fn bounded(
    shared: &crate::Shared,
    step: impl std::future::Future<Output = Result<outbound::Established, outbound::Failure>>,
) -> Result<outbound::Established, outbound::Failure> {
    let limit = shared.settings.connect_timeout;
    tokio::time::timeout(limit, step).await.unwrap_or_else(|_| {
        Err(outbound::Failure {
            condition: starling_proto::StanzaErrorCondition::RemoteServerTimeout,
            reason: format!(
                "no answer within {} s ([s2s] connect_timeout)",
                limit.as_secs()
            ),
        })
    })
}

impl S2s {
    /// Checks federation from `local` (a domain served here) to `remote`.
    pub async fn check(&self, local: &str, remote: &str) -> Report {
        let shared = &self.shared;
        let mut report = Report::default();
        if local == "localhost" || local.ends_with(".localhost") || !local.contains('.') {
            report.push(
                false,
                format!("our domain {local}"),
                "is not a public DNS name: other servers cannot connect back to it (dialback) or \
                 find a certificate for it; federation needs a real domain in [[host]]",
            );
        }
        let targets: Vec<Target> = match shared.resolver.targets(remote).await {
            Ok(t) => {
                let list: Vec<String> = t.iter().map(ToString::to_string).collect();
                report.push(true, format!("DNS for {remote}"), list.join("; "));
                t
            }
            Err(e) => {
                report.push(false, format!("DNS for {remote}"), e.to_string());
                return report;
            }
        };
        for target in targets.iter().take(4) {
            let addrs = match shared.resolver.addresses(target).await {
                Ok(a) => a,
                Err(e) => {
                    report.push(false, format!("address of {target}"), e.to_string());
                    continue;
                }
            };
            for addr in addrs.into_iter().take(2) {
                let label = outbound::place(target, addr);
                // Failures say where already: the findings name the place once.
                let why = |f: outbound::Failure| {
                    f.reason
                        .strip_prefix(&format!("{label}: "))
                        .map(str::to_owned)
                        .unwrap_or(f.reason)
                };
                let opened = match outbound::open_at(shared, local, remote, target, addr).await {
                    Ok(o) => o,
                    Err(f) => {
                        report.push(false, format!("connection to {label}"), why(f));
                        continue;
                    }
                };
                report.push(
                    true,
                    format!("connection to {label}"),
                    if opened.stream.is_tls() {
                        "connected, TLS on"
                    } else {
                        "connected WITHOUT TLS"
                    },
                );
                let chain = opened.stream.peer_certificates();
                if !chain.is_empty() {
                    report.chains.push((label.clone(), describe_chain(&chain)));
                }
                match &opened.certificate {
                    Ok(()) => report.push(true, format!("certificate of {label}"), format!("verifies for {remote}")),
                    Err(p) => report.push(false, format!("certificate of {label}"), format!("{p} (dialback can still authenticate this server, but {remote} cannot use SASL EXTERNAL with it either way)")),
                }
                let offers_external = opened
                    .features
                    .get_child("mechanisms", starling_proto::ns::SASL)
                    .is_some_and(|m| m.children().any(|c| c.text().trim() == "EXTERNAL"));
                let offers_dialback = opened
                    .features
                    .has_child("dialback", crate::dialback::FEATURE_NS);
                report.push(
                    offers_external || offers_dialback,
                    format!("authentication offered by {label}"),
                    match (offers_external, offers_dialback) {
                        (true, true) => "SASL EXTERNAL and dialback".to_owned(),
                        (true, false) => "SASL EXTERNAL".to_owned(),
                        (false, true) => format!("dialback only (SASL EXTERNAL is not offered: {remote} does not accept our certificate for {local})"),
                        (false, false) => "neither SASL EXTERNAL nor dialback".to_owned(),
                    },
                );
                match bounded(
                    shared,
                    outbound::authenticate(shared, opened, local, remote),
                )
                .await
                {
                    Ok(est) => {
                        let mut est = est;
                        report.push(
                            true,
                            format!("authentication as {local} at {label}"),
                            format!(
                                "{}{}",
                                est.method.as_str(),
                                if est.bidi {
                                    ", bidirectional (XEP-0288)"
                                } else {
                                    ""
                                }
                            ),
                        );
                        if est.method == AuthMethod::Dialback && offers_external {
                            report.push(
                                false,
                                format!("SASL EXTERNAL as {local} at {label}"),
                                "refused; dialback was used instead".to_owned(),
                            );
                        }
                        est.stream.close(None, (None, None)).await;
                        if est.method == AuthMethod::SaslExternal {
                            // Dialback on its own, on a second connection: what servers that
                            // cannot verify our certificate will use.
                            let dialback = match outbound::open_at(
                                shared, local, remote, target, addr,
                            )
                            .await
                            {
                                Ok(o) => {
                                    bounded(
                                        shared,
                                        outbound::authenticate_with(
                                            shared, o, local, remote, false,
                                        ),
                                    )
                                    .await
                                }
                                Err(f) => Err(f),
                            };
                            match dialback {
                                Ok(mut d) => {
                                    report.push(
                                        true,
                                        format!("dialback as {local} at {label}"),
                                        "works too",
                                    );
                                    d.stream.close(None, (None, None)).await;
                                }
                                Err(f) => report.push(
                                    false,
                                    format!("dialback as {local} at {label}"),
                                    why(f),
                                ),
                            }
                        }
                    }
                    Err(f) => report.push(
                        false,
                        format!("authentication as {local} at {label}"),
                        why(f),
                    ),
                }
            }
        }
        report
    }
}
