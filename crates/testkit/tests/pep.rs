//! XEP-0163 Personal Eventing Protocol over real sockets: publishing to one's own bare JID,
//! notifications filtered by XEP-0115 `+notify` interests, the last item on presence, access
//! models, publish-options preconditions (XEP-0060 §7.1.5), XEP-0223 private storage, limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::pubsub::{
    self, PW, ask, expect_next, expect_none, item_event, next, pubsub_error, server_with,
};
use starling_modules::caps::sha1_ver;
use starling_testkit::client::Client;
use starling_testkit::matcher::{assert_matches, parse_xml};
use starling_testkit::server::TestServer;

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

fn tune(title: &str) -> String {
    format!("<tune xmlns='{TUNE}'><title>{title}</title></tune>")
}

/// A publication to one's own PEP node.
fn publish(id: &str, node: &str, item_id: &str, payload: &str) -> String {
    pubsub::publish(None, id, node, item_id, payload)
}

/// The result of a publication to one's own PEP node.
fn published(id: &str, to: &str, node: &str, item_id: &str) -> String {
    pubsub::published(None, id, to, node, item_id)
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
        &item_event(
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
        &item_event(
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

const METADATA: &str = "urn:xmpp:avatar:metadata";
const DATA: &str = "urn:xmpp:avatar:data";

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// XEP-0398 §3.1 and §4: an avatar published with XEP-0084 becomes the vCard's photo, and the
/// account's presence carries its hash (XEP-0153) from then on; §3.2: a vCard photo set by a
/// legacy client becomes the PEP avatar, notified to interested contacts.
#[tokio::test]
async fn avatars_are_one_in_pep_and_vcard() {
    let server = server_with(&["alice", "bob", "carol", "dave"]).await;
    server.befriend("alice", "bob").await;
    server.befriend("carol", "dave").await;
    let mut alice = online(&server, "alice", "a", &[]).await;
    let mut bob = online(&server, "bob", "b", &[METADATA]).await;

    let image = b"\x89PNG\r\n\x1a\n not really an image";
    let (id, data) = (sha1_hex(image), b64(image));
    ask(
        &mut alice,
        &publish(
            "p1",
            DATA,
            &id,
            &format!("<data xmlns='{DATA}'>{data}</data>"),
        ),
        &published("p1", "alice@localhost/a", DATA, &id),
    )
    .await;
    let metadata = format!(
        "<metadata xmlns='{METADATA}'><info bytes='{}' id='{id}' type='image/png'/></metadata>",
        image.len()
    );
    ask(
        &mut alice,
        &publish("p2", METADATA, &id, &metadata),
        &published("p2", "alice@localhost/a", METADATA, &id),
    )
    .await;
    expect_next(
        &mut bob,
        &item_event(
            "alice@localhost",
            "bob@localhost/b",
            METADATA,
            &id,
            &metadata,
        ),
    )
    .await;
    // §3.1: the vCard has the photo.
    ask(
        &mut bob,
        "<iq type='get' id='v1' to='alice@localhost'><vCard xmlns='vcard-temp'/></iq>",
        &format!(
            "<iq type='result' id='v1' from='alice@localhost' to='bob@localhost/b'>\
             <vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>{data}</BINVAL></PHOTO></vCard></iq>"
        ),
    )
    .await;
    // §4: presence carries the hash; a client's own empty <photo/> is left alone.
    alice
        .send_xml("<presence><show>away</show></presence>")
        .await
        .unwrap();
    bob.expect(&format!(
        "<presence from='alice@localhost/a' to='bob@localhost'><show>away</show>\
         <x xmlns='vcard-temp:x:update'><photo>{id}</photo></x></presence>"
    ))
    .await
    .unwrap();
    alice
        .send_xml("<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>")
        .await
        .unwrap();
    bob.expect(
        "<presence from='alice@localhost/a' to='bob@localhost'>\
         <x xmlns='vcard-temp:x:update'><photo/></x></presence>",
    )
    .await
    .unwrap();

    // §3.2: a legacy client sets a vCard photo; the contact hears of the new PEP avatar.
    let mut carol = server.login("carol", PW, "c").await;
    let mut dave = online(&server, "dave", "d", &[METADATA]).await;
    let image2 = b"GIF89a also not an image";
    let (id2, data2) = (sha1_hex(image2), b64(image2));
    ask(
        &mut carol,
        &format!(
            "<iq type='set' id='v2'><vCard xmlns='vcard-temp'><FN>Carol</FN>\
             <PHOTO><TYPE>image/gif</TYPE><BINVAL>{data2}</BINVAL></PHOTO></vCard></iq>"
        ),
        "<iq type='result' id='v2' to='carol@localhost/c'/>",
    )
    .await;
    let metadata2 = format!(
        "<metadata xmlns='{METADATA}'><info bytes='{}' id='{id2}' type='image/gif'/></metadata>",
        image2.len()
    );
    expect_next(
        &mut dave,
        &item_event(
            "carol@localhost",
            "dave@localhost/d",
            METADATA,
            &id2,
            &metadata2,
        ),
    )
    .await;
    ask(
        &mut dave,
        &format!(
            "<iq type='get' id='g1' to='carol@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='{DATA}'><item id='{id2}'/></items></pubsub></iq>"
        ),
        &format!(
            "<iq type='result' id='g1' from='carol@localhost' to='dave@localhost/d'>\
             <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{DATA}'>\
             <item id='{id2}'><data xmlns='{DATA}'>{data2}</data></item></items></pubsub></iq>"
        ),
    )
    .await;
}

const BOOKMARKS: &str = "urn:xmpp:bookmarks:1";

fn bookmarks2_options() -> &'static str {
    "<publish-options><x xmlns='jabber:x:data' type='submit'>\
     <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
     <field var='pubsub#persist_items'><value>true</value></field>\
     <field var='pubsub#max_items'><value>max</value></field>\
     <field var='pubsub#send_last_published_item'><value>never</value></field>\
     <field var='pubsub#access_model'><value>whitelist</value></field>\
     </x></publish-options>"
}

/// XEP-0402 §5.1 (`#compat`): what a Bookmarks 2 client publishes, a XEP-0048 client reads
/// from private XML (XEP-0049), and what the legacy client stores there reaches the Bookmarks 2
/// client as notifications (new rooms published, removed ones retracted, §3.4).
#[tokio::test]
async fn bookmarks_are_the_same_for_old_and_new_clients() {
    let server = server_with(&["alice"]).await;
    let mut modern = online(&server, "alice", "modern", &[BOOKMARKS]).await;
    let mut legacy = server.login("alice", PW, "legacy").await;
    let conf = format!(
        "<conference xmlns='{BOOKMARKS}' name='The Orchard' autojoin='true'><nick>Juliet</nick></conference>"
    );
    modern
        .send_xml(&format!(
            "<iq type='set' id='b1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{BOOKMARKS}'><item id='orchard@muc.localhost'>{conf}</item></publish>{}</pubsub></iq>",
            bookmarks2_options()
        ))
        .await
        .unwrap();
    let mut got = [next(&mut modern).await, next(&mut modern).await];
    got.sort_by_key(|e| e.name().to_owned());
    assert_matches(
        &published(
            "b1",
            "alice@localhost/modern",
            BOOKMARKS,
            "orchard@muc.localhost",
        ),
        &got[0],
    );
    assert_matches(
        &item_event(
            "alice@localhost",
            "alice@localhost/modern",
            BOOKMARKS,
            "orchard@muc.localhost",
            &conf,
        ),
        &got[1],
    );
    ask(
        &mut legacy,
        "<iq type='get' id='l1'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>",
        "<iq type='result' id='l1' to='alice@localhost/legacy'><query xmlns='jabber:iq:private'>\
         <storage xmlns='storage:bookmarks'><conference name='The Orchard' autojoin='true' jid='orchard@muc.localhost'>\
         <nick>Juliet</nick></conference></storage></query></iq>",
    )
    .await;

    // The legacy client replaces its bookmarks: one room gone, another added.
    ask(
        &mut legacy,
        "<iq type='set' id='l2'><query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>\
         <conference jid='balcony@muc.localhost' autojoin='false' name='Balcony'/></storage></query></iq>",
        "<iq type='result' id='l2' to='alice@localhost/legacy'/>",
    )
    .await;
    let balcony = format!("<conference xmlns='{BOOKMARKS}' name='Balcony'/>");
    expect_next(
        &mut modern,
        &item_event(
            "alice@localhost",
            "alice@localhost/modern",
            BOOKMARKS,
            "balcony@muc.localhost",
            &balcony,
        ),
    )
    .await;
    expect_next(
        &mut modern,
        &format!(
            "<message from='alice@localhost' to='alice@localhost/modern' type='headline' id='{{*}}'>\
             <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{BOOKMARKS}'>\
             <retract id='orchard@muc.localhost'/></items></event></message>"
        ),
    )
    .await;
    ask(
        &mut modern,
        &format!(
            "<iq type='get' id='b2'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{BOOKMARKS}'/></pubsub></iq>"
        ),
        &format!(
            "<iq type='result' id='b2' to='alice@localhost/modern'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <items node='{BOOKMARKS}'><item id='balcony@muc.localhost'>{balcony}</item></items></pubsub></iq>"
        ),
    )
    .await;
}

/// XEP-0115 §6.3 as PEP relies on it: resources advertising the same caps are asked once in
/// all; each still gets its notifications (XEP-0163 §4.3.1).
#[tokio::test]
async fn caps_are_resolved_once_per_hash() {
    let server = server_with(&["alice", "bob", "carol", "dave"]).await;
    for u in ["bob", "carol", "dave"] {
        server.befriend("alice", u).await;
    }
    let mut alice = server.login("alice", PW, "a").await;
    // The same client software everywhere: one ver.
    let info = disco_info("SameClient", &[TUNE]);
    let ver = ver_of(&info);
    let mut clients = Vec::new();
    let mut queries = 0;
    for u in ["bob", "carol", "dave"] {
        let mut c = server.login(u, PW, "r").await;
        c.send_xml(&format!(
            "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{CAPS_NODE}' ver='{ver}'/></presence>"
        ))
        .await
        .unwrap();
        while let Ok(e) = tokio::time::timeout(Duration::from_millis(300), c.recv_element()).await {
            let e = e.unwrap();
            if e.name() == "iq" {
                queries += 1;
                let id = e.attr("id").unwrap();
                c.send_xml(&format!(
                    "<iq type='result' id='{id}' to='localhost'>\
                     <query xmlns='http://jabber.org/protocol/disco#info' node='{CAPS_NODE}#{ver}'>{info}</query></iq>"
                ))
                .await
                .unwrap();
            }
        }
        clients.push((u, c));
    }
    assert_eq!(queries, 1, "one disco#info query for one hash");
    ask(
        &mut alice,
        &publish("p1", TUNE, "t1", &tune("Same")),
        &published("p1", "alice@localhost/a", TUNE, "t1"),
    )
    .await;
    for (u, c) in &mut clients {
        expect_next(
            c,
            &item_event(
                "alice@localhost",
                &format!("{u}@localhost/r"),
                TUNE,
                "t1",
                &tune("Same"),
            ),
        )
        .await;
    }
}

const OMEMO_DEVICES: &str = "urn:xmpp:omemo:2:devices";
const OMEMO_BUNDLES: &str = "urn:xmpp:omemo:2:bundles";
const AXOLOTL_DEVICES: &str = "eu.siacs.conversations.axolotl.devicelist";

fn open_options(max: bool) -> String {
    let max = if max {
        "<field var='pubsub#max_items'><value>max</value></field>"
    } else {
        ""
    };
    format!(
        "<publish-options><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         {max}<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
    )
}

/// The OMEMO flow between two accounts with two devices each (XEP-0384 §5.3, on XEP-0163):
/// each device publishes the account's device list (`urn:xmpp:omemo:2:devices`, open) and its
/// bundle (`urn:xmpp:omemo:2:bundles`, one item per device, open); every device of both
/// accounts hears of each device list, the legacy `eu.siacs.conversations.axolotl` list too;
/// a bundle is fetched by id, also by a stranger; then an encrypted message reaches the
/// recipient's devices, a carbon copy the sender's other device (XEP-0280) and both archives
/// (XEP-0313).
#[tokio::test]
async fn omemo_device_lists_bundles_and_an_encrypted_message() {
    let server = TestServer::start_with(|c| c.archive.enabled = true).await;
    for u in ["alice", "bob", "eve"] {
        server.add_user(u, PW).await;
    }
    server.befriend("alice", "bob").await;
    let interests = [OMEMO_DEVICES, AXOLOTL_DEVICES];
    let mut a1 = online(&server, "alice", "a1", &interests).await;
    let mut a2 = online(&server, "alice", "a2", &interests).await;
    let mut b1 = online(&server, "bob", "b1", &interests).await;
    let mut b2 = online(&server, "bob", "b2", &interests).await;
    let mut eve = server.login("eve", PW, "e").await;

    // Alice's first device announces itself, then her second device adds itself: the publisher
    // gets its result and the notification, every other device the notification.
    let lists = [
        "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices>",
        "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/><device id='2'/></devices>",
    ];
    for (round, list) in lists.iter().enumerate() {
        let req = format!("d{round}");
        let (publisher, other) = if round == 0 {
            (&mut a1, &mut a2)
        } else {
            (&mut a2, &mut a1)
        };
        publisher
            .send_xml(&format!(
                "<iq type='set' id='{req}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
                 <publish node='{OMEMO_DEVICES}'><item id='current'>{list}</item></publish>{}</pubsub></iq>",
                open_options(false)
            ))
            .await
            .unwrap();
        let me = publisher.jid().unwrap().to_string();
        let mut got = [next(publisher).await, next(publisher).await];
        got.sort_by_key(|e| e.name().to_owned());
        assert_matches(&published(&req, &me, OMEMO_DEVICES, "current"), &got[0]);
        assert_matches(
            &item_event("alice@localhost", &me, OMEMO_DEVICES, "current", list),
            &got[1],
        );
        let other_jid = other.jid().unwrap().to_string();
        for (c, to) in [
            (other, other_jid.as_str()),
            (&mut b1, "bob@localhost/b1"),
            (&mut b2, "bob@localhost/b2"),
        ] {
            expect_next(
                c,
                &item_event("alice@localhost", to, OMEMO_DEVICES, "current", list),
            )
            .await;
        }
    }

    // The legacy list (XEP-0384 0.3, as Conversations still publishes it) reaches bob too.
    let legacy = "<list xmlns='eu.siacs.conversations.axolotl'><device id='1'/></list>";
    a1.send_xml(&publish("l1", AXOLOTL_DEVICES, "current", legacy))
        .await
        .unwrap();
    let mut got = [next(&mut a1).await, next(&mut a1).await];
    got.sort_by_key(|e| e.name().to_owned());
    assert_matches(
        &published("l1", "alice@localhost/a1", AXOLOTL_DEVICES, "current"),
        &got[0],
    );
    for (c, to) in [
        (&mut a2, "alice@localhost/a2"),
        (&mut b1, "bob@localhost/b1"),
        (&mut b2, "bob@localhost/b2"),
    ] {
        expect_next(
            c,
            &item_event("alice@localhost", to, AXOLOTL_DEVICES, "current", legacy),
        )
        .await;
    }

    // Bundles: one item per device, open, fetched by a contact and by a stranger.
    let bundle = "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>c3Br</spk><spks>c2ln</spks>\
                  <ik>aWs=</ik><prekeys><pk id='1'>cGsx</pk></prekeys></bundle>";
    ask(
        &mut a1,
        &format!(
            "<iq type='set' id='k1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{OMEMO_BUNDLES}'><item id='1'>{bundle}</item></publish>{}</pubsub></iq>",
            open_options(true)
        ),
        &published("k1", "alice@localhost/a1", OMEMO_BUNDLES, "1"),
    )
    .await;
    for (c, to, id) in [
        (&mut b1, "bob@localhost/b1", "f1"),
        (&mut eve, "eve@localhost/e", "f2"),
    ] {
        ask(
            c,
            &format!(
                "<iq type='get' id='{id}' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
                 <items node='{OMEMO_BUNDLES}'><item id='1'/></items></pubsub></iq>"
            ),
            &format!(
                "<iq type='result' id='{id}' from='alice@localhost' to='{to}'>\
                 <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{OMEMO_BUNDLES}'>\
                 <item id='1'>{bundle}</item></items></pubsub></iq>"
            ),
        )
        .await;
    }

    // An encrypted message: both of bob's devices, a carbon to alice's other device, archived.
    ask(
        &mut a2,
        "<iq type='set' id='c1'><enable xmlns='urn:xmpp:carbons:2'/></iq>",
        "<iq type='result' id='c1' to='alice@localhost/a2'/>",
    )
    .await;
    let encrypted = "<encrypted xmlns='urn:xmpp:omemo:2'><header sid='1'>\
                     <keys jid='bob@localhost'><key rid='3'>a2V5</key></keys></header>\
                     <payload>cGF5bG9hZA==</payload></encrypted>";
    a1.send_xml(&format!(
        "<message type='chat' id='m1' to='bob@localhost'>{encrypted}<store xmlns='urn:xmpp:hints'/></message>"
    ))
    .await
    .unwrap();
    for c in [&mut b1, &mut b2] {
        expect_next(
            c,
            &format!(
                "<message type='chat' id='m1' to='bob@localhost' from='alice@localhost/a1'>{encrypted}\
                 <store xmlns='urn:xmpp:hints'/>\
                 <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{{*}}'/></message>"
            ),
        )
        .await;
    }
    expect_next(
        &mut a2,
        &format!(
            "<message from='alice@localhost' to='alice@localhost/a2' type='chat'>\
             <sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message type='chat' id='m1' to='bob@localhost' from='alice@localhost/a1' xmlns='jabber:client'>{encrypted}\
             <store xmlns='urn:xmpp:hints'/></message>\
             </forwarded></sent></message>"
        ),
    )
    .await;
    // XEP-0313: in bob's archive.
    b1.send_xml("<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='q'/></iq>")
        .await
        .unwrap();
    let archived = next(&mut b1).await;
    assert!(
        archived
            .get_child("result", "urn:xmpp:mam:2")
            .and_then(|r| r.get_child("forwarded", "urn:xmpp:forward:0"))
            .and_then(|f| f.get_child("message", "jabber:client"))
            .and_then(|m| m.get_child("encrypted", "urn:xmpp:omemo:2"))
            .is_some(),
        "{archived:?}"
    );
}

/// XEP-0490 §4: a client marks a conversation displayed in its `urn:xmpp:mds:displayed:0` node
/// (whitelist: the account's own resources only); the account's other interested resources
/// hear of it, a contact interested in the node does not.
#[tokio::test]
async fn displayed_markers_sync_between_own_devices_only() {
    const MDS: &str = "urn:xmpp:mds:displayed:0";
    let server = server_with(&["alice", "bob"]).await;
    server.befriend("alice", "bob").await;
    let mut phone = online(&server, "alice", "phone", &[MDS]).await;
    let mut laptop = online(&server, "alice", "laptop", &[MDS]).await;
    let mut bob = online(&server, "bob", "b", &[MDS]).await;
    let displayed = format!(
        "<displayed xmlns='{MDS}'><stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='s-42'/></displayed>"
    );
    phone
        .send_xml(&format!(
            "<iq type='set' id='m1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{MDS}'><item id='bob@localhost'>{displayed}</item></publish>{}</pubsub></iq>",
            bookmarks2_options()
        ))
        .await
        .unwrap();
    let mut got = [next(&mut phone).await, next(&mut phone).await];
    got.sort_by_key(|e| e.name().to_owned());
    assert_matches(
        &published("m1", "alice@localhost/phone", MDS, "bob@localhost"),
        &got[0],
    );
    expect_next(
        &mut laptop,
        &item_event(
            "alice@localhost",
            "alice@localhost/laptop",
            MDS,
            "bob@localhost",
            &displayed,
        ),
    )
    .await;
    expect_none(&mut bob).await;
}

/// XEP-0163 §4.3.4 and XEP-0060 §6.1.7: a contact that becomes subscribed to the owner's
/// presence gets, at its online resources, the last items it is interested in.
#[tokio::test]
async fn a_new_contact_gets_the_last_items() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a", &[]).await;
    let nick = format!("<nick xmlns='{NICK}'>Alice</nick>");
    ask(
        &mut alice,
        &publish("p1", NICK, "current", &nick),
        &published("p1", "alice@localhost/a", NICK, "current"),
    )
    .await;
    let mut bob = online(&server, "bob", "b", &[NICK]).await;
    expect_none(&mut bob).await;
    bob.send_xml("<presence type='subscribe' to='alice@localhost'/>")
        .await
        .unwrap();
    // Alice approves (RFC 6121 §3.1.5); bob's roster push and her presence are skipped.
    alice
        .send_xml("<presence type='subscribed' to='bob@localhost'/>")
        .await
        .unwrap();
    loop {
        let e = next(&mut bob).await;
        if e.name() == "message" {
            assert_matches(
                &format!(
                    "<message from='alice@localhost' to='bob@localhost/b' type='headline' id='{{*}}'>\
                     <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{NICK}'>\
                     <item id='current'>{nick}</item></items></event>\
                     <delay xmlns='urn:xmpp:delay' from='alice@localhost' stamp='{{*}}'/></message>"
                ),
                &e,
            );
            break;
        }
        assert_eq!(e.name(), "iq", "{e:?}");
    }
}

/// XEP-0060 §6.1 and §6.2 on a PEP node: a stranger subscribes to an open node with a full JID
/// (the last item follows, §6.1.7), gets notifications naming its subscription (§12.3 SubID
/// header), unsubscribes, and a second unsubscribe is `<unexpected-request/>` with
/// `not-subscribed` (§6.2.3.2); another account's JID is `invalid-jid` (§6.1.3.1).
#[tokio::test]
async fn explicit_subscription_to_an_open_node() {
    const NEWS: &str = "urn:example:news";
    let server = server_with(&["alice", "eve"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut eve = server.login("eve", PW, "e").await;
    let open = open_options(true);
    let item = |id: &str, title: &str| {
        format!(
            "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{NEWS}'><item id='{title}'>{}</item></publish>{open}</pubsub></iq>",
            tune(title)
        )
    };
    ask(
        &mut alice,
        &item("p1", "first"),
        &published("p1", "alice@localhost/a", NEWS, "first"),
    )
    .await;
    ask(
        &mut eve,
        &pubsub::subscribe(Some("alice@localhost"), "s0", NEWS, "alice@localhost"),
        &pubsub_error(
            "s0",
            "eve@localhost/e",
            Some("alice@localhost"),
            "modify",
            "bad-request",
            "invalid-jid",
        ),
    )
    .await;
    eve.send_xml(&pubsub::subscribe(
        Some("alice@localhost"),
        "s1",
        NEWS,
        "eve@localhost/e",
    ))
    .await
    .unwrap();
    let mut got = [next(&mut eve).await, next(&mut eve).await];
    got.sort_by_key(|e| e.name().to_owned());
    assert_matches(
        &pubsub::subscribed(
            Some("alice@localhost"),
            "s1",
            "eve@localhost/e",
            NEWS,
            "eve@localhost/e",
        ),
        &got[0],
    );
    assert_matches(
        &item_event(
            "alice@localhost",
            "eve@localhost/e",
            NEWS,
            "first",
            &tune("first"),
        ),
        &got[1],
    );
    let subid = got[0]
        .get_child("pubsub", "http://jabber.org/protocol/pubsub")
        .and_then(|p| p.get_child("subscription", "http://jabber.org/protocol/pubsub"))
        .and_then(|s| s.attr("subid"))
        .unwrap()
        .to_owned();
    ask(
        &mut alice,
        &item("p2", "second"),
        &published("p2", "alice@localhost/a", NEWS, "second"),
    )
    .await;
    expect_next(
        &mut eve,
        &format!(
            "<message from='alice@localhost' to='eve@localhost/e' type='headline' id='{{*}}'>\
             <event xmlns='http://jabber.org/protocol/pubsub#event'><items node='{NEWS}'>\
             <item id='second'>{}</item></items></event>\
             <headers xmlns='http://jabber.org/protocol/shim'><header name='SubID'>{subid}</header></headers>\
             </message>",
            tune("second")
        ),
    )
    .await;
    let unsubscribe = |id: &str| {
        format!(
            "<iq type='set' id='{id}' to='alice@localhost'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <unsubscribe node='{NEWS}' jid='eve@localhost/e'/></pubsub></iq>"
        )
    };
    ask(
        &mut eve,
        &unsubscribe("u1"),
        "<iq type='result' id='u1' from='alice@localhost' to='eve@localhost/e'/>",
    )
    .await;
    ask(
        &mut eve,
        &unsubscribe("u2"),
        &pubsub_error(
            "u2",
            "eve@localhost/e",
            Some("alice@localhost"),
            "cancel",
            "unexpected-request",
            "not-subscribed",
        ),
    )
    .await;
    ask(
        &mut alice,
        &item("p3", "third"),
        &published("p3", "alice@localhost/a", NEWS, "third"),
    )
    .await;
    expect_none(&mut eve).await;
}

/// XEP-0402 §5.2 (`#compat-pep`): a client keeping XEP-0048 bookmarks in the `storage:bookmarks`
/// PEP node (XEP-0223) and a Bookmarks 2 client see the same rooms, both ways.
#[tokio::test]
async fn bookmarks_in_the_legacy_pep_node_are_the_same_too() {
    const LEGACY: &str = "storage:bookmarks";
    let server = server_with(&["alice"]).await;
    let mut modern = online(&server, "alice", "modern", &[BOOKMARKS]).await;
    let mut legacy = online(&server, "alice", "legacy", &[LEGACY]).await;
    let storage = "<storage xmlns='storage:bookmarks'><conference jid='orchard@muc.localhost' \
                   autojoin='true' name='The Orchard'><nick>Juliet</nick></conference></storage>";
    legacy
        .send_xml(&format!(
            "<iq type='set' id='l1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{LEGACY}'><item id='current'>{storage}</item></publish>\
             <publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='pubsub#persist_items'><value>true</value></field>\
             <field var='pubsub#access_model'><value>whitelist</value></field>\
             </x></publish-options></pubsub></iq>"
        ))
        .await
        .unwrap();
    let mut got = [next(&mut legacy).await, next(&mut legacy).await];
    got.sort_by_key(|e| e.name().to_owned());
    assert_matches(
        &published("l1", "alice@localhost/legacy", LEGACY, "current"),
        &got[0],
    );
    let conf = format!(
        "<conference xmlns='{BOOKMARKS}' name='The Orchard' autojoin='true'><nick>Juliet</nick></conference>"
    );
    expect_next(
        &mut modern,
        &item_event(
            "alice@localhost",
            "alice@localhost/modern",
            BOOKMARKS,
            "orchard@muc.localhost",
            &conf,
        ),
    )
    .await;

    // The other way: a Bookmarks 2 publication rewrites the legacy node, which notifies.
    let balcony = format!("<conference xmlns='{BOOKMARKS}' name='Balcony'/>");
    modern
        .send_xml(&format!(
            "<iq type='set' id='b1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{BOOKMARKS}'><item id='balcony@muc.localhost'>{balcony}</item></publish>{}</pubsub></iq>",
            bookmarks2_options()
        ))
        .await
        .unwrap();
    let mut got = [next(&mut modern).await, next(&mut modern).await];
    got.sort_by_key(|e| e.name().to_owned());
    assert_matches(
        &published(
            "b1",
            "alice@localhost/modern",
            BOOKMARKS,
            "balcony@muc.localhost",
        ),
        &got[0],
    );
    expect_next(
        &mut legacy,
        &item_event(
            "alice@localhost",
            "alice@localhost/legacy",
            LEGACY,
            "current",
            "<storage xmlns='storage:bookmarks'>\
             <conference name='Balcony' jid='balcony@muc.localhost'/>\
             <conference name='The Orchard' autojoin='true' jid='orchard@muc.localhost'><nick>Juliet</nick></conference>\
             </storage>",
        ),
    )
    .await;
}

/// XEP-0060 §4.1 and §8.9: affiliations come before the access model in whom a publication
/// notifies: a contact the owner made a `member` of a whitelist node hears of it, one made an
/// `outcast` of a presence node does not.
#[tokio::test]
async fn affiliations_decide_before_the_access_model() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    server.befriend("alice", "bob").await;
    server.befriend("alice", "carol").await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = online(&server, "bob", "b", &[TUNE]).await;
    let mut carol = online(&server, "carol", "c", &[TUNE]).await;
    let whitelist = "<publish-options><x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
        <field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>";
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='p1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{TUNE}'><item id='t1'>{}</item></publish>{whitelist}</pubsub></iq>",
            tune("Private")
        ),
        &published("p1", "alice@localhost/a", TUNE, "t1"),
    )
    .await;
    expect_none(&mut bob).await;
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='a1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>\
             <affiliations node='{TUNE}'><affiliation jid='bob@localhost' affiliation='member'/>\
             <affiliation jid='carol@localhost' affiliation='outcast'/></affiliations></pubsub></iq>"
        ),
        "<iq type='result' id='a1' to='alice@localhost/a'/>",
    )
    .await;
    ask(
        &mut alice,
        &publish("p2", TUNE, "t2", &tune("Members")),
        &published("p2", "alice@localhost/a", TUNE, "t2"),
    )
    .await;
    expect_next(
        &mut bob,
        &item_event(
            "alice@localhost",
            "bob@localhost/b",
            TUNE,
            "t2",
            &tune("Members"),
        ),
    )
    .await;
    // Back to the presence model: carol, an outcast, still hears nothing.
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='c1'><pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>\
             <configure node='{TUNE}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
             <field var='pubsub#access_model'><value>presence</value></field>\
             </x></configure></pubsub></iq>"
        ),
        "<iq type='result' id='c1' to='alice@localhost/a'/>",
    )
    .await;
    ask(
        &mut alice,
        &publish("p3", TUNE, "t3", &tune("Everyone")),
        &published("p3", "alice@localhost/a", TUNE, "t3"),
    )
    .await;
    expect_next(
        &mut bob,
        &item_event(
            "alice@localhost",
            "bob@localhost/b",
            TUNE,
            "t3",
            &tune("Everyone"),
        ),
    )
    .await;
    expect_none(&mut carol).await;
}
