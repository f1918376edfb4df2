//! starling-testkit: what Starling's integration tests use to talk to a real server over real
//! sockets and assert on the exact stanzas it sends.
//!
//! # Procedure
//!
//! 1. Connect: [`Client::connect`] (plain TCP, nothing sent) or [`Client::connect_direct_tls`]
//!    (XEP-0368: TLS at once, ALPN `xmpp-client`, SNI = domain, any certificate accepted).
//! 2. [`Client::open_stream`] sends the stream header and returns the server's header and
//!    `<stream:features/>`; [`Client::starttls`], [`Client::authenticate`] (SCRAM, SCRAM-PLUS with
//!    `tls-exporter`/`tls-server-end-point`, PLAIN) and [`Client::bind`] negotiate the rest, or
//!    [`Client::login`] does it all.
//! 3. Converse with [`Client::send`] / [`Client::send_xml`] / [`Client::send_raw`] and assert with
//!    [`Client::expect`] (next element must match some XML, see [`matcher`]),
//!    [`Client::expect_stream_error`], [`Client::expect_eof`] and [`Client::expect_silence`].
//! 4. [`Client::close`] ends the stream the polite way.
//!
//! Every wait is bounded ([`Client::set_timeout`], default 5 s), so a server that hangs fails the
//! test instead of hanging it.
//!
//! # Hazards
//!
//! - The certificate check is deliberately off (any certificate is accepted; only the handshake
//!   signature is verified). Never use this client against anything but a test server.
//! - Frames are never skipped: `expect*` look at the very next frame, so a test must account for
//!   every stanza the server sends (presence, roster pushes, ...) in order. Only
//!   [`Client::close`] discards stanzas that arrive before the server's closing tag.
//! - Stream restarts use a fresh decoder. After SASL success bytes already received are kept for
//!   the new stream; after STARTTLS's `<proceed/>` they are discarded (RFC 6120 §5.4.3.3), so a
//!   server that pipelines plaintext there is not noticed.
//! - `tls-server-end-point` is computed as SHA-256 of the leaf certificate, which is correct only
//!   for certificates signed with SHA-256 (or MD5/SHA-1), like the test ones (RFC 5929 §4.1).
//! - The client's decoder accepts elements up to 16 MiB, so server-side limits are what is tested.

pub mod bystanders;
pub mod client;
pub mod matcher;
pub mod script;
pub mod server;

pub use client::{Client, DEFAULT_TIMEOUT, Result, Security, TestError};
pub use matcher::{assert_matches, matches, parse_xml, try_parse_xml};
pub use starling_proto::{Element, FullJid, ns};
pub use starling_sasl::ChannelBindingType;
pub use starling_stream::{Frame, StreamHeader};
