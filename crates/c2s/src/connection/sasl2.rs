//! XEP-0388 SASL2 on a client connection, with what it carries inline: XEP-0386 Bind2 (and the
//! session features enabled with it: XEP-0198, XEP-0280 through the module that owns it,
//! XEP-0352), XEP-0198 resumption, and XEP-0484 FAST tokens.
//!
//! # Procedure
//!
//! `<authenticate mechanism>` starts an exchange like legacy `<auth/>` (the same mechanisms,
//! the same throttle, the same attempt limit, the same [`login_gate`](Connection::login_gate)),
//! or, for an HT mechanism, a FAST login that completes in this one message. Its other children
//! (`<user-agent/>`, `<resume/>`, `<bind/>`, `<request-token/>`, `<fast/>`) wait in
//! [`Sasl2Pending`] for the outcome: a failure ignores them (§2.6.2). On success, in this order
//! (XEP-0386 §3.2, XEP-0198 §9.2): resume if asked (then Bind2 is skipped); else bind if asked,
//! with the inline features; issue or rotate a FAST token; then `<success/>` with everything,
//! and the stream features of the authenticated stream (not after a resumption, XEP-0198 §9.2).
//! The stream is not restarted: the parser takes the post-authentication limits from the next
//! stanza on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use starling_accounts::fast::{self, FastRefusal};
use starling_module_api::{Event, random_id};
use starling_proto::{BareJid, Element, StreamError, StreamErrorCondition, ns};
use starling_sasl::ht::{self, HtMechanism};
use starling_sasl::{Mechanism, SaslFailure, ServerSession};

use super::{Connection, Flow, IP_LOCKED_TEXT, postauth_limits};
use crate::negotiation::Phase;

/// The `<authenticate/>` of an exchange in progress, without its initial response.
pub(crate) struct Sasl2Pending {
    request: Element,
}

/// A FAST login that succeeded: what the success does with the token.
pub(super) struct FastUsed {
    mechanism: HtMechanism,
    nonce: Vec<u8>,
    rotate: bool,
    invalidate: bool,
}

/// Whether `id` is a UUID (RFC 9562 §4: 8-4-4-4-12 hexadecimal digits), as XEP-0388 §2.3 requires
/// of `<user-agent id/>`.
fn is_uuid(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A boolean XML attribute (`true`/`1`).
fn flag(e: &Element, name: &str) -> bool {
    matches!(e.attr(name), Some("true" | "1"))
}

impl Connection {
    /// The FAST mechanisms this connection offers (XEP-0484 §4.1): those whose channel binding
    /// it has, over TLS, when FAST is on.
    pub(super) fn fast_mechanisms(&self) -> Vec<HtMechanism> {
        // A token logs in to an account again: an anonymous host's accounts are one-off.
        if !self.secure
            || self.shared.settings.fast_token_lifetime.is_zero()
            || self.anonymous_host()
        {
            return Vec::new();
        }
        HtMechanism::ALL
            .into_iter()
            .filter(|m| m.cb_data(&self.bindings).is_some())
            .collect()
    }

    /// Whether XEP-0198 resumption is on (so inline `<resume/>` is offered, and `<enable/>` may
    /// ask for it): not on an anonymous host, whose next login is another account.
    pub(super) fn resumption_offered(&self) -> bool {
        !self.shared.settings.sm.resume_timeout.is_zero() && !self.anonymous_host()
    }

    /// XEP-0388 §2.1 `<authentication/>`: the mechanisms legacy SASL offers on this connection,
    /// and in `<inline/>` exactly what is implemented. Only over TLS (§4), and only with a
    /// mechanism to offer.
    pub(super) fn sasl2_feature(&self) -> Option<Element> {
        let mechs = self.offered_mechanisms();
        if !self.secure || mechs.is_empty() {
            return None;
        }
        let mut auth = Element::new("authentication", ns::SASL2);
        for m in &mechs {
            auth.append_child(Element::new("mechanism", ns::SASL2).with_text(m.name()));
        }
        let mut inline = Element::new("inline", ns::SASL2);
        // XEP-0386 §3.1: Bind2, with the features it enables inline.
        let mut bind_inline = Element::new("inline", ns::BIND2);
        let mut vars = vec![ns::SM, ns::CSI];
        vars.extend(
            self.shared
                .router
                .server_info()
                .bind_inline_features
                .iter()
                .copied(),
        );
        for var in vars {
            bind_inline.append_child(Element::new("feature", ns::BIND2).with_attr("var", var));
        }
        inline.append_child(Element::new("bind", ns::BIND2).with_child(bind_inline));
        // XEP-0198 §9.2: resumption inline.
        if self.resumption_offered() {
            inline.append_child(Element::new("sm", ns::SM));
        }
        // XEP-0484 §4.1.
        let fast = self.fast_mechanisms();
        if !fast.is_empty() {
            let mut f = Element::new("fast", ns::FAST);
            for m in fast {
                f.append_child(Element::new("mechanism", ns::FAST).with_text(m.name()));
            }
            inline.append_child(f);
        }
        auth.append_child(inline);
        Some(auth)
    }

    /// `<authenticate/>` (XEP-0388 §2.3).
    pub(super) async fn handle_sasl2_authenticate(
        &mut self,
        mut e: Element,
    ) -> Result<Flow, StreamError> {
        let now = std::time::Instant::now();
        // The inline requests wait for the outcome; the failures below end the attempt.
        let initial = e
            .get_child("initial-response", ns::SASL2)
            .map(Element::text);
        e.retain_nodes(|n| {
            !matches!(n, starling_proto::element::Node::Element(c) if c.is("initial-response", ns::SASL2))
        });
        self.sasl2 = Some(Box::new(Sasl2Pending { request: e }));
        let request = self.sasl2.as_deref().map(|p| &p.request);
        let Some(request) = request else {
            return Ok(Flow::Continue);
        };
        let mechanism = request.attr("mechanism").unwrap_or_default().to_owned();
        self.sasl_mechanism = crate::metrics::MechanismLabel::of(request.attr("mechanism"));
        let user_agent = request.get_child("user-agent", ns::SASL2).map(|ua| {
            (
                ua.attr("id").map(str::to_owned),
                ua.get_child("software", ns::SASL2).map(Element::text),
                ua.get_child("device", ns::SASL2).map(Element::text),
            )
        });
        let fast_request = request.get_child("fast", ns::FAST).map(|f| {
            (
                f.attr("count").map(|c| c.trim().parse::<u64>()),
                flag(f, "invalidate"),
            )
        });
        if self
            .shared
            .throttle
            .ip_locked(self.peer.ip(), now)
            .is_some()
        {
            self.sasl_failure(SaslFailure::TemporaryAuthFailure, Some(IP_LOCKED_TEXT));
            return self.check_attempts();
        }
        self.user_agent = None;
        if let Some((id, software, device)) = user_agent {
            match id {
                Some(id) if is_uuid(id.trim()) => {
                    let id = id.trim().to_ascii_lowercase();
                    tracing::info!(id = self.id, user_agent = %id, software, device, "SASL2 user agent");
                    self.user_agent = Some(id.into_boxed_str());
                }
                Some(_) => {
                    self.sasl_failure(
                        SaslFailure::MalformedRequest,
                        Some("the user-agent id must be a UUID (XEP-0388)"),
                    );
                    return self.check_attempts();
                }
                None => {}
            }
        }
        let initial = match initial.as_deref().map(|t| B64.decode(t.trim())) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                self.sasl_failure(SaslFailure::IncorrectEncoding, None);
                return self.check_attempts();
            }
        };
        // XEP-0484: a token login, in this one message.
        if let Some(m) = HtMechanism::from_name(&mechanism) {
            if !self.fast_mechanisms().contains(&m) {
                self.sasl_failure(SaslFailure::InvalidMechanism, None);
                return self.check_attempts();
            }
            let (count, invalidate) = match fast_request {
                Some((Some(Err(_)), _)) => {
                    self.sasl_failure(
                        SaslFailure::MalformedRequest,
                        Some("'count' must be a non-negative integer (XEP-0484)"),
                    );
                    return self.check_attempts();
                }
                Some((count, invalidate)) => (count.and_then(Result::ok), invalidate),
                None => (None, false),
            };
            return Box::pin(self.fast_login(m, initial, count, invalidate)).await;
        }
        let offered = self.offered_mechanisms();
        let Some(mech) = Mechanism::from_name(&mechanism).filter(|m| offered.contains(m)) else {
            self.sasl_failure(SaslFailure::InvalidMechanism, None);
            return self.check_attempts();
        };
        let domain = self.domain.clone().unwrap_or_default();
        // XEP-0388 §2.2: no <initial-response/> means none; an empty one is empty data.
        let (mut session, step) = ServerSession::start(
            mech,
            &domain,
            self.bindings.clone(),
            self.plus_offered(),
            initial.as_deref(),
        );
        session.set_unknown_user_iterations(self.shared.settings.scram_iterations);
        // XEP-0474 §5.1: SASL2's list (the same mechanisms as legacy SASL here).
        self.set_downgrade_protection(&mut session, &offered);
        self.sasl_user = None;
        self.sasl = Some(Box::new(session));
        self.phase = Phase::Sasl2;
        self.sasl_step(step).await
    }

    /// `<response/>` (XEP-0388 §2.4): plain base64, an empty element for no data.
    pub(super) async fn handle_sasl2_response(&mut self, e: &Element) -> Result<Flow, StreamError> {
        let payload = match B64.decode(e.text().trim()) {
            Ok(v) => v,
            Err(_) => {
                self.sasl = None;
                self.phase = Phase::PreAuth;
                self.sasl_failure(SaslFailure::IncorrectEncoding, None);
                return self.check_attempts();
            }
        };
        self.sasl_continue(&payload).await
    }

    /// XEP-0484 §4.4: authenticates with a token through the HT mechanism `m`.
    async fn fast_login(
        &mut self,
        m: HtMechanism,
        initial: Option<Vec<u8>>,
        count: Option<u64>,
        invalidate: bool,
    ) -> Result<Flow, StreamError> {
        let Some(user_agent) = self.user_agent.clone() else {
            // §5.1: clients using FAST MUST send <user-agent id/>; tokens are bound to it.
            self.sasl_failure(
                SaslFailure::MalformedRequest,
                Some("FAST needs a <user-agent id/> (XEP-0484)"),
            );
            return self.check_attempts();
        };
        let parsed = initial
            .as_deref()
            .ok_or(SaslFailure::MalformedRequest)
            .and_then(ht::parse_message);
        let (username, proof) = match parsed {
            Ok(p) => p,
            Err(f) => {
                self.sasl_failure(f, None);
                return self.check_attempts();
            }
        };
        let Some(account) = self.sasl_account(&username) else {
            self.sasl_user = None;
            self.throttle_failure().await;
            self.sasl_failure(SaslFailure::NotAuthorized, None);
            return self.check_attempts();
        };
        if let Some((cond, text)) = self.login_gate(&account).await? {
            self.sasl_failure(cond, Some(&text));
            return self.check_attempts();
        }
        let (Some(node), domain) = (account.node(), account.domain().as_str().to_owned()) else {
            self.sasl_failure(SaslFailure::NotAuthorized, None);
            return self.check_attempts();
        };
        let localpart = node.as_str().to_owned();
        self.sasl_user = Some(localpart.clone());
        let cb = m.cb_data(&self.bindings).unwrap_or_default().to_vec();
        let shared = self.shared.clone();
        let owner = fast::TokenOwner {
            localpart: &localpart,
            domain: &domain,
            user_agent: &user_agent,
        };
        let attempt = fast::TokenProof {
            mechanism: m,
            cb_data: &cb,
            proof: &proof,
            count,
        };
        let outcome = fast::login(
            shared.stores.fast.as_ref(),
            &shared.secret,
            owner,
            attempt,
            shared.settings.fast_token_lifetime,
            fast::unix_now(),
        )
        .await;
        match outcome {
            Err(e) => {
                tracing::error!(id = self.id, error = %e, "FAST token lookup failed");
                Err(StreamError::new(StreamErrorCondition::InternalServerError))
            }
            Ok(Ok(login)) => {
                // The token is right; the account's rules as for every login path.
                if let Err(refusal) = crate::login::may_log_in(&shared.stores, &account, None).await
                {
                    self.sasl_failure(refusal.failure(), Some(refusal.text()));
                    return self.check_attempts();
                }
                let used = FastUsed {
                    mechanism: m,
                    nonce: login.nonce,
                    rotate: login.rotate,
                    invalidate,
                };
                Box::pin(self.sasl2_success(account, Some(login.responder), Some(used))).await
            }
            Ok(Err(FastRefusal::NoMatch)) => {
                // A wrong token is a guess like a wrong password.
                self.throttle_failure().await;
                self.sasl_failure(SaslFailure::NotAuthorized, None);
                self.check_attempts()
            }
            Ok(Err(FastRefusal::Expired)) => {
                // §5.2: the client falls back to its password.
                self.sasl_failure(
                    SaslFailure::CredentialsExpired,
                    Some("the token has expired"),
                );
                self.check_attempts()
            }
            Ok(Err(FastRefusal::Replayed)) => {
                self.sasl_failure(
                    SaslFailure::NotAuthorized,
                    Some("this 'count' was used already (XEP-0484)"),
                );
                self.check_attempts()
            }
        }
    }

    /// XEP-0388 §2.6.1: authenticated as `account`; the inline requests are processed now.
    pub(super) async fn sasl2_success(
        &mut self,
        account: BareJid,
        additional_data: Option<Vec<u8>>,
        fast_used: Option<FastUsed>,
    ) -> Result<Flow, StreamError> {
        self.sasl = None;
        let Some(pending) = self.sasl2.take() else {
            return Err(StreamError::new(StreamErrorCondition::InternalServerError));
        };
        let request = pending.request;
        tracing::info!(id = self.id, peer = %self.peer, %account, user_agent = self.user_agent.as_deref(),
            fast = fast_used.is_some(), "authenticated (SASL2)");
        self.account = Some(account.clone());
        // No stream restart (§2.6.1): the post-authentication limits from the next stanza.
        self.framing.set_limits(postauth_limits(&self.shared));
        self.phase = Phase::AwaitBind;

        let mut extras: Vec<Element> = Vec::new();
        // XEP-0198 §9.2: a resumption first; if it works, Bind2 is skipped.
        let mut resumed = false;
        if self.resumption_offered()
            && let Some(resume) = request.get_child("resume", ns::SM)
        {
            match self.resume_session(resume).await? {
                Ok(el) => {
                    resumed = true;
                    extras.push(el);
                }
                Err(failed) => extras.push(failed),
            }
        }
        let mut bound_jid = None;
        if !resumed && let Some(bind) = request.get_child("bind", ns::BIND2) {
            match self.bind2(&account, bind).await {
                Some(bound) => {
                    bound_jid = self.bound.as_deref().map(|b| b.jid.clone());
                    extras.push(bound);
                }
                None => {
                    // Authenticated, but no session can be made: the attempt fails whole.
                    self.account = None;
                    self.phase = Phase::PreAuth;
                    self.sasl_attempts += 1;
                    self.write_failure(
                        true,
                        SaslFailure::TemporaryAuthFailure,
                        Some("too many resources bound for this account"),
                    );
                    return self.check_attempts();
                }
            }
        }
        if let Some(token) = self.fast_token(&account, &request, fast_used).await? {
            extras.push(token);
        }
        // §2.6.1: the full JID once a resource is bound (or resumed), else the bare JID.
        let identity = self
            .bound
            .as_deref()
            .map_or_else(|| account.to_string(), |b| b.jid.to_string());
        let mut success = Element::new("success", ns::SASL2);
        if let Some(d) = additional_data {
            success
                .append_child(Element::new("additional-data", ns::SASL2).with_text(B64.encode(d)));
        }
        success
            .append_child(Element::new("authorization-identifier", ns::SASL2).with_text(identity));
        for x in extras {
            success.append_child(x);
        }
        self.framing.write_element(&success, &mut self.out);
        starling_metrics::sasl_success(self.sasl_mechanism.name());
        if resumed {
            // XEP-0198 §9.2: the stream is re-established; no features.
            self.after_resumption().await;
            return Ok(Flow::Continue);
        }
        let features = self.features();
        self.framing.write_element(&features, &mut self.out);
        if let Some(jid) = bound_jid {
            self.shared.router.emit(Event::Bound(jid)).await;
        }
        Ok(Flow::Continue)
    }

    /// XEP-0386 §3.2: binds a resource derived from the client's user agent and `<tag/>`, and
    /// enables the inline features. `<bound/>`, or `None` if the account holds its maximum of
    /// resources.
    async fn bind2(&mut self, account: &BareJid, bind: &Element) -> Option<Element> {
        let tag: String = bind
            .get_child("tag", ns::BIND2)
            .map(|t| t.text().trim().chars().take(64).collect())
            .unwrap_or_default();
        // §3.2.1: stable for the same <tag/> and user agent (XEP-0388 id), which it does not
        // reveal: derived with the server's secret. Without an id, random.
        let generated = match &self.user_agent {
            Some(ua) => self
                .shared
                .secret
                .stable_resource_id(account.as_str(), ua, &tag),
            None => random_id(),
        };
        let with_tag = (!tag.is_empty()).then(|| format!("{tag}/{generated}"));
        // A tag that resourceprep refuses is left out.
        let jid = match with_tag.and_then(|r| account.with_resource_str(&r).ok()) {
            Some(j) => j,
            None => account.with_resource_str(&generated).ok()?,
        };
        // RFC 6120 §7.7.2.2 as for any bind: the same client's older session (same resource)
        // is replaced, which is what XEP-0386 §3.2 asks for "earlier sessions from the same
        // client".
        if !self.bind_jid(account, jid.clone()).await {
            return None;
        }
        let mut bound = Element::new("bound", ns::BIND2);
        let entry = self.shared.router.sessions().get(&jid).await;
        for feature in bind.children() {
            match (feature.ns(), feature.name()) {
                (ns::BIND2, _) => {}
                // XEP-0198 §9.1: <enabled/> (or <failed/>) inside <bound/>.
                (ns::SM, "enable") => {
                    if let Some(answer) = self.sm_enable(feature) {
                        bound.append_child(answer);
                    }
                }
                // XEP-0352: the session begins in that state.
                (ns::CSI, "inactive" | "active") => {
                    if let Some(b) = self.bound.as_deref_mut() {
                        b.inactive = feature.name() == "inactive";
                        b.handle.set_inactive(b.inactive);
                    }
                }
                // Module features (XEP-0280 carbons), through module-api.
                _ => {
                    let Some(entry) = &entry else { continue };
                    match self.shared.router.bind_inline(entry, feature).await {
                        Some(Some(answer)) => bound.append_child(answer),
                        Some(None) => {}
                        None => tracing::debug!(
                            id = self.id,
                            ns = feature.ns(),
                            name = feature.name(),
                            "unknown Bind2 inline feature ignored"
                        ),
                    }
                }
            }
        }
        Some(bound)
    }

    /// XEP-0484 §4.2, §4.5, §4.6: the `<token/>` for `<success/>`, if one is due: asked for with
    /// `<request-token/>`, or the token used is due for rotation (unless it was invalidated);
    /// an invalidated token is deleted.
    async fn fast_token(
        &mut self,
        account: &BareJid,
        request: &Element,
        used: Option<FastUsed>,
    ) -> Result<Option<Element>, StreamError> {
        let shared = self.shared.clone();
        let (Some(node), domain) = (account.node(), account.domain().as_str()) else {
            return Ok(None);
        };
        let store = shared.stores.fast.as_ref();
        let asked = request
            .get_child("request-token", ns::FAST)
            .and_then(|r| r.attr("mechanism"))
            .and_then(HtMechanism::from_name)
            .filter(|m| self.fast_mechanisms().contains(m));
        let Some(ua) = self.user_agent.clone() else {
            if asked.is_some() {
                tracing::debug!(
                    id = self.id,
                    "FAST token asked for without a user-agent id: none issued"
                );
            }
            return Ok(None);
        };
        let fail = |e: starling_storage::StorageError| {
            tracing::error!(error = %e, "FAST token storage failed");
            StreamError::new(StreamErrorCondition::InternalServerError)
        };
        let mut issue = asked;
        if let Some(u) = used {
            if u.invalidate {
                store
                    .revoke(node.as_str(), domain, &ua, &u.nonce)
                    .await
                    .map_err(fail)?;
                tracing::info!(id = self.id, %account, "FAST token invalidated by its client");
            } else if u.rotate && issue.is_none() {
                issue = Some(u.mechanism);
            }
        }
        let Some(m) = issue else {
            return Ok(None);
        };
        let owner = fast::TokenOwner {
            localpart: node.as_str(),
            domain,
            user_agent: &ua,
        };
        let token = fast::issue(
            store,
            &shared.secret,
            owner,
            m,
            shared.settings.fast_token_lifetime,
            fast::unix_now(),
        )
        .await
        .map_err(fail)?;
        tracing::debug!(id = self.id, %account, mechanism = m.name(), "FAST token issued");
        Ok(Some(
            Element::new("token", ns::FAST)
                .with_attr(
                    "expiry",
                    starling_proto::clock::format_unix(token.expires_at),
                )
                .with_attr("token", token.token),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_ids_are_uuids() {
        assert!(is_uuid("d4565fa7-4d72-4749-b3d3-740edbf87770"));
        assert!(is_uuid("D4565FA7-4D72-4749-B3D3-740EDBF87770"));
        assert!(!is_uuid("d4565fa7-4d72-4749-b3d3-740edbf8777"));
        assert!(!is_uuid("d4565fa74d72-4749-b3d3-740edbf877700"));
        assert!(!is_uuid("g4565fa7-4d72-4749-b3d3-740edbf87770"));
        assert!(!is_uuid(""));
    }
}
