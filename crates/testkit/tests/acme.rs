//! Issue 17 item 8: certificates from a real ACME CA (RFC 8555), Let's Encrypt's test server
//! pebble (Debian package `pebble`, which `.ci/run` installs), on loopback.
//!
//! Set-up, per test: `pebble-challtestsrv` (same package) is only a DNS server here, answering
//! every A query with 127.0.0.1 (`-defaultIPv4`) and no AAAA, so the names `starling.test`,
//! `conference.starling.test`, ... all lead pebble's validation to this machine; pebble uses it
//! through `-dnsserver`. Pebble's `httpPort` is the port of the server's plain HTTP listener,
//! where the challenge route answers (RFC 8555 §8.3; port 80 in production); for TLS-ALPN-01
//! (RFC 8737) its `tlsPort` is the port of the server's c2s direct-TLS listener (443 in
//! production), where the TLS manager answers `acme-tls/1` handshakes. Pebble's own
//! HTTPS uses a certificate from a CA made here, which the server trusts through
//! `[acme] ca_file`. Pebble issues from a root it makes at start, which the tests fetch from
//! its management port and use as the only root a client trusts: a handshake that succeeds
//! proves the certificate served was issued by pebble.
//!
//! Without the binaries each test prints why and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use starling_testkit::server::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const DOMAIN: &str = "starling.test";

/// The path of `name` on `PATH`.
fn binary(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A loopback port free at the time of asking (TCP and UDP).
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed (by its own id) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pebble and its DNS server, running for one test.
struct Pebble {
    dir: tempfile::TempDir,
    acme_port: u16,
    management_port: u16,
    /// pebble-challtestsrv's management port (mock DNS records).
    dns_management_port: u16,
    /// Trusts the test CA of pebble's own HTTPS (not the CA pebble issues from).
    https_roots: Arc<ClientConfig>,
    _dns: Process,
    _pebble: Process,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port`, issuing certificates valid for
    /// `validity` seconds (pebble's default, five years, when `None`). `None` without the
    /// binaries.
    async fn start(http_port: u16, validity: Option<u64>) -> Option<Pebble> {
        Self::start_on(http_port, free_port(), validity).await
    }

    /// Like [`start`](Self::start), validating TLS-ALPN-01 on `tls_port` too (each challenge
    /// on the port of its type; the client picks the type).
    async fn start_on(http_port: u16, tls_port: u16, validity: Option<u64>) -> Option<Pebble> {
        let (Some(pebble), Some(challtestsrv)) = (binary("pebble"), binary("pebble-challtestsrv"))
        else {
            eprintln!(
                "skipping: pebble or pebble-challtestsrv not found on PATH \
                 (apt-get install pebble; .ci/run installs it)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        // A CA for pebble's HTTPS (its Debian package ships no test certificate).
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "starling test CA for pebble's HTTPS",
        );
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

        let (acme_port, management_port, dns_port) = (free_port(), free_port(), free_port());
        let dns_management_port = free_port();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{acme_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        if let Some(seconds) = validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();

        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let dns = Process(
            Command::new(challtestsrv)
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{dns_management_port}")])
                .stdout(log("challtestsrv.log"))
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pebble = Process(
            Command::new(pebble)
                .arg("-config")
                .arg(&config_path)
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
                // Validate at once, for real, and every time (no authorization reuse, no
                // nonces rejected at random: failures are the ones a test provokes).
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_VA_ALWAYS_VALID", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .stdout(log("pebble.log"))
                .stderr(log("pebble.err"))
                .spawn()
                .unwrap(),
        );
        let mut roots = RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let https_roots = Arc::new(client_config(roots));
        let pebble = Pebble {
            dir,
            acme_port,
            management_port,
            dns_management_port,
            https_roots,
            _dns: dns,
            _pebble: pebble,
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", acme_port)).await.is_ok()
                && TcpStream::connect(("127.0.0.1", management_port))
                    .await
                    .is_ok()
            {
                return Some(pebble);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pebble did not start: {}", pebble.log());
    }

    /// Makes `name` resolve to `ip` for pebble (challtestsrv's `/add-a`).
    async fn add_a(&self, name: &str, ip: &str) {
        let body = serde_json::json!({ "host": name, "addresses": [ip] }).to_string();
        let request = format!(
            "POST /add-a HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut tcp = TcpStream::connect(("127.0.0.1", self.dns_management_port))
            .await
            .unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("pebble.log"), read("pebble.err"))
    }

    /// The root pebble issues from (its management interface, `/roots/0`).
    async fn issuing_root(&self) -> CertificateDer<'static> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.management_port));
        let body = https_get(addr, "/roots/0", self.https_roots.clone()).await;
        CertificateDer::from_pem_slice(body.as_bytes()).unwrap()
    }
}

fn client_config(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// GET over HTTPS (HTTP/1.1, connection closed by the server): the body.
async fn https_get(addr: SocketAddr, path: &str, config: Arc<ClientConfig>) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // Go's server may close without close_notify: keep what arrived.
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// A TLS handshake with SNI `name` trusting only `root`: the leaf served. Panics if the
/// certificate does not chain to `root` or does not name `name`.
async fn served_leaf(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
) -> (
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<TcpStream>,
) {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(client_config(roots)))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS to {addr} as {name}: {e}"));
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (leaf, tls)
}

/// Captures the server's log lines (the test's runtime is single-threaded, so the tasks it
/// spawns log through this thread's default subscriber).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A server for `starling.test` with ACME from `pebble`, its plain HTTP listener on `http_port`
/// and HTTPS on a free port.
async fn server(pebble: &Pebble, http_port: u16) -> TestServer {
    let (directory, ca_file) = (pebble.directory(), pebble.ca_file());
    TestServer::start_with(|c| {
        c.hosts[0].domain = DOMAIN.into();
        c.http.listen = vec![SocketAddr::from(([127, 0, 0, 1], http_port))];
        c.http.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.acme.enabled = true;
        c.acme.contact = Some("mailto:admin@starling.test".into());
        c.acme.directory = directory;
        c.acme.ca_file = Some(ca_file);
    })
    .await
}

fn cert_on_disk(data_dir: &Path) -> starling_acme::certificate::CertInfo {
    starling_acme::certificate::read_info(&data_dir.join("certs/starling.test.crt"))
        .unwrap()
        .unwrap()
}

/// RFC 8555 §7 end to end: account, order, HTTP-01 for the host and its service subdomains,
/// finalize, download; the certificate then served by c2s direct TLS (XEP-0368) and HTTPS, for
/// the host and for `conference.` by SNI.
#[tokio::test]
async fn issues_a_certificate_served_by_c2s_and_https() {
    let http_port = free_port();
    let Some(pebble) = Pebble::start(http_port, None).await else {
        return;
    };
    let server = server(&pebble, http_port).await;
    let acme = server.server().acme.clone().expect("ACME enabled");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| s.installed > 0 || !s.last_failures.is_empty()),
    )
    .await
    .unwrap_or_else(|_| panic!("no certificate within 60 s; pebble says: {}", pebble.log()));
    assert_eq!(status.last_failures, [], "{}", pebble.log());
    let info = status.certificate.unwrap();
    assert_eq!(
        info.names,
        [
            "starling.test",
            "conference.starling.test",
            "pubsub.starling.test",
            "upload.starling.test"
        ]
    );
    assert!(!info.self_signed);
    assert!(
        info.issuer.contains("Pebble Intermediate CA"),
        "{}",
        info.issuer
    );
    assert_eq!(cert_on_disk(server.data_dir()), info);
    // The account is kept, private.
    let account = server.data_dir().join(starling_acme::ACCOUNT_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&account).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let root = pebble.issuing_root().await;
    let https = server.server().http_addrs[1];
    for (addr, name) in [
        (server.direct_tls_addr, DOMAIN),
        (server.direct_tls_addr, "conference.starling.test"),
        (https, DOMAIN),
        (https, "pubsub.starling.test"),
    ] {
        let (leaf, _) = served_leaf(addr, name, &root).await;
        let served = starling_acme::certificate::info_from_der(&leaf).unwrap();
        assert_eq!(served.serial, info.serial, "{addr} {name}");
    }
    server.stop().await;
}

/// Renewal with a third of the lifetime left (short-lived certificates), swapped in without
/// dropping a connection opened before: it still gets its stream features afterwards.
#[tokio::test]
async fn renews_a_short_lived_certificate_without_dropping_connections() {
    let http_port = free_port();
    // 15 s certificates: renewed 5 s before expiry, about 10 s after issuance.
    let Some(pebble) = Pebble::start(http_port, Some(15)).await else {
        return;
    };
    let server = server(&pebble, http_port).await;
    let acme = server.server().acme.clone().expect("ACME enabled");
    let wait = |n: u32| {
        let acme = acme.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(60),
                acme.wait_for(DOMAIN, move |s| {
                    s.installed >= n || !s.last_failures.is_empty()
                }),
            )
            .await
            .expect("in time")
        }
    };
    let first = wait(1).await;
    assert_eq!(first.last_failures, [], "{}", pebble.log());
    let first = first.certificate.unwrap();
    let lifetime = first.not_after.duration_since(first.not_before).unwrap();
    assert!(lifetime <= Duration::from_secs(16), "{lifetime:?}");

    let root = pebble.issuing_root().await;
    let (leaf, mut old_connection) = served_leaf(server.direct_tls_addr, DOMAIN, &root).await;
    assert_eq!(
        starling_acme::certificate::info_from_der(&leaf)
            .unwrap()
            .serial,
        first.serial
    );

    let second = wait(2).await;
    assert_eq!(second.last_failures, [], "{}", pebble.log());
    let second = second.certificate.unwrap();
    assert_ne!(second.serial, first.serial);
    assert!(second.not_after > first.not_after);
    let (leaf, _) = served_leaf(server.direct_tls_addr, DOMAIN, &root).await;
    assert_eq!(
        starling_acme::certificate::info_from_der(&leaf)
            .unwrap()
            .serial,
        second.serial
    );

    // RFC 6120 §4.2: the connection made before the swap still opens a stream.
    old_connection
        .write_all(
            b"<?xml version='1.0'?><stream:stream to='starling.test' version='1.0' \
              xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("</stream:features>") {
        let n = tokio::time::timeout(Duration::from_secs(10), old_connection.read(&mut buf))
            .await
            .expect("features in time")
            .unwrap();
        assert_ne!(n, 0, "connection closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    server.stop().await;
}

/// A challenge the CA cannot reach (pebble validates on a port nobody listens on): the error
/// kept and the one log line name the domain, the ACME problem type (RFC 8555 §6.7
/// `connection`) and pebble's detail; the self-signed certificate stays in place.
#[tokio::test]
async fn unreachable_challenge_is_reported_with_domain_and_problem() {
    let logs = Logs::default();
    let _guard = logs.install();
    let nobody = free_port();
    let Some(pebble) = Pebble::start(nobody, None).await else {
        return;
    };
    let server = server(&pebble, free_port()).await;
    let acme = server.server().acme.clone().expect("ACME enabled");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| s.failures > 0 || s.installed > 0),
    )
    .await
    .expect("an answer within 60 s");
    assert_eq!(status.installed, 0);
    let failure = &status.last_failures[0];
    assert_eq!(failure.domain, DOMAIN);
    assert_eq!(failure.problem, "urn:ietf:params:acme:error:connection");
    assert!(failure.detail.contains(&nobody.to_string()), "{failure:?}");
    assert!(cert_on_disk(server.data_dir()).self_signed);

    let expected = format!(
        "ACME: no certificate for starling.test: urn:ietf:params:acme:error:connection: {}",
        failure.detail
    );
    let lines = logs.lines();
    let failed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("ACME: no certificate"))
        .collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    eprintln!("the failure, as logged:\n{}", failed[0]);
    assert!(failed[0].contains(" WARN "), "{}", failed[0]);
    assert!(failed[0].contains(&expected), "{}", failed[0]);
    server.stop().await;
}

/// A service subdomain whose validation fails (its name leads pebble to 127.0.0.2, where nothing
/// listens) does not cost the host its certificate: the order is made again without it, the
/// certificate installed, and the subdomain's failure logged on one line and kept.
#[tokio::test]
async fn failing_subdomain_is_left_out_and_reported() {
    let logs = Logs::default();
    let _guard = logs.install();
    let http_port = free_port();
    let Some(pebble) = Pebble::start(http_port, None).await else {
        return;
    };
    pebble.add_a("pubsub.starling.test", "127.0.0.2").await;
    let server = server(&pebble, http_port).await;
    let acme = server.server().acme.clone().expect("ACME enabled");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| {
            s.installed > 0 || s.certificate.is_none() && s.failures > 0
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer within 60 s; pebble says: {}", pebble.log()));
    assert_eq!(status.installed, 1, "{status:?}");
    assert_eq!(
        status.certificate.as_ref().unwrap().names,
        [
            "starling.test",
            "conference.starling.test",
            "upload.starling.test"
        ]
    );
    assert_eq!(status.last_failures.len(), 1, "{status:?}");
    let failure = &status.last_failures[0];
    assert_eq!(failure.domain, "pubsub.starling.test");
    assert_eq!(failure.problem, "urn:ietf:params:acme:error:connection");
    assert!(failure.detail.contains("127.0.0.2"), "{failure:?}");
    let expected = format!(
        "ACME: pubsub.starling.test left out of starling.test's certificate: \
         urn:ietf:params:acme:error:connection: {}",
        failure.detail
    );
    let lines = logs.lines();
    assert_eq!(
        lines.iter().filter(|l| l.contains(&expected)).count(),
        1,
        "{lines:#?}"
    );
    server.stop().await;
}

/// Retries with backoff: the first request fails (the challenge route is not reachable yet: no
/// HTTP listener on pebble's port), the service waits `retry_first` and succeeds once the route
/// is served; the failure count is reset. The service here runs alone, with a TLS manager and
/// the HTTP listener of the server's crates, for a one-second first retry delay.
#[tokio::test]
async fn retries_after_a_failure() {
    let http_port = free_port();
    let Some(pebble) = Pebble::start(http_port, None).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let host = starling_net::HostTls {
        domain: DOMAIN.into(),
        certificate: None,
        key: None,
    };
    let tls = Arc::new(starling_net::TlsManager::load(&[host], dir.path()).unwrap());
    let hosts = [starling_acme::HostNames {
        domain: DOMAIN.into(),
        services: Vec::new(),
    }];
    let mut settings = starling_acme::AcmeSettings::new(
        pebble.directory(),
        "mailto:admin@starling.test".into(),
        dir.path().to_path_buf(),
    );
    settings.ca_file = Some(pebble.ca_file());
    settings.retry_first = Duration::from_secs(1);
    let challenges = starling_acme::Challenges::default();
    let acme = starling_acme::Acme::new(
        settings,
        starling_acme::targets(&hosts, dir.path()),
        tls.clone(),
        challenges.clone(),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let service = tokio::spawn(acme.clone().run(shutdown.clone()));

    let failed = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| s.failures > 0 || s.installed > 0),
    )
    .await
    .expect("a first attempt");
    assert_eq!((failed.failures, failed.installed), (1, 0), "{failed:?}");
    assert_eq!(
        failed.last_failures[0].problem,
        "urn:ietf:params:acme:error:connection"
    );
    let failed_at = std::time::Instant::now();

    // Now serve the challenge route where pebble looks.
    let listener = starling_http::HttpListener::bind(SocketAddr::from(([127, 0, 0, 1], http_port)))
        .await
        .unwrap();
    let http = tokio::spawn(listener.serve(
        starling_acme::routes(challenges),
        shutdown.clone(),
        starling_http::ListenerLimits::default(),
    ));
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| s.installed > 0 || s.failures > 1),
    )
    .await
    .expect("a second attempt");
    assert_eq!(
        (done.failures, done.installed),
        (0, 1),
        "{done:?} {}",
        pebble.log()
    );
    assert!(failed_at.elapsed() < Duration::from_secs(30));
    // The TLS manager serves it (reloaded by the service).
    let served = tls.leaf_certificate(DOMAIN).unwrap();
    assert_eq!(
        starling_acme::certificate::info_from_der(&served)
            .unwrap()
            .serial,
        done.certificate.unwrap().serial
    );
    shutdown.cancel();
    service.await.unwrap();
    http.await.unwrap();
}

// ---------------------------------------------------------------- TLS-ALPN-01 (RFC 8737)

/// A server for `starling.test` with ACME from `pebble` over TLS-ALPN-01: c2s direct TLS on
/// `tls_port` (where pebble validates), HTTPS on a free port, and no plain HTTP listener at all.
async fn alpn_server(pebble: &Pebble, tls_port: u16) -> TestServer {
    let (directory, ca_file) = (pebble.directory(), pebble.ca_file());
    TestServer::start_with(|c| {
        c.hosts[0].domain = DOMAIN.into();
        c.c2s.direct_tls_listen = vec![SocketAddr::from(([127, 0, 0, 1], tls_port))];
        c.http.listen = Vec::new();
        c.http.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
        c.acme.enabled = true;
        c.acme.contact = Some("mailto:admin@starling.test".into());
        c.acme.directory = directory;
        c.acme.ca_file = Some(ca_file);
        c.acme.challenge = starling_config::AcmeChallenge::TlsAlpn01;
    })
    .await
}

/// RFC 8737 §3 end to end: pebble validates every name by a handshake on the c2s direct-TLS
/// port offering `acme-tls/1`, which the TLS manager answers with the validation certificate;
/// the issued certificate is then served by c2s direct TLS and HTTPS, and the validation
/// certificates are gone.
#[tokio::test]
async fn tls_alpn_issues_a_certificate_served_by_c2s_and_https() {
    let tls_port = free_port();
    // HTTP-01 would fail: nobody listens on pebble's httpPort.
    let Some(pebble) = Pebble::start_on(free_port(), tls_port, None).await else {
        return;
    };
    let server = alpn_server(&pebble, tls_port).await;
    assert_eq!(server.direct_tls_addr.port(), tls_port);
    let acme = server.server().acme.clone().expect("ACME enabled");
    assert_eq!(acme.challenge(), starling_acme::ChallengeKind::TlsAlpn01);
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| s.installed > 0 || !s.last_failures.is_empty()),
    )
    .await
    .unwrap_or_else(|_| panic!("no certificate within 60 s; pebble says: {}", pebble.log()));
    assert_eq!(status.last_failures, [], "{}", pebble.log());
    let info = status.certificate.unwrap();
    assert_eq!(
        info.names,
        [
            "starling.test",
            "conference.starling.test",
            "pubsub.starling.test",
            "upload.starling.test"
        ]
    );
    assert!(
        info.issuer.contains("Pebble Intermediate CA"),
        "{}",
        info.issuer
    );
    assert!(server.server().tls.acme_validations().is_empty());

    let root = pebble.issuing_root().await;
    let https = server.server().http_addrs[0];
    for (addr, name) in [
        (server.direct_tls_addr, DOMAIN),
        (server.direct_tls_addr, "upload.starling.test"),
        (https, DOMAIN),
        (https, "conference.starling.test"),
    ] {
        let (leaf, _) = served_leaf(addr, name, &root).await;
        let served = starling_acme::certificate::info_from_der(&leaf).unwrap();
        assert_eq!(served.serial, info.serial, "{addr} {name}");
    }
    server.stop().await;
}

/// Renewal over TLS-ALPN-01 with a third of the lifetime left: a second certificate, served
/// by c2s direct TLS.
#[tokio::test]
async fn tls_alpn_renews_a_short_lived_certificate() {
    let tls_port = free_port();
    // 15 s certificates: renewed 5 s before expiry, about 10 s after issuance.
    let Some(pebble) = Pebble::start_on(free_port(), tls_port, Some(15)).await else {
        return;
    };
    let server = alpn_server(&pebble, tls_port).await;
    let acme = server.server().acme.clone().expect("ACME enabled");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| s.installed >= 2 || !s.last_failures.is_empty()),
    )
    .await
    .unwrap_or_else(|_| panic!("no renewal within 60 s; pebble says: {}", pebble.log()));
    assert_eq!(status.last_failures, [], "{}", pebble.log());
    assert_eq!(status.installed, 2);
    let renewed = status.certificate.unwrap();
    let root = pebble.issuing_root().await;
    let (leaf, _) = served_leaf(server.direct_tls_addr, DOMAIN, &root).await;
    assert_eq!(
        starling_acme::certificate::info_from_der(&leaf)
            .unwrap()
            .serial,
        renewed.serial
    );
    server.stop().await;
}

/// A TLS-ALPN-01 challenge pebble validates where no validation certificate is pending (its
/// `tlsPort` leads to another direct-TLS listener, with its own TLS manager): that listener
/// answers `acme-tls/1` like any other ClientHello, without the protocol, and the failure is
/// the same one WARN line as for HTTP-01, naming the domain, the problem type and pebble's
/// detail. The self-signed certificate stays.
#[tokio::test]
async fn tls_alpn_failure_is_reported_with_domain_and_problem() {
    let logs = Logs::default();
    let _guard = logs.install();
    // The listener pebble reaches: TLS for starling.test, nothing pending.
    let elsewhere = tempfile::tempdir().unwrap();
    let host = starling_net::HostTls {
        domain: DOMAIN.into(),
        certificate: None,
        key: None,
    };
    let other_tls = Arc::new(starling_net::TlsManager::load(&[host], elsewhere.path()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = listener.local_addr().unwrap().port();
    let other = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tls = other_tls.clone();
            tokio::spawn(async move {
                if let Ok(stream) = tls.accept_direct_tls(tcp).await {
                    assert!(!starling_net::is_acme_validation(stream.get_ref().1));
                }
            });
        }
    });
    let Some(pebble) = Pebble::start_on(free_port(), other_port, None).await else {
        return;
    };
    let server = alpn_server(&pebble, free_port()).await;
    let acme = server.server().acme.clone().expect("ACME enabled");
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        acme.wait_for(DOMAIN, |s| s.failures > 0 || s.installed > 0),
    )
    .await
    .expect("an answer within 60 s");
    assert_eq!(status.installed, 0);
    let failure = &status.last_failures[0];
    assert_eq!(failure.domain, DOMAIN);
    assert_eq!(failure.problem, "urn:ietf:params:acme:error:unauthorized");
    assert!(failure.detail.contains("tls-alpn-01"), "{failure:?}");
    assert!(cert_on_disk(server.data_dir()).self_signed);
    assert!(server.server().tls.acme_validations().is_empty());

    let expected = format!(
        "ACME: no certificate for starling.test: urn:ietf:params:acme:error:unauthorized: {}",
        failure.detail
    );
    let lines = logs.lines();
    let failed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("ACME: no certificate"))
        .collect();
    assert_eq!(failed.len(), 1, "{lines:#?}");
    eprintln!("the failure, as logged:\n{}", failed[0]);
    assert!(failed[0].contains(" WARN "), "{}", failed[0]);
    assert!(failed[0].contains(&expected), "{}", failed[0]);
    server.stop().await;
    other.abort();
}

/// Any certificate, like [`AcceptAnyCert`](starling_net::tls::AcceptAnyCert), whose signature
/// check parses the certificate with webpki; which refuses a validation certificate's unknown
/// critical extension (RFC 8737 §3), so that one's handshake signature is checked against its
/// public key instead.
#[derive(Debug)]
struct AcceptValidation {
    any: starling_net::tls::AcceptAnyCert,
    validation: (
        CertificateDer<'static>,
        rustls::pki_types::SubjectPublicKeyInfoDer<'static>,
    ),
}

impl rustls::client::danger::ServerCertVerifier for AcceptValidation {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.any
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        if *cert == self.validation.0 {
            rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &self.validation.1,
                dss,
                &self.any.0.signature_verification_algorithms,
            )
        } else {
            self.any.verify_tls13_signature(message, cert, dss)
        }
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.any.supported_verify_schemes()
    }
}

/// RFC 8737 §4: an `acme-tls/1` connection carries no application data. With a validation
/// pending (put in the table by hand here, no CA needed), c2s direct TLS and HTTPS answer the
/// handshake with the validation certificate and `acme-tls/1`, then close the connection
/// without a stream header or an HTTP response; a client that does not offer `acme-tls/1`
/// still gets the host's certificate and its stream.
#[tokio::test]
async fn validation_handshakes_are_closed_on_c2s_and_https() {
    let server = TestServer::start_with(|c| {
        c.hosts[0].domain = DOMAIN.into();
        c.http.tls_listen = vec!["127.0.0.1:0".parse().unwrap()];
    })
    .await;
    let https = *server.server().http_addrs.last().unwrap();
    let (cert, key) =
        starling_acme::tls_alpn::validation_certificate(DOMAIN, "token.thumbprint").unwrap();
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let spki = signing.public_key().unwrap().into_owned();
    let certified = rustls::sign::CertifiedKey::new(vec![cert.clone()], signing);
    let validations = server.server().tls.acme_validations();
    validations.insert(DOMAIN, Arc::new(certified));

    let connect = async |addr: SocketAddr, alpn: &[u8]| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptValidation {
                any: starling_net::tls::AcceptAnyCert(provider),
                validation: (cert.clone(), spki.clone()),
            }))
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
            .await
            .unwrap()
    };
    for addr in [server.direct_tls_addr, https] {
        let mut tls = connect(addr, b"acme-tls/1").await;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.alpn_protocol(), Some(&b"acme-tls/1"[..]), "{addr}");
        assert_eq!(conn.peer_certificates().unwrap()[0], cert, "{addr}");
        // The server closes at once, having sent nothing (a stream header or an HTTP
        // answer would be data).
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut got))
            .await
            .expect("closed in time");
        assert!(read.is_ok(), "{addr}: {read:?}");
        assert_eq!(got, b"", "{addr}");
    }
    // An XMPP client is unaffected.
    let mut tls = connect(server.direct_tls_addr, b"xmpp-client").await;
    assert_ne!(tls.get_ref().1.peer_certificates().unwrap()[0], cert);
    tls.write_all(
        b"<?xml version='1.0'?><stream:stream to='starling.test' version='1.0' \
          xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("a stream header in time")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("<stream:stream"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    server.stop().await;
}
