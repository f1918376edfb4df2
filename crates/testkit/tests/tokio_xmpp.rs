//! Interoperability with an independent client: `tokio-xmpp` 6 (xmpp-rs) logs in to Starling with
//! SCRAM-SHA-256 over STARTTLS and over direct TLS (XEP-0368), binds, and delivers a message
//! between two accounts; a further test checks SCRAM-SHA-256-PLUS with `tls-exporter`.
//!
//! tokio-xmpp's own connectors (`starttls`/`direct-tls` features) always resolve via DNS/SRV with
//! hickory and build a rustls root store from only the system or webpki roots; neither a custom
//! root nor a fixed address can be given. So this file implements its public `ServerConnector`
//! trait ([`FixedConnector`]): fixed `SocketAddr`, the test server's certificate as the only root,
//! STARTTLS done with tokio-xmpp's own stream primitives. Everything after TLS (stream header,
//! SASL mechanism choice and exchange, resource binding, XEP-0198, stanza I/O) is tokio-xmpp's.
//!
//! Mechanism choice: tokio-xmpp tries SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, ANONYMOUS in that order,
//! each only if the server offers it; the SCRAM names get `-PLUS` when the connector returns a
//! channel binding. Returning `ChannelBinding::None` therefore selects plain SCRAM-SHA-256 (GS2
//! header `n,,`). Which mechanism was used is asserted on the bytes the client wrote after TLS
//! ([`Transcript`]). Login failures are not reported by tokio-xmpp (it retries forever with
//! back-off), so they surface as the 20 s timeout, whose message includes the transcript.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use sasl::common::ChannelBinding;
use starling_testkit::server::TestServer;
use tokio::io::{AsyncRead, AsyncWrite, BufStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::ProtocolError;
use tokio_xmpp::jid::{BareJid, FullJid, Jid};
use tokio_xmpp::parsers::message::{Id, Lang, Message, MessageType};
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::xmlstream::{
    FallibleStreamElement, PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStream,
    XmppStreamElement, initiate_stream,
};
use tokio_xmpp::{Client, Event, Stanza};

const TEST_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------ connector

/// How [`FixedConnector`] secures the TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// RFC 6120 §5: plaintext stream header, `<starttls/>`, `<proceed/>`, then TLS.
    StartTls,
    /// XEP-0368: TLS from the first byte.
    DirectTls,
}

/// Whether tokio-xmpp is handed channel-binding data (which makes it choose `-PLUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    None,
    TlsExporter,
}

/// Everything the client wrote after TLS was established, across all its connection attempts.
#[derive(Clone, Debug, Default)]
struct Transcript(Arc<Mutex<Vec<u8>>>);

impl Transcript {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// `(mechanism, decoded initial response)` of every `<auth/>` the client sent.
    fn sasl_auths(&self) -> Vec<(String, String)> {
        let text = self.text();
        let mut out = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("<auth ") {
            rest = &rest[start..];
            let open_end = rest.find('>').unwrap();
            let open = &rest[..open_end];
            let value = &open[open.find("mechanism=").unwrap() + "mechanism=".len()..];
            let quote = value.chars().next().unwrap();
            let mechanism = value[1..][..value[1..].find(quote).unwrap()].to_owned();
            let body = &rest[open_end + 1..];
            let body = &body[..body.find('<').unwrap()];
            let initial = String::from_utf8(B64.decode(body).unwrap()).unwrap();
            out.push((mechanism, initial));
            rest = &rest[open_end..];
        }
        out
    }
}

/// An I/O object that appends everything written through it to a [`Transcript`].
#[derive(Debug)]
struct Recording<S> {
    inner: S,
    transcript: Transcript,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recording<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recording<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.transcript
                .0
                .lock()
                .unwrap()
                .extend_from_slice(&buf[..n]);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A tokio-xmpp [`ServerConnector`] with a fixed address (no DNS) and one trusted certificate.
#[derive(Clone, Debug)]
struct FixedConnector {
    addr: SocketAddr,
    transport: Transport,
    binding: Binding,
    tls: Arc<ClientConfig>,
    transcript: Transcript,
}

impl FixedConnector {
    fn new(addr: SocketAddr, transport: Transport, binding: Binding, root_der: Vec<u8>) -> Self {
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(root_der)).unwrap();
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        FixedConnector {
            addr,
            transport,
            binding,
            tls: Arc::new(tls),
            transcript: Transcript::default(),
        }
    }

    /// TLS handshake with SNI and certificate check against the JID's domain.
    async fn handshake(
        &self,
        tcp: TcpStream,
        domain: &str,
    ) -> Result<TlsStream<TcpStream>, tokio_xmpp::Error> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?)
    }
}

/// RFC 6120 §5.4.2: send `<starttls/>`, wait for `<proceed/>`, hand back the bare socket.
async fn starttls(
    mut stream: XmppStream<BufStream<TcpStream>>,
) -> Result<TcpStream, tokio_xmpp::Error> {
    stream
        .send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
            starttls::Request,
        )))
        .await?;
    loop {
        match stream
            .next()
            .await
            .map(|v| v.and_then(|v| v.into_read_error()))
        {
            Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
            Some(Ok(other)) => {
                let msg = format!("expected <proceed/>, got {other:?}");
                return Err(io::Error::new(io::ErrorKind::InvalidData, msg).into());
            }
            Some(Err(ReadError::SoftTimeout)) => {}
            Some(Err(ReadError::HardError(e))) => return Err(e.into()),
            Some(Err(ReadError::ParseError(e))) => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e).into());
            }
            Some(Err(ReadError::StreamFooterReceived)) | None => {
                return Err(tokio_xmpp::Error::Disconnected);
            }
        }
    }
    // RFC 6120 §5.4.3.3: nothing may follow <proceed/> in plaintext; the buffer is dropped.
    Ok(stream.into_inner().into_inner())
}

impl ServerConnector for FixedConnector {
    type Stream = BufStream<Recording<TlsStream<TcpStream>>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let domain = jid.domain().as_str();
        let bare = jid.to_bare();
        let tcp = TcpStream::connect(self.addr).await?;
        let (tls, from) = match self.transport {
            // Like tokio-xmpp's DirectTlsServerConnector, which sends `from` (RFC 6120 §4.7.1).
            Transport::DirectTls => (self.handshake(tcp, domain).await?, Some(bare.as_str())),
            // Like tokio-xmpp's StartTlsServerConnector, which does not.
            Transport::StartTls => {
                let header = StreamHeader {
                    to: Some(Cow::Borrowed(domain)),
                    from: None,
                    id: None,
                };
                let plain = initiate_stream(BufStream::new(tcp), ns, header, timeouts).await?;
                let (features, plain) = plain.recv_features::<FallibleStreamElement>().await?;
                if !features.can_starttls() {
                    return Err(ProtocolError::NoTls.into());
                }
                let tcp = starttls(plain).await?;
                (self.handshake(tcp, domain).await?, None)
            }
        };
        let binding = match self.binding {
            Binding::None => ChannelBinding::None,
            // RFC 9266 §2, computed exactly as tokio-xmpp's own TLS code does (no context, which in
            // TLS 1.3 equals an empty context, RFC 8446 §7.5).
            Binding::TlsExporter => ChannelBinding::TlsExporter(
                tls.get_ref()
                    .1
                    .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .map_err(io::Error::other)?,
            ),
        };
        let io = BufStream::new(Recording {
            inner: tls,
            transcript: self.transcript.clone(),
        });
        let header = StreamHeader {
            to: Some(Cow::Borrowed(domain)),
            from: from.map(Cow::Borrowed),
            id: None,
        };
        Ok((initiate_stream(io, ns, header, timeouts).await?, binding))
    }
}

// ------------------------------------------------------------------ helpers

/// A tokio-xmpp client for `local@<domain>` (no resource requested) and its transcript.
fn client(
    server: &TestServer,
    local: &str,
    transport: Transport,
    binding: Binding,
) -> (Client, Transcript) {
    let addr = match transport {
        Transport::StartTls => server.starttls_addr,
        Transport::DirectTls => server.direct_tls_addr,
    };
    let connector = FixedConnector::new(addr, transport, binding, server.certificate_der());
    let transcript = connector.transcript.clone();
    let jid = BareJid::new(&format!("{local}@{}", server.domain)).unwrap();
    let client = Client::new_with_connector(jid, "password", connector, Timeouts::tight());
    (client, transcript)
}

/// Waits for `Event::Online` and returns the bound full JID.
async fn online(client: &mut Client) -> FullJid {
    match client.next().await {
        Some(Event::Online {
            bound_jid, resumed, ..
        }) => {
            assert!(!resumed);
            let full = bound_jid.try_into_full().unwrap();
            assert_eq!(client.bound_jid(), Some(&full));
            full
        }
        other => panic!("expected Online, got {other:?}"),
    }
}

/// Asserts exactly one `<auth/>` was sent, with `mechanism` and the GS2 header `gs2` for `local`.
fn assert_single_auth(transcript: &Transcript, mechanism: &str, gs2: &str, local: &str) {
    let auths = transcript.sasl_auths();
    assert_eq!(auths.len(), 1, "auth attempts: {auths:?}");
    let (sent_mechanism, initial) = &auths[0];
    assert_eq!(sent_mechanism, mechanism);
    // RFC 5802 §7: gs2-header "n=" saslname ",r=" c-nonce
    let prefix = format!("{gs2}n={local},r=");
    assert!(initial.starts_with(&prefix), "initial response {initial:?}");
    assert!(initial.len() > prefix.len(), "empty client nonce");
}

/// Logs alice and bob in over `transport`, checks the SASL mechanism and the bound JIDs, sends a
/// chat message from alice to bob's full JID and checks what bob receives.
async fn login_and_message(transport: Transport) {
    let server = TestServer::start().await;
    server.add_user("alice", "password").await;
    server.add_user("bob", "password").await;
    let (mut alice, alice_log) = client(&server, "alice", transport, Binding::None);
    let (mut bob, bob_log) = client(&server, "bob", transport, Binding::None);

    let scenario = async {
        let alice_jid = online(&mut alice).await;
        let bob_jid = online(&mut bob).await;
        assert_eq!(alice_jid.to_bare().as_str(), "alice@localhost");
        assert_eq!(bob_jid.to_bare().as_str(), "bob@localhost");
        assert!(!alice_jid.resource().as_str().is_empty());
        assert_single_auth(&alice_log, "SCRAM-SHA-256", "n,,", "alice");
        assert_single_auth(&bob_log, "SCRAM-SHA-256", "n,,", "bob");

        let body = "Hello from tokio-xmpp ✓";
        let mut message = Message::chat(Some(Jid::from(bob_jid.clone())))
            .with_body(Lang::default(), body.to_owned());
        message.id = Some(Id("interop-1".to_owned()));
        alice.send_stanza(message.into()).await.unwrap();

        // Neither client sent presence, so the message is the first thing bob may receive.
        let received = match bob.next().await {
            Some(Event::Stanza(Stanza::Message(m))) => m,
            other => panic!("bob expected the message, got {other:?}"),
        };
        assert_eq!(received.from, Some(Jid::from(alice_jid)));
        assert_eq!(received.to, Some(Jid::from(bob_jid)));
        assert_eq!(received.id, Some(Id("interop-1".to_owned())));
        assert_eq!(received.type_, MessageType::Chat);
        // The stanza arrives without xml:lang (checked on the wire); xmpp-parsers gives the body
        // the stream's default, which Starling's header sets to 'en' (RFC 6120 §4.7.4).
        let expected_bodies = [(Lang("en".to_owned()), body.to_owned())].into();
        assert_eq!(received.bodies, expected_bodies);

        alice.send_end().await.unwrap();
        bob.send_end().await.unwrap();
    };
    if timeout(TEST_TIMEOUT, scenario).await.is_err() {
        panic!(
            "timed out; alice wrote after TLS:\n{}\nbob wrote after TLS:\n{}",
            alice_log.text(),
            bob_log.text()
        );
    }
    server.stop().await;
}

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn starttls_scram_sha_256_bind_and_message() {
    login_and_message(Transport::StartTls).await;
}

#[tokio::test]
async fn direct_tls_scram_sha_256_bind_and_message() {
    login_and_message(Transport::DirectTls).await;
}

/// With channel-binding data tokio-xmpp picks SCRAM-SHA-256-PLUS; Starling offers it over TLS 1.3
/// and must agree on the `tls-exporter` value.
#[tokio::test]
async fn scram_sha_256_plus_tls_exporter_over_both_transports() {
    let server = TestServer::start().await;
    server.add_user("alice", "password").await;
    for transport in [Transport::StartTls, Transport::DirectTls] {
        let (mut alice, log) = client(&server, "alice", transport, Binding::TlsExporter);
        let scenario = async {
            let jid = online(&mut alice).await;
            assert_eq!(jid.to_bare().as_str(), "alice@localhost");
            assert_single_auth(&log, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "alice");
            alice.send_end().await.unwrap();
        };
        if timeout(TEST_TIMEOUT, scenario).await.is_err() {
            panic!("{transport:?}: timed out; wrote after TLS:\n{}", log.text());
        }
    }
    server.stop().await;
}
