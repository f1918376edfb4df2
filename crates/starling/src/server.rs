//! Starting and stopping the server: storage, TLS, router and modules, listeners.
//!
//! [`start`] binds every listener before returning, so callers (the binary, tests on port 0) know
//! the real addresses; [`RunningServer::shutdown`] closes every stream with `<system-shutdown/>`
//! and waits for the sessions to finish.
//!
//! The HTTP listener (`[http] listen`, crate `starling-http`) is bound with the others; its
//! `/ready` is [`ServerReadiness`]: ready once `start` has bound every listener, and while the
//! storage answers a cheap query; its `/metrics` is [`crate::metrics::ServerMetrics`], whose
//! recorder is installed before anything is counted (first thing in `start`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use starling_c2s::{C2sSettings, C2sShared, ListenerKind, ThrottleSettings, handle_connection};
use starling_config::Config;
use starling_module_api::SessionRegistry;
use starling_net::{HostTls, TlsManager};
use starling_router::{LocalRegistry, Router};
use starling_storage::StorageError;
use starling_storage_sqlite::SqliteStorage;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the database {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: StorageError,
    },
    #[error("TLS: {0}")]
    Tls(#[from] starling_net::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] starling_http::HttpError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Router(#[from] starling_router::RouterError),
    #[error(transparent)]
    Secret(#[from] starling_accounts::fast::SecretError),
    #[cfg(unix)]
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A started server.
pub struct RunningServer {
    /// Bound STARTTLS listener addresses, in configuration order.
    pub starttls_addrs: Vec<SocketAddr>,
    /// Bound direct TLS listener addresses.
    pub direct_tls_addrs: Vec<SocketAddr>,
    /// Bound XEP-0114 component listener addresses.
    pub component_addrs: Vec<SocketAddr>,
    /// Bound s2s listener addresses: `[s2s] listen` then `[s2s] direct_tls_listen`.
    pub s2s_addrs: Vec<SocketAddr>,
    /// The federation service, when `[s2s]` has a listener.
    pub s2s: Option<starling_s2s::S2s>,
    /// Bound HTTP listener addresses: `[http] listen` then `[http] tls_listen`, in configuration
    /// order.
    pub http_addrs: Vec<SocketAddr>,
    pub tls: Arc<TlsManager>,
    /// The ACME service, when `[acme]` is enabled.
    pub acme: Option<Arc<starling_acme::Acme>>,
    pub router: Arc<Router>,
    upload: Option<Arc<starling_upload::Upload>>,
    c2s: Arc<C2sShared>,
    storage: SqliteStorage,
    #[cfg(unix)]
    control: crate::control::ControlSocket,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// The file under the data directory holding the XEP-0185 dialback secret when `[s2s]
/// dialback_secret` is not set (so that keys survive restarts and `check-federation` makes the
/// keys the running server verifies).
pub const DIALBACK_SECRET_FILE: &str = "s2s/dialback.secret";

/// The federation service a configuration describes (not yet attached to a router).
pub fn s2s_service(
    config: &Config,
    tls: &Arc<TlsManager>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) -> Result<starling_s2s::S2s, ServerError> {
    let c = &config.s2s;
    let trust = starling_s2s::Trust::load(true, c.ca_file.as_deref())
        .map_err(|e| ServerError::Internal(format!("[s2s] ca_file: {e}")))?;
    let secret = match &c.dialback_secret {
        Some(s) => s.0.clone(),
        None => dialback_secret(&config.data_dir)?,
    };
    let settings = starling_s2s::S2sSettings {
        hosts: c.hosts.iter().cloned().collect(),
        dialback_secret: secret,
        max_stanza_size: c.max_stanza_size,
        queue_len: c.max_queued_stanzas,
        connect_timeout: c.connect_timeout,
        idle_timeout: c.idle_timeout,
        require_tls: c.require_tls,
        dialback: c.dialback,
        max_connections: c.max_connections,
        max_connections_per_ip: c.max_connections_per_ip,
    };
    Ok(starling_s2s::S2s::new(
        settings,
        Arc::clone(tls),
        trust,
        shutdown,
        tracker,
    ))
}

/// The dialback secret kept under the data directory, made at the first start (mode 0600).
fn dialback_secret(data_dir: &std::path::Path) -> Result<String, ServerError> {
    let path = data_dir.join(DIALBACK_SECRET_FILE);
    let io = |e: std::io::Error| ServerError::Internal(format!("{}: {e}", path.display()));
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 16 => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let secret = format!(
        "{}{}",
        starling_module_api::random_id(),
        starling_module_api::random_id()
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(io)?;
    Ok(secret)
}

/// The file under the data directory holding the server's secret (32 bytes, mode 0600).
pub const SERVER_SECRET_FILE: &str = "server-secret";

/// The c2s settings a configuration gives.
pub fn c2s_settings(config: &Config) -> C2sSettings {
    let c = &config.c2s;
    C2sSettings {
        require_encryption: c.require_encryption,
        allow_plain: config.auth.allow_plain,
        max_stanza_size: c.max_stanza_size,
        preauth_max_stanza_size: c.preauth_max_stanza_size,
        preauth_max_elements: c.preauth_max_elements,
        max_elements: c.max_elements,
        max_attributes_per_element: c.max_attributes_per_element,
        max_attributes: c.max_attributes,
        max_namespace_declarations: c.max_namespace_declarations,
        queue_len: c.max_queued_stanzas,
        queue_bytes: c.max_queued_bytes,
        max_resources: c.max_resources,
        connection_limits: starling_c2s::connections::ConnectionLimits {
            per_address: c.max_connections_per_ip,
            total: c.max_connections,
        },
        auth_timeout: c.auth_timeout,
        rate: c.rate,
        burst: c.burst,
        keepalive_interval: c.keepalive_interval,
        idle_timeout: c.idle_timeout,
        ping_timeout: c.ping_timeout,
        scram_iterations: config.auth.scram_iterations,
        throttle: throttle_settings(&config.auth),
        fast_token_lifetime: config.auth.fast_token_lifetime,
        sm: starling_c2s::SmSettings {
            resume_timeout: config.stream_management.resume_timeout,
            max_unacked: config.stream_management.max_unacked,
            request_after: config.stream_management.request_after,
            ..starling_c2s::SmSettings::default()
        },
        registration: registration_policy(&config.registration),
        scram_hashes: starling_sasl::ScramHash::ALL
            .into_iter()
            .filter(|h| config.auth.scram_hashes.iter().any(|n| n == h.name()))
            .collect(),
        registrations_per_ip: config.registration.max_per_ip,
        registration_window: config.registration.ip_window,
        anonymous_hosts: config
            .hosts
            .iter()
            .filter(|h| h.anonymous)
            .map(|h| h.domain.clone())
            .collect(),
        anonymous_logins_per_ip: config.auth.anonymous_logins_per_ip,
        ..C2sSettings::default()
    }
}

/// Who may register in-band, from `[registration]`.
pub fn registration_policy(
    r: &starling_config::RegistrationConfig,
) -> starling_accounts::registration::Policy {
    use starling_config::RegistrationMode as M;
    starling_accounts::registration::Policy {
        open: r.mode == M::Open,
        invites: r.mode != M::Off,
        min_password_length: r.min_password_length,
    }
}

/// The login throttle's settings from `[auth]`.
pub fn throttle_settings(auth: &starling_config::AuthConfig) -> ThrottleSettings {
    ThrottleSettings {
        failures_before_delay: auth.failures_before_delay,
        max_delay: auth.max_delay,
        account_lock_after: auth.account_lock_after,
        ip_lock_after: auth.ip_lock_after,
        lock_window: auth.lock_window,
        lock_duration: auth.lock_duration,
        ..ThrottleSettings::default()
    }
}

/// Deletes expired XEP-0484 FAST tokens hourly (a login checks expiry itself; this only keeps
/// the table small).
async fn sweep_fast_tokens(
    store: Arc<dyn starling_storage::FastTokenStore>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match store
            .delete_expired(starling_accounts::fast::unix_now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(n, "expired FAST tokens deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting expired FAST tokens failed"),
        }
    }
}

/// Opens the configured database (creating it and running migrations).
pub async fn open_storage(config: &Config) -> Result<SqliteStorage, ServerError> {
    let path = config.database_path();
    SqliteStorage::open(&path)
        .await
        .map_err(|source| ServerError::Storage {
            path: path.display().to_string(),
            source,
        })
}

/// Deletes the invitations that expired (they can no longer be used; `starling invite list`
/// would only show them as expired). A failure is logged: it only leaves dead rows.
async fn purge_expired_invites(storage: &SqliteStorage) {
    match storage
        .stores()
        .invites
        .purge_expired(starling_accounts::unix_now())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "deleted expired invitations"),
        Err(e) => tracing::warn!(error = %e, "cannot delete expired invitations"),
    }
}

/// Deletes what a crash left of anonymous accounts (RFC 4505 logins; normally deleted when
/// their connection ends), before any client can log in. An account with a password on an
/// anonymous host is no such leftover (the host was a normal one once): kept, and named in a
/// warning, since nobody can log in to it there. A failure is logged: the accounts stay until
/// the next start.
async fn purge_anonymous_accounts(storage: &SqliteStorage, config: &Config) {
    let store = storage.stores().accounts;
    for host in config.hosts.iter().filter(|h| h.anonymous) {
        match starling_accounts::anonymous::purge(store.as_ref(), &host.domain).await {
            Ok(p) => {
                if p.deleted > 0 {
                    tracing::info!(domain = %host.domain, count = p.deleted, "deleted leftover anonymous accounts");
                }
                if !p.kept.is_empty() {
                    tracing::warn!(domain = %host.domain, accounts = %p.kept.join(", "),
                        "accounts with a password on an anonymous host: kept, but they cannot log in there");
                }
            }
            Err(e) => {
                tracing::warn!(domain = %host.domain, error = %e, "cannot delete leftover anonymous accounts");
            }
        }
    }
}

/// Starts the server described by `config` (already validated).
pub async fn start(config: &Config) -> Result<RunningServer, ServerError> {
    start_with_modules(config, Vec::new()).await
}

/// [`start`], with `extra` modules registered after the default ones (tests of a module, or of
/// an API for modules such as ad-hoc commands).
pub async fn start_with_modules(
    config: &Config,
    extra: Vec<Arc<dyn starling_module_api::Module>>,
) -> Result<RunningServer, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    // Before anything counts: a metric's handle binds to the recorder there is when first used.
    let metrics = if config.http.metrics && !config.http.listen.is_empty() {
        crate::metrics::install()
    } else {
        None
    };
    let storage = open_storage(config).await?;
    purge_expired_invites(&storage).await;
    purge_anonymous_accounts(&storage, config).await;
    let hosts: Vec<HostTls> = config
        .hosts
        .iter()
        .map(|h| HostTls {
            domain: h.domain.clone(),
            certificate: h.certificate.clone(),
            key: h.key.clone(),
        })
        .collect();
    let data_dir = config.data_dir.clone();
    // Loading may generate a key pair: keep it off the async workers.
    let tls = tokio::task::spawn_blocking(move || TlsManager::load(&hosts, &data_dir))
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))??;
    let tls = Arc::new(tls);
    let domains: Vec<String> = config.hosts.iter().map(|h| h.domain.clone()).collect();
    // XEP-0484 FAST tokens, XEP-0386 stable resources and upload URLs are derived from it: kept in the
    // data directory (mode 0600), never in the database (see `starling_accounts::fast`).
    let secret_path = config.data_dir.join(SERVER_SECRET_FILE);
    let secret = tokio::task::spawn_blocking(move || {
        starling_accounts::fast::ServerSecret::load_or_create(&secret_path)
    })
    .await
    .map_err(|e| ServerError::Internal(e.to_string()))??;
    let sessions = Arc::new(LocalRegistry::new());
    let registry: Arc<dyn SessionRegistry> = sessions.clone();
    let mut modules = starling_modules::default_modules(&starling_modules::ModuleOptions {
        offline_max_messages: config.offline.max_messages,
        pep: config
            .pep
            .enabled
            .then(|| starling_modules::pubsub::Limits {
                max_nodes: config.pep.max_nodes,
                max_items: config.pep.max_items,
                max_item_bytes: usize::try_from(config.pep.max_item_size).unwrap_or(usize::MAX),
            }),
        pubsub: config
            .pubsub
            .enabled
            .then(|| starling_modules::pubsub::Limits {
                max_nodes: config.pubsub.max_nodes,
                max_items: config.pubsub.max_items,
                max_item_bytes: usize::try_from(config.pubsub.max_item_size).unwrap_or(usize::MAX),
            }),
        roster: starling_modules::roster::RosterLimits {
            max_items: config.roster.max_items,
            max_pending_requests: config.roster.max_pending_requests,
        },
        archive: config
            .archive
            .enabled
            .then(|| starling_modules::mam::MamOptions {
                retention: (config.archive.retention_days > 0)
                    .then(|| Duration::from_secs(config.archive.retention_days * 86_400)),
                max_messages: config.archive.max_messages,
                page: starling_module_api::mam::query::PageLimits {
                    default: 50.min(config.archive.max_page_size),
                    max: config.archive.max_page_size,
                },
            }),
        push: config
            .push
            .enabled
            .then_some(starling_modules::push::PushOptions {
                include_body: config.push.include_body,
                include_sender: config.push.include_sender,
                min_interval: config.push.min_interval,
                timeout: config.push.timeout,
                max_registrations: config.push.max_registrations,
            }),
        adhoc: starling_modules::adhoc::AdhocOptions {
            // Validated by the configuration (bare JIDs at a host).
            admins: config
                .admins
                .iter()
                .filter_map(|a| starling_proto::BareJid::new(a).ok())
                .collect(),
            ..starling_modules::adhoc::AdhocOptions::default()
        },
        scram_iterations: config.auth.scram_iterations,
        invites: starling_modules::invites::InviteOptions {
            registration: config.registration.mode != starling_config::RegistrationMode::Off,
            user_invites: config.registration.user_invites,
            lifetime: config.registration.invite_lifetime,
        },
        anonymous_hosts: config
            .hosts
            .iter()
            .filter(|h| h.anonymous)
            .map(|h| starling_modules::anonymous::AnonymousHost {
                domain: h.domain.clone(),
                federation: h.anonymous_federation,
            })
            .collect(),
    });
    if config.muc.enabled {
        modules.push(starling_muc::Muc::new(muc_options(config)));
    }
    if let Some(options) = external_services_options(config) {
        modules.push(Arc::new(
            starling_modules::external_services::ExternalServices::new(options),
        ));
    }
    // XEP-0363 HTTP upload: a module, and routes of the HTTP listener.
    let upload = config
        .upload
        .active(&config.http)
        .then(|| starling_upload::Upload::new(upload_options(config, &secret)));
    if let Some(u) = &upload {
        modules.push(u.clone());
    }
    modules.extend(extra);
    let router = Router::new(domains, registry, storage.stores(), modules)?;
    let shared = Arc::new(
        C2sShared::new(
            c2s_settings(config),
            tls.clone(),
            router.clone(),
            storage.stores(),
        )
        .with_secret(secret),
    );
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(sweep_fast_tokens(storage.stores().fast, shutdown.clone()));
    let mut starttls_addrs = Vec::new();
    let mut direct_tls_addrs = Vec::new();
    let listeners = config
        .c2s
        .listen
        .iter()
        .map(|a| (*a, ListenerKind::StartTls))
        .chain(
            config
                .c2s
                .direct_tls_listen
                .iter()
                .map(|a| (*a, ListenerKind::DirectTls)),
        );
    for (addr, kind) in listeners {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServerError::Listen { addr, source })?;
        match kind {
            ListenerKind::StartTls => starttls_addrs.push(local),
            ListenerKind::DirectTls => direct_tls_addrs.push(local),
        }
        tracing::info!(
            "listening for clients on {local} ({})",
            match kind {
                ListenerKind::StartTls => "STARTTLS",
                ListenerKind::DirectTls => "direct TLS",
            }
        );
        let (shared, stop) = (shared.clone(), shutdown.clone());
        tracker.spawn(accept_loop(
            listener,
            shutdown.clone(),
            tracker.clone(),
            move |tcp, peer| handle_connection(tcp, peer, kind, shared.clone(), stop.clone()),
        ));
    }
    // XEP-0114 external components, when configured.
    let mut component_addrs = Vec::new();
    let component_settings = Arc::new(starling_component::ComponentSettings {
        secrets: config
            .components
            .secrets
            .iter()
            .map(|(d, s)| (d.clone(), s.0.clone()))
            .collect(),
        max_stanza_size: config.c2s.max_stanza_size,
        ..starling_component::ComponentSettings::default()
    });
    for &addr in &config.components.listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServerError::Listen { addr, source })?;
        component_addrs.push(local);
        tracing::info!("listening for components on {local} (XEP-0114)");
        let (settings, router, stop) =
            (component_settings.clone(), router.clone(), shutdown.clone());
        tracker.spawn(accept_loop(
            listener,
            shutdown.clone(),
            tracker.clone(),
            move |tcp, peer| {
                starling_component::handle_component_connection(
                    tcp,
                    peer,
                    settings.clone(),
                    router.clone(),
                    stop.clone(),
                )
            },
        ));
    }
    // Federation (RFC 6120 server-to-server), when a listener is configured.
    let mut s2s_addrs = Vec::new();
    let s2s = if config.s2s.enabled() {
        let s2s = s2s_service(config, &tls, shutdown.clone(), tracker.clone())?;
        s2s.start(router.context().clone());
        let listeners = config
            .s2s
            .listen
            .iter()
            .map(|a| (*a, false))
            .chain(config.s2s.direct_tls_listen.iter().map(|a| (*a, true)));
        for (addr, direct_tls) in listeners {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Listen { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| ServerError::Listen { addr, source })?;
            s2s_addrs.push(local);
            tracing::info!(
                "listening for servers on {local} ({})",
                if direct_tls { "direct TLS" } else { "STARTTLS" }
            );
            let service = s2s.clone();
            tracker.spawn(accept_loop(
                listener,
                shutdown.clone(),
                tracker.clone(),
                move |tcp, peer| {
                    let service = service.clone();
                    async move { service.handle_inbound(tcp, peer, direct_tls).await }
                },
            ));
        }
        Some(s2s)
    } else {
        None
    };
    // The HTTP listener: health, readiness and metrics for now.
    let listening = Arc::new(AtomicBool::new(false));
    let readiness = Arc::new(ServerReadiness {
        accounts: storage.stores().accounts,
        domain: config
            .hosts
            .first()
            .map(|h| h.domain.clone())
            .unwrap_or_default(),
        listening: listening.clone(),
    });
    let metrics = metrics.map(|handle| {
        tracker.spawn(crate::metrics::upkeep(handle.clone(), shutdown.clone()));
        Arc::new(crate::metrics::ServerMetrics {
            handle,
            c2s: shared.clone(),
            sessions,
        }) as Arc<dyn starling_http::MetricsSource>
    });
    let mut http_listeners = Vec::new();
    // ACME (`[acme]`): its HTTP-01 challenge route (TLS-ALPN-01 is answered by the TLS manager
    // itself); the service starts once listeners are up.
    let acme = crate::acme::service(config, &router, &tls);
    let mut http_addrs = Vec::new();
    let plain = config.http.listen.iter().map(|a| (*a, false));
    let https = config.http.tls_listen.iter().map(|a| (*a, true));
    for (addr, with_tls) in plain.chain(https) {
        let listener = if with_tls {
            starling_http::HttpListener::bind_tls(addr, tls.clone()).await?
        } else {
            starling_http::HttpListener::bind(addr).await?
        };
        http_addrs.push(listener.local_addr());
        http_listeners.push((listener, with_tls));
    }
    // Host-meta and the web page build their URLs on the first bound address when there is
    // no public_url.
    let first_bound = http_listeners.first().map(|(l, with_tls)| {
        let scheme = if *with_tls { "https" } else { "http" };
        format!("{scheme}://{}", l.local_addr())
    });
    let routes = crate::http_routes::routes(config, first_bound.clone())?.merge(
        starling_http::websocket::routes(starling_http::websocket::WebSocketService {
            c2s: shared.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
        }),
    );
    // BOSH outside the router's limits: its requests wait up to a minute and carry stanzas.
    let app = starling_http::router_with(
        readiness,
        metrics,
        &starling_http::HttpSettings::default(),
        routes,
    )
    .merge(starling_http::bosh::routes(
        starling_http::bosh::BoshService::new(shared.clone(), shutdown.clone(), tracker.clone()),
    ));
    let mut app = app;
    if let Some(acme) = acme
        .as_ref()
        .filter(|a| a.challenge() == starling_acme::ChallengeKind::Http01)
    {
        app = app.merge(starling_acme::routes(acme.challenges()));
    }
    if let Some(u) = &upload {
        // Merged after the listener's body limit and timeout layers: the upload routes bring
        // their own (see `starling_upload`). URLs on `[http] public_url`, or the first address
        // actually bound (port 0 in tests).
        if let Some(base) = crate::http_routes::base_url(config, first_bound.clone()) {
            u.set_base_url(&base);
        }
        app = app.merge(u.routes(storage.stores().upload));
        tracker.spawn(
            u.clone()
                .run_expiry(storage.stores().upload, shutdown.clone()),
        );
    }
    for (listener, with_tls) in http_listeners {
        let local = listener.local_addr();
        let scheme = if with_tls { "HTTPS" } else { "HTTP" };
        tracing::info!("listening for {scheme} on {local}");
        tracker.spawn(listener.serve(
            app.clone(),
            shutdown.clone(),
            starling_http::ListenerLimits::default(),
        ));
    }
    // The command line's way in (`starling user kick`, `starling sessions`, …).
    #[cfg(unix)]
    let control = crate::control::ControlSocket::open(
        &config.data_dir,
        router.clone(),
        s2s.clone(),
        shutdown.clone(),
        &tracker,
    )
    .await?;
    // Every listener is bound and accepting.
    listening.store(true, Ordering::Release);
    if let Some(acme) = &acme {
        tracker.spawn(acme.clone().run(shutdown.clone()));
    }
    Ok(RunningServer {
        starttls_addrs,
        direct_tls_addrs,
        component_addrs,
        s2s_addrs,
        s2s,
        http_addrs,
        tls,
        acme,
        router,
        upload,
        c2s: shared,
        storage,
        #[cfg(unix)]
        control,
        shutdown,
        tracker,
    })
}

/// `GET /ready`: every listener bound, and the storage answering.
pub struct ServerReadiness {
    accounts: Arc<dyn starling_storage::AccountStore>,
    /// A served domain, for the storage query.
    domain: String,
    /// Set once `start` has bound every listener.
    listening: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl starling_http::Readiness for ServerReadiness {
    async fn check(&self) -> Result<(), String> {
        if !self.listening.load(Ordering::Acquire) {
            return Err("listeners not started".to_owned());
        }
        // One indexed lookup of a name no account can have (localparts are never empty).
        self.accounts
            .account_exists("", &self.domain)
            .await
            .map(|_| ())
            .map_err(|e| format!("storage: {e}"))
    }
}

/// Accepts connections until shutdown, serving each with `serve` in its own tracked task.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tracker.spawn(serve(tcp, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl RunningServer {
    /// Re-reads certificates and keys; connections keep their TLS sessions.
    pub async fn reload_tls(&self) -> Result<(), ServerError> {
        let tls = self.tls.clone();
        tokio::task::spawn_blocking(move || tls.reload())
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))??;
        Ok(())
    }

    /// Bytes the client sessions hold in buffers now (a gauge for the metrics endpoint; see
    /// [`C2sShared::buffered_bytes`]).
    pub fn session_buffer_bytes(&self) -> usize {
        self.c2s.buffered_bytes()
    }

    /// XEP-0352: stanzas held for inactive clients, and flushes of them, since start.
    pub fn csi_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.c2s.csi.held.load(Relaxed),
            self.c2s.csi.flushes.load(Relaxed),
        )
    }

    /// The HTTP upload service (XEP-0363), when it runs: its byte count, expiry on demand.
    pub fn upload(&self) -> Option<&Arc<starling_upload::Upload>> {
        self.upload.as_ref()
    }

    /// The account store, for tests and tools.
    pub fn storage(&self) -> &SqliteStorage {
        &self.storage
    }

    /// Closes every stream with `<system-shutdown/>`, waits up to `grace` for sessions to end,
    /// then closes the database.
    pub async fn shutdown(self, grace: Duration) {
        #[cfg(unix)]
        self.control.remove();
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not end within {grace:?}");
        }
        self.storage.close().await;
    }
}

/// The upload service's set-up from `[upload]`.
fn upload_options(
    config: &Config,
    secret: &starling_accounts::fast::ServerSecret,
) -> starling_upload::UploadOptions {
    let u = &config.upload;
    starling_upload::UploadOptions {
        domains: u.service_domains(&config.hosts),
        max_file_size: u.max_file_size,
        quota_per_user: u.quota_per_user,
        expire_after: (u.expire_after_days > 0)
            .then(|| Duration::from_secs(u.expire_after_days.saturating_mul(86_400))),
        dir: config.data_dir.join("upload"),
        key: secret.derive_key("starling upload url"),
        refused_hosts: config
            .hosts
            .iter()
            .filter(|h| h.anonymous)
            .map(|h| h.domain.clone())
            .collect(),
    }
}

/// The conference service's set-up from `[muc]`.
fn muc_options(config: &Config) -> starling_muc::MucOptions {
    let m = &config.muc;
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    starling_muc::MucOptions {
        domains: m.service_domains(&config.hosts),
        limits: starling_muc::Limits {
            settings: starling_muc::settings::SettingsLimits {
                max_users: clamp(m.max_occupants),
                history_length: clamp(m.history_length),
                max_history: clamp(m.max_history),
                archiving: m.archive,
            },
            max_rooms_per_user: clamp(m.max_rooms_per_user),
            room_queue: usize::try_from(m.room_queue).unwrap_or(usize::MAX),
            occupant_rate: starling_muc::Rate {
                per_second: clamp(m.occupant_rate),
                burst: clamp(m.occupant_burst),
            },
            room_rate: starling_muc::Rate {
                per_second: clamp(m.room_rate),
                burst: clamp(m.room_burst),
            },
        },
        no_create_hosts: config
            .hosts
            .iter()
            .filter(|h| h.anonymous)
            .map(|h| h.domain.clone())
            .collect(),
    }
}

/// XEP-0215 from `[external_services]`; `None` (module not run) without services.
fn external_services_options(
    config: &Config,
) -> Option<starling_modules::external_services::ExternalServicesOptions> {
    use starling_modules::external_services::{ExternalServicesOptions, Service};
    let c = &config.external_services;
    if c.services.is_empty() {
        return None;
    }
    Some(ExternalServicesOptions {
        services: c
            .services
            .iter()
            .map(|s| Service {
                kind: s.kind.as_str(),
                host: s.host.clone(),
                port: s.port,
                transport: s.transport.as_str(),
                restricted: s.restricted,
            })
            .collect(),
        turn_secret: c.turn_secret.as_ref().map(|s| s.0.clone()),
        credential_ttl: c.credential_ttl,
    })
}
