//! The web client page (`[web]`): `GET /web` is an HTML page that loads Converse.js and starts it
//! set up for this server, as Prosody's `mod_conversejs` does. Converse.js itself is never part
//! of this project: the page loads it from a configured base URL (by default the project's CDN,
//! a pinned release) or from a local directory the operator filled with `npm install
//! converse.js`, served under `/web/dist/`.
//!
//! # Procedure
//!
//! 1. [`WebClient::new`] builds the page once: the Converse.js settings (`authentication:
//!    'login'`, `view_mode: 'fullscreen'`, the WebSocket URL, the first host as
//!    `default_domain`, `discover_connection_methods: false`, `assets_path` where its lazily
//!    loaded files are) are JSON-encoded into the inline script, with `<`, `>`, `&`, U+2028 and
//!    U+2029 written as `\u` escapes so that no value can end the script; values in HTML
//!    attributes and text are entity-escaped. With a local directory it resolves the directory
//!    now (`<dir>/node_modules/converse.js/dist`, else `<dir>` itself) and requires
//!    `converse.min.js` there, so a wrong path stops the start instead of serving a broken page.
//! 2. The page is sent with a Content-Security-Policy: scripts only from the Converse.js base
//!    (or this origin) and the page's one inline script, by its SHA-256 hash (CSP3
//!    §2.3.1 hash-source); no plugins, no `<base>`, no framing by other origins.
//! 3. `GET /web/dist/<path>` (local directory only; otherwise 404) serves a file of that
//!    directory. The raw path must be segments of `A–Z a–z 0–9 . _ -`, none empty or starting
//!    with `.`, at most [`MAX_SEGMENTS`] of them: no `..`, no percent-encoding (`%2e%2e`,
//!    `%u002e`), no `;` (`..;/`), no `//`. Anything else is 404, as is a path that resolves
//!    (through a symbolic link) outside the directory, or names no regular file.
//!
//! # Hazards
//!
//! * The WebSocket URL is built on the public base URL (see [`crate::hostmeta`]); without
//!   `public_url` a browser on another machine cannot reach `ws://127.0.0.1:5280`.
//! * Files are read whole into memory per request (the largest Converse.js file, a source map,
//!   is a few MiB); the request timeout and the listener's connection handling bound the rest.
//! * The CSP allows images and media from anywhere (`https:`, `data:`, `blob:`: avatars, shared
//!   files, link previews) and connections to any `https:`/`wss:` origin (HTTP upload services on
//!   other hosts): tightening those breaks Converse.js features.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{Response, StatusCode, Uri};
use axum::routing::get;
use base64::Engine as _;
use sha2::Digest as _;

use crate::HttpError;

/// Where the page is served.
pub const PAGE_PATH: &str = "/web";
/// Where a local Converse.js directory is served.
pub const DIST_PATH: &str = "/web/dist/";
/// The most path segments under [`DIST_PATH`] (Converse.js nests at most three deep).
pub const MAX_SEGMENTS: usize = 8;

/// What the page is built from.
#[derive(Clone, Debug)]
pub struct WebClientSettings {
    /// The listener's public base URL, without a trailing `/` (`[http] public_url`).
    pub base_url: String,
    /// The WebSocket URL Converse.js connects to.
    pub websocket_url: String,
    /// The domain users log in at (the first host).
    pub domain: String,
    /// Where `converse.min.js` and `converse.min.css` are, without a trailing `/`.
    pub converse_url: String,
    /// A local directory to serve Converse.js from instead (wins over `converse_url`).
    pub converse_dir: Option<PathBuf>,
    /// Whether Converse.js offers in-band registration (the server's registration is open).
    pub allow_registration: bool,
}

/// The built page and, with a local directory, where its files are.
#[derive(Debug)]
pub struct WebClient {
    page: String,
    csp: String,
    /// Canonical path of the served `dist` directory.
    dist: Option<PathBuf>,
}

impl WebClient {
    /// Builds the page (see the module docs); fails when `converse_dir` holds no Converse.js.
    pub fn new(settings: &WebClientSettings) -> Result<WebClient, HttpError> {
        let dist = match &settings.converse_dir {
            Some(dir) => Some(find_dist(dir)?),
            None => None,
        };
        // Where the browser fetches Converse.js from, and the CSP source that allows it.
        let (assets, source) = if dist.is_some() {
            // The base URL's path: the page and its files share the origin the browser used.
            (
                format!("{}{DIST_PATH}", base_path(&settings.base_url)),
                "'self'".to_owned(),
            )
        } else {
            let url = format!("{}/", settings.converse_url.trim_end_matches('/'));
            (url.clone(), url)
        };
        let options = serde_json::json!({
            "allow_registration": settings.allow_registration,
            "assets_path": assets,
            "authentication": "login",
            "default_domain": settings.domain,
            "discover_connection_methods": false,
            "domain_placeholder": settings.domain,
            "view_mode": "fullscreen",
            "websocket_url": settings.websocket_url,
        });
        let script = format!("converse.initialize({});", script_safe_json(&options));
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(script.as_bytes()));
        let ws_source = csp_source(&settings.websocket_url);
        let csp = format!(
            "default-src 'none'; \
             script-src {source} 'sha256-{hash}' 'wasm-unsafe-eval'; \
             style-src {source} 'unsafe-inline'; \
             font-src {source} data:; \
             img-src 'self' https: data: blob:; \
             media-src 'self' https: data: blob:; \
             connect-src 'self' {source}{ws_source} https: wss:; \
             worker-src {source} blob:; \
             manifest-src {source}; \
             base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'self'"
        );
        let assets_attr = html_escape(&assets);
        let page = format!(
            "<!DOCTYPE html>\n\
             <html lang=\"en\">\n\
             <head>\n\
             <meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>Chat at {domain}</title>\n\
             <link rel=\"stylesheet\" href=\"{assets_attr}converse.min.css\">\n\
             <script type=\"module\" src=\"{assets_attr}converse.min.js\"></script>\n\
             </head>\n\
             <body class=\"converse-fullscreen\">\n\
             <noscript>This chat needs JavaScript.</noscript>\n\
             <script type=\"module\">{script}</script>\n\
             </body>\n\
             </html>\n",
            domain = html_escape(&settings.domain),
        );
        Ok(WebClient { page, csp, dist })
    }

    /// The HTML page.
    pub fn page(&self) -> &str {
        &self.page
    }

    /// Its Content-Security-Policy.
    pub fn csp(&self) -> &str {
        &self.csp
    }
}

/// `<dir>/node_modules/converse.js/dist` when it has Converse.js, else `<dir>` when it has,
/// canonicalised.
fn find_dist(dir: &Path) -> Result<PathBuf, HttpError> {
    let npm = dir.join("node_modules").join("converse.js").join("dist");
    for candidate in [npm.as_path(), dir] {
        if candidate.join("converse.min.js").is_file() {
            return candidate.canonicalize().map_err(|e| HttpError::WebClient {
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            });
        }
    }
    Err(HttpError::WebClient {
        dir: dir.to_path_buf(),
        reason: "no converse.min.js there nor in node_modules/converse.js/dist \
                 (run `npm install converse.js` in it)"
            .to_owned(),
    })
}

/// The path part of a base URL (`https://h:1/p` → `/p`, `https://h` → ``).
fn base_path(base_url: &str) -> &str {
    let rest = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// ` <url>` as an extra CSP source when the URL can be one (CSP3 §2.3.1: no IPv6 literal, no
/// `;`, `,`, quote or space), else nothing.
fn csp_source(url: &str) -> String {
    if url
        .chars()
        .any(|c| matches!(c, '[' | ']' | ';' | ',' | '\'' | '"') || c.is_whitespace())
    {
        String::new()
    } else {
        format!(" {url}")
    }
}

/// JSON that is safe inside an HTML `<script>` element: `<`, `>` and `&` (which only occur in
/// strings) and the JavaScript line terminators U+2028 and U+2029 as `\u` escapes.
fn script_safe_json(value: &serde_json::Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The segments of a raw (still percent-encoded) path under [`DIST_PATH`], or `None` when it is
/// not a plain relative file path (see the module docs).
pub fn safe_segments(raw: &str) -> Option<Vec<&str>> {
    if raw.is_empty() || raw.len() > 1024 {
        return None;
    }
    let segments: Vec<&str> = raw.split('/').collect();
    if segments.len() > MAX_SEGMENTS {
        return None;
    }
    for segment in &segments {
        let plain = segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if segment.is_empty() || segment.len() > 255 || segment.starts_with('.') || !plain {
            return None;
        }
    }
    Some(segments)
}

/// The media type of a Converse.js file, by extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        Some("eot") => "application/vnd.ms-fontobject",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn not_found() -> Response<Body> {
    let mut response = Response::new(Body::from("not found"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

async fn serve_page(web: Arc<WebClient>) -> Response<Body> {
    let mut response = Response::new(Body::from(web.page.clone()));
    let headers = response.headers_mut();
    let pairs = [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in pairs {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    // Built from checked configuration values; a value that is no header value (not expected)
    // leaves the page without its policy rather than unserved.
    match axum::http::HeaderValue::from_str(&web.csp) {
        Ok(value) => {
            headers.insert(CONTENT_SECURITY_POLICY, value);
        }
        Err(_) => tracing::warn!("the web page's Content-Security-Policy is no header value"),
    }
    response
}

async fn serve_file(web: Arc<WebClient>, uri: Uri) -> Response<Body> {
    let Some(root) = &web.dist else {
        return not_found();
    };
    let Some(segments) = uri.path().strip_prefix(DIST_PATH).and_then(safe_segments) else {
        return not_found();
    };
    let mut path = root.clone();
    path.extend(&segments);
    // A symbolic link inside the directory may point anywhere: only files that resolve under
    // it are served.
    let resolved = match tokio::fs::canonicalize(&path).await {
        Ok(p) if p.starts_with(root) => p,
        _ => return not_found(),
    };
    match tokio::fs::metadata(&resolved).await {
        Ok(meta) if meta.is_file() => {}
        _ => return not_found(),
    }
    let body = match tokio::fs::read(&resolved).await {
        Ok(body) => body,
        Err(e) => {
            tracing::debug!(path = %resolved.display(), error = %e, "cannot read a web file");
            return not_found();
        }
    };
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    let pairs = [
        (CONTENT_TYPE, content_type(&resolved)),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (CACHE_CONTROL, "public, max-age=3600"),
    ];
    for (name, value) in pairs {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

/// The page's routes, for [`crate::router_with`].
pub fn routes(web: WebClient) -> Router {
    let web = Arc::new(web);
    let page = web.clone();
    Router::new()
        .route(PAGE_PATH, get(move || serve_page(page.clone())))
        .route(
            "/web/dist/{*path}",
            get(move |uri: Uri| serve_file(web.clone(), uri)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> WebClientSettings {
        WebClientSettings {
            base_url: "https://chat.example.org".into(),
            websocket_url: "wss://chat.example.org/xmpp-websocket".into(),
            domain: "example.org".into(),
            converse_url: "https://cdn.conversejs.org/14.0.0/dist".into(),
            converse_dir: None,
            allow_registration: false,
        }
    }

    #[test]
    fn the_page_loads_converse_from_the_cdn() {
        let web = WebClient::new(&settings()).unwrap();
        let script = "converse.initialize({\"allow_registration\":false,\
                      \"assets_path\":\"https://cdn.conversejs.org/14.0.0/dist/\",\
                      \"authentication\":\"login\",\"default_domain\":\"example.org\",\
                      \"discover_connection_methods\":false,\
                      \"domain_placeholder\":\"example.org\",\"view_mode\":\"fullscreen\",\
                      \"websocket_url\":\"wss://chat.example.org/xmpp-websocket\"});";
        assert_eq!(
            web.page(),
            format!(
                "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                 <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
                 <title>Chat at example.org</title>\n\
                 <link rel=\"stylesheet\" \
                 href=\"https://cdn.conversejs.org/14.0.0/dist/converse.min.css\">\n\
                 <script type=\"module\" \
                 src=\"https://cdn.conversejs.org/14.0.0/dist/converse.min.js\">\
                 </script>\n</head>\n<body class=\"converse-fullscreen\">\n\
                 <noscript>This chat needs JavaScript.</noscript>\n\
                 <script type=\"module\">{script}</script>\n</body>\n</html>\n"
            )
        );
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(script.as_bytes()));
        assert!(
            web.csp().starts_with(&format!(
                "default-src 'none'; script-src https://cdn.conversejs.org/14.0.0/dist/ \
                 'sha256-{hash}' 'wasm-unsafe-eval'; "
            )),
            "{}",
            web.csp()
        );
        assert!(web.csp().contains(
            "connect-src 'self' https://cdn.conversejs.org/14.0.0/dist/ \
             wss://chat.example.org/xmpp-websocket https: wss:;"
        ));
    }

    #[test]
    fn injected_values_cannot_leave_their_context() {
        let web = WebClient::new(&WebClientSettings {
            websocket_url: "wss://h/</script><script>alert(1)</script>\u{2028}".into(),
            domain: "<b>&\"'".into(),
            converse_url: "https://cdn/\"><x".into(),
            ..settings()
        })
        .unwrap();
        let page = web.page();
        // One script element of ours ends in the body, and one in the head.
        assert_eq!(page.matches("</script>").count(), 2, "{page}");
        assert!(page.contains(
            "\"websocket_url\":\"wss://h/\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\
             \\u003c/script\\u003e\\u2028\""
        ));
        assert!(page.contains("<title>Chat at &lt;b&gt;&amp;&quot;&#39;</title>"));
        assert!(page.contains("href=\"https://cdn/&quot;&gt;&lt;x/converse.min.css\""));
        assert!(page.contains("\"default_domain\":\"\\u003cb\\u003e\\u0026\\\"'\""));
        // A URL that is no CSP source is left out of connect-src.
        let web = WebClient::new(&WebClientSettings {
            websocket_url: "ws://[::1]:5280/xmpp-websocket".into(),
            ..settings()
        })
        .unwrap();
        assert!(!web.csp().contains("[::1]"));
    }

    #[test]
    fn paths_must_be_plain() {
        assert_eq!(
            safe_segments("locales/de-LC_MESSAGES.js"),
            Some(vec!["locales", "de-LC_MESSAGES.js"])
        );
        assert_eq!(
            safe_segments("converse.min.js"),
            Some(vec!["converse.min.js"])
        );
        for bad in [
            "",
            "..",
            "../x",
            "a/../b",
            "%2e%2e/x",
            "%2E%2E",
            "%u002e%u002e/x",
            "..;/x",
            "a;b",
            "a//b",
            "/etc/passwd",
            "a/",
            ".hidden",
            "a\\b",
            "a/b/c/d/e/f/g/h/i",
        ] {
            assert_eq!(safe_segments(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base_paths() {
        assert_eq!(base_path("https://h"), "");
        assert_eq!(base_path("https://h:8443/chat"), "/chat");
        assert_eq!(base_path("http://[::1]:5280"), "");
    }

    #[test]
    fn a_directory_without_converse_is_refused() {
        let dir = std::env::temp_dir().join(format!("starling-web-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = WebClient::new(&WebClientSettings {
            converse_dir: Some(dir.clone()),
            ..settings()
        })
        .unwrap_err();
        assert!(err.to_string().contains("npm install converse.js"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
