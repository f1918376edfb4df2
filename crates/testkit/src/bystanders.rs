//! Bystanders: logged-in sessions that keep pinging the server (XEP-0199) while a test does
//! something hostile, to show that other users are not hurt by it.
//!
//! # Procedure
//!
//! [`Bystanders::start`] creates `bystander0` … (password [`PASSWORD`]) on the server's first
//! host, logs bystander `i` in from 127.0.1.`i` ([`address`]: per-address connection limits and
//! login throttles a test sets for 127.0.0.1 leave them alone, and each has an address of its
//! own; `c2s.max_connections` still counts them), sends initial presence and then pings
//! the server every [`INTERVAL`] from a task of its own. [`Bystanders::stop`] ends the loops and
//! panics, failing the test, if any ping went unanswered for [`DEADLINE`] or the stream broke;
//! otherwise it returns how many pings were answered and the slowest answer.
//!
//! # Hazards
//!
//! - The deadline is for the server's answer as the bystander sees it, so it also measures the
//!   test's own runtime: a test that blocks its thread (heavy parsing on a current-thread
//!   runtime) delays the bystanders too. Hostile tests run on a multi-thread runtime.
//! - Bystanders ignore nothing: a stanza other than the ping result fails the run, so a hostile
//!   test must not send them anything.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Client;
use crate::server::TestServer;

/// The bystanders' password.
pub const PASSWORD: &str = "bystander-pw";
/// Where bystander `i` connects from: 127.0.1.`i` (loopback on Linux).
pub fn address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, (i % 250) as u8 + 1))
}
/// Time between one ping's answer and the next ping.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// The longest a ping may wait for its answer.
pub const DEADLINE: Duration = Duration::from_secs(1);

/// What the bystanders saw.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// Pings answered, all bystanders together.
    pub pings: u64,
    /// The slowest answer.
    pub slowest: Duration,
}

/// Pinging sessions; see the module documentation.
pub struct Bystanders {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Result<Seen, String>>>,
}

impl Bystanders {
    /// Creates and logs in `count` bystanders and starts their pings.
    pub async fn start(server: &TestServer, count: usize) -> Bystanders {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::with_capacity(count);
        for i in 0..count {
            let user = format!("bystander{i}");
            server.add_user(&user, PASSWORD).await;
            let mut client =
                login_from(server.starttls_addr, address(i), &server.domain, &user).await;
            client.send_xml("<presence/>").await.unwrap_or_else(|e| {
                panic!("{user} cannot send presence: {e}");
            });
            let jid = format!("{user}@{}/by", server.domain);
            if let Err(e) = client
                .expect(&format!("<presence from='{jid}' to='{jid}'/>"))
                .await
            {
                panic!("{user}: no presence echo: {e}");
            }
            let stop = Arc::clone(&stop);
            tasks.push(tokio::spawn(ping_until(client, jid, stop)));
        }
        Bystanders { stop, tasks }
    }

    /// Stops the pings; panics if any bystander missed its deadline.
    pub async fn stop(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = Seen {
            pings: 0,
            slowest: Duration::ZERO,
        };
        let mut failures = Vec::new();
        for (i, task) in self.tasks.into_iter().enumerate() {
            match task.await {
                Ok(Ok(s)) => {
                    seen.pings += s.pings;
                    seen.slowest = seen.slowest.max(s.slowest);
                }
                Ok(Err(e)) => failures.push(format!("bystander{i}: {e}")),
                Err(e) => failures.push(format!("bystander{i}: task failed: {e}")),
            }
        }
        assert!(failures.is_empty(), "bystanders were hurt: {failures:#?}");
        assert!(seen.pings > 0, "the bystanders never pinged");
        println!(
            "bystanders: {} pings answered, the slowest in {:?}",
            seen.pings, seen.slowest
        );
        seen
    }
}

async fn login_from(addr: SocketAddr, from: IpAddr, domain: &str, user: &str) -> Client {
    let attempt = async {
        let mut client = Client::connect_from(addr, from).await?;
        client.open_stream(domain).await?;
        client.starttls(domain).await?;
        client
            .authenticate(domain, "SCRAM-SHA-256", user, PASSWORD, None)
            .await?;
        client.bind(Some("by")).await?;
        Ok::<_, crate::TestError>(client)
    };
    match attempt.await {
        Ok(c) => c,
        Err(e) => panic!("{user} cannot log in: {e}"),
    }
}

async fn ping_until(
    mut client: Client,
    jid: String,
    stop: Arc<AtomicBool>,
) -> Result<Seen, String> {
    let mut seen = Seen {
        pings: 0,
        slowest: Duration::ZERO,
    };
    while !stop.load(Ordering::Relaxed) {
        let id = format!("by{}", seen.pings);
        let sent = Instant::now();
        client
            .send_xml(&format!(
                "<iq type='get' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
            ))
            .await
            .map_err(|e| format!("ping {id} not sent: {e}"))?;
        let expected = format!("<iq type='result' id='{id}' to='{jid}'/>");
        match tokio::time::timeout(DEADLINE, client.expect(&expected)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("ping {id}: {e}")),
            Err(_) => return Err(format!("ping {id} unanswered after {DEADLINE:?}")),
        }
        seen.slowest = seen.slowest.max(sent.elapsed());
        seen.pings += 1;
        tokio::time::sleep(INTERVAL).await;
    }
    Ok(seen)
}
