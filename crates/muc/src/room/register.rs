//! Registering with a room (XEP-0045 §7.10: a reserved nick and membership), discovering one's
//! reserved nick (§7.12), and voice requests in moderated rooms (§7.13, §8.6).

use starling_module_api::forms::{DataForm, Field, FormKind};
use starling_module_api::random_id;
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, ns};

use super::occupants::Change;
use super::{Room, error};
use crate::affiliation::{Affiliation, Role};

/// XEP-0077, the registration namespace.
pub const NS_REGISTER: &str = "jabber:iq:register";
/// §15.5.1 `muc#register` FORM_TYPE.
const REGISTER_FORM: &str = "http://jabber.org/protocol/muc#register";
/// §15.5.2 `muc#request` FORM_TYPE.
pub const REQUEST_FORM: &str = "http://jabber.org/protocol/muc#request";
/// §7.12: the disco node of one's reserved nick.
pub const ROOMUSER_NODE: &str = "x-roomuser-item";

impl Room {
    /// The nick `bare` reserved in the room, if any.
    fn reserved_nick(&self, bare: &str) -> Option<&str> {
        self.affiliations.get(bare).and_then(|a| a.nick.as_deref())
    }

    /// §7.12: the requester's reserved nick as an identity, or nothing.
    pub(super) fn roomuser_item(&self, from: &Jid) -> Element {
        let mut q = Element::new("query", ns::DISCO_INFO).with_attr("node", ROOMUSER_NODE);
        if let Some(nick) = self.reserved_nick(&from.to_bare().to_string()) {
            q.append_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "conference")
                    .with_attr("name", nick)
                    .with_attr("type", "text"),
            );
        }
        q
    }

    /// §7.10: what registering asks (or that one is registered).
    pub(super) fn register_get(&self, from: &Jid) -> Result<Element, StanzaError> {
        let bare = from.to_bare().to_string();
        self.may_register(&bare)?;
        let mut q = Element::new("query", NS_REGISTER);
        if let Some(nick) = self.reserved_nick(&bare) {
            q.append_child(Element::new("registered", NS_REGISTER));
            q.append_child(Element::new("username", NS_REGISTER).with_text(nick));
            return Ok(q);
        }
        let form = DataForm::form(Some(REGISTER_FORM))
            .title(&format!("Registration with {}", self.jid))
            .instructions("Choose the nick to reserve in this room; you become a member.")
            .field(
                Field::text_single("muc#register_roomnick")
                    .label("Desired nickname")
                    .required(),
            );
        q.append_child(form.to_element());
        Ok(q)
    }

    /// §7.10: registering reserves the nick and makes the user a member (at once: no approval
    /// by admins), telling the room if the user is in it.
    pub(super) async fn register_set(
        &mut self,
        from: &Jid,
        q: &Element,
    ) -> Result<(), StanzaError> {
        let bare = from.to_bare().to_string();
        self.may_register(&bare)?;
        let form = q
            .get_child("x", ns::DATA_FORMS)
            .and_then(|x| DataForm::parse(x).ok())
            .filter(|f| f.kind == FormKind::Submit)
            .ok_or_else(|| {
                error(
                    StanzaErrorCondition::BadRequest,
                    "submit the registration form",
                )
            })?;
        let nick = form
            .value("muc#register_roomnick")
            .and_then(|n| Jid::new(&format!("{}/{}", self.jid, n.trim())).ok())
            .and_then(|j| j.resource().map(|r| r.as_str().to_owned()))
            .ok_or_else(|| error(StanzaErrorCondition::BadRequest, "a nick is required"))?;
        let taken = self
            .affiliations
            .values()
            .any(|a| a.jid != bare && a.nick.as_deref() == Some(nick.as_str()))
            || self
                .occupants
                .get(&nick)
                .is_some_and(|o| o.bare.as_str() != bare);
        if taken {
            return Err(error(
                StanzaErrorCondition::Conflict,
                "this nick is reserved by someone else",
            ));
        }
        let affiliation = self.affiliation_of(&bare).max(Affiliation::Member);
        let mut a =
            self.affiliations
                .get(&bare)
                .cloned()
                .unwrap_or(starling_storage::RoomAffiliation {
                    jid: bare.clone(),
                    affiliation: affiliation.as_str().to_owned(),
                    nick: None,
                    reason: None,
                });
        a.affiliation = affiliation.as_str().to_owned();
        a.nick = Some(nick);
        if self.stored
            && let Err(e) = self.ctx.stores.muc.set_affiliation(&self.key, &a).await
        {
            tracing::error!(error = %e, room = %self.jid, "storing a registration failed");
            return Err(match e {
                starling_storage::StorageError::AlreadyExists => error(
                    StanzaErrorCondition::Conflict,
                    "this nick is reserved by someone else",
                ),
                _ => StanzaError::new(StanzaErrorCondition::InternalServerError),
            });
        }
        self.affiliations.insert(bare.clone(), a);
        self.affiliation_changed(&bare, affiliation, None, None)
            .await;
        Ok(())
    }

    /// Who may register: not the banned; in a members-only room only those already members
    /// (§7.10: `<not-allowed/>`, "that privilege has been restricted").
    fn may_register(&self, bare: &str) -> Result<(), StanzaError> {
        let a = self.affiliation_of(bare);
        if a == Affiliation::Outcast || (self.settings.members_only && a < Affiliation::Member) {
            return Err(error(
                StanzaErrorCondition::NotAllowed,
                "you may not register with this room",
            ));
        }
        Ok(())
    }

    /// A `muc#request` form sent to the room: a visitor asks for voice (§7.13), or a moderator
    /// answers such a request (§8.6).
    pub(super) async fn voice_form(&mut self, from: &Jid, s: &Element, form: &DataForm) {
        let Some(sender) = self.sender(from) else {
            self.refuse(
                s,
                error(
                    StanzaErrorCondition::NotAcceptable,
                    "you are not in this room",
                ),
            )
            .await;
            return;
        };
        let (nick, role) = (sender.nick.clone(), sender.role);
        if form.kind == FormKind::Submit && form.value("muc#request_allow").is_some() {
            // §8.6: a moderator's answer.
            if role != Role::Moderator {
                self.refuse(
                    s,
                    error(
                        StanzaErrorCondition::Forbidden,
                        "only moderators grant voice",
                    ),
                )
                .await;
                return;
            }
            let allow = matches!(form.value("muc#request_allow"), Some("1" | "true"));
            let Some(target) = form.value("muc#roomnick").map(str::to_owned) else {
                return;
            };
            let grantable = self
                .occupants
                .get(&target)
                .is_some_and(|o| o.role == Role::Visitor);
            if allow && grantable {
                if let Some(o) = self.occupants.get_mut(&target) {
                    o.role = Role::Participant;
                }
                let change = Change {
                    actor: Some(&nick),
                    ..Change::default()
                };
                self.broadcast_presence(&target, &change, false).await;
            }
            return;
        }
        // §7.13: only a visitor has something to ask.
        if role != Role::Visitor {
            return;
        }
        let Some(o) = self.occupants.get(&nick) else {
            return;
        };
        let approval = DataForm::form(Some(REQUEST_FORM))
            .title("Voice request")
            .instructions("To grant voice to this person, check the box and submit.")
            .field(
                Field::list_single("muc#role")
                    .label("Requested role")
                    .value("participant"),
            )
            .field(
                Field::jid_single("muc#jid")
                    .label("User ID")
                    .value(o.real_jid()),
            )
            .field(
                Field::text_single("muc#roomnick")
                    .label("Room Nickname")
                    .value(nick.as_str()),
            )
            .field(
                Field::boolean("muc#request_allow")
                    .label("Grant voice to this person?")
                    .value("false"),
            )
            .to_element();
        let m = Element::new("message", ns::CLIENT)
            .with_attr("from", self.jid.as_str())
            .with_attr("id", random_id())
            .with_child(approval);
        for moderator in self
            .occupants
            .values()
            .filter(|o| o.role == Role::Moderator)
        {
            for session in &moderator.sessions {
                self.send(session, m.clone()).await;
            }
        }
    }
}
