//! Hostile shapes (issue 11): stanzas built to cost the server more than their size. For each
//! shape the scenario reads the server's CPU time and resident memory from /proc around it and
//! counts the bytes a recipient receives, so that every figure can be set against the bytes the
//! attacker sent:
//!
//! - complete stanzas (`xml-prefix`, `ns-children`, `ns-attributes`): user 1 sends the shape
//!   `--repeat` times to user 2's full JID, then a marker message; the server CPU is read from the
//!   first byte sent until the marker arrives, and the bytes user 2 read for the shapes are the
//!   bytes before the marker less what a lone marker costs (measured first);
//! - unfinished stanzas (`partial`, `partial-ns`): users 3… each log in and send the shape without
//!   its end, then keep the connection open; after `--settle` the server's RSS is read again, and
//!   the growth per connection is what one such connection holds;
//! - `pre-auth`: as many connections as there are users open a stream and send, unauthenticated,
//!   the start of an `<auth/>` that declares a 7 KB namespace and uses it on 100 attributes.
//!
//! The bench cannot tell why a server closed a connection; it counts connections that were closed
//! (`closed=`), which is what a server's limits do to these shapes.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::task::JoinSet;

use super::{CpuMark, Users, close_all, login_all};
use crate::procstat;
use crate::report::Report;
use crate::xmpp::{ConnError, FrameReader, LoginSteps, Target};
use starling_proto::ns;
use starling_stream::Frame;

/// A shape of the audit of `c2s` in issue 11.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// `<xml:foo/>` in a message (point 1: forwarded wrongly, it kills the recipient's parser).
    XmlPrefix,
    /// 2,000 children in a namespace whose 16 KB URI is declared once (point 2).
    NsChildren,
    /// 9,984 namespaced attributes sharing one 16 KB URI, 64 per element (point 4).
    NsAttributes,
    /// An unfinished message of 4,900 `<a/>`, held on each connection (point 3).
    Partial,
    /// An unfinished message of 4,900 `<p:a/>` under a 16 KB namespace (point 3).
    PartialNs,
    /// Before login, an unfinished 8 KB `<auth>` with 100 attributes in a 7 KB namespace (point 2).
    PreAuth,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::XmlPrefix => "xml-prefix",
            Shape::NsChildren => "ns-children",
            Shape::NsAttributes => "ns-attributes",
            Shape::Partial => "partial",
            Shape::PartialNs => "partial-ns",
            Shape::PreAuth => "pre-auth",
        }
    }
}

pub struct HostileOpts {
    pub users: Users,
    pub concurrency: usize,
    pub shape: Shape,
    /// Complete shapes: how many times the shape is sent before the marker.
    pub repeat: u32,
    /// Unfinished shapes: time for the server to read what was sent before RSS is read.
    pub settle: Duration,
    pub server_pid: u32,
}

/// A URI of `len` bytes.
fn long_uri(len: usize) -> String {
    let prefix = "urn:bench:";
    format!("{prefix}{}", "n".repeat(len.saturating_sub(prefix.len())))
}

/// `<x>` declaring the prefix `p` for a 16 KB namespace, which the shapes then use.
fn x_with_long_prefix() -> String {
    format!("<x xmlns='urn:bench:x' xmlns:p='{}'>", long_uri(16 * 1024))
}

/// ` p:a0='' p:a1='' …`: `n` attributes in the namespace of prefix `p`.
fn prefixed_attributes(n: usize) -> String {
    (0..n).map(|i| format!(" p:a{i}=''")).collect()
}

/// A complete shape addressed to `to`.
pub fn complete_shape(shape: Shape, to: &str) -> Option<String> {
    let open = format!("<message to='{to}' type='chat'>");
    let body = match shape {
        Shape::XmlPrefix => "<body>hi</body><xml:foo/>".to_owned(),
        Shape::NsChildren => format!("{}{}</x>", x_with_long_prefix(), "<p:a/>".repeat(2000)),
        Shape::NsAttributes => {
            let e = format!("<e{}/>", prefixed_attributes(64));
            format!("{}{}</x>", x_with_long_prefix(), e.repeat(156))
        }
        Shape::Partial | Shape::PartialNs | Shape::PreAuth => return None,
    };
    Some(format!("{open}{body}</message>"))
}

/// An unfinished shape: the start of a stanza that never ends.
pub fn unfinished_shape(shape: Shape, to: &str) -> Option<String> {
    match shape {
        Shape::Partial => Some(format!(
            "<message to='{to}' type='chat'><x xmlns='urn:bench:x'>{}",
            "<a/>".repeat(4900)
        )),
        Shape::PartialNs => Some(format!(
            "<message to='{to}' type='chat'>{}{}",
            x_with_long_prefix(),
            "<p:a/>".repeat(4900)
        )),
        Shape::PreAuth => Some(format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN' xmlns:p='{}'{}",
            long_uri(7 * 1024),
            prefixed_attributes(100)
        )),
        Shape::XmlPrefix | Shape::NsChildren | Shape::NsAttributes => None,
    }
}

pub async fn run(target: &Arc<Target>, opts: &HostileOpts) -> anyhow::Result<Report> {
    let mut report = Report::default();
    report.field("scenario", "hostile");
    report.field("shape", opts.shape.name());
    match opts.shape {
        Shape::XmlPrefix | Shape::NsChildren | Shape::NsAttributes => {
            complete(target, opts, &mut report).await?;
        }
        Shape::Partial | Shape::PartialNs => held(target, opts, &mut report).await?,
        Shape::PreAuth => pre_auth(target, opts, &mut report).await?,
    }
    Ok(report)
}

/// Reads raw bytes until `marker` has been read; returns how many bytes that took.
async fn read_until<R: AsyncRead + Unpin>(
    io: &mut R,
    pending: &mut Vec<u8>,
    marker: &[u8],
) -> Result<u64, ConnError> {
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(at) = pending.windows(marker.len()).position(|w| w == marker) {
            let end = at + marker.len();
            total += end as u64;
            pending.drain(..end);
            return Ok(total);
        }
        // Keep only what could still be the start of the marker.
        let keep = pending.len().min(marker.len() - 1);
        let drop = pending.len() - keep;
        total += drop as u64;
        pending.drain(..drop);
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

async fn complete(
    target: &Arc<Target>,
    opts: &HostileOpts,
    report: &mut Report,
) -> anyhow::Result<()> {
    let pair = Users {
        count: 2,
        ..opts.users.clone()
    };
    let steps = LoginSteps {
        roster: false,
        presence: true,
    };
    let mut round = login_all(target, &pair, 2, steps).await;
    let (Some(receiver), Some(mut sender)) = (
        round.sessions.pop().flatten(),
        round.sessions.pop().flatten(),
    ) else {
        anyhow::bail!("the two users could not log in: {:?}", round.failures);
    };
    let to = receiver.jid.clone();
    let mut receiver = receiver;
    // The echo of the receiver's initial presence comes before the answer to its ping (RFC 6120
    // §10.1, in order), so nothing from the login is left to be counted with the shapes.
    receiver
        .writer
        .write_all(b"<iq type='get' id='bench-sync'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await?;
    let (mut rx, mut pending) = receiver.reader.into_raw();
    read_until(&mut rx, &mut pending, b"bench-sync").await?;
    let marker = |n: u32| {
        format!("<message to='{to}' type='chat' id='bench-mark-{n}'><body>.</body></message>")
    };
    let mark_id = |n: u32| format!("bench-mark-{n}'");

    // What a lone marker costs to receive (after whatever the login sent).
    sender.writer.write_all(marker(0).as_bytes()).await?;
    read_until(&mut rx, &mut pending, mark_id(0).as_bytes()).await?;
    sender.writer.write_all(marker(1).as_bytes()).await?;
    let marker_out = read_until(&mut rx, &mut pending, mark_id(1).as_bytes()).await?;

    let Some(shape) = complete_shape(opts.shape, &to) else {
        anyhow::bail!("{} is not a complete stanza", opts.shape.name());
    };
    let rss_before = procstat::rss_kib_tree(opts.server_pid)?;
    let cpu_before = CpuMark::take(Some(opts.server_pid));
    // One buffer, so that the writer yields to the reader whenever the socket is full (the
    // recipient must keep reading, or the server rightly closes it as a slow reader).
    let mut all = shape.repeat(opts.repeat as usize);
    all.push_str(&marker(2));
    let send = sender.writer.write_all(all.as_bytes());
    let last = mark_id(2);
    let (sent, received) = tokio::join!(send, read_until(&mut rx, &mut pending, last.as_bytes()));
    let cpu = cpu_before.until(&CpuMark::take(Some(opts.server_pid)));
    let rss_after = procstat::rss_kib_tree(opts.server_pid)?;
    let (closed, out) = match (sent, received) {
        (Ok(()), Ok(n)) => (0, n.saturating_sub(marker_out)),
        (_, Err(e)) => {
            report.line(format!("the recipient's stream ended: {e}"));
            (1, 0)
        }
        (Err(e), _) => {
            report.line(format!("the sender's stream ended: {e}"));
            (1, 0)
        }
    };
    let bytes_in = shape.len() as u64 * u64::from(opts.repeat);
    let cpu_ms = cpu.server.map(|s| s * 1e3);
    report.line(format!(
        "{} × {} bytes sent, {} bytes delivered ({:.2}× the input); server CPU {} ms ({} ns per byte sent); \
         RSS {rss_before} KiB before, {rss_after} KiB after",
        opts.repeat,
        shape.len(),
        out,
        out as f64 / bytes_in as f64,
        cpu_ms.map_or("na".to_owned(), |v| format!("{v:.1}")),
        cpu.server.map_or("na".to_owned(), |s| format!("{:.1}", s * 1e9 / bytes_in as f64)),
    ));
    report.field("bytes_in", bytes_in);
    report.field("bytes_out", out);
    report.num("out_per_in", Some(out as f64 / bytes_in as f64), 3);
    report.num("server_cpu_ms", cpu_ms, 1);
    report.num(
        "server_ns_per_byte",
        cpu.server.map(|s| s * 1e9 / bytes_in as f64),
        1,
    );
    report.field("rss_before_kib", rss_before);
    report.field("rss_after_kib", rss_after);
    report.field("closed", closed);
    Ok(())
}

async fn held(target: &Arc<Target>, opts: &HostileOpts, report: &mut Report) -> anyhow::Result<()> {
    if opts.users.count < 2 {
        anyhow::bail!("the unfinished shapes need --users 2 or more (the first one receives)");
    }
    let steps = LoginSteps {
        roster: false,
        presence: true,
    };
    let mut round = login_all(target, &opts.users, opts.concurrency, steps).await;
    let Some(Some(receiver)) = round.sessions.first() else {
        anyhow::bail!("the first user could not log in: {:?}", round.failures);
    };
    let to = receiver.jid.clone();
    let Some(shape) = unfinished_shape(opts.shape, &to) else {
        anyhow::bail!("{} is not an unfinished stanza", opts.shape.name());
    };
    let holders: Vec<_> = round.sessions.drain(1..).flatten().collect();
    tokio::time::sleep(opts.settle).await;
    let rss_before = procstat::rss_kib_tree(opts.server_pid)?;
    let cpu_before = CpuMark::take(Some(opts.server_pid));
    let mut tasks = JoinSet::new();
    for mut s in holders {
        let shape = shape.clone();
        tasks.spawn(async move {
            let ok = s.writer.write_all(shape.as_bytes()).await.is_ok();
            (s, ok)
        });
    }
    let mut sessions = Vec::new();
    let mut write_failed = 0;
    while let Some(done) = tasks.join_next().await {
        if let Ok((s, ok)) = done {
            write_failed += usize::from(!ok);
            sessions.push(s);
        }
    }
    let (cpu, rss_after) = settle_and_read(opts, &cpu_before).await?;
    // Connections the server closed meanwhile (a limit): their reads end at once.
    let mut closed = write_failed;
    for s in &mut sessions {
        closed += usize::from(ended(&mut s.reader).await);
    }
    let held = Held {
        conns: sessions.len(),
        closed,
        rss_before,
        rss_after,
        cpu: cpu.server,
    };
    held.report(report, &shape);
    close_all(sessions.into_iter().map(Some).collect()).await;
    close_all(round.sessions).await;
    Ok(())
}

async fn pre_auth(
    target: &Arc<Target>,
    opts: &HostileOpts,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some(shape) = unfinished_shape(Shape::PreAuth, "") else {
        anyhow::bail!("no pre-auth shape");
    };
    let rss_before = procstat::rss_kib_tree(opts.server_pid)?;
    let cpu_before = CpuMark::take(Some(opts.server_pid));
    let mut conns = Vec::new();
    let mut failed = 0;
    for _ in 0..opts.users.count {
        match crate::xmpp::connect(target).await {
            Ok(mut c) => {
                if c.writer.write_all(shape.as_bytes()).await.is_err() {
                    failed += 1;
                }
                conns.push(c);
            }
            Err(e) => {
                failed += 1;
                if failed == 1 {
                    report.line(format!("a connection failed: {e}"));
                }
            }
        }
    }
    let (cpu, rss_after) = settle_and_read(opts, &cpu_before).await?;
    let mut closed = failed;
    for c in &mut conns {
        closed += usize::from(ended(&mut c.reader).await);
    }
    let held = Held {
        conns: conns.len(),
        closed,
        rss_before,
        rss_after,
        cpu: cpu.server,
    };
    held.report(report, &shape);
    for mut c in conns {
        let _ = c.writer.shutdown().await;
    }
    Ok(())
}

/// Whether the server ended the stream (a stream error, its close, or EOF), reading what it sent
/// until it goes quiet.
async fn ended<R: AsyncRead + Unpin>(reader: &mut FrameReader<R>) -> bool {
    loop {
        match tokio::time::timeout(Duration::from_millis(20), reader.next()).await {
            Err(_) => return false,
            Ok(Ok(Frame::Element(e))) if e.is("error", ns::STREAM) => return true,
            Ok(Ok(Frame::Element(_) | Frame::Header(_))) => {}
            Ok(Ok(Frame::Close) | Err(_)) => return true,
        }
    }
}

/// Waits `--settle`, then reads the server's CPU use since `before` and its RSS.
async fn settle_and_read(
    opts: &HostileOpts,
    before: &CpuMark,
) -> std::io::Result<(super::CpuUse, u64)> {
    tokio::time::sleep(opts.settle).await;
    let cpu = before.until(&CpuMark::take(Some(opts.server_pid)));
    Ok((cpu, procstat::rss_kib_tree(opts.server_pid)?))
}

/// What unfinished shapes cost: connections, how many the server closed, its RSS around them
/// and its CPU seconds.
struct Held {
    conns: usize,
    closed: usize,
    rss_before: u64,
    rss_after: u64,
    cpu: Option<f64>,
}

impl Held {
    fn report(&self, report: &mut Report, shape: &str) {
        let Held {
            conns,
            closed,
            rss_before,
            rss_after,
            cpu,
        } = *self;
        let per_conn = (rss_after as f64 - rss_before as f64) / conns.max(1) as f64;
        let ratio = per_conn * 1024.0 / shape.len() as f64;
        report.line(format!(
            "{conns} connections each sent {} bytes and left them unfinished; {closed} were closed; \
             server RSS {rss_before} KiB before, {rss_after} KiB after: {per_conn:.1} KiB per connection \
             ({ratio:.1}× the bytes sent); server CPU {} ms",
            shape.len(),
            cpu.map_or("na".to_owned(), |s| format!("{:.1}", s * 1e3)),
        ));
        report.field("connections", conns);
        report.field("closed", closed);
        report.field("bytes_in_per_conn", shape.len());
        report.field("rss_before_kib", rss_before);
        report.field("rss_after_kib", rss_after);
        report.num("kib_per_conn", Some(per_conn), 1);
        report.num("held_per_in", Some(ratio), 2);
        report.num("server_cpu_ms", cpu.map(|s| s * 1e3), 1);
    }
}
