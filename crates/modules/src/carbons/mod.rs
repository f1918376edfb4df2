//! XEP-0280 Message Carbons, revision 1.0.1 (`urn:xmpp:carbons:2`), with the copying rules the
//! XEP names `urn:xmpp:carbons:rules:0` (§6.2). Section numbers below are the XEP's.
//!
//! # Procedure
//!
//! **Enabling (§4, §5, §10.1).** `<iq type='set'><enable xmlns='urn:xmpp:carbons:2'/></iq>` (or
//! `<disable/>`) from a bound session, without `to` or addressed to its own bare JID, turns
//! carbons on (off) for that session and is answered with an empty result, also when it was
//! already on (off). The state is the session's, held here by full JID *and* session id, so a
//! new session that binds the same resource later starts without it; it is forgotten when the
//! session ends ([`Event::Ended`]) and survives a XEP-0198 resumption, which keeps the session.
//! An enable or disable addressed to another account's bare JID changes nothing and is answered
//! with `<service-unavailable/>`, the answer the router gives for an account that does not exist
//! (RFC 6121 §8.5.1, RFC 6120 §8.3.3.19), so it reveals nothing about the account; the XEP's
//! §5 example uses `<not-allowed/>` for this case, which would tell a stranger that the
//! account exists.
//!
//! **Received copies (§7).** The router tells the delivered hook which of the recipient's
//! resources took a message (the full JID it was addressed to, or the top-priority resources of
//! the bare JID). Every other carbons-enabled, available resource of that account gets
//! `<message from='ACCOUNT' to='RESOURCE' type='TYPE'><received xmlns='urn:xmpp:carbons:2'>
//! <forwarded xmlns='urn:xmpp:forward:0'><message …original…/></forwarded></received></message>`:
//! `from` the account's bare JID (MUST), `to` the resource (MUST), the original's `type` (SHOULD;
//! absent when the original had none), the message as routed inside.
//!
//! **Sent copies (§8).** A message a local client sends to another address (a `FromClient`
//! hook, which never stops it) is copied as `<sent/>` to every carbons-enabled, available
//! resource of the sender's account except the sending one, whether or not the sender enabled
//! carbons. A message from one resource of an account to the account itself (its bare JID, a
//! resource of it, or no `to`) is copied once it is delivered, as `<sent/>`, to the enabled
//! resources that neither sent nor received it: each resource gets the message once, as the
//! original or as one carbon (revision 0.5's rule that a resource gets one copy), never a carbon
//! of what it sent itself or was sent directly. When such a message has no `to`, the copy inside
//! the carbon is given the account's bare JID as `to`, the address it went to (RFC 6120
//! §8.1.1.1), so the other clients know the conversation it belongs to.
//!
//! **Which messages (§6.1, made binding by advertising `urn:xmpp:carbons:rules:0`, §6.2).**
//! [`eligibility`] decides, in this order:
//! 1. `<private xmlns='urn:xmpp:carbons:2'/>` or XEP-0334 `<no-copy/>` (§9, XEP-0334 §4.3): never;
//! 2. a message that is itself a carbon (a `<received/>` or `<sent/>` child) or a XEP-0313 archive
//!    result: never (copying it again would wrap a copy in a copy);
//! 3. `groupchat`: never (§6.1, MUC rules); `headline`: never (not instant messaging: RFC 6121
//!    §5.2.2 says no reply is expected, and the server sends headlines to every resource anyway);
//! 4. `error`: only in reply to a message that was eligible (§6.1), see below;
//! 5. a XEP-0045 mediated invitation (`<x xmlns='…muc#user'><invite/></x>`) or a XEP-0249
//!    direct invitation (`<x xmlns='jabber:x:conference'/>`): always (§6.1);
//! 6. other messages with `<x xmlns='http://jabber.org/protocol/muc#user'/>`: a private message
//!    *from* a MUC occupant (received from a full JID) never, since the MUC service already
//!    sends it to every joined client; one *to* an occupant (sent to a full JID) always (§6.1).
//!    The note's "limit to the clients sharing a Multi-Session Nick" needs MUC state this server
//!    does not have: every enabled resource gets it;
//! 7. type `chat`; type `normal` (or none, or one the server does not know, RFC 6121 §5.2.2)
//!    with a `<body/>`; any type with an IM payload: XEP-0085 chat states, XEP-0184 receipts,
//!    XEP-0333 markers (§6.1), and XEP-0384 OMEMO `<encrypted/>` (both namespaces), whose body
//!    is the encrypted payload: a body-less OMEMO message is as much a conversation's content as
//!    a plain one, which is the general intent §6 asks servers to follow;
//! 8. anything else: never.
//!
//! **Errors in reply (§6.1, fourth rule).** The rule needs correlation: for each account with a
//! carbons-enabled resource, the module remembers the last [`RECENT`] eligible messages that had
//! an `id`, as a keyed hash of (the other party's bare JID, id), in both directions. An error
//! message is copied when its `id` and its other party (the sender of an inbound error, the
//! recipient of an outbound one) match one of them (RFC 6120 §8.3.1: an error carries the id of
//! the stanza it answers). That covers the errors a peer's client sends and those the server
//! generates (the router tells the delivered hook of its own message errors too).
//!
//! **Private (§9).** Revision 0.14 lifted the old requirement to remove `<private/>` before
//! delivery (a sender could silently steer delivery); it is delivered as sent.
//!
//! **Security (§11, and §7's spoofing example).** Clients must ignore carbons not from their own
//! bare JID; the server's part is to make sure only it ever sends one from there: every wrapper
//! this module builds has the account's bare JID as `from` and goes to one of that account's
//! resources, a client can only send as its own full JID (c2s stamps it, RFC 6120 §8.1.2.1),
//! and a message that carries a `<received/>` or `<sent/>` from anybody is delivered as it came
//! (with its real sender) and never copied or wrapped (rule 2). Nothing is removed from it: the
//! XEP asks nothing of the server there.
//!
//! **Carbons that cannot be delivered (§10.3).** Copies go through the one outbound path
//! (`Context::send_to`); a session that cannot take one does not get it, and no error goes
//! anywhere. A copy a session had taken but not written (or, with stream management, not had
//! acknowledged) when it ended comes back to the router, which routes it as if to the bare JID
//! (c2s `Session::end`): a `ToBare` hook drops a message carrying `<received/>` or `<sent/>` whose
//! `from` is the bare JID of the account it is addressed to. The account's other resources had
//! their own copy or the original; stored offline it would come back as a carbon from the past.
//!
//! # Cost
//!
//! While no session has carbons enabled, every hook returns after one atomic load. For an account
//! without an enabled session, after one hash-map look-up (with a slice of the JID the router or
//! c2s already wrote, nothing parsed or allocated) under a mutex held for no await; the delivered
//! hook says so in [`DeliveredHook::wants`], so the router copies nothing for such an account and
//! keeps its fast path for bare-JID messages. Copies are built only when at least one resource is
//! to get one: one wrapper, cloned per resource.
//!
//! # Hazards
//!
//! - An enable IQ from a session that a new session of the same resource replaces while the IQ
//!   is being handled can land on the replacement: the handler learns the session id from the
//!   registry, which already names the new one. The window is the IQ's routing; the old
//!   session's enable is then applied to the new one, which can disable it.
//! - An error is matched against the last [`RECENT`] eligible messages of the account only, and
//!   only those seen while a resource had carbons enabled.
//! - A message from an account to its own bare JID that no resource takes (none available with
//!   a non-negative priority) is not copied: the copy is made on delivery.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use starling_module_api::{
    BindInline, Context, DeliveredHook, Event, EventListener, HookPoint, HookResult, IqHandler,
    IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar, SessionEntry, SessionId, StanzaHook,
};
use starling_proto::element::Ns;
use starling_proto::{
    BareJid, Element, FullJid, Jid, StanzaError, StanzaErrorCondition, StanzaKind, ns,
};

/// The namespace of XEP-0280, also its disco feature (§3).
pub const NS: &str = "urn:xmpp:carbons:2";
/// The disco feature that promises exactly the rules of §6.1 (§6.2).
pub const FEATURE_RULES: &str = "urn:xmpp:carbons:rules:0";
/// XEP-0297 stanza forwarding.
pub const NS_FORWARD: &str = "urn:xmpp:forward:0";
/// XEP-0045 `<x/>` in messages from and to rooms.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0249 direct MUC invitations.
pub const NS_CONFERENCE: &str = "jabber:x:conference";
/// XEP-0313 archive results are `<result xmlns='urn:xmpp:mam:N'/>`.
const NS_MAM_PREFIX: &str = "urn:xmpp:mam:";
/// XEP-0384 OMEMO, the version most clients speak (0.3) and the current one.
const NS_OMEMO_LEGACY: &str = "eu.siacs.conversations.axolotl";
const NS_OMEMO: &str = "urn:xmpp:omemo:2";

/// Eligible messages remembered per account, for errors in reply to them (§6.1).
pub const RECENT: usize = 32;

/// Priority of the `FromClient` hook: after the hooks that change or stop a message (an archive
/// stamping it, blocking refusing it), so what is copied is what is routed.
const FROM_CLIENT_PRIORITY: i32 = -100;
/// Priority of the `ToBare` hook that drops carbons coming back from an ended session: before
/// anything else sees them.
const TO_BARE_PRIORITY: i32 = 100;

/// Which way a message goes, seen from the account whose resources get the copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Sent by one of the account's resources (§8).
    Sent,
    /// Addressed to the account (§7).
    Received,
}

impl Direction {
    /// The carbon's element (§7, §8).
    fn element(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// What [`eligibility`] says about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eligibility {
    No,
    Yes,
    /// An error: copied if it answers a message that was eligible (§6.1).
    IfReplyToEligible,
}

/// Whether a message is copied (§6.1; the order of the rules is in the module docs).
pub fn eligibility(message: &Element, direction: Direction) -> Eligibility {
    let mut muc_user: Option<&Element> = None;
    let mut invitation = false;
    let mut body = false;
    let mut im_payload = false;
    for child in message.children() {
        match (child.ns(), child.name()) {
            (NS, "private") | (ns::HINTS, "no-copy") => return Eligibility::No,
            (NS, "received" | "sent") => return Eligibility::No,
            (n, "result") if n.starts_with(NS_MAM_PREFIX) => return Eligibility::No,
            (ns::CLIENT, "body") => body = true,
            (NS_MUC_USER, "x") => muc_user = Some(child),
            (NS_CONFERENCE, "x") => invitation = true,
            (ns::CHATSTATES | ns::MARKERS, _)
            | (ns::RECEIPTS, "request" | "received")
            | (NS_OMEMO_LEGACY | NS_OMEMO, "encrypted") => im_payload = true,
            _ => {}
        }
    }
    let ty = message.attr("type");
    match ty {
        Some("groupchat" | "headline") => return Eligibility::No,
        Some("error") => return Eligibility::IfReplyToEligible,
        _ => {}
    }
    if let Some(x) = muc_user {
        invitation |= x.children().any(|c| c.is("invite", NS_MUC_USER));
        if !invitation {
            match direction {
                Direction::Received if is_full(message.attr("from")) => return Eligibility::No,
                Direction::Sent if is_full(message.attr("to")) => return Eligibility::Yes,
                _ => {}
            }
        }
    }
    if invitation || ty == Some("chat") || body || im_payload {
        Eligibility::Yes
    } else {
        Eligibility::No
    }
}

fn is_full(addr: Option<&str>) -> bool {
    addr.and_then(|a| Jid::new(a).ok())
        .is_some_and(|j| j.is_full())
}

/// Whether `message` carries a carbon (`<received/>` or `<sent/>`) at its top level.
fn carries_carbon(message: &Element) -> bool {
    message
        .children()
        .any(|c| c.ns() == NS && matches!(c.name(), "received" | "sent"))
}

/// The carbon of `message` for `account`'s resources (§7, §8), without its `to` (each copy
/// gets the full JID of the resource it goes to). A message without `to` went to the account
/// itself (RFC 6120 §8.1.1.1); its copy says so.
pub fn wrap(direction: Direction, account: &BareJid, message: &Element) -> Element {
    let client = Ns::from_static(ns::CLIENT);
    let mut original = message.clone();
    if original.attr("to").is_none() {
        original.set_attr("to", account.as_str());
    }
    if original.ns() != ns::CLIENT {
        // XEP-0297 §3: the forwarded stanza keeps its namespace; inside a jabber:client stream
        // that is jabber:client.
        let from = original.ns().to_owned();
        original.rename_ns(&from, &client);
    }
    Element::new("message", client)
        .with_attr("from", account.as_str())
        .with_opt_attr("type", message.attr("type"))
        .with_child(
            Element::new(direction.element(), Ns::from_static(NS)).with_child(
                Element::new("forwarded", Ns::from_static(NS_FORWARD)).with_child(original),
            ),
        )
}

/// The bare JID part of a JID written canonically (a stamped `from`, a parsed JID's string):
/// everything before the first `/`, which neither localpart nor domainpart may contain
/// (RFC 7622 §3.3, §3.2).
fn bare_of(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(bare, _)| bare)
}

/// The XEP-0280 module. See the module docs.
pub struct Carbons {
    /// By bare JID, as written canonically: looked up with a slice of a full JID, without
    /// allocating.
    accounts: Mutex<HashMap<String, Account>>,
    /// Whether `accounts` holds anything: without an enabled session anywhere, the hooks return
    /// without taking the lock.
    any: AtomicBool,
    /// Keys the hashes of remembered messages, so that nobody can choose ids that collide.
    keys: RandomState,
}

/// The carbons state of one account that has at least one enabled session.
#[derive(Default)]
struct Account {
    /// The enabled sessions, by full JID and session id.
    enabled: Vec<(FullJid, SessionId)>,
    recent: Recent,
}

/// The last [`RECENT`] eligible messages, as keyed hashes of (other party, id); 0 is free.
#[derive(Default)]
struct Recent {
    hashes: [u64; RECENT],
    next: usize,
}

impl Recent {
    fn remember(&mut self, hash: u64) {
        if self.hashes.contains(&hash) {
            return;
        }
        if let Some(slot) = self.hashes.get_mut(self.next) {
            *slot = hash;
        }
        self.next = (self.next + 1) % RECENT;
    }

    fn contains(&self, hash: u64) -> bool {
        self.hashes.contains(&hash)
    }
}

impl Default for Carbons {
    fn default() -> Self {
        Carbons::new()
    }
}

impl Carbons {
    pub fn new() -> Self {
        Carbons {
            accounts: Mutex::default(),
            any: AtomicBool::new(false),
            keys: RandomState::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Account>> {
        // Every change is one insert or removal: a panic elsewhere leaves the map consistent.
        self.accounts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Turns carbons on or off for the session `id` bound to `jid`.
    fn set(&self, jid: &FullJid, id: SessionId, on: bool) {
        let account = bare_of(jid.as_str());
        let mut map = self.lock();
        if on {
            let acc = map.entry(account.to_owned()).or_default();
            if !acc.enabled.iter().any(|(j, i)| *i == id && j == jid) {
                acc.enabled.push((jid.clone(), id));
            }
        } else if let Some(acc) = map.get_mut(account) {
            acc.enabled.retain(|(j, i)| !(*i == id && j == jid));
            if acc.enabled.is_empty() {
                map.remove(account);
            }
        }
        self.any.store(!map.is_empty(), Ordering::Release);
    }

    /// Whether session `id`, bound to `jid`, has carbons enabled.
    pub fn is_enabled(&self, jid: &FullJid, id: SessionId) -> bool {
        self.lock()
            .get(bare_of(jid.as_str()))
            .is_some_and(|acc| acc.enabled.iter().any(|(j, i)| *i == id && j == jid))
    }

    /// Whether a session of the account `bare` (written canonically) has carbons enabled: one
    /// atomic load while nobody has, then one look-up.
    fn has(&self, bare: &str) -> bool {
        self.any.load(Ordering::Acquire) && self.lock().contains_key(bare)
    }

    /// Accounts with at least one enabled session.
    pub fn accounts(&self) -> usize {
        self.lock().len()
    }

    fn key(&self, peer: &BareJid, id: &str) -> u64 {
        // Never 0, the free slot.
        self.keys.hash_one((peer.as_str(), id)) | 1
    }

    /// Whether `message`, going `direction` between `account` and `peer` (the other party's
    /// bare JID), is to be copied to `account`'s resources: the account has an enabled session
    /// and the message is eligible (§6.1). An eligible message with an id is remembered, so that
    /// an error answering it is copied too.
    fn wanted(
        &self,
        account: &BareJid,
        peer: &BareJid,
        message: &Element,
        direction: Direction,
    ) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut map = self.lock();
        let Some(acc) = map.get_mut(account.as_str()) else {
            return false;
        };
        let key = message.attr("id").map(|id| self.key(peer, id));
        match eligibility(message, direction) {
            Eligibility::No => false,
            Eligibility::Yes => {
                if let Some(k) = key {
                    acc.recent.remember(k);
                }
                true
            }
            Eligibility::IfReplyToEligible => key.is_some_and(|k| acc.recent.contains(k)),
        }
    }

    /// Sends the carbon of `message` to every enabled, available resource of `account` that is
    /// neither among `took` (they got the original) nor `sender` (§7, §8).
    async fn copy(
        &self,
        ctx: &Context,
        account: &BareJid,
        message: &Element,
        direction: Direction,
        took: &[FullJid],
        sender: Option<&FullJid>,
    ) {
        let resources = ctx.sessions.resources(account).await;
        let targets: Vec<&SessionEntry> = {
            let map = self.lock();
            let Some(acc) = map.get(account.as_str()) else {
                return;
            };
            resources
                .iter()
                .filter(|e| {
                    e.is_available()
                        && !e.handle.is_closing()
                        && sender != Some(&e.jid)
                        && !took.contains(&e.jid)
                        && acc
                            .enabled
                            .iter()
                            .any(|(j, id)| *id == e.handle.id() && *j == e.jid)
                })
                .collect()
        };
        let Some((last, others)) = targets.split_last() else {
            return;
        };
        tracing::trace!(%account, copies = targets.len(), kind = direction.element(), "carbons");
        let carbon = wrap(direction, account, message);
        for e in others {
            let mut c = carbon.clone();
            c.set_attr("to", e.jid.as_str());
            ctx.send_to(e, c).await;
        }
        let mut c = carbon;
        c.set_attr("to", last.jid.as_str());
        ctx.send_to(last, c).await;
    }

    /// §8: a message a local client sends to another address.
    async fn sent(&self, ctx: &Context, message: &Element) {
        // Stamped by c2s, canonical: nothing is parsed for an account without carbons.
        let Some(from) = message.attr("from") else {
            return;
        };
        if !self.has(bare_of(from)) {
            return;
        }
        let Ok(sender) = FullJid::new(from) else {
            return;
        };
        // Without 'to' it goes to the sender's own account (RFC 6120 §8.1.1.1); an invalid
        // 'to' bounces.
        let Some(peer) = message
            .attr("to")
            .and_then(|t| Jid::new(t).ok())
            .map(|t| t.to_bare())
        else {
            return;
        };
        let account = sender.to_bare();
        if peer == account {
            // To the account itself: copied once delivered, when the resources that took it
            // are known (see `delivered`).
            return;
        }
        if self.wanted(&account, &peer, message, Direction::Sent) {
            self.copy(ctx, &account, message, Direction::Sent, &[], Some(&sender))
                .await;
        }
    }
}

/// `<service-unavailable/>`, `<not-allowed/>`…
fn error(condition: StanzaErrorCondition) -> IqOutcome {
    IqOutcome::Error(StanzaError::new(condition))
}

impl Module for Carbons {
    fn name(&self) -> &'static str {
        "carbons"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(IqTarget::Account, IqType::Set, NS, "enable", self.clone());
        reg.iq(IqTarget::Account, IqType::Set, NS, "disable", self.clone());
        // §3; §6.2: the rules of §6.1 are all implemented (see `eligibility`).
        reg.server_feature(NS);
        reg.server_feature(FEATURE_RULES);
        reg.stanza_hook(
            StanzaKind::Message,
            HookPoint::FromClient,
            FROM_CLIENT_PRIORITY,
            self.clone(),
        );
        reg.stanza_hook(
            StanzaKind::Message,
            HookPoint::ToBare,
            TO_BARE_PRIORITY,
            self.clone(),
        );
        reg.delivered_hook(self.clone());
        // XEP-0386 §3.2: `<enable xmlns='urn:xmpp:carbons:2'/>` inside Bind2's <bind/>.
        reg.bind_inline(NS, self.clone());
        reg.events(self);
    }
}

#[async_trait]
impl BindInline for Carbons {
    /// XEP-0386 §3.2: carbons enabled as the session binds, "MUST succeed", no answer in
    /// `<bound/>`. Anything but `<enable/>` in the namespace is ignored.
    async fn bind_inline(
        &self,
        ctx: &Context,
        session: &SessionEntry,
        request: &Element,
    ) -> Option<Element> {
        if request.name() != "enable" {
            return None;
        }
        let (jid, id) = (&session.jid, session.handle.id());
        self.set(jid, id, true);
        // As for the IQ: a session that ended meanwhile must not leave its state behind.
        if ctx
            .sessions
            .get(jid)
            .await
            .is_none_or(|e| e.handle.id() != id)
        {
            self.set(jid, id, false);
        }
        tracing::debug!(%jid, "carbons enabled inline (Bind2)");
        None
    }
}

#[async_trait]
impl IqHandler for Carbons {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        // Registered for IqTarget::Account only: the router names the account (the sender's
        // own when the IQ had no 'to').
        let Some(account) = req.account else {
            return error(StanzaErrorCondition::ServiceUnavailable);
        };
        if req.from.to_bare() != *account {
            // Another account's carbons are nobody else's business: the answer an account
            // that does not exist gets (RFC 6121 §8.5.1).
            return error(StanzaErrorCondition::ServiceUnavailable);
        }
        // §4.1: <not-allowed/> for a request from a client not hosted here.
        let Ok(jid) = req.from.try_as_full() else {
            return error(StanzaErrorCondition::NotAllowed);
        };
        let Some(entry) = ctx.sessions.get(jid).await else {
            return error(StanzaErrorCondition::NotAllowed);
        };
        let id = entry.handle.id();
        let on = req.payload.name() == "enable";
        self.set(jid, id, on);
        // The session may have ended while this was handled, and its end been heard before the
        // state was set: nothing would forget it then.
        if on
            && ctx
                .sessions
                .get(jid)
                .await
                .is_none_or(|e| e.handle.id() != id)
        {
            self.set(jid, id, false);
        }
        tracing::debug!(%jid, on, "carbons");
        // §10.1: enabling twice, or disabling twice, is no error.
        IqOutcome::Result(None)
    }
}

#[async_trait]
impl StanzaHook for Carbons {
    async fn on_stanza(&self, ctx: &Context, point: HookPoint, stanza: &mut Element) -> HookResult {
        match point {
            HookPoint::FromClient => {
                self.sent(ctx, stanza).await;
                HookResult::Pass
            }
            HookPoint::ToBare if is_returned_carbon(stanza) => {
                tracing::debug!(to = stanza.attr("to"), "an undelivered carbon dropped");
                HookResult::Handled
            }
            _ => HookResult::Pass,
        }
    }
}

/// A carbon this server made (from the bare JID of the account it is addressed to) that comes
/// back to the router because its session ended before taking it (module docs, §10.3).
fn is_returned_carbon(message: &Element) -> bool {
    if !carries_carbon(message) {
        return false;
    }
    let (Some(from), Some(to)) = (message.attr("from"), message.attr("to")) else {
        return false;
    };
    match (Jid::new(from), Jid::new(to)) {
        (Ok(from), Ok(to)) => from.is_bare() && to.to_bare() == from,
        _ => false,
    }
}

#[async_trait]
impl DeliveredHook for Carbons {
    /// Only accounts with an enabled session: for the others the router copies nothing.
    fn wants(&self, to: &FullJid) -> bool {
        self.has(bare_of(to.as_str()))
    }

    async fn delivered(&self, ctx: &Context, message: &Element, to: &[FullJid]) {
        // One account's resources, always.
        let Some(first) = to.first() else {
            return;
        };
        if !self.has(bare_of(first.as_str())) {
            return;
        }
        let account = first.to_bare();
        let Some(from) = message.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let peer = from.to_bare();
        if peer == account {
            // From the account to itself (§8, see the module docs): the resources that took it
            // and the one that sent it have it.
            let sender = from.try_as_full().ok();
            if self.wanted(&account, &peer, message, Direction::Sent) {
                self.copy(ctx, &account, message, Direction::Sent, to, sender)
                    .await;
            }
        } else if self.wanted(&account, &peer, message, Direction::Received) {
            self.copy(ctx, &account, message, Direction::Received, to, None)
                .await;
        }
    }
}

#[async_trait]
impl EventListener for Carbons {
    async fn on_event(&self, _ctx: &Context, event: &Event) {
        // Resumed keeps the session, and so its state; Unavailable ends nothing.
        if let Event::Ended(entry) = event {
            self.set(&entry.jid, entry.handle.id(), false);
        }
    }
}

#[cfg(test)]
mod tests;
