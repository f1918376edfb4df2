//! XEP-0050 ad-hoc commands, as a module sees them: implement [`AdhocCommand`] and register it
//! with [`Registrar::command`](crate::Registrar::command).
//!
//! The ad-hoc module (`starling_modules::adhoc`) does the protocol: it lists the commands a
//! requester may run (disco#items of the node `http://jabber.org/protocol/commands` at the
//! server's domain), describes each (disco#info of its node), keeps the execution sessions
//! (`sessionid`, bounded per user, expiring), checks the actions (`execute`, `next`, `prev`,
//! `complete`, `cancel`) against the stage, goes back a stage on `prev` by itself, and answers
//! XEP-0050's errors. A command only says what it shows and what it does: it is called once per
//! stage with every form submitted so far, and answers with the next form, the result, or an
//! error. It keeps no state of its own between stages (what it needs is in the forms).
//!
//! ```
//! use async_trait::async_trait;
//! use starling_module_api::commands::{AdhocCommand, Note, Requester, Step};
//! use starling_module_api::forms::{DataForm, Field};
//! use starling_module_api::Context;
//!
//! /// Two stages: a form asking for a name, then a greeting.
//! struct Greet;
//!
//! #[async_trait]
//! impl AdhocCommand for Greet {
//!     fn node(&self) -> &str { "urn:example:greet" }
//!     fn name(&self) -> &str { "Say hello" }
//!     // Every account of this server may run it (the default is: admins only).
//!     fn allowed(&self, requester: &Requester) -> bool { requester.account.is_some() }
//!
//!     async fn execute(&self, _ctx: &Context, _who: &Requester, submitted: &[DataForm]) -> Step {
//!         match submitted {
//!             // Stage 1: ask. `last_form`: submitting it completes the command.
//!             [] => Step::last_form(
//!                 DataForm::form(None)
//!                     .title("Say hello")
//!                     .field(Field::text_single("name").label("Your name").required()),
//!             ),
//!             // Stage 2: done, with a note; a missing field is XEP-0050's <bad-payload/>.
//!             [form, ..] => match form.required("name") {
//!                 Ok(name) => Step::done().with_note(Note::info(format!("Hello, {name}!"))),
//!                 Err(e) => Step::Error(e),
//!             },
//!         }
//!     }
//! }
//! ```
//!
//! and in the module's `register`: `reg.command(Arc::new(Greet));`.

use async_trait::async_trait;
use starling_proto::{BareJid, Jid, StanzaError};

use crate::Context;
use crate::forms::DataForm;

pub use crate::command_errors::{NS_COMMANDS, bad_payload, command_error};

/// Who asks to run a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    /// The sender: a local session's full JID, or a remote entity.
    pub jid: Jid,
    /// The sender's account when it is an account of one of this server's hosts.
    pub account: Option<BareJid>,
    /// Whether that account is listed in the configuration's `admins`.
    pub admin: bool,
    /// The local domain the command was sent to (commands about a host's users, such as
    /// XEP-0133's online users, concern this one).
    pub host: String,
}

/// A `<note/>`'s severity (XEP-0050 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteType {
    Info,
    Warn,
    /// The command failed (XEP-0050 §3.6: a command that completes but fails carries at least
    /// one error note).
    Error,
}

impl NoteType {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteType::Info => "info",
            NoteType::Warn => "warn",
            NoteType::Error => "error",
        }
    }
}

/// A `<note/>` shown with a stage or the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub kind: NoteType,
    pub text: String,
}

impl Note {
    pub fn info(text: impl Into<String>) -> Note {
        Note {
            kind: NoteType::Info,
            text: text.into(),
        }
    }
    pub fn warn(text: impl Into<String>) -> Note {
        Note {
            kind: NoteType::Warn,
            text: text.into(),
        }
    }
    pub fn error(text: impl Into<String>) -> Note {
        Note {
            kind: NoteType::Error,
            text: text.into(),
        }
    }
}

/// What a command answers at one stage.
#[derive(Clone, Debug)]
pub enum Step {
    /// Needs input: `form` (of type `form`). `last`: submitting it completes the command (the
    /// stage offers `<complete/>`); otherwise another stage follows (`<next/>`). `<prev/>` is
    /// offered from the second stage on, by the ad-hoc module.
    Form {
        form: DataForm,
        last: bool,
        notes: Vec<Note>,
    },
    /// Done (`status='completed'`): the session ends, with an optional result form.
    Completed {
        result: Option<DataForm>,
        notes: Vec<Note>,
    },
    /// This stage's input is refused with a stanza error (use [`bad_payload`] for a missing
    /// field, `<not-acceptable/>` for a value that is not valid, XEP-0004 §4). The session stays
    /// at this stage: the requester may submit again or cancel.
    Error(StanzaError),
}

impl Step {
    /// A form after which another stage follows.
    pub fn form(form: DataForm) -> Step {
        Step::Form {
            form,
            last: false,
            notes: Vec::new(),
        }
    }

    /// A form whose submission completes the command.
    pub fn last_form(form: DataForm) -> Step {
        Step::Form {
            form,
            last: true,
            notes: Vec::new(),
        }
    }

    /// Completed, nothing to show.
    pub fn done() -> Step {
        Step::Completed {
            result: None,
            notes: Vec::new(),
        }
    }

    /// Completed with a result form (`type='result'`).
    pub fn result(form: DataForm) -> Step {
        Step::Completed {
            result: Some(form),
            notes: Vec::new(),
        }
    }

    /// Adds a note (to a form or a completion; an error has none).
    pub fn with_note(mut self, note: Note) -> Step {
        match &mut self {
            Step::Form { notes, .. } | Step::Completed { notes, .. } => notes.push(note),
            Step::Error(_) => {}
        }
        self
    }
}

/// One ad-hoc command (XEP-0050), registered with
/// [`Registrar::command`](crate::Registrar::command). See the [module docs](self) for an
/// example.
#[async_trait]
pub trait AdhocCommand: Send + Sync {
    /// The command's node: unique among the server's commands (the router refuses to start with
    /// two of the same node). XEP-0133's are `http://jabber.org/protocol/admin#…`.
    fn node(&self) -> &str;

    /// Its label in the command list (the disco item's `name`) and in its disco#info identity.
    fn name(&self) -> &str;

    /// Whether `requester` may see and run it. A command it may not run is not listed, and
    /// asking for it is `<forbidden/>` (XEP-0050 §2.2, §4.4). By default: administrators only.
    fn allowed(&self, requester: &Requester) -> bool {
        requester.admin
    }

    /// One stage. `submitted` holds the forms the requester submitted so far, one per stage
    /// completed (empty for the first request; a stage submitted without a form counts as an
    /// empty form of type `submit`). On `prev` the module shows the previous stage's form again
    /// itself, without calling this.
    async fn execute(&self, ctx: &Context, requester: &Requester, submitted: &[DataForm]) -> Step;
}
