//! Invitations at work (XEP-0401, XEP-0379, XEP-0445), on the account side.
//!
//! Tokens are made by `starling invite create` (and, later, ad-hoc commands) through
//! `starling_accounts::invites`, and redeemed for an account by c2s's in-band registration
//! (XEP-0445). What follows a redemption happens here:
//!
//! - **After registering with a contact invitation** ([`Event::Registered`] with a contact):
//!   the new account and the inviter become mutual contacts, `both`, without a prompt on
//!   either side (XEP-0401 §5.3.2: "the server will ensure that after the registration, Romeo
//!   is added to her roster with a full presence subscription"). The inviter's interested
//!   resources get the roster push (RFC 6121 §2.1.6) and their presence goes to the newcomer
//!   when it logs in, as for any `both` contact.
//! - **An existing user redeeming a contact invitation** (XEP-0379 §3.4): the subscription
//!   request carries `<preauth xmlns='urn:xmpp:pars:0' token='…'/>`. A token made for the
//!   addressed account is spent and the request is approved on the inviter's behalf (a
//!   pre-approval, RFC 6121 §3.4), and the inviter subscribes back (§3.5: "send a subscription
//!   request of its own"). Any other token is ignored (XEP-0379 §4.1: graceful degradation to
//!   the manual process). This check is called by the presence module ([`preauthorized`]),
//!   which owns subscription handling.
//!
//! The module also advertises `jabber:iq:register` (XEP-0077 §10): in-band password change
//! and account removal are always available to a logged-in user; and it registers XEP-0401's
//! ad-hoc commands ([`commands`]): every user may make a contact invitation, administrators
//! account invitations.

use std::sync::Arc;

use async_trait::async_trait;
use starling_accounts::invites::token_hash;
use starling_module_api::{Context, Event, EventListener, Module, Registrar};
use starling_proto::{BareJid, Element, ns};
use starling_storage::{RosterItem, Subscription};

use crate::roster::RosterService;

pub mod commands;

pub use commands::InviteOptions;

/// The invitations module.
pub struct Invites {
    roster: Arc<RosterService>,
    options: InviteOptions,
    /// The anonymous hosts: their guests make no invitations.
    guest_hosts: Arc<[String]>,
}

impl Invites {
    pub fn new(
        roster: Arc<RosterService>,
        options: InviteOptions,
        guest_hosts: Arc<[String]>,
    ) -> Self {
        Invites {
            roster,
            options,
            guest_hosts,
        }
    }

    /// Makes `account` and `contact` mutual contacts (`both`) on `account`'s roster.
    async fn befriend(&self, ctx: &Context, account: &BareJid, contact: &BareJid) {
        let contact_str = contact.to_string();
        let res = self
            .roster
            .update(ctx, account, contact, |slot| {
                let item = slot.get_or_insert_with(|| RosterItem::new(contact_str.clone()));
                item.subscription = Subscription::Both;
                item.ask_out = false;
                item.pending_in = false;
                item.pending_in_stanza = None;
                item.preapproved = false;
                item.hidden = false;
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(%account, %contact, error = ?e, "cannot add an invited contact");
        }
    }
}

impl Module for Invites {
    fn name(&self) -> &'static str {
        "invites"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.server_feature(ns::REGISTER);
        // XEP-0401 §3: the commands that make invitations.
        reg.command(Arc::new(commands::InviteUser {
            options: self.options,
            guest_hosts: self.guest_hosts.clone(),
        }));
        reg.command(Arc::new(commands::CreateAccount {
            options: self.options,
            guest_hosts: self.guest_hosts.clone(),
        }));
        reg.events(self);
    }
}

#[async_trait]
impl EventListener for Invites {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        if let Event::Registered {
            account,
            contact: Some(contact),
        } = event
        {
            if account == contact {
                return;
            }
            self.befriend(ctx, account, contact).await;
            self.befriend(ctx, contact, account).await;
            tracing::info!(%account, %contact, "invited account and its inviter are contacts");
        }
    }
}

/// XEP-0379 §3.4: whether the subscription request `stanza` to `account` carries a token of a
/// valid contact invitation made for `account`; if so, one use of it is spent. A token for
/// another account, unknown or expired, is ignored (§4.1) and nothing is spent.
pub(crate) async fn preauthorized(ctx: &Context, account: &BareJid, stanza: &Element) -> bool {
    let Some(token) = stanza
        .get_child("preauth", ns::PARS)
        .and_then(|p| p.attr("token"))
        .filter(|t| !t.is_empty())
    else {
        return false;
    };
    let hash = token_hash(token);
    let invites = &ctx.stores.invites;
    let mine = match invites.invite(&hash).await {
        Ok(Some(i)) => i.contact.is_some_and(|(l, d)| {
            account.node().is_some_and(|n| n.as_str() == l) && account.domain().as_str() == d
        }),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(%account, error = %e, "cannot read an invitation");
            false
        }
    };
    if !mine {
        return false;
    }
    match invites
        .use_invite(&hash, starling_accounts::unix_now())
        .await
    {
        Ok(used) => used.is_some(),
        Err(e) => {
            tracing::warn!(%account, error = %e, "cannot spend an invitation");
            false
        }
    }
}
