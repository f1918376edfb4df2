//! A room's configuration (XEP-0045 §10.2): what the `muc#roomconfig` form shows and takes, how
//! it is stored ([`RoomConfig`], data-form field values), and the `muc#roominfo` form and
//! features that service discovery shows of it (§6.4, §15.5.4).

use starling_module_api::forms::{DataForm, Field};
use starling_proto::{Element, StanzaError, StanzaErrorCondition};
use starling_storage::RoomConfig;

pub const FORM_TYPE: &str = "http://jabber.org/protocol/muc#roomconfig";
pub const ROOMINFO: &str = "http://jabber.org/protocol/muc#roominfo";

/// The configuration field naming the room's occupant-id key: never shown, kept with the rest so
/// that a persistent room's occupant ids (XEP-0421) survive restarts.
const SECRET_FIELD: &str = "x-starling#occupant-id-key";
/// The configuration field holding the room's vCard (XEP-0486 room avatars), as XML.
const VCARD_FIELD: &str = "x-starling#vcard";
/// The configuration fields holding the room's hats (XEP-0317), one `<hat uri title hue/>` per
/// value, and who wears them, one `<hat jid uri/>` per value.
const HATS_FIELD: &str = "x-starling#hats";
const WORN_FIELD: &str = "x-starling#hats-worn";

/// A hat (XEP-0317 §3): a role of the room's own, named by its URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hat {
    pub uri: String,
    pub title: String,
    /// A hue angle for display, as given.
    pub hue: Option<String>,
}

/// Who may send private messages through the room (`muc#roomconfig_allowpm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowPm {
    Anyone,
    Participants,
    Moderators,
    Nobody,
}

impl AllowPm {
    fn as_str(self) -> &'static str {
        match self {
            AllowPm::Anyone => "anyone",
            AllowPm::Participants => "participants",
            AllowPm::Moderators => "moderators",
            AllowPm::Nobody => "none",
        }
    }

    fn parse(s: &str) -> Option<AllowPm> {
        Some(match s {
            "anyone" => AllowPm::Anyone,
            "participants" => AllowPm::Participants,
            "moderators" => AllowPm::Moderators,
            "none" => AllowPm::Nobody,
            _ => return None,
        })
    }
}

/// What a room's owners configure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub name: String,
    pub description: String,
    /// Kept when the last occupant leaves, and across restarts.
    pub persistent: bool,
    /// Listed in the service's disco#items (§6.3).
    pub public: bool,
    /// Only members (and admins, owners) may enter (§7.2.7).
    pub members_only: bool,
    /// Entering requires this password (§7.2.6).
    pub password: Option<String>,
    /// Only occupants with voice may send to everyone (§8.3).
    pub moderated: bool,
    /// Everyone sees occupants' real JIDs (non-anonymous, §7.2.4); otherwise only moderators do
    /// (semi-anonymous).
    pub whois_anyone: bool,
    /// Most occupants (admins and owners may enter beyond it, §7.2.10).
    pub max_users: u32,
    /// Most messages of history sent on entering (§7.2.15).
    pub history_length: u32,
    pub allow_pm: AllowPm,
    /// Occupants who are not admins may invite (§7.8.2).
    pub allow_invites: bool,
    /// Participants may change the subject, not only moderators (§8.1).
    pub change_subject: bool,
    /// Groupchat messages are archived (XEP-0313 on the room's JID).
    pub archiving: bool,
    /// The key occupant ids are derived from (XEP-0421 §5).
    pub occupant_id_key: String,
    /// The room's vCard (XEP-0054, XEP-0486), as owners set it; XML text.
    pub vcard: Option<String>,
    /// The room's hats (XEP-0317), in creation order.
    pub hats: Vec<Hat>,
    /// Which bare JIDs wear which hats (by URI).
    pub worn: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

/// The service's defaults and bounds for room settings.
#[derive(Clone, Copy, Debug)]
pub struct SettingsLimits {
    /// `max_users` of a new room, and the most it may be set to.
    pub max_users: u32,
    /// `history_length` of a new room.
    pub history_length: u32,
    /// The most `history_length` may be set to.
    pub max_history: u32,
    /// Whether a new room archives its messages.
    pub archiving: bool,
}

impl Settings {
    /// A new room's configuration: temporary, public, open, semi-anonymous, unmoderated,
    /// archived unless the service says otherwise.
    pub fn new(limits: &SettingsLimits, name: &str) -> Settings {
        Settings {
            name: name.to_owned(),
            description: String::new(),
            persistent: false,
            public: true,
            members_only: false,
            password: None,
            moderated: false,
            whois_anyone: false,
            max_users: limits.max_users,
            history_length: limits.history_length.min(limits.max_history),
            allow_pm: AllowPm::Anyone,
            allow_invites: false,
            change_subject: false,
            archiving: limits.archiving,
            occupant_id_key: starling_module_api::random_id(),
            vcard: None,
            hats: Vec::new(),
            worn: std::collections::BTreeMap::new(),
        }
    }

    /// The configuration as stored. Every field is written, so that a later change of the
    /// service's defaults leaves existing rooms as they were.
    pub fn to_stored(&self) -> RoomConfig {
        let b = |v: bool| vec![if v { "1" } else { "0" }.to_owned()];
        let s = |v: &str| vec![v.to_owned()];
        let mut c = vec![
            ("muc#roomconfig_roomname".to_owned(), s(&self.name)),
            ("muc#roomconfig_roomdesc".to_owned(), s(&self.description)),
            (
                "muc#roomconfig_persistentroom".to_owned(),
                b(self.persistent),
            ),
            ("muc#roomconfig_publicroom".to_owned(), b(self.public)),
            (
                "muc#roomconfig_membersonly".to_owned(),
                b(self.members_only),
            ),
            ("muc#roomconfig_moderatedroom".to_owned(), b(self.moderated)),
            (
                "muc#roomconfig_whois".to_owned(),
                s(if self.whois_anyone {
                    "anyone"
                } else {
                    "moderators"
                }),
            ),
            (
                "muc#roomconfig_maxusers".to_owned(),
                s(&self.max_users.to_string()),
            ),
            (
                "muc#maxhistoryfetch".to_owned(),
                s(&self.history_length.to_string()),
            ),
            (
                "muc#roomconfig_allowpm".to_owned(),
                s(self.allow_pm.as_str()),
            ),
            (
                "muc#roomconfig_allowinvites".to_owned(),
                b(self.allow_invites),
            ),
            (
                "muc#roomconfig_changesubject".to_owned(),
                b(self.change_subject),
            ),
            (
                "muc#roomconfig_enablearchiving".to_owned(),
                b(self.archiving),
            ),
            (SECRET_FIELD.to_owned(), s(&self.occupant_id_key)),
        ];
        if let Some(p) = &self.password {
            c.push(("muc#roomconfig_passwordprotectedroom".to_owned(), b(true)));
            c.push(("muc#roomconfig_roomsecret".to_owned(), s(p)));
        }
        if let Some(v) = &self.vcard {
            c.push((VCARD_FIELD.to_owned(), s(v)));
        }
        if !self.hats.is_empty() {
            let hats = self.hats.iter().map(|h| {
                Element::new("hat", crate::NS_HATS)
                    .with_attr("uri", h.uri.as_str())
                    .with_attr("title", h.title.as_str())
                    .with_opt_attr("hue", h.hue.as_deref())
                    .to_xml()
            });
            c.push((HATS_FIELD.to_owned(), hats.collect()));
            let worn = self.worn.iter().flat_map(|(jid, uris)| {
                uris.iter().map(move |uri| {
                    Element::new("hat", crate::NS_HATS)
                        .with_attr("jid", jid.as_str())
                        .with_attr("uri", uri.as_str())
                        .to_xml()
                })
            });
            c.push((WORN_FIELD.to_owned(), worn.collect()));
        }
        c
    }

    /// A stored configuration read back; fields it lacks or cannot be read keep the defaults.
    pub fn from_stored(config: &RoomConfig, limits: &SettingsLimits) -> Settings {
        let mut s = Settings::new(limits, "");
        s.password = None;
        let mut protected = false;
        for (var, values) in config {
            let v = values.first().map(String::as_str).unwrap_or("");
            if var == SECRET_FIELD {
                if !v.is_empty() {
                    s.occupant_id_key = v.to_owned();
                }
                continue;
            }
            if var == "muc#roomconfig_passwordprotectedroom" {
                protected = parse_bool(v).unwrap_or(false);
                continue;
            }
            if var == VCARD_FIELD {
                s.vcard = (!v.is_empty()).then(|| v.to_owned());
                continue;
            }
            if var == HATS_FIELD || var == WORN_FIELD {
                for hat in values
                    .iter()
                    .filter_map(|x| starling_module_api::parse_stored(x).ok())
                {
                    let (Some(uri), title, jid) =
                        (hat.attr("uri"), hat.attr("title"), hat.attr("jid"))
                    else {
                        continue;
                    };
                    match (var == HATS_FIELD, title, jid) {
                        (true, Some(title), _) => s.hats.push(Hat {
                            uri: uri.to_owned(),
                            title: title.to_owned(),
                            hue: hat.attr("hue").map(str::to_owned),
                        }),
                        (false, _, Some(jid)) => {
                            s.worn
                                .entry(jid.to_owned())
                                .or_default()
                                .insert(uri.to_owned());
                        }
                        _ => {}
                    }
                }
                continue;
            }
            // A stored value the service no longer allows is clamped, not refused: the room
            // stays usable.
            let _ = s.set(var, values, limits, true);
        }
        if !protected {
            s.password = None;
        }
        s
    }

    /// Applies a submitted `muc#roomconfig` form (§10.2): only the fields it carries change.
    /// Unknown fields are ignored (a client may send fields of another server's form); a value
    /// that is not one of the field's is `<not-acceptable/>`, and then nothing changes.
    pub fn apply(&mut self, form: &DataForm, limits: &SettingsLimits) -> Result<(), StanzaError> {
        let mut next = self.clone();
        let mut protected = None;
        for field in &form.fields {
            let Some(var) = field.var.as_deref() else {
                continue;
            };
            if var == "muc#roomconfig_passwordprotectedroom" {
                let v = field.values.first().map(String::as_str).unwrap_or("");
                protected = Some(parse_bool(v).ok_or_else(|| unacceptable(var))?);
                continue;
            }
            if var.starts_with("x-starling#") {
                continue;
            }
            next.set(var, &field.values, limits, false)?;
        }
        match protected {
            Some(false) => next.password = None,
            // §10.2: a protected room needs a password.
            Some(true) if next.password.as_deref().is_none_or(str::is_empty) => {
                return Err(unacceptable("muc#roomconfig_roomsecret"));
            }
            _ => {}
        }
        *self = next;
        Ok(())
    }

    /// Sets one field. With `clamp`, numbers beyond the limits are brought within them;
    /// without, they are refused.
    fn set(
        &mut self,
        var: &str,
        values: &[String],
        limits: &SettingsLimits,
        clamp: bool,
    ) -> Result<(), StanzaError> {
        let v = values.first().map(String::as_str).unwrap_or("");
        let flag = || parse_bool(v).ok_or_else(|| unacceptable(var));
        let number = |max: u32| -> Result<u32, StanzaError> {
            let n = v.trim().parse::<u32>().map_err(|_| unacceptable(var))?;
            match (n > max, clamp) {
                (true, true) => Ok(max),
                (true, false) => Err(unacceptable(var)),
                (false, _) => Ok(n),
            }
        };
        match var {
            "muc#roomconfig_roomname" => self.name = v.to_owned(),
            "muc#roomconfig_roomdesc" => self.description = v.to_owned(),
            "muc#roomconfig_persistentroom" => self.persistent = flag()?,
            "muc#roomconfig_publicroom" => self.public = flag()?,
            "muc#roomconfig_membersonly" => self.members_only = flag()?,
            "muc#roomconfig_moderatedroom" => self.moderated = flag()?,
            "muc#roomconfig_roomsecret" => {
                self.password = (!v.is_empty()).then(|| v.to_owned());
            }
            "muc#roomconfig_whois" => {
                self.whois_anyone = match v {
                    "anyone" => true,
                    "moderators" => false,
                    _ => return Err(unacceptable(var)),
                }
            }
            "muc#roomconfig_maxusers" => {
                // "none" (no limit of the room's own) is the service's limit.
                self.max_users = if v == "none" || v.is_empty() {
                    limits.max_users
                } else {
                    number(limits.max_users)?.max(1)
                }
            }
            // COMPAT(Prosody): its form names the history length `muc#roomconfig_historylength`.
            "muc#maxhistoryfetch" | "muc#roomconfig_historylength" => {
                self.history_length = number(limits.max_history)?
            }
            "muc#roomconfig_allowpm" => {
                self.allow_pm = AllowPm::parse(v).ok_or_else(|| unacceptable(var))?
            }
            "muc#roomconfig_allowinvites" => self.allow_invites = flag()?,
            "muc#roomconfig_changesubject" => self.change_subject = flag()?,
            // COMPAT(ejabberd): `muc#roomconfig_enablelogging` is XEP-0045's public-log switch,
            // which clients also use for the archive.
            "muc#roomconfig_enablearchiving" | "muc#roomconfig_enablelogging" | "mam" => {
                self.archiving = flag()?
            }
            _ => {}
        }
        Ok(())
    }

    /// The configuration form an owner gets (§10.2), filled with the current values.
    pub fn form(&self, room: &str, limits: &SettingsLimits) -> DataForm {
        let boolean = |var: &str, label: &str, v: bool| {
            Field::boolean(var)
                .label(label)
                .value(if v { "1" } else { "0" })
        };
        let mut max_users = Field::list_single("muc#roomconfig_maxusers")
            .label("Maximum number of occupants")
            .value(self.max_users.to_string());
        // COMPAT(Profanity): labels are optional (XEP-0004 §3.3), but Profanity 0.13 shows
        // "(null)" for options without one.
        for n in [10, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000] {
            if n < limits.max_users {
                let n = n.to_string();
                max_users = max_users.option(Some(&n), &n);
            }
        }
        let most = limits.max_users.to_string();
        max_users = max_users.option(Some(&most), &most);
        DataForm::form(Some(FORM_TYPE))
            .title(&format!("Configuration of {room}"))
            .instructions("Complete this form to change the room's configuration.")
            .field(
                Field::text_single("muc#roomconfig_roomname")
                    .label("Name")
                    .value(self.name.as_str()),
            )
            .field(
                Field::text_single("muc#roomconfig_roomdesc")
                    .label("Description")
                    .value(self.description.as_str()),
            )
            .field(boolean(
                "muc#roomconfig_persistentroom",
                "Keep the room when the last occupant leaves",
                self.persistent,
            ))
            .field(boolean(
                "muc#roomconfig_publicroom",
                "List the room in the directory",
                self.public,
            ))
            .field(boolean(
                "muc#roomconfig_membersonly",
                "Only members may enter",
                self.members_only,
            ))
            .field(boolean(
                "muc#roomconfig_passwordprotectedroom",
                "A password is needed to enter",
                self.password.is_some(),
            ))
            .field(
                Field::text_private("muc#roomconfig_roomsecret")
                    .label("Password")
                    .value(self.password.clone().unwrap_or_default()),
            )
            .field(boolean(
                "muc#roomconfig_moderatedroom",
                "Only occupants with voice may speak",
                self.moderated,
            ))
            .field(
                Field::list_single("muc#roomconfig_whois")
                    .label("Who may discover real JIDs")
                    .option(Some("Moderators only"), "moderators")
                    .option(Some("Anyone"), "anyone")
                    .value(if self.whois_anyone {
                        "anyone"
                    } else {
                        "moderators"
                    }),
            )
            .field(max_users)
            .field(
                Field::text_single("muc#maxhistoryfetch")
                    .label(&format!(
                        "Messages of history sent on entering (at most {})",
                        limits.max_history
                    ))
                    .value(self.history_length.to_string()),
            )
            .field(
                Field::list_single("muc#roomconfig_allowpm")
                    .label("Who may send private messages")
                    .option(Some("Anyone"), "anyone")
                    .option(Some("Participants"), "participants")
                    .option(Some("Moderators"), "moderators")
                    .option(Some("Nobody"), "none")
                    .value(self.allow_pm.as_str()),
            )
            .field(boolean(
                "muc#roomconfig_allowinvites",
                "Occupants may invite others",
                self.allow_invites,
            ))
            .field(boolean(
                "muc#roomconfig_changesubject",
                "Occupants may change the subject",
                self.change_subject,
            ))
            .field(boolean(
                "muc#roomconfig_enablearchiving",
                "Archive the room's messages",
                self.archiving,
            ))
    }

    /// The room's disco#info features (§6.4, §15.6.1).
    pub fn features(&self) -> [&'static str; 6] {
        [
            if self.public {
                "muc_public"
            } else {
                "muc_hidden"
            },
            if self.persistent {
                "muc_persistent"
            } else {
                "muc_temporary"
            },
            if self.members_only {
                "muc_membersonly"
            } else {
                "muc_open"
            },
            if self.moderated {
                "muc_moderated"
            } else {
                "muc_unmoderated"
            },
            if self.whois_anyone {
                "muc_nonanonymous"
            } else {
                "muc_semianonymous"
            },
            if self.password.is_some() {
                "muc_passwordprotected"
            } else {
                "muc_unsecured"
            },
        ]
    }
}

/// An XML Schema boolean.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn unacceptable(var: &str) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::NotAcceptable).with_text(format!(
        "the value of '{var}' is not one this service accepts"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SettingsLimits = SettingsLimits {
        max_users: 200,
        history_length: 20,
        max_history: 50,
        archiving: true,
    };

    fn submit(fields: &[(&str, &str)]) -> DataForm {
        let mut f = DataForm::submit(Some(FORM_TYPE));
        for (var, v) in fields {
            f = f.field(Field::plain(var).value(*v));
        }
        f
    }

    #[test]
    fn stored_round_trip() {
        let mut s = Settings::new(&LIMITS, "lobby");
        s.apply(
            &submit(&[
                ("muc#roomconfig_persistentroom", "1"),
                ("muc#roomconfig_passwordprotectedroom", "1"),
                ("muc#roomconfig_roomsecret", "cauldron"),
                ("muc#roomconfig_whois", "anyone"),
                ("muc#roomconfig_maxusers", "30"),
                ("muc#roomconfig_allowpm", "moderators"),
            ]),
            &LIMITS,
        )
        .unwrap();
        s.vcard = Some("<vCard xmlns='vcard-temp'><FN>Lobby</FN></vCard>".into());
        s.hats.push(Hat {
            uri: "urn:example:hats#host".into(),
            title: "Host <& co>".into(),
            hue: Some("120".into()),
        });
        s.worn
            .entry("juliet@capulet.lit".into())
            .or_default()
            .insert("urn:example:hats#host".into());
        let back = Settings::from_stored(&s.to_stored(), &LIMITS);
        assert_eq!(back, s);
        assert_eq!(back.password.as_deref(), Some("cauldron"));
        assert_eq!(back.max_users, 30);
    }

    /// XEP-0045 §10.2: a value the service cannot take is `<not-acceptable/>`, and nothing of
    /// the form is applied.
    #[test]
    fn bad_values_change_nothing() {
        let mut s = Settings::new(&LIMITS, "lobby");
        let before = s.clone();
        for bad in [
            ("muc#roomconfig_maxusers", "201"),
            ("muc#maxhistoryfetch", "51"),
            ("muc#roomconfig_whois", "everybody"),
            ("muc#roomconfig_publicroom", "maybe"),
        ] {
            let e = s
                .apply(&submit(&[("muc#roomconfig_roomname", "x"), bad]), &LIMITS)
                .unwrap_err();
            assert_eq!(e.condition, StanzaErrorCondition::NotAcceptable);
            assert_eq!(s, before);
        }
        // A protected room without a password.
        let e = s
            .apply(
                &submit(&[("muc#roomconfig_passwordprotectedroom", "1")]),
                &LIMITS,
            )
            .unwrap_err();
        assert_eq!(e.condition, StanzaErrorCondition::NotAcceptable);
        // Unknown fields are ignored.
        s.apply(&submit(&[("muc#roomconfig_lang", "en")]), &LIMITS)
            .unwrap();
        assert_eq!(s, before);
    }

    #[test]
    fn features_follow_the_settings() {
        let mut s = Settings::new(&LIMITS, "lobby");
        assert_eq!(
            s.features(),
            [
                "muc_public",
                "muc_temporary",
                "muc_open",
                "muc_unmoderated",
                "muc_semianonymous",
                "muc_unsecured"
            ]
        );
        s.members_only = true;
        s.password = Some("p".into());
        assert!(s.features().contains(&"muc_membersonly"));
        assert!(s.features().contains(&"muc_passwordprotected"));
    }
}
