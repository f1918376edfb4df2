//! `/xmpp-websocket`: XMPP over WebSocket (RFC 7395).
//!
//! The handshake needs the `xmpp` subprotocol (§3.1; without it: `400`). The upgraded socket
//! becomes a client connection of the c2s crate ([`starling_c2s::handle_websocket`]) through
//! [`WsIo`], which turns the connection's output records ([`starling_c2s::framing`]) into one
//! text message each and hands the text of incoming messages to the connection's parser. The
//! connection runs the same negotiation, SASL, binding, stream management and limits as a TCP
//! client's.
//!
//! # Security and addresses
//!
//! A WebSocket over TLS (`[http] tls_listen`) is secure. One over plain HTTP from a loopback
//! address is treated as secure too (the browser is on this host, or a reverse proxy here
//! terminated TLS); from anywhere else it is not, and SASL is refused until TLS
//! (`encryption-required`) as on a TCP port that requires encryption. From a loopback peer, the rightmost address of `X-Forwarded-For` (what
//! the proxy saw) is the client's address for the per-address limits and logs.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, body::Bytes};
use futures_util::{Sink, Stream};
use starling_c2s::C2sShared;
use starling_c2s::framing::split_record;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The path of the WebSocket endpoint (XEP-0156 advertises it).
pub const PATH: &str = "/xmpp-websocket";

/// Records written and not yet sent, beyond which a write waits for the socket.
const MAX_PENDING: usize = 256 * 1024;
/// Output buffer capacity kept by an idle connection (as a TCP connection's, whose chat messages
/// and presences fit).
const KEEP_CAPACITY: usize = 512;
/// The WebSocket reader's buffer (tungstenite reads into it, at most this much per read, and
/// every connection holds it for its lifetime: its default, 128 KiB, would be the bulk of an idle
/// connection's memory). A larger message grows it as needed.
const READ_BUFFER: usize = 2 * 1024;
/// Frames queued in the WebSocket beyond which it writes to the socket before the connection
/// flushes: the frames of one flush go out in one write, not one each.
const WRITE_BATCH: usize = 4 * 1024;
/// Bytes a message may hold beyond the largest stanza: the connection's parser enforces the
/// stanza limit itself (a `policy-violation` stream error); only far larger messages are
/// refused by the WebSocket layer (close code 1009).
const MESSAGE_SLACK: usize = 16 * 1024;

/// What the WebSocket endpoint needs from the server.
#[derive(Clone)]
pub struct WebSocketService {
    /// The c2s state every client connection shares.
    pub c2s: Arc<C2sShared>,
    /// Cancelled at shutdown: connections end with `<system-shutdown/>`.
    pub shutdown: CancellationToken,
    /// The server waits for the connections it tracks here before it exits.
    pub tracker: TaskTracker,
}

/// The route of the WebSocket endpoint.
pub fn routes(service: WebSocketService) -> Router {
    Router::new().route(PATH, get(upgrade)).with_state(service)
}

async fn upgrade(
    State(service): State<WebSocketService>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    connection: Option<Extension<crate::ConnectionInfo>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        // RFC 9110 §15.5.22: a plain request (a browser opening the URL) is told to upgrade.
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, "websocket")],
            "this is the XMPP WebSocket endpoint (RFC 7395): connect with a WebSocket client \
             and the \"xmpp\" subprotocol",
        )
            .into_response();
    };
    let ws = ws.protocols(["xmpp"]);
    if ws.selected_protocol().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol \"xmpp\" is required (RFC 7395 §3.1)",
        )
            .into_response();
    }
    let tls = connection.is_some_and(|Extension(c)| c.tls);
    let secure = tls || peer.ip().is_loopback();
    let client = client_address(peer, &headers);
    let max_message = service.c2s.settings.max_stanza_size + MESSAGE_SLACK;
    ws.max_message_size(max_message)
        .max_frame_size(max_message)
        .read_buffer_size(READ_BUFFER)
        // The connection's records of one flush go out together (one write, as on TCP).
        .write_buffer_size(WRITE_BATCH)
        .on_upgrade(move |socket| {
            let WebSocketService {
                c2s,
                shutdown,
                tracker,
            } = service;
            let via = starling_c2s::Via {
                transport: starling_metrics::Transport::WebSocket,
                tls,
                secure,
            };
            tracker.track_future(starling_c2s::handle_websocket(
                WsIo::new(socket),
                client,
                via,
                c2s,
                shutdown,
            ))
        })
}

/// The client's address: the peer's, or from a loopback peer (a reverse proxy on this host) the
/// rightmost valid address of `X-Forwarded-For`.
pub(crate) fn client_address(peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
    if !peer.ip().is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// A WebSocket as the byte stream a client connection reads and writes.
///
/// Reading yields the text of each message as it comes (pings and pongs are answered by the
/// WebSocket layer; a close, or the end of the socket, is the end of the stream; a binary
/// message is an error: RFC 7395 §3.2 carries XMPP in text messages). Writing takes the
/// connection's records; each complete one is sent as a text message when the connection
/// flushes, an empty one as a ping (§3.8). Writes are never partial, so a record is never cut.
pub struct WsIo {
    ws: WebSocket,
    /// The part of the last text message not yet read.
    incoming: Bytes,
    /// Records written and not yet sent, from `sent` on.
    outgoing: Vec<u8>,
    sent: usize,
}

impl WsIo {
    pub fn new(ws: WebSocket) -> Self {
        WsIo {
            ws,
            incoming: Bytes::new(),
            outgoing: Vec::new(),
            sent: 0,
        }
    }

    /// Sends every complete record as a message (queued in the WebSocket, not yet flushed).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let rest = &self.outgoing[self.sent..];
            let (range, len) = match split_record(rest) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
            };
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(io::Error::other)?;
            let message = if range.is_empty() {
                Message::Ping(Bytes::new())
            } else {
                let text = std::str::from_utf8(&rest[range])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Message::Text(text.into())
            };
            Pin::new(&mut self.ws)
                .start_send(message)
                .map_err(io::Error::other)?;
            self.sent += len;
        }
        if self.sent == self.outgoing.len() {
            self.outgoing.clear();
            self.sent = 0;
            if self.outgoing.capacity() > KEEP_CAPACITY {
                self.outgoing = Vec::new();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.incoming.is_empty() {
                let n = this.incoming.len().min(buf.remaining());
                buf.put_slice(&this.incoming.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                // The end of the socket, or a close frame: the end of the byte stream.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                Some(Ok(Message::Text(text))) => this.incoming = Bytes::from(text),
                Some(Ok(Message::Binary(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a binary WebSocket message (RFC 7395 §3.2: XMPP goes in text messages)",
                    )));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            }
        }
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() - this.sent > MAX_PENDING {
            ready!(this.poll_send(cx))?;
            if this.outgoing.len() - this.sent > MAX_PENDING {
                ready!(Pin::new(&mut this.ws).poll_flush(cx)).map_err(io::Error::other)?;
            }
        }
        this.outgoing.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.ws)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.ws)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_from_loopback() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.7, 198.51.100.2".parse().unwrap(),
        );
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        assert_eq!(
            client_address(local, &headers),
            "198.51.100.2:0".parse().unwrap()
        );
        assert_eq!(client_address(remote, &headers), remote);
        headers.insert("x-forwarded-for", "unknown".parse().unwrap());
        assert_eq!(client_address(local, &headers), local);
        assert_eq!(client_address(local, &HeaderMap::new()), local);
    }
}
