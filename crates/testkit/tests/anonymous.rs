//! Issue 14 item 7: anonymous hosts (`[[host]] anonymous = true`) over real sockets: SASL
//! ANONYMOUS (RFC 4505) offered there and only there, under legacy SASL (RFC 6120 §6) and SASL2
//! (XEP-0388) with Bind2 (XEP-0386); a random account per login that lives as long as its
//! session and leaves nothing behind; registration refused; the per-address limit; outbound
//! federation refused; leftovers deleted at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use starling_config::{Config, HostConfig};
use starling_storage::{RosterItem, Subscription};
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;
use starling_testkit::{Element, FullJid};

const PW: &str = "password1";
const ANON: &str = "guest.localhost";
const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const SASL2: &str = "urn:xmpp:sasl:2";
const UA: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";
const COMPONENT: &str = "gateway.localhost";
const SECRET: &str = "a long shared secret";

/// `localhost` (a normal host, with alice) and [`ANON`], an anonymous host.
async fn server_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.hosts.push(HostConfig {
            domain: ANON.to_owned(),
            anonymous: true,
            ..HostConfig::default()
        });
        adjust(c);
    })
    .await;
    server.add_user("alice", PW).await;
    server
}

async fn server() -> TestServer {
    server_with(|_| {}).await
}

/// A stream to `domain` after STARTTLS; its features.
async fn tls(server: &TestServer, domain: &str, from: Option<IpAddr>) -> (Client, Element) {
    let mut c = match from {
        Some(ip) => Client::connect_from(server.starttls_addr, ip)
            .await
            .unwrap(),
        None => Client::connect(server.starttls_addr).await.unwrap(),
    };
    c.open_stream(domain).await.unwrap();
    let features = c.starttls(domain).await.unwrap();
    (c, features)
}

/// RFC 4505 §3 over RFC 6120 §6.4.2: the message (here empty, `=`) as initial response.
const AUTH_ANONYMOUS: &str =
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'>=</auth>";

/// An anonymous login over legacy SASL from `from`, a stream restart and a server-generated
/// resource: the client and its JID.
async fn anonymous_from(server: &TestServer, from: Option<IpAddr>) -> (Client, FullJid) {
    let (mut c, _) = tls(server, ANON, from).await;
    c.send_xml(AUTH_ANONYMOUS).await.unwrap();
    // RFC 6120 §6.4.6: success without additional data.
    c.expect(&format!("<success xmlns='{SASL}'/>"))
        .await
        .unwrap();
    c.open_stream(ANON).await.unwrap();
    let jid = c.bind(None).await.unwrap();
    (c, jid)
}

async fn anonymous(server: &TestServer) -> (Client, FullJid) {
    anonymous_from(server, None).await
}

/// The random name: 20 characters of `a`–`z`, `2`–`7` (100 bits), on the anonymous host.
fn assert_random(jid: &FullJid) {
    assert_eq!(jid.domain().as_str(), ANON);
    let node = jid.node().unwrap().as_str();
    assert_eq!(node.len(), 20, "{jid}");
    assert!(
        node.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
        "{jid}"
    );
}

fn names(list: &Element) -> Vec<String> {
    list.children()
        .filter(|m| m.name() == "mechanism")
        .map(Element::text)
        .collect()
}

async fn exists(server: &TestServer, jid: &FullJid) -> bool {
    server
        .server()
        .storage()
        .stores()
        .accounts
        .account_exists(jid.node().unwrap().as_str(), ANON)
        .await
        .unwrap()
}

/// Waits (at most 10 s) until the account is gone: it is deleted once the server has finished
/// with the connection, after the client saw the stream close.
async fn wait_gone(server: &TestServer, jid: &FullJid) {
    for _ in 0..500 {
        if !exists(server, jid).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{jid} still exists");
}

/// RFC 4505 on an anonymous host only, RFC 6120 §6.3.3 (mechanisms offered), §6.4.1 and
/// §6.5.7: ANONYMOUS is the one mechanism of the anonymous host, under legacy SASL and SASL2
/// (XEP-0388 §2.1), with Bind2 but no resumption (a new login is a new account) and no FAST
/// (XEP-0484), and no XEP-0440 types (no -PLUS mechanism); it is never offered on a normal host.
/// Other mechanisms there and ANONYMOUS here get `<invalid-mechanism/>`. TLS comes first as for
/// any login (§5.3.1).
#[tokio::test]
async fn mechanisms_offered_on_each_kind_of_host() {
    let server = server().await;
    // Before TLS: only STARTTLS, required.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    let (_, before) = c.open_stream(ANON).await.unwrap();
    starling_testkit::assert_matches(
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
        &before,
    );
    let features = c.starttls(ANON).await.unwrap();
    starling_testkit::assert_matches(
        "<stream:features>\
           <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>ANONYMOUS</mechanism></mechanisms>\
           <authentication xmlns='urn:xmpp:sasl:2'><mechanism>ANONYMOUS</mechanism>\
             <inline><bind xmlns='urn:xmpp:bind:0'><inline>\
               <feature var='urn:xmpp:sm:3'/><feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:carbons:2'/>\
             </inline></bind></inline>\
           </authentication>\
           <limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>8192</max-bytes></limits>\
         </stream:features>",
        &features,
    );
    for mech in ["PLAIN", "SCRAM-SHA-256"] {
        c.send_xml(&format!("<auth xmlns='{SASL}' mechanism='{mech}'>=</auth>"))
            .await
            .unwrap();
        c.expect(&format!(
            "<failure xmlns='{SASL}'><invalid-mechanism/></failure>"
        ))
        .await
        .unwrap();
    }

    // The normal host: ANONYMOUS appears in neither list, and is refused.
    let (mut c, features) = tls(&server, "localhost", None).await;
    let legacy = names(features.get_child("mechanisms", SASL).unwrap());
    let sasl2 = names(features.get_child("authentication", SASL2).unwrap());
    assert_eq!(legacy, sasl2);
    assert!(!legacy.is_empty());
    assert!(!legacy.iter().any(|m| m == "ANONYMOUS"), "{legacy:?}");
    c.send_xml(AUTH_ANONYMOUS).await.unwrap();
    c.expect(&format!(
        "<failure xmlns='{SASL}'><invalid-mechanism/></failure>"
    ))
    .await
    .unwrap();
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='ANONYMOUS'><initial-response/></authenticate>"
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<failure xmlns='{SASL2}'><invalid-mechanism xmlns='{SASL}'/></failure>"
    ))
    .await
    .unwrap();
}

/// RFC 4505 §2–§3 and RFC 6120 §6.4, §7: an anonymous login (with an empty message, with trace
/// information, or with none in `<auth/>` and the message after the server's empty challenge)
/// and a bind give a random JID on the anonymous host, another one per login; trace information
/// longer than 255 characters is `<malformed-request/>`.
#[tokio::test]
async fn anonymous_login_gives_a_random_jid_per_login() {
    let server = server().await;
    let (_a, a) = anonymous(&server).await;
    let (_b, b) = anonymous(&server).await;
    assert_random(&a);
    assert_random(&b);
    assert_ne!(a.node(), b.node());
    assert!(exists(&server, &a).await && exists(&server, &b).await);

    // Trace information (RFC 4505 §2: an e-mail address or an opaque token) names nothing.
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let (mut c, _) = tls(&server, ANON, None).await;
    c.send_xml(&format!(
        "<auth xmlns='{SASL}' mechanism='ANONYMOUS'>{}</auth>",
        b64("alice")
    ))
    .await
    .unwrap();
    c.expect(&format!("<success xmlns='{SASL}'/>"))
        .await
        .unwrap();
    c.open_stream(ANON).await.unwrap();
    let jid = c.bind(Some("web")).await.unwrap();
    assert_random(&jid);
    assert_eq!(jid.resource().as_str(), "web");

    // No initial response: an empty challenge (RFC 6120 §6.4.2), then the message.
    let (mut c, _) = tls(&server, ANON, None).await;
    c.send_xml(&format!("<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>"))
        .await
        .unwrap();
    c.expect(&format!("<challenge xmlns='{SASL}'>=</challenge>"))
        .await
        .unwrap();
    c.send_xml(&format!(
        "<response xmlns='{SASL}'>{}</response>",
        b64("trace")
    ))
    .await
    .unwrap();
    c.expect(&format!("<success xmlns='{SASL}'/>"))
        .await
        .unwrap();

    // RFC 4505 §3: at most 255 characters.
    let (mut c, _) = tls(&server, ANON, None).await;
    c.send_xml(&format!(
        "<auth xmlns='{SASL}' mechanism='ANONYMOUS'>{}</auth>",
        b64(&"x".repeat(256))
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<failure xmlns='{SASL}'><malformed-request/></failure>"
    ))
    .await
    .unwrap();
}

/// The account exists for the router while its session lives: a normal user's message reaches
/// it (RFC 6121 §8.5.3.1), its own reaches the normal user; what it stores (vCard, XEP-0054;
/// private XML, XEP-0049; its roster, RFC 6121 §2; offline messages, XEP-0160; its archive,
/// XEP-0313) is its own. When the session ends it is all gone: the contact's subscriptions are
/// cancelled (RFC 6121 §3.2.3, §3.3.3, as an account removal does) and the account deleted;
/// a message to it then gets `<service-unavailable/>` (RFC 6121 §8.5.2.2.1, an account that
/// does not exist).
#[tokio::test]
async fn the_account_lives_with_its_session_and_leaves_nothing() {
    let server = server_with(|c| c.archive.enabled = true).await;
    let stores = server.server().storage().stores();
    let (mut guest, jid) = anonymous(&server).await;
    let bare = jid.to_bare();
    let local = jid.node().unwrap().as_str().to_owned();
    // Mutual subscriptions, as if both had completed RFC 6121 §3.
    let item = |j: &str| RosterItem {
        subscription: Subscription::Both,
        ..RosterItem::new(j.to_owned())
    };
    stores
        .rosters
        .put_item(&local, ANON, &item("alice@localhost"))
        .await
        .unwrap();
    stores
        .rosters
        .put_item("alice", "localhost", &item(bare.as_str()))
        .await
        .unwrap();
    let mut alice = server.online("alice", PW, "a").await;

    // The guest has no available resource yet: a message to its bare JID is kept offline.
    alice
        .send_xml(&format!(
            "<message to='{bare}' id='m1' type='chat'><body>while you are away</body></message>"
        ))
        .await
        .unwrap();
    // A message to its full JID reaches it (RFC 6121 §8.5.3.1), archived with a stanza id.
    alice
        .send_xml(&format!(
            "<message to='{jid}' id='m2' type='chat'><body>hello guest</body></message>"
        ))
        .await
        .unwrap();
    guest
        .expect(&format!(
            "<message from='alice@localhost/a' to='{jid}' id='m2' type='chat'><body>hello guest</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='{bare}' id='{{*}}'/></message>"
        ))
        .await
        .unwrap();
    assert_eq!(stores.offline.count(&local, ANON).await.unwrap(), 1);
    // And the guest's reaches the normal user.
    guest
        .send_xml(
            "<message to='alice@localhost/a' id='m3' type='chat'><body>hi alice</body></message>",
        )
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<message from='{jid}' to='alice@localhost/a' id='m3' type='chat'><body>hi alice</body>\
             <stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='{{*}}'/></message>"
        ))
        .await
        .unwrap();
    guest
        .send_xml("<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>Guest</FN></vCard></iq>")
        .await
        .unwrap();
    guest
        .expect(&format!("<iq type='result' id='v1' to='{jid}'/>"))
        .await
        .unwrap();
    guest
        .send_xml(
            "<iq type='set' id='p1'><query xmlns='jabber:iq:private'><note xmlns='x:notes'>n</note></query></iq>",
        )
        .await
        .unwrap();
    guest
        .expect(&format!("<iq type='result' id='p1' to='{jid}'/>"))
        .await
        .unwrap();
    assert!(stores.vcards.vcard(&local, ANON).await.unwrap().is_some());
    assert_eq!(stores.private.count(&local, ANON).await.unwrap(), 1);
    assert_eq!(stores.archive.count(&local, ANON).await.unwrap(), 3);

    // The session ends.
    guest.close().await.unwrap();
    // RFC 6121 §3.2.3 / §3.3.3: the contact hears both cancellations, from the bare JID.
    alice
        .expect(&format!(
            "<presence from='{bare}' to='alice@localhost' type='unsubscribed'/>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<presence from='{bare}' to='alice@localhost' type='unsubscribe'/>"
        ))
        .await
        .unwrap();
    wait_gone(&server, &jid).await;
    assert_eq!(stores.rosters.items(&local, ANON).await.unwrap(), vec![]);
    assert_eq!(stores.offline.count(&local, ANON).await.unwrap(), 0);
    assert_eq!(stores.vcards.vcard(&local, ANON).await.unwrap(), None);
    assert_eq!(stores.private.count(&local, ANON).await.unwrap(), 0);
    assert_eq!(stores.archive.count(&local, ANON).await.unwrap(), 0);
    let kept = stores
        .rosters
        .item("alice", "localhost", bare.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.subscription, Subscription::None);

    alice
        .send_xml(&format!(
            "<message to='{bare}' id='m4' type='chat'><body>still there?</body></message>"
        ))
        .await
        .unwrap();
    alice
        .expect(&format!(
            "<message from='{bare}' to='alice@localhost/a' id='m4' type='error'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        ))
        .await
        .unwrap();
}

/// XEP-0388 §2.3–§2.6.1 with XEP-0386 §3: ANONYMOUS over SASL2 with Bind2 in one message; the
/// authorization identifier is the bound full JID on the anonymous host. XEP-0198 §3: the inline
/// `<enable resume='true'/>` is answered without resumption (a new login is a new account), and
/// a FAST token (XEP-0484 §4.2) asked for is not issued.
#[tokio::test]
async fn sasl2_and_bind2_anonymous_login() {
    let server = server().await;
    let (mut c, _) = tls(&server, ANON, None).await;
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='ANONYMOUS'><initial-response/>\
         <user-agent id='{UA}'><software>Web</software></user-agent>\
         <bind xmlns='urn:xmpp:bind:0'><tag>web</tag><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>\
         <request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>\
         </authenticate>"
    ))
    .await
    .unwrap();
    let success = c
        .expect(&format!(
            "<success xmlns='{SASL2}'><authorization-identifier>{{*}}</authorization-identifier>\
             <bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3'/></bound></success>"
        ))
        .await
        .unwrap();
    let id = success
        .get_child("authorization-identifier", SASL2)
        .unwrap()
        .text();
    let jid = FullJid::new(&id).unwrap();
    assert_random(&jid);
    assert!(jid.resource().as_str().starts_with("web/"), "{jid}");
    // The features of the authenticated stream follow (no restart, §2.6.1).
    let features = c.recv_element().await.unwrap();
    assert_eq!(features.name(), "features");
    assert!(exists(&server, &jid).await);
    c.send_xml("<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    c.expect(&format!("<iq type='result' id='p' to='{jid}'/>"))
        .await
        .unwrap();
    c.close().await.unwrap();
    wait_gone(&server, &jid).await;
}

/// XEP-0388 §2.6.1 without Bind2: the authorization identifier is the new bare JID. A guest that
/// never binds a resource leaves nothing either: its account goes with its connection.
#[tokio::test]
async fn an_account_that_never_binds_goes_with_its_connection() {
    let server = server().await;
    let (mut c, _) = tls(&server, ANON, None).await;
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='ANONYMOUS'><initial-response/></authenticate>"
    ))
    .await
    .unwrap();
    let success = c
        .expect(&format!(
            "<success xmlns='{SASL2}'><authorization-identifier>{{*}}</authorization-identifier></success>"
        ))
        .await
        .unwrap();
    let bare = success
        .get_child("authorization-identifier", SASL2)
        .unwrap()
        .text();
    // A full JID of that account, to name it for the helpers.
    let jid = FullJid::new(&format!("{bare}/x")).unwrap();
    assert_random(&jid);
    assert!(exists(&server, &jid).await);
    c.close().await.unwrap();
    wait_gone(&server, &jid).await;
}

/// XEP-0077 on an anonymous host: registration is not offered (§9) and refused (§3.1,
/// `<service-unavailable/>`); a logged-in guest cannot set a password (§3.3, `<not-allowed/>`).
#[tokio::test]
async fn registration_and_password_change_are_refused() {
    let server =
        server_with(|c| c.registration.mode = starling_config::RegistrationMode::Open).await;
    let (_, normal) = tls(&server, "localhost", None).await;
    assert!(
        normal
            .get_child("register", "http://jabber.org/features/iq-register")
            .is_some(),
        "{}",
        normal.to_xml()
    );
    let (mut c, features) = tls(&server, ANON, None).await;
    assert!(
        features
            .get_child("register", "http://jabber.org/features/iq-register")
            .is_none(),
        "{}",
        features.to_xml()
    );
    c.send_xml(
        "<iq type='set' id='r1'><query xmlns='jabber:iq:register'>\
         <username>mallory</username><password>password1</password></query></iq>",
    )
    .await
    .unwrap();
    c.expect(&format!(
        "<iq type='error' id='r1' from='{ANON}'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>accounts on this host are anonymous: log in with SASL ANONYMOUS</text>\
         </error></iq>"
    ))
    .await
    .unwrap();
    assert!(
        !server
            .server()
            .storage()
            .stores()
            .accounts
            .account_exists("mallory", ANON)
            .await
            .unwrap()
    );

    let (mut guest, jid) = anonymous(&server).await;
    let local = jid.node().unwrap().as_str().to_owned();
    guest
        .send_xml(&format!(
            "<iq type='set' id='r2'><query xmlns='jabber:iq:register'>\
             <username>{local}</username><password>password1</password></query></iq>"
        ))
        .await
        .unwrap();
    guest
        .expect(&format!(
            "<iq type='error' id='r2' to='{jid}'><error type='cancel'>\
             <not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>an anonymous account has no password</text>\
             </error></iq>"
        ))
        .await
        .unwrap();
    // XEP-0401's "Invite user" is not a guest's (XEP-0050 §4.4 <forbidden/>): the account
    // lasts one session, and nobody registers on its host.
    guest
        .send_xml(&format!(
            "<iq type='set' to='{ANON}' id='i1'><command xmlns='http://jabber.org/protocol/commands' \
             node='urn:xmpp:invite#invite' action='execute'/></iq>"
        ))
        .await
        .unwrap();
    guest
        .expect(&format!(
            "<iq type='error' id='i1' from='{ANON}' to='{jid}'><error type='auth'>\
             <forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ))
        .await
        .unwrap();
}

/// `[auth] anonymous_logins_per_ip`: one address (127.0.0.2) gets that many anonymous logins
/// per hour, legacy SASL and SASL2 alike; one more is RFC 6120 §6.5.11
/// `<temporary-auth-failure/>` with a text (try again later); another address is not affected.
#[tokio::test]
async fn anonymous_logins_are_limited_per_address() {
    let server = server_with(|c| c.auth.anonymous_logins_per_ip = 2).await;
    let limited: IpAddr = "127.0.0.2".parse().unwrap();
    let other: IpAddr = "127.0.0.3".parse().unwrap();
    let _first = anonymous_from(&server, Some(limited)).await;
    let _second = anonymous_from(&server, Some(limited)).await;
    let (mut c, _) = tls(&server, ANON, Some(limited)).await;
    c.send_xml(AUTH_ANONYMOUS).await.unwrap();
    c.expect(&format!(
        "<failure xmlns='{SASL}'><temporary-auth-failure/>\
         <text>too many anonymous logins from your address; try again later</text></failure>"
    ))
    .await
    .unwrap();
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='ANONYMOUS'><initial-response/></authenticate>"
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<failure xmlns='{SASL2}'><temporary-auth-failure xmlns='{SASL}'/>\
         <text>too many anonymous logins from your address; try again later</text></failure>"
    ))
    .await
    .unwrap();
    let (_c, jid) = anonymous_from(&server, Some(other)).await;
    assert_random(&jid);
    // Nothing was made for the refused logins: two accounts from .2, one from .3.
    let accounts = server
        .server()
        .storage()
        .stores()
        .accounts
        .list_accounts(Some(ANON))
        .await
        .unwrap();
    assert_eq!(accounts.len(), 3);
}

/// No outbound federation for anonymous accounts: a stanza to a domain that is neither a local
/// host nor a component's is refused with `<not-allowed/>` (RFC 6120 §8.3.3.9) and a text,
/// where a normal user gets the usual `<remote-server-not-found/>` (§8.3.3.15; there is no
/// federation yet). A component (a future MUC) is reached; with `anonymous_federation = true`
/// the guest gets what everybody gets.
#[tokio::test]
async fn outbound_federation_is_refused_unless_allowed() {
    let server = server_with(|c| {
        c.components.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.components.secrets = vec![(
            COMPONENT.to_owned(),
            starling_config::Secret(SECRET.to_owned()),
        )];
        c.hosts.push(HostConfig {
            domain: "open.localhost".to_owned(),
            anonymous: true,
            anonymous_federation: true,
            ..HostConfig::default()
        });
    })
    .await;
    let (mut guest, jid) = anonymous(&server).await;
    guest
        .send_xml(
            "<message to='juliet@remote.example' id='f1' type='chat'><body>hi</body></message>",
        )
        .await
        .unwrap();
    guest
        .expect(&format!(
            "<message from='juliet@remote.example' to='{jid}' id='f1' type='error'>\
             <error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>users of this anonymous host cannot reach other servers</text>\
             </error></message>"
        ))
        .await
        .unwrap();
    guest
        .send_xml("<iq to='remote.example' id='f2' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    guest
        .expect(&format!(
            "<iq from='remote.example' to='{jid}' id='f2' type='error'>\
             <error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>users of this anonymous host cannot reach other servers</text>\
             </error></iq>"
        ))
        .await
        .unwrap();

    // A normal user: the usual answer.
    let mut alice = server.login("alice", PW, "a").await;
    alice
        .send_xml(
            "<message to='juliet@remote.example' id='f3' type='chat'><body>hi</body></message>",
        )
        .await
        .unwrap();
    alice
        .expect(
            "<message from='juliet@remote.example' to='alice@localhost/a' id='f3' type='error'>\
             <error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        )
        .await
        .unwrap();

    // A component is part of this server.
    let mut component = server.component(COMPONENT, SECRET).await;
    guest
        .send_xml(&format!(
            "<message to='room@{COMPONENT}' id='f4' type='groupchat'><body>hi room</body></message>"
        ))
        .await
        .unwrap();
    component
        .expect(&format!(
            "<message xmlns='jabber:component:accept' from='{jid}' to='room@{COMPONENT}' id='f4' type='groupchat'><body>hi room</body></message>"
        ))
        .await
        .unwrap();

    // An anonymous host that allows federation: what a normal user gets.
    let (mut c, _) = tls(&server, "open.localhost", None).await;
    c.send_xml(AUTH_ANONYMOUS).await.unwrap();
    c.expect(&format!("<success xmlns='{SASL}'/>"))
        .await
        .unwrap();
    c.open_stream("open.localhost").await.unwrap();
    let open = c.bind(None).await.unwrap();
    c.send_xml("<message to='juliet@remote.example' id='f5' type='chat'><body>hi</body></message>")
        .await
        .unwrap();
    c.expect(&format!(
        "<message from='juliet@remote.example' to='{open}' id='f5' type='error'>\
         <error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    ))
    .await
    .unwrap();
}

/// A crash skips the deletion at the session's end: the next start deletes every account of an
/// anonymous host that has no credentials, with what it owned. An account with a password there
/// (the host was a normal one before) is not an anonymous leftover and is kept.
#[tokio::test]
async fn leftovers_are_deleted_at_start() {
    let server = server().await;
    let stores = server.server().storage().stores();
    // What a crash leaves: accounts made by an anonymous login, never deleted.
    let mut left = Vec::new();
    for _ in 0..2 {
        let local = starling_accounts::anonymous::create(stores.accounts.as_ref(), ANON)
            .await
            .unwrap();
        stores
            .vcards
            .set_vcard(&local, ANON, "<vCard xmlns='vcard-temp'/>")
            .await
            .unwrap();
        left.push(local);
    }
    server.add_user_at("old", ANON, PW).await;
    let server = server.restart().await;
    let stores = server.server().storage().stores();
    let accounts = stores.accounts.list_accounts(Some(ANON)).await.unwrap();
    assert_eq!(accounts, vec![("old".to_owned(), ANON.to_owned())]);
    for local in &left {
        assert_eq!(stores.vcards.vcard(local, ANON).await.unwrap(), None);
    }
    // The normal host is untouched.
    assert!(
        stores
            .accounts
            .account_exists("alice", "localhost")
            .await
            .unwrap()
    );
}

/// XEP-0133 §4.1 (add-user) and §4.7 (change-user-password) on an anonymous host: refused
/// with `<not-allowed/>`, since its accounts are made at login and have no password.
#[tokio::test]
async fn admin_commands_set_no_password_on_an_anonymous_host() {
    const CMD: &str = "http://jabber.org/protocol/commands";
    const ADMIN: &str = "http://jabber.org/protocol/admin";
    let server = server_with(|c| c.admins = vec!["alice@localhost".to_owned()]).await;
    let mut a = server.login("alice", PW, "pc").await;
    for (i, command) in ["add-user", "change-user-password"].iter().enumerate() {
        let node = format!("{ADMIN}#{command}");
        a.send_xml(&format!(
            "<iq type='set' to='localhost' id='s{i}'><command xmlns='{CMD}' node='{node}' action='execute'/></iq>"
        ))
        .await
        .unwrap();
        let started = a.recv_element().await.unwrap();
        let sid = started
            .get_child("command", CMD)
            .and_then(|c| c.attr("sessionid"))
            .unwrap_or_else(|| panic!("{}", started.to_xml()))
            .to_owned();
        a.send_xml(&format!(
            "<iq type='set' to='localhost' id='c{i}'><command xmlns='{CMD}' node='{node}' sessionid='{sid}'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{ADMIN}</value></field>\
             <field var='accountjid'><value>guest@{ANON}</value></field>\
             <field var='password'><value>R0m30</value></field>\
             <field var='password-verify'><value>R0m30</value></field></x></command></iq>"
        ))
        .await
        .unwrap();
        a.expect(&format!(
            "<iq type='error' id='c{i}' from='localhost' to='alice@localhost/pc'><error type='cancel'>\
             <not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{ANON} is an anonymous host: its accounts are made at login and have no password</text>\
             </error></iq>"
        ))
        .await
        .unwrap();
    }
    let accounts = server
        .server()
        .storage()
        .stores()
        .accounts
        .list_accounts(Some(ANON))
        .await
        .unwrap();
    assert_eq!(accounts, vec![]);
}
