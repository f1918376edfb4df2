//! IQs to the room (disco §6.4, admin §8–§9, owner §10) and to occupants (forwarded, §7.5 of
//! the spirit; XEP-0410 self-ping answered by the room).

use starling_module_api::forms::{DataForm, Field, FormKind};
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, iq_result, ns};

use starling_module_api::mam::query;

use super::archive::NS_MODERATE;
use super::hats::NS_COMMANDS;
use super::occupants::Change;
use super::register::{NS_REGISTER, REQUEST_FORM, ROOMUSER_NODE};
use super::{Room, error};
use crate::affiliation::{Affiliation, Role, may_set_affiliation, may_set_role};
use crate::settings::{ROOMINFO, Settings};
use crate::{NS_ADMIN, NS_MUC, NS_OCCUPANT_ID, NS_OWNER, NS_SELF_PING, NS_STABLE_ID};

/// One change of a muc#admin set (§8, §9).
enum AdminChange {
    Role {
        nick: String,
        to: Role,
        reason: Option<String>,
    },
    Affiliation {
        jid: String,
        to: Affiliation,
        reason: Option<String>,
    },
}

impl Room {
    /// An IQ to the room's JID.
    pub(super) async fn room_iq(&mut self, from: &Jid, s: Element) {
        let ty = s.attr("type");
        if matches!(ty, Some("result" | "error") | None) {
            return;
        }
        let get = ty == Some("get");
        let mut children = s.children();
        let (Some(payload), None) = (children.next(), children.next()) else {
            // RFC 6120 §8.2.3: exactly one payload.
            self.refuse(&s, StanzaError::new(StanzaErrorCondition::BadRequest))
                .await;
            return;
        };
        let payload = payload.clone();
        let outcome = match (get, payload.name(), payload.ns()) {
            (true, "query", ns::DISCO_INFO) if payload.attr("node").is_none() => {
                Ok(Some(self.disco_info()))
            }
            (true, "query", ns::DISCO_INFO) if payload.attr("node") == Some(ROOMUSER_NODE) => {
                Ok(Some(self.roomuser_item(from)))
            }
            (true, "query", NS_REGISTER) => self.register_get(from).map(Some),
            (false, "query", NS_REGISTER) => self.register_set(from, &payload).await.map(|()| None),
            (true, "query", ns::DISCO_ITEMS) if payload.attr("node").is_none() => {
                // §6.5: the occupants are not listed (real JIDs stay private).
                Ok(Some(Element::new("query", ns::DISCO_ITEMS)))
            }
            (true, "query", ns::DISCO_ITEMS) if payload.attr("node") == Some(NS_COMMANDS) => {
                Ok(Some(self.command_items()))
            }
            (false, "command", NS_COMMANDS) => self.command(from, &payload).await.map(Some),
            (true, "ping", ns::PING) => Ok(None),
            (true, "vCard", ns::VCARD) => Ok(Some(self.vcard())),
            (false, "vCard", ns::VCARD) => match self.set_vcard(from, &payload).await {
                // XEP-0486 §4.1: success first, then everyone hears the room changed.
                Ok(()) => {
                    self.ctx.router.route(iq_result(&s)).await;
                    self.config_changed(&[104]).await;
                    return;
                }
                Err(e) => Err(e),
            },
            (_, "query" | "metadata", query::NS_MAM) => self.mam(from, &s, &payload, get).await,
            (false, "moderate", NS_MODERATE) => self.moderate(from, &payload).await.map(|()| None),
            (true, "query", NS_ADMIN) => self.admin_get(from, &payload).map(Some),
            (false, "query", NS_ADMIN) => self.admin_set(from, &payload).await.map(|()| None),
            (true, "query", NS_OWNER) => self.owner_get(from).map(Some),
            (false, "query", NS_OWNER) => match self.owner_set(from, &payload).await {
                // §10.2.1: the owner hears of success first, then everyone of the change.
                Ok(before) => {
                    self.ctx.router.route(iq_result(&s)).await;
                    if let Some(before) = before {
                        self.config_applied(&before).await;
                    }
                    return;
                }
                Err(e) => Err(e),
            },
            _ => Err(StanzaError::new(StanzaErrorCondition::ServiceUnavailable)),
        };
        match outcome {
            Ok(p) => {
                let mut r = iq_result(&s);
                if let Some(p) = p {
                    r.append_child(p);
                }
                self.ctx.router.route(r).await;
            }
            Err(e) => self.refuse(&s, e).await,
        }
    }

    /// An IQ to an occupant: a request from another occupant is sent on to one of its sessions
    /// from the requester's occupant JID; the answer comes back the same way. XEP-0410: a ping
    /// to one's own nick is answered by the room; a request from someone who is not in the
    /// room is `<not-acceptable/>`.
    pub(super) async fn occupant_iq(&mut self, from: &Jid, nick: String, s: Element) {
        let ty = s.attr("type");
        if matches!(ty, Some("result" | "error")) {
            // An answer to a request the room sent on: from an occupant (one of its sessions,
            // or its server for a vCard request), to the requester's occupant JID.
            let responder = self.occupants.values().find(|o| {
                o.bare == from.to_bare()
                    && (from.resource().is_none() || self.sender(from).is_some())
            });
            let (Some(responder), Some(target)) = (responder, self.occupants.get(&nick)) else {
                return;
            };
            let mut answer = s.clone();
            answer.set_attr("from", self.occupant_jid(&responder.nick));
            if let Some(session) = target.sessions.first() {
                self.send(session, answer).await;
            }
            return;
        }
        let Some(sender) = self.sender(from) else {
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::NotAcceptable,
                    "you are not in this room",
                ),
            )
            .await;
            return;
        };
        let sender_nick = sender.nick.clone();
        let Some(target) = self.occupants.get(&nick) else {
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::ItemNotFound,
                    "no one has this nick here",
                ),
            )
            .await;
            return;
        };
        let payload = s.children().next();
        if sender_nick == nick && payload.is_some_and(|p| p.is("ping", ns::PING)) {
            let mut r = iq_result(&s);
            r.set_attr("from", self.occupant_jid(&nick));
            self.ctx.router.route(r).await;
            return;
        }
        let mut request = s.clone();
        request.set_attr("from", self.occupant_jid(&sender_nick));
        if payload.is_some_and(|p| p.is("vCard", ns::VCARD)) {
            // XEP-0054 §3.1 (vCards are an account's): asked of the occupant's server.
            request.set_attr("to", target.bare.to_string());
            self.ctx.router.route(request).await;
        } else if let Some(session) = target.sessions.first() {
            self.send(session, request).await;
        }
    }

    /// §6.4: the room's identity, features and `muc#roominfo` form.
    fn disco_info(&self) -> Element {
        let name = if self.settings.name.is_empty() {
            self.key.room.as_str()
        } else {
            self.settings.name.as_str()
        };
        let mut q = Element::new("query", ns::DISCO_INFO).with_child(
            Element::new("identity", ns::DISCO_INFO)
                .with_attr("category", "conference")
                .with_attr("type", "text")
                .with_attr("name", name),
        );
        let mut features = vec![
            ns::DISCO_INFO,
            NS_MUC,
            NS_STABLE_ID,
            NS_SELF_PING,
            NS_OCCUPANT_ID,
            ns::SID,
            ns::PING,
        ];
        features.extend(self.settings.features());
        features.extend([
            ns::VCARD,
            crate::NS_HATS,
            NS_COMMANDS,
            NS_REGISTER,
            REQUEST_FORM,
        ]);
        if self.settings.archiving {
            features.extend([
                query::NS_MAM,
                query::NS_MAM_EXTENDED,
                query::NS_FULLTEXT,
                NS_MODERATE,
            ]);
        }
        features.sort_unstable();
        for f in features {
            q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
        }
        let subject = self
            .subject
            .as_ref()
            .map(|s| s.text.clone())
            .unwrap_or_default();
        let form = DataForm::result(Some(ROOMINFO))
            .field(
                Field::plain("muc#roominfo_description").value(self.settings.description.as_str()),
            )
            .field(Field::plain("muc#roominfo_occupants").value(self.occupants.len().to_string()))
            .field(Field::plain("muc#roominfo_subject").value(subject))
            .field(
                Field::plain("muc#roominfo_subjectmod").value(if self.settings.change_subject {
                    "1"
                } else {
                    "0"
                }),
            )
            .field(
                Field::plain("muc#maxhistoryfetch").value(self.settings.history_length.to_string()),
            )
            .field(Field::plain("muc#roomconfig_roomname").value(name))
            .field(Field::plain("muc#roomconfig_allowinvites").value(
                if self.settings.allow_invites {
                    "1"
                } else {
                    "0"
                },
            ))
            // XEP-0486 §4.2: the avatar's hash, for those not in the room.
            .field(Field::plain("muc#roominfo_avatarhash").values(self.avatar_hash()))
            // XEP-0317 §2: a hash of the hats, to know when the list changed.
            .field(Field::plain("hats#hash").values(self.hats_hash()));
        q.append_child(form.to_element());
        q
    }

    /// The room's vCard (XEP-0054 §3.1 on the room's JID, XEP-0486 §4.3); empty without one.
    fn vcard(&self) -> Element {
        self.settings
            .vcard
            .as_deref()
            .and_then(|v| starling_module_api::parse_stored(v).ok())
            .unwrap_or_else(|| Element::new("vCard", ns::VCARD))
    }

    /// XEP-0486 §4.1: owners set the room's vCard (an empty one removes the avatar).
    async fn set_vcard(&mut self, from: &Jid, vcard: &Element) -> Result<(), StanzaError> {
        if self.actor(from).0 != Affiliation::Owner {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "only owners may set the room's avatar",
            ));
        }
        let before = self.settings.vcard.take();
        self.settings.vcard = (vcard.children().next().is_some()).then(|| vcard.to_xml());
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, room = %self.jid, "storing the room's vCard failed");
            self.settings.vcard = before;
            return Err(StanzaError::new(StanzaErrorCondition::InternalServerError));
        }
        Ok(())
    }

    /// XEP-0153 §4.1: the SHA-1 (lowercase hex) of the vCard's photo, if it has one.
    fn avatar_hash(&self) -> Vec<String> {
        use base64::Engine as _;
        let vcard = self.vcard();
        let data = vcard
            .get_child("PHOTO", ns::VCARD)
            .and_then(|p| p.get_child("BINVAL", ns::VCARD))
            .map(|b| {
                b.text()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect::<String>()
            })
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        data.map(|d| super::sha1_hex(&d)).into_iter().collect()
    }

    /// The requester's affiliation and, when in the room, role.
    fn actor(&self, from: &Jid) -> (Affiliation, Role, Option<String>) {
        let affiliation = self.affiliation_of(&from.to_bare().to_string());
        match self.sender(from) {
            Some(o) => (o.affiliation, o.role, Some(o.nick.clone())),
            None => (affiliation, Role::None, None),
        }
    }

    /// §8.5, §9.5, §10.5, §10.8: a list of occupants by role (moderators may read it) or of
    /// JIDs by affiliation (admins and owners may).
    fn admin_get(&self, from: &Jid, q: &Element) -> Result<Element, StanzaError> {
        let (affiliation, role, _) = self.actor(from);
        let mut items = q.children().filter(|c| c.is("item", NS_ADMIN));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(error(StanzaErrorCondition::BadRequest, "ask for one list"));
        };
        let mut out = Element::new("query", NS_ADMIN);
        if let Some(r) = item.attr("role") {
            let r = Role::parse(r)
                .ok_or_else(|| error(StanzaErrorCondition::BadRequest, "no such role"))?;
            if role != Role::Moderator {
                return Err(error(
                    StanzaErrorCondition::Forbidden,
                    "only moderators may see this list",
                ));
            }
            for o in self.occupants.values().filter(|o| o.role == r) {
                out.append_child(
                    Element::new("item", NS_ADMIN)
                        .with_attr("affiliation", o.affiliation.as_str())
                        .with_attr("jid", o.bare.to_string())
                        .with_attr("nick", o.nick.as_str())
                        .with_attr("role", o.role.as_str()),
                );
            }
            return Ok(out);
        }
        let a = item
            .attr("affiliation")
            .and_then(Affiliation::parse)
            .filter(|a| *a != Affiliation::None)
            .ok_or_else(|| {
                error(
                    StanzaErrorCondition::BadRequest,
                    "ask for a role or an affiliation",
                )
            })?;
        if affiliation < Affiliation::Admin {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "only admins may see this list",
            ));
        }
        for stored in self
            .affiliations
            .values()
            .filter(|x| x.affiliation == a.as_str())
        {
            let mut i = Element::new("item", NS_ADMIN)
                .with_attr("affiliation", a.as_str())
                .with_attr("jid", stored.jid.as_str())
                .with_opt_attr("nick", stored.nick.as_deref());
            if let Some(r) = &stored.reason {
                i.append_child(Element::new("reason", NS_ADMIN).with_text(r.as_str()));
            }
            out.append_child(i);
        }
        Ok(out)
    }

    /// §8.2–§8.6, §9.1–§9.8, §10.3–§10.7: role and affiliation changes, all checked before any
    /// is made.
    async fn admin_set(&mut self, from: &Jid, q: &Element) -> Result<(), StanzaError> {
        let (actor_affiliation, actor_role, actor_nick) = self.actor(from);
        let mut changes = Vec::new();
        for item in q.children().filter(|c| c.is("item", NS_ADMIN)) {
            let reason = item.get_child("reason", NS_ADMIN).map(Element::text);
            if let Some(r) = item.attr("role") {
                let to = Role::parse(r)
                    .ok_or_else(|| error(StanzaErrorCondition::BadRequest, "no such role"))?;
                let nick = item.attr("nick").ok_or_else(|| {
                    error(
                        StanzaErrorCondition::BadRequest,
                        "a role change names a nick",
                    )
                })?;
                let target = self.occupants.get(nick).ok_or_else(|| {
                    error(
                        StanzaErrorCondition::ItemNotFound,
                        "no one has this nick here",
                    )
                })?;
                if actor_role != Role::Moderator {
                    return Err(error(
                        StanzaErrorCondition::Forbidden,
                        "only moderators may change roles",
                    ));
                }
                // §9.6: only admins and owners make moderators.
                if (to == Role::Moderator || target.role == Role::Moderator)
                    && actor_affiliation < Affiliation::Admin
                {
                    return Err(error(
                        StanzaErrorCondition::NotAllowed,
                        "only admins may grant or revoke moderation",
                    ));
                }
                if !may_set_role(actor_affiliation, target.affiliation, to) {
                    return Err(error(
                        StanzaErrorCondition::NotAllowed,
                        "you may not change the role of someone of higher affiliation",
                    ));
                }
                changes.push(AdminChange::Role {
                    nick: nick.to_owned(),
                    to,
                    reason,
                });
            } else if let Some(a) = item.attr("affiliation") {
                let to = Affiliation::parse(a).ok_or_else(|| {
                    error(StanzaErrorCondition::BadRequest, "no such affiliation")
                })?;
                let jid = match (item.attr("jid"), item.attr("nick")) {
                    (Some(j), _) => Jid::new(j)
                        .map_err(|_| error(StanzaErrorCondition::JidMalformed, "not a JID"))?
                        .to_bare()
                        .to_string(),
                    (None, Some(n)) => self
                        .occupants
                        .get(n)
                        .map(|o| o.bare.to_string())
                        .ok_or_else(|| {
                            error(
                                StanzaErrorCondition::ItemNotFound,
                                "no one has this nick here",
                            )
                        })?,
                    (None, None) => {
                        return Err(error(
                            StanzaErrorCondition::BadRequest,
                            "an affiliation change names a JID",
                        ));
                    }
                };
                if actor_affiliation < Affiliation::Admin {
                    return Err(error(
                        StanzaErrorCondition::Forbidden,
                        "only admins may change affiliations",
                    ));
                }
                let current = self.affiliation_of(&jid);
                if !may_set_affiliation(actor_affiliation, current, to) {
                    return Err(error(
                        StanzaErrorCondition::NotAllowed,
                        "you may not change this affiliation",
                    ));
                }
                changes.push(AdminChange::Affiliation { jid, to, reason });
            } else {
                return Err(error(
                    StanzaErrorCondition::BadRequest,
                    "an item changes a role or an affiliation",
                ));
            }
        }
        if changes.is_empty() {
            return Err(error(StanzaErrorCondition::BadRequest, "nothing to change"));
        }
        // §10.6: a room keeps an owner.
        let owners_left = self
            .affiliations
            .values()
            .filter(|a| a.affiliation == Affiliation::Owner.as_str())
            .filter(|a| {
                !changes.iter().any(|c| {
                    matches!(c, AdminChange::Affiliation { jid, to, .. } if *jid == a.jid && *to != Affiliation::Owner)
                })
            })
            .count()
            + changes
                .iter()
                .filter(|c| matches!(c, AdminChange::Affiliation { to: Affiliation::Owner, .. }))
                .count();
        if owners_left == 0 {
            return Err(error(
                StanzaErrorCondition::Conflict,
                "the room would have no owner",
            ));
        }
        let actor = actor_nick.as_deref();
        for c in changes {
            match c {
                AdminChange::Role { nick, to, reason } => {
                    if to == Role::None {
                        // §8.2: kicked.
                        self.remove_occupant(
                            &nick,
                            &Change {
                                codes: &[307],
                                actor,
                                reason: reason.as_deref(),
                                ..Change::default()
                            },
                        )
                        .await;
                    } else if let Some(o) = self.occupants.get_mut(&nick) {
                        o.role = to;
                        self.broadcast_presence(
                            &nick,
                            &Change {
                                actor,
                                reason: reason.as_deref(),
                                ..Change::default()
                            },
                            false,
                        )
                        .await;
                    }
                }
                AdminChange::Affiliation { jid, to, reason } => {
                    self.set_affiliation(&jid, to, reason.as_deref())
                        .await
                        .map_err(|e| {
                            tracing::error!(error = %e, room = %self.jid, "storing an affiliation failed");
                            StanzaError::new(StanzaErrorCondition::InternalServerError)
                        })?;
                    self.affiliation_changed(&jid, to, actor, reason.as_deref())
                        .await;
                }
            }
        }
        Ok(())
    }

    /// §10.2: the configuration form, for owners.
    fn owner_get(&self, from: &Jid) -> Result<Element, StanzaError> {
        if self.actor(from).0 != Affiliation::Owner {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "only owners may configure the room",
            ));
        }
        Ok(Element::new("query", NS_OWNER).with_child(
            self.settings
                .form(&self.jid, &self.shared.options.limits.settings)
                .to_element(),
        ))
    }

    /// §10.1.2–§10.2: a submitted configuration (an empty one accepts the defaults: an instant
    /// room), a cancelled creation (§10.1.3), or the room's destruction (§10.9).
    /// Returns the settings before a change of a room that was not being created.
    async fn owner_set(
        &mut self,
        from: &Jid,
        q: &Element,
    ) -> Result<Option<Settings>, StanzaError> {
        if self.actor(from).0 != Affiliation::Owner {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "only owners may configure the room",
            ));
        }
        if let Some(d) = q.get_child("destroy", NS_OWNER) {
            let venue = d.attr("jid").map(str::to_owned);
            let reason = d.get_child("reason", NS_OWNER).map(Element::text);
            self.destroy(venue.as_deref(), reason.as_deref()).await;
            return Ok(None);
        }
        let Some(x) = q.get_child("x", ns::DATA_FORMS) else {
            return Err(error(
                StanzaErrorCondition::BadRequest,
                "submit a form or destroy the room",
            ));
        };
        let form = DataForm::parse(x)
            .map_err(|e| error(StanzaErrorCondition::BadRequest, &e.to_string()))?;
        match form.kind {
            FormKind::Cancel => {
                if self.locked {
                    self.destroy(None, None).await;
                }
                return Ok(None);
            }
            FormKind::Submit => {}
            _ => return Err(error(StanzaErrorCondition::BadRequest, "submit the form")),
        }
        let before = self.settings.clone();
        self.settings
            .apply(&form, &self.shared.options.limits.settings)?;
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, room = %self.jid, "storing the room's configuration failed");
            self.settings = before;
            return Err(StanzaError::new(StanzaErrorCondition::InternalServerError));
        }
        let was_locked = std::mem::replace(&mut self.locked, false);
        self.list();
        Ok((!was_locked).then_some(before))
    }

    /// What a new configuration changes for the occupants: they hear of it (§10.2.1), those it
    /// no longer admits leave (§10.2: 322), roles follow moderation (§8.3).
    async fn config_applied(&mut self, before: &Settings) {
        let mut codes = vec![104];
        if before.archiving != self.settings.archiving {
            codes.push(if self.settings.archiving { 170 } else { 171 });
        }
        if before.whois_anyone != self.settings.whois_anyone {
            codes.push(if self.settings.whois_anyone { 172 } else { 173 });
        }
        self.config_changed(&codes).await;
        if self.settings.members_only && !before.members_only {
            self.remove_non_members(322).await;
        }
        if before.moderated != self.settings.moderated {
            let nicks: Vec<String> = self
                .occupants
                .values()
                .filter(|o| o.affiliation == Affiliation::None && o.role != Role::Moderator)
                .map(|o| o.nick.clone())
                .collect();
            for nick in nicks {
                if let Some(o) = self.occupants.get_mut(&nick) {
                    o.role = Affiliation::None.default_role(self.settings.moderated);
                }
                self.broadcast_presence(&nick, &Change::default(), false)
                    .await;
            }
        }
    }
}
