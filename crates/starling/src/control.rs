//! The control socket: how the command line reaches a running server, for what only the server
//! knows (its sessions) or must do (end them, announce).
//!
//! # Where and who
//!
//! The server listens on the Unix socket `control.sock` in its data directory
//! ([`socket_path`]), mode 0600: only the user the server runs as (and root) can connect, the
//! same people who can open its database. It is bound under a temporary name, restricted, then
//! renamed into place, so it is never reachable with looser permissions. A socket file left by a
//! server that died is replaced at start; one that answers means another server runs with this
//! data directory, and the start fails. The server removes it when it stops.
//!
//! # Protocol
//!
//! One request per connection: the client writes one JSON object ([`Request`]) on one line, the
//! server answers with one ([`Response`]) on one line and closes. A request longer than
//! [`MAX_REQUEST`] bytes, or not sent within [`READ_TIMEOUT`], or not a [`Request`], is answered
//! with [`Response::Error`]. Nothing that arrives is trusted: it is parsed into these types and
//! JIDs are parsed again.
//!
//! ```text
//! → {"op":"end_sessions","jid":"bob@example.org","reason":"disabled"}
//! ← {"result":"ended","sessions":2}
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use starling_modules::admin::{self, EndReason};
use starling_proto::{BareJid, Jid};
use starling_router::Router;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "control.sock";
/// The longest request line accepted, in bytes (an announcement fits comfortably).
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long a client may take to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the command line waits for the server's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The control socket of the server whose data directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Why an administrator ends sessions, on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Deleted,
    Disabled,
    PasswordChanged,
    Kicked,
}

impl From<Reason> for EndReason {
    fn from(r: Reason) -> EndReason {
        match r {
            Reason::Deleted => EndReason::Deleted,
            Reason::Disabled => EndReason::Disabled,
            Reason::PasswordChanged => EndReason::PasswordChanged,
            Reason::Kicked => EndReason::Kicked,
        }
    }
}

/// What the command line asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Every session ([`Response::Sessions`]).
    Sessions,
    /// End the sessions of `jid` (an account's bare JID: all of them; a full JID: that one).
    EndSessions { jid: String, reason: Reason },
    /// Send `text` to every session (of `host` only, if given), as XEP-0133 §4.23 does.
    Announce { text: String, host: Option<String> },
    /// XEP-0133 §4.10's statistics of the account `jid`.
    UserStats { jid: String },
    /// The server-to-server connections ([`Response::S2s`]).
    S2s,
}

/// One server-to-server connection in [`Response::S2s`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct S2sRow {
    /// `inbound` or `outbound`.
    pub direction: String,
    pub peer: Option<String>,
    pub local: String,
    /// The peer's authenticated domains.
    pub remote: Vec<String>,
    /// `SASL EXTERNAL`, `dialback`, `dialback (certificate)` or `negotiating`.
    pub auth: String,
    pub tls: bool,
    pub bidi: bool,
    /// Stanzas waiting to be written on it.
    pub queued: usize,
    pub age_secs: u64,
}

/// One session in [`Response::Sessions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRow {
    pub jid: String,
    /// The client's address (`ip:port`), if known.
    pub ip: Option<String>,
    pub available: bool,
    pub detached: bool,
    pub inactive: bool,
}

/// What the server answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Sessions {
        sessions: Vec<SessionRow>,
    },
    /// How many sessions were told to end.
    Ended {
        sessions: usize,
    },
    /// How many sessions the announcement was queued to.
    Announced {
        sessions: usize,
    },
    /// The server-to-server connections (`enabled` false: federation is off).
    S2s {
        enabled: bool,
        links: Vec<S2sRow>,
    },
    UserStats {
        roster_size: u64,
        resources: Vec<String>,
        ips: Vec<String>,
    },
    Error {
        message: String,
    },
}

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No server listens on the socket (no file, or nobody accepts).
    #[error("no server is running with this data directory ({0})")]
    NotRunning(String),
    #[error("another server is running with this data directory ({0} answers)")]
    InUse(String),
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the server's answer is not understood: {0}")]
    Protocol(String),
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ControlError + '_ {
    move |source| ControlError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The listening socket; removed when the server stops ([`ControlSocket::remove`]).
pub struct ControlSocket {
    path: PathBuf,
}

impl ControlSocket {
    /// Binds the socket in `data_dir` (see the module docs) and serves it until `shutdown`.
    pub async fn open(
        data_dir: &Path,
        router: Arc<Router>,
        s2s: Option<starling_s2s::S2s>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<ControlSocket, ControlError> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = socket_path(data_dir);
        if path.exists() {
            if UnixStream::connect(&path).await.is_ok() {
                return Err(ControlError::InUse(path.display().to_string()));
            }
            // Left by a server that did not stop cleanly.
            std::fs::remove_file(&path).map_err(io_error(&path))?;
        }
        let tmp = data_dir.join(format!("{SOCKET_NAME}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp).map_err(io_error(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        tracing::info!("control socket at {}", path.display());
        let t = tracker.clone();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            t.spawn(serve(stream, router.clone(), s2s.clone()));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "control socket: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        });
        Ok(ControlSocket { path })
    }

    /// Removes the socket file.
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(error = %e, "cannot remove {}", self.path.display());
        }
    }
}

/// One connection: one request, one answer.
async fn serve(stream: UnixStream, router: Arc<Router>, s2s: Option<starling_s2s::S2s>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let mut line = String::new();
    let response = match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Response::Error {
            message: "no request within the time allowed".to_owned(),
        },
        Ok(Err(e)) => Response::Error {
            message: format!("cannot read the request: {e}"),
        },
        Ok(Ok(_)) if line.len() > MAX_REQUEST || !line.ends_with('\n') => Response::Error {
            message: format!("a request is one line of at most {MAX_REQUEST} bytes"),
        },
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(&router, s2s.as_ref(), request).await,
            Err(e) => Response::Error {
                message: format!("not a request: {e}"),
            },
        },
    };
    let mut out = match serde_json::to_string(&response) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "control socket: cannot encode the answer");
            return;
        }
    };
    out.push('\n');
    if let Err(e) = write.write_all(out.as_bytes()).await {
        tracing::debug!(error = %e, "control socket: the client left before the answer");
    }
}

fn error(message: impl Into<String>) -> Response {
    Response::Error {
        message: message.into(),
    }
}

/// An account of this server, from what the client sent.
fn account(router: &Router, jid: &str, full_ok: bool) -> Result<Jid, Response> {
    let parsed = Jid::new(jid).map_err(|e| error(format!("{jid} is not a JID: {e}")))?;
    let bare = parsed.to_bare();
    if bare.node().is_none() || !router.context().is_local_domain(bare.domain().as_str()) {
        return Err(error(format!("{jid} is not an account of this server")));
    }
    if !full_ok && parsed.resource().is_some() {
        return Err(error(format!("{jid} is not a bare JID (user@domain)")));
    }
    Ok(parsed)
}

async fn handle(router: &Router, s2s: Option<&starling_s2s::S2s>, request: Request) -> Response {
    let ctx = router.context();
    tracing::info!(?request, "control socket request");
    match request {
        Request::S2s => Response::S2s {
            enabled: s2s.is_some(),
            links: s2s
                .map(|s| s.list())
                .unwrap_or_default()
                .into_iter()
                .map(|l| S2sRow {
                    direction: match l.direction {
                        starling_s2s::Direction::Inbound => "inbound".to_owned(),
                        starling_s2s::Direction::Outbound => "outbound".to_owned(),
                    },
                    peer: l.peer.map(|p| p.to_string()),
                    local: l.local,
                    remote: l.remote,
                    auth: l.auth,
                    tls: l.tls,
                    bidi: l.bidi,
                    queued: l.queued,
                    age_secs: l.age_secs,
                })
                .collect(),
        },
        Request::Sessions => Response::Sessions {
            sessions: admin::sessions(ctx)
                .await
                .into_iter()
                .map(|s| SessionRow {
                    jid: s.jid,
                    ip: s.ip.map(|a| a.to_string()),
                    available: s.available,
                    detached: s.detached,
                    inactive: s.inactive,
                })
                .collect(),
        },
        Request::EndSessions { jid, reason } => match account(router, &jid, true) {
            Ok(j) => {
                if reason == Reason::Deleted {
                    // `starling user del` deleted it from the store: memory follows.
                    router
                        .emit(starling_module_api::Event::AccountDeleted(j.to_bare()))
                        .await;
                }
                Response::Ended {
                    sessions: admin::end_sessions(ctx, &j, reason.into()).await,
                }
            }
            Err(e) => e,
        },
        Request::Announce { text, host } => {
            if text.trim().is_empty() {
                return error("the announcement is empty");
            }
            if let Some(h) = &host
                && !ctx.is_local_domain(h)
            {
                return error(format!("{h} is not a host of this server"));
            }
            Response::Announced {
                sessions: admin::announce(ctx, host.as_deref(), &text).await,
            }
        }
        Request::UserStats { jid } => {
            let bare: BareJid = match account(router, &jid, false) {
                Ok(j) => j.to_bare(),
                Err(e) => return e,
            };
            match admin::user_stats(ctx, &bare).await {
                Ok(s) => Response::UserStats {
                    roster_size: s.roster_size,
                    resources: s.resources,
                    ips: s.ips,
                },
                Err(starling_storage::StorageError::NotFound) => {
                    error(format!("{bare} does not exist"))
                }
                Err(e) => error(format!("storage error: {e}")),
            }
        }
    }
}

/// Sends `request` to the server whose data directory is `data_dir` and returns its answer.
pub async fn request(data_dir: &Path, request: &Request) -> Result<Response, ControlError> {
    let path = socket_path(data_dir);
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ControlError::NotRunning(path.display().to_string()));
        }
        Err(e) => return Err(io_error(&path)(e)),
    };
    let exchange = async {
        let (read, mut write) = stream.into_split();
        let mut line =
            serde_json::to_string(request).map_err(|e| ControlError::Protocol(e.to_string()))?;
        line.push('\n');
        write
            .write_all(line.as_bytes())
            .await
            .map_err(io_error(&path))?;
        let mut answer = String::new();
        // The answer can be long (every session), but not endless.
        BufReader::new(read.take(64 * 1024 * 1024))
            .read_line(&mut answer)
            .await
            .map_err(io_error(&path))?;
        serde_json::from_str::<Response>(&answer).map_err(|e| ControlError::Protocol(e.to_string()))
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout(ANSWER_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let r = Request::EndSessions {
            jid: "bob@example.org".into(),
            reason: Reason::PasswordChanged,
        };
        let s = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(
            s,
            r#"{"op":"end_sessions","jid":"bob@example.org","reason":"password_changed"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&s).ok(), Some(r));
        assert!(
            serde_json::from_str::<Request>(r#"{"op":"user_stats","jid":"a@b","admin":true}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"op":"rm -rf"}"#).is_err());
        let a = Response::Ended { sessions: 2 };
        assert_eq!(
            serde_json::to_string(&a).unwrap_or_default(),
            r#"{"result":"ended","sessions":2}"#
        );
    }
}
