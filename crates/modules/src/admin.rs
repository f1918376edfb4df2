//! What an administrator does to accounts and sessions, in one place for the XEP-0133 commands
//! (`adhoc::admin`) and the server's control socket (`starling user kick`, `starling sessions`,
//! `starling announce`, `starling user stats`, and the database-only CLI commands telling a running
//! server to end an account's sessions).
//!
//! # Ending sessions
//!
//! A session is ended by asking it to close with a stream error ([`SessionHandle::close`]): a
//! connected session writes the error and closes its stream; one detached and waiting for a
//! XEP-0198 resumption ends at once. Either way the session ends as after
//! `</stream:stream>`, not as after a lost connection: its resumption id is retired, so a
//! `<resume/>` with it gets `<failed><item-not-found/>`, and what it held is routed again (to the
//! account's other resources or offline storage; nowhere, for an account that is gone). The
//! stream error says why ([`EndReason`]):
//!
//! - **deleted** and **disabled**: `<not-authorized/>` (RFC 6120 §4.9.3.12). The credentials that
//!   authenticated the stream no longer admit it: the issue asks for it on removal, as XEP-0077 §3.2
//!   does, and a disabled account is in the same position (its next login is refused with
//!   `<account-disabled/>`); clients stop reconnecting and show the text.
//! - **password changed** (by an administrator): `<not-authorized/>` as well: the password the
//!   client holds is no longer valid, and a client that reconnects with it would fail anyway.
//! - **kicked** (XEP-0133 §4.5 "End User Session", `starling user kick`): `<policy-violation/>`
//!   (§4.9.3.14), as ejabberd's `kick_session` does: the administrator ended it under local
//!   policy, and the account may log in again, which `<not-authorized/>` would deny.
//!
//! [`SessionHandle::close`]: starling_module_api::SessionHandle::close

use std::net::SocketAddr;

use starling_module_api::{Context, SessionEntry};
use starling_proto::{BareJid, Element, Jid, StreamError, StreamErrorCondition, ns};
use starling_storage::StorageError;

/// Why an administrator ends an account's sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The account was deleted.
    Deleted,
    /// The account was disabled.
    Disabled,
    /// An administrator changed the account's password.
    PasswordChanged,
    /// An administrator ended the session; the account may log in again.
    Kicked,
}

impl EndReason {
    /// The stream error the sessions are closed with (see the module docs for why each).
    pub fn stream_error(self) -> StreamError {
        let (condition, text) = match self {
            EndReason::Deleted => (StreamErrorCondition::NotAuthorized, "account deleted"),
            EndReason::Disabled => (StreamErrorCondition::NotAuthorized, "account disabled"),
            EndReason::PasswordChanged => (StreamErrorCondition::NotAuthorized, "password changed"),
            EndReason::Kicked => (
                StreamErrorCondition::PolicyViolation,
                "session ended by an administrator",
            ),
        };
        StreamError::new(condition).with_text(text)
    }
}

/// Ends the sessions of `jid`: every session of the account for a bare JID, only that
/// resource's for a full one (XEP-0133 §4.5). Returns how many were told to close.
pub async fn end_sessions(ctx: &Context, jid: &Jid, reason: EndReason) -> usize {
    let sessions: Vec<SessionEntry> = match jid.try_as_full() {
        Ok(full) => ctx.sessions.get(full).await.into_iter().collect(),
        Err(bare) => ctx.sessions.resources(bare).await.to_vec(),
    };
    for s in &sessions {
        tracing::info!(jid = %s.jid, ?reason, "ending the session");
        s.handle.close(reason.stream_error());
    }
    sessions.len()
}

/// Accounts with at least one session, optionally only those of `host`, sorted, and the number
/// of sessions they have.
pub async fn online_users(ctx: &Context, host: Option<&str>) -> (Vec<BareJid>, usize) {
    let mut users = Vec::new();
    let mut sessions = 0;
    for resources in ctx.sessions.all().await {
        let Some(first) = resources.first() else {
            continue;
        };
        if host.is_some_and(|h| first.jid.domain().as_str() != h) {
            continue;
        }
        sessions += resources.len();
        users.push(first.jid.to_bare());
    }
    users.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    (users, sessions)
}

/// One session, for `starling sessions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub jid: String,
    pub ip: Option<SocketAddr>,
    /// Sent available presence (RFC 6121 §4.2).
    pub available: bool,
    /// Waiting for a XEP-0198 resumption.
    pub detached: bool,
    /// XEP-0352 inactive.
    pub inactive: bool,
}

/// Every session, sorted by JID.
pub async fn sessions(ctx: &Context) -> Vec<SessionInfo> {
    let mut out: Vec<SessionInfo> = ctx
        .sessions
        .all()
        .await
        .iter()
        .flat_map(|r| r.iter())
        .map(|s| SessionInfo {
            jid: s.jid.to_string(),
            ip: s.handle.peer(),
            available: s.is_available(),
            detached: s.handle.is_detached(),
            inactive: s.handle.is_inactive(),
        })
        .collect();
    out.sort_by(|a, b| a.jid.cmp(&b.jid));
    out
}

/// XEP-0133 §4.10 user statistics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserStats {
    /// Items on the roster (requests from contacts not on it are not counted).
    pub roster_size: u64,
    /// Resources bound now, sorted.
    pub resources: Vec<String>,
    /// Their clients' addresses, sorted, each once.
    pub ips: Vec<String>,
}

/// The statistics of `account` (which must exist: `NotFound` otherwise).
pub async fn user_stats(ctx: &Context, account: &BareJid) -> Result<UserStats, StorageError> {
    let (local, domain) = parts(account).ok_or(StorageError::NotFound)?;
    if !ctx.stores.accounts.account_exists(local, domain).await? {
        return Err(StorageError::NotFound);
    }
    let counts = ctx.stores.rosters.counts(local, domain).await?;
    let sessions = ctx.sessions.resources(account).await;
    let mut resources: Vec<String> = sessions
        .iter()
        .map(|s| s.jid.resource().as_str().to_owned())
        .collect();
    resources.sort();
    let mut ips: Vec<String> = sessions
        .iter()
        .filter_map(|s| s.handle.peer())
        .map(|a| a.ip().to_string())
        .collect();
    ips.sort();
    ips.dedup();
    Ok(UserStats {
        roster_size: counts.visible,
        resources,
        ips,
    })
}

/// Sends `text` as a headline message (RFC 6121 §5.2.2: no reply expected) from the host's domain
/// to every session of the accounts of `host` (every host when `None`), XEP-0133 §4.23. Returns
/// how many sessions it was queued to.
pub async fn announce(ctx: &Context, host: Option<&str>, text: &str) -> usize {
    let mut sent = 0;
    for resources in ctx.sessions.all().await {
        for s in resources.iter() {
            let domain = s.jid.domain().as_str();
            if host.is_some_and(|h| h != domain) {
                continue;
            }
            let message = Element::new("message", ns::CLIENT)
                .with_attr("from", domain)
                .with_attr("to", s.jid.to_string())
                .with_attr("type", "headline")
                .with_child(Element::new("body", ns::CLIENT).with_text(text));
            if ctx.router.deliver_to(s, message).await.is_ok() {
                sent += 1;
            }
        }
    }
    tracing::info!(sessions = sent, "announcement sent");
    sent
}

/// Deletes the account (and everything it owns), then ends its sessions.
pub async fn delete_account(ctx: &Context, account: &BareJid) -> Result<usize, StorageError> {
    let (local, domain) = parts(account).ok_or(StorageError::NotFound)?;
    ctx.stores.accounts.delete_account(local, domain).await?;
    tracing::info!(%account, "account deleted");
    ctx.router
        .emit(starling_module_api::Event::AccountDeleted(account.clone()))
        .await;
    Ok(end_sessions(ctx, &Jid::from(account.clone()), EndReason::Deleted).await)
}

/// Disables (and ends the sessions of) or re-enables the account.
pub async fn set_disabled(
    ctx: &Context,
    account: &BareJid,
    disabled: bool,
) -> Result<usize, StorageError> {
    let (local, domain) = parts(account).ok_or(StorageError::NotFound)?;
    ctx.stores
        .accounts
        .set_disabled(local, domain, disabled)
        .await?;
    tracing::info!(%account, disabled, "account state changed");
    if !disabled {
        return Ok(0);
    }
    Ok(end_sessions(ctx, &Jid::from(account.clone()), EndReason::Disabled).await)
}

/// The localpart and domain of an account's JID; `None` for a JID without localpart.
pub fn parts(account: &BareJid) -> Option<(&str, &str)> {
    Some((account.node()?.as_str(), account.domain().as_str()))
}
