//! The HTTP side: `PUT` stores a slot's file, `GET`/`HEAD` serve it, `OPTIONS` answers CORS
//! preflights (XEP-0363 §6).

use std::path::Path as FsPath;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use futures_util::StreamExt as _;
use starling_storage::{UploadSlot, UploadStore};
use tokio::io::AsyncWriteExt as _;
use tower_http::services::ServeFile;

use crate::sign::Grant;
use crate::{PUT_IDLE_TIMEOUT, Upload, names, unix_now};

/// Where bodies are written before they are complete, under the upload directory (a name no
/// slot id can have).
pub(crate) const TMP_DIR: &str = ".tmp";

#[derive(Clone)]
struct HttpState {
    upload: Arc<Upload>,
    store: Arc<dyn UploadStore>,
}

pub(crate) fn routes(upload: Arc<Upload>, store: Arc<dyn UploadStore>) -> Router {
    Router::new()
        .route(
            "/upload/{slot}/{filename}",
            put(put_file).get(get_file).options(preflight),
        )
        .with_state(HttpState { upload, store })
        .layer(axum::middleware::map_response(cors))
}

/// Browsers upload and download from a web client's origin (XEP-0363 §6 leaves the HTTP side
/// to HTTP): every answer of these routes allows any origin; the URLs are the credentials.
async fn cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("PUT, GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Content-Length, Content-Range, Content-Disposition"),
    );
    response
}

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::ACCESS_CONTROL_MAX_AGE, "86400")],
    )
        .into_response()
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

/// The slot of a URL path, if it names a completed or pending slot with that file name:
/// `Err` is the answer (`400` for a malformed id or name, `404` for none, `500`).
async fn slot_of(state: &HttpState, slot: &str, filename: &str) -> Result<UploadSlot, Response> {
    if !names::is_slot_id(slot) || !names::is_clean_filename(filename) {
        return Err(status(StatusCode::BAD_REQUEST, "malformed upload path"));
    }
    match state.store.slot(slot).await {
        Ok(Some(s)) if s.filename == filename => Ok(s),
        Ok(_) => Err(status(StatusCode::NOT_FOUND, "not found")),
        Err(e) => {
            tracing::error!(error = %e, "reading an upload slot failed");
            Err(status(StatusCode::INTERNAL_SERVER_ERROR, "storage error"))
        }
    }
}

/// `e` and `s` of the query (`?e=<expiry>&s=<signature>`).
fn grant_params(uri: &Uri) -> Option<(i64, &str)> {
    let (mut e, mut s) = (None, None);
    for pair in uri.query()?.split('&') {
        match pair.split_once('=') {
            Some(("e", v)) => e = v.parse().ok(),
            Some(("s", v)) => s = Some(v),
            _ => {}
        }
    }
    Some((e?, s?))
}

/// XEP-0363 §6: stores the body if the URL's signature holds, it has not expired, the slot was
/// not used, the `Content-Length` is the slot's size and the `Content-Type` the one requested.
async fn put_file(
    State(state): State<HttpState>,
    Path((slot_id, filename)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let slot = match slot_of(&state, &slot_id, &filename).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if slot.completed {
        return status(StatusCode::CONFLICT, "this slot was used already");
    }
    let Some((expires, signature)) = grant_params(&uri) else {
        return status(StatusCode::FORBIDDEN, "not a signed upload URL");
    };
    let grant = Grant {
        slot: &slot.id,
        filename: &slot.filename,
        size: slot.size,
        content_type: slot.content_type.as_deref(),
        expires,
    };
    if !state.upload.signer.verify(&grant, signature) {
        return status(StatusCode::FORBIDDEN, "bad signature");
    }
    if expires < unix_now() {
        return status(StatusCode::FORBIDDEN, "this upload URL has expired");
    }
    let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return status(StatusCode::LENGTH_REQUIRED, "Content-Length is required");
    };
    if length > slot.size {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "larger than the slot's size");
    }
    if length != slot.size {
        return status(
            StatusCode::BAD_REQUEST,
            "Content-Length is not the slot's size",
        );
    }
    if let Some(wanted) = &slot.content_type {
        let given = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !given.is_some_and(|g| names::same_content_type(g, wanted)) {
            return status(
                StatusCode::BAD_REQUEST,
                "Content-Type is not the one requested",
            );
        }
    }
    let dir = &state.upload.options.dir;
    let tmp_dir = dir.join(TMP_DIR);
    if let Err(e) = tokio::fs::create_dir_all(&tmp_dir).await {
        tracing::error!(error = %e, dir = %tmp_dir.display(), "cannot create the upload directory");
        return status(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the file");
    }
    let tmp = tmp_dir.join(format!("{}.{}", slot.id, names::new_slot_id()));
    let written = receive(body, &tmp, slot.size).await;
    if let Err(r) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return r;
    }
    // The slot's directory is created exclusively: of two PUTs racing, one stores the file.
    let slot_dir = dir.join(&slot.id);
    match tokio::fs::create_dir(&slot_dir).await {
        Ok(()) => {}
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                return status(StatusCode::CONFLICT, "this slot was used already");
            }
            tracing::error!(error = %e, "cannot create an upload's directory");
            return status(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the file");
        }
    }
    let path = slot_dir.join(&slot.filename);
    if let Err(e) = tokio::fs::rename(&tmp, &path).await {
        tracing::error!(error = %e, "cannot move an upload into place");
        let _ = tokio::fs::remove_file(&tmp).await;
        let _ = tokio::fs::remove_dir_all(&slot_dir).await;
        return status(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the file");
    }
    match state.store.complete(&slot.id).await {
        Ok(true) => {
            state
                .upload
                .stored_bytes
                .fetch_add(slot.size, Ordering::Relaxed);
            tracing::debug!(slot = %slot.id, size = slot.size, "upload stored");
            status(StatusCode::CREATED, "created")
        }
        Ok(false) => {
            // Expired (and deleted) while the body was read.
            let _ = tokio::fs::remove_dir_all(&slot_dir).await;
            status(StatusCode::NOT_FOUND, "the slot expired")
        }
        Err(e) => {
            tracing::error!(error = %e, "completing an upload slot failed");
            let _ = tokio::fs::remove_dir_all(&slot_dir).await;
            status(StatusCode::INTERNAL_SERVER_ERROR, "storage error")
        }
    }
}

/// Streams `body` into a new file at `path`: exactly `size` bytes, never more held in memory
/// than one piece of the body.
async fn receive(body: Body, path: &FsPath, size: u64) -> Result<(), Response> {
    let failed = |e: std::io::Error| {
        tracing::error!(error = %e, "cannot write an upload");
        status(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the file")
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(failed)?;
    let mut stream = body.into_data_stream();
    let mut received: u64 = 0;
    loop {
        let chunk = match tokio::time::timeout(PUT_IDLE_TIMEOUT, stream.next()).await {
            Err(_) => return Err(status(StatusCode::REQUEST_TIMEOUT, "the body stalled")),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(status(StatusCode::BAD_REQUEST, "the body was cut")),
            Ok(Some(Ok(chunk))) => chunk,
        };
        received = received.saturating_add(chunk.len() as u64);
        if received > size {
            return Err(status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "larger than the slot's size",
            ));
        }
        file.write_all(&chunk).await.map_err(failed)?;
    }
    if received != size {
        return Err(status(
            StatusCode::BAD_REQUEST,
            "shorter than the slot's size",
        ));
    }
    file.flush().await.map_err(failed)?;
    file.sync_all().await.map_err(failed)?;
    Ok(())
}

/// Serves a stored file (ranges and conditional requests by `ServeFile`), with headers that
/// keep a browser from running it in the server's origin.
async fn get_file(
    State(state): State<HttpState>,
    Path((slot_id, filename)): Path<(String, String)>,
    request: Request,
) -> Response {
    let slot = match slot_of(&state, &slot_id, &filename).await {
        Ok(s) if s.completed => s,
        Ok(_) => return status(StatusCode::NOT_FOUND, "not found"),
        Err(r) => return r,
    };
    let path = state.upload.options.dir.join(&slot.id).join(&slot.filename);
    let served = names::served(slot.content_type.as_deref());
    let mut response = match ServeFile::new(&path).try_call(request).await {
        Ok(r) => r.map(Body::new),
        Err(e) => {
            tracing::error!(error = %e, "cannot serve an upload");
            return status(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
        }
    };
    let ok = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if ok {
        if let Ok(v) = HeaderValue::from_str(&served.content_type) {
            h.insert(header::CONTENT_TYPE, v);
        }
        if let Ok(v) = HeaderValue::from_str(&disposition(served.inline, &slot.filename)) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    response
}

/// `Content-Disposition` (RFC 6266) with the file name in ASCII and, as `filename*`, in UTF-8
/// (RFC 8187).
fn disposition(inline: bool, filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        names::encode_segment(filename)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions() {
        assert_eq!(
            disposition(false, "a b.txt"),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            disposition(true, "写\"x.jpg"),
            "inline; filename=\"__x.jpg\"; filename*=UTF-8''%E5%86%99%22x.jpg"
        );
    }

    #[test]
    fn query() {
        let uri: Uri = "/upload/a/b?e=12&s=xyz".parse().unwrap_or_default();
        assert_eq!(grant_params(&uri), Some((12, "xyz")));
        let uri: Uri = "/upload/a/b?s=xyz".parse().unwrap_or_default();
        assert_eq!(grant_params(&uri), None);
    }
}
