//! `starling user import` as an operator runs it (a child process on a temporary data directory),
//! checked through `starling user list` and the store API on the same database file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use starling_storage::{RosterItem, Subscription};
use starling_storage_sqlite::SqliteStorage;

const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// Upper bound for one command.
const WAIT: Duration = Duration::from_secs(30);

/// Runs `starling ARGS` to completion (killed after [`WAIT`]).
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("starling {args:?} did not finish within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Asserts exit code 1, no stdout and exactly `stderr`.
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

/// Asserts success, no stderr, and a summary `imported {what} in N.N s`.
fn assert_imported(out: &Output, what: &str) {
    let stdout = text(&out.stdout);
    assert_eq!(
        (out.status.code(), text(&out.stderr).as_str()),
        (Some(0), ""),
        "{stdout}"
    );
    let secs = stdout
        .strip_prefix(&format!("imported {what} in "))
        .and_then(|rest| rest.strip_suffix(" s\n"))
        .unwrap_or_else(|| panic!("unexpected summary: {stdout:?}"));
    let (whole, tenths) = secs.split_once('.').unwrap();
    assert!(
        whole.parse::<u64>().is_ok() && tenths.len() == 1 && tenths.parse::<u8>().is_ok(),
        "{stdout:?}"
    );
}

fn data_arg(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

fn both(contact: &str) -> RosterItem {
    RosterItem {
        name: Some(contact.to_owned()),
        subscription: Subscription::Both,
        ..RosterItem::new(format!("{contact}@localhost"))
    }
}

#[tokio::test]
async fn import_creates_accounts_with_ring_rosters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data_arg(&data);
    let out = run(&[
        "user",
        "import",
        "--prefix",
        "u",
        "--count",
        "20",
        "--ring",
        "4",
        "--password",
        "pw",
        "--data-dir",
        data,
    ]);
    assert_imported(&out, "20 accounts (ring 4: 80 roster items)");

    // `user list` sorts localparts by bytes: u1, u10 … u19, u2, u20, u3 … u9.
    let mut want: Vec<String> = (1..=20).map(|i| format!("u{i}")).collect();
    want.sort();
    let want: Vec<String> = want.iter().map(|l| format!("{l}@localhost\n")).collect();
    assert_eq!(
        want[..3],
        ["u1@localhost\n", "u10@localhost\n", "u11@localhost\n"]
    );
    let list = run(&["user", "list", "--data-dir", data]);
    assert_eq!(
        (list.status.code(), text(&list.stdout), text(&list.stderr)),
        (Some(0), want.concat(), String::new())
    );

    let storage = SqliteStorage::open(&tmp.path().join("data/starling.db"))
        .await
        .unwrap();
    let stores = storage.stores();
    // u1 has u2, u3 (after it) and u20, u19 (before it, wrapping); sorted by JID bytes
    // ('0' < '@').
    assert_eq!(
        stores.rosters.items("u1", "localhost").await.unwrap(),
        [both("u19"), both("u20"), both("u2"), both("u3")]
    );
    assert_eq!(
        stores.rosters.items("u20", "localhost").await.unwrap(),
        [both("u18"), both("u19"), both("u1"), both("u2")]
    );
    assert_eq!(
        stores.rosters.items("u10", "localhost").await.unwrap(),
        [both("u11"), both("u12"), both("u8"), both("u9")]
    );
    // Everyone: 4 items, mutual, one roster change (version 1).
    for i in 1..=20 {
        let me = format!("u{i}");
        let items = stores.rosters.items(&me, "localhost").await.unwrap();
        assert_eq!(items.len(), 4, "{me}");
        for item in items {
            let (contact, _) = item.jid.split_once('@').unwrap();
            let theirs = stores
                .rosters
                .item(contact, "localhost", &format!("{me}@localhost"))
                .await
                .unwrap();
            assert_eq!(theirs, Some(both(&me)), "{me} on {contact}'s roster");
        }
        assert_eq!(stores.rosters.version(&me, "localhost").await.unwrap(), 1);
    }

    // The password works for every mechanism `user add` stores; the batch shares one credential.
    for mech in ["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let first = stores
            .accounts
            .credential("u1", "localhost", mech)
            .await
            .unwrap()
            .unwrap();
        let scram = starling_accounts::to_scram(&first).unwrap();
        assert!(scram.verify_password("pw"), "{mech}");
        assert!(!scram.verify_password("wrong"), "{mech}");
        assert_eq!(first.iterations, 4096, "{mech}");
        assert_eq!(first.salt.len(), 16, "{mech}");
        let last = stores
            .accounts
            .credential("u20", "localhost", mech)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (&last.salt, &last.stored_key, &last.server_key),
            (&first.salt, &first.stored_key, &first.server_key),
            "{mech}"
        );
    }

    // Versioning carries on from the import.
    let extra = RosterItem::new("someone@example.net");
    assert_eq!(
        stores
            .rosters
            .put_item("u1", "localhost", &extra)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        stores
            .rosters
            .remove_item("u1", "localhost", "u2@localhost")
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        stores.rosters.items("u1", "localhost").await.unwrap(),
        [extra, both("u19"), both("u20"), both("u3")]
    );
    storage.close().await;

    // Importing over existing accounts is refused, naming the first clash, and writes nothing.
    let out = run(&[
        "user",
        "import",
        "--prefix",
        "u",
        "--start",
        "18",
        "--count",
        "5",
        "--password",
        "other",
        "--data-dir",
        data,
    ]);
    assert_fails(
        &out,
        "error: u18@localhost already exists; nothing was imported (user import never replaces \
         accounts: delete them, or choose another --prefix or --start)\n",
    );
    let list = run(&["user", "list", "--data-dir", data]);
    assert_eq!(text(&list.stdout), want.concat());
}

#[tokio::test]
async fn import_without_ring_normalises_names() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = run(&[
        "user",
        "import",
        "--prefix",
        "Bench",
        "--start",
        "7",
        "--count",
        "3",
        "--domain",
        "LocalHost",
        "--password",
        "pw",
        "--data-dir",
        data_arg(&data),
    ]);
    assert_imported(&out, "3 accounts");
    let list = run(&["user", "list", "--data-dir", data_arg(&data)]);
    assert_eq!(
        text(&list.stdout),
        "bench7@localhost\nbench8@localhost\nbench9@localhost\n"
    );
    let storage = SqliteStorage::open(&data.join("starling.db"))
        .await
        .unwrap();
    let rosters = storage.stores().rosters;
    assert_eq!(rosters.items("bench8", "localhost").await.unwrap(), []);
    assert_eq!(rosters.version("bench8", "localhost").await.unwrap(), 0);
    storage.close().await;
}

/// Refusals happen before the database is opened: the data directory is never created.
#[test]
fn import_refuses_bad_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let import = |extra: &[&str]| {
        let mut args = vec![
            "user",
            "import",
            "--prefix",
            "u",
            "--data-dir",
            data_arg(&data),
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    assert_fails(
        &import(&["--count", "20", "--ring", "3", "--password", "pw"]),
        "error: --ring 3 is odd: each user gets R/2 contacts on either side, so R must be even\n",
    );
    assert_fails(
        &import(&["--count", "4", "--ring", "4", "--password", "pw"]),
        "error: --ring 4 is out of range: it must be at least 2 and less than --count (4)\n",
    );
    assert_fails(
        &import(&["--count", "0", "--password", "pw"]),
        "error: --count must be at least 1\n",
    );
    assert_fails(
        &import(&[
            "--count",
            "2",
            "--domain",
            "example.net",
            "--password",
            "pw",
        ]),
        "error: example.net is not served by this configuration (hosts: localhost)\n",
    );
    assert_fails(
        &import(&["--count", "2", "--password", ""]),
        "error: the password is not acceptable (empty, or prohibited characters)\n",
    );
    // RFC 7622 §3.3: names must be the same under PRECIS as under stringprep; a ZERO WIDTH
    // JOINER in the prefix (nodeprep would drop it) is refused for the first account already.
    assert_fails(
        &run(&[
            "user",
            "import",
            "--prefix",
            "u\u{200D}",
            "--count",
            "2",
            "--password",
            "pw",
            "--data-dir",
            data_arg(&data),
        ]),
        "error: \"u\\u{200d}1\" cannot be the user name of a new account: PRECIS (RFC 7622 \
         §3.3: the UsernameCaseMapped profile of RFC 8265) refuses U+200D (character 2), which \
         is a joiner, allowed only after a virama (RFC 5892 Appendix A.1, A.2); stringprep's \
         nodeprep would silently store it as \"u1\"\n",
    );
    assert!(!data.exists());
}
