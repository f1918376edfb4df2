//! One room: its state and the task that owns it.
//!
//! Every stanza to the room (`room@service`) or to one of its occupants (`room@service/nick`)
//! is handled here, one at a time, in the order it arrived: [`Room::stanza`] dispatches
//! presence to [`occupants`], messages to [`messages`], IQs to [`iq`].

mod archive;
mod hats;
mod iq;
mod messages;
mod occupants;
mod register;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use starling_module_api::{Context, SessionEntry, SessionId};
use starling_proto::{
    BareJid, Element, ErrorType, FullJid, Jid, StanzaError, StanzaErrorCondition, error_reply, ns,
};
use starling_storage::{RoomAffiliation, RoomKey, RoomSubject, StorageError};
use tokio::sync::{mpsc, oneshot};

use crate::affiliation::{Affiliation, Role};
use crate::settings::Settings;
use crate::{NS_MUC, Shared};

use messages::HistoryEntry;

/// What a room's task is handed.
pub(crate) enum Command {
    /// A stanza to the room or one of its occupants, `from` stamped; `done` is told when it is
    /// handled (a message to all: archived and reflected).
    Stanza(Element, Option<oneshot::Sender<()>>),
    /// The session `jid` (registry id `id`) ended: it leaves.
    Ended { jid: FullJid, id: SessionId },
    /// The account was deleted: its affiliation goes (already gone from the store).
    Forget(BareJid),
}

impl Command {
    pub(crate) fn is_message(&self) -> bool {
        matches!(self, Command::Stanza(s, _) if s.name() == "message")
    }
}

/// One session of an occupant: where the room's stanzas for it go.
pub(crate) struct Session {
    jid: FullJid,
    jid_str: String,
    /// The registry entry of a local session (reached through the outbound path); `None` for
    /// one on another server (routed).
    local: Option<SessionEntry>,
}

/// An occupant: a nick in the room, held by one bare JID from one or more sessions
/// (XEP-0045 §7.2.1: several sessions of one user may share a nick).
pub(crate) struct Occupant {
    nick: String,
    bare: BareJid,
    sessions: Vec<Session>,
    role: Role,
    affiliation: Affiliation,
    /// What the occupant's last presence carried (show, status, caps, …), broadcast with it.
    payload: Vec<Element>,
    /// XEP-0421 occupant id.
    occupant_id: String,
    /// What the occupant may still send (messages to all, private messages).
    bucket: Bucket,
}

/// A token bucket: `tokens` messages may go now; it refills at the rate's pace up to its burst.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    pub(crate) fn full(rate: crate::Rate) -> Bucket {
        Bucket {
            tokens: f64::from(rate.burst.max(1)),
            at: std::time::Instant::now(),
        }
    }

    /// Takes one message's worth if there is one (always, without a limit).
    pub(crate) fn take(&mut self, rate: crate::Rate) -> bool {
        if rate.per_second == 0 {
            return true;
        }
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * f64::from(rate.per_second);
        self.tokens = (self.tokens + refill).min(f64::from(rate.burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Occupant {
    /// The real JID shown to those who may see it: the first session's.
    fn real_jid(&self) -> &str {
        self.sessions.first().map_or("", |s| s.jid_str.as_str())
    }
}

/// A room's state.
pub(crate) struct Room {
    ctx: Context,
    shared: Shared,
    key: RoomKey,
    /// `room@service`.
    jid: String,
    settings: Settings,
    subject: Option<RoomSubject>,
    /// Affiliations other than `none`, by bare JID; written through to the store while the
    /// room is persistent.
    affiliations: BTreeMap<String, RoomAffiliation>,
    occupants: BTreeMap<String, Occupant>,
    /// Which nick each occupant session holds.
    sessions: HashMap<FullJid, String>,
    history: VecDeque<HistoryEntry>,
    /// Created and not yet configured (XEP-0045 §10.1.1): only owners may enter.
    locked: bool,
    /// In the store.
    stored: bool,
    /// Destroyed (§10.9): the task forgets it.
    destroyed: bool,
    /// What the room may still take (messages to all).
    bucket: Bucket,
    /// Who created it, while it is a temporary room counted for them (`max_rooms_per_user`).
    counted: Option<String>,
}

impl Drop for Room {
    fn drop(&mut self) {
        if let Some(creator) = self.counted.take() {
            self.shared.count_temporary(&creator, false);
        }
    }
}

/// The room's task: loads the room, handles what it is handed, ends when the room has nothing
/// left to keep in memory.
pub(crate) async fn run(
    ctx: Context,
    shared: Shared,
    key: RoomKey,
    mut rx: mpsc::UnboundedReceiver<Command>,
    messages: Arc<AtomicUsize>,
) {
    let (mut room, load_failed) = match Room::load(&ctx, &shared, &key).await {
        Ok(r) => (r, false),
        Err(e) => {
            tracing::error!(error = %e, room = ?key, "loading the room failed");
            (None, true)
        }
    };
    while let Some(cmd) = rx.recv().await {
        if cmd.is_message() {
            messages.fetch_sub(1, Ordering::Relaxed);
        }
        match &mut room {
            Some(r) => r.handle(cmd).await,
            None if load_failed => absent_failed(&ctx, cmd).await,
            None => room = Room::absent(&ctx, &shared, &key, cmd).await,
        }
        if let Some(r) = &room
            && (r.destroyed || r.vanishes().await)
        {
            room = None;
        }
        if room.as_ref().is_none_or(Room::idle) && shared.close_room(&key, &rx) {
            return;
        }
    }
}

/// The room could not be read: everything that asks for an answer gets
/// `<internal-server-error/>`.
async fn absent_failed(ctx: &Context, cmd: Command) {
    if let Command::Stanza(s, _) = cmd
        && !matches!(s.attr("type"), Some("error" | "result" | "unavailable"))
    {
        let e = StanzaError::new(StanzaErrorCondition::InternalServerError);
        ctx.router.route(error_reply(&s, &e)).await;
    }
}

/// A refusal with a text saying why.
pub(crate) fn error(c: StanzaErrorCondition, text: &str) -> StanzaError {
    StanzaError::new(c).with_text(text.to_owned())
}

/// SHA-1 in lowercase hex (XEP-0153 §4.1 photo hashes, the hats list's hash).
pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// XEP-0421 §5: an occupant id that is the same for a bare JID in a room whatever its nick or
/// session, and tells nothing of the JID: HMAC-SHA-256 of the bare JID keyed with the room's
/// secret, 128 bits, base64.
fn occupant_id(key: &str, bare: &str) -> String {
    use base64::Engine as _;
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_bytes()) else {
        // HMAC takes keys of any length.
        return String::new();
    };
    mac.update(bare.as_bytes());
    let digest = mac.finalize().into_bytes();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(&digest[..16])
}

/// The error types of a failed delivery: an occupant whose session bounces the room's stanzas
/// with one of these is gone.
fn is_delivery_failure(e: &StanzaError) -> bool {
    use StanzaErrorCondition as C;
    e.error_type == ErrorType::Cancel
        && matches!(
            e.condition,
            C::Gone
                | C::ItemNotFound
                | C::RecipientUnavailable
                | C::RemoteServerNotFound
                | C::RemoteServerTimeout
                | C::ServiceUnavailable
        )
}

impl Room {
    /// The room as stored, `None` if it is not.
    async fn load(
        ctx: &Context,
        shared: &Shared,
        key: &RoomKey,
    ) -> Result<Option<Room>, StorageError> {
        let Some(stored) = ctx.stores.muc.room(key).await? else {
            return Ok(None);
        };
        let affiliations = ctx.stores.muc.affiliations(key, None).await?;
        let settings = Settings::from_stored(&stored.config, &shared.options.limits.settings);
        let mut room = Room::new(ctx, shared, key, settings);
        room.subject = stored.subject;
        room.stored = true;
        room.affiliations = affiliations
            .into_iter()
            .map(|a| (a.jid.clone(), a))
            .collect();
        room.load_history().await?;
        room.list();
        Ok(Some(room))
    }

    fn new(ctx: &Context, shared: &Shared, key: &RoomKey, settings: Settings) -> Room {
        Room {
            ctx: ctx.clone(),
            shared: shared.clone(),
            jid: format!("{}@{}", key.room, key.service),
            key: key.clone(),
            settings,
            subject: None,
            affiliations: BTreeMap::new(),
            occupants: BTreeMap::new(),
            sessions: HashMap::new(),
            history: VecDeque::new(),
            locked: false,
            stored: false,
            destroyed: false,
            bucket: Bucket::full(shared.options.limits.room_rate),
            counted: None,
        }
    }

    /// A stanza to a room that does not exist: an entering presence creates it (XEP-0045
    /// §10.1.1), everything else that asks for an answer gets `<item-not-found/>` (§6.4, §7.2.1).
    async fn absent(ctx: &Context, shared: &Shared, key: &RoomKey, cmd: Command) -> Option<Room> {
        let Command::Stanza(s, _) = cmd else {
            return None;
        };
        let refuse = |c: StanzaErrorCondition| {
            let mut e = error_reply(&s, &StanzaError::new(c));
            if s.name() == "presence" {
                e.append_child(Element::new("x", NS_MUC));
            }
            e
        };
        let ty = s.attr("type");
        if matches!(ty, Some("error" | "result" | "unavailable")) {
            return None;
        }
        let to = s.attr("to").and_then(|t| Jid::new(t).ok());
        let nick = to
            .as_ref()
            .and_then(|t| t.resource())
            .map(|r| r.as_str().to_owned());
        let creator = s.attr("from").and_then(|f| FullJid::new(f).ok());
        let (Some(nick), Some(creator), "presence", None) = (nick, creator, s.name(), ty) else {
            if s.name() == "presence" {
                // Presence of another type to a room that is not there: nothing to answer.
                if ty.is_some() {
                    return None;
                }
                ctx.router
                    .route(refuse(StanzaErrorCondition::JidMalformed))
                    .await;
            } else {
                ctx.router
                    .route(refuse(StanzaErrorCondition::ItemNotFound))
                    .await;
            }
            return None;
        };
        if let Err(e) = may_create(ctx, shared, key, &creator).await {
            let mut reply = error_reply(&s, &e);
            reply.append_child(Element::new("x", NS_MUC));
            ctx.router.route(reply).await;
            return None;
        }
        let settings = Settings::new(&shared.options.limits.settings, "");
        let mut room = Room::new(ctx, shared, key, settings);
        let bare = creator.to_bare().to_string();
        shared.count_temporary(&bare, true);
        room.counted = Some(bare.clone());
        room.affiliations.insert(
            bare.clone(),
            RoomAffiliation {
                jid: bare,
                affiliation: Affiliation::Owner.as_str().to_owned(),
                nick: None,
                reason: None,
            },
        );
        // §10.1.1: a client that does not speak MUC (no <x/>) gets an instant room at once;
        // one that does configures it first, or accepts the defaults (§10.1.2).
        room.locked = s.get_child("x", NS_MUC).is_some();
        room.join(creator, nick, s, true).await;
        room.list();
        Some(room)
    }

    /// Whether the task may end: nobody is in the room, and a persistent room has no history
    /// that only memory holds (an archived one reloads it).
    fn idle(&self) -> bool {
        self.occupants.is_empty()
            && (!self.settings.persistent || self.settings.archiving || self.history.is_empty())
    }

    /// A temporary room whose last occupant left is gone (XEP-0045 §10.1), its archive with
    /// it; the next presence to its name creates a new one.
    async fn vanishes(&self) -> bool {
        if self.settings.persistent || !self.occupants.is_empty() {
            return false;
        }
        if let Err(e) = self.ctx.stores.room_archive.delete_room(&self.key).await {
            tracing::error!(error = %e, room = %self.jid, "deleting a temporary room's archive failed");
        }
        self.shared.list(&self.key, None);
        true
    }

    /// Keeps the service's directory of temporary public rooms true.
    fn list(&self) {
        let listed = self.settings.public && !self.settings.persistent && !self.locked;
        self.shared
            .list(&self.key, listed.then(|| self.settings.name.clone()));
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Stanza(s, done) => {
                self.stanza(s).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Command::Ended { jid, id } => {
                let ours = self
                    .occupant_session(&jid)
                    .is_some_and(|s| s.local.as_ref().is_none_or(|e| e.handle.id() == id));
                if ours {
                    self.session_gone(&jid, None).await;
                }
            }
            Command::Forget(bare) => self.forget(&bare).await,
        }
    }

    async fn stanza(&mut self, s: Element) {
        let Some(from) = s.attr("from").and_then(|f| Jid::new(f).ok()) else {
            return;
        };
        let nick = s
            .attr("to")
            .and_then(|t| Jid::new(t).ok())
            .and_then(|t| t.resource().map(|r| r.as_str().to_owned()));
        match (s.name(), nick) {
            ("presence", Some(nick)) => self.presence(&from, nick, s).await,
            ("presence", None) => self.presence_to_room(&from, s).await,
            ("message", None) => self.room_message(&from, s).await,
            ("message", Some(nick)) => self.private_message(&from, nick, s).await,
            ("iq", None) => self.room_iq(&from, s).await,
            ("iq", Some(nick)) => self.occupant_iq(&from, nick, s).await,
            _ => {}
        }
    }

    /// `room@service/nick`.
    fn occupant_jid(&self, nick: &str) -> String {
        format!("{}/{nick}", self.jid)
    }

    /// The session `jid` if it is an occupant's.
    fn occupant_session(&self, jid: &FullJid) -> Option<&Session> {
        let nick = self.sessions.get(jid)?;
        self.occupants
            .get(nick)?
            .sessions
            .iter()
            .find(|s| s.jid == *jid)
    }

    /// The occupant whose session `from` is.
    fn sender(&self, from: &Jid) -> Option<&Occupant> {
        let full = FullJid::try_from(from.clone()).ok()?;
        self.occupants.get(self.sessions.get(&full)?)
    }

    /// `bare`'s affiliation with the room.
    fn affiliation_of(&self, bare: &str) -> Affiliation {
        self.affiliations
            .get(bare)
            .and_then(|a| Affiliation::parse(&a.affiliation))
            .unwrap_or(Affiliation::None)
    }

    /// Sends `stanza` to one session of an occupant.
    async fn send(&self, to: &Session, mut stanza: Element) {
        stanza.set_attr("to", to.jid_str.as_str());
        match &to.local {
            Some(entry) => {
                // A session that cannot take it is going away: its end removes it.
                let _ = self.ctx.router.deliver_to(entry, stanza).await;
            }
            None => self.ctx.router.route(stanza).await,
        }
    }

    /// Sends one stanza of many for the session `to` (a newcomer's occupant list): waits while
    /// its queue is half full, until `deadline`. Whether it was taken (false: the session is
    /// gone or did not read in time).
    async fn send_paced(
        &self,
        to: &Session,
        mut stanza: Element,
        deadline: tokio::time::Instant,
    ) -> bool {
        stanza.set_attr("to", to.jid_str.as_str());
        let Some(entry) = &to.local else {
            self.ctx.router.route(stanza).await;
            return true;
        };
        matches!(
            tokio::time::timeout_at(deadline, self.ctx.router.offer_waiting_to(entry, stanza))
                .await,
            Ok(starling_module_api::Offer::Queued | starling_module_api::Offer::Dropped)
        )
    }

    /// Sends `stanza` (children shared, see [`Element::share_children`]) to every session of
    /// every occupant.
    async fn send_all(&self, stanza: &Element) {
        for o in self.occupants.values() {
            for session in &o.sessions {
                self.send(session, stanza.clone()).await;
            }
        }
    }

    /// Sends `stanza` to every session of the occupant `nick`.
    async fn send_occupant(&self, nick: &str, stanza: &Element) {
        if let Some(o) = self.occupants.get(nick) {
            for s in &o.sessions {
                self.send(s, stanza.clone()).await;
            }
        }
    }

    /// Answers `stanza` with an error from where it was sent to; presence errors carry the MUC
    /// `<x/>` (XEP-0045 §7.2.6 and the following).
    async fn refuse(&self, stanza: &Element, e: StanzaError) {
        if stanza.attr("type") == Some("error") {
            return;
        }
        let mut e = e;
        e.by = Some(self.jid.clone());
        let mut reply = error_reply(stanza, &e);
        if stanza.name() == "presence" {
            reply.append_child(Element::new("x", NS_MUC));
        }
        self.ctx.router.route(reply).await;
    }

    /// A session of an occupant that bounced a stanza of the room's with a delivery failure is
    /// gone: it leaves with status 333 (XEP-0045 §15.6.2: "removed because of a technical problem").
    async fn bounced(&mut self, from: &Jid, s: &Element) {
        let Ok(full) = FullJid::try_from(from.clone()) else {
            return;
        };
        let failed = s
            .get_child("error", ns::CLIENT)
            .and_then(StanzaError::from_element)
            .is_some_and(|e| is_delivery_failure(&e));
        if failed && self.sessions.contains_key(&full) {
            self.session_gone(&full, Some(333)).await;
        }
    }

    /// Writes the room through to the store if it is persistent (creating it there when it just
    /// became so), or removes it from there when it no longer is.
    async fn persist(&mut self) -> Result<(), StorageError> {
        let store = &self.ctx.stores.muc;
        match (self.settings.persistent, self.stored) {
            (true, true) => {
                store
                    .set_config(&self.key, &self.settings.to_stored())
                    .await
            }
            (true, false) => {
                store
                    .create_room(&self.key, &self.settings.to_stored(), unix_now())
                    .await?;
                self.stored = true;
                store.set_subject(&self.key, self.subject.as_ref()).await?;
                for a in self.affiliations.values() {
                    store.set_affiliation(&self.key, a).await?;
                }
                // Counted in the store from now on.
                if let Some(creator) = self.counted.take() {
                    self.shared.count_temporary(&creator, false);
                }
                Ok(())
            }
            (false, true) => {
                store.delete_room(&self.key).await?;
                self.stored = false;
                Ok(())
            }
            (false, false) => Ok(()),
        }
    }

    /// The account `bare` was deleted: its affiliation goes; a room it leaves without an owner
    /// is destroyed.
    async fn forget(&mut self, bare: &BareJid) {
        let jid = bare.to_string();
        self.affiliations.remove(&jid);
        let owners = self
            .affiliations
            .values()
            .any(|a| a.affiliation == Affiliation::Owner.as_str());
        if !owners {
            self.destroy(None, Some("The room's last owner's account was deleted"))
                .await;
        }
    }
}

/// Whether `creator` may create the room `key` (XEP-0045 §10.1.1: `<not-allowed/>` if not).
async fn may_create(
    ctx: &Context,
    shared: &Shared,
    key: &RoomKey,
    creator: &FullJid,
) -> Result<(), StanzaError> {
    let domain = creator.domain().as_str();
    let not_allowed =
        |text: &str| StanzaError::new(StanzaErrorCondition::NotAllowed).with_text(text.to_owned());
    if !ctx.is_local_domain(domain) || shared.options.no_create_hosts.iter().any(|h| h == domain) {
        return Err(not_allowed("only accounts of this server may create rooms"));
    }
    let max = shared.options.limits.max_rooms_per_user;
    if max > 0 {
        let owned = ctx
            .stores
            .muc
            .rooms_of(Some(&key.service), &creator.to_bare().to_string())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading a user's rooms failed");
                StanzaError::new(StanzaErrorCondition::InternalServerError)
            })?
            .iter()
            .filter(|(_, a)| a.affiliation == Affiliation::Owner.as_str())
            .count()
            + shared.temporary_rooms_of(&creator.to_bare().to_string());
        if owned >= usize::try_from(max).unwrap_or(usize::MAX) {
            return Err(not_allowed(&format!(
                "you have {owned} rooms here, the most allowed"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XEP-0421 §5: stable for a JID and a room key, different across JIDs and rooms.
    #[test]
    fn occupant_ids() {
        let a = occupant_id("k1", "juliet@capulet.lit");
        assert_eq!(a, occupant_id("k1", "juliet@capulet.lit"));
        assert_ne!(a, occupant_id("k1", "romeo@montague.lit"));
        assert_ne!(a, occupant_id("k2", "juliet@capulet.lit"));
        assert_eq!(a.len(), 22);
    }
}
