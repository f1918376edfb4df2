//! An in-process Starling on 127.0.0.1 with port 0 listeners, a fresh data directory and the
//! real SQLite store and TLS: what integration tests run against.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use starling::RunningServer;

use crate::client::{Client, Security};
use starling_config::Config;
use starling_router::Router;

/// A running test server. Dropping it without [`TestServer::stop`] leaves its tasks to the runtime,
/// which ends with the test.
pub struct TestServer {
    pub starttls_addr: SocketAddr,
    pub direct_tls_addr: SocketAddr,
    /// The first HTTP listener (`[http] listen`), if any.
    pub http_addr: Option<SocketAddr>,
    pub domain: String,
    pub config: Config,
    running: Option<RunningServer>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// A server for `localhost` with the default settings, except: listeners on port 0, no read-rate
    /// limit (tests send quickly), a fresh temporary data directory, and no message archive (it
    /// adds an XEP-0359 `<stanza-id/>` to every archived message; tests of other features
    /// assert the stanzas without it, `tests/archive.rs` turns it on).
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Like [`start`](Self::start), with the configuration adjusted by `adjust` first.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        Self::start_in(dir, adjust).await
    }

    /// Like [`start_with`](Self::start_with), on an existing data directory (for example the one
    /// [`stop_keep_data`](Self::stop_keep_data) returned): its database, accounts and certificates
    /// are used as they are. The returned server owns `dir` and deletes it when dropped.
    pub async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::launch(dir, config).await
    }

    /// Like [`start_with`](Self::start_with), with `modules` registered after the default ones
    /// (a module under test, or ad-hoc commands of a test).
    pub async fn start_with_modules(
        adjust: impl FnOnce(&mut Config),
        modules: Vec<Arc<dyn starling_module_api::Module>>,
    ) -> TestServer {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let mut config = test_config(dir.path());
        adjust(&mut config);
        Self::launch_with(dir, config, modules).await
    }

    /// Starts a server with exactly `config`, owning `dir`.
    async fn launch(dir: tempfile::TempDir, config: Config) -> TestServer {
        Self::launch_with(dir, config, Vec::new()).await
    }

    async fn launch_with(
        dir: tempfile::TempDir,
        config: Config,
        modules: Vec<Arc<dyn starling_module_api::Module>>,
    ) -> TestServer {
        let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
        let running = match starling::server::start_with_modules(&config, modules).await {
            Ok(r) => r,
            Err(e) => panic!("test server failed to start: {e}"),
        };
        TestServer {
            starttls_addr: running.starttls_addrs.first().copied().unwrap_or(any),
            direct_tls_addr: running.direct_tls_addrs.first().copied().unwrap_or(any),
            http_addr: running.http_addrs.first().copied(),
            domain: config
                .hosts
                .first()
                .map(|h| h.domain.clone())
                .unwrap_or_else(|| "localhost".to_owned()),
            config,
            running: Some(running),
            dir,
        }
    }

    /// Stops the server gracefully (streams get `<system-shutdown/>`, the store is closed) and
    /// starts a new one with the same configuration on the same data directory. Listeners are
    /// bound anew (port 0), so the addresses change; every client must connect again.
    pub async fn restart(mut self) -> TestServer {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
        let config = self.config.clone();
        Self::launch(self.dir, config).await
    }

    fn running(&self) -> &RunningServer {
        match &self.running {
            Some(r) => r,
            None => panic!("the test server was stopped"),
        }
    }

    /// A default server with these users (on the first host), all with `password`.
    pub async fn with_users(users: &[&str], password: &str) -> TestServer {
        let server = TestServer::start().await;
        for u in users {
            server.add_user(u, password).await;
        }
        server
    }

    /// Logs `user@<domain>` in over STARTTLS with SCRAM-SHA-256 and binds `resource`; panics
    /// (failing the test) if any step fails.
    pub async fn login(&self, user: &str, password: &str, resource: &str) -> Client {
        match Client::login(
            self.starttls_addr,
            Security::StartTls,
            &self.domain,
            user,
            password,
            Some(resource),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => panic!("{user} cannot log in: {e}"),
        }
    }

    /// [`login`](Self::login), then initial presence (RFC 6121 §4.2), and the echo of that
    /// presence to the session itself is awaited: the session is available once this returns.
    pub async fn online(&self, user: &str, password: &str, resource: &str) -> Client {
        let mut c = self.login(user, password, resource).await;
        let me = format!("{user}@{}/{resource}", self.domain);
        if let Err(e) = c.send_xml("<presence/>").await {
            panic!("{me} cannot send presence: {e}");
        }
        if let Err(e) = c
            .expect(&format!("<presence from='{me}' to='{me}'/>"))
            .await
        {
            panic!("{me} did not get its own presence: {e}");
        }
        c
    }

    /// Creates `local@<domain>` (the first host) with `password`.
    pub async fn add_user(&self, local: &str, password: &str) {
        self.add_user_at(local, &self.domain, password).await;
    }

    /// Creates `local@domain` with `password`.
    pub async fn add_user_at(&self, local: &str, domain: &str, password: &str) {
        let store = self.running().storage().stores().accounts;
        if let Err(e) = starling_accounts::create_account(
            store.as_ref(),
            local,
            domain,
            password,
            self.config.auth.scram_iterations,
        )
        .await
        {
            panic!("cannot create {local}: {e}");
        }
    }

    /// Opens an XEP-0114 component stream to `domain` on the first component listener; returns
    /// the client and the server's stream id (XEP-0114 §3). Panics if the listener refuses.
    pub async fn open_component(&self, domain: &str) -> (Client, String) {
        let addr = self.server().component_addrs[0];
        let mut c = match Client::connect(addr).await {
            Ok(c) => c,
            Err(e) => panic!("cannot reach the component listener: {e}"),
        };
        let header = format!(
            "<stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
        );
        if let Err(e) = c.send_raw(header.as_bytes()).await {
            panic!("cannot open a component stream: {e}");
        }
        c.reset_decoder();
        let id = match c.recv().await {
            Ok(crate::Frame::Header(h)) => h.id.clone().unwrap_or_default(),
            other => panic!("expected the server's stream header, got {other:?}"),
        };
        // XEP-0114 §3: the handshake is computed from it.
        assert!(!id.is_empty(), "the server's header carries an id");
        (c, id)
    }

    /// A component at `domain`, authenticated with `secret` (XEP-0114 §3 handshake).
    pub async fn component(&self, domain: &str, secret: &str) -> Client {
        let (mut c, id) = self.open_component(domain).await;
        let handshake = format!(
            "<handshake xmlns='jabber:component:accept'>{}</handshake>",
            component_digest(&id, secret)
        );
        if let Err(e) = c.send_xml(&handshake).await {
            panic!("cannot send the handshake: {e}");
        }
        if let Err(e) = c
            .expect("<handshake xmlns='jabber:component:accept'/>")
            .await
        {
            panic!("the component at {domain} was not accepted: {e}");
        }
        c
    }

    /// Stores mutual `both` subscriptions between `a` and `b` (on the first host) directly, as
    /// if both had completed RFC 6121 §3's handshake.
    pub async fn befriend(&self, a: &str, b: &str) {
        let rosters = &self.router().context().stores.rosters;
        for (user, contact) in [(a, b), (b, a)] {
            let item = starling_storage::RosterItem {
                subscription: starling_storage::Subscription::Both,
                ..starling_storage::RosterItem::new(format!("{contact}@{}", self.domain))
            };
            if let Err(e) = rosters.put_item(user, &self.domain, &item).await {
                panic!("cannot befriend {user} and {contact}: {e}");
            }
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.running().router
    }

    /// The running server, for reloads and inspection.
    pub fn server(&self) -> &RunningServer {
        self.running()
    }

    /// Where the self-signed certificate of the first host was written.
    pub fn certificate_pem_path(&self) -> PathBuf {
        self.dir
            .path()
            .join("certs")
            .join(format!("{}.crt", self.domain))
    }

    /// The DER of the certificate served for the first host.
    pub fn certificate_der(&self) -> Vec<u8> {
        match self.running().tls.leaf_certificate(&self.domain) {
            Some(c) => c.as_ref().to_vec(),
            None => panic!("no certificate for {}", self.domain),
        }
    }

    /// Shuts down gracefully (streams get `<system-shutdown/>`).
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
    }

    /// Shuts down but keeps the data directory, so a new server can start on it.
    pub async fn stop_keep_data(mut self) -> tempfile::TempDir {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await;
        }
        self.dir
    }
}

/// The settings [`TestServer::start`] describes, on `data_dir`.
fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    let any: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 0));
    config.c2s.listen = vec![any];
    config.c2s.direct_tls_listen = vec![any];
    config.http.listen = vec![any];
    config.c2s.rate = 0;
    config.archive.enabled = false;
    config
}

/// XEP-0114 §3: the handshake's value, hex SHA-1 of the stream id and the shared secret.
pub fn component_digest(id: &str, secret: &str) -> String {
    use sha1::Digest as _;
    sha1::Sha1::digest(format!("{id}{secret}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
