//! Issue 14: XEP-0388 SASL2, XEP-0386 Bind2, XEP-0474 SSDP and XEP-0484 FAST over real sockets,
//! asserting the exact elements a client receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use starling_sasl::client::ScramClient;
use starling_sasl::{ChannelBindingType, ScramHash};
use starling_testkit::Element;
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";
const UA: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";
const UA2: &str = "0e3b6f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b";
const SASL2: &str = "urn:xmpp:sasl:2";

/// Connects and completes STARTTLS: the pre-authentication features of a TLS stream.
async fn tls(server: &TestServer) -> (Client, Element) {
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    let features = c.starttls(&server.domain).await.unwrap();
    (c, features)
}

fn user_agent(id: &str) -> String {
    format!("<user-agent id='{id}'><software>Test</software><device>Bench</device></user-agent>")
}

/// SCRAM-SHA-256 over SASL2 up to the server's `<success/>`, which is returned, with `inline`
/// (XML) inside `<authenticate/>`. Checks the server-final message.
async fn scram(c: &mut Client, user: &str, password: &str, inline: &str) -> Element {
    let mut scram = ScramClient::new(ScramHash::Sha256, user, password, None, None).unwrap();
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'><initial-response>{}</initial-response>{inline}</authenticate>",
        B64.encode(scram.client_first())
    ))
    .await
    .unwrap();
    let challenge = c
        .expect(&format!("<challenge xmlns='{SASL2}'>{{*}}</challenge>"))
        .await
        .unwrap();
    let server_first = B64.decode(challenge.text()).unwrap();
    let client_final = scram.handle_server_first(&server_first).unwrap();
    c.send_xml(&format!(
        "<response xmlns='{SASL2}'>{}</response>",
        B64.encode(client_final)
    ))
    .await
    .unwrap();
    let success = c.recv_element().await.unwrap();
    assert!(success.is("success", SASL2), "{}", success.to_xml());
    let data = success.get_child("additional-data", SASL2).unwrap().text();
    scram
        .verify_server_final(&B64.decode(data).unwrap())
        .unwrap();
    success
}

fn child<'a>(e: &'a Element, name: &str, ns: &str) -> &'a Element {
    e.get_child(name, ns)
        .unwrap_or_else(|| panic!("no <{name} xmlns='{ns}'/> in {}", e.to_xml()))
}

fn identity(success: &Element) -> String {
    child(success, "authorization-identifier", SASL2).text()
}

/// XEP-0388 §2.1, XEP-0386 §3.1, XEP-0198 §9, XEP-0484 §4.1, XEP-0440: the exact feature on a
/// TLS stream (the legacy mechanisms, in <inline/> only what is implemented, FAST with the
/// channel bindings this connection has); none before TLS (XEP-0388 §4).
#[tokio::test]
async fn the_authentication_feature_offers_what_legacy_sasl_does_and_what_is_implemented() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    let (_, plain) = c.open_stream(&server.domain).await.unwrap();
    assert!(
        plain.get_child("authentication", SASL2).is_none(),
        "{}",
        plain.to_xml()
    );
    let features = c.starttls(&server.domain).await.unwrap();
    let legacy: Vec<String> = child(&features, "mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .children()
        .map(Element::text)
        .collect();
    let auth = child(&features, "authentication", SASL2);
    let sasl2: Vec<String> = auth
        .children()
        .filter(|m| m.name() == "mechanism")
        .map(Element::text)
        .collect();
    assert_eq!(sasl2, legacy);
    starling_testkit::matcher::assert_matches(
        "<inline xmlns='urn:xmpp:sasl:2'>\
           <bind xmlns='urn:xmpp:bind:0'><inline>\
             <feature var='urn:xmpp:sm:3'/><feature var='urn:xmpp:csi:0'/><feature var='urn:xmpp:carbons:2'/>\
           </inline></bind>\
           <sm xmlns='urn:xmpp:sm:3'/>\
           <fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-ENDP</mechanism><mechanism>HT-SHA-256-NONE</mechanism></fast>\
         </inline>",
        child(auth, "inline", SASL2),
    );
    // XEP-0440 §3 beside it.
    starling_testkit::matcher::assert_matches(
        "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'><channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/></sasl-channel-binding>",
        child(&features, "sasl-channel-binding", "urn:xmpp:sasl-cb:0"),
    );
}

/// XEP-0474 §5.1 (version 0.5.0): the server-first message carries `h`, the hash of the
/// mechanisms SASL2 advertised and of the XEP-0440 types; also under legacy SASL, with its list.
#[tokio::test]
async fn scram_server_first_carries_the_ssdp_hash() {
    use sha2::Digest as _;
    let server = TestServer::with_users(&["alice"], PW).await;
    for sasl2 in [true, false] {
        let (mut c, features) = tls(&server).await;
        let list = if sasl2 {
            child(&features, "authentication", SASL2)
        } else {
            child(&features, "mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        };
        let mut mechs: Vec<String> = list
            .children()
            .filter(|m| m.name() == "mechanism")
            .map(Element::text)
            .collect();
        mechs.sort();
        let mut cbs: Vec<String> = child(&features, "sasl-channel-binding", "urn:xmpp:sasl-cb:0")
            .children()
            .map(|c| c.attr("type").unwrap().to_owned())
            .collect();
        cbs.sort();
        let s = format!("{}\u{1f}{}", mechs.join("\u{1e}"), cbs.join("\u{1e}"));
        let want = format!("h={}", B64.encode(sha2::Sha256::digest(s.as_bytes())));
        let scram = ScramClient::new(ScramHash::Sha256, "alice", PW, None, None).unwrap();
        let first = B64.encode(scram.client_first());
        let (send, ns) = if sasl2 {
            (
                format!(
                    "<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'><initial-response>{first}</initial-response></authenticate>"
                ),
                SASL2,
            )
        } else {
            (
                format!(
                    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{first}</auth>"
                ),
                "urn:ietf:params:xml:ns:xmpp-sasl",
            )
        };
        c.send_xml(&send).await.unwrap();
        let ch = c
            .expect(&format!("<challenge xmlns='{ns}'>{{*}}</challenge>"))
            .await
            .unwrap();
        let server_first = String::from_utf8(B64.decode(ch.text()).unwrap()).unwrap();
        let attrs: Vec<&str> = server_first.split(',').collect();
        assert_eq!(attrs.len(), 4, "{server_first}");
        assert_eq!(attrs[3], want, "sasl2={sasl2}: {server_first}");
    }
}

/// XEP-0388 §2.6.1 with XEP-0386 §3.2: SCRAM with Bind2 and a tag: `<success/>` carries the
/// server-final message, the full JID (`tag/…`) and `<bound/>`, then the features of the
/// bound stream, without a restart; stanzas flow at once, with post-authentication limits.
#[tokio::test]
async fn scram_login_with_bind2() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let (mut c, _) = tls(&server).await;
    let success = scram(
        &mut c,
        "alice",
        PW,
        &format!(
            "{}<bind xmlns='urn:xmpp:bind:0'><tag>Test</tag></bind>",
            user_agent(UA)
        ),
    )
    .await;
    starling_testkit::matcher::assert_matches(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{*}</additional-data>\
         <authorization-identifier>{*}</authorization-identifier><bound xmlns='urn:xmpp:bind:0'/></success>",
        &success,
    );
    let jid = identity(&success);
    assert!(jid.starts_with("alice@localhost/Test/"), "{jid}");
    // No bind or session any more: the stream is bound.
    let features = c.recv_element().await.unwrap();
    let names: Vec<&str> = features.children().map(Element::name).collect();
    assert_eq!(
        names,
        ["limits", "sm", "csi", "ver", "sub", "c"],
        "{}",
        features.to_xml()
    );
    // A ping larger than the 8 KiB pre-authentication limit is answered.
    let pad = "x".repeat(10_000);
    c.send_xml(&format!("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/><pad xmlns='urn:example'>{pad}</pad></iq>")).await.unwrap();
    let reply = c.recv_element().await.unwrap();
    assert_eq!(reply.attr("id"), Some("p1"), "{}", reply.to_xml());
    assert_eq!(reply.attr("to"), Some(jid.as_str()));
}

/// XEP-0388 §2.6.1: PLAIN in one message; without Bind2 the identifier is the bare JID and the
/// features offer legacy binding.
#[tokio::test]
async fn plain_login_then_legacy_bind() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let (mut c, _) = tls(&server).await;
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response></authenticate>",
        B64.encode(b"\0alice\0pw")
    ))
    .await
    .unwrap();
    c.expect("<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>alice@localhost</authorization-identifier></success>")
        .await
        .unwrap();
    let features = c.recv_element().await.unwrap();
    assert!(
        features
            .get_child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .is_some(),
        "{}",
        features.to_xml()
    );
    let jid = c.bind(Some("laptop")).await.unwrap();
    assert_eq!(jid.to_string(), "alice@localhost/laptop");
}

/// XEP-0388 §2.6.2: a wrong password is `<failure/>` with the RFC 6120 condition; the inline
/// requests are not processed; the client may try again.
#[tokio::test]
async fn wrong_password_fails_and_nothing_inline_happens() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let (mut c, _) = tls(&server).await;
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response>{}<bind xmlns='urn:xmpp:bind:0'/></authenticate>",
        B64.encode(b"\0alice\0wrong"),
        user_agent(UA)
    ))
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>")
        .await
        .unwrap();
    assert!(
        server
            .router()
            .sessions()
            .resources(&"alice@localhost".parse().unwrap())
            .await
            .is_empty()
    );
    // An unknown mechanism, a response out of sequence, an abort.
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='X-NOPE'/>"
    ))
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:xmpp:sasl:2'><invalid-mechanism xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>")
        .await
        .unwrap();
    // §2.3: the user-agent id must be a UUID.
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='PLAIN'><initial-response>{}</initial-response><user-agent id='not-a-uuid'/></authenticate>",
        B64.encode(b"\0alice\0pw")
    ))
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:xmpp:sasl:2'><malformed-request xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text>the user-agent id must be a UUID (XEP-0388)</text></failure>")
        .await
        .unwrap();
    // §3.5: <abort/> ends an exchange with <aborted/>.
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='SCRAM-SHA-256'/>"
    ))
    .await
    .unwrap();
    c.expect(&format!("<challenge xmlns='{SASL2}'/>"))
        .await
        .unwrap();
    c.send_xml(&format!("<abort xmlns='{SASL2}'/>"))
        .await
        .unwrap();
    c.expect("<failure xmlns='urn:xmpp:sasl:2'><aborted xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>")
        .await
        .unwrap();
    // The fifth failed attempt closes the stream, as with legacy SASL (RFC 6120 §6.4.5).
    c.send_xml(&format!(
        "<authenticate xmlns='{SASL2}' mechanism='X-NOPE'/>"
    ))
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:xmpp:sasl:2'><invalid-mechanism xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>")
        .await
        .unwrap();
    c.expect_stream_error("policy-violation").await.unwrap();
}

/// XEP-0386 §3.2.1: the same user agent and tag get the same resource, another user agent
/// another; binding it again replaces the older session as a normal bind does (RFC 6120
/// §7.7.2.2, `<conflict/>`), which is "terminate earlier sessions from the same client".
#[tokio::test]
async fn bind2_resources_are_stable_per_user_agent() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let bind = |ua: &str| {
        format!(
            "{}<bind xmlns='urn:xmpp:bind:0'><tag>App</tag></bind>",
            user_agent(ua)
        )
    };
    let (mut first, _) = tls(&server).await;
    let a = identity(&scram(&mut first, "alice", PW, &bind(UA)).await);
    first.recv_element().await.unwrap(); // features
    let (mut other, _) = tls(&server).await;
    let b = identity(&scram(&mut other, "alice", PW, &bind(UA2)).await);
    assert_ne!(a, b);
    assert!(
        !a.contains(UA) && !a.contains(&UA[..8]),
        "the id is not exposed: {a}"
    );
    let (mut again, _) = tls(&server).await;
    let c = identity(&scram(&mut again, "alice", PW, &bind(UA)).await);
    assert_eq!(a, c, "same user agent, same resource");
    first.expect_stream_error("conflict").await.unwrap();
}

/// XEP-0198 §9.1 / XEP-0386 §3.2: `<enable/>` inside Bind2 answers `<enabled/>` inside
/// `<bound/>`; after the connection drops, §9.2: `<resume/>` inside `<authenticate/>` answers
/// `<resumed/>` inside `<success/>` (Bind2 skipped, no features) and the unacknowledged stanza
/// follows. A failed resumption puts `<failed/>` in `<success/>` and binds anew.
#[tokio::test]
async fn inline_stream_management_enable_and_resume() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let (mut c, _) = tls(&server).await;
    let success = scram(
        &mut c,
        "alice",
        PW,
        &format!(
            "{}<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>",
            user_agent(UA)
        ),
    )
    .await;
    starling_testkit::matcher::assert_matches(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{*}</additional-data>\
         <authorization-identifier>{*}</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' resume='true' max='300' id='{*}'/></bound></success>",
        &success,
    );
    let jid = identity(&success);
    let previd = child(
        child(&success, "bound", "urn:xmpp:bind:0"),
        "enabled",
        "urn:xmpp:sm:3",
    )
    .attr("id")
    .unwrap()
    .to_owned();
    // Enabled already: the features that follow do not offer it again (XEP-0198 §2 is for a
    // stream without it; @xmpp/client would answer the offer with <resume/>).
    let features = c.recv_element().await.unwrap();
    assert!(features.is("features", "http://etherx.jabber.org/streams"));
    assert!(
        !features.has_child("sm", "urn:xmpp:sm:3"),
        "{}",
        features.to_xml()
    );
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml(&format!(
        "<message to='{jid}' type='chat' id='m1'><body>hi</body></message>"
    ))
    .await
    .unwrap();
    c.expect(&format!(
        "<message from='bob@localhost/r' to='{jid}' type='chat' id='m1'><body>hi</body></message>"
    ))
    .await
    .unwrap();
    drop(c); // the phone loses its network; m1 was never acknowledged
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut c, _) = tls(&server).await;
    let success = scram(
        &mut c,
        "alice",
        PW,
        &format!(
            "{}<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/><bind xmlns='urn:xmpp:bind:0'/>",
            user_agent(UA)
        ),
    )
    .await;
    starling_testkit::matcher::assert_matches(
        &format!(
            "<success xmlns='urn:xmpp:sasl:2'><additional-data>{{*}}</additional-data>\
             <authorization-identifier>{jid}</authorization-identifier>\
             <resumed xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/></success>"
        ),
        &success,
    );
    // No features after a resumption: the unacknowledged message comes next.
    c.expect(&format!(
        "<message from='bob@localhost/r' to='{jid}' type='chat' id='m1'><body>hi</body></message>"
    ))
    .await
    .unwrap();
    // An unknown id: <failed/> in <success/>, and Bind2 proceeds.
    let (mut d, _) = tls(&server).await;
    let success = scram(
        &mut d,
        "alice",
        PW,
        &format!(
            "{}<resume xmlns='urn:xmpp:sm:3' previd='nope' h='0'/><bind xmlns='urn:xmpp:bind:0'/>",
            user_agent(UA2)
        ),
    )
    .await;
    starling_testkit::matcher::assert_matches(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{*}</additional-data>\
         <authorization-identifier>{*}</authorization-identifier>\
         <failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>unknown session</text></failed>\
         <bound xmlns='urn:xmpp:bind:0'/></success>",
        &success,
    );
}

/// XEP-0386 §3.2 with XEP-0280: carbons enabled inline (through the carbons module's
/// module-api registration) copy a message another resource received.
#[tokio::test]
async fn inline_carbons_enable() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let (mut c, _) = tls(&server).await;
    let success = scram(
        &mut c,
        "alice",
        PW,
        &format!(
            "{}<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:carbons:2'/></bind>",
            user_agent(UA)
        ),
    )
    .await;
    // §3.2: "no response is necessary".
    starling_testkit::matcher::assert_matches(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{*}</additional-data>\
         <authorization-identifier>{*}</authorization-identifier><bound xmlns='urn:xmpp:bind:0'/></success>",
        &success,
    );
    let jid = identity(&success);
    c.recv_element().await.unwrap(); // features
    // Carbons go to available resources (XEP-0280 §6).
    c.send_xml("<presence/>").await.unwrap();
    c.expect(&format!("<presence from='{jid}' to='{jid}'/>"))
        .await
        .unwrap();
    let _desk = server.online("alice", PW, "desk").await;
    c.expect("<presence from='alice@localhost/desk' to='{*}'/>")
        .await
        .unwrap();
    let mut bob = server.online("bob", PW, "r").await;
    bob.send_xml("<message to='alice@localhost/desk' type='chat' id='c1'><body>x</body></message>")
        .await
        .unwrap();
    c.expect(&format!(
        "<message from='alice@localhost' to='{jid}' type='chat'><received xmlns='urn:xmpp:carbons:2'>\
         <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='bob@localhost/r' to='alice@localhost/desk' type='chat' id='c1'><body>x</body></message></forwarded></received></message>"
    ))
    .await
    .unwrap();
}

/// XEP-0484 §4.2–§4.4: a token asked for with SCRAM, then a FAST reconnect whose whole login
/// (authentication, Bind2 with stream management, inline) is one client write answered by one
/// server reply; the HT responder hash proves the server knew the token.
#[tokio::test]
async fn fast_token_then_one_round_trip_reconnect() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let (mut c, _) = tls(&server).await;
    let success = scram(
        &mut c,
        "alice",
        PW,
        &format!("{}<bind xmlns='urn:xmpp:bind:0'/><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>", user_agent(UA)),
    )
    .await;
    let token = child(&success, "token", "urn:xmpp:fast:0");
    let secret = token.attr("token").unwrap().to_owned();
    let expiry = token.attr("expiry").unwrap();
    assert!(expiry.ends_with('Z') && expiry.len() == 20, "{expiry}");
    drop(c);
    // One write: stream header, <authenticate/> with the token.
    let (mut c, _) = tls(&server).await;
    c.send_xml(&fast_authenticate(
        &secret,
        "HT-SHA-256-NONE",
        &[],
        UA,
        "<bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind>",
    ))
    .await
    .unwrap();
    let success = c.recv_element().await.unwrap();
    starling_testkit::matcher::assert_matches(
        "<success xmlns='urn:xmpp:sasl:2'><additional-data>{*}</additional-data>\
         <authorization-identifier>{*}</authorization-identifier>\
         <bound xmlns='urn:xmpp:bind:0'><enabled xmlns='urn:xmpp:sm:3' resume='true' max='300' id='{*}'/></bound></success>",
        &success,
    );
    let responder = B64
        .decode(child(&success, "additional-data", SASL2).text())
        .unwrap();
    assert_eq!(
        responder,
        starling_sasl::ht::responder_hash(secret.as_bytes(), b"")
    );
    // With channel binding: a token for -EXPR works only bound to this TLS connection.
    let (mut c, _) = tls(&server).await;
    let success = scram(
        &mut c,
        "alice",
        PW,
        &format!(
            "{}<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-EXPR'/>",
            user_agent(UA2)
        ),
    )
    .await;
    let expr = child(&success, "token", "urn:xmpp:fast:0")
        .attr("token")
        .unwrap()
        .to_owned();
    drop(c);
    let (mut c, _) = tls(&server).await;
    let cb = c.channel_binding(ChannelBindingType::TlsExporter).unwrap();
    // The right token over another channel's binding fails; over this one it works.
    c.send_xml(&fast_authenticate(
        &expr,
        "HT-SHA-256-EXPR",
        b"not this channel",
        UA2,
        "",
    ))
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>").await.unwrap();
    c.send_xml(&fast_authenticate(&expr, "HT-SHA-256-EXPR", &cb, UA2, ""))
        .await
        .unwrap();
    c.expect("<success xmlns='urn:xmpp:sasl:2'><additional-data>{*}</additional-data><authorization-identifier>alice@localhost</authorization-identifier></success>").await.unwrap();
}

/// `<authenticate/>` with an HT token.
fn fast_authenticate(token: &str, mech: &str, cb: &[u8], ua: &str, inline: &str) -> String {
    let mut msg = b"alice\0".to_vec();
    msg.extend_from_slice(&starling_sasl::ht::initiator_hash(token.as_bytes(), cb));
    format!(
        "<authenticate xmlns='{SASL2}' mechanism='{mech}'><initial-response>{}</initial-response>{}<fast xmlns='urn:xmpp:fast:0'/>{inline}</authenticate>",
        B64.encode(msg),
        user_agent(ua)
    )
}

/// Logs in with SCRAM and asks for a `HT-SHA-256-NONE` token for `ua`.
async fn token_for(server: &TestServer, ua: &str) -> String {
    let (mut c, _) = tls(server).await;
    let success = scram(
        &mut c,
        "alice",
        PW,
        &format!(
            "{}<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>",
            user_agent(ua)
        ),
    )
    .await;
    child(&success, "token", "urn:xmpp:fast:0")
        .attr("token")
        .unwrap()
        .to_owned()
}

/// Tries a FAST login; the first element the server answers.
async fn try_fast(server: &TestServer, token: &str, ua: &str, extra: &str) -> Element {
    let (mut c, _) = tls(server).await;
    c.send_xml(&fast_authenticate(token, "HT-SHA-256-NONE", &[], ua, extra))
        .await
        .unwrap();
    c.recv_element().await.unwrap()
}

const NOT_AUTHORIZED: &str = "<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>";

/// XEP-0484 §4.5, §4.6, §5.2: a token invalidated by its client, one replaced by rotation once
/// the newer is used, an expired one (`<credentials-expired/>`), a replayed `count`, and a token
/// bound to another client are all refused.
#[tokio::test]
async fn invalidated_rotated_expired_and_replayed_tokens_are_refused() {
    let server = TestServer::with_users(&["alice"], PW).await;
    // Invalidation (§4.6): works once, then never again; no new token without asking.
    let t = token_for(&server, UA).await;
    let ok = try_fast(&server, &t, UA, "").await;
    assert!(ok.get_child("token", "urn:xmpp:fast:0").is_none());
    let (mut c, _) = tls(&server).await;
    c.send_xml(
        &fast_authenticate(&t, "HT-SHA-256-NONE", &[], UA, "").replace(
            "<fast xmlns='urn:xmpp:fast:0'/>",
            "<fast xmlns='urn:xmpp:fast:0' invalidate='true'/>",
        ),
    )
    .await
    .unwrap();
    let success = c.recv_element().await.unwrap();
    assert!(
        success.is("success", SASL2) && success.get_child("token", "urn:xmpp:fast:0").is_none(),
        "{}",
        success.to_xml()
    );
    starling_testkit::matcher::assert_matches(NOT_AUTHORIZED, &try_fast(&server, &t, UA, "").await);
    // Another client's user-agent id does not take the token.
    let t = token_for(&server, UA).await;
    starling_testkit::matcher::assert_matches(
        NOT_AUTHORIZED,
        &try_fast(&server, &t, UA2, "").await,
    );
    // Rotation (§4.5): the old token stays valid until the new one is used.
    let t2 = try_fast(
        &server,
        &t,
        UA,
        "<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>",
    )
    .await;
    let t2 = child(&t2, "token", "urn:xmpp:fast:0")
        .attr("token")
        .unwrap()
        .to_owned();
    assert!(
        try_fast(&server, &t, UA, "").await.is("success", SASL2),
        "still valid"
    );
    assert!(try_fast(&server, &t2, UA, "").await.is("success", SASL2));
    starling_testkit::matcher::assert_matches(NOT_AUTHORIZED, &try_fast(&server, &t, UA, "").await);
    // Replay counts (§4.4).
    let counted = |n: u32| format!("<fast xmlns='urn:xmpp:fast:0' count='{n}'/>");
    for (n, ok) in [(5, true), (5, false), (4, false), (6, true)] {
        let (mut c, _) = tls(&server).await;
        c.send_xml(
            &fast_authenticate(&t2, "HT-SHA-256-NONE", &[], UA, "")
                .replace("<fast xmlns='urn:xmpp:fast:0'/>", &counted(n)),
        )
        .await
        .unwrap();
        let got = c.recv_element().await.unwrap();
        if ok {
            assert!(got.is("success", SASL2), "count {n}: {}", got.to_xml());
        } else {
            starling_testkit::matcher::assert_matches(
                "<failure xmlns='urn:xmpp:sasl:2'><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text>this 'count' was used already (XEP-0484)</text></failure>",
                &got,
            );
        }
    }
    // Expiry (§5.2): a token whose lifetime is over, issued with the server's own secret.
    let secret = starling_accounts::fast::ServerSecret::load_or_create(
        &server.data_dir().join("server-secret"),
    )
    .unwrap();
    let stores = &server.router().context().stores;
    let lifetime = Duration::from_secs(14 * 86_400);
    let old = starling_accounts::fast::issue(
        stores.fast.as_ref(),
        &secret,
        starling_accounts::fast::TokenOwner {
            localpart: "alice",
            domain: "localhost",
            user_agent: UA2,
        },
        starling_sasl::ht::HtMechanism::from_name("HT-SHA-256-NONE").unwrap(),
        lifetime,
        starling_accounts::fast::unix_now() - 15 * 86_400,
    )
    .await
    .unwrap();
    starling_testkit::matcher::assert_matches(
        "<failure xmlns='urn:xmpp:sasl:2'><credentials-expired xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><text>the token has expired</text></failure>",
        &try_fast(&server, &old.token, UA2, "").await,
    );
    // Near expiry (less than half its lifetime left): a new token comes unasked (§4.5).
    let near = starling_accounts::fast::issue(
        stores.fast.as_ref(),
        &secret,
        starling_accounts::fast::TokenOwner {
            localpart: "alice",
            domain: "localhost",
            user_agent: UA2,
        },
        starling_sasl::ht::HtMechanism::from_name("HT-SHA-256-NONE").unwrap(),
        lifetime,
        starling_accounts::fast::unix_now() - 10 * 86_400,
    )
    .await
    .unwrap();
    let rotated = try_fast(&server, &near.token, UA2, "").await;
    assert!(
        rotated.get_child("token", "urn:xmpp:fast:0").is_some(),
        "{}",
        rotated.to_xml()
    );
}

/// XEP-0484 / issue 14: a password change (through the one credential path the CLI, XEP-0077
/// and admin commands use) and the account's deletion revoke every token.
#[tokio::test]
async fn password_change_and_deletion_revoke_tokens() {
    let server = TestServer::with_users(&["alice"], PW).await;
    let stores = server.router().context().stores.clone();
    let t = token_for(&server, UA).await;
    assert!(try_fast(&server, &t, UA, "").await.is("success", SASL2));
    starling_accounts::set_password(stores.accounts.as_ref(), "alice", "localhost", "new", 4096)
        .await
        .unwrap();
    starling_testkit::matcher::assert_matches(NOT_AUTHORIZED, &try_fast(&server, &t, UA, "").await);
    let (mut c, _) = tls(&server).await;
    let success = scram(
        &mut c,
        "alice",
        "new",
        &format!(
            "{}<request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/>",
            user_agent(UA)
        ),
    )
    .await;
    let t = child(&success, "token", "urn:xmpp:fast:0")
        .attr("token")
        .unwrap()
        .to_owned();
    drop(c);
    stores
        .accounts
        .delete_account("alice", "localhost")
        .await
        .unwrap();
    server.add_user("alice", PW).await;
    starling_testkit::matcher::assert_matches(NOT_AUTHORIZED, &try_fast(&server, &t, UA, "").await);
}
