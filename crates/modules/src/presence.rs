//! RFC 6121 §3 and §4: presence subscriptions and presence.
//!
//! The module owns every presence stanza a local client sends (a `FromClient` hook) and every
//! presence addressed to a local bare JID (a `ToBare` hook):
//! - subscription stanzas go through the Appendix A tables ([`crate::subscription`]), stored on the
//!   roster item by [`RosterService::update`], which also pushes the change;
//! - available presence without 'to' is recorded in the session registry (it decides who receives
//!   messages to the bare JID) and broadcast to contacts with a `from`/`both` subscription and the
//!   account's own available resources; the first one (initial presence, §4.2) also probes the
//!   contacts the account is subscribed to, delivers pending subscription requests, and emits
//!   [`Event::Available`] (offline messages follow);
//! - unavailable presence, the end of a session (stream closed, TCP dropped, replaced: it hears
//!   [`Event::Ended`]) and the end of a subscription send `unavailable` to whoever saw the
//!   session available, directed presence recipients included (§4.6.3); an unavailable
//!   broadcast emits [`Event::Unavailable`];
//! - the removal of a roster item (it hears [`Event::RosterChanged`] from the roster service)
//!   cancels the subscriptions both ways (RFC 6121 §2.5.2).
//!
//! This module depends on the roster module's [`RosterService`] (every subscription change is a
//! roster change) and never the other way round: the roster module only announces its changes.
//!
//! Limits (issue 11): a subscription request that cannot be delivered (no such local account, a
//! remote domain until federation exists) gets an error and stores nothing (§3.1.2); requests
//! kept for an account from contacts not on its roster are capped (§3.1.3's Security Warning),
//! and a stored request is at most [`MAX_STORED_REQUEST_BYTES`]; additions to a full roster are
//! refused (see [`crate::roster`]).
//!
//! # Hazards
//!
//! * Probes never reveal presence to an entity that is not subscribed (§4.3.2): the answer is the
//!   same `unsubscribed` whether the account does not exist or the prober is not allowed.
//! * Nothing here holds a lock while routing (see [`crate::roster`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use starling_module_api::parse_stored;
use starling_module_api::{
    Context, Event, EventListener, HookPoint, HookResult, Module, Registrar, SessionEntry,
    SessionId, StanzaHook,
};
use starling_proto::{
    BareJid, Element, FullJid, Jid, StanzaError, StanzaErrorCondition, StanzaKind, error_reply, ns,
};
use starling_storage::RosterItem;

use crate::roster::{
    Limit, MAX_STORED_REQUEST_BYTES, RosterService, UpdateError, account_parts, limit_error,
};
use crate::subscription::{self, State, SubKind};

/// Most entities one session can send directed presence to (beyond its contacts) before the
/// oldest are no longer remembered; bounds per-session memory.
pub const MAX_DIRECTED: usize = 1000;

/// The presence module.
pub struct Presence {
    roster: Arc<RosterService>,
    /// Entities that received directed available presence from a session and are not among its
    /// `from`/`both` contacts (§4.6.3), by session.
    directed: Mutex<HashMap<SessionId, HashSet<String>>>,
}

impl Presence {
    pub fn new(roster: Arc<RosterService>) -> Self {
        Presence {
            roster,
            directed: Mutex::default(),
        }
    }

    fn directed_map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, HashSet<String>>> {
        self.directed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Module for Presence {
    fn name(&self) -> &'static str {
        "presence"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.stanza_hook(StanzaKind::Presence, HookPoint::FromClient, 0, self.clone());
        reg.stanza_hook(StanzaKind::Presence, HookPoint::ToBare, 0, self.clone());
        // RFC 6121 §3.4.1: pre-approval is advertised as a stream feature.
        reg.stream_feature(Element::new("sub", ns::PRE_APPROVAL));
        reg.events(self);
    }
}

#[async_trait]
impl StanzaHook for Presence {
    async fn on_stanza(&self, ctx: &Context, point: HookPoint, stanza: &mut Element) -> HookResult {
        match point {
            HookPoint::FromClient => self.handle_from_client(ctx, stanza).await,
            HookPoint::ToBare => self.to_bare(ctx, stanza).await,
            HookPoint::ToFull | HookPoint::Offline | HookPoint::ToRemote => {
                return HookResult::Pass;
            }
        }
        HookResult::Handled
    }
}

#[async_trait]
impl EventListener for Presence {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        match event {
            Event::Ended(last) => self.session_ended(ctx, last).await,
            Event::RosterChanged {
                account,
                contact,
                before: Some(before),
                after: None,
            } if !before.hidden => item_removed(ctx, account, contact, before).await,
            _ => {}
        }
    }
}

/// RFC 6121 §2.5.2: a roster item was removed (a roster set with `subscription='remove'`; the
/// subscription stanzas handled here never remove a visible item). The contact's subscription
/// to the user ends (and a request of theirs is refused) with `unsubscribed`, the user's (and a
/// request of the user's) with `unsubscribe`; both are stamped from the user's bare JID.
async fn item_removed(ctx: &Context, account: &BareJid, contact: &BareJid, before: &RosterItem) {
    let s = State::of(Some(before));
    if s.from || s.pending_in {
        send_unavailable_to(ctx, account, contact).await;
        ctx.router
            .route(subscription_stanza(SubKind::Unsubscribed, account, contact))
            .await;
    }
    if s.to || s.pending_out {
        ctx.router
            .route(subscription_stanza(SubKind::Unsubscribe, account, contact))
            .await;
    }
}

/// A subscription stanza from `from` to `to` (bare JIDs), as the server generates it.
fn subscription_stanza(kind: SubKind, from: &BareJid, to: &BareJid) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("type", kind.as_str())
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
}

impl Presence {
    /// A session ended (§4.5.2): whoever saw it available hears it go.
    async fn session_ended(&self, ctx: &Context, last: &SessionEntry) {
        let directed = self.directed_map().remove(&last.handle.id());
        if last.presence.is_none() && directed.is_none() {
            return;
        }
        // §4.5.2: the server sends unavailable presence on the user's behalf.
        let unavailable = Element::new("presence", ns::CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", last.jid.to_string());
        if last.presence.is_some() {
            let items = roster_items(ctx, &last.jid.to_bare()).await;
            self.broadcast(ctx, &last.jid, &unavailable, &items).await;
        }
        for to in directed.into_iter().flatten() {
            ctx.router.route(addressed(&unavailable, &to)).await;
        }
    }
}

/// A copy of `stanza` addressed to `to`.
fn addressed(stanza: &Element, to: &str) -> Element {
    let mut s = stanza.clone();
    s.set_attr("to", to);
    s
}

/// The sender of a stanza from a local client (stamped by the session).
fn sender(stanza: &Element) -> Option<FullJid> {
    stanza.attr("from").and_then(|f| FullJid::new(f).ok())
}

/// Sends the error `cond` back to the client that sent `stanza`.
async fn reject(ctx: &Context, stanza: &Element, cond: StanzaErrorCondition, text: &str) {
    reject_with(ctx, stanza, &StanzaError::new(cond).with_text(text)).await;
}

/// Sends `err` back to the client that sent `stanza`.
async fn reject_with(ctx: &Context, stanza: &Element, err: &StanzaError) {
    let mut reply = error_reply(stanza, err);
    if stanza.attr("to").is_none() {
        reply.remove_attr("from");
    }
    ctx.router.route(reply).await;
}

/// The copy of an inbound subscription request kept for redelivery at each login (§3.1.3): the
/// whole stanza, or without its child elements when it is larger than
/// [`MAX_STORED_REQUEST_BYTES`] (§3.1.3's Security Warning: limits on "the number or size" of
/// stored requests), so the requests re-sent at a login stay bounded.
fn stored_request(stanza: &Element) -> String {
    let xml = stanza.to_xml();
    if xml.len() <= MAX_STORED_REQUEST_BYTES {
        return xml;
    }
    let mut bare = stanza.clone();
    bare.clear_children();
    bare.to_xml()
}

/// The roster items of `account`, or none (logged) when storage fails.
async fn roster_items(ctx: &Context, account: &BareJid) -> Vec<RosterItem> {
    let Some((local, domain)) = account_parts(account) else {
        return Vec::new();
    };
    match ctx.stores.rosters.items(local, domain).await {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(error = %e, %account, "cannot read the roster");
            Vec::new()
        }
    }
}

/// Whether `contact` is subscribed to `account`'s presence (`from` or `both`); false when the
/// store cannot say.
async fn contact_sees(ctx: &Context, account: &BareJid, contact: &BareJid) -> bool {
    let Some((local, domain)) = account_parts(account) else {
        return false;
    };
    match ctx
        .stores
        .rosters
        .item(local, domain, &contact.to_string())
        .await
    {
        Ok(item) => State::of(item.as_ref()).from,
        Err(e) => {
            tracing::error!(error = %e, %account, "cannot read the roster");
            false
        }
    }
}

/// Sends `unavailable` from each available resource of `account` to `contact` (§3.2.2: a contact
/// whose subscription ends stops seeing the account as available).
async fn send_unavailable_to(ctx: &Context, account: &BareJid, contact: &BareJid) {
    for entry in ctx.sessions.resources(account).await.iter() {
        if entry.is_available() {
            let p = Element::new("presence", ns::CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", entry.jid.to_string())
                .with_attr("to", contact.to_string());
            ctx.router.route(p).await;
        }
    }
}

/// Sends the current presence of each available resource of `account` to `to` (§3.1.5, §4.3.2).
async fn send_current_presence(ctx: &Context, account: &BareJid, to: &str) {
    for entry in ctx.sessions.resources(account).await.iter() {
        if let Some(p) = &entry.presence {
            ctx.router.route(addressed(p, to)).await;
        }
    }
}

impl Presence {
    // ----- From the account's own clients -----

    async fn handle_from_client(&self, ctx: &Context, stanza: &Element) {
        let Some(from) = sender(stanza) else {
            return;
        };
        let ty = stanza.attr("type");
        let to = stanza.attr("to");
        if let (Some(kind), Some(to)) = (ty.and_then(SubKind::from_type), to) {
            match Jid::new(to) {
                Ok(to) => {
                    self.outbound(ctx, &from.to_bare(), kind, stanza, &to.to_bare())
                        .await
                }
                Err(_) => reject(ctx, stanza, StanzaErrorCondition::JidMalformed, "bad 'to'").await,
            }
            return;
        }
        match (ty, to) {
            // §4.2 / §4.4: availability broadcast.
            (None, None) => self.available(ctx, &from, stanza).await,
            (Some("unavailable"), None) => self.unavailable(ctx, &from, stanza).await,
            (None | Some("unavailable"), Some(to)) => {
                self.directed_presence(ctx, &from, stanza, to).await
            }
            (Some("probe"), Some(_)) => {
                // §4.3: probes are the server's business; a client's is answered like the
                // server's own, to the resource that sent it.
                ctx.router.route(stanza.clone()).await;
            }
            (Some("error"), Some(_)) => ctx.router.route(stanza.clone()).await,
            (Some("error"), None) => {}
            (Some(t), None) if SubKind::from_type(t).is_some() || t == "probe" => {
                reject(
                    ctx,
                    stanza,
                    StanzaErrorCondition::BadRequest,
                    "a subscription or probe needs a 'to'",
                )
                .await;
            }
            // RFC 6120 §8.3.3.1 / RFC 6121 §4.7.1: no other presence types exist.
            (Some(_), _) => {
                reject(
                    ctx,
                    stanza,
                    StanzaErrorCondition::BadRequest,
                    "unknown presence type",
                )
                .await;
            }
        }
    }

    /// Available presence without 'to' (§4.2 initial, §4.4 updates).
    async fn available(&self, ctx: &Context, from: &FullJid, stanza: &Element) {
        let Some(session) = ctx.sessions.get(from).await else {
            return;
        };
        let presence = Arc::new(stanza.clone());
        let previous = ctx
            .sessions
            .set_presence(from, session.handle.id(), Some(presence.clone()))
            .await;
        let initial = matches!(previous, Some(None));
        let items = roster_items(ctx, &from.to_bare()).await;
        self.broadcast(ctx, from, &presence, &items).await;
        if !initial {
            return;
        }
        // §4.2.2: probe the contacts the account is subscribed to. The probe comes from the full
        // JID that needs the answers (the examples use the bare JID; the contact's server answers
        // whatever 'from' says, and only this resource lacks them).
        for item in items.iter().filter(|i| State::of(Some(i)).to) {
            let probe = Element::new("presence", ns::CLIENT)
                .with_attr("type", "probe")
                .with_attr("from", from.to_string())
                .with_attr("to", item.jid.as_str());
            ctx.router.route(probe).await;
        }
        // §3.1.3: requests received while the account was offline (or not yet answered) are
        // delivered at each login until answered.
        for item in items.iter().filter(|i| i.pending_in) {
            if let Some(xml) = &item.pending_in_stanza {
                match parse_stored(xml) {
                    Ok(request) => {
                        ctx.send_to(&session, request).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, contact = %item.jid, "stored request unreadable");
                    }
                }
            }
        }
        ctx.router.emit(Event::Available(from.clone())).await;
    }

    /// Unavailable presence without 'to' (§4.5).
    async fn unavailable(&self, ctx: &Context, from: &FullJid, stanza: &Element) {
        let Some(session) = ctx.sessions.get(from).await else {
            return;
        };
        let previous = ctx
            .sessions
            .set_presence(from, session.handle.id(), None)
            .await;
        let was_available = matches!(previous, Some(Some(_)));
        if was_available {
            let items = roster_items(ctx, &from.to_bare()).await;
            self.broadcast(ctx, from, stanza, &items).await;
        }
        let directed = self.directed_map().remove(&session.handle.id());
        for to in directed.into_iter().flatten() {
            ctx.router.route(addressed(stanza, &to)).await;
        }
        if was_available {
            ctx.router.emit(Event::Unavailable(from.clone())).await;
        }
    }

    /// Sends `presence` (from `from`, no 'to') to the contacts among `items` (the account's
    /// roster) with a `from`/`both` subscription (§4.2.2, §4.4.2) and to the account's available
    /// resources, the sender included.
    async fn broadcast(
        &self,
        ctx: &Context,
        from: &FullJid,
        presence: &Element,
        items: &[RosterItem],
    ) {
        for item in items {
            if State::of(Some(item)).from {
                ctx.router.route(addressed(presence, &item.jid)).await;
            }
        }
        for entry in ctx.sessions.resources(&from.to_bare()).await.iter() {
            if entry.is_available() || entry.jid == *from {
                ctx.send_to(entry, addressed(presence, &entry.jid.to_string()))
                    .await;
            }
        }
    }

    /// Directed presence (§4.6): routed as is, and remembered so that the recipient hears when the
    /// session goes away.
    async fn directed_presence(&self, ctx: &Context, from: &FullJid, stanza: &Element, to: &str) {
        let Some(session) = ctx.sessions.get(from).await else {
            return;
        };
        let id = session.handle.id();
        let Ok(target) = Jid::new(to) else {
            reject(ctx, stanza, StanzaErrorCondition::JidMalformed, "bad 'to'").await;
            return;
        };
        if stanza.attr("type") == Some("unavailable") {
            if let Some(set) = self.directed_map().get_mut(&id) {
                set.remove(&target.to_string());
            }
        } else {
            // §4.6.3: recipients that get broadcasts anyway are not tracked.
            if !contact_sees(ctx, &from.to_bare(), &target.to_bare()).await {
                let mut map = self.directed_map();
                let set = map.entry(id).or_default();
                if set.len() < MAX_DIRECTED {
                    set.insert(target.to_string());
                }
            }
        }
        ctx.router.route(stanza.clone()).await;
    }

    /// A subscription stanza from the account (RFC 6121 A.2).
    async fn outbound(
        &self,
        ctx: &Context,
        account: &BareJid,
        kind: SubKind,
        stanza: &Element,
        contact: &BareJid,
    ) {
        if contact == account {
            // Subscribing to oneself has no meaning: the account always sees its own presence.
            return;
        }
        let contact_str = contact.to_string();
        if kind == SubKind::Subscribe
            && let Some(err) = self.undeliverable(ctx, account, contact).await
        {
            // §3.1.2: a request that "cannot be locally delivered or remotely routed" gets an
            // error, and nothing is stored: the roster push of "Pending Out" comes only "after
            // locally delivering or remotely routing" it, and a contact that cannot answer
            // would leave the user waiting forever.
            reject_with(ctx, stanza, &err).await;
            return;
        }
        let mut decision = None;
        let res = self
            .roster
            .update(ctx, account, contact, |slot| {
                let before = State::of(slot.as_ref());
                let out = subscription::outbound(kind, before);
                decision = Some((before, out));
                if out.state == before {
                    return;
                }
                let item = slot.get_or_insert_with(|| RosterItem::new(contact_str.clone()));
                out.state.apply_to(item);
                if matches!(kind, SubKind::Subscribe | SubKind::Subscribed) {
                    // §3.1.2 / §3.4: asking for or pre-approving a subscription puts the contact
                    // on the roster.
                    item.hidden = false;
                }
            })
            .await;
        match res {
            Ok(_) => {}
            Err(UpdateError::Storage(e)) => {
                tracing::error!(error = %e, %account, "cannot store a subscription change");
                reject(
                    ctx,
                    stanza,
                    StanzaErrorCondition::InternalServerError,
                    "storage failed",
                )
                .await;
                return;
            }
            Err(e) => {
                // A request or pre-approval for a contact not yet on a full roster: refused like
                // a roster set that would add it (see `limit_error`); nothing is routed.
                reject_with(ctx, stanza, &limit_error(&e)).await;
                return;
            }
        }
        let Some((before, out)) = decision else {
            return;
        };
        if !out.route {
            return;
        }
        if kind == SubKind::Unsubscribed && before.from {
            // §3.2.2: while the contact is still subscribed, it first sees the account's
            // resources go unavailable. (A refused request, §3.1.4, never saw them: nothing.)
            send_unavailable_to(ctx, account, contact).await;
        }
        // §3.1.2: stamped with the bare JIDs, 'id' and extension children kept.
        let mut routed = stanza.clone();
        routed.set_attr("from", account.to_string());
        routed.set_attr("to", contact_str.as_str());
        ctx.router.route(routed).await;
        if kind == SubKind::Subscribed {
            // §3.1.5: after approving, the contact receives the account's current presence.
            send_current_presence(ctx, account, &contact_str).await;
        }
    }

    /// Why a subscription request from `account` cannot reach `contact`, as the error the user
    /// gets (§3.1.2); `None` when it can.
    async fn undeliverable(
        &self,
        ctx: &Context,
        account: &BareJid,
        contact: &BareJid,
    ) -> Option<StanzaError> {
        let domain = contact.domain().as_str();
        if ctx.components.serves(domain) {
            // A service of this server (a gateway, a MUC): it receives the request and answers
            // for itself.
            return None;
        }
        if !ctx.is_local_domain(domain) {
            if ctx.components.remote().is_some() {
                // Another server's contact: that server answers for it (§3.1.3).
                return None;
            }
            // §3.1.2 ("the remote server does not exist"), RFC 6120 §8.3.3.16: federation is
            // off, so no remote domain can be reached. (The router's own bounce of the routed
            // request would go to the user's bare JID, which no session receives.)
            return Some(
                StanzaError::new(StanzaErrorCondition::RemoteServerNotFound)
                    .with_text("remote domains cannot be reached from this server"),
            );
        }
        if !ctx.account_exists(contact).await {
            // §3.1.2 ("the local contact does not exist"): an error, like messages and IQs to
            // an account that does not exist get (RFC 6121 §8.5.1, RFC 6120 §8.3.3.19).
            return Some(
                StanzaError::new(StanzaErrorCondition::ServiceUnavailable)
                    .with_text("no such account"),
            );
        }
        // A local contact that keeps as many requests from strangers as allowed would refuse
        // this one (see `inbound`): refused here, before the user's roster records a request
        // that cannot be delivered.
        match self
            .roster
            .request_would_be_refused(ctx, contact, &account.to_string())
            .await
        {
            Ok(None) => None,
            Ok(Some(e)) => {
                self.roster.note_limit(contact, Limit::PendingRequests, &e);
                Some(limit_error(&e))
            }
            Err(e) => {
                tracing::error!(error = %e, %contact, "cannot read the roster");
                Some(StanzaError::new(StanzaErrorCondition::InternalServerError))
            }
        }
    }

    // ----- Addressed to a local bare JID -----

    async fn to_bare(&self, ctx: &Context, stanza: &Element) {
        let (Some(to), Some(from)) = (
            stanza.attr("to").and_then(|t| BareJid::new(t).ok()),
            stanza.attr("from").and_then(|f| Jid::new(f).ok()),
        ) else {
            return;
        };
        let ty = stanza.attr("type");
        if let Some(kind) = ty.and_then(SubKind::from_type) {
            self.inbound(ctx, &to, kind, stanza, &from.to_bare()).await;
            return;
        }
        match ty {
            Some("probe") => self.probe(ctx, &to, &from).await,
            // §8.5.2.1.2: other presence goes to every available resource (none: dropped).
            _ => {
                for entry in ctx.sessions.resources(&to).await.iter() {
                    if entry.is_available() {
                        ctx.send_to(entry, stanza.clone()).await;
                    }
                }
            }
        }
    }

    /// A subscription stanza for the account from `contact` (RFC 6121 A.3).
    async fn inbound(
        &self,
        ctx: &Context,
        account: &BareJid,
        kind: SubKind,
        stanza: &Element,
        contact: &BareJid,
    ) {
        if contact == account || !ctx.account_exists(account).await {
            // §3.1.3: a request for an account that does not exist is ignored (its sender may
            // be told `unsubscribed`, which reveals nothing either way).
            return;
        }
        let contact_str = contact.to_string();
        // XEP-0379 §3.4: a request with a token of the account's own invitation is approved
        // on its behalf, as if pre-approved (RFC 6121 §3.4).
        let invited =
            kind == SubKind::Subscribe && crate::invites::preauthorized(ctx, account, stanza).await;
        let mut decision = None;
        let res = self
            .roster
            .update(ctx, account, contact, |slot| {
                if invited {
                    let item = slot.get_or_insert_with(|| RosterItem::new(contact_str.clone()));
                    item.hidden = false;
                    item.preapproved = true;
                }
                let before = State::of(slot.as_ref());
                let inb = subscription::inbound(kind, before);
                decision = Some((before, inb));
                if inb.state == before {
                    return;
                }
                let item = slot.get_or_insert_with(|| RosterItem {
                    // §3.1.3: a request from a stranger is kept aside, not on the roster.
                    hidden: true,
                    ..RosterItem::new(contact_str.clone())
                });
                inb.state.apply_to(item);
                if kind == SubKind::Subscribe && inb.state.pending_in {
                    item.pending_in_stanza = Some(stored_request(stanza));
                }
                if inb.state.from {
                    item.hidden = false;
                }
            })
            .await;
        match res {
            Ok(_) => {}
            Err(UpdateError::Storage(e)) => {
                tracing::error!(error = %e, %account, "cannot store a subscription change");
                return;
            }
            Err(e) => {
                // §3.1.3's Security Warning: the account keeps as many requests from contacts
                // not on its roster as allowed. The sender is told (see `limit_error`), so it
                // does not wait for an answer that cannot come; logged once per account by
                // `RosterService::update`.
                ctx.router
                    .route(error_reply(stanza, &limit_error(&e)))
                    .await;
                return;
            }
        }
        let Some((before, inb)) = decision else {
            return;
        };
        if inb.deliver {
            for entry in ctx.sessions.resources(account).await.iter() {
                if entry.is_available() {
                    ctx.send_to(entry, stanza.clone()).await;
                }
            }
        }
        if kind == SubKind::Unsubscribe && before.from {
            // §3.3.3: the contact no longer receives the account's presence: it sees the
            // account's available resources go unavailable.
            send_unavailable_to(ctx, account, contact).await;
        }
        if inb.auto_subscribed {
            // §3.1.3 (already subscribed) / §3.4 (pre-approved): approved on the account's
            // behalf, followed by its current presence (§3.1.5).
            ctx.router
                .route(subscription_stanza(SubKind::Subscribed, account, contact))
                .await;
            send_current_presence(ctx, account, &contact_str).await;
        }
        if invited && !before.to && !before.pending_out {
            // XEP-0379 §3.5: and the inviter asks back, so that both end at `both` (at once
            // if the invitee pre-approved, §3.4).
            let ask = subscription_stanza(SubKind::Subscribe, account, contact);
            self.outbound(ctx, account, SubKind::Subscribe, &ask, contact)
                .await;
        }
    }

    /// A probe for the account's presence (§4.3.2).
    async fn probe(&self, ctx: &Context, account: &BareJid, prober: &Jid) {
        if !contact_sees(ctx, account, &prober.to_bare()).await {
            // §4.3.2: nothing revealed; `unsubscribed` tells the prober's server its record of
            // a subscription is wrong. The same answer whether or not the account exists.
            ctx.router
                .route(subscription_stanza(
                    SubKind::Unsubscribed,
                    account,
                    &prober.to_bare(),
                ))
                .await;
            return;
        }
        // Available resources answer with their last presence; with none, no answer (§4.3.2
        // allows either that or the last unavailable presence).
        send_current_presence(ctx, account, &prober.to_string()).await;
    }
}
