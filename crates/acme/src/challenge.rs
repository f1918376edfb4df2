//! Which challenge the CA validates ([`ChallengeKind`]), and the HTTP-01 side of it.
//!
//! HTTP-01 (RFC 8555 §8.3): `GET /.well-known/acme-challenge/{token}` answers the key
//! authorization of a pending challenge, `200` with `application/octet-stream`; any other token
//! gets `404`. The CA asks over plain HTTP on port 80 of each name being validated (following
//! redirects), so the route is merged into the HTTP listener's router and an operator who wants
//! ACME listens on port 80 (`[http] listen = ["0.0.0.0:80"]`) or forwards it there.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The challenge the CA is asked to validate (`[acme] challenge`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChallengeKind {
    /// HTTP-01 (RFC 8555 §8.3): the HTTP listener answers on port 80 of each name.
    #[default]
    Http01,
    /// TLS-ALPN-01 (RFC 8737): c2s direct TLS or the HTTPS listener answers on port 443 of each
    /// name (see [`crate::tls_alpn`]).
    TlsAlpn01,
}

impl ChallengeKind {
    /// The challenge type's name in ACME (`http-01`, `tls-alpn-01`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

impl std::fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The route's path prefix (RFC 8555 §8.3).
pub const PATH_PREFIX: &str = "/.well-known/acme-challenge/";

/// Pending HTTP-01 challenges: token → key authorization. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Challenges {
    inner: Arc<RwLock<HashMap<String, String>>>,
}

impl Challenges {
    /// Serves `key_authorization` at `token` from now on.
    pub fn insert(&self, token: &str, key_authorization: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stops serving `token`.
    pub fn remove(&self, token: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
    }

    /// The key authorization for `token`, if a challenge with it is pending.
    pub fn get(&self, token: &str) -> Option<String> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// How many challenges are pending.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// No challenge is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The challenge route, to merge into the HTTP listener's router.
pub fn routes(challenges: Challenges) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .with_state(challenges)
}

async fn answer(State(challenges): State<Challenges>, Path(token): Path<String>) -> Response {
    match challenges.get(&token) {
        Some(key_authorization) => {
            tracing::debug!(%token, "answering an ACME HTTP-01 challenge");
            (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                key_authorization,
            )
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (StatusCode, String) {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// RFC 8555 §8.3: the body is the key authorization, token "." thumbprint.
    #[tokio::test]
    async fn answers_pending_tokens_only() {
        let challenges = Challenges::default();
        let app = routes(challenges.clone());
        assert_eq!(
            get(&app, "/.well-known/acme-challenge/abc").await.0,
            StatusCode::NOT_FOUND
        );
        challenges.insert("abc", "abc.thumb");
        assert_eq!(
            get(&app, "/.well-known/acme-challenge/abc").await,
            (StatusCode::OK, "abc.thumb".to_owned())
        );
        assert_eq!(
            get(&app, "/.well-known/acme-challenge/abd").await.0,
            StatusCode::NOT_FOUND
        );
        challenges.remove("abc");
        assert_eq!(
            get(&app, "/.well-known/acme-challenge/abc").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
