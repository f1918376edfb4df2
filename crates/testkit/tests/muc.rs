//! Multi-user chat (XEP-0045) at `conference.localhost` over real sockets: creating rooms,
//! entering with history and subject, messages to all and private ones, nick changes, roles
//! and affiliations (kick, ban, voice, membership), configuration (members-only, password,
//! moderated, persistent), destruction, invitations, XEP-0410 self-ping, XEP-0421 occupant ids,
//! discovery, and occupants leaving when their session ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_proto::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const SERVICE: &str = "conference.localhost";
const ROOM: &str = "lobby@conference.localhost";
const ALICE: &str = "alice@localhost/a";
const BOB: &str = "bob@localhost/b";
const CAROL: &str = "carol@localhost/c";
const MUC: &str = "http://jabber.org/protocol/muc";
const USER: &str = "http://jabber.org/protocol/muc#user";
const ADMIN: &str = "http://jabber.org/protocol/muc#admin";
const OWNER: &str = "http://jabber.org/protocol/muc#owner";

async fn server() -> TestServer {
    TestServer::with_users(&["alice", "bob", "carol"], PW).await
}

async fn online(server: &TestServer, user: &str, resource: &str) -> Client {
    server.online(user, PW, resource).await
}

/// Enters the room as `nick` with `extra` inside the MUC `<x/>`.
async fn send_join(c: &mut Client, nick: &str, extra: &str) {
    c.send_xml(&format!(
        "<presence to='{ROOM}/{nick}'><x xmlns='{MUC}'>{extra}</x></presence>"
    ))
    .await
    .unwrap();
}

/// The presence of the occupant `nick` as `to` gets it.
fn occupant(nick: &str, to: &str, item: &str, codes: &[u16]) -> String {
    let status: String = codes
        .iter()
        .map(|c| format!("<status code='{c}'/>"))
        .collect();
    format!(
        "<presence from='{ROOM}/{nick}' to='{to}'><x xmlns='{USER}'>{item}{status}</x>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></presence>"
    )
}

fn unavailable(nick: &str, to: &str, item: &str, codes: &[u16]) -> String {
    occupant(nick, to, item, codes).replacen("<presence ", "<presence type='unavailable' ", 1)
}

fn no_subject(to: &str) -> String {
    format!("<message from='{ROOM}' to='{to}' type='groupchat' id='{{*}}'><subject/></message>")
}

/// alice creates the room and accepts the default configuration (an instant room, §10.1.2).
async fn alice_creates(server: &TestServer) -> Client {
    let mut alice = online(server, "alice", "a").await;
    send_join(&mut alice, "alice", "").await;
    // §10.1.1: the creator is the owner; 201 says the room is new (170: it is archived).
    alice
        .expect(&occupant(
            "alice",
            ALICE,
            &format!("<item affiliation='owner' role='moderator' jid='{ALICE}'/>"),
            &[110, 170, 201],
        ))
        .await
        .unwrap();
    alice.expect(&no_subject(ALICE)).await.unwrap();
    alice
        .send_xml(&format!(
            "<iq type='set' id='create' to='{ROOM}'><query xmlns='{OWNER}'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='create' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    alice
}

/// `user` (not a moderator) enters an open room where alice is; alice sees the real JID.
async fn enters(server: &TestServer, alice: &mut Client, user: &str, res: &str) -> Client {
    let mut c = online(server, user, res).await;
    joins(&mut c, alice, user, res).await;
    c
}

/// [`enters`] with a session that is online already.
async fn joins(c: &mut Client, alice: &mut Client, user: &str, res: &str) {
    let full = format!("{user}@localhost/{res}");
    send_join(c, user, "<history maxstanzas='0'/>").await;
    c.expect(&occupant(
        "alice",
        &full,
        "<item affiliation='owner' role='moderator'/>",
        &[],
    ))
    .await
    .unwrap();
    alice
        .expect(&occupant(
            user,
            ALICE,
            &format!("<item affiliation='none' role='participant' jid='{full}'/>"),
            &[],
        ))
        .await
        .unwrap();
    c.expect(&occupant(
        user,
        &full,
        &format!("<item affiliation='none' role='participant' jid='{full}'/>"),
        &[110, 170],
    ))
    .await
    .unwrap();
    c.expect(&no_subject(&full)).await.unwrap();
}

async fn iq(c: &mut Client, to: &str, kind: &str, id: &str, inner: &str) {
    c.send_xml(&format!(
        "<iq type='{kind}' id='{id}' to='{to}'>{inner}</iq>"
    ))
    .await
    .unwrap();
}

fn iq_error(id: &str, from: &str, to: &str, error_type: &str, condition: &str) -> String {
    format!(
        "<iq type='error' id='{id}' from='{from}' to='{to}'><error type='{error_type}' by='{ROOM}'>\
         <{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></iq>"
    )
}

fn presence_error(nick: &str, to: &str, error_type: &str, condition: &str) -> String {
    format!(
        "<presence type='error' from='{ROOM}/{nick}' to='{to}'><error type='{error_type}' by='{ROOM}'>\
         <{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error>\
         <x xmlns='{MUC}'/></presence>"
    )
}

/// Submits a configuration form with these fields.
async fn configure(c: &mut Client, me: &str, fields: &[(&str, &str)]) {
    let fields: String = fields
        .iter()
        .map(|(v, val)| format!("<field var='{v}'><value>{val}</value></field>"))
        .collect();
    iq(
        c,
        ROOM,
        "set",
        "cfg",
        &format!(
            "<query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
             {fields}</x></query>"
        ),
    )
    .await;
    c.expect(&format!(
        "<iq type='result' id='cfg' from='{ROOM}' to='{me}'/>"
    ))
    .await
    .unwrap();
}

/// The configuration-change notice (§10.2.1) with these status codes.
fn config_notice(to: &str, codes: &[u16]) -> String {
    let status: String = codes
        .iter()
        .map(|c| format!("<status code='{c}'/>"))
        .collect();
    format!(
        "<message from='{ROOM}' to='{to}' type='groupchat' id='{{*}}'><x xmlns='{USER}'>{status}</x></message>"
    )
}

fn occupant_id_of(e: &Element) -> String {
    e.get_child("occupant-id", "urn:xmpp:occupant-id:0")
        .and_then(|o| o.attr("id"))
        .unwrap()
        .to_owned()
}

/// XEP-0045 §10.1.1–§10.1.2: a room is created by entering it; it stays locked (others get
/// `<item-not-found/>`) until its owner accepts the default configuration; then others enter
/// (§7.2.3: the occupants' presence, then their own with 110, then the subject, §7.2.16), and
/// only moderators see real JIDs in a semi-anonymous room (§7.2.4).
#[tokio::test]
async fn create_lock_and_enter() {
    let server = server().await;
    let mut alice = online(&server, "alice", "a").await;
    send_join(&mut alice, "alice", "").await;
    alice
        .expect(&occupant(
            "alice",
            ALICE,
            &format!("<item affiliation='owner' role='moderator' jid='{ALICE}'/>"),
            &[110, 170, 201],
        ))
        .await
        .unwrap();
    alice.expect(&no_subject(ALICE)).await.unwrap();
    let mut bob = online(&server, "bob", "b").await;
    send_join(&mut bob, "bob", "").await;
    bob.expect(&presence_error("bob", BOB, "cancel", "item-not-found"))
        .await
        .unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "create",
        &format!("<query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='create' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    joins(&mut bob, &mut alice, "bob", "b").await;
    // §7.2.1: no nick, no entry.
    let mut carol = online(&server, "carol", "c").await;
    carol
        .send_xml(&format!(
            "<presence to='{ROOM}'><x xmlns='{MUC}'/></presence>"
        ))
        .await
        .unwrap();
    carol
        .expect(&format!(
            "<presence type='error' from='{ROOM}' to='{CAROL}'><error type='modify' by='{ROOM}'>\
             <jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error><x xmlns='{MUC}'/></presence>"
        ))
        .await
        .unwrap();
}

/// §7.4: a message to all is reflected to every occupant, the sender too, from the sender's
/// occupant JID with its id (`muc#stable_id`), the room's `<stanza-id/>` (XEP-0359 §3: one
/// the sender forged with the room's name is dropped) and the sender's `<occupant-id/>`
/// (XEP-0421 §4: the same as in its presence; a forged one is dropped). Someone who is not in
/// the room gets `<not-acceptable/>`.
#[tokio::test]
async fn messages_to_all_are_reflected_with_ids() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = online(&server, "bob", "b").await;
    send_join(&mut bob, "bob", "").await;
    bob.expect(&occupant(
        "alice",
        BOB,
        "<item affiliation='owner' role='moderator'/>",
        &[],
    ))
    .await
    .unwrap();
    let seen = alice
        .expect(&occupant(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='participant' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
    let bob_id = occupant_id_of(&seen);
    bob.expect(&occupant(
        "bob",
        BOB,
        &format!("<item affiliation='none' role='participant' jid='{BOB}'/>"),
        &[110, 170],
    ))
    .await
    .unwrap();
    bob.expect(&no_subject(BOB)).await.unwrap();
    bob.send_xml(&format!(
        "<message to='{ROOM}' type='groupchat' id='m1'><body>Thrice the brinded cat hath mew'd.</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' id='forged' by='{ROOM}'/>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='forged'/></message>"
    ))
    .await
    .unwrap();
    let mut ids = Vec::new();
    for (c, me) in [(&mut alice, ALICE), (&mut bob, BOB)] {
        let m = c
            .expect(&format!(
                "<message from='{ROOM}/bob' to='{me}' type='groupchat' id='m1'>\
                 <body>Thrice the brinded cat hath mew'd.</body>\
                 <stanza-id xmlns='urn:xmpp:sid:0' id='{{*}}' by='{ROOM}'/>\
                 <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{bob_id}'/></message>"
            ))
            .await
            .unwrap();
        let sid = m.get_child("stanza-id", "urn:xmpp:sid:0").unwrap();
        assert_ne!(sid.attr("id"), Some("forged"));
        ids.push(sid.attr("id").unwrap().to_owned());
    }
    assert_eq!(ids[0], ids[1], "one stanza-id for every occupant");
    let mut carol = online(&server, "carol", "c").await;
    carol
        .send_xml(&format!(
            "<message to='{ROOM}' type='groupchat' id='x'><body>hi</body></message>"
        ))
        .await
        .unwrap();
    carol
        .expect(&format!(
            "<message type='error' id='x' from='{ROOM}' to='{CAROL}'><error type='modify' by='{ROOM}'>\
             <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></message>"
        ))
        .await
        .unwrap();
}

/// §8.1: a moderator sets the subject, everyone hears it from her occupant JID; a participant
/// may not (`<forbidden/>`) unless the room allows it. §7.2.15–§7.2.16: a newcomer gets the
/// history it asks for (`maxstanzas`, `maxchars`), each message with the room's `<delay/>`,
/// then the subject.
#[tokio::test]
async fn subject_and_history() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    bob.send_xml(&format!(
        "<message to='{ROOM}' type='groupchat' id='s0'><subject>Mine</subject></message>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<message type='error' id='s0' from='{ROOM}' to='{BOB}'><error type='auth' by='{ROOM}'>\
         <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></message>"
    ))
    .await
    .unwrap();
    alice
        .send_xml(&format!(
            "<message to='{ROOM}' type='groupchat' id='s1'><subject>Cauldron</subject></message>"
        ))
        .await
        .unwrap();
    for (c, me) in [(&mut alice, ALICE), (&mut bob, BOB)] {
        c.expect(&format!(
            "<message from='{ROOM}/alice' to='{me}' type='groupchat' id='s1'><subject>Cauldron</subject></message>"
        ))
        .await
        .unwrap();
    }
    for n in 1..=3 {
        alice
            .send_xml(&format!(
                "<message to='{ROOM}' type='groupchat' id='h{n}'><body>line {n}</body></message>"
            ))
            .await
            .unwrap();
        for c in [&mut alice, &mut bob] {
            c.recv_element().await.unwrap();
        }
    }
    // A chat state alone is reflected, and kept out of the history.
    alice
        .send_xml(&format!(
            "<message to='{ROOM}' type='groupchat' id='cs'><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ))
        .await
        .unwrap();
    bob.expect(&format!(
        "<message from='{ROOM}/alice' to='{BOB}' type='groupchat' id='cs'>\
         <active xmlns='http://jabber.org/protocol/chatstates'/>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></message>"
    ))
    .await
    .unwrap();
    alice.recv_element().await.unwrap();
    let mut carol = online(&server, "carol", "c").await;
    send_join(&mut carol, "carol", "<history maxstanzas='2'/>").await;
    carol
        .expect(&occupant(
            "alice",
            CAROL,
            "<item affiliation='owner' role='moderator'/>",
            &[],
        ))
        .await
        .unwrap();
    carol
        .expect(&occupant(
            "bob",
            CAROL,
            "<item affiliation='none' role='participant'/>",
            &[],
        ))
        .await
        .unwrap();
    carol.recv_element().await.unwrap(); // her own presence
    for n in 2..=3 {
        carol
            .expect(&format!(
                "<message from='{ROOM}/alice' to='{CAROL}' type='groupchat' id='h{n}'><body>line {n}</body>\
                 <stanza-id xmlns='urn:xmpp:sid:0' id='{{*}}' by='{ROOM}'/>\
                 <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/>\
                 <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{{*}}'/></message>"
            ))
            .await
            .unwrap();
    }
    carol
        .expect(&format!(
            "<message from='{ROOM}/alice' to='{CAROL}' type='groupchat' id='{{*}}'><subject>Cauldron</subject></message>"
        ))
        .await
        .unwrap();
    // maxchars='0': no history at all.
    let mut carol2 = online(&server, "carol", "c2").await;
    send_join(&mut carol2, "carol", "<history maxchars='0'/>").await;
    for _ in 0..3 {
        carol2.recv_element().await.unwrap(); // alice, bob, herself
    }
    carol2
        .expect(&format!(
            "<message from='{ROOM}/alice' to='carol@localhost/c2' type='groupchat' id='{{*}}'><subject>Cauldron</subject></message>"
        ))
        .await
        .unwrap();
}

/// §7.6: a nick change is an unavailable presence with the new nick and 303, then the
/// presence under the new nick, to everyone; §7.2.9 and §7.6: a nick another user holds is a
/// `<conflict/>`.
#[tokio::test]
async fn nick_changes_and_conflicts() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    let mut carol = online(&server, "carol", "c").await;
    send_join(&mut carol, "bob", "").await;
    carol
        .expect(&presence_error("bob", CAROL, "cancel", "conflict"))
        .await
        .unwrap();
    bob.send_xml(&format!("<presence to='{ROOM}/alice'/>"))
        .await
        .unwrap();
    bob.expect(&presence_error("alice", BOB, "cancel", "conflict"))
        .await
        .unwrap();
    bob.send_xml(&format!("<presence to='{ROOM}/robert'/>"))
        .await
        .unwrap();
    alice
        .expect(&unavailable(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='participant' jid='{BOB}' nick='robert'/>"),
            &[303],
        ))
        .await
        .unwrap();
    alice
        .expect(&occupant(
            "robert",
            ALICE,
            &format!("<item affiliation='none' role='participant' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
    bob.expect(&unavailable(
        "bob",
        BOB,
        &format!("<item affiliation='none' role='participant' jid='{BOB}' nick='robert'/>"),
        &[110, 303],
    ))
    .await
    .unwrap();
    bob.expect(&occupant(
        "robert",
        BOB,
        &format!("<item affiliation='none' role='participant' jid='{BOB}'/>"),
        &[110],
    ))
    .await
    .unwrap();
    // The old nick is free again.
    send_join(&mut carol, "bob", "<history maxstanzas='0'/>").await;
    carol.recv_element().await.unwrap();
    carol
        .expect(&occupant(
            "robert",
            CAROL,
            "<item affiliation='none' role='participant'/>",
            &[],
        ))
        .await
        .unwrap();
}

/// §7.5: a private message goes to the occupant from the sender's occupant JID, marked with
/// the MUC `<x/>`; of type groupchat it is a `<bad-request/>`, to a nick nobody has an
/// `<item-not-found/>`; the room's `muc#roomconfig_allowpm` may forbid it.
#[tokio::test]
async fn private_messages() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    bob.send_xml(&format!(
        "<message to='{ROOM}/alice' type='chat' id='pm1'><body>psst</body></message>"
    ))
    .await
    .unwrap();
    alice
        .expect(&format!(
            "<message from='{ROOM}/bob' to='{ALICE}' type='chat' id='pm1'><body>psst</body>\
             <x xmlns='{USER}'/><occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></message>"
        ))
        .await
        .unwrap();
    for (to, id, error_type, condition, ty) in [
        ("alice", "pm2", "modify", "bad-request", "groupchat"),
        ("nobody", "pm3", "cancel", "item-not-found", "chat"),
    ] {
        bob.send_xml(&format!(
            "<message to='{ROOM}/{to}' type='{ty}' id='{id}'><body>x</body></message>"
        ))
        .await
        .unwrap();
        bob.expect(&format!(
            "<message type='error' id='{id}' from='{ROOM}/{to}' to='{BOB}'><error type='{error_type}' by='{ROOM}'>\
             <{condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></message>"
        ))
        .await
        .unwrap();
    }
    configure(
        &mut alice,
        ALICE,
        &[("muc#roomconfig_allowpm", "moderators")],
    )
    .await;
    for (c, me) in [(&mut alice, ALICE), (&mut bob, BOB)] {
        c.expect(&config_notice(me, &[104])).await.unwrap();
    }
    bob.send_xml(&format!(
        "<message to='{ROOM}/alice' type='chat' id='pm4'><body>psst</body></message>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<message type='error' id='pm4' from='{ROOM}/alice' to='{BOB}'><error type='auth' by='{ROOM}'>\
         <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></message>"
    ))
    .await
    .unwrap();
}

/// §8.2: a moderator kicks (307, with actor and reason, to the kicked occupant with 110 too);
/// a participant may not (`<forbidden/>`). §9.1: an admin bans by JID (301); the banned user
/// cannot come back (`<forbidden/>`, §7.2.8). §9.5, §10.6: lists by affiliation are for admins.
#[tokio::test]
async fn kick_ban_and_lists() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    let mut carol = online(&server, "carol", "c").await;
    send_join(&mut carol, "carol", "<history maxstanzas='0'/>").await;
    carol
        .expect(&occupant(
            "alice",
            CAROL,
            "<item affiliation='owner' role='moderator'/>",
            &[],
        ))
        .await
        .unwrap();
    carol
        .expect(&occupant(
            "bob",
            CAROL,
            "<item affiliation='none' role='participant'/>",
            &[],
        ))
        .await
        .unwrap();
    alice
        .expect(&occupant(
            "carol",
            ALICE,
            &format!("<item affiliation='none' role='participant' jid='{CAROL}'/>"),
            &[],
        ))
        .await
        .unwrap();
    bob.expect(&occupant(
        "carol",
        BOB,
        "<item affiliation='none' role='participant'/>",
        &[],
    ))
    .await
    .unwrap();
    carol.recv_element().await.unwrap(); // herself
    carol.recv_element().await.unwrap(); // the subject
    iq(
        &mut bob,
        ROOM,
        "set",
        "k0",
        &format!("<query xmlns='{ADMIN}'><item nick='carol' role='none'/></query>"),
    )
    .await;
    bob.expect(&iq_error("k0", ROOM, BOB, "auth", "forbidden"))
        .await
        .unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "k1",
        &format!(
            "<query xmlns='{ADMIN}'><item nick='carol' role='none'><reason>Avaunt</reason></item></query>"
        ),
    )
    .await;
    carol
        .expect(&unavailable(
            "carol",
            CAROL,
            &format!(
                "<item affiliation='none' role='none' jid='{CAROL}'><actor nick='alice'/><reason>Avaunt</reason></item>"
            ),
            &[110, 307],
        ))
        .await
        .unwrap();
    alice
        .expect(&unavailable(
            "carol",
            ALICE,
            &format!(
                "<item affiliation='none' role='none' jid='{CAROL}'><actor nick='alice'/><reason>Avaunt</reason></item>"
            ),
            &[307],
        ))
        .await
        .unwrap();
    bob.expect(&unavailable(
        "carol",
        BOB,
        "<item affiliation='none' role='none'><actor nick='alice'/><reason>Avaunt</reason></item>",
        &[307],
    ))
    .await
    .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='k1' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "b1",
        &format!(
            "<query xmlns='{ADMIN}'><item jid='bob@localhost' affiliation='outcast'/></query>"
        ),
    )
    .await;
    bob.expect(&unavailable(
        "bob",
        BOB,
        &format!(
            "<item affiliation='outcast' role='none' jid='{BOB}'><actor nick='alice'/></item>"
        ),
        &[110, 301],
    ))
    .await
    .unwrap();
    alice
        .expect(&unavailable(
            "bob",
            ALICE,
            &format!(
                "<item affiliation='outcast' role='none' jid='{BOB}'><actor nick='alice'/></item>"
            ),
            &[301],
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='b1' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    send_join(&mut bob, "bob", "").await;
    bob.expect(&presence_error("bob", BOB, "auth", "forbidden"))
        .await
        .unwrap();
    iq(
        &mut alice,
        ROOM,
        "get",
        "l1",
        &format!("<query xmlns='{ADMIN}'><item affiliation='outcast'/></query>"),
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='l1' from='{ROOM}' to='{ALICE}'><query xmlns='{ADMIN}'>\
             <item affiliation='outcast' jid='bob@localhost'/></query></iq>"
        ))
        .await
        .unwrap();
    iq(
        &mut carol,
        ROOM,
        "get",
        "l2",
        &format!("<query xmlns='{ADMIN}'><item affiliation='owner'/></query>"),
    )
    .await;
    carol
        .expect(&iq_error("l2", ROOM, CAROL, "auth", "forbidden"))
        .await
        .unwrap();
    // §10.6: the last owner cannot leave the room without one.
    iq(
        &mut alice,
        ROOM,
        "set",
        "o1",
        &format!(
            "<query xmlns='{ADMIN}'><item jid='alice@localhost' affiliation='admin'/></query>"
        ),
    )
    .await;
    alice
        .expect(&iq_error("o1", ROOM, ALICE, "cancel", "conflict"))
        .await
        .unwrap();
}

/// §10.2 and §9.3–§9.4: a members-only room refuses non-members (`<registration-required/>`,
/// §7.2.7), removes those present when it becomes so (322); a member enters, and leaves with
/// 321 when the membership is revoked. §7.2.6: a password room needs the password
/// (`<not-authorized/>`).
#[tokio::test]
async fn members_only_and_password() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    configure(&mut alice, ALICE, &[("muc#roomconfig_membersonly", "1")]).await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    bob.expect(&config_notice(BOB, &[104])).await.unwrap();
    bob.expect(&unavailable(
        "bob",
        BOB,
        &format!("<item affiliation='none' role='none' jid='{BOB}'/>"),
        &[110, 322],
    ))
    .await
    .unwrap();
    alice
        .expect(&unavailable(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='none' jid='{BOB}'/>"),
            &[322],
        ))
        .await
        .unwrap();
    send_join(&mut bob, "bob", "").await;
    bob.expect(&presence_error("bob", BOB, "auth", "registration-required"))
        .await
        .unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "m1",
        &format!("<query xmlns='{ADMIN}'><item jid='bob@localhost' affiliation='member'/></query>"),
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='m1' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    send_join(&mut bob, "bob", "<history maxstanzas='0'/>").await;
    bob.recv_element().await.unwrap(); // alice
    alice
        .expect(&occupant(
            "bob",
            ALICE,
            &format!("<item affiliation='member' role='participant' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
    bob.recv_element().await.unwrap(); // himself
    bob.recv_element().await.unwrap(); // subject
    iq(
        &mut alice,
        ROOM,
        "set",
        "m2",
        &format!("<query xmlns='{ADMIN}'><item jid='bob@localhost' affiliation='none'/></query>"),
    )
    .await;
    bob.expect(&unavailable(
        "bob",
        BOB,
        &format!("<item affiliation='none' role='none' jid='{BOB}'><actor nick='alice'/></item>"),
        &[110, 321],
    ))
    .await
    .unwrap();
    alice
        .expect(&unavailable(
            "bob",
            ALICE,
            &format!(
                "<item affiliation='none' role='none' jid='{BOB}'><actor nick='alice'/></item>"
            ),
            &[321],
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<iq type='result' id='m2' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    // A password, for everyone.
    configure(
        &mut alice,
        ALICE,
        &[
            ("muc#roomconfig_membersonly", "0"),
            ("muc#roomconfig_passwordprotectedroom", "1"),
            ("muc#roomconfig_roomsecret", "cauldron"),
        ],
    )
    .await;
    let mut carol = online(&server, "carol", "c").await;
    send_join(&mut carol, "carol", "<password>toil</password>").await;
    carol
        .expect(&presence_error("carol", CAROL, "auth", "not-authorized"))
        .await
        .unwrap();
    send_join(&mut carol, "carol", "<password>cauldron</password>").await;
    carol
        .expect(&occupant(
            "alice",
            CAROL,
            "<item affiliation='owner' role='moderator'/>",
            &[],
        ))
        .await
        .unwrap();
}

/// §8.3–§8.4: in a moderated room a newcomer without affiliation is a visitor, whose messages
/// to all are `<forbidden/>`, until a moderator gives voice.
#[tokio::test]
async fn moderated_room_and_voice() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    configure(&mut alice, ALICE, &[("muc#roomconfig_moderatedroom", "1")]).await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    let mut bob = online(&server, "bob", "b").await;
    send_join(&mut bob, "bob", "").await;
    bob.recv_element().await.unwrap(); // alice
    alice
        .expect(&occupant(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='visitor' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
    bob.recv_element().await.unwrap();
    bob.recv_element().await.unwrap();
    bob.send_xml(&format!(
        "<message to='{ROOM}' type='groupchat' id='v1'><body>hear me</body></message>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<message type='error' id='v1' from='{ROOM}' to='{BOB}'><error type='auth' by='{ROOM}'>\
         <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></message>"
    ))
    .await
    .unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "v2",
        &format!("<query xmlns='{ADMIN}'><item nick='bob' role='participant'/></query>"),
    )
    .await;
    bob.expect(&occupant(
        "bob",
        BOB,
        &format!(
            "<item affiliation='none' role='participant' jid='{BOB}'><actor nick='alice'/></item>"
        ),
        &[110],
    ))
    .await
    .unwrap();
}

/// §10.9: the owner destroys the room; every occupant leaves with the `<destroy/>` naming the
/// alternate venue and the reason; the room is gone (`<item-not-found/>`, §6.4).
#[tokio::test]
async fn destroy_with_alternate_venue() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    iq(
        &mut alice,
        ROOM,
        "set",
        "d1",
        &format!(
            "<query xmlns='{OWNER}'><destroy jid='coven@{SERVICE}'><reason>Moved</reason></destroy></query>"
        ),
    )
    .await;
    for (c, me, nick) in [(&mut bob, BOB, "bob"), (&mut alice, ALICE, "alice")] {
        c.expect(&format!(
            "<presence type='unavailable' from='{ROOM}/{nick}' to='{me}'><x xmlns='{USER}'>\
             <item affiliation='none' role='none'/><destroy jid='coven@{SERVICE}'><reason>Moved</reason></destroy>\
             <status code='110'/></x></presence>"
        ))
        .await
        .unwrap();
    }
    alice
        .expect(&format!(
            "<iq type='result' id='d1' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    iq(
        &mut bob,
        ROOM,
        "get",
        "i1",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    bob.expect(&format!(
        "<iq type='error' id='i1' from='{ROOM}' to='{BOB}'><error type='cancel'>\
         <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ))
    .await
    .unwrap();
}

/// §7.8.2: a mediated invitation reaches the invitee from the room with the inviter's JID;
/// the decline reaches the inviter. XEP-0249 direct invitations pass between users untouched.
#[tokio::test]
async fn invitations() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = online(&server, "bob", "b").await;
    alice
        .send_xml(&format!(
            "<message to='{ROOM}' id='inv1'><x xmlns='{USER}'><invite to='bob@localhost'>\
             <reason>Join us</reason></invite></x></message>"
        ))
        .await
        .unwrap();
    bob.expect(&format!(
        "<message from='{ROOM}' to='bob@localhost' id='inv1'><x xmlns='{USER}'>\
         <invite from='{ALICE}'><reason>Join us</reason></invite></x></message>"
    ))
    .await
    .unwrap();
    bob.send_xml(&format!(
        "<message to='{ROOM}' id='dec1'><x xmlns='{USER}'><decline to='{ALICE}'>\
         <reason>Busy</reason></decline></x></message>"
    ))
    .await
    .unwrap();
    alice
        .expect(&format!(
            "<message from='{ROOM}' to='{ALICE}' id='{{*}}'><x xmlns='{USER}'>\
             <decline from='bob@localhost'><reason>Busy</reason></decline></x></message>"
        ))
        .await
        .unwrap();
    alice
        .send_xml(&format!(
            "<message to='bob@localhost' id='dir1'><x xmlns='jabber:x:conference' jid='{ROOM}' reason='Come'/></message>"
        ))
        .await
        .unwrap();
    bob.expect(&format!(
        "<message to='bob@localhost' id='dir1' from='{ALICE}'><x xmlns='jabber:x:conference' jid='{ROOM}' reason='Come'/></message>"
    ))
    .await
    .unwrap();
}

/// XEP-0410 §3: a ping to one's own occupant JID is answered by the room; someone not in the
/// room gets `<not-acceptable/>`.
#[tokio::test]
async fn self_ping() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    iq(
        &mut alice,
        &format!("{ROOM}/alice"),
        "get",
        "p1",
        "<ping xmlns='urn:xmpp:ping'/>",
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='p1' from='{ROOM}/alice' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    let mut bob = online(&server, "bob", "b").await;
    iq(
        &mut bob,
        &format!("{ROOM}/bob"),
        "get",
        "p2",
        "<ping xmlns='urn:xmpp:ping'/>",
    )
    .await;
    bob.expect(&format!(
        "<iq type='error' id='p2' from='{ROOM}/bob' to='{BOB}'><error type='modify' by='{ROOM}'>\
         <not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></iq>"
    ))
    .await
    .unwrap();
}

/// §6.1, §6.3, §6.4: the server lists the service; the service says what it is and lists the
/// public rooms; a room shows its identity, features (`muc_*` from its configuration) and
/// `muc#roominfo` form.
#[tokio::test]
async fn discovery() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    configure(
        &mut alice,
        ALICE,
        &[
            ("muc#roomconfig_roomname", "The Lobby"),
            ("muc#roomconfig_roomdesc", "Chatter"),
        ],
    )
    .await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    iq(
        &mut alice,
        "localhost",
        "get",
        "s1",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    )
    .await;
    let items = alice.recv_element().await.unwrap();
    let listed = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .children()
        .any(|i| i.attr("jid") == Some(SERVICE));
    assert!(listed, "{items:?}");
    iq(
        &mut alice,
        SERVICE,
        "get",
        "s2",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='s2' from='{SERVICE}' to='{ALICE}'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='conference' type='text' name='Chatrooms'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='{MUC}'/>\
             <feature var='http://jabber.org/protocol/muc#unique'/>\
             <feature var='urn:xmpp:ping'/>\
             <feature var='vcard-temp'/></query></iq>"
        ))
        .await
        .unwrap();
    iq(
        &mut alice,
        SERVICE,
        "get",
        "s3",
        "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='s3' from='{SERVICE}' to='{ALICE}'><query xmlns='http://jabber.org/protocol/disco#items'>\
             <item jid='{ROOM}' name='The Lobby'/></query></iq>"
        ))
        .await
        .unwrap();
    iq(
        &mut alice,
        ROOM,
        "get",
        "s4",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='s4' from='{ROOM}' to='{ALICE}'><query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='conference' type='text' name='The Lobby'/>\
             <feature var='http://jabber.org/protocol/commands'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='{MUC}'/>\
             <feature var='http://jabber.org/protocol/muc#request'/>\
             <feature var='http://jabber.org/protocol/muc#self-ping-optimization'/>\
             <feature var='http://jabber.org/protocol/muc#stable_id'/>\
             <feature var='jabber:iq:register'/>\
             <feature var='muc_open'/>\
             <feature var='muc_public'/>\
             <feature var='muc_semianonymous'/>\
             <feature var='muc_temporary'/>\
             <feature var='muc_unmoderated'/>\
             <feature var='muc_unsecured'/>\
             <feature var='urn:xmpp:fulltext:0'/>\
             <feature var='urn:xmpp:hats:0'/>\
             <feature var='urn:xmpp:mam:2'/>\
             <feature var='urn:xmpp:mam:2#extended'/>\
             <feature var='urn:xmpp:message-moderate:1'/>\
             <feature var='urn:xmpp:occupant-id:0'/>\
             <feature var='urn:xmpp:ping'/>\
             <feature var='urn:xmpp:sid:0'/>\
             <feature var='vcard-temp'/>\
             <x xmlns='jabber:x:data' type='result'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roominfo</value></field>\
             <field var='muc#roominfo_description'><value>Chatter</value></field>\
             <field var='muc#roominfo_occupants'><value>1</value></field>\
             <field var='muc#roominfo_subject'><value/></field>\
             <field var='muc#roominfo_subjectmod'><value>0</value></field>\
             <field var='muc#maxhistoryfetch'><value>20</value></field>\
             <field var='muc#roomconfig_roomname'><value>The Lobby</value></field>\
             <field var='muc#roomconfig_allowinvites'><value>0</value></field>\
             <field var='muc#roominfo_avatarhash'/>\
             <field var='hats#hash'/>\
             </x></query></iq>"
        ))
        .await
        .unwrap();
}

/// The session of an occupant ends (its stream closes): the room sends its unavailable
/// presence to the others. A second session of the same user under the same nick (§7.2.1)
/// leaving alone tells no one else.
#[tokio::test]
async fn ended_sessions_leave() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let bob = enters(&server, &mut alice, "bob", "b").await;
    let mut bob2 = online(&server, "bob", "b2").await;
    send_join(&mut bob2, "bob", "<history maxstanzas='0'/>").await;
    bob2.recv_element().await.unwrap(); // alice
    bob2.expect(&occupant(
        "bob",
        "bob@localhost/b2",
        "<item affiliation='none' role='participant' jid='{*}'/>",
        &[110, 170],
    ))
    .await
    .unwrap();
    bob2.recv_element().await.unwrap(); // subject
    bob2.close().await.unwrap();
    alice
        .expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
    bob.close().await.unwrap();
    alice
        .expect(&unavailable(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='none' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
}

/// §10.2: a persistent room, its configuration, subject and affiliations survive a restart of
/// the server; it is empty then, and its owner enters it without creating it.
#[tokio::test]
async fn persistent_rooms_survive_restart() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    configure(
        &mut alice,
        ALICE,
        &[
            ("muc#roomconfig_persistentroom", "1"),
            ("muc#roomconfig_roomname", "Kept"),
        ],
    )
    .await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "m1",
        &format!("<query xmlns='{ADMIN}'><item jid='bob@localhost' affiliation='member'/></query>"),
    )
    .await;
    alice.recv_element().await.unwrap();
    alice.close().await.unwrap();
    let server = server.restart().await;
    let mut alice = online(&server, "alice", "a").await;
    send_join(&mut alice, "alice", "").await;
    alice
        .expect(&occupant(
            "alice",
            ALICE,
            &format!("<item affiliation='owner' role='moderator' jid='{ALICE}'/>"),
            &[110, 170],
        ))
        .await
        .unwrap();
    alice.expect(&no_subject(ALICE)).await.unwrap();
    iq(
        &mut alice,
        ROOM,
        "get",
        "l1",
        &format!("<query xmlns='{ADMIN}'><item affiliation='member'/></query>"),
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='l1' from='{ROOM}' to='{ALICE}'><query xmlns='{ADMIN}'>\
             <item affiliation='member' jid='bob@localhost'/></query></iq>"
        ))
        .await
        .unwrap();
}

const MAM: &str = "urn:xmpp:mam:2";

/// Sends a message to all from `c` and reads its reflection by every client in `all`; the
/// room's stanza id of it.
async fn say(c: &mut Client, id: &str, body: &str) {
    c.send_xml(&format!(
        "<message to='{ROOM}' type='groupchat' id='{id}'><body>{body}</body></message>"
    ))
    .await
    .unwrap();
}

fn stanza_id(m: &Element) -> String {
    m.get_child("stanza-id", "urn:xmpp:sid:0")
        .and_then(|s| s.attr("id"))
        .unwrap()
        .to_owned()
}

/// XEP-0313 §4 on the room's JID (XEP-0045 rooms archive their messages to all): an occupant
/// queries the room's archive and gets each message as it was reflected, forwarded from the
/// room with its stanza id and time, then `<fin/>`; `with` an occupant JID filters by nick
/// (§4.1.1). In a members-only room, someone who is neither an occupant nor a member gets
/// `<forbidden/>`.
#[tokio::test]
async fn the_room_archive() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    say(&mut alice, "a1", "Double, double toil and trouble").await;
    let first = stanza_id(&alice.recv_element().await.unwrap());
    bob.recv_element().await.unwrap();
    say(&mut bob, "b1", "Fire burn and cauldron bubble").await;
    let second = stanza_id(&bob.recv_element().await.unwrap());
    alice.recv_element().await.unwrap();
    iq(
        &mut bob,
        ROOM,
        "set",
        "q1",
        &format!("<query xmlns='{MAM}' queryid='f27'/>"),
    )
    .await;
    for (id, nick, mid, body) in [
        (&first, "alice", "a1", "Double, double toil and trouble"),
        (&second, "bob", "b1", "Fire burn and cauldron bubble"),
    ] {
        bob.expect(&format!(
            "<message from='{ROOM}' to='{BOB}' id='{{*}}'><result xmlns='{MAM}' queryid='f27' id='{id}'>\
             <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{{*}}'/>\
             <message xmlns='jabber:client' from='{ROOM}/{nick}' type='groupchat' id='{mid}'><body>{body}</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' id='{id}' by='{ROOM}'/>\
             <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></message></forwarded></result></message>"
        ))
        .await
        .unwrap();
    }
    bob.expect(&format!(
        "<iq type='result' id='q1' from='{ROOM}' to='{BOB}'><fin xmlns='{MAM}' complete='true'>\
         <set xmlns='http://jabber.org/protocol/rsm'><first index='0'>{first}</first><last>{second}</last>\
         <count>2</count></set></fin></iq>"
    ))
    .await
    .unwrap();
    // Only bob's messages.
    iq(
        &mut alice,
        ROOM,
        "set",
        "q2",
        &format!(
            "<query xmlns='{MAM}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{MAM}</value></field>\
             <field var='with'><value>{ROOM}/bob</value></field></x></query>"
        ),
    )
    .await;
    let r = alice.recv_element().await.unwrap();
    let forwarded = r
        .get_child("result", MAM)
        .and_then(|x| x.get_child("forwarded", "urn:xmpp:forward:0"))
        .and_then(|f| f.get_child("message", "jabber:client"))
        .unwrap();
    assert_eq!(forwarded.attr("id"), Some("b1"));
    alice
        .expect(&format!(
            "<iq type='result' id='q2' from='{ROOM}' to='{ALICE}'><fin xmlns='{MAM}' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'><first index='0'>{second}</first><last>{second}</last>\
             <count>1</count></set></fin></iq>"
        ))
        .await
        .unwrap();
    configure(&mut alice, ALICE, &[("muc#roomconfig_membersonly", "1")]).await;
    let mut carol = online(&server, "carol", "c").await;
    iq(
        &mut carol,
        ROOM,
        "set",
        "q3",
        &format!("<query xmlns='{MAM}'/>"),
    )
    .await;
    carol
        .expect(&iq_error("q3", ROOM, CAROL, "auth", "forbidden"))
        .await
        .unwrap();
}

/// XEP-0425 §4: a moderator retracts a message by the room's stanza id; every occupant gets the
/// retraction from the room, naming the moderator; the archive keeps a tombstone instead
/// (§5) and the history no longer shows it. A participant may not (`<forbidden/>`).
#[tokio::test]
async fn moderation_retracts_messages() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    say(&mut bob, "spam", "Buy cauldrons").await;
    let id = stanza_id(&bob.recv_element().await.unwrap());
    alice.recv_element().await.unwrap();
    let moderate = format!(
        "<moderate xmlns='urn:xmpp:message-moderate:1' id='{id}'>\
         <retract xmlns='urn:xmpp:message-retract:1'/><reason>Spam</reason></moderate>"
    );
    iq(&mut bob, ROOM, "set", "r0", &moderate).await;
    bob.expect(&iq_error("r0", ROOM, BOB, "auth", "forbidden"))
        .await
        .unwrap();
    iq(&mut alice, ROOM, "set", "r1", &moderate).await;
    for (c, me) in [(&mut alice, ALICE), (&mut bob, BOB)] {
        c.expect(&format!(
            "<message from='{ROOM}' to='{me}' type='groupchat' id='{{*}}'>\
             <retract xmlns='urn:xmpp:message-retract:1' id='{id}'>\
             <moderated xmlns='urn:xmpp:message-moderate:1' by='{ROOM}/alice'>\
             <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></moderated>\
             <reason>Spam</reason></retract>\
             <stanza-id xmlns='urn:xmpp:sid:0' id='{{*}}' by='{ROOM}'/></message>"
        ))
        .await
        .unwrap();
    }
    alice
        .expect(&format!(
            "<iq type='result' id='r1' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    iq(
        &mut bob,
        ROOM,
        "set",
        "q1",
        &format!("<query xmlns='{MAM}'><set xmlns='http://jabber.org/protocol/rsm'><max>1</max></set></query>"),
    )
    .await;
    bob.expect(&format!(
        "<message from='{ROOM}' to='{BOB}' id='{{*}}'><result xmlns='{MAM}' id='{id}'>\
         <forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='{{*}}'/>\
         <message xmlns='jabber:client' type='groupchat' from='{ROOM}/bob' id='spam'>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/>\
         <retracted xmlns='urn:xmpp:message-retract:1' stamp='{{*}}'>\
         <moderated xmlns='urn:xmpp:message-moderate:1' by='{ROOM}/alice'>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></moderated>\
         <reason>Spam</reason></retracted></message>\
         </forwarded></result></message>"
    ))
    .await
    .unwrap();
    bob.recv_element().await.unwrap(); // fin
    // A newcomer's history holds neither the message nor the notice.
    let mut carol = online(&server, "carol", "c").await;
    send_join(&mut carol, "carol", "").await;
    for _ in 0..3 {
        carol.recv_element().await.unwrap(); // alice, bob, herself
    }
    carol.expect(&no_subject(CAROL)).await.unwrap();
}

/// A persistent room's history outlives the server: loaded from the archive, it is what a
/// newcomer gets (§7.2.15) after a restart. A temporary room vanishes with its last occupant
/// (§10.1), its archive with it: entering it again creates a new room (201).
#[tokio::test]
async fn history_survives_restart_and_temporary_rooms_vanish() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    configure(&mut alice, ALICE, &[("muc#roomconfig_persistentroom", "1")]).await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    say(&mut alice, "k1", "Kept").await;
    alice.recv_element().await.unwrap();
    alice.close().await.unwrap();
    let server = server.restart().await;
    let mut bob = online(&server, "bob", "b").await;
    send_join(&mut bob, "bob", "").await;
    bob.recv_element().await.unwrap(); // himself
    bob.expect(&format!(
        "<message from='{ROOM}/alice' to='{BOB}' type='groupchat' id='k1'><body>Kept</body>\
         <stanza-id xmlns='urn:xmpp:sid:0' id='{{*}}' by='{ROOM}'/>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/>\
         <delay xmlns='urn:xmpp:delay' from='{ROOM}' stamp='{{*}}'/></message>"
    ))
    .await
    .unwrap();
    bob.expect(&no_subject(BOB)).await.unwrap();
    // A temporary room.
    let temp = format!("temp@{SERVICE}");
    bob.send_xml(&format!(
        "<presence to='{temp}/bob'><x xmlns='{MUC}'/></presence>"
    ))
    .await
    .unwrap();
    bob.recv_element().await.unwrap(); // himself, 201
    bob.recv_element().await.unwrap(); // subject
    iq(
        &mut bob,
        &temp,
        "set",
        "c1",
        &format!("<query xmlns='{OWNER}'><x xmlns='jabber:x:data' type='submit'/></query>"),
    )
    .await;
    bob.recv_element().await.unwrap();
    bob.send_xml(&format!(
        "<message to='{temp}' type='groupchat' id='t1'><body>gone soon</body></message>"
    ))
    .await
    .unwrap();
    bob.recv_element().await.unwrap();
    bob.send_xml(&format!("<presence to='{temp}/bob' type='unavailable'/>"))
        .await
        .unwrap();
    bob.recv_element().await.unwrap();
    bob.send_xml(&format!(
        "<presence to='{temp}/bob'><x xmlns='{MUC}'/></presence>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<presence from='{temp}/bob' to='{BOB}'><x xmlns='{USER}'>\
         <item affiliation='owner' role='moderator' jid='{BOB}'/>\
         <status code='110'/><status code='170'/><status code='201'/></x>\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></presence>"
    ))
    .await
    .unwrap();
    bob.expect(&format!(
        "<message from='{temp}' to='{BOB}' type='groupchat' id='{{*}}'><subject/></message>"
    ))
    .await
    .unwrap();
}

/// `[muc] occupant_rate`/`occupant_burst`: an occupant that sends faster than its limit gets
/// `<resource-constraint/>` of type `wait` (RFC 6120 §8.3.3.18) for the message that is over it;
/// the others are reflected.
#[tokio::test]
async fn occupants_have_a_rate_limit() {
    let server = TestServer::start_with(|c| {
        c.muc.occupant_rate = 1;
        c.muc.occupant_burst = 2;
    })
    .await;
    for u in ["alice", "bob", "carol"] {
        server.add_user(u, PW).await;
    }
    let mut alice = alice_creates(&server).await;
    for n in 1..=2 {
        say(&mut alice, &format!("r{n}"), "quick").await;
        alice.recv_element().await.unwrap();
    }
    say(&mut alice, "r3", "too quick").await;
    alice
        .expect(&format!(
            "<message type='error' id='r3' from='{ROOM}' to='{ALICE}'><error type='wait' by='{ROOM}'>\
             <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error></message>"
        ))
        .await
        .unwrap();
}

/// XEP-0486 §4: an owner sets the room's vCard with a photo (a participant may not:
/// `<forbidden/>`); occupants hear that the configuration changed (104); anyone reads the vCard
/// from the room's JID, and the room's disco#info carries the photo's SHA-1 (XEP-0153 §4.1) in
/// `muc#roominfo_avatarhash`.
#[tokio::test]
async fn room_avatars() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    // A tiny GIF, whose SHA-1 is below.
    let vcard = "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/gif</TYPE>\
                 <BINVAL>R0lGODlhAQABAAAAACw=</BINVAL></PHOTO></vCard>";
    iq(&mut bob, ROOM, "set", "v0", vcard).await;
    bob.expect(&iq_error("v0", ROOM, BOB, "auth", "forbidden"))
        .await
        .unwrap();
    iq(&mut alice, ROOM, "set", "v1", vcard).await;
    alice
        .expect(&format!(
            "<iq type='result' id='v1' from='{ROOM}' to='{ALICE}'/>"
        ))
        .await
        .unwrap();
    for (c, me) in [(&mut alice, ALICE), (&mut bob, BOB)] {
        c.expect(&config_notice(me, &[104])).await.unwrap();
    }
    let mut carol = online(&server, "carol", "c").await;
    iq(&mut carol, ROOM, "get", "v2", "<vCard xmlns='vcard-temp'/>").await;
    carol
        .expect(&format!(
            "<iq type='result' id='v2' from='{ROOM}' to='{CAROL}'>{vcard}</iq>"
        ))
        .await
        .unwrap();
    iq(
        &mut carol,
        ROOM,
        "get",
        "v3",
        "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    )
    .await;
    let info = carol.recv_element().await.unwrap();
    let hash = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .and_then(|q| q.get_child("x", "jabber:x:data"))
        .and_then(|x| {
            x.children()
                .find(|f| f.attr("var") == Some("muc#roominfo_avatarhash"))
        })
        .and_then(|f| f.get_child("value", "jabber:x:data"))
        .map(Element::text)
        .unwrap();
    assert_eq!(hash, "470f22af41a0856eff4fa6dd8b394a81149cfbd6");
}

const COMMANDS: &str = "http://jabber.org/protocol/commands";

/// A hats command (XEP-0050 `execute`) with a submitted form of these fields.
fn hat_command(node: &str, fields: &[(&str, &str)]) -> String {
    let fields: String = fields
        .iter()
        .map(|(v, val)| format!("<field var='{v}'><value>{val}</value></field>"))
        .collect();
    format!(
        "<command xmlns='{COMMANDS}' action='execute' node='urn:xmpp:hats:commands:{node}'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:hats:commands</value></field>\
         {fields}</x></command>"
    )
}

fn completed(id: &str, node: &str) -> String {
    format!(
        "<iq type='result' id='{id}' from='{ROOM}' to='{ALICE}'><command xmlns='{COMMANDS}' \
         node='urn:xmpp:hats:commands:{node}' sessionid='{{*}}' status='completed'/></iq>"
    )
}

/// XEP-0317: the room lists its hats commands (XEP-0050 §2.2); an owner creates a hat (the
/// command without a form gets the form, §4.1), gives it to a participant, whose presence
/// then shows it to everyone (§3); a participant may not create hats (`<forbidden/>`); the hat
/// destroyed, the presence shows it no more and everyone hears the configuration changed.
#[tokio::test]
async fn hats() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    iq(
        &mut alice,
        ROOM,
        "get",
        "h0",
        &format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS}'/>"),
    )
    .await;
    let items = alice.recv_element().await.unwrap();
    let nodes: Vec<&str> = items
        .get_child("query", "http://jabber.org/protocol/disco#items")
        .unwrap()
        .children()
        .filter_map(|i| i.attr("node"))
        .collect();
    assert!(
        nodes.contains(&"urn:xmpp:hats:commands:create"),
        "{nodes:?}"
    );
    iq(
        &mut alice,
        ROOM,
        "set",
        "h1",
        &format!(
            "<command xmlns='{COMMANDS}' action='execute' node='urn:xmpp:hats:commands:create'/>"
        ),
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='h1' from='{ROOM}' to='{ALICE}'><command xmlns='{COMMANDS}' \
             node='urn:xmpp:hats:commands:create' sessionid='{{*}}' status='executing'>\
             <x xmlns='jabber:x:data' type='form'><title>Creating a Hat</title>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:hats:commands</value></field>\
             <field var='hats#title' type='text-single' label='Hat Title'><required/></field>\
             <field var='hats#uri' type='text-single' label='Hat URI'><required/></field>\
             <field var='hats#hue' type='text-single' label='Hat Hue'/></x></command></iq>"
        ))
        .await
        .unwrap();
    let uri = "http://example.org/hats#scribe";
    let create = hat_command(
        "create",
        &[
            ("hats#title", "Scribe"),
            ("hats#uri", uri),
            ("hats#hue", "120"),
        ],
    );
    iq(&mut bob, ROOM, "set", "h2", &create).await;
    bob.expect(&iq_error("h2", ROOM, BOB, "auth", "forbidden"))
        .await
        .unwrap();
    iq(&mut alice, ROOM, "set", "h3", &create).await;
    for (c, me) in [(&mut alice, ALICE), (&mut bob, BOB)] {
        c.expect(&config_notice(me, &[104])).await.unwrap();
    }
    alice.expect(&completed("h3", "create")).await.unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "h4",
        &hat_command(
            "assign",
            &[("hats#jid", "bob@localhost"), ("hats#uri", uri)],
        ),
    )
    .await;
    let hats =
        format!("<hats xmlns='urn:xmpp:hats:0'><hat title='Scribe' uri='{uri}' hue='120'/></hats>");
    alice
        .expect(&format!(
            "<presence from='{ROOM}/bob' to='{ALICE}'><x xmlns='{USER}'>\
             <item affiliation='none' role='participant' jid='{BOB}'/></x>{hats}\
             <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></presence>"
        ))
        .await
        .unwrap();
    bob.expect(&format!(
        "<presence from='{ROOM}/bob' to='{BOB}'><x xmlns='{USER}'>\
         <item affiliation='none' role='participant' jid='{BOB}'/><status code='110'/></x>{hats}\
         <occupant-id xmlns='urn:xmpp:occupant-id:0' id='{{*}}'/></presence>"
    ))
    .await
    .unwrap();
    alice.expect(&completed("h4", "assign")).await.unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "h5",
        &format!("<command xmlns='{COMMANDS}' action='execute' node='urn:xmpp:hats:commands:list-assigned'/>"),
    )
    .await;
    alice
        .expect(&format!(
            "<iq type='result' id='h5' from='{ROOM}' to='{ALICE}'><command xmlns='{COMMANDS}' \
             node='urn:xmpp:hats:commands:list-assigned' sessionid='{{*}}' status='completed'>\
             <x xmlns='jabber:x:data' type='result'><title>Assigned Hats List</title>\
             <reported><field var='hats#jid'/><field var='hats#uri'/><field var='hats#title'/><field var='hats#hue'/></reported>\
             <item><field var='hats#jid'><value>bob@localhost</value></field>\
             <field var='hats#uri'><value>{uri}</value></field>\
             <field var='hats#title'><value>Scribe</value></field>\
             <field var='hats#hue'><value>120</value></field></item></x></command></iq>"
        ))
        .await
        .unwrap();
    iq(
        &mut alice,
        ROOM,
        "set",
        "h6",
        &hat_command("destroy", &[("hats#uri", uri)]),
    )
    .await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    alice
        .expect(&occupant(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='participant' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
    alice.expect(&completed("h6", "destroy")).await.unwrap();
}

/// §7.10: a user registers with the room (the form, then its submission): the nick is reserved
/// and the user becomes a member, which the room tells everyone while the user is in it; asking
/// again says `<registered/>`; §7.12: the reserved nick is found at `x-roomuser-item`; another
/// user cannot take it (`<conflict/>`, §7.2.9).
#[tokio::test]
async fn registration_reserves_a_nick() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    let mut bob = enters(&server, &mut alice, "bob", "b").await;
    iq(
        &mut bob,
        ROOM,
        "get",
        "r1",
        "<query xmlns='jabber:iq:register'/>",
    )
    .await;
    bob.expect(&format!(
        "<iq type='result' id='r1' from='{ROOM}' to='{BOB}'><query xmlns='jabber:iq:register'>\
         <x xmlns='jabber:x:data' type='form'><title>Registration with {ROOM}</title>\
         <instructions>{{*}}</instructions>\
         <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#register</value></field>\
         <field var='muc#register_roomnick' type='text-single' label='Desired nickname'><required/></field>\
         </x></query></iq>"
    ))
    .await
    .unwrap();
    iq(
        &mut bob,
        ROOM,
        "set",
        "r2",
        "<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field>\
         <field var='muc#register_roomnick'><value>bob</value></field></x></query>",
    )
    .await;
    alice
        .expect(&occupant(
            "bob",
            ALICE,
            &format!("<item affiliation='member' role='participant' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
    bob.recv_element().await.unwrap(); // his own presence
    bob.expect(&format!(
        "<iq type='result' id='r2' from='{ROOM}' to='{BOB}'/>"
    ))
    .await
    .unwrap();
    iq(
        &mut bob,
        ROOM,
        "get",
        "r3",
        "<query xmlns='jabber:iq:register'/>",
    )
    .await;
    bob.expect(&format!(
        "<iq type='result' id='r3' from='{ROOM}' to='{BOB}'><query xmlns='jabber:iq:register'>\
         <registered/><username>bob</username></query></iq>"
    ))
    .await
    .unwrap();
    bob.send_xml(&format!("<presence to='{ROOM}/bob' type='unavailable'/>"))
        .await
        .unwrap();
    bob.recv_element().await.unwrap();
    alice.recv_element().await.unwrap();
    iq(
        &mut bob,
        ROOM,
        "get",
        "r4",
        "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>",
    )
    .await;
    bob.expect(&format!(
        "<iq type='result' id='r4' from='{ROOM}' to='{BOB}'>\
         <query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'>\
         <identity category='conference' name='bob' type='text'/></query></iq>"
    ))
    .await
    .unwrap();
    let mut carol = online(&server, "carol", "c").await;
    send_join(&mut carol, "bob", "").await;
    carol
        .expect(&presence_error("bob", CAROL, "cancel", "conflict"))
        .await
        .unwrap();
}

/// §7.13 and §8.6: a visitor of a moderated room asks for voice; the moderators get the
/// approval form, and the one who approves it gives the visitor voice (everyone hears it).
#[tokio::test]
async fn voice_requests() {
    let server = server().await;
    let mut alice = alice_creates(&server).await;
    configure(&mut alice, ALICE, &[("muc#roomconfig_moderatedroom", "1")]).await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    let mut bob = online(&server, "bob", "b").await;
    send_join(&mut bob, "bob", "").await;
    for _ in 0..3 {
        bob.recv_element().await.unwrap();
    }
    alice.recv_element().await.unwrap(); // bob, a visitor
    bob.send_xml(&format!(
        "<message to='{ROOM}' id='vr1'><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
         <field var='muc#role' type='list-single'><value>participant</value></field></x></message>"
    ))
    .await
    .unwrap();
    alice
        .expect(&format!(
            "<message from='{ROOM}' to='{ALICE}' id='{{*}}'><x xmlns='jabber:x:data' type='form'>\
             <title>Voice request</title><instructions>{{*}}</instructions>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#request</value></field>\
             <field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>\
             <field var='muc#jid' type='jid-single' label='User ID'><value>{BOB}</value></field>\
             <field var='muc#roomnick' type='text-single' label='Room Nickname'><value>bob</value></field>\
             <field var='muc#request_allow' type='boolean' label='Grant voice to this person?'><value>false</value></field>\
             </x></message>"
        ))
        .await
        .unwrap();
    alice
        .send_xml(&format!(
            "<message to='{ROOM}' id='vr2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>\
             <field var='muc#role'><value>participant</value></field>\
             <field var='muc#jid'><value>{BOB}</value></field>\
             <field var='muc#roomnick'><value>bob</value></field>\
             <field var='muc#request_allow'><value>true</value></field></x></message>"
        ))
        .await
        .unwrap();
    bob.expect(&occupant(
        "bob",
        BOB,
        &format!(
            "<item affiliation='none' role='participant' jid='{BOB}'><actor nick='alice'/></item>"
        ),
        &[110],
    ))
    .await
    .unwrap();
}

/// XEP-0198 §5 with XEP-0045 §7.14: an occupant whose resumable session loses its TCP
/// connection stays in the room while it may resume (a mere TCP drop is no leaving); when the
/// resumption time is over, the session ends and the others get its unavailable presence.
#[tokio::test]
async fn a_dropped_resumable_session_leaves_when_it_can_no_longer_resume() {
    let server = TestServer::start_with(|c| {
        c.stream_management.resume_timeout = Duration::from_secs(1);
    })
    .await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let mut alice = alice_creates(&server).await;
    let mut bob = server.login("bob", PW, "b").await;
    bob.send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    bob.expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='1' id='{*}'/>")
        .await
        .unwrap();
    send_join(&mut bob, "bob", "<history maxstanzas='0'/>").await;
    alice
        .expect(&occupant(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='participant' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
    for _ in 0..3 {
        bob.recv_element().await.unwrap(); // alice, himself, the subject
    }
    drop(bob);
    alice
        .expect_silence(Duration::from_millis(600))
        .await
        .unwrap();
    alice
        .expect(&unavailable(
            "bob",
            ALICE,
            &format!("<item affiliation='none' role='none' jid='{BOB}'/>"),
            &[],
        ))
        .await
        .unwrap();
}

/// §7.2.10: a full room refuses a newcomer with `<service-unavailable/>` of type `wait`;
/// §10.1.1: a user who has `[muc] max_rooms_per_user` rooms (temporary ones included) may
/// create no more (`<not-allowed/>`).
#[tokio::test]
async fn full_rooms_and_too_many_rooms() {
    let server = TestServer::start_with(|c| c.muc.max_rooms_per_user = 1).await;
    for u in ["alice", "bob"] {
        server.add_user(u, PW).await;
    }
    let mut alice = alice_creates(&server).await;
    configure(&mut alice, ALICE, &[("muc#roomconfig_maxusers", "1")]).await;
    alice.expect(&config_notice(ALICE, &[104])).await.unwrap();
    let mut bob = online(&server, "bob", "b").await;
    send_join(&mut bob, "bob", "").await;
    bob.expect(&presence_error("bob", BOB, "wait", "service-unavailable"))
        .await
        .unwrap();
    let other = format!("other@{SERVICE}");
    alice
        .send_xml(&format!(
            "<presence to='{other}/alice'><x xmlns='{MUC}'/></presence>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<presence type='error' from='{other}/alice' to='{ALICE}'><error type='cancel'>\
             <not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{{*}}</text></error>\
             <x xmlns='{MUC}'/></presence>"
        ))
        .await
        .unwrap();
}
