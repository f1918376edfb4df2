//! XEP-0313 Message Archive Management for user archives, with XEP-0359 stanza ids, XEP-0441
//! preferences and XEP-0431 full-text search.
//!
//! # Procedure
//!
//! **Archiving.** Two message hooks see every message between local users:
//! - [`HookPoint::FromClient`]: the sender's copy. `<stanza-id/>`s that claim to come from the
//!   sender's or the recipient's archive are removed first (XEP-0359 §4: only the archive may
//!   put them there). A message to the sender's own account (no `to`, or its bare JID) is
//!   archived once, here, and carries the `<stanza-id/>` on to its delivery.
//! - [`HookPoint::ToBare`] and [`HookPoint::ToFull`]: the recipient's copy, for a local
//!   account. It is archived and gets `<stanza-id by='recipient' id='…'/>` before delivery (or
//!   offline storage, which keeps it: a client that catches up with MAM recognises what
//!   offline delivery repeats). A message that already carries the recipient's stanza id was
//!   archived before (a self-message, or one routed again when a session ended without being
//!   resumed) and is not archived twice (XEP-0313 §7.1.1: one copy per archive).
//!
//! Which messages are archived is [`rules::archivable`]; the account's preferences
//! (XEP-0441: default always, never or roster, and the always and never lists) decide for the
//! peer. Both hooks await the durable write ([`writer`], group commit) before the routing goes
//! on, so a message is archived before its sender's stream acknowledges it (XEP-0198): a
//! server killed after the `<a/>` has it in the archive.
//!
//! **Querying.** `<iq type='set'><query xmlns='urn:xmpp:mam:2'/></iq>` to the account's bare
//! JID (or without `to`), from one of its own resources: the form is read ([`query::parse`]),
//! the page fetched, each message sent to the asking resource as a `<result/>` (§4.2), then the
//! IQ result with `<fin/>` (§4.3). The form of fields (`get`), the metadata (`#extended`, §5)
//! and the preferences (XEP-0441) are answered too. Anyone else asking gets `<forbidden/>`
//! (§10.1).
//!
//! Results sent before the session's initial presence are remembered ([`seen`]): the offline
//! module does not deliver those messages again (§7.1.1).
//!
//! **Retention.** Every [`RETENTION_PERIOD`], messages older than the configured retention are
//! deleted, and archives above the per-account cap lose their oldest.
//!
//! # Hazards
//!
//! - A store failure while archiving is logged and the message is delivered anyway (with no
//!   stanza id): losing history is better than losing the message.
//! - Preferences are cached per account (they are read for every message); the cache is
//!   bounded and dropped whole when full.

pub mod rules;
pub mod seen;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use starling_module_api::{
    Context, Event, EventListener, HookPoint, HookResult, IqHandler, IqOutcome, IqRoute, IqTarget,
    IqType, Module, Registrar, StanzaHook, parse_stored, random_id,
};
use starling_proto::{BareJid, Element, Jid, StanzaError, StanzaErrorCondition, StanzaKind};
use starling_storage::{ArchiveDefault, ArchivePrefs, ArchiveStore, NewArchived, StorageError};

use self::seen::Seen;
use starling_module_api::mam::query::{self, NS_FULLTEXT, NS_MAM, NS_MAM_EXTENDED, PageLimits};
use starling_module_api::mam::writer::ArchiveWriter;

/// How often retention and the per-account cap are applied.
pub const RETENTION_PERIOD: Duration = Duration::from_secs(3600);
/// Accounts whose preferences are cached.
const PREFS_CACHE: usize = 100_000;

/// Settings, from the `[archive]` section of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MamOptions {
    /// Messages older than this are deleted; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// Most messages kept per account (the oldest go first); 0: no cap.
    pub max_messages: u64,
    /// Page sizes of queries.
    pub page: PageLimits,
}

impl Default for MamOptions {
    fn default() -> Self {
        MamOptions {
            retention: None,
            max_messages: 0,
            page: PageLimits {
                default: 50,
                max: 250,
            },
        }
    }
}

/// The module.
pub struct Mam {
    options: MamOptions,
    seen: Arc<Seen>,
    writer: OnceLock<ArchiveWriter>,
    prefs: Mutex<HashMap<BareJid, Arc<ArchivePrefs>>>,
}

impl Mam {
    /// The module; `seen` is shared with the offline module (see [`seen`]).
    pub fn new(options: MamOptions, seen: Arc<Seen>) -> Self {
        Mam {
            options,
            seen,
            writer: OnceLock::new(),
            prefs: Mutex::new(HashMap::new()),
        }
    }

    /// The writer, started with the first message (and with it the retention job).
    fn writer(&self, ctx: &Context) -> &ArchiveWriter {
        self.writer.get_or_init(|| {
            let store = ctx.stores.archive.clone();
            if self.options.retention.is_some() || self.options.max_messages > 0 {
                tokio::spawn(retention(store.clone(), self.options));
            }
            ArchiveWriter::spawn(store)
        })
    }

    async fn account_prefs(&self, ctx: &Context, account: &BareJid) -> Arc<ArchivePrefs> {
        let cached = self
            .prefs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account)
            .cloned();
        if let Some(p) = cached {
            return p;
        }
        let (l, d) = parts(account);
        let prefs = match ctx.stores.archive.prefs(l, d).await {
            Ok(p) => Arc::new(p),
            Err(e) => {
                // Not cached: asked again next time.
                tracing::error!(%account, error = %e, "loading archive preferences failed");
                return Arc::new(ArchivePrefs::default());
            }
        };
        let mut cache = self.prefs.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= PREFS_CACHE {
            cache.clear();
        }
        cache.insert(account.clone(), prefs.clone());
        prefs
    }

    /// XEP-0441 §2: whether `account` archives messages exchanged with `peer`.
    async fn wants(&self, ctx: &Context, account: &BareJid, peer: &Jid) -> bool {
        let prefs = self.account_prefs(ctx, account).await;
        if !prefs.never.is_empty() || !prefs.always.is_empty() {
            // Only for accounts with lists: no strings built per message otherwise.
            let (bare, full) = (peer.to_bare().to_string(), peer.to_string());
            let listed = |list: &[String]| list.iter().any(|j| *j == bare || *j == full);
            if listed(&prefs.never) {
                return false;
            }
            if listed(&prefs.always) {
                return true;
            }
        }
        match prefs.default {
            ArchiveDefault::Always => true,
            ArchiveDefault::Never => false,
            ArchiveDefault::Roster => {
                let (l, d) = parts(account);
                let bare = peer.to_bare().to_string();
                matches!(ctx.stores.rosters.item(l, d, &bare).await, Ok(Some(_)))
            }
        }
    }

    /// Archives `message` in `account`'s archive (exchanged with `peer`) under a new id, which
    /// is returned once the write is durable; `None` if the store failed.
    async fn archive(
        &self,
        ctx: &Context,
        account: &BareJid,
        peer: &Jid,
        message: &Element,
        stanza_id: &str,
    ) -> Option<()> {
        let (l, d) = parts(account);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|t| i64::try_from(t.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let record = NewArchived {
            localpart: l.to_owned(),
            domain: d.to_owned(),
            id: stanza_id.to_owned(),
            timestamp_us: now,
            with: peer.to_bare().to_string(),
            with_resource: peer
                .resource()
                .map(|r| r.as_str().to_owned())
                .unwrap_or_default(),
            stanza: message.to_xml(),
            body: rules::body_text(message),
        };
        match self.writer(ctx).write(record).await {
            Ok(()) => Some(()),
            Err(e) => {
                tracing::error!(%account, error = %e, "a message was delivered without archiving it");
                None
            }
        }
    }

    /// The sender's copy (see the module docs).
    async fn sent_by_client(&self, ctx: &Context, message: &mut Element) {
        let Some(from) = message.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let sender = from.to_bare();
        let to = match message.attr("to").map(Jid::new) {
            None => None,
            Some(Ok(to)) => Some(to),
            // The router bounces it.
            Some(Err(_)) => return,
        };
        let own = to.as_ref().is_none_or(|t| t.to_bare() == sender);
        let sender_s = sender.to_string();
        rules::strip_stanza_ids(message, &sender_s);
        if let Some(t) = &to {
            rules::strip_stanza_ids(message, &t.to_bare().to_string());
        }
        if !rules::archivable(message) {
            return;
        }
        let peer = to.unwrap_or_else(|| Jid::from(sender.clone()));
        if !self.wants(ctx, &sender, &peer).await {
            return;
        }
        let id = random_id();
        if own {
            // One copy, which is also the recipient's: its id travels with the message.
            message.append_child(rules::stanza_id(&sender_s, &id));
        }
        self.archive(ctx, &sender, &peer, message, &id).await;
    }

    /// The recipient's copy (see the module docs).
    async fn to_account(&self, ctx: &Context, message: &mut Element) {
        let Some(to) = message.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        let account = to.to_bare();
        let account_s = account.to_string();
        if rules::archived_id(message, &account_s).is_some() {
            return;
        }
        if !rules::archivable(message) {
            return;
        }
        let Some(from) = message.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        if !self.exists(ctx, &account).await || !self.wants(ctx, &account, &from).await {
            return;
        }
        let id = random_id();
        message.append_child(rules::stanza_id(&account_s, &id));
        if self
            .archive(ctx, &account, &from, message, &id)
            .await
            .is_none()
        {
            rules::strip_stanza_ids(message, &account_s);
        }
    }

    /// Whether the local account exists: one with a bound session does; otherwise the store
    /// says (a message to an unknown account is bounced, not archived).
    async fn exists(&self, ctx: &Context, account: &BareJid) -> bool {
        !ctx.sessions.resources(account).await.is_empty() || ctx.account_exists(account).await
    }

    async fn query(&self, ctx: &Context, account: &BareJid, req: &IqRoute<'_>) -> IqOutcome {
        let parsed = match query::parse(req.payload, self.options.page) {
            Ok(p) => p,
            Err(e) => return IqOutcome::Error(*e),
        };
        // The results go to the asking session, ahead of the IQ result (§4.2).
        let Ok(full) = req.from.try_as_full() else {
            return error(
                StanzaErrorCondition::Forbidden,
                "not a session of this account",
            );
        };
        let Some(entry) = ctx.sessions.get(full).await else {
            return error(
                StanzaErrorCondition::Forbidden,
                "not a session of this account",
            );
        };
        let (l, d) = parts(account);
        let page = match ctx.stores.archive.query(l, d, &parsed.query).await {
            Ok(p) => p,
            Err(StorageError::NotFound) => {
                // §4.1.3, §4.3.2: an id the archive does not hold.
                return error(
                    StanzaErrorCondition::ItemNotFound,
                    "no message with that id in the archive",
                );
            }
            Err(e) => {
                tracing::error!(%account, error = %e, "archive query failed");
                return IqOutcome::Error(StanzaError::new(
                    StanzaErrorCondition::InternalServerError,
                ));
            }
        };
        let to = full.to_string();
        let archive = account.to_string();
        let mut order: Vec<&_> = page.messages.iter().collect();
        if parsed.flip {
            order.reverse();
        }
        if entry.presence.is_none() {
            // Before its initial presence: what offline delivery would repeat (see [`seen`]).
            self.seen.record(
                entry.handle.id(),
                page.messages.iter().map(|m| m.id.as_str()),
            );
        }
        for m in order {
            match parse_stored(&m.stanza) {
                Ok(stanza) => {
                    let result =
                        query::result_message(&to, &archive, parsed.query_id.as_deref(), m, stanza);
                    ctx.send_to(&entry, result).await;
                }
                Err(e) => {
                    tracing::error!(%account, id = %m.id, error = %e, "archived message unreadable")
                }
            }
        }
        IqOutcome::Result(Some(query::fin(&page)))
    }

    async fn metadata(&self, ctx: &Context, account: &BareJid) -> IqOutcome {
        let (l, d) = parts(account);
        let mut meta = Element::new("metadata", NS_MAM);
        match ctx.stores.archive.bounds(l, d).await {
            Ok(Some((first, last))) => {
                for (name, b) in [("start", first), ("end", last)] {
                    meta.append_child(
                        Element::new(name, NS_MAM)
                            .with_attr("id", b.id)
                            .with_attr("timestamp", query::format_datetime(b.timestamp_us)),
                    );
                }
            }
            // An empty archive: no start and no end.
            Ok(None) => {}
            Err(e) => {
                tracing::error!(%account, error = %e, "archive metadata failed");
                return IqOutcome::Error(StanzaError::new(
                    StanzaErrorCondition::InternalServerError,
                ));
            }
        }
        IqOutcome::Result(Some(meta))
    }

    async fn prefs_iq(&self, ctx: &Context, account: &BareJid, req: &IqRoute<'_>) -> IqOutcome {
        let (l, d) = parts(account);
        if req.iq.attr("type") == Some("set") {
            let prefs = match read_prefs(req.payload) {
                Ok(p) => p,
                Err(e) => return IqOutcome::Error(*e),
            };
            if let Err(e) = ctx.stores.archive.set_prefs(l, d, &prefs).await {
                tracing::error!(%account, error = %e, "storing archive preferences failed");
                return IqOutcome::Error(StanzaError::new(
                    StanzaErrorCondition::InternalServerError,
                ));
            }
            self.prefs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(account);
        }
        match ctx.stores.archive.prefs(l, d).await {
            Ok(p) => IqOutcome::Result(Some(write_prefs(&p))),
            Err(e) => {
                tracing::error!(%account, error = %e, "loading archive preferences failed");
                IqOutcome::Error(StanzaError::new(StanzaErrorCondition::InternalServerError))
            }
        }
    }
}

fn parts(account: &BareJid) -> (&str, &str) {
    (
        account.node().map(|n| n.as_str()).unwrap_or_default(),
        account.domain().as_str(),
    )
}

fn error(condition: StanzaErrorCondition, text: &str) -> IqOutcome {
    IqOutcome::Error(StanzaError::new(condition).with_text(text))
}

/// XEP-0441 §2 `<prefs/>` as stored preferences; JIDs are kept as given, after checking them.
fn read_prefs(prefs: &Element) -> Result<ArchivePrefs, Box<StanzaError>> {
    let default = match prefs.attr("default") {
        Some("always") => ArchiveDefault::Always,
        Some("never") => ArchiveDefault::Never,
        Some("roster") => ArchiveDefault::Roster,
        _ => {
            return Err(Box::new(
                StanzaError::new(StanzaErrorCondition::BadRequest)
                    .with_text("'default' must be always, never or roster"),
            ));
        }
    };
    let list = |name: &str| -> Result<Vec<String>, Box<StanzaError>> {
        let mut out = Vec::new();
        if let Some(l) = prefs.get_child(name, NS_MAM) {
            for j in l.children().filter(|c| c.is("jid", NS_MAM)) {
                let jid = Jid::new(j.text().trim()).map_err(|_| {
                    StanzaError::new(StanzaErrorCondition::JidMalformed)
                        .with_text("a JID in the preferences is not valid")
                })?;
                out.push(jid.to_string());
            }
        }
        Ok(out)
    };
    Ok(ArchivePrefs {
        default,
        always: list("always")?,
        never: list("never")?,
    })
}

fn write_prefs(p: &ArchivePrefs) -> Element {
    let default = match p.default {
        ArchiveDefault::Always => "always",
        ArchiveDefault::Never => "never",
        ArchiveDefault::Roster => "roster",
    };
    let list = |name: &str, jids: &[String]| {
        let mut l = Element::new(name, NS_MAM);
        for j in jids {
            l.append_child(Element::new("jid", NS_MAM).with_text(j.clone()));
        }
        l
    };
    Element::new("prefs", NS_MAM)
        .with_attr("default", default)
        .with_child(list("always", &p.always))
        .with_child(list("never", &p.never))
}

/// Applies retention and the cap every [`RETENTION_PERIOD`], first right away.
async fn retention(store: Arc<dyn ArchiveStore>, options: MamOptions) {
    let mut tick = tokio::time::interval(RETENTION_PERIOD);
    loop {
        tick.tick().await;
        if let Some(keep) = options.retention {
            let cutoff = SystemTime::now()
                .checked_sub(keep)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            if let Some(cutoff) = cutoff {
                match store.expire(cutoff).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(messages = n, "archive retention: expired"),
                    Err(e) => tracing::error!(error = %e, "archive retention failed"),
                }
            }
        }
        if options.max_messages > 0 {
            match store.trim(options.max_messages).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "archive cap: deleted the oldest"),
                Err(e) => tracing::error!(error = %e, "archive cap failed"),
            }
        }
    }
}

#[async_trait]
impl StanzaHook for Mam {
    async fn on_stanza(&self, ctx: &Context, point: HookPoint, stanza: &mut Element) -> HookResult {
        match point {
            HookPoint::FromClient => self.sent_by_client(ctx, stanza).await,
            HookPoint::ToBare | HookPoint::ToFull => self.to_account(ctx, stanza).await,
            HookPoint::Offline | HookPoint::ToRemote => {}
        }
        HookResult::Pass
    }
}

#[async_trait]
impl IqHandler for Mam {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        let Some(account) = req.account else {
            return error(StanzaErrorCondition::ServiceUnavailable, "no such archive");
        };
        // XEP-0313 §10.1: an archive is its owner's alone.
        if req.from.to_bare() != *account {
            return error(StanzaErrorCondition::Forbidden, "this archive is not yours");
        }
        let set = req.iq.attr("type") == Some("set");
        match (req.payload.name(), set) {
            ("query", true) => self.query(ctx, account, &req).await,
            ("query", false) => IqOutcome::Result(Some(query::form())),
            ("metadata", false) => self.metadata(ctx, account).await,
            ("prefs", _) => self.prefs_iq(ctx, account, &req).await,
            _ => error(
                StanzaErrorCondition::ServiceUnavailable,
                "not an archive request",
            ),
        }
    }
}

#[async_trait]
impl EventListener for Mam {
    async fn on_event(&self, _ctx: &Context, event: &Event) {
        if let Event::Ended(entry) = event {
            self.seen.take(entry.handle.id());
        }
    }
}

impl Module for Mam {
    fn name(&self) -> &'static str {
        "mam"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        // §8: the features are the archive's, advertised on the account's bare JID.
        reg.account_feature(NS_MAM);
        reg.account_feature(NS_MAM_EXTENDED);
        reg.account_feature(NS_FULLTEXT);
        reg.server_feature(rules::NS_SID);
        for (ty, name) in [
            (IqType::Set, "query"),
            (IqType::Get, "query"),
            (IqType::Get, "metadata"),
            (IqType::Get, "prefs"),
            (IqType::Set, "prefs"),
        ] {
            reg.iq(IqTarget::Account, ty, NS_MAM, name, self.clone());
        }
        reg.events(self.clone());
        for point in [HookPoint::FromClient, HookPoint::ToBare, HookPoint::ToFull] {
            // Before other message hooks (carbons): they see the stanza id.
            reg.stanza_hook(StanzaKind::Message, point, 10, self.clone());
        }
    }
}
