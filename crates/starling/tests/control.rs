//! The command line against a running server, through its control socket, as an operator runs
//! it: the real `starling` binary on the data directory of a server running in this process.
//! `sessions`, `user stats`, `announce`, `user kick`, and the database commands (`user disable`,
//! `user enable`, `user passwd`, `user del`) that also end the account's sessions, with the
//! stream errors the clients receive (see `starling_modules::admin` for why each).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};

use starling_testkit::Security;
use starling_testkit::client::{Client, TestError};
use starling_testkit::server::TestServer;

const BIN: &str = env!("CARGO_BIN_EXE_starling");
const PW: &str = "pw";

/// Runs the binary off the runtime's workers (the server in this process must keep answering).
async fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Runs `args` with `--data-dir` of `server`, expects success and exactly `stdout`.
async fn succeeds(server: &TestServer, args: &[&str], stdout: &str) {
    let dir = server.data_dir().to_str().unwrap().to_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", &dir]);
    let out = run(&all).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), stdout.to_owned(), String::new()),
        "starling {args:?}"
    );
}

async fn login_fails(server: &TestServer, user: &str, password: &str) -> String {
    match Client::login(
        server.starttls_addr,
        Security::StartTls,
        &server.domain,
        user,
        password,
        Some("r"),
    )
    .await
    {
        Ok(_) => panic!("{user} logged in"),
        Err(TestError::SaslFailure(c)) => c,
        Err(e) => panic!("{user}: {e}"),
    }
}

async fn with_sm(server: &TestServer, user: &str, resource: &str) -> (Client, String) {
    let mut c = server.online(user, PW, resource).await;
    c.send_xml("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        .await
        .unwrap();
    let enabled = c
        .expect("<enabled xmlns='urn:xmpp:sm:3' resume='true' max='{*}' id='{*}'/>")
        .await
        .unwrap();
    (c, enabled.attr("id").unwrap().to_owned())
}

fn stream_error(condition: &str, text: &str) -> String {
    format!(
        "<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{text}</text></stream:error>"
    )
}

/// The socket is the server's, 0600, and gone when it stops; sessions, statistics and
/// announcements come from the running server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_stats_and_announce() {
    let server = TestServer::with_users(&["alice", "bob"], PW).await;
    let socket = server.data_dir().join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
    server.befriend("alice", "bob").await;
    let mut alice = server.online("alice", PW, "r").await;
    alice.drain(std::time::Duration::from_millis(200)).await;
    let _bob = server.login("bob", PW, "phone").await;

    let dir = server.data_dir().to_str().unwrap().to_owned();
    let out = run(&["sessions", "--json", "--data-dir", &dir]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["jid"], "alice@localhost/r");
    assert_eq!(rows[0]["available"], true);
    assert_eq!(rows[1]["jid"], "bob@localhost/phone");
    assert_eq!(rows[1]["available"], false);
    assert!(
        rows[1]["ip"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{rows:?}"
    );
    let out = run(&["sessions", "--data-dir", &dir]).await;
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[0].starts_with("alice@localhost/r 127.0.0.1:") && lines[0].ends_with(" available")
    );
    assert!(lines[1].ends_with(" unavailable"), "{table}");

    // XEP-0133 §4.10's figures.
    succeeds(
        &server,
        &["user", "stats", "bob@localhost"],
        "roster size: 1\nonline resources: phone\naddresses: 127.0.0.1\n",
    )
    .await;
    // XEP-0133 §4.23: a headline from the domain to every session.
    succeeds(
        &server,
        &["announce", "maintenance at noon"],
        "sent to 2 session(s)\n",
    )
    .await;
    alice
        .expect("<message from='localhost' to='alice@localhost/r' type='headline'><body>maintenance at noon</body></message>")
        .await
        .unwrap();

    // What arrives on the socket is checked, never trusted.
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(
            b"{\"op\":\"end_sessions\",\"jid\":\"x@elsewhere.example\",\"reason\":\"kicked\"}\n",
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(b"not json\n").unwrap();
        let mut garbage = String::new();
        BufReader::new(&s).read_line(&mut garbage).unwrap();
        (line, garbage)
    })
    .await
    .unwrap();
    assert_eq!(
        answer.0,
        "{\"result\":\"error\",\"message\":\"x@elsewhere.example is not an account of this server\"}\n"
    );
    assert!(
        answer
            .1
            .starts_with("{\"result\":\"error\",\"message\":\"not a request: "),
        "{}",
        answer.1
    );

    let socket = server.data_dir().join("control.sock");
    let data = server.stop_keep_data().await;
    assert!(!socket.exists(), "the socket outlived the server");
    // No server: the commands that need one say so.
    let out = run(&[
        "user",
        "kick",
        "bob@localhost",
        "--data-dir",
        data.path().to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: no server is running with this data directory"),
        "{}",
        text(&out.stderr)
    );
}

/// `user kick` ends the sessions with `<policy-violation/>`; they cannot be resumed (XEP-0198
/// §5) and the account logs in again. `user disable` ends them with `<not-authorized/>` and
/// logins get `<account-disabled/>` (RFC 6120 §6.5.1) until `user enable`; `user passwd` and
/// `user del` end them with `<not-authorized/>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_commands_end_the_sessions() {
    let server = TestServer::with_users(&["bob"], PW).await;
    let (mut bob, previd) = with_sm(&server, "bob", "phone").await;
    succeeds(
        &server,
        &["user", "kick", "bob@localhost/phone"],
        "ended 1 session(s) of bob@localhost/phone\n",
    )
    .await;
    bob.expect_stream_error(&stream_error(
        "policy-violation",
        "session ended by an administrator",
    ))
    .await
    .unwrap();
    let mut c = Client::connect(server.starttls_addr).await.unwrap();
    c.open_stream(&server.domain).await.unwrap();
    c.starttls(&server.domain).await.unwrap();
    c.authenticate(&server.domain, "SCRAM-SHA-256", "bob", PW, None)
        .await
        .unwrap();
    c.send_xml(&format!(
        "<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='0'/>"
    ))
    .await
    .unwrap();
    c.expect("<failed xmlns='urn:xmpp:sm:3' h='{*}'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>{*}</text></failed>")
        .await
        .unwrap();

    let mut bob = server.login("bob", PW, "r").await;
    succeeds(
        &server,
        &["user", "disable", "bob@localhost"],
        "disabled bob@localhost\nended 1 session(s) of bob@localhost\n",
    )
    .await;
    bob.expect_stream_error(&stream_error("not-authorized", "account disabled"))
        .await
        .unwrap();
    assert_eq!(login_fails(&server, "bob", PW).await, "account-disabled");
    succeeds(
        &server,
        &["user", "enable", "bob@localhost"],
        "enabled bob@localhost\n",
    )
    .await;

    let mut bob = server.login("bob", PW, "r").await;
    succeeds(
        &server,
        &["user", "passwd", "bob@localhost", "--password", "new"],
        "password changed for bob@localhost\nended 1 session(s) of bob@localhost\n",
    )
    .await;
    bob.expect_stream_error(&stream_error("not-authorized", "password changed"))
        .await
        .unwrap();

    let mut bob = server.login("bob", "new", "r").await;
    succeeds(
        &server,
        &["user", "del", "bob@localhost"],
        "deleted bob@localhost\nended 1 session(s) of bob@localhost\n",
    )
    .await;
    bob.expect_stream_error(&stream_error("not-authorized", "account deleted"))
        .await
        .unwrap();
    assert_eq!(login_fails(&server, "bob", "new").await, "not-authorized");
}

/// Without a server the database commands work alone: the disabled flag is in the database,
/// and the next server refuses the login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_without_a_running_server() {
    let server = TestServer::with_users(&["bob"], PW).await;
    let data = server.stop_keep_data().await;
    let dir = data.path().to_str().unwrap().to_owned();
    let out = run(&["user", "disable", "bob@localhost", "--data-dir", &dir]).await;
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (
            Some(0),
            "disabled bob@localhost\n".to_owned(),
            String::new()
        )
    );
    let out = run(&["user", "disable", "nobody@localhost", "--data-dir", &dir]).await;
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(1),
            "error: nobody@localhost does not exist\n".to_owned()
        )
    );
    let server = TestServer::start_in(data, |_| {}).await;
    assert_eq!(login_fails(&server, "bob", PW).await, "account-disabled");
}
