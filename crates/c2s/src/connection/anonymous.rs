//! Anonymous hosts (`[[host]] anonymous = true`): SASL ANONYMOUS (RFC 4505) and the account
//! that lives as long as the connection.
//!
//! # Procedure
//!
//! 1. On an anonymous host ANONYMOUS is the only mechanism offered, under legacy SASL and SASL2
//!    alike; elsewhere it is never offered (a request for it gets `<invalid-mechanism/>`,
//!    RFC 6120 §6.5.7). TLS is required as for any mechanism (`[c2s] require_encryption`): the
//!    session's stanzas deserve it as much as a password does.
//! 2. The exchange is one message (RFC 4505 §3); its trace information is logged at debug
//!    level and never used.
//! 3. On its success ([`Connection::anonymous_login`]): the address's count of anonymous logins
//!    is checked and counted; a fresh account with a random name and no credentials is stored
//!    (`starling_accounts::anonymous`); the login gate and `login::may_log_in`, which every login
//!    path asks, are asked; the client is authenticated as that account and binds a resource as
//!    usual (or with Bind2).
//! 4. When the connection ends ([`forget`], from `Connection::finish`, after its session
//!    ended and its unavailable presence went out): the account's subscriptions are cancelled
//!    with its contacts (`unsubscribe`/`unsubscribed` from its bare JID, RFC 6121 §3.2–§3.3,
//!    as an account removal does), then the account is deleted with everything it owns and
//!    modules hear `Event::AccountDeleted`.
//!
//! A new login is always a new account, so what needs the same account twice is not offered
//! there: XEP-0198 resumption (a session whose connection dropped ends at once) and XEP-0484
//! FAST tokens. In-band registration and password changes are refused (`register.rs`).
//!
//! # Why `temporary-auth-failure` over the limit
//!
//! RFC 6120 §6.5 has no condition for a policy; among its conditions, `<temporary-auth-failure/>`
//! (§6.5.11: "advisable for the initiating entity to try again later") says what is true: the
//! same request succeeds once the hour's window has moved on. `<not-authorized/>` would tell the
//! client its credentials were wrong (it has none), and `<account-disabled/>` names an account
//! that does not exist yet. The throttle's locks answer the same way.

use starling_module_api::Event;
use starling_proto::{BareJid, Element, ns};
use starling_sasl::SaslFailure;
use starling_storage::{StorageError, Subscription};

use super::Connection;
use crate::C2sShared;

/// `<text/>` of the failure for an address over `[auth] anonymous_logins_per_ip`.
pub(super) const ANONYMOUS_LIMIT_TEXT: &str =
    "too many anonymous logins from your address; try again later";

impl Connection {
    /// Whether this stream's host is an anonymous one.
    pub(super) fn anonymous_host(&self) -> bool {
        self.domain
            .as_deref()
            .is_some_and(|d| self.shared.settings.anonymous_hosts.iter().any(|h| h == d))
    }

    /// RFC 4505 succeeded: the per-address limit, then a fresh account and the login gate.
    /// `Ok(Err)` is the SASL failure to answer with.
    pub(super) async fn anonymous_login(
        &mut self,
        trace: Option<&str>,
    ) -> Result<Result<BareJid, (SaslFailure, String)>, starling_proto::StreamError> {
        if let Some(t) = trace {
            // RFC 4505 §2: no semantic value; an attacker's words, kept out of anything but
            // a debug log (Debug-quoted).
            tracing::debug!(id = self.id, trace = ?t, "anonymous login trace information");
        }
        if !self.shared.anonymous_logins.try_record(self.peer.ip()) {
            tracing::info!(id = self.id, peer = %self.peer.ip(), "anonymous login refused: address over its limit");
            return Ok(Err((
                SaslFailure::TemporaryAuthFailure,
                ANONYMOUS_LIMIT_TEXT.to_owned(),
            )));
        }
        // A second login on this stream (the first one's Bind2 failed): the first account goes.
        if let Some(old) = self.anonymous.take() {
            forget(&self.shared, &old).await;
        }
        let domain = self.domain.clone().unwrap_or_default();
        let store = self.shared.stores.accounts.as_ref();
        let localpart = match starling_accounts::anonymous::create(store, &domain).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(id = self.id, error = %e, "cannot create an anonymous account");
                return Ok(Err((
                    SaslFailure::TemporaryAuthFailure,
                    "no account could be made; try again later".to_owned(),
                )));
            }
        };
        let Ok(account) = BareJid::new(&format!("{localpart}@{domain}")) else {
            // Our own alphabet on a served domain: not expected.
            let _ = store.delete_account(&localpart, &domain).await;
            return Ok(Err((
                SaslFailure::TemporaryAuthFailure,
                "no account could be made; try again later".to_owned(),
            )));
        };
        self.anonymous = Some(Box::new(account.clone()));
        // A fresh account is not disabled (`login::may_log_in` is asked next, as on every path).
        self.sasl_disabled = false;
        if let Some(refusal) = self.login_gate(&account).await? {
            if let Some(a) = self.anonymous.take() {
                forget(&self.shared, &a).await;
            }
            return Ok(Err(refusal));
        }
        tracing::info!(id = self.id, peer = %self.peer, %account, "anonymous account created");
        Ok(Ok(account))
    }
}

/// Cancels the anonymous `account`'s subscriptions with its contacts and deletes it with
/// everything it owns. An account already gone (removed in-band) is fine.
pub(super) async fn forget(shared: &C2sShared, account: &BareJid) {
    let (Some(node), domain) = (account.node(), account.domain().as_str()) else {
        return;
    };
    let stores = &shared.stores;
    match stores.rosters.items(node.as_str(), domain).await {
        Ok(items) => {
            for item in items {
                // RFC 6121 §3.2.2 / §3.3.2, stamped with the bare JID as the presence module
                // does for a removed roster item: the contact's roster follows.
                let mut cancel = Vec::new();
                if matches!(item.subscription, Subscription::From | Subscription::Both)
                    || item.pending_in
                {
                    cancel.push("unsubscribed");
                }
                if matches!(item.subscription, Subscription::To | Subscription::Both)
                    || item.ask_out
                {
                    cancel.push("unsubscribe");
                }
                for ty in cancel {
                    let p = Element::new("presence", ns::CLIENT)
                        .with_attr("to", item.jid.clone())
                        .with_attr("type", ty)
                        .with_attr("from", account.to_string());
                    Box::pin(shared.router.route_stanza(p)).await;
                }
            }
        }
        Err(e) => tracing::warn!(%account, error = %e, "cannot read an anonymous roster"),
    }
    match stores.accounts.delete_account(node.as_str(), domain).await {
        Ok(()) => {
            tracing::info!(%account, "anonymous account deleted");
            // Modules forget what they keep in memory for it.
            shared
                .router
                .emit(Event::AccountDeleted(account.clone()))
                .await;
        }
        // Removed in-band already (which told the modules).
        Err(StorageError::NotFound) => {}
        // Left for the next start's purge.
        Err(e) => tracing::warn!(%account, error = %e, "cannot delete an anonymous account"),
    }
}
