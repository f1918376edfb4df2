//! XEP-0050 ad-hoc commands and XEP-0133 service administration over real sockets: discovery
//! (XEP-0050 §2.1, §2.2), execution with sessions and actions (§2.4, §3.3, §3.4), the errors of
//! §4.4, and each administration command of XEP-0133 §4 from its form to its completion, with
//! what it does to the accounts and their sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use starling_module_api::commands::{AdhocCommand, Note, Requester, Step};
use starling_module_api::forms::{DataForm, Field};
use starling_module_api::{Context, Module, Registrar};
use starling_testkit::client::{Client, TestError};
use starling_testkit::server::TestServer;
use starling_testkit::{Element, Security};

const PW: &str = "pw";
const QUIET: Duration = Duration::from_millis(200);
const CMD: &str = "http://jabber.org/protocol/commands";
const ADMIN: &str = "http://jabber.org/protocol/admin";
const FORM_TYPE: &str = "<field type='hidden' var='FORM_TYPE'>\
    <value>http://jabber.org/protocol/admin</value></field>";
const ME: &str = "admin@localhost/pc";

/// Two stages, for the actions the XEP-0133 commands (one stage each) do not use: a name, then
/// a colour, then a note.
struct Wizard;

#[async_trait]
impl AdhocCommand for Wizard {
    fn node(&self) -> &str {
        "urn:test:wizard"
    }
    fn name(&self) -> &str {
        "Wizard"
    }
    fn allowed(&self, requester: &Requester) -> bool {
        requester.account.is_some()
    }
    async fn execute(&self, _ctx: &Context, _r: &Requester, submitted: &[DataForm]) -> Step {
        match submitted {
            [] => Step::form(
                DataForm::form(None).field(Field::text_single("name").label("Name").required()),
            ),
            [first] => match first.required("name") {
                Ok(_) => Step::last_form(
                    DataForm::form(None).field(Field::text_single("colour").label("Colour")),
                ),
                Err(e) => Step::Error(e),
            },
            [first, second, ..] => Step::done().with_note(Note::info(format!(
                "{} likes {}",
                first.value("name").unwrap_or_default(),
                second.value("colour").unwrap_or("nothing")
            ))),
        }
    }
}

struct WizardModule;

impl Module for WizardModule {
    fn name(&self) -> &'static str {
        "wizard"
    }
    fn register(self: Arc<Self>, reg: &mut Registrar) {
        reg.command(Arc::new(Wizard));
    }
}

async fn server() -> TestServer {
    let server = TestServer::start_with_modules(
        |c| c.admins = vec!["admin@localhost".to_owned()],
        vec![Arc::new(WizardModule)],
    )
    .await;
    for u in ["admin", "alice", "bob"] {
        server.add_user(u, PW).await;
    }
    server
}

async fn admin(server: &TestServer) -> Client {
    server.login("admin", PW, "pc").await
}

fn node(name: &str) -> String {
    format!("{ADMIN}#{name}")
}

/// Sends `<command node=… [action=…] [sessionid=…]>payload</command>` to the server's domain.
async fn send_command(
    c: &mut Client,
    id: &str,
    node: &str,
    action: Option<&str>,
    sessionid: Option<&str>,
    payload: &str,
) {
    let action = action.map(|a| format!(" action='{a}'")).unwrap_or_default();
    let sid = sessionid
        .map(|s| format!(" sessionid='{s}'"))
        .unwrap_or_default();
    c.send_xml(&format!(
        "<iq type='set' to='localhost' id='{id}'><command xmlns='{CMD}' node='{node}'{action}{sid}>{payload}</command></iq>"
    ))
    .await
    .unwrap();
}

/// The submitted admin form with `fields` (`<field var='v'><value>…</value></field>`…).
fn submit(fields: &[(&str, &[&str])]) -> String {
    let mut x = format!("<x xmlns='jabber:x:data' type='submit'>{FORM_TYPE}");
    for (var, values) in fields {
        x.push_str(&format!("<field var='{var}'>"));
        for v in *values {
            x.push_str(&format!("<value>{v}</value>"));
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    x
}

/// XEP-0050 §2.4.2 stage 1: executes `node` and expects `status='executing'` with the actions
/// and `form` (the `<x/>` expected); returns the session id.
async fn start(c: &mut Client, node: &str, actions: &str, form: &str) -> String {
    send_command(c, "s1", node, Some("execute"), None, "").await;
    let el = c
        .expect(&format!(
            "<iq type='result' id='s1' from='localhost' to='{ME}'>\
             <command xmlns='{CMD}' node='{node}' sessionid='{{*}}' status='executing' xml:lang='en'>\
             {actions}{form}</command></iq>"
        ))
        .await
        .unwrap();
    command_of(&el).attr("sessionid").unwrap().to_owned()
}

fn command_of(iq: &Element) -> &Element {
    iq.get_child("command", CMD).unwrap()
}

const COMPLETE: &str = "<actions execute='complete'><complete/></actions>";

/// Submits `form` to session `sid` and expects `status='completed'` with `content`.
async fn complete(c: &mut Client, node: &str, sid: &str, form: &str, content: &str) {
    send_command(c, "s2", node, None, Some(sid), form).await;
    c.expect(&format!(
        "<iq type='result' id='s2' from='localhost' to='{ME}'>\
         <command xmlns='{CMD}' node='{node}' sessionid='{sid}' status='completed' xml:lang='en'>\
         {content}</command></iq>"
    ))
    .await
    .unwrap();
}

fn info(text: &str) -> String {
    format!("<note type='info'>{text}</note>")
}

fn error_reply(id: &str, error: &str) -> String {
    format!("<iq type='error' id='{id}' from='localhost' to='{ME}'>{error}</iq>")
}

fn cmd_error(kind: &str, general: &str, specific: &str) -> String {
    format!(
        "<error type='{kind}'><{general} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <{specific} xmlns='{CMD}'/></error>"
    )
}

fn accountjids_form(title: &str, instructions: &str, label: &str) -> String {
    format!(
        "<x xmlns='jabber:x:data' type='form'><title>{title}</title>\
         <instructions>{instructions}</instructions>{FORM_TYPE}\
         <field type='jid-multi' var='accountjids' label='{label}'><required/></field></x>"
    )
}

/// Logs in with resumable stream management (XEP-0198); returns the client and its id.
async fn online_with_sm(server: &TestServer, user: &str, password: &str) -> (Client, String) {
    let mut c = server.login(user, password, "phone").await;
    c.send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    let enabled = c
        .expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='{*}' id='{*}'/>")
        .await
        .unwrap();
    (c, enabled.attr("id").unwrap().to_owned())
}

/// Authenticates `user` again and tries to resume `previd`: XEP-0198 §5 `<failed/>` with
/// `<item-not-found/>`, since the session ended (not merely lost its connection).
async fn resume_fails(server: &TestServer, user: &str, password: &str, previd: &str) {
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    c.starttls(&server.domain).await.unwrap();
    c.authenticate(&server.domain, "SCRAM-SHA-256", user, password, None)
        .await
        .unwrap();
    c.send_xml(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await
    .unwrap();
    c.expect("<failed xmlns='urn:xmpp:sm:3' h='{*}'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></failed>")
        .await
        .unwrap();
}

async fn login_fails(server: &TestServer, user: &str, password: &str) -> TestError {
    match Client::login(
        server.starttls_addr,
        Security::StartTls,
        &server.domain,
        user,
        password,
        Some("r"),
    )
    .await
    {
        Ok(_) => panic!("{user} logged in"),
        Err(e) => e,
    }
}

// ----- discovery -----

/// XEP-0050 §2.1: the server supports the protocol; §2.2: the command list holds what the
/// requester may run (XEP-0133 §3: every administration command for an admin), as items of the
/// domain.
#[tokio::test]
async fn an_admin_lists_every_command_a_user_only_theirs() {
    let server = server().await;
    let mut a = admin(&server).await;
    a.send_xml("<iq type='get' to='localhost' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    let info = a.recv_element().await.unwrap();
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert!(
        query
            .children()
            .any(|f| f.name() == "feature" && f.attr("var") == Some(CMD)),
        "no commands feature in {}",
        info.to_xml()
    );
    let items = [
        ("add-user", "Add User"),
        ("delete-user", "Delete User"),
        ("disable-user", "Disable User"),
        ("reenable-user", "Re-Enable User"),
        ("end-user-session", "End User Session"),
        ("change-user-password", "Change User Password"),
        ("user-stats", "Get User Statistics"),
        ("get-online-users-num", "Get Number of Online Users"),
        ("get-online-users-list", "Get List of Online Users"),
        ("announce", "Send Announcement to Online Users"),
    ]
    .iter()
    .map(|(n, name)| format!("<item jid='localhost' node='{ADMIN}#{n}' name='{name}'/>"))
    .collect::<String>();
    let list = format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{CMD}'>");
    a.send_xml(&format!(
        "<iq type='get' to='localhost' id='i2'>{list}</query></iq>"
    ))
    .await
    .unwrap();
    // XEP-0401 §3: the invitation commands (registered before the administration module).
    let invite = "<item jid='localhost' node='urn:xmpp:invite#invite' name='Invite user'/>";
    let create =
        "<item jid='localhost' node='urn:xmpp:invite#create-account' name='Create account'/>";
    a.expect(&format!(
        "<iq type='result' id='i2' from='localhost' to='{ME}'>{list}{invite}{create}{items}\
         <item jid='localhost' node='urn:test:wizard' name='Wizard'/></query></iq>"
    ))
    .await
    .unwrap();

    let mut alice = server.login("alice", PW, "r").await;
    alice
        .send_xml(&format!(
            "<iq type='get' to='localhost' id='i3'>{list}</query></iq>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='i3' from='localhost' to='alice@localhost/r'>{list}{invite}\
             <item jid='localhost' node='urn:test:wizard' name='Wizard'/></query></iq>"
        ))
        .await
        .unwrap();
}

/// XEP-0050 §2.2: a command node's disco#info (identity `automation/command-node`, the
/// commands and data forms features); `<forbidden/>` for someone who may not run it; an
/// unknown node is `<item-not-found/>` (XEP-0030 §3.2).
#[tokio::test]
async fn command_node_info() {
    let server = server().await;
    let mut a = admin(&server).await;
    let n = node("announce");
    let q = format!("<query xmlns='http://jabber.org/protocol/disco#info' node='{n}'");
    a.send_xml(&format!("<iq type='get' to='localhost' id='i1'>{q}/></iq>"))
        .await
        .unwrap();
    a.expect(&format!(
        "<iq type='result' id='i1' from='localhost' to='{ME}'>{q}>\
         <identity category='automation' type='command-node' name='Send Announcement to Online Users'/>\
         <feature var='{CMD}'/><feature var='jabber:x:data'/></query></iq>"
    ))
    .await
    .unwrap();
    a.send_xml("<iq type='get' to='localhost' id='i2'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:nothing'/></iq>")
        .await
        .unwrap();
    a.expect(&error_reply(
        "i2",
        "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    ))
    .await
    .unwrap();
    let mut alice = server.login("alice", PW, "r").await;
    alice
        .send_xml(&format!("<iq type='get' to='localhost' id='i3'>{q}/></iq>"))
        .await
        .unwrap();
    alice
        .expect("<iq type='error' id='i3' from='localhost' to='alice@localhost/r'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        .await
        .unwrap();
}

// ----- permissions and errors -----

/// XEP-0133 §7 and XEP-0050 §4.4: a user who is not an admin gets `<forbidden/>`; an unknown
/// node `<item-not-found/>`.
#[tokio::test]
async fn a_non_admin_is_forbidden() {
    let server = server().await;
    let mut alice = server.login("alice", PW, "r").await;
    for (id, name) in [
        ("f1", "disable-user"),
        ("f2", "add-user"),
        ("f3", "announce"),
    ] {
        send_command(&mut alice, id, &node(name), Some("execute"), None, "").await;
        alice
            .expect(&format!("<iq type='error' id='{id}' from='localhost' to='alice@localhost/r'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"))
            .await
            .unwrap();
    }
    send_command(&mut alice, "f4", "urn:nothing", None, None, "").await;
    alice
        .expect("<iq type='error' id='f4' from='localhost' to='alice@localhost/r'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        .await
        .unwrap();
    // Nothing was disabled on the way.
    server.login("bob", PW, "r").await;
}

/// XEP-0050 §4.4: an unknown sessionid is `<bad-sessionid/>`; one that ended (§3.3: completed
/// or cancelled) `<session-expired/>`; an unknown action `<malformed-action/>`; an action the
/// stage does not offer `<bad-action/>`; a language that is no tag `<bad-locale/>`.
#[tokio::test]
async fn session_and_action_errors() {
    let server = server().await;
    let mut a = admin(&server).await;
    let n = node("disable-user");
    send_command(&mut a, "e1", &n, None, Some("no-such-session"), "").await;
    a.expect(&error_reply(
        "e1",
        &cmd_error("modify", "bad-request", "bad-sessionid"),
    ))
    .await
    .unwrap();
    send_command(&mut a, "e2", &n, Some("jump"), None, "").await;
    a.expect(&error_reply(
        "e2",
        &cmd_error("modify", "bad-request", "malformed-action"),
    ))
    .await
    .unwrap();
    // Nothing to go on with before a session exists.
    send_command(&mut a, "e3", &n, Some("next"), None, "").await;
    a.expect(&format!(
        "<iq type='error' id='e3' from='localhost' to='{ME}'><error type='modify'>\
         <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text>\
         <bad-action xmlns='{CMD}'/></error></iq>"
    ))
    .await
    .unwrap();
    a.send_xml(&format!(
        "<iq type='set' to='localhost' id='e4' xml:lang='not a tag'><command xmlns='{CMD}' node='{n}'/></iq>"
    ))
    .await
    .unwrap();
    a.expect(&format!(
        "<iq type='error' id='e4' from='localhost' to='{ME}'><error type='modify'>\
         <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>not a language tag</text>\
         <bad-locale xmlns='{CMD}'/></error></iq>"
    ))
    .await
    .unwrap();

    // §2.4.3: cancel ends the session with status='canceled'; the id is then expired.
    let form = accountjids_form(
        "Disabling a User",
        "Fill out this form to disable a user.",
        "The Jabber ID(s) to disable",
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    // The last stage offers no 'next'.
    send_command(&mut a, "e5", &n, Some("next"), Some(&sid), "").await;
    a.expect(&format!(
        "<iq type='error' id='e5' from='localhost' to='{ME}'><error type='modify'>\
         <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text>\
         <bad-action xmlns='{CMD}'/></error></iq>"
    ))
    .await
    .unwrap();
    // A required field missing: <bad-payload/>, and the stage stays.
    send_command(&mut a, "e6", &n, None, Some(&sid), &submit(&[])).await;
    a.expect(&format!(
        "<iq type='error' id='e6' from='localhost' to='{ME}'><error type='modify'>\
         <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the field 'accountjids' is required</text>\
         <bad-payload xmlns='{CMD}'/></error></iq>"
    ))
    .await
    .unwrap();
    // Another resource of the same account cannot use the session (§3.3).
    let mut other = server.login("admin", PW, "laptop").await;
    send_command(&mut other, "e7", &n, Some("cancel"), Some(&sid), "").await;
    other
        .expect(&format!(
            "<iq type='error' id='e7' from='localhost' to='admin@localhost/laptop'>{}</iq>",
            cmd_error("modify", "bad-request", "bad-sessionid")
        ))
        .await
        .unwrap();
    send_command(&mut a, "e8", &n, Some("cancel"), Some(&sid), "").await;
    a.expect(&format!(
        "<iq type='result' id='e8' from='localhost' to='{ME}'>\
         <command xmlns='{CMD}' node='{n}' sessionid='{sid}' status='canceled' xml:lang='en'/></iq>"
    ))
    .await
    .unwrap();
    send_command(
        &mut a,
        "e9",
        &n,
        None,
        Some(&sid),
        &submit(&[("accountjids", &["bob@localhost"])]),
    )
    .await;
    a.expect(&error_reply(
        "e9",
        &cmd_error("cancel", "not-allowed", "session-expired"),
    ))
    .await
    .unwrap();
    // Bob was not disabled.
    server.login("bob", PW, "r").await;
}

/// XEP-0050 §2.4.2 and §3.4: a two-stage command: `next`, `prev` (the first form again, with
/// the value submitted for it), `complete`; a completed session's id is expired (§3.3).
#[tokio::test]
async fn stages_next_prev_complete() {
    let server = server().await;
    let mut a = admin(&server).await;
    let n = "urn:test:wizard";
    let first = "<x xmlns='jabber:x:data' type='form'><field type='text-single' var='name' label='Name'><required/></field></x>";
    let sid = start(
        &mut a,
        n,
        "<actions execute='next'><next/></actions>",
        first,
    )
    .await;
    // 'complete' is not offered at a stage followed by another.
    send_command(&mut a, "w1", n, Some("complete"), Some(&sid), "").await;
    a.expect(&format!(
        "<iq type='error' id='w1' from='localhost' to='{ME}'><error type='modify'>\
         <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text>\
         <bad-action xmlns='{CMD}'/></error></iq>"
    ))
    .await
    .unwrap();
    let name =
        "<x xmlns='jabber:x:data' type='submit'><field var='name'><value>Ann</value></field></x>";
    let second = "<x xmlns='jabber:x:data' type='form'><field type='text-single' var='colour' label='Colour'/></x>";
    let stage2 = format!(
        "<iq type='result' id='w2' from='localhost' to='{ME}'>\
         <command xmlns='{CMD}' node='{n}' sessionid='{sid}' status='executing' xml:lang='en'>\
         <actions execute='complete'><prev/><complete/></actions>{second}</command></iq>"
    );
    send_command(&mut a, "w2", n, Some("next"), Some(&sid), name).await;
    a.expect(&stage2).await.unwrap();
    send_command(&mut a, "w3", n, Some("prev"), Some(&sid), "").await;
    a.expect(&format!(
        "<iq type='result' id='w3' from='localhost' to='{ME}'>\
         <command xmlns='{CMD}' node='{n}' sessionid='{sid}' status='executing' xml:lang='en'>\
         <actions execute='next'><next/></actions>\
         <x xmlns='jabber:x:data' type='form'><field type='text-single' var='name' label='Name'>\
         <required/><value>Ann</value></field></x></command></iq>"
    ))
    .await
    .unwrap();
    // 'prev' at the first stage is not offered.
    send_command(&mut a, "w4", n, Some("prev"), Some(&sid), "").await;
    a.expect(&format!(
        "<iq type='error' id='w4' from='localhost' to='{ME}'><error type='modify'>\
         <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text>\
         <bad-action xmlns='{CMD}'/></error></iq>"
    ))
    .await
    .unwrap();
    // 'execute' is the stage's default: next.
    send_command(&mut a, "w2", n, Some("execute"), Some(&sid), name).await;
    a.expect(&stage2).await.unwrap();
    let colour = "<x xmlns='jabber:x:data' type='submit'><field var='colour'><value>green</value></field></x>";
    complete(&mut a, n, &sid, colour, &info("Ann likes green")).await;
    send_command(&mut a, "w5", n, Some("prev"), Some(&sid), "").await;
    a.expect(&error_reply(
        "w5",
        &cmd_error("cancel", "not-allowed", "session-expired"),
    ))
    .await
    .unwrap();
}

// ----- XEP-0133 commands -----

/// XEP-0133 §4.1: the form, the account created (it logs in), `<conflict/>` for one that exists
/// (§5), `<not-acceptable/>` for passwords that differ (XEP-0004 §4).
#[tokio::test]
async fn add_user() {
    let server = server().await;
    let mut a = admin(&server).await;
    let n = node("add-user");
    let form = format!(
        "<x xmlns='jabber:x:data' type='form'><title>Adding a User</title>\
         <instructions>Fill out this form to add a user.</instructions>{FORM_TYPE}\
         <field type='jid-single' var='accountjid' label='The Jabber ID for the account to be added'><required/></field>\
         <field type='text-private' var='password' label='The password for this account'><required/></field>\
         <field type='text-private' var='password-verify' label='Retype password'/></x>"
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    send_command(
        &mut a,
        "a2",
        &n,
        None,
        Some(&sid),
        &submit(&[
            ("accountjid", &["carol@localhost"]),
            ("password", &["R0m30"]),
            ("password-verify", &["V3r0n4"]),
        ]),
    )
    .await;
    a.expect(&format!(
        "<iq type='error' id='a2' from='localhost' to='{ME}'><error type='modify'>\
         <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>the passwords do not match</text></error></iq>"
    ))
    .await
    .unwrap();
    let good = submit(&[
        ("accountjid", &["carol@localhost"]),
        ("password", &["R0m30"]),
        ("password-verify", &["R0m30"]),
    ]);
    complete(
        &mut a,
        &n,
        &sid,
        &good,
        &info("carol@localhost was created"),
    )
    .await;
    server.login("carol", "R0m30", "r").await;

    let sid = start(&mut a, &n, COMPLETE, &form).await;
    send_command(&mut a, "a3", &n, None, Some(&sid), &good).await;
    a.expect(&format!(
        "<iq type='error' id='a3' from='localhost' to='{ME}'><error type='cancel'>\
         <conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>carol@localhost already exists</text></error></iq>"
    ))
    .await
    .unwrap();
}

/// XEP-0133 §4.2: deletion ends the account's sessions with `<not-authorized/>` (the issue,
/// XEP-0077 §3.2), they cannot be resumed, and the account can no longer log in.
#[tokio::test]
async fn delete_user_ends_its_sessions() {
    let server = server().await;
    let mut a = admin(&server).await;
    let (mut bob, _) = online_with_sm(&server, "bob", PW).await;
    let n = node("delete-user");
    let form = accountjids_form(
        "Deleting a User",
        "Fill out this form to delete a user.",
        "The Jabber ID(s) to delete",
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[("accountjids", &["bob@localhost", "nobody@localhost"])]),
        &format!(
            "{}<note type='error'>nobody@localhost does not exist</note>",
            info("Accounts deleted: bob@localhost")
        ),
    )
    .await;
    bob.expect_stream_error(
        "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>account deleted</text></stream:error>",
    )
    .await
    .unwrap();
    assert!(matches!(
        login_fails(&server, "bob", PW).await,
        TestError::SaslFailure(c) if c == "not-authorized"
    ));
    // A JID of another server is refused before anything is done.
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    send_command(
        &mut a,
        "d3",
        &n,
        None,
        Some(&sid),
        &submit(&[("accountjids", &["alice@localhost", "x@elsewhere.example"])]),
    )
    .await;
    a.expect(&format!(
        "<iq type='error' id='d3' from='localhost' to='{ME}'><error type='modify'>\
         <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>x@elsewhere.example is not an account of this server</text></error></iq>"
    ))
    .await
    .unwrap();
    server.login("alice", PW, "r").await;
}

/// XEP-0133 §4.3 and §4.4: disabling ends the sessions (`<not-authorized/>`) and refuses logins
/// with RFC 6120 §6.5.1's `<account-disabled/>`, even with the right password; re-enabling
/// lets the account in again.
#[tokio::test]
async fn disable_and_reenable_user() {
    let server = server().await;
    let mut a = admin(&server).await;
    let mut bob = server.online("bob", PW, "r").await;
    let n = node("disable-user");
    let form = accountjids_form(
        "Disabling a User",
        "Fill out this form to disable a user.",
        "The Jabber ID(s) to disable",
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[("accountjids", &["bob@localhost"])]),
        &info("Accounts disabled: bob@localhost"),
    )
    .await;
    bob.expect_stream_error(
        "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>account disabled</text></stream:error>",
    )
    .await
    .unwrap();

    // RFC 6120 §6.5.1: the exact failure after the right password.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    c.starttls(&server.domain).await.unwrap();
    c.send_xml(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        base64_plain("bob", PW)
    ))
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><account-disabled/><text>this account is disabled</text></failure>")
        .await
        .unwrap();
    // With a wrong password, nothing tells that the account is disabled.
    c.send_xml(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
        base64_plain("bob", "wrong")
    ))
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
        .await
        .unwrap();
    assert!(matches!(
        login_fails(&server, "bob", PW).await,
        TestError::SaslFailure(c) if c == "account-disabled"
    ));

    let n = node("reenable-user");
    let form = accountjids_form(
        "Re-Enable a User",
        "Fill out this form to re-enable a user.",
        "The Jabber ID(s) to re-enable",
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[("accountjids", &["bob@localhost"])]),
        &info("Accounts re-enabled: bob@localhost"),
    )
    .await;
    server.login("bob", PW, "r").await;
}

fn base64_plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// XEP-0133 §4.5: a full JID ends that session, a bare JID all of the account's, with
/// `<policy-violation/>`; the account may log in again, but the ended session cannot be resumed
/// (XEP-0198 §5).
#[tokio::test]
async fn end_user_session() {
    let server = server().await;
    let mut a = admin(&server).await;
    let (mut phone, previd) = online_with_sm(&server, "bob", PW).await;
    let mut desk = server.login("bob", PW, "desk").await;
    let n = node("end-user-session");
    let form = accountjids_form(
        "Ending a User Session",
        "Fill out this form to end a user's session.",
        "The Jabber ID(s) for which to end sessions",
    );
    let kicked = "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
        <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>session ended by an administrator</text></stream:error>";
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[("accountjids", &["bob@localhost/phone"])]),
        &info("Sessions ended: bob@localhost/phone"),
    )
    .await;
    phone.expect_stream_error(kicked).await.unwrap();
    desk.expect_silence(QUIET).await.unwrap();
    resume_fails(&server, "bob", PW, &previd).await;
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[("accountjids", &["bob@localhost"])]),
        &info("Sessions ended: bob@localhost"),
    )
    .await;
    desk.expect_stream_error(kicked).await.unwrap();
    server.login("bob", PW, "again").await;
}

/// XEP-0133 §4.7: the password changes (the old one no longer works), the account's sessions
/// end with `<not-authorized/>` and cannot be resumed.
#[tokio::test]
async fn change_user_password() {
    let server = server().await;
    let mut a = admin(&server).await;
    let (mut bob, previd) = online_with_sm(&server, "bob", PW).await;
    let n = node("change-user-password");
    let form = format!(
        "<x xmlns='jabber:x:data' type='form'><title>Changing a User Password</title>\
         <instructions>Fill out this form to change a user's password.</instructions>{FORM_TYPE}\
         <field type='jid-single' var='accountjid' label='The Jabber ID for this account'><required/></field>\
         <field type='text-private' var='password' label='The password for this account'><required/></field></x>"
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[
            ("accountjid", &["bob@localhost"]),
            ("password", &["V3r0n4"]),
        ]),
        &info("The password of bob@localhost was changed"),
    )
    .await;
    bob.expect_stream_error(
        "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>password changed</text></stream:error>",
    )
    .await
    .unwrap();
    assert!(matches!(
        login_fails(&server, "bob", PW).await,
        TestError::SaslFailure(c) if c == "not-authorized"
    ));
    resume_fails(&server, "bob", "V3r0n4", &previd).await;
}

/// XEP-0133 §4.10: roster size, online resources and their addresses.
#[tokio::test]
async fn user_stats() {
    let server = server().await;
    server.befriend("alice", "bob").await;
    let mut a = admin(&server).await;
    let _bob = server.login("bob", PW, "work").await;
    let n = node("user-stats");
    let form = format!(
        "<x xmlns='jabber:x:data' type='form'><title>Get User Statistics</title>\
         <instructions>Fill out this form to gather user statistics.</instructions>{FORM_TYPE}\
         <field type='jid-single' var='accountjid' label='The Jabber ID for statistics'><required/></field></x>"
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[("accountjid", &["bob@localhost"])]),
        &format!(
            "<x xmlns='jabber:x:data' type='result'>{FORM_TYPE}\
             <field type='text-multi' var='ipaddresses' label=\"The IP addresses of an account's online sessions\"><value>127.0.0.1</value></field>\
             <field type='text-single' var='rostersize' label='Number of roster items for an account'><value>1</value></field>\
             <field type='text-multi' var='onlineresources' label=\"The names of an account's online sessions\"><value>work</value></field></x>"
        ),
    )
    .await;
}

/// XEP-0133 §4.15 (at once) and §4.20 (with `max_items`): the online accounts of the host.
#[tokio::test]
async fn online_users_number_and_list() {
    let server = server().await;
    let mut a = admin(&server).await;
    let _b1 = server.login("bob", PW, "one").await;
    let _b2 = server.login("bob", PW, "two").await;
    let n = node("get-online-users-num");
    send_command(&mut a, "o1", &n, Some("execute"), None, "").await;
    a.expect(&format!(
        "<iq type='result' id='o1' from='localhost' to='{ME}'>\
         <command xmlns='{CMD}' node='{n}' sessionid='{{*}}' status='completed' xml:lang='en'>\
         <x xmlns='jabber:x:data' type='result'>{FORM_TYPE}\
         <field type='text-single' var='onlineusersnum' label='The number of online users'><value>2</value></field></x>\
         </command></iq>"
    ))
    .await
    .unwrap();
    let n = node("get-online-users-list");
    let options: String = ["25", "50", "75", "100", "150", "200"]
        .iter()
        .map(|v| format!("<option label='{v}'><value>{v}</value></option>"))
        .collect();
    let form = format!(
        "<x xmlns='jabber:x:data' type='form'><title>Requesting List of Online Users</title>\
         <instructions>Fill out this form to request the online users of this service.</instructions>{FORM_TYPE}\
         <field type='list-single' var='max_items' label='Maximum number of items to show'>{options}\
         <option label='None'><value>none</value></option></field></x>"
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    complete(
        &mut a,
        &n,
        &sid,
        &submit(&[("max_items", &["25"])]),
        &format!(
            "<x xmlns='jabber:x:data' type='result'>{FORM_TYPE}\
             <field type='jid-multi' var='onlineuserjids' label='The list of all online users'>\
             <value>admin@localhost</value><value>bob@localhost</value></field></x>"
        ),
    )
    .await;
}

/// XEP-0133 §4.23: the announcement reaches every session of the host as a headline from the
/// domain, its lines joined.
#[tokio::test]
async fn announce() {
    let server = server().await;
    let mut a = admin(&server).await;
    let mut alice = server.online("alice", PW, "r").await;
    let n = node("announce");
    let form = format!(
        "<x xmlns='jabber:x:data' type='form'><title>Making an Announcement</title>\
         <instructions>Fill out this form to make an announcement to all active users of this service.</instructions>{FORM_TYPE}\
         <field type='text-multi' var='announcement' label='Announcement'><required/></field></x>"
    );
    let sid = start(&mut a, &n, COMPLETE, &form).await;
    send_command(
        &mut a,
        "s2",
        &n,
        None,
        Some(&sid),
        &submit(&[("announcement", &["Going down", "in 2 minutes"])]),
    )
    .await;
    let headline = "<message from='localhost' to='{to}' type='headline'><body>Going down\nin 2 minutes</body></message>";
    // The admin's own session gets it too; in either order with the command's result.
    let mut got = [
        a.recv_element().await.unwrap(),
        a.recv_element().await.unwrap(),
    ];
    got.sort_by_key(|e| e.name() != "message");
    starling_testkit::assert_matches(&headline.replace("{to}", ME), &got[0]);
    starling_testkit::assert_matches(
        &format!(
            "<iq type='result' id='s2' from='localhost' to='{ME}'>\
             <command xmlns='{CMD}' node='{n}' sessionid='{sid}' status='completed' xml:lang='en'>\
             {}</command></iq>",
            info("Announcement sent to 2 session(s)")
        ),
        &got[1],
    );
    alice
        .expect(&headline.replace("{to}", "alice@localhost/r"))
        .await
        .unwrap();
}
