//! A node's configuration (XEP-0060 §16.4.4, `pubsub#node_config`): the typed options the
//! engine acts on, their defaults for PEP (XEP-0163 §8) and for a pubsub service, the
//! configuration form (§8.2), and the comparison publish-options preconditions make (§7.1.5).
//!
//! What is stored is every option as data-form values ([`NodeConfig`]), written by
//! [`NodeConfiguration::to_stored`] and read back by [`NodeConfiguration::from_stored`], which
//! falls back to the defaults for an option it does not find (a node stored by an older version).

use starling_module_api::forms::{DataForm, Field, FieldType};
use starling_proto::{StanzaError, StanzaErrorCondition};
use starling_storage::NodeConfig;

/// `FORM_TYPE` of a node configuration form.
pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
/// `FORM_TYPE` of publish-options (XEP-0060 §7.1.5).
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// Who may subscribe and retrieve items (XEP-0060 §4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessModel {
    Open,
    /// Entities subscribed to the owner's presence (PEP only).
    Presence,
    /// Entities in the owner's roster groups `roster_groups_allowed` (PEP only).
    Roster,
    /// Entities with an affiliation (`member`, `publisher`, `owner`).
    Whitelist,
}

impl AccessModel {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessModel::Open => "open",
            AccessModel::Presence => "presence",
            AccessModel::Roster => "roster",
            AccessModel::Whitelist => "whitelist",
        }
    }

    fn parse(s: &str) -> Option<AccessModel> {
        Some(match s {
            "open" => AccessModel::Open,
            "presence" => AccessModel::Presence,
            "roster" => AccessModel::Roster,
            "whitelist" => AccessModel::Whitelist,
            _ => return None,
        })
    }
}

/// Who may publish (XEP-0060 §16.4.4 `pubsub#publish_model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishModel {
    /// Owners and publishers.
    Publishers,
    /// Subscribers too.
    Subscribers,
    /// Anyone.
    Open,
}

impl PublishModel {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishModel::Publishers => "publishers",
            PublishModel::Subscribers => "subscribers",
            PublishModel::Open => "open",
        }
    }

    fn parse(s: &str) -> Option<PublishModel> {
        Some(match s {
            "publishers" => PublishModel::Publishers,
            "subscribers" => PublishModel::Subscribers,
            "open" => PublishModel::Open,
            _ => return None,
        })
    }
}

/// When the last item goes to an entity (XEP-0060 §12.19).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendLast {
    Never,
    OnSub,
    OnSubAndPresence,
}

impl SendLast {
    pub fn as_str(self) -> &'static str {
        match self {
            SendLast::Never => "never",
            SendLast::OnSub => "on_sub",
            SendLast::OnSubAndPresence => "on_sub_and_presence",
        }
    }

    fn parse(s: &str) -> Option<SendLast> {
        Some(match s {
            "never" => SendLast::Never,
            "on_sub" => SendLast::OnSub,
            "on_sub_and_presence" => SendLast::OnSubAndPresence,
            _ => return None,
        })
    }
}

/// How many items a node keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxItems {
    /// As many as the server allows (XEP-0060 §16.4.4, `max`; the per-node limit).
    Max,
    Count(u64),
}

impl MaxItems {
    fn to_value(self) -> String {
        match self {
            MaxItems::Max => "max".to_owned(),
            MaxItems::Count(n) => n.to_string(),
        }
    }

    fn parse(s: &str) -> Option<MaxItems> {
        if s == "max" {
            Some(MaxItems::Max)
        } else {
            s.trim().parse().ok().map(MaxItems::Count)
        }
    }

    /// The number of items kept under the server's per-node `limit`.
    pub fn effective(self, limit: u64) -> u64 {
        match self {
            MaxItems::Max => limit,
            MaxItems::Count(n) => n.min(limit),
        }
    }
}

/// The options the engine acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfiguration {
    pub access_model: AccessModel,
    pub publish_model: PublishModel,
    pub max_items: MaxItems,
    pub persist_items: bool,
    pub send_last_published_item: SendLast,
    pub deliver_notifications: bool,
    pub deliver_payloads: bool,
    pub notify_retract: bool,
    pub notify_delete: bool,
    pub roster_groups_allowed: Vec<String>,
    pub title: String,
    /// `pubsub#type`: the payload's namespace, informational.
    pub payload_type: String,
    /// `headline` or `normal` (XEP-0060 §12.22 `pubsub#notification_type`).
    pub notification_type: &'static str,
}

impl NodeConfiguration {
    /// PEP's defaults (XEP-0163 §4.3.4 and §8: presence access, the last item on presence, one
    /// item kept).
    pub fn pep_default() -> Self {
        NodeConfiguration {
            access_model: AccessModel::Presence,
            publish_model: PublishModel::Publishers,
            max_items: MaxItems::Count(1),
            persist_items: true,
            send_last_published_item: SendLast::OnSubAndPresence,
            deliver_notifications: true,
            deliver_payloads: true,
            notify_retract: true,
            notify_delete: true,
            roster_groups_allowed: Vec::new(),
            title: String::new(),
            payload_type: String::new(),
            notification_type: "headline",
        }
    }

    /// A pubsub service's defaults: open access, the last item on subscription, 20 items.
    pub fn service_default() -> Self {
        NodeConfiguration {
            access_model: AccessModel::Open,
            max_items: MaxItems::Count(20),
            send_last_published_item: SendLast::OnSub,
            ..Self::pep_default()
        }
    }

    /// The stored form of this configuration.
    pub fn to_stored(&self) -> NodeConfig {
        self.fields()
            .into_iter()
            .filter_map(|f| f.var.map(|v| (v, f.values)))
            .collect()
    }

    /// A stored configuration; options missing (or unreadable) keep `defaults`.
    pub fn from_stored(stored: &NodeConfig, defaults: &NodeConfiguration) -> Self {
        let mut config = defaults.clone();
        for (var, values) in stored {
            // A stored value always passed `set` once.
            let _ = config.set(var, values, true);
        }
        config
    }

    /// Sets one option from its form values. `allow_personal`: the `presence` and `roster`
    /// access models exist (PEP, not a pubsub service).
    fn set(
        &mut self,
        var: &str,
        values: &[String],
        allow_personal: bool,
    ) -> Result<(), ConfigError> {
        let one = || values.first().map(String::as_str).unwrap_or("");
        let bad = || ConfigError::BadValue(var.to_owned());
        match var {
            "pubsub#access_model" => {
                let model = AccessModel::parse(one()).ok_or_else(bad)?;
                if !allow_personal && matches!(model, AccessModel::Presence | AccessModel::Roster) {
                    return Err(bad());
                }
                self.access_model = model;
            }
            "pubsub#publish_model" => {
                self.publish_model = PublishModel::parse(one()).ok_or_else(bad)?
            }
            "pubsub#max_items" => self.max_items = MaxItems::parse(one()).ok_or_else(bad)?,
            "pubsub#persist_items" => self.persist_items = boolean(one()).ok_or_else(bad)?,
            "pubsub#send_last_published_item" => {
                self.send_last_published_item = SendLast::parse(one()).ok_or_else(bad)?
            }
            "pubsub#deliver_notifications" => {
                self.deliver_notifications = boolean(one()).ok_or_else(bad)?
            }
            "pubsub#deliver_payloads" => self.deliver_payloads = boolean(one()).ok_or_else(bad)?,
            "pubsub#notify_retract" => self.notify_retract = boolean(one()).ok_or_else(bad)?,
            "pubsub#notify_delete" => self.notify_delete = boolean(one()).ok_or_else(bad)?,
            "pubsub#roster_groups_allowed" => self.roster_groups_allowed = values.to_vec(),
            "pubsub#title" => self.title = one().to_owned(),
            "pubsub#type" => self.payload_type = one().to_owned(),
            "pubsub#notification_type" => {
                self.notification_type = match one() {
                    "headline" => "headline",
                    "normal" => "normal",
                    _ => return Err(bad()),
                }
            }
            _ => return Err(ConfigError::Unknown(var.to_owned())),
        }
        Ok(())
    }

    /// This configuration with a submitted form applied (XEP-0060 §8.2.4, and publish-options
    /// at auto-create, §7.1.5); `FORM_TYPE` is skipped. Every option is checked before any
    /// applies.
    pub fn apply(&self, form: &DataForm, allow_personal: bool) -> Result<Self, ConfigError> {
        let mut config = self.clone();
        for field in &form.fields {
            let Some(var) = field.var.as_deref() else {
                continue;
            };
            if var == "FORM_TYPE" {
                continue;
            }
            config.set(var, &field.values, allow_personal)?;
        }
        Ok(config)
    }

    /// Whether the node meets the preconditions of `options` (XEP-0060 §7.1.5): each option
    /// given has the value the node has. An option the node does not know is not met.
    pub fn meets(&self, options: &DataForm, allow_personal: bool) -> bool {
        match self.apply(options, allow_personal) {
            Ok(applied) => applied == *self,
            Err(_) => false,
        }
    }

    /// The configuration form (XEP-0060 §8.2.1). Without `allow_personal` (a pubsub service),
    /// neither the `presence` and `roster` access models nor `roster_groups_allowed` are shown.
    pub fn form(&self, allow_personal: bool) -> DataForm {
        self.offered(allow_personal)
            .into_iter()
            .fold(DataForm::form(Some(NODE_CONFIG)), DataForm::field)
    }

    /// The options as fields of the node meta-data form (XEP-0060 §5.4): the values as
    /// configured, without the choices.
    pub fn metadata_fields(&self, allow_personal: bool) -> Vec<Field> {
        self.offered(allow_personal)
            .into_iter()
            .map(|mut f| {
                f.options.clear();
                f
            })
            .collect()
    }

    fn offered(&self, allow_personal: bool) -> Vec<Field> {
        let mut fields = self.fields();
        if !allow_personal {
            fields.retain(|f| f.var.as_deref() != Some("pubsub#roster_groups_allowed"));
            for field in &mut fields {
                if field.var.as_deref() == Some("pubsub#access_model") {
                    field
                        .options
                        .retain(|(_, v)| !matches!(v.as_str(), "presence" | "roster"));
                }
            }
        }
        fields
    }

    /// Every option as a form field with its value and choices.
    fn fields(&self) -> Vec<Field> {
        let list = |var: &str, label: &str, value: &str, choices: &[&str]| {
            choices
                .iter()
                .fold(Field::list_single(var).label(label).value(value), |f, c| {
                    f.option(None, c)
                })
        };
        let flag = |var: &str, label: &str, on: bool| {
            Field::boolean(var)
                .label(label)
                .value(if on { "1" } else { "0" })
        };
        vec![
            list(
                "pubsub#access_model",
                "Who may subscribe and retrieve items",
                self.access_model.as_str(),
                &["open", "presence", "roster", "whitelist"],
            ),
            list(
                "pubsub#publish_model",
                "Who may publish",
                self.publish_model.as_str(),
                &["publishers", "subscribers", "open"],
            ),
            Field::text_single("pubsub#max_items")
                .label("Most items kept (or max)")
                .value(self.max_items.to_value()),
            flag("pubsub#persist_items", "Keep items", self.persist_items),
            list(
                "pubsub#send_last_published_item",
                "When to send the last item",
                self.send_last_published_item.as_str(),
                &["never", "on_sub", "on_sub_and_presence"],
            ),
            flag(
                "pubsub#deliver_notifications",
                "Send notifications",
                self.deliver_notifications,
            ),
            flag(
                "pubsub#deliver_payloads",
                "Send payloads with notifications",
                self.deliver_payloads,
            ),
            flag(
                "pubsub#notify_retract",
                "Notify when items are retracted",
                self.notify_retract,
            ),
            flag(
                "pubsub#notify_delete",
                "Notify when the node is deleted",
                self.notify_delete,
            ),
            Field::new(FieldType::ListMulti, "pubsub#roster_groups_allowed")
                .label("Roster groups allowed (access model roster)")
                .values(self.roster_groups_allowed.iter().cloned()),
            Field::text_single("pubsub#title")
                .label("Title")
                .value(self.title.clone()),
            Field::text_single("pubsub#type")
                .label("Payload type")
                .value(self.payload_type.clone()),
            list(
                "pubsub#notification_type",
                "Message type of notifications",
                self.notification_type,
                &["headline", "normal"],
            ),
        ]
    }
}

/// XEP-0004 §3.3 boolean.
fn boolean(s: &str) -> Option<bool> {
    match s {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// Why a configuration form cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unsupported configuration option {0}")]
    Unknown(String),
    #[error("invalid value for {0}")]
    BadValue(String),
}

impl ConfigError {
    /// XEP-0060 §8.2.5.3: `<not-acceptable/>` for a form the node cannot take.
    pub fn to_stanza_error(&self) -> StanzaError {
        StanzaError::new(StanzaErrorCondition::NotAcceptable).with_text(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(fields: &[(&str, &str)]) -> DataForm {
        fields.iter().fold(
            DataForm::submit(Some(PUBLISH_OPTIONS)),
            |form, (var, value)| form.field(Field::plain(var).value(*value)),
        )
    }

    #[test]
    fn stored_configuration_reads_back_the_same() {
        let mut config = NodeConfiguration::pep_default();
        config.access_model = AccessModel::Roster;
        config.roster_groups_allowed = vec!["Friends".into(), "Family".into()];
        config.max_items = MaxItems::Max;
        let stored = config.to_stored();
        assert_eq!(
            NodeConfiguration::from_stored(&stored, &NodeConfiguration::service_default()),
            config
        );
    }

    #[test]
    fn preconditions_compare_values_not_spelling() {
        // XEP-0060 §7.1.5: the node's configuration is what the options are compared with;
        // XEP-0004 booleans are "1" or "true".
        let config = NodeConfiguration::pep_default();
        assert!(config.meets(
            &options(&[("pubsub#persist_items", "true"), ("pubsub#max_items", "1")]),
            true
        ));
        assert!(!config.meets(&options(&[("pubsub#access_model", "open")]), true));
        assert!(!config.meets(&options(&[("pubsub#max_items", "max")]), true));
        assert!(!config.meets(&options(&[("pubsub#no_such_option", "1")]), true));
    }

    #[test]
    fn personal_access_models_are_pep_only() {
        let service = NodeConfiguration::service_default();
        assert_eq!(
            service.apply(&options(&[("pubsub#access_model", "presence")]), false),
            Err(ConfigError::BadValue("pubsub#access_model".into()))
        );
        assert!(
            service
                .apply(&options(&[("pubsub#access_model", "whitelist")]), false)
                .is_ok()
        );
    }

    #[test]
    fn max_is_the_server_limit() {
        assert_eq!(MaxItems::Max.effective(1000), 1000);
        assert_eq!(MaxItems::Count(5000).effective(1000), 1000);
        assert_eq!(MaxItems::Count(3).effective(1000), 3);
    }
}
