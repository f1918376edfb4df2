//! One server-to-server connection's bytes: TCP or TLS (either side), the stream decoder, and
//! what waits to be written.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use starling_proto::{Element, StreamError, ns};
use starling_stream::{Decoder, Frame, Limits};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

/// What one read takes at most.
const READ_CHUNK: usize = 16 * 1024;
/// How long a closing stream error may take to write.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The socket, with or without TLS.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
    /// Only while a TLS handshake holds the socket.
    Gone,
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Io::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Io::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Io::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    /// The peer closed the connection or it broke.
    Closed,
    /// The input breaks the stream: close with this error.
    Error(StreamError),
}

/// The stream over one connection.
pub(crate) struct XmlStream {
    io: Io,
    decoder: Decoder,
    limits: Limits,
    /// Bytes read but not yet framed.
    carry: Vec<u8>,
    /// Written at the next flush.
    pub(crate) out: String,
    /// Both sides' headers were exchanged at least once (a stream error needs no header of ours).
    pub(crate) header_sent: bool,
}

impl XmlStream {
    pub(crate) fn new(tcp: TcpStream, limits: Limits) -> Self {
        let _ = tcp.set_nodelay(true);
        XmlStream {
            io: Io::Plain(tcp),
            decoder: Decoder::new(limits),
            limits,
            carry: Vec::new(),
            out: String::new(),
            header_sent: false,
        }
    }

    /// A new stream on the same connection (after TLS or SASL, RFC 6120 §5.4.3.3, §6.4.6).
    pub(crate) fn restart(&mut self) {
        self.decoder = Decoder::new(self.limits);
        self.carry.clear();
    }

    /// Changes the stanza limits from the next stanza on (after authentication).
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.decoder.set_limits(limits);
    }

    /// The next header, element or end of stream.
    pub(crate) async fn next(&mut self) -> Result<Frame, ReadEnd> {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            if !self.carry.is_empty() {
                let carried = std::mem::take(&mut self.carry);
                let mut input = carried.as_slice();
                let frame = self
                    .decoder
                    .next_frame(&mut input)
                    .map_err(|e| ReadEnd::Error(e.to_stream_error()))?;
                self.carry = input.to_vec();
                if let Some(f) = frame {
                    return Ok(f);
                }
                // All of it went into the parser.
                self.carry.clear();
            }
            let n = match self.io.read(&mut buf).await {
                Ok(0) | Err(_) => return Err(ReadEnd::Closed),
                Ok(n) => n,
            };
            self.carry.extend_from_slice(&buf[..n]);
        }
    }

    /// Queues a top-level element of the `jabber:server` stream.
    pub(crate) fn send(&mut self, element: &Element) {
        if element.ns() == crate::dialback::NS {
            crate::dialback::write_prefixed(element, &mut self.out);
        } else {
            element.write_in_stream(ns::SERVER, &mut self.out);
        }
    }

    /// Queues our stream header (RFC 6120 §4.7, XEP-0220 §2.1: `xmlns:db` declared).
    pub(crate) fn send_header(&mut self, from: Option<&str>, to: Option<&str>, id: Option<&str>) {
        self.out.push_str(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'",
        );
        for (name, value) in [("from", from), ("to", to), ("id", id)] {
            if let Some(v) = value {
                self.out.push(' ');
                self.out.push_str(name);
                self.out.push_str("='");
                starling_proto::element::escape_attr(v, &mut self.out);
                self.out.push('\'');
            }
        }
        self.out.push_str(" version='1.0'>");
        self.header_sent = true;
    }

    /// Writes what is queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let res = self.io.write_all(self.out.as_bytes()).await;
        self.out.clear();
        res?;
        self.io.flush().await
    }

    /// Our side of a TLS handshake as the server (STARTTLS after `<proceed/>`, or direct TLS).
    pub(crate) async fn accept_tls(&mut self, config: Arc<ServerConfig>) -> io::Result<()> {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let tls = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
        self.io = Io::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
        self.restart();
        Ok(())
    }

    /// Our side of a TLS handshake as the client, asking for `name` (SNI).
    pub(crate) async fn connect_tls(
        &mut self,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<()> {
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            return Err(io::ErrorKind::InvalidInput.into());
        };
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        self.io = Io::Tls(Box::new(tokio_rustls::TlsStream::Client(tls)));
        self.restart();
        Ok(())
    }

    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.io, Io::Tls(_))
    }

    /// The certificate chain the peer presented (leaf first), if any.
    pub(crate) fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        let certs = match &self.io {
            Io::Tls(tls) => match tls.as_ref() {
                tokio_rustls::TlsStream::Client(c) => c.get_ref().1.peer_certificates(),
                tokio_rustls::TlsStream::Server(s) => s.get_ref().1.peer_certificates(),
            },
            _ => None,
        };
        certs
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default()
    }

    /// Closes the stream: `error` (if any) after a header of ours if none went out yet
    /// (RFC 6120 §4.9.1.1), the closing tag, and the TCP shutdown.
    pub(crate) async fn close(
        &mut self,
        error: Option<&StreamError>,
        header: (Option<&str>, Option<&str>),
    ) {
        if let Some(err) = error {
            if !self.header_sent {
                self.send_header(header.0, header.1, None);
            }
            self.send(&err.to_element());
        }
        if self.header_sent {
            self.out.push_str("</stream:stream>");
        }
        let write = async {
            self.flush().await?;
            self.io.shutdown().await
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, write).await;
    }
}
