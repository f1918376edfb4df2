//! XEP-0077 in-band registration before authentication, with XEP-0445 invitation tokens.
//!
//! A client that has not authenticated may ask for the registration form, present an
//! invitation (`<preauth xmlns='urn:xmpp:pars:0' token='…'/>`, XEP-0445 §4) and register;
//! then it authenticates on the same stream as usual. The rules (who may register, which
//! names and passwords) are `starling_accounts::registration`'s; this file speaks the protocol.
//! Once bound, the same namespace changes the password (§3.3) or removes the account (§3.2):
//! handled here too, because a removal must answer the IQ and then end this stream with
//! `<not-authorized/>` (in that order), and end the account's other sessions.

use starling_accounts::invites::token_hash;
use starling_accounts::registration::{self, Condition, RegisterError};
use starling_module_api::Event;
use starling_proto::{
    BareJid, Element, StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition,
    error_reply, iq_result, ns,
};
use starling_storage::Invite;

use super::{Connection, Flow};

/// An invitation this stream presented (XEP-0445 §4): valid when presented, which is the only
/// time its expiry counts.
pub(super) struct Presented {
    hash: String,
    at: i64,
    invite: Invite,
}

fn stanza_error(err: &RegisterError) -> StanzaError {
    let c = match err.condition() {
        Condition::ServiceUnavailable => StanzaErrorCondition::ServiceUnavailable,
        Condition::NotAllowed => StanzaErrorCondition::NotAllowed,
        Condition::ItemNotFound => StanzaErrorCondition::ItemNotFound,
        Condition::NotAcceptable => StanzaErrorCondition::NotAcceptable,
        Condition::Conflict => StanzaErrorCondition::Conflict,
        Condition::InternalServerError => StanzaErrorCondition::InternalServerError,
    };
    StanzaError::new(c).with_text(err.to_string())
}

/// Addresses the answer to a logged-in session's request as the router does: to the session,
/// from whom it was addressed to (nobody when it had no 'to': the account answered).
fn address_reply(reply: &mut Element, request: &Element, jid: &starling_proto::FullJid) {
    match request.attr("to") {
        Some(to) => reply.set_attr("from", to),
        None => {
            reply.remove_attr("from");
        }
    }
    reply.set_attr("to", jid.to_string());
}

impl Connection {
    /// The pre-authentication stream features of registration (XEP-0445 §3, XEP-0077 §9).
    pub(super) fn registration_features(&self, f: &mut Element) {
        let policy = &self.shared.settings.registration;
        // XEP-0077 §13: only over TLS (the negotiation table refuses it otherwise). Never on an
        // anonymous host: its accounts are made at login.
        if !policy.offered() || !self.secure || self.anonymous_host() {
            return;
        }
        if policy.invites {
            f.append_child(Element::new("register", ns::IBR_TOKEN));
        }
        f.append_child(Element::new("register", ns::REGISTER_FEATURE));
    }

    /// A registration IQ before authentication (admitted by the negotiation table).
    pub(super) async fn handle_register(&mut self, e: Element) -> Result<Flow, StreamError> {
        let mut reply = match self.register_reply(&e).await {
            Ok(r) => r,
            Err(err) => error_reply(&e, &err),
        };
        // Nobody is bound: the reply comes from the server and goes to no address.
        reply.remove_attr("to");
        match self.domain.clone() {
            Some(d) => reply.set_attr("from", d),
            None => {
                reply.remove_attr("from");
            }
        }
        self.emit(reply);
        Ok(Flow::Continue)
    }

    /// Whether a bound session's registration IQ is for this server (rather than, say, a
    /// component's registration, XEP-0077 with a service): no `to`, the domain, or the
    /// account's own bare JID.
    pub(super) fn register_is_ours(&self, e: &Element) -> bool {
        let Some(b) = self.bound.as_deref() else {
            return false;
        };
        match e.attr("to") {
            None => true,
            Some(to) => match starling_proto::Jid::new(to) {
                Ok(j) => {
                    j == b.jid.to_bare()
                        || (j.node().is_none()
                            && j.resource().is_none()
                            && *j.domain() == *b.jid.domain())
                }
                Err(_) => false,
            },
        }
    }

    /// XEP-0077 §3.2 and §3.3 for an authenticated session.
    pub(super) async fn handle_register_bound(&mut self, e: Element) -> Result<Flow, StreamError> {
        let Some(jid) = self.bound.as_ref().map(|b| b.jid.clone()) else {
            return Err(StreamError::new(StreamErrorCondition::NotAuthorized));
        };
        let query = e.children().next().filter(|c| c.is("query", ns::REGISTER));
        let outcome = match (e.attr("type"), query) {
            // §3.2.1 (and §3.1's "already registered"): what the account is.
            (Some("get"), Some(_)) => Ok(Some(
                Element::new("query", ns::REGISTER)
                    .with_child(Element::new("registered", ns::REGISTER))
                    .with_child(
                        Element::new("username", ns::REGISTER)
                            .with_text(jid.node().map(|n| n.as_str()).unwrap_or_default()),
                    ),
            )),
            (Some("set"), Some(q)) if q.get_child("remove", ns::REGISTER).is_some() => {
                return Box::pin(self.remove_account(&e, &jid)).await;
            }
            (Some("set"), Some(q)) => self.change_password(&jid, q).await.map(|()| None),
            _ => Err(StanzaError::new(StanzaErrorCondition::BadRequest)),
        };
        let mut reply = match outcome {
            Ok(payload) => {
                let mut r = iq_result(&e);
                if let Some(p) = payload {
                    r.append_child(p);
                }
                r
            }
            Err(err) => error_reply(&e, &err),
        };
        address_reply(&mut reply, &e, &jid);
        self.emit(reply);
        Ok(Flow::Continue)
    }

    /// XEP-0077 §3.3: a new password for one's own account. Every FAST token of the account
    /// goes with the old credentials (the account store's contract).
    async fn change_password(
        &mut self,
        jid: &starling_proto::FullJid,
        q: &Element,
    ) -> Result<(), StanzaError> {
        let username = q.get_child("username", ns::REGISTER).map(|c| c.text());
        let password = q.get_child("password", ns::REGISTER).map(|c| c.text());
        let (Some(node), Some(domain)) = (jid.node(), Some(jid.domain())) else {
            return Err(StanzaError::new(StanzaErrorCondition::NotAllowed));
        };
        if self.anonymous_host() {
            // §3.3: "the server or service does not allow password changes".
            return Err(StanzaError::new(StanzaErrorCondition::NotAllowed)
                .with_text("an anonymous account has no password"));
        }
        let (Some(username), Some(password)) = (username, password) else {
            return Err(StanzaError::new(StanzaErrorCondition::BadRequest)
                .with_text("the username and the new password are both required"));
        };
        // §3.3: the username is the account's own (compared as the server compares names).
        if starling_proto::jid::NodePart::new(&username)
            .map(|n| n.as_str() != node.as_str())
            .unwrap_or(true)
        {
            return Err(StanzaError::new(StanzaErrorCondition::NotAuthorized)
                .with_text("the username is not this account's"));
        }
        let policy = self.shared.settings.registration;
        registration::check_password(&password, &policy).map_err(|err| stanza_error(&err))?;
        let iterations = self.shared.settings.scram_iterations;
        let creds = tokio::task::spawn_blocking(move || {
            starling_accounts::make_credentials(&password, iterations)
        })
        .await
        .map_err(|_| StanzaError::new(StanzaErrorCondition::InternalServerError))?
        .map_err(|_| stanza_error(&RegisterError::BadPassword))?;
        self.shared
            .stores
            .accounts
            .set_credentials(node.as_str(), domain.as_str(), &creds)
            .await
            .map_err(|err| {
                tracing::warn!(id = self.id, error = %err, "cannot change a password");
                StanzaError::new(StanzaErrorCondition::InternalServerError)
            })?;
        tracing::info!(id = self.id, jid = %jid, "password changed in-band");
        Ok(())
    }

    /// XEP-0077 §3.2: removes the account. The contacts' subscriptions are cancelled first (as
    /// if the client had sent `unsubscribe`/`unsubscribed`, RFC 6121 §3.2–§3.3), then the
    /// account and everything it owns is deleted, the IQ answered, and every session of the
    /// account closed with `<not-authorized/>` (§3.2: the server "SHOULD" close them; RFC 6120
    /// §4.9.3.12), this one after its answer.
    async fn remove_account(
        &mut self,
        e: &Element,
        jid: &starling_proto::FullJid,
    ) -> Result<Flow, StreamError> {
        let bare = jid.to_bare();
        let Some(node) = bare.node().map(|n| n.as_str().to_owned()) else {
            return Err(StreamError::new(StreamErrorCondition::NotAuthorized));
        };
        let domain = bare.domain().as_str().to_owned();
        let stores = self.shared.stores.clone();
        match stores.rosters.items(&node, &domain).await {
            Ok(items) => {
                for item in items {
                    use starling_storage::Subscription as S;
                    let mut cancel = Vec::new();
                    if matches!(item.subscription, S::From | S::Both) || item.pending_in {
                        cancel.push("unsubscribed");
                    }
                    if matches!(item.subscription, S::To | S::Both) || item.ask_out {
                        cancel.push("unsubscribe");
                    }
                    for ty in cancel {
                        let p = Element::new("presence", ns::CLIENT)
                            .with_attr("to", item.jid.clone())
                            .with_attr("type", ty)
                            .with_attr("from", jid.to_string());
                        Box::pin(self.shared.router.route_from_client(jid, p)).await;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(id = self.id, error = %err, "cannot read a roster before removal");
            }
        }
        if let Err(err) = stores.accounts.delete_account(&node, &domain).await {
            tracing::warn!(id = self.id, error = %err, "cannot delete an account");
            let err = StanzaError::new(StanzaErrorCondition::InternalServerError);
            let mut reply = error_reply(e, &err);
            address_reply(&mut reply, e, jid);
            self.emit(reply);
            return Ok(Flow::Continue);
        }
        tracing::info!(id = self.id, account = %bare, "account removed in-band");
        self.shared
            .router
            .emit(Event::AccountDeleted(bare.clone()))
            .await;
        let mut reply = iq_result(e);
        address_reply(&mut reply, e, jid);
        self.emit(reply);
        let closing = StreamError::new(StreamErrorCondition::NotAuthorized)
            .with_text("this account was removed");
        for other in self.shared.router.sessions().resources(&bare).await.iter() {
            if other.jid != *jid {
                other.handle.close(closing.clone());
            }
        }
        Err(closing)
    }

    async fn register_reply(&mut self, e: &Element) -> Result<Element, StanzaError> {
        let policy = self.shared.settings.registration;
        let Some(payload) = e.children().next() else {
            return Err(StanzaError::new(StanzaErrorCondition::BadRequest));
        };
        // Only the server itself can be asked before authentication (no 'to', or this
        // stream's domain).
        if let (Some(to), Some(d)) = (e.attr("to"), self.domain.as_deref())
            && !to.eq_ignore_ascii_case(d)
        {
            return Err(StanzaError::new(StanzaErrorCondition::ServiceUnavailable)
                .with_text("authenticate first"));
        }
        if self.anonymous_host() {
            // XEP-0077 §3.1: registration is not supported here (the feature is not offered).
            return Err(StanzaError::new(StanzaErrorCondition::ServiceUnavailable)
                .with_text("accounts on this host are anonymous: log in with SASL ANONYMOUS"));
        }
        if !policy.offered() {
            return Err(stanza_error(&RegisterError::NotOffered));
        }
        match (e.attr("type"), payload.is("preauth", ns::PARS)) {
            (Some("set"), true) => self.preauth(e, payload).await,
            (Some("get"), false) => Ok(iq_result(e).with_child(self.registration_form())),
            (Some("set"), false) => self.register(e, payload).await,
            _ => Err(StanzaError::new(StanzaErrorCondition::BadRequest)),
        }
    }

    /// XEP-0077 §3.1: the fields to fill in (the name an invitation reserves filled in).
    fn registration_form(&self) -> Element {
        let policy = &self.shared.settings.registration;
        let mut instructions = format!(
            "Choose a user name and a password of at least {} characters.",
            policy.min_password_length
        );
        if !policy.open {
            instructions.push_str(" Registration here needs an invitation.");
        }
        let mut q = Element::new("query", ns::REGISTER)
            .with_child(Element::new("instructions", ns::REGISTER).with_text(instructions));
        let mut username = Element::new("username", ns::REGISTER);
        if let Some(u) = self
            .presented
            .as_ref()
            .and_then(|p| p.invite.username.clone())
        {
            username.append_text(u);
        }
        q.append_child(username);
        q.append_child(Element::new("password", ns::REGISTER));
        q
    }

    /// XEP-0445 §4: checks an invitation and remembers it for this stream.
    async fn preauth(&mut self, e: &Element, payload: &Element) -> Result<Element, StanzaError> {
        let token = payload.attr("token").unwrap_or_default();
        if token.is_empty() {
            return Err(StanzaError::new(StanzaErrorCondition::BadRequest)
                .with_text("the preauth element needs a token"));
        }
        let hash = token_hash(token);
        let now = starling_accounts::unix_now();
        let found = self
            .shared
            .stores
            .invites
            .invite(&hash)
            .await
            .map_err(|err| {
                tracing::warn!(id = self.id, error = %err, "cannot read an invitation");
                StanzaError::new(StanzaErrorCondition::InternalServerError)
            })?;
        let domain = self.domain.as_deref().unwrap_or_default();
        let invite = found
            .filter(|i| i.register && i.expires_at > now && i.domain == domain)
            .ok_or_else(|| stanza_error(&RegisterError::BadInvitation))?;
        self.presented = Some(Box::new(Presented {
            hash,
            at: now,
            invite,
        }));
        Ok(iq_result(e))
    }

    /// XEP-0077 §3.1: creates the account.
    async fn register(&mut self, e: &Element, query: &Element) -> Result<Element, StanzaError> {
        if query.get_child("remove", ns::REGISTER).is_some() {
            // §3.2 cancels an existing registration: only for an authenticated entity.
            return Err(StanzaError::new(StanzaErrorCondition::NotAuthorized)
                .with_text("authenticate to remove an account"));
        }
        let policy = self.shared.settings.registration;
        // COMPAT(slixmpp): the token inside the query instead of a XEP-0445 preauth IQ first
        // (slixmpp sends no other IQ before its session starts).
        if let Some(pa) = query.get_child("preauth", ns::PARS) {
            self.preauth(e, pa).await?;
        }
        let text = |name: &str| query.get_child(name, ns::REGISTER).map(|c| c.text());
        let username = text("username");
        let password = text("password");
        let invite = self.presented.as_ref().map(|p| &p.invite);
        let local = registration::check_submission(
            &policy,
            invite,
            username.as_deref(),
            password.as_deref(),
        )
        .map_err(|err| stanza_error(&err))?;
        let domain = self.domain.clone().unwrap_or_default();
        if !self.shared.registrations.allowed(self.peer.ip()) {
            return Err(
                StanzaError::new(StanzaErrorCondition::ResourceConstraint).with_text(
                    "too many accounts were registered from your address; try again later",
                ),
            );
        }
        let password = password.unwrap_or_default();
        let iterations = self.shared.settings.scram_iterations;
        // PBKDF2 is slow on purpose: not on the async threads.
        let creds = tokio::task::spawn_blocking(move || {
            starling_accounts::make_credentials(&password, iterations)
        })
        .await
        .map_err(|_| StanzaError::new(StanzaErrorCondition::InternalServerError))?
        .map_err(|_| stanza_error(&RegisterError::BadPassword))?;
        let stores = &self.shared.stores;
        let presented = self.presented.as_ref().map(|p| (p.hash.as_str(), p.at));
        let used = registration::create(
            stores.accounts.as_ref(),
            stores.invites.as_ref(),
            presented,
            &local,
            &domain,
            &creds,
            starling_accounts::unix_now(),
        )
        .await
        .map_err(|err| {
            if let RegisterError::Storage(source) = &err {
                tracing::warn!(id = self.id, error = %source, "cannot store a registration");
            }
            stanza_error(&err)
        })?;
        self.shared.registrations.record(self.peer.ip());
        // The invitation was spent; another registration on this stream needs another one.
        self.presented = None;
        tracing::info!(
            id = self.id,
            peer = %self.peer.ip(),
            account = %format_args!("{local}@{domain}"),
            invited = used.is_some(),
            "account registered in-band"
        );
        if let Ok(account) = BareJid::new(&format!("{local}@{domain}")) {
            let contact = used
                .and_then(|i| i.contact)
                .and_then(|(l, d)| BareJid::new(&format!("{l}@{d}")).ok());
            self.shared
                .router
                .emit(Event::Registered { account, contact })
                .await;
        }
        Ok(iq_result(e))
    }
}
