//! XEP-0215 External Service Discovery (`urn:xmpp:extdisco:2`): the server tells its own users
//! which STUN and TURN servers to use for audio and video calls, with time-limited TURN
//! credentials derived from a secret shared with the TURN server.
//!
//! # Procedure
//!
//! - Only a local account (a JID with a user at one of this server's hosts) is answered;
//!   anyone else gets `<forbidden/>` (§2: "forbidden if the requesting entity does not have
//!   permission to receive the list").
//! - `<services/>` get (§3.1): every configured service, in configuration order; with a `type`
//!   attribute (§3.2), only services of that type, and the result's `<services/>` carries the
//!   same `type`.
//! - `<credentials/>` get (§3.3): each `<service/>` child MUST name `host` and `type`
//!   (`<bad-request/>` otherwise; no child at all is `<bad-request/>` too) and MAY name `port`;
//!   the result lists every configured service that matches one of them, `<item-not-found/>`
//!   when none does.
//! - A `restricted` service carries `restricted='1'` and credentials in both answers (clients
//!   that only ask for `<services/>`, as most do, need no second request): the TURN REST API
//!   scheme coturn implements with `use-auth-secret` (draft-uberti-behave-turn-rest-00 §2.2):
//!   `username` is `<expiry unix time>:<requester's bare JID>`, `password` is
//!   base64(HMAC-SHA1(secret, username)), and `expires` (§2 table) is the expiry as an XEP-0082
//!   UTC DateTime.
//! - §5: the server advertises the `urn:xmpp:extdisco:2` feature; a server without configured
//!   services does not run this module, so the request gets `<service-unavailable/>`.
//!
//! # Hazards
//!
//! * Credentials are valid at the TURN server until they expire, whatever happens to the
//!   account meanwhile: keep `credential_ttl` short enough (default one day).
//! * Pushes of updated lists (§3.2) are not sent: the configuration only changes at restart.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use starling_module_api::{
    Context, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar,
};
use starling_proto::{BareJid, Element, StanzaError, StanzaErrorCondition};

use crate::clock;

/// The `urn:xmpp:extdisco:2` namespace.
pub const NS: &str = "urn:xmpp:extdisco:2";

/// One external service, as configured (`[external_services] services`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// `stun`, `turn` or `turns`.
    pub kind: &'static str,
    pub host: String,
    pub port: u16,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// Whether clients get credentials for it (derived from the secret).
    pub restricted: bool,
}

/// The module's settings.
#[derive(Clone, Debug)]
pub struct ExternalServicesOptions {
    pub services: Vec<Service>,
    /// The secret shared with the TURN server; required when a service is restricted (the
    /// configuration checks it).
    pub turn_secret: Option<String>,
    /// How long credentials stay valid.
    pub credential_ttl: Duration,
}

/// The XEP-0215 module. See the module docs.
pub struct ExternalServices {
    options: ExternalServicesOptions,
}

impl ExternalServices {
    pub fn new(options: ExternalServicesOptions) -> ExternalServices {
        ExternalServices { options }
    }

    /// The `<service/>` element of `service` for `requester` at unix time `now`.
    fn service_element(&self, service: &Service, requester: &BareJid, now: i64) -> Element {
        let mut element = Element::new("service", NS)
            .with_attr("type", service.kind)
            .with_attr("host", service.host.as_str())
            .with_attr("port", service.port.to_string())
            .with_attr("transport", service.transport);
        if service.restricted {
            element.set_attr("restricted", "1");
            if let Some(secret) = &self.options.turn_secret {
                let ttl = i64::try_from(self.options.credential_ttl.as_secs()).unwrap_or(0);
                let expiry = now.saturating_add(ttl);
                let (username, password) = turn_credentials(secret, expiry, requester);
                element.set_attr("username", username);
                element.set_attr("password", password);
                element.set_attr("expires", clock::format_unix(expiry));
            }
        }
        element
    }

    fn services(&self, req: &IqRoute<'_>, requester: &BareJid, now: i64) -> IqOutcome {
        let wanted = req.payload.attr("type");
        let mut result = Element::new("services", NS).with_opt_attr("type", wanted);
        for service in &self.options.services {
            if wanted.is_none_or(|t| t == service.kind) {
                result.append_child(self.service_element(service, requester, now));
            }
        }
        IqOutcome::Result(Some(result))
    }

    fn credentials(&self, req: &IqRoute<'_>, requester: &BareJid, now: i64) -> IqOutcome {
        let asked: Vec<&Element> = req
            .payload
            .children()
            .filter(|c| c.is("service", NS))
            .collect();
        if asked.is_empty() {
            return bad_request("name the service: <service host='…' type='…'/>");
        }
        let mut matched: Vec<&Service> = Vec::new();
        for a in asked {
            let (Some(host), Some(kind)) = (a.attr("host"), a.attr("type")) else {
                // §3.3: the 'host' and 'type' attributes MUST be included.
                return bad_request("a service needs its host and type");
            };
            let port = a.attr("port");
            for service in &self.options.services {
                let same = service.host == host
                    && service.kind == kind
                    && port.is_none_or(|p| p == service.port.to_string());
                if same && !matched.contains(&service) {
                    matched.push(service);
                }
            }
        }
        if matched.is_empty() {
            // §3.3: "an appropriate stanza error, such as <item-not-found/>".
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ItemNotFound));
        }
        let mut result = Element::new("credentials", NS);
        for service in matched {
            result.append_child(self.service_element(service, requester, now));
        }
        IqOutcome::Result(Some(result))
    }
}

fn bad_request(text: &str) -> IqOutcome {
    IqOutcome::Error(StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text))
}

/// The TURN REST API credentials (draft-uberti-behave-turn-rest-00 §2.2, coturn's
/// `use-auth-secret`) valid until unix time `expiry` for `user`: the username
/// `<expiry>:<bare JID>` and the password base64(HMAC-SHA1(secret, username)).
pub fn turn_credentials(secret: &str, expiry: i64, user: &BareJid) -> (String, String) {
    let username = format!("{expiry}:{user}");
    let password = match <Hmac<Sha1> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; kept total rather than unwrapped.
        Err(_) => String::new(),
    };
    (username, password)
}

impl Module for ExternalServices {
    fn name(&self) -> &'static str {
        "external_services"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Server, IqType::Get, NS, "services", self.clone());
        reg.iq(IqTarget::Server, IqType::Get, NS, "credentials", self);
        // §5: support is advertised with this feature.
        reg.server_feature(NS);
    }
}

#[async_trait]
impl IqHandler for ExternalServices {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        let requester = req.from.to_bare();
        let local_user =
            requester.node().is_some() && ctx.is_local_domain(requester.domain().as_str());
        if !local_user {
            // §2: forbidden to an entity without permission: only this server's users.
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        let now = starling_accounts::unix_now();
        if req.payload.name() == "credentials" {
            self.credentials(&req, &requester, now)
        } else {
            self.services(&req, &requester, now)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// draft-uberti-behave-turn-rest-00 §2.2, checked against HMAC-SHA1 built by hand from
    /// RFC 2104's construction.
    #[test]
    fn credentials_follow_the_turn_rest_scheme() {
        let user = BareJid::new("juliet@example.org").unwrap();
        let (username, password) = turn_credentials("0123456789abcdef", 1_700_000_000, &user);
        assert_eq!(username, "1700000000:juliet@example.org");
        assert_eq!(
            password,
            rfc2104_hmac_sha1_b64(b"0123456789abcdef", username.as_bytes())
        );
    }

    /// RFC 2104 §2: H(K ^ opad, H(K ^ ipad, text)), with a key shorter than the block.
    fn rfc2104_hmac_sha1_b64(key: &[u8], text: &[u8]) -> String {
        use sha1::Digest as _;
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha1::new()
            .chain_update(&ipad)
            .chain_update(text)
            .finalize();
        let outer = Sha1::new()
            .chain_update(&opad)
            .chain_update(inner)
            .finalize();
        base64::engine::general_purpose::STANDARD.encode(outer)
    }
}
