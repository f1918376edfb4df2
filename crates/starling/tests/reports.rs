//! `starling reports` as an operator runs it: the XEP-0377 reports users attached to blocks,
//! newest first, read from the database file the server writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};

use starling_storage::AbuseReport;
use starling_storage_sqlite::SqliteStorage;

const BIN: &str = env!("CARGO_BIN_EXE_starling");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn reports_are_listed_newest_first_and_by_jid() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let out = run(&[
        "user",
        "add",
        "alice@localhost",
        "--password",
        "pw",
        "--data-dir",
        data,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    // Nothing reported yet: nothing printed.
    let out = run(&["reports", "--data-dir", data]);
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(0), String::new(), String::new())
    );

    let storage = SqliteStorage::open(&tmp.path().join("data/starling.db"))
        .await
        .unwrap();
    let blocking = storage.stores().blocking;
    for (jid, text, ids, at) in [
        (
            "romeo@example.net",
            Some("Never came trouble\nto my house like this."),
            vec!["a1".to_owned(), "b2".to_owned()],
            1_796_601_600_000_000, // 2026-12-07T00:00:00Z
        ),
        (
            "iago@example.net",
            Some("it's a\r> forged\u{1b}[2J line"),
            vec![],
            1_796_601_601_500_000,
        ),
    ] {
        blocking
            .add_report(&AbuseReport {
                localpart: "alice".to_owned(),
                domain: "localhost".to_owned(),
                jid: jid.to_owned(),
                reason: "urn:xmpp:reporting:spam".to_owned(),
                text: text.map(str::to_owned),
                stanza_ids: ids,
                received_us: at,
            })
            .await
            .unwrap();
    }
    storage.close().await;

    let out = run(&["reports", "--data-dir", data]);
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (
            Some(0),
            "#2 2026-12-07T00:00:01.5Z alice@localhost reported iago@example.net: urn:xmpp:reporting:spam\n  \
             > it's a\\r> forged\\u{1b}[2J line\n\
             #1 2026-12-07T00:00:00Z alice@localhost reported romeo@example.net: urn:xmpp:reporting:spam\n  \
             messages: a1 b2\n  > Never came trouble\n  > to my house like this.\n"
                .to_owned(),
            String::new()
        )
    );
    let out = run(&[
        "reports",
        "--jid",
        "Romeo@Example.net",
        "--limit",
        "5",
        "--data-dir",
        data,
    ]);
    assert_eq!(
        text(&out.stdout).lines().next(),
        Some(
            "#1 2026-12-07T00:00:00Z alice@localhost reported romeo@example.net: urn:xmpp:reporting:spam"
        )
    );
    let out = run(&["reports", "--jid", "@bad", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("@bad is not a JID"),
        "{}",
        text(&out.stderr)
    );
}
