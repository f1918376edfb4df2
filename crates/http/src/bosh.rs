//! `/http-bind`: XMPP over BOSH (XEP-0124, XEP-0206).
//!
//! A BOSH session is a task that owns one end of an in-memory pipe; the other end is a client
//! connection of the c2s crate ([`starling_c2s::handle_websocket`]) speaking the WebSocket
//! framing's records ([`starling_c2s::framing`]). So the stream, SASL, binding, stream
//! management and every limit are exactly those of TCP and WebSocket clients; this module only
//! translates between HTTP requests and that stream:
//!
//! * The session creation request (no `sid`) writes `<open/>` into the pipe; the answer carries
//!   the session's attributes (XEP-0124 §7.2, XEP-0206 §4), the stream id as `authid`, and the
//!   stream features.
//! * Each request's payloads are written into the pipe, one element each with its namespace, in
//!   `rid` order (§8, §14.2); `xmpp:restart='true'` writes a new `<open/>` (XEP-0206 §5);
//!   `type='terminate'` writes `<close/>` (§13).
//! * What the connection writes is held until a request can carry it: at most `hold` requests
//!   wait, each at most `wait` seconds (§8, §11); a request beyond `hold` releases the oldest.
//! * `rid`s are checked against a window of `requests` (§14.2); a `rid` answered already gets
//!   the same answer again (§14.3); anything else, or an unknown `sid`, is `item-not-found`.
//! * No request for `inactivity` seconds (or a shorter or longer `pause`, up to `maxpause`,
//!   §10): the session is dropped as a lost connection. The c2s session then waits for
//!   resumption like any other (XEP-0198), on a new BOSH session or any transport.
//! * The stream closed by the server (a stream error, a kick, shutdown): the next answer is
//!   `<body type='terminate' condition='remote-stream-error'>` with the `<stream:error/>`
//!   (XEP-0124 §17.2, XEP-0206 §6).
//!
//! Terminal conditions are reported in HTTP 200 answers (§17.2); a session created without
//! `ver` (a legacy client, §17.1) gets the HTTP error codes instead for `bad-request` (400),
//! `policy-violation` (403) and `item-not-found` (404).
//!
//! Not supported: multiple streams per session (§16: no `stream` attribute is offered), `ack`
//! (§9: none is offered), key sequencing (§15: the `sid` is unguessable and TLS is the
//! protection), compression (`accept`).
//!
//! # Security and addresses
//!
//! As for WebSocket ([`crate::websocket`]): a session created over TLS or from a loopback peer
//! is secure; the client's address (`X-Forwarded-For` from a loopback proxy) counts for the
//! per-address connection limits. Requests of a session created over TLS are refused over
//! plain HTTP (§19.1).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use starling_c2s::C2sShared;
use starling_c2s::framing::split_record;
use starling_proto::element::Ns;
use starling_proto::{Element, ns};
use starling_stream::{Decoder, Frame, Limits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The path of the BOSH endpoint (XEP-0156 advertises it).
pub const PATH: &str = "/http-bind";

/// XEP-0124's namespace: the `<body/>` wrapper.
pub const HTTPBIND: &str = "http://jabber.org/protocol/httpbind";
/// XEP-0206's namespace: `xmpp:version`, `xmpp:restart`.
pub const XBOSH: &str = "urn:xmpp:xbosh";

/// The highest BOSH version served (XEP-0124 §7.2 `ver`).
const VERSION: (u32, u32) = (1, 11);
/// Bytes a request may hold beyond the largest stanza: the `<body/>` wrapper, and several small
/// payloads. The connection's parser enforces the stanza limit on each payload itself.
const BODY_SLACK: usize = 16 * 1024;
/// The pipe between a session and its connection, each way.
const PIPE_BYTES: usize = 64 * 1024;
/// Bytes read from the pipe at a time (at least).
const READ_CHUNK: usize = 4096;
/// Read buffer capacity an idle session keeps.
const KEEP_CAPACITY: usize = 16 * 1024;
/// Requests queued for a session and not yet taken by it; beyond: `policy-violation`.
const QUEUE: usize = 16;
/// Longest time the session creation waits for the stream's opening and features.
const CREATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time a terminated session waits for its connection to finish.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest `rid` (XEP-0124 §14.1: 2^53 - 1).
const MAX_RID: u64 = (1 << 53) - 1;
/// `Access-Control-Max-Age` of the CORS preflight answer.
const CORS_MAX_AGE: &str = "86400";

/// The session attributes the server offers (XEP-0124 §7.2).
#[derive(Clone, Debug)]
pub struct BoshSettings {
    /// Longest `wait` granted (a client asking more gets this). Default: 60 s.
    pub max_wait: Duration,
    /// `inactivity`: longest time without a request before the session is dropped. Default:
    /// 60 s.
    pub inactivity: Duration,
    /// `polling`: shortest interval between empty requests. Default: 2 s (advertised, not
    /// enforced).
    pub polling: Duration,
    /// Most requests held at once (`hold`; `requests` is one more). Default: 1.
    pub max_hold: u32,
    /// `maxpause`: longest pause a client may ask (§10). Default: 120 s.
    pub max_pause: Duration,
    /// Output bytes a session may keep for a client that does not come to fetch them; beyond,
    /// the session is dropped as a lost connection. Default: 1 MiB.
    pub max_pending_bytes: usize,
}

impl Default for BoshSettings {
    fn default() -> Self {
        BoshSettings {
            max_wait: Duration::from_secs(60),
            inactivity: Duration::from_secs(60),
            polling: Duration::from_secs(2),
            max_hold: 1,
            max_pause: Duration::from_secs(120),
            max_pending_bytes: 1024 * 1024,
        }
    }
}

/// What the BOSH endpoint needs from the server.
#[derive(Clone)]
pub struct BoshService {
    c2s: Arc<C2sShared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    settings: Arc<BoshSettings>,
    sessions: Arc<Sessions>,
}

impl BoshService {
    /// `c2s`: the state client connections share; `shutdown`: cancelled at shutdown (the
    /// sessions end with `<system-shutdown/>`); `tracker`: where the server waits for the
    /// sessions and their connections before it exits.
    pub fn new(c2s: Arc<C2sShared>, shutdown: CancellationToken, tracker: TaskTracker) -> Self {
        BoshService {
            c2s,
            shutdown,
            tracker,
            settings: Arc::new(BoshSettings::default()),
            sessions: Arc::new(Sessions::default()),
        }
    }

    pub fn with_settings(mut self, settings: BoshSettings) -> Self {
        self.settings = Arc::new(settings);
        self
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }
}

/// The open sessions by `sid`.
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, mpsc::Sender<Incoming>>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Sender<Incoming>>> {
        // A panic while holding this lock leaves the map consistent (one insert or remove).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The routes of the BOSH endpoint: `POST` and the CORS preflight `OPTIONS`.
pub fn routes(service: BoshService) -> Router {
    let limit = service.c2s.settings.max_stanza_size + BODY_SLACK;
    Router::new()
        .route(PATH, post(request).options(preflight))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(service)
}

/// CORS headers on every answer: browsers on other origins may use the endpoint (a session is
/// reached by its unguessable `sid`, never by cookies).
fn cors(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(CORS_MAX_AGE),
    );
}

async fn preflight() -> Response {
    let mut response = StatusCode::OK.into_response();
    cors(response.headers_mut());
    response
}

/// One answer to a request.
#[derive(Clone, Debug)]
struct Reply {
    status: StatusCode,
    content_type: HeaderValue,
    body: String,
}

impl Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.content_type);
        cors(headers);
        response
    }
}

const DEFAULT_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("text/xml; charset=utf-8");

/// A terminal binding condition (XEP-0124 §17.2), in HTTP 200; for a legacy client (§17.1) the
/// HTTP error code of the conditions that have one.
fn terminal(condition: &str, legacy: bool, content_type: &HeaderValue) -> Reply {
    let status = match (legacy, condition) {
        (true, "bad-request") => StatusCode::BAD_REQUEST,
        (true, "policy-violation") => StatusCode::FORBIDDEN,
        (true, "item-not-found") => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    Reply {
        status,
        content_type: content_type.clone(),
        body: format!("<body xmlns='{HTTPBIND}' type='terminate' condition='{condition}'/>"),
    }
}

/// A request for a session.
struct Incoming {
    body: Element,
    rid: u64,
    tls: bool,
    reply: oneshot::Sender<Reply>,
}

async fn request(
    State(service): State<BoshService>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    connection: Option<Extension<crate::ConnectionInfo>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let tls = connection.is_some_and(|Extension(c)| c.tls);
    let limit = service.c2s.settings.max_stanza_size + BODY_SLACK;
    let Some((body, rid)) = parse_body(&bytes, limit) else {
        return terminal("bad-request", false, &DEFAULT_CONTENT_TYPE).into_response();
    };
    let Some(sid) = body.attr("sid") else {
        let secure = tls || peer.ip().is_loopback();
        let client = crate::websocket::client_address(peer, &headers);
        return create(service, body, rid, tls, secure, client)
            .await
            .into_response();
    };
    let sender = service.sessions.lock().get(sid).cloned();
    let Some(sender) = sender else {
        return terminal("item-not-found", false, &DEFAULT_CONTENT_TYPE).into_response();
    };
    let (reply, answer) = oneshot::channel();
    let incoming = Incoming {
        body,
        rid,
        tls,
        reply,
    };
    match sender.try_send(incoming) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            return terminal("policy-violation", false, &DEFAULT_CONTENT_TYPE).into_response();
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return terminal("item-not-found", false, &DEFAULT_CONTENT_TYPE).into_response();
        }
    }
    match answer.await {
        Ok(reply) => reply.into_response(),
        // The session ended without answering (it was dropped meanwhile).
        Err(_) => terminal("item-not-found", false, &DEFAULT_CONTENT_TYPE).into_response(),
    }
}

/// Reads a request's `<body/>` with the stream parser (the limits of a stanza after
/// authentication, the size of the whole request): the element and its `rid`. `None` when it
/// is not one well-formed `<body/>` in the httpbind namespace with a valid `rid` (§14.1).
fn parse_body(bytes: &[u8], limit: usize) -> Option<(Element, u64)> {
    let mut input = bytes;
    // An XML declaration may lead the document.
    if input.starts_with(b"<?xml") {
        let end = input.windows(2).position(|w| w == b"?>")?;
        input = &input[end + 2..];
    }
    let limits = Limits {
        max_stanza_bytes: limit,
        max_depth: Limits::DEFAULT.max_depth + 1,
        ..Limits::DEFAULT
    };
    let mut decoder = Decoder::new(limits);
    let mut root: &[u8] = b"<stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams'>";
    decoder.next_frame(&mut root).ok()?;
    let body = match decoder.next_frame(&mut input) {
        Ok(Some(Frame::Element(body))) => body,
        _ => return None,
    };
    if !input.iter().all(u8::is_ascii_whitespace) || !body.is("body", HTTPBIND) {
        return None;
    }
    let rid = body.attr("rid")?.parse::<u64>().ok()?;
    (rid <= MAX_RID).then_some((body, rid))
}

/// A numeric attribute, `None` when absent or not a number.
fn number(body: &Element, name: &str) -> Option<u64> {
    body.attr(name).and_then(|v| v.trim().parse().ok())
}

/// `major.minor` (XEP-0124 §7.1: the minor number is an integer of its own).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// A new 128-bit session id (§7.2: opaque and unpredictable).
fn new_sid() -> String {
    use std::fmt::Write as _;
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes[..]);
    let mut sid = String::with_capacity(32);
    for b in bytes {
        let _ = write!(sid, "{b:02x}");
    }
    sid
}

/// The session creation request (XEP-0124 §7, XEP-0206 §4): starts the connection and the
/// session, and waits for the session's answer.
async fn create(
    service: BoshService,
    body: Element,
    rid: u64,
    tls: bool,
    secure: bool,
    client: SocketAddr,
) -> Reply {
    let (client_end, server_end) = tokio::io::duplex(PIPE_BYTES);
    let answer = match open_session(
        &service.sessions,
        &service.shutdown,
        &service.settings,
        &service.tracker,
        &body,
        (rid, tls),
        client_end,
    ) {
        Ok(answer) => answer,
        Err(refused) => return refused,
    };
    let via = starling_c2s::Via {
        transport: starling_metrics::Transport::Bosh,
        tls,
        secure,
    };
    service.tracker.spawn(starling_c2s::handle_websocket(
        server_end,
        client,
        via,
        service.c2s.clone(),
        service.shutdown.clone(),
    ));
    answer
        .await
        .unwrap_or_else(|_| terminal("internal-server-error", false, &DEFAULT_CONTENT_TYPE))
}

/// Starts a session on `pipe` (the connection's end is the other) for the creation request
/// `body` (its `rid`, and whether it came over TLS): registers its `sid` and spawns its task,
/// which answers through the returned receiver. `Err`: the answer refusing the request.
fn open_session(
    sessions: &Arc<Sessions>,
    shutdown: &CancellationToken,
    settings: &Arc<BoshSettings>,
    tracker: &TaskTracker,
    body: &Element,
    (rid, tls): (u64, bool),
    pipe: DuplexStream,
) -> Result<oneshot::Receiver<Reply>, Reply> {
    let legacy = body.attr("ver").is_none();
    let content_type = match body.attr("content").map(HeaderValue::from_str) {
        None => DEFAULT_CONTENT_TYPE,
        Some(Ok(v)) => v,
        Some(Err(_)) => return Err(terminal("bad-request", legacy, &DEFAULT_CONTENT_TYPE)),
    };
    let ver = body
        .attr("ver")
        .and_then(parse_version)
        .map_or(VERSION, |v| v.min(VERSION));
    let max_wait = settings.max_wait.as_secs();
    let wait = number(body, "wait").map_or(max_wait, |w| w.min(max_wait));
    let hold = number(body, "hold").map_or(1, |h| h.min(u64::from(settings.max_hold)));
    let (sender, receiver) = mpsc::channel(QUEUE);
    let sid = loop {
        let sid = new_sid();
        let mut open = sessions.lock();
        if !open.contains_key(&sid) {
            open.insert(sid.clone(), sender);
            break sid;
        }
    };
    let (reply, answer) = oneshot::channel();
    let now = Instant::now();
    let mut session = Session {
        sid,
        sessions: sessions.clone(),
        shutdown: shutdown.clone(),
        settings: settings.clone(),
        wait: Duration::from_secs(wait),
        hold: usize::try_from(hold).unwrap_or(1),
        requests: hold + 1,
        ver,
        legacy,
        tls,
        content_type,
        to: body.attr("to").map(str::to_owned),
        lang: body.attr_ns(ns::XML, "lang").map(str::to_owned),
        last_rid: rid,
        held: VecDeque::new(),
        early: BTreeMap::new(),
        answered: VecDeque::new(),
        pending: String::new(),
        stream_error: None,
        authid: None,
        from: None,
        features_seen: false,
        closed: false,
        ended: false,
        terminated: false,
        last_answer: now,
        pause: None,
        inbound: Vec::new(),
    };
    session.held.push_back(Held {
        rid,
        reply,
        deadline: now + CREATION_TIMEOUT,
        creation: true,
    });
    session.write_open();
    tracker.spawn(session.run(pipe, receiver));
    Ok(answer)
}

/// A request waiting for its answer.
struct Held {
    rid: u64,
    reply: oneshot::Sender<Reply>,
    deadline: Instant,
    /// The session creation request: answered with the session's attributes, once the stream
    /// is open.
    creation: bool,
}

struct Session {
    sid: String,
    sessions: Arc<Sessions>,
    shutdown: CancellationToken,
    settings: Arc<BoshSettings>,
    wait: Duration,
    hold: usize,
    requests: u64,
    ver: (u32, u32),
    legacy: bool,
    /// Created over TLS: its requests must come over TLS too.
    tls: bool,
    content_type: HeaderValue,
    to: Option<String>,
    lang: Option<String>,
    /// The last request whose payloads were forwarded (§14.2).
    last_rid: u64,
    /// Requests waiting for an answer, oldest first.
    held: VecDeque<Held>,
    /// Requests that came before one with a lower `rid` (§14.2): processed in order.
    early: BTreeMap<u64, Incoming>,
    /// The last answers, for retransmission (§14.3).
    answered: VecDeque<(u64, Reply)>,
    /// Output elements not yet sent, each one complete element.
    pending: String,
    /// The stream error that preceded the server's `<close/>`.
    stream_error: Option<String>,
    /// The stream id, from the server's `<open/>`.
    authid: Option<String>,
    from: Option<String>,
    features_seen: bool,
    /// The server closed the stream (or the connection ended).
    closed: bool,
    /// The session is over: the task ends.
    ended: bool,
    /// The client terminated the session: the connection gets its `<close/>`, then the pipe
    /// closes.
    terminated: bool,
    /// When the last answer was sent (§10: inactivity counts from it).
    last_answer: Instant,
    /// The inactivity period of a pause (§10), until the next request.
    pause: Option<Duration>,
    /// Bytes for the connection, not yet written into the pipe.
    inbound: Vec<u8>,
}

impl Session {
    async fn run(mut self, pipe: DuplexStream, mut receiver: mpsc::Receiver<Incoming>) {
        let (mut reader, mut writer) = tokio::io::split(pipe);
        let shutdown = self.shutdown.clone();
        let mut shutting_down = false;
        // Output records not yet split, and input not yet written into the pipe.
        let mut records: Vec<u8> = Vec::new();
        let mut input: Vec<u8> = Vec::new();
        // The pipe's end was read; writing into it failed.
        let mut eof = false;
        let mut write_closed = false;
        let mut terminated_at: Option<Instant> = None;
        loop {
            if write_closed {
                self.inbound.clear();
            } else {
                input.append(&mut self.inbound);
            }
            let deadline = match terminated_at {
                Some(t) => t + CLOSE_TIMEOUT,
                None => self.next_deadline(),
            };
            if records.is_empty() && records.capacity() > KEEP_CAPACITY {
                // A large record once: an idle session does not keep its room.
                records = Vec::new();
            }
            if records.capacity() - records.len() < READ_CHUNK {
                records.reserve(READ_CHUNK);
            }
            tokio::select! {
                incoming = receiver.recv(), if terminated_at.is_none() => match incoming {
                    Some(incoming) => self.on_request(incoming),
                    None => self.ended = true,
                },
                read = reader.read_buf(&mut records), if !eof => match read {
                    Ok(0) | Err(_) => {
                        eof = true;
                        self.on_closed();
                    }
                    Ok(_) if terminated_at.is_some() => records.clear(),
                    Ok(_) => self.on_output(&mut records),
                },
                written = writer.write(&input), if !input.is_empty() && !write_closed => match written {
                    Ok(n) => {
                        input.drain(..n);
                    }
                    Err(_) => {
                        // The connection is gone; what it wrote before is still to be read,
                        // up to the end of the pipe.
                        write_closed = true;
                        input.clear();
                    }
                },
                () = shutdown.cancelled(), if !shutting_down => shutting_down = true,
                () = tokio::time::sleep_until(deadline) => {
                    if terminated_at.is_some() {
                        break;
                    }
                    self.on_timer();
                }
            }
            if self.terminated && terminated_at.is_none() {
                // The connection reads its `<close/>` and ends; what it writes meanwhile goes
                // nowhere.
                terminated_at = Some(Instant::now());
                self.remove();
            }
            if terminated_at.is_some() {
                if eof {
                    break;
                }
                continue;
            }
            if self.ended {
                break;
            }
        }
        self.remove();
        tracing::debug!(sid = %self.sid, "BOSH session ended");
        // Dropping the pipe without `<close/>` is a lost connection for the c2s side: a
        // resumable session waits (XEP-0198 §5).
    }

    /// Forgets the `sid`: later requests get `item-not-found`.
    fn remove(&self) {
        self.sessions.lock().remove(&self.sid);
    }

    /// `<open/>` into the pipe: the stream's start, at creation and at each restart.
    fn write_open(&mut self) {
        let mut open = Element::new("open", ns::FRAMING);
        if let Some(to) = &self.to {
            open.set_attr("to", to.clone());
        }
        open.set_attr("version", "1.0");
        if let Some(lang) = &self.lang {
            open.set_attr_ns(ns::XML, "lang", lang.clone());
        }
        let mut out = String::new();
        open.write_standalone(&mut out);
        self.inbound.extend_from_slice(out.as_bytes());
    }

    fn next_deadline(&self) -> Instant {
        match self.held.front() {
            Some(h) => h.deadline,
            None if self.closed => {
                // Waiting to tell the client the stream ended; at shutdown, not for long.
                if self.shutdown.is_cancelled() {
                    self.last_answer
                } else {
                    self.last_answer + self.settings.inactivity
                }
            }
            None => self.last_answer + self.pause.unwrap_or(self.settings.inactivity),
        }
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        match self.held.front() {
            Some(h) if h.deadline <= now => {
                if let Some(h) = self.held.pop_front() {
                    self.answer(h);
                }
            }
            Some(_) => {}
            None => {
                if now >= self.next_deadline() {
                    tracing::debug!(sid = %self.sid, "BOSH session inactive");
                    self.ended = true;
                }
            }
        }
    }

    fn on_request(&mut self, incoming: Incoming) {
        if self.tls && !incoming.tls {
            // §19.1: a secure session is not continued over plain HTTP (nor ended by it).
            let _ = incoming.reply.send(Reply {
                status: StatusCode::FORBIDDEN,
                content_type: self.content_type.clone(),
                body: String::new(),
            });
            return;
        }
        let rid = incoming.rid;
        // A request sent again while its answer is pending: the new one gets it.
        if let Some(h) = self.held.iter_mut().find(|h| h.rid == rid) {
            h.reply = incoming.reply;
            return;
        }
        if let Some(early) = self.early.get_mut(&rid) {
            early.reply = incoming.reply;
            return;
        }
        if rid <= self.last_rid {
            // §14.3: answered already: the same answer again, when it is kept.
            let kept = self.answered.iter().find(|(r, _)| *r == rid);
            match kept {
                Some((_, reply)) => {
                    let _ = incoming.reply.send(reply.clone());
                }
                None => self.fail(incoming.reply, "item-not-found"),
            }
            return;
        }
        // §11: one request beyond `requests` may come to pause or terminate.
        let extra = u64::from(
            incoming.body.attr("type") == Some("terminate")
                || incoming.body.attr("pause").is_some(),
        );
        if rid > self.last_rid + self.requests + extra {
            // §14.2: beyond the window.
            self.fail(incoming.reply, "item-not-found");
            return;
        }
        self.early.insert(rid, incoming);
        while let Some(next) = self.early.remove(&(self.last_rid + 1)) {
            self.last_rid += 1;
            self.process(next);
            if self.ended || self.terminated {
                break;
            }
        }
    }

    /// A terminal condition for this request: the session ends.
    fn fail(&mut self, reply: oneshot::Sender<Reply>, condition: &str) {
        let _ = reply.send(terminal(condition, self.legacy, &self.content_type));
        for h in std::mem::take(&mut self.held) {
            let _ = h
                .reply
                .send(terminal("other-request", false, &self.content_type));
        }
        self.ended = true;
    }

    /// A request in `rid` order: its payloads go to the connection, then it waits for output.
    fn process(&mut self, incoming: Incoming) {
        let Incoming {
            body, rid, reply, ..
        } = incoming;
        let now = Instant::now();
        self.pause = None;
        if body.attr("type") == Some("terminate") {
            // §13: the payloads (an unavailable presence) and the end of the stream.
            self.forward(&body);
            self.inbound
                .extend_from_slice(b"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
            for h in std::mem::take(&mut self.held) {
                self.answer(h);
            }
            let _ = reply.send(Reply {
                status: StatusCode::OK,
                content_type: self.content_type.clone(),
                body: format!("<body xmlns='{HTTPBIND}' type='terminate'/>"),
            });
            self.terminated = true;
            return;
        }
        if body.attr_ns(XBOSH, "restart") == Some("true")
            || body.attr_ns(XBOSH, "restart") == Some("1")
        {
            // XEP-0206 §5: a new stream; its features come as the answer.
            if let Some(to) = body.attr("to") {
                self.to = Some(to.to_owned());
            }
            if let Some(lang) = body.attr_ns(ns::XML, "lang") {
                self.lang = Some(lang.to_owned());
            }
            self.features_seen = false;
            self.write_open();
        } else {
            self.forward(&body);
        }
        let pause = number(&body, "pause").map(Duration::from_secs);
        if let Some(pause) = pause.filter(|p| *p <= self.settings.max_pause) {
            // §10: every held request is answered, this one without payloads, and the
            // inactivity period is the pause until the next request.
            for h in std::mem::take(&mut self.held) {
                self.answer(h);
            }
            // Kept for a retransmission like any other (§14.3 does not ask it; it costs
            // nothing, and a lost answer to a pause would otherwise end the session).
            let answer = Reply {
                status: StatusCode::OK,
                content_type: self.content_type.clone(),
                body: format!("<body xmlns='{HTTPBIND}'/>"),
            };
            self.keep(rid, &answer);
            let _ = reply.send(answer);
            self.last_answer = now;
            self.pause = Some(pause);
            return;
        }
        self.held.push_back(Held {
            rid,
            reply,
            deadline: now + self.wait,
            creation: false,
        });
        self.flush();
    }

    /// The payloads of a request into the pipe, each a complete element with its namespace
    /// (an unqualified one is `jabber:client`'s, as in a stream).
    fn forward(&mut self, body: &Element) {
        let mut out = String::new();
        for child in body.children() {
            if child.ns() == HTTPBIND {
                let mut child = child.clone();
                child.rename_ns(HTTPBIND, &Ns::new(ns::CLIENT));
                child.write_standalone(&mut out);
            } else {
                child.write_standalone(&mut out);
            }
        }
        self.inbound.extend_from_slice(out.as_bytes());
    }

    /// Records from the connection.
    fn on_output(&mut self, records: &mut Vec<u8>) {
        let mut used = 0;
        loop {
            let rest = &records[used..];
            let (range, len) = match split_record(rest) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(_) => {
                    // Only a bug could make it: end as a lost connection.
                    tracing::warn!(sid = %self.sid, "BOSH: output not in records");
                    self.ended = true;
                    return;
                }
            };
            let Ok(text) = std::str::from_utf8(&rest[range]) else {
                self.ended = true;
                return;
            };
            let text = text.to_owned();
            used += len;
            self.on_record(&text);
        }
        records.drain(..used);
        if self.pending.len() > self.settings.max_pending_bytes {
            tracing::debug!(sid = %self.sid, "BOSH session dropped: output not fetched");
            self.ended = true;
            return;
        }
        self.flush();
    }

    fn on_record(&mut self, text: &str) {
        if text.is_empty() {
            // A keepalive: BOSH has its own (§10 inactivity).
        } else if text.starts_with("<open ") {
            if let Ok(open) = starling_stream::parse_stored(text) {
                self.authid = open.attr("id").map(str::to_owned);
                if self.from.is_none() {
                    self.from = open.attr("from").map(str::to_owned);
                }
            }
        } else if text.starts_with("<close ") {
            self.on_closed();
        } else if text.starts_with("<stream:error") {
            self.stream_error = Some(text.to_owned());
        } else {
            if text.starts_with("<stream:features") {
                self.features_seen = true;
            }
            self.pending.push_str(text);
        }
    }

    fn on_closed(&mut self) {
        if !self.closed {
            self.closed = true;
            self.flush();
        }
    }

    /// Whether the creation request can be answered: the stream is open with its features,
    /// or over.
    fn creation_ready(&self) -> bool {
        self.closed || (self.authid.is_some() && self.features_seen)
    }

    /// Answers what can be answered: requests beyond `hold`, and the oldest held one when
    /// there is output (or the stream ended). The creation request (alone: the client has no
    /// `sid` before its answer) waits for the stream's opening.
    fn flush(&mut self) {
        loop {
            let ready = match self.held.front() {
                None => break,
                Some(h) if h.creation => self.creation_ready(),
                Some(_) => self.held.len() > self.hold || !self.pending.is_empty() || self.closed,
            };
            if !ready {
                break;
            }
            if let Some(h) = self.held.pop_front() {
                self.answer(h);
            }
            if self.ended {
                break;
            }
        }
    }

    /// Answers one request with everything pending; the stream's end when it came.
    fn answer(&mut self, held: Held) {
        let mut out = String::with_capacity(128 + self.pending.len());
        out.push_str("<body xmlns='");
        out.push_str(HTTPBIND);
        out.push('\'');
        let ends = self.closed && !self.terminated;
        if held.creation {
            if self.authid.is_none() {
                // The stream never opened.
                let _ = held.reply.send(terminal(
                    "remote-connection-failed",
                    false,
                    &self.content_type,
                ));
                self.ended = true;
                return;
            }
            self.creation_attributes(&mut out);
        }
        if ends {
            out.push_str(" type='terminate' condition='remote-stream-error'");
            if !held.creation {
                out.push_str(" xmlns:stream='");
                out.push_str(ns::STREAM);
                out.push('\'');
            }
        }
        let payload = std::mem::take(&mut self.pending);
        if payload.is_empty() && !(ends && self.stream_error.is_some()) {
            out.push_str("/>");
        } else {
            out.push('>');
            out.push_str(&payload);
            if ends && let Some(error) = self.stream_error.take() {
                out.push_str(&error);
            }
            out.push_str("</body>");
        }
        let reply = Reply {
            status: StatusCode::OK,
            content_type: self.content_type.clone(),
            body: out,
        };
        self.keep(held.rid, &reply);
        let _ = held.reply.send(reply);
        self.last_answer = Instant::now();
        if ends {
            // The client knows the session is over: later requests are item-not-found.
            self.ended = true;
        }
    }

    /// Keeps an answer for a retransmission of its request (§14.3): the last `requests`.
    fn keep(&mut self, rid: u64, reply: &Reply) {
        self.answered.push_back((rid, reply.clone()));
        while self.answered.len() as u64 > self.requests {
            self.answered.pop_front();
        }
    }

    /// XEP-0124 §7.2 and XEP-0206 §4: the session's attributes.
    fn creation_attributes(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.settings;
        let _ = write!(
            out,
            " xmlns:xmpp='{XBOSH}' xmlns:stream='{}' sid='{}' wait='{}' requests='{}' \
             polling='{}' inactivity='{}' maxpause='{}' hold='{}' ver='{}.{}'",
            ns::STREAM,
            self.sid,
            self.wait.as_secs(),
            self.requests,
            s.polling.as_secs(),
            s.inactivity.as_secs(),
            s.max_pause.as_secs(),
            self.hold,
            self.ver.0,
            self.ver.1,
        );
        if let Some(from) = &self.from {
            out.push_str(" from='");
            starling_proto::element::escape_attr(from, out);
            out.push('\'');
        }
        if let Some(id) = &self.authid {
            out.push_str(" authid='");
            starling_proto::element::escape_attr(id, out);
            out.push('\'');
        }
        out.push_str(" xmpp:version='1.0'");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_read_with_the_stream_parser() {
        let (body, rid) = parse_body(
            b"<?xml version='1.0'?><body xmlns='http://jabber.org/protocol/httpbind' rid='5' \
              sid='x'><message xmlns='jabber:client' to='a@b'/></body>\n",
            1024,
        )
        .unwrap();
        assert_eq!(rid, 5);
        assert_eq!(
            body.children().next().unwrap().to_xml(),
            "<message xmlns='jabber:client' to='a@b'/>"
        );
        // Not the httpbind namespace, not well-formed, two documents, no rid, too large.
        for bad in [
            &b"<body rid='1'/>"[..],
            b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>",
            b"<body xmlns='http://jabber.org/protocol/httpbind' rid='1'/><x/>",
            b"<body xmlns='http://jabber.org/protocol/httpbind'/>",
            b"<body xmlns='http://jabber.org/protocol/httpbind' rid='9007199254740992'/>",
        ] {
            assert!(
                parse_body(bad, 1024).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = format!(
            "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>{}</body>",
            "<a/>".repeat(100)
        );
        assert!(parse_body(big.as_bytes(), 200).is_none());
    }

    fn record(text: &str) -> String {
        format!("{:08x}:{text}", text.len())
    }

    /// Plays the connection's side of a session's pipe.
    async fn read_some(pipe: &mut DuplexStream) -> String {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), pipe.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    /// XEP-0124 §7.2 on the pipe: the creation writes `<open/>` and is answered once the
    /// stream's opening and features came; a client that does not fetch its output is dropped
    /// once more than `max_pending_bytes` wait, like a lost connection (the pipe closes without
    /// `<close/>`), and its `sid` is forgotten.
    #[tokio::test]
    async fn unfetched_output_drops_the_session() {
        let sessions = Arc::new(Sessions::default());
        let settings = Arc::new(BoshSettings {
            max_pending_bytes: 1024,
            ..BoshSettings::default()
        });
        let (body, rid) = parse_body(
            b"<body rid='10' to='example.org' ver='1.11' wait='30' hold='1' xml:lang='en' \
              xmlns='http://jabber.org/protocol/httpbind'/>",
            4096,
        )
        .unwrap();
        let (ours, mut theirs) = tokio::io::duplex(PIPE_BYTES);
        let answer = open_session(
            &sessions,
            &CancellationToken::new(),
            &settings,
            &TaskTracker::new(),
            &body,
            (rid, false),
            ours,
        )
        .unwrap();
        assert_eq!(
            read_some(&mut theirs).await,
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0' \
             xml:lang='en'/>"
        );
        let opening = record(
            "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='s1' from='example.org' \
             version='1.0' xml:lang='en'/>",
        );
        let features = record("<stream:features xmlns:stream='http://etherx.jabber.org/streams'/>");
        theirs
            .write_all(format!("{opening}00000000:{features}").as_bytes())
            .await
            .unwrap();
        let reply = answer.await.unwrap();
        let sid = sessions.lock().keys().next().unwrap().clone();
        assert_eq!(
            reply.body,
            format!(
                "<body xmlns='{HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' \
                 xmlns:stream='http://etherx.jabber.org/streams' sid='{sid}' wait='30' \
                 requests='2' polling='2' inactivity='60' maxpause='120' hold='1' ver='1.11' \
                 from='example.org' authid='s1' xmpp:version='1.0'><stream:features \
                 xmlns:stream='http://etherx.jabber.org/streams'/></body>"
            )
        );
        let message = record(&format!(
            "<message xmlns='jabber:client'><body>{}</body></message>",
            "a".repeat(600)
        ));
        theirs.write_all(message.as_bytes()).await.unwrap();
        theirs.write_all(message.as_bytes()).await.unwrap();
        // The end of the pipe, with nothing written into it.
        assert_eq!(read_some(&mut theirs).await, "");
        assert!(sessions.lock().is_empty());
    }

    #[test]
    fn versions_compare_as_integers() {
        assert_eq!(parse_version("1.6"), Some((1, 6)));
        assert!(parse_version("1.10").unwrap() > parse_version("1.9").unwrap());
        assert_eq!(parse_version("1"), None);
    }
}
