//! The conference service: its domains, the live rooms' queues, and what it answers itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use async_trait::async_trait;
use starling_module_api::mam::writer::ArchiveWriter;
use starling_module_api::{
    ComponentDomain, ComponentHandler, Context, Event, EventListener, Module, Registrar, random_id,
};
use starling_proto::{
    BareJid, Element, FullJid, Jid, StanzaError, StanzaErrorCondition, StanzaKind, error_reply,
    iq_result, ns,
};
use starling_storage::{NewRoomArchived, RoomKey};
use tokio::sync::mpsc;

use crate::settings::{Settings, SettingsLimits};
use crate::{NS_MUC, NS_UNIQUE, room};

/// The service's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Defaults and bounds of room settings (occupants, history).
    pub settings: SettingsLimits,
    /// Most rooms of one service a user may own (0: no limit); beyond it, creating a room is
    /// `<not-allowed/>` (XEP-0045 §10.1.1).
    pub max_rooms_per_user: u32,
    /// Messages waiting for one room before new ones are refused with
    /// `<resource-constraint/>` (presence is never refused).
    pub room_queue: usize,
    /// Messages to all or private messages one occupant may send per second on average, and
    /// in a burst (0: no limit); beyond, `<resource-constraint/>`.
    pub occupant_rate: Rate,
    /// Messages to all a room takes per second on average, and in a burst (0: no limit);
    /// beyond, `<resource-constraint/>`.
    pub room_rate: Rate,
}

/// A rate limit: `per_second` on average, `burst` at once; `per_second = 0` is none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            settings: SettingsLimits {
                max_users: 1000,
                history_length: 20,
                max_history: 100,
                archiving: true,
            },
            max_rooms_per_user: 100,
            room_queue: 1024,
            occupant_rate: Rate {
                per_second: 10,
                burst: 30,
            },
            room_rate: Rate {
                per_second: 200,
                burst: 400,
            },
        }
    }
}

/// How the service is set up.
#[derive(Clone, Debug, Default)]
pub struct MucOptions {
    /// The service's domains (`conference.example.org`), each a component domain.
    pub domains: Vec<String>,
    pub limits: Limits,
    /// The virtual hosts whose accounts may not create rooms (anonymous hosts: their names are
    /// random and go with the session). They may join rooms others created.
    pub no_create_hosts: Vec<String>,
}

/// A live room as the service reaches it.
struct RoomQueue {
    tx: mpsc::UnboundedSender<room::Command>,
    /// Messages queued and not yet handled.
    messages: Arc<AtomicUsize>,
}

/// What the service and its rooms' tasks share.
pub struct Shared {
    pub(crate) options: MucOptions,
    rooms: Mutex<HashMap<RoomKey, RoomQueue>>,
    /// Which rooms each occupant session is in (for [`Event::Ended`]).
    occupancy: Mutex<HashMap<FullJid, Vec<RoomKey>>>,
    /// The public temporary rooms, with their names, for the service's disco#items (persistent
    /// ones are read from the store).
    directory: Mutex<BTreeMap<RoomKey, String>>,
    /// Archives the messages of every room, many in one write; started with the first.
    writer: OnceLock<ArchiveWriter<NewRoomArchived>>,
    /// How many live temporary rooms each user created (persistent ones are counted in the
    /// store), for `max_rooms_per_user`.
    temporary: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a single map operation: a poisoned map is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The archive writer of every room.
    pub(crate) fn writer(&self, ctx: &Context) -> &ArchiveWriter<NewRoomArchived> {
        self.writer
            .get_or_init(|| ArchiveWriter::spawn(ctx.stores.room_archive.clone()))
    }

    /// `session` is an occupant of `key` from now on.
    pub(crate) fn joined(&self, session: &FullJid, key: &RoomKey) {
        let mut map = lock(&self.occupancy);
        let rooms = map.entry(session.clone()).or_default();
        if !rooms.contains(key) {
            rooms.push(key.clone());
        }
    }

    /// `session` is no longer an occupant of `key`.
    pub(crate) fn left(&self, session: &FullJid, key: &RoomKey) {
        let mut map = lock(&self.occupancy);
        if let Some(rooms) = map.get_mut(session) {
            rooms.retain(|k| k != key);
            if rooms.is_empty() {
                map.remove(session);
            }
        }
    }

    /// One more (`true`) or one less temporary room created by `bare`.
    pub(crate) fn count_temporary(&self, bare: &str, more: bool) {
        let mut map = lock(&self.temporary);
        let n = map.entry(bare.to_owned()).or_default();
        if more {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(bare);
            }
        }
    }

    /// How many live temporary rooms `bare` created.
    pub(crate) fn temporary_rooms_of(&self, bare: &str) -> usize {
        lock(&self.temporary).get(bare).copied().unwrap_or(0)
    }

    /// Lists the temporary room in the directory (`Some(name)`), or not.
    pub(crate) fn list(&self, key: &RoomKey, name: Option<String>) {
        let mut dir = lock(&self.directory);
        match name {
            Some(n) => {
                dir.insert(key.clone(), n);
            }
            None => {
                dir.remove(key);
            }
        }
    }

    /// The room's task ends if nothing waits for it: called by the task itself, which goes on
    /// when this returns false.
    pub(crate) fn close_room(
        &self,
        key: &RoomKey,
        rx: &mpsc::UnboundedReceiver<room::Command>,
    ) -> bool {
        // Every send happens under this lock, so nothing can arrive between the check and the
        // removal.
        let mut rooms = lock(&self.rooms);
        if !rx.is_empty() {
            return false;
        }
        rooms.remove(key);
        drop(rooms);
        lock(&self.directory).remove(key);
        true
    }

    /// Hands `cmd` to the room's task, starting it if the room is not live. A message refused
    /// for the room's full queue is handed back.
    fn dispatch(
        self: &Arc<Self>,
        ctx: &Context,
        key: RoomKey,
        cmd: room::Command,
    ) -> Result<(), room::Command> {
        let is_message = cmd.is_message();
        let mut rooms = lock(&self.rooms);
        if let Some(q) = rooms.get(&key) {
            if is_message {
                if q.messages.load(Ordering::Relaxed) >= self.options.limits.room_queue {
                    return Err(cmd);
                }
                q.messages.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(mpsc::error::SendError(cmd)) = q.tx.send(cmd) {
                // The task is gone without removing itself (it panicked): start it again.
                rooms.remove(&key);
                drop(rooms);
                return self.dispatch(ctx, key, cmd);
            }
            return Ok(());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let messages = Arc::new(AtomicUsize::new(usize::from(is_message)));
        // Cannot fail: the receiver is alive.
        let _ = tx.send(cmd);
        rooms.insert(
            key.clone(),
            RoomQueue {
                tx,
                messages: messages.clone(),
            },
        );
        drop(rooms);
        tokio::spawn(room::run(ctx.clone(), self.clone(), key, rx, messages));
        Ok(())
    }
}

/// The multi-user chat module.
pub struct Muc {
    service: Arc<Service>,
}

impl Muc {
    pub fn new(options: MucOptions) -> Arc<Muc> {
        Arc::new(Muc {
            service: Arc::new(Service {
                shared: Arc::new(Shared {
                    options,
                    rooms: Mutex::default(),
                    occupancy: Mutex::default(),
                    directory: Mutex::default(),
                    writer: OnceLock::new(),
                    temporary: Mutex::default(),
                }),
            }),
        })
    }
}

impl Module for Muc {
    fn name(&self) -> &'static str {
        "muc"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        for domain in &self.service.shared.options.domains {
            reg.component(
                ComponentDomain::Domain(domain.clone()),
                self.service.clone(),
            );
        }
        reg.events(self.service.clone());
    }
}

/// The handler of every stanza to a service's domain or a JID at it.
pub struct Service {
    shared: Arc<Shared>,
}

#[async_trait]
impl ComponentHandler for Service {
    async fn on_stanza(&self, ctx: &Context, stanza: Element) {
        let Some(to) = stanza.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        let Some(node) = to.node() else {
            self.service_stanza(ctx, &stanza, &to).await;
            return;
        };
        let key = RoomKey::new(to.domain().as_str(), node.as_str());
        // A message to all holds its sender until the room archived and reflected it: the
        // sender's stream acknowledges it only then (XEP-0198), and a busy room slows its own
        // senders rather than growing its queue.
        let to_all = stanza.name() == "message"
            && stanza.attr("type") == Some("groupchat")
            && to.resource().is_none();
        let (done, handled) = if to_all {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let dispatched = self
            .shared
            .dispatch(ctx, key, room::Command::Stanza(stanza, done));
        if let Err(room::Command::Stanza(stanza, _)) = dispatched {
            // The room's queue is full: it is too busy for more messages now.
            if stanza.attr("type") != Some("error") {
                let e = StanzaError::new(StanzaErrorCondition::ResourceConstraint)
                    .with_text("the room is too busy; try again later");
                ctx.router.route(error_reply(&stanza, &e)).await;
            }
        } else if let Some(handled) = handled {
            // Dropped unanswered only if the room's task ended: nothing to wait for then.
            let _ = handled.await;
        }
    }
}

#[async_trait]
impl EventListener for Service {
    async fn on_event(&self, ctx: &Context, event: &Event) {
        match event {
            Event::Ended(entry) => {
                let rooms = lock(&self.shared.occupancy).remove(&entry.jid);
                for key in rooms.into_iter().flatten() {
                    let cmd = room::Command::Ended {
                        jid: entry.jid.clone(),
                        id: entry.handle.id(),
                    };
                    let _ = self.shared.dispatch(ctx, key, cmd);
                }
            }
            Event::AccountDeleted(bare) => self.forget(ctx, bare).await,
            _ => {}
        }
    }
}

impl Service {
    /// XEP-0045 §6.1, §6.3, §10.1.4; anything else to the domain is refused.
    async fn service_stanza(&self, ctx: &Context, stanza: &Element, to: &Jid) {
        let refuse = |c| error_reply(stanza, &StanzaError::new(c));
        let reply = match (StanzaKind::of(stanza), stanza.attr("type")) {
            (_, Some("error" | "result")) => return,
            (Some(StanzaKind::Presence), _) => return,
            (Some(StanzaKind::Iq), Some("get")) if to.resource().is_none() => {
                let payload = stanza.children().next();
                match payload.map(|p| (p.name(), p.ns())) {
                    Some(("query", ns::DISCO_INFO))
                        if payload.is_some_and(|p| p.attr("node").is_none()) =>
                    {
                        iq_result(stanza).with_child(service_info())
                    }
                    Some(("query", ns::DISCO_ITEMS))
                        if payload.is_some_and(|p| p.attr("node").is_none()) =>
                    {
                        match self.directory(ctx, to.domain().as_str()).await {
                            Ok(items) => iq_result(stanza).with_child(items),
                            Err(()) => refuse(StanzaErrorCondition::InternalServerError),
                        }
                    }
                    // XEP-0199 §4.2: the service answers pings to its domain.
                    Some(("ping", ns::PING)) => iq_result(stanza),
                    // §10.1.4: a room name nobody uses.
                    Some(("unique", NS_UNIQUE)) => iq_result(stanza).with_child(
                        Element::new("unique", NS_UNIQUE).with_text(random_id().to_lowercase()),
                    ),
                    Some(("query", ns::DISCO_INFO | ns::DISCO_ITEMS)) => {
                        refuse(StanzaErrorCondition::ItemNotFound)
                    }
                    _ => refuse(StanzaErrorCondition::ServiceUnavailable),
                }
            }
            _ => refuse(StanzaErrorCondition::ServiceUnavailable),
        };
        ctx.router.route(reply).await;
    }

    /// §6.3: the public rooms, persistent (from the store) and temporary (live), by JID.
    async fn directory(&self, ctx: &Context, service: &str) -> Result<Element, ()> {
        let stored = ctx.stores.muc.rooms(service).await.map_err(|e| {
            tracing::error!(error = %e, "listing rooms failed");
        })?;
        let mut rooms: BTreeMap<String, String> = BTreeMap::new();
        for r in stored {
            let s = Settings::from_stored(&r.config, &self.shared.options.limits.settings);
            if s.public {
                rooms.insert(r.key.room, s.name);
            }
        }
        for (k, name) in lock(&self.shared.directory).iter() {
            if k.service == service {
                rooms.insert(k.room.clone(), name.clone());
            }
        }
        let mut query = Element::new("query", ns::DISCO_ITEMS);
        for (room, name) in rooms {
            let name = if name.is_empty() { room.clone() } else { name };
            query.append_child(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", format!("{room}@{service}"))
                    .with_attr("name", name),
            );
        }
        Ok(query)
    }

    /// An account was deleted: its affiliations go, from the store and from the live rooms;
    /// rooms left without an owner are destroyed (by their task).
    async fn forget(&self, ctx: &Context, bare: &BareJid) {
        let jid = bare.to_string();
        let forgotten = match ctx.stores.muc.forget_jid(&jid).await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, %jid, "forgetting a deleted account's affiliations failed");
                return;
            }
        };
        let live: Vec<RoomKey> = lock(&self.shared.rooms).keys().cloned().collect();
        let mut keys: Vec<RoomKey> = live.into_iter().chain(forgotten.ownerless).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let _ = self
                .shared
                .dispatch(ctx, key, room::Command::Forget(bare.clone()));
        }
    }
}

/// The service's disco#info (XEP-0045 §6.1).
fn service_info() -> Element {
    let mut q = Element::new("query", ns::DISCO_INFO).with_child(
        Element::new("identity", ns::DISCO_INFO)
            .with_attr("category", "conference")
            .with_attr("type", "text")
            .with_attr("name", "Chatrooms"),
    );
    // XEP-0486 §3: rooms have avatars (vcard-temp).
    for f in [
        ns::DISCO_INFO,
        ns::DISCO_ITEMS,
        NS_MUC,
        NS_UNIQUE,
        ns::PING,
        ns::VCARD,
    ] {
        q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
    }
    q
}
