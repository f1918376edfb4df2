//! XEP-0133 service administration: the commands of §4 this server supports, for the accounts
//! listed in `admins`, at every host's domain. Node names, form fields and titles are the XEP's.
//!
//! | node (`http://jabber.org/protocol/admin#…`) | XEP-0133 | what it does |
//! |---|---|---|
//! | `add-user` | §4.1 | creates an account (`accountjid`, `password`, `password-verify`) |
//! | `delete-user` | §4.2 | deletes accounts (`accountjids`) and ends their sessions |
//! | `disable-user` | §4.3 | disables accounts and ends their sessions |
//! | `reenable-user` | §4.4 | re-enables them |
//! | `end-user-session` | §4.5 | ends an account's sessions (bare JID) or one (full JID) |
//! | `change-user-password` | §4.7 | sets a password and ends the account's other sessions |
//! | `user-stats` | §4.10 | `rostersize`, `onlineresources`, `ipaddresses` |
//! | `get-online-users-num` | §4.15 | `onlineusersnum` of the host asked |
//! | `get-online-users-list` | §4.20 | `onlineuserjids` of the host asked, at most `max_items` |
//! | `announce` | §4.23 | a headline message to every session of the host asked |
//!
//! Errors (§5): an account that exists already is `<conflict/>`; a JID that is not an account of
//! this server, or a password that does not fit, `<not-acceptable/>` (XEP-0004 §4); a missing
//! required field `<bad-payload/>` (XEP-0050 §4.4). A command on several JIDs acts on each and
//! completes with a note per failure (`type='error'`, XEP-0050 §3.6) and one for what was done.
//!
//! The add-user form leaves out §4.1's `email`, `given_name` and `surname`: the server keeps no
//! such data, and a form asking for it would pretend otherwise. `stanzaspersecond` and
//! `loginsperminute` of §4.10 are not counted, so not shown.

// The stanza errors returned here are the answers to the requests, made at most once per
// submission: not worth boxing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use async_trait::async_trait;
use starling_module_api::commands::{AdhocCommand, Note, Requester, Step};
use starling_module_api::forms::{DataForm, Field};
use starling_module_api::{Context, Module, Registrar};
use starling_proto::{BareJid, Jid, StanzaError, StanzaErrorCondition};
use starling_storage::StorageError;

use crate::admin::{self as ops, EndReason};

/// XEP-0133's FORM_TYPE and node prefix.
pub const NS_ADMIN: &str = "http://jabber.org/protocol/admin";

/// Registers the XEP-0133 commands (the ad-hoc module runs them).
pub struct AdminCommands {
    /// `[auth] scram_iterations`, for passwords set by add-user and change-user-password.
    scram_iterations: u32,
    /// The anonymous hosts: their accounts are made at login and have no password, so
    /// add-user and change-user-password refuse them.
    anonymous_hosts: Arc<[String]>,
}

impl AdminCommands {
    pub fn new(scram_iterations: u32) -> Self {
        AdminCommands {
            scram_iterations,
            anonymous_hosts: Arc::from(Vec::new()),
        }
    }

    /// With the anonymous hosts (`[[host]] anonymous = true`), where no password is set.
    pub fn with_anonymous_hosts(mut self, hosts: Vec<String>) -> Self {
        self.anonymous_hosts = Arc::from(hosts);
        self
    }
}

/// XEP-0133 §4.1, §4.7 on an anonymous host: `<not-allowed/>`, since an account there is made
/// at login (SASL ANONYMOUS, RFC 4505) and has no password.
fn refuse_anonymous(anonymous_hosts: &[String], domain: &str) -> Result<(), StanzaError> {
    if anonymous_hosts.iter().any(|h| h == domain) {
        return Err(
            StanzaError::new(StanzaErrorCondition::NotAllowed).with_text(format!(
                "{domain} is an anonymous host: its accounts are made at login and have no password"
            )),
        );
    }
    Ok(())
}

impl Module for AdminCommands {
    fn name(&self) -> &'static str {
        "admin-commands"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        let it = self.scram_iterations;
        let anon = self.anonymous_hosts.clone();
        let commands: Vec<Arc<dyn AdhocCommand>> = vec![
            Arc::new(AddUser {
                iterations: it,
                anonymous_hosts: anon.clone(),
            }),
            Arc::new(AccountsCommand::new(Kind::Delete)),
            Arc::new(AccountsCommand::new(Kind::Disable)),
            Arc::new(AccountsCommand::new(Kind::Reenable)),
            Arc::new(AccountsCommand::new(Kind::EndSession)),
            Arc::new(ChangePassword {
                iterations: it,
                anonymous_hosts: anon,
            }),
            Arc::new(UserStats),
            Arc::new(OnlineUsersNum),
            Arc::new(OnlineUsersList),
            Arc::new(Announce),
        ];
        for c in commands {
            reg.command(c);
        }
    }
}

fn admin_form(title: &str, instructions: &str) -> DataForm {
    DataForm::form(Some(NS_ADMIN))
        .title(title)
        .instructions(instructions)
}

fn not_acceptable(text: String) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::NotAcceptable).with_text(text)
}

/// The account a JID names, if it is an account JID at one of this server's hosts (a full JID
/// only where `full_ok`).
fn local_account(ctx: &Context, jid: &Jid, full_ok: bool) -> Result<BareJid, StanzaError> {
    let bare = jid.to_bare();
    if bare.node().is_none() || !ctx.is_local_domain(bare.domain().as_str()) {
        return Err(not_acceptable(format!(
            "{jid} is not an account of this server"
        )));
    }
    if !full_ok && jid.resource().is_some() {
        return Err(not_acceptable(format!(
            "{jid} is not a bare JID (user@host)"
        )));
    }
    Ok(bare)
}

/// Derives SCRAM credentials off the async workers (PBKDF2 three times).
async fn credentials(
    password: &str,
    iterations: u32,
) -> Result<Vec<starling_storage::Credential>, StanzaError> {
    let password = password.to_owned();
    match tokio::task::spawn_blocking(move || {
        starling_accounts::make_credentials(&password, iterations)
    })
    .await
    {
        Ok(Ok(creds)) => Ok(creds),
        Ok(Err(e)) => Err(not_acceptable(e.to_string())),
        Err(e) => {
            tracing::error!(error = %e, "deriving credentials failed");
            Err(StanzaError::new(StanzaErrorCondition::InternalServerError))
        }
    }
}

fn internal(e: &StorageError) -> StanzaError {
    tracing::error!(error = %e, "admin command: storage failed");
    StanzaError::new(StanzaErrorCondition::InternalServerError)
}

// ----- §4.1 Add User -----

struct AddUser {
    iterations: u32,
    anonymous_hosts: Arc<[String]>,
}

#[async_trait]
impl AdhocCommand for AddUser {
    fn node(&self) -> &str {
        "http://jabber.org/protocol/admin#add-user"
    }
    fn name(&self) -> &str {
        "Add User"
    }

    async fn execute(&self, ctx: &Context, _r: &Requester, submitted: &[DataForm]) -> Step {
        let Some(form) = submitted.first() else {
            return Step::last_form(
                admin_form("Adding a User", "Fill out this form to add a user.")
                    .field(
                        Field::jid_single("accountjid")
                            .label("The Jabber ID for the account to be added")
                            .required(),
                    )
                    .field(
                        Field::text_private("password")
                            .label("The password for this account")
                            .required(),
                    )
                    .field(Field::text_private("password-verify").label("Retype password")),
            );
        };
        match self.add(ctx, form).await {
            Ok(jid) => Step::done().with_note(Note::info(format!("{jid} was created"))),
            Err(e) => Step::Error(e),
        }
    }
}

impl AddUser {
    async fn add(&self, ctx: &Context, form: &DataForm) -> Result<String, StanzaError> {
        let jids = form.jids("accountjid", true)?;
        let jid = jids.first().ok_or_else(|| {
            starling_module_api::commands::bad_payload("the field 'accountjid' is required")
        })?;
        let account = local_account(ctx, jid, false)?;
        let password = form.required("password")?;
        if let Some(verify) = form.value("password-verify")
            && verify != password
        {
            return Err(not_acceptable("the passwords do not match".to_owned()));
        }
        let (_, domain) = ops::parts(&account).ok_or_else(|| not_acceptable(jid.to_string()))?;
        refuse_anonymous(&self.anonymous_hosts, domain)?;
        // A new name must mean the same under PRECIS as under stringprep (RFC 7622 §3.3).
        let raw_local = jid
            .node()
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default();
        let local = starling_accounts::new_localpart(&raw_local)
            .map_err(|e| not_acceptable(e.to_string()))?;
        let creds = credentials(password, self.iterations).await?;
        match ctx
            .stores
            .accounts
            .create_account(&local, domain, &creds)
            .await
        {
            Ok(()) => {
                tracing::info!(account = %format!("{local}@{domain}"), "account created by an administrator");
                Ok(format!("{local}@{domain}"))
            }
            // XEP-0133 §5: "a user already exists with that username".
            Err(StorageError::AlreadyExists) => {
                Err(StanzaError::new(StanzaErrorCondition::Conflict)
                    .with_text(format!("{local}@{domain} already exists")))
            }
            Err(e) => Err(internal(&e)),
        }
    }
}

// ----- §4.2 to §4.5: commands on a list of accounts -----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delete,
    Disable,
    Reenable,
    EndSession,
}

struct AccountsCommand {
    kind: Kind,
}

impl AccountsCommand {
    fn new(kind: Kind) -> Self {
        AccountsCommand { kind }
    }

    /// (node, name, title, instructions, field label, past tense)
    fn texts(
        &self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    ) {
        match self.kind {
            Kind::Delete => (
                "http://jabber.org/protocol/admin#delete-user",
                "Delete User",
                "Deleting a User",
                "Fill out this form to delete a user.",
                "The Jabber ID(s) to delete",
                "deleted",
            ),
            Kind::Disable => (
                "http://jabber.org/protocol/admin#disable-user",
                "Disable User",
                "Disabling a User",
                "Fill out this form to disable a user.",
                "The Jabber ID(s) to disable",
                "disabled",
            ),
            Kind::Reenable => (
                "http://jabber.org/protocol/admin#reenable-user",
                "Re-Enable User",
                "Re-Enable a User",
                "Fill out this form to re-enable a user.",
                "The Jabber ID(s) to re-enable",
                "re-enabled",
            ),
            Kind::EndSession => (
                "http://jabber.org/protocol/admin#end-user-session",
                "End User Session",
                "Ending a User Session",
                "Fill out this form to end a user's session.",
                "The Jabber ID(s) for which to end sessions",
                "ended",
            ),
        }
    }

    /// Acts on one account; the text of the failure otherwise.
    async fn act(&self, ctx: &Context, jid: &Jid) -> Result<String, String> {
        let full_ok = self.kind == Kind::EndSession;
        let account = local_account(ctx, jid, full_ok).map_err(|e| e.text.unwrap_or_default())?;
        let result = match self.kind {
            Kind::Delete => ops::delete_account(ctx, &account).await,
            Kind::Disable => ops::set_disabled(ctx, &account, true).await,
            Kind::Reenable => ops::set_disabled(ctx, &account, false).await,
            Kind::EndSession => {
                // §4.5: a bare JID ends all of the account's sessions, a full JID that one.
                let n = ops::end_sessions(ctx, jid, EndReason::Kicked).await;
                return if n == 0 {
                    Err(format!("{jid} has no session"))
                } else {
                    Ok(jid.to_string())
                };
            }
        };
        match result {
            Ok(_) => Ok(jid.to_string()),
            Err(StorageError::NotFound) => Err(format!("{jid} does not exist")),
            Err(e) => {
                tracing::error!(error = %e, "admin command: storage failed");
                Err(format!("{jid}: internal error"))
            }
        }
    }
}

#[async_trait]
impl AdhocCommand for AccountsCommand {
    fn node(&self) -> &str {
        self.texts().0
    }
    fn name(&self) -> &str {
        self.texts().1
    }

    async fn execute(&self, ctx: &Context, _r: &Requester, submitted: &[DataForm]) -> Step {
        let (_, _, title, instructions, label, done) = self.texts();
        let Some(form) = submitted.first() else {
            return Step::last_form(
                admin_form(title, instructions)
                    .field(Field::jid_multi("accountjids").label(label).required()),
            );
        };
        let jids = match form.jids("accountjids", true) {
            Ok(j) => j,
            Err(e) => return Step::Error(e),
        };
        // Every JID is checked before anything is done.
        for j in &jids {
            if let Err(e) = local_account(ctx, j, self.kind == Kind::EndSession) {
                return Step::Error(e);
            }
        }
        let mut ok = Vec::new();
        let mut notes = Vec::new();
        for j in &jids {
            match self.act(ctx, j).await {
                Ok(j) => ok.push(j),
                Err(text) => notes.push(Note::error(text)),
            }
        }
        let mut step = Step::done();
        if !ok.is_empty() {
            let what = if self.kind == Kind::EndSession {
                format!("Sessions {done}: {}", ok.join(", "))
            } else {
                format!("Accounts {done}: {}", ok.join(", "))
            };
            step = step.with_note(Note::info(what));
        }
        for n in notes {
            step = step.with_note(n);
        }
        step
    }
}

// ----- §4.7 Change User Password -----

struct ChangePassword {
    iterations: u32,
    anonymous_hosts: Arc<[String]>,
}

#[async_trait]
impl AdhocCommand for ChangePassword {
    fn node(&self) -> &str {
        "http://jabber.org/protocol/admin#change-user-password"
    }
    fn name(&self) -> &str {
        "Change User Password"
    }

    async fn execute(&self, ctx: &Context, r: &Requester, submitted: &[DataForm]) -> Step {
        let Some(form) = submitted.first() else {
            return Step::last_form(
                admin_form(
                    "Changing a User Password",
                    "Fill out this form to change a user's password.",
                )
                .field(
                    Field::jid_single("accountjid")
                        .label("The Jabber ID for this account")
                        .required(),
                )
                .field(
                    Field::text_private("password")
                        .label("The password for this account")
                        .required(),
                ),
            );
        };
        match self.change(ctx, r, form).await {
            Ok(text) => Step::done().with_note(Note::info(text)),
            Err(e) => Step::Error(e),
        }
    }
}

impl ChangePassword {
    async fn change(
        &self,
        ctx: &Context,
        r: &Requester,
        form: &DataForm,
    ) -> Result<String, StanzaError> {
        let jids = form.jids("accountjid", true)?;
        let Some(jid) = jids.first() else {
            return Err(starling_module_api::commands::bad_payload(
                "the field 'accountjid' is required",
            ));
        };
        let account = local_account(ctx, jid, false)?;
        let password = form.required("password")?;
        let (local, domain) =
            ops::parts(&account).ok_or_else(|| not_acceptable(jid.to_string()))?;
        refuse_anonymous(&self.anonymous_hosts, domain)?;
        let creds = credentials(password, self.iterations).await?;
        match ctx
            .stores
            .accounts
            .set_credentials(local, domain, &creds)
            .await
        {
            Ok(()) => {}
            Err(StorageError::NotFound) => {
                return Err(StanzaError::new(StanzaErrorCondition::ItemNotFound)
                    .with_text(format!("{account} does not exist")));
            }
            Err(e) => return Err(internal(&e)),
        }
        tracing::info!(%account, "password changed by an administrator");
        // The sessions logged in with the old password end; not the one asking (an
        // administrator changing their own password keeps the session they do it from).
        for s in ctx.sessions.resources(&account).await.iter() {
            if r.jid.try_as_full().ok() != Some(&s.jid) {
                s.handle.close(EndReason::PasswordChanged.stream_error());
            }
        }
        Ok(format!("The password of {account} was changed"))
    }
}

// ----- §4.10 Get User Statistics -----

struct UserStats;

#[async_trait]
impl AdhocCommand for UserStats {
    fn node(&self) -> &str {
        "http://jabber.org/protocol/admin#user-stats"
    }
    fn name(&self) -> &str {
        "Get User Statistics"
    }

    async fn execute(&self, ctx: &Context, _r: &Requester, submitted: &[DataForm]) -> Step {
        let Some(form) = submitted.first() else {
            return Step::last_form(
                admin_form(
                    "Get User Statistics",
                    "Fill out this form to gather user statistics.",
                )
                .field(
                    Field::jid_single("accountjid")
                        .label("The Jabber ID for statistics")
                        .required(),
                ),
            );
        };
        let account = match form.jids("accountjid", true).and_then(|j| match j.first() {
            Some(j) => local_account(ctx, j, false),
            None => Err(starling_module_api::commands::bad_payload(
                "the field 'accountjid' is required",
            )),
        }) {
            Ok(a) => a,
            Err(e) => return Step::Error(e),
        };
        match ops::user_stats(ctx, &account).await {
            Ok(stats) => Step::result(
                DataForm::result(Some(NS_ADMIN))
                    .field(
                        Field::text_multi("ipaddresses")
                            .label("The IP addresses of an account's online sessions")
                            .values(stats.ips),
                    )
                    .field(
                        Field::text_single("rostersize")
                            .label("Number of roster items for an account")
                            .value(stats.roster_size.to_string()),
                    )
                    .field(
                        Field::text_multi("onlineresources")
                            .label("The names of an account's online sessions")
                            .values(stats.resources),
                    ),
            ),
            Err(StorageError::NotFound) => Step::Error(
                StanzaError::new(StanzaErrorCondition::ItemNotFound)
                    .with_text(format!("{account} does not exist")),
            ),
            Err(e) => Step::Error(internal(&e)),
        }
    }
}

// ----- §4.15 Get Number of Online Users, §4.20 Get List of Online Users -----

struct OnlineUsersNum;

#[async_trait]
impl AdhocCommand for OnlineUsersNum {
    fn node(&self) -> &str {
        "http://jabber.org/protocol/admin#get-online-users-num"
    }
    fn name(&self) -> &str {
        "Get Number of Online Users"
    }

    async fn execute(&self, ctx: &Context, r: &Requester, _submitted: &[DataForm]) -> Step {
        let (users, _) = ops::online_users(ctx, Some(&r.host)).await;
        Step::result(
            DataForm::result(Some(NS_ADMIN)).field(
                Field::text_single("onlineusersnum")
                    .label("The number of online users")
                    .value(users.len().to_string()),
            ),
        )
    }
}

struct OnlineUsersList;

/// §4.20's choices of `max_items`.
const MAX_ITEMS: [&str; 7] = ["25", "50", "75", "100", "150", "200", "none"];

#[async_trait]
impl AdhocCommand for OnlineUsersList {
    fn node(&self) -> &str {
        "http://jabber.org/protocol/admin#get-online-users-list"
    }
    fn name(&self) -> &str {
        "Get List of Online Users"
    }

    async fn execute(&self, ctx: &Context, r: &Requester, submitted: &[DataForm]) -> Step {
        let Some(form) = submitted.first() else {
            let mut field =
                Field::list_single("max_items").label("Maximum number of items to show");
            for v in MAX_ITEMS {
                let label = if v == "none" { "None" } else { v };
                field = field.option(Some(label), v);
            }
            return Step::last_form(
                admin_form(
                    "Requesting List of Online Users",
                    "Fill out this form to request the online users of this service.",
                )
                .field(field),
            );
        };
        let max = match form.value("max_items").map(str::trim) {
            None | Some("") | Some("none") => usize::MAX,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if MAX_ITEMS.contains(&v) => n,
                // XEP-0004 §3.3: list-single takes one of the options.
                _ => {
                    return Step::Error(not_acceptable(format!(
                        "'{v}' is not one of the options of max_items"
                    )));
                }
            },
        };
        let (users, _) = ops::online_users(ctx, Some(&r.host)).await;
        Step::result(
            DataForm::result(Some(NS_ADMIN)).field(
                Field::jid_multi("onlineuserjids")
                    .label("The list of all online users")
                    .values(users.iter().take(max).map(|u| u.to_string())),
            ),
        )
    }
}

// ----- §4.23 Send Announcement to Online Users -----

struct Announce;

#[async_trait]
impl AdhocCommand for Announce {
    fn node(&self) -> &str {
        "http://jabber.org/protocol/admin#announce"
    }
    fn name(&self) -> &str {
        "Send Announcement to Online Users"
    }

    async fn execute(&self, ctx: &Context, r: &Requester, submitted: &[DataForm]) -> Step {
        let Some(form) = submitted.first() else {
            return Step::last_form(
                admin_form(
                    "Making an Announcement",
                    "Fill out this form to make an announcement to all active users of this service.",
                )
                .field(
                    Field::text_multi("announcement")
                        .label("Announcement")
                        .required(),
                ),
            );
        };
        // XEP-0004 §3.3: the lines of a text-multi value, joined with newlines.
        let text = form.values("announcement").join("\n");
        if text.trim().is_empty() {
            return Step::Error(starling_module_api::commands::bad_payload(
                "the field 'announcement' is required",
            ));
        }
        let n = ops::announce(ctx, Some(&r.host), &text).await;
        Step::done().with_note(Note::info(format!("Announcement sent to {n} session(s)")))
    }
}
