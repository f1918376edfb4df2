//! Issue 18: federation between two Starling instances on 127.0.0.2 (`a.test`) and 127.0.0.3
//! (`b.test`), found through `[s2s.hosts]`, with certificates from a test CA made here: the
//! seed flows across servers (RFC 6121 §3 subscription, presence, XEP-0184 receipts), SASL
//! EXTERNAL with a certificate that has only the serverAuth usage, dialback when a certificate
//! does not verify, bounces for unreachable and silent servers, and the checks on what a peer
//! sends (RFC 6120 §4.9.3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use starling_testkit::client::Client;
use starling_testkit::server::TestServer;

const PW: &str = "pw";

/// A test CA and the PEM files of the certificates it signs.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    dir: tempfile::TempDir,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            dir,
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A certificate for `domain` with these extended key usages; returns (cert, key) paths.
    fn issue(&self, domain: &str, usages: &[ExtendedKeyUsagePurpose]) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec![domain.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, domain);
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let tag = usages.len();
        let cert_path = self.dir.path().join(format!("{domain}-{tag}.crt"));
        let key_path = self.dir.path().join(format!("{domain}-{tag}.key"));
        // The chain: leaf, then the CA (a peer's trust store holds the CA as a root anyway).
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), self.pem)).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A free port on `ip` (bound and released: the servers bind it right after).
fn free_port(ip: [u8; 4]) -> SocketAddr {
    let l = TcpListener::bind(SocketAddr::from((ip, 0))).unwrap();
    l.local_addr().unwrap()
}

struct Side<'a> {
    domain: &'a str,
    s2s: SocketAddr,
    /// Certificate and key files; `None`: the self-signed one made at start.
    cert: Option<(PathBuf, PathBuf)>,
    /// Extra CA trusted for peers.
    ca_file: Option<&'a Path>,
}

async fn start(
    side: &Side<'_>,
    peer: (&str, SocketAddr),
    adjust: impl FnOnce(&mut starling_config::Config),
) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.hosts = vec![starling_config::HostConfig {
            domain: side.domain.to_owned(),
            certificate: side.cert.as_ref().map(|(c, _)| c.clone()),
            key: side.cert.as_ref().map(|(_, k)| k.clone()),
            ..Default::default()
        }];
        c.s2s.listen = vec![side.s2s];
        c.s2s.ca_file = side.ca_file.map(Path::to_path_buf);
        c.s2s.hosts = vec![(peer.0.to_owned(), vec![peer.1])];
        c.s2s.connect_timeout = Duration::from_secs(10);
        adjust(c);
    })
    .await;
    for u in ["alice", "bob", "carol"] {
        server.add_user(u, PW).await;
    }
    server
}

/// Two servers that trust each other's certificates: `a.test` on 127.0.0.2, `b.test` on
/// 127.0.0.3; both certificates carry only the serverAuth usage, as public CAs issue them now.
async fn pair() -> (TestServer, TestServer, Ca) {
    let ca = Ca::new("Starling federation test CA");
    let a_addr = free_port([127, 0, 0, 2]);
    let b_addr = free_port([127, 0, 0, 3]);
    let server_auth = [ExtendedKeyUsagePurpose::ServerAuth];
    let a = Side {
        domain: "a.test",
        s2s: a_addr,
        cert: Some(ca.issue("a.test", &server_auth)),
        ca_file: Some(&ca.ca_file()),
    };
    let b = Side {
        domain: "b.test",
        s2s: b_addr,
        cert: Some(ca.issue("b.test", &server_auth)),
        ca_file: Some(&ca.ca_file()),
    };
    let a = start(&a, ("b.test", b_addr), |_| {}).await;
    let b = start(&b, ("a.test", a_addr), |_| {}).await;
    (a, b, ca)
}

/// (direction, remote domains, authentication, bidi) of each authenticated connection (a
/// dialback verification connection, which authenticates nothing, may still be closing).
/// a.test on 127.0.0.2 and b.test on 127.0.0.3 with the self-signed certificates made at
/// start (neither can verify the other's: dialback), each configuration adjusted.
async fn self_signed_pair(
    adjust_a: impl FnOnce(&mut starling_config::Config),
    adjust_b: impl FnOnce(&mut starling_config::Config),
) -> (TestServer, TestServer) {
    let a_addr = free_port([127, 0, 0, 2]);
    let b_addr = free_port([127, 0, 0, 3]);
    let side = |domain, s2s| Side {
        domain,
        s2s,
        cert: None,
        ca_file: None,
    };
    let a = start(&side("a.test", a_addr), ("b.test", b_addr), adjust_a).await;
    let b = start(&side("b.test", b_addr), ("a.test", a_addr), adjust_b).await;
    (a, b)
}

fn auth_methods(server: &TestServer) -> Vec<(String, String, String, bool)> {
    server
        .server()
        .s2s
        .as_ref()
        .expect("federation is on")
        .list()
        .into_iter()
        .filter(|l| l.auth != "negotiating")
        .map(|l| {
            (
                format!("{:?}", l.direction),
                l.remote.join(","),
                l.auth,
                l.bidi,
            )
        })
        .collect()
}

/// RFC 6121 §3.1–§3.4 across two servers, the seed flow of a friend request: alice@a.test asks
/// bob@b.test; bob's server delivers the request, bob approves and asks back, alice approves;
/// each side gets its roster pushes up to `both`, presence flows both ways, and a message with
/// an XEP-0184 request gets its receipt back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friend_request_presence_and_receipts_across_two_servers() {
    let (a, b, _ca) = pair().await;
    let mut alice = a.online("alice", PW, "phone").await;
    let mut bob = b.online("bob", PW, "laptop").await;
    // RFC 6121 §2.1.6: roster pushes go to resources that asked for the roster.
    for (c, jid) in [
        (&mut alice, "alice@a.test/phone"),
        (&mut bob, "bob@b.test/laptop"),
    ] {
        c.send_xml("<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>")
            .await
            .unwrap();
        c.expect(&format!(
            "<iq type='result' id='g' to='{jid}'><query xmlns='jabber:iq:roster' ver='{{*}}'/></iq>"
        ))
        .await
        .unwrap();
    }

    // §3.1.1 / §3.1.2: alice's request; her roster push shows the pending subscription.
    alice.send_xml("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@b.test' name='Bob'/></query></iq>").await.unwrap();
    alice.expect("<iq type='set' id='{*}' to='alice@a.test/phone'><query xmlns='jabber:iq:roster' ver='{*}'><item jid='bob@b.test' name='Bob' subscription='none'/></query></iq>").await.unwrap();
    alice
        .expect("<iq type='result' id='r1' to='alice@a.test/phone'/>")
        .await
        .unwrap();
    alice
        .send_xml("<presence to='bob@b.test' type='subscribe'/>")
        .await
        .unwrap();
    alice.expect("<iq type='set' id='{*}' to='alice@a.test/phone'><query xmlns='jabber:iq:roster' ver='{*}'><item jid='bob@b.test' name='Bob' subscription='none' ask='subscribe'/></query></iq>").await.unwrap();
    // §3.1.3: delivered to bob from alice's bare JID, over s2s.
    bob.expect("<presence from='alice@a.test' to='bob@b.test' type='subscribe'/>")
        .await
        .unwrap();

    // §3.1.5: bob approves; his roster shows `from`; alice's push shows `to` and she gets his
    // presence.
    bob.send_xml("<presence to='alice@a.test' type='subscribed'/>")
        .await
        .unwrap();
    bob.expect("<iq type='set' id='{*}' to='bob@b.test/laptop'><query xmlns='jabber:iq:roster' ver='{*}'><item jid='alice@a.test' subscription='from'/></query></iq>").await.unwrap();
    alice.expect("<iq type='set' id='{*}' to='alice@a.test/phone'><query xmlns='jabber:iq:roster' ver='{*}'><item jid='bob@b.test' name='Bob' subscription='to'/></query></iq>").await.unwrap();
    alice
        .expect("<presence from='bob@b.test' to='alice@a.test' type='subscribed'/>")
        .await
        .unwrap();
    alice
        .expect("<presence from='bob@b.test/laptop' to='alice@a.test'/>")
        .await
        .unwrap();

    // Bob asks back, alice approves: `both` on both sides (§3.1.5, §3.4).
    bob.send_xml("<presence to='alice@a.test' type='subscribe'/>")
        .await
        .unwrap();
    bob.expect("<iq type='set' id='{*}' to='bob@b.test/laptop'><query xmlns='jabber:iq:roster' ver='{*}'><item jid='alice@a.test' subscription='from' ask='subscribe'/></query></iq>").await.unwrap();
    alice
        .expect("<presence from='bob@b.test' to='alice@a.test' type='subscribe'/>")
        .await
        .unwrap();
    alice
        .send_xml("<presence to='bob@b.test' type='subscribed'/>")
        .await
        .unwrap();
    alice.expect("<iq type='set' id='{*}' to='alice@a.test/phone'><query xmlns='jabber:iq:roster' ver='{*}'><item jid='bob@b.test' name='Bob' subscription='both'/></query></iq>").await.unwrap();
    bob.expect("<iq type='set' id='{*}' to='bob@b.test/laptop'><query xmlns='jabber:iq:roster' ver='{*}'><item jid='alice@a.test' subscription='both'/></query></iq>").await.unwrap();
    bob.expect("<presence from='alice@a.test' to='bob@b.test' type='subscribed'/>")
        .await
        .unwrap();
    bob.expect("<presence from='alice@a.test/phone' to='bob@b.test'/>")
        .await
        .unwrap();

    // XEP-0184 §5: a message asking for a receipt, and the receipt back.
    alice.send_xml("<message to='bob@b.test' id='m1' type='chat'><body>hi from a.test</body><request xmlns='urn:xmpp:receipts'/></message>").await.unwrap();
    bob.expect("<message from='alice@a.test/phone' to='bob@b.test' id='m1' type='chat'><body>hi from a.test</body><request xmlns='urn:xmpp:receipts'/></message>").await.unwrap();
    bob.send_xml("<message to='alice@a.test/phone' id='m2'><received xmlns='urn:xmpp:receipts' id='m1'/></message>").await.unwrap();
    alice.expect("<message from='bob@b.test/laptop' to='alice@a.test/phone' id='m2'><received xmlns='urn:xmpp:receipts' id='m1'/></message>").await.unwrap();

    // One connection carried both directions: a.test opened it, authenticated with SASL
    // EXTERNAL although its certificate has no clientAuth usage (issue 18, RFC 6120
    // §13.7.1.2), and asked for bidi (XEP-0288), which b.test then used for its stanzas.
    assert_eq!(
        auth_methods(&a),
        [(
            "Outbound".into(),
            "b.test".into(),
            "SASL EXTERNAL".into(),
            true
        )]
    );
    assert_eq!(
        auth_methods(&b),
        [(
            "Inbound".into(),
            "a.test".into(),
            "SASL EXTERNAL".into(),
            true
        )]
    );
}

/// RFC 6120 §8.3.3.16 / issue 18: a message to a domain whose server does not answer (nothing
/// listens at its address) comes back as `<remote-server-not-found/>`, and an IQ ping to the
/// remote server itself gets the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_domain_bounces_remote_server_not_found() {
    let closed = free_port([127, 0, 0, 3]);
    let side = Side {
        domain: "a.test",
        s2s: free_port([127, 0, 0, 2]),
        cert: None,
        ca_file: None,
    };
    let a = start(&side, ("nowhere.test", closed), |_| {}).await;
    let mut alice = a.online("alice", PW, "r").await;
    alice
        .send_xml(
            "<message to='zed@nowhere.test' id='m1' type='chat'><body>anyone?</body></message>",
        )
        .await
        .unwrap();
    alice.expect("<message from='zed@nowhere.test' to='alice@a.test/r' id='m1' type='error'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>").await.unwrap();
    alice
        .send_xml("<iq to='nowhere.test' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await
        .unwrap();
    alice.expect("<iq from='nowhere.test' to='alice@a.test/r' id='p1' type='error'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>").await.unwrap();
}

/// RFC 6120 §8.3.3.17 / issue 18: a server that accepts the connection and never answers: the
/// queued stanza comes back as `<remote-server-timeout/>` after `[s2s] connect_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_bounces_remote_server_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let side = Side {
        domain: "a.test",
        s2s: free_port([127, 0, 0, 2]),
        cert: None,
        ca_file: None,
    };
    let a = start(&side, ("silent.test", silent_addr), |c| {
        c.s2s.connect_timeout = Duration::from_secs(2)
    })
    .await;
    let mut alice = a.online("alice", PW, "r").await;
    alice
        .send_xml("<message to='zed@silent.test' id='m1' type='chat'><body>hello?</body></message>")
        .await
        .unwrap();
    alice.expect("<message from='zed@silent.test' to='alice@a.test/r' id='m1' type='error'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>").await.unwrap();
    drop(silent);
}

/// XEP-0220: a.test's certificate is self-signed (b.test cannot verify it), so b.test offers
/// no SASL EXTERNAL for it and a.test authenticates with dialback; b.test verifies the key by
/// calling a.test back. The message arrives, and b.test's request goes back on the same
/// connection (XEP-0288 bidi).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_when_the_certificate_does_not_verify() {
    let (a, b) = self_signed_pair(|_| {}, |_| {}).await;
    let mut alice = a.online("alice", PW, "r").await;
    let mut bob = b.online("bob", PW, "r").await;
    alice
        .send_xml(
            "<message to='bob@b.test/r' id='m1' type='chat'><body>via dialback</body></message>",
        )
        .await
        .unwrap();
    bob.expect("<message from='alice@a.test/r' to='bob@b.test/r' id='m1' type='chat'><body>via dialback</body></message>").await.unwrap();
    bob.send_xml(
        "<iq to='alice@a.test/r' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>",
    )
    .await
    .unwrap();
    alice.expect("<iq from='bob@b.test/r' to='alice@a.test/r' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>").await.unwrap();
    // One bidi connection, opened by a.test and authenticated with dialback.
    assert_eq!(
        auth_methods(&a),
        [("Outbound".into(), "b.test".into(), "dialback".into(), true)]
    );
    assert_eq!(
        auth_methods(&b),
        [("Inbound".into(), "a.test".into(), "dialback".into(), true)]
    );
}

/// A hand-driven peer that authenticates as a.test with a real dialback key (a.test's secret
/// is configured, so the test computes what a.test's server would), then misbehaves.
async fn dialback_peer(b: &TestServer, a_secret: &str) -> Client {
    let mut peer = Client::connect(b.server().s2s_addrs[0]).await.unwrap();
    peer.as_server("a.test");
    let (_, features) = peer.open_stream("b.test").await.unwrap();
    // RFC 6120 §5.3.1: STARTTLS is required (the default).
    assert!(
        features
            .get_child("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
            .is_some_and(|s| s.has_child("required", "urn:ietf:params:xml:ns:xmpp-tls")),
        "{features}"
    );
    let features = peer.starttls("b.test").await.unwrap();
    // No SASL EXTERNAL: this peer presented no certificate. Dialback is offered (XEP-0220 §2.1).
    assert!(
        features
            .get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
            .is_none(),
        "{features}"
    );
    assert!(
        features.has_child("dialback", "urn:xmpp:features:dialback"),
        "{features}"
    );
    let id = peer.stream_header().and_then(|h| h.id.clone()).unwrap();
    let key = starling_s2s::DialbackKeys::new(a_secret).key("b.test", "a.test", &id);
    peer.send_xml(&format!(
        "<db:result from='a.test' to='b.test'>{key}</db:result>"
    ))
    .await
    .unwrap();
    peer.expect("<result xmlns='jabber:server:dialback' from='b.test' to='a.test' type='valid'/>")
        .await
        .unwrap();
    peer
}

/// RFC 6120 §4.9.3.10: after authenticating as a.test, a stanza from another domain ends the
/// stream with `<invalid-from/>`; XEP-0220 §2.3: the key was checked by calling a.test back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_from_another_domain_gets_invalid_from() {
    let secret = "the dialback secret of a.test";
    let (_a, b) = self_signed_pair(
        |c| {
            c.s2s.dialback_secret = Some(starling_config::Secret(secret.to_owned()));
        },
        |_| {},
    )
    .await;
    let mut bob = b.online("bob", PW, "r").await;
    let mut peer = dialback_peer(&b, secret).await;
    // Allowed: from a.test to b.test.
    peer.send_xml(
        "<message from='alice@a.test/x' to='bob@b.test/r' id='m1'><body>ok</body></message>",
    )
    .await
    .unwrap();
    bob.expect(
        "<message from='alice@a.test/x' to='bob@b.test/r' id='m1'><body>ok</body></message>",
    )
    .await
    .unwrap();
    // Not allowed: from a domain it did not authenticate.
    peer.send_xml(
        "<message from='mallory@evil.test' to='bob@b.test/r' id='m2'><body>spoof</body></message>",
    )
    .await
    .unwrap();
    peer.expect_stream_error("invalid-from").await.unwrap();
    bob.expect_silence(Duration::from_millis(300))
        .await
        .unwrap();
}

/// XEP-0220 §2.4: a wrong key is answered `type='invalid'` and, with nothing else authenticated
/// on the stream, the stream ends with `<not-authorized/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_dialback_key_is_invalid() {
    let (_a, b) = self_signed_pair(|_| {}, |_| {}).await;
    let mut peer = Client::connect(b.server().s2s_addrs[0]).await.unwrap();
    peer.as_server("a.test");
    peer.open_stream("b.test").await.unwrap();
    peer.starttls("b.test").await.unwrap();
    peer.send_xml("<db:result from='a.test' to='b.test'>0123456789abcdef</db:result>")
        .await
        .unwrap();
    peer.expect(
        "<result xmlns='jabber:server:dialback' from='b.test' to='a.test' type='invalid'/>",
    )
    .await
    .unwrap();
    peer.expect_stream_error("not-authorized").await.unwrap();
}

/// RFC 6120 §4.9.3.6 and §4.9.3.12: a stream to a domain not served here is `<host-unknown/>`;
/// a stanza before authentication is `<not-authorized/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_and_unauthenticated_stanzas_are_refused() {
    let side = Side {
        domain: "a.test",
        s2s: free_port([127, 0, 0, 2]),
        cert: None,
        ca_file: None,
    };
    let a = start(&side, ("b.test", free_port([127, 0, 0, 3])), |_| {}).await;
    let mut peer = Client::connect(a.server().s2s_addrs[0]).await.unwrap();
    peer.as_server("b.test");
    peer.send_stream_header("c.test").await.unwrap();
    assert!(matches!(
        peer.recv().await.unwrap(),
        starling_testkit::Frame::Header(_)
    ));
    peer.expect_stream_error("host-unknown").await.unwrap();

    let mut peer = Client::connect(a.server().s2s_addrs[0]).await.unwrap();
    peer.as_server("b.test");
    peer.open_stream("a.test").await.unwrap();
    peer.starttls("a.test").await.unwrap();
    peer.send_xml("<message from='x@b.test' to='alice@a.test'><body>early</body></message>")
        .await
        .unwrap();
    peer.expect_stream_error("not-authorized").await.unwrap();
}

/// Issue 18 item 4: `check-federation` names what is wrong with a peer's certificate in plain
/// words — here b.test presents a certificate for another name — and still reports how
/// authentication went.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_federation_explains_a_wrong_certificate() {
    let ca = Ca::new("Starling federation test CA");
    let a_addr = free_port([127, 0, 0, 2]);
    let b_addr = free_port([127, 0, 0, 3]);
    let server_auth = [ExtendedKeyUsagePurpose::ServerAuth];
    let ca_file = ca.ca_file();
    let a = start(
        &Side {
            domain: "a.test",
            s2s: a_addr,
            cert: Some(ca.issue("a.test", &server_auth)),
            ca_file: Some(&ca_file),
        },
        ("b.test", b_addr),
        |_| {},
    )
    .await;
    // b.test's certificate names mail.b.test only.
    let _b = start(
        &Side {
            domain: "b.test",
            s2s: b_addr,
            cert: Some(ca.issue("mail.b.test", &server_auth)),
            ca_file: Some(&ca_file),
        },
        ("a.test", a_addr),
        |_| {},
    )
    .await;
    let s2s = a.server().s2s.clone().expect("federation is on");
    let report = s2s.check("a.test", "b.test").await;
    let text = report.render();
    let line = |what: &str| {
        report
            .findings
            .iter()
            .find(|f| f.what.starts_with(what))
            .unwrap_or_else(|| panic!("no '{what}' finding in:\n{text}"))
            .clone()
    };
    let cert = line("certificate of");
    assert!(!cert.ok, "{text}");
    assert!(
        cert.detail
            .starts_with("the certificate is for mail.b.test, not b.test"),
        "{text}"
    );
    let auth = line("authentication as a.test");
    assert!(auth.ok, "{text}");
    // Our certificate verifies at b.test, so a.test authenticates with SASL EXTERNAL; b.test's
    // wrong name does not stop that (as with dialback, the sending side goes on: a server with
    // a bad certificate is still reached, and the operator told why).
    assert_eq!(
        auth.detail, "SASL EXTERNAL, bidirectional (XEP-0288)",
        "{text}"
    );
    // Dialback tried on its own as well (b.test verifies the key by calling a.test back).
    let dialback = line("dialback as a.test");
    assert!(dialback.ok, "{text}");
    assert!(report.federates(), "{text}");
    assert!(
        text.contains("subject CN=mail.b.test; issuer CN=Starling federation test CA"),
        "{text}"
    );
}

/// `check-federation` with a domain that resolves nowhere: the DNS finding fails with the
/// reason, and nothing else is tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_federation_reports_a_domain_that_does_not_resolve() {
    let side = Side {
        domain: "a.test",
        s2s: free_port([127, 0, 0, 2]),
        cert: None,
        ca_file: None,
    };
    let a = start(&side, ("b.test", free_port([127, 0, 0, 3])), |_| {}).await;
    let s2s = a.server().s2s.clone().expect("federation is on");
    // `.invalid` never resolves (RFC 6761 §6.4); on a machine without DNS the lookup fails
    // instead — either way the first finding fails and says which domain.
    let report = s2s.check("a.test", "nothing.invalid").await;
    assert_eq!(report.findings.len(), 1, "{}", report.render());
    let f = &report.findings[0];
    assert!(!f.ok);
    assert_eq!(f.what, "DNS for nothing.invalid");
    assert!(
        f.detail.starts_with(
            "nothing.invalid has no _xmpp-server._tcp SRV record and no A/AAAA record"
        ) || f
            .detail
            .starts_with("DNS lookup for nothing.invalid failed"),
        "{}",
        f.detail
    );
    assert!(!report.federates());
}

/// Per-peer limits (issue 18 item 3): with `max_connections_per_ip = 1`, a second connection
/// from the same address gets our header and `<policy-violation/>` at once (RFC 6120
/// §4.9.3.14) while the first goes on; once the first is gone a new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_limit_are_refused() {
    let side = Side {
        domain: "a.test",
        s2s: free_port([127, 0, 0, 2]),
        cert: None,
        ca_file: None,
    };
    let a = start(&side, ("b.test", free_port([127, 0, 0, 3])), |c| {
        c.s2s.max_connections_per_ip = 1
    })
    .await;
    let addr = a.server().s2s_addrs[0];
    let mut first = Client::connect(addr).await.unwrap();
    first.as_server("b.test");
    first.open_stream("a.test").await.unwrap();
    let mut second = Client::connect(addr).await.unwrap();
    assert!(matches!(
        second.recv().await.unwrap(),
        starling_testkit::Frame::Header(_)
    ));
    let err = second
        .expect_stream_error("policy-violation")
        .await
        .unwrap();
    assert!(
        err.to_string()
            .contains("too many connections (at most 1 from one address, 1000 in all)"),
        "{err}"
    );
    // The first is still served.
    let features = first.starttls("a.test").await.unwrap();
    assert!(
        features.has_child("dialback", "urn:xmpp:features:dialback"),
        "{features}"
    );
    drop(first);
    let mut third = Client::connect(addr).await.unwrap();
    third.as_server("b.test");
    for _ in 0..50 {
        match third.open_stream("a.test").await {
            Ok(_) => return,
            Err(_) => {
                // The first connection's end may not have been noticed yet: try again.
                tokio::time::sleep(Duration::from_millis(100)).await;
                third = Client::connect(addr).await.unwrap();
                third.as_server("b.test");
            }
        }
    }
    panic!("no connection served after the first one closed");
}

/// Issue 18 item 3: an authenticated connection with no traffic for `[s2s] idle_timeout` is
/// closed on both sides; the next stanza opens a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_reopened() {
    let idle = |c: &mut starling_config::Config| c.s2s.idle_timeout = Duration::from_secs(1);
    let (a, b) = self_signed_pair(idle, idle).await;
    let mut alice = a.online("alice", PW, "r").await;
    let mut bob = b.online("bob", PW, "r").await;
    alice
        .send_xml("<message to='bob@b.test/r' id='m1'><body>one</body></message>")
        .await
        .unwrap();
    bob.expect(
        "<message from='alice@a.test/r' to='bob@b.test/r' id='m1'><body>one</body></message>",
    )
    .await
    .unwrap();
    assert_eq!(auth_methods(&a).len(), 1);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if a.server().s2s.as_ref().unwrap().list().is_empty()
            && b.server().s2s.as_ref().unwrap().list().is_empty()
        {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "still open after 5 s: {:?} / {:?}",
        auth_methods(&a),
        auth_methods(&b)
    );
    alice
        .send_xml("<message to='bob@b.test/r' id='m2'><body>two</body></message>")
        .await
        .unwrap();
    bob.expect(
        "<message from='alice@a.test/r' to='bob@b.test/r' id='m2'><body>two</body></message>",
    )
    .await
    .unwrap();
}
