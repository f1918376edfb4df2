//! XEP-0317 hats: roles of the room's own, created, destroyed, listed, given and taken through
//! ad-hoc commands (XEP-0050) on the room's JID, worn in occupants' presence.
//!
//! Owners create and destroy hats; admins and owners give and take them; anyone who may enter
//! the room lists them. A command sent without its form gets the form (status `executing`);
//! with it, it is done at once (`completed`); the session id only echoes what the client sent.

use std::collections::BTreeSet;

use starling_module_api::forms::{DataForm, Field, FormKind};
use starling_module_api::random_id;
use starling_proto::{Element, Jid, StanzaError, StanzaErrorCondition, ns};

use super::occupants::Change;
use super::{Room, error};
use crate::NS_HATS;
use crate::affiliation::Affiliation;
use crate::settings::{Hat, Settings};

/// XEP-0050.
pub const NS_COMMANDS: &str = "http://jabber.org/protocol/commands";
/// The `FORM_TYPE` of the hats commands.
const FORM_TYPE: &str = "urn:xmpp:hats:commands";

/// The commands, with their names (XEP-0317 §4).
pub const COMMANDS: [(&str, &str); 6] = [
    ("urn:xmpp:hats:commands:create", "Create or update a hat"),
    ("urn:xmpp:hats:commands:destroy", "Destroy a hat"),
    ("urn:xmpp:hats:commands:list", "List the hats"),
    ("urn:xmpp:hats:commands:assign", "Give a hat"),
    ("urn:xmpp:hats:commands:unassign", "Take a hat"),
    (
        "urn:xmpp:hats:commands:list-assigned",
        "List who wears which hat",
    ),
];

fn field<'a>(form: &'a DataForm, var: &str) -> Result<&'a str, StanzaError> {
    form.value(var)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            error(
                StanzaErrorCondition::BadRequest,
                &format!("'{var}' is required"),
            )
        })
}

impl Room {
    /// XEP-0030 §4.2 on the room, node `commands`: the hats commands.
    pub(super) fn command_items(&self) -> Element {
        let mut q = Element::new("query", ns::DISCO_ITEMS).with_attr("node", NS_COMMANDS);
        for (node, name) in COMMANDS {
            q.append_child(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", self.jid.as_str())
                    .with_attr("node", node)
                    .with_attr("name", name),
            );
        }
        q
    }

    /// The hats the occupant of `bare` wears, for its presence (XEP-0317 §3); `None` without.
    pub(super) fn hats_of(&self, bare: &str) -> Option<Element> {
        let worn = self.settings.worn.get(bare)?;
        let mut hats = Element::new("hats", NS_HATS);
        for hat in self.settings.hats.iter().filter(|h| worn.contains(&h.uri)) {
            hats.append_child(
                Element::new("hat", NS_HATS)
                    .with_attr("title", hat.title.as_str())
                    .with_attr("uri", hat.uri.as_str())
                    .with_opt_attr("hue", hat.hue.as_deref()),
            );
        }
        Some(hats)
    }

    /// A hash of the room's hats, for `muc#roominfo` (XEP-0317 §2): SHA-1 of their URIs.
    pub(super) fn hats_hash(&self) -> Option<String> {
        if self.settings.hats.is_empty() {
            return None;
        }
        let mut uris: Vec<&str> = self.settings.hats.iter().map(|h| h.uri.as_str()).collect();
        uris.sort_unstable();
        Some(super::sha1_hex(uris.join("\n").as_bytes()))
    }

    /// An ad-hoc command to the room: `Ok` with the `<command/>` to answer.
    pub(super) async fn command(
        &mut self,
        from: &Jid,
        cmd: &Element,
    ) -> Result<Element, StanzaError> {
        let node = cmd.attr("node").unwrap_or_default();
        let Some(&(node, _)) = COMMANDS.iter().find(|(n, _)| *n == node) else {
            return Err(error(StanzaErrorCondition::ItemNotFound, "no such command"));
        };
        if cmd.attr("action") == Some("cancel") {
            return Ok(reply(node, cmd, "canceled"));
        }
        let affiliation = self.affiliation_of(&from.to_bare().to_string());
        let needed = match node {
            "urn:xmpp:hats:commands:create" | "urn:xmpp:hats:commands:destroy" => {
                Affiliation::Owner
            }
            "urn:xmpp:hats:commands:assign" | "urn:xmpp:hats:commands:unassign" => {
                Affiliation::Admin
            }
            _ if self.settings.members_only => Affiliation::Member,
            _ => Affiliation::None,
        };
        if affiliation < needed {
            return Err(error(
                StanzaErrorCondition::Forbidden,
                "you may not use this command here",
            ));
        }
        let submitted = cmd
            .get_child("x", ns::DATA_FORMS)
            .map(DataForm::parse)
            .transpose()
            .map_err(|e| error(StanzaErrorCondition::BadRequest, &e.to_string()))?
            .filter(|f| f.kind == FormKind::Submit);
        match (node, submitted) {
            ("urn:xmpp:hats:commands:list", _) => {
                Ok(reply(node, cmd, "completed").with_child(self.list_form(false)))
            }
            ("urn:xmpp:hats:commands:list-assigned", _) => {
                Ok(reply(node, cmd, "completed").with_child(self.list_form(true)))
            }
            (_, None) => {
                Ok(reply(node, cmd, "executing").with_child(self.command_form(node).to_element()))
            }
            (_, Some(form)) => {
                self.run_command(node, &form).await?;
                Ok(reply(node, cmd, "completed"))
            }
        }
    }

    /// The form a command asks to be filled.
    fn command_form(&self, node: &str) -> DataForm {
        let hat_list = |var: &str| {
            let mut f = Field::list_single(var).label("Hat").required();
            for h in &self.settings.hats {
                f = f.option(Some(&h.title), &h.uri);
            }
            f
        };
        let form = DataForm::form(Some(FORM_TYPE));
        match node {
            "urn:xmpp:hats:commands:create" => form
                .title("Creating a Hat")
                .field(
                    Field::text_single("hats#title")
                        .label("Hat Title")
                        .required(),
                )
                .field(Field::text_single("hats#uri").label("Hat URI").required())
                .field(Field::text_single("hats#hue").label("Hat Hue")),
            "urn:xmpp:hats:commands:destroy" => {
                form.title("Destroying a Hat").field(hat_list("hats#uri"))
            }
            _ => form
                .title(if node.ends_with(":assign") {
                    "Giving a Hat"
                } else {
                    "Taking a Hat"
                })
                .field(Field::jid_single("hats#jid").label("JID").required())
                .field(hat_list("hats#uri")),
        }
    }

    /// The hats (or, `assigned`, who wears which) as a `result` form with `<reported/>` and
    /// `<item/>`s (XEP-0004 §3.4).
    fn list_form(&self, assigned: bool) -> Element {
        let vars: &[&str] = if assigned {
            &["hats#jid", "hats#uri", "hats#title", "hats#hue"]
        } else {
            &["hats#title", "hats#uri", "hats#hue"]
        };
        let title = if assigned {
            "Assigned Hats List"
        } else {
            "Hats List"
        };
        let mut x = Element::new("x", ns::DATA_FORMS)
            .with_attr("type", "result")
            .with_child(Element::new("title", ns::DATA_FORMS).with_text(title));
        let mut reported = Element::new("reported", ns::DATA_FORMS);
        for v in vars {
            reported.append_child(Element::new("field", ns::DATA_FORMS).with_attr("var", *v));
        }
        x.append_child(reported);
        let item = |jid: Option<&str>, h: &Hat| {
            let mut item = Element::new("item", ns::DATA_FORMS);
            let values = [
                ("hats#jid", jid),
                ("hats#uri", Some(h.uri.as_str())),
                ("hats#title", Some(h.title.as_str())),
                ("hats#hue", h.hue.as_deref()),
            ];
            for v in vars {
                let value = values.iter().find(|(n, _)| n == v).and_then(|(_, v)| *v);
                item.append_child(Field::plain(v).values(value).to_element());
            }
            item
        };
        if assigned {
            for (jid, uris) in &self.settings.worn {
                for h in self.settings.hats.iter().filter(|h| uris.contains(&h.uri)) {
                    x.append_child(item(Some(jid), h));
                }
            }
        } else {
            for h in &self.settings.hats {
                x.append_child(item(None, h));
            }
        }
        x
    }

    /// Does what a submitted command asks, stores it, and tells whom it concerns.
    async fn run_command(&mut self, node: &str, form: &DataForm) -> Result<(), StanzaError> {
        let before = self.settings.clone();
        let uri = field(form, "hats#uri")?.to_owned();
        let mut changed_jids: BTreeSet<String> = BTreeSet::new();
        match node {
            "urn:xmpp:hats:commands:create" => {
                let hat = Hat {
                    uri: uri.clone(),
                    title: field(form, "hats#title")?.to_owned(),
                    hue: form
                        .value("hats#hue")
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned),
                };
                if let Some(h) = hat.hue.as_deref()
                    && h.parse::<f64>()
                        .map_or(true, |a| !(0.0..360.0).contains(&a))
                {
                    return Err(error(
                        StanzaErrorCondition::BadRequest,
                        "a hue is an angle from 0 to 360",
                    ));
                }
                match self.settings.hats.iter_mut().find(|h| h.uri == uri) {
                    // §4.1: an existing URI updates the hat; its wearers' presence shows it.
                    Some(existing) => *existing = hat,
                    None => self.settings.hats.push(hat),
                }
                changed_jids.extend(self.wearers(&uri));
            }
            "urn:xmpp:hats:commands:destroy" => {
                if !self.settings.hats.iter().any(|h| h.uri == uri) {
                    return Err(error(StanzaErrorCondition::ItemNotFound, "no such hat"));
                }
                changed_jids.extend(self.wearers(&uri));
                self.settings.hats.retain(|h| h.uri != uri);
                for uris in self.settings.worn.values_mut() {
                    uris.remove(&uri);
                }
                self.settings.worn.retain(|_, uris| !uris.is_empty());
            }
            _ => {
                if !self.settings.hats.iter().any(|h| h.uri == uri) {
                    return Err(error(StanzaErrorCondition::ItemNotFound, "no such hat"));
                }
                let jid = Jid::new(field(form, "hats#jid")?)
                    .map_err(|_| error(StanzaErrorCondition::JidMalformed, "not a JID"))?
                    .to_bare()
                    .to_string();
                if node.ends_with(":assign") {
                    self.settings
                        .worn
                        .entry(jid.clone())
                        .or_default()
                        .insert(uri);
                } else if let Some(uris) = self.settings.worn.get_mut(&jid) {
                    uris.remove(&uri);
                    if uris.is_empty() {
                        self.settings.worn.remove(&jid);
                    }
                }
                changed_jids.insert(jid);
            }
        }
        if let Err(e) = self.persist().await {
            tracing::error!(error = %e, room = %self.jid, "storing the room's hats failed");
            self.settings = before;
            return Err(StanzaError::new(StanzaErrorCondition::InternalServerError));
        }
        self.hats_changed(&before, &changed_jids).await;
        Ok(())
    }

    /// The bare JIDs wearing the hat `uri`.
    fn wearers(&self, uri: &str) -> Vec<String> {
        self.settings
            .worn
            .iter()
            .filter(|(_, uris)| uris.contains(uri))
            .map(|(jid, _)| jid.clone())
            .collect()
    }

    /// §4: the list of hats changed (104 to everyone); the wearers present show their hats.
    async fn hats_changed(&self, before: &Settings, jids: &BTreeSet<String>) {
        if before.hats != self.settings.hats {
            self.config_changed(&[104]).await;
        }
        let nicks: Vec<String> = self
            .occupants
            .values()
            .filter(|o| jids.contains(o.bare.as_str()))
            .map(|o| o.nick.clone())
            .collect();
        for nick in nicks {
            self.broadcast_presence(&nick, &Change::default(), false)
                .await;
        }
    }
}

/// The `<command/>` of an answer, in `status`, echoing the session id (or making one).
fn reply(node: &str, cmd: &Element, status: &str) -> Element {
    Element::new("command", NS_COMMANDS)
        .with_attr("node", node)
        .with_attr(
            "sessionid",
            cmd.attr("sessionid").map_or_else(random_id, str::to_owned),
        )
        .with_attr("status", status)
}
