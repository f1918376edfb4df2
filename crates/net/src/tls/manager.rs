//! [`TlsManager`]: per-host certificates, cached `ServerConfig`s, reload.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig, ServerConnection};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use super::acme_validation::{ALPN_ACME_TLS, AcmeValidations, ValidationResolver};
use super::end_point::server_end_point;
use super::error::{FileKind, TlsError};

/// The ALPN protocol name of XEP-0368 direct TLS for clients.
pub const ALPN_XMPP_CLIENT: &[u8] = b"xmpp-client";

/// RFC 9266 §2 exporter label.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Sessions kept for stateful TLS 1.3 resumption, per cache (rustls' own default size).
const SESSION_CACHE_SIZE: usize = 256;

/// One host's TLS configuration, as given by the server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTls {
    /// The XMPP domain served (e.g. `example.org`).
    pub domain: String,
    /// PEM certificate chain, leaf first (certbot's `fullchain.pem`). `None` (together with
    /// `key`) means the self-signed default in `<data_dir>/certs/<domain>.crt`.
    pub certificate: Option<PathBuf>,
    /// PEM private key (certbot's `privkey.pem`): PKCS#8, PKCS#1 or SEC1, unencrypted.
    pub key: Option<PathBuf>,
}

/// Where one host's material comes from; fixed at load time, re-read by [`TlsManager::reload`].
#[derive(Debug, Clone)]
struct Source {
    /// Normalised domain (ASCII lowercase, no trailing dot).
    domain: String,
    certificate: PathBuf,
    key: PathBuf,
    /// The files are ours: generate them when absent.
    self_signed: bool,
}

/// Certificates by SNI name; shared by every config of one snapshot.
#[derive(Debug)]
struct KeyTable {
    keys: Vec<Arc<CertifiedKey>>,
    index: HashMap<String, usize>,
}

/// `ResolvesServerCert` choosing by SNI (RFC 6066 §3), with a default for no/unknown SNI.
#[derive(Debug)]
struct SniResolver {
    table: Arc<KeyTable>,
    default: usize,
}

impl KeyTable {
    /// The host serving `name` (normalised): the host itself, else the nearest host it is a
    /// subdomain of (`conference.example.org` → `example.org`, whose ACME certificate names its
    /// service subdomains too).
    fn find(&self, name: &str) -> Option<usize> {
        if let Some(&i) = self.index.get(name) {
            return Some(i);
        }
        name.match_indices('.')
            .find_map(|(dot, _)| self.index.get(&name[dot + 1..]).copied())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands us the SNI already lowercased.
        let i = client_hello
            .server_name()
            .and_then(|name| self.table.find(name))
            .unwrap_or(self.default);
        self.table.keys.get(i).cloned()
    }
}

/// Everything built from one load/reload; swapped as a whole.
#[derive(Debug)]
struct Snapshot {
    sources: Vec<Source>,
    table: Arc<KeyTable>,
    /// Per host (same order as `sources`): STARTTLS config defaulting to that host.
    starttls: Vec<Arc<ServerConfig>>,
    /// Per host: RFC 5929 tls-server-end-point of its leaf certificate.
    end_points: Vec<Vec<u8>>,
    /// Direct TLS without ALPN: accepts any client.
    direct: Arc<ServerConfig>,
    /// Direct TLS selecting "xmpp-client"; only for clients that offer it.
    direct_alpn: Arc<ServerConfig>,
}

impl Snapshot {
    /// Host index for a domain (SNI or stream `to`), falling back to the first host.
    fn host_index(&self, domain: &str) -> usize {
        let key = normalize_domain(domain);
        self.table.find(&key).unwrap_or(0)
    }
}

/// TLS material for all hosts, with ready `ServerConfig`s. `Send + Sync`; share it as `Arc`.
///
/// All configs use the `ring` provider explicitly, TLS 1.3 and 1.2 only.
/// Configs are built once per [`load`](Self::load)/[`reload`](Self::reload); getters only clone an `Arc`.
#[derive(Debug)]
pub struct TlsManager {
    provider: Arc<CryptoProvider>,
    data_dir: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    /// Serialises reloads (file generation must not race with itself).
    reload_lock: Mutex<()>,
    /// Pending TLS-ALPN-01 validation certificates (RFC 8737), filled by ACME.
    validations: AcmeValidations,
    /// The config of validation handshakes: the pending certificate named by the SNI, ALPN
    /// `acme-tls/1` only. Independent of the hosts, so built once.
    acme_tls: Arc<ServerConfig>,
}

impl TlsManager {
    /// Loads every host's PEM chain and key, checking that each key matches its leaf certificate.
    ///
    /// A host without `certificate`/`key` uses `<data_dir>/certs/<domain>.crt` and `.key`; they are
    /// generated (self-signed ECDSA P-256, SAN = domain, plus 127.0.0.1 and ::1 for `localhost`,
    /// key file mode 0600) when either is missing, and reused afterwards.
    /// The first host is the fallback for clients that send no or an unknown SNI.
    ///
    /// Blocking (file I/O, key generation): call at startup or from `spawn_blocking`.
    pub fn load(hosts: &[HostTls], data_dir: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let sources = sources(hosts, data_dir)?;
        let snapshot = build_snapshot(&provider, sources)?;
        let validations = AcmeValidations::default();
        let acme_tls = acme_tls_config(&provider, &validations)?;
        Ok(TlsManager {
            provider,
            data_dir: data_dir.to_path_buf(),
            current: RwLock::new(Arc::new(snapshot)),
            reload_lock: Mutex::new(()),
            validations,
            acme_tls: Arc::new(acme_tls),
        })
    }

    /// Re-reads every certificate and key from disk (for SIGHUP). On any error the old material
    /// is kept for all hosts and the error returned. Connections already established are not
    /// affected; new handshakes use the new certificates. Blocking, like [`load`](Self::load).
    pub fn reload(&self) -> Result<(), TlsError> {
        let _guard = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sources = self.snapshot().sources.clone();
        self.install(build_snapshot(&self.provider, sources)?);
        Ok(())
    }

    /// Like [`reload`](Self::reload), but with a new host list (the configuration file changed).
    /// All-or-nothing as well.
    pub fn reload_hosts(&self, hosts: &[HostTls]) -> Result<(), TlsError> {
        let _guard = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sources = sources(hosts, &self.data_dir)?;
        self.install(build_snapshot(&self.provider, sources)?);
        Ok(())
    }

    /// Replaces the certificate chain and key of a host whose pair the server manages (no
    /// files configured: `<data_dir>/certs/<domain>.crt` and `.key`, see
    /// [`managed_certificate_paths`]), then reloads every host. ACME installs what it obtained
    /// through this.
    ///
    /// The pair is checked first (PEM, key matching the leaf), and nothing is written if it is
    /// bad. Then, under the reload lock (a concurrent [`reload`](Self::reload) never sees half
    /// of it): the old certificate is removed, the key and the chain written (each via a
    /// temporary file, synced, renamed; the key mode 0600). A crash in between leaves no
    /// certificate, which the next load answers with a new self-signed pair, never a
    /// certificate beside a key it does not belong to. Blocking.
    pub fn install_managed(
        &self,
        domain: &str,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<(), TlsError> {
        let _guard = self
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sources = self.snapshot().sources.clone();
        let domain = normalize_domain(domain);
        let source = sources
            .iter()
            .find(|s| s.domain == domain)
            .ok_or_else(|| TlsError::UnknownHost(domain.clone()))?;
        if !source.self_signed {
            return Err(TlsError::NotManaged(domain));
        }
        certified_key(
            &self.provider,
            chain_pem,
            &source.certificate,
            key_pem,
            &source.key,
        )?;
        if let Some(dir) = source.certificate.parent() {
            create_private_dir(dir)?;
        }
        match fs::remove_file(&source.certificate) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(TlsError::Write {
                    path: source.certificate.clone(),
                    source: e,
                });
            }
        }
        write_atomically(&source.key, key_pem, 0o600)?;
        write_atomically(&source.certificate, chain_pem, 0o644)?;
        self.install(build_snapshot(&self.provider, sources)?);
        Ok(())
    }

    /// `ServerConfig` for direct TLS (XEP-0368): certificate chosen by SNI, the fallback (first)
    /// host's for no or unknown SNI. It selects no ALPN protocol, so every client can connect
    /// whatever it offers (rustls aborts with `no_application_protocol` when the server has an
    /// ALPN list and the client offered only other protocols — RFC 7301 §3.2). To answer
    /// "xmpp-client" to clients that offer it, use [`direct_tls_config_for`](Self::direct_tls_config_for)
    /// or [`accept_direct_tls`](Self::accept_direct_tls).
    pub fn direct_tls_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.snapshot().direct)
    }

    /// The direct-TLS `ServerConfig` for a ClientHello read with `rustls::server::Acceptor` /
    /// `tokio_rustls::LazyConfigAcceptor`: the one selecting "xmpp-client" if the client offers it,
    /// else the ALPN-less one of [`direct_tls_config`](Self::direct_tls_config).
    ///
    /// A TLS-ALPN-01 validation, a ClientHello offering `acme-tls/1` with an SNI whose
    /// validation certificate is pending in [`acme_validations`](Self::acme_validations), gets the
    /// config serving that certificate with `acme-tls/1` selected (RFC 8737 §3). The caller
    /// closes such a connection after the handshake ([`is_acme_validation`](super::is_acme_validation)).
    pub fn direct_tls_config_for(
        &self,
        client_hello: &ClientHello<'_>,
    ) -> Arc<rustls::ServerConfig> {
        if self.validations.wants(client_hello) {
            return Arc::clone(&self.acme_tls);
        }
        let snapshot = self.snapshot();
        let offers_xmpp = client_hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ALPN_XMPP_CLIENT));
        if offers_xmpp {
            Arc::clone(&snapshot.direct_alpn)
        } else {
            Arc::clone(&snapshot.direct)
        }
    }

    /// Performs the server side of a direct-TLS handshake on `io`, with ALPN "xmpp-client"
    /// selected when the client offers it (see [`direct_tls_config_for`](Self::direct_tls_config_for)).
    /// Has no timeout of its own: wrap it in one.
    ///
    /// Hazard: the handshake may be an ACME TLS-ALPN-01 validation; check
    /// [`is_acme_validation`](super::is_acme_validation) on the result and close such a
    /// connection without reading from it.
    pub async fn accept_direct_tls<IO>(&self, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        let config = self.direct_tls_config_for(&start.client_hello());
        start.into_stream(config).await
    }

    /// `ServerConfig` for STARTTLS on a stream whose header named `domain`: the SNI's certificate
    /// if the client sent a known SNI, else `domain`'s (the fallback host's if `domain` is unknown).
    /// No ALPN (RFC 7590 / RFC 6120 §5.4: STARTTLS negotiates no application protocol).
    pub fn starttls_config(&self, domain: &str) -> Arc<rustls::ServerConfig> {
        let snapshot = self.snapshot();
        let i = snapshot.host_index(domain);
        snapshot
            .starttls
            .get(i)
            .or_else(|| snapshot.starttls.first())
            .map(Arc::clone)
            .unwrap_or_else(|| Arc::clone(&snapshot.direct))
    }

    /// RFC 5929 §4.1 tls-server-end-point data for the certificate served for `domain` (pass the
    /// SNI if the connection has one, else the stream domain): the hash of the leaf certificate's
    /// DER with its signature algorithm's hash, SHA-256 for MD5/SHA-1/unknown. Unknown domains
    /// get the fallback host's, as the configs serve it. Precomputed: cheap.
    ///
    /// Hazard: after a [`reload`](Self::reload) this describes the *new* certificate. Read it
    /// right after the handshake and keep it with the connection.
    pub fn server_end_point(&self, domain: &str) -> Option<Vec<u8>> {
        let snapshot = self.snapshot();
        let i = snapshot.host_index(domain);
        snapshot.end_points.get(i).cloned()
    }

    /// The hosts' domains (normalised), in configuration order; the first is the fallback.
    pub fn domains(&self) -> Vec<String> {
        self.snapshot()
            .sources
            .iter()
            .map(|s| s.domain.clone())
            .collect()
    }

    /// The leaf certificate (DER) currently served for `domain` (same lookup as
    /// [`server_end_point`](Self::server_end_point)).
    pub fn leaf_certificate(&self, domain: &str) -> Option<CertificateDer<'static>> {
        let snapshot = self.snapshot();
        let i = snapshot.host_index(domain);
        snapshot.table.keys.get(i)?.cert.first().cloned()
    }

    /// The crypto provider every config here uses (ring), for configs built elsewhere (s2s).
    pub fn provider(&self) -> Arc<CryptoProvider> {
        Arc::clone(&self.provider)
    }

    /// The certificate and key served now for `domain`'s host (itself, or the host it is a
    /// subdomain of); `None` for a domain no host covers. What s2s presents as a TLS client
    /// (SASL EXTERNAL, RFC 6120 §13.7.1.2).
    pub fn certified_key(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.snapshot();
        let i = snapshot.table.find(&normalize_domain(domain))?;
        snapshot.table.keys.get(i).cloned()
    }

    /// A certificate resolver that chooses by SNI from the certificates served *now* (reloads
    /// and ACME renewals included), for server configs built elsewhere (the s2s listener, whose
    /// config asks for client certificates).
    pub fn live_resolver(self: &Arc<Self>) -> Arc<dyn ResolvesServerCert> {
        Arc::new(LiveResolver(Arc::clone(self)))
    }

    /// The pending TLS-ALPN-01 validation certificates (RFC 8737) this manager serves to
    /// `acme-tls/1` handshakes; ACME fills it. Shared: the clone is the same table.
    pub fn acme_validations(&self) -> AcmeValidations {
        self.validations.clone()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn install(&self, snapshot: Snapshot) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(snapshot);
    }
}

/// See [`TlsManager::live_resolver`].
#[derive(Debug)]
struct LiveResolver(Arc<TlsManager>);

impl ResolvesServerCert for LiveResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.0.snapshot();
        let i = client_hello
            .server_name()
            .and_then(|name| snapshot.table.find(name))
            .unwrap_or(0);
        snapshot.table.keys.get(i).cloned()
    }
}

/// RFC 9266 tls-exporter channel binding: 32 bytes exported with label "EXPORTER-Channel-Binding"
/// and an empty context. `None` before the handshake completes and for TLS 1.2, where the
/// binding is only safe with the extended master secret (RFC 9266 §3), which rustls does not report.
pub fn tls_exporter(conn: &ServerConnection) -> Option<Vec<u8>> {
    if conn.is_handshaking() || conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    // RFC 9266 §2: empty context; in TLS 1.3 (RFC 8446 §7.5) empty and absent are the same.
    conn.export_keying_material(vec![0u8; 32], EXPORTER_LABEL, Some(&[]))
        .ok()
}

/// ASCII lowercase, without a trailing dot.
fn normalize_domain(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

/// Where the certificate and key of a host without configured files live:
/// `<data_dir>/certs/<domain>.crt` and `.key` (`domain` normalised). Self-signed when the
/// manager generated them; ACME (the `starling-acme` crate) writes its certificates there too,
/// then calls [`TlsManager::reload`].
pub fn managed_certificate_paths(data_dir: &Path, domain: &str) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("certs");
    (
        dir.join(format!("{domain}.crt")),
        dir.join(format!("{domain}.key")),
    )
}

/// Validates the host list and resolves file paths.
fn sources(hosts: &[HostTls], data_dir: &Path) -> Result<Vec<Source>, TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::NoHosts);
    }
    let mut out: Vec<Source> = Vec::with_capacity(hosts.len());
    for host in hosts {
        let domain = normalize_domain(&host.domain);
        // The domain becomes a file name: only DNS names and IP literals, nothing with '/' or "..".
        if DnsName::try_from(domain.as_str()).is_err() && domain.parse::<IpAddr>().is_err() {
            return Err(TlsError::InvalidDomain(host.domain.clone()));
        }
        if out.iter().any(|s| s.domain == domain) {
            return Err(TlsError::DuplicateDomain(domain));
        }
        let source = match (&host.certificate, &host.key) {
            (Some(certificate), Some(key)) => Source {
                domain,
                certificate: certificate.clone(),
                key: key.clone(),
                self_signed: false,
            },
            (None, None) => {
                let (certificate, key) = managed_certificate_paths(data_dir, &domain);
                Source {
                    certificate,
                    key,
                    domain,
                    self_signed: true,
                }
            }
            _ => return Err(TlsError::IncompleteHost(domain)),
        };
        out.push(source);
    }
    Ok(out)
}

/// Loads every host and builds all configs. Nothing is installed here, so failure changes nothing.
fn build_snapshot(
    provider: &Arc<CryptoProvider>,
    sources: Vec<Source>,
) -> Result<Snapshot, TlsError> {
    let mut keys = Vec::with_capacity(sources.len());
    let mut end_points = Vec::with_capacity(sources.len());
    let mut index = HashMap::with_capacity(sources.len());
    for (i, source) in sources.iter().enumerate() {
        if source.self_signed {
            ensure_self_signed(source)?;
        }
        let key = load_certified_key(provider, &source.certificate, &source.key)?;
        let end_point = key
            .cert
            .first()
            .map(|leaf| server_end_point(leaf.as_ref()))
            .ok_or_else(|| TlsError::NoCertificates {
                path: source.certificate.clone(),
            })?;
        keys.push(Arc::new(key));
        end_points.push(end_point);
        index.insert(source.domain.clone(), i);
    }
    let table = Arc::new(KeyTable { keys, index });

    let mut starttls = Vec::with_capacity(sources.len());
    for i in 0..sources.len() {
        let resolver = SniResolver {
            table: Arc::clone(&table),
            default: i,
        };
        starttls.push(Arc::new(server_config(
            provider,
            Arc::new(resolver),
            Vec::new(),
        )?));
    }

    // Both direct configs share one session cache: resumption is keyed by SNI (RFC 6066 §3,
    // rustls checks it), and the certificate does not depend on ALPN.
    let sessions: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    let resolver = || {
        Arc::new(SniResolver {
            table: Arc::clone(&table),
            default: 0,
        })
    };
    let mut direct = server_config(provider, resolver(), Vec::new())?;
    direct.session_storage = Arc::clone(&sessions);
    let mut direct_alpn = server_config(provider, resolver(), vec![ALPN_XMPP_CLIENT.to_vec()])?;
    direct_alpn.session_storage = sessions;

    Ok(Snapshot {
        sources,
        table,
        starttls,
        end_points,
        direct: Arc::new(direct),
        direct_alpn: Arc::new(direct_alpn),
    })
}

/// A server config with the explicit provider, TLS 1.3 + 1.2, no client authentication.
/// rustls defaults kept: stateful TLS 1.3 resumption from a per-config in-memory cache, no
/// stateless tickets, no 0-RTT data (replayable), no renegotiation (rustls has none).
fn server_config(
    provider: &Arc<CryptoProvider>,
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: Vec<Vec<u8>>,
) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The config of TLS-ALPN-01 validation handshakes (RFC 8737 §3): the validation certificate
/// pending for the SNI, `acme-tls/1` the only protocol (TLS 1.2 or higher, §4). No session is
/// kept or ticket sent: a validation is one handshake, and resuming one would skip the
/// certificate.
fn acme_tls_config(
    provider: &Arc<CryptoProvider>,
    validations: &AcmeValidations,
) -> Result<ServerConfig, TlsError> {
    let resolver = Arc::new(ValidationResolver(validations.clone()));
    let mut config = server_config(provider, resolver, vec![ALPN_ACME_TLS.to_vec()])?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

fn read(kind: FileKind, path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Io {
        kind,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(kind: FileKind, path: &Path, source: pem::Error) -> TlsError {
    TlsError::Pem {
        kind,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a chain and key and checks that they belong together.
fn load_certified_key(
    provider: &CryptoProvider,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(FileKind::Certificate, cert_path)?;
    let key_pem = read(FileKind::Key, key_path)?;
    certified_key(provider, &cert_pem, cert_path, &key_pem, key_path)
}

/// A chain and key from PEM text (the paths for error messages), checked to belong together.
fn certified_key(
    provider: &CryptoProvider,
    cert_pem: &[u8],
    cert_path: &Path,
    key_pem: &[u8],
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(FileKind::Certificate, cert_path, e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificates {
            path: cert_path.to_path_buf(),
        });
    }

    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoKey {
                path: key_path.to_path_buf(),
            });
        }
        Err(e) => return Err(pem_error(FileKind::Key, key_path, e)),
    };
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::BadKey {
            path: key_path.to_path_buf(),
            source,
        })?;

    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                key: key_path.to_path_buf(),
                certificate: cert_path.to_path_buf(),
            })
        }
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            // ring's keys always expose their public key; a provider that cannot is trusted.
            tracing::warn!(key = %key_path.display(), "cannot check that the key matches the certificate");
            Ok(certified)
        }
        Err(source) => Err(TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            source,
        }),
    }
}

/// Generates the self-signed default pair if either file is missing.
///
/// Order (crash-safe): remove a stale certificate, write the key, then the certificate, each via a
/// temporary file and rename. A missing certificate therefore always means "generate again",
/// and a certificate never sits next to a key it does not belong to.
fn ensure_self_signed(source: &Source) -> Result<(), TlsError> {
    let exists = |path: &Path| {
        path.try_exists().map_err(|e| TlsError::Io {
            kind: if path == source.key {
                FileKind::Key
            } else {
                FileKind::Certificate
            },
            path: path.to_path_buf(),
            source: e,
        })
    };
    if exists(&source.certificate)? && exists(&source.key)? {
        return Ok(());
    }

    let generate = |e| TlsError::Generate {
        domain: source.domain.clone(),
        source: e,
    };
    let mut names = vec![source.domain.clone()];
    if source.domain == "localhost" {
        names.push("127.0.0.1".to_owned());
        names.push("::1".to_owned());
    }
    let mut params = rcgen::CertificateParams::new(names).map_err(generate)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, source.domain.as_str());
    params.distinguished_name = dn;
    let key_pair =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let cert = params.self_signed(&key_pair).map_err(generate)?;

    if let Some(dir) = source.certificate.parent() {
        create_private_dir(dir)?;
    }
    if let Some(dir) = source.key.parent() {
        create_private_dir(dir)?;
    }
    match fs::remove_file(&source.certificate) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(TlsError::Write {
                path: source.certificate.clone(),
                source: e,
            });
        }
    }
    write_atomically(&source.key, key_pair.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&source.certificate, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(
        domain = %source.domain,
        certificate = %source.certificate.display(),
        "generated a self-signed certificate"
    );
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `contents` to `path` via `<path>.tmp` (created fresh with `mode`), fsync, rename.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(&tmp)(e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(err(&tmp))?;
    file.write_all(contents).map_err(err(&tmp))?;
    file.sync_all().map_err(err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(err(path))
}
