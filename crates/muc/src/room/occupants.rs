//! Occupants' presence: entering (XEP-0045 §7.2), changing nick (§7.6) or presence (§7.7),
//! leaving (§7.14), and being removed (kick §8.2, ban §9.1, membership revoked §9.4, room
//! destroyed §10.9).

use starling_proto::{Element, FullJid, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::RoomAffiliation;

use super::{Occupant, Room, Session, occupant_id};
use crate::affiliation::{Affiliation, Role};
use crate::{NS_MUC, NS_OCCUPANT_ID, NS_USER};

/// The longest a newcomer may take to read the occupant list (see [`Room::join`]).
const JOIN_LIST_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// What is said about an occupant leaving or changing: status codes (§15.6.2), and the item's
/// extras.
#[derive(Default)]
pub(crate) struct Change<'a> {
    pub(crate) codes: &'a [u16],
    /// The new nick of a nick change (with 303).
    pub(crate) new_nick: Option<&'a str>,
    /// The moderator or admin who acted (`<actor nick/>`).
    pub(crate) actor: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
}

impl Room {
    /// Presence to `room@service/nick`.
    pub(super) async fn presence(&mut self, from: &Jid, nick: String, s: Element) {
        match s.attr("type") {
            Some("error") => self.bounced(from, &s).await,
            Some("unavailable") => {
                if let Ok(full) = FullJid::try_from(from.clone())
                    && self.sessions.contains_key(&full)
                {
                    self.leave(&full, &s).await;
                }
            }
            None => {
                let Ok(full) = FullJid::try_from(from.clone()) else {
                    // Occupants are sessions.
                    self.refuse(&s, StanzaError::new(StanzaErrorCondition::JidMalformed))
                        .await;
                    return;
                };
                match self.sessions.get(&full) {
                    Some(current) if *current == nick => self.update(&full, &s).await,
                    Some(current) => {
                        let current = current.clone();
                        self.change_nick(&current, nick, &s).await;
                    }
                    None => self.join(full, nick, s, false).await,
                }
            }
            // Subscriptions and probes mean nothing to a room.
            Some(_) => {}
        }
    }

    /// Presence to the room's bare JID: no nick, so no entering (§7.2.1 `<jid-malformed/>`);
    /// an occupant's unavailable presence (a roster broadcast) still means it left.
    pub(super) async fn presence_to_room(&mut self, from: &Jid, s: Element) {
        match s.attr("type") {
            None => {
                self.refuse(&s, StanzaError::new(StanzaErrorCondition::JidMalformed))
                    .await
            }
            Some("unavailable") => {
                if let Ok(full) = FullJid::try_from(from.clone())
                    && self.sessions.contains_key(&full)
                {
                    self.leave(&full, &s).await;
                }
            }
            Some("error") => self.bounced(from, &s).await,
            Some(_) => {}
        }
    }

    /// §7.2: `full` enters as `nick`, or joins the occupant `nick` holds with another session
    /// of the same user. `created`: the room was created by this presence (status 201).
    pub(super) async fn join(&mut self, full: FullJid, nick: String, s: Element, created: bool) {
        let bare = full.to_bare();
        let bare_str = bare.to_string();
        let affiliation = self.affiliation_of(&bare_str);
        let x = s.get_child("x", NS_MUC);
        let refuse = |c: StanzaErrorCondition, text: &str| {
            Err(StanzaError::new(c).with_text(text.to_owned()))
        };
        let verdict = if self.locked && affiliation != Affiliation::Owner {
            // §10.1.1: a room being created admits no one but its owner.
            refuse(
                StanzaErrorCondition::ItemNotFound,
                "the room is being created",
            )
        } else if affiliation == Affiliation::Outcast {
            refuse(
                StanzaErrorCondition::Forbidden,
                "you are banned from this room",
            )
        } else if self.settings.members_only && affiliation < Affiliation::Member {
            refuse(
                StanzaErrorCondition::RegistrationRequired,
                "this room is for members only",
            )
        } else if self.occupants.get(&nick).is_some_and(|o| o.bare != bare)
            || self
                .affiliations
                .values()
                .any(|a| a.nick.as_deref() == Some(nick.as_str()) && a.jid != bare_str)
        {
            refuse(StanzaErrorCondition::Conflict, "this nick is taken")
        } else if self.settings.password.as_deref().is_some_and(|p| {
            x.and_then(|x| x.get_child("password", NS_MUC))
                .is_none_or(|given| given.text() != p)
        }) {
            refuse(StanzaErrorCondition::NotAuthorized, "a password is needed")
        } else if !self.occupants.contains_key(&nick)
            && self.occupants.len()
                >= usize::try_from(self.settings.max_users).unwrap_or(usize::MAX)
            && affiliation < Affiliation::Admin
        {
            // §7.2.10: of type wait (someone may leave).
            refuse(StanzaErrorCondition::ServiceUnavailable, "the room is full")
                .map_err(|e| e.with_type(starling_proto::ErrorType::Wait))
        } else {
            Ok(())
        };
        if let Err(e) = verdict {
            self.refuse(&s, e).await;
            return;
        }
        let session = self.session_for(full.clone()).await;
        self.sessions.insert(full.clone(), nick.clone());
        self.shared.joined(&full, &self.key);
        let new_occupant = !self.occupants.contains_key(&nick);
        if new_occupant {
            let occupant = Occupant {
                nick: nick.clone(),
                occupant_id: occupant_id(&self.settings.occupant_id_key, &bare_str),
                bare,
                sessions: Vec::new(),
                role: affiliation.default_role(self.settings.moderated),
                affiliation,
                payload: payload_of(&s),
                bucket: super::Bucket::full(self.shared.options.limits.occupant_rate),
            };
            self.occupants.insert(nick.clone(), occupant);
        }
        // §7.2.3: the others' presence to the newcomer first.
        let sees_jids = self.settings.whois_anyone
            || self
                .occupants
                .get(&nick)
                .is_some_and(|o| o.role == Role::Moderator);
        // A big room's list is more than a session's queue holds at once: it goes at the pace
        // the newcomer reads it, for at most JOIN_LIST_TIME; one that reads slower does not
        // enter (and holds up the room no longer).
        let deadline = tokio::time::Instant::now() + JOIN_LIST_TIME;
        let mut listed = true;
        for o in self.occupants.values().filter(|o| o.nick != nick) {
            let p = self.presence_of(o, sees_jids, &Change::default(), false);
            if !self.send_paced(&session, p, deadline).await {
                listed = false;
                break;
            }
        }
        if !listed {
            tracing::info!(room = %self.jid, session = %full, "too slow to take the occupant list; not entered");
            self.sessions.remove(&full);
            self.shared.left(&full, &self.key);
            if new_occupant {
                self.occupants.remove(&nick);
            }
            return;
        }
        // Then the newcomer's to the others (a further session of an occupant is news to no
        // one), then its own, with what it needs to know of the room (§7.2.12, §10.1.1).
        if let Some(o) = self.occupants.get_mut(&nick) {
            o.sessions.push(session);
        }
        if new_occupant {
            self.presence_to_others(&nick, &Change::default(), false)
                .await;
        }
        let mut codes = vec![110];
        if self.settings.whois_anyone {
            codes.push(100);
        }
        if self.settings.archiving {
            codes.push(170);
        }
        if created {
            codes.push(201);
        }
        let Some(o) = self.occupants.get(&nick) else {
            return;
        };
        let own = self.presence_of(
            o,
            true,
            &Change {
                codes: &codes,
                ..Change::default()
            },
            false,
        );
        if let Some(session) = o.sessions.last() {
            self.send(session, own).await;
            // §7.2.15, §7.2.16: history, then the subject.
            self.send_history(session, x).await;
            self.send_subject(session).await;
        }
    }

    /// Where the room reaches `jid`: its registry entry when it is a local session.
    async fn session_for(&self, jid: FullJid) -> Session {
        let local = if self.ctx.is_local_domain(jid.domain().as_str()) {
            self.ctx.sessions.get(&jid).await
        } else {
            None
        };
        Session {
            jid_str: jid.to_string(),
            jid,
            local,
        }
    }

    /// §7.7: an occupant's new presence, broadcast to everyone.
    async fn update(&mut self, full: &FullJid, s: &Element) {
        let Some(nick) = self.sessions.get(full).cloned() else {
            return;
        };
        let refreshed = self.session_for(full.clone()).await;
        if let Some(o) = self.occupants.get_mut(&nick) {
            o.payload = payload_of(s);
            // The session may have been resumed or replaced: reach it where it is now.
            if let Some(session) = o.sessions.iter_mut().find(|x| x.jid == *full) {
                *session = refreshed;
            }
        }
        self.broadcast_presence(&nick, &Change::default(), false)
            .await;
    }

    /// §7.6: the occupant `old` becomes `new` (every session of it), unless another user has or
    /// reserved that nick (`<conflict/>`).
    async fn change_nick(&mut self, old: &str, new: String, s: &Element) {
        let Some(bare) = self.occupants.get(old).map(|o| o.bare.to_string()) else {
            return;
        };
        let taken = self.occupants.contains_key(&new)
            || self
                .affiliations
                .values()
                .any(|a| a.nick.as_deref() == Some(new.as_str()) && a.jid != bare);
        if taken {
            self.refuse(
                s,
                StanzaError::new(StanzaErrorCondition::Conflict).with_text("this nick is taken"),
            )
            .await;
            return;
        }
        self.broadcast_presence(
            old,
            &Change {
                codes: &[303],
                new_nick: Some(&new),
                ..Change::default()
            },
            true,
        )
        .await;
        let Some(mut o) = self.occupants.remove(old) else {
            return;
        };
        o.nick = new.clone();
        o.payload = payload_of(s);
        for session in &o.sessions {
            self.sessions.insert(session.jid.clone(), new.clone());
        }
        self.occupants.insert(new.clone(), o);
        self.broadcast_presence(&new, &Change::default(), false)
            .await;
    }

    /// §7.14: a session leaves. The occupant goes with its last session; a further session of
    /// it leaves alone, and only it hears.
    pub(super) async fn leave(&mut self, full: &FullJid, s: &Element) {
        let Some(nick) = self.sessions.get(full).cloned() else {
            return;
        };
        if let Some(o) = self.occupants.get_mut(&nick) {
            // The status text of the leaving presence goes with it (§7.14).
            o.payload = s
                .children()
                .filter(|c| c.is("status", ns::CLIENT))
                .cloned()
                .collect();
        }
        self.remove_session(full, &Change::default()).await;
    }

    /// A session is gone without saying so (it ended, or bounces the room's stanzas).
    pub(super) async fn session_gone(&mut self, full: &FullJid, code: Option<u16>) {
        if let Some(o) = self
            .sessions
            .get(full)
            .and_then(|n| self.occupants.get_mut(n))
        {
            o.payload.clear();
        }
        let codes: Vec<u16> = code.into_iter().collect();
        self.remove_session(
            full,
            &Change {
                codes: &codes,
                ..Change::default()
            },
        )
        .await;
    }

    async fn remove_session(&mut self, full: &FullJid, change: &Change<'_>) {
        let Some(nick) = self.sessions.remove(full) else {
            return;
        };
        self.shared.left(full, &self.key);
        let Some(o) = self.occupants.get_mut(&nick) else {
            return;
        };
        let Some(i) = o.sessions.iter().position(|x| x.jid == *full) else {
            return;
        };
        if o.sessions.len() > 1 {
            let session = o.sessions.remove(i);
            let Some(o) = self.occupants.get(&nick) else {
                return;
            };
            let codes: Vec<u16> = std::iter::once(110)
                .chain(change.codes.iter().copied())
                .collect();
            let p = self.presence_of(
                o,
                true,
                &Change {
                    codes: &codes,
                    ..Change::default()
                },
                true,
            );
            self.send(&session, p).await;
            return;
        }
        self.broadcast_presence(&nick, change, true).await;
        self.occupants.remove(&nick);
    }

    /// Removes the occupant `nick` with every session of it (kicked §8.2 with 307, banned §9.1
    /// with 301, no longer a member §9.4 with 321, …): everyone, the occupant included, hears
    /// it leave with `change`.
    pub(super) async fn remove_occupant(&mut self, nick: &str, change: &Change<'_>) {
        let Some(o) = self.occupants.get_mut(nick) else {
            return;
        };
        o.payload.clear();
        o.role = Role::None;
        let sessions: Vec<FullJid> = o.sessions.iter().map(|s| s.jid.clone()).collect();
        self.broadcast_presence(nick, change, true).await;
        for s in &sessions {
            self.sessions.remove(s);
            self.shared.left(s, &self.key);
        }
        self.occupants.remove(nick);
    }

    /// Sends the occupant `nick`'s presence to every occupant, its own sessions with 110 (all
    /// with `change`); `unavailable` when it leaves.
    pub(super) async fn broadcast_presence(
        &self,
        nick: &str,
        change: &Change<'_>,
        unavailable: bool,
    ) {
        self.presence_to_others(nick, change, unavailable).await;
        let Some(o) = self.occupants.get(nick) else {
            return;
        };
        let codes: Vec<u16> = std::iter::once(110)
            .chain(change.codes.iter().copied())
            .collect();
        let own = self.presence_of(
            o,
            true,
            &Change {
                codes: &codes,
                new_nick: change.new_nick,
                actor: change.actor,
                reason: change.reason,
            },
            unavailable,
        );
        for s in &o.sessions {
            self.send(s, own.clone()).await;
        }
    }

    /// Sends the occupant `nick`'s presence to every other occupant. One copy is serialised for
    /// those who see real JIDs and one for those who do not, and shared by all.
    async fn presence_to_others(&self, nick: &str, change: &Change<'_>, unavailable: bool) {
        let Some(o) = self.occupants.get(nick) else {
            return;
        };
        let mut with_jid = self.presence_of(o, true, change, unavailable);
        let mut without_jid = self.presence_of(o, false, change, unavailable);
        with_jid.share_children();
        without_jid.share_children();
        for other in self.occupants.values().filter(|x| x.nick != nick) {
            let p = if self.settings.whois_anyone || other.role == Role::Moderator {
                &with_jid
            } else {
                &without_jid
            };
            for s in &other.sessions {
                self.send(s, p.clone()).await;
            }
        }
    }

    /// The occupant's presence as the room sends it (§7.2.3): its payload, the MUC `<x/>` with
    /// its item (the real JID only `with_jid`) and status codes, its occupant id (XEP-0421 §4).
    pub(super) fn presence_of(
        &self,
        o: &Occupant,
        with_jid: bool,
        change: &Change<'_>,
        unavailable: bool,
    ) -> Element {
        let mut p =
            Element::new("presence", ns::CLIENT).with_attr("from", self.occupant_jid(&o.nick));
        if unavailable {
            p.set_attr("type", "unavailable");
        }
        for c in &o.payload {
            p.append_child(c.clone());
        }
        let mut item = Element::new("item", NS_USER)
            .with_attr("affiliation", o.affiliation.as_str())
            .with_attr(
                "role",
                if unavailable && !change.codes.contains(&303) {
                    Role::None.as_str()
                } else {
                    o.role.as_str()
                },
            );
        if with_jid {
            item.set_attr("jid", o.real_jid());
        }
        if let Some(n) = change.new_nick {
            item.set_attr("nick", n);
        }
        if let Some(a) = change.actor {
            item.append_child(Element::new("actor", NS_USER).with_attr("nick", a));
        }
        if let Some(r) = change.reason {
            item.append_child(Element::new("reason", NS_USER).with_text(r));
        }
        let mut x = Element::new("x", NS_USER).with_child(item);
        for code in change.codes {
            x.append_child(Element::new("status", NS_USER).with_attr("code", code.to_string()));
        }
        p.append_child(x);
        // XEP-0317 §3: the hats the occupant wears.
        if !unavailable && let Some(hats) = self.hats_of(o.bare.as_str()) {
            p.append_child(hats);
        }
        p.append_child(
            Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", o.occupant_id.as_str()),
        );
        p
    }

    /// The affiliation of the occupants of `bare` changed to `to` (§9, §10): they leave when it
    /// bars them (banned 301, §9.1; no longer members of a members-only room 321, §9.4), or
    /// take the role it gives and everyone hears it (§9.3, §9.7, §10.3).
    pub(super) async fn affiliation_changed(
        &mut self,
        bare: &str,
        to: Affiliation,
        actor: Option<&str>,
        reason: Option<&str>,
    ) {
        let nicks: Vec<String> = self
            .occupants
            .values()
            .filter(|o| o.bare.as_str() == bare)
            .map(|o| o.nick.clone())
            .collect();
        for nick in nicks {
            let code = if to == Affiliation::Outcast {
                Some(301)
            } else if self.settings.members_only && to < Affiliation::Member {
                Some(321)
            } else {
                None
            };
            if let Some(o) = self.occupants.get_mut(&nick) {
                o.affiliation = to;
            }
            if let Some(code) = code {
                self.remove_occupant(
                    &nick,
                    &Change {
                        codes: &[code],
                        actor,
                        reason,
                        ..Change::default()
                    },
                )
                .await;
                continue;
            }
            if let Some(o) = self.occupants.get_mut(&nick) {
                o.role = to.default_role(self.settings.moderated);
            }
            self.broadcast_presence(
                &nick,
                &Change {
                    actor,
                    reason,
                    ..Change::default()
                },
                false,
            )
            .await;
        }
    }

    /// Stores (in memory, and through to the store when the room is) `bare`'s affiliation.
    pub(super) async fn set_affiliation(
        &mut self,
        bare: &str,
        to: Affiliation,
        reason: Option<&str>,
    ) -> Result<(), starling_storage::StorageError> {
        if to == Affiliation::None {
            self.affiliations.remove(bare);
            if self.stored {
                self.ctx
                    .stores
                    .muc
                    .remove_affiliation(&self.key, bare)
                    .await?;
            }
            return Ok(());
        }
        let a = RoomAffiliation {
            jid: bare.to_owned(),
            affiliation: to.as_str().to_owned(),
            nick: self.affiliations.get(bare).and_then(|a| a.nick.clone()),
            reason: reason.map(str::to_owned),
        };
        if self.stored {
            self.ctx.stores.muc.set_affiliation(&self.key, &a).await?;
        }
        self.affiliations.insert(bare.to_owned(), a);
        Ok(())
    }

    /// §10.9: everyone leaves with the `<destroy/>` (an alternate venue, a reason), the room is
    /// deleted.
    pub(super) async fn destroy(&mut self, venue: Option<&str>, reason: Option<&str>) {
        let mut destroy = Element::new("destroy", NS_USER).with_opt_attr("jid", venue);
        if let Some(r) = reason {
            destroy.append_child(Element::new("reason", NS_USER).with_text(r));
        }
        for o in self.occupants.values() {
            let mut p = Element::new("presence", ns::CLIENT)
                .with_attr("from", self.occupant_jid(&o.nick))
                .with_attr("type", "unavailable");
            let x = Element::new("x", NS_USER)
                .with_child(
                    Element::new("item", NS_USER)
                        .with_attr("affiliation", "none")
                        .with_attr("role", "none"),
                )
                .with_child(destroy.clone())
                .with_child(Element::new("status", NS_USER).with_attr("code", "110"));
            p.append_child(x);
            for s in &o.sessions {
                self.send(s, p.clone()).await;
            }
        }
        for s in self.sessions.keys() {
            self.shared.left(s, &self.key);
        }
        self.sessions.clear();
        self.occupants.clear();
        if self.stored
            && let Err(e) = self.ctx.stores.muc.delete_room(&self.key).await
        {
            tracing::error!(error = %e, room = %self.jid, "deleting a destroyed room failed");
        }
        if let Err(e) = self.ctx.stores.room_archive.delete_room(&self.key).await {
            tracing::error!(error = %e, room = %self.jid, "deleting a destroyed room's archive failed");
        }
        self.stored = false;
        self.destroyed = true;
        self.shared.list(&self.key, None);
    }
}

/// What of an occupant's presence the room broadcasts: everything but the MUC join extension
/// and what the room adds itself (XEP-0421 §4: an occupant id the client sent is dropped).
fn payload_of(s: &Element) -> Vec<Element> {
    s.children()
        .filter(|c| {
            !(c.is("x", NS_MUC) || c.is("x", NS_USER) || c.is("occupant-id", NS_OCCUPANT_ID))
        })
        .cloned()
        .collect()
}
