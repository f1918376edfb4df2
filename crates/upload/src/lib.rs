//! HTTP File Upload (XEP-0363): a slot service at `upload.<host>` and the HTTP routes that
//! store and serve the files.
//!
//! - [`Upload`] is a module: it registers each of its domains as a component domain and
//!   answers there disco#info (identity `store/file`, the feature, the `max-file-size` form of
//!   XEP-0363 §3), pings and slot requests (§4): a local account (of a host that is not
//!   anonymous) asks for a slot naming a file name, a size and maybe a content type, and gets a
//!   PUT URL and a GET URL, `{base}/upload/{slot}/{file name}` on the `[http] public_url`.
//! - The PUT URL is signed ([`sign`]): `?e=<expiry>&s=<HMAC>` over the slot, the file name,
//!   the size, the content type and the expiry, with a key derived from the server's secret.
//!   [`Upload::routes`] is the `axum::Router` the server merges into its HTTP listener's:
//!   `PUT` stores the body (exactly the announced size, streamed to a temporary file, then
//!   renamed into `<dir>/<slot>/<file name>`, never over another), `GET`/`HEAD` serve it with
//!   range requests, and every answer carries CORS headers for browser clients.
//! - Each slot is a row of the [`UploadStore`](starling_storage::UploadStore): whose it is
//!   (the per-user quota is the sum of the owner's slots, reserved atomically), when it was
//!   made, whether its PUT completed. [`Upload::run_expiry`] deletes files older than the
//!   configured days, and slots never uploaded, file first, then the row. When an account is
//!   deleted its files go too ([`Event::AccountDeleted`](starling_module_api::Event)).
//!
//! # Hazards
//!
//! * Paths on disk are built only from a slot id of exactly [`names::SLOT_ID_LEN`] URL-safe
//!   base64 characters and a file name [`names::sanitize_filename`] leaves unchanged, checked
//!   again on every request: nothing from a URL is joined to the directory otherwise.
//! * Files are served from the server's origin: anything a browser could render as a page or
//!   run (HTML, XML, SVG, scripts) is served as `application/octet-stream` and as an
//!   attachment, with `X-Content-Type-Options: nosniff` and a `Content-Security-Policy` that
//!   allows nothing (see [`names::served`]).
//! * The routes are merged after the listener's own body limit and request timeout layers, so
//!   neither applies to them: a PUT reads at most the slot's size and waits at most
//!   [`PUT_IDLE_TIMEOUT`] for each piece of the body.

// Stanza errors are this crate's refusals, returned on the rare path of a request.
#![allow(clippy::result_large_err)]

mod http;
pub mod names;
mod service;
pub mod sign;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use starling_storage::UploadStore;
use tokio_util::sync::CancellationToken;

use crate::sign::Signer;

/// `urn:xmpp:http:upload:0` (XEP-0363 §3).
pub const NS_UPLOAD: &str = "urn:xmpp:http:upload:0";

/// How long a PUT URL is valid (XEP-0363 §7 recommends a short validity).
pub const PUT_LIFETIME: Duration = Duration::from_secs(300);

/// How long a PUT may wait for the next piece of its body.
pub const PUT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often expired files are looked for.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(600);

/// A slot never uploaded is deleted this long after its PUT URL expired (an upload that
/// started in time may still be running until then).
pub const PENDING_GRACE: Duration = Duration::from_secs(3600);

/// How the service is set up.
#[derive(Clone, Debug)]
pub struct UploadOptions {
    /// The service's domains (`upload.example.org`), each a component domain.
    pub domains: Vec<String>,
    /// Largest file in bytes (advertised in disco; larger requests get `file-too-large`).
    pub max_file_size: u64,
    /// Bytes one user's files may take together (beyond: `resource-constraint`).
    pub quota_per_user: u64,
    /// How long a file is kept; `None`: for ever.
    pub expire_after: Option<Duration>,
    /// Where files are stored (`<data_dir>/upload`).
    pub dir: PathBuf,
    /// The key that signs PUT URLs.
    pub key: [u8; 32],
    /// Virtual hosts whose accounts may not upload (anonymous hosts).
    pub refused_hosts: Vec<String>,
}

/// The upload service: a module, and the HTTP routes of its files.
pub struct Upload {
    options: UploadOptions,
    signer: Signer,
    /// The base of every URL, without a trailing `/` (`[http] public_url`, or the listener's
    /// address), set once the listener is bound.
    base_url: OnceLock<String>,
    /// Bytes stored by completed PUTs since start (`starling_upload_bytes_total`).
    stored_bytes: AtomicU64,
}

impl Upload {
    pub fn new(options: UploadOptions) -> Arc<Upload> {
        Arc::new(Upload {
            signer: Signer::new(options.key),
            options,
            base_url: OnceLock::new(),
            stored_bytes: AtomicU64::new(0),
        })
    }

    /// Sets the base of the URLs handed out (`https://chat.example.org`), once; a trailing `/`
    /// is dropped. Slot requests before are refused with `<internal-server-error/>`.
    pub fn set_base_url(&self, url: &str) {
        let _ = self.base_url.set(url.trim_end_matches('/').to_owned());
    }

    /// Bytes stored by completed uploads since start.
    pub fn stored_bytes(&self) -> u64 {
        self.stored_bytes.load(Ordering::Relaxed)
    }

    pub fn options(&self) -> &UploadOptions {
        &self.options
    }

    /// The HTTP routes (`PUT`, `GET`, `HEAD`, `OPTIONS` on `/upload/{slot}/{file name}`), to
    /// merge into the listener's router.
    pub fn routes(self: &Arc<Self>, store: Arc<dyn UploadStore>) -> axum::Router {
        http::routes(self.clone(), store)
    }

    /// Deletes expired files now (see [`Upload::run_expiry`]); returns how many slots went.
    pub async fn expire(&self, store: &dyn UploadStore, now: i64) -> usize {
        let completed_before = self
            .options
            .expire_after
            .map(|d| now.saturating_sub(secs(d)));
        let pending_before = now.saturating_sub(secs(PUT_LIFETIME + PENDING_GRACE));
        let mut removed = 0;
        loop {
            let batch = match store.expired(completed_before, pending_before, 100).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "listing expired uploads failed");
                    return removed;
                }
            };
            let n = batch.len();
            for slot in batch {
                if !self.delete_slot(store, &slot.id).await {
                    // Try again at the next sweep rather than loop on it.
                    return removed;
                }
                removed += 1;
            }
            if n < 100 {
                break;
            }
        }
        self.clean_temporary(now).await;
        removed
    }

    /// Deletes expired files every [`EXPIRY_INTERVAL`] until `shutdown`.
    pub async fn run_expiry(
        self: Arc<Self>,
        store: Arc<dyn UploadStore>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let n = self.expire(&*store, unix_now()).await;
                    if n > 0 {
                        tracing::info!(slots = n, "expired uploads deleted");
                    }
                }
            }
        }
    }

    /// Deletes a slot's file and then its row; false when the file could not be deleted.
    pub(crate) async fn delete_slot(&self, store: &dyn UploadStore, id: &str) -> bool {
        if names::is_slot_id(id) {
            match tokio::fs::remove_dir_all(self.options.dir.join(id)).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(slot = id, error = %e, "cannot delete an uploaded file");
                    return false;
                }
            }
        }
        if let Err(e) = store.delete(id).await {
            tracing::warn!(slot = id, error = %e, "cannot delete an upload slot");
            return false;
        }
        true
    }

    /// Temporary files of uploads that never finished (the server stopped meanwhile), older
    /// than the longest an upload may take.
    async fn clean_temporary(&self, now: i64) {
        let tmp = self.options.dir.join(http::TMP_DIR);
        let Ok(mut entries) = tokio::fs::read_dir(&tmp).await else {
            return;
        };
        let limit = secs(PUT_LIFETIME + PENDING_GRACE);
        while let Ok(Some(entry)) = entries.next_entry().await {
            let old = match entry.metadata().await.and_then(|m| m.modified()) {
                Ok(t) => now.saturating_sub(unix(t)) > limit,
                Err(_) => false,
            };
            if old {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(secs).unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    unix(SystemTime::now())
}
