//! XEP-0191 Simple Communications Blocking (`urn:xmpp:blocking`, 1.1), with XEP-0377 reports
//! attached to blocks. Section numbers below are XEP-0191's.
//!
//! # Procedure
//!
//! **The list (§3.2).** `<iq type='get'><blocklist xmlns='urn:xmpp:blocking'/></iq>` from a
//! session, without `to` or to its own bare JID, is answered with every blocked JID in the order
//! they were blocked (an empty `<blocklist/>` when there is none), and the session is remembered
//! as one that fetched the list: it gets the pushes below until it ends. Asked of another
//! account, the answer is `<service-unavailable/>`, as for an account that does not exist.
//!
//! **Block (§3.3).** `<block>` with one or more `<item jid='…'/>`: every JID is normalised
//! (RFC 7622) and stored, then every session that fetched the list gets
//! `<iq type='set'><block><item jid='…'/>…</block></iq>` naming the JIDs of the request, and the
//! IQ is answered with an empty result (pushes first, as RFC 6121 §2.3.2 orders roster pushes;
//! the XEP does not say). No item is `<bad-request/>`, an item without `jid` `<bad-request/>`, a
//! JID that does not parse `<jid-malformed/>`; nothing is blocked then. A list may hold at most
//! [`MAX_ITEMS`] JIDs (`<policy-violation/>` beyond). Before the block takes effect, every
//! available resource of the user sends unavailable presence to each newly blocked contact that
//! may see the user's presence (a roster item with subscription `from` or `both`): to the
//! blocked JID itself when it names a resource, to the roster item otherwise.
//!
//! **Unblock (§3.4, §3.5).** `<unblock>` with items removes those JIDs (JIDs that were not
//! blocked are ignored); an empty `<unblock/>` removes all (one with children that are no
//! `urn:xmpp:blocking` items is a `<bad-request/>`). Then the pushes (the JIDs of the request, or
//! an empty `<unblock/>`), the result, and every available resource's current
//! presence to each unblocked contact with subscription `from` or `both` that nothing else on
//! the list still blocks.
//!
//! **Reports (XEP-0377).** A `<report xmlns='urn:xmpp:reporting:1' reason='…'/>` inside an
//! `<item/>` of a block (with optional `<stanza-id/>` copies and `<text/>`) is stored for the
//! operator (`starling reports` lists them) once the block is stored, for JIDs the block newly
//! added (blocking again files nothing). A malformed report (no reason, XEP-0377 §4) is logged
//! and not kept; the block happens as it would without it (§5). The older
//! `urn:xmpp:reporting:0` forms are read too.
//!
//! **Matching (§4).** `user@domain/resource` blocks that resource, `user@domain` every resource,
//! `domain/resource` that resource of the domain, `domain` the domain and every JID at it or at
//! a subdomain of it ([`list::BlockList::blocks`]).
//!
//! **Enforcement (§3.3).** Nothing from a blocked JID reaches the user, nothing from the user
//! reaches a blocked JID:
//! - *Inbound*, at `ToBare` and `ToFull` (every kind, before the archive, the presence module and
//!   offline storage see it, so a refused message is neither archived nor stored): a message or
//!   an IQ get/set from a JID the recipient blocked is answered with `<service-unavailable/>`
//!   from the address it was sent to (so the user appears offline, §3.3), and presence, IQ
//!   results and errors are dropped without an answer.
//! - *Outbound from a client*, at `FromClient` before every other hook: a stanza addressed to a
//!   JID the sender blocked is not routed; the sender gets `<not-acceptable/>` with
//!   `<blocked xmlns='urn:xmpp:blocking:errors'/>` (type `cancel`, as §3.3's example), except
//!   for errors and IQ results, which are dropped (an error is never answered with an error).
//! - *On the one outbound path* (an outbound hook, which every stanza to a local session passes,
//!   whichever module sends it): a stanza from a JID the recipient blocked is dropped (an IQ
//!   get/set answered as above), and a stanza from a local account that blocked the recipient is
//!   dropped, except errors (the server's own answers, such as the `<service-unavailable/>`
//!   above). This stops presence broadcasts and probe answers to a blocked contact, the offline
//!   backlog and stored subscription requests from a blocked contact, and anything a later
//!   module delivers. A XEP-0280 carbon, which comes from the recipient's own account, is judged
//!   by the message it copies: a resource the sender blocked gets no copy either.
//! - *Leaving the server*, at `ToRemote` (a component's domain, later another server): what the
//!   server sends for a local account (presence broadcasts, probes) to a JID it blocked is
//!   dropped; errors pass.
//!
//! Stanzas from the account itself and from the server's own domain are never blocked, and
//! stanzas to the server's own domain never refused, so that blocking one's own domain (every
//! user of it) still leaves the server answering.
//!
//! **Polite blocking (§6).** Subscriptions are not cancelled and the blocked contact is told
//! nothing.
//!
//! # Cost
//!
//! Every account's list lives in memory (loaded from the store with the first stanza, then kept
//! in step with every change, which all go through this module): a check is one or two hash-map
//! look-ups under a mutex held for no await, with slices of the JIDs the stanza carries. While no
//! account blocks anything, each hook returns after one atomic load.
//!
//! # Hazards
//!
//! - When the lists cannot be read at the first stanza, nothing is blocked (fail open, logged)
//!   until a later attempt, at most every [`RETRY_LOAD`], succeeds.
//! - A message to a contact's bare JID whose only chosen resource the user blocked is dropped
//!   for that resource and counts as delivered: the sender is not told, and the contact's
//!   lower-priority resources do not get it.
//! - Contacts that got directed presence but are not subscribed are not sent unavailable
//!   presence on block (the directed set is the presence module's), and the unavailable presence
//!   at the session's end no longer reaches them: they may see the user online until they probe.
//! - An account deleted with `starling user del` while the server runs keeps its list in memory;
//!   an account created again with that name starts with it until a restart (unblocking works).
//! - The lists are loaded once: a list changed in the database by anything but this module (a
//!   second server on the same database, a cluster node) is not seen until restart. A cluster
//!   will need to announce changes.
//! - Memory grows with the number of blocked JIDs of all accounts (about 150 bytes each), at most
//!   [`MAX_ITEMS`] per account.
//! - Reports are not rate-limited: a user can file one per block.

pub mod list;
pub mod report;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use starling_module_api::{
    Context, Event, EventListener, HookPoint, HookResult, IqHandler, IqOutcome, IqRoute, IqTarget,
    IqType, Module, OutboundHook, Registrar, SessionEntry, SessionId, StanzaHook, random_id,
};
use starling_proto::{
    BareJid, Element, ErrorType, FullJid, Jid, StanzaError, StanzaErrorCondition, StanzaKind,
    error_reply, ns,
};
use starling_storage::{AbuseReport, StorageError, Subscription};
use tokio::sync::OnceCell;

use self::list::{BlockList, JidParts};

/// The namespace of XEP-0191, also its disco feature (§3.1).
pub const NS: &str = "urn:xmpp:blocking";
/// The namespace of the `<blocked/>` error condition (§3.3).
pub const NS_ERRORS: &str = "urn:xmpp:blocking:errors";
/// The most JIDs one account may block.
pub const MAX_ITEMS: usize = 1000;
/// How long after a failed attempt to load the lists the next is made (each is a full read).
const RETRY_LOAD: Duration = Duration::from_secs(5);
/// The priority of every hook: before anything else sees a stanza it refuses.
const PRIORITY: i32 = 1000;

pub struct Blocking {
    /// Every account's non-empty list, by bare JID.
    lists: Mutex<HashMap<String, Arc<BlockList>>>,
    /// How many accounts block anything (the hooks' fast path).
    blocking_accounts: AtomicUsize,
    loaded: OnceCell<()>,
    /// When loading the lists last failed: no new attempt for [`RETRY_LOAD`].
    load_failed: Mutex<Option<Instant>>,
    /// Changes are made one at a time: the store and the lists in memory stay in step.
    changes: tokio::sync::Mutex<()>,
    /// The sessions that fetched their list (§3.2), which get the pushes.
    fetched: Mutex<HashMap<FullJid, SessionId>>,
}

impl Default for Blocking {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn error(condition: StanzaErrorCondition, text: Option<&str>) -> IqOutcome {
    let mut e = StanzaError::new(condition);
    if let Some(t) = text {
        e = e.with_text(t);
    }
    IqOutcome::Error(e)
}

/// Whether a stanza from `from` to the account `account` is never blocked: the account's own,
/// or the server's (a local domain itself).
fn exempt(ctx: &Context, account: &str, from: &str) -> bool {
    let p = JidParts::of(from);
    p.bare == account || (p.node.is_none() && p.resource.is_none() && ctx.is_local_domain(from))
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Blocking {
    pub fn new() -> Self {
        Blocking {
            lists: Mutex::new(HashMap::new()),
            blocking_accounts: AtomicUsize::new(0),
            loaded: OnceCell::new(),
            load_failed: Mutex::new(None),
            changes: tokio::sync::Mutex::new(()),
            fetched: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the lists the first time; whether any account blocks anything. When the store
    /// cannot be read, nothing is blocked for this stanza and the next one tries again.
    async fn any_blocks(&self, ctx: &Context) -> bool {
        if !self.loaded.initialized() {
            if lock(&self.load_failed).is_some_and(|at| at.elapsed() < RETRY_LOAD) {
                return false;
            }
            let loaded = self
                .loaded
                .get_or_try_init(|| async {
                    let rows = ctx.stores.blocking.all_blocklists().await?;
                    let mut grouped: HashMap<String, Vec<String>> = HashMap::new();
                    for r in rows {
                        grouped
                            .entry(format!("{}@{}", r.localpart, r.domain))
                            .or_default()
                            .push(r.jid);
                    }
                    let mut lists = lock(&self.lists);
                    for (account, items) in grouped {
                        lists.insert(account, Arc::new(BlockList::new(items)));
                    }
                    self.blocking_accounts.store(lists.len(), Ordering::Release);
                    Ok::<(), StorageError>(())
                })
                .await;
            if let Err(e) = loaded {
                tracing::error!(
                    error = %e,
                    "blocklists could not be loaded; not blocking (next attempt in {RETRY_LOAD:?})"
                );
                *lock(&self.load_failed) = Some(Instant::now());
                return false;
            }
        }
        self.blocking_accounts.load(Ordering::Acquire) > 0
    }

    /// Whether `account`'s list blocks `jid` (both canonical).
    fn blocks(&self, account: &str, jid: &str) -> bool {
        lock(&self.lists)
            .get(account)
            .is_some_and(|l| l.blocks(jid))
    }

    /// Whether `from` is a local account whose list blocks `recipient`.
    fn local_blocks(&self, ctx: &Context, from: &str, recipient: &str) -> bool {
        let p = JidParts::of(from);
        p.node.is_some() && ctx.is_local_domain(p.domain) && self.blocks(p.bare, recipient)
    }

    fn list_of(&self, account: &str) -> Arc<BlockList> {
        lock(&self.lists).get(account).cloned().unwrap_or_default()
    }

    /// Replaces `account`'s list in memory.
    fn set_list(&self, account: &str, list: BlockList) {
        let mut lists = lock(&self.lists);
        if list.is_empty() {
            lists.remove(account);
        } else {
            lists.insert(account.to_owned(), Arc::new(list));
        }
        self.blocking_accounts.store(lists.len(), Ordering::Release);
    }

    /// §3.3: a stanza from a blocked JID. Presence, IQ results and errors get no answer;
    /// messages (when `answer_messages`) and IQ get/set get `<service-unavailable/>`.
    async fn refuse_inbound(&self, ctx: &Context, stanza: &Element, answer_messages: bool) {
        let answer = match (stanza.name(), stanza.attr("type")) {
            (_, Some("error")) | ("presence", _) => false,
            ("iq", Some("get" | "set")) => true,
            ("message", _) => answer_messages,
            _ => false,
        };
        if answer {
            let reply = error_reply(
                stanza,
                &StanzaError::new(StanzaErrorCondition::ServiceUnavailable),
            );
            ctx.router.route(reply).await;
        }
    }

    /// Inbound enforcement at `ToBare` and `ToFull`.
    async fn inbound(&self, ctx: &Context, stanza: &Element) -> HookResult {
        if !self.any_blocks(ctx).await {
            return HookResult::Pass;
        }
        let (Some(to), Some(from)) = (stanza.attr("to"), stanza.attr("from")) else {
            return HookResult::Pass;
        };
        let account = JidParts::of(to).bare;
        if exempt(ctx, account, from) || !self.blocks(account, from) {
            return HookResult::Pass;
        }
        tracing::trace!(%account, %from, kind = stanza.name(), "blocked (inbound)");
        self.refuse_inbound(ctx, stanza, true).await;
        HookResult::Handled
    }

    /// Enforcement at `FromClient`: a stanza to a JID the sender blocked.
    async fn refuse_to_blocked(&self, ctx: &Context, stanza: &Element) -> HookResult {
        if !self.any_blocks(ctx).await {
            return HookResult::Pass;
        }
        let (Some(to), Some(from)) = (stanza.attr("to"), stanza.attr("from")) else {
            return HookResult::Pass;
        };
        let sender = JidParts::of(from).bare;
        if exempt(ctx, sender, to) || !self.blocks(sender, to) {
            return HookResult::Pass;
        }
        tracing::trace!(%sender, %to, kind = stanza.name(), "blocked (outbound)");
        match (stanza.name(), stanza.attr("type")) {
            (_, Some("error")) | ("iq", Some("result")) => {}
            _ => {
                // §3.3: <not-acceptable/> with <blocked/>, to the sending session only (routed,
                // it would come from the blocked JID and be refused on the way).
                let mut err = StanzaError::new(StanzaErrorCondition::NotAcceptable)
                    .with_type(ErrorType::Cancel);
                err.app = Some(Element::new("blocked", NS_ERRORS));
                let reply = error_reply(stanza, &err);
                if let Some(entry) = session_of(ctx, from).await {
                    ctx.send_to(&entry, reply).await;
                }
            }
        }
        HookResult::Handled
    }

    /// Enforcement at `ToRemote`: what the server sends for a local account (presence
    /// broadcasts, probes, subscription answers) to a JID at a component, or later another
    /// server, that the account blocked. A client's own stanzas were refused at `FromClient`;
    /// errors are the server's answers and pass.
    async fn leaving(&self, ctx: &Context, stanza: &Element) -> HookResult {
        if !self.any_blocks(ctx).await || stanza.attr("type") == Some("error") {
            return HookResult::Pass;
        }
        let (Some(to), Some(from)) = (stanza.attr("to"), stanza.attr("from")) else {
            return HookResult::Pass;
        };
        if self.local_blocks(ctx, from, to) {
            tracing::trace!(%from, %to, kind = stanza.name(), "blocked (leaving)");
            return HookResult::Handled;
        }
        HookResult::Pass
    }

    /// The IQ handler for get, block and unblock.
    async fn handle(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        let Some(account) = req.account else {
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        };
        if req.from.to_bare() != *account {
            // Another account's list is nobody's business: the answer for an account that does
            // not exist (RFC 6121 §8.5.1).
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        }
        self.any_blocks(ctx).await;
        if !self.loaded.initialized() {
            // The lists could not be loaded: a change now could not be kept in step.
            return error(StanzaErrorCondition::InternalServerError, None);
        }
        match req.payload.name() {
            "blocklist" => self.get(ctx, account, req.from).await,
            "block" => self.block(ctx, account, req.payload).await,
            "unblock" => self.unblock(ctx, account, req.payload).await,
            _ => error(StanzaErrorCondition::ServiceUnavailable, None),
        }
    }

    /// §3.2.
    async fn get(&self, ctx: &Context, account: &BareJid, from: &Jid) -> IqOutcome {
        if let Some(entry) = session_of(ctx, from.as_str()).await {
            lock(&self.fetched).insert(entry.jid.clone(), entry.handle.id());
        }
        let mut list = Element::new("blocklist", NS);
        for jid in self.list_of(account.as_str()).items() {
            list.append_child(item(jid));
        }
        IqOutcome::Result(Some(list))
    }

    /// §3.3.
    async fn block(&self, ctx: &Context, account: &BareJid, payload: &Element) -> IqOutcome {
        let parsed = match parse_items(payload) {
            Ok(p) => p,
            Err((condition, text)) => return error(condition, Some(&text)),
        };
        if parsed.is_empty() {
            // §3.3: a block without an item.
            return error(
                StanzaErrorCondition::BadRequest,
                Some("a block names at least one item"),
            );
        }
        let Some(node) = account.node() else {
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        };
        let (localpart, domain) = (node.as_str(), account.domain().as_str());
        let jids: Vec<String> = parsed.iter().map(|(j, _)| j.clone()).collect();
        let _changing = self.changes.lock().await;
        let mut list = (*self.list_of(account.as_str())).clone();
        let new: usize = jids.iter().filter(|j| !list.contains(j)).count();
        if list.len() + new > MAX_ITEMS {
            return error(
                StanzaErrorCondition::PolicyViolation,
                Some(&format!("a blocklist holds at most {MAX_ITEMS} JIDs")),
            );
        }
        let added = match ctx.stores.blocking.block(localpart, domain, &jids).await {
            Ok(added) => added,
            Err(e) => {
                tracing::error!(error = %e, %account, "storing a block failed");
                return error(StanzaErrorCondition::InternalServerError, None);
            }
        };
        // XEP-0377: the reports, once the block is stored; one per JID newly blocked (blocking
        // again does not file it again).
        for (jid, report) in &parsed {
            let Some(report) = report else { continue };
            if !added.contains(jid) {
                continue;
            }
            let stored = AbuseReport {
                localpart: localpart.to_owned(),
                domain: domain.to_owned(),
                jid: jid.clone(),
                reason: report.reason.clone(),
                text: report.text.clone(),
                stanza_ids: report.stanza_ids.clone(),
                received_us: now_us(),
            };
            match ctx.stores.blocking.add_report(&stored).await {
                Ok(()) => tracing::info!(
                    reporter = %account, reported = %jid, reason = %report.reason,
                    "abuse report received"
                ),
                Err(e) => tracing::error!(error = %e, %account, "storing a report failed"),
            }
        }
        // §3.3: unavailable presence to the newly blocked contacts, sent while the block is not
        // yet in force here (the outbound hook would drop it).
        if !added.is_empty() {
            self.send_presence(ctx, account, &added, None, Unavailable)
                .await;
        }
        // Memory follows the request, not what the store reports as new: the two agree again
        // if they ever drifted (a row deleted behind the server's back).
        for jid in &jids {
            list.add(jid.clone());
        }
        self.set_list(account.as_str(), list);
        drop(_changing);
        let mut push = Element::new("block", NS);
        for jid in &jids {
            push.append_child(item(jid));
        }
        self.push(ctx, account, push).await;
        IqOutcome::Result(None)
    }

    /// §3.4, §3.5.
    async fn unblock(&self, ctx: &Context, account: &BareJid, payload: &Element) -> IqOutcome {
        let parsed = match parse_items(payload) {
            Ok(p) => p,
            Err((condition, text)) => return error(condition, Some(&text)),
        };
        let Some(node) = account.node() else {
            return error(StanzaErrorCondition::ServiceUnavailable, None);
        };
        let (localpart, domain) = (node.as_str(), account.domain().as_str());
        let jids: Vec<String> = parsed.into_iter().map(|(j, _)| j).collect();
        let changing = self.changes.lock().await;
        let removed = if jids.is_empty() {
            ctx.stores.blocking.unblock_all(localpart, domain).await
        } else {
            ctx.stores.blocking.unblock(localpart, domain, &jids).await
        };
        let removed = match removed {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, %account, "storing an unblock failed");
                return error(StanzaErrorCondition::InternalServerError, None);
            }
        };
        let mut list = (*self.list_of(account.as_str())).clone();
        if jids.is_empty() {
            list = BlockList::default();
        }
        for jid in &jids {
            list.remove(jid);
        }
        self.set_list(account.as_str(), list.clone());
        drop(changing);
        // §3.4: current presence to the unblocked contacts that nothing else still blocks.
        if !removed.is_empty() {
            self.send_presence(ctx, account, &removed, Some(&list), Current)
                .await;
        }
        let mut push = Element::new("unblock", NS);
        for jid in &jids {
            push.append_child(item(jid));
        }
        self.push(ctx, account, push).await;
        IqOutcome::Result(None)
    }

    /// §3.3/§3.4: presence from each available resource of `account` to the contacts `entries`
    /// name that may see it (subscription `from` or `both`) and that `still` does not block.
    async fn send_presence(
        &self,
        ctx: &Context,
        account: &BareJid,
        entries: &[String],
        still: Option<&BlockList>,
        which: PresenceKind,
    ) {
        let Some(node) = account.node() else { return };
        let roster = match ctx
            .stores
            .rosters
            .items(node.as_str(), account.domain().as_str())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, %account, "roster unreadable; no presence sent");
                return;
            }
        };
        // The entries as one list to match contacts against (§4), and the blocked resources of
        // contacts by their bare JID: one pass over the roster, no list per pair.
        let changed = BlockList::new(entries.to_vec());
        let mut resources: HashMap<&str, Vec<&str>> = HashMap::new();
        for entry in entries {
            let p = JidParts::of(entry);
            if p.node.is_some() && p.resource.is_some() {
                resources.entry(p.bare).or_default().push(entry);
            }
        }
        let mut targets: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for contact in roster
            .iter()
            .filter(|i| matches!(i.subscription, Subscription::From | Subscription::Both))
        {
            // A blocked resource of a contact: to that resource; otherwise to the contact.
            let mut found: Vec<&str> = resources
                .get(contact.jid.as_str())
                .cloned()
                .unwrap_or_default();
            if changed.blocks(&contact.jid) {
                found.push(contact.jid.as_str());
            }
            for target in found {
                if still.is_some_and(|l| l.blocks(target)) || !seen.insert(target) {
                    continue;
                }
                targets.push(target);
            }
        }
        if targets.is_empty() {
            return;
        }
        for session in ctx.sessions.resources(account).await.iter() {
            let Some(current) = &session.presence else {
                continue;
            };
            for target in &targets {
                let presence = match which {
                    Unavailable => {
                        Element::new("presence", ns::CLIENT).with_attr("type", "unavailable")
                    }
                    Current => (**current).clone(),
                };
                let presence = presence
                    .with_attr("from", session.jid.to_string())
                    .with_attr("to", *target);
                ctx.router.route(presence).await;
            }
        }
    }

    /// §3.3/§3.4: the change to every session of the account that fetched the list.
    async fn push(&self, ctx: &Context, account: &BareJid, change: Element) {
        for entry in ctx.sessions.resources(account).await.iter() {
            let fetched = lock(&self.fetched).get(&entry.jid) == Some(&entry.handle.id());
            if !fetched {
                continue;
            }
            let push = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("block-{}", random_id()))
                .with_attr("to", entry.jid.to_string())
                .with_child(change.clone());
            ctx.send_to(entry, push).await;
        }
    }
}

/// Which presence [`Blocking::send_presence`] sends.
#[derive(Clone, Copy)]
enum PresenceKind {
    Unavailable,
    Current,
}
use PresenceKind::{Current, Unavailable};

fn item(jid: &str) -> Element {
    Element::new("item", NS).with_attr("jid", jid)
}

/// A JID of a block or unblock, normalised, with the report attached to it.
type Item = (String, Option<report::Report>);

/// The items of a block or unblock, normalised and without repeats, each with its report.
fn parse_items(payload: &Element) -> Result<Vec<Item>, (StanzaErrorCondition, String)> {
    let mut items: Vec<Item> = Vec::new();
    for child in payload.children().filter(|c| c.is("item", NS)) {
        let Some(raw) = child.attr("jid") else {
            return Err((
                StanzaErrorCondition::BadRequest,
                "an item needs a 'jid'".to_owned(),
            ));
        };
        let Ok(jid) = Jid::new(raw) else {
            return Err((
                StanzaErrorCondition::JidMalformed,
                format!("not a JID: {raw}"),
            ));
        };
        // XEP-0377 §5: a block happens as it would without its report; a malformed report is
        // not kept (and said so in the log), it does not undo the block.
        let report = if payload.name() == "block" {
            report::parse(child).unwrap_or_else(|why| {
                tracing::info!(reported = %jid, %why, "malformed abuse report ignored");
                None
            })
        } else {
            None
        };
        match items.iter_mut().find(|(j, _)| j == jid.as_str()) {
            Some(existing) => existing.1 = existing.1.take().or(report),
            None => items.push((jid.as_str().to_owned(), report)),
        }
        if items.len() > MAX_ITEMS {
            return Err((
                StanzaErrorCondition::PolicyViolation,
                format!("a blocklist holds at most {MAX_ITEMS} JIDs"),
            ));
        }
    }
    // An <unblock/> with children but no item of this namespace is a client's mistake, not a
    // request to unblock everyone (§3.5's empty <unblock/>).
    if items.is_empty() && payload.children().next().is_some() {
        return Err((
            StanzaErrorCondition::BadRequest,
            "no <item/> in the urn:xmpp:blocking namespace".to_owned(),
        ));
    }
    Ok(items)
}

/// The local session of the full JID `jid`, if it is one.
async fn session_of(ctx: &Context, jid: &str) -> Option<SessionEntry> {
    let full = Jid::new(jid).ok()?.try_into_full().ok()?;
    ctx.sessions.get(&full).await
}

impl Module for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(
            IqTarget::Account,
            IqType::Get,
            NS,
            "blocklist",
            self.clone(),
        );
        reg.iq(IqTarget::Account, IqType::Set, NS, "block", self.clone());
        reg.iq(IqTarget::Account, IqType::Set, NS, "unblock", self.clone());
        // §3.1: the server's disco#info; XEP-0377 §3 likewise.
        reg.server_feature(NS);
        reg.server_feature(report::NS);
        for kind in [StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq] {
            reg.stanza_hook(kind, HookPoint::FromClient, PRIORITY, self.clone());
            reg.stanza_hook(kind, HookPoint::ToBare, PRIORITY, self.clone());
            reg.stanza_hook(kind, HookPoint::ToFull, PRIORITY, self.clone());
            reg.stanza_hook(kind, HookPoint::ToRemote, PRIORITY, self.clone());
            reg.outbound_hook(kind, PRIORITY, self.clone());
        }
        reg.events(self);
    }
}

#[async_trait]
impl IqHandler for Blocking {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        self.handle(ctx, req).await
    }
}

#[async_trait]
impl StanzaHook for Blocking {
    async fn on_stanza(&self, ctx: &Context, point: HookPoint, stanza: &mut Element) -> HookResult {
        match point {
            HookPoint::FromClient => self.refuse_to_blocked(ctx, stanza).await,
            HookPoint::ToBare | HookPoint::ToFull => self.inbound(ctx, stanza).await,
            HookPoint::ToRemote => self.leaving(ctx, stanza).await,
            HookPoint::Offline => HookResult::Pass,
        }
    }
}

#[async_trait]
impl OutboundHook for Blocking {
    async fn on_outbound(&self, ctx: &Context, to: &FullJid, stanza: &mut Element) -> HookResult {
        if !self.any_blocks(ctx).await {
            return HookResult::Pass;
        }
        let Some(from) = stanza.attr("from") else {
            return HookResult::Pass;
        };
        let recipient = to.as_str();
        let account = JidParts::of(recipient).bare;
        let is_error = stanza.attr("type") == Some("error");
        // From a JID the recipient blocked; the server's own <blocked/> answer to the recipient
        // passes (a blocked JID's errors never get this far: ToFull and ToBare dropped them).
        if !exempt(ctx, account, from)
            && self.blocks(account, from)
            && !(is_error && carries_blocked(stanza))
        {
            tracing::trace!(%recipient, %from, "blocked on the outbound path (inbound)");
            self.refuse_inbound(ctx, stanza, false).await;
            return HookResult::Handled;
        }
        // A carbon (XEP-0280) comes from the recipient's own account; what it copies is judged
        // as if it came itself: a message from a JID that blocked this resource, or that this
        // account blocked, is not copied to it either.
        if let Some(inner_from) = carbon_copied_from(stanza)
            && (self.blocks(account, inner_from) || self.local_blocks(ctx, inner_from, recipient))
        {
            tracing::trace!(%recipient, from = %inner_from, "carbon of a blocked party dropped");
            return HookResult::Handled;
        }
        // From a local account that blocked the recipient (presence broadcasts, probe answers);
        // errors are the server's answers (clients' own were refused at FromClient).
        if !is_error
            && JidParts::of(from).bare != account
            && self.local_blocks(ctx, from, recipient)
        {
            tracing::trace!(%recipient, %from, "blocked on the outbound path (outbound)");
            return HookResult::Handled;
        }
        HookResult::Pass
    }
}

/// The sender of the message a XEP-0280 `<received/>` carbon copies.
fn carbon_copied_from(stanza: &Element) -> Option<&str> {
    if stanza.name() != "message" {
        return None;
    }
    stanza
        .get_child("received", crate::carbons::NS)?
        .get_child("forwarded", crate::carbons::NS_FORWARD)?
        .get_child("message", ns::CLIENT)?
        .attr("from")
}

/// Whether an error stanza carries §3.3's `<blocked/>` condition.
fn carries_blocked(stanza: &Element) -> bool {
    stanza
        .get_child("error", ns::CLIENT)
        .is_some_and(|e| e.has_child("blocked", NS_ERRORS))
}

#[async_trait]
impl EventListener for Blocking {
    async fn on_event(&self, _ctx: &Context, event: &Event) {
        match event {
            Event::Ended(entry) => {
                let mut fetched = lock(&self.fetched);
                if fetched.get(&entry.jid) == Some(&entry.handle.id()) {
                    fetched.remove(&entry.jid);
                }
            }
            // The store deleted the list with the account: so does memory, or an account
            // created again under the name would inherit it.
            Event::AccountDeleted(account) => {
                let mut lists = lock(&self.lists);
                if lists.remove(account.as_str()).is_some() {
                    self.blocking_accounts.store(lists.len(), Ordering::Release);
                }
            }
            _ => {}
        }
    }
}
