//! The `starling` binary as an operator runs it: a child process, real sockets, real signals.
//!
//! Every test starts its own server on ephemeral ports (port 0; the bound ports are read from the
//! log lines on stdout), in its own temporary directory. A [`ChildGuard`] kills the child on every
//! path (including a failing assertion), and every wait — for a log line, a socket read, a process
//! exit — has a deadline, so a hung server fails a test instead of hanging the suite.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// Upper bound for any single wait (log line, socket read, process exit).
const WAIT: Duration = Duration::from_secs(10);

/// Read timeout of client sockets; reads loop until [`WAIT`] has passed.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

const STREAM_HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
     xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

const SYSTEM_SHUTDOWN: &str = "<stream:error><system-shutdown \
     xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>";

const SASL_SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
const SASL_NOT_AUTHORIZED: &str =
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";

/// Moves the direct TLS listener off the default port 5223 through the file (the flag
/// `--c2s-listen` moves the STARTTLS one; `--c2s-tls-listen` would do this, see
/// `two_servers_with_listen_flags`).
const DIRECT_TLS_PORT_0: &str = "[c2s]\ndirect_tls_listen = [\"127.0.0.1:0\"]\n";

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// Kills (SIGKILL) and reaps the child when dropped, unless it was already reaped.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child already taken")
    }

    /// Waits for the child to exit, at most `timeout`; panics (and the drop kills it) otherwise.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child().try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} did not exit within {timeout:?}",
                self.child().id()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes ANSI escape sequences (`ESC [ ... letter`), should the log be coloured.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines a child wrote to one of its pipes, collected by a thread.
#[derive(Default)]
struct Lines {
    /// (lines so far, pipe closed)
    state: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Lines {
    fn collect(pipe: impl Read + Send + 'static) -> Arc<Lines> {
        let lines = Arc::new(Lines::default());
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.state.lock().unwrap().0.push(strip_ansi(&line));
                sink.changed.notify_all();
            }
            sink.state.lock().unwrap().1 = true;
            sink.changed.notify_all();
        });
        lines
    }

    fn len(&self) -> usize {
        self.state.lock().unwrap().0.len()
    }

    fn all(&self) -> String {
        self.state.lock().unwrap().0.join("\n")
    }

    /// The first line at index `from` or later that satisfies `pred`, waiting up to [`WAIT`].
    fn wait_for(&self, from: usize, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(line) = state.0.iter().skip(from).find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if state.1 || now >= deadline {
                panic!(
                    "no log line {what} ({}); output so far:\n{}",
                    if state.1 {
                        "output closed"
                    } else {
                        "timed out"
                    },
                    state.0.join("\n")
                );
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }
}

/// A running `starling serve`.
struct Server {
    guard: ChildGuard,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    /// The STARTTLS listener, if one is configured.
    starttls: Option<SocketAddr>,
    /// The direct TLS listener.
    direct_tls: SocketAddr,
    /// The "add a user with: …" log line.
    hint: String,
}

impl Server {
    /// Runs `starling serve ARGS` in `cwd` and waits until it is ready (has logged how to add a
    /// user, which comes after every listener is bound). The HTTP listener goes to an ephemeral
    /// port unless ARGS say otherwise (servers side by side would share 5280).
    fn start(cwd: &Path, args: &[&str]) -> Server {
        let http: &[&str] = if args.contains(&"--http-listen") {
            &[]
        } else {
            &["--http-listen", "127.0.0.1:0"]
        };
        let child = Command::new(BIN)
            .arg("serve")
            .args(args)
            .args(http)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut guard = ChildGuard(Some(child));
        let stdout = Lines::collect(guard.child().stdout.take().unwrap());
        let stderr = Lines::collect(guard.child().stderr.take().unwrap());
        let hint = stdout
            .wait_for(0, "with the user hint", |l| l.contains("add a user with: "))
            .split_once("add a user with: ")
            .unwrap()
            .1
            .to_owned();
        let log = stdout.all();
        let listener = |kind: &str| -> Option<SocketAddr> {
            log.lines().find_map(|l| {
                let rest = l.split_once("listening for clients on ")?.1;
                let addr = rest.strip_suffix(&format!(" ({kind})"))?;
                Some(addr.parse().unwrap())
            })
        };
        let starttls = listener("STARTTLS");
        let direct_tls = listener("direct TLS").expect("no direct TLS listener logged");
        Server {
            guard,
            stdout,
            stderr,
            starttls,
            direct_tls,
            hint,
        }
    }

    fn pid(&mut self) -> u32 {
        self.guard.child().id()
    }

    fn signal(&mut self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed: {status}");
    }
}

/// Runs `starling ARGS` in `cwd` to completion (at most [`WAIT`]), feeding `stdin`.
fn run(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut guard = ChildGuard(Some(
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    if let Some(input) = stdin {
        let mut pipe = guard.child().stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    // The outputs are a few lines: they fit in the pipe buffers while we wait.
    guard.wait_exit(WAIT);
    guard.0.take().unwrap().wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Asserts the command failed with exit code 1, no stdout and exactly `stderr`.
fn assert_fails(out: &Output, stderr: &str) {
    assert_eq!(
        (
            out.status.code(),
            text(&out.stdout).as_str(),
            text(&out.stderr).as_str()
        ),
        (Some(1), "", stderr)
    );
}

/// Asserts the command succeeded with exactly `stdout` and no stderr.
fn assert_succeeds(out: &Output, stdout: &str) {
    assert_eq!(
        (
            out.status.code(),
            text(&out.stdout).as_str(),
            text(&out.stderr).as_str()
        ),
        (Some(0), stdout, "")
    );
}

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

/// Reads from `io` until the data holds `marker`; returns everything up to and including the
/// marker and keeps what follows in `rest`.
fn read_until(io: &mut impl Read, rest: &mut Vec<u8>, marker: &str) -> String {
    read_until_any(io, rest, &[marker])
}

fn read_until_any(io: &mut impl Read, rest: &mut Vec<u8>, markers: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        let found = markers
            .iter()
            .filter_map(|m| {
                rest.windows(m.len())
                    .position(|w| w == m.as_bytes())
                    .map(|at| at + m.len())
            })
            .min();
        if let Some(end) = found {
            let head: Vec<u8> = rest.drain(..end).collect();
            return text(&head);
        }
        assert!(
            Instant::now() < deadline,
            "none of {markers:?} within {WAIT:?}; got {:?}",
            String::from_utf8_lossy(rest)
        );
        match io.read(&mut buf) {
            Ok(0) => panic!(
                "connection closed before any of {markers:?}; got {:?}",
                String::from_utf8_lossy(rest)
            ),
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Reads until end of file; returns `rest` followed by everything read.
fn read_to_eof(io: &mut impl Read, mut rest: Vec<u8>) -> String {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "no end of file within {WAIT:?}; got {:?}",
            String::from_utf8_lossy(&rest)
        );
        match io.read(&mut buf) {
            Ok(0) => return text(&rest),
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    tcp
}

/// Accepts any certificate (they are self-signed) but records the leaf and still checks the
/// handshake signature, so the server must hold the certificate's key.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    leaf: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A direct TLS connection (SNI `localhost`, fresh handshake, no resumption) and the leaf
/// certificate the server presented (DER).
fn tls_connect(addr: SocketAddr) -> (TlsStream, Vec<u8>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(RecordingVerifier {
        provider: Arc::clone(&provider),
        leaf: Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = tcp_connect(addr);
    let deadline = Instant::now() + WAIT;
    while conn.is_handshaking() {
        assert!(
            Instant::now() < deadline,
            "TLS handshake took over {WAIT:?}"
        );
        conn.complete_io(&mut tcp).unwrap();
    }
    let leaf = verifier
        .leaf
        .lock()
        .unwrap()
        .clone()
        .expect("no certificate");
    assert_eq!(
        conn.peer_certificates().unwrap()[0].as_ref(),
        leaf.as_slice()
    );
    (StreamOwned::new(conn, tcp), leaf)
}

/// Sends a stream header and returns the server's reply up to the end of its features.
fn open_stream(io: &mut (impl Read + Write), rest: &mut Vec<u8>) -> String {
    io.write_all(STREAM_HEADER.as_bytes()).unwrap();
    io.flush().unwrap();
    read_until(io, rest, "</stream:features>")
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Logs in with SASL PLAIN over a new direct TLS connection; returns the server's SASL answer.
fn plain_login(addr: SocketAddr, user: &str, password: &str) -> String {
    let (mut tls, _) = tls_connect(addr);
    let mut rest = Vec::new();
    let features = open_stream(&mut tls, &mut rest);
    assert!(
        features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
    let payload = base64(format!("\0{user}\0{password}").as_bytes());
    let auth = format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
    );
    tls.write_all(auth.as_bytes()).unwrap();
    tls.flush().unwrap();
    read_until_any(&mut tls, &mut rest, &[SASL_SUCCESS, "</failure>"])
}

// ---------------------------------------------------------------------------------------------
// Certificates and files
// ---------------------------------------------------------------------------------------------

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM, certificate DER).
fn self_signed() -> (String, String, Vec<u8>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (
        made.cert.pem(),
        made.signing_key.serialize_pem(),
        made.cert.der().to_vec(),
    )
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Zero configuration: no data directory given, so `./starling-data` under the working directory
/// gets the database and a self-signed certificate, which both listeners serve; the log tells how
/// to add a user, and that command works.
#[test]
fn zero_configuration_start() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("ports.toml"), DIRECT_TLS_PORT_0);
    let server = Server::start(
        tmp.path(),
        &["--config", "ports.toml", "--c2s-listen", "127.0.0.1:0"],
    );

    let data = tmp.path().join("starling-data");
    assert!(data.join("starling.db").is_file());
    let crt = data.join("certs/localhost.crt");
    let key = data.join("certs/localhost.key");
    assert!(crt.is_file() && key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
    }
    assert_eq!(
        server.hint,
        "starling user add alice@localhost --config ports.toml"
    );
    let log = server.stdout.all();
    assert!(
        log.contains(" INFO localhost: using a self-signed certificate from ./starling-data/certs"),
        "{log}"
    );

    // STARTTLS listener: plain stream with mandatory STARTTLS offered.
    let starttls = server.starttls.unwrap();
    assert_eq!(starttls.ip().to_string(), "127.0.0.1");
    assert_ne!(starttls.port(), 0);
    let mut tcp = tcp_connect(starttls);
    let features = open_stream(&mut tcp, &mut Vec::new());
    assert!(
        features
            .contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"),
        "{features}"
    );

    // Direct TLS listener: the generated certificate.
    let (_tls, leaf) = tls_connect(server.direct_tls);
    let generated = CertificateDer::from_pem_file(&crt).unwrap();
    assert_eq!(leaf, generated.as_ref());

    // Following the hint (plus a password) creates the account the server sees.
    let hint: Vec<&str> = server.hint.split(' ').collect();
    assert_eq!(hint[0], "starling");
    let mut args = hint[1..].to_vec();
    args.extend(["--password", "s3cret"]);
    assert_succeeds(&run(tmp.path(), &args, None), "created alice@localhost\n");
    assert_eq!(
        plain_login(server.direct_tls, "alice", "s3cret"),
        SASL_SUCCESS
    );
    assert_eq!(server.stderr.all(), "");
}

/// Two servers side by side, configured by flags alone: `--c2s-listen` moves the STARTTLS
/// listener and `--c2s-tls-listen` the direct TLS one, so the second server collides with neither
/// the first nor the defaults (5222, 5223). The flags replace the file's lists, not add to them.
#[test]
fn two_servers_with_listen_flags() {
    let tmp = tempfile::tempdir().unwrap();
    // The first server on chosen ports (free a moment ago), the second on ephemeral ones.
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (a_starttls, a_tls) = (free_port(), free_port());
    let start = |name: &str, starttls: &str, tls: &str| {
        let data = tmp.path().join(name);
        Server::start(
            tmp.path(),
            &[
                "--data-dir",
                path_str(&data),
                "--c2s-listen",
                starttls,
                "--c2s-tls-listen",
                tls,
            ],
        )
    };
    let a = start("a", &a_starttls.to_string(), &a_tls.to_string());
    let b = start("b", "127.0.0.1:0", "127.0.0.1:0");

    assert_eq!(a.starttls, Some(a_starttls));
    assert_eq!(a.direct_tls, a_tls);
    for server in [&a, &b] {
        let log = server.stdout.all();
        assert_eq!(log.matches("listening for clients on").count(), 2, "{log}");
        let starttls = server.starttls.unwrap();
        assert!(![5222, 5223].contains(&starttls.port()), "{log}");
        assert!(![5222, 5223].contains(&server.direct_tls.port()), "{log}");
    }
    assert_ne!(b.starttls, a.starttls);
    assert_ne!(b.direct_tls, a.direct_tls);

    // Each answers on both of its listeners, with its own certificate.
    for (server, name) in [(&a, "a"), (&b, "b")] {
        let features = open_stream(&mut tcp_connect(server.starttls.unwrap()), &mut Vec::new());
        assert!(features.contains("<starttls "), "{features}");
        let (_tls, leaf) = tls_connect(server.direct_tls);
        let crt = tmp.path().join(name).join("certs/localhost.crt");
        assert_eq!(leaf, CertificateDer::from_pem_file(&crt).unwrap().as_ref());
        assert_eq!(server.stderr.all(), "");
    }
}

/// `starling user …` against the database of a running server.
#[test]
fn user_management_while_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = path_str(&data);
    write(&tmp.path().join("ports.toml"), DIRECT_TLS_PORT_0);
    let server = Server::start(
        tmp.path(),
        &[
            "--config",
            "ports.toml",
            "--data-dir",
            data,
            "--c2s-listen",
            "127.0.0.1:0",
        ],
    );
    let dir = tmp.path();
    let user = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["user"];
        all.extend_from_slice(args);
        all.extend(["--data-dir", data]);
        run(dir, &all, stdin)
    };

    assert_succeeds(
        &user(&["add", "alice@localhost", "--password", "first"], None),
        "created alice@localhost\n",
    );
    assert_succeeds(&user(&["list"], None), "alice@localhost\n");
    assert_succeeds(&user(&["list", "localhost"], None), "alice@localhost\n");
    assert_succeeds(&user(&["list", "example.net"], None), "");
    assert_eq!(
        plain_login(server.direct_tls, "alice", "first"),
        SASL_SUCCESS
    );

    // Adding it again.
    assert_fails(
        &user(&["add", "alice@localhost", "--password", "other"], None),
        "error: alice@localhost already exists\n",
    );
    assert_eq!(
        plain_login(server.direct_tls, "alice", "first"),
        SASL_SUCCESS
    );

    // A domain this configuration does not serve.
    assert_fails(
        &user(&["add", "bob@example.net", "--password", "x"], None),
        "error: example.net is not served by this configuration (hosts: localhost)\n",
    );

    // RFC 7622 §3.3: a new name must be the same under PRECIS as under stringprep (RFC 6122),
    // which the server compares with. The ligature U+FB03, which nodeprep would store as "affi",
    // and a ZERO WIDTH JOINER, which nodeprep would drop, are refused; nothing is created.
    assert_fails(
        &user(&["add", "a\u{FB03}@localhost", "--password", "x"], None),
        "error: \"a\u{FB03}\" cannot be the user name of a new account: PRECIS (RFC 7622 §3.3: \
         the UsernameCaseMapped profile of RFC 8265) refuses U+FB03 '\u{FB03}' (character 2), \
         which is not allowed in user names (a compatibility form, symbol, space or control); \
         stringprep's nodeprep would silently store it as \"affi\"\n",
    );
    assert_fails(
        &user(&["add", "bo\u{200D}b@localhost", "--password", "x"], None),
        "error: \"bo\\u{200d}b\" cannot be the user name of a new account: PRECIS (RFC 7622 \
         §3.3: the UsernameCaseMapped profile of RFC 8265) refuses U+200D (character 3), which \
         is a joiner, allowed only after a virama (RFC 5892 Appendix A.1, A.2); stringprep's \
         nodeprep would silently store it as \"bob\"\n",
    );
    assert_succeeds(&user(&["list"], None), "alice@localhost\n");

    // Changing the password: the old one stops working at once.
    assert_succeeds(
        &user(&["passwd", "alice@localhost", "--password", "second"], None),
        "password changed for alice@localhost\n",
    );
    assert_eq!(
        plain_login(server.direct_tls, "alice", "first"),
        SASL_NOT_AUTHORIZED
    );
    assert_eq!(
        plain_login(server.direct_tls, "alice", "second"),
        SASL_SUCCESS
    );
    assert_fails(
        &user(&["passwd", "nobody@localhost", "--password", "x"], None),
        "error: nobody@localhost does not exist\n",
    );

    // Password from standard input (not a terminal): one line, without its line end.
    assert_succeeds(
        &user(&["add", "carol@localhost"], Some("from stdin\n")),
        "created carol@localhost\n",
    );
    assert_eq!(
        plain_login(server.direct_tls, "carol", "from stdin"),
        SASL_SUCCESS
    );
    assert_succeeds(&user(&["list"], None), "alice@localhost\ncarol@localhost\n");

    // Deleting.
    assert_succeeds(
        &user(&["del", "alice@localhost"], None),
        "deleted alice@localhost\n",
    );
    assert_eq!(
        plain_login(server.direct_tls, "alice", "second"),
        SASL_NOT_AUTHORIZED
    );
    assert_succeeds(&user(&["list"], None), "carol@localhost\n");
    assert_fails(
        &user(&["del", "alice@localhost"], None),
        "error: alice@localhost does not exist\n",
    );
    assert_eq!(server.stderr.all(), "");
}

/// The lock log line is exactly what the README's fail2ban filter matches
/// (`authentication locked: ip=<HOST> account=\S+ failures=\d+ for=\d+s scope=(?:ip|account)$`),
/// written once per lock; the locked account is refused even with its right password.
#[test]
fn lock_is_logged_once_for_fail2ban() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = path_str(&data);
    let config =
        format!("{DIRECT_TLS_PORT_0}[auth]\naccount_lock_after = 2\nfailures_before_delay = 5\n");
    write(&tmp.path().join("lock.toml"), &config);
    let server = Server::start(
        tmp.path(),
        &[
            "--config",
            "lock.toml",
            "--data-dir",
            data,
            "--c2s-listen",
            "127.0.0.1:0",
        ],
    );
    assert_succeeds(
        &run(
            tmp.path(),
            &[
                "user",
                "add",
                "alice@localhost",
                "--password",
                "right",
                "--data-dir",
                data,
            ],
            None,
        ),
        "created alice@localhost\n",
    );
    let from = server.stdout.len();
    for _ in 0..2 {
        assert_eq!(
            plain_login(server.direct_tls, "alice", "wrong"),
            SASL_NOT_AUTHORIZED
        );
    }
    let line = server.stdout.wait_for(from, "about the lock", |l| {
        l.contains("authentication locked")
    });
    let (head, event) = line.split_once("authentication locked:").unwrap();
    assert_eq!(
        event,
        " ip=127.0.0.1 account=alice@localhost failures=2 for=300s scope=account"
    );
    // "<RFC 3339 timestamp>  WARN ": the level, and a date fail2ban finds.
    assert!(head.ends_with(" WARN "), "{line}");
    assert!(head.starts_with("20") && head.contains('T'), "{line}");
    assert_eq!(
        plain_login(server.direct_tls, "alice", "right"),
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><temporary-auth-failure/>\
         <text>too many failed authentication attempts for this account; try again later</text>\
         </failure>"
    );
    let all = server.stdout.all();
    assert_eq!(all.matches("authentication locked").count(), 1, "{all}");
    assert_eq!(server.stderr.all(), "");
}

/// The hint printed at start must name the database the server really uses: with both
/// `--config` and `--data-dir`, both flags.
#[test]
fn user_hint_names_the_servers_database() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    write(&tmp.path().join("ports.toml"), DIRECT_TLS_PORT_0);
    let server = Server::start(
        tmp.path(),
        &[
            "--config",
            "ports.toml",
            "--data-dir",
            path_str(&data),
            "--c2s-listen",
            "127.0.0.1:0",
        ],
    );
    let hint: Vec<&str> = server.hint.split(' ').collect();
    let mut args = hint[1..].to_vec();
    args.extend(["--password", "pw"]);
    assert_succeeds(&run(tmp.path(), &args, None), "created alice@localhost\n");
    assert_eq!(plain_login(server.direct_tls, "alice", "pw"), SASL_SUCCESS);
}

/// SIGTERM closes open streams with `<system-shutdown/>` and exits 0.
#[test]
fn sigterm_closes_streams_with_system_shutdown() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("ports.toml"), DIRECT_TLS_PORT_0);
    let data = tmp.path().join("data");
    let mut server = Server::start(
        tmp.path(),
        &[
            "--config",
            "ports.toml",
            "--data-dir",
            path_str(&data),
            "--c2s-listen",
            "127.0.0.1:0",
        ],
    );
    let mut tcp = tcp_connect(server.starttls.unwrap());
    let mut rest = Vec::new();
    let head = open_stream(&mut tcp, &mut rest);
    assert!(
        head.starts_with("<?xml version='1.0'?><stream:stream "),
        "{head}"
    );

    let start = server.stdout.len();
    server.signal("TERM");
    assert_eq!(read_to_eof(&mut tcp, rest), SYSTEM_SHUTDOWN);
    let status = server.guard.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
    server
        .stdout
        .wait_for(start, "'stopped'", |l| l.ends_with(" INFO stopped"));
    assert_eq!(server.stderr.all(), "");
}

/// SIGHUP re-reads configured PEM files: new handshakes get the new certificate, connections
/// made before keep working, and a broken file keeps the previous material and logs why.
#[test]
fn sighup_reloads_configured_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert.pem");
    let key = tmp.path().join("key.pem");
    let data = tmp.path().join("data");
    let (cert1, key1, der1) = self_signed();
    write(&cert, &cert1);
    write(&key, &key1);
    let config = format!(
        "data_dir = '{}'\n\n[[host]]\ndomain = \"localhost\"\ncertificate = '{}'\nkey = '{}'\n\n\
         [c2s]\nlisten = []\ndirect_tls_listen = [\"127.0.0.1:0\"]\n",
        path_str(&data),
        path_str(&cert),
        path_str(&key),
    );
    write(&tmp.path().join("starling.toml"), &config);
    let mut server = Server::start(tmp.path(), &["--config", "starling.toml"]);
    assert_eq!(server.starttls, None);
    // Configured certificates: nothing self-signed is generated.
    assert!(data.join("starling.db").is_file());
    assert!(!data.join("certs").exists());

    let (mut old, leaf) = tls_connect(server.direct_tls);
    assert_eq!(leaf, der1);

    // Replace both files, then reload.
    let (cert2, key2, der2) = self_signed();
    assert_ne!(der1, der2);
    write(&cert, &cert2);
    write(&key, &key2);
    let start = server.stdout.len();
    server.signal("HUP");
    server
        .stdout
        .wait_for(start, "'certificates reloaded'", |l| {
            l.ends_with(" INFO certificates reloaded")
        });
    let (mut new, leaf) = tls_connect(server.direct_tls);
    assert_eq!(leaf, der2);

    // The connection from before the reload still carries a stream.
    let mut rest = Vec::new();
    let features = open_stream(&mut old, &mut rest);
    assert!(features.contains("<mechanisms xmlns="), "{features}");

    // A broken certificate: the reload fails as a whole and says which file.
    write(&cert, "this is no certificate\n");
    let start = server.stdout.len();
    server.signal("HUP");
    let line = server
        .stdout
        .wait_for(start, "about the failed reload", |l| l.contains(" ERROR "));
    let expected = format!(
        " ERROR certificate reload failed, keeping the old ones: TLS: certificate {}: no certificates found",
        path_str(&cert)
    );
    assert!(
        line.ends_with(&expected),
        "{line:?} should end with {expected:?}"
    );
    let (_tls, leaf) = tls_connect(server.direct_tls);
    assert_eq!(leaf, der2);
    let features = open_stream(&mut new, &mut Vec::new());
    assert!(features.contains("<mechanisms xmlns="), "{features}");
    assert_eq!(server.stderr.all(), "");
}

/// `check-config` reports every problem with its key and line, and exits non-zero; `serve`
/// refuses the same file without starting.
#[test]
fn check_config_reports_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("bad.toml"),
        "bogus = 1\n\n[c2s]\nlisten = [\"localhost:5222\"]\nmax_stanza_size = \"big\"\n",
    );
    let expected = "bad.toml:1: bogus: unknown key; expected one of: data_dir, admins, log, host, c2s, auth, storage, offline, roster, stream_management, components, archive, push, registration, pep, pubsub, muc, http, web, external_services, upload, acme, s2s\n\
         bad.toml:4: c2s.listen[0]: \"localhost:5222\" is not a socket address (like \"127.0.0.1:5222\" or \"[::1]:5222\")\n\
         bad.toml:5: c2s.max_stanza_size: expected an integer, found string\n\
         3 problem(s) found\n";
    assert_fails(
        &run(dir, &["check-config", "--config", "bad.toml"], None),
        expected,
    );

    // A certificate file that does not exist is found too (the file checks).
    write(
        &dir.join("nocert.toml"),
        "[[host]]\ndomain = \"localhost\"\ncertificate = \"missing.pem\"\nkey = \"missing.key\"\n",
    );
    assert_fails(
        &run(dir, &["check-config", "--config", "nocert.toml"], None),
        "host[0].certificate: cannot read missing.pem: No such file or directory (os error 2)\n\
         host[0].key: cannot read missing.key: No such file or directory (os error 2)\n\
         2 problem(s) found\n",
    );

    write(
        &dir.join("good.toml"),
        "[c2s]\nlisten = [\"127.0.0.1:5222\"]\nmax_stanza_size = 65536\n",
    );
    assert_succeeds(
        &run(dir, &["check-config", "--config", "good.toml"], None),
        "configuration OK (good.toml)\n",
    );
    assert_succeeds(
        &run(dir, &["check-config"], None),
        "configuration OK (built-in defaults)\n",
    );
    // Nothing was started or created.
    assert!(!dir.join("starling-data").exists());

    // `serve` refuses the bad file before binding or creating anything.
    let out = run(dir, &["serve", "--config", "bad.toml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: bad.toml:1: bogus: unknown key"),
        "{stderr}"
    );
    assert!(!dir.join("starling-data").exists());
}

/// An anonymous host's accounts are made at login (SASL ANONYMOUS, RFC 4505) and have no
/// password: the command line makes none there, sets no password there, and invites nobody
/// there; the normal host beside it is served as usual.
#[test]
fn cli_makes_no_accounts_on_anonymous_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(
        &dir.join("anon.toml"),
        "data_dir = \"data\"\n[[host]]\ndomain = \"localhost\"\n\
         [[host]]\ndomain = \"guest.localhost\"\nanonymous = true\n",
    );
    let cfg = ["--config", "anon.toml"];
    let with = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(cfg);
        run(dir, &all, None)
    };
    let refused = "error: guest.localhost is an anonymous host: its accounts are made at login \
                   (SASL ANONYMOUS) and have no password\n";
    assert_fails(
        &with(&["user", "add", "x@guest.localhost", "--password", "pw"]),
        refused,
    );
    assert_fails(
        &with(&["user", "passwd", "x@guest.localhost", "--password", "pw"]),
        refused,
    );
    assert_fails(
        &with(&[
            "user",
            "import",
            "--prefix",
            "g",
            "--count",
            "2",
            "--password",
            "pw",
            "--domain",
            "guest.localhost",
        ]),
        refused,
    );
    assert_fails(
        &with(&["invite", "create", "--domain", "guest.localhost"]),
        "error: guest.localhost is an anonymous host: its accounts are made at login, not by \
         invitation\n",
    );
    assert_succeeds(
        &with(&["user", "add", "alice@localhost", "--password", "pw"]),
        "created alice@localhost\n",
    );
    assert_succeeds(&with(&["user", "list"]), "alice@localhost\n");
}

/// `--http-listen` replaces `[http] listen`; the listener answers `/health` and `/ready` as soon
/// as the server says it is ready (issue 17's groundwork).
#[test]
fn http_listen_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(
        tmp.path(),
        &[
            "--data-dir",
            path_str(&data),
            "--c2s-listen",
            "127.0.0.1:0",
            "--c2s-tls-listen",
            "127.0.0.1:0",
            "--http-listen",
            &free.to_string(),
        ],
    );
    let log = server.stdout.all();
    assert!(
        log.contains(&format!("listening for HTTP on {free}\n")),
        "{log}"
    );
    let get = |path: &str| -> String {
        let mut tcp = std::net::TcpStream::connect(free).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            tcp,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).unwrap();
        response
    };
    let health = get("/health");
    assert!(health.starts_with("HTTP/1.1 200 "), "{health}");
    assert!(health.ends_with("\r\n\r\nok"), "{health}");
    let ready = get("/ready");
    assert!(ready.starts_with("HTTP/1.1 200 "), "{ready}");
    assert!(ready.ends_with("\r\n\r\nready"), "{ready}");
    assert_eq!(server.stderr.all(), "");
}

/// Issue 18: `--s2s-listen` turns federation on; `starling s2s list` asks the running server
/// through its control socket; `check-federation` on a domain that cannot be found says so on
/// a FAIL line and exits non-zero.
#[test]
fn s2s_listen_flag_list_and_check_federation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(
        tmp.path(),
        &[
            "--data-dir",
            path_str(&data),
            "--c2s-listen",
            "127.0.0.1:0",
            "--c2s-tls-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--s2s-listen",
            "127.0.0.1:0",
        ],
    );
    let log = server.stdout.all();
    assert!(log.contains("listening for servers on 127.0.0.1:"), "{log}");
    assert!(log.contains("(STARTTLS)"), "{log}");
    let list = run(
        tmp.path(),
        &["s2s", "list", "--data-dir", path_str(&data)],
        None,
    );
    assert_succeeds(&list, "no server-to-server connections\n");
    let check = run(
        tmp.path(),
        &[
            "check-federation",
            "nothing.invalid",
            "--data-dir",
            path_str(&data),
        ],
        None,
    );
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    let out = text(&check.stdout);
    assert!(
        out.starts_with("checking federation from localhost to nothing.invalid\n"),
        "{out}"
    );
    assert!(
        out.contains("FAIL our domain localhost: is not a public DNS name"),
        "{out}"
    );
    assert!(out.contains("FAIL DNS for nothing.invalid: "), "{out}");
    assert!(out.contains("\nresult: localhost cannot federate"), "{out}");
    // The dialback secret the server made is kept for the next start and for this command.
    assert!(data.join("s2s/dialback.secret").exists());
}
