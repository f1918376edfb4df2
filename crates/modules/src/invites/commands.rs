//! XEP-0401 ad-hoc commands that make invitations (§3): `urn:xmpp:invite#invite` for every user
//! (a contact invitation, §5.1) and `urn:xmpp:invite#create-account` for administrators (an
//! account invitation, §5.4). Both store the invitation through `starling_accounts::invites`,
//! as `starling invite create` does, and answer with the `urn:xmpp:invite#invitation` result
//! form: the `uri` and, since every invitation expires, the `expire` date-time (XEP-0082).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use starling_accounts::invites::{CreatedInvite, InviteRequest, create_invite, register_uri};
use starling_accounts::new_localpart;
use starling_module_api::Context;
use starling_module_api::commands::{AdhocCommand, Note, Requester, Step};
use starling_module_api::forms::{DataForm, Field};
use starling_proto::{StanzaError, StanzaErrorCondition, clock};

/// The result form's FORM_TYPE (XEP-0401 §5.1).
pub const FORM_TYPE: &str = "urn:xmpp:invite#invitation";

/// What the invitation commands may make, from `[registration]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InviteOptions {
    /// Whether invitations can be redeemed to register (`mode` is not "off").
    pub registration: bool,
    /// Whether users' contact invitations may register (`user_invites`).
    pub user_invites: bool,
    /// How long an invitation made by a command is valid.
    pub lifetime: Duration,
}

impl Default for InviteOptions {
    fn default() -> Self {
        InviteOptions {
            registration: true,
            user_invites: true,
            lifetime: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The requester's account as `(localpart, domain)`; commands here are for local accounts.
fn own_account(r: &Requester) -> Option<(String, String)> {
    let a = r.account.as_ref()?;
    Some((
        a.node()?.as_str().to_owned(),
        a.domain().as_str().to_owned(),
    ))
}

async fn store(ctx: &Context, req: &InviteRequest) -> Result<CreatedInvite, StanzaError> {
    create_invite(
        ctx.stores.invites.as_ref(),
        req,
        starling_accounts::unix_now(),
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "cannot create an invitation");
        StanzaError::new(StanzaErrorCondition::InternalServerError)
    })
}

/// The completed command's result with `uri` (XEP-0401 §5.1).
fn result(created: &CreatedInvite, uri: String) -> Step {
    Step::result(
        DataForm::result(Some(FORM_TYPE))
            .field(Field::text_single("uri").value(uri))
            .field(
                Field::text_single("expire").value(clock::format_unix(created.invite.expires_at)),
            ),
    )
}

/// `urn:xmpp:invite#invite`: any user invites a contact (XEP-0401 §5.1), except the guests of
/// anonymous hosts (their accounts last one session).
pub struct InviteUser {
    pub options: InviteOptions,
    /// The anonymous hosts.
    pub guest_hosts: Arc<[String]>,
}

#[async_trait]
impl AdhocCommand for InviteUser {
    fn node(&self) -> &str {
        "urn:xmpp:invite#invite"
    }

    fn name(&self) -> &str {
        "Invite user"
    }

    fn allowed(&self, r: &Requester) -> bool {
        r.account
            .as_ref()
            .is_some_and(|a| !self.guest_hosts.iter().any(|h| h == a.domain().as_str()))
    }

    async fn execute(&self, ctx: &Context, r: &Requester, _submitted: &[DataForm]) -> Step {
        let Some((local, domain)) = own_account(r) else {
            return Step::Error(StanzaError::new(StanzaErrorCondition::Forbidden));
        };
        // §5.1: "If the server does not support or allow in-band registration for invited
        // users, the server MUST omit the ibr=y query component": a contact-only invitation.
        let register = self.options.registration && (self.options.user_invites || r.admin);
        let req = InviteRequest {
            domain: domain.clone(),
            username: None,
            contact: Some((local, domain)),
            register,
            uses: 1,
            lifetime: self.options.lifetime,
        };
        match store(ctx, &req).await {
            Ok(created) => result(&created, created.uri()),
            Err(e) => Step::Error(e),
        }
    }
}

/// `urn:xmpp:invite#create-account`: an administrator invites a new account (XEP-0401 §5.4),
/// with a user name of their choosing or the invitee's, optionally subscribed to the
/// administrator. Not on an anonymous host (nobody registers there).
pub struct CreateAccount {
    pub options: InviteOptions,
    /// The anonymous hosts.
    pub guest_hosts: Arc<[String]>,
}

#[async_trait]
impl AdhocCommand for CreateAccount {
    fn node(&self) -> &str {
        "urn:xmpp:invite#create-account"
    }

    fn name(&self) -> &str {
        "Create account"
    }

    async fn execute(&self, ctx: &Context, r: &Requester, submitted: &[DataForm]) -> Step {
        let Some(form) = submitted.first() else {
            return Step::last_form(
                DataForm::form(None)
                    .title("Create an account invitation")
                    .field(
                        Field::text_single("username")
                            .label("Username (empty: the invitee chooses)"),
                    )
                    .field(Field::boolean("roster-subscription").label("Roster subscription")),
            );
        };
        if !self.options.registration || self.guest_hosts.contains(&r.host) {
            return Step::Error(
                StanzaError::new(StanzaErrorCondition::NotAllowed)
                    .with_text("in-band registration is off on this host"),
            );
        }
        let username = match form.value("username").map(str::trim) {
            None | Some("") => None,
            Some(u) => match new_localpart(u) {
                Ok(u) => Some(u),
                Err(e) => {
                    return Step::Error(
                        StanzaError::new(StanzaErrorCondition::NotAcceptable)
                            .with_text(e.to_string()),
                    );
                }
            },
        };
        let subscribe = matches!(form.value("roster-subscription"), Some("1" | "true"));
        let contact = if subscribe { own_account(r) } else { None };
        let req = InviteRequest {
            domain: r.host.clone(),
            username: username.clone(),
            contact,
            register: true,
            uses: 1,
            lifetime: self.options.lifetime,
        };
        match store(ctx, &req).await {
            Ok(created) => {
                let uri = register_uri(&created.invite, &created.token);
                let step = result(&created, uri);
                match username {
                    Some(u) => step.with_note(Note::info(format!(
                        "{u}@{} is reserved for the invitee until the invitation expires",
                        r.host
                    ))),
                    None => step,
                }
            }
            Err(e) => Step::Error(e),
        }
    }
}
