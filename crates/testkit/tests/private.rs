//! End-to-end tests over real sockets of XEP-0049 private XML storage (`jabber:iq:private`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";

fn stanza_error(kind: &str, condition: &str, text: &str) -> String {
    format!(
        "<error type='{kind}'><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{text}</text></error>"
    )
}

async fn setup() -> (TestServer, Client, Client) {
    let server = TestServer::start().await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let alice = server.login("alice", PW, "a").await;
    let bob = server.login("bob", PW, "b").await;
    (server, alice, bob)
}

async fn ask(client: &mut Client, xml: &str, answer: &str) {
    client.send_xml(xml).await.unwrap();
    client.expect(answer).await.unwrap();
}

const PREFS: &str = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>";
const BOOKMARKS: &str = "<storage xmlns='storage:bookmarks'><conference jid='c@muc.localhost' \
    autojoin='true'><nick>ali</nick></conference></storage>";

/// XEP-0049 §2.3: store, get back exactly, replace; nothing stored: the empty element as asked.
#[tokio::test]
async fn set_get_replace() {
    let (server, mut alice, _bob) = setup().await;
    // Nothing stored yet: the element as asked, empty (as Prosody and ejabberd answer).
    ask(
        &mut alice,
        "<iq type='get' id='p1'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>",
        "<iq type='result' id='p1' to='alice@localhost/a'><query xmlns='jabber:iq:private'>\
         <exodus xmlns='exodus:prefs'/></query></iq>",
    )
    .await;
    // §2.3 example "Client Stores Private Data"; to one's own bare JID works too.
    ask(
        &mut alice,
        &format!("<iq type='set' id='p2'><query xmlns='jabber:iq:private'>{PREFS}</query></iq>"),
        "<iq type='result' id='p2' to='alice@localhost/a'/>",
    )
    .await;
    ask(
        &mut alice,
        "<iq type='get' id='p3' to='alice@localhost'><query xmlns='jabber:iq:private'>\
         <exodus xmlns='exodus:prefs'/></query></iq>",
        &format!(
            "<iq type='result' id='p3' from='alice@localhost' to='alice@localhost/a'>\
             <query xmlns='jabber:iq:private'>{PREFS}</query></iq>"
        ),
    )
    .await;
    // §2.3: a set MAY hold several elements; each is filed under its name and namespace.
    let replaced = "<exodus xmlns='exodus:prefs'><defaultnick>Ophelia</defaultnick></exodus>";
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='p4'><query xmlns='jabber:iq:private'>{replaced}{BOOKMARKS}</query></iq>"
        ),
        "<iq type='result' id='p4' to='alice@localhost/a'/>",
    )
    .await;
    for (id, asked, stored) in [
        ("p5", "<exodus xmlns='exodus:prefs'/>", replaced),
        ("p6", "<storage xmlns='storage:bookmarks'/>", BOOKMARKS),
    ] {
        ask(
            &mut alice,
            &format!(
                "<iq type='get' id='{id}'><query xmlns='jabber:iq:private'>{asked}</query></iq>"
            ),
            &format!(
                "<iq type='result' id='{id}' to='alice@localhost/a'>\
                 <query xmlns='jabber:iq:private'>{stored}</query></iq>"
            ),
        )
        .await;
    }
    let all = server
        .router()
        .context()
        .stores
        .private
        .all("alice", "localhost")
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|e| (e.namespace.as_str(), e.name.as_str(), e.xml.as_str()))
            .collect::<Vec<_>>(),
        [
            ("exodus:prefs", "exodus", replaced),
            ("storage:bookmarks", "storage", BOOKMARKS),
        ]
    );
    server.stop().await;
}

/// XEP-0049 §2.3 ("User Attempts to Get or Set Data for Another User", Forbidden preferred) and
/// §5: another user can neither read nor write.
#[tokio::test]
async fn another_users_data_is_forbidden() {
    let (server, mut alice, mut bob) = setup().await;
    ask(
        &mut alice,
        &format!("<iq type='set' id='p1'><query xmlns='jabber:iq:private'>{PREFS}</query></iq>"),
        "<iq type='result' id='p1' to='alice@localhost/a'/>",
    )
    .await;
    let forbidden =
        "<error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";
    ask(
        &mut bob,
        "<iq type='get' id='p2' to='alice@localhost'><query xmlns='jabber:iq:private'>\
         <exodus xmlns='exodus:prefs'/></query></iq>",
        &format!(
            "<iq type='error' id='p2' from='alice@localhost' to='bob@localhost/b'>{forbidden}</iq>"
        ),
    )
    .await;
    ask(
        &mut bob,
        "<iq type='set' id='p3' to='alice@localhost'><query xmlns='jabber:iq:private'>\
         <exodus xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus></query></iq>",
        &format!(
            "<iq type='error' id='p3' from='alice@localhost' to='bob@localhost/b'>{forbidden}</iq>"
        ),
    )
    .await;
    // Alice's data is untouched.
    ask(
        &mut alice,
        "<iq type='get' id='p4'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/></query></iq>",
        &format!(
            "<iq type='result' id='p4' to='alice@localhost/a'><query xmlns='jabber:iq:private'>{PREFS}</query></iq>"
        ),
    )
    .await;
    server.stop().await;
}

/// XEP-0049 §2.3: the malformed requests and reserved namespaces, each with its error.
#[tokio::test]
async fn malformed_requests() {
    let (server, mut alice, _bob) = setup().await;
    let cases = [
        // "At least one child element ... MUST be included; otherwise ... Not Acceptable" (set).
        (
            "<iq type='set' id='m1'><query xmlns='jabber:iq:private'/></iq>",
            stanza_error("modify", "not-acceptable", "include the element to store"),
        ),
        // A get without a child: "Bad Format" (bad-request, XEP-0086).
        (
            "<iq type='get' id='m2'><query xmlns='jabber:iq:private'/></iq>",
            stanza_error("modify", "bad-request", "name the element to get"),
        ),
        // "A client MUST NOT query for more than [one] namespace in a single IQ get request."
        (
            "<iq type='get' id='m3'><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/>\
             <storage xmlns='storage:bookmarks'/></query></iq>",
            stanza_error("modify", "bad-request", "ask for one element at a time"),
        ),
        // The fragment's root must be "scoped by its own namespace".
        (
            "<iq type='set' id='m4'><query xmlns='jabber:iq:private'><prefs/></query></iq>",
            stanza_error(
                "modify",
                "not-acceptable",
                "each element must be in a namespace of its own",
            ),
        ),
        // Reserved namespaces: jabber:*, http://jabber.org/*, vcard-temp ("Not Acceptable").
        (
            "<iq type='set' id='m5'><query xmlns='jabber:iq:private'><vCard xmlns='vcard-temp'>\
             <FN>Hamlet</FN></vCard></query></iq>",
            stanza_error("modify", "not-acceptable", "this namespace is reserved"),
        ),
        (
            "<iq type='get' id='m6'><query xmlns='jabber:iq:private'><query xmlns='jabber:iq:roster'/>\
             </query></iq>",
            stanza_error("modify", "not-acceptable", "this namespace is reserved"),
        ),
        (
            "<iq type='set' id='m7'><query xmlns='jabber:iq:private'>\
             <x xmlns='http://jabber.org/protocol/muc'/></query></iq>",
            stanza_error("modify", "not-acceptable", "this namespace is reserved"),
        ),
    ];
    for (request, error) in cases {
        let id = request
            .split("id='")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .unwrap();
        ask(
            &mut alice,
            request,
            &format!("<iq type='error' id='{id}' to='alice@localhost/a'>{error}</iq>"),
        )
        .await;
    }
    // Nothing was stored by any of them.
    let count = server
        .router()
        .context()
        .stores
        .private
        .count("alice", "localhost")
        .await
        .unwrap();
    assert_eq!(count, 0);
    server.stop().await;
}

/// The module's limits (module docs of `starling_modules::private`): an element of at most
/// MAX_ELEMENT_BYTES, at most MAX_ELEMENTS per account.
#[tokio::test]
async fn limits() {
    // starling_modules::private::{MAX_ELEMENT_BYTES, MAX_ELEMENTS}, documented in README.md.
    const MAX_ELEMENT_BYTES: usize = 64 * 1024;
    const MAX_ELEMENTS: u64 = 64;
    let (server, mut alice, _bob) = setup().await;
    let wrap = "<big xmlns='urn:example:big'></big>";
    let fits = format!(
        "<big xmlns='urn:example:big'>{}</big>",
        "x".repeat(MAX_ELEMENT_BYTES - wrap.len())
    );
    assert_eq!(fits.len(), MAX_ELEMENT_BYTES);
    ask(
        &mut alice,
        &format!("<iq type='set' id='l1'><query xmlns='jabber:iq:private'>{fits}</query></iq>"),
        "<iq type='result' id='l1' to='alice@localhost/a'/>",
    )
    .await;
    let too_big = format!(
        "<big xmlns='urn:example:big'>{}</big>",
        "x".repeat(MAX_ELEMENT_BYTES + 1 - wrap.len())
    );
    ask(
        &mut alice,
        &format!("<iq type='set' id='l2'><query xmlns='jabber:iq:private'>{too_big}</query></iq>"),
        &format!(
            "<iq type='error' id='l2' to='alice@localhost/a'>{}</iq>",
            stanza_error(
                "modify",
                "not-acceptable",
                &format!("an element may be at most {MAX_ELEMENT_BYTES} bytes")
            )
        ),
    )
    .await;
    // Fill up to the limit (the big element counts), then one more is refused; replacing one
    // that exists is still fine.
    let elements: String = (1..MAX_ELEMENTS)
        .map(|i| format!("<e{i} xmlns='urn:example:n'/>"))
        .collect();
    ask(
        &mut alice,
        &format!("<iq type='set' id='l3'><query xmlns='jabber:iq:private'>{elements}</query></iq>"),
        "<iq type='result' id='l3' to='alice@localhost/a'/>",
    )
    .await;
    ask(
        &mut alice,
        "<iq type='set' id='l4'><query xmlns='jabber:iq:private'><one-more xmlns='urn:example:n'/>\
         </query></iq>",
        &format!(
            "<iq type='error' id='l4' to='alice@localhost/a'>{}</iq>",
            stanza_error(
                "modify",
                "policy-violation",
                &format!("an account may keep at most {MAX_ELEMENTS} private elements")
            )
        ),
    )
    .await;
    ask(
        &mut alice,
        "<iq type='set' id='l5'><query xmlns='jabber:iq:private'><e1 xmlns='urn:example:n'>new</e1>\
         </query></iq>",
        "<iq type='result' id='l5' to='alice@localhost/a'/>",
    )
    .await;
    server.stop().await;
}

/// Deleting the account deletes its private XML (the store's cascade, seen from the server).
#[tokio::test]
async fn account_deletion_removes_private_xml() {
    let (server, mut alice, _bob) = setup().await;
    ask(
        &mut alice,
        &format!(
            "<iq type='set' id='d1'><query xmlns='jabber:iq:private'>{BOOKMARKS}</query></iq>"
        ),
        "<iq type='result' id='d1' to='alice@localhost/a'/>",
    )
    .await;
    let stores = server.router().context().stores.clone();
    stores
        .accounts
        .delete_account("alice", "localhost")
        .await
        .unwrap();
    stores
        .accounts
        .create_account("alice", "localhost", &[])
        .await
        .unwrap();
    assert_eq!(stores.private.count("alice", "localhost").await.unwrap(), 0);
    server.stop().await;
}
