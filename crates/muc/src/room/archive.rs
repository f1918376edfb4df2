//! The room's archive: XEP-0313 on the room's JID (messages to all, kept with the room's
//! stanza id, queried by occupants, and by members of a members-only room), the history a room
//! loaded from the store shows newcomers, and XEP-0425 moderation (a moderator retracts a
//! message: everyone is told, the archive keeps a tombstone).

use starling_module_api::mam::query::{self, PageLimits};
use starling_module_api::{parse_stored, random_id};
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, ns};
use starling_storage::{ArchiveQuery, NewRoomArchived, PagePosition, StorageError};

use super::{Room, error};
use crate::NS_OCCUPANT_ID;
use crate::affiliation::{Affiliation, Role};

/// XEP-0425 moderation.
pub const NS_MODERATE: &str = "urn:xmpp:message-moderate:1";
/// XEP-0424 retraction.
pub const NS_RETRACT: &str = "urn:xmpp:message-retract:1";

/// Pages of a room's archive: 50 messages unless asked, at most 250.
const PAGE: PageLimits = PageLimits {
    default: 50,
    max: 250,
};

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Room {
    /// Archives a reflected message (`m`, without `to`) of the occupant `nick` before anyone
    /// gets it: what occupants see is in the archive.
    pub(super) async fn archive(
        &self,
        m: &Element,
        id: &str,
        nick: &str,
        sender: &str,
    ) -> Result<(), ()> {
        let record = NewRoomArchived {
            key: self.key.clone(),
            id: id.to_owned(),
            timestamp_us: now_us(),
            nick: nick.to_owned(),
            sender: Some(sender.to_owned()),
            stanza: m.to_xml(),
            body: m.get_child("body", ns::CLIENT).map(Element::text),
        };
        self.shared.writer(&self.ctx).write(record).await.map_err(
            |e| tracing::error!(error = %e, room = %self.jid, "archiving a message failed"),
        )
    }

    /// Fills the history from the archive (a room loaded from the store): the last
    /// `history_length` messages, with the room's `<delay/>` at the time they were archived.
    pub(super) async fn load_history(&mut self) -> Result<(), StorageError> {
        if !self.settings.archiving || self.settings.history_length == 0 {
            return Ok(());
        }
        let q = ArchiveQuery {
            position: PagePosition::Last,
            max: usize::try_from(self.settings.history_length).unwrap_or(usize::MAX),
            ..ArchiveQuery::default()
        };
        let page = self.ctx.stores.room_archive.query(&self.key, &q).await?;
        for m in page.messages {
            match parse_stored(&m.stanza) {
                // Tombstones and retraction notices are not history.
                Ok(stanza) if !is_moderation(&stanza) => {
                    let at = std::time::UNIX_EPOCH
                        + std::time::Duration::from_micros(
                            u64::try_from(m.timestamp_us).unwrap_or(0),
                        );
                    self.remember_at(&stanza, at);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(room = %self.jid, id = %m.id, error = %e, "archived message unreadable")
                }
            }
        }
        Ok(())
    }

    /// XEP-0313 §4 on the room's JID: the query form, a query, or the archive's bounds (§5).
    /// Occupants may query, and anyone but outcasts in an open room; in a members-only room
    /// only members, admins and owners (others: `<forbidden/>`).
    pub(super) async fn mam(
        &self,
        from: &Jid,
        s: &Element,
        payload: &Element,
        get: bool,
    ) -> Result<Option<Element>, StanzaError> {
        let affiliation = self.affiliation_of(&from.to_bare().to_string());
        let occupant = self.sender(from);
        let allowed = occupant.is_some()
            || if self.settings.members_only {
                affiliation >= Affiliation::Member
            } else {
                affiliation != Affiliation::Outcast
            };
        if !allowed {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "only members may read this room's archive",
            ));
        }
        match (get, payload.name()) {
            (true, "query") => return Ok(Some(query::form())),
            (true, "metadata") => {
                let mut meta = Element::new("metadata", query::NS_MAM);
                let bounds = self
                    .ctx
                    .stores
                    .room_archive
                    .bounds(&self.key)
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, room = %self.jid, "archive metadata failed");
                        StanzaError::new(StanzaErrorCondition::InternalServerError)
                    })?;
                if let Some((first, last)) = bounds {
                    for (name, b) in [("start", first), ("end", last)] {
                        meta.append_child(
                            Element::new(name, query::NS_MAM)
                                .with_attr("id", b.id)
                                .with_attr("timestamp", query::format_datetime(b.timestamp_us)),
                        );
                    }
                }
                return Ok(Some(meta));
            }
            (false, "query") => {}
            _ => return Err(StanzaError::new(StanzaErrorCondition::ServiceUnavailable)),
        }
        let parsed = query::parse(payload, PAGE).map_err(|e| *e)?;
        // §4.1.1 for a room: 'with' names an occupant JID. A real JID only where real JIDs are
        // not secret from the asker (XEP-0045 §7.2.4).
        if let Some(with) = &parsed.query.with
            && with.resource.is_none()
        {
            let sees =
                self.settings.whois_anyone || occupant.is_some_and(|o| o.role == Role::Moderator);
            if !sees {
                return Err(error(
                    StanzaErrorCondition::Forbidden,
                    "real JIDs are hidden in this room",
                ));
            }
        }
        let page = match self
            .ctx
            .stores
            .room_archive
            .query(&self.key, &parsed.query)
            .await
        {
            Ok(p) => p,
            Err(StorageError::NotFound) => {
                return Err(error(
                    StanzaErrorCondition::ItemNotFound,
                    "no message with that id in the archive",
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, room = %self.jid, "archive query failed");
                return Err(StanzaError::new(StanzaErrorCondition::InternalServerError));
            }
        };
        let to = s.attr("from").unwrap_or_default().to_owned();
        let mut order: Vec<&_> = page.messages.iter().collect();
        if parsed.flip {
            order.reverse();
        }
        for m in order {
            match parse_stored(&m.stanza) {
                Ok(stanza) => {
                    let result = query::result_message(
                        &to,
                        &self.jid,
                        parsed.query_id.as_deref(),
                        m,
                        stanza,
                    );
                    self.ctx.router.route(result).await;
                }
                Err(e) => {
                    tracing::error!(room = %self.jid, id = %m.id, error = %e, "archived message unreadable")
                }
            }
        }
        Ok(Some(query::fin(&page)))
    }

    /// XEP-0425: a moderator retracts the message with the room's stanza id `<moderate id/>`
    /// (the request's `<reason/>` is in the moderation namespace, the notice's and the
    /// tombstone's in the retraction one, §4.1 and §5):
    /// everyone hears it (a XEP-0424 retraction from the room naming the moderator), the
    /// archive keeps a tombstone in its place, the history forgets it.
    pub(super) async fn moderate(
        &mut self,
        from: &Jid,
        payload: &Element,
    ) -> Result<(), StanzaError> {
        let Some(moderator) = self.sender(from) else {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "only moderators may retract messages",
            ));
        };
        if moderator.role != Role::Moderator {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "only moderators may retract messages",
            ));
        }
        let (mod_nick, mod_id, mod_bare) = (
            moderator.nick.clone(),
            moderator.occupant_id.clone(),
            moderator.bare.to_string(),
        );
        let Some(id) = payload.attr("id") else {
            return Err(error(
                StanzaErrorCondition::BadRequest,
                "name the message's stanza id",
            ));
        };
        if !payload.has_child("retract", NS_RETRACT) {
            return Err(error(
                StanzaErrorCondition::BadRequest,
                "only retraction is supported",
            ));
        }
        let reason = payload.get_child("reason", NS_MODERATE).map(Element::text);
        let stored = self
            .ctx
            .stores
            .room_archive
            .message(&self.key, id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, room = %self.jid, "reading an archived message failed");
                StanzaError::new(StanzaErrorCondition::InternalServerError)
            })?;
        let Some(stored) = stored else {
            return Err(error(
                StanzaErrorCondition::ItemNotFound,
                "no message with that id in the archive",
            ));
        };
        let original = parse_stored(&stored.stanza)
            .map_err(|_| StanzaError::new(StanzaErrorCondition::InternalServerError))?;
        if is_moderation(&original) {
            return Err(error(
                StanzaErrorCondition::BadRequest,
                "this is no message to retract",
            ));
        }
        let moderated = Element::new("moderated", NS_MODERATE)
            .with_attr("by", self.occupant_jid(&mod_nick))
            .with_child(
                Element::new("occupant-id", NS_OCCUPANT_ID).with_attr("id", mod_id.as_str()),
            );
        // The tombstone (XEP-0425 §5): the original's envelope and occupant id, its content
        // replaced by <retracted/>.
        let mut tombstone = Element::new("message", ns::CLIENT)
            .with_attr("type", "groupchat")
            .with_opt_attr("from", original.attr("from"))
            .with_opt_attr("id", original.attr("id"));
        if let Some(o) = original.get_child("occupant-id", NS_OCCUPANT_ID) {
            tombstone.append_child(o.clone());
        }
        let mut retracted = Element::new("retracted", NS_RETRACT)
            .with_attr("stamp", query::format_datetime(now_us()))
            .with_child(moderated.clone());
        if let Some(r) = &reason {
            retracted.append_child(Element::new("reason", NS_RETRACT).with_text(r.as_str()));
        }
        tombstone.append_child(retracted);
        self.ctx
            .stores
            .room_archive
            .retract(&self.key, id, &tombstone.to_xml())
            .await
            .map_err(|e| {
                tracing::error!(error = %e, room = %self.jid, "storing a tombstone failed");
                StanzaError::new(StanzaErrorCondition::InternalServerError)
            })?;
        self.forget_history(id);
        // The notice to everyone (XEP-0425 §4), archived too so that clients catching up learn
        // of it.
        let notice_id = random_id();
        let mut retract = Element::new("retract", NS_RETRACT)
            .with_attr("id", id)
            .with_child(moderated);
        if let Some(r) = &reason {
            retract.append_child(Element::new("reason", NS_RETRACT).with_text(r.as_str()));
        }
        let mut notice = Element::new("message", ns::CLIENT)
            .with_attr("from", self.jid.as_str())
            .with_attr("type", "groupchat")
            .with_attr("id", random_id())
            .with_child(retract)
            .with_child(
                Element::new("stanza-id", ns::SID)
                    .with_attr("id", notice_id.as_str())
                    .with_attr("by", self.jid.as_str()),
            );
        if self.settings.archiving {
            let _ = self.archive(&notice, &notice_id, "", &mod_bare).await;
        }
        notice.share_children();
        self.send_all(&notice).await;
        Ok(())
    }
}

/// A retraction notice or a tombstone: nothing a newcomer reads as history.
fn is_moderation(m: &Element) -> bool {
    m.has_child("retract", NS_RETRACT) || m.has_child("retracted", NS_RETRACT)
}
