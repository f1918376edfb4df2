//! The server's metrics, in one place: their names, their help texts, and the handles the code
//! counts with.
//!
//! Counting goes through the [`metrics`] facade. The binary installs the Prometheus recorder
//! (`starling::metrics`, on the HTTP listener's `/metrics`) when the server starts, before it
//! accepts a connection; until then, and for good when none is installed (`[http] metrics =
//! false`, no HTTP listener, unit tests), every handle here is a no-op costing one branch.
//!
//! # Cost on the hot paths
//!
//! A stanza is counted once in and once out, and its routing is timed once. None of it looks a
//! metric up by name: the handles are registered once, the first time they are used (statics
//! below), and counting is then an atomic add on a counter the recorder shares. Routing is only
//! timed while a recorder is installed ([`enabled`]): without one the clock is not read.
//!
//! # Hazard
//!
//! A handle is bound to the recorder installed when it is first used. A process that counts
//! before installing one (a test that starts a server without metrics, then one with them)
//! keeps no-op handles; the server installs the recorder before anything counts.
//!
//! Every metric is listed, with its type, labels and meaning, in `docs/metrics.md`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram};

/// `starling_connections_open{transport, tls}` (gauge).
pub const CONNECTIONS_OPEN: &str = "starling_connections_open";
/// `starling_sessions_bound` (gauge).
pub const SESSIONS_BOUND: &str = "starling_sessions_bound";
/// `starling_stanzas_in_total{kind}` (counter).
pub const STANZAS_IN: &str = "starling_stanzas_in_total";
/// `starling_stanzas_out_total{kind}` (counter).
pub const STANZAS_OUT: &str = "starling_stanzas_out_total";
/// `starling_route_latency_seconds` (histogram).
pub const ROUTE_LATENCY: &str = "starling_route_latency_seconds";
/// `starling_sasl_successes_total{mechanism}` (counter).
pub const SASL_SUCCESSES: &str = "starling_sasl_successes_total";
/// `starling_sasl_failures_total{mechanism}` (counter).
pub const SASL_FAILURES: &str = "starling_sasl_failures_total";
/// `starling_sm_resumptions_total` (counter).
pub const SM_RESUMPTIONS: &str = "starling_sm_resumptions_total";
/// `starling_sm_timeouts_total` (counter).
pub const SM_TIMEOUTS: &str = "starling_sm_timeouts_total";
/// `starling_offline_writes_total` (counter).
pub const OFFLINE_WRITES: &str = "starling_offline_writes_total";
/// `starling_mam_writes_total{archive}` (counter).
pub const MAM_WRITES: &str = "starling_mam_writes_total";
/// `starling_session_buffer_bytes` (gauge).
pub const SESSION_BUFFER_BYTES: &str = "starling_session_buffer_bytes";
/// `starling_upload_bytes_total` (counter; counted by XEP-0363 upload).
pub const UPLOAD_BYTES: &str = "starling_upload_bytes_total";

/// The histogram buckets of [`ROUTE_LATENCY`], in seconds: routing in memory takes microseconds,
/// a hook that writes to storage (offline, archive) milliseconds.
pub const ROUTE_LATENCY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Set once a recorder is installed ([`installed`]).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether a recorder was installed (then routing is timed).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Called by whoever installed the global recorder, right after: gives every metric its help
/// text, registers every labelled series (so that Prometheus sees zeros, not gaps) and turns
/// routing timing on.
pub fn installed() {
    describe();
    LazyLock::force(&CONNECTIONS);
    LazyLock::force(&STANZAS_IN_BY_KIND);
    LazyLock::force(&STANZAS_OUT_BY_KIND);
    LazyLock::force(&ROUTE_LATENCY_HISTOGRAM);
    LazyLock::force(&SM);
    LazyLock::force(&OFFLINE);
    LazyLock::force(&MAM);
    LazyLock::force(&SCRAPED);
    metrics::counter!(UPLOAD_BYTES).absolute(0);
    ENABLED.store(true, Ordering::Relaxed);
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Client connections open, by transport (tcp, websocket, bosh) and whether TLS is established"
    );
    describe_gauge!(
        SESSIONS_BOUND,
        "Client sessions with a bound resource (including detached ones awaiting XEP-0198 resumption)"
    );
    describe_counter!(
        STANZAS_IN,
        "Stanzas received from clients, by kind (message, presence, iq)"
    );
    describe_counter!(
        STANZAS_OUT,
        "Stanzas written to clients, by kind (message, presence, iq)"
    );
    describe_histogram!(
        ROUTE_LATENCY,
        "Time the router takes to route one stanza from a client, hooks and storage writes included, in seconds"
    );
    describe_counter!(
        SASL_SUCCESSES,
        "Successful SASL authentications (legacy SASL, SASL2 and FAST), by mechanism"
    );
    describe_counter!(
        SASL_FAILURES,
        "SASL failures sent to clients, by mechanism (none: before any mechanism was chosen, unsupported: one the server does not offer)"
    );
    describe_counter!(
        SM_RESUMPTIONS,
        "XEP-0198 sessions resumed on a new connection"
    );
    describe_counter!(
        SM_TIMEOUTS,
        "XEP-0198 detached sessions that ended because their client did not resume in time"
    );
    describe_counter!(
        OFFLINE_WRITES,
        "Messages stored for offline delivery (XEP-0160)"
    );
    describe_counter!(
        MAM_WRITES,
        "Messages written to archives (XEP-0313), by archive (user, room)"
    );
    describe_gauge!(
        SESSION_BUFFER_BYTES,
        "Bytes client connections hold in buffers: partial input in their parsers and their output buffers' capacity"
    );
    describe_counter!(
        UPLOAD_BYTES,
        "Bytes of files received through HTTP file upload (XEP-0363)"
    );
}

// ----- Connections -----

/// How a client connection carries its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// RFC 6120 over TCP (STARTTLS or direct TLS).
    Tcp,
    /// RFC 7395 WebSocket.
    WebSocket,
    /// XEP-0206 BOSH.
    Bosh,
}

impl Transport {
    const ALL: [Transport; 3] = [Transport::Tcp, Transport::WebSocket, Transport::Bosh];

    /// The `transport` label.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "websocket",
            Transport::Bosh => "bosh",
        }
    }
}

/// One gauge per transport, without and with TLS.
static CONNECTIONS: LazyLock<[[Gauge; 2]; 3]> = LazyLock::new(|| {
    Transport::ALL.map(|t| {
        [false, true].map(|tls| {
            metrics::gauge!(CONNECTIONS_OPEN, "transport" => t.label(), "tls" => if tls { "true" } else { "false" })
        })
    })
});

fn connections(transport: Transport, tls: bool) -> &'static Gauge {
    &CONNECTIONS[transport as usize][usize::from(tls)]
}

/// One open client connection in [`CONNECTIONS_OPEN`], for as long as this lives.
#[derive(Debug)]
pub struct ConnectionGauge {
    transport: Transport,
    tls: bool,
}

impl ConnectionGauge {
    /// Counts a connection that opened (`tls`: TLS is already established).
    pub fn open(transport: Transport, tls: bool) -> Self {
        connections(transport, tls).increment(1.0);
        ConnectionGauge { transport, tls }
    }

    /// TLS is now established on it (STARTTLS, or a direct TLS handshake that completed).
    pub fn secured(&mut self) {
        if !self.tls {
            connections(self.transport, false).decrement(1.0);
            connections(self.transport, true).increment(1.0);
            self.tls = true;
        }
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        connections(self.transport, self.tls).decrement(1.0);
    }
}

// ----- Stanzas -----

/// A counter per stanza kind.
struct ByKind {
    message: Counter,
    presence: Counter,
    iq: Counter,
}

impl ByKind {
    fn new(name: &'static str) -> Self {
        ByKind {
            message: metrics::counter!(name, "kind" => "message"),
            presence: metrics::counter!(name, "kind" => "presence"),
            iq: metrics::counter!(name, "kind" => "iq"),
        }
    }

    #[inline]
    fn count(&self, element_name: &str) {
        match element_name {
            "message" => self.message.increment(1),
            "presence" => self.presence.increment(1),
            "iq" => self.iq.increment(1),
            _ => {}
        }
    }
}

static STANZAS_IN_BY_KIND: LazyLock<ByKind> = LazyLock::new(|| ByKind::new(STANZAS_IN));
static STANZAS_OUT_BY_KIND: LazyLock<ByKind> = LazyLock::new(|| ByKind::new(STANZAS_OUT));

/// A stanza named `element_name` (`message`, `presence`, `iq`; anything else is not counted)
/// arrived from a client.
#[inline]
pub fn stanza_in(element_name: &str) {
    STANZAS_IN_BY_KIND.count(element_name);
}

/// A stanza named `element_name` was written to a client.
#[inline]
pub fn stanza_out(element_name: &str) {
    STANZAS_OUT_BY_KIND.count(element_name);
}

// ----- Routing -----

static ROUTE_LATENCY_HISTOGRAM: LazyLock<Histogram> =
    LazyLock::new(|| metrics::histogram!(ROUTE_LATENCY));

/// When routing a stanza began: `None` (the clock not read) without a recorder.
#[inline]
pub fn route_started() -> Option<Instant> {
    enabled().then(Instant::now)
}

/// Routing that began at `started` ([`route_started`]) is done.
#[inline]
pub fn route_done(started: Option<Instant>) {
    if let Some(t) = started {
        ROUTE_LATENCY_HISTOGRAM.record(t.elapsed());
    }
}

// ----- Authentication -----

/// A SASL authentication succeeded with `mechanism` (its name as the server spells it).
pub fn sasl_success(mechanism: &'static str) {
    metrics::counter!(SASL_SUCCESSES, "mechanism" => mechanism).increment(1);
}

/// A SASL failure was sent for an attempt with `mechanism` (its name as the server spells it,
/// [`NO_MECHANISM`] or [`UNSUPPORTED_MECHANISM`]).
pub fn sasl_failure(mechanism: &'static str) {
    metrics::counter!(SASL_FAILURES, "mechanism" => mechanism).increment(1);
}

/// The mechanism label of a failure before any mechanism was chosen.
pub const NO_MECHANISM: &str = "none";

/// The mechanism label of a mechanism the server does not implement or offer (never the name
/// the client sent: a client cannot create series at will).
pub const UNSUPPORTED_MECHANISM: &str = "unsupported";

// ----- Stream management -----

struct Sm {
    resumptions: Counter,
    timeouts: Counter,
}

static SM: LazyLock<Sm> = LazyLock::new(|| Sm {
    resumptions: metrics::counter!(SM_RESUMPTIONS),
    timeouts: metrics::counter!(SM_TIMEOUTS),
});

/// A XEP-0198 session was resumed on a new connection.
pub fn sm_resumed() {
    SM.resumptions.increment(1);
}

/// A detached XEP-0198 session's resumption timeout passed.
pub fn sm_timed_out() {
    SM.timeouts.increment(1);
}

// ----- Storage -----

static OFFLINE: LazyLock<Counter> = LazyLock::new(|| metrics::counter!(OFFLINE_WRITES));

/// A message was stored for offline delivery.
pub fn offline_written() {
    OFFLINE.increment(1);
}

/// Which archive a write went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archive {
    /// An account's (XEP-0313).
    User,
    /// A room's (XEP-0313 on a MUC service).
    Room,
}

static MAM: LazyLock<[Counter; 2]> = LazyLock::new(|| {
    [
        metrics::counter!(MAM_WRITES, "archive" => "user"),
        metrics::counter!(MAM_WRITES, "archive" => "room"),
    ]
});

/// `n` messages were written to an archive of kind `archive`.
pub fn mam_written(archive: Archive, n: u64) {
    MAM[archive as usize].increment(n);
}

// ----- Read when scraped -----

struct Scraped {
    sessions: Gauge,
    buffers: Gauge,
}

static SCRAPED: LazyLock<Scraped> = LazyLock::new(|| Scraped {
    sessions: metrics::gauge!(SESSIONS_BOUND),
    buffers: metrics::gauge!(SESSION_BUFFER_BYTES),
});

/// Sets the gauges that are read from the server when `/metrics` is asked for rather than kept
/// up to date on every change: sessions bound and bytes held in session buffers.
pub fn set_scraped(sessions_bound: usize, buffer_bytes: usize) {
    SCRAPED.sessions.set(sessions_bound as f64);
    SCRAPED.buffers.set(buffer_bytes as f64);
}
