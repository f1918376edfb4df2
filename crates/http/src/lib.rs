//! The HTTP listener: one axum router on every `[http] listen` address.
//!
//! Today it serves what load balancers and supervisors probe:
//!
//! * `GET /health`: `200 ok` whenever the process runs and answers (liveness). It looks at
//!   nothing else, so a slow database never gets a live server restarted.
//! * `GET /ready`: `200 ready` when the server's [`Readiness`] check passes (the server asks its
//!   storage a cheap query and knows its listeners are up), otherwise `503` with a one-line
//!   reason. A check that takes longer than [`HttpSettings::ready_timeout`] is not ready.
//! * `GET /metrics`: the server's metrics in Prometheus text format (version 0.0.4), as its
//!   [`MetricsSource`] renders them; only when the server gives one (`[http] metrics`, on by
//!   default), else `404`. The metrics are listed in `docs/metrics.md`.
//! * anything else: `404` (a method other than GET or HEAD on those paths: `405`).
//!
//! WebSocket (RFC 7395), BOSH (XEP-0206) and upload (XEP-0363) will be routes of this same
//! router (issue 17).
//!
//! # Limits
//!
//! * A request whose body is larger than [`HttpSettings::max_body_bytes`] is refused with `413`
//!   before any of it is read when it declares its length, and cut off there otherwise.
//! * A request not answered within [`HttpSettings::request_timeout`] gets `408`.
//! * Paths are matched as sent, never mapped to files: `/../etc/passwd` and `/%2e%2e/` are
//!   unknown paths (`404`).
//!
//! # Hazards
//!
//! * Plain HTTP only: keep the listener on loopback or behind a reverse proxy (the default is
//!   `127.0.0.1:5280`). TLS with the c2s certificates comes with the web transports.
//! * No timeout yet on reading a request's headers (hyper needs a timer for that, which
//!   `axum::serve` does not set): a client may hold a connection open by sending nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Why the HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
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
    app.fallback(not_found)
        .with_state(state)
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

/// A bound HTTP listener, not yet serving.
pub struct HttpListener {
    listener: TcpListener,
    local: SocketAddr,
}

impl HttpListener {
    /// Binds `addr` (port 0: an ephemeral port; see [`HttpListener::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> Result<HttpListener, HttpError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        Ok(HttpListener { listener, local })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves `app` until `shutdown` is cancelled, then lets requests in progress finish
    /// (idle keep-alive connections are closed).
    pub async fn serve(self, app: Router, shutdown: CancellationToken) {
        let local = self.local;
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::warn!(%local, error = %e, "HTTP listener stopped");
        }
    }
}
