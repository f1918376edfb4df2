//! XMPP over WebSocket (RFC 7395) as the byte stream the rest of the generator reads and writes,
//! so that every scenario runs unchanged over either transport.
//!
//! Outgoing, the bytes the scenarios write (whole stanzas, several at once when a sender
//! batches) are cut into top-level elements, one text message each (§3.3.3): the stream header
//! becomes `<open/>` (§3.3.2), `</stream:stream>` becomes `<close/>` (§3.6), an XML declaration
//! or whitespace between elements is dropped, and a stanza without its own default namespace
//! gets `xmlns='jabber:client'` (§3.3.3: every message is a complete document). Incoming, the
//! server's `<open/>` reads as a `<stream:stream>` header with the usual namespaces, its
//! `<close/>` as `</stream:stream>`, and every other message as it is, so Starling's stream
//! decoder parses the server's messages as children of a `<stream:stream>` root.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// RFC 7395 §3.3.1.
pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
/// The header an incoming `<open/>` reads as (its attributes follow).
const STREAM_HEADER: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'";

/// Performs the WebSocket handshake on `tcp` for `url` with the `xmpp` subprotocol (§3.1).
pub async fn handshake(tcp: TcpStream, url: &str) -> io::Result<WsIo> {
    let mut request = url
        .into_client_request()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_static("xmpp"),
    );
    // Small buffers, as a server would keep for many connections; each message goes out as it
    // is written.
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0);
    let (ws, response) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(io::Error::other)?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok());
    if protocol != Some("xmpp") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the server chose the subprotocol {protocol:?}, not \"xmpp\" (RFC 7395 §3.1)"),
        ));
    }
    Ok(WsIo::new(ws))
}

/// A WebSocket as an XMPP byte stream (see the module's documentation).
pub struct WsIo {
    ws: WebSocketStream<TcpStream>,
    /// The translation of the last message, from `rx_pos` on, not yet read.
    rx: Vec<u8>,
    rx_pos: usize,
    /// Written bytes not yet a whole element.
    tx: Vec<u8>,
    /// Messages cut from `tx`, not yet handed to the WebSocket.
    queue: VecDeque<String>,
    /// A message was handed to the WebSocket since its last flush.
    unflushed: bool,
}

impl WsIo {
    fn new(ws: WebSocketStream<TcpStream>) -> WsIo {
        WsIo {
            ws,
            rx: Vec::new(),
            rx_pos: 0,
            tx: Vec::new(),
            queue: VecDeque::new(),
            unflushed: false,
        }
    }

    /// Hands queued messages to the WebSocket and flushes them; Pending while some wait for
    /// the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(text) = self.queue.pop_front() {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Pending => {
                    self.queue.push_front(text);
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                Poll::Ready(Ok(())) => {}
            }
            Pin::new(&mut self.ws)
                .start_send(Message::text(text))
                .map_err(io::Error::other)?;
            self.unflushed = true;
        }
        if self.unflushed {
            ready!(Pin::new(&mut self.ws).poll_flush(cx)).map_err(io::Error::other)?;
            self.unflushed = false;
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
        // The reader, always waiting, also drives what a writer left for the socket.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        loop {
            if this.rx_pos < this.rx.len() {
                let n = (this.rx.len() - this.rx_pos).min(buf.remaining());
                buf.put_slice(&this.rx[this.rx_pos..this.rx_pos + n]);
                this.rx_pos += n;
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                // The end of the socket, or its close frame: the end of the byte stream.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
                Some(Ok(Message::Text(text))) => {
                    this.rx.clear();
                    this.rx_pos = 0;
                    incoming(text.as_str(), &mut this.rx);
                }
                Some(Ok(Message::Binary(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a binary WebSocket message (RFC 7395 §3.2: XMPP goes in text messages)",
                    )));
                }
                // Pings are answered by tungstenite.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
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
        // What earlier writes left waits for the socket first (back-pressure).
        if !this.queue.is_empty() {
            ready!(this.poll_send(cx))?;
        }
        this.tx.extend_from_slice(buf);
        let mut at = 0;
        while let Some((unit, len)) = next_unit(&this.tx[at..]) {
            if let Some(text) = outgoing(unit, &this.tx[at..at + len])? {
                this.queue.push_back(text);
            }
            at += len;
        }
        this.tx.drain(..at);
        // The bytes are taken; whatever the socket does not take now goes with the next write
        // or read.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.ws)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}

/// What one top-level piece of the written bytes is.
#[derive(Debug, PartialEq, Eq)]
enum Unit {
    /// Whitespace, an XML declaration, or text between elements: nothing to send.
    Nothing,
    /// `<stream:stream …>`.
    Header,
    /// `</stream:stream>`.
    Close,
    /// A whole element.
    Element,
}

/// The first top-level piece of `b` and its length, or None when `b` holds no whole one yet.
fn next_unit(b: &[u8]) -> Option<(Unit, usize)> {
    let lt = b.iter().position(|&c| c == b'<');
    match lt {
        None if b.is_empty() => return None,
        // Whitespace (or stray text): dropped.
        None => return Some((Unit::Nothing, b.len())),
        Some(i) if i > 0 => return Some((Unit::Nothing, i)),
        Some(_) => {}
    }
    if b.starts_with(b"<?") {
        return find(b, b"?>").map(|e| (Unit::Nothing, e + 2));
    }
    if b.starts_with(b"</stream:stream") {
        return find(b, b">").map(|e| (Unit::Close, e + 1));
    }
    if b.starts_with(b"<stream:stream") {
        return tag_end(b, 0).map(|e| (Unit::Header, e));
    }
    // An element: tags counted until the one that closes the first.
    let mut depth = 0usize;
    let mut i = 0;
    loop {
        let rel = b[i..].iter().position(|&c| c == b'<')?;
        i += rel;
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i += find(rest, b"-->")? + 3;
            continue;
        }
        if rest.starts_with(b"<![CDATA[") {
            i += find(rest, b"]]>")? + 3;
            continue;
        }
        let end = tag_end(b, i)?;
        if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
        } else if b[end - 2] != b'/' {
            depth += 1;
        }
        i = end;
        if depth == 0 {
            return Some((Unit::Element, end));
        }
    }
}

/// The index just past the `>` ending the tag that starts at `start`, quoted values skipped.
fn tag_end(b: &[u8], start: usize) -> Option<usize> {
    let mut quote = None;
    for (i, &c) in b.iter().enumerate().skip(start + 1) {
        match (quote, c) {
            (None, b'\'' | b'"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, b'>') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn find(b: &[u8], needle: &[u8]) -> Option<usize> {
    b.windows(needle.len()).position(|w| w == needle)
}

/// The message to send for one unit of written bytes, if any.
fn outgoing(unit: Unit, bytes: &[u8]) -> io::Result<Option<String>> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(match unit {
        Unit::Nothing => None,
        Unit::Close => Some(format!("<close xmlns='{FRAMING}'/>")),
        Unit::Header => {
            // `<stream:stream …>` → `<open xmlns=FRAMING …/>`, its namespace declarations left out.
            let mut open = format!("<open xmlns='{FRAMING}'");
            for (name, quoted) in attributes(&text["<stream:stream".len()..]) {
                if name != "xmlns" && !name.starts_with("xmlns:") {
                    open.push(' ');
                    open.push_str(name);
                    open.push('=');
                    open.push_str(quoted);
                }
            }
            open.push_str("/>");
            Some(open)
        }
        Unit::Element => {
            let name_end = text[1..]
                .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
                .map_or(text.len(), |i| i + 1);
            let first_tag = tag_end(bytes, 0).map_or(text, |e| &text[..e]);
            if attributes(&first_tag[name_end..]).any(|(n, _)| n == "xmlns") {
                Some(text.to_owned())
            } else {
                let mut s = String::with_capacity(text.len() + 24);
                s.push_str(&text[..name_end]);
                s.push_str(" xmlns='jabber:client'");
                s.push_str(&text[name_end..]);
                Some(s)
            }
        }
    })
}

/// The attributes of a start tag's rest (after its name): (name, quoted value) pairs.
fn attributes(mut s: &str) -> impl Iterator<Item = (&str, &str)> {
    std::iter::from_fn(move || {
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        let after = s[eq + 1..].trim_start();
        let q = after.chars().next().filter(|&c| c == '\'' || c == '"')?;
        let close = after[1..].find(q)? + 2;
        let quoted = &after[..close];
        s = &after[close..];
        Some((name, quoted))
    })
}

/// Appends the byte-stream reading of one incoming message to `out`.
fn incoming(text: &str, out: &mut Vec<u8>) {
    let t = text.trim_start();
    let is = |name: &str| {
        t.strip_prefix('<')
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| {
                r.starts_with(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            })
    };
    if is("open") {
        out.extend_from_slice(STREAM_HEADER.as_bytes());
        let rest = t.strip_prefix("<open").unwrap_or_default();
        for (name, quoted) in attributes(rest) {
            if name != "xmlns" && !name.starts_with("xmlns:") {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(quoted.as_bytes());
            }
        }
        out.push(b'>');
    } else if is("close") {
        out.extend_from_slice(b"</stream:stream>");
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(written: &str) -> (Vec<String>, usize) {
        let b = written.as_bytes();
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((unit, len)) = next_unit(&b[at..]) {
            if let Some(t) = outgoing(unit, &b[at..at + len]).unwrap() {
                out.push(t);
            }
            at += len;
        }
        (out, b.len() - at)
    }

    /// RFC 7395 §3.3.2 (the stream header becomes `<open/>`), §3.3.3 (one element per message,
    /// qualified by its namespace), §3.6 (`<close/>`).
    #[test]
    fn written_bytes_become_one_message_per_element() {
        let (m, rest) = messages(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
        );
        assert_eq!(
            m,
            [format!(
                "<open xmlns='{FRAMING}' to='localhost' version='1.0'/>"
            )]
        );
        assert_eq!(rest, 0);
        let (m, rest) = messages(
            "<message to='a@localhost' type='chat' id='m1'><body>t=1</body></message>\
             <message to='a@localhost' type='chat' id='m2'><body>t=&gt;2</body></message> \
             <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGE=</auth>\
             <r xmlns='urn:xmpp:sm:3'/><presence/><iq type='get' id='a>b'><query xmlns='jabber:iq:roster'/></iq>\
             </stream:stream><message><bo",
        );
        assert_eq!(
            m,
            [
                "<message xmlns='jabber:client' to='a@localhost' type='chat' id='m1'><body>t=1</body></message>",
                "<message xmlns='jabber:client' to='a@localhost' type='chat' id='m2'><body>t=&gt;2</body></message>",
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGE=</auth>",
                "<r xmlns='urn:xmpp:sm:3'/>",
                "<presence xmlns='jabber:client'/>",
                "<iq xmlns='jabber:client' type='get' id='a>b'><query xmlns='jabber:iq:roster'/></iq>",
                &format!("<close xmlns='{FRAMING}'/>"),
            ]
        );
        // An unfinished element waits for the rest.
        assert_eq!(rest, "<message><bo".len());
    }

    /// RFC 7395 §3.3.2 and §3.6: the server's `<open/>` and `<close/>` read as a stream's
    /// header and end; other messages pass as they are.
    #[test]
    fn incoming_messages_read_as_a_stream() {
        let mut out = Vec::new();
        incoming(
            "<open xmlns=\"urn:ietf:params:xml:ns:xmpp-framing\" id=\"x1\" from='localhost' version='1.0' xml:lang='en'/>",
            &mut out,
        );
        incoming(
            "<message xmlns='jabber:client' from='a@localhost'><body>hi</body></message>",
            &mut out,
        );
        incoming(
            "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
             id=\"x1\" from='localhost' version='1.0' xml:lang='en'>\
             <message xmlns='jabber:client' from='a@localhost'><body>hi</body></message>\
             </stream:stream>"
        );
    }
}
