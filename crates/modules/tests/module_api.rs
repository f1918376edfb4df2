//! The module API seen from the default modules, over a real router, registry and SQLite store,
//! without sockets: the event bus, the one outbound path, component domains in disco.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use starling_module_api::{
    ComponentDomain, ComponentHandler, Context, Event, EventListener, HookResult, Module,
    OutboundHook, Registrar, SessionCommand, SessionHandle, SessionRegistry,
};
use starling_modules::{ModuleOptions, default_modules};
use starling_proto::{Element, FullJid, StanzaKind, ns};
use starling_router::{LocalRegistry, Router};
use starling_storage::{RosterItem, Subscription};
use starling_storage_sqlite::SqliteStorage;
use tokio::sync::mpsc;

/// Records every event as a line.
struct Recorder(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl EventListener for Recorder {
    async fn on_event(&self, _ctx: &Context, event: &Event) {
        let line = match event {
            Event::Bound(jid) => format!("bound {jid}"),
            Event::Available(jid) => format!("available {jid}"),
            Event::Unavailable(jid) => format!("unavailable {jid}"),
            Event::Resumed(jid) => format!("resumed {jid}"),
            Event::Ended(last) => format!(
                "ended {} (last presence: {})",
                last.jid,
                last.presence.as_ref().map_or("none".into(), |p| p.to_xml())
            ),
            Event::RosterChanged {
                account,
                contact,
                before,
                after,
            } => format!(
                "roster {account}: {contact} {} -> {}",
                before
                    .as_ref()
                    .map_or("absent", |i| i.subscription.as_str()),
                after.as_ref().map_or("absent", |i| i.subscription.as_str())
            ),
            Event::AccountDeleted(account) => format!("deleted {account}"),
            Event::VcardChanged(account) => format!("vcard {account}"),
            Event::PrivateChanged {
                account,
                namespaces,
            } => format!("private {account} {}", namespaces.join(" ")),
            Event::Registered { account, contact } => format!(
                "registered {account} contact {}",
                contact.as_ref().map_or("none".into(), |c| c.to_string())
            ),
            Event::Mentioned { to, message } => format!("mentioned {to} {}", message.to_xml()),
        };
        self.0.lock().unwrap().push(line);
    }
}

/// Drops everything queued to `alice@localhost/quiet` (as blocking or client state indication
/// would), recording what it dropped.
struct Quiet(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl OutboundHook for Quiet {
    async fn on_outbound(&self, _ctx: &Context, to: &FullJid, stanza: &mut Element) -> HookResult {
        if to.resource().as_str() != "quiet" {
            return HookResult::Pass;
        }
        let mut xml = String::new();
        stanza.write_in_stream(ns::CLIENT, &mut xml);
        self.0.lock().unwrap().push(xml);
        HookResult::Handled
    }
}

/// The test's own module: whatever listeners and hooks a test gives it, registered after the
/// default modules.
#[derive(Default)]
struct Probe {
    events: Option<Arc<Mutex<Vec<String>>>>,
    quiet: Option<Arc<Mutex<Vec<String>>>>,
    /// Serves `conference.{host}` with a component that ignores everything.
    conference: bool,
}

struct Silent;

#[async_trait]
impl ComponentHandler for Silent {
    async fn on_stanza(&self, _ctx: &Context, _stanza: Element) {}
}

impl Module for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        if let Some(events) = &self.events {
            reg.events(Arc::new(Recorder(events.clone())));
        }
        if self.conference {
            reg.component(ComponentDomain::Subdomain("conference"), Arc::new(Silent));
        }
        if let Some(dropped) = &self.quiet {
            for kind in [StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq] {
                reg.outbound_hook(kind, 0, Arc::new(Quiet(dropped.clone())));
            }
        }
    }
}

struct Setup {
    router: Arc<Router>,
    registry: Arc<dyn SessionRegistry>,
    stores: starling_storage::Stores,
    _storage: SqliteStorage,
    _dir: tempfile::TempDir,
}

/// The default modules and `probe` over a fresh store with accounts alice and bob.
async fn setup(probe: Probe) -> Setup {
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
    // Without the archive: its <stanza-id/> on every message is not what these tests are about.
    let mut modules = default_modules(&ModuleOptions {
        archive: None,
        ..ModuleOptions::default()
    });
    modules.push(Arc::new(probe));
    let router = Router::new(
        vec!["localhost".into()],
        registry.clone(),
        stores.clone(),
        modules,
    )
    .unwrap();
    Setup {
        router,
        registry,
        stores,
        _storage: storage,
        _dir: dir,
    }
}

impl Setup {
    /// Binds `jid` as session `id` and announces it, as c2s does after RFC 6120 §7 binding.
    async fn bind(&self, jid: &str, id: u64) -> (FullJid, mpsc::Receiver<SessionCommand>) {
        let jid: FullJid = jid.parse().unwrap();
        let (tx, rx) = mpsc::channel(64);
        self.registry
            .bind(jid.clone(), SessionHandle::new(id, tx))
            .await;
        self.router.emit(Event::Bound(jid.clone())).await;
        (jid, rx)
    }

    /// Unbinds `jid` and announces its end, as c2s does when a stream ends.
    async fn end(&self, jid: &FullJid, id: u64) {
        let last = self.registry.unbind(jid, id).await.unwrap();
        self.router.emit(Event::Ended(last)).await;
    }

    async fn send(&self, from: &FullJid, xml: &str) {
        let mut stanza = starling_module_api::parse_stored(xml).unwrap();
        stanza.set_attr("from", from.to_string());
        self.router.route_from_client(from, stanza).await;
    }
}

/// Everything queued to a session so far, as the client would read it.
fn received(rx: &mut mpsc::Receiver<SessionCommand>) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(SessionCommand::Stanza(q)) = rx.try_recv() {
        let mut s = String::new();
        q.stanza.write_in_stream(ns::CLIENT, &mut s);
        out.push(s);
    }
    out
}

/// The events of a session's life come in order: bound (RFC 6120 §7), available after its
/// initial presence was broadcast (RFC 6121 §4.2), unavailable after an unavailable broadcast
/// (§4.5.1), ended with its last presence; roster changes as they are stored (§2.3, §3.1).
#[tokio::test]
async fn events_follow_a_session_from_bind_to_end() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let s = setup(Probe {
        events: Some(events.clone()),
        ..Probe::default()
    })
    .await;
    let (alice, mut inbox) = s.bind("alice@localhost/a", 1).await;
    s.send(
        &alice,
        "<presence xmlns='jabber:client'><priority>1</priority></presence>",
    )
    .await;
    s.send(
        &alice,
        "<iq xmlns='jabber:client' type='set' id='r1'><query xmlns='jabber:iq:roster'>\
         <item jid='bob@localhost'/></query></iq>",
    )
    .await;
    s.send(
        &alice,
        "<presence xmlns='jabber:client' type='unavailable'/>",
    )
    .await;
    // Unavailable again: nothing was broadcast, no event.
    s.send(
        &alice,
        "<presence xmlns='jabber:client' type='unavailable'/>",
    )
    .await;
    s.send(
        &alice,
        "<presence xmlns='jabber:client'><show>away</show></presence>",
    )
    .await;
    s.end(&alice, 1).await;
    assert_eq!(
        *events.lock().unwrap(),
        [
            "bound alice@localhost/a",
            "available alice@localhost/a",
            "roster alice@localhost: bob@localhost absent -> none",
            "unavailable alice@localhost/a",
            "available alice@localhost/a",
            "ended alice@localhost/a (last presence: <presence xmlns='jabber:client' \
             from='alice@localhost/a'><show>away</show></presence>)",
        ]
    );
    // The session saw its own broadcasts and the roster result (it asked for no roster, so no
    // push, RFC 6121 §2.1.6).
    assert_eq!(
        received(&mut inbox),
        [
            "<presence from='alice@localhost/a' to='alice@localhost/a'><priority>1</priority></presence>",
            "<iq id='r1' to='alice@localhost/a' type='result'/>",
            "<presence type='unavailable' from='alice@localhost/a' to='alice@localhost/a'/>",
            "<presence from='alice@localhost/a' to='alice@localhost/a'><show>away</show></presence>",
        ]
    );
}

/// Whatever goes to a local session passes the one outbound path: an outbound hook that drops
/// everything for one session sees, and stops, the router's deliveries to its full JID (RFC 6121
/// §8.5.3.1) and its bare JID (§8.5.2.1.1), the server's IQ results (RFC 6120 §8.2.3) and
/// errors (§8.3), presence broadcasts and probe answers (RFC 6121 §4.2.2, §4.3.2, §4.4.2), roster
/// results and pushes (§2.1.6) and the offline flush (XEP-0160 §2). A message it dropped counts as
/// delivered: it is not stored offline again and the sender gets no error.
#[tokio::test]
async fn an_outbound_hook_sees_and_can_drop_every_path() {
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let s = setup(Probe {
        quiet: Some(dropped.clone()),
        ..Probe::default()
    })
    .await;
    for (user, contact) in [("alice", "bob@localhost"), ("bob", "alice@localhost")] {
        let item = RosterItem {
            subscription: Subscription::Both,
            ..RosterItem::new(contact)
        };
        s.stores
            .rosters
            .put_item(user, "localhost", &item)
            .await
            .unwrap();
    }
    let (bob, mut bob_inbox) = s.bind("bob@localhost/b", 1).await;
    s.send(&bob, "<presence xmlns='jabber:client'/>").await;
    // Alice is offline: stored (XEP-0160).
    s.send(
        &bob,
        "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='m1'><body>stored</body></message>",
    )
    .await;
    assert_eq!(
        s.stores.offline.count("alice", "localhost").await.unwrap(),
        1
    );

    let (quiet, mut quiet_inbox) = s.bind("alice@localhost/quiet", 2).await;
    s.send(
        &quiet,
        "<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    s.send(
        &quiet,
        "<presence xmlns='jabber:client'><priority>1</priority></presence>",
    )
    .await;
    // The flush handed the stored message over: it is not kept for later.
    assert_eq!(
        s.stores.offline.count("alice", "localhost").await.unwrap(),
        0
    );
    s.send(
        &bob,
        "<message xmlns='jabber:client' to='alice@localhost' type='chat' id='m2'><body>bare</body></message>",
    )
    .await;
    s.send(
        &bob,
        "<message xmlns='jabber:client' to='alice@localhost/quiet' type='chat' id='m3'><body>full</body></message>",
    )
    .await;
    s.send(
        &bob,
        "<presence xmlns='jabber:client'><show>away</show></presence>",
    )
    .await;
    s.send(
        &quiet,
        "<iq xmlns='jabber:client' type='set' id='r2'><query xmlns='jabber:iq:roster'>\
         <item jid='carol@localhost'/></query></iq>",
    )
    .await;
    s.send(
        &quiet,
        "<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    s.send(
        &quiet,
        "<message xmlns='jabber:client' to='nobody@localhost' id='m4'><body>bounce</body></message>",
    )
    .await;

    assert_eq!(received(&mut quiet_inbox), Vec::<String>::new());
    let dropped = dropped.lock().unwrap().clone();
    let stored = dropped
        .iter()
        .position(|x| x.contains("<body>stored</body>"))
        .map(|i| mask_stamp(&dropped[i]));
    assert_eq!(
        stored.as_deref(),
        Some(
            "<message to='alice@localhost' type='chat' id='m1' from='bob@localhost/b'><body>stored</body>\
             <delay xmlns='urn:xmpp:delay' from='localhost' stamp='*'/></message>"
        )
    );
    let others: Vec<&str> = dropped
        .iter()
        .filter(|x| !x.contains("<body>stored</body>"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        others,
        [
            // The roster result (a server reply).
            "<iq id='r1' to='alice@localhost/quiet' type='result'><query xmlns='jabber:iq:roster' ver='1'>\
             <item jid='bob@localhost' subscription='both'/></query></iq>",
            // Its own initial presence, broadcast to the account's resources.
            "<presence from='alice@localhost/quiet' to='alice@localhost/quiet'><priority>1</priority></presence>",
            // Bob's presence, answering the probe.
            "<presence from='bob@localhost/b' to='alice@localhost/quiet'/>",
            // To the bare JID, to the full JID.
            "<message to='alice@localhost' type='chat' id='m2' from='bob@localhost/b'><body>bare</body></message>",
            "<message to='alice@localhost/quiet' type='chat' id='m3' from='bob@localhost/b'><body>full</body></message>",
            // Bob's presence broadcast.
            "<presence from='bob@localhost/b' to='alice@localhost'><show>away</show></presence>",
            // The roster push and the set's result.
            "<iq type='set' id='push1' to='alice@localhost/quiet'><query xmlns='jabber:iq:roster' ver='2'>\
             <item jid='carol@localhost' subscription='none'/></query></iq>",
            "<iq id='r2' to='alice@localhost/quiet' type='result'/>",
            // The server's answer to a ping (no 'to', so no 'from': RFC 6120 §8.1.2.1), a bounce.
            "<iq id='p1' to='alice@localhost/quiet' type='result'/>",
            "<message id='m4' to='alice@localhost/quiet' from='nobody@localhost' type='error'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        ]
    );
    // Dropped is delivered: nothing stored again, no error to bob, who saw only Alice's
    // presence (RFC 6121 §4.2.2) and his own broadcasts.
    assert_eq!(
        s.stores.offline.count("alice", "localhost").await.unwrap(),
        0
    );
    assert_eq!(
        received(&mut bob_inbox),
        [
            "<presence from='bob@localhost/b' to='bob@localhost/b'/>",
            "<presence from='alice@localhost/quiet' to='bob@localhost'><priority>1</priority></presence>",
            "<presence from='bob@localhost/b' to='bob@localhost/b'><show>away</show></presence>",
        ]
    );
}

/// `xml` with the value of its (one) `stamp` attribute replaced by `*`.
fn mask_stamp(xml: &str) -> String {
    let start = xml.find("stamp='").unwrap() + "stamp='".len();
    let end = start + xml[start..].find('\'').unwrap();
    format!("{}*{}", &xml[..start], &xml[end..])
}

/// XEP-0030 §4: the server's disco#items lists its services, the component domains: those
/// registered by modules at start (the test's conference, the pubsub service) and those attached
/// at run time (XEP-0114), not those detached.
#[tokio::test]
async fn disco_items_lists_the_component_domains() {
    let s = setup(Probe {
        conference: true,
        ..Probe::default()
    })
    .await;
    let gateway: Arc<dyn ComponentHandler> = Arc::new(Silent);
    let components = s.router.components();
    components.attach("gw.localhost", gateway.clone()).unwrap();
    components.attach("old.localhost", gateway.clone()).unwrap();
    assert!(components.detach("old.localhost", &gateway));
    let (alice, mut inbox) = s.bind("alice@localhost/a", 1).await;
    s.send(
        &alice,
        "<iq xmlns='jabber:client' type='get' id='d1' to='localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    )
    .await;
    // An account without PEP nodes has no items.
    s.send(
        &alice,
        "<iq xmlns='jabber:client' type='get' id='d2' to='bob@localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    )
    .await;
    assert_eq!(
        received(&mut inbox),
        [
            "<iq id='d1' to='alice@localhost/a' from='localhost' type='result'>\
             <query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='conference.localhost'/><item jid='gw.localhost'/>\
             <item jid='pubsub.localhost'/></query></iq>",
            "<iq id='d2' to='alice@localhost/a' from='bob@localhost' type='result'>\
             <query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        ]
    );
}

/// Keeps what it receives.
struct Keep(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl ComponentHandler for Keep {
    async fn on_stanza(&self, _ctx: &Context, stanza: Element) {
        self.0.lock().unwrap().push(stanza.to_xml());
    }
}

/// RFC 6121 §3.1.2: a subscription request is refused only when it "cannot be locally delivered
/// or remotely routed"; one to a JID at a component domain is routed to the component, stamped
/// with the user's bare JID. Once the component is gone, the domain is unreachable again.
#[tokio::test]
async fn a_subscription_to_a_component_jid_reaches_the_component() {
    let s = setup(Probe::default()).await;
    let kept = Arc::new(Mutex::new(Vec::new()));
    let muc: Arc<dyn ComponentHandler> = Arc::new(Keep(kept.clone()));
    s.router
        .components()
        .attach("muc.localhost", muc.clone())
        .unwrap();
    let (alice, mut inbox) = s.bind("alice@localhost/a", 1).await;
    let subscribe = "<presence xmlns='jabber:client' type='subscribe' to='room@muc.localhost'/>";
    s.send(&alice, subscribe).await;
    assert_eq!(
        *kept.lock().unwrap(),
        [
            "<presence xmlns='jabber:client' type='subscribe' to='room@muc.localhost' from='alice@localhost'/>"
        ]
    );
    assert_eq!(received(&mut inbox), Vec::<String>::new());
    assert!(s.router.components().detach("muc.localhost", &muc));
    s.send(&alice, subscribe).await;
    let got = received(&mut inbox);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("<remote-server-not-found "), "{got:?}");
}
