//! Messages: to everyone (XEP-0045 §7.4), the subject (§8.1), private messages (§7.5),
//! mediated invitations and their declines (§7.8.2), and the history a newcomer gets
//! (§7.2.15).

use std::time::{Duration, SystemTime};

use starling_module_api::forms::DataForm;
use starling_module_api::random_id;
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::RoomSubject;

use super::occupants::Change;
use super::{Room, Session, error, unix_now};
use crate::affiliation::{Affiliation, Role};
use crate::settings::AllowPm;
use crate::{NS_MUC, NS_OCCUPANT_ID, NS_USER};

/// One message of the room's history: as reflected, with the room's `<delay/>`, its children
/// serialised once for every newcomer.
pub(crate) struct HistoryEntry {
    message: Element,
    at: SystemTime,
    /// The room's stanza id of it.
    id: Option<String>,
}

/// Payloads that make a groupchat message worth keeping (history, archive): a body, an
/// encrypted one, or an action on an earlier message.
fn storable(m: &Element) -> bool {
    m.children().any(|c| {
        c.is("body", ns::CLIENT)
            || c.name() == "encrypted"
                && matches!(
                    c.ns(),
                    "eu.siacs.conversations.axolotl" | "urn:xmpp:omemo:2"
                )
            || c.is("reactions", "urn:xmpp:reactions:0")
            || c.is("retract", "urn:xmpp:message-retract:1")
            || c.is("apply-to", "urn:xmpp:fasten:0")
    })
}

/// Over a rate limit: try again later.
fn too_fast() -> StanzaError {
    StanzaError::new(StanzaErrorCondition::ResourceConstraint)
        .with_type(starling_proto::ErrorType::Wait)
        .with_text("too many messages; try again later")
}

impl Room {
    /// A message to the room's JID.
    pub(super) async fn room_message(&mut self, from: &Jid, s: Element) {
        match s.attr("type") {
            Some("groupchat") => self.groupchat(from, s).await,
            Some("error") => self.bounced(from, &s).await,
            _ => {
                let x = s.get_child("x", NS_USER);
                if let Some(invite) = x.and_then(|x| x.get_child("invite", NS_USER)) {
                    let invite = invite.clone();
                    self.invite(from, &s, &invite).await;
                } else if let Some(decline) = x.and_then(|x| x.get_child("decline", NS_USER)) {
                    let decline = decline.clone();
                    self.decline(from, &decline).await;
                } else if let Some(form) = s
                    .get_child("x", ns::DATA_FORMS)
                    .and_then(|x| DataForm::parse(x).ok())
                    .filter(|f| f.form_type() == Some(super::register::REQUEST_FORM))
                {
                    self.voice_form(from, &s, &form).await;
                } else {
                    self.refuse(
                        &s,
                        error(
                            StanzaErrorCondition::BadRequest,
                            "the room takes groupchat messages and invitations",
                        ),
                    )
                    .await;
                }
            }
        }
    }

    /// §7.4: a message to everyone, reflected to every occupant (the sender too) from the
    /// sender's occupant JID with its `id`, the room's `<stanza-id/>` (XEP-0359) and the
    /// sender's `<occupant-id/>` (XEP-0421). A subject alone is a subject change (§8.1).
    async fn groupchat(&mut self, from: &Jid, s: Element) {
        let Some(o) = self.sender(from) else {
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::NotAcceptable,
                    "only occupants may send messages to the room",
                ),
            )
            .await;
            return;
        };
        let (nick, role, occupant_id, bare) = (
            o.nick.clone(),
            o.role,
            o.occupant_id.clone(),
            o.bare.to_string(),
        );
        if role < Role::Participant {
            // §7.4, §8.3: visitors of a moderated room have no voice.
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::Forbidden,
                    "you have no voice in this room",
                ),
            )
            .await;
            return;
        }
        if !self.within_rate(&nick, true) {
            self.refuse(&s, too_fast()).await;
            return;
        }
        let subject = s.get_child("subject", ns::CLIENT);
        if subject.is_some()
            && !s.has_child("body", ns::CLIENT)
            && !s.has_child("thread", ns::CLIENT)
        {
            if role < Role::Moderator && !self.settings.change_subject {
                self.refuse(
                    &s,
                    error(
                        StanzaErrorCondition::Forbidden,
                        "only moderators may change the subject",
                    ),
                )
                .await;
                return;
            }
            let text = subject.map(Element::text).unwrap_or_default();
            self.set_subject(&nick, text, &s).await;
            return;
        }
        let mut m = Element::new("message", ns::CLIENT)
            .with_attr("from", self.occupant_jid(&nick))
            .with_attr("type", "groupchat")
            .with_opt_attr("id", s.attr("id"));
        if let Some(lang) = s.attr_ns(ns::XML, "lang") {
            m.set_attr_ns(ns::XML, "lang", lang);
        }
        for c in s.children() {
            // XEP-0359 §3.3 and XEP-0421 §4: ids of the room's own that the sender wrote are
            // dropped.
            let forged = c.is("stanza-id", ns::SID) && c.attr("by") == Some(self.jid.as_str())
                || c.is("occupant-id", NS_OCCUPANT_ID)
                || c.is("x", NS_USER);
            if !forged {
                m.append_child(c.clone());
            }
        }
        let stanza_id = storable(&m).then(random_id);
        if let Some(id) = &stanza_id {
            m.append_child(
                Element::new("stanza-id", ns::SID)
                    .with_attr("id", id.as_str())
                    .with_attr("by", self.jid.as_str()),
            );
        }
        m.append_child(Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", occupant_id));
        if let Some(id) = &stanza_id {
            // What occupants see is in the archive first; a message the archive cannot take is
            // refused, not shown.
            if self.settings.archiving && self.archive(&m, id, &nick, &bare).await.is_err() {
                self.refuse(
                    &s,
                    StanzaError::new(StanzaErrorCondition::InternalServerError),
                )
                .await;
                return;
            }
            if self.settings.history_length > 0 {
                self.remember_at(&m, SystemTime::now());
            }
        }
        // Those who are away and named in it are told of it (push notifications, XEP-0357).
        let mentioned = self.mentioned(&m, &nick);
        let plain = (!mentioned.is_empty()).then(|| m.clone());
        m.share_children();
        self.send_all(&m).await;
        if let Some(plain) = plain {
            for to in mentioned {
                let mut message = plain.clone();
                message.set_attr("to", to.to_string());
                self.ctx
                    .router
                    .emit(starling_module_api::Event::Mentioned { to, message })
                    .await;
            }
        }
    }

    /// The away sessions (detached or inactive) of the occupants other than `sender` whose nick
    /// the message's body names.
    fn mentioned(&self, m: &Element, sender: &str) -> Vec<starling_proto::FullJid> {
        // Sessions first (two atomic loads each), the body only if one is away.
        let away: Vec<(&str, &starling_proto::FullJid)> = self
            .occupants
            .values()
            .filter(|o| o.nick != sender)
            .flat_map(|o| o.sessions.iter().map(move |s| (o.nick.as_str(), s)))
            .filter(|(_, s)| {
                s.local
                    .as_ref()
                    .is_some_and(|e| e.handle.is_detached() || e.handle.is_inactive())
            })
            .map(|(nick, s)| (nick, &s.jid))
            .collect();
        if away.is_empty() {
            return Vec::new();
        }
        let Some(body) = m.get_child("body", ns::CLIENT).map(Element::text) else {
            return Vec::new();
        };
        away.into_iter()
            .filter(|(nick, _)| names(&body, nick))
            .map(|(_, jid)| jid.clone())
            .collect()
    }

    /// Keeps a reflected message (received at `at`) in the history, as newcomers will get it
    /// (§7.2.15: with the room's `<delay/>`, XEP-0203).
    pub(super) fn remember_at(&mut self, m: &Element, at: SystemTime) {
        let id = m
            .get_child("stanza-id", ns::SID)
            .filter(|s| s.attr("by") == Some(self.jid.as_str()))
            .and_then(|s| s.attr("id"))
            .map(str::to_owned);
        let mut h = m.clone();
        h.append_child(
            Element::new("delay", ns::DELAY)
                .with_attr("from", self.jid.as_str())
                .with_attr("stamp", starling_proto::clock::format_utc(at)),
        );
        h.share_children();
        self.history.push_back(HistoryEntry { message: h, at, id });
        let max = usize::try_from(self.settings.history_length).unwrap_or(usize::MAX);
        while self.history.len() > max {
            self.history.pop_front();
        }
    }

    /// Whether the occupant `nick` may send one more message now (and, for a message to all,
    /// the room take one more): the rate limits of `[muc]`.
    fn within_rate(&mut self, nick: &str, to_all: bool) -> bool {
        let limits = self.shared.options.limits;
        let occupant_ok = self
            .occupants
            .get_mut(nick)
            .is_some_and(|o| o.bucket.take(limits.occupant_rate));
        occupant_ok && (!to_all || self.bucket.take(limits.room_rate))
    }

    /// A retracted message is no longer history (XEP-0425).
    pub(super) fn forget_history(&mut self, id: &str) {
        self.history.retain(|e| e.id.as_deref() != Some(id));
    }

    /// §8.1: the subject changes, everyone hears it from the occupant who changed it.
    async fn set_subject(&mut self, nick: &str, text: String, s: &Element) {
        let subject = RoomSubject {
            text,
            by: nick.to_owned(),
            at: unix_now(),
        };
        if self.stored
            && let Err(e) = self
                .ctx
                .stores
                .muc
                .set_subject(&self.key, Some(&subject))
                .await
        {
            tracing::error!(error = %e, room = %self.jid, "storing the subject failed");
            self.refuse(
                s,
                StanzaError::new(StanzaErrorCondition::InternalServerError),
            )
            .await;
            return;
        }
        self.subject = Some(subject);
        let mut m = self.subject_message();
        m.set_attr("id", s.attr("id").map_or_else(random_id, str::to_owned));
        m.share_children();
        self.send_all(&m).await;
    }

    /// The subject as a newcomer gets it last (§7.2.16): from the occupant JID of who set it,
    /// an empty `<subject/>` when there is none.
    fn subject_message(&self) -> Element {
        let (from, text) = match &self.subject {
            Some(s) => (self.occupant_jid(&s.by), s.text.as_str()),
            None => (self.jid.clone(), ""),
        };
        let mut subject = Element::new("subject", ns::CLIENT);
        if !text.is_empty() {
            subject.append_text(text);
        }
        Element::new("message", ns::CLIENT)
            .with_attr("from", from)
            .with_attr("type", "groupchat")
            .with_child(subject)
    }

    pub(super) async fn send_subject(&self, session: &Session) {
        let m = self.subject_message().with_attr("id", random_id());
        self.send(session, m).await;
    }

    /// §7.2.15: the history a newcomer asked for (`<history/>` of its `<x/>`: at most
    /// `maxstanzas` messages, `maxchars` characters, of the last `seconds`, since `since`), all
    /// of the room's by default.
    pub(super) async fn send_history(&self, session: &Session, x: Option<&Element>) {
        let h = x.and_then(|x| x.get_child("history", NS_MUC));
        let attr = |name: &str| h.and_then(|h| h.attr(name));
        let number = |name: &str| attr(name).and_then(|v| v.trim().parse::<usize>().ok());
        let max_stanzas = number("maxstanzas").unwrap_or(usize::MAX);
        let max_chars = number("maxchars").unwrap_or(usize::MAX);
        let now = SystemTime::now();
        let mut not_before = number("seconds").and_then(|s| {
            now.checked_sub(Duration::from_secs(u64::try_from(s).unwrap_or(u64::MAX)))
        });
        if let Some(since) = attr("since").and_then(parse_time) {
            not_before = Some(not_before.map_or(since, |n| n.max(since)));
        }
        let mut chars = 0usize;
        let mut count = 0usize;
        for e in self.history.iter().rev() {
            if count >= max_stanzas || not_before.is_some_and(|t| e.at < t) {
                break;
            }
            // Counted only when asked: serialising every message as it is kept would cost the
            // room's hot path for a rarely used limit.
            if max_chars != usize::MAX {
                chars = chars.saturating_add(e.message.to_xml().chars().count());
            }
            if chars > max_chars {
                break;
            }
            count += 1;
        }
        let first = self.history.len() - count;
        for e in self.history.iter().skip(first) {
            self.send(session, e.message.clone()).await;
        }
    }

    /// §7.5: a private message to the occupant `nick`, from the sender's occupant JID, marked
    /// with the MUC `<x/>` (so that carbons leave it alone, XEP-0280 §6).
    pub(super) async fn private_message(&mut self, from: &Jid, nick: String, s: Element) {
        if s.attr("type") == Some("error") {
            self.bounced(from, &s).await;
            return;
        }
        let Some(sender) = self.sender(from) else {
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::NotAcceptable,
                    "only occupants may send private messages",
                ),
            )
            .await;
            return;
        };
        if s.attr("type") == Some("groupchat") {
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::BadRequest,
                    "a private message is no groupchat",
                ),
            )
            .await;
            return;
        }
        let allowed = match self.settings.allow_pm {
            AllowPm::Anyone => true,
            AllowPm::Participants => sender.role >= Role::Participant,
            AllowPm::Moderators => sender.role == Role::Moderator,
            AllowPm::Nobody => false,
        };
        if !allowed {
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::Forbidden,
                    "private messages are not allowed in this room",
                ),
            )
            .await;
            return;
        }
        if !self.occupants.contains_key(&nick) {
            self.refuse(
                &s,
                error(
                    StanzaErrorCondition::ItemNotFound,
                    "no one has this nick here",
                ),
            )
            .await;
            return;
        }
        let sender_nick = sender.nick.clone();
        if !self.within_rate(&sender_nick, false) {
            self.refuse(&s, too_fast()).await;
            return;
        }
        let Some(sender) = self.occupants.get(&sender_nick) else {
            return;
        };
        let mut m =
            Element::new(s.name(), ns::CLIENT).with_attr("from", self.occupant_jid(&sender.nick));
        for a in s.attrs() {
            if a.namespace().is_some() || !matches!(a.name.as_str(), "from" | "to") {
                m.set_attr_ns(a.ns.clone(), &a.name, a.value.clone());
            }
        }
        for c in s.children() {
            if !(c.is("occupant-id", NS_OCCUPANT_ID) || c.is("x", NS_USER)) {
                m.append_child(c.clone());
            }
        }
        m.append_child(Element::new("x", NS_USER));
        m.append_child(
            Element::new("occupant-id", NS_OCCUPANT_ID)
                .with_attr("id", sender.occupant_id.as_str()),
        );
        self.send_occupant(&nick, &m).await;
    }

    /// §7.8.2: a mediated invitation, sent on from the room to the invitee with the inviter's
    /// real JID and the room's password. In a members-only room only admins and owners may
    /// invite (`<forbidden/>`), unless occupants may; the invitee then becomes a member.
    async fn invite(&mut self, from: &Jid, s: &Element, invite: &Element) {
        let Some(inviter) = self.sender(from) else {
            self.refuse(
                s,
                error(
                    StanzaErrorCondition::NotAcceptable,
                    "only occupants may invite",
                ),
            )
            .await;
            return;
        };
        let inviter_affiliation = inviter.affiliation;
        let Some(to) = invite.attr("to").and_then(|t| Jid::new(t).ok()) else {
            self.refuse(
                s,
                error(
                    StanzaErrorCondition::JidMalformed,
                    "the invitation names no JID",
                ),
            )
            .await;
            return;
        };
        let may_invite = self.settings.allow_invites || inviter_affiliation >= Affiliation::Admin;
        if self.settings.members_only && !may_invite {
            self.refuse(
                s,
                error(
                    StanzaErrorCondition::Forbidden,
                    "only admins may invite to this room",
                ),
            )
            .await;
            return;
        }
        let invitee = to.to_bare().to_string();
        if self.settings.members_only
            && self.affiliation_of(&invitee) < Affiliation::Member
            && let Err(e) = self
                .set_affiliation(&invitee, Affiliation::Member, None)
                .await
        {
            tracing::error!(error = %e, room = %self.jid, "storing an invitee's membership failed");
            self.refuse(
                s,
                StanzaError::new(StanzaErrorCondition::InternalServerError),
            )
            .await;
            return;
        }
        let mut inv = Element::new("invite", NS_USER).with_attr("from", from.to_string());
        if let Some(r) = invite.get_child("reason", NS_USER) {
            inv.append_child(r.clone());
        }
        let mut x = Element::new("x", NS_USER).with_child(inv);
        if let Some(p) = &self.settings.password {
            x.append_child(Element::new("password", NS_USER).with_text(p.as_str()));
        }
        let m = Element::new("message", ns::CLIENT)
            .with_attr("from", self.jid.as_str())
            .with_attr("to", to.to_string())
            .with_attr("id", s.attr("id").map_or_else(random_id, str::to_owned))
            .with_child(x);
        self.ctx.router.route(m).await;
    }

    /// §7.8.2: the invitee declines; the inviter hears it from the room.
    async fn decline(&self, from: &Jid, decline: &Element) {
        let Some(to) = decline.attr("to").and_then(|t| Jid::new(t).ok()) else {
            return;
        };
        let mut d = Element::new("decline", NS_USER).with_attr("from", from.to_bare().to_string());
        if let Some(r) = decline.get_child("reason", NS_USER) {
            d.append_child(r.clone());
        }
        let m = Element::new("message", ns::CLIENT)
            .with_attr("from", self.jid.as_str())
            .with_attr("to", to.to_string())
            .with_attr("id", random_id())
            .with_child(Element::new("x", NS_USER).with_child(d));
        self.ctx.router.route(m).await;
    }

    /// Tells every occupant what changed in the configuration (§10.2.1): status 104, and
    /// 170/171 (archiving on/off), 172/173 (real JIDs shown to all / moderators only).
    pub(super) async fn config_changed(&self, codes: &[u16]) {
        let mut x = Element::new("x", NS_USER);
        for c in codes {
            x.append_child(Element::new("status", NS_USER).with_attr("code", c.to_string()));
        }
        let mut m = Element::new("message", ns::CLIENT)
            .with_attr("from", self.jid.as_str())
            .with_attr("type", "groupchat")
            .with_attr("id", random_id())
            .with_child(x);
        m.share_children();
        self.send_all(&m).await;
    }

    /// Removes every occupant whose affiliation a members-only room does not admit (§9.4, with
    /// 322 when the room just became members-only, §10.2).
    pub(super) async fn remove_non_members(&mut self, code: u16) {
        let nicks: Vec<String> = self
            .occupants
            .values()
            .filter(|o| o.affiliation < Affiliation::Member)
            .map(|o| o.nick.clone())
            .collect();
        for nick in nicks {
            self.remove_occupant(
                &nick,
                &Change {
                    codes: &[code],
                    ..Change::default()
                },
            )
            .await;
        }
    }
}

/// Whether `body` names `nick`: the nick, ignoring case, not inside a longer word.
fn names(body: &str, nick: &str) -> bool {
    let (body, nick) = (body.to_lowercase(), nick.to_lowercase());
    if nick.is_empty() {
        return false;
    }
    body.match_indices(&nick).any(|(i, _)| {
        let before = body[..i].chars().next_back();
        let after = body[i + nick.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// An XEP-0082 date-time.
fn parse_time(s: &str) -> Option<SystemTime> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(SystemTime::from(t))
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn mentions_are_whole_words() {
        assert!(names("Juliet: look", "juliet"));
        assert!(names("hey @Jules!", "jules"));
        assert!(names("bonjour Éloïse", "éloïse"));
        assert!(!names("Julietta is here", "juliet"));
        assert!(!names("nothing", ""));
    }
}
