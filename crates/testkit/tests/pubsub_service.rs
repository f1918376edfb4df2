//! The pubsub service (XEP-0060) at `pubsub.localhost` over real sockets: discovery, node
//! creation and configuration by local users, publishing and notifications to subscribers,
//! retrieval, retraction, purge, deletion, affiliations and subscriptions managed by owners, the
//! whitelist access model, and what the service refuses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::pubsub::{self, PW, ask, expect_next, expect_none, next, server_with};
use starling_testkit::client::Client;
use starling_testkit::matcher::assert_matches;
use starling_testkit::server::TestServer;
const SERVICE: &str = "pubsub.localhost";
const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";
const ENTRY: &str = "<entry xmlns='http://www.w3.org/2005/Atom'><title>Soliloquy</title></entry>";

/// An IQ to the service with a `pubsub` payload of namespace `ns` (`""`: the main one).
fn iq(kind: &str, id: &str, ns: &str, inner: &str) -> String {
    pubsub::pubsub_iq(kind, id, Some(SERVICE), ns, inner)
}

fn result(id: &str, to: &str) -> String {
    format!("<iq type='result' id='{id}' from='{SERVICE}' to='{to}'/>")
}

fn result_with(id: &str, to: &str, ns: &str, inner: &str) -> String {
    pubsub::pubsub_result(id, Some(SERVICE), to, ns, inner)
}

/// An IQ error from the service, with a `pubsub#errors` condition when `app` is not empty.
fn error(id: &str, to: &str, kind: &str, cond: &str, app: &str) -> String {
    pubsub::pubsub_error(id, to, Some(SERVICE), kind, cond, app)
}

fn publish(id: &str, node: &str, item: &str, payload: &str) -> String {
    pubsub::publish(Some(SERVICE), id, node, item, payload)
}

fn published(id: &str, to: &str, node: &str, item: &str) -> String {
    pubsub::published(Some(SERVICE), id, to, node, item)
}

fn subscribe(id: &str, node: &str, jid: &str) -> String {
    pubsub::subscribe(Some(SERVICE), id, node, jid)
}

/// The subscription as the service reports it (its subid unknown to the test).
fn subscribed(id: &str, to: &str, node: &str, jid: &str) -> String {
    pubsub::subscribed(Some(SERVICE), id, to, node, jid)
}

/// A notification from the service (`event`: the child of `<event/>`).
fn event(to: &str, event: &str) -> String {
    pubsub::event(SERVICE, to, event)
}

fn item_event(to: &str, node: &str, item: &str, payload: &str) -> String {
    pubsub::item_event(SERVICE, to, node, item, payload)
}

fn submit(form_type: &str, fields: &[(&str, &str)]) -> String {
    let mut x = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>http://jabber.org/protocol/pubsub#{form_type}</value></field>"
    );
    for (var, value) in fields {
        x.push_str(&format!(
            "<field var='{var}'><value>{value}</value></field>"
        ));
    }
    x.push_str("</x>");
    x
}

/// The service's node configuration fields in order (XEP-0060 §16.4.4), with their choices
/// (`choices`, in a form) or without (in meta-data).
fn config_fields(choices: bool, access: &str, max_items: &str, title: &str) -> String {
    let opts = |values: &[&str]| -> String {
        if !choices {
            return String::new();
        }
        values
            .iter()
            .map(|v| format!("<option><value>{v}</value></option>"))
            .collect()
    };
    format!(
        "<field type='list-single' var='pubsub#access_model' label='Who may subscribe and retrieve items'>\
         <value>{access}</value>{}</field>\
         <field type='list-single' var='pubsub#publish_model' label='Who may publish'>\
         <value>publishers</value>{}</field>\
         <field type='text-single' var='pubsub#max_items' label='Most items kept (or max)'><value>{max_items}</value></field>\
         <field type='boolean' var='pubsub#persist_items' label='Keep items'><value>1</value></field>\
         <field type='list-single' var='pubsub#send_last_published_item' label='When to send the last item'>\
         <value>on_sub</value>{}</field>\
         <field type='boolean' var='pubsub#deliver_notifications' label='Send notifications'><value>1</value></field>\
         <field type='boolean' var='pubsub#deliver_payloads' label='Send payloads with notifications'><value>1</value></field>\
         <field type='boolean' var='pubsub#notify_retract' label='Notify when items are retracted'><value>1</value></field>\
         <field type='boolean' var='pubsub#notify_delete' label='Notify when the node is deleted'><value>1</value></field>\
         <field type='text-single' var='pubsub#title' label='Title'><value>{title}</value></field>\
         <field type='text-single' var='pubsub#type' label='Payload type'><value/></field>\
         <field type='list-single' var='pubsub#notification_type' label='Message type of notifications'>\
         <value>headline</value>{}</field>",
        opts(&["open", "whitelist"]),
        opts(&["publishers", "subscribers", "open"]),
        opts(&["never", "on_sub", "on_sub_and_presence"]),
        opts(&["headline", "normal"]),
    )
}

fn config_form(access: &str, max_items: &str, title: &str) -> String {
    format!(
        "<x xmlns='jabber:x:data' type='form'><field type='hidden' var='FORM_TYPE'>\
         <value>http://jabber.org/protocol/pubsub#node_config</value></field>{}</x>",
        config_fields(true, access, max_items, title)
    )
}

/// XEP-0060 §5.1: the service's identity and features; §5.2: its nodes in disco#items (named
/// by their titles); §5.3 and §5.4: a node's identity and meta-data; §5.5: a node's items.
/// XEP-0030 §4: the server lists the service among its items.
#[tokio::test]
async fn discovery() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    ask(
        &mut bob,
        "<iq type='get' id='s1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        &format!(
            "<iq type='result' id='s1' from='localhost' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#items'><item jid='conference.localhost'/>\
             <item jid='{SERVICE}'/><item jid='upload.localhost'/></query></iq>"
        ),
    )
    .await;
    let features: String = [
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/pubsub",
        "http://jabber.org/protocol/pubsub#access-open",
        "http://jabber.org/protocol/pubsub#access-whitelist",
        "http://jabber.org/protocol/pubsub#config-node",
        "http://jabber.org/protocol/pubsub#config-node-max",
        "http://jabber.org/protocol/pubsub#create-and-configure",
        "http://jabber.org/protocol/pubsub#create-nodes",
        "http://jabber.org/protocol/pubsub#delete-items",
        "http://jabber.org/protocol/pubsub#delete-nodes",
        "http://jabber.org/protocol/pubsub#instant-nodes",
        "http://jabber.org/protocol/pubsub#item-ids",
        "http://jabber.org/protocol/pubsub#last-published",
        "http://jabber.org/protocol/pubsub#manage-subscriptions",
        "http://jabber.org/protocol/pubsub#member-affiliation",
        "http://jabber.org/protocol/pubsub#meta-data",
        "http://jabber.org/protocol/pubsub#modify-affiliations",
        "http://jabber.org/protocol/pubsub#multi-items",
        "http://jabber.org/protocol/pubsub#outcast-affiliation",
        "http://jabber.org/protocol/pubsub#persistent-items",
        "http://jabber.org/protocol/pubsub#publish",
        "http://jabber.org/protocol/pubsub#publish-options",
        "http://jabber.org/protocol/pubsub#publisher-affiliation",
        "http://jabber.org/protocol/pubsub#purge-nodes",
        "http://jabber.org/protocol/pubsub#retract-items",
        "http://jabber.org/protocol/pubsub#retrieve-affiliations",
        "http://jabber.org/protocol/pubsub#retrieve-default",
        "http://jabber.org/protocol/pubsub#retrieve-items",
        "http://jabber.org/protocol/pubsub#retrieve-subscriptions",
        "http://jabber.org/protocol/pubsub#subscribe",
    ]
    .iter()
    .map(|f| format!("<feature var='{f}'/>"))
    .collect();
    ask(
        &mut bob,
        &format!(
            "<iq type='get' id='i1' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ),
        &format!(
            "<iq type='result' id='i1' from='{SERVICE}' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='pubsub' type='service'/>{features}</query></iq>"
        ),
    )
    .await;
    // No nodes yet.
    let items = |id: &str| {
        format!(
            "<iq type='get' id='{id}' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        )
    };
    ask(
        &mut bob,
        &items("n1"),
        &format!(
            "<iq type='result' id='n1' from='{SERVICE}' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        ),
    )
    .await;

    ask(
        &mut alice,
        &iq(
            "set",
            "c1",
            "",
            &format!(
                "<create node='musings'/><configure>{}</configure>",
                submit("node_config", &[("pubsub#title", "Princely Musings")])
            ),
        ),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("set", "c2", "", "<create node='plain'/>"),
        &result("c2", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &publish("p1", "musings", "i1", ENTRY),
        &published("p1", ALICE, "musings", "i1"),
    )
    .await;
    ask(
        &mut bob,
        &items("n2"),
        &format!(
            "<iq type='result' id='n2' from='{SERVICE}' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='{SERVICE}' node='musings' name='Princely Musings'/>\
             <item jid='{SERVICE}' node='plain'/></query></iq>"
        ),
    )
    .await;
    // §5.4: the configured options, the creation date, owners, publishers, subscribers.
    ask(
        &mut bob,
        &format!(
            "<iq type='get' id='i2' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info' node='musings'/></iq>"
        ),
        &format!(
            "<iq type='result' id='i2' from='{SERVICE}' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#info' node='musings'>\
             <identity category='pubsub' type='leaf'/>\
             <feature var='http://jabber.org/protocol/pubsub'/>\
             <x xmlns='jabber:x:data' type='result'><field type='hidden' var='FORM_TYPE'>\
             <value>http://jabber.org/protocol/pubsub#meta-data</value></field>{}\
             <field type='text-single' var='pubsub#creation_date' label='Creation date'><value>{{*}}</value></field>\
             <field type='jid-multi' var='pubsub#owner' label='Node owners'><value>alice@localhost</value></field>\
             <field type='jid-multi' var='pubsub#publisher' label='Publishers to this node'/>\
             <field type='text-single' var='pubsub#num_subscribers' label='Number of subscribers to this node'>\
             <value>0</value></field></x></query></iq>",
            config_fields(false, "open", "20", "Princely Musings")
        ),
    )
    .await;
    // §5.5: the node's items, named by their ids.
    ask(
        &mut bob,
        &format!(
            "<iq type='get' id='n3' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items' node='musings'/></iq>"
        ),
        &format!(
            "<iq type='result' id='n3' from='{SERVICE}' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#items' node='musings'>\
             <item jid='{SERVICE}' name='i1'/></query></iq>"
        ),
    )
    .await;
    // XEP-0030 §3.2: a node that does not exist.
    ask(
        &mut bob,
        &format!(
            "<iq type='get' id='i3' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info' node='nothing'/></iq>"
        ),
        &format!(
            "<iq type='error' id='i3' from='{SERVICE}' to='{BOB}'><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ),
    )
    .await;
}

/// XEP-0060 §8.1.3 (create and configure), §8.1.3 errors (an existing node: `<conflict/>`),
/// §8.1.2 (an instant node gets its NodeID from the service), §8.2 (the configuration form,
/// then a submission), §8.3 (the default configuration).
#[tokio::test]
async fn create_and_configure() {
    let server = server_with(&["alice"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    ask(
        &mut alice,
        &iq("get", "d1", "owner", "<default/>"),
        &result_with(
            "d1",
            ALICE,
            "owner",
            &format!("<default>{}</default>", config_form("open", "20", "")),
        ),
    )
    .await;
    ask(
        &mut alice,
        &iq(
            "set",
            "c1",
            "",
            &format!(
                "<create node='musings'/><configure>{}</configure>",
                submit(
                    "node_config",
                    &[("pubsub#title", "Musings"), ("pubsub#max_items", "5")]
                )
            ),
        ),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("set", "c2", "", "<create node='musings'/>"),
        &error("c2", ALICE, "cancel", "conflict", ""),
    )
    .await;
    ask(
        &mut alice,
        &iq("get", "g1", "owner", "<configure node='musings'/>"),
        &result_with(
            "g1",
            ALICE,
            "owner",
            &format!(
                "<configure node='musings'>{}</configure>",
                config_form("open", "5", "Musings")
            ),
        ),
    )
    .await;
    ask(
        &mut alice,
        &iq(
            "set",
            "s1",
            "owner",
            &format!(
                "<configure node='musings'>{}</configure>",
                submit(
                    "node_config",
                    &[
                        ("pubsub#access_model", "whitelist"),
                        ("pubsub#max_items", "max")
                    ]
                )
            ),
        ),
        &result("s1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("get", "g2", "owner", "<configure node='musings'/>"),
        &result_with(
            "g2",
            ALICE,
            "owner",
            &format!(
                "<configure node='musings'>{}</configure>",
                config_form("whitelist", "max", "Musings")
            ),
        ),
    )
    .await;
    // The access models of PEP (presence, roster) do not exist here: §8.2.5.3.
    ask(
        &mut alice,
        &iq(
            "set",
            "s2",
            "owner",
            &format!(
                "<configure node='musings'>{}</configure>",
                submit("node_config", &[("pubsub#access_model", "presence")])
            ),
        ),
        &format!(
            "<iq type='error' id='s2' from='{SERVICE}' to='{ALICE}'><error type='modify'>\
             <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>invalid value for pubsub#access_model</text>\
             </error></iq>"
        ),
    )
    .await;
    // §8.1.2: an instant node.
    alice
        .send_xml(&iq("set", "c3", "", "<create/>"))
        .await
        .unwrap();
    let created = next(&mut alice).await;
    assert_matches(
        &result_with("c3", ALICE, "", "<create node='{*}'/>"),
        &created,
    );
    let node = created
        .get_child("pubsub", "http://jabber.org/protocol/pubsub")
        .and_then(|p| p.get_child("create", "http://jabber.org/protocol/pubsub"))
        .and_then(|c| c.attr("node"))
        .unwrap()
        .to_owned();
    assert!(!node.is_empty());
    // §5.7: Alice owns both.
    let mut owned = [node.as_str(), "musings"];
    owned.sort();
    ask(
        &mut alice,
        &iq("get", "a1", "", "<affiliations/>"),
        &result_with(
            "a1",
            ALICE,
            "",
            &format!(
                "<affiliations><affiliation node='{}' affiliation='owner'/>\
                 <affiliation node='{}' affiliation='owner'/></affiliations>",
                owned[0], owned[1]
            ),
        ),
    )
    .await;
}

/// XEP-0060 §6.1 (subscribe), §7.1.2 (publish: the result, and the notification to each
/// subscriber with the payload), §6.5 (retrieve all items, the `max_items` newest, one by id),
/// §6.1.7 (the last item to a new subscriber), §5.6 (one's subscriptions), §6.2 (unsubscribe:
/// no more notifications).
#[tokio::test]
async fn publish_subscribe_and_retrieve() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='musings'/>"),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut bob,
        &subscribe("s1", "musings", BOB),
        &subscribed("s1", BOB, "musings", BOB),
    )
    .await;
    // Subscribing again returns the same subscription (§6.1.6).
    ask(
        &mut bob,
        &subscribe("s2", "musings", BOB),
        &subscribed("s2", BOB, "musings", BOB),
    )
    .await;
    ask(
        &mut alice,
        &publish("p1", "musings", "one", ENTRY),
        &published("p1", ALICE, "musings", "one"),
    )
    .await;
    expect_next(&mut bob, &item_event(BOB, "musings", "one", ENTRY)).await;
    let second = "<entry xmlns='http://www.w3.org/2005/Atom'><title>Act II</title></entry>";
    ask(
        &mut alice,
        &publish("p2", "musings", "two", second),
        &published("p2", ALICE, "musings", "two"),
    )
    .await;
    expect_next(&mut bob, &item_event(BOB, "musings", "two", second)).await;
    expect_none(&mut alice).await;

    // §6.5.2: every item, newest first; §6.5.7: the newest; §6.5.8: by id.
    ask(
        &mut bob,
        &iq("get", "g1", "", "<items node='musings'/>"),
        &result_with(
            "g1",
            BOB,
            "",
            &format!(
                "<items node='musings'><item id='two'>{second}</item><item id='one'>{ENTRY}</item></items>"
            ),
        ),
    )
    .await;
    ask(
        &mut bob,
        &iq("get", "g2", "", "<items node='musings' max_items='1'/>"),
        &result_with(
            "g2",
            BOB,
            "",
            &format!("<items node='musings'><item id='two'>{second}</item></items>"),
        ),
    )
    .await;
    ask(
        &mut bob,
        &iq(
            "get",
            "g3",
            "",
            "<items node='musings'><item id='one'/></items>",
        ),
        &result_with(
            "g3",
            BOB,
            "",
            &format!("<items node='musings'><item id='one'>{ENTRY}</item></items>"),
        ),
    )
    .await;
    // §6.5.9.11: no such node.
    ask(
        &mut bob,
        &iq("get", "g4", "", "<items node='nothing'/>"),
        &error("g4", BOB, "cancel", "item-not-found", ""),
    )
    .await;

    // §6.1.7: a new subscriber gets the last item (the default is on_sub here).
    let mut carol = server.login("carol", PW, "c").await;
    let carol_jid = "carol@localhost/c";
    carol
        .send_xml(&subscribe("s3", "musings", carol_jid))
        .await
        .unwrap();
    expect_next(
        &mut carol,
        &subscribed("s3", carol_jid, "musings", carol_jid),
    )
    .await;
    expect_next(&mut carol, &item_event(carol_jid, "musings", "two", second)).await;

    // §5.6: Bob's subscriptions at the service.
    ask(
        &mut bob,
        &iq("get", "l1", "", "<subscriptions/>"),
        &result_with(
            "l1",
            BOB,
            "",
            &format!(
                "<subscriptions><subscription node='musings' jid='{BOB}' subid='{{*}}' subscription='subscribed'/></subscriptions>"
            ),
        ),
    )
    .await;
    // §6.2: unsubscribed, Bob hears nothing more; unsubscribing again is an error (§6.2.3.2).
    ask(
        &mut bob,
        &iq(
            "set",
            "u1",
            "",
            &format!("<unsubscribe node='musings' jid='{BOB}'/>"),
        ),
        &result("u1", BOB),
    )
    .await;
    ask(
        &mut bob,
        &iq(
            "set",
            "u2",
            "",
            &format!("<unsubscribe node='musings' jid='{BOB}'/>"),
        ),
        &error("u2", BOB, "cancel", "unexpected-request", "not-subscribed"),
    )
    .await;
    ask(
        &mut alice,
        &publish("p3", "musings", "three", ENTRY),
        &published("p3", ALICE, "musings", "three"),
    )
    .await;
    expect_next(
        &mut carol,
        &item_event(carol_jid, "musings", "three", ENTRY),
    )
    .await;
    expect_none(&mut bob).await;
}

/// XEP-0060 §6.1: a subscription of a bare JID; the notification goes to the bare JID, which
/// the server hands to every available resource (a headline, RFC 6121 §8.5.2.1.1). §7.1.5:
/// publish-options the node does not meet are refused with `precondition-not-met`.
#[tokio::test]
async fn bare_jid_subscription_and_publish_options() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob1 = server.online("bob", PW, "b1").await;
    let mut bob2 = server.online("bob", PW, "b2").await;
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='news'/>"),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut bob1,
        &subscribe("s1", "news", "bob@localhost"),
        &subscribed("s1", "bob@localhost/b1", "news", "bob@localhost"),
    )
    .await;
    let with_options = |id: &str, access: &str| {
        iq(
            "set",
            id,
            "",
            &format!(
                "<publish node='news'><item id='n1'>{ENTRY}</item></publish>\
                 <publish-options>{}</publish-options>",
                submit("publish-options", &[("pubsub#access_model", access)])
            ),
        )
    };
    ask(
        &mut alice,
        &with_options("p1", "whitelist"),
        &error("p1", ALICE, "cancel", "conflict", "precondition-not-met"),
    )
    .await;
    ask(
        &mut alice,
        &with_options("p2", "open"),
        &published("p2", ALICE, "news", "n1"),
    )
    .await;
    for bob in [&mut bob1, &mut bob2] {
        expect_next(bob, &item_event("bob@localhost", "news", "n1", ENTRY)).await;
    }
}

/// XEP-0060 §7.2 (retract: the publisher's result, the subscribers' `<retract/>`), §8.5
/// (purge: one `<purge/>` notification), §8.4 (delete: the `<delete/>` notification, then the
/// node is gone).
#[tokio::test]
async fn retract_purge_delete() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='musings'/>"),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut bob,
        &subscribe("s1", "musings", BOB),
        &subscribed("s1", BOB, "musings", BOB),
    )
    .await;
    for (i, id) in ["one", "two"].iter().enumerate() {
        let req = format!("p{i}");
        ask(
            &mut alice,
            &publish(&req, "musings", id, ENTRY),
            &published(&req, ALICE, "musings", id),
        )
        .await;
        expect_next(&mut bob, &item_event(BOB, "musings", id, ENTRY)).await;
    }
    ask(
        &mut alice,
        &iq(
            "set",
            "r1",
            "",
            "<retract node='musings'><item id='one'/></retract>",
        ),
        &result("r1", ALICE),
    )
    .await;
    expect_next(
        &mut bob,
        &event(BOB, "<items node='musings'><retract id='one'/></items>"),
    )
    .await;
    // §7.2.3.5: no such item.
    ask(
        &mut alice,
        &iq(
            "set",
            "r2",
            "",
            "<retract node='musings'><item id='one'/></retract>",
        ),
        &error("r2", ALICE, "cancel", "item-not-found", ""),
    )
    .await;
    ask(
        &mut alice,
        &iq("set", "x1", "owner", "<purge node='musings'/>"),
        &result("x1", ALICE),
    )
    .await;
    expect_next(&mut bob, &event(BOB, "<purge node='musings'/>")).await;
    ask(
        &mut bob,
        &iq("get", "g1", "", "<items node='musings'/>"),
        &result_with("g1", BOB, "", "<items node='musings'/>"),
    )
    .await;
    ask(
        &mut alice,
        &iq("set", "x2", "owner", "<delete node='musings'/>"),
        &result("x2", ALICE),
    )
    .await;
    expect_next(&mut bob, &event(BOB, "<delete node='musings'/>")).await;
    // §8.4.3.2: deleting it again.
    ask(
        &mut alice,
        &iq("set", "x3", "owner", "<delete node='musings'/>"),
        &error("x3", ALICE, "cancel", "item-not-found", ""),
    )
    .await;
    ask(
        &mut bob,
        &iq("get", "g2", "", "<items node='musings'/>"),
        &error("g2", BOB, "cancel", "item-not-found", ""),
    )
    .await;
}

/// XEP-0060 §8.2.3.2, §8.4.3.1, §8.5.3.2, §8.9.1.3 (owner operations by a non-owner:
/// `<forbidden/>`), §7.1.3.1 (publishing without being a publisher), §7.2.3.1 (retracting),
/// §7.1.3.3 and §8.2.3.5 (a node that does not exist: `<item-not-found/>`).
#[tokio::test]
async fn non_owners_are_refused() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='musings'/>"),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &publish("p1", "musings", "one", ENTRY),
        &published("p1", ALICE, "musings", "one"),
    )
    .await;
    for (id, request) in [
        (
            "o1",
            iq("get", "o1", "owner", "<configure node='musings'/>"),
        ),
        ("o2", iq("set", "o2", "owner", "<delete node='musings'/>")),
        ("o3", iq("set", "o3", "owner", "<purge node='musings'/>")),
        (
            "o4",
            iq("get", "o4", "owner", "<affiliations node='musings'/>"),
        ),
        (
            "o5",
            iq(
                "set",
                "o5",
                "owner",
                "<affiliations node='musings'><affiliation jid='bob@localhost' affiliation='owner'/></affiliations>",
            ),
        ),
        (
            "o6",
            iq("get", "o6", "owner", "<subscriptions node='musings'/>"),
        ),
        ("o7", publish("o7", "musings", "two", ENTRY)),
        (
            "o8",
            iq(
                "set",
                "o8",
                "",
                "<retract node='musings'><item id='one'/></retract>",
            ),
        ),
    ] {
        ask(&mut bob, &request, &error(id, BOB, "auth", "forbidden", "")).await;
    }
    // The node is as it was.
    ask(
        &mut bob,
        &iq("get", "g1", "", "<items node='musings'/>"),
        &result_with(
            "g1",
            BOB,
            "",
            &format!("<items node='musings'><item id='one'>{ENTRY}</item></items>"),
        ),
    )
    .await;
    ask(
        &mut bob,
        &iq("set", "c2", "", "<create node='musings'/>"),
        &error("c2", BOB, "cancel", "conflict", ""),
    )
    .await;
    ask(
        &mut alice,
        &publish("p2", "nothing", "one", ENTRY),
        &error("p2", ALICE, "cancel", "item-not-found", ""),
    )
    .await;
    ask(
        &mut alice,
        &iq("get", "o9", "owner", "<configure node='nothing'/>"),
        &error("o9", ALICE, "cancel", "item-not-found", ""),
    )
    .await;
    // §6.1.3.1: subscribing someone else.
    ask(
        &mut bob,
        &subscribe("s1", "musings", "alice@localhost"),
        &error("s1", BOB, "modify", "bad-request", "invalid-jid"),
    )
    .await;
}

/// XEP-0060 §4.5 and §6.1.3.4 (a whitelist node refuses a subscriber without affiliation:
/// `<not-allowed/>` with `closed-node`; §6.5.9 the same for its items), §8.9 (the owner lists
/// and sets affiliations: a member may subscribe; an outcast's subscription ends and it is
/// refused with `<forbidden/>`, §6.1.3.8), §8.8 (the owner lists and sets subscriptions), and a
/// node never loses its last owner (§8.9.2.5: `<not-acceptable/>`).
#[tokio::test]
async fn whitelist_and_affiliations() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    let mut carol = server.login("carol", PW, "c").await;
    let carol_jid = "carol@localhost/c";
    ask(
        &mut alice,
        &iq(
            "set",
            "c1",
            "",
            &format!(
                "<create node='secret'/><configure>{}</configure>",
                submit("node_config", &[("pubsub#access_model", "whitelist")])
            ),
        ),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut bob,
        &subscribe("s1", "secret", BOB),
        &error("s1", BOB, "cancel", "not-allowed", "closed-node"),
    )
    .await;
    ask(
        &mut bob,
        &iq("get", "g1", "", "<items node='secret'/>"),
        &error("g1", BOB, "cancel", "not-allowed", "closed-node"),
    )
    .await;
    // Not even listed to him (§5.2).
    ask(
        &mut bob,
        &format!(
            "<iq type='get' id='n1' to='{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        ),
        &format!(
            "<iq type='result' id='n1' from='{SERVICE}' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        ),
    )
    .await;

    ask(
        &mut alice,
        &iq(
            "set",
            "a1",
            "owner",
            "<affiliations node='secret'>\
             <affiliation jid='bob@localhost' affiliation='member'/>\
             <affiliation jid='carol@localhost' affiliation='publisher'/></affiliations>",
        ),
        &result("a1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("get", "a2", "owner", "<affiliations node='secret'/>"),
        &result_with(
            "a2",
            ALICE,
            "owner",
            "<affiliations node='secret'>\
             <affiliation jid='alice@localhost' affiliation='owner'/>\
             <affiliation jid='bob@localhost' affiliation='member'/>\
             <affiliation jid='carol@localhost' affiliation='publisher'/></affiliations>",
        ),
    )
    .await;
    ask(
        &mut bob,
        &subscribe("s2", "secret", BOB),
        &subscribed("s2", BOB, "secret", BOB),
    )
    .await;
    // A publisher publishes; the member hears of it.
    ask(
        &mut carol,
        &publish("p1", "secret", "x", ENTRY),
        &published("p1", carol_jid, "secret", "x"),
    )
    .await;
    expect_next(&mut bob, &item_event(BOB, "secret", "x", ENTRY)).await;
    // §5.7: Bob's own affiliations.
    ask(
        &mut bob,
        &iq("get", "a3", "", "<affiliations/>"),
        &result_with(
            "a3",
            BOB,
            "",
            "<affiliations><affiliation node='secret' affiliation='member'/></affiliations>",
        ),
    )
    .await;

    // §8.8.2: the owner subscribes Carol; §8.8.1 lists both.
    ask(
        &mut alice,
        &iq(
            "set",
            "m1",
            "owner",
            &format!(
                "<subscriptions node='secret'><subscription jid='{carol_jid}' subscription='subscribed'/></subscriptions>"
            ),
        ),
        &result("m1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("get", "m2", "owner", "<subscriptions node='secret'/>"),
        &result_with(
            "m2",
            ALICE,
            "owner",
            &format!(
                "<subscriptions node='secret'>\
                 <subscription jid='{BOB}' subid='{{*}}' subscription='subscribed'/>\
                 <subscription jid='{carol_jid}' subid='{{*}}' subscription='subscribed'/></subscriptions>"
            ),
        ),
    )
    .await;

    // An outcast's subscription ends; it may not subscribe again.
    ask(
        &mut alice,
        &iq(
            "set",
            "a4",
            "owner",
            "<affiliations node='secret'><affiliation jid='bob@localhost' affiliation='outcast'/></affiliations>",
        ),
        &result("a4", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("get", "m3", "owner", "<subscriptions node='secret'/>"),
        &result_with(
            "m3",
            ALICE,
            "owner",
            &format!(
                "<subscriptions node='secret'>\
                 <subscription jid='{carol_jid}' subid='{{*}}' subscription='subscribed'/></subscriptions>"
            ),
        ),
    )
    .await;
    ask(
        &mut bob,
        &subscribe("s3", "secret", BOB),
        &error("s3", BOB, "auth", "forbidden", ""),
    )
    .await;
    ask(
        &mut alice,
        &publish("p2", "secret", "y", ENTRY),
        &published("p2", ALICE, "secret", "y"),
    )
    .await;
    expect_next(&mut carol, &item_event(carol_jid, "secret", "y", ENTRY)).await;
    expect_none(&mut bob).await;

    // The last owner stays one; handing ownership over is fine.
    ask(
        &mut alice,
        &iq(
            "set",
            "a5",
            "owner",
            "<affiliations node='secret'><affiliation jid='alice@localhost' affiliation='none'/></affiliations>",
        ),
        &format!(
            "<iq type='error' id='a5' from='{SERVICE}' to='{ALICE}'><error type='modify'>\
             <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>a node keeps at least one owner</text>\
             </error></iq>"
        ),
    )
    .await;
    ask(
        &mut alice,
        &iq(
            "set",
            "a6",
            "owner",
            "<affiliations node='secret'>\
             <affiliation jid='alice@localhost' affiliation='none'/>\
             <affiliation jid='carol@localhost' affiliation='owner'/></affiliations>",
        ),
        &result("a6", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("get", "a7", "owner", "<affiliations node='secret'/>"),
        &error("a7", ALICE, "auth", "forbidden", ""),
    )
    .await;
}

/// A deleted account (XEP-0077 §3.2) leaves nothing behind at the service: a node it was the
/// last owner of is deleted (its subscribers hear of it, XEP-0060 §8.4.2), a node it co-owned
/// keeps its other owner, its subscriptions end; the account created again under the name owns
/// nothing (XEP-0060 §5.7).
#[tokio::test]
async fn deleted_accounts_leave_nothing_behind() {
    let server = server_with(&["alice", "bob", "carol"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    let mut carol = server.login("carol", PW, "c").await;
    let carol_jid = "carol@localhost/c";
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='mine'/>"),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("set", "c2", "", "<create node='shared'/>"),
        &result("c2", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq(
            "set",
            "a1",
            "owner",
            "<affiliations node='shared'><affiliation jid='carol@localhost' affiliation='owner'/></affiliations>",
        ),
        &result("a1", ALICE),
    )
    .await;
    ask(
        &mut carol,
        &iq("set", "c3", "", "<create node='theirs'/>"),
        &result("c3", carol_jid),
    )
    .await;
    ask(
        &mut alice,
        &subscribe("s1", "theirs", "alice@localhost"),
        &subscribed("s1", ALICE, "theirs", "alice@localhost"),
    )
    .await;
    ask(
        &mut bob,
        &subscribe("s2", "mine", BOB),
        &subscribed("s2", BOB, "mine", BOB),
    )
    .await;

    alice
        .send_xml("<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
        .await
        .unwrap();
    alice
        .expect(&format!("<iq type='result' id='rm' to='{ALICE}'/>"))
        .await
        .unwrap();
    alice.expect_stream_error("not-authorized").await.unwrap();
    expect_next(&mut bob, &event(BOB, "<delete node='mine'/>")).await;
    ask(
        &mut carol,
        &iq("get", "a2", "owner", "<affiliations node='shared'/>"),
        &result_with(
            "a2",
            carol_jid,
            "owner",
            "<affiliations node='shared'><affiliation jid='carol@localhost' affiliation='owner'/></affiliations>",
        ),
    )
    .await;
    ask(
        &mut carol,
        &iq("get", "m1", "owner", "<subscriptions node='theirs'/>"),
        &result_with("m1", carol_jid, "owner", "<subscriptions node='theirs'/>"),
    )
    .await;

    server.add_user("alice", PW).await;
    let mut again = server.login("alice", PW, "a").await;
    ask(
        &mut again,
        &iq("get", "a3", "", "<affiliations/>"),
        &result_with("a3", ALICE, "", "<affiliations/>"),
    )
    .await;
    ask(
        &mut again,
        &iq("get", "l1", "", "<subscriptions/>"),
        &result_with("l1", ALICE, "", "<subscriptions/>"),
    )
    .await;
}

/// XEP-0060 §13.4: a notification that bounces with an error of type `cancel` (here the
/// router's `<remote-server-not-found/>` for a JID at no domain of this server, RFC 6120
/// §8.3.3.16) ends that JID's subscription; the local subscriber keeps its own.
#[tokio::test]
async fn bounced_notifications_end_subscriptions() {
    let server = server_with(&["alice", "bob"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    let mut bob = server.login("bob", PW, "b").await;
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='news'/>"),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq(
            "set",
            "m1",
            "owner",
            "<subscriptions node='news'>\
             <subscription jid='juliet@capulet.example' subscription='subscribed'/></subscriptions>",
        ),
        &result("m1", ALICE),
    )
    .await;
    ask(
        &mut bob,
        &subscribe("s1", "news", BOB),
        &subscribed("s1", BOB, "news", BOB),
    )
    .await;
    ask(
        &mut alice,
        &publish("p1", "news", "n1", ENTRY),
        &published("p1", ALICE, "news", "n1"),
    )
    .await;
    expect_next(&mut bob, &item_event(BOB, "news", "n1", ENTRY)).await;
    ask(
        &mut alice,
        &iq("get", "m2", "owner", "<subscriptions node='news'/>"),
        &result_with(
            "m2",
            ALICE,
            "owner",
            &format!(
                "<subscriptions node='news'>\
                 <subscription jid='{BOB}' subid='{{*}}' subscription='subscribed'/></subscriptions>"
            ),
        ),
    )
    .await;
}

/// Limits: beyond `max_nodes` the service refuses a node with `<policy-violation/>`; an item
/// above `max_item_size` is `<not-acceptable/>` with `payload-too-big` (XEP-0060 §7.1.3.4).
#[tokio::test]
async fn limits() {
    let server = TestServer::start_with(|c| {
        c.pubsub.max_nodes = 1;
        c.pubsub.max_item_size = 1024;
    })
    .await;
    server.add_user("alice", PW).await;
    let mut alice = server.login("alice", PW, "a").await;
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='one'/>"),
        &result("c1", ALICE),
    )
    .await;
    ask(
        &mut alice,
        &iq("set", "c2", "", "<create node='two'/>"),
        &format!(
            "<iq type='error' id='c2' from='{SERVICE}' to='{ALICE}'><error type='modify'>\
             <policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>this service may have at most 1 nodes</text>\
             </error></iq>"
        ),
    )
    .await;
    let big = format!(
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>{}</title></entry>",
        "x".repeat(2000)
    );
    ask(
        &mut alice,
        &publish("p1", "one", "big", &big),
        &format!(
            "<iq type='error' id='p1' from='{SERVICE}' to='{ALICE}'><error type='modify'>\
             <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>items are limited to 1024 bytes</text>\
             <payload-too-big xmlns='http://jabber.org/protocol/pubsub#errors'/></error></iq>"
        ),
    )
    .await;
}

/// Guests of an anonymous host may not create nodes (XEP-0060 §8.1.3: `<forbidden/>`), but may
/// subscribe to open ones.
#[tokio::test]
async fn guests_do_not_create_nodes() {
    let server = TestServer::start_with(|c| {
        c.hosts.push(starling_config::HostConfig {
            domain: "guest.localhost".into(),
            anonymous: true,
            ..Default::default()
        });
    })
    .await;
    server.add_user("alice", PW).await;
    let mut alice = server.login("alice", PW, "a").await;
    ask(
        &mut alice,
        &iq("set", "c1", "", "<create node='open'/>"),
        &result("c1", ALICE),
    )
    .await;
    // RFC 4505 over RFC 6120 §6.4.2, then a resource of the server's choosing.
    let mut guest = Client::connect(server.starttls_addr).await.unwrap();
    guest.open_stream("guest.localhost").await.unwrap();
    guest.starttls("guest.localhost").await.unwrap();
    guest
        .send_xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'>=</auth>")
        .await
        .unwrap();
    guest
        .expect("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    guest.open_stream("guest.localhost").await.unwrap();
    let guest_jid = guest.bind(None).await.unwrap().to_string();
    ask(
        &mut guest,
        &iq("set", "c2", "", "<create node='mine'/>"),
        &error("c2", &guest_jid, "auth", "forbidden", ""),
    )
    .await;
    ask(
        &mut guest,
        &subscribe("s1", "open", &guest_jid),
        &subscribed("s1", &guest_jid, "open", &guest_jid),
    )
    .await;
}

/// RFC 6120 §8.4: an IQ the service does not handle, or sent to a JID at its domain other than
/// the domain, is `<service-unavailable/>`; a message too; presence is ignored. XEP-0060 §6.1.3
/// subscription options and default subscription options are not implemented (§14).
#[tokio::test]
async fn what_the_service_refuses() {
    let server = server_with(&["bob"]).await;
    let mut bob = server.login("bob", PW, "b").await;
    let unavailable = |name: &str, id: &str, from: &str, kind: &str| {
        format!(
            "<{name} type='error' id='{id}' from='{from}' to='{BOB}'><error type='{kind}'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></{name}>"
        )
    };
    ask(
        &mut bob,
        &format!("<iq type='get' id='v1' to='{SERVICE}'><query xmlns='jabber:iq:version'/></iq>"),
        &unavailable("iq", "v1", SERVICE, "cancel"),
    )
    .await;
    ask(
        &mut bob,
        &format!(
            "<iq type='get' id='v2' to='node@{SERVICE}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ),
        &unavailable("iq", "v2", &format!("node@{SERVICE}"), "cancel"),
    )
    .await;
    ask(
        &mut bob,
        &format!("<message type='chat' id='m1' to='{SERVICE}'><body>hello</body></message>"),
        &unavailable("message", "m1", SERVICE, "cancel"),
    )
    .await;
    bob.send_xml(&format!("<presence to='{SERVICE}'/>"))
        .await
        .unwrap();
    bob.send_xml(&format!("<presence type='subscribe' to='{SERVICE}'/>"))
        .await
        .unwrap();
    expect_none(&mut bob).await;
    ask(
        &mut bob,
        &iq("get", "o1", "", "<options node='x' jid='bob@localhost'/>"),
        &format!(
            "<iq type='error' id='o1' from='{SERVICE}' to='{BOB}'><error type='cancel'>\
             <feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <unsupported xmlns='http://jabber.org/protocol/pubsub#errors' feature='subscription-options'/>\
             </error></iq>"
        ),
    )
    .await;
}

/// `[pubsub] enabled = false`: no service, so `pubsub.localhost` is no domain of this server
/// (RFC 6120 §8.3.3.16 `<remote-server-not-found/>` until federation), and the server lists no
/// services (XEP-0030 §4; the conference service is off too, for the list to be empty).
#[tokio::test]
async fn the_service_can_be_turned_off() {
    let server = TestServer::start_with(|c| {
        c.pubsub.enabled = false;
        c.muc.enabled = false;
        c.upload.enabled = false;
    })
    .await;
    server.add_user("bob", PW).await;
    let mut bob = server.login("bob", PW, "b").await;
    ask(
        &mut bob,
        &iq("set", "c1", "", "<create node='x'/>"),
        &format!(
            "<iq type='error' id='c1' from='{SERVICE}' to='{BOB}'><error type='cancel'>\
             <remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ),
    )
    .await;
    ask(
        &mut bob,
        "<iq type='get' id='s1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
        &format!(
            "<iq type='result' id='s1' from='localhost' to='{BOB}'>\
             <query xmlns='http://jabber.org/protocol/disco#items'/></iq>"
        ),
    )
    .await;
}
