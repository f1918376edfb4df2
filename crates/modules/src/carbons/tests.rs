//! The rules of XEP-0280 §6.1 one by one, the wrapper of §7/§8, and the per-session state.
#![allow(clippy::unwrap_used)]

use super::*;

fn message(ty: Option<&str>) -> Element {
    Element::new("message", ns::CLIENT)
        .with_attr("from", "juliet@capulet.example/balcony")
        .with_attr("to", "romeo@montague.example/garden")
        .with_opt_attr("type", ty)
}

fn body() -> Element {
    Element::new("body", ns::CLIENT).with_text("hi")
}

fn el(name: &str, ns: &str) -> Element {
    Element::new(name, ns)
}

use Direction::{Received, Sent};
use Eligibility::{IfReplyToEligible, No, Yes};

/// §6.1, each rule in both directions where the direction does not matter.
#[test]
fn recommended_rules() {
    let cases: Vec<(Element, Eligibility, &str)> = vec![
        (message(Some("chat")), Yes, "chat, even empty"),
        (message(Some("chat")).with_child(body()), Yes, "chat"),
        (
            message(Some("normal")).with_child(body()),
            Yes,
            "normal with a body",
        ),
        (message(None).with_child(body()), Yes, "no type is normal"),
        (
            message(Some("x-new")).with_child(body()),
            Yes,
            "an unknown type is normal",
        ),
        (message(Some("normal")), No, "normal without a body"),
        (message(None), No, "nothing at all"),
        (
            message(None).with_child(el("x", "urn:example:other")),
            No,
            "no IM payload",
        ),
        // XEP-0085, XEP-0184, XEP-0333 payloads, whatever the type.
        (
            message(None).with_child(el("composing", ns::CHATSTATES)),
            Yes,
            "chat state",
        ),
        (
            message(None).with_child(el("received", ns::RECEIPTS).with_attr("id", "m1")),
            Yes,
            "receipt",
        ),
        (
            message(None).with_child(el("request", ns::RECEIPTS)),
            Yes,
            "receipt request",
        ),
        (
            message(None).with_child(el("displayed", ns::MARKERS).with_attr("id", "m1")),
            Yes,
            "chat marker",
        ),
        // XEP-0384: a body-less OMEMO message.
        (
            message(None).with_child(el("encrypted", "eu.siacs.conversations.axolotl")),
            Yes,
            "OMEMO 0.3",
        ),
        (
            message(None).with_child(el("encrypted", "urn:xmpp:omemo:2")),
            Yes,
            "OMEMO 2",
        ),
        (message(Some("error")), IfReplyToEligible, "error"),
        (
            message(Some("error")).with_child(body()),
            IfReplyToEligible,
            "error, whatever it carries",
        ),
        (
            message(Some("groupchat")).with_child(body()),
            No,
            "groupchat",
        ),
        (
            message(Some("groupchat")).with_child(el("composing", ns::CHATSTATES)),
            No,
            "groupchat chat state",
        ),
        (message(Some("headline")).with_child(body()), No, "headline"),
        // §9, XEP-0334 §4.3.
        (
            message(Some("chat"))
                .with_child(body())
                .with_child(el("private", NS)),
            No,
            "private",
        ),
        (
            message(Some("chat"))
                .with_child(body())
                .with_child(el("no-copy", ns::HINTS)),
            No,
            "no-copy",
        ),
        (
            message(Some("error")).with_child(el("private", NS)),
            No,
            "private error",
        ),
        // A carbon, or an archive result, is never copied again.
        (
            message(Some("chat")).with_child(el("received", NS)),
            No,
            "a received carbon",
        ),
        (
            message(Some("chat"))
                .with_child(body())
                .with_child(el("sent", NS)),
            No,
            "a sent carbon",
        ),
        (
            message(None).with_child(el("result", "urn:xmpp:mam:2")),
            No,
            "an archive result",
        ),
        // XEP-0249 and XEP-0045 invitations, even without a body.
        (
            message(None).with_child(el("x", NS_CONFERENCE).with_attr("jid", "room@muc")),
            Yes,
            "direct invitation",
        ),
        (
            message(None).with_child(el("x", NS_MUC_USER).with_child(el("invite", NS_MUC_USER))),
            Yes,
            "mediated invitation",
        ),
        (
            message(Some("groupchat")).with_child(el("x", NS_CONFERENCE)),
            No,
            "groupchat invitation",
        ),
    ];
    for (m, want, what) in cases {
        for d in [Sent, Received] {
            assert_eq!(eligibility(&m, d), want, "{what} ({d:?}): {m}");
        }
    }
}

/// §6.1's MUC rules: a private message from an occupant (from a full JID) is not copied, one to
/// an occupant (to a full JID) is; a mediated invitation is copied either way.
#[test]
fn muc_private_messages() {
    let x = || el("x", NS_MUC_USER);
    let pm_in = Element::new("message", ns::CLIENT)
        .with_attr("from", "room@muc.example/nick")
        .with_attr("to", "romeo@montague.example/garden")
        .with_attr("type", "chat")
        .with_child(body())
        .with_child(x());
    assert_eq!(eligibility(&pm_in, Received), No);
    let pm_out = Element::new("message", ns::CLIENT)
        .with_attr("from", "romeo@montague.example/garden")
        .with_attr("to", "room@muc.example/nick")
        .with_child(x());
    assert_eq!(eligibility(&pm_out, Sent), Yes, "even without a body");
    // Not from a full JID: the usual rules.
    let from_room = Element::new("message", ns::CLIENT)
        .with_attr("from", "room@muc.example")
        .with_attr("to", "romeo@montague.example")
        .with_attr("type", "chat")
        .with_child(body())
        .with_child(x());
    assert_eq!(eligibility(&from_room, Received), Yes);
    let decline = Element::new("message", ns::CLIENT)
        .with_attr("from", "room@muc.example")
        .with_attr("to", "romeo@montague.example")
        .with_child(x().with_child(el("decline", NS_MUC_USER)));
    assert_eq!(eligibility(&decline, Received), No);
    let invite = Element::new("message", ns::CLIENT)
        .with_attr("from", "room@muc.example/nick")
        .with_attr("to", "romeo@montague.example")
        .with_child(x().with_child(el("invite", NS_MUC_USER)));
    assert_eq!(eligibility(&invite, Received), Yes);
}

/// §7 example 6: the wrapper's attributes and the original inside, in jabber:client.
#[test]
fn wrapper_as_in_the_xep() {
    let original = message(Some("chat"))
        .with_child(body())
        .with_child(Element::new("thread", ns::CLIENT).with_text("0e3141cd"));
    let account: BareJid = "romeo@montague.example".parse().unwrap();
    let mut carbon = wrap(Received, &account, &original);
    carbon.set_attr("to", "romeo@montague.example/home");
    let mut xml = String::new();
    carbon.write_in_stream(ns::CLIENT, &mut xml);
    assert_eq!(
        xml,
        "<message from='romeo@montague.example' type='chat' to='romeo@montague.example/home'>\
         <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client' from='juliet@capulet.example/balcony' \
         to='romeo@montague.example/garden' type='chat'><body>hi</body>\
         <thread>0e3141cd</thread></message></forwarded></received></message>"
    );
    // No type stays no type; no 'to' is the account's own (RFC 6120 §8.1.1.1).
    let to_self = Element::new("message", ns::CLIENT)
        .with_attr("from", "romeo@montague.example/garden")
        .with_child(body());
    let carbon = wrap(Sent, &account, &to_self);
    assert_eq!(carbon.attr("type"), None);
    let inner = carbon
        .get_child("sent", NS)
        .and_then(|s| s.get_child("forwarded", NS_FORWARD))
        .and_then(|f| f.get_child("message", ns::CLIENT))
        .unwrap();
    assert_eq!(inner.attr("to"), Some("romeo@montague.example"));
}

#[test]
fn state_is_per_session_and_per_account() {
    let c = Carbons::new();
    let a: FullJid = "romeo@montague.example/a".parse().unwrap();
    let b: FullJid = "romeo@montague.example/b".parse().unwrap();
    assert!(!c.any.load(Ordering::Acquire));
    c.set(&a, 1, true);
    c.set(&a, 1, true);
    c.set(&b, 2, true);
    assert!(c.is_enabled(&a, 1));
    // The same resource bound by another session is another session.
    assert!(!c.is_enabled(&a, 3));
    assert_eq!(c.accounts(), 1);
    c.set(&a, 1, false);
    c.set(&a, 1, false);
    assert!(!c.is_enabled(&a, 1));
    assert!(c.any.load(Ordering::Acquire));
    c.set(&b, 2, false);
    assert_eq!(c.accounts(), 0);
    assert!(!c.any.load(Ordering::Acquire));
}

/// §6.1's fourth rule: an error is wanted when it answers a remembered eligible message of the
/// same party; only the last RECENT are remembered.
#[test]
fn errors_answer_remembered_messages() {
    let c = Carbons::new();
    let romeo: BareJid = "romeo@montague.example".parse().unwrap();
    let juliet: BareJid = "juliet@capulet.example".parse().unwrap();
    let tybalt: BareJid = "tybalt@capulet.example".parse().unwrap();
    let with_id = |ty: &str, id: &str| message(Some(ty)).with_attr("id", id).with_child(body());
    // Nothing enabled: nothing wanted, nothing remembered.
    assert!(!c.wanted(&romeo, &juliet, &with_id("chat", "m0"), Sent));
    let a: FullJid = "romeo@montague.example/a".parse().unwrap();
    assert!(!c.wants(&a));
    c.set(&a, 1, true);
    assert!(c.wants(&a));
    assert!(c.wants(&"romeo@montague.example/other".parse().unwrap()));
    assert!(!c.wants(&"juliet@capulet.example/a".parse().unwrap()));
    assert!(!c.wanted(&romeo, &juliet, &with_id("error", "m0"), Received));
    assert!(c.wanted(&romeo, &juliet, &with_id("chat", "m1"), Sent));
    assert!(c.wanted(&romeo, &juliet, &with_id("error", "m1"), Received));
    // Another party, another id, or a message that was not eligible: not an answer.
    assert!(!c.wanted(&romeo, &tybalt, &with_id("error", "m1"), Received));
    assert!(!c.wanted(&romeo, &juliet, &with_id("error", "m2"), Received));
    assert!(!c.wanted(&romeo, &juliet, &with_id("headline", "h1"), Received));
    assert!(!c.wanted(&romeo, &juliet, &with_id("error", "h1"), Sent));
    for i in 0..RECENT {
        assert!(c.wanted(
            &romeo,
            &juliet,
            &with_id("chat", &format!("n{i}")),
            Received
        ));
    }
    assert!(!c.wanted(&romeo, &juliet, &with_id("error", "m1"), Received));
    assert!(c.wanted(&romeo, &juliet, &with_id("error", "n0"), Sent));
}

#[test]
fn returned_carbons_are_recognised() {
    let carbon = |from: &str, to: &str| {
        Element::new("message", ns::CLIENT)
            .with_attr("from", from)
            .with_attr("to", to)
            .with_child(el("received", NS))
    };
    assert!(is_returned_carbon(&carbon(
        "romeo@montague.example",
        "romeo@montague.example/home"
    )));
    // From anybody else, or from a resource: delivered as it came (§11 is the client's part).
    assert!(!is_returned_carbon(&carbon(
        "tybalt@capulet.example",
        "romeo@montague.example/home"
    )));
    assert!(!is_returned_carbon(&carbon(
        "romeo@montague.example/garden",
        "romeo@montague.example/home"
    )));
    assert!(!is_returned_carbon(
        &message(Some("chat")).with_attr("from", "romeo@montague.example")
    ));
}

/// Over a real router and registry: an enable from a bound session is recorded under its full
/// JID and session id, and forgotten when the session ends (§4; nothing is left behind).
#[tokio::test]
async fn the_state_is_forgotten_when_the_session_ends() {
    use starling_module_api::{SessionHandle, SessionRegistry};
    use starling_router::{LocalRegistry, Router};
    use starling_storage_sqlite::SqliteStorage;

    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(&dir.path().join("db")).await.unwrap();
    let stores = storage.stores();
    stores
        .accounts
        .create_account("alice", "localhost", &[])
        .await
        .unwrap();
    let registry: Arc<dyn SessionRegistry> = Arc::new(LocalRegistry::new());
    let carbons = Arc::new(Carbons::new());
    let router = Router::new(
        vec!["localhost".into()],
        registry.clone(),
        stores,
        vec![carbons.clone()],
    )
    .unwrap();
    let jid: FullJid = "alice@localhost/a".parse().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    registry.bind(jid.clone(), SessionHandle::new(7, tx)).await;
    let enable = Element::new("iq", ns::CLIENT)
        .with_attr("type", "set")
        .with_attr("id", "on")
        .with_attr("from", jid.as_str())
        .with_child(Element::new("enable", NS));
    router.route_from_client(&jid, enable).await;
    assert!(matches!(
        rx.try_recv(),
        Ok(starling_module_api::SessionCommand::Stanza(q)) if q.stanza.attr("type") == Some("result")
    ));
    assert!(carbons.is_enabled(&jid, 7));
    assert!(!carbons.is_enabled(&jid, 8));
    let entry = registry.unbind(&jid, 7).await.unwrap();
    router.emit(Event::Ended(entry)).await;
    assert_eq!(carbons.accounts(), 0);
    assert!(!carbons.any.load(Ordering::Acquire));
    storage.close().await;
}
