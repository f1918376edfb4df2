//! What the pubsub tests (`pep.rs`, XEP-0163; `pubsub_service.rs`, XEP-0060) share: a server
//! with users, waiting for the next stanza that is not presence, and the XEP-0060 stanzas both
//! send and expect. A service address of `None` is the sender's own PEP service (XEP-0163 §3:
//! requests without `to`, answers without `from`).

use std::time::Duration;

use starling_proto::Element;
use starling_testkit::client::Client;
use starling_testkit::matcher::assert_matches;
use starling_testkit::server::TestServer;

/// Every test user's password.
pub const PW: &str = "pw";

/// A server with the accounts `users` at `localhost`.
pub async fn server_with(users: &[&str]) -> TestServer {
    let server = TestServer::start().await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

/// The next stanza that is not presence.
pub async fn next(c: &mut Client) -> Element {
    loop {
        let e = c.recv_element().await.unwrap();
        if e.name() != "presence" {
            return e;
        }
    }
}

pub async fn expect_next(c: &mut Client, expected: &str) {
    let e = next(c).await;
    assert_matches(expected, &e);
}

/// Nothing but presence for a while.
pub async fn expect_none(c: &mut Client) {
    while let Ok(e) = tokio::time::timeout(Duration::from_millis(300), c.recv_element()).await {
        let e = e.unwrap();
        assert_eq!(e.name(), "presence", "unexpected {e:?}");
    }
}

pub async fn ask(c: &mut Client, request: &str, answer: &str) {
    c.send_xml(request).await.unwrap();
    expect_next(c, answer).await;
}

/// The pubsub namespace `ns`: `""` is the main one, anything else `pubsub#{ns}`.
fn pubsub_ns(ns: &str) -> String {
    if ns.is_empty() {
        "http://jabber.org/protocol/pubsub".to_owned()
    } else {
        format!("http://jabber.org/protocol/pubsub#{ns}")
    }
}

/// ` {name}='{value}'`, or nothing without a value.
fn opt_attr(name: &str, value: Option<&str>) -> String {
    value.map(|v| format!(" {name}='{v}'")).unwrap_or_default()
}

/// An IQ of type `kind` with a `<pubsub/>` payload in namespace `ns` (see [`pubsub_ns`]) to
/// the service `to`.
pub fn pubsub_iq(kind: &str, id: &str, to: Option<&str>, ns: &str, inner: &str) -> String {
    let (to, ns) = (opt_attr("to", to), pubsub_ns(ns));
    format!("<iq type='{kind}' id='{id}'{to}><pubsub xmlns='{ns}'>{inner}</pubsub></iq>")
}

/// A result with a `<pubsub/>` payload in namespace `ns` from the service `from`.
pub fn pubsub_result(id: &str, from: Option<&str>, to: &str, ns: &str, inner: &str) -> String {
    let (from, ns) = (opt_attr("from", from), pubsub_ns(ns));
    format!(
        "<iq type='result' id='{id}'{from} to='{to}'><pubsub xmlns='{ns}'>{inner}</pubsub></iq>"
    )
}

/// An IQ error from the service `from`, with a `pubsub#errors` condition when `app` is not
/// empty (XEP-0060 §14).
pub fn pubsub_error(
    id: &str,
    to: &str,
    from: Option<&str>,
    kind: &str,
    cond: &str,
    app: &str,
) -> String {
    let from = opt_attr("from", from);
    let app = if app.is_empty() {
        String::new()
    } else {
        format!("<{app} xmlns='http://jabber.org/protocol/pubsub#errors'/>")
    };
    format!(
        "<iq type='error' id='{id}'{from} to='{to}'><error type='{kind}'>\
         <{cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>{app}</error></iq>"
    )
}

/// XEP-0060 §7.1.1: one item published to `node` at the service `to`.
pub fn publish(to: Option<&str>, id: &str, node: &str, item: &str, payload: &str) -> String {
    let publish = format!("<publish node='{node}'><item id='{item}'>{payload}</item></publish>");
    pubsub_iq("set", id, to, "", &publish)
}

/// XEP-0060 §7.1.2: the publish result naming the item.
pub fn published(from: Option<&str>, id: &str, to: &str, node: &str, item: &str) -> String {
    let publish = format!("<publish node='{node}'><item id='{item}'/></publish>");
    pubsub_result(id, from, to, "", &publish)
}

/// XEP-0060 §6.1.1: `jid` subscribes to `node` at the service `to`.
pub fn subscribe(to: Option<&str>, id: &str, node: &str, jid: &str) -> String {
    pubsub_iq(
        "set",
        id,
        to,
        "",
        &format!("<subscribe node='{node}' jid='{jid}'/>"),
    )
}

/// XEP-0060 §6.1.2: the subscription as the service reports it (its subid unknown to the test).
pub fn subscribed(from: Option<&str>, id: &str, to: &str, node: &str, jid: &str) -> String {
    let subscription = format!(
        "<subscription node='{node}' jid='{jid}' subid='{{*}}' subscription='subscribed'/>"
    );
    pubsub_result(id, from, to, "", &subscription)
}

/// A notification (`event`: the child of `<event/>`, XEP-0060 §7.1.2.1).
pub fn event(from: &str, to: &str, event: &str) -> String {
    format!(
        "<message from='{from}' to='{to}' type='headline' id='{{*}}'>\
         <event xmlns='http://jabber.org/protocol/pubsub#event'>{event}</event></message>"
    )
}

/// The notification of one item with its payload (XEP-0060 §7.1.2.1).
pub fn item_event(from: &str, to: &str, node: &str, item: &str, payload: &str) -> String {
    let items = format!("<items node='{node}'><item id='{item}'>{payload}</item></items>");
    event(from, to, &items)
}
