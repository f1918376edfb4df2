//! The module API seen from the default modules, over a real router, registry and SQLite store,
//! without sockets: the event bus, the one outbound path, component domains in disco.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use starling_module_api::{
    Context, Event, EventListener, Module, Registrar, SessionCommand, SessionHandle,
    SessionRegistry,
};
use starling_modules::{ModuleOptions, default_modules};
use starling_proto::{FullJid, ns};
use starling_router::{LocalRegistry, Router};
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
        };
        self.0.lock().unwrap().push(line);
    }
}

/// The test's own module: whatever listeners and hooks a test gives it, registered after the
/// default modules.
#[derive(Default)]
struct Probe {
    events: Option<Arc<Mutex<Vec<String>>>>,
}

impl Module for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        if let Some(events) = &self.events {
            reg.events(Arc::new(Recorder(events.clone())));
        }
    }
}

struct Setup {
    router: Arc<Router>,
    registry: Arc<dyn SessionRegistry>,
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
    let mut modules = default_modules(&ModuleOptions::default());
    modules.push(Arc::new(probe));
    let router = Router::new(
        vec!["localhost".into()],
        registry.clone(),
        stores.clone(),
        modules,
    );
    Setup {
        router,
        registry,
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
        let mut stanza = starling_stream::parse_stored(xml).unwrap();
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
