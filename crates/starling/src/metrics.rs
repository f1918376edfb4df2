//! The Prometheus recorder behind `GET /metrics` (`[http] metrics`, on by default).
//!
//! The recorder of the `metrics` facade is global to the process: [`install`] installs
//! `metrics-exporter-prometheus`'s once, the first time a server with metrics starts, and every
//! later server in the process (tests start many) shares it. Another recorder installed first
//! (an embedding program's) is left in place: `/metrics` is then off, with a warning.
//!
//! The exporter is used as a recorder only (no HTTP listener of its own): [`ServerMetrics`]
//! renders the text on the server's own HTTP listener, after setting the gauges that are read
//! from the server at scrape time (sessions bound, bytes in session buffers). [`upkeep`] drains
//! the histogram samples into their buckets every few seconds, so that they do not pile up
//! between scrapes (or without any).
//!
//! The metrics themselves, their names and help texts, are in `starling-metrics`;
//! `docs/metrics.md` lists them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use starling_c2s::C2sShared;
use starling_router::LocalRegistry;
use tokio_util::sync::CancellationToken;

/// The process's recorder: `None` if it could not be installed.
static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder unless this process already has one; its handle, or `None`
/// when another recorder was there first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(
                Matcher::Full(starling_metrics::ROUTE_LATENCY.to_owned()),
                starling_metrics::ROUTE_LATENCY_BUCKETS,
            );
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not built: /metrics is off");
                    return None;
                }
            };
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    starling_metrics::installed();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("another metrics recorder is installed: /metrics is off");
                    None
                }
            }
        })
        .clone()
}

/// One server's `/metrics`.
pub struct ServerMetrics {
    pub handle: PrometheusHandle,
    pub c2s: Arc<C2sShared>,
    pub sessions: Arc<LocalRegistry>,
}

impl starling_http::MetricsSource for ServerMetrics {
    fn render(&self) -> String {
        starling_metrics::set_scraped(self.sessions.bound_sessions(), self.c2s.buffered_bytes());
        self.handle.render()
    }
}

/// How often histogram samples are drained into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the recorder's upkeep until `shutdown`.
pub async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = every.tick() => handle.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}
