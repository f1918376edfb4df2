//! The offline module over a real router, registry and SQLite store, without sockets.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use starling_module_api::{SessionCommand, SessionHandle, SessionRegistry};
use starling_router::{LocalRegistry, Router};
use starling_storage_sqlite::SqliteStorage;
use tokio::sync::mpsc;

use super::*;
use starling_proto::FullJid;
use starling_proto::ns::{self, SID as NS_SID};
use std::time::Duration;

fn el(xml_name: &str, ns: &str) -> Element {
    Element::new(xml_name, ns)
}

fn message(ty: Option<&str>) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("to", "bob@localhost")
        .with_attr("from", "alice@localhost/a")
        .with_opt_attr("type", ty)
}

#[test]
fn decide_by_type_and_hints() {
    let body = || Element::new("body", ns::CLIENT).with_text("hi");
    let state = || el("composing", NS_CHATSTATES);
    let cases: Vec<(Element, Decision, &str)> = vec![
        (message(None).with_child(body()), Decision::Store, "no type"),
        (
            message(Some("normal")).with_child(body()),
            Decision::Store,
            "normal",
        ),
        (
            message(Some("chat")).with_child(body()),
            Decision::Store,
            "chat",
        ),
        (message(Some("chat")), Decision::Store, "chat, empty"),
        (
            message(Some("x-unknown")).with_child(body()),
            Decision::Store,
            "unknown type is normal",
        ),
        (
            message(Some("chat")).with_child(el("received", "urn:xmpp:receipts")),
            Decision::Store,
            "receipt only",
        ),
        (
            message(Some("headline")).with_child(body()),
            Decision::Pass,
            "headline",
        ),
        (
            message(Some("headline"))
                .with_child(body())
                .with_child(el("store", NS_HINTS)),
            Decision::Store,
            "headline with <store/>",
        ),
        (
            message(Some("groupchat")).with_child(body()),
            Decision::Pass,
            "groupchat",
        ),
        (
            message(Some("error")).with_child(el("store", NS_HINTS)),
            Decision::Pass,
            "error, hints ignored",
        ),
        (
            message(Some("chat"))
                .with_child(body())
                .with_child(el("no-store", NS_HINTS)),
            Decision::Pass,
            "<no-store/>",
        ),
        (
            message(Some("chat"))
                .with_child(body())
                .with_child(el("no-store", NS_HINTS))
                .with_child(el("store", NS_HINTS)),
            Decision::Pass,
            "<no-store/> wins over <store/>",
        ),
        (
            message(Some("chat")).with_child(state()),
            Decision::Drop,
            "chat state only",
        ),
        (
            message(None)
                .with_child(state())
                .with_child(Element::new("thread", ns::CLIENT).with_text("t1"))
                .with_child(el("no-permanent-store", NS_HINTS))
                .with_child(el("origin-id", NS_SID).with_attr("id", "o1")),
            Decision::Drop,
            "chat state with thread, hints and origin-id",
        ),
        (
            message(Some("chat")).with_child(state()).with_child(body()),
            Decision::Store,
            "chat state with body",
        ),
        (
            message(Some("chat"))
                .with_child(state())
                .with_child(el("request", "urn:xmpp:receipts")),
            Decision::Store,
            "chat state with receipt request",
        ),
        (
            message(Some("chat"))
                .with_child(state())
                .with_child(el("store", NS_HINTS)),
            Decision::Store,
            "chat state with <store/>",
        ),
    ];
    for (m, want, what) in cases {
        assert_eq!(decide(&m), want, "{what}: {m}");
    }
}

#[test]
fn stamped_appends_delay_and_removes_forged_ones() {
    let mut m = message(Some("chat"))
        .with_attr("id", "m1")
        .with_child(Element::new("body", ns::CLIENT).with_text("a"))
        .with_child(
            el("delay", NS_DELAY)
                .with_attr("from", "localhost")
                .with_attr("stamp", "2000-01-01T00:00:00Z"),
        )
        .with_child(
            el("delay", NS_DELAY)
                .with_attr("from", "muc.example.net")
                .with_attr("stamp", "2001-01-01T00:00:00Z"),
        )
        .with_child(el("request", "urn:xmpp:receipts"));
    m.set_attr_ns(ns::XML, "lang", "de");
    let got = stamped(&m, "localhost", "2024-02-29T23:59:59Z");
    assert_eq!(
        got.to_xml(),
        "<message xmlns='jabber:client' to='bob@localhost' from='alice@localhost/a' type='chat' id='m1' xml:lang='de'>\
         <body>a</body>\
         <delay xmlns='urn:xmpp:delay' from='muc.example.net' stamp='2001-01-01T00:00:00Z'/>\
         <request xmlns='urn:xmpp:receipts'/>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2024-02-29T23:59:59Z'/></message>"
    );
    // Nothing forged: the stanza is kept as it is, the delay appended.
    let plain = message(None).with_child(Element::new("body", ns::CLIENT).with_text("b"));
    assert_eq!(
        stamped(&plain, "localhost", "2024-02-29T23:59:59Z").to_xml(),
        "<message xmlns='jabber:client' to='bob@localhost' from='alice@localhost/a'><body>b</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='2024-02-29T23:59:59Z'/></message>"
    );
}

struct Setup {
    router: Arc<Router>,
    registry: Arc<dyn SessionRegistry>,
    stores: starling_storage::Stores,
    offline: Arc<Offline>,
    alice: FullJid,
    alice_inbox: mpsc::Receiver<SessionCommand>,
    _storage: SqliteStorage,
    _dir: tempfile::TempDir,
}

async fn setup(max: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("db")).await.unwrap();
    let stores = storage.stores();
    for u in ["alice", "bob"] {
        stores
            .accounts
            .create_account(u, "localhost", &[])
            .await
            .unwrap();
    }
    let registry: Arc<dyn SessionRegistry> = Arc::new(LocalRegistry::new());
    let offline = Arc::new(Offline::new(max, Arc::new(crate::mam::seen::Seen::new())));
    let router = Router::new(
        vec!["localhost".into()],
        registry.clone(),
        stores.clone(),
        vec![offline.clone()],
    )
    .unwrap();
    let alice: FullJid = "alice@localhost/a".parse().unwrap();
    let (tx, alice_inbox) = mpsc::channel(16);
    registry
        .bind(alice.clone(), SessionHandle::new(1, tx))
        .await;
    Setup {
        router,
        registry,
        stores,
        offline,
        alice,
        alice_inbox,
        _storage: storage,
        _dir: dir,
    }
}

impl Setup {
    /// Binds bob/r with an outbound queue of `capacity`, available with `priority`.
    async fn bob_session(
        &self,
        id: u64,
        capacity: usize,
        priority: i8,
    ) -> (FullJid, mpsc::Receiver<SessionCommand>) {
        let bob: FullJid = format!("bob@localhost/r{id}").parse().unwrap();
        let (tx, rx) = mpsc::channel(capacity);
        self.registry
            .bind(bob.clone(), SessionHandle::new(id, tx))
            .await;
        let presence = Element::new("presence", ns::CLIENT)
            .with_child(Element::new("priority", ns::CLIENT).with_text(priority.to_string()));
        self.registry
            .set_presence(&bob, id, Some(Arc::new(presence)))
            .await
            .unwrap();
        (bob, rx)
    }

    async fn send(&self, body: &str) {
        let m = Element::new("message", ns::CLIENT)
            .with_attr("to", "bob@localhost")
            .with_attr("type", "chat")
            .with_attr("id", body)
            .with_attr("from", "alice@localhost/a")
            .with_child(Element::new("body", ns::CLIENT).with_text(body));
        self.router.route_from_client(&self.alice, m).await;
    }

    async fn count(&self) -> u64 {
        self.stores.offline.count("bob", "localhost").await.unwrap()
    }

    async fn available(&self, jid: &FullJid) {
        self.router.emit(Event::Available(jid.clone())).await;
    }
}

fn stanza(rx: &mut mpsc::Receiver<SessionCommand>) -> Option<Element> {
    match rx.try_recv() {
        Ok(SessionCommand::Stanza(q)) => Some(q.stanza),
        Err(_) => None,
    }
}

fn client_xml(e: &Element) -> String {
    let mut s = String::new();
    e.write_in_stream(ns::CLIENT, &mut s);
    s
}

/// The stanza as delivered, with the stamp replaced by `*`. (Read back from storage, attributes
/// come in the parser's order.)
fn without_stamp(e: &Element) -> String {
    mask_stamp(&client_xml(e))
}

/// `xml` with the value of its (one) `stamp` attribute, which must be 20 characters, replaced by
/// `*`.
fn mask_stamp(xml: &str) -> String {
    let start = xml.find("stamp='").unwrap() + "stamp='".len();
    let end = start + xml[start..].find('\'').unwrap();
    assert_eq!(end - start, 20, "stamp shape: {xml}");
    format!("{}*{}", &xml[..start], &xml[end..])
}

fn expected(body: &str) -> String {
    format!(
        "<message to='bob@localhost' type='chat' id='{body}' from='alice@localhost/a'><body>{body}</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='*'/></message>"
    )
}

#[tokio::test]
async fn stores_then_delivers_in_order_when_available() {
    let mut s = setup(10).await;
    for b in ["one", "two", "three"] {
        s.send(b).await;
    }
    assert!(stanza(&mut s.alice_inbox).is_none(), "no bounce");
    assert_eq!(s.count().await, 3);
    let stored = s.stores.offline.load("bob", "localhost").await.unwrap();
    assert_eq!(
        mask_stamp(&stored[0].stanza),
        "<message xmlns='jabber:client' to='bob@localhost' type='chat' id='one' from='alice@localhost/a'>\
         <body>one</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='*'/></message>"
    );

    let (bob, mut inbox) = s.bob_session(2, 16, 0).await;
    s.available(&bob).await;
    for b in ["one", "two", "three"] {
        assert_eq!(without_stamp(&stanza(&mut inbox).unwrap()), expected(b));
    }
    assert!(stanza(&mut inbox).is_none());
    assert_eq!(s.count().await, 0);
    // Nothing left for a second resource.
    let (bob3, mut inbox3) = s.bob_session(3, 16, 5).await;
    s.available(&bob3).await;
    assert!(stanza(&mut inbox3).is_none());
}

#[tokio::test]
async fn negative_priority_or_unavailable_session_gets_nothing() {
    let s = setup(10).await;
    s.send("one").await;
    let (bob, mut inbox) = s.bob_session(2, 16, -1).await;
    s.available(&bob).await;
    assert!(stanza(&mut inbox).is_none());
    // Bound, but no presence at all.
    let bob4: FullJid = "bob@localhost/r4".parse().unwrap();
    let (tx, mut inbox4) = mpsc::channel(16);
    s.registry
        .bind(bob4.clone(), SessionHandle::new(4, tx))
        .await;
    s.available(&bob4).await;
    assert!(stanza(&mut inbox4).is_none());
    // A session that does not exist.
    s.available(&"bob@localhost/gone".parse().unwrap()).await;
    assert_eq!(s.count().await, 1);
}

#[tokio::test]
async fn full_queue_bounces_with_resource_constraint() {
    let mut s = setup(2).await;
    for b in ["one", "two", "three"] {
        s.send(b).await;
    }
    // RFC 6120 §8.3.3.18 (XEP-0160 §2 step 3 would say <service-unavailable/>: module docs).
    assert_eq!(
        client_xml(&stanza(&mut s.alice_inbox).unwrap()),
        "<message id='three' to='alice@localhost/a' from='bob@localhost' type='error'>\
         <error type='wait'><resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>The recipient's offline message queue is full</text>\
         </error></message>"
    );
    assert!(stanza(&mut s.alice_inbox).is_none());
    assert_eq!(s.count().await, 2);
}

#[tokio::test]
async fn storage_off_bounces_everything() {
    let mut s = setup(0).await;
    s.send("one").await;
    assert_eq!(
        client_xml(&stanza(&mut s.alice_inbox).unwrap()),
        "<message id='one' to='alice@localhost/a' from='bob@localhost' type='error'>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    );
    assert_eq!(s.count().await, 0);
    assert!(!s.router.server_info().server_features.contains(&FEATURE));
}

#[tokio::test]
async fn feature_advertised_when_on() {
    let s = setup(1).await;
    assert!(s.router.server_info().server_features.contains(&FEATURE));
}

/// A backlog never fills more than half of the session's queue (the rest stays for live
/// traffic, which must not overflow it and close the session): the first stanzas go at once, the
/// others as the session takes stanzas off its queue, all in order.
#[tokio::test]
async fn a_backlog_leaves_half_the_queue_free() {
    let s = setup(10).await;
    for b in ["one", "two", "three", "four"] {
        s.send(b).await;
    }
    let (bob, mut inbox) = s.bob_session(2, 4, 0).await;
    s.available(&bob).await;
    // In the session's own task: two of four slots.
    assert_eq!(without_stamp(&stanza(&mut inbox).unwrap()), expected("one"));
    assert_eq!(without_stamp(&stanza(&mut inbox).unwrap()), expected("two"));
    for b in ["three", "four"] {
        let got = tokio::time::timeout(Duration::from_secs(5), inbox.recv())
            .await
            .unwrap()
            .unwrap();
        let SessionCommand::Stanza(got) = got;
        assert_eq!(without_stamp(&got.stanza), expected(b));
    }
    let handle = s.registry.get(&bob).await.unwrap().handle;
    assert!(!handle.is_closing());
}

/// A session that is closing takes nothing: the messages stay stored for the next one.
#[tokio::test]
async fn delivery_stops_when_the_session_accepts_no_more() {
    let s = setup(10).await;
    for b in ["one", "two"] {
        s.send(b).await;
    }
    let (bob, mut inbox) = s.bob_session(2, 4, 0).await;
    s.registry
        .get(&bob)
        .await
        .unwrap()
        .handle
        .close(starling_proto::StreamError::new(
            starling_proto::StreamErrorCondition::Reset,
        ));
    s.available(&bob).await;
    assert!(inbox.try_recv().is_err());
    assert_eq!(s.count().await, 2);
}

#[tokio::test]
async fn large_backlog_is_paced_in_batches() {
    let s = setup(1000).await;
    let n = DELIVERY_BATCH * 2 + 30;
    for i in 0..n {
        s.send(&format!("m{i:03}")).await;
    }
    assert_eq!(s.count().await, n as u64);
    let (bob, mut inbox) = s.bob_session(2, 1024, 0).await;
    s.available(&bob).await;
    // The first batch at once.
    for i in 0..DELIVERY_BATCH {
        assert_eq!(
            without_stamp(&stanza(&mut inbox).unwrap()),
            expected(&format!("m{i:03}"))
        );
    }
    assert!(stanza(&mut inbox).is_none(), "only one batch at once");
    // The rest follows, in order.
    for i in DELIVERY_BATCH..n {
        let got = tokio::time::timeout(Duration::from_secs(5), inbox.recv())
            .await
            .unwrap()
            .unwrap();
        let SessionCommand::Stanza(got) = got;
        assert_eq!(without_stamp(&got.stanza), expected(&format!("m{i:03}")));
    }
    // The background task deletes after queueing: wait for the last delete.
    for _ in 0..100 {
        if s.count().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.count().await, 0);
    assert!(stanza(&mut inbox).is_none());
    // The lock entry is gone once nobody delivers.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.offline.inner.delivering.lock().unwrap().is_empty());
}

#[tokio::test]
async fn stored_while_available_is_delivered_at_once() {
    let s = setup(10).await;
    let (bob, mut inbox) = s.bob_session(2, 16, 1).await;
    // The router would deliver directly now; the hook sees it as it would in the race where the
    // session became available between the router's look-up and the store.
    let mut m = message(Some("chat"))
        .with_attr("id", "late")
        .with_child(Element::new("body", ns::CLIENT).with_text("late"));
    let ctx = s.router.context();
    assert_eq!(
        s.offline.on_stanza(ctx, HookPoint::Offline, &mut m).await,
        HookResult::Handled
    );
    assert_eq!(
        without_stamp(&stanza(&mut inbox).unwrap()),
        "<message to='bob@localhost' from='alice@localhost/a' type='chat' id='late'><body>late</body>\
         <delay xmlns='urn:xmpp:delay' from='localhost' stamp='*'/></message>"
    );
    assert_eq!(s.count().await, 0);
    drop(bob);
}

#[tokio::test]
async fn hook_decisions_through_the_router() {
    let mut s = setup(10).await;
    let route = |m: Element| {
        let router = s.router.clone();
        let alice = s.alice.clone();
        async move { router.route_from_client(&alice, m).await }
    };
    // Headline: dropped by the router, nothing stored, no error.
    route(message(Some("headline")).with_child(Element::new("body", ns::CLIENT).with_text("h")))
        .await;
    // Standalone chat state: dropped silently.
    route(message(Some("chat")).with_child(el("paused", NS_CHATSTATES))).await;
    assert!(stanza(&mut s.alice_inbox).is_none());
    assert_eq!(s.count().await, 0);
    // <no-store/>: bounced.
    route(
        message(Some("chat"))
            .with_attr("id", "ns")
            .with_child(Element::new("body", ns::CLIENT).with_text("x"))
            .with_child(el("no-store", NS_HINTS)),
    )
    .await;
    assert_eq!(
        client_xml(&stanza(&mut s.alice_inbox).unwrap()),
        "<message id='ns' to='alice@localhost/a' from='bob@localhost' type='error'>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    );
    // A receipt alone is stored, and a message to oneself without 'to' is for one's own account.
    route(
        message(None)
            .with_attr("id", "r")
            .with_child(el("received", "urn:xmpp:receipts").with_attr("id", "x")),
    )
    .await;
    let to_self = Element::new("message", ns::CLIENT)
        .with_attr("from", "alice@localhost/a")
        .with_attr("id", "self")
        .with_child(Element::new("body", ns::CLIENT).with_text("note"));
    route(to_self).await;
    assert!(stanza(&mut s.alice_inbox).is_none());
    assert_eq!(s.count().await, 1);
    let own = s.stores.offline.load("alice", "localhost").await.unwrap();
    assert_eq!(own.len(), 1);
    assert!(
        own[0].stanza.starts_with(
            "<message xmlns='jabber:client' from='alice@localhost/a' id='self'><body>note</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='"
        ),
        "{}",
        own[0].stanza
    );
}
