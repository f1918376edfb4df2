//! What each available resource advertises (XEP-0115 `<c/>` in its presence), resolved to
//! disco#info features once per `ver` and shared by every resource that advertises it (§6.3:
//! "the server SHOULD ... cache the result"; one query per hash, not per contact).
//!
//! A resource's available presence with `<c hash='sha-1' node ver/>` records its `ver`; the
//! first resource to advertise an unknown `ver` is asked for `node#ver`'s disco#info (an awaited
//! server IQ), and the answer is cached only when it hashes to that `ver` (§5.4, [`super::verify`]).
//! Resources advertising a `ver` while it is being resolved wait for that one query. An answer
//! that does not verify is not cached: the next resource advertising the `ver` is asked in turn
//! (a bad answer from one entity does not poison the hash for the others), each at most once
//! per round and one query at a time per `ver`. Unavailable presence and the session's end forget the resource.
//!
//! PEP (XEP-0163 §4) asks [`CapsCache::features`] whom to notify (`NODE+notify` features), and
//! hears through a [`CapsWatcher`] when a resource's interests become known: once per resource
//! and `ver` (its first available presence, or a new `ver`), when the `ver` is already known or
//! as soon as it verifies, and only for a presence of non-negative priority (XEP-0163 §4.3.2), so
//! that it sends the last items the resource is interested in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use starling_module_api::{
    Context, Event, EventListener, HookPoint, HookResult, Module, Registrar, StanzaHook,
};
use starling_proto::{Element, FullJid, StanzaKind};

use super::verify;

/// XEP-0115's namespace.
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// How long the advertiser has to answer the disco#info query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Distinct `ver`s kept; beyond, the cache starts afresh (clients share a handful of hashes).
pub const MAX_VERS: usize = 10_000;

/// A `ver`'s state.
enum Resolution {
    /// Verified features, sorted.
    Known(Arc<[String]>),
    /// A query is in flight.
    Pending,
}

/// What one available resource advertises.
struct Advertised {
    hash: String,
    node: String,
    ver: String,
    /// The watchers heard of this resource's interests for this `ver` (or never will: a
    /// negative priority).
    announced: bool,
}

#[derive(Default)]
struct State {
    by_jid: HashMap<FullJid, Advertised>,
    by_ver: HashMap<String, Resolution>,
}

/// Told when a resource's verified features become known (see the module docs).
#[async_trait]
pub trait CapsWatcher: Send + Sync {
    async fn interests_known(&self, ctx: &Context, jid: &FullJid, features: &[String]);
}

/// The shared cache; see the module docs.
#[derive(Default)]
pub struct CapsCache {
    state: Mutex<State>,
    queries: AtomicU64,
    watchers: Mutex<Vec<Arc<dyn CapsWatcher>>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CapsCache {
    pub fn new() -> Arc<CapsCache> {
        Arc::new(CapsCache::default())
    }

    /// Adds a watcher (at start, before any presence).
    pub fn watch(&self, watcher: Arc<dyn CapsWatcher>) {
        self.watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(watcher);
    }

    /// Tells the watchers that `jid`'s `features` are known.
    async fn announce(&self, ctx: &Context, jid: &FullJid, features: &[String]) {
        let watchers = self
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for w in watchers {
            w.interests_known(ctx, jid, features).await;
        }
    }

    /// The verified disco#info features of what `jid` advertises, if known.
    pub fn features(&self, jid: &FullJid) -> Option<Arc<[String]>> {
        let state = lock(&self.state);
        let ver = &state.by_jid.get(jid)?.ver;
        match state.by_ver.get(ver) {
            Some(Resolution::Known(f)) => Some(f.clone()),
            _ => None,
        }
    }

    /// How many disco#info queries the cache has sent (tests count them, XEP-0115 §6.3).
    pub fn queries_sent(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Records what `from` advertises in its available `presence`; starts resolving the `ver`
    /// if nobody is. Returns the query to send, if one is due, or the features to announce, if
    /// they are known and not announced for this resource and `ver` yet.
    fn advertise(&self, from: &FullJid, presence: &Element) -> Advertise {
        let Some(c) = presence.get_child("c", NS_CAPS) else {
            return Advertise::Nothing;
        };
        let (Some(hash), Some(node), Some(ver)) = (c.attr("hash"), c.attr("node"), c.attr("ver"))
        else {
            // Legacy caps (no 'hash', §8.4) carry no verifiable hash: not used.
            return Advertise::Nothing;
        };
        let negative = starling_module_api::presence_priority(presence) < 0;
        let mut state = lock(&self.state);
        let announced = negative
            || state
                .by_jid
                .get(from)
                .is_some_and(|a| a.ver == ver && a.announced);
        let known = match state.by_ver.get(ver) {
            Some(Resolution::Known(f)) => Some(f.clone()),
            Some(Resolution::Pending) => None,
            None => {
                if state.by_ver.len() >= MAX_VERS {
                    state.by_ver.clear();
                }
                state.by_ver.insert(ver.to_owned(), Resolution::Pending);
                state.by_jid.insert(
                    from.clone(),
                    Advertised {
                        hash: hash.to_owned(),
                        node: node.to_owned(),
                        ver: ver.to_owned(),
                        announced,
                    },
                );
                return Advertise::Query(node.to_owned(), ver.to_owned());
            }
        };
        let announce = known.filter(|_| !announced);
        state.by_jid.insert(
            from.clone(),
            Advertised {
                hash: hash.to_owned(),
                node: node.to_owned(),
                ver: ver.to_owned(),
                announced: announced || announce.is_some(),
            },
        );
        match announce {
            Some(features) => Advertise::Announce(features),
            None => Advertise::Nothing,
        }
    }

    fn forget(&self, jid: &FullJid) {
        lock(&self.state).by_jid.remove(jid);
    }

    /// Asks `from` for `node#ver`'s disco#info and caches it if it verifies; otherwise asks the
    /// next advertiser of `ver` not asked yet (`tried`), until one answers right or none is
    /// left (then the next resource to advertise `ver` starts again).
    async fn resolve(
        &self,
        ctx: &Context,
        from: FullJid,
        node: String,
        ver: String,
        mut tried: Vec<FullJid>,
    ) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let iq = Element::new("iq", starling_proto::ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("to", from.to_string())
            .with_child(
                Element::new("query", DISCO_INFO).with_attr("node", format!("{node}#{ver}")),
            );
        let verified = match ctx.router.request_iq(iq, QUERY_TIMEOUT).await {
            Ok(result) => result.get_child("query", DISCO_INFO).and_then(|q| {
                let hash = lock(&self.state)
                    .by_jid
                    .get(&from)
                    .map(|a| a.hash.clone())
                    .unwrap_or_else(|| "sha-1".to_owned());
                match verify(&hash, &ver, q) {
                    Ok(()) => Some(features_of(q)),
                    Err(e) => {
                        tracing::debug!(%from, %ver, error = %e, "caps answer not trusted");
                        None
                    }
                }
            }),
            Err(e) => {
                tracing::debug!(%from, %ver, error = ?e, "caps query failed");
                None
            }
        };
        let mut waiting = Vec::new();
        let mut waiting_features = None;
        let next = {
            let mut state = lock(&self.state);
            match verified {
                Some(features) => {
                    state
                        .by_ver
                        .insert(ver.clone(), Resolution::Known(features.clone()));
                    for (jid, a) in state.by_jid.iter_mut() {
                        if a.ver == ver && !a.announced {
                            a.announced = true;
                            waiting.push(jid.clone());
                        }
                    }
                    waiting_features = Some(features);
                    None
                }
                None => {
                    state.by_ver.remove(&ver);
                    // Another resource advertising the same ver is asked in turn.
                    tried.push(from.clone());
                    let other = state
                        .by_jid
                        .iter()
                        .find(|(j, a)| a.ver == ver && !tried.contains(j))
                        .map(|(j, a)| (j.clone(), a.node.clone()));
                    if other.is_some() {
                        state.by_ver.insert(ver.clone(), Resolution::Pending);
                    }
                    other
                }
            }
        };
        if let Some(features) = waiting_features {
            for jid in waiting {
                self.announce(ctx, &jid, &features).await;
            }
        }
        if let Some((jid, node)) = next {
            Box::pin(self.resolve(ctx, jid, node, ver, tried)).await;
        }
    }
}

/// What a presence's caps call for.
enum Advertise {
    Nothing,
    /// Ask the advertiser for `node#ver`.
    Query(String, String),
    /// Tell the watchers.
    Announce(Arc<[String]>),
}

fn features_of(query: &Element) -> Arc<[String]> {
    let mut f: Vec<String> = query
        .children()
        .filter(|c| c.is("feature", DISCO_INFO))
        .filter_map(|c| c.attr("var").map(str::to_owned))
        .collect();
    f.sort();
    f.into()
}

/// The module that feeds the cache from presence and forgets ended sessions.
pub struct Caps {
    cache: Arc<CapsCache>,
}

impl Caps {
    pub fn new(cache: Arc<CapsCache>) -> Self {
        Caps { cache }
    }
}

impl Module for Caps {
    fn name(&self) -> &'static str {
        "caps"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        // Before the presence module (priority 0), which handles the presence.
        reg.stanza_hook(
            StanzaKind::Presence,
            HookPoint::FromClient,
            100,
            self.clone(),
        );
        reg.events(self);
    }
}

#[async_trait]
impl StanzaHook for Caps {
    async fn on_stanza(
        &self,
        ctx: &Context,
        _point: HookPoint,
        stanza: &mut Element,
    ) -> HookResult {
        // Broadcast presence only (no 'to'): directed presence says nothing about the
        // resource's own interests.
        if stanza.attr("to").is_some() {
            return HookResult::Pass;
        }
        let Some(from) = stanza.attr("from").and_then(|f| FullJid::new(f).ok()) else {
            return HookResult::Pass;
        };
        match stanza.attr("type") {
            None => match self.cache.advertise(&from, stanza) {
                Advertise::Nothing => {}
                Advertise::Query(node, ver) => {
                    let cache = self.cache.clone();
                    let ctx = ctx.clone();
                    // The query is awaited off the presence's path.
                    tokio::spawn(
                        async move { cache.resolve(&ctx, from, node, ver, Vec::new()).await },
                    );
                }
                Advertise::Announce(features) => {
                    let cache = self.cache.clone();
                    let ctx = ctx.clone();
                    // After the presence itself is handled (PEP sends last items).
                    tokio::spawn(async move { cache.announce(&ctx, &from, &features).await });
                }
            },
            Some("unavailable") => self.cache.forget(&from),
            Some(_) => {}
        }
        HookResult::Pass
    }
}

#[async_trait]
impl EventListener for Caps {
    async fn on_event(&self, _ctx: &Context, event: &Event) {
        if let Event::Ended(entry) = event {
            self.cache.forget(&entry.jid);
        }
    }
}
