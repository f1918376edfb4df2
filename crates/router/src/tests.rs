//! Router dispatch with hooks, over the real SQLite store.

use std::sync::Mutex;

use async_trait::async_trait;
use starling_module_api::{
    ComponentDomain, ComponentError, ComponentHandler, DeliveredHook, IqRequestError, OutboundHook,
    Registrar, SessionCommand, SessionHandle, StanzaHook,
};
use starling_proto::{iq_result, ns};
use starling_storage_sqlite::SqliteStorage;
use tokio::sync::mpsc;

use super::*;

/// Records what it sees; handles messages whose body equals `stop_on`.
struct Recorder {
    name: &'static str,
    stop_on: &'static str,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl StanzaHook for Recorder {
    async fn on_stanza(
        &self,
        _ctx: &Context,
        point: HookPoint,
        stanza: &mut Element,
    ) -> HookResult {
        let body = stanza
            .get_child("body", ns::CLIENT)
            .map(|b| b.text())
            .unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push(format!("{}:{point:?}:{}:{body}", self.name, stanza.name()));
        if body == self.stop_on {
            HookResult::Handled
        } else {
            HookResult::Pass
        }
    }
}

struct TestModule {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Module for TestModule {
    fn name(&self) -> &'static str {
        "test"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        let low = Arc::new(Recorder {
            name: "low",
            stop_on: "low",
            seen: self.seen.clone(),
        });
        let high = Arc::new(Recorder {
            name: "high",
            stop_on: "high",
            seen: self.seen.clone(),
        });
        // Registered low first: priority, not order, decides.
        reg.stanza_hook(StanzaKind::Message, HookPoint::ToBare, 1, low.clone());
        reg.stanza_hook(StanzaKind::Message, HookPoint::ToBare, 10, high.clone());
        reg.stanza_hook(StanzaKind::Presence, HookPoint::FromClient, 0, low.clone());
        reg.stanza_hook(StanzaKind::Message, HookPoint::ToFull, 0, high);
    }
}

fn session(id: u64) -> (SessionHandle, mpsc::Receiver<SessionCommand>) {
    let (tx, rx) = mpsc::channel(16);
    (SessionHandle::new(id, tx), rx)
}

fn next_stanza(rx: &mut mpsc::Receiver<SessionCommand>) -> Option<String> {
    match rx.try_recv() {
        Ok(SessionCommand::Stanza(e)) => {
            let mut s = String::new();
            e.stanza.write_in_stream(ns::CLIENT, &mut s);
            Some(s)
        }
        Err(_) => None,
    }
}

#[tokio::test]
async fn hooks_run_by_priority_and_stop_propagation() {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("db")).await.unwrap();
    let stores = storage.stores();
    stores
        .accounts
        .create_account("bob", "localhost", &[])
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let registry: Arc<dyn SessionRegistry> = Arc::new(LocalRegistry::new());
    let router = Router::new(
        vec!["localhost".into()],
        registry.clone(),
        stores,
        vec![Arc::new(TestModule { seen: seen.clone() })],
    )
    .unwrap();
    let alice: FullJid = "alice@localhost/a".parse().unwrap();
    let (handle, mut inbox) = session(1);
    registry.bind(alice.clone(), handle).await;

    let msg = |body: &str| {
        Element::new("message", ns::CLIENT)
            .with_attr("to", "bob@localhost")
            .with_attr("from", "alice@localhost/a")
            .with_attr("id", body)
            .with_child(Element::new("body", ns::CLIENT).with_text(body))
    };
    // Handled by the high-priority hook: the low one never sees it, no bounce.
    router.route_from_client(&alice, msg("high")).await;
    assert_eq!(next_stanza(&mut inbox), None);
    // Handled by the low one after the high one passed.
    router.route_from_client(&alice, msg("low")).await;
    assert_eq!(next_stanza(&mut inbox), None);
    // Nobody handles it: the default rule bounces (bob has no available resource).
    router.route_from_client(&alice, msg("none")).await;
    assert_eq!(
        next_stanza(&mut inbox).as_deref(),
        Some(
            "<message id='none' to='alice@localhost/a' from='bob@localhost' type='error'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        )
    );
    // Presence from the client: the FromClient hook sees it.
    let presence = Element::new("presence", ns::CLIENT).with_attr("from", "alice@localhost/a");
    router.route_from_client(&alice, presence).await;
    // To an existing full JID: the ToFull hook, then delivery.
    let to_self = Element::new("message", ns::CLIENT)
        .with_attr("to", "alice@localhost/a")
        .with_attr("from", "alice@localhost/a")
        .with_child(Element::new("body", ns::CLIENT).with_text("me"));
    router.route_from_client(&alice, to_self).await;
    assert_eq!(
        next_stanza(&mut inbox).as_deref(),
        Some("<message to='alice@localhost/a' from='alice@localhost/a'><body>me</body></message>")
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "high:ToBare:message:high",
            "high:ToBare:message:low",
            "low:ToBare:message:low",
            "high:ToBare:message:none",
            "low:ToBare:message:none",
            "low:FromClient:presence:",
            "high:ToFull:message:me",
        ]
    );
    storage.close().await;
}

/// The size of the future an async method returns, without calling it.
fn future_size<'a, A: 'a, B: 'a, Fut>(_f: impl FnOnce(&'a Router, A, B) -> Fut) -> usize {
    std::mem::size_of::<Fut>()
}

#[test]
fn each_routing_step_fits_the_allocators_cache() {
    // Each step is boxed by its caller once per stanza; glibc serves up to 1032 bytes from a
    // per-thread cache and larger requests from a slow path (see the session loop in c2s).
    let from_client = future_size(Router::route_from_client);
    let with_default = future_size(Router::route_with_default);
    let parsed = future_size(|r: &Router, s, (to, client)| r.route_parsed(s, to, client));
    let to_full = future_size(|r: &Router, s, (k, to)| r.to_full(k, s, to));
    let to_account = future_size(|r: &Router, s, (k, to, own)| r.to_account(k, s, to, own));
    for (name, size) in [
        ("route_from_client", from_client),
        ("route_with_default", with_default),
        ("route_parsed", parsed),
        ("to_full", to_full),
        ("to_account", to_account),
    ] {
        assert!(size <= 1024, "{name}() is {size} bytes");
    }
}

/// Adds `<stanza-id/>` (XEP-0359, as an archive would) to every message it sees.
struct Archive;

#[async_trait]
impl StanzaHook for Archive {
    async fn on_stanza(
        &self,
        _ctx: &Context,
        point: HookPoint,
        stanza: &mut Element,
    ) -> HookResult {
        let by = match point {
            HookPoint::ToFull => "full",
            _ => "bare",
        };
        stanza.append_child(
            Element::new("stanza-id", "urn:xmpp:sid:0")
                .with_attr("id", "s1")
                .with_attr("by", by),
        );
        HookResult::Pass
    }
}

/// Records whether the stanza it sees already carries a `<stanza-id/>`.
struct SeesArchive(Arc<Mutex<Vec<bool>>>);

#[async_trait]
impl StanzaHook for SeesArchive {
    async fn on_stanza(
        &self,
        _ctx: &Context,
        _point: HookPoint,
        stanza: &mut Element,
    ) -> HookResult {
        let seen = stanza.has_child("stanza-id", "urn:xmpp:sid:0");
        self.0.lock().unwrap().push(seen);
        HookResult::Pass
    }
}

struct ArchiveModule(Arc<Mutex<Vec<bool>>>);

impl Module for ArchiveModule {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        for point in [HookPoint::ToFull, HookPoint::ToBare] {
            reg.stanza_hook(StanzaKind::Message, point, 10, Arc::new(Archive));
            reg.stanza_hook(
                StanzaKind::Message,
                point,
                0,
                Arc::new(SeesArchive(self.0.clone())),
            );
        }
    }
}

/// A router over a fresh SQLite store with accounts alice and bob on `localhost`.
async fn router_with(
    modules: Vec<Arc<dyn Module>>,
) -> (
    Arc<Router>,
    Arc<dyn SessionRegistry>,
    SqliteStorage,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("db")).await.unwrap();
    let stores = storage.stores();
    for user in ["alice", "bob"] {
        stores
            .accounts
            .create_account(user, "localhost", &[])
            .await
            .unwrap();
    }
    let registry: Arc<dyn SessionRegistry> = Arc::new(LocalRegistry::new());
    let router = Router::new(vec!["localhost".into()], registry.clone(), stores, modules).unwrap();
    (router, registry, storage, dir)
}

/// Binds `jid` as session `id`, available with `priority` when given.
async fn bind(
    registry: &Arc<dyn SessionRegistry>,
    jid: &str,
    id: u64,
    priority: Option<i8>,
) -> (FullJid, mpsc::Receiver<SessionCommand>) {
    let jid: FullJid = jid.parse().unwrap();
    let (handle, rx) = session(id);
    registry.bind(jid.clone(), handle).await;
    if let Some(p) = priority {
        let presence = Element::new("presence", ns::CLIENT)
            .with_child(Element::new("priority", ns::CLIENT).with_text(p.to_string()));
        registry
            .set_presence(&jid, id, Some(Arc::new(presence)))
            .await
            .unwrap();
    }
    (jid, rx)
}

fn chat(to: &str, body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", to)
        .with_attr("from", "alice@localhost/a")
        .with_attr("type", "chat")
        .with_child(Element::new("body", ns::CLIENT).with_text(body))
}

/// A hook changes the stanza in place: later hooks and the recipient see the change, on full-JID
/// delivery (RFC 6121 §8.5.3.1) and on bare-JID delivery (§8.5.2.1.1).
#[tokio::test]
async fn hooks_change_the_stanza_before_delivery() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (router, registry, storage, _dir) =
        router_with(vec![Arc::new(ArchiveModule(seen.clone()))]).await;
    let (alice, _alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let (_bob, mut bob_inbox) = bind(&registry, "bob@localhost/b", 2, Some(0)).await;

    router
        .route_from_client(&alice, chat("bob@localhost/b", "to full"))
        .await;
    assert_eq!(
        next_stanza(&mut bob_inbox).as_deref(),
        Some(
            "<message to='bob@localhost/b' from='alice@localhost/a' type='chat'><body>to full</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='full'/></message>"
        )
    );
    router
        .route_from_client(&alice, chat("bob@localhost", "to bare"))
        .await;
    assert_eq!(
        next_stanza(&mut bob_inbox).as_deref(),
        Some(
            "<message to='bob@localhost' from='alice@localhost/a' type='chat'><body>to bare</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' id='s1' by='bare'/></message>"
        )
    );
    assert_eq!(next_stanza(&mut bob_inbox), None);
    // The lower-priority hook saw the higher one's change both times.
    assert_eq!(*seen.lock().unwrap(), [true, true]);
    storage.close().await;
}

/// Records where messages were delivered.
struct Carbons(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl DeliveredHook for Carbons {
    async fn delivered(&self, _ctx: &Context, message: &Element, to: &[FullJid]) {
        let body = message
            .get_child("body", ns::CLIENT)
            .map(|b| b.text())
            .unwrap_or_default();
        let to: Vec<String> = to.iter().map(ToString::to_string).collect();
        self.0
            .lock()
            .unwrap()
            .push(format!("{body} -> {}", to.join(" ")));
    }
}

/// Drops what goes to `bob@localhost/2` when its body is "hidden", and marks every other
/// message it sees with the session it is queued to.
struct Filter;

#[async_trait]
impl OutboundHook for Filter {
    async fn on_outbound(&self, _ctx: &Context, to: &FullJid, stanza: &mut Element) -> HookResult {
        let hidden = stanza
            .get_child("body", ns::CLIENT)
            .is_some_and(|b| b.text() == "hidden");
        if hidden && to.resource().as_str() == "2" {
            return HookResult::Handled;
        }
        stanza.append_child(Element::new("seen", "urn:test").with_attr("by", to.to_string()));
        HookResult::Pass
    }
}

struct DeliveryModule {
    delivered: Arc<Mutex<Vec<String>>>,
    filter: bool,
}

impl Module for DeliveryModule {
    fn name(&self) -> &'static str {
        "delivery"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.delivered_hook(Arc::new(Carbons(self.delivered.clone())));
        if self.filter {
            reg.outbound_hook(StanzaKind::Message, 0, Arc::new(Filter));
        }
    }
}

/// The delivered hook hears which full JIDs received a message: the one resource of a full-JID
/// delivery (RFC 6121 §8.5.3.1), the top-priority resources of a bare-JID delivery
/// (§8.5.2.1.1), also when a full JID with no such resource is treated as the bare JID
/// (§8.5.3.2.1); never a message that went nowhere (offline, §8.5.2.2.1), nor presence.
#[tokio::test]
async fn delivered_hook_lists_the_sessions_that_took_a_message() {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let (router, registry, storage, _dir) = router_with(vec![Arc::new(DeliveryModule {
        delivered: delivered.clone(),
        filter: false,
    })])
    .await;
    let (alice, _alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let (_, mut bob1) = bind(&registry, "bob@localhost/1", 2, Some(5)).await;
    let (_, mut bob2) = bind(&registry, "bob@localhost/2", 3, Some(5)).await;
    let (_, mut bob3) = bind(&registry, "bob@localhost/3", 4, Some(1)).await;

    router
        .route_from_client(&alice, chat("bob@localhost", "bare"))
        .await;
    router
        .route_from_client(&alice, chat("bob@localhost/3", "full"))
        .await;
    router
        .route_from_client(&alice, chat("bob@localhost/gone", "as bare"))
        .await;
    let presence = Element::new("presence", ns::CLIENT)
        .with_attr("to", "bob@localhost/3")
        .with_attr("from", "alice@localhost/a");
    router.route_from_client(&alice, presence).await;
    assert_eq!(
        *delivered.lock().unwrap(),
        [
            "bare -> bob@localhost/1 bob@localhost/2",
            "full -> bob@localhost/3",
            "as bare -> bob@localhost/1 bob@localhost/2",
        ]
    );
    let bare = "<message to='bob@localhost' from='alice@localhost/a' type='chat'><body>bare</body></message>";
    let as_bare = "<message to='bob@localhost/gone' from='alice@localhost/a' type='chat'><body>as bare</body></message>";
    for inbox in [&mut bob1, &mut bob2] {
        assert_eq!(next_stanza(inbox).as_deref(), Some(bare));
        assert_eq!(next_stanza(inbox).as_deref(), Some(as_bare));
        assert_eq!(next_stanza(inbox), None);
    }
    assert_eq!(
        next_stanza(&mut bob3).as_deref(),
        Some(
            "<message to='bob@localhost/3' from='alice@localhost/a' type='chat'><body>full</body></message>"
        )
    );
    assert_eq!(
        next_stanza(&mut bob3).as_deref(),
        Some("<presence to='bob@localhost/3' from='alice@localhost/a'/>")
    );
    assert_eq!(next_stanza(&mut bob3), None);
    storage.close().await;
}

/// A message error the router generates (here for an account that does not exist, RFC 6121
/// §8.5.1) is delivered to the sender's full JID, and the delivered hook hears of it like any
/// message delivered there; IQ errors are not messages and are not reported.
#[tokio::test]
async fn delivered_hook_hears_the_servers_message_errors() {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let (router, registry, storage, _dir) = router_with(vec![Arc::new(DeliveryModule {
        delivered: delivered.clone(),
        filter: false,
    })])
    .await;
    let (alice, mut alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    router
        .route_from_client(
            &alice,
            chat("nobody@localhost", "lost").with_attr("id", "m1"),
        )
        .await;
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("to", "nobody@localhost")
        .with_attr("from", "alice@localhost/a")
        .with_attr("type", "get")
        .with_attr("id", "q1")
        .with_child(Element::new("query", "urn:example"));
    router.route_from_client(&alice, iq).await;
    assert_eq!(*delivered.lock().unwrap(), [" -> alice@localhost/a"]);
    assert_eq!(
        next_stanza(&mut alice_inbox).as_deref(),
        Some(
            "<message id='m1' to='alice@localhost/a' from='nobody@localhost' type='error'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></message>"
        )
    );
    storage.close().await;
}

/// Records the messages delivered to bob's resources only: it does not want alice's.
struct BobsOnly(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl DeliveredHook for BobsOnly {
    fn wants(&self, to: &FullJid) -> bool {
        to.node().is_some_and(|n| n.as_str() == "bob")
    }

    async fn delivered(&self, ctx: &Context, message: &Element, to: &[FullJid]) {
        Carbons(self.0.clone()).delivered(ctx, message, to).await;
    }
}

struct BobsOnlyModule(Arc<Mutex<Vec<String>>>);

impl Module for BobsOnlyModule {
    fn name(&self) -> &'static str {
        "bobs-only"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.delivered_hook(Arc::new(BobsOnly(self.0.clone())));
    }
}

/// A delivered hook hears only of the accounts it wants (`DeliveredHook::wants`), to a full JID,
/// to a bare JID, and for the router's own errors; the others are delivered as without a hook.
#[tokio::test]
async fn delivered_hook_hears_only_what_it_wants() {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let (router, registry, storage, _dir) =
        router_with(vec![Arc::new(BobsOnlyModule(delivered.clone()))]).await;
    let (alice, mut alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let (bob, mut bob_inbox) = bind(&registry, "bob@localhost/b", 2, Some(0)).await;
    router
        .route_from_client(&alice, chat("bob@localhost", "to bob"))
        .await;
    router
        .route_from_client(&alice, chat("bob@localhost/b", "to bob/b"))
        .await;
    router
        .route_from_client(&alice, chat("nobody@localhost", "lost"))
        .await;
    let to_alice = |to: &str, body: &str| {
        Element::new("message", ns::CLIENT)
            .with_attr("to", to)
            .with_attr("from", "bob@localhost/b")
            .with_attr("type", "chat")
            .with_child(Element::new("body", ns::CLIENT).with_text(body))
    };
    router
        .route_from_client(&bob, to_alice("alice@localhost", "to alice"))
        .await;
    router
        .route_from_client(&bob, to_alice("alice@localhost/a", "to alice/a"))
        .await;
    assert_eq!(
        *delivered.lock().unwrap(),
        ["to bob -> bob@localhost/b", "to bob/b -> bob@localhost/b"]
    );
    for _ in 0..2 {
        assert!(next_stanza(&mut bob_inbox).is_some());
    }
    // The error for nobody, then bob's two messages.
    for _ in 0..3 {
        assert!(next_stanza(&mut alice_inbox).is_some());
    }
    assert_eq!(next_stanza(&mut alice_inbox), None);
    storage.close().await;
}

/// Outbound hooks see each session's copy with its full JID: they can change it for that session
/// and drop it there; a message an outbound hook dropped everywhere counts as delivered (it is
/// neither stored offline nor bounced), and the delivered hook lists only the sessions that got
/// it, with the message as routed.
#[tokio::test]
async fn outbound_hooks_change_or_drop_each_sessions_copy() {
    let delivered = Arc::new(Mutex::new(Vec::new()));
    let (router, registry, storage, _dir) = router_with(vec![Arc::new(DeliveryModule {
        delivered: delivered.clone(),
        filter: true,
    })])
    .await;
    let (alice, mut alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let (_, mut bob1) = bind(&registry, "bob@localhost/1", 2, Some(5)).await;
    let (_, mut bob2) = bind(&registry, "bob@localhost/2", 3, Some(5)).await;

    router
        .route_from_client(&alice, chat("bob@localhost", "hidden"))
        .await;
    router
        .route_from_client(&alice, chat("bob@localhost/2", "hidden"))
        .await;
    assert_eq!(*delivered.lock().unwrap(), ["hidden -> bob@localhost/1"]);
    assert_eq!(
        next_stanza(&mut bob1).as_deref(),
        Some(
            "<message to='bob@localhost' from='alice@localhost/a' type='chat'><body>hidden</body>\
             <seen xmlns='urn:test' by='bob@localhost/1'/></message>"
        )
    );
    assert_eq!(next_stanza(&mut bob1), None);
    assert_eq!(next_stanza(&mut bob2), None);
    // Dropped for bob/2 is handled: no error to the sender, nothing stored.
    assert_eq!(next_stanza(&mut alice_inbox), None);
    storage.close().await;
}

/// The stanza a session received next, waiting for it.
async fn recv_stanza(rx: &mut mpsc::Receiver<SessionCommand>) -> Element {
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let SessionCommand::Stanza(q) = got;
    q.stanza
}

fn client_xml(e: &Element) -> String {
    let mut s = String::new();
    e.write_in_stream(ns::CLIENT, &mut s);
    s
}

fn version_get(to: &str) -> Element {
    Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("to", to)
        .with_child(Element::new("query", "jabber:iq:version"))
}

/// RFC 6120 §8.2.3: a server-originated get is answered by a result with the same id, from the
/// entity it was sent to; the id is generated when absent, `from` is the server's domain. An
/// answer with that id from anyone else (here bob's session) completes nothing and is routed
/// like any other result.
#[tokio::test]
async fn request_iq_returns_the_result() {
    let (router, registry, storage, _dir) = router_with(vec![]).await;
    let (alice, mut alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let (bob, _bob_inbox) = bind(&registry, "bob@localhost/b", 2, Some(0)).await;
    let answer = async {
        let request = recv_stanza(&mut alice_inbox).await;
        assert_eq!(
            client_xml(&request),
            "<iq type='get' to='alice@localhost/a' from='localhost' id='starling-iq-1'>\
             <query xmlns='jabber:iq:version'/></iq>"
        );
        let reply = |from: &str| {
            Element::new("iq", ns::CLIENT)
                .with_attr("type", "result")
                .with_attr("id", "starling-iq-1")
                .with_attr("to", "localhost")
                .with_attr("from", from)
                .with_child(
                    Element::new("query", "jabber:iq:version")
                        .with_child(Element::new("name", "jabber:iq:version").with_text(from)),
                )
        };
        // A forged answer: the right id, the wrong sender.
        router
            .route_from_client(&bob, reply("bob@localhost/b"))
            .await;
        assert_eq!(router.pending_iqs(), 1);
        router
            .route_from_client(&alice, reply("alice@localhost/a"))
            .await;
    };
    let (result, ()) = tokio::join!(
        router.request_iq(
            version_get("alice@localhost/a"),
            std::time::Duration::from_secs(5)
        ),
        answer
    );
    assert_eq!(
        client_xml(&result.unwrap()),
        "<iq type='result' id='starling-iq-1' to='localhost' from='alice@localhost/a'>\
         <query xmlns='jabber:iq:version'><name>alice@localhost/a</name></query></iq>"
    );
    assert_eq!(router.pending_iqs(), 0);
    storage.close().await;
}

/// An error answer is an error (RFC 6120 §8.3), whoever generates it: the recipient's, or the
/// router's own when the resource is gone (RFC 6121 §8.5.3.2.2: `<service-unavailable/>`) or the
/// domain unreachable (RFC 6120 §8.3.3.16: `<remote-server-not-found/>`).
#[tokio::test]
async fn request_iq_returns_errors_the_router_generates() {
    let (router, registry, storage, _dir) = router_with(vec![]).await;
    let (alice, mut alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let timeout = std::time::Duration::from_secs(5);
    let gone = router
        .request_iq(version_get("bob@localhost/gone"), timeout)
        .await
        .unwrap_err();
    let IqRequestError::Error(stanza) = &gone else {
        panic!("{gone:?}");
    };
    assert_eq!(
        client_xml(stanza),
        "<iq id='starling-iq-1' to='localhost' from='bob@localhost/gone' type='error'>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    );
    assert_eq!(
        gone.stanza_error().map(|e| e.condition),
        Some(StanzaErrorCondition::ServiceUnavailable)
    );
    let remote = router
        .request_iq(
            version_get("someone@elsewhere.example").with_attr("id", "mine"),
            timeout,
        )
        .await
        .unwrap_err();
    assert_eq!(
        remote.stanza_error().map(|e| e.condition),
        Some(StanzaErrorCondition::RemoteServerNotFound)
    );
    // The recipient's own error.
    let answer = async {
        let request = recv_stanza(&mut alice_inbox).await;
        let reply = error_reply(
            &request,
            &StanzaError::new(StanzaErrorCondition::FeatureNotImplemented),
        );
        router.route_from_client(&alice, reply).await;
    };
    let (refused, ()) = tokio::join!(
        router.request_iq(version_get("alice@localhost/a"), timeout),
        answer
    );
    assert_eq!(
        refused.unwrap_err().stanza_error().map(|e| e.condition),
        Some(StanzaErrorCondition::FeatureNotImplemented)
    );
    // Nothing reached alice but the one request, no error was sent anywhere.
    assert_eq!(next_stanza(&mut alice_inbox), None);
    assert_eq!(router.pending_iqs(), 0);
    storage.close().await;
}

/// Unanswered, a request times out and leaves nothing behind; so does a caller that stops
/// waiting. A request without 'to' cannot be routed (RFC 6120 §8.1.1), one that is no get or
/// set is refused, and an id already waiting is refused.
#[tokio::test]
async fn request_iq_times_out_without_leaking() {
    let (router, registry, storage, _dir) = router_with(vec![]).await;
    let (_alice, mut alice_inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let short = std::time::Duration::from_millis(50);
    let err = router
        .request_iq(version_get("alice@localhost/a"), short)
        .await
        .unwrap_err();
    assert!(
        matches!(err, IqRequestError::Timeout(d) if d == short),
        "{err:?}"
    );
    assert_eq!(router.pending_iqs(), 0);
    // A late answer completes nothing: it is routed as a result to the server, which ignores it.
    let late = iq_result(&recv_stanza(&mut alice_inbox).await);
    router.route_stanza(late).await;
    assert_eq!(next_stanza(&mut alice_inbox), None);

    // The caller gives up (its future is dropped) while a request waits.
    let waiting = router.request_iq(
        version_get("alice@localhost/a").with_attr("id", "dup"),
        std::time::Duration::from_secs(60),
    );
    let mut waiting = Box::pin(waiting);
    assert!(futures_poll_once(waiting.as_mut()).await.is_none());
    assert_eq!(router.pending_iqs(), 1);
    let dup = router
        .request_iq(
            version_get("alice@localhost/a").with_attr("id", "dup"),
            short,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&dup, IqRequestError::DuplicateId(id) if id == "dup"),
        "{dup:?}"
    );
    drop(waiting);
    assert_eq!(router.pending_iqs(), 0);

    let no_to = Element::new("iq", ns::CLIENT).with_attr("type", "get");
    assert!(matches!(
        router.request_iq(no_to, short).await,
        Err(IqRequestError::NotRoutable)
    ));
    let result = version_get("alice@localhost/a").with_attr("type", "result");
    assert!(matches!(
        router.request_iq(result, short).await,
        Err(IqRequestError::Invalid(_))
    ));
    assert_eq!(router.pending_iqs(), 0);
    storage.close().await;
}

/// Polls `f` once: its output if it is ready.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut f).poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// A component that records what it gets and answers each message, presence and IQ get from
/// the JID it was addressed to, as a service at its own domain would.
struct Echo(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl ComponentHandler for Echo {
    async fn on_stanza(&self, ctx: &Context, stanza: Element) {
        self.0.lock().unwrap().push(client_xml(&stanza));
        let (Some(to), Some(from)) = (stanza.attr("to"), stanza.attr("from")) else {
            return;
        };
        let answer = match (stanza.name(), stanza.attr("type")) {
            ("message", None | Some("chat" | "normal")) => Element::new("message", ns::CLIENT)
                .with_attr("type", "chat")
                .with_child(Element::new("body", ns::CLIENT).with_text("echo")),
            ("presence", None) => Element::new("presence", ns::CLIENT),
            ("iq", Some("get")) => iq_result(&stanza),
            _ => return,
        };
        let answer = answer.with_attr("from", to).with_attr("to", from);
        ctx.router.route(answer).await;
    }
}

struct ServiceModule(Arc<Mutex<Vec<String>>>);

impl Module for ServiceModule {
    fn name(&self) -> &'static str {
        "service"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.component(
            ComponentDomain::Subdomain("svc"),
            Arc::new(Echo(self.0.clone())),
        );
    }
}

/// A component domain gets every stanza addressed to it or to any JID at it, of every kind,
/// before "not a local domain" would bounce it (XEP-0114: the server hands over everything
/// addressed to the component's domain). What it sends from its domain reaches local users like
/// anything the server routes (its 'from' is trusted); an error the router generates for one of
/// its stanzas goes back to it (RFC 6120 §8.3).
#[tokio::test]
async fn a_component_domain_gets_every_stanza_for_it_and_answers() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (router, registry, storage, _dir) =
        router_with(vec![Arc::new(ServiceModule(seen.clone()))]).await;
    let (alice, mut inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let from_alice = |e: Element| e.with_attr("from", "alice@localhost/a");
    router
        .route_from_client(&alice, from_alice(chat("X@SVC.localhost/r", "hello")))
        .await;
    let presence = Element::new("presence", ns::CLIENT).with_attr("to", "x@svc.localhost/r");
    router.route_from_client(&alice, from_alice(presence)).await;
    let iq = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "q1")
        .with_attr("to", "x@svc.localhost/r")
        .with_child(Element::new("query", "jabber:iq:version"));
    router.route_from_client(&alice, from_alice(iq)).await;
    let to_domain = Element::new("iq", ns::CLIENT)
        .with_attr("type", "get")
        .with_attr("id", "q2")
        .with_attr("to", "svc.localhost")
        .with_child(Element::new(
            "query",
            "http://jabber.org/protocol/disco#info",
        ));
    router
        .route_from_client(&alice, from_alice(to_domain))
        .await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "<message to='x@svc.localhost/r' from='alice@localhost/a' type='chat'><body>hello</body></message>",
            "<presence to='x@svc.localhost/r' from='alice@localhost/a'/>",
            "<iq type='get' id='q1' to='x@svc.localhost/r' from='alice@localhost/a'><query xmlns='jabber:iq:version'/></iq>",
            "<iq type='get' id='q2' to='svc.localhost' from='alice@localhost/a'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
        ]
    );
    let mut got = Vec::new();
    while let Some(s) = next_stanza(&mut inbox) {
        got.push(s);
    }
    assert_eq!(
        got,
        [
            "<message type='chat' from='x@svc.localhost/r' to='alice@localhost/a'><body>echo</body></message>",
            "<presence from='x@svc.localhost/r' to='alice@localhost/a'/>",
            "<iq id='q1' to='alice@localhost/a' from='x@svc.localhost/r' type='result'/>",
            "<iq id='q2' to='alice@localhost/a' from='svc.localhost' type='result'/>",
        ]
    );
    // The component writes to a resource that is gone: the router's error goes back to it.
    seen.lock().unwrap().clear();
    let lost = Element::new("message", ns::CLIENT)
        .with_attr("type", "groupchat")
        .with_attr("from", "room@svc.localhost/bob")
        .with_attr("to", "alice@localhost/gone");
    router.route_stanza(lost).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "<message to='room@svc.localhost/bob' from='alice@localhost/gone' type='error'>\
          <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        ]
    );
    // Elsewhere is still unreachable.
    router
        .route_from_client(&alice, from_alice(chat("x@svc.elsewhere.example", "hi")))
        .await;
    assert!(
        next_stanza(&mut inbox)
            .unwrap()
            .contains("<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>")
    );
    storage.close().await;
}

/// External components (XEP-0114) attach at run time: not at a virtual host, not at a domain
/// served already; once detached, their domain is unreachable again.
#[tokio::test]
async fn external_components_attach_and_detach_at_run_time() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (router, registry, storage, _dir) = router_with(vec![Arc::new(ServiceModule(Arc::new(
        Mutex::new(Vec::new()),
    )))])
    .await;
    let (alice, mut inbox) = bind(&registry, "alice@localhost/a", 1, Some(0)).await;
    let gateway: Arc<dyn ComponentHandler> = Arc::new(Echo(seen.clone()));
    let components = router.components();
    assert_eq!(
        components.attach("localhost", gateway.clone()),
        Err(ComponentError::LocalHost("localhost".into()))
    );
    assert_eq!(
        components.attach("svc.localhost", gateway.clone()),
        Err(ComponentError::Taken("svc.localhost".into()))
    );
    assert_eq!(
        components.attach("gw.localhost", gateway.clone()),
        Ok("gw.localhost".into())
    );
    router
        .route_from_client(
            &alice,
            chat("user@gw.localhost", "via gateway").with_attr("from", "alice@localhost/a"),
        )
        .await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(
        next_stanza(&mut inbox).as_deref(),
        Some(
            "<message type='chat' from='user@gw.localhost' to='alice@localhost/a'><body>echo</body></message>"
        )
    );
    assert!(components.detach("gw.localhost", &gateway));
    router
        .route_from_client(
            &alice,
            chat("user@gw.localhost", "gone").with_attr("from", "alice@localhost/a"),
        )
        .await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(
        next_stanza(&mut inbox)
            .unwrap()
            .contains("<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>")
    );
    storage.close().await;
}

/// A module cannot serve a virtual host as a component: the router does not start.
#[tokio::test]
async fn a_component_at_a_virtual_host_is_refused_at_start() {
    struct AtHost;
    impl Module for AtHost {
        fn name(&self) -> &'static str {
            "at-host"
        }
        fn register(self: Arc<Self>, reg: &mut Registrar) {
            let echo = Arc::new(Echo(Arc::new(Mutex::new(Vec::new()))));
            reg.component(ComponentDomain::Domain("LOCALHOST".into()), echo);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("db")).await.unwrap();
    let registry: Arc<dyn SessionRegistry> = Arc::new(LocalRegistry::new());
    let err = Router::new(
        vec!["localhost".into()],
        registry,
        storage.stores(),
        vec![Arc::new(AtHost)],
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "component domain: 'localhost' is a virtual host of this server"
    );
    storage.close().await;
}
