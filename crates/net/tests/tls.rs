//! TlsManager against real rustls clients over in-memory duplex streams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, ProtocolVersion, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256, Sha384};
use starling_net::tls::{FileKind, HostTls, TlsError, TlsManager, tls_exporter};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

// ---------------------------------------------------------------- helpers

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("starling-net-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A self-signed ECDSA certificate for `domain`: (cert PEM, key PEM, cert DER).
fn make_cert(
    domain: &str,
    alg: &'static rcgen::SignatureAlgorithm,
) -> (String, String, CertificateDer<'static>) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let cert = rcgen::CertificateParams::new(vec![domain.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// Writes a fresh P-256 pair for `domain` to `<dir>/<domain>.pem|.key`; returns host and DER.
fn pem_host(dir: &Path, domain: &str) -> (HostTls, CertificateDer<'static>) {
    let (cert, key, der) = make_cert(domain, &rcgen::PKCS_ECDSA_P256_SHA256);
    let host = HostTls {
        domain: domain.to_owned(),
        certificate: Some(dir.join(format!("{domain}.pem"))),
        key: Some(dir.join(format!("{domain}.key"))),
    };
    write_pair(&host, &cert, &key);
    (host, der)
}

fn write_pair(host: &HostTls, cert_pem: &str, key_pem: &str) {
    std::fs::write(host.certificate.as_ref().unwrap(), cert_pem).unwrap();
    std::fs::write(host.key.as_ref().unwrap(), key_pem).unwrap();
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn fixture_host(domain: &str, cert: &str, key: &str) -> HostTls {
    HostTls {
        domain: domain.to_owned(),
        certificate: Some(fixture(cert)),
        key: Some(fixture(key)),
    }
}

const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

struct Client {
    sni: bool,
    alpn: Vec<Vec<u8>>,
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    /// Certificates webpki cannot parse (ACME validation ones), with their public keys.
    known: Vec<(CertificateDer<'static>, SubjectPublicKeyInfoDer<'static>)>,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            sni: true,
            alpn: Vec::new(),
            versions: rustls::DEFAULT_VERSIONS,
            known: Vec::new(),
        }
    }
}

/// [`AcceptAnyCert`](starling_net::tls::AcceptAnyCert), which checks the handshake signature
/// against the certificate as webpki parses it, plus certificates webpki refuses (an unknown
/// critical extension: ACME's acmeIdentifier, RFC 8737 §3), whose signature is checked against
/// the public key given with them.
#[derive(Debug)]
struct AcceptKnownKeys {
    any: starling_net::tls::AcceptAnyCert,
    known: Vec<(CertificateDer<'static>, SubjectPublicKeyInfoDer<'static>)>,
}

impl ServerCertVerifier for AcceptKnownKeys {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.any
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.known.iter().find(|(c, _)| c == cert) {
            Some((_, spki)) => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                spki,
                dss,
                &self.any.0.signature_verification_algorithms,
            ),
            None => self.any.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.any.supported_verify_schemes()
    }
}

impl Client {
    fn config(&self) -> Arc<ClientConfig> {
        let provider = provider();
        let verifier = AcceptKnownKeys {
            any: starling_net::tls::AcceptAnyCert(Arc::clone(&provider)),
            known: self.known.clone(),
        };
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(self.versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.enable_sni = self.sni;
        config.alpn_protocols = self.alpn.clone();
        Arc::new(config)
    }
}

type Pair = (
    client::TlsStream<DuplexStream>,
    server::TlsStream<DuplexStream>,
);

/// Completes a handshake (and one byte each way) between a client and a server future.
async fn finish<F>(client_cfg: Arc<ClientConfig>, name: &str, server: F) -> Pair
where
    F: AsyncFnOnce(DuplexStream) -> std::io::Result<server::TlsStream<DuplexStream>>,
{
    let (c, s) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let connector = TlsConnector::from(client_cfg);
    let (client, server) = tokio::join!(connector.connect(name, c), server(s));
    let (mut client, mut server) = (client.unwrap(), server.unwrap());
    client.write_all(b"c").await.unwrap();
    client.flush().await.unwrap();
    server.write_all(b"s").await.unwrap();
    server.flush().await.unwrap();
    let mut buf = [0u8; 1];
    server.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"c");
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"s");
    (client, server)
}

async fn handshake(server_cfg: Arc<ServerConfig>, client: &Client, name: &str) -> Pair {
    let acceptor = TlsAcceptor::from(server_cfg);
    finish(client.config(), name, async move |s| {
        acceptor.accept(s).await
    })
    .await
}

/// The leaf certificate the client received.
fn served(pair: &Pair) -> CertificateDer<'static> {
    pair.0.get_ref().1.peer_certificates().unwrap()[0].clone()
}

async fn served_by(
    server_cfg: Arc<ServerConfig>,
    client: &Client,
    name: &str,
) -> CertificateDer<'static> {
    served(&handshake(server_cfg, client, name).await)
}

fn no_sni() -> Client {
    Client {
        sni: false,
        ..Client::default()
    }
}

fn load_err(hosts: &[HostTls], dir: &Path) -> TlsError {
    TlsManager::load(hosts, dir).expect_err("load must fail")
}

// ---------------------------------------------------------------- self-signed default

#[tokio::test]
async fn self_signed_generated_once_and_reused() {
    let dir = TempDir::new("selfsigned");
    let host = HostTls {
        domain: "localhost".into(),
        certificate: None,
        key: None,
    };
    let manager = TlsManager::load(std::slice::from_ref(&host), dir.path()).unwrap();
    let crt = dir.path().join("certs/localhost.crt");
    let key = dir.path().join("certs/localhost.key");
    let crt_bytes = std::fs::read(&crt).unwrap();
    let key_bytes = std::fs::read(&key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let der = CertificateDer::from_pem_slice(&crt_bytes).unwrap();
    assert_eq!(manager.leaf_certificate("localhost").unwrap(), der);
    drop(manager);

    // Second start: nothing regenerated, the same bytes served.
    let manager = TlsManager::load(&[host], dir.path()).unwrap();
    assert_eq!(std::fs::read(&crt).unwrap(), crt_bytes);
    assert_eq!(std::fs::read(&key).unwrap(), key_bytes);
    assert_eq!(
        served_by(manager.direct_tls_config(), &Client::default(), "localhost").await,
        der
    );

    // The certificate really is valid for localhost, 127.0.0.1 and ::1 (webpki verification).
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.clone()).unwrap();
    let verified = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for name in ["localhost", "127.0.0.1", "::1"] {
        let acceptor = TlsAcceptor::from(manager.direct_tls_config());
        let pair = finish(Arc::clone(&verified), name, async move |s| {
            acceptor.accept(s).await
        })
        .await;
        assert_eq!(served(&pair), der, "{name}");
    }
    // ... and not for another name.
    let (c, s) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(manager.direct_tls_config());
    let (client, _server) = tokio::join!(
        TlsConnector::from(verified).connect(ServerName::try_from("example.org").unwrap(), c),
        acceptor.accept(s)
    );
    assert!(client.is_err());
}

#[tokio::test]
async fn self_signed_regenerated_when_key_missing() {
    let dir = TempDir::new("regen");
    let host = HostTls {
        domain: "Example.ORG.".into(),
        certificate: None,
        key: None,
    };
    let first = TlsManager::load(std::slice::from_ref(&host), dir.path()).unwrap();
    assert_eq!(first.domains(), vec!["example.org".to_owned()]);
    let old = first.leaf_certificate("example.org").unwrap();
    std::fs::remove_file(dir.path().join("certs/example.org.key")).unwrap();
    let second = TlsManager::load(&[host], dir.path()).unwrap();
    let new = second.leaf_certificate("example.org").unwrap();
    assert_ne!(old, new);
    let on_disk = CertificateDer::from_pem_file(dir.path().join("certs/example.org.crt")).unwrap();
    assert_eq!(new, on_disk);
}

// ---------------------------------------------------------------- SNI / STARTTLS

#[tokio::test]
async fn sni_picks_certificate_among_two_hosts() {
    let dir = TempDir::new("sni");
    let (a, a_der) = pem_host(dir.path(), "a.example");
    let (b, b_der) = pem_host(dir.path(), "b.example");
    let manager = TlsManager::load(&[a, b], dir.path()).unwrap();
    assert_eq!(
        manager.domains(),
        vec!["a.example".to_owned(), "b.example".to_owned()]
    );

    let c = Client::default();
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "b.example").await,
        b_der
    );
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "a.example").await,
        a_der
    );
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "B.EXAMPLE").await,
        b_der
    );
    // Unknown SNI and no SNI: the first host.
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "c.example").await,
        a_der
    );
    assert_eq!(
        served_by(manager.direct_tls_config(), &no_sni(), "b.example").await,
        a_der
    );
}

/// A host's service subdomains (`conference.`, `upload.`, whose names an ACME certificate of the
/// host carries) get the host's certificate, the nearest host winning; an unrelated name still
/// gets the first host's.
#[tokio::test]
async fn subdomain_sni_gets_its_hosts_certificate() {
    let dir = TempDir::new("sni-sub");
    let (a, a_der) = pem_host(dir.path(), "a.example");
    let (b, b_der) = pem_host(dir.path(), "b.example");
    let (sub, sub_der) = pem_host(dir.path(), "chat.b.example");
    let manager = TlsManager::load(&[a, b, sub], dir.path()).unwrap();
    let c = Client::default();
    let by = async |name| served_by(manager.direct_tls_config(), &c, name).await;
    assert_eq!(by("conference.b.example").await, b_der);
    assert_eq!(by("upload.chat.b.example").await, sub_der);
    assert_eq!(by("conference.a.example").await, a_der);
    assert_eq!(by("xb.example").await, a_der);
    assert_eq!(manager.leaf_certificate("pubsub.b.example").unwrap(), b_der);
}

/// What ACME obtained replaces a managed (self-signed) pair on disk and in the configs; a bad
/// pair or a host with configured files changes nothing.
#[tokio::test]
async fn install_managed_replaces_the_self_signed_pair() {
    let dir = TempDir::new("install");
    let managed = HostTls {
        domain: "a.example".into(),
        certificate: None,
        key: None,
    };
    let (configured, configured_der) = pem_host(dir.path(), "b.example");
    let manager = TlsManager::load(&[managed, configured], dir.path()).unwrap();
    let (crt, key) = starling_net::managed_certificate_paths(dir.path(), "a.example");
    assert_eq!(crt, dir.path().join("certs/a.example.crt"));
    let self_signed = std::fs::read(&crt).unwrap();

    let (cert_pem, key_pem, der) = make_cert("a.example", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, other_key, _) = make_cert("a.example", &rcgen::PKCS_ECDSA_P256_SHA256);
    let err = manager
        .install_managed("a.example", cert_pem.as_bytes(), other_key.as_bytes())
        .unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert_eq!(std::fs::read(&crt).unwrap(), self_signed);
    assert!(matches!(
        manager.install_managed("b.example", cert_pem.as_bytes(), key_pem.as_bytes()),
        Err(TlsError::NotManaged(_))
    ));
    assert!(matches!(
        manager.install_managed("c.example", cert_pem.as_bytes(), key_pem.as_bytes()),
        Err(TlsError::UnknownHost(_))
    ));

    manager
        .install_managed("A.example", cert_pem.as_bytes(), key_pem.as_bytes())
        .unwrap();
    assert_eq!(std::fs::read_to_string(&crt).unwrap(), cert_pem);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_pem);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let c = Client::default();
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "a.example").await,
        der
    );
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "b.example").await,
        configured_der
    );
    // And it is what the next start loads.
    let again = TlsManager::load(
        &[HostTls {
            domain: "a.example".into(),
            certificate: None,
            key: None,
        }],
        dir.path(),
    )
    .unwrap();
    assert_eq!(again.leaf_certificate("a.example").unwrap(), der);
}

#[tokio::test]
async fn starttls_config_serves_stream_domain_without_sni() {
    let dir = TempDir::new("starttls");
    let (a, a_der) = pem_host(dir.path(), "a.example");
    let (b, b_der) = pem_host(dir.path(), "b.example");
    let manager = TlsManager::load(&[a, b], dir.path()).unwrap();

    let n = no_sni();
    assert_eq!(
        served_by(manager.starttls_config("b.example"), &n, "x.invalid").await,
        b_der
    );
    assert_eq!(
        served_by(manager.starttls_config("B.Example."), &n, "x.invalid").await,
        b_der
    );
    assert_eq!(
        served_by(manager.starttls_config("a.example"), &n, "x.invalid").await,
        a_der
    );
    // Unknown stream domain: fallback host.
    assert_eq!(
        served_by(manager.starttls_config("nope.example"), &n, "x.invalid").await,
        a_der
    );
    // A known SNI wins over the stream domain; an unknown one does not.
    let c = Client::default();
    assert_eq!(
        served_by(manager.starttls_config("b.example"), &c, "a.example").await,
        a_der
    );
    assert_eq!(
        served_by(manager.starttls_config("b.example"), &c, "zz.example").await,
        b_der
    );
    // STARTTLS negotiates no ALPN.
    let alpn = Client {
        alpn: vec![b"xmpp-client".to_vec()],
        ..Client::default()
    };
    let pair = handshake(manager.starttls_config("b.example"), &alpn, "b.example").await;
    assert_eq!(pair.1.get_ref().1.alpn_protocol(), None);
}

#[test]
fn configs_are_cached() {
    let dir = TempDir::new("cached");
    let (a, _) = pem_host(dir.path(), "a.example");
    let (b, _) = pem_host(dir.path(), "b.example");
    let manager = TlsManager::load(&[a, b], dir.path()).unwrap();
    assert!(Arc::ptr_eq(
        &manager.direct_tls_config(),
        &manager.direct_tls_config()
    ));
    assert!(Arc::ptr_eq(
        &manager.starttls_config("b.example"),
        &manager.starttls_config("b.example")
    ));
    assert!(!Arc::ptr_eq(
        &manager.starttls_config("a.example"),
        &manager.starttls_config("b.example")
    ));
    fn send_sync<T: Send + Sync>(_: &T) {}
    send_sync(&manager);
}

// ---------------------------------------------------------------- ALPN

#[tokio::test]
async fn alpn_xmpp_client_selected_only_when_offered() {
    let dir = TempDir::new("alpn");
    let (a, a_der) = pem_host(dir.path(), "a.example");
    let manager = Arc::new(TlsManager::load(&[a], dir.path()).unwrap());
    let accept = |client: Client| {
        let manager = Arc::clone(&manager);
        async move {
            finish(client.config(), "a.example", async move |s| {
                manager.accept_direct_tls(s).await
            })
            .await
        }
    };

    let pair = accept(Client {
        alpn: vec![b"h2".to_vec(), b"xmpp-client".to_vec()],
        ..Client::default()
    })
    .await;
    assert_eq!(
        pair.0.get_ref().1.alpn_protocol(),
        Some(&b"xmpp-client"[..])
    );
    assert_eq!(served(&pair), a_der);

    // Other protocols only: still connects, nothing selected.
    let pair = accept(Client {
        alpn: vec![b"h2".to_vec()],
        ..Client::default()
    })
    .await;
    assert_eq!(pair.0.get_ref().1.alpn_protocol(), None);

    // No ALPN at all.
    let pair = accept(Client::default()).await;
    assert_eq!(pair.0.get_ref().1.alpn_protocol(), None);

    // The plain config (for a plain TlsAcceptor) never breaks an "h2"-only client either.
    let h2 = Client {
        alpn: vec![b"h2".to_vec()],
        ..Client::default()
    };
    let pair = handshake(manager.direct_tls_config(), &h2, "a.example").await;
    assert_eq!(pair.0.get_ref().1.alpn_protocol(), None);
}

// ---------------------------------------------------------------- ACME TLS-ALPN-01

/// A stand-in validation certificate for `domain` (the real one is built by `starling-acme`):
/// self-signed, its one SAN the name, the critical acmeIdentifier extension.
fn validation_key(
    domain: &str,
) -> (
    Arc<rustls::sign::CertifiedKey>,
    CertificateDer<'static>,
    SubjectPublicKeyInfoDer<'static>,
) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).unwrap();
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(&[7; 32]));
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let key_der = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into();
    // Not `CertifiedKey::from_der`: its check parses the certificate with webpki, which refuses
    // the critical extension it does not know.
    let signing = provider().key_provider.load_private_key(key_der).unwrap();
    let spki = signing.public_key().unwrap().into_owned();
    let certified = rustls::sign::CertifiedKey::new(vec![der.clone()], signing);
    (Arc::new(certified), der, spki)
}

/// RFC 8737 §3: the validation certificate is returned to a handshake whose ALPN offers
/// "acme-tls/1" and whose SNI names the domain being validated, with "acme-tls/1" selected;
/// any other ClientHello (another SNI, no SNI, other protocols, the protocol without a pending
/// validation) gets the host's certificate as before.
#[tokio::test]
async fn acme_validation_served_only_for_acme_tls_and_a_pending_name() {
    let dir = TempDir::new("acme-alpn");
    let (a, a_der) = pem_host(dir.path(), "a.example");
    let (b, b_der) = pem_host(dir.path(), "b.example");
    let manager = Arc::new(TlsManager::load(&[a, b], dir.path()).unwrap());
    let (validation, validation_der, spki) = validation_key("a.example");
    let known = vec![(validation_der.clone(), spki)];
    let accept = |alpn: &[&[u8]], sni: bool, name: &'static str| {
        let manager = Arc::clone(&manager);
        let client = Client {
            sni,
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            known: known.clone(),
            ..Client::default()
        };
        async move {
            finish(client.config(), name, async move |s| {
                manager.accept_direct_tls(s).await
            })
            .await
        }
    };
    let acme_tls: &[&[u8]] = &[b"acme-tls/1"];
    let alpn_of = |pair: &Pair| pair.1.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);

    // Nothing pending: "acme-tls/1" alone is not answered, the host's certificate is served.
    let pair = accept(acme_tls, true, "a.example").await;
    assert_eq!((served(&pair), alpn_of(&pair)), (a_der.clone(), None));
    assert!(!starling_net::is_acme_validation(pair.1.get_ref().1));

    let validations = manager.acme_validations();
    validations.insert("A.Example.", validation);
    assert_eq!(validations.len(), 1);

    let pair = accept(acme_tls, true, "a.example").await;
    assert_eq!(
        (served(&pair), alpn_of(&pair)),
        (validation_der.clone(), Some(b"acme-tls/1".to_vec()))
    );
    assert!(starling_net::is_acme_validation(pair.1.get_ref().1));
    // Offered beside another protocol, still the validation.
    let pair = accept(&[b"xmpp-client", b"acme-tls/1"], true, "a.example").await;
    assert_eq!(served(&pair), validation_der);

    // Another name, no SNI, or no "acme-tls/1": unaffected.
    let pair = accept(acme_tls, true, "b.example").await;
    assert_eq!((served(&pair), alpn_of(&pair)), (b_der, None));
    let pair = accept(acme_tls, false, "a.example").await;
    assert_eq!((served(&pair), alpn_of(&pair)), (a_der.clone(), None));
    let pair = accept(&[b"xmpp-client"], true, "a.example").await;
    assert_eq!(
        (served(&pair), alpn_of(&pair)),
        (a_der.clone(), Some(b"xmpp-client".to_vec()))
    );
    let pair = accept(&[], true, "a.example").await;
    assert_eq!((served(&pair), alpn_of(&pair)), (a_der.clone(), None));
    // The plain direct and STARTTLS configs never serve it.
    let c = Client {
        alpn: vec![b"acme-tls/1".to_vec()],
        ..Client::default()
    };
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "a.example").await,
        a_der
    );
    assert_eq!(
        served_by(manager.starttls_config("a.example"), &c, "a.example").await,
        a_der
    );

    // A reload keeps the pending validation; its end removes it.
    manager.reload().unwrap();
    let pair = accept(acme_tls, true, "a.example").await;
    assert_eq!(served(&pair), validation_der);
    validations.remove("a.example");
    assert!(validations.is_empty());
    let pair = accept(acme_tls, true, "a.example").await;
    assert_eq!((served(&pair), alpn_of(&pair)), (a_der, None));
}

// ---------------------------------------------------------------- reload

#[tokio::test]
async fn reload_swaps_certificate_and_keeps_old_on_error() {
    let dir = TempDir::new("reload");
    let (a, a1) = pem_host(dir.path(), "a.example");
    let (b, b1) = pem_host(dir.path(), "b.example");
    let manager = TlsManager::load(&[a.clone(), b.clone()], dir.path()).unwrap();
    let c = Client::default();

    // An established connection survives the reload untouched.
    let mut old_pair = handshake(manager.direct_tls_config(), &c, "a.example").await;
    assert_eq!(served(&old_pair), a1);

    let (cert, key, a2) = make_cert("a.example", &rcgen::PKCS_ECDSA_P256_SHA256);
    write_pair(&a, &cert, &key);
    manager.reload().unwrap();
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "a.example").await,
        a2
    );
    assert_eq!(
        served_by(manager.starttls_config("a.example"), &no_sni(), "x.invalid").await,
        a2
    );
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "b.example").await,
        b1
    );
    assert_eq!(
        manager.server_end_point("a.example").unwrap(),
        Sha256::digest(&a2).to_vec()
    );

    old_pair.0.write_all(b"x").await.unwrap();
    old_pair.0.flush().await.unwrap();
    let mut buf = [0u8; 1];
    old_pair.1.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"x");

    // b gets a valid new pair, a's certificate is broken: nothing changes, error names a's file.
    let (cert, key, _b2) = make_cert("b.example", &rcgen::PKCS_ECDSA_P256_SHA256);
    write_pair(&b, &cert, &key);
    let a_cert = a.certificate.clone().unwrap();
    std::fs::write(&a_cert, "garbage\n").unwrap();
    let err = manager.reload().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("certificate {}: no certificates found", a_cert.display())
    );
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "a.example").await,
        a2
    );
    assert_eq!(
        served_by(manager.direct_tls_config(), &c, "b.example").await,
        b1
    );
    assert_eq!(
        manager.server_end_point("b.example").unwrap(),
        Sha256::digest(&b1).to_vec()
    );
}

#[tokio::test]
async fn reload_hosts_changes_host_list() {
    let dir = TempDir::new("reloadhosts");
    let (a, _) = pem_host(dir.path(), "a.example");
    let (b, b_der) = pem_host(dir.path(), "b.example");
    let manager = TlsManager::load(std::slice::from_ref(&a), dir.path()).unwrap();
    let bad = HostTls {
        domain: "c.example".into(),
        certificate: Some(dir.path().join("missing.pem")),
        key: Some(dir.path().join("missing.key")),
    };
    assert!(manager.reload_hosts(&[b.clone(), bad]).is_err());
    assert_eq!(manager.domains(), vec!["a.example".to_owned()]);
    manager.reload_hosts(&[b]).unwrap();
    assert_eq!(manager.domains(), vec!["b.example".to_owned()]);
    assert_eq!(
        served_by(manager.direct_tls_config(), &no_sni(), "x.invalid").await,
        b_der
    );
}

// ---------------------------------------------------------------- channel bindings

#[tokio::test]
async fn tls_exporter_same_on_both_ends() {
    let dir = TempDir::new("exporter");
    let (a, _) = pem_host(dir.path(), "a.example");
    let manager = TlsManager::load(&[a], dir.path()).unwrap();

    let pair = handshake(manager.direct_tls_config(), &Client::default(), "a.example").await;
    let server_conn = pair.1.get_ref().1;
    assert_eq!(
        server_conn.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    let server_side = tls_exporter(server_conn).unwrap();
    assert_eq!(server_side.len(), 32);
    let client_conn = pair.0.get_ref().1;
    let client_side = client_conn
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", Some(b""))
        .unwrap();
    assert_eq!(server_side, client_side.to_vec());
    let client_no_context = client_conn
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap();
    assert_eq!(server_side, client_no_context.to_vec());

    // Another connection: different binding.
    let other = handshake(manager.direct_tls_config(), &Client::default(), "a.example").await;
    assert_ne!(tls_exporter(other.1.get_ref().1).unwrap(), server_side);

    // TLS 1.2: no tls-exporter.
    let tls12 = Client {
        versions: TLS12_ONLY,
        ..Client::default()
    };
    let pair = handshake(manager.direct_tls_config(), &tls12, "a.example").await;
    assert_eq!(
        pair.1.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert_eq!(tls_exporter(pair.1.get_ref().1), None);

    // Before the handshake: none either.
    let fresh = rustls::ServerConnection::new(manager.direct_tls_config()).unwrap();
    assert_eq!(tls_exporter(&fresh), None);
}

#[test]
fn server_end_point_ecdsa_p256_is_sha256_of_leaf() {
    let dir = TempDir::new("endpoint");
    let (a, a_der) = pem_host(dir.path(), "a.example");
    let (cert, key, p384_der) = make_cert("p384.example", &rcgen::PKCS_ECDSA_P384_SHA384);
    let p384 = HostTls {
        domain: "p384.example".into(),
        certificate: Some(dir.path().join("p384.pem")),
        key: Some(dir.path().join("p384.key")),
    };
    write_pair(&p384, &cert, &key);
    let manager = TlsManager::load(&[a, p384], dir.path()).unwrap();

    let expected: Vec<u8> = Sha256::digest(&a_der).to_vec();
    assert_eq!(expected.len(), 32);
    assert_eq!(
        manager.server_end_point("a.example"),
        Some(expected.clone())
    );
    assert_eq!(manager.server_end_point("unknown.example"), Some(expected));
    assert_eq!(
        manager.server_end_point("p384.example"),
        Some(Sha384::digest(&p384_der).to_vec())
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn pkcs1_and_sec1_keys_and_end_point_hashes() {
    // Expected values: `openssl x509 -outform DER | sha256sum / sha384sum` (tests/data/README.md).
    let dir = TempDir::new("fixtures");
    let manager = TlsManager::load(
        &[
            fixture_host("ec.example", "ec-sha256.crt", "ec-sec1.key"),
            fixture_host("rsa.example", "rsa-sha384.crt", "rsa-pkcs1.key"),
            fixture_host("sha1.example", "rsa-sha1.crt", "rsa-pkcs1.key"),
            fixture_host("pss.example", "rsa-pss-sha384.crt", "rsa-pkcs1.key"),
        ],
        dir.path(),
    )
    .unwrap();
    let ep = |d: &str| hex(&manager.server_end_point(d).unwrap());
    assert_eq!(
        ep("ec.example"),
        "f6c46916b78f1ec27e53a20b45d3f55ab39ea0ad0180ffc839576982715a6db9"
    );
    assert_eq!(
        ep("rsa.example"),
        "33f284dcba282c827da04d3e31cf4a092ec31946631547d46656af346d6be8592679dc7f5ad4116eb48784b57167a6e3"
    );
    // sha1WithRSAEncryption → SHA-256 (RFC 5929 §4.1).
    assert_eq!(
        ep("sha1.example"),
        "1738f06ac5df00795eb7adfa8453cb128cfb19c8b8c8e2952d36cf702b855206"
    );
    // RSASSA-PSS with SHA-384 in its parameters.
    assert_eq!(
        ep("pss.example"),
        "7e32972948a8c5d045f4dc445287f8fc3c092af8331436ed922d982abb4b6d10901441eca75f70c7bbf62f12f6c1b18e"
    );

    // SEC1 and PKCS#1 keys actually sign handshakes (TLS 1.3 and 1.2).
    let ec_der = CertificateDer::from_pem_file(fixture("ec-sha256.crt")).unwrap();
    let rsa_der = CertificateDer::from_pem_file(fixture("rsa-sha384.crt")).unwrap();
    let tls12 = Client {
        versions: TLS12_ONLY,
        ..Client::default()
    };
    for client in [Client::default(), tls12] {
        assert_eq!(
            served_by(manager.direct_tls_config(), &client, "ec.example").await,
            ec_der
        );
        assert_eq!(
            served_by(manager.direct_tls_config(), &client, "rsa.example").await,
            rsa_der
        );
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn mismatched_key_is_rejected() {
    let dir = TempDir::new("mismatch");
    let (cert, _, _) = make_cert("a.example", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, other_key, _) = make_cert("a.example", &rcgen::PKCS_ECDSA_P256_SHA256);
    let host = HostTls {
        domain: "a.example".into(),
        certificate: Some(dir.path().join("a.pem")),
        key: Some(dir.path().join("a.key")),
    };
    write_pair(&host, &cert, &other_key);
    let err = load_err(&[host], dir.path());
    assert_eq!(
        err.to_string(),
        format!(
            "key {}: does not match certificate {}",
            dir.path().join("a.key").display(),
            dir.path().join("a.pem").display()
        )
    );
    // RSA key with an EC certificate: mismatch too.
    let err = load_err(
        &[fixture_host("ec.example", "ec-sha256.crt", "rsa-pkcs1.key")],
        dir.path(),
    );
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
}

#[test]
fn missing_files_are_named() {
    let dir = TempDir::new("missing");
    let (mut host, _) = pem_host(dir.path(), "a.example");
    let good_cert = host.certificate.clone().unwrap();

    let missing = dir.path().join("nope/fullchain.pem");
    host.certificate = Some(missing.clone());
    let err = load_err(std::slice::from_ref(&host), dir.path());
    assert_eq!(
        err.to_string(),
        format!(
            "certificate {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert!(
        matches!(&err, TlsError::Io { kind: FileKind::Certificate, path, .. } if *path == missing)
    );

    host.certificate = Some(good_cert.clone());
    let missing_key = dir.path().join("privkey.pem");
    host.key = Some(missing_key.clone());
    let err = load_err(std::slice::from_ref(&host), dir.path());
    assert_eq!(
        err.to_string(),
        format!(
            "key {}: No such file or directory (os error 2)",
            missing_key.display()
        )
    );

    // A key file holding no key (here: a certificate).
    host.key = Some(good_cert.clone());
    let err = load_err(&[host], dir.path());
    assert_eq!(
        err.to_string(),
        format!(
            "key {}: no private key found (expected an unencrypted PKCS#8, PKCS#1 or SEC1 PEM key)",
            good_cert.display()
        )
    );
}

#[test]
fn bad_host_lists_are_rejected() {
    let dir = TempDir::new("hosts");
    assert!(matches!(load_err(&[], dir.path()), TlsError::NoHosts));
    let selfsigned = |d: &str| HostTls {
        domain: d.into(),
        certificate: None,
        key: None,
    };
    for bad in ["../etc/passwd", "a/b", "", "a..b", ".."] {
        let err = load_err(&[selfsigned(bad)], dir.path());
        assert!(
            matches!(&err, TlsError::InvalidDomain(d) if d == bad),
            "{bad}: {err}"
        );
    }
    let err = load_err(
        &[selfsigned("a.example"), selfsigned("A.example")],
        dir.path(),
    );
    assert_eq!(err.to_string(), "host a.example: listed more than once");
    let half = HostTls {
        domain: "a.example".into(),
        certificate: Some(dir.path().join("x.pem")),
        key: None,
    };
    assert_eq!(
        load_err(&[half], dir.path()).to_string(),
        "host a.example: certificate and key must be configured together"
    );
    // Nothing was generated for the rejected lists.
    assert!(!dir.path().join("certs").exists());
}
