//! XEP-0050 ad-hoc commands at the server's domain: the protocol, for the commands every module
//! registers ([`Registrar::command`], [`starling_module_api::commands`]); `admin` holds the
//! XEP-0133 service administration commands.
//!
//! # Procedure
//!
//! - Discovery (§2.1, §2.2): the server's disco#info has the `commands` feature; disco#items of
//!   the node `http://jabber.org/protocol/commands` lists the commands the requester may run
//!   ([`AdhocCommand::allowed`]), each as an item of the domain asked; disco#info of a command's
//!   node gives its `automation/command-node` identity with the `commands` and `jabber:x:data`
//!   features, `<forbidden/>` to someone who may not run it, `<item-not-found/>` for no command.
//! - Execution (§2.4): `<iq type='set'><command node='…'/></iq>` starts a session (a fresh
//!   `sessionid`) and the command's first stage; each stage is answered with
//!   `status='executing'`, the form and its `<actions/>`, until the command completes
//!   (`status='completed'`, the session ends) or is cancelled (`status='canceled'`).
//! - Actions (§3.4): `execute` is the stage's default (`next` while more stages follow,
//!   `complete` at the last); `next` only where more follow, `complete` only at the last, `prev`
//!   from the second stage on (the module shows the previous form again, with the values
//!   submitted for it: §2.4.2's "remembered" values), `cancel` always. Any other is
//!   `<malformed-action/>`; one the stage does not offer, `<bad-action/>`.
//! - Sessions (§3.3) belong to the full JID that started them: another requester's, or one for
//!   another node, is `<bad-sessionid/>`, as is one never given; a completed, cancelled or
//!   timed-out one is `<session-expired/>`. At most [`AdhocOptions::max_sessions`] per account
//!   (starting one more ends the oldest), each ending after [`AdhocOptions::timeout`] without a
//!   request.
//! - Language (§3.7): the commands speak English and answer with `xml:lang='en'`. A requester's
//!   `xml:lang` (on the IQ or the command) is accepted whatever it names, since §3.7 lets the
//!   responder fall back; `<bad-locale/>` is for a value that is no language tag (RFC 5646
//!   syntax), and for a later stage that names another language than the session's first
//!   ("each execution session SHOULD use only one language/locale").
//! - Errors are those of §4.4, each `type` as its table gives it.

pub mod admin;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use starling_module_api::commands::{
    AdhocCommand, NS_COMMANDS, Note, Requester, Step, bad_payload, command_error,
};
use starling_module_api::forms::{DataForm, FieldType, FormKind};
use starling_module_api::{
    Context, DiscoNodes, IqHandler, IqOutcome, IqRoute, IqTarget, IqType, Module, Registrar,
    random_id,
};
use starling_proto::{BareJid, Element, Jid, StanzaError, StanzaErrorCondition, ns};

/// Settings of the ad-hoc module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdhocOptions {
    /// The administrators (the configuration's `admins`): [`Requester::admin`].
    pub admins: Vec<BareJid>,
    /// Command sessions an account may have open at once; one more ends its oldest.
    pub max_sessions: usize,
    /// A session with no request for this long ends (`<session-expired/>`).
    pub timeout: Duration,
}

impl Default for AdhocOptions {
    fn default() -> Self {
        AdhocOptions {
            admins: Vec::new(),
            max_sessions: 10,
            timeout: Duration::from_secs(600),
        }
    }
}

/// Sessions ended (completed, cancelled, timed out, evicted) remembered to answer
/// `<session-expired/>` rather than `<bad-sessionid/>`.
const ENDED_REMEMBERED: usize = 1024;

/// The XEP-0050 module.
pub struct Adhoc {
    options: AdhocOptions,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Open sessions by owner account (bare JID), oldest first.
    open: HashMap<String, Vec<CommandSession>>,
    /// Recently ended (owner account, session id), oldest first.
    ended: VecDeque<(String, String)>,
    last_sweep: Option<Instant>,
}

struct CommandSession {
    id: String,
    node: String,
    /// The full JID that started it.
    owner: Jid,
    /// The language of the first request that named one.
    lang: Option<String>,
    /// The forms submitted, one per completed stage.
    submitted: Vec<DataForm>,
    /// The stages shown, the current last: `shown.len() == submitted.len() + 1`.
    shown: Vec<Shown>,
    touched: Instant,
}

#[derive(Clone)]
struct Shown {
    form: DataForm,
    last: bool,
    notes: Vec<Note>,
}

/// A `<command/>`'s `action` (XEP-0050 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Execute,
    Cancel,
    Prev,
    Next,
    Complete,
}

impl Action {
    /// `None`: no action XEP-0050 defines (`<malformed-action/>`).
    fn parse(s: Option<&str>) -> Option<Action> {
        Some(match s {
            None | Some("execute") => Action::Execute,
            Some("cancel") => Action::Cancel,
            Some("prev") => Action::Prev,
            Some("next") => Action::Next,
            Some("complete") => Action::Complete,
            Some(_) => return None,
        })
    }
}

fn lock(m: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // Each operation leaves the table consistent: a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn bad_action(text: &str) -> IqOutcome {
    IqOutcome::Error(command_error(StanzaErrorCondition::BadRequest, "bad-action").with_text(text))
}

fn bad_sessionid() -> IqOutcome {
    IqOutcome::Error(command_error(
        StanzaErrorCondition::BadRequest,
        "bad-sessionid",
    ))
}

fn session_expired() -> IqOutcome {
    IqOutcome::Error(command_error(
        StanzaErrorCondition::NotAllowed,
        "session-expired",
    ))
}

fn bad_locale(text: &str) -> IqOutcome {
    IqOutcome::Error(command_error(StanzaErrorCondition::BadRequest, "bad-locale").with_text(text))
}

/// RFC 5646 §2.1's shape, loosely: subtags of 1 to 8 letters or digits joined by `-`, the first
/// letters only.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let first_ok = parts
        .next()
        .is_some_and(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl Adhoc {
    pub fn new(options: AdhocOptions) -> Self {
        Adhoc {
            options,
            table: Mutex::new(Table::default()),
        }
    }

    /// Who sent `req` to the commands.
    fn requester(&self, ctx: &Context, req: &IqRoute<'_>) -> Requester {
        let from = req.from;
        let bare = from.to_bare();
        let local = bare.node().is_some() && ctx.is_local_domain(bare.domain().as_str());
        // The IQ is for the server: its `to` is a local domain, or absent (the sender's).
        let host = req
            .iq
            .attr("to")
            .and_then(|t| Jid::new(t).ok())
            .map(|j| j.domain().as_str().to_owned())
            .filter(|d| ctx.is_local_domain(d))
            .unwrap_or_else(|| bare.domain().as_str().to_owned());
        Requester {
            jid: from.clone(),
            admin: local && self.options.admins.contains(&bare),
            account: local.then_some(bare),
            host,
        }
    }

    fn command_element(node: &str, sessionid: &str, status: &str) -> Element {
        let mut e = Element::new("command", NS_COMMANDS)
            .with_attr("node", node)
            .with_attr("sessionid", sessionid)
            .with_attr("status", status);
        // §3.7: the responder names the language of its answer.
        e.set_attr_ns(ns::XML, "lang", "en");
        e
    }

    /// The answer to a stage shown: `status='executing'`, the actions, the notes, the form.
    fn executing(node: &str, sessionid: &str, stage: usize, shown: &Shown) -> IqOutcome {
        let mut e = Self::command_element(node, sessionid, "executing");
        let default = if shown.last { "complete" } else { "next" };
        let mut actions = Element::new("actions", NS_COMMANDS).with_attr("execute", default);
        if stage > 0 {
            actions.append_child(Element::new("prev", NS_COMMANDS));
        }
        actions.append_child(Element::new(default, NS_COMMANDS));
        e.append_child(actions);
        for n in &shown.notes {
            e.append_child(note_element(n));
        }
        e.append_child(shown.form.to_element());
        IqOutcome::Result(Some(e))
    }

    fn completed(
        node: &str,
        sessionid: &str,
        result: Option<&DataForm>,
        notes: &[Note],
    ) -> IqOutcome {
        let mut e = Self::command_element(node, sessionid, "completed");
        for n in notes {
            e.append_child(note_element(n));
        }
        if let Some(r) = result {
            e.append_child(r.to_element());
        }
        IqOutcome::Result(Some(e))
    }

    /// Drops sessions idle past the timeout (all owners' at most once a minute, the requester's
    /// always), remembering them as ended.
    fn sweep(&self, t: &mut Table, owner: &str, now: Instant) {
        let timeout = self.options.timeout;
        let all = t
            .last_sweep
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60));
        let owners: Vec<String> = if all {
            t.last_sweep = Some(now);
            t.open.keys().cloned().collect()
        } else {
            vec![owner.to_owned()]
        };
        for o in owners {
            let Some(list) = t.open.get_mut(&o) else {
                continue;
            };
            let mut expired = Vec::new();
            list.retain(|s| {
                let keep = now.duration_since(s.touched) < timeout;
                if !keep {
                    expired.push(s.id.clone());
                }
                keep
            });
            if list.is_empty() {
                t.open.remove(&o);
            }
            for id in expired {
                remember_ended(t, &o, id);
            }
        }
    }

    async fn handle_command(&self, ctx: &Context, req: &IqRoute<'_>) -> IqOutcome {
        let cmd = req.payload;
        // §4.1: "The 'node' attribute … MUST be present."
        let Some(node) = cmd.attr("node") else {
            return IqOutcome::Error(
                StanzaError::new(StanzaErrorCondition::BadRequest)
                    .with_text("the command has no 'node'"),
            );
        };
        let Some(action) = Action::parse(cmd.attr("action")) else {
            return IqOutcome::Error(command_error(
                StanzaErrorCondition::BadRequest,
                "malformed-action",
            ));
        };
        let Some(command) = ctx.server.commands.get(node).cloned() else {
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::ItemNotFound));
        };
        let requester = self.requester(ctx, req);
        if !command.allowed(&requester) {
            // XEP-0133 §7: never to someone without the privileges.
            return IqOutcome::Error(StanzaError::new(StanzaErrorCondition::Forbidden));
        }
        let lang = cmd
            .attr_ns(ns::XML, "lang")
            .or_else(|| req.iq.attr_ns(ns::XML, "lang"))
            .map(str::to_owned);
        if let Some(l) = &lang
            && !is_language_tag(l)
        {
            return bad_locale("not a language tag");
        }
        let owner = requester.jid.to_bare().to_string();
        match cmd.attr("sessionid") {
            None => {
                self.start(ctx, &requester, &owner, command, lang, action)
                    .await
            }
            Some(id) => {
                self.continue_session(ctx, &requester, &owner, command, id, lang, action, cmd)
                    .await
            }
        }
    }

    async fn start(
        &self,
        ctx: &Context,
        requester: &Requester,
        owner: &str,
        command: Arc<dyn AdhocCommand>,
        lang: Option<String>,
        action: Action,
    ) -> IqOutcome {
        if action != Action::Execute {
            // Nothing to cancel, go back from, or go on with: no session was started.
            return bad_action("no session to apply this action to; start with 'execute'");
        }
        let node = command.node().to_owned();
        let id = random_id();
        let step = command.execute(ctx, requester, &[]).await;
        match step {
            Step::Error(e) => IqOutcome::Error(e),
            Step::Completed { result, notes } => {
                remember_ended(&mut lock(&self.table), owner, id.clone());
                Self::completed(&node, &id, result.as_ref(), &notes)
            }
            Step::Form { form, last, notes } => {
                let shown = Shown { form, last, notes };
                let answer = Self::executing(&node, &id, 0, &shown);
                let now = Instant::now();
                let mut t = lock(&self.table);
                self.sweep(&mut t, owner, now);
                let list = t.open.entry(owner.to_owned()).or_default();
                let mut evicted = Vec::new();
                while list.len() >= self.options.max_sessions.max(1) {
                    evicted.push(list.remove(0).id);
                }
                list.push(CommandSession {
                    id,
                    node,
                    owner: requester.jid.clone(),
                    lang,
                    submitted: Vec::new(),
                    shown: vec![shown],
                    touched: now,
                });
                for e in evicted {
                    remember_ended(&mut t, owner, e);
                }
                answer
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn continue_session(
        &self,
        ctx: &Context,
        requester: &Requester,
        owner: &str,
        command: Arc<dyn AdhocCommand>,
        id: &str,
        lang: Option<String>,
        action: Action,
        cmd: &Element,
    ) -> IqOutcome {
        let node = command.node().to_owned();
        // The session is taken out of the table while the command runs (a concurrent request
        // with the same id finds none), and put back unless it ended.
        let mut session = {
            let now = Instant::now();
            let mut t = lock(&self.table);
            self.sweep(&mut t, owner, now);
            let pos = t
                .open
                .get(owner)
                .and_then(|l| l.iter().position(|s| s.id == id));
            match pos {
                Some(p) => {
                    let Some(list) = t.open.get_mut(owner) else {
                        return bad_sessionid();
                    };
                    let s = &list[p];
                    // §3.3: a session belongs to one requester; and to one node (§3.2).
                    if s.owner != requester.jid || s.node != node {
                        return bad_sessionid();
                    }
                    if let (Some(first), Some(now_lang)) = (&s.lang, &lang)
                        && !first.eq_ignore_ascii_case(now_lang)
                    {
                        return bad_locale("this session's language is another");
                    }
                    let mut s = list.remove(p);
                    if list.is_empty() {
                        t.open.remove(owner);
                    }
                    s.touched = now;
                    if s.lang.is_none() {
                        s.lang = lang;
                    }
                    s
                }
                None => {
                    let ended = t.ended.iter().any(|(o, e)| o == owner && e == id);
                    return if ended {
                        session_expired()
                    } else {
                        bad_sessionid()
                    };
                }
            }
        };
        let stage = session.submitted.len();
        let Some(current) = session.shown.last().cloned() else {
            return bad_sessionid();
        };
        let outcome = match action {
            Action::Cancel => {
                // §2.4.3: the session ends; "The responder MUST reply with the success".
                remember_ended(&mut lock(&self.table), owner, session.id.clone());
                return IqOutcome::Result(Some(Self::command_element(
                    &node,
                    &session.id,
                    "canceled",
                )));
            }
            Action::Prev => {
                if stage == 0 {
                    bad_action("this is the first stage")
                } else {
                    session.shown.pop();
                    let previous = session.submitted.pop();
                    if let Some(shown) = session.shown.last_mut() {
                        if let Some(prev) = &previous {
                            remember_values(&mut shown.form, prev);
                        }
                        Self::executing(&node, &session.id, stage - 1, shown)
                    } else {
                        bad_sessionid()
                    }
                }
            }
            Action::Next if current.last => bad_action("this is the last stage: complete it"),
            Action::Complete if !current.last => {
                bad_action("more stages follow: go on with 'next'")
            }
            Action::Execute | Action::Next | Action::Complete => {
                let form = match cmd.get_child("x", ns::DATA_FORMS) {
                    None => DataForm::submit(None),
                    Some(x) => match DataForm::parse(x) {
                        // §3.5.1: "Responders SHOULD consider any <x type='cancel'/> to be
                        // <x type='submit'/>."
                        Ok(mut f) => {
                            if f.kind == FormKind::Cancel {
                                f.kind = FormKind::Submit;
                            }
                            f
                        }
                        Err(e) => {
                            put_back(&self.table, owner, session);
                            return IqOutcome::Error(bad_payload(e.to_string()));
                        }
                    },
                };
                session.submitted.push(form);
                match command.execute(ctx, requester, &session.submitted).await {
                    Step::Error(e) => {
                        // The stage stays: the requester may submit again.
                        session.submitted.pop();
                        IqOutcome::Error(e)
                    }
                    Step::Completed { result, notes } => {
                        remember_ended(&mut lock(&self.table), owner, session.id.clone());
                        return Self::completed(&node, &session.id, result.as_ref(), &notes);
                    }
                    Step::Form { form, last, notes } => {
                        let shown = Shown { form, last, notes };
                        let answer = Self::executing(&node, &session.id, stage + 1, &shown);
                        session.shown.push(shown);
                        answer
                    }
                }
            }
        };
        put_back(&self.table, owner, session);
        outcome
    }

    /// disco#items of the command list: the commands `requester` may run, as items of `domain`.
    fn command_items(&self, ctx: &Context, requester: &Requester, domain: &str) -> Element {
        let mut query = Element::new("query", ns::DISCO_ITEMS).with_attr("node", NS_COMMANDS);
        for c in ctx.server.commands.iter().filter(|c| c.allowed(requester)) {
            query.append_child(
                Element::new("item", ns::DISCO_ITEMS)
                    .with_attr("jid", domain)
                    .with_attr("node", c.node())
                    .with_attr("name", c.name()),
            );
        }
        query
    }
}

fn note_element(n: &Note) -> Element {
    Element::new("note", NS_COMMANDS)
        .with_attr("type", n.kind.as_str())
        .with_text(n.text.as_str())
}

/// §2.4.2: on `prev` the form shown again holds what was submitted for it (not secrets).
fn remember_values(form: &mut DataForm, submitted: &DataForm) {
    for f in &mut form.fields {
        let keep = matches!(
            f.kind,
            Some(FieldType::Hidden | FieldType::Fixed | FieldType::TextPrivate)
        );
        if keep {
            continue;
        }
        if let Some(var) = &f.var
            && let Some(given) = submitted.get(var)
        {
            f.values = given.values.clone();
        }
    }
}

fn remember_ended(t: &mut Table, owner: &str, id: String) {
    if t.ended.len() >= ENDED_REMEMBERED {
        t.ended.pop_front();
    }
    t.ended.push_back((owner.to_owned(), id));
}

fn put_back(table: &Mutex<Table>, owner: &str, session: CommandSession) {
    lock(table)
        .open
        .entry(owner.to_owned())
        .or_default()
        .push(session);
}

impl Module for Adhoc {
    fn name(&self) -> &'static str {
        "adhoc"
    }

    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.iq(
            IqTarget::Server,
            IqType::Set,
            NS_COMMANDS,
            "command",
            self.clone(),
        );
        // §2.1: the server supports the protocol.
        reg.server_feature(NS_COMMANDS);
        reg.disco_nodes(self);
    }
}

#[async_trait]
impl IqHandler for Adhoc {
    async fn handle_iq(&self, ctx: &Context, req: IqRoute<'_>) -> IqOutcome {
        self.handle_command(ctx, &req).await
    }
}

#[async_trait]
impl DiscoNodes for Adhoc {
    async fn disco_node(
        &self,
        ctx: &Context,
        req: &IqRoute<'_>,
        node: &str,
        info: bool,
    ) -> Option<IqOutcome> {
        // Commands live at the server's domain, not at accounts.
        if req.account.is_some() {
            return None;
        }
        let requester = self.requester(ctx, req);
        let domain = req
            .iq
            .attr("to")
            .and_then(|t| Jid::new(t).ok())
            .map(|j| j.domain().as_str().to_owned())
            .or_else(|| ctx.server.domains.first().cloned())
            .unwrap_or_default();
        if node == NS_COMMANDS {
            return Some(IqOutcome::Result(Some(if info {
                // §2.2: the command list node is "automation/command-list".
                Element::new("query", ns::DISCO_INFO)
                    .with_attr("node", NS_COMMANDS)
                    .with_child(
                        Element::new("identity", ns::DISCO_INFO)
                            .with_attr("category", "automation")
                            .with_attr("type", "command-list")
                            .with_attr("name", "Commands"),
                    )
            } else {
                self.command_items(ctx, &requester, &domain)
            })));
        }
        let command = ctx.server.commands.get(node)?;
        if !command.allowed(&requester) {
            // §2.2: "If the command is not available to the requester, the responder SHOULD
            // respond with a 403 "Forbidden" error."
            return Some(IqOutcome::Error(StanzaError::new(
                StanzaErrorCondition::Forbidden,
            )));
        }
        Some(IqOutcome::Result(Some(if info {
            // §2.2: at least the command-node identity and the commands feature; jabber:x:data
            // too.
            Element::new("query", ns::DISCO_INFO)
                .with_attr("node", node)
                .with_child(
                    Element::new("identity", ns::DISCO_INFO)
                        .with_attr("category", "automation")
                        .with_attr("type", "command-node")
                        .with_attr("name", command.name()),
                )
                .with_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", NS_COMMANDS))
                .with_child(
                    Element::new("feature", ns::DISCO_INFO).with_attr("var", ns::DATA_FORMS),
                )
        } else {
            Element::new("query", ns::DISCO_ITEMS).with_attr("node", node)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_tags() {
        for ok in ["en", "en-US", "fr-ca", "zh-Hant-TW", "de-1996"] {
            assert!(is_language_tag(ok), "{ok}");
        }
        for bad in ["", "-", "en-", "12", "en us", "abcdefghi", "en_US"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }

    #[test]
    fn actions() {
        assert_eq!(Action::parse(None), Some(Action::Execute));
        assert_eq!(Action::parse(Some("prev")), Some(Action::Prev));
        assert_eq!(Action::parse(Some("jump")), None);
    }
}
