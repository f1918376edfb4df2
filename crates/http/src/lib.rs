//! The HTTP listener: one axum router on every `[http] listen` address.
//!
//! Today it serves what load balancers and supervisors probe:
//!
//! * `GET /health`: `200 ok` whenever the process runs and answers (liveness). It looks at
//!   nothing else, so a slow database never gets a live server restarted.
//! * `GET /ready`: `200 ready` when the server's [`Readiness`] check passes (the server asks its
//!   storage a cheap query and knows its listeners are up), otherwise `503` with a one-line
//!   reason. A check that takes longer than [`HttpSettings::ready_timeout`] is not ready.
//! * `GET /.well-known/host-meta` and `/.well-known/host-meta.json`: XEP-0156 ([`hostmeta`]),
//!   when the server passes them to [`router_with`].
//! * `GET /web` and `/web/dist/…`: the Converse.js web client page ([`web`]), when enabled.
//! * `GET /metrics`: the server's metrics in Prometheus text format (version 0.0.4), as its
//!   [`MetricsSource`] renders them; only when the server gives one (`[http] metrics`, on by
//!   default), else `404`. The metrics are listed in `docs/metrics.md`.
//! * anything else: `404` (a method other than GET or HEAD on those paths: `405`).
//!
//! * `/xmpp-websocket`: XMPP over WebSocket (RFC 7395, [`websocket`]), when the server adds
//!   [`websocket::routes`].
//!
//! * `/http-bind`: XMPP over BOSH (XEP-0124, XEP-0206, [`bosh`]), when the server adds
//!   [`bosh::routes`]; `POST` with a body limit of its own (the largest stanza and some slack),
//!   `OPTIONS` for the CORS preflight.
//!
//! Upload (XEP-0363) will be a route of this same listener.
//!
//! # Limits
//!
//! * A request whose body is larger than [`HttpSettings::max_body_bytes`] is refused with `413`
//!   before any of it is read when it declares its length, and cut off there otherwise.
//! * A request not answered within [`HttpSettings::request_timeout`] gets `408`.
//! * Paths are matched as sent, never mapped to files: `/../etc/passwd` and `/%2e%2e/` are
//!   unknown paths (`404`).
//!
//! * A client has [`ListenerLimits::header_timeout`] to send a request's headers (and to
//!   complete the TLS handshake); at most [`ListenerLimits::max_connections`] connections are
//!   served at once, the others closed at accept.
//!
//! # Hazards
//!
//! * Plain HTTP on `[http] listen` (default `127.0.0.1:5280`): keep it on loopback or behind a
//!   reverse proxy; `[http] tls_listen` serves HTTPS with the hosts' certificates.

pub mod hostmeta;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub mod bosh;
pub mod websocket;

/// Why the HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("web.converse_dir {}: {reason}", dir.display())]
    WebClient { dir: PathBuf, reason: String },
}

/// Whether the server can serve clients now, asked by `GET /ready`.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when ready; otherwise why not, in one line (it becomes the 503 body).
    async fn check(&self) -> Result<(), String>;
}

/// What `GET /metrics` serves.
pub trait MetricsSource: Send + Sync + 'static {
    /// Every metric, in the Prometheus text exposition format (version 0.0.4).
    fn render(&self) -> String;
}

/// The `Content-Type` of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Limits of the HTTP listener. Not configurable yet: the defaults suit health probes, and the
/// web transports will bring the settings they need.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest request body accepted (`413` beyond). Default: 64 KiB.
    pub max_body_bytes: usize,
    /// Longest time to answer a request (`408` after). Default: 30 s.
    pub request_timeout: Duration,
    /// Longest time the readiness check may take before `/ready` says `503`. Default: 5 s.
    pub ready_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
struct AppState {
    readiness: Arc<dyn Readiness>,
    ready_timeout: Duration,
    metrics: Option<Arc<dyn MetricsSource>>,
}

/// The router every HTTP listener serves; `/metrics` only with a `metrics` source.
pub fn router(
    readiness: Arc<dyn Readiness>,
    metrics: Option<Arc<dyn MetricsSource>>,
    settings: &HttpSettings,
) -> Router {
    router_with(readiness, metrics, settings, Router::new())
}

/// [`router`] with more `routes` (host-meta, the web page, WebSocket: see [`hostmeta::routes`],
/// [`web::routes`], [`websocket::routes`]), under the same limits. `routes` must have no
/// fallback of its own.
pub fn router_with(
    readiness: Arc<dyn Readiness>,
    metrics: Option<Arc<dyn MetricsSource>>,
    settings: &HttpSettings,
    routes: Router,
) -> Router {
    let serve_metrics = metrics.is_some();
    let state = AppState {
        readiness,
        ready_timeout: settings.ready_timeout,
        metrics,
    };
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready));
    if serve_metrics {
        app = app.route("/metrics", get(metrics_text));
    }
    app.with_state(state)
        .merge(routes)
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(state): State<AppState>) -> (StatusCode, String) {
    match tokio::time::timeout(state.ready_timeout, state.readiness.check()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready".to_owned()),
        Ok(Err(reason)) => {
            // One line, whatever the check said.
            let reason = reason.replace(['\r', '\n'], " ");
            tracing::debug!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}"),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: no answer within {} s",
                state.ready_timeout.as_secs_f32()
            ),
        ),
    }
}

async fn metrics_text(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match state.metrics {
        Some(m) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], m.render()).into_response(),
        None => not_found().await.into_response(),
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found")
}

/// How a request's connection came: read by the routes (the WebSocket endpoint trusts a TLS
/// connection as encrypted).
#[derive(Clone, Copy, Debug)]
pub struct ConnectionInfo {
    /// The connection speaks TLS (an `[http] tls_listen` address).
    pub tls: bool,
}

/// Limits of each connection to the listener.
#[derive(Clone, Copy, Debug)]
pub struct ListenerLimits {
    /// Connections served at once (HTTP requests in progress and idle keep-alive ones; a
    /// connection upgraded to WebSocket leaves this count for the c2s limits). Beyond: closed at
    /// accept.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and a TLS handshake to complete).
    pub header_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// How long requests in progress may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A bound HTTP listener, not yet serving.
pub struct HttpListener {
    listener: TcpListener,
    local: SocketAddr,
    /// TLS with the hosts' certificates (`[http] tls_listen`), or plain HTTP.
    tls: Option<Arc<starling_net::TlsManager>>,
}

impl HttpListener {
    /// Binds `addr` for plain HTTP (port 0: an ephemeral port; see
    /// [`HttpListener::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> Result<HttpListener, HttpError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(HttpListener {
            listener,
            local,
            tls: None,
        })
    }

    /// Binds `addr` for HTTPS: each connection's certificate is chosen by SNI among the hosts'
    /// (the first host's without SNI), and a reload of `tls` applies to the next handshake.
    pub async fn bind_tls(
        addr: SocketAddr,
        tls: Arc<starling_net::TlsManager>,
    ) -> Result<HttpListener, HttpError> {
        let mut listener = Self::bind(addr).await?;
        listener.tls = Some(tls);
        Ok(listener)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves `app` until `shutdown` is cancelled; then requests in progress have
    /// [`SHUTDOWN_GRACE`] to finish (idle keep-alive connections are closed at once).
    ///
    /// Each connection is HTTP/1.1 on hyper with upgrades (WebSocket), a header read timeout,
    /// and the [`ConnectionInfo`] and peer address (`axum::extract::ConnectInfo`) in every
    /// request's extensions.
    pub async fn serve(self, app: Router, shutdown: CancellationToken, limits: ListenerLimits) {
        let local = self.local;
        let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
        let connections = tokio_util::task::TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or the like: wait a little rather than spin.
                    tracing::warn!(%local, error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                tracing::debug!(%peer, limit = limits.max_connections, "HTTP connection refused: at the limit");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let app = app.clone();
            let tls = self.tls.clone();
            let shutdown = shutdown.clone();
            connections.spawn(async move {
                let _permit = permit;
                match tls {
                    None => {
                        let info = ConnectionInfo { tls: false };
                        serve_connection(tcp, peer, info, app, shutdown, limits).await;
                    }
                    Some(tls) => {
                        let handshake = tls.accept_direct_tls(tcp);
                        match tokio::time::timeout(limits.header_timeout, handshake).await {
                            Ok(Ok(mut stream))
                                if starling_net::is_acme_validation(stream.get_ref().1) =>
                            {
                                // An ACME CA checking a TLS-ALPN-01 validation certificate:
                                // the handshake was all (RFC 8737 §4); not an HTTP client.
                                tracing::debug!(%peer, "ACME TLS-ALPN-01 validation handshake answered; closing");
                                let close = tokio::io::AsyncWriteExt::shutdown(&mut stream);
                                let _ = tokio::time::timeout(limits.header_timeout, close).await;
                            }
                            Ok(Ok(stream)) => {
                                let info = ConnectionInfo { tls: true };
                                serve_connection(stream, peer, info, app, shutdown, limits).await;
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "HTTPS handshake failed");
                            }
                            Err(_) => tracing::debug!(%peer, "HTTPS handshake timed out"),
                        }
                    }
                }
            });
        }
        connections.close();
        connections.wait().await;
    }
}

/// Serves one connection's requests until it closes, or `shutdown` (then what is in progress
/// finishes within [`SHUTDOWN_GRACE`]).
async fn serve_connection<S>(
    io: S,
    peer: SocketAddr,
    info: ConnectionInfo,
    app: Router,
    shutdown: CancellationToken,
    limits: ListenerLimits,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let service = hyper::service::service_fn(
        move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            request.extensions_mut().insert(info);
            app.clone().oneshot(request)
        },
    );
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, connection.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}
