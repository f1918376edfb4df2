//! End-to-end tests over real sockets of message archives: XEP-0313 (MAM) queries, paging
//! (XEP-0059), metadata and preferences (XEP-0441), XEP-0359 stanza ids, XEP-0431 full-text
//! search, and what is archived (XEP-0313 §7.1.1, XEP-0334 hints).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const QUIET: Duration = Duration::from_millis(200);
const MAM: &str = "urn:xmpp:mam:2";

/// A server with archiving on (the test server's default turns it off, see `TestServer`).
async fn server(users: &[&str]) -> TestServer {
    let server = TestServer::start_with(|c| c.archive.enabled = true).await;
    for u in users {
        server.add_user(u, PW).await;
    }
    server
}

async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    server.online(user, PW, resource).await
}

/// Sends a chat message with `body` and id `id` from `c` to `to`.
async fn say(c: &mut Client, to: &str, id: &str, body: &str) {
    c.send_xml(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>"
    ))
    .await
    .unwrap();
}

/// The `id` of the `<stanza-id/>` by `by` on a delivered message.
fn stanza_id(m: &Element, by: &str) -> String {
    m.children()
        .find(|c| c.is("stanza-id", "urn:xmpp:sid:0") && c.attr("by") == Some(by))
        .and_then(|c| c.attr("id"))
        .unwrap_or_else(|| panic!("no stanza-id by {by} on {}", m.to_xml()))
        .to_owned()
}

/// Sends a MAM query with `form_fields` (data form `<field/>`s) and `rsm` (children of
/// `<set/>`), queryid `q`.
async fn query(c: &mut Client, id: &str, form_fields: &str, rsm: &str, extra: &str) {
    let set = if rsm.is_empty() {
        String::new()
    } else {
        format!("<set xmlns='http://jabber.org/protocol/rsm'>{rsm}</set>")
    };
    c.send_xml(&format!(
        "<iq type='set' id='{id}'><query xmlns='{MAM}' queryid='q'>\
           <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>{form_fields}\
           </x>{set}{extra}</query></iq>"
    ))
    .await
    .unwrap();
}

fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{value}</value></field>")
}

/// Receives result messages until the IQ result; returns (archive ids, bodies) of the results
/// and the `<fin/>`. Checks the shape of every result (XEP-0313 §4.2).
async fn results(
    c: &mut Client,
    to: &str,
    archive: &str,
    iq_id: &str,
) -> (Vec<String>, Vec<String>, Element) {
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    loop {
        let el = c.recv_element().await.unwrap();
        if el.name() == "iq" {
            assert_eq!(el.attr("type"), Some("result"), "{}", el.to_xml());
            assert_eq!(el.attr("id"), Some(iq_id));
            let fin = el.get_child("fin", MAM).expect("a <fin/>").clone();
            return (ids, bodies, fin);
        }
        assert_eq!(el.attr("to"), Some(to), "{}", el.to_xml());
        assert_eq!(el.attr("from"), Some(archive), "{}", el.to_xml());
        let result = el.get_child("result", MAM).expect("a <result/>");
        assert_eq!(result.attr("queryid"), Some("q"));
        let fwd = result.get_child("forwarded", "urn:xmpp:forward:0").unwrap();
        let delay = fwd.get_child("delay", "urn:xmpp:delay").unwrap();
        assert!(delay.attr("stamp").is_some_and(|s| s.ends_with('Z')));
        let m = fwd.get_child("message", "jabber:client").unwrap();
        ids.push(result.attr("id").unwrap().to_owned());
        bodies.push(
            m.get_child("body", "jabber:client")
                .map(Element::text)
                .unwrap_or_default(),
        );
    }
}

fn rsm_text(fin: &Element, name: &str) -> Option<String> {
    fin.get_child("set", "http://jabber.org/protocol/rsm")
        .and_then(|s| s.get_child(name, "http://jabber.org/protocol/rsm"))
        .map(Element::text)
}

#[tokio::test]
async fn archives_are_advertised_on_the_account() {
    // XEP-0313 §8, XEP-0431 §2.1, XEP-0359 §6.
    let server = server(&["alice"]).await;
    let mut alice = online(&server, "alice", "a").await;
    alice
        .send_xml("<iq type='get' id='d1' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    let reply = alice.recv_element().await.unwrap();
    let features: Vec<&str> = reply
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap()
        .children()
        .filter(|c| c.name() == "feature")
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in [MAM, "urn:xmpp:mam:2#extended", "urn:xmpp:fulltext:0"] {
        assert!(features.contains(&f), "{f} missing from {features:?}");
    }
    alice
        .send_xml("<iq type='get' id='d2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    let reply = alice.recv_element().await.unwrap();
    assert!(
        reply.to_xml().contains("urn:xmpp:sid:0"),
        "{}",
        reply.to_xml()
    );
    server.stop().await;
}

#[tokio::test]
async fn both_archives_keep_the_message_and_the_recipient_gets_its_stanza_id() {
    // XEP-0313 §7.1.1 (sender's and recipient's archive), XEP-0359 §3 (stanza-id by the
    // recipient's bare JID), XEP-0313 §4.2 (results carry the archive id).
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    say(&mut alice, "bob@localhost", "m1", "hello").await;
    let got = bob
        .expect(
            "<message to='bob@localhost' type='chat' id='m1' from='alice@localhost/a'>\
               <body>hello</body>\
               <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{*}'/></message>",
        )
        .await
        .unwrap();
    let sid = stanza_id(&got, "bob@localhost");

    query(&mut bob, "q1", "", "", "").await;
    bob.expect(&format!(
        "<message to='bob@localhost/b' from='bob@localhost' id='{{*}}'>\
           <result xmlns='{MAM}' queryid='q' id='{sid}'>\
             <forwarded xmlns='urn:xmpp:forward:0'>\
               <delay xmlns='urn:xmpp:delay' stamp='{{*}}'/>\
               <message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1' from='alice@localhost/a'>\
                 <body>hello</body>\
                 <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{sid}'/>\
               </message>\
             </forwarded>\
           </result></message>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<iq type='result' id='q1' to='bob@localhost/b'>\
           <fin xmlns='{MAM}' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'>\
               <first index='0'>{sid}</first><last>{sid}</last><count>1</count>\
             </set></fin></iq>"
    ))
    .await
    .unwrap();

    // The sender's archive has its own copy, under its own id.
    query(&mut alice, "q2", "", "", "").await;
    let (ids, bodies, fin) =
        results(&mut alice, "alice@localhost/a", "alice@localhost", "q2").await;
    assert_eq!(bodies, vec!["hello"]);
    assert_ne!(ids[0], sid);
    assert_eq!(fin.attr("complete"), Some("true"));
    server.stop().await;
}

#[tokio::test]
async fn pages_forward_and_backward() {
    // XEP-0313 §4.3 with XEP-0059 §2.1–§2.5: max, after, an empty before (the last page),
    // before, complete on the page that reaches the end, count and first index.
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    for i in 1..=5 {
        say(
            &mut alice,
            "bob@localhost",
            &format!("m{i}"),
            &i.to_string(),
        )
        .await;
        bob.recv_element().await.unwrap();
    }
    let me = "bob@localhost/b";
    let archive = "bob@localhost";
    query(&mut bob, "p1", "", "<max>2</max>", "").await;
    let (ids, bodies, fin) = results(&mut bob, me, archive, "p1").await;
    assert_eq!(bodies, vec!["1", "2"]);
    assert_eq!(fin.attr("complete"), None);
    assert_eq!(rsm_text(&fin, "count").as_deref(), Some("5"));
    assert_eq!(rsm_text(&fin, "first").as_deref(), Some(ids[0].as_str()));
    assert_eq!(rsm_text(&fin, "last").as_deref(), Some(ids[1].as_str()));

    query(
        &mut bob,
        "p2",
        "",
        &format!("<max>2</max><after>{}</after>", ids[1]),
        "",
    )
    .await;
    let (ids2, bodies, fin) = results(&mut bob, me, archive, "p2").await;
    assert_eq!(bodies, vec!["3", "4"]);
    assert_eq!(fin.attr("complete"), None);
    query(
        &mut bob,
        "p3",
        "",
        &format!("<max>2</max><after>{}</after>", ids2[1]),
        "",
    )
    .await;
    let (_, bodies, fin) = results(&mut bob, me, archive, "p3").await;
    assert_eq!(bodies, vec!["5"]);
    assert_eq!(fin.attr("complete"), Some("true"));

    // Backwards from the newest: the last page, then the one before it.
    query(&mut bob, "p4", "", "<max>2</max><before/>", "").await;
    let (ids4, bodies, fin) = results(&mut bob, me, archive, "p4").await;
    assert_eq!(bodies, vec!["4", "5"]);
    assert_eq!(fin.attr("complete"), None);
    let first = fin
        .get_child("set", "http://jabber.org/protocol/rsm")
        .and_then(|s| s.get_child("first", "http://jabber.org/protocol/rsm"))
        .unwrap();
    assert_eq!(first.attr("index"), Some("3"));
    query(
        &mut bob,
        "p5",
        "",
        &format!("<max>3</max><before>{}</before>", ids4[0]),
        "",
    )
    .await;
    let (_, bodies, fin) = results(&mut bob, me, archive, "p5").await;
    assert_eq!(bodies, vec!["1", "2", "3"]);
    assert_eq!(fin.attr("complete"), Some("true"));

    // §4.3.4: a flipped page is the same page, newest first.
    query(&mut bob, "p6", "", "<max>2</max><before/>", "<flip-page/>").await;
    let (_, bodies, _) = results(&mut bob, me, archive, "p6").await;
    assert_eq!(bodies, vec!["5", "4"]);

    // max 0: the count only.
    query(&mut bob, "p7", "", "<max>0</max>", "").await;
    let (ids, _, fin) = results(&mut bob, me, archive, "p7").await;
    assert!(ids.is_empty());
    assert_eq!(rsm_text(&fin, "count").as_deref(), Some("5"));
    server.stop().await;
}

#[tokio::test]
async fn filters_by_peer_time_and_ids() {
    // XEP-0313 §4.1.1 (with), §4.1.2 (start, end), §4.1.3 (after-id, before-id, ids).
    let server = server(&["alice", "bob", "carol"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    let mut carol = online(&server, "carol", "c").await;
    let mut sids = Vec::new();
    for (i, who) in ["alice", "carol", "alice"].into_iter().enumerate() {
        let c = if who == "alice" {
            &mut alice
        } else {
            &mut carol
        };
        say(c, "bob@localhost", &format!("m{i}"), &format!("{who} {i}")).await;
        let got = bob.recv_element().await.unwrap();
        sids.push(stanza_id(&got, "bob@localhost"));
    }
    let me = "bob@localhost/b";
    let archive = "bob@localhost";
    query(&mut bob, "f1", &field("with", "alice@localhost"), "", "").await;
    let (_, bodies, _) = results(&mut bob, me, archive, "f1").await;
    assert_eq!(bodies, vec!["alice 0", "alice 2"]);
    query(&mut bob, "f2", &field("with", "alice@localhost/a"), "", "").await;
    let (_, bodies, _) = results(&mut bob, me, archive, "f2").await;
    assert_eq!(bodies, vec!["alice 0", "alice 2"]);
    query(
        &mut bob,
        "f3",
        &field("with", "alice@localhost/other"),
        "",
        "",
    )
    .await;
    let (_, bodies, _) = results(&mut bob, me, archive, "f3").await;
    assert!(bodies.is_empty());

    query(
        &mut bob,
        "f4",
        &field("start", "2000-01-01T00:00:00Z"),
        "",
        "",
    )
    .await;
    let (_, bodies, _) = results(&mut bob, me, archive, "f4").await;
    assert_eq!(bodies.len(), 3);
    query(
        &mut bob,
        "f5",
        &field("end", "2000-01-01T00:00:00Z"),
        "",
        "",
    )
    .await;
    let (_, bodies, _) = results(&mut bob, me, archive, "f5").await;
    assert!(bodies.is_empty());

    query(
        &mut bob,
        "f6",
        &format!(
            "{}{}",
            field("after-id", &sids[0]),
            field("before-id", &sids[2])
        ),
        "",
        "",
    )
    .await;
    let (_, bodies, _) = results(&mut bob, me, archive, "f6").await;
    assert_eq!(bodies, vec!["carol 1"]);
    query(
        &mut bob,
        "f7",
        &format!(
            "<field var='ids'><value>{}</value><value>{}</value></field>",
            sids[2], sids[0]
        ),
        "",
        "",
    )
    .await;
    let (_, bodies, _) = results(&mut bob, me, archive, "f7").await;
    assert_eq!(bodies, vec!["alice 0", "alice 2"]);

    // An id that is not in the archive: item-not-found (§4.1.3, §4.3.2).
    query(&mut bob, "f8", &field("after-id", "nope"), "", "").await;
    bob.expect(
        "<iq type='error' id='f8' to='bob@localhost/b'>\
           <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
           <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></error></iq>",
    )
    .await
    .unwrap();
    query(&mut bob, "f9", "", "<after>nope</after>", "").await;
    let err = bob.recv_element().await.unwrap();
    assert!(err.to_xml().contains("item-not-found"), "{}", err.to_xml());
    // A field the server does not know: feature-not-implemented (§4.1.5).
    query(&mut bob, "f10", &field("include-groupchat", "true"), "", "").await;
    let err = bob.recv_element().await.unwrap();
    assert!(
        err.to_xml().contains("feature-not-implemented"),
        "{}",
        err.to_xml()
    );
    server.stop().await;
}

#[tokio::test]
async fn full_text_search() {
    // XEP-0431 §3: the words of the field, in any case, accents ignored.
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    for (i, body) in ["Meet me at the Café", "the cafe is closed", "see you"]
        .iter()
        .enumerate()
    {
        say(&mut alice, "bob@localhost", &format!("m{i}"), body).await;
        bob.recv_element().await.unwrap();
    }
    query(
        &mut bob,
        "s1",
        &field("{urn:xmpp:fulltext:0}fulltext", "CAFE"),
        "",
        "",
    )
    .await;
    let (_, bodies, fin) = results(&mut bob, "bob@localhost/b", "bob@localhost", "s1").await;
    assert_eq!(bodies, vec!["Meet me at the Café", "the cafe is closed"]);
    assert_eq!(rsm_text(&fin, "count").as_deref(), Some("2"));
    query(
        &mut bob,
        "s2",
        &field("{urn:xmpp:fulltext:0}fulltext", "cafe meet"),
        "",
        "",
    )
    .await;
    let (_, bodies, _) = results(&mut bob, "bob@localhost/b", "bob@localhost", "s2").await;
    assert_eq!(bodies, vec!["Meet me at the Café"]);
    server.stop().await;
}

#[tokio::test]
async fn the_form_and_the_metadata() {
    // XEP-0313 §4.1.5 (the form), §5 (metadata).
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    bob.send_xml(&format!(
        "<iq type='get' id='m0'><metadata xmlns='{MAM}'/></iq>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<iq type='result' id='m0' to='bob@localhost/b'><metadata xmlns='{MAM}'/></iq>"
    ))
    .await
    .unwrap();
    let mut sids = Vec::new();
    for i in 0..2 {
        say(&mut alice, "bob@localhost", &format!("m{i}"), "x").await;
        sids.push(stanza_id(
            &bob.recv_element().await.unwrap(),
            "bob@localhost",
        ));
    }
    bob.send_xml(&format!(
        "<iq type='get' id='m1'><metadata xmlns='{MAM}'/></iq>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<iq type='result' id='m1' to='bob@localhost/b'><metadata xmlns='{MAM}'>\
           <start id='{}' timestamp='{{*}}'/><end id='{}' timestamp='{{*}}'/></metadata></iq>",
        sids[0], sids[1]
    ))
    .await
    .unwrap();
    bob.send_xml(&format!(
        "<iq type='get' id='f'><query xmlns='{MAM}'/></iq>"
    ))
    .await
    .unwrap();
    let form = bob.recv_element().await.unwrap();
    let xml = form.to_xml();
    for var in [
        "FORM_TYPE",
        "with",
        "start",
        "end",
        "before-id",
        "after-id",
        "ids",
        "{urn:xmpp:fulltext:0}fulltext",
    ] {
        assert!(
            xml.contains(&format!("var='{var}'")) || xml.contains(&format!("var=\"{var}\"")),
            "{var} in {xml}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn another_users_archive_is_forbidden() {
    // XEP-0313 §10.1.
    let server = server(&["alice", "bob"]).await;
    let mut bob = online(&server, "bob", "b").await;
    bob.send_xml(&format!(
        "<iq type='set' id='x' to='alice@localhost'><query xmlns='{MAM}'/></iq>"
    ))
    .await
    .unwrap();
    bob.expect(
        "<iq type='error' id='x' to='bob@localhost/b' from='alice@localhost'>\
           <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
           <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></error></iq>",
    )
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn what_is_not_archived() {
    // XEP-0313 §7.1.1 (chat and normal with a body), XEP-0334 §4.2/§4.3 (no-store,
    // no-permanent-store), XEP-0085 (chat states alone), headlines.
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    for m in [
        "<message to='bob@localhost' type='chat' id='n1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        "<message to='bob@localhost' type='chat' id='n2'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>",
        "<message to='bob@localhost' type='chat' id='n3'><body>secret</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>",
        "<message to='bob@localhost' type='headline' id='n4'><body>news</body></message>",
    ] {
        alice.send_xml(m).await.unwrap();
        let got = bob.recv_element().await.unwrap();
        assert!(!got.to_xml().contains("stanza-id"), "{}", got.to_xml());
    }
    // An encrypted message without a body is archived (OMEMO).
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='e1'><encrypted xmlns='eu.siacs.conversations.axolotl'><payload>AA==</payload></encrypted></message>")
        .await
        .unwrap();
    let got = bob.recv_element().await.unwrap();
    stanza_id(&got, "bob@localhost");
    let count = server
        .router()
        .context()
        .stores
        .archive
        .count("bob", "localhost")
        .await
        .unwrap();
    assert_eq!(count, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_forged_stanza_id_is_removed() {
    // XEP-0359 §4: the archive removes stanza ids that claim to be its own.
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    alice
        .send_xml(
            "<message to='bob@localhost' type='chat' id='f'><body>hi</body>\
                   <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='forged'/>\
                   <stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='kept'/></message>",
        )
        .await
        .unwrap();
    let got = bob
        .expect(
            "<message to='bob@localhost' type='chat' id='f' from='alice@localhost/a'><body>hi</body>\
               <stanza-id xmlns='urn:xmpp:sid:0' by='elsewhere.example' id='kept'/>\
               <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{*}'/></message>",
        )
        .await
        .unwrap();
    assert_ne!(stanza_id(&got, "bob@localhost"), "forged");
    server.stop().await;
}

#[tokio::test]
async fn a_message_to_oneself_is_archived_once() {
    // XEP-0313 §7.1.1: one copy per archive, however many the server delivers.
    let server = server(&["alice"]).await;
    let mut a = online(&server, "alice", "a").await;
    let mut b = online(&server, "alice", "b").await;
    a.drain(QUIET).await;
    say(&mut a, "alice@localhost/b", "s1", "note to self").await;
    let got = b.recv_element().await.unwrap();
    let sid = stanza_id(&got, "alice@localhost");
    query(&mut a, "q", &field("with", "alice@localhost"), "", "").await;
    let (ids, bodies, _) = results(&mut a, "alice@localhost/a", "alice@localhost", "q").await;
    assert_eq!(ids, vec![sid]);
    assert_eq!(bodies, vec!["note to self"]);
    server.stop().await;
}

#[tokio::test]
async fn preferences_decide_per_peer() {
    // XEP-0441 §2: default, always and never; they govern the owner's archive only.
    let server = server(&["alice", "bob", "carol"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut bob = online(&server, "bob", "b").await;
    let mut carol = online(&server, "carol", "c").await;
    bob.send_xml(&format!(
        "<iq type='set' id='p1'><prefs xmlns='{MAM}' default='always'>\
           <always/><never><jid>alice@localhost</jid></never></prefs></iq>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<iq type='result' id='p1' to='bob@localhost/b'>\
           <prefs xmlns='{MAM}' default='always'><always/><never><jid>alice@localhost</jid></never></prefs></iq>"
    ))
    .await
    .unwrap();
    say(&mut alice, "bob@localhost", "n", "not kept").await;
    bob.expect(
        "<message to='bob@localhost' type='chat' id='n' from='alice@localhost/a'><body>not kept</body></message>",
    )
    .await
    .unwrap();
    say(&mut carol, "bob@localhost", "k", "kept").await;
    let got = bob.recv_element().await.unwrap();
    stanza_id(&got, "bob@localhost");
    let stores = &server.router().context().stores;
    assert_eq!(stores.archive.count("bob", "localhost").await.unwrap(), 1);
    // alice's own archive still keeps what she sent.
    assert_eq!(stores.archive.count("alice", "localhost").await.unwrap(), 1);
    bob.send_xml(&format!(
        "<iq type='get' id='p2'><prefs xmlns='{MAM}'/></iq>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<iq type='result' id='p2' to='bob@localhost/b'>\
           <prefs xmlns='{MAM}' default='always'><always/><never><jid>alice@localhost</jid></never></prefs></iq>"
    ))
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn offline_messages_carry_the_archive_id() {
    // XEP-0313 §7.1.1 with XEP-0160: the copy delivered from offline storage carries the
    // stanza id of the archived one.
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    say(&mut alice, "bob@localhost", "o1", "while you were away").await;
    alice.expect_silence(QUIET).await.unwrap();
    let mut bob = online(&server, "bob", "b").await;
    let got = bob
        .expect(
            "<message to='bob@localhost' type='chat' id='o1' from='alice@localhost/a'>\
               <body>while you were away</body>\
               <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{*}'/>\
               <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
        )
        .await
        .unwrap();
    let sid = stanza_id(&got, "bob@localhost");
    query(&mut bob, "q", "", "", "").await;
    let (ids, _, _) = results(&mut bob, "bob@localhost/b", "bob@localhost", "q").await;
    assert_eq!(ids, vec![sid]);
    server.stop().await;
}

#[tokio::test]
async fn what_a_session_fetched_from_the_archive_is_not_delivered_again_offline() {
    // XEP-0313 §7.1.1: "A server MAY choose not to deliver offline messages to a client that
    // has already queried their MAM archive and received the archived copies".
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    say(&mut alice, "bob@localhost", "o1", "fetched").await;
    say(&mut alice, "bob@localhost", "o2", "fetched too").await;
    alice.expect_silence(QUIET).await.unwrap();
    // bob logs in and catches up with MAM before his initial presence, as Conversations does.
    let mut bob = server.login("bob", PW, "b").await;
    query(&mut bob, "q", "", "", "").await;
    let (_, bodies, _) = results(&mut bob, "bob@localhost/b", "bob@localhost", "q").await;
    assert_eq!(bodies, vec!["fetched", "fetched too"]);
    // One more arrives after the query: not fetched, so offline delivery brings it.
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='o3'><body>new</body></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    bob.send_xml("<presence/>").await.unwrap();
    bob.expect("<presence from='bob@localhost/b' to='bob@localhost/b'/>")
        .await
        .unwrap();
    bob.expect(
        "<message to='bob@localhost' type='chat' id='o3' from='alice@localhost/a'><body>new</body>\
           <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{*}'/>\
           <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
    )
    .await
    .unwrap();
    bob.expect_silence(QUIET).await.unwrap();
    // Nothing is left stored either.
    let stores = &server.router().context().stores;
    assert_eq!(stores.offline.count("bob", "localhost").await.unwrap(), 0);
    // A client that does not use MAM still gets everything offline.
    bob.close().await.unwrap();
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='o5'><body>later</body></message>")
        .await
        .unwrap();
    alice.expect_silence(QUIET).await.unwrap();
    let mut bob = online(&server, "bob", "c").await;
    bob.expect(
        "<message to='bob@localhost' type='chat' id='o5' from='alice@localhost/a'><body>later</body>\
           <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{*}'/>\
           <delay xmlns='urn:xmpp:delay' from='localhost' stamp='{*}'/></message>",
    )
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_message_is_archived_before_the_sender_is_acknowledged() {
    // Durability: XEP-0198 §4 `<a/>` answers after the archive write of every stanza before it.
    let server = server(&["alice", "bob"]).await;
    let mut alice = server.login("alice", PW, "a").await;
    alice
        .send_xml("<enable xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    alice
        .expect("<enabled xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    for i in 0..20 {
        say(&mut alice, "bob@localhost", &format!("d{i}"), "durable").await;
    }
    alice.send_xml("<r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    alice
        .expect("<a xmlns='urn:xmpp:sm:3' h='20'/>")
        .await
        .unwrap();
    let stores = &server.router().context().stores;
    // Both archives, before anything else happens.
    assert_eq!(
        stores.archive.count("alice", "localhost").await.unwrap(),
        20
    );
    assert_eq!(stores.archive.count("bob", "localhost").await.unwrap(), 20);
    server.stop().await;
}

#[tokio::test]
async fn a_received_carbon_carries_the_archive_id() {
    // XEP-0280 §7 with XEP-0359 §3: the other device's copy of a message wraps the message as
    // delivered, with the recipient's stanza id, so both devices name it alike.
    let server = server(&["alice", "bob"]).await;
    let mut alice = online(&server, "alice", "a").await;
    let mut phone = online(&server, "bob", "phone").await;
    let mut laptop = online(&server, "bob", "laptop").await;
    // Each resource's presence reaches the other (RFC 6121 §4.2.2).
    phone.drain(QUIET).await;
    laptop.drain(QUIET).await;
    for c in [&mut phone, &mut laptop] {
        c.send_xml("<iq type='set' id='on'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
            .await
            .unwrap();
        c.expect("<iq type='result' id='on' to='{*}'/>")
            .await
            .unwrap();
    }
    say(&mut alice, "bob@localhost/phone", "c1", "to the phone").await;
    let got = phone.recv_element().await.unwrap();
    let sid = stanza_id(&got, "bob@localhost");
    laptop
        .expect(&format!(
            "<message from='bob@localhost' to='bob@localhost/laptop' type='chat'>\
               <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
                 <message xmlns='jabber:client' to='bob@localhost/phone' type='chat' id='c1' from='alice@localhost/a'>\
                   <body>to the phone</body>\
                   <stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='{sid}'/>\
                 </message></forwarded></received></message>"
        ))
        .await
        .unwrap();
    server.stop().await;
}
