//! Issue 17 item 7: XEP-0215 external service discovery with TURN REST API credentials
//! (draft-uberti-behave-turn-rest-00 §2.2, what coturn's `use-auth-secret` checks), over real
//! TCP with exact stanzas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use sha1::Digest as _;
use starling_config::{ExternalService, ExternalServiceType, ExternalTransport, Secret};
use starling_testkit::Element;
use starling_testkit::matcher::assert_matches;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const TURN_SECRET: &str = "a secret shared with coturn";
const COMPONENT: &str = "bot.localhost";
const COMPONENT_SECRET: &str = "a long component secret";

async fn server() -> TestServer {
    let server = TestServer::start_with(|c| {
        let service = |kind, host: &str, port, transport, restricted| ExternalService {
            kind,
            host: host.to_owned(),
            port,
            transport,
            restricted,
        };
        c.external_services.services = vec![
            service(
                ExternalServiceType::Stun,
                "stun.example.org",
                3478,
                ExternalTransport::Udp,
                false,
            ),
            service(
                ExternalServiceType::Turn,
                "turn.example.org",
                3478,
                ExternalTransport::Udp,
                true,
            ),
            service(
                ExternalServiceType::Turns,
                "turn.example.org",
                5349,
                ExternalTransport::Tcp,
                true,
            ),
        ];
        c.external_services.turn_secret = Some(Secret(TURN_SECRET.to_owned()));
        c.external_services.credential_ttl = Duration::from_secs(3600);
        c.components.listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.components.secrets = vec![(COMPONENT.to_owned(), Secret(COMPONENT_SECRET.to_owned()))];
    })
    .await;
    server.add_user("alice", PW).await;
    server
}

/// HMAC-SHA1 by RFC 2104 §2 (key shorter than the 64-byte block), base64 (RFC 4648 §4): the
/// password a TURN server with `static-auth-secret` expects, computed apart from the server.
fn turn_password(secret: &str, username: &str) -> String {
    let mut key = [0u8; 64];
    key[..secret.len()].copy_from_slice(secret.as_bytes());
    let ipad: Vec<u8> = key.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = key.iter().map(|b| b ^ 0x5c).collect();
    let inner = sha1::Sha1::new()
        .chain_update(&ipad)
        .chain_update(username.as_bytes())
        .finalize();
    let outer = sha1::Sha1::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(outer)
}

fn unix_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The credential attributes of a restricted `<service/>`: the username is `<expiry>:<bare
/// JID>` with the expiry one TTL from now, the password its HMAC, `expires` the same instant.
/// Returns them for an exact match of the whole stanza.
fn check_credentials(service: &Element, before: i64, after: i64) -> (String, String, String) {
    let username = service.attr("username").unwrap().to_owned();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice@localhost");
    let expiry: i64 = expiry.parse().unwrap();
    assert!(
        (before + 3600..=after + 3600).contains(&expiry),
        "{expiry} not one TTL after {before}..{after}"
    );
    let password = turn_password(TURN_SECRET, &username);
    let expires = starling_modules::clock::format_unix(expiry);
    (username, password, expires)
}

/// §3.1: every configured service, restricted ones with credentials (§2 table: `restricted`,
/// `username`, `password`, `expires`).
#[tokio::test]
async fn services_with_credentials() {
    let server = server().await;
    let mut alice = server.online("alice", PW, "r").await;
    let before = unix_now();
    alice
        .send_xml(
            "<iq type='get' id='s1' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>",
        )
        .await
        .unwrap();
    let reply = alice.recv_element().await.unwrap();
    let after = unix_now();
    let services = reply.get_child("services", "urn:xmpp:extdisco:2").unwrap();
    let listed: Vec<&Element> = services.children().collect();
    assert_eq!(listed.len(), 3, "{}", reply.to_xml());
    let (u1, p1, e1) = check_credentials(listed[1], before, after);
    let (u2, p2, e2) = check_credentials(listed[2], before, after);
    assert_matches(
        &format!(
            "<iq type='result' id='s1' from='localhost' to='alice@localhost/r'>\
               <services xmlns='urn:xmpp:extdisco:2'>\
                 <service type='stun' host='stun.example.org' port='3478' transport='udp'/>\
                 <service type='turn' host='turn.example.org' port='3478' transport='udp' \
                   restricted='1' username='{u1}' password='{p1}' expires='{e1}'/>\
                 <service type='turns' host='turn.example.org' port='5349' transport='tcp' \
                   restricted='1' username='{u2}' password='{p2}' expires='{e2}'/>\
               </services></iq>"
        ),
        &reply,
    );
    // §3.2: only the type asked for, and the type echoed.
    alice
        .send_xml("<iq type='get' id='s2' to='localhost'><services xmlns='urn:xmpp:extdisco:2' type='stun'/></iq>")
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='result' id='s2' from='localhost' to='alice@localhost/r'>\
               <services xmlns='urn:xmpp:extdisco:2' type='stun'>\
                 <service type='stun' host='stun.example.org' port='3478' transport='udp'/>\
               </services></iq>",
        )
        .await
        .unwrap();
    alice
        .send_xml("<iq type='get' id='s3' to='localhost'><services xmlns='urn:xmpp:extdisco:2' type='ftp'/></iq>")
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='result' id='s3' from='localhost' to='alice@localhost/r'>\
               <services xmlns='urn:xmpp:extdisco:2' type='ftp'/></iq>",
        )
        .await
        .unwrap();
    server.stop().await;
}

/// §3.3: credentials for a service named by host and type (and port when several match).
#[tokio::test]
async fn credentials_for_a_named_service() {
    let server = server().await;
    let mut alice = server.online("alice", PW, "r").await;
    let before = unix_now();
    alice
        .send_xml(
            "<iq type='get' id='c1' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'>\
               <service host='turn.example.org' type='turn'/></credentials></iq>",
        )
        .await
        .unwrap();
    let reply = alice.recv_element().await.unwrap();
    let after = unix_now();
    let service = reply
        .get_child("credentials", "urn:xmpp:extdisco:2")
        .and_then(|c| c.children().next())
        .unwrap();
    let (u, p, e) = check_credentials(service, before, after);
    assert_matches(
        &format!(
            "<iq type='result' id='c1' from='localhost' to='alice@localhost/r'>\
               <credentials xmlns='urn:xmpp:extdisco:2'>\
                 <service type='turn' host='turn.example.org' port='3478' transport='udp' \
                   restricted='1' username='{u}' password='{p}' expires='{e}'/>\
               </credentials></iq>"
        ),
        &reply,
    );
    // A port that matches nothing; then no such service at all: item-not-found (§3.3).
    for (id, service) in [
        (
            "c2",
            "<service host='turn.example.org' type='turn' port='1'/>",
        ),
        ("c3", "<service host='elsewhere.example.org' type='turn'/>"),
    ] {
        alice
            .send_xml(&format!(
                "<iq type='get' id='{id}' to='localhost'>\
                   <credentials xmlns='urn:xmpp:extdisco:2'>{service}</credentials></iq>"
            ))
            .await
            .unwrap();
        alice
            .expect(&format!(
                "<iq type='error' id='{id}' from='localhost' to='alice@localhost/r'>\
                   <error type='cancel'>\
                     <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                   </error></iq>"
            ))
            .await
            .unwrap();
    }
    // §3.3: host and type MUST be given.
    alice
        .send_xml(
            "<iq type='get' id='c4' to='localhost'><credentials xmlns='urn:xmpp:extdisco:2'>\
               <service host='turn.example.org'/></credentials></iq>",
        )
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='error' id='c4' from='localhost' to='alice@localhost/r'>\
               <error type='modify'>\
                 <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>a service needs its host and type</text>\
               </error></iq>",
        )
        .await
        .unwrap();
    server.stop().await;
}

/// §5: the feature is advertised; §2: an entity that is no user of this server is refused.
#[tokio::test]
async fn feature_and_who_is_answered() {
    let server = server().await;
    let mut alice = server.online("alice", PW, "r").await;
    alice
        .send_xml("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    let info = alice.recv_element().await.unwrap();
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert!(
        query
            .children()
            .any(|f| f.name() == "feature" && f.attr("var") == Some("urn:xmpp:extdisco:2")),
        "{}",
        info.to_xml()
    );
    let mut bot = server.component(COMPONENT, COMPONENT_SECRET).await;
    bot.send_xml(
        "<iq xmlns='jabber:component:accept' type='get' id='b1' from='bot.localhost' to='localhost'>\
           <services xmlns='urn:xmpp:extdisco:2'/></iq>",
    )
    .await
    .unwrap();
    bot.expect(
        "<iq xmlns='jabber:component:accept' type='error' id='b1' from='localhost' to='bot.localhost'>\
           <error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .await
    .unwrap();
    server.stop().await;
}

/// Without configured services the module does not run: no feature, `<service-unavailable/>`.
#[tokio::test]
async fn off_without_services() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let mut alice = server.online("alice", PW, "r").await;
    alice
        .send_xml(
            "<iq type='get' id='s1' to='localhost'><services xmlns='urn:xmpp:extdisco:2'/></iq>",
        )
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='error' id='s1' from='localhost' to='alice@localhost/r'>\
               <error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
               </error></iq>",
        )
        .await
        .unwrap();
    server.stop().await;
}
