//! Issue 11 over real sockets: what a hostile client could pile up in rosters. Each rule of
//! `[roster]` and of the roster item limits, with the exact stanzas the clients receive:
//! - `max_items` (RFC 6121 §2.3.3 names no error for a full roster: `<policy-violation/>`,
//!   RFC 6120 §8.3.3.12), for roster sets and for subscription stanzas that add an item;
//! - the size of one item (§2.3.3: `<not-acceptable/>`);
//! - subscription requests that cannot be delivered (§3.1.2: an error, and no item);
//! - `max_pending_requests` (§3.1.3, Security Warning: `<resource-constraint/>`,
//!   RFC 6120 §8.3.3.18), and the size of a stored request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_storage::RosterCounts;
use starling_testkit::bystanders::Bystanders;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
/// Sessions that keep pinging the server throughout each test (issue 11: other users unhurt).
const BYSTANDERS: usize = 20;
const QUIET: Duration = Duration::from_millis(200);
const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

async fn server(users: &[&str], max_items: usize, max_pending_requests: usize) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.roster.max_items = max_items;
        c.roster.max_pending_requests = max_pending_requests;
    })
    .await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

/// Logs in, requests the roster (an interested resource, RFC 6121 §2.2) and sends initial
/// presence; reads what that brings until quiet.
async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = server.login(user, PW, resource).await;
    c.send_xml("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    c.send_xml("<presence/>").await.unwrap();
    c.drain(QUIET).await;
    c
}

/// Sends a roster set adding `jid` and expects the push with version `ver` and the result.
async fn add(c: &mut Client, jid: &str, ver: u64) {
    let to = c.jid().unwrap().to_string();
    c.send_xml(&format!(
        "<iq type='set' id='add-{jid}'><query xmlns='jabber:iq:roster'><item jid='{jid}'/></query></iq>"
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='set' id='{{*}}' to='{to}'><query xmlns='jabber:iq:roster' ver='{ver}'>\
         <item jid='{jid}' subscription='none'/></query></iq>"
    ))
    .await
    .unwrap();
    c.expect(&format!("<iq type='result' id='add-{jid}' to='{to}'/>"))
        .await
        .unwrap();
}

/// The roster get answer `c` receives now, whole.
async fn expect_roster(c: &mut Client, ver: u64, items: &str) {
    let to = c.jid().unwrap().to_string();
    c.send_xml("<iq type='get' id='get'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    c.expect(&format!(
        "<iq type='result' id='get' to='{to}'><query xmlns='jabber:iq:roster' ver='{ver}'>{items}</query></iq>"
    ))
    .await
    .unwrap();
}

async fn counts(server: &TestServer, user: &str) -> RosterCounts {
    let stores = &server.router().context().stores;
    stores.rosters.counts(user, "localhost").await.unwrap()
}

fn iq_error(id: &str, to: &str, ty: &str, cond: &str, text: &str) -> String {
    format!(
        "<iq type='error' id='{id}' to='{to}'><error type='{ty}'><{cond} xmlns='{STANZAS}'/>\
         <text xmlns='{STANZAS}'>{text}</text></error></iq>"
    )
}

fn presence_error(id: &str, from: &str, to: &str, ty: &str, cond: &str, text: &str) -> String {
    format!(
        "<presence type='error' id='{id}' from='{from}' to='{to}'><error type='{ty}'>\
         <{cond} xmlns='{STANZAS}'/><text xmlns='{STANZAS}'>{text}</text></error></presence>"
    )
}

/// `roster.max_items`: RFC 6121 §2.3.3 lists the errors of a roster set and adds that "other
/// stanza errors can occur"; none is named for a full roster, so RFC 6120 §8.3.3.12
/// `<policy-violation/>` (type "modify": the user can make room) with the limit in `<text/>`.
/// The same refusal for every way the user could add an item: a roster set, a subscription
/// request (§3.1.2) and a pre-approval (§3.4.2 rule 4) for a contact not on the roster, and the
/// approval of a request from a contact not on the roster (§3.1.5, which puts it on the roster).
/// Changing an item already there always works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_roster_refuses_every_new_item() {
    let server = server(&["alice", "bob", "carol"], 3, 100).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    let mut carol = server.login("carol", PW, "c").await;
    let a = "alice@localhost/a";

    for (i, jid) in ["x1@localhost", "x2@localhost", "x3@localhost"]
        .iter()
        .enumerate()
    {
        add(&mut alice, jid, i as u64 + 1).await;
    }
    alice
        .send_xml(
            "<iq type='set' id='s4'><query xmlns='jabber:iq:roster'><item jid='x4@localhost'/></query></iq>",
        )
        .await
        .unwrap();
    alice
        .expect(&iq_error(
            "s4",
            a,
            "modify",
            "policy-violation",
            "the roster is full (3 items)",
        ))
        .await
        .unwrap();

    // An outbound subscription request for a contact not on the roster: refused, not routed.
    alice
        .send_xml("<presence type='subscribe' to='bob@localhost' id='p1'/>")
        .await
        .unwrap();
    alice
        .expect(&presence_error(
            "p1",
            "bob@localhost",
            a,
            "modify",
            "policy-violation",
            "the roster is full (3 items)",
        ))
        .await
        .unwrap();
    // A pre-approval for one: refused as well.
    alice
        .send_xml("<presence type='subscribed' to='bob@localhost' id='p2'/>")
        .await
        .unwrap();
    alice
        .expect(&presence_error(
            "p2",
            "bob@localhost",
            a,
            "modify",
            "policy-violation",
            "the roster is full (3 items)",
        ))
        .await
        .unwrap();
    bob.expect_silence(QUIET).await.unwrap();

    // A request from carol, who is not on alice's roster, is kept apart (not an item) and
    // delivered; approving it would put carol on the roster: refused, carol hears nothing.
    carol
        .send_xml("<presence type='subscribe' to='alice@localhost' id='c1'/>")
        .await
        .unwrap();
    alice
        .expect("<presence type='subscribe' to='alice@localhost' id='c1' from='carol@localhost'/>")
        .await
        .unwrap();
    alice
        .send_xml("<presence type='subscribed' to='carol@localhost' id='p3'/>")
        .await
        .unwrap();
    alice
        .expect(&presence_error(
            "p3",
            "carol@localhost",
            a,
            "modify",
            "policy-violation",
            "the roster is full (3 items)",
        ))
        .await
        .unwrap();
    carol.expect_silence(QUIET).await.unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    assert_eq!(
        counts(&server, "alice").await,
        RosterCounts {
            visible: 3,
            hidden: 1
        }
    );

    // Updating an item on the roster is no addition. (Storing carol's request was version 4.)
    alice
        .send_xml(
            "<iq type='set' id='u1'><query xmlns='jabber:iq:roster'>\
             <item jid='x1@localhost' name='One'><group>G</group></item></query></iq>",
        )
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='set' id='{{*}}' to='{a}'><query xmlns='jabber:iq:roster' ver='5'>\
             <item jid='x1@localhost' name='One' subscription='none'><group>G</group></item></query></iq>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!("<iq type='result' id='u1' to='{a}'/>"))
        .await
        .unwrap();

    // Removing one makes room for the next.
    alice
        .send_xml(
            "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>\
             <item jid='x3@localhost' subscription='remove'/></query></iq>",
        )
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='set' id='{{*}}' to='{a}'><query xmlns='jabber:iq:roster' ver='6'>\
             <item jid='x3@localhost' subscription='remove'/></query></iq>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!("<iq type='result' id='rm' to='{a}'/>"))
        .await
        .unwrap();
    add(&mut alice, "x4@localhost", 7).await;
    expect_roster(
        &mut alice,
        7,
        "<item jid='x1@localhost' name='One' subscription='none'><group>G</group></item>\
         <item jid='x2@localhost' subscription='none'/>\
         <item jid='x4@localhost' subscription='none'/>",
    )
    .await;
    alice.expect_silence(QUIET).await.unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// RFC 6121 §2.3.3: a 'name' or a `<group/>` "greater than a server-configured limit" gets
/// `<not-acceptable/>` (RFC 6120 §8.3.3.9, type "modify"); so do more than 32 groups and an item
/// larger than 4 KiB as a client would receive it, so that a full roster stays a bounded result.
/// Nothing is stored or pushed; the largest acceptable values are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_items_are_not_acceptable() {
    let server = server(&["alice"], 1000, 100).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = online(&server, "alice", "a").await;
    let a = "alice@localhost/a";
    let long = "n".repeat(1024);
    let groups = |n: usize, len: usize| -> String {
        (0..n)
            .map(|i| format!("<group>{i:0len$}</group>"))
            .collect()
    };
    let cases = [
        (
            format!("name='{long}'"),
            String::new(),
            "the name is too long",
        ),
        (
            String::new(),
            format!("<group>{long}</group>"),
            "a group name is too long",
        ),
        (String::new(), groups(33, 3), "too many groups"),
        (
            format!("name='{}'", "n".repeat(1023)),
            groups(3, 1023),
            "the item is too large (name and groups)",
        ),
        // Escaped, 800 ampersands are 4,000 bytes: counted as sent.
        (
            format!("name='{}'", "&amp;".repeat(800)),
            String::new(),
            "the item is too large (name and groups)",
        ),
    ];
    for (i, (attrs, children, text)) in cases.iter().enumerate() {
        alice
            .send_xml(&format!(
                "<iq type='set' id='e{i}'><query xmlns='jabber:iq:roster'>\
                 <item jid='bob@localhost' {attrs}>{children}</item></query></iq>"
            ))
            .await
            .unwrap();
        alice
            .expect(&iq_error(
                &format!("e{i}"),
                a,
                "modify",
                "not-acceptable",
                text,
            ))
            .await
            .unwrap();
    }
    alice.expect_silence(QUIET).await.unwrap();
    expect_roster(&mut alice, 0, "").await;

    // At the limits: a 1,023-byte name, 32 groups, 2 groups of 1,023 bytes.
    let name = "n".repeat(1023);
    let big = format!(
        "<group>{}</group><group>{}</group>",
        "g".repeat(1023),
        "h".repeat(1023)
    );
    for (i, (jid, attrs, children)) in [
        ("n@localhost", format!(" name='{name}'"), String::new()),
        ("g@localhost", String::new(), groups(32, 2)),
        ("b@localhost", String::new(), big.clone()),
    ]
    .iter()
    .enumerate()
    {
        alice
            .send_xml(&format!(
                "<iq type='set' id='ok{i}'><query xmlns='jabber:iq:roster'>\
                 <item jid='{jid}'{attrs}>{children}</item></query></iq>"
            ))
            .await
            .unwrap();
        alice
            .expect(&format!(
                "<iq type='set' id='{{*}}' to='{a}'><query xmlns='jabber:iq:roster' ver='{}'>\
                 <item jid='{jid}'{attrs} subscription='none'>{children}</item></query></iq>",
                i + 1
            ))
            .await
            .unwrap();
        alice
            .expect(&format!("<iq type='result' id='ok{i}' to='{a}'/>"))
            .await
            .unwrap();
    }
    alice.expect_silence(QUIET).await.unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// RFC 6121 §3.1.2: "If the presence subscription request cannot be locally delivered or
/// remotely routed (e.g., because … the local contact does not exist, the remote server does
/// not exist …), then the user's server MUST return an appropriate error stanza to the user",
/// and the roster push of the pending request comes only "after locally delivering or remotely
/// routing" it. So: `<service-unavailable/>` for an account that does not exist (as messages
/// and IQs to it get, §8.5.1; RFC 6120 §8.3.3.19), `<remote-server-not-found/>` for another
/// domain (no federation yet; RFC 6120 §8.3.3.16), both of type "cancel" and from the contact's
/// address; no push, no item, however many are sent. An item the user added keeps no 'ask'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_subscription_requests_leave_nothing() {
    let server = server(&["alice"], 1000, 100).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut alice = online(&server, "alice", "a").await;
    let a = "alice@localhost/a";
    for i in 0..50 {
        alice
            .send_xml(&format!(
                "<presence type='subscribe' to='nobody{i}@localhost' id='n{i}'/>"
            ))
            .await
            .unwrap();
        alice
            .expect(&presence_error(
                &format!("n{i}"),
                &format!("nobody{i}@localhost"),
                a,
                "cancel",
                "service-unavailable",
                "no such account",
            ))
            .await
            .unwrap();
        alice
            .send_xml(&format!(
                "<presence type='subscribe' to='romeo{i}@example.net' id='r{i}'/>"
            ))
            .await
            .unwrap();
        alice
            .expect(&presence_error(
                &format!("r{i}"),
                &format!("romeo{i}@example.net"),
                a,
                "cancel",
                "remote-server-not-found",
                "remote domains cannot be reached from this server",
            ))
            .await
            .unwrap();
    }
    alice.expect_silence(QUIET).await.unwrap();
    expect_roster(&mut alice, 0, "").await;
    assert_eq!(counts(&server, "alice").await, RosterCounts::default());

    // The same for a contact already on the roster: the item stays as it was, without 'ask'.
    add(&mut alice, "romeo@example.net", 1).await;
    alice
        .send_xml("<presence type='subscribe' to='romeo@example.net' id='r'/>")
        .await
        .unwrap();
    alice
        .expect(&presence_error(
            "r",
            "romeo@example.net",
            a,
            "cancel",
            "remote-server-not-found",
            "remote domains cannot be reached from this server",
        ))
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    expect_roster(
        &mut alice,
        1,
        "<item jid='romeo@example.net' subscription='none'/>",
    )
    .await;
    bystanders.stop().await;
    server.stop().await;
}

/// `roster.max_pending_requests`: RFC 6121 §3.1.3 makes the contact's server keep every
/// unanswered request and deliver it at each login, and its Security Warning asks for limits
/// on "the number or size of inbound presence subscription requests" stored. Beyond the limit a
/// request from a contact not on the roster is refused with `<resource-constraint/>` (RFC 6120
/// §8.3.3.18: the recipient "lacks the system resources necessary to service the request",
/// type "wait": room is made when the user answers), so the sender is not left waiting and
/// records nothing. A repeated request, and one from a contact on the roster, are not new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_requests_are_bounded() {
    let server = server(&["alice", "s1", "s2", "s3", "dave"], 1000, 2).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut s1 = server.login("s1", PW, "r").await;
    let mut s2 = server.login("s2", PW, "r").await;
    let mut s3 = online(&server, "s3", "r").await;

    // alice is offline: the first two requests are stored.
    for c in [&mut s1, &mut s2] {
        c.send_xml("<presence type='subscribe' to='alice@localhost' id='x'/>")
            .await
            .unwrap();
        c.expect_silence(QUIET).await.unwrap();
    }
    s3.send_xml("<presence type='subscribe' to='alice@localhost' id='x3'/>")
        .await
        .unwrap();
    s3.expect(&presence_error(
        "x3",
        "alice@localhost",
        "s3@localhost/r",
        "wait",
        "resource-constraint",
        "2 subscription requests are waiting already",
    ))
    .await
    .unwrap();
    s3.expect_silence(QUIET).await.unwrap();
    expect_roster(&mut s3, 0, "").await;
    // s1 asking again is not a new request: nothing changes, nothing is refused.
    s1.send_xml("<presence type='subscribe' to='alice@localhost' id='again'/>")
        .await
        .unwrap();
    s1.expect_silence(QUIET).await.unwrap();
    assert_eq!(
        counts(&server, "alice").await,
        RosterCounts {
            visible: 0,
            hidden: 2
        }
    );

    // A request that arrives by another way than a local client's (as federation will bring):
    // refused by the contact's server itself, nothing stored.
    server
        .router()
        .route_stanza(starling_testkit::parse_xml(
            "<presence type='subscribe' from='mallory@example.net' to='alice@localhost'/>",
        ))
        .await;
    assert_eq!(
        counts(&server, "alice").await,
        RosterCounts {
            visible: 0,
            hidden: 2
        }
    );

    // alice logs in: exactly the two stored requests (§3.1.3), as they came.
    let mut alice = server.login("alice", PW, "a").await;
    alice
        .send_xml("<iq type='get' id='r0'><query xmlns='jabber:iq:roster'/></iq>")
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='r0' to='alice@localhost/a'><query xmlns='jabber:iq:roster' ver='2'/></iq>")
        .await
        .unwrap();
    alice.send_xml("<presence/>").await.unwrap();
    alice
        .expect("<presence from='alice@localhost/a' to='alice@localhost/a'/>")
        .await
        .unwrap();
    for from in ["s1", "s2"] {
        alice
            .expect(&format!(
                "<presence type='subscribe' to='alice@localhost' id='x' from='{from}@localhost'/>"
            ))
            .await
            .unwrap();
    }
    alice.expect_silence(QUIET).await.unwrap();

    // A contact alice put on her roster can still ask.
    add(&mut alice, "dave@localhost", 3).await;
    let mut dave = server.login("dave", PW, "d").await;
    dave.send_xml("<presence type='subscribe' to='alice@localhost' id='d1'/>")
        .await
        .unwrap();
    alice
        .expect("<presence type='subscribe' to='alice@localhost' id='d1' from='dave@localhost'/>")
        .await
        .unwrap();
    dave.expect_silence(QUIET).await.unwrap();

    // alice refuses s1 (§3.1.4): room for s3, whose request now arrives.
    alice
        .send_xml("<presence type='unsubscribed' to='s1@localhost'/>")
        .await
        .unwrap();
    // (A roster get after it: the refusal is done. Versions: two requests, dave added, dave's
    // request, the refusal.)
    expect_roster(
        &mut alice,
        5,
        "<item jid='dave@localhost' subscription='none'/>",
    )
    .await;
    s3.send_xml("<presence type='subscribe' to='alice@localhost' id='x4'/>")
        .await
        .unwrap();
    s3.expect(
        "<iq type='set' id='{*}' to='s3@localhost/r'><query xmlns='jabber:iq:roster' ver='1'>\
         <item jid='alice@localhost' subscription='none' ask='subscribe'/></query></iq>",
    )
    .await
    .unwrap();
    alice
        .expect("<presence type='subscribe' to='alice@localhost' id='x4' from='s3@localhost'/>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    s3.expect_silence(QUIET).await.unwrap();
    bystanders.stop().await;
    server.stop().await;
}

/// RFC 6121 §3.1.3's Security Warning also names the size of stored requests: one larger than
/// 4 KiB is delivered whole while the contact is online, but stored (and delivered at each
/// later login) without its child elements; a small one is stored whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_stored_request_is_kept_without_its_payload() {
    let server = server(&["alice", "bob", "carol"], 1000, 100).await;
    let bystanders = Bystanders::start(&server, BYSTANDERS).await;
    let mut bob = server.login("bob", PW, "b").await;
    let mut carol = server.login("carol", PW, "c").await;
    let status = "s".repeat(5000);
    bob.send_xml(&format!(
        "<presence type='subscribe' to='alice@localhost' id='big'><status>{status}</status></presence>"
    ))
    .await
    .unwrap();
    carol
        .send_xml(
            "<presence type='subscribe' to='alice@localhost' id='small'><status>hi</status></presence>",
        )
        .await
        .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    carol.expect_silence(QUIET).await.unwrap();

    let mut alice = server.login("alice", PW, "a").await;
    alice.send_xml("<presence/>").await.unwrap();
    alice
        .expect("<presence from='alice@localhost/a' to='alice@localhost/a'/>")
        .await
        .unwrap();
    alice
        .expect("<presence type='subscribe' to='alice@localhost' id='big' from='bob@localhost'/>")
        .await
        .unwrap();
    alice
        .expect(
            "<presence type='subscribe' to='alice@localhost' id='small' from='carol@localhost'>\
             <status>hi</status></presence>",
        )
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    bystanders.stop().await;
    server.stop().await;
}
