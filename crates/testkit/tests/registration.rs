//! XEP-0077 in-band registration over real sockets: registration before authentication with
//! XEP-0445 invitation tokens (and, when the operator opens it, without), the stream features,
//! the limits, and for a logged-in user password change (§3.3) and account removal (§3.2);
//! XEP-0401/XEP-0379 contact invitations that end with both sides at `both`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling::invite::{CreateArgs, create};
use starling_config::RegistrationMode;
use starling_storage::Subscription;
use starling_testkit::client::{Client, TestError};
use starling_testkit::server::TestServer;

const PW: &str = "password1";
const QUIET: Duration = Duration::from_millis(200);

fn error(ty: &str, cond: &str, text: &str) -> String {
    format!(
        "<error type='{ty}'><{cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{text}</text></error>"
    )
}

/// A new unauthenticated stream over STARTTLS.
async fn fresh(server: &TestServer) -> Client {
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    c.starttls(&server.domain).await.unwrap();
    c
}

/// Makes an invitation as `starling invite create` does; returns its token.
async fn invite(server: &TestServer, args: CreateArgs) -> String {
    let store = server.server().storage().stores().invites;
    let created = create(&server.config, store.as_ref(), args).await.unwrap();
    created.token
}

fn one_use() -> CreateArgs {
    CreateArgs {
        uses: 1,
        ..CreateArgs::default()
    }
}

async fn preauth(c: &mut Client, id: &str, token: &str) {
    c.send_xml(&format!(
        "<iq type='set' id='{id}' to='localhost'><preauth xmlns='urn:xmpp:pars:0' token='{token}'/></iq>"
    ))
    .await
    .unwrap();
}

async fn register(c: &mut Client, id: &str, user: &str, password: &str) {
    c.send_xml(&format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'>\
         <username>{user}</username><password>{password}</password></query></iq>"
    ))
    .await
    .unwrap();
}

async fn can_log_in(server: &TestServer, user: &str, password: &str) -> bool {
    let mut c = fresh(server).await;
    match c
        .authenticate(&server.domain, "SCRAM-SHA-256", user, password, None)
        .await
    {
        Ok(_) => true,
        Err(TestError::SaslFailure(_)) => false,
        Err(e) => panic!("unexpected: {e}"),
    }
}

/// XEP-0077 §9 and XEP-0445 §3: the features are offered once the stream is encrypted (TLS is
/// required by default, so before STARTTLS only STARTTLS is offered), and §3.1's form.
#[tokio::test]
async fn features_and_form() {
    let server = TestServer::start().await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    let (_, plain) = c.open_stream(&server.domain).await.unwrap();
    assert!(
        plain.children().all(|f| f.name() != "register"),
        "no registration before TLS: {plain:?}"
    );
    let features = c.starttls(&server.domain).await.unwrap();
    let got: Vec<String> = features
        .children()
        .filter(|f| f.name() == "register")
        .map(|f| f.ns().to_string())
        .collect();
    assert_eq!(
        got,
        [
            "urn:xmpp:ibr-token:0",
            "http://jabber.org/features/iq-register"
        ]
    );
    c.send_xml("<iq type='get' id='f1'><query xmlns='jabber:iq:register'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='f1' from='localhost'><query xmlns='jabber:iq:register'>\
         <instructions>Choose a user name and a password of at least 8 characters. \
         Registration here needs an invitation.</instructions>\
         <username/><password/></query></iq>",
    )
    .await
    .unwrap();
    // Registration is not a way around authentication (RFC 6120 §8.1.1).
    c.send_xml("<iq type='get' id='f2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    c.expect_stream_error("not-authorized").await.unwrap();
}

/// XEP-0445 §4 with the default mode ("invite"): no invitation, no account (`<not-allowed/>`);
/// an unknown token is `<item-not-found/>`; a valid one registers once, then is spent.
#[tokio::test]
async fn an_invitation_registers_once() {
    let server = TestServer::start().await;
    let token = invite(&server, one_use()).await;
    let mut c = fresh(&server).await;
    register(&mut c, 'r'.to_string().as_str(), "juliet", PW).await;
    c.expect(&format!(
        "<iq type='error' id='r' from='localhost'>{}</iq>",
        error(
            "cancel",
            "not-allowed",
            "registration here needs an invitation"
        )
    ))
    .await
    .unwrap();
    preauth(&mut c, "p0", "no-such-token").await;
    c.expect(&format!(
        "<iq type='error' id='p0' from='localhost'>{}</iq>",
        error(
            "cancel",
            "item-not-found",
            "the invitation is invalid, used up or expired"
        )
    ))
    .await
    .unwrap();
    preauth(&mut c, "p1", &token).await;
    c.expect("<iq type='result' id='p1' from='localhost'/>")
        .await
        .unwrap();
    register(&mut c, "r1", "juliet", PW).await;
    c.expect("<iq type='result' id='r1' from='localhost'/>")
        .await
        .unwrap();
    // §3.1: then the client authenticates on the same stream.
    c.authenticate(&server.domain, "SCRAM-SHA-256", "juliet", PW, None)
        .await
        .unwrap();
    c.bind(Some("balcony")).await.unwrap();

    let mut again = fresh(&server).await;
    preauth(&mut again, "p2", &token).await;
    again
        .expect(&format!(
            "<iq type='error' id='p2' from='localhost'>{}</iq>",
            error(
                "cancel",
                "item-not-found",
                "the invitation is invalid, used up or expired"
            )
        ))
        .await
        .unwrap();
    // The token never reaches the database.
    let stored = server
        .server()
        .storage()
        .stores()
        .invites
        .list_invites(None)
        .await
        .unwrap();
    assert!(stored.is_empty(), "spent: {stored:?}");
}

/// XEP-0445 §5 and XEP-0077 §3.1: a reserved name is filled into the form and no other name
/// may use the invitation (`<conflict/>`); a taken name is `<conflict/>`, a short password
/// `<not-acceptable/>`, and none of these spends the invitation.
#[tokio::test]
async fn reserved_names_and_refusals() {
    let server = TestServer::with_users(&["romeo"], PW).await;
    let token = invite(
        &server,
        CreateArgs {
            uses: 1,
            username: Some("Juliet".to_owned()),
            ..CreateArgs::default()
        },
    )
    .await;
    let mut c = fresh(&server).await;
    preauth(&mut c, "p1", &token).await;
    c.expect("<iq type='result' id='p1' from='localhost'/>")
        .await
        .unwrap();
    c.send_xml("<iq type='get' id='f'><query xmlns='jabber:iq:register'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='f' from='localhost'><query xmlns='jabber:iq:register'>\
         <instructions>{*}</instructions><username>juliet</username><password/></query></iq>",
    )
    .await
    .unwrap();
    register(&mut c, "r1", "nurse", PW).await;
    c.expect(&format!(
        "<iq type='error' id='r1' from='localhost'>{}</iq>",
        error(
            "cancel",
            "conflict",
            "the invitation is for the username juliet"
        )
    ))
    .await
    .unwrap();
    register(&mut c, "r2", "juliet", "short").await;
    c.expect(&format!(
        "<iq type='error' id='r2' from='localhost'>{}</iq>",
        error(
            "modify",
            "not-acceptable",
            "the password must have at least 8 characters"
        )
    ))
    .await
    .unwrap();
    register(&mut c, "r3", "", PW).await;
    c.expect(&format!(
        "<iq type='error' id='r3' from='localhost'>{}</iq>",
        error(
            "modify",
            "not-acceptable",
            "the username and the password are both required"
        )
    ))
    .await
    .unwrap();
    register(&mut c, "r4", "JULIET", PW).await;
    c.expect("<iq type='result' id='r4' from='localhost'/>")
        .await
        .unwrap();
    assert!(can_log_in(&server, "juliet", PW).await);

    // Open registration: a taken name is a conflict.
    let open = TestServer::start_with(|c| c.registration.mode = RegistrationMode::Open).await;
    open.add_user("romeo", PW).await;
    let mut c = fresh(&open).await;
    register(&mut c, "t", "romeo", PW).await;
    c.expect(&format!(
        "<iq type='error' id='t' from='localhost'>{}</iq>",
        error("cancel", "conflict", "the username is taken")
    ))
    .await
    .unwrap();
}

/// Public registration, when the operator turns it on, is limited per address
/// (`<resource-constraint/>`, type wait).
#[tokio::test]
async fn open_registration_is_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.registration.mode = RegistrationMode::Open;
        c.registration.max_per_ip = 2;
    })
    .await;
    let mut c = fresh(&server).await;
    c.send_xml("<iq type='get' id='f'><query xmlns='jabber:iq:register'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='f' from='localhost'><query xmlns='jabber:iq:register'>\
         <instructions>Choose a user name and a password of at least 8 characters.</instructions>\
         <username/><password/></query></iq>",
    )
    .await
    .unwrap();
    register(&mut c, "a", "anne", PW).await;
    c.expect("<iq type='result' id='a' from='localhost'/>")
        .await
        .unwrap();
    let mut c2 = fresh(&server).await;
    register(&mut c2, "b", "bert", PW).await;
    c2.expect("<iq type='result' id='b' from='localhost'/>")
        .await
        .unwrap();
    register(&mut c2, "c", "cleo", PW).await;
    c2.expect(&format!(
        "<iq type='error' id='c' from='localhost'>{}</iq>",
        error(
            "wait",
            "resource-constraint",
            "too many accounts were registered from your address; try again later"
        )
    ))
    .await
    .unwrap();
    assert!(can_log_in(&server, "bert", PW).await);
    assert!(!can_log_in(&server, "cleo", PW).await);
}

/// With `mode = "off"` nothing is offered and a request is `<service-unavailable/>`.
#[tokio::test]
async fn registration_off() {
    let server = TestServer::start_with(|c| c.registration.mode = RegistrationMode::Off).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    let features = c.starttls(&server.domain).await.unwrap();
    assert!(features.children().all(|f| f.name() != "register"));
    c.send_xml("<iq type='get' id='f'><query xmlns='jabber:iq:register'/></iq>")
        .await
        .unwrap();
    c.expect(&format!(
        "<iq type='error' id='f' from='localhost'>{}</iq>",
        error(
            "cancel",
            "service-unavailable",
            "in-band registration is not offered here"
        )
    ))
    .await
    .unwrap();
}

/// XEP-0401 §5.3.2: registering with a contact invitation makes the invitee and the inviter
/// mutual contacts at once; the inviter's session gets the roster push (RFC 6121 §2.1.6) and
/// the newcomer finds the inviter on its roster with subscription `both`.
#[tokio::test]
async fn a_contact_invitation_ends_at_both() {
    let server = TestServer::with_users(&["romeo"], PW).await;
    let mut romeo = server.online("romeo", PW, "home").await;
    romeo
        .send_xml("<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    romeo
        .expect(
            "<iq type='result' id='roster' to='romeo@localhost/home'>\
             <query xmlns='jabber:iq:roster' ver='0'/></iq>",
        )
        .await
        .unwrap();
    romeo.drain(QUIET).await;
    let token = invite(
        &server,
        CreateArgs {
            uses: 1,
            contact: Some("romeo@localhost".to_owned()),
            ..CreateArgs::default()
        },
    )
    .await;
    let mut c = fresh(&server).await;
    preauth(&mut c, "p", &token).await;
    c.expect("<iq type='result' id='p' from='localhost'/>")
        .await
        .unwrap();
    register(&mut c, "r", "juliet", PW).await;
    c.expect("<iq type='result' id='r' from='localhost'/>")
        .await
        .unwrap();
    romeo
        .expect(
            "<iq type='set' id='{*}' to='romeo@localhost/home'><query xmlns='jabber:iq:roster' ver='{*}'>\
             <item jid='juliet@localhost' subscription='both'/></query></iq>",
        )
        .await
        .unwrap();
    c.authenticate(&server.domain, "SCRAM-SHA-256", "juliet", PW, None)
        .await
        .unwrap();
    c.bind(Some("balcony")).await.unwrap();
    c.send_xml("<iq type='get' id='q'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='q' to='juliet@localhost/balcony'><query xmlns='jabber:iq:roster' ver='{*}'>\
         <item jid='romeo@localhost' subscription='both'/></query></iq>",
    )
    .await
    .unwrap();
    // Both are online and subscribed: the newcomer's presence reaches the inviter.
    c.send_xml("<presence/>").await.unwrap();
    romeo
        .expect("<presence from='juliet@localhost/balcony' to='romeo@localhost'/>")
        .await
        .unwrap();
}

/// XEP-0379 §3.4–§3.5: an existing user redeems a contact invitation by sending its token in a
/// subscription request; the server approves it for the inviter and asks back. With the
/// invitee's pre-approval (§3.4, RFC 6121 §3.4) both end at `both`. A token for someone else
/// is ignored (§4.1): the request waits for a manual answer.
#[tokio::test]
async fn an_existing_user_redeems_a_contact_invitation() {
    let server = TestServer::with_users(&["romeo", "juliet", "nurse"], PW).await;
    let token = invite(
        &server,
        CreateArgs {
            uses: 1,
            contact: Some("romeo@localhost".to_owned()),
            ..CreateArgs::default()
        },
    )
    .await;
    let mut juliet = server.online("juliet", PW, "balcony").await;
    juliet.drain(QUIET).await;
    // Someone else's token (§4.1): nothing automatic.
    let mut nurse = server.online("nurse", PW, "hall").await;
    nurse.drain(QUIET).await;
    nurse
        .send_xml(&format!(
            "<presence to='juliet@localhost' type='subscribe'>\
             <preauth xmlns='urn:xmpp:pars:0' token='{token}'/></presence>"
        ))
        .await
        .unwrap();
    juliet
        .expect(&format!(
            "<presence from='nurse@localhost' to='juliet@localhost' type='subscribe'>\
             <preauth xmlns='urn:xmpp:pars:0' token='{token}'/></presence>"
        ))
        .await
        .unwrap();
    // Juliet pre-approves Romeo, then asks with the token.
    juliet
        .send_xml("<presence to='romeo@localhost' type='subscribed'/>")
        .await
        .unwrap();
    juliet
        .send_xml(&format!(
            "<presence to='romeo@localhost' type='subscribe'>\
             <preauth xmlns='urn:xmpp:pars:0' token='{token}'/></presence>"
        ))
        .await
        .unwrap();
    juliet.drain(Duration::from_millis(500)).await;
    let rosters = server.server().storage().stores().rosters;
    let r = rosters
        .item("romeo", "localhost", "juliet@localhost")
        .await
        .unwrap()
        .unwrap();
    let j = rosters
        .item("juliet", "localhost", "romeo@localhost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.subscription, r.ask_out, r.hidden),
        (Subscription::Both, false, false)
    );
    assert_eq!(
        (j.subscription, j.ask_out, j.pending_in),
        (Subscription::Both, false, false)
    );
    // Spent: a second request with it waits for Romeo.
    let left = server
        .server()
        .storage()
        .stores()
        .invites
        .list_invites(None)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// XEP-0077 §3.3 and §3.2.1: a logged-in user sees it is registered, changes its password
/// (the old one stops working), and may not change another account's.
#[tokio::test]
async fn password_change() {
    let server = TestServer::with_users(&["juliet"], PW).await;
    let mut c = server.online("juliet", PW, "balcony").await;
    c.drain(QUIET).await;
    let me = "juliet@localhost/balcony";
    c.send_xml("<iq type='get' id='g' to='localhost'><query xmlns='jabber:iq:register'/></iq>")
        .await
        .unwrap();
    c.expect(&format!(
        "<iq type='result' id='g' from='localhost' to='{me}'><query xmlns='jabber:iq:register'>\
         <registered/><username>juliet</username></query></iq>"
    ))
    .await
    .unwrap();
    c.send_xml(
        "<iq type='set' id='w'><query xmlns='jabber:iq:register'>\
         <username>romeo</username><password>new-password</password></query></iq>",
    )
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='error' id='w' to='{me}'>{}</iq>",
        error(
            "auth",
            "not-authorized",
            "the username is not this account's"
        )
    ))
    .await
    .unwrap();
    c.send_xml(
        "<iq type='set' id='s'><query xmlns='jabber:iq:register'>\
         <username>juliet</username><password>short</password></query></iq>",
    )
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='error' id='s' to='{me}'>{}</iq>",
        error(
            "modify",
            "not-acceptable",
            "the password must have at least 8 characters"
        )
    ))
    .await
    .unwrap();
    c.send_xml(
        "<iq type='set' id='c' to='localhost'><query xmlns='jabber:iq:register'>\
         <username>juliet</username><password>new-password</password></query></iq>",
    )
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='result' id='c' from='localhost' to='{me}'/>"
    ))
    .await
    .unwrap();
    assert!(can_log_in(&server, "juliet", "new-password").await);
    assert!(!can_log_in(&server, "juliet", PW).await);
    // The session itself goes on.
    c.send_xml("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    c.expect(&format!("<iq type='result' id='p' to='{me}'/>"))
        .await
        .unwrap();
}

/// XEP-0077 §3.2: removing one's account answers the IQ, then closes this stream and every
/// other session of the account with `<not-authorized/>`; the contacts' subscriptions are
/// cancelled (RFC 6121 §3.2–§3.3), and the account is gone.
#[tokio::test]
async fn account_removal_closes_every_session() {
    let server = TestServer::with_users(&["juliet", "romeo"], PW).await;
    server.befriend("juliet", "romeo").await;
    let mut romeo = server.online("romeo", PW, "home").await;
    romeo.drain(QUIET).await;
    let mut other = server.online("juliet", PW, "phone").await;
    other.drain(QUIET).await;
    let mut c = server.online("juliet", PW, "balcony").await;
    c.drain(QUIET).await;
    other.drain(QUIET).await;
    romeo.drain(QUIET).await;
    c.send_xml("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await
        .unwrap();
    c.expect("<iq type='result' id='rm' to='juliet@localhost/balcony'/>")
        .await
        .unwrap();
    c.expect_stream_error(
        "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
         <not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>this account was removed</text>\
         </stream:error>",
    )
    .await
    .unwrap();
    loop {
        let e = other.recv_element().await.unwrap();
        if e.name() == "error" {
            assert!(
                e.get_child("not-authorized", "urn:ietf:params:xml:ns:xmpp-streams")
                    .is_some(),
                "{e:?}"
            );
            break;
        }
    }
    let accounts = server.server().storage().stores().accounts;
    assert!(
        !accounts
            .account_exists("juliet", "localhost")
            .await
            .unwrap()
    );
    assert!(!can_log_in(&server, "juliet", PW).await);
    // Romeo's subscriptions with Juliet were cancelled.
    romeo.drain(QUIET).await;
    let item = server
        .server()
        .storage()
        .stores()
        .rosters
        .item("romeo", "localhost", "juliet@localhost")
        .await
        .unwrap();
    assert_eq!(item.map(|i| i.subscription), Some(Subscription::None));
}

const CMD: &str = "http://jabber.org/protocol/commands";

/// XEP-0401 §5.1: any user's "Invite user" completes at once with the invitation's URI
/// (`roster;preauth=…;ibr=y`) and its expiry; the invitee registers with it and both end at
/// `both`.
#[tokio::test]
async fn a_user_invites_with_the_adhoc_command() {
    let server = TestServer::with_users(&["romeo"], PW).await;
    let mut romeo = server.online("romeo", PW, "home").await;
    romeo.drain(QUIET).await;
    romeo
        .send_xml(&format!(
            "<iq type='set' to='localhost' id='i'><command xmlns='{CMD}' \
             node='urn:xmpp:invite#invite' action='execute'/></iq>"
        ))
        .await
        .unwrap();
    let reply = romeo
        .expect(&format!(
            "<iq type='result' id='i' from='localhost' to='romeo@localhost/home'>\
             <command xmlns='{CMD}' node='urn:xmpp:invite#invite' sessionid='{{*}}' \
             status='completed' xml:lang='en'><x xmlns='jabber:x:data' type='result'>\
             <field type='hidden' var='FORM_TYPE'><value>urn:xmpp:invite#invitation</value></field>\
             <field type='text-single' var='uri'><value>{{*}}</value></field>\
             <field type='text-single' var='expire'><value>{{*}}</value></field>\
             </x></command></iq>"
        ))
        .await
        .unwrap();
    let x = reply
        .get_child("command", CMD)
        .and_then(|c| c.get_child("x", "jabber:x:data"))
        .unwrap();
    let value = |var: &str| {
        x.children()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.children().next())
            .map(|v| v.text())
            .unwrap()
    };
    let uri = value("uri");
    let token = uri
        .strip_prefix("xmpp:romeo@localhost?roster;preauth=")
        .and_then(|t| t.strip_suffix(";ibr=y"))
        .unwrap_or_else(|| panic!("{uri}"));
    // XEP-0082 date-time, [registration] invite_lifetime (7 days) ahead.
    assert!(value("expire").ends_with('Z'), "{}", value("expire"));
    let mut c = fresh(&server).await;
    preauth(&mut c, "p", token).await;
    c.expect("<iq type='result' id='p' from='localhost'/>")
        .await
        .unwrap();
    register(&mut c, "r", "juliet", PW).await;
    c.expect("<iq type='result' id='r' from='localhost'/>")
        .await
        .unwrap();
    let rosters = server.server().storage().stores().rosters;
    let item = rosters
        .item("juliet", "localhost", "romeo@localhost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.subscription, Subscription::Both);
}

/// XEP-0401 §5.4: "Create account" is for administrators (`<forbidden/>` for others,
/// XEP-0050 §4.4); its form asks a user name and a roster subscription; the result is an
/// account invitation for that name (`register;preauth=…`), and with the subscription the
/// newcomer and the administrator end at `both`.
#[tokio::test]
async fn an_admin_invites_an_account_with_the_adhoc_command() {
    let server = TestServer::start_with(|c| c.admins = vec!["boss@localhost".to_owned()]).await;
    server.add_user("boss", PW).await;
    server.add_user("alice", PW).await;
    let mut alice = server.online("alice", PW, "r").await;
    alice.drain(QUIET).await;
    alice
        .send_xml(&format!(
            "<iq type='set' to='localhost' id='f'><command xmlns='{CMD}' \
             node='urn:xmpp:invite#create-account' action='execute'/></iq>"
        ))
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='error' id='f' from='localhost' to='alice@localhost/r'>\
             <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
        .await
        .unwrap();

    let mut boss = server.online("boss", PW, "pc").await;
    boss.drain(QUIET).await;
    boss.send_xml(&format!(
        "<iq type='set' to='localhost' id='s1'><command xmlns='{CMD}' \
         node='urn:xmpp:invite#create-account' action='execute'/></iq>"
    ))
    .await
    .unwrap();
    let first = boss
        .expect(&format!(
            "<iq type='result' id='s1' from='localhost' to='boss@localhost/pc'>\
             <command xmlns='{CMD}' node='urn:xmpp:invite#create-account' sessionid='{{*}}' \
             status='executing' xml:lang='en'><actions execute='complete'><complete/></actions>\
             <x xmlns='jabber:x:data' type='form'><title>Create an account invitation</title>\
             <field type='text-single' var='username' label='Username (empty: the invitee chooses)'/>\
             <field type='boolean' var='roster-subscription' label='Roster subscription'/>\
             </x></command></iq>"
        ))
        .await
        .unwrap();
    let sid = first
        .get_child("command", CMD)
        .and_then(|c| c.attr("sessionid"))
        .unwrap()
        .to_owned();
    boss.send_xml(&format!(
        "<iq type='set' to='localhost' id='s2'><command xmlns='{CMD}' \
         node='urn:xmpp:invite#create-account' sessionid='{sid}'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='username'><value>Juliet</value></field>\
         <field var='roster-subscription'><value>1</value></field></x></command></iq>"
    ))
    .await
    .unwrap();
    let done = boss
        .expect(&format!(
            "<iq type='result' id='s2' from='localhost' to='boss@localhost/pc'>\
             <command xmlns='{CMD}' node='urn:xmpp:invite#create-account' sessionid='{sid}' \
             status='completed' xml:lang='en'>\
             <note type='info'>juliet@localhost is reserved for the invitee until the invitation expires</note>\
             <x xmlns='jabber:x:data' type='result'>\
             <field type='hidden' var='FORM_TYPE'><value>urn:xmpp:invite#invitation</value></field>\
             <field type='text-single' var='uri'><value>{{*}}</value></field>\
             <field type='text-single' var='expire'><value>{{*}}</value></field>\
             </x></command></iq>"
        ))
        .await
        .unwrap();
    let uri = done
        .get_child("command", CMD)
        .and_then(|c| c.get_child("x", "jabber:x:data"))
        .and_then(|x| x.children().find(|f| f.attr("var") == Some("uri")))
        .and_then(|f| f.children().next())
        .map(|v| v.text())
        .unwrap();
    let token = uri
        .strip_prefix("xmpp:juliet@localhost?register;preauth=")
        .unwrap_or_else(|| panic!("{uri}"));
    let mut c = fresh(&server).await;
    preauth(&mut c, "p", token).await;
    c.expect("<iq type='result' id='p' from='localhost'/>")
        .await
        .unwrap();
    register(&mut c, "r", "juliet", PW).await;
    c.expect("<iq type='result' id='r' from='localhost'/>")
        .await
        .unwrap();
    let item = server
        .server()
        .storage()
        .stores()
        .rosters
        .item("boss", "localhost", "juliet@localhost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.subscription, Subscription::Both);
}

/// An account created again under a removed one's name starts afresh: the old account's
/// blocklist (XEP-0191), deleted with it (XEP-0077 §3.2), is not applied to the new one.
#[tokio::test]
async fn a_removed_accounts_blocklist_does_not_outlive_it() {
    let server = TestServer::with_users(&["juliet", "mallory"], PW).await;
    let mut juliet = server.online("juliet", PW, "balcony").await;
    juliet.drain(QUIET).await;
    juliet
        .send_xml(
            "<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'>\
             <item jid='mallory@localhost'/></block></iq>",
        )
        .await
        .unwrap();
    juliet
        .expect("<iq type='result' id='b' to='juliet@localhost/balcony'/>")
        .await
        .unwrap();
    juliet
        .send_xml("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await
        .unwrap();
    juliet
        .expect("<iq type='result' id='rm' to='juliet@localhost/balcony'/>")
        .await
        .unwrap();
    juliet.expect_stream_error("not-authorized").await.unwrap();

    server.add_user("juliet", PW).await;
    let mut again = server.online("juliet", PW, "new").await;
    again.drain(QUIET).await;
    let mut mallory = server.online("mallory", PW, "m").await;
    mallory.drain(QUIET).await;
    mallory
        .send_xml(
            "<message to='juliet@localhost/new' type='chat' id='m1'><body>hi</body></message>",
        )
        .await
        .unwrap();
    again
        .expect(
            "<message from='mallory@localhost/m' to='juliet@localhost/new' type='chat' id='m1'>\
             <body>hi</body></message>",
        )
        .await
        .unwrap();
}
