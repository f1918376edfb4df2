//! Idle hold: the server's resident memory per held connection. RSS of the server process (and
//! its children) before, then N users log in (roster, presence) and stay idle; after a settling
//! time RSS is read again: (after − before) / N.

use std::sync::Arc;
use std::time::Duration;

use super::{Users, close_all, login_all};
use crate::procstat;
use crate::report::Report;
use crate::xmpp::{LoginSteps, Target};

pub struct IdleOpts {
    pub users: Users,
    pub concurrency: usize,
    pub settle: Duration,
    pub server_pid: u32,
}

pub async fn run(target: &Arc<Target>, opts: &IdleOpts) -> Result<Report, std::io::Error> {
    let mut report = Report::default();
    report.field("scenario", "idle");
    let before = procstat::rss_kib_tree(opts.server_pid)?;
    let steps = LoginSteps {
        roster: true,
        presence: true,
    };
    let mut result = login_all(target, &opts.users, opts.concurrency, steps).await;
    let held = result.latencies.len() as u64;
    // Read what the server sent at login (roster, own presence), as an idle client would have.
    // With stream management, acknowledge it all (XEP-0198 §4), so that the server holds
    // nothing for these clients and asks nothing of them.
    for s in result.sessions.iter_mut().flatten() {
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), s.reader.next()).await
        {
        }
        if let Some(a) = s.reader.ack() {
            use tokio::io::AsyncWriteExt as _;
            let _ = s.writer.write_all(a.as_bytes()).await;
        }
    }
    tokio::time::sleep(opts.settle).await;
    let after = procstat::rss_kib_tree(opts.server_pid)?;
    let per_conn = (after as f64 - before as f64) / held.max(1) as f64;
    report.line(format!(
        "{held} connections held ({} failed); server RSS {before} KiB before, {after} KiB after \
         {:.1} s: {per_conn:.2} KiB per connection",
        result.failed,
        opts.settle.as_secs_f64()
    ));
    for (user, e) in &result.failures {
        report.line(format!("{user} failed: {e}"));
    }
    report.field("held", held);
    report.field("failed", result.failed);
    report.field("rss_before_kib", before);
    report.field("rss_after_kib", after);
    report.num("kib_per_conn", Some(per_conn), 2);
    close_all(result.sessions).await;
    Ok(report)
}
