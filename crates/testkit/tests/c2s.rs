//! End-to-end tests of the client stream over real TCP and TLS against an in-process server on port
//! 0 with a real SQLite store. Each test asserts the exact elements a client receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use starling_testkit::client::{Client, Security, TestError};
use starling_testkit::matcher::assert_matches;
use starling_testkit::server::TestServer;

const PW: &str = "correct horse battery staple";

async fn server_with_users(users: &[&str]) -> TestServer {
    TestServer::with_users(users, PW).await
}

async fn login(server: &TestServer, user: &str, resource: &str) -> Client {
    server.login(user, PW, resource).await
}

const POSTAUTH_FEATURES: &str = "<stream:features>\
    <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
    <session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>\
    <limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>262144</max-bytes></limits>\
    <sm xmlns='urn:xmpp:sm:3'/>\
    <csi xmlns='urn:xmpp:csi:0'/>\
    <ver xmlns='urn:xmpp:features:rosterver'/>\
    <sub xmlns='urn:xmpp:features:pre-approval'/>\
    <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://starling.chat/caps' ver='{*}'/>\
    </stream:features>";

#[tokio::test]
async fn starttls_scram_sha256_bind_exact_stanzas() {
    let server = server_with_users(&["alice"]).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    let (header, features) = c.open_stream("localhost").await.unwrap();
    assert_eq!(header.from.as_deref(), Some("localhost"));
    assert_eq!(header.version.as_deref(), Some("1.0"));
    assert!(header.id.is_some());
    // RFC 6120 §5.3.1: TLS is mandatory, so only STARTTLS is offered.
    assert_matches(
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
        &features,
    );
    let features = c.starttls("localhost").await.unwrap();
    assert_matches(
        "<stream:features>\
           <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-512-PLUS</mechanism><mechanism>SCRAM-SHA-256-PLUS</mechanism>\
             <mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-512</mechanism>\
             <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
             <mechanism>PLAIN</mechanism>\
           </mechanisms>\
           <authentication xmlns='urn:xmpp:sasl:2'>\
             <mechanism>SCRAM-SHA-512-PLUS</mechanism><mechanism>SCRAM-SHA-256-PLUS</mechanism>\
             <mechanism>SCRAM-SHA-1-PLUS</mechanism><mechanism>SCRAM-SHA-512</mechanism>\
             <mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
             <mechanism>PLAIN</mechanism>\
             <inline>\
               <bind xmlns='urn:xmpp:bind:0'><inline><feature var='urn:xmpp:sm:3'/><feature var='urn:xmpp:csi:0'/>\
                 <feature var='urn:xmpp:carbons:2'/></inline></bind>\
               <sm xmlns='urn:xmpp:sm:3'/>\
               <fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-EXPR</mechanism><mechanism>HT-SHA-256-ENDP</mechanism>\
                 <mechanism>HT-SHA-256-NONE</mechanism></fast>\
             </inline>\
           </authentication>\
           <sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
             <channel-binding type='tls-exporter'/><channel-binding type='tls-server-end-point'/>\
           </sasl-channel-binding>\
           <register xmlns='urn:xmpp:ibr-token:0'/>\
           <register xmlns='http://jabber.org/features/iq-register'/>\
           <limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>8192</max-bytes></limits>\
         </stream:features>",
        &features,
    );
    let features = c
        .authenticate("localhost", "SCRAM-SHA-256", "alice", PW, None)
        .await
        .unwrap();
    assert_matches(POSTAUTH_FEATURES, &features);
    c.send_xml("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>laptop</resource></bind></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>alice@localhost/laptop</jid></bind></iq>",
    )
    .await
    .unwrap();
    // Legacy session establishment (Smack/Spark send it).
    c.send_xml(
        "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
    )
    .await
    .unwrap();
    c.expect("<iq type='result' id='s1' to='alice@localhost/laptop'/>")
        .await
        .unwrap();
    c.send_xml("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    c.expect("<iq type='result' id='p1' from='localhost' to='alice@localhost/laptop'/>")
        .await
        .unwrap();
    c.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn direct_tls_login_with_alpn() {
    let server = server_with_users(&["alice"]).await;
    let mut c = Client::connect_direct_tls(server.direct_tls_addr, "localhost")
        .await
        .unwrap();
    assert_eq!(c.alpn_protocol(), Some(&b"xmpp-client"[..]));
    let (_, features) = c.open_stream("localhost").await.unwrap();
    // Already secure: no STARTTLS offered.
    assert!(
        features
            .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_none()
    );
    assert!(
        features
            .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
            .is_some()
    );
    c.authenticate("localhost", "SCRAM-SHA-256", "alice", PW, None)
        .await
        .unwrap();
    let jid = c.bind(None).await.unwrap();
    assert_eq!(jid.to_bare().to_string(), "alice@localhost");
    assert!(
        !jid.resource().as_str().is_empty(),
        "server-generated resource"
    );
    c.close().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn every_mechanism_logs_in() {
    let server = server_with_users(&["alice"]).await;
    for mech in [
        "SCRAM-SHA-1",
        "SCRAM-SHA-256",
        "SCRAM-SHA-512",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256-PLUS",
        "SCRAM-SHA-512-PLUS",
        "PLAIN",
    ] {
        for security in [Security::StartTls, Security::DirectTls] {
            let mut c = match security {
                Security::DirectTls => {
                    Client::connect_direct_tls(server.direct_tls_addr, "localhost")
                        .await
                        .unwrap()
                }
                _ => Client::connect(server.starttls_addr).await.unwrap(),
            };
            c.open_stream("localhost").await.unwrap();
            if security == Security::StartTls {
                c.starttls("localhost").await.unwrap();
            }
            c.authenticate("localhost", mech, "alice", PW, None)
                .await
                .unwrap_or_else(|e| panic!("{mech} over {security:?}: {e}"));
            c.bind(Some("r")).await.unwrap();
            c.close().await.unwrap();
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn plus_with_both_binding_types() {
    use starling_testkit::ChannelBindingType;
    let server = server_with_users(&["alice"]).await;
    for binding in [
        ChannelBindingType::TlsExporter,
        ChannelBindingType::TlsServerEndPoint,
    ] {
        let mut c = Client::connect(server.starttls_addr).await.unwrap();
        c.open_stream("localhost").await.unwrap();
        c.starttls("localhost").await.unwrap();
        c.authenticate_with_binding(
            "localhost",
            "SCRAM-SHA-256-PLUS",
            "alice",
            PW,
            None,
            Some(binding),
        )
        .await
        .unwrap_or_else(|e| panic!("{binding:?}: {e}"));
        c.close().await.ok();
    }
    server.stop().await;
}

#[tokio::test]
async fn sasl_failures_do_not_reveal_accounts_and_allow_retries() {
    let server = server_with_users(&["alice"]).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.starttls("localhost").await.unwrap();
    for (user, pw) in [("alice", "wrong"), ("nobody", PW), ("nobody", "wrong")] {
        for mech in ["SCRAM-SHA-256", "PLAIN"] {
            let err = c
                .authenticate("localhost", mech, user, pw, None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, TestError::SaslFailure(cond) if cond == "not-authorized"),
                "{user}/{mech}: {err}"
            );
            if c.features().is_none() {
                break;
            }
        }
        // Five failures close the stream (RFC 6120 §6.4.5); stop before that here.
        if user == "nobody" && pw == PW {
            break;
        }
    }
    // After failures, a correct attempt still succeeds.
    c.authenticate("localhost", "SCRAM-SHA-1", "alice", PW, None)
        .await
        .unwrap();
    c.bind(Some("x")).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn too_many_sasl_failures_close_the_stream() {
    let server = server_with_users(&["alice"]).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.starttls("localhost").await.unwrap();
    for _ in 0..4 {
        c.send_xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>")
            .await
            .unwrap();
        c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
            .await
            .unwrap();
    }
    c.send_xml(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>",
    )
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
        .await
        .unwrap();
    c.expect_stream_error("policy-violation").await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn sasl_edge_cases() {
    let server = server_with_users(&["alice", "bob"]).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.starttls("localhost").await.unwrap();
    // authzid of another user.
    let err = c
        .authenticate("localhost", "PLAIN", "alice", PW, Some("bob@localhost"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TestError::SaslFailure(c) if c == "invalid-authzid"),
        "{err}"
    );
    let err = c
        .authenticate(
            "localhost",
            "SCRAM-SHA-256",
            "alice",
            PW,
            Some("bob@localhost"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TestError::SaslFailure(c) if c == "invalid-authzid"),
        "{err}"
    );
    // Unknown mechanism.
    c.send_xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>")
        .await
        .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>")
        .await
        .unwrap();
    // Bad base64.
    c.send_xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>")
        .await
        .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><incorrect-encoding/></failure>")
        .await
        .unwrap();
    // Abort in the middle of an exchange.
    c.send_xml("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>")
        .await
        .unwrap();
    c.expect("<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</challenge>")
        .await
        .unwrap();
    c.send_xml("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await
        .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn no_authentication_before_tls() {
    let server = server_with_users(&["alice"]).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.send_xml(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHg=</auth>",
    )
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><encryption-required/></failure>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn plain_is_never_offered_without_tls() {
    let server = TestServer::start_with(|c| c.c2s.require_encryption = false).await;
    server.add_user("alice", PW).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    let (_, features) = c.open_stream("localhost").await.unwrap();
    assert_matches(
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
           <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>SCRAM-SHA-512</mechanism><mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
           </mechanisms>\
           <limits xmlns='urn:xmpp:stream-limits:0'><max-bytes>8192</max-bytes></limits>\
         </stream:features>",
        &features,
    );
    c.send_xml(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHg=</auth>",
    )
    .await
    .unwrap();
    c.expect("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><invalid-mechanism/></failure>")
        .await
        .unwrap();
    // SCRAM without TLS is allowed when encryption is not required.
    c.authenticate("localhost", "SCRAM-SHA-256", "alice", PW, None)
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn stanzas_before_authentication_or_binding_are_refused() {
    let server = server_with_users(&["alice"]).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.starttls("localhost").await.unwrap();
    c.send_xml("<message to='alice@localhost'><body>x</body></message>")
        .await
        .unwrap();
    c.expect_stream_error("not-authorized").await.unwrap();

    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.starttls("localhost").await.unwrap();
    c.authenticate("localhost", "SCRAM-SHA-256", "alice", PW, None)
        .await
        .unwrap();
    c.send_xml("<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    c.expect_stream_error("not-authorized").await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn stream_header_errors() {
    let server = TestServer::start().await;
    // Unknown host.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.send_stream_header("example.net").await.unwrap();
    let header = c.recv().await.unwrap();
    assert!(matches!(header, starling_testkit::Frame::Header(_)));
    c.expect_stream_error("host-unknown").await.unwrap();
    // No version: XMPP 0.9 is not supported.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.send_raw(b"<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        .await
        .unwrap();
    assert!(matches!(
        c.recv().await.unwrap(),
        starling_testkit::Frame::Header(_)
    ));
    c.expect_stream_error("unsupported-version").await.unwrap();
    // Wrong stream namespace: the server still sends its header first (RFC 6120 §4.9.1.1).
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.send_raw(b"<stream:stream to='localhost' version='1.0' xmlns:stream='urn:wrong'>")
        .await
        .unwrap();
    assert!(matches!(
        c.recv().await.unwrap(),
        starling_testkit::Frame::Header(_)
    ));
    c.expect_stream_error("invalid-namespace").await.unwrap();
    // A stanza in the wrong content namespace.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.send_raw(b"<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'><message/>")
        .await
        .unwrap();
    assert!(matches!(
        c.recv().await.unwrap(),
        starling_testkit::Frame::Header(_)
    ));
    c.recv().await.unwrap(); // features
    c.expect_stream_error("invalid-namespace").await.unwrap();
    server.stop().await;
}

/// Hardening: `<starttls/>` followed by a stanza in the same TCP write. The stanza was sent in
/// plaintext and must never be processed.
#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_never_processed() {
    let server = TestServer::start_with(|c| c.c2s.require_encryption = false).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.send_raw(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='smuggled' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    let features = c.upgrade_after_starttls("localhost").await.unwrap();
    assert!(
        features
            .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
            .is_some()
    );
    c.expect_silence(Duration::from_millis(300)).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn restricted_xml_is_refused_at_once() {
    let server = TestServer::start().await;
    for (payload, conditions) in [
        (
            "<!DOCTYPE x [<!ENTITY a 'b'>]>",
            &["restricted-xml", "not-well-formed"][..],
        ),
        ("<!-- comment -->", &["restricted-xml"][..]),
        ("<?pi data?>", &["restricted-xml"][..]),
        (
            "<message><body>&ent;</body></message>",
            &["restricted-xml"][..],
        ),
        ("<message></iq>", &["not-well-formed"][..]),
    ] {
        let mut c = Client::connect(server.starttls_addr).await.unwrap();
        c.open_stream("localhost").await.unwrap();
        c.send_raw(payload.as_bytes()).await.unwrap();
        let err = c.recv_element().await.unwrap();
        let cond = err
            .children()
            .next()
            .map(|c| c.name().to_owned())
            .unwrap_or_default();
        assert!(conditions.contains(&cond.as_str()), "{payload}: got {cond}");
        c.expect_eof().await.ok();
    }
    server.stop().await;
}

#[tokio::test]
async fn stanza_size_limits_before_and_after_authentication() {
    let server = server_with_users(&["alice"]).await;
    // Before authentication: 8 KiB.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let big = format!("<message><body>{}</body></message>", "a".repeat(9000));
    c.send_raw(big.as_bytes()).await.unwrap();
    c.expect_stream_error(
        "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{*}</text>\
         <stanza-too-big xmlns='urn:xmpp:errors'/></stream:error>",
    )
    .await
    .unwrap();
    // Before authentication: 32 elements.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.send_raw(format!("<message>{}</message>", "<a/>".repeat(40)).as_bytes())
        .await
        .unwrap();
    c.expect_stream_error("policy-violation").await.unwrap();
    // After authentication: 256 KiB, counted while the bytes arrive (one endless element).
    let mut c = login(&server, "alice", "big").await;
    c.send_raw(b"<message to='alice@localhost'><body>")
        .await
        .unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    let mut sent = 0;
    let result = loop {
        if let Err(e) = c.send_raw(&chunk).await {
            break Err(e);
        }
        sent += chunk.len();
        if sent > 400 * 1024 {
            break Ok(());
        }
    };
    // The server may close while we are still writing; either way the error must be there.
    let _ = result;
    c.expect_stream_error("policy-violation").await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn unauthenticated_streams_time_out() {
    let server = TestServer::start_with(|c| c.c2s.auth_timeout = Duration::from_secs(1)).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    c.expect_stream_error("connection-timeout").await.unwrap();
    // A connection that never sends anything gets a header and the error too.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    assert!(matches!(
        c.recv().await.unwrap(),
        starling_testkit::Frame::Header(_)
    ));
    c.expect_stream_error("connection-timeout").await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn messages_between_full_jids_and_from_stamping() {
    let server = server_with_users(&["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    // Receipts request, a smuggling attempt in the body, and a foreign payload pass through intact.
    alice
        .send_xml("<message to='bob@localhost/b' type='chat' id='m1'><body>&lt;/message&gt;&lt;message to='x'&gt; hi</body>\
                   <request xmlns='urn:xmpp:receipts'/><x xmlns='vcard-temp:x:update'><photo>abc</photo></x></message>")
        .await
        .unwrap();
    bob.expect(
        "<message to='bob@localhost/b' type='chat' id='m1' from='alice@localhost/a'>\
           <body>&lt;/message&gt;&lt;message to='x'&gt; hi</body>\
           <request xmlns='urn:xmpp:receipts'/><x xmlns='vcard-temp:x:update'><photo>abc</photo></x></message>",
    )
    .await
    .unwrap();
    // A receipt back; 'from' given as the sender's own bare JID is stamped with the full JID.
    bob.send_xml("<message to='alice@localhost/a' from='bob@localhost' id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>")
        .await
        .unwrap();
    alice
        .expect("<message to='alice@localhost/a' from='bob@localhost/b' id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>")
        .await
        .unwrap();
    // An IQ to another user's full JID and its result are routed.
    alice
        .send_xml(
            "<iq type='get' id='v1' to='bob@localhost/b'><query xmlns='jabber:iq:version'/></iq>",
        )
        .await
        .unwrap();
    bob.expect("<iq type='get' id='v1' to='bob@localhost/b' from='alice@localhost/a'><query xmlns='jabber:iq:version'/></iq>")
        .await
        .unwrap();
    bob.send_xml("<iq type='result' id='v1' to='alice@localhost/a'><query xmlns='jabber:iq:version'><name>t</name></query></iq>")
        .await
        .unwrap();
    alice
        .expect("<iq type='result' id='v1' to='alice@localhost/a' from='bob@localhost/b'><query xmlns='jabber:iq:version'><name>t</name></query></iq>")
        .await
        .unwrap();
    // Forging someone else's 'from' ends the stream.
    alice
        .send_xml(
            "<message to='bob@localhost/b' from='bob@localhost/b'><body>forged</body></message>",
        )
        .await
        .unwrap();
    alice.expect_stream_error("invalid-from").await.unwrap();
    bob.expect_silence(Duration::from_millis(200))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn routing_errors() {
    let server = server_with_users(&["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    // An IQ to an offline resource.
    alice
        .send_xml(
            "<iq type='get' id='i1' to='bob@localhost/none'><ping xmlns='urn:xmpp:ping'/></iq>",
        )
        .await
        .unwrap();
    alice
        .expect("<iq type='error' id='i1' from='bob@localhost/none' to='alice@localhost/a'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        .await
        .unwrap();
    // A message to an account that does not exist.
    alice
        .send_xml("<message to='nobody@localhost' id='m2'><body>x</body></message>")
        .await
        .unwrap();
    alice
        .expect("<message type='error' id='m2' from='nobody@localhost' to='alice@localhost/a'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        .await
        .unwrap();
    // An IQ to the server with an unknown payload.
    alice
        .send_xml("<iq type='get' id='i2' to='localhost'><query xmlns='urn:example:unknown'/></iq>")
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='error' id='i2' from='localhost' to='alice@localhost/a'><error type='cancel'>\
                 <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        )
        .await
        .unwrap();
    // Another domain: no federation yet.
    alice
        .send_xml("<message to='someone@example.net' id='m3'><body>x</body></message>")
        .await
        .unwrap();
    alice
        .expect("<message type='error' id='m3' from='someone@example.net' to='alice@localhost/a'><error type='cancel'>\
                 <remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        .await
        .unwrap();
    // An IQ without an id.
    alice
        .send_xml("<iq type='get' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    alice
        .expect(
            "<iq type='error' from='localhost' to='alice@localhost/a'><error type='modify'>\
                 <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></error></iq>",
        )
        .await
        .unwrap();
    // A message to the bare JID reaches an available resource.
    let mut bob = login(&server, "bob", "b").await;
    bob.send_xml("<presence><priority>1</priority></presence>")
        .await
        .unwrap();
    // RFC 6121 §4.2.2: the initial presence comes back to the account's available resources.
    bob.expect(
        "<presence from='bob@localhost/b' to='bob@localhost/b'><priority>1</priority></presence>",
    )
    .await
    .unwrap();
    alice
        .send_xml("<message to='bob@localhost' type='chat' id='m4'><body>bare</body></message>")
        .await
        .unwrap();
    bob.expect("<message to='bob@localhost' type='chat' id='m4' from='alice@localhost/a'><body>bare</body></message>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn disco_is_built_from_module_registrations() {
    let server = server_with_users(&["alice"]).await;
    let mut c = login(&server, "alice", "a").await;
    c.send_xml("<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='result' id='d1' from='localhost' to='alice@localhost/a'>\
           <query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='server' type='im' name='Starling'/>\
             <feature var='http://jabber.org/protocol/caps'/>\
             <feature var='http://jabber.org/protocol/commands'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='jabber:iq:register'/>\
             <feature var='jabber:iq:version'/>\
             <feature var='msgoffline'/>\
             <feature var='urn:xmpp:blocking'/>\
             <feature var='urn:xmpp:carbons:2'/>\
             <feature var='urn:xmpp:carbons:rules:0'/>\
             <feature var='urn:xmpp:ping'/>\
             <feature var='urn:xmpp:reporting:1'/>\
             <feature var='urn:xmpp:time'/>\
             <feature var='vcard-temp'/>\
           </query></iq>",
    )
    .await
    .unwrap();
    // XEP-0115 §6.2: the caps node from the stream features answers with the same identities
    // and features, and its 'ver' is their hash (§5.1).
    let ver = server.router().server_info().caps_ver.clone();
    c.send_xml(&format!(
        "<iq type='get' id='d4' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' \
         node='https://starling.chat/caps#{ver}'/></iq>"
    ))
    .await
    .unwrap();
    let reply = c.expect(&format!(
        "<iq type='result' id='d4' from='localhost' to='alice@localhost/a'>\
           <query xmlns='http://jabber.org/protocol/disco#info' node='https://starling.chat/caps#{ver}'>\
             <identity category='server' type='im' name='Starling'/>\
             <feature var='http://jabber.org/protocol/caps'/>\
             <feature var='http://jabber.org/protocol/commands'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             <feature var='jabber:iq:register'/>\
             <feature var='jabber:iq:version'/>\
             <feature var='msgoffline'/>\
             <feature var='urn:xmpp:blocking'/>\
             <feature var='urn:xmpp:carbons:2'/>\
             <feature var='urn:xmpp:carbons:rules:0'/>\
             <feature var='urn:xmpp:ping'/>\
             <feature var='urn:xmpp:reporting:1'/>\
             <feature var='urn:xmpp:time'/>\
             <feature var='vcard-temp'/>\
           </query></iq>"
    ))
    .await
    .unwrap();
    {
        use base64::Engine as _;
        use sha1::Digest as _;
        let mut s = String::from("server/im//Starling<");
        for f in reply.children().flat_map(|q| q.children()) {
            if let Some(var) = f.attr("var") {
                s.push_str(var);
                s.push('<');
            }
        }
        let want =
            base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()));
        assert_eq!(ver, want);
    }
    // Another node is unknown.
    c.send_xml("<iq type='get' id='d5' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>")
        .await
        .unwrap();
    c.expect(
        "<iq type='error' id='d5' from='localhost' to='alice@localhost/a'><error type='cancel'>\
              <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
    )
    .await
    .unwrap();
    c.send_xml("<iq type='get' id='d2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
        .await
        .unwrap();
    // XEP-0030 §4: the services, here the conference (XEP-0045), pubsub (XEP-0060) and HTTP
    // upload (XEP-0363) services.
    c.expect("<iq type='result' id='d2' from='localhost' to='alice@localhost/a'><query xmlns='http://jabber.org/protocol/disco#items'>\
              <item jid='conference.localhost'/><item jid='pubsub.localhost'/><item jid='upload.localhost'/></query></iq>")
        .await
        .unwrap();
    c.send_xml("<iq type='get' id='d3' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        .await
        .unwrap();
    // XEP-0163 §6.1: PEP's identity and the pubsub features, sorted with the others.
    let pubsub: String = starling_modules::pubsub::FEATURES
        .iter()
        .map(|f| format!("<feature var='{f}'/>"))
        .collect();
    c.expect(&format!(
        "<iq type='result' id='d3' from='alice@localhost' to='alice@localhost/a'>\
           <query xmlns='http://jabber.org/protocol/disco#info'>\
             <identity category='account' type='registered'/>\
             <identity category='pubsub' type='pep'/>\
             <feature var='http://jabber.org/protocol/disco#info'/>\
             <feature var='http://jabber.org/protocol/disco#items'/>\
             {pubsub}\
             <feature var='urn:xmpp:bookmarks:1#compat'/>\
             <feature var='urn:xmpp:bookmarks:1#compat-pep'/>\
             <feature var='urn:xmpp:pep-vcard-conversion:0'/>\
             <feature var='urn:xmpp:push:0'/>\
             <feature var='vcard-temp'/>\
           </query></iq>"
    ))
    .await
    .unwrap();
    // Ping without 'to' is answered by the server.
    c.send_xml("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    c.expect("<iq type='result' id='p2' to='alice@localhost/a'/>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn resource_conflict_replaces_the_older_session() {
    let server = server_with_users(&["alice", "bob"]).await;
    let mut first = login(&server, "alice", "phone").await;
    let mut second = login(&server, "alice", "phone").await;
    first.expect_stream_error("conflict").await.unwrap();
    // The new session owns the resource.
    let mut bob = login(&server, "bob", "b").await;
    bob.send_xml("<message to='alice@localhost/phone' id='c1'><body>hi</body></message>")
        .await
        .unwrap();
    second
        .expect("<message to='alice@localhost/phone' id='c1' from='bob@localhost/b'><body>hi</body></message>")
        .await
        .unwrap();
    // A second bind on the same stream is not allowed.
    second
        .send_xml("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await
        .unwrap();
    second
        .expect("<iq type='error' id='b2'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></error></iq>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn bad_input_on_one_stream_leaves_others_alone() {
    let server = server_with_users(&["alice", "bob"]).await;
    let mut alice = login(&server, "alice", "a").await;
    let mut bob = login(&server, "bob", "b").await;
    let mut evil = Client::connect(server.starttls_addr).await.unwrap();
    evil.open_stream("localhost").await.unwrap();
    evil.send_raw(b"<!DOCTYPE lol [<!ENTITY lol 'lol'>]>")
        .await
        .unwrap();
    evil.recv_element().await.unwrap();
    let mut evil2 = login(&server, "bob", "evil").await;
    evil2
        .send_raw(b"<message><body>\xff\xfe</body></message>")
        .await
        .unwrap();
    evil2.expect_stream_error("not-well-formed").await.unwrap();
    alice
        .send_xml("<message to='bob@localhost/b' id='ok'><body>still here</body></message>")
        .await
        .unwrap();
    bob.expect("<message to='bob@localhost/b' id='ok' from='alice@localhost/a'><body>still here</body></message>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn whitespace_keepalives_are_accepted() {
    let server = server_with_users(&["alice"]).await;
    let mut c = login(&server, "alice", "a").await;
    c.send_raw(b" \n \t ").await.unwrap();
    c.send_xml("<iq type='get' id='k' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    c.expect("<iq type='result' id='k' from='localhost' to='alice@localhost/a'/>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn rate_limited_reads_lose_nothing() {
    let server = TestServer::start_with(|c| {
        c.c2s.rate = 2048;
        c.c2s.burst = Duration::from_secs(1);
    })
    .await;
    server.add_user("alice", PW).await;
    let mut c = login(&server, "alice", "a").await;
    c.set_timeout(Duration::from_secs(20));
    // Over 8 KiB of pings in one write: four times the burst.
    let mut batch = String::new();
    for i in 0..130 {
        batch.push_str(&format!(
            "<iq type='get' id='r{i:03}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>"
        ));
    }
    assert!(batch.len() > 4 * 2048);
    let started = std::time::Instant::now();
    c.send_raw(batch.as_bytes()).await.unwrap();
    for i in 0..130 {
        c.expect(&format!(
            "<iq type='result' id='r{i:03}' from='localhost' to='alice@localhost/a'/>"
        ))
        .await
        .unwrap();
    }
    // Reads were paused, not skipped: at 2 KiB/s after a 2 KiB burst, the other 6+ KiB take 3 s or more.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "no pacing: {:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_sends_system_shutdown() {
    let server = server_with_users(&["alice"]).await;
    let mut c = login(&server, "alice", "a").await;
    let mut pre = Client::connect(server.starttls_addr).await.unwrap();
    pre.open_stream("localhost").await.unwrap();
    let stop = tokio::spawn(server.stop());
    c.expect_stream_error("system-shutdown").await.unwrap();
    pre.expect_stream_error("system-shutdown").await.unwrap();
    stop.await.unwrap();
}

#[tokio::test]
async fn no_plaintext_password_in_the_data_directory() {
    let server = TestServer::start().await;
    let secret = "Unmistakable-Passw0rd-7f3a";
    server.add_user("alice", secret).await;
    let c = Client::login(
        server.starttls_addr,
        Security::StartTls,
        "localhost",
        "alice",
        secret,
        Some("r"),
    )
    .await
    .unwrap();
    c.close().await.unwrap();
    let dir = server.stop_keep_data().await;
    let mut files = vec![dir.path().to_path_buf()];
    let mut checked = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                files.push(e.unwrap().path());
            }
        } else {
            let bytes = std::fs::read(&p).unwrap();
            checked += 1;
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "password found in {}",
                p.display()
            );
        }
    }
    assert!(checked >= 3, "database, certificate and key expected");
}

#[tokio::test]
async fn accounts_survive_a_restart() {
    let server = server_with_users(&["alice"]).await;
    let dir = server.stop_keep_data().await;
    let path = dir.path().to_path_buf();
    let server = TestServer::start_with(move |c| c.data_dir = path).await;
    let c = login(&server, "alice", "again").await;
    c.close().await.unwrap();
    server.stop().await;
    drop(dir);
}

#[tokio::test]
async fn several_virtual_hosts() {
    let host = |d: &str| starling_config::HostConfig {
        domain: d.to_owned(),
        certificate: None,
        key: None,
        ..Default::default()
    };
    let server =
        TestServer::start_with(|c| c.hosts = vec![host("localhost"), host("example.test")]).await;
    server.add_user("alice", PW).await;
    server
        .add_user_at("alice", "example.test", "other password")
        .await;
    // Direct TLS picks the certificate by SNI; each host has its own.
    let a = Client::connect_direct_tls(server.direct_tls_addr, "localhost")
        .await
        .unwrap();
    let b = Client::connect_direct_tls(server.direct_tls_addr, "example.test")
        .await
        .unwrap();
    assert_ne!(a.peer_certificate(), b.peer_certificate());
    assert_eq!(a.peer_certificate(), Some(&server.certificate_der()[..]));
    // Same localpart, two accounts, two passwords.
    let mut there = Client::login(
        server.direct_tls_addr,
        Security::DirectTls,
        "example.test",
        "alice",
        "other password",
        Some("t"),
    )
    .await
    .unwrap();
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("example.test").await.unwrap();
    c.starttls("example.test").await.unwrap();
    let err = c
        .authenticate("example.test", "SCRAM-SHA-256", "alice", PW, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TestError::SaslFailure(c) if c == "not-authorized"),
        "{err}"
    );
    let mut here = login(&server, "alice", "h").await;
    here.send_xml("<message to='alice@example.test/t' id='x1'><body>across hosts</body></message>")
        .await
        .unwrap();
    there
        .expect("<message to='alice@example.test/t' id='x1' from='alice@localhost/h'><body>across hosts</body></message>")
        .await
        .unwrap();
    there
        .send_xml("<iq type='get' id='p' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    there
        .expect("<iq type='result' id='p' from='example.test' to='alice@example.test/t'/>")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn tls_hello_on_the_starttls_port_is_closed_quietly() {
    let server = TestServer::start().await;
    // slixmpp tries direct TLS first on whatever port it is given.
    let err = Client::connect_direct_tls(server.starttls_addr, "localhost").await;
    assert!(err.is_err());
    // The listener still serves XMPP.
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    server.stop().await;
}

/// `[auth] scram_hashes`: only the SCRAM mechanisms of the hashes listed are offered (RFC 6120
/// §6.4.1: the server lists what it offers), for a server of accounts imported with SHA-1 keys
/// only; PLAIN stays.
#[tokio::test]
async fn only_the_configured_scram_hashes_are_offered() {
    let server = TestServer::start_with(|c| c.auth.scram_hashes = vec!["SHA-1".to_owned()]).await;
    server.add_user("alice", PW).await;
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream("localhost").await.unwrap();
    let features = c.starttls("localhost").await.unwrap();
    let mechanisms: Vec<String> = features
        .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .unwrap()
        .children()
        .map(|m| m.text())
        .collect();
    assert_eq!(mechanisms, ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "PLAIN"]);
    c.authenticate("localhost", "SCRAM-SHA-1", "alice", PW, None)
        .await
        .unwrap();
}
