//! XEP-0191 Simple Communications Blocking (1.1) over real sockets: the list, block and unblock
//! with pushes (§3.2–§3.5), what a block stops in both directions (§3.3), JID matching (§4), the
//! presence sent on block and unblock (§3.3, §3.4), and XEP-0377 reports. Section numbers are
//! XEP-0191's unless named otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_storage::AbuseReport;
use starling_testkit::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const QUIET: Duration = Duration::from_millis(200);
const NS: &str = "urn:xmpp:blocking";
const UNAVAILABLE: &str = "<error type='cancel'>\
    <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
const BLOCKED: &str = "<error type='cancel'>\
    <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
    <blocked xmlns='urn:xmpp:blocking:errors'/></error>";

async fn server() -> TestServer {
    TestServer::with_users(&["alice", "bob", "mallory"], PW).await
}

async fn one(server: &TestServer, user: &str, resource: &str) -> Client {
    let mut c = server.online(user, PW, resource).await;
    c.drain(QUIET).await;
    c
}

fn items(jids: &[&str]) -> String {
    jids.iter()
        .map(|j| format!("<item jid='{j}'/>"))
        .collect::<String>()
}

/// Sends `<iq type='set' id=id><{command} xmlns='urn:xmpp:blocking'>{inner}</{command}></iq>`
/// and awaits the empty result (from a session that has not fetched the list: no push first).
async fn command(c: &mut Client, id: &str, command: &str, inner: &str) {
    send_command(c, id, command, inner).await;
    expect_result(c, id).await;
}

async fn send_command(c: &mut Client, id: &str, command: &str, inner: &str) {
    c.send_xml(&format!(
        "<iq type='set' id='{id}'><{command} xmlns='{NS}'>{inner}</{command}></iq>"
    ))
    .await
    .unwrap();
}

async fn expect_result(c: &mut Client, id: &str) {
    let me = c.jid().unwrap().to_string();
    c.expect(&format!("<iq type='result' id='{id}' to='{me}'/>"))
        .await
        .unwrap();
}

async fn block(c: &mut Client, id: &str, jids: &[&str]) {
    command(c, id, "block", &items(jids)).await;
}

async fn unblock(c: &mut Client, id: &str, jids: &[&str]) {
    command(c, id, "unblock", &items(jids)).await;
}

/// §3.2: fetches the list (so the session gets pushes) and checks it.
async fn expect_list(c: &mut Client, id: &str, jids: &[&str]) {
    let me = c.jid().unwrap().to_string();
    c.send_xml(&format!(
        "<iq type='get' id='{id}'><blocklist xmlns='{NS}'/></iq>"
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='result' id='{id}' to='{me}'><blocklist xmlns='{NS}'>{}</blocklist></iq>",
        items(jids)
    ))
    .await
    .unwrap();
}

/// A push of `command` with `jids` to `c` (§3.3, §3.4, §3.5).
async fn expect_push(c: &mut Client, command: &str, jids: &[&str]) {
    let me = c.jid().unwrap().to_string();
    c.expect(&format!(
        "<iq type='set' id='{{*}}' to='{me}'><{command} xmlns='{NS}'>{}</{command}></iq>",
        items(jids)
    ))
    .await
    .unwrap();
}

async fn error_reply(c: &mut Client, xml: &str, expected: &str) {
    c.send_xml(xml).await.unwrap();
    c.expect(expected).await.unwrap();
}

/// §3.1 and XEP-0377 §3: the server advertises both features.
#[tokio::test]
async fn blocking_and_reporting_are_advertised() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    a.send_xml(
        "<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    )
    .await
    .unwrap();
    let reply = a.recv_element().await.unwrap();
    let features: Vec<&str> = reply
        .children()
        .flat_map(Element::children)
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(features.contains(&"urn:xmpp:blocking"), "{reply}");
    assert!(features.contains(&"urn:xmpp:reporting:1"), "{reply}");
}

/// §3.2–§3.5: the list in order, block one and several, unblock one and all; each change is
/// pushed to every resource that fetched the list (the sender's included), never to one that
/// did not.
#[tokio::test]
async fn list_block_unblock_and_pushes() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let mut b = one(&server, "alice", "b").await;
    let mut quiet = one(&server, "alice", "quiet").await;
    a.drain(QUIET).await;
    b.drain(QUIET).await;
    // §3.2: the empty list.
    expect_list(&mut a, "l1", &[]).await;
    expect_list(&mut b, "l2", &[]).await;

    // §3.3: the JIDs are normalised (RFC 7622) before they are stored and pushed. The sender,
    // having fetched the list, gets its push before the result, as with roster pushes (RFC 6121
    // §2.3.2).
    send_command(&mut a, "b1", "block", &items(&["Romeo@Montague.net"])).await;
    expect_push(&mut a, "block", &["romeo@montague.net"]).await;
    expect_result(&mut a, "b1").await;
    expect_push(&mut b, "block", &["romeo@montague.net"]).await;
    let three = ["iago@shakespeare.lit", "spam.example", "x@y.z/r"];
    send_command(&mut b, "b2", "block", &items(&three)).await;
    expect_push(&mut b, "block", &three).await;
    expect_result(&mut b, "b2").await;
    expect_push(&mut a, "block", &three).await;
    expect_list(
        &mut quiet,
        "l3",
        &[
            "romeo@montague.net",
            "iago@shakespeare.lit",
            "spam.example",
            "x@y.z/r",
        ],
    )
    .await;

    // §3.4: unblock one.
    send_command(&mut a, "u1", "unblock", &items(&["spam.example"])).await;
    for c in [&mut a, &mut b, &mut quiet] {
        expect_push(c, "unblock", &["spam.example"]).await;
    }
    expect_result(&mut a, "u1").await;
    // §3.5: unblock all, pushed as an empty <unblock/>.
    send_command(&mut b, "u2", "unblock", "").await;
    for c in [&mut a, &mut b, &mut quiet] {
        expect_push(c, "unblock", &[]).await;
    }
    expect_result(&mut b, "u2").await;
    expect_list(&mut a, "l4", &[]).await;
    for c in [&mut a, &mut b, &mut quiet] {
        c.expect_silence(QUIET).await.unwrap();
    }
}

/// §3.3: a block without items is a bad request; an item without a JID too; a JID that does not
/// parse is malformed; an unblock whose children are no items is a bad request, not "unblock
/// all" (§3.5). Nothing is blocked by a refused request. Another account's list is not for
/// asking.
#[tokio::test]
async fn bad_requests_block_nothing() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let bad = |id: &str, condition: &str, text: &str| {
        format!(
            "<iq type='error' id='{id}' to='alice@localhost/a'><error type='modify'>\
             <{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{text}</text></error></iq>"
        )
    };
    error_reply(
        &mut a,
        &format!("<iq type='set' id='e1'><block xmlns='{NS}'/></iq>"),
        &bad("e1", "bad-request", "a block names at least one item"),
    )
    .await;
    error_reply(
        &mut a,
        &format!(
            "<iq type='set' id='e2'><block xmlns='{NS}'><item jid='ok@x.y'/><item/></block></iq>"
        ),
        &bad("e2", "bad-request", "an item needs a &apos;jid&apos;"),
    )
    .await;
    error_reply(
        &mut a,
        &format!("<iq type='set' id='e3'><block xmlns='{NS}'><item jid='ok@x.y'/><item jid='@bad'/></block></iq>"),
        &bad("e3", "jid-malformed", "not a JID: @bad"),
    )
    .await;
    // §3.5's "unblock all" is an empty <unblock/>, not one whose children are not items.
    error_reply(
        &mut a,
        &format!("<iq type='set' id='e4'><unblock xmlns='{NS}'><item xmlns='urn:other' jid='ok@x.y'/></unblock></iq>"),
        &bad("e4", "bad-request", "no &lt;item/&gt; in the urn:xmpp:blocking namespace"),
    )
    .await;
    expect_list(&mut a, "l", &[]).await;
    // Asking for bob's list: the answer an unknown account gets.
    error_reply(
        &mut a,
        &format!("<iq type='get' id='o' to='bob@localhost'><blocklist xmlns='{NS}'/></iq>"),
        &format!(
            "<iq type='error' id='o' from='bob@localhost' to='alice@localhost/a'>{UNAVAILABLE}</iq>"
        ),
    )
    .await;
    a.expect_silence(QUIET).await.unwrap();
}

/// §3.3: nothing from a blocked JID reaches the user. Messages (to the bare or a full JID) and
/// IQ get/set (to a full JID, or to the bare JID the server answers for) are answered with
/// <service-unavailable/> from the address they were sent to; presence (a subscription request,
/// directed presence) and errors are dropped without an answer. Other senders are unaffected.
#[tokio::test]
async fn inbound_stanzas_from_a_blocked_jid_never_arrive() {
    let server = server().await;
    // Subscribed both ways, so that a probe would be answered and presence delivered.
    server.befriend("alice", "mallory").await;
    let mut a = one(&server, "alice", "a").await;
    let mut m = one(&server, "mallory", "m").await;
    let mut b = one(&server, "bob", "b").await;
    a.drain(QUIET).await;
    block(&mut a, "b1", &["mallory@localhost"]).await;
    m.expect("<presence type='unavailable' from='alice@localhost/a' to='mallory@localhost'/>")
        .await
        .unwrap();

    error_reply(
        &mut m,
        "<message id='m1' to='alice@localhost' type='chat'><body>buy now</body></message>",
        &format!("<message id='m1' type='error' from='alice@localhost' to='mallory@localhost/m'>{UNAVAILABLE}</message>"),
    )
    .await;
    error_reply(
        &mut m,
        "<message id='m2' to='alice@localhost/a'><body>buy now</body></message>",
        &format!("<message id='m2' type='error' from='alice@localhost/a' to='mallory@localhost/m'>{UNAVAILABLE}</message>"),
    )
    .await;
    error_reply(
        &mut m,
        "<iq id='i1' type='get' to='alice@localhost/a'><query xmlns='jabber:iq:version'/></iq>",
        &format!("<iq id='i1' type='error' from='alice@localhost/a' to='mallory@localhost/m'>{UNAVAILABLE}</iq>"),
    )
    .await;
    error_reply(
        &mut m,
        "<iq id='i2' type='get' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
        &format!("<iq id='i2' type='error' from='alice@localhost' to='mallory@localhost/m'>{UNAVAILABLE}</iq>"),
    )
    .await;
    for xml in [
        "<presence to='alice@localhost' type='subscribe'/>",
        "<presence to='alice@localhost/a'/>",
        "<presence to='alice@localhost' type='probe'/>",
        "<message id='m3' to='alice@localhost/a' type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        "<iq id='i3' to='alice@localhost/a' type='result'/>",
    ] {
        m.send_xml(xml).await.unwrap();
    }
    m.expect_silence(QUIET).await.unwrap();
    a.expect_silence(QUIET).await.unwrap();

    // A different sender is not blocked.
    b.send_xml("<message id='ok' to='alice@localhost' type='chat'><body>hi</body></message>")
        .await
        .unwrap();
    a.expect("<message id='ok' from='bob@localhost/b' to='alice@localhost' type='chat'><body>hi</body></message>")
        .await
        .unwrap();
}

/// §3.3: a stanza the user sends to a blocked JID is not routed; the user gets <not-acceptable/>
/// with <blocked xmlns='urn:xmpp:blocking:errors'/> (type cancel, as the XEP's example), for
/// messages, IQs and directed presence alike. Errors and IQ results are dropped silently.
#[tokio::test]
async fn outbound_stanzas_to_a_blocked_jid_are_refused() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let mut m = one(&server, "mallory", "m").await;
    block(&mut a, "b1", &["mallory@localhost"]).await;

    error_reply(
        &mut a,
        "<message id='m1' to='mallory@localhost' type='chat'><body>Can you hear me now?</body></message>",
        &format!("<message id='m1' type='error' from='mallory@localhost' to='alice@localhost/a'>{BLOCKED}</message>"),
    )
    .await;
    error_reply(
        &mut a,
        "<iq id='i1' type='get' to='mallory@localhost/m'><ping xmlns='urn:xmpp:ping'/></iq>",
        &format!("<iq id='i1' type='error' from='mallory@localhost/m' to='alice@localhost/a'>{BLOCKED}</iq>"),
    )
    .await;
    error_reply(
        &mut a,
        "<presence to='mallory@localhost/m'/>",
        &format!("<presence type='error' from='mallory@localhost/m' to='alice@localhost/a'>{BLOCKED}</presence>"),
    )
    .await;
    for xml in [
        "<message id='e' to='mallory@localhost/m' type='error'><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        "<iq id='r' to='mallory@localhost/m' type='result'/>",
    ] {
        a.send_xml(xml).await.unwrap();
    }
    a.expect_silence(QUIET).await.unwrap();
    m.expect_silence(QUIET).await.unwrap();

    // Unblocked, the conversation flows again (§3.4).
    unblock(&mut a, "u1", &["mallory@localhost"]).await;
    a.send_xml(
        "<message id='m2' to='mallory@localhost/m' type='chat'><body>sorry</body></message>",
    )
    .await
    .unwrap();
    m.expect("<message id='m2' from='alice@localhost/a' to='mallory@localhost/m' type='chat'><body>sorry</body></message>")
        .await
        .unwrap();
}

/// §3.3: on block, unavailable presence from each available resource to the blocked contact,
/// who may see the user's presence (subscription both); while blocked, neither side's presence
/// broadcasts reach the other. §3.4: on unblock, the user's current presence.
#[tokio::test]
async fn presence_on_block_and_unblock() {
    let server = server().await;
    server.befriend("alice", "bob").await;
    let mut a = one(&server, "alice", "a").await;
    let mut b = one(&server, "bob", "b").await;
    a.drain(QUIET).await;
    a.send_xml("<presence><show>dnd</show></presence>")
        .await
        .unwrap();
    a.expect(
        "<presence from='alice@localhost/a' to='alice@localhost/a'><show>dnd</show></presence>",
    )
    .await
    .unwrap();
    b.expect("<presence from='alice@localhost/a' to='bob@localhost'><show>dnd</show></presence>")
        .await
        .unwrap();

    block(&mut a, "b1", &["bob@localhost"]).await;
    b.expect("<presence type='unavailable' from='alice@localhost/a' to='bob@localhost'/>")
        .await
        .unwrap();
    // Broadcasts both ways are stopped.
    a.send_xml("<presence><show>away</show></presence>")
        .await
        .unwrap();
    a.expect(
        "<presence from='alice@localhost/a' to='alice@localhost/a'><show>away</show></presence>",
    )
    .await
    .unwrap();
    b.send_xml("<presence><show>chat</show></presence>")
        .await
        .unwrap();
    b.expect("<presence from='bob@localhost/b' to='bob@localhost/b'><show>chat</show></presence>")
        .await
        .unwrap();
    a.expect_silence(QUIET).await.unwrap();
    b.expect_silence(QUIET).await.unwrap();

    unblock(&mut a, "u1", &["bob@localhost"]).await;
    b.expect("<presence from='alice@localhost/a' to='bob@localhost'><show>away</show></presence>")
        .await
        .unwrap();
    b.expect_silence(QUIET).await.unwrap();
}

/// §4: a full JID blocks that resource only; a domain blocks every JID at it and at its
/// subdomains. Blocking the server's own domain still leaves the server answering.
#[tokio::test]
async fn matching_full_jids_and_domains() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let mut evil = one(&server, "mallory", "evil").await;
    let mut good = one(&server, "mallory", "good").await;
    evil.drain(QUIET).await;
    block(&mut a, "b1", &["mallory@localhost/evil"]).await;
    error_reply(
        &mut evil,
        "<message id='1' to='alice@localhost/a'><body>x</body></message>",
        &format!("<message id='1' type='error' from='alice@localhost/a' to='mallory@localhost/evil'>{UNAVAILABLE}</message>"),
    )
    .await;
    good.send_xml("<message id='2' to='alice@localhost/a'><body>y</body></message>")
        .await
        .unwrap();
    a.expect("<message id='2' from='mallory@localhost/good' to='alice@localhost/a'><body>y</body></message>")
        .await
        .unwrap();

    // The whole (own) domain: bob and mallory at it are blocked, the server is not.
    block(&mut a, "b2", &["localhost"]).await;
    let mut b = one(&server, "bob", "b").await;
    error_reply(
        &mut b,
        "<message id='3' to='alice@localhost/a'><body>z</body></message>",
        &format!("<message id='3' type='error' from='alice@localhost/a' to='bob@localhost/b'>{UNAVAILABLE}</message>"),
    )
    .await;
    error_reply(
        &mut a,
        "<iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='result' id='p' from='localhost' to='alice@localhost/a'/>",
    )
    .await;
    expect_list(&mut a, "l", &["mallory@localhost/evil", "localhost"]).await;
    a.expect_silence(QUIET).await.unwrap();
}

/// §3.3 ("applies across sessions"), with the outbound path: a message a blocked contact sent
/// while the user was offline, stored before the block, is not delivered after it; and messages
/// sent while blocked are refused rather than stored. The block survives a restart.
#[tokio::test]
async fn offline_messages_and_restarts() {
    let server = server().await;
    let mut m = one(&server, "mallory", "m").await;
    m.send_xml("<message id='old' to='alice@localhost' type='chat'><body>stored</body></message>")
        .await
        .unwrap();
    m.expect_silence(QUIET).await.unwrap();
    // Alice logs in without presence (no offline delivery yet), blocks, then comes online.
    let mut a = server.login("alice", PW, "a").await;
    block(&mut a, "b1", &["mallory@localhost"]).await;
    a.send_xml("<presence/>").await.unwrap();
    a.expect("<presence from='alice@localhost/a' to='alice@localhost/a'/>")
        .await
        .unwrap();
    a.expect_silence(QUIET).await.unwrap();
    a.close().await.unwrap();
    error_reply(
        &mut m,
        "<message id='new' to='alice@localhost' type='chat'><body>refused</body></message>",
        &format!("<message id='new' type='error' from='alice@localhost' to='mallory@localhost/m'>{UNAVAILABLE}</message>"),
    )
    .await;
    drop(m);

    let server = server.restart().await;
    let mut m = one(&server, "mallory", "m").await;
    error_reply(
        &mut m,
        "<message id='after' to='alice@localhost' type='chat'><body>again</body></message>",
        &format!("<message id='after' type='error' from='alice@localhost' to='mallory@localhost/m'>{UNAVAILABLE}</message>"),
    )
    .await;
    let mut a = one(&server, "alice", "a").await;
    expect_list(&mut a, "l", &["mallory@localhost"]).await;
    a.expect_silence(QUIET).await.unwrap();
}

/// XEP-0313 with XEP-0191: a refused message is not in the blocking user's archive, neither
/// what the blocked contact sent nor what the user tried to send; the contact's archive keeps
/// what it sent, as for any message that bounces.
#[tokio::test]
async fn refused_messages_are_not_archived() {
    let server = TestServer::start_with(|c| c.archive.enabled = true).await;
    for u in ["alice", "mallory"] {
        server.add_user(u, PW).await;
    }
    let mut a = one(&server, "alice", "a").await;
    let mut m = one(&server, "mallory", "m").await;
    block(&mut a, "b1", &["mallory@localhost"]).await;
    m.send_xml("<message id='x' to='alice@localhost' type='chat'><body>spam</body></message>")
        .await
        .unwrap();
    m.expect(&format!(
        "<message id='x' type='error' from='alice@localhost' to='mallory@localhost/m'>{UNAVAILABLE}</message>"
    ))
    .await
    .unwrap();
    a.send_xml("<message id='y' to='mallory@localhost' type='chat'><body>no</body></message>")
        .await
        .unwrap();
    a.expect(&format!(
        "<message id='y' type='error' from='mallory@localhost' to='alice@localhost/a'>{BLOCKED}</message>"
    ))
    .await
    .unwrap();
    let archive = &server.router().context().stores.archive;
    assert_eq!(archive.count("alice", "localhost").await.unwrap(), 0);
    assert_eq!(archive.count("mallory", "localhost").await.unwrap(), 1);
}

/// XEP-0377 §5–§6: a report inside a blocked item is stored with its reason, text and message
/// ids, and the block happens as without it (also when the report is malformed, which is not
/// kept); the pre-0.3 form is read too.
#[tokio::test]
async fn reports_are_stored_for_the_operator() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    command(
        &mut a,
        "r1",
        "block",
        "<item jid='romeo@example.net'>\
           <report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='romeo@example.net' id='28482-98726-73623'/>\
             <text xml:lang='en'>Never came trouble to my house like this.</text>\
           </report>\
         </item>\
         <item jid='iago@example.net'><spam xmlns='urn:xmpp:reporting:0'/></item>\
         <item jid='plain@example.net'/>\
         <item jid='noreason@example.net'><report xmlns='urn:xmpp:reporting:1'/></item>",
    )
    .await;
    // XEP-0377 §5: blocking again with a report files nothing new (the JID was blocked).
    command(
        &mut a,
        "r2",
        "block",
        "<item jid='romeo@example.net'>\
           <report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:abuse'/></item>",
    )
    .await;
    // The malformed report (no reason, XEP-0377 §4) is not kept, but its JID is blocked (§5).
    expect_list(
        &mut a,
        "l",
        &[
            "romeo@example.net",
            "iago@example.net",
            "plain@example.net",
            "noreason@example.net",
        ],
    )
    .await;
    let reports = server
        .router()
        .context()
        .stores
        .blocking
        .reports(None, 10)
        .await
        .unwrap();
    // What the test cannot know, the time of receipt, is set aside.
    let got: Vec<AbuseReport> = reports
        .into_iter()
        .map(|r| AbuseReport {
            received_us: 0,
            ..r.report
        })
        .collect();
    let report = |jid: &str, text: Option<&str>, ids: &[&str]| AbuseReport {
        localpart: "alice".to_owned(),
        domain: "localhost".to_owned(),
        jid: jid.to_owned(),
        reason: "urn:xmpp:reporting:spam".to_owned(),
        text: text.map(str::to_owned),
        stanza_ids: ids.iter().map(|i| (*i).to_owned()).collect(),
        received_us: 0,
    };
    assert_eq!(
        got,
        vec![
            report("iago@example.net", None, &[]),
            report(
                "romeo@example.net",
                Some("Never came trouble to my house like this."),
                &["28482-98726-73623"],
            ),
        ]
    );
}

/// §3.2: pushes go to sessions that fetched the list; a session that replaced one which did
/// (same resource) has not, and gets none.
#[tokio::test]
async fn pushes_follow_the_session_not_the_resource() {
    let server = server().await;
    let mut first = one(&server, "alice", "r").await;
    expect_list(&mut first, "l", &[]).await;
    first.close().await.unwrap();
    let mut second = one(&server, "alice", "r").await;
    let mut other = one(&server, "alice", "o").await;
    second.drain(QUIET).await;
    block(&mut other, "b1", &["x@y.z"]).await;
    second.expect_silence(QUIET).await.unwrap();
    other.expect_silence(QUIET).await.unwrap();
}

/// §4 with XEP-0280: a message to a contact whose one resource the user blocked reaches the
/// contact's other resources, and the blocked resource gets neither the message nor a carbon of
/// it.
#[tokio::test]
async fn a_blocked_resource_gets_no_carbon_either() {
    let server = server().await;
    let mut a = one(&server, "alice", "a").await;
    let mut phone = one(&server, "bob", "phone").await;
    let mut laptop = one(&server, "bob", "laptop").await;
    phone.drain(QUIET).await;
    for (c, id) in [(&mut phone, "c1"), (&mut laptop, "c2")] {
        let me = c.jid().unwrap().to_string();
        c.send_xml(&format!(
            "<iq type='set' id='{id}'><enable xmlns='urn:xmpp:carbons:2'/></iq>"
        ))
        .await
        .unwrap();
        c.expect(&format!("<iq type='result' id='{id}' to='{me}'/>"))
            .await
            .unwrap();
    }
    block(&mut a, "b1", &["bob@localhost/phone"]).await;
    a.send_xml(
        "<message id='m' to='bob@localhost' type='chat'><body>for the laptop</body></message>",
    )
    .await
    .unwrap();
    laptop
        .expect("<message id='m' from='alice@localhost/a' to='bob@localhost' type='chat'><body>for the laptop</body></message>")
        .await
        .unwrap();
    phone.expect_silence(QUIET).await.unwrap();
    laptop.expect_silence(QUIET).await.unwrap();
}
