//! What the server acknowledged survives `kill -9`: the real binary, real sockets, the real
//! database file. A client sends messages with XEP-0198 stream management and waits for the
//! server's `<a/>`; the process is killed with SIGKILL at once; after a restart every
//! acknowledged message is in both users' archives (XEP-0313) and in the recipient's offline
//! queue (XEP-0160). The server archives a message before it counts it as handled (see README,
//! "Message archive": durability).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use starling_testkit::client::{Client, Security};

const BIN: &str = env!("CARGO_BIN_EXE_starling");
const MESSAGES: usize = 300;

struct Killed(Option<Child>);

impl Killed {
    /// SIGKILL: no shutdown, no flush, nothing after the signal.
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cli(data: &Path, args: &[&str]) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
}

/// `starling serve` on `port`, once it accepts connections.
fn serve(data: &Path, port: u16, tls_port: u16) -> Killed {
    let child = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--c2s-listen", &format!("127.0.0.1:{port}")])
        .args(["--c2s-tls-listen", &format!("127.0.0.1:{tls_port}")])
        .args(["--http-listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Killed(Some(child))
}

async fn login(addr: SocketAddr, user: &str) -> Client {
    let mut c = Client::login(addr, Security::StartTls, "localhost", user, "pw", Some("r"))
        .await
        .unwrap();
    c.set_timeout(Duration::from_secs(20));
    c
}

/// XEP-0313 with XEP-0059 `max` 0: the number of messages in `c`'s archive.
async fn archived(c: &mut Client) -> String {
    c.send_xml(
        "<iq type='set' id='count'><query xmlns='urn:xmpp:mam:2'>\
         <set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set></query></iq>",
    )
    .await
    .unwrap();
    let fin = c.recv_element().await.unwrap();
    assert_eq!(fin.attr("type"), Some("result"), "{fin}");
    fin.children()
        .flat_map(|f| f.children())
        .flat_map(|s| s.children())
        .find(|e| e.name() == "count")
        .map(|e| e.text())
        .unwrap_or_else(|| panic!("no count in {fin}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_messages_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for user in ["alice@localhost", "bob@localhost"] {
        cli(&data, &["user", "add", user, "--password", "pw"]);
    }
    let (port, tls_port) = (free_port(), free_port());
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut server = serve(&data, port, tls_port);

    let mut alice = login(addr, "alice").await;
    // XEP-0198 §3: stream management on.
    alice
        .send_xml("<enable xmlns='urn:xmpp:sm:3'/>")
        .await
        .unwrap();
    let enabled = alice.recv_element().await.unwrap();
    assert_eq!(enabled.name(), "enabled", "{enabled}");
    for i in 0..MESSAGES {
        alice
            .send_xml(&format!(
                "<message to='bob@localhost' type='chat' id='m{i}'><body>m{i}</body></message>"
            ))
            .await
            .unwrap();
    }
    // XEP-0198 §4: the server has handled every message once it says so.
    alice.send_xml("<r xmlns='urn:xmpp:sm:3'/>").await.unwrap();
    alice
        .expect(&format!("<a xmlns='urn:xmpp:sm:3' h='{MESSAGES}'/>"))
        .await
        .unwrap();
    server.kill();

    let mut server = serve(&data, port, tls_port);
    let mut alice = login(addr, "alice").await;
    assert_eq!(archived(&mut alice).await, MESSAGES.to_string());
    let mut bob = login(addr, "bob").await;
    assert_eq!(archived(&mut bob).await, MESSAGES.to_string());
    // The offline queue (XEP-0160) kept them too, in order.
    bob.send_xml("<presence/>").await.unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < MESSAGES {
        let el = bob.recv_element().await.unwrap();
        if el.name() == "message" {
            let body = el.children().find(|c| c.name() == "body").map(|b| b.text());
            bodies.push(body.unwrap_or_default());
        }
    }
    let want: Vec<String> = (0..MESSAGES).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, want);
    server.kill();
}
