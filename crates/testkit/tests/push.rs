//! Issue 13, item 4: XEP-0357 push notifications over real sockets. The app server is a small
//! XEP-0114 external component (`push.localhost`) that receives the server's pubsub publishes,
//! and answers each with a result or, when a test says so, an error. Every notification is
//! asserted stanza for stanza. Section numbers are XEP-0357's (revision 0.3/0.4): §4 discovery,
//! §5 enabling, §6 disabling, §7 publishing, §7.1 publish errors, §9 security.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_config::Config;
use starling_testkit::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const APP: &str = "push.localhost";
const SECRET: &str = "the app server's component secret";
const FORM: &str = "<x xmlns='jabber:x:data' type='submit'>\
    <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
    <field var='secret'><value>eruio234vzxc2kla-91</value></field></x>";

/// A server with an app server component, alice and bob; notifications without a pause between
/// them unless `adjust` sets one.
async fn server(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.components.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.components.secrets = vec![(APP.to_owned(), starling_config::Secret(SECRET.to_owned()))];
        c.push.min_interval = Duration::ZERO;
        adjust(c);
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    server
}

/// The app server: an external component at [`APP`] (XEP-0114 §3 handshake).
async fn app_server(server: &TestServer) -> Client {
    server.component(APP, SECRET).await
}

/// The publish the server sends for `node` (§7), as the component receives it: `from` the
/// server's domain (revision 0.3), the summary form, and the publish-options given at enabling.
fn publish(
    node: &str,
    count: u32,
    sender: Option<&str>,
    body: Option<&str>,
    options: Option<&str>,
) -> String {
    let sender = sender.map_or(String::new(), |s| {
        format!("<field var='last-message-sender'><value>{s}</value></field>")
    });
    let body = body.map_or(String::new(), |b| {
        format!("<field var='last-message-body'><value>{b}</value></field>")
    });
    let options = options.map_or(String::new(), |o| {
        format!("<publish-options>{o}</publish-options>")
    });
    format!(
        "<iq xmlns='jabber:component:accept' type='set' from='localhost' to='{APP}' id='{{*}}'>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{node}'><item>\
         <notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>urn:xmpp:push:summary</value></field>\
         <field var='message-count'><value>{count}</value></field>{sender}{body}\
         </x></notification></item></publish>{options}</pubsub></iq>"
    )
}

/// The app server expects `expected` and answers it with a result.
async fn expect_and_ack(app: &mut Client, expected: &str) {
    let iq = app.expect(expected).await.unwrap();
    answer(app, &iq, None).await;
}

/// Answers a publish: a result, or an error of `error` (`type`, condition).
async fn answer(app: &mut Client, iq: &Element, error: Option<(&str, &str)>) {
    let id = iq.attr("id").unwrap();
    let reply = match error {
        None => format!(
            "<iq xmlns='jabber:component:accept' type='result' from='{APP}' to='localhost' id='{id}'/>"
        ),
        Some((ty, condition)) => format!(
            "<iq xmlns='jabber:component:accept' type='error' from='{APP}' to='localhost' id='{id}'>\
             <error type='{ty}'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ),
    };
    app.send_xml(&reply).await.unwrap();
}

/// Sends `<enable/>` (or any push IQ) as `c` and expects `reply` (use `{id}` for the id).
async fn push_iq(c: &mut Client, payload: &str, reply: &str) {
    let id = c.new_id("push");
    c.send_xml(&format!("<iq type='set' id='{id}'>{payload}</iq>"))
        .await
        .unwrap();
    c.expect(&reply.replace("{id}", &id)).await.unwrap();
}

fn enable(node: &str, form: &str) -> String {
    format!("<enable xmlns='urn:xmpp:push:0' jid='{APP}' node='{node}'>{form}</enable>")
}

fn ok(who: &str) -> String {
    format!("<iq type='result' id='{{id}}' to='{who}'/>")
}

fn err(who: &str, ty: &str, condition: &str, text: Option<&str>) -> String {
    let text = text.map_or(String::new(), |t| {
        format!("<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{t}</text>")
    });
    format!(
        "<iq type='error' id='{{id}}' to='{who}'><error type='{ty}'>\
         <{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>{text}</error></iq>"
    )
}

/// Alice, logged in as `resource` (not available), enables `node` with the secret form.
async fn alice_enables(server: &TestServer, resource: &str, node: &str) -> Client {
    let mut alice = server.login("alice", PW, resource).await;
    push_iq(
        &mut alice,
        &enable(node, FORM),
        &ok(&format!("alice@localhost/{resource}")),
    )
    .await;
    alice
}

/// Alice enables `node` and leaves: she has no session, her registration stays.
async fn alice_enables_and_leaves(server: &TestServer, node: &str) {
    let alice = alice_enables(server, "phone", node).await;
    alice.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
}

fn chat(to: &str, id: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>")
}

const SILENCE: Duration = Duration::from_millis(400);

/// §4.1: the account's bare JID advertises `urn:xmpp:push:0`.
#[tokio::test]
async fn the_account_advertises_push() {
    let server = server(|_| {}).await;
    let mut alice = server.login("alice", PW, "phone").await;
    alice
        .send_xml("<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    let reply = alice.recv_element().await.unwrap();
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    let query = reply
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert!(
        query
            .children()
            .any(|f| f.name() == "feature" && f.attr("var") == Some("urn:xmpp:push:0")),
        "{reply:?}"
    );
}

/// §5 and §7: after enabling with publish options, a message for an account with no available
/// resource is published to the node with the summary form (one message, the sender's full
/// JID, no body by default, §9) and the publish options; the message itself is still stored
/// offline and delivered at the next login.
#[tokio::test]
async fn an_offline_message_is_published_with_the_secret() {
    let server = server(|_| {}).await;
    let mut app = app_server(&server).await;
    alice_enables_and_leaves(&server, "yxs32uqsflafdk3iuqo").await;
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml(&chat("alice@localhost", "m1", "Wherefore art thou?"))
        .await
        .unwrap();
    expect_and_ack(
        &mut app,
        &publish(
            "yxs32uqsflafdk3iuqo",
            1,
            Some("bob@localhost/r"),
            None,
            Some(FORM),
        ),
    )
    .await;
    app.expect_silence(SILENCE).await.unwrap();
    // No error for Bob; the message waits for Alice.
    bob.expect_silence(Duration::from_millis(100))
        .await
        .unwrap();
    let mut alice = server.online("alice", PW, "phone").await;
    alice
        .expect("<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m1'>\
                 <body>Wherefore art thou?</body><delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>")
        .await
        .unwrap();
}

/// §9: the body goes out only when the operator turns `include_body` on, and the sender can
/// be left out with `include_sender = false`. Without publish options there is no
/// `<publish-options/>` (§7).
#[tokio::test]
async fn body_and_sender_follow_the_configuration() {
    let server = server(|c| {
        c.push.include_body = true;
        c.push.include_sender = false;
    })
    .await;
    let mut app = app_server(&server).await;
    let mut alice = server.login("alice", PW, "phone").await;
    push_iq(&mut alice, &enable("n1", ""), &ok("alice@localhost/phone")).await;
    alice.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml(&chat("alice@localhost", "m1", "a &amp; b"))
        .await
        .unwrap();
    expect_and_ack(&mut app, &publish("n1", 1, None, Some("a &amp; b"), None)).await;
    app.expect_silence(SILENCE).await.unwrap();
}

/// §7 ("an event warranting a push notification"): an OMEMO message without a body is pushed;
/// chat states alone, headlines and messages with an empty body are not.
#[tokio::test]
async fn only_messages_with_content_are_pushed() {
    let server = server(|_| {}).await;
    let mut app = app_server(&server).await;
    alice_enables_and_leaves(&server, "n1").await;
    let mut bob = server.online("bob", PW, "r").await;
    for m in [
        "<message to='alice@localhost' type='chat' id='s1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message to='alice@localhost' type='headline' id='h1'><body>news</body></message>",
        "<message to='alice@localhost' type='chat' id='e1'><body/></message>",
    ] {
        bob.send_xml(m).await.unwrap();
    }
    app.expect_silence(SILENCE).await.unwrap();
    bob.send_xml(
        "<message to='alice@localhost' type='chat' id='o1'>\
         <encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted></message>",
    )
    .await
    .unwrap();
    expect_and_ack(
        &mut app,
        &publish("n1", 1, Some("bob@localhost/r"), None, Some(FORM)),
    )
    .await;
    app.expect_silence(SILENCE).await.unwrap();
}

/// §7 with XEP-0198: a message to the pushed session while it is detached (its connection lost,
/// waiting for resumption) is published; when the session then ends and hands the message to
/// offline storage, it is not published a second time.
#[tokio::test]
async fn a_detached_session_is_pushed_once() {
    let server = server(|c| {
        c.stream_management.resume_timeout = Duration::from_secs(1);
    })
    .await;
    let mut app = app_server(&server).await;
    let mut alice = alice_enables(&server, "phone", "n1").await;
    alice
        .send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    alice
        .expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='1' id='{*}'/>")
        .await
        .unwrap();
    alice.send_xml("<presence/>").await.unwrap();
    alice
        .expect("<presence from='alice@localhost/phone' to='alice@localhost/phone'/>")
        .await
        .unwrap();
    let mut bob = server.online("bob", PW, "r").await;
    // While connected and active: no notification.
    bob.send_xml(&chat("alice@localhost", "m0", "live"))
        .await
        .unwrap();
    alice
        .expect("<message from='bob@localhost/r' to='alice@localhost' type='chat' id='m0'><body>live</body></message>")
        .await
        .unwrap();
    app.expect_silence(SILENCE).await.unwrap();

    drop(alice);
    tokio::time::sleep(Duration::from_millis(200)).await;
    bob.send_xml(&chat("alice@localhost", "m1", "are you there?"))
        .await
        .unwrap();
    expect_and_ack(
        &mut app,
        &publish("n1", 1, Some("bob@localhost/r"), None, Some(FORM)),
    )
    .await;
    // The resumption timeout (1 s) passes: m0 (unacknowledged) and m1 go to offline storage.
    // m1 was published for already; m0 was delivered while the session was live, and is
    // published now that it is stored for an account without a session.
    expect_and_ack(
        &mut app,
        &publish("n1", 1, Some("bob@localhost/r"), None, Some(FORM)),
    )
    .await;
    app.expect_silence(Duration::from_millis(1500))
        .await
        .unwrap();
}

/// §7 with XEP-0352: while the pushed session is inactive, a message (delivered, it is urgent)
/// is also published; once active again, nothing is published.
#[tokio::test]
async fn an_inactive_session_is_pushed_an_active_one_is_not() {
    let server = server(|_| {}).await;
    let mut app = app_server(&server).await;
    let mut alice = alice_enables(&server, "phone", "n1").await;
    let mut bob = server.online("bob", PW, "r").await;
    alice
        .send_xml("<inactive xmlns='urn:xmpp:csi:0'/>")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob.send_xml(&chat("alice@localhost/phone", "m1", "wake up"))
        .await
        .unwrap();
    alice
        .expect("<message from='bob@localhost/r' to='alice@localhost/phone' type='chat' id='m1'><body>wake up</body></message>")
        .await
        .unwrap();
    expect_and_ack(
        &mut app,
        &publish("n1", 1, Some("bob@localhost/r"), None, Some(FORM)),
    )
    .await;

    alice
        .send_xml("<active xmlns='urn:xmpp:csi:0'/>")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob.send_xml(&chat("alice@localhost/phone", "m2", "thanks"))
        .await
        .unwrap();
    alice
        .expect("<message from='bob@localhost/r' to='alice@localhost/phone' type='chat' id='m2'><body>thanks</body></message>")
        .await
        .unwrap();
    app.expect_silence(SILENCE).await.unwrap();
}

/// §7.1: an error of type `wait` is transient and keeps the registration; any other error
/// disables it, and nothing is published there any more.
#[tokio::test]
async fn a_publish_error_disables_the_registration() {
    let server = server(|_| {}).await;
    let mut app = app_server(&server).await;
    alice_enables_and_leaves(&server, "n1").await;
    let mut bob = server.online("bob", PW, "r").await;
    let expected = publish("n1", 1, Some("bob@localhost/r"), None, Some(FORM));

    bob.send_xml(&chat("alice@localhost", "m1", "1"))
        .await
        .unwrap();
    let iq = app.expect(&expected).await.unwrap();
    answer(&mut app, &iq, Some(("wait", "resource-constraint"))).await;

    bob.send_xml(&chat("alice@localhost", "m2", "2"))
        .await
        .unwrap();
    let iq = app.expect(&expected).await.unwrap();
    answer(&mut app, &iq, Some(("cancel", "item-not-found"))).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    bob.send_xml(&chat("alice@localhost", "m3", "3"))
        .await
        .unwrap();
    app.expect_silence(SILENCE).await.unwrap();
    // Bob never hears of any of it.
    bob.expect_silence(Duration::from_millis(100))
        .await
        .unwrap();
}

/// §6: `<disable/>` with a node removes that node only; without a node, every node of the
/// service. §5: the same JID may be enabled with several nodes.
#[tokio::test]
async fn disable_one_node_or_the_whole_service() {
    let server = server(|_| {}).await;
    let mut app = app_server(&server).await;
    let mut alice = server.login("alice", PW, "phone").await;
    let me = "alice@localhost/phone";
    for node in ["n1", "n2", "n3"] {
        push_iq(&mut alice, &enable(node, ""), &ok(me)).await;
    }
    push_iq(
        &mut alice,
        &format!("<disable xmlns='urn:xmpp:push:0' jid='{APP}' node='n2'/>"),
        &ok(me),
    )
    .await;
    alice.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml(&chat("alice@localhost", "m1", "1"))
        .await
        .unwrap();
    // In the order they were enabled.
    for node in ["n1", "n3"] {
        expect_and_ack(
            &mut app,
            &publish(node, 1, Some("bob@localhost/r"), None, None),
        )
        .await;
    }
    app.expect_silence(SILENCE).await.unwrap();

    let mut alice = server.login("alice", PW, "phone").await;
    push_iq(
        &mut alice,
        &format!("<disable xmlns='urn:xmpp:push:0' jid='{APP}'/>"),
        &ok(me),
    )
    .await;
    alice.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    bob.send_xml(&chat("alice@localhost", "m2", "2"))
        .await
        .unwrap();
    app.expect_silence(SILENCE).await.unwrap();
}

/// §5: enabling the same JID and node again replaces its publish options (the last request
/// wins); an account keeps at most `max_registrations`, the oldest going first.
#[tokio::test]
async fn re_enabling_replaces_and_the_oldest_registration_goes() {
    let server = server(|c| c.push.max_registrations = 2).await;
    let mut app = app_server(&server).await;
    let mut alice = server.login("alice", PW, "phone").await;
    let me = "alice@localhost/phone";
    for node in ["n1", "n2"] {
        push_iq(&mut alice, &enable(node, FORM), &ok(me)).await;
    }
    let form2 = "<x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
        <field var='secret'><value>new</value></field></x>";
    // n1 again, with a new secret: now the newest; n3 then pushes n2 out.
    push_iq(&mut alice, &enable("n1", form2), &ok(me)).await;
    push_iq(&mut alice, &enable("n3", ""), &ok(me)).await;
    alice.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml(&chat("alice@localhost", "m1", "1"))
        .await
        .unwrap();
    expect_and_ack(
        &mut app,
        &publish("n1", 1, Some("bob@localhost/r"), None, Some(form2)),
    )
    .await;
    expect_and_ack(
        &mut app,
        &publish("n3", 1, Some("bob@localhost/r"), None, None),
    )
    .await;
    app.expect_silence(SILENCE).await.unwrap();
}

/// §5: `jid` MUST be there (`<bad-request/>`) and be a JID (`<jid-malformed/>`); a node is
/// required (the schema's `use='required'`); the form must be publish-options; §6: `jid` MUST
/// be there. Another account's registrations are not anyone else's business
/// (`<service-unavailable/>`, as for an account that does not exist).
#[tokio::test]
async fn bad_requests_are_refused() {
    let server = server(|_| {}).await;
    let mut alice = server.login("alice", PW, "phone").await;
    let me = "alice@localhost/phone";
    push_iq(
        &mut alice,
        "<enable xmlns='urn:xmpp:push:0' node='n'/>",
        &err(me, "modify", "bad-request", Some("missing 'jid'")),
    )
    .await;
    push_iq(
        &mut alice,
        "<enable xmlns='urn:xmpp:push:0' jid='a@b@c' node='n'/>",
        &err(me, "modify", "jid-malformed", None),
    )
    .await;
    push_iq(
        &mut alice,
        &format!("<enable xmlns='urn:xmpp:push:0' jid='{APP}'/>"),
        &err(me, "modify", "bad-request", Some("missing 'node'")),
    )
    .await;
    // Notifications go out in the server's name: never to its own hosts or their accounts.
    for app in ["localhost", "bob@localhost", "bob@localhost/phone"] {
        push_iq(
            &mut alice,
            &format!("<enable xmlns='urn:xmpp:push:0' jid='{app}' node='n'/>"),
            &err(
                me,
                "modify",
                "not-acceptable",
                Some("the app server must not be one of this server&apos;s hosts"),
            ),
        )
        .await;
    }
    push_iq(
        &mut alice,
        &enable(
            "n",
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x>",
        ),
        &err(
            me,
            "modify",
            "bad-request",
            Some("the form's FORM_TYPE must be http://jabber.org/protocol/pubsub#publish-options"),
        ),
    )
    .await;
    push_iq(
        &mut alice,
        "<disable xmlns='urn:xmpp:push:0'/>",
        &err(me, "modify", "bad-request", Some("missing 'jid'")),
    )
    .await;
    // To Bob's account: refused without a word about it.
    let id = alice.new_id("x");
    alice
        .send_xml(&format!(
            "<iq type='set' id='{id}' to='bob@localhost'>{}</iq>",
            enable("n", "")
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='error' id='{id}' from='bob@localhost' to='{me}'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ))
        .await
        .unwrap();
}

/// Rate limit per device: one notification at a time, at least `min_interval` apart; messages
/// meanwhile are counted into the next one, which names the last sender.
#[tokio::test]
async fn notifications_are_rate_limited_and_coalesced() {
    let server = server(|c| {
        c.push.min_interval = Duration::from_secs(1);
        c.push.include_body = true;
    })
    .await;
    let mut app = app_server(&server).await;
    alice_enables_and_leaves(&server, "n1").await;
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml(&chat("alice@localhost", "m1", "one"))
        .await
        .unwrap();
    expect_and_ack(
        &mut app,
        &publish("n1", 1, Some("bob@localhost/r"), Some("one"), Some(FORM)),
    )
    .await;
    bob.send_xml(&chat("alice@localhost", "m2", "two"))
        .await
        .unwrap();
    bob.send_xml(&chat("alice@localhost", "m3", "three"))
        .await
        .unwrap();
    // Within the second after the first: nothing.
    app.expect_silence(Duration::from_millis(500))
        .await
        .unwrap();
    expect_and_ack(
        &mut app,
        &publish("n1", 2, Some("bob@localhost/r"), Some("three"), Some(FORM)),
    )
    .await;
    app.expect_silence(Duration::from_millis(1500))
        .await
        .unwrap();
}

/// XEP-0357 §7 for group chats (XEP-0045): the room's traffic wakes no one, but a message to all
/// that names an occupant whose pushed session is inactive (XEP-0352) is published, from the
/// sender's occupant JID.
#[tokio::test]
async fn a_group_chat_mention_is_pushed() {
    let room = "lobby@conference.localhost";
    let server = server(|_| {}).await;
    let mut app = app_server(&server).await;
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml(&format!("<presence to='{room}/bob'/>"))
        .await
        .unwrap();
    bob.drain(Duration::from_millis(200)).await;
    let mut alice = alice_enables(&server, "phone", "n1").await;
    alice
        .send_xml(&format!("<presence to='{room}/Alice'/>"))
        .await
        .unwrap();
    alice.drain(Duration::from_millis(200)).await;
    bob.drain(Duration::from_millis(100)).await;
    alice
        .send_xml("<inactive xmlns='urn:xmpp:csi:0'/>")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (id, body) in [("g1", "good morning"), ("g2", "alice, are you there?")] {
        bob.send_xml(&format!(
            "<message to='{room}' type='groupchat' id='{id}'><body>{body}</body></message>"
        ))
        .await
        .unwrap();
    }
    for id in ["g1", "g2"] {
        let m = alice.recv_element().await.unwrap();
        assert_eq!(m.attr("id"), Some(id));
    }
    expect_and_ack(
        &mut app,
        &publish("n1", 1, Some(&format!("{room}/bob")), None, Some(FORM)),
    )
    .await;
    app.expect_silence(SILENCE).await.unwrap();
}
