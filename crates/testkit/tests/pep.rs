//! XEP-0163 Personal Eventing Protocol over real sockets: publishing to one's own bare JID,
//! notifications filtered by XEP-0115 `+notify` interests, the last item on presence, access
//! models, publish-options preconditions (XEP-0060 §7.1.5), XEP-0223 private storage, limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_modules::caps::sha1_ver;
use starling_proto::Element;
use starling_testkit::client::Client;
use starling_testkit::matcher::{assert_matches, parse_xml};
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const TUNE: &str = "http://jabber.org/protocol/tune";
const NICK: &str = "http://jabber.org/protocol/nick";
const CAPS_NODE: &str = "https://example.org/client";

/// The disco#info a test client advertises: a name of its own (so that its `ver` is its own and
/// the server asks it), and `NODE+notify` for each node it wants.
fn disco_info(name: &str, notify: &[&str]) -> String {
    let mut features = vec![
        "http://jabber.org/protocol/caps".to_owned(),
        "http://jabber.org/protocol/disco#info".to_owned(),
    ];
    features.extend(notify.iter().map(|n| format!("{n}+notify")));
    features.sort();
    let mut xml = format!("<identity category='client' type='pc' name='{name}'/>");
    for f in features {
        xml.push_str(&format!("<feature var='{f}'/>"));
    }
    xml
}

fn ver_of(info: &str) -> String {
    let query = parse_xml(&format!(
        "<query xmlns='http://jabber.org/protocol/disco#info'>{info}</query>"
    ));
    sha1_ver(&query).unwrap()
}

/// Logs in, sends initial presence advertising `notify` interests, answers the server's
/// disco#info query for the caps (XEP-0115 §6.3) and waits for its own presence. Presence of
/// contacts arriving meanwhile is skipped.
async fn online(server: &TestServer, user: &str, resource: &str, notify: &[&str]) -> Client {
    let mut c = server.login(user, PW, resource).await;
    let me = format!("{user}@localhost/{resource}");
    let info = disco_info(&format!("{user}/{resource}"), notify);
    let ver = ver_of(&info);
    c.send_xml(&format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{CAPS_NODE}' ver='{ver}'/></presence>"
    ))
    .await
    .unwrap();
    let (mut echoed, mut answered) = (false, false);
    while !(echoed && answered) {
        let e = c.recv_element().await.unwrap();
        match e.name() {
            "presence" => echoed |= e.attr("from") == Some(me.as_str()),
            "iq" => {
                assert_matches(
                    &format!(
                        "<iq type='get' id='{{*}}' from='localhost' to='{me}'>\
                         <query xmlns='http://jabber.org/protocol/disco#info' node='{CAPS_NODE}#{ver}'/></iq>"
                    ),
                    &e,
                );
                let id = e.attr("id").unwrap();
                c.send_xml(&format!(
                    "<iq type='result' id='{id}' to='localhost'>\
                     <query xmlns='http://jabber.org/protocol/disco#info' node='{CAPS_NODE}#{ver}'>{info}</query></iq>"
                ))
                .await
                .unwrap();
                answered = true;
            }
            _ => panic!("{me}: unexpected {e:?}"),
        }
    }
    // The server verifies the answer as it arrives; let it finish.
    tokio::time::sleep(Duration::from_millis(100)).await;
    c
}

/// The next stanza that is not presence.
async fn next(c: &mut Client) -> Element {
    loop {
        let e = c.recv_element().await.unwrap();
        if e.name() != "presence" {
            return e;
        }
    }
}

async fn expect_next(c: &mut Client, expected: &str) {
    let e = next(c).await;
    assert_matches(expected, &e);
}

/// Nothing but presence for a while.
async fn expect_none(c: &mut Client) {
    while let Ok(e) = tokio::time::timeout(Duration::from_millis(300), c.recv_element()).await {
        let e = e.unwrap();
        assert_eq!(e.name(), "presence", "unexpected {e:?}");
    }
}

async fn ask(c: &mut Client, request: &str, answer: &str) {
    c.send_xml(request).await.unwrap();
    expect_next(c, answer).await;
}

fn tune(title: &str) -> String {
    format!("<tune xmlns='{TUNE}'><title>{title}</title></tune>")
}

fn publish(id: &str, node: &str, item_id: &str, payload: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <publish node='{node}'><item id='{item_id}'>{payload}</item></publish></pubsub></iq>"
    )
}

fn published(id: &str, to: &str, node: &str, item_id: &str) -> String {
    format!(
        "<iq type='result' id='{id}' to='{to}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <publish node='{node}'><item id='{item_id}'/></publish></pubsub></iq>"
    )
}

fn notification(from: &str, to: &str, node: &str, item_id: &str, payload: &str) -> String {
    format!(
        "<message from='{from}' to='{to}' type='headline' id='{{*}}'>\
         <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{node}'>\
         <item id='{item_id}'>{payload}</item></items></event></message>"
    )
}

fn pubsub_error(
    id: &str,
    to: &str,
    from: Option<&str>,
    kind: &str,
    cond: &str,
    app: &str,
) -> String {
    let from = from.map(|f| format!(" from='{f}'")).unwrap_or_default();
    format!(
        "<iq type='error' id='{id}' to='{to}'{from}><error type='{kind}'>\
         <{cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <{app} xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>"
    )
}

async fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

/// XEP-0163 §6.1: the account's disco#info shows `pubsub/pep` and the pubsub features.
#[tokio::test]
async fn account_advertises_pep() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    alice
        .send_xml("<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    let result = next(&mut alice).await;
    let query = result
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    let identities: Vec<(String, String)> = query
        .children()
        .filter(|c| c.name() == "identity")
        .map(|c| {
            (
                c.attr("category").unwrap().to_owned(),
                c.attr("type").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        identities,
        [
            ("account".to_owned(), "registered".to_owned()),
            ("pubsub".to_owned(), "pep".to_owned())
        ]
    );
    let features: Vec<&str> = query
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in starling_modules::pubsub::FEATURES {
        assert!(features.contains(f), "{f} missing from {features:?}");
    }
}

/// XEP-0163 §3 (auto-create on publish), §4.3.1 (notifications to the owner's resources and to
/// contacts sharing presence, filtered by `+notify`), XEP-0060 §7.1.2 (the publish result).
#[tokio::test]
async fn publish_notifies_interested_resources_only() {
    let server = server_with(&["alice", "bob", "carol", "dave"]).await;
    server.befriend("alice", "bob").await;
    server.befriend("alice", "carol").await;
    let mut alice = online(&server, "alice", "a", &[TUNE]).await;
    let mut alice2 = online(&server, "alice", "a2", &[]).await;
    let mut bob = online(&server, "bob", "b", &[TUNE]).await;
    // A contact not interested in tunes, and an interested stranger.
    let mut carol = online(&server, "carol", "c", &[NICK]).await;
    let mut dave = online(&server, "dave", "d", &[TUNE]).await;

    alice
        .send_xml(&publish("p1", TUNE, "t1", &tune("Yesterday")))
        .await
        .unwrap();
    let mut got = [next(&mut alice).await, next(&mut alice).await];
    got.sort_by_key(|e| e.name().to_owned());
    assert_matches(&published("p1", "alice@localhost/a", TUNE, "t1"), &got[0]);
    assert_matches(
        &notification(
            "alice@localhost",
            "alice@localhost/a",
            TUNE,
            "t1",
            &tune("Yesterday"),
        ),
        &got[1],
    );
    expect_next(
        &mut bob,
        &notification(
            "alice@localhost",
            "bob@localhost/b",
            TUNE,
            "t1",
            &tune("Yesterday"),
        ),
    )
    .await;
    expect_none(&mut alice2).await;
    expect_none(&mut carol).await;
    expect_none(&mut dave).await;
}

/// XEP-0163 §4.3.4: the last item goes to a resource whose interests become known after its
/// initial presence, with the time it was published (XEP-0203), for the owner too.
#[tokio::test]
async fn last_item_on_initial_presence() {
    let server = server_with(&["alice", "bob"]).await;
    server.befriend("alice", "bob").await;
    let mut alice = server.login("alice", PW, "a").await;
    ask(
        &mut alice,
        &publish(
            "p1",
            NICK,
            "current",
            &format!("<nick xmlns='{NICK}'>Alice</nick>"),
        ),
        &published("p1", "alice@localhost/a", NICK, "current"),
    )
    .await;
    let nick = format!("<nick xmlns='{NICK}'>Alice</nick>");
    let delayed = |to: &str| {
        format!(
            "<message from='alice@localhost' to='{to}' type='headline' id='{{*}}'>\
             <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{NICK}'>\
             <item id='current'>{nick}</item></items></event>\
             <delay xmlns='urn:xmpp:delay' from='alice@localhost' stamp='{{*}}'/></message>"
        )
    };
    let mut bob = online(&server, "bob", "b", &[NICK]).await;
    expect_next(&mut bob, &delayed("bob@localhost/b")).await;
    let mut alice2 = online(&server, "alice", "a2", &[NICK]).await;
    expect_next(&mut alice2, &delayed("alice@localhost/a2")).await;
    // A presence update with the same caps sends nothing again.
    bob.send_xml("<presence><show>away</show></presence>")
        .await
        .unwrap();
    expect_none(&mut bob).await;
}

/// XEP-0060 §6.5.9 and §4.5 access models, as PEP uses them (XEP-0163 §8): `presence` (the
/// default) only for contacts sharing presence, `open` for anyone (OMEMO bundles, fetched by
/// strangers), `whitelist` for nobody but the owner and affiliates.
#[tokio::test]
async fn access_models() {
    let server = server_with(&["alice", "bob", "eve"]).await;
    server.befriend("alice", "bob").await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    let mut eve = server.login("eve", PW, "e").await;
    ask(
        &mut alice,
        &publish("p1", TUNE, "t1", &tune("Help")),
        &published("p1", "alice@localhost/a", TUNE, "t1"),
    )
    .await;
    let get = |id: &str, node: &str| {
        format!(
            "<iq type='get' id='{id}' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='{node}'/></pubsub></iq>"
        )
    };
    ask(
        &mut bob,
        &get("g1", TUNE),
        &format!(
            "<iq type='result' id='g1' from='alice@localhost' to='bob@localhost/b'>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{TUNE}'>\
             <item id='t1'>{}</item></items></pubsub></iq>",
            tune("Help")
        ),
    )
    .await;
    ask(
        &mut eve,
        &get("g2", TUNE),
        &pubsub_error(
            "g2",
            "eve@localhost/e",
            Some("alice@localhost"),
            "auth",
            "not-authorized",
            "presence-subscription-required",
        ),
    )
    .await;

    // An OMEMO bundle is published open (XEP-0384 §5.3.2) and fetched by a stranger.
    let bundles = "urn:xmpp:omemo:2:bundles";
    let bundle = "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk></bundle>";
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='p2'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{bundles}'><item id='31415'>{bundle}</item></publish>\
             <publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='pubsub#max_items'><value>max</value></field>\
             <field var='pubsub#access_model'><value>open</value></field>\
             </x></publish-options></pubsub></iq>"
        ),
        &published("p2", "alice@localhost/a", bundles, "31415"),
    )
    .await;
    ask(
        &mut eve,
        &format!(
            "<iq type='get' id='g3' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='{bundles}'><item id='31415'/></items></pubsub></iq>"
        ),
        &format!(
            "<iq type='result' id='g3' from='alice@localhost' to='eve@localhost/e'>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{bundles}'>\
             <item id='31415'>{bundle}</item></items></pubsub></iq>"
        ),
    )
    .await;

    // XEP-0223: persistent private storage, whitelist; only the owner reads it.
    let private = "urn:xmpp:bookmarks:1";
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='p3'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{private}'><item id='room@muc.localhost'>\
             <conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/></item></publish>\
             <publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='pubsub#persist_items'><value>true</value></field>\
             <field var='pubsub#access_model'><value>whitelist</value></field>\
             </x></publish-options></pubsub></iq>"
        ),
        &published("p3", "alice@localhost/a", private, "room@muc.localhost"),
    )
    .await;
    ask(
        &mut bob,
        &get("g4", private),
        &pubsub_error(
            "g4",
            "bob@localhost/b",
            Some("alice@localhost"),
            "cancel",
            "not-allowed",
            "closed-node",
        ),
    )
    .await;
    ask(
        &mut alice,
        &format!(
            "<iq type='get' id='g5'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='{private}'/></pubsub></iq>"
        ),
        &format!(
            "<iq type='result' id='g5' to='alice@localhost/a'>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{private}'>\
             <item id='room@muc.localhost'><conference xmlns='urn:xmpp:bookmarks:1' autojoin='true'/></item>\
             </items></pubsub></iq>"
        ),
    )
    .await;
}

/// XEP-0060 §7.1.5: publish-options that the existing node does not meet are refused with
/// `<conflict/>` and `precondition-not-met`, and nothing is published; the owner then
/// reconfigures the node (§8.2) and publishes again, as Conversations does.
#[tokio::test]
async fn publish_options_preconditions() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    ask(
        &mut alice,
        &publish("p1", TUNE, "t1", &tune("One")),
        &published("p1", "alice@localhost/a", TUNE, "t1"),
    )
    .await;
    let with_open = |id: &str, item: &str| {
        format!(
            "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{TUNE}'><item id='{item}'>{}</item></publish>\
             <publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='pubsub#access_model'><value>open</value></field>\
             </x></publish-options></pubsub></iq>",
            tune("Two")
        )
    };
    ask(
        &mut alice,
        &with_open("p2", "t2"),
        &pubsub_error(
            "p2",
            "alice@localhost/a",
            None,
            "cancel",
            "conflict",
            "precondition-not-met",
        ),
    )
    .await;
    // §8.2.4: configure the node.
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='c1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>\
             <configure node='{TUNE}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
             <field var='pubsub#access_model'><value>open</value></field>\
             </x></configure></pubsub></iq>"
        ),
        "<iq type='result' id='c1' to='alice@localhost/a'/>",
    )
    .await;
    ask(
        &mut alice,
        &with_open("p3", "t2"),
        &published("p3", "alice@localhost/a", TUNE, "t2"),
    )
    .await;
    // One item kept (PEP's default max_items): t1 is gone.
    ask(
        &mut alice,
        &format!(
            "<iq type='get' id='g1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='{TUNE}'/></pubsub></iq>"
        ),
        &format!(
            "<iq type='result' id='g1' to='alice@localhost/a'>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{TUNE}'>\
             <item id='t2'>{}</item></items></pubsub></iq>",
            tune("Two")
        ),
    )
    .await;
}

/// Limits: an item above `max_item_size` is `<not-acceptable/>` with `payload-too-big`
/// (XEP-0060 §7.1.3.4); a node beyond `max_nodes` is `<policy-violation/>`; `max_items` above
/// the server's is `<not-acceptable/>`; `max` keeps up to the server's limit.
#[tokio::test]
async fn limits() {
    let server = TestServer::start_with(|c| {
        c.pep.max_nodes = 2;
        c.pep.max_items = 3;
        c.pep.max_item_size = 1024;
    })
    .await;
    server.add_user("alice", PW).await;
    let mut alice = server.login("alice", PW, "a").await;
    let big = tune(&"x".repeat(2000));
    alice
        .send_xml(&publish("p1", TUNE, "t1", &big))
        .await
        .unwrap();
    expect_next(
        &mut alice,
        "<iq type='error' id='p1' to='alice@localhost/a'><error type='modify'>\
         <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>items are limited to 1024 bytes</text>\
         <payload-too-big xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>",
    )
    .await;
    let max_options = |n: &str| {
        format!(
            "<publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='pubsub#max_items'><value>{n}</value></field></x></publish-options>"
        )
    };
    let publish_with = |id: &str, node: &str, item: &str, options: &str| {
        format!(
            "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{node}'><item id='{item}'>{}</item></publish>{options}</pubsub></iq>",
            tune(item)
        )
    };
    ask(
        &mut alice,
        &publish_with("p2", "n1", "a", &max_options("10")),
        "<iq type='error' id='p2' to='alice@localhost/a'><error type='modify'>\
         <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>pubsub#max_items is at most 3 here (or max)</text>\
         </error></iq>",
    )
    .await;
    for (i, item) in ["a", "b", "c", "d"].iter().enumerate() {
        let id = format!("q{i}");
        ask(
            &mut alice,
            &publish_with(&id, "n1", item, &max_options("max")),
            &published(&id, "alice@localhost/a", "n1", item),
        )
        .await;
    }
    // max is the server's 3: the oldest went; newest first.
    ask(
        &mut alice,
        "<iq type='get' id='g1'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n1'/></pubsub></iq>",
        &format!(
            "<iq type='result' id='g1' to='alice@localhost/a'>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='n1'>\
             <item id='d'>{}</item><item id='c'>{}</item><item id='b'>{}</item></items></pubsub></iq>",
            tune("d"),
            tune("c"),
            tune("b")
        ),
    )
    .await;
    ask(
        &mut alice,
        &publish("p3", "n2", "x", &tune("x")),
        &published("p3", "alice@localhost/a", "n2", "x"),
    )
    .await;
    ask(
        &mut alice,
        &publish("p4", "n3", "x", &tune("x")),
        "<iq type='error' id='p4' to='alice@localhost/a'><error type='modify'>\
         <policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>an account may have at most 2 nodes</text>\
         </error></iq>",
    )
    .await;
}

/// XEP-0163 §4.3.3 item 3 and XEP-0191 §5.3: a contact the owner blocked gets no
/// notification, and cannot read the node either.
#[tokio::test]
async fn blocked_contacts_get_nothing() {
    let server = server_with(&["alice", "bob"]).await;
    server.befriend("alice", "bob").await;
    let mut alice = online(&server, "alice", "a", &[]).await;
    let mut bob = online(&server, "bob", "b", &[TUNE]).await;
    ask(
        &mut alice,
        "<iq type='set' id='b1'><block xmlns='urn:xmpp:blocking'><item jid='bob@localhost'/></block></iq>",
        "<iq type='result' id='b1' to='alice@localhost/a'/>",
    )
    .await;
    ask(
        &mut alice,
        &publish("p1", TUNE, "t1", &tune("Private")),
        &published("p1", "alice@localhost/a", TUNE, "t1"),
    )
    .await;
    expect_none(&mut bob).await;
    bob.send_xml(&format!(
        "<iq type='get' id='g1' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <items node='{TUNE}'/></pubsub></iq>"
    ))
    .await
    .unwrap();
    // XEP-0191 §5.2: as if the account did not exist.
    expect_next(
        &mut bob,
        "<iq type='error' id='g1' from='alice@localhost' to='bob@localhost/b'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .await;
}
