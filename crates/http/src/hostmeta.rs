//! XEP-0156 §3 (HTTP lookup method): `/.well-known/host-meta` (XRD, RFC 6415 §3) and
//! `/.well-known/host-meta.json` (JRD, RFC 6415 Appendix A), listing the URLs of this server's
//! web transports with the link relations `urn:xmpp:alt-connections:websocket` (RFC 7395) and
//! `urn:xmpp:alt-connections:xbosh` (XEP-0206).
//!
//! # Procedure
//!
//! The documents are built once, from the listener's public base URL
//! (`[http] public_url`) and the [`Transports`] the server serves: the WebSocket URL is the base
//! with `http` turned into `ws` (`https` into `wss`) and `/xmpp-websocket` appended; the BOSH URL
//! is the base and `/http-bind`. A transport that is off is not listed. Both answer GET and HEAD,
//! with `Access-Control-Allow-Origin: *`, since browser clients of other origins read them
//! (RFC 6415 §3 recommends CORS on host-meta).
//!
//! # Hazards
//!
//! * The URLs are only as right as the base URL: without `public_url` it is `http://` and the
//!   first listen address, which browsers on other machines cannot reach when that is loopback or
//!   `0.0.0.0`. Behind a reverse proxy, set `public_url`.
//! * XEP-0156 §3.2: clients use this only when they cannot look up SRV records, so the
//!   documents list nothing that DNS already says (no TCP endpoints).

use axum::Router;
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE};
use axum::routing::get;

/// The link relation of RFC 7395 WebSocket endpoints (XEP-0156 §3.1).
pub const REL_WEBSOCKET: &str = "urn:xmpp:alt-connections:websocket";
/// The link relation of XEP-0206 BOSH endpoints (XEP-0156 §3.1).
pub const REL_XBOSH: &str = "urn:xmpp:alt-connections:xbosh";
/// Where the WebSocket endpoint is served (issue 17: `/xmpp-websocket`).
pub const WEBSOCKET_PATH: &str = "/xmpp-websocket";
/// Where the BOSH endpoint is served (issue 17: `/http-bind`).
pub const BOSH_PATH: &str = "/http-bind";

/// Which web transports this server serves, hence advertises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transports {
    /// RFC 7395 WebSocket at [`WEBSOCKET_PATH`] (default on).
    pub websocket: bool,
    /// XEP-0206 BOSH at [`BOSH_PATH`] (default off until it exists).
    pub bosh: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Transports {
            websocket: true,
            bosh: false,
        }
    }
}

/// The WebSocket URL under `base_url` (`http://h/p` → `ws://h/p/xmpp-websocket`, `https` →
/// `wss`). `base_url` has no trailing `/`.
pub fn websocket_url(base_url: &str) -> String {
    let rest = if let Some(rest) = base_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base_url.to_owned()
    };
    format!("{rest}{WEBSOCKET_PATH}")
}

/// The BOSH URL under `base_url`.
pub fn bosh_url(base_url: &str) -> String {
    format!("{base_url}{BOSH_PATH}")
}

/// Both host-meta documents, built once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMeta {
    /// `/.well-known/host-meta`.
    pub xrd: String,
    /// `/.well-known/host-meta.json`.
    pub jrd: String,
}

impl HostMeta {
    /// The documents for a listener reached at `base_url` (no trailing `/`) serving
    /// `transports`.
    pub fn new(base_url: &str, transports: Transports) -> HostMeta {
        let mut links: Vec<(&str, String)> = Vec::new();
        if transports.websocket {
            links.push((REL_WEBSOCKET, websocket_url(base_url)));
        }
        if transports.bosh {
            links.push((REL_XBOSH, bosh_url(base_url)));
        }
        let mut xrd = String::from(
            "<?xml version='1.0' encoding='utf-8'?>\n\
             <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n",
        );
        for (rel, href) in &links {
            xrd.push_str(&format!(
                "  <Link rel='{rel}' href='{}'/>\n",
                xml_escape(href)
            ));
        }
        xrd.push_str("</XRD>\n");
        let jrd = serde_json::json!({
            "links": links
                .iter()
                .map(|(rel, href)| serde_json::json!({ "rel": rel, "href": href }))
                .collect::<Vec<_>>(),
        })
        .to_string();
        HostMeta { xrd, jrd }
    }
}

/// Escapes text for an XML attribute value in single or double quotes.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// The two routes, for [`crate::router_with`].
pub fn routes(meta: HostMeta) -> Router {
    let HostMeta { xrd, jrd } = meta;
    Router::new()
        .route(
            "/.well-known/host-meta",
            get(move || {
                let body = xrd.clone();
                async move {
                    (
                        [
                            // RFC 6415 §3: the XRD document's media type.
                            (CONTENT_TYPE, "application/xrd+xml"),
                            (ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                        ],
                        body,
                    )
                }
            }),
        )
        .route(
            "/.well-known/host-meta.json",
            get(move || {
                let body = jrd.clone();
                async move {
                    (
                        [
                            (CONTENT_TYPE, "application/json"),
                            (ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
                        ],
                        body,
                    )
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls_follow_the_scheme() {
        assert_eq!(
            websocket_url("https://chat.example.org"),
            "wss://chat.example.org/xmpp-websocket"
        );
        assert_eq!(
            websocket_url("http://127.0.0.1:5280/x"),
            "ws://127.0.0.1:5280/x/xmpp-websocket"
        );
        assert_eq!(
            bosh_url("https://chat.example.org"),
            "https://chat.example.org/http-bind"
        );
    }

    /// XEP-0156 §3.3: the XRD and JRD forms list the same links.
    #[test]
    fn documents_list_the_enabled_transports() {
        let both = HostMeta::new(
            "https://chat.example.org",
            Transports {
                websocket: true,
                bosh: true,
            },
        );
        assert_eq!(
            both.xrd,
            "<?xml version='1.0' encoding='utf-8'?>\n\
             <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n  \
             <Link rel='urn:xmpp:alt-connections:websocket' \
             href='wss://chat.example.org/xmpp-websocket'/>\n  \
             <Link rel='urn:xmpp:alt-connections:xbosh' \
             href='https://chat.example.org/http-bind'/>\n\
             </XRD>\n"
        );
        assert_eq!(
            both.jrd,
            "{\"links\":[\
             {\"href\":\"wss://chat.example.org/xmpp-websocket\",\
             \"rel\":\"urn:xmpp:alt-connections:websocket\"},\
             {\"href\":\"https://chat.example.org/http-bind\",\
             \"rel\":\"urn:xmpp:alt-connections:xbosh\"}]}"
        );
        let none = HostMeta::new(
            "http://h",
            Transports {
                websocket: false,
                bosh: false,
            },
        );
        assert_eq!(
            none.xrd,
            "<?xml version='1.0' encoding='utf-8'?>\n\
             <XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n</XRD>\n"
        );
        assert_eq!(none.jrd, "{\"links\":[]}");
    }

    #[test]
    fn hrefs_are_escaped() {
        let meta = HostMeta::new("https://h/a'b&c<d>\"", Transports::default());
        assert!(
            meta.xrd
                .contains("href='wss://h/a&apos;b&amp;c&lt;d&gt;&quot;/xmpp-websocket'"),
            "{}",
            meta.xrd
        );
        assert_eq!(
            meta.jrd,
            "{\"links\":[{\"href\":\"wss://h/a'b&c<d>\\\"/xmpp-websocket\",\
             \"rel\":\"urn:xmpp:alt-connections:websocket\"}]}"
        );
    }
}
