//! The HTTP routes built from configuration: XEP-0156 host-meta (always) and the `[web]` page
//! (when enabled), on the listener's public base URL.

use starling_config::{Config, RegistrationMode};
use starling_http::hostmeta::{self, HostMeta, Transports};
use starling_http::web::{self, WebClient, WebClientSettings};

use crate::ServerError;

/// The web transports served, hence advertised: WebSocket (RFC 7395) and BOSH (XEP-0206).
pub(crate) const TRANSPORTS: Transports = Transports {
    websocket: true,
    bosh: true,
};

/// `[http] public_url`, or the scheme and first bound address (the real port when the
/// configuration asked for port 0), e.g. `http://127.0.0.1:5280`.
pub(crate) fn base_url(config: &Config, first_bound: Option<String>) -> Option<String> {
    config.http.public_url.clone().or(first_bound)
}

/// The routes beside `/health` and `/ready`.
pub(crate) fn routes(
    config: &Config,
    first_bound: Option<String>,
) -> Result<starling_http::Router, ServerError> {
    let Some(base) = base_url(config, first_bound) else {
        return Ok(starling_http::Router::new());
    };
    let mut routes = hostmeta::routes(HostMeta::new(&base, TRANSPORTS));
    if config.web.enabled {
        let client = WebClient::new(&WebClientSettings {
            websocket_url: hostmeta::websocket_url(&base),
            base_url: base,
            domain: config
                .hosts
                .first()
                .map(|h| h.domain.clone())
                .unwrap_or_default(),
            converse_url: config.web.converse_url.clone(),
            converse_dir: config.web.converse_dir.clone(),
            allow_registration: config.registration.mode == RegistrationMode::Open,
        })?;
        routes = routes.merge(web::routes(client));
    }
    Ok(routes)
}
