//! The protocol scripts of `tests/scripts/` (workspace root), one test per file, plus tests of the
//! runner itself: a wrong expectation must fail, naming the line and both stanzas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use starling_testkit::script::{ScriptError, run_script, run_source};

fn scripts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/scripts");
    dir.canonicalize().unwrap_or(dir)
}

async fn run_file(file: &str) {
    if let Err(e) = run_script(&scripts_dir().join(file)).await {
        panic!("{e}");
    }
}

/// One `#[tokio::test]` per script, and the list of files for [`every_script_is_listed`].
macro_rules! scripts {
    ($($(#[$attr:meta])* $test:ident => $file:literal,)*) => {
        $(
            $(#[$attr])*
            #[tokio::test]
            async fn $test() {
                run_file($file).await;
            }
        )*
        const LISTED: &[&str] = &[$($file),*];
    };
}

scripts! {
    ping_disco => "ping_disco.scs",
    messages => "messages.scs",
    restart_accounts => "restart_accounts.scs",
    seed1_refusal => "seed1_refusal.scs",
    seed1_refusal_unsubscribed => "seed1_refusal_unsubscribed.scs",
    seed2_approve_then_refuse => "seed2_approve_then_refuse.scs",
    seed3_both => "seed3_both.scs",
    receipts => "receipts.scs",
    roster_errors => "roster_errors.scs",
    restart => "restart.scs",
    carbons => "carbons.scs",
    mam_catchup => "mam_catchup.scs",
    omemo => "omemo.scs",
    muc => "muc.scs",
}

#[test]
fn every_script_is_listed() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(scripts_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".scs"))
        .collect();
    let listed: BTreeSet<String> = LISTED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(LISTED.len(), listed.len(), "a script is listed twice");
    let missing: Vec<&String> = on_disk.difference(&listed).collect();
    let gone: Vec<&String> = listed.difference(&on_disk).collect();
    assert!(
        missing.is_empty() && gone.is_empty(),
        "not listed in scripts!: {missing:?}; listed but not in tests/scripts/: {gone:?}"
    );
}

/// Every script parses (a syntax error is found even while its test is ignored).
#[test]
fn every_script_parses() {
    for file in LISTED {
        let path = scripts_dir().join(file);
        let source = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = starling_testkit::script::parse(&source, &path.display().to_string()) {
            panic!("{e}");
        }
    }
}

const ALICE: &str = "[Client] alice\n\tuser: alice\n\tpassword: pw\n\tresource: r\n\n-----\n\n";

/// Lines of [`ALICE`].
const ALICE_LINES: usize = 7;

fn step_error(e: ScriptError) -> (usize, String, String) {
    match e {
        ScriptError::Step {
            line,
            step,
            message,
            ..
        } => (line, step, message),
        other => panic!("not a step error: {other}"),
    }
}

#[tokio::test]
async fn a_matching_script_passes() {
    let body = "alice connects\n\
                alice sends:\n\
                \t<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives:\n\
                \t<iq type='result' id='{*}' to='${alice's full JID}'/>\n\
                alice disconnects\n";
    run_source(&format!("{ALICE}{body}"), "inline")
        .await
        .unwrap();
}

#[tokio::test]
async fn captured_values_are_used_later() {
    let body = "alice connects\n\
                alice sends:\n\
                \t<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives:\n\
                \t<iq type='result' id='p1' to='{$me}'/>\n\
                alice sends:\n\
                \t<message to='${me}' id='m1'><body>to myself</body></message>\n\
                alice receives:\n\
                \t<message to='alice@localhost/r' id='m1' from='${me}'><body>to myself</body></message>\n\
                alice disconnects\n";
    run_source(&format!("{ALICE}{body}"), "inline")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_expectation_fails_with_line_and_both_stanzas() {
    let body = "alice connects\n\
                alice sends:\n\
                \t<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives:\n\
                \t<iq type='result' id='p2' to='${alice's full JID}'/>\n";
    let err = run_source(&format!("{ALICE}{body}"), "inline.scs")
        .await
        .unwrap_err();
    let text = err.to_string();
    let (line, step, message) = step_error(err);
    assert_eq!(line, ALICE_LINES + 4);
    assert_eq!(step, "alice receives:");
    assert!(
        text.starts_with(&format!(
            "inline.scs:{}: step `alice receives:` failed: line {}: ",
            ALICE_LINES + 4,
            ALICE_LINES + 5
        )),
        "{text}"
    );
    assert!(
        message.contains("attribute id: expected \"p2\", got \"p1\""),
        "{message}"
    );
    assert!(
        message.contains("expected: <iq type='result' id='p2' to='alice@localhost/r'/>"),
        "{message}"
    );
    assert!(
        message.contains("  actual: <iq id='p1' to='alice@localhost/r' type='result'/>"),
        "{message}"
    );
}

#[tokio::test]
async fn the_second_stanza_of_a_block_is_named() {
    let body = "alice connects\n\
                alice sends:\n\
                \t<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                \t<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives:\n\
                \t<iq type='result' id='p1' to='${alice's full JID}'/>\n\
                \t<iq type='error' id='p2' to='${alice's full JID}'/>\n";
    let (line, _, message) = step_error(
        run_source(&format!("{ALICE}{body}"), "inline")
            .await
            .unwrap_err(),
    );
    assert_eq!(line, ALICE_LINES + 5);
    assert!(
        message.starts_with(&format!("stanza 2 of 2 (line {}): stanza mismatch at /iq: attribute type: expected \"error\", got \"result\"", ALICE_LINES + 7)),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_stanza_times_out_and_says_what_was_expected() {
    let body = "alice connects\n\
                alice receives:\n\
                \t<message/>\n";
    let (line, _, message) = step_error(
        run_source(&format!("{ALICE}{body}"), "inline")
            .await
            .unwrap_err(),
    );
    assert_eq!(line, ALICE_LINES + 2);
    assert!(
        message.starts_with(&format!(
            "expected the stanza of line {}: <message/>, got timed out after",
            ALICE_LINES + 3
        )),
        "{message}"
    );
}

#[tokio::test]
async fn receives_nothing_fails_when_something_arrives() {
    let body = "alice connects\n\
                alice sends:\n\
                \t<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives nothing\n";
    let (line, step, message) = step_error(
        run_source(&format!("{ALICE}{body}"), "inline")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (line, step.as_str()),
        (ALICE_LINES + 4, "alice receives nothing")
    );
    assert!(
        message.starts_with(
            "unexpected: expected silence, got <iq id='p1' to='alice@localhost/r' type='result'/>"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn any_order_accepts_a_permutation_and_rejects_a_stranger() {
    let body = "alice connects\n\
                alice sends:\n\
                \t<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                \t<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives, in any order:\n\
                \t<iq type='result' id='p2' to='${alice's full JID}'/>\n\
                \t<iq type='result' id='p1' to='${alice's full JID}'/>\n\
                alice sends:\n\
                \t<iq type='get' id='p3'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives, in any order:\n\
                \t<iq type='result' id='p4' to='${alice's full JID}'/>\n";
    let (line, _, message) = step_error(
        run_source(&format!("{ALICE}{body}"), "inline")
            .await
            .unwrap_err(),
    );
    assert_eq!(line, ALICE_LINES + 10);
    assert!(
        message.starts_with(
            "received a stanza that matches none of the 1 still expected (of 1):\n\
             received: <iq id='p3' to='alice@localhost/r' type='result'/>\n\
             expected one of:\n  line 18: <iq type='result' id='p4' to='alice@localhost/r'/>"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn unread_stanzas_fail_a_disconnect() {
    // The second answer is left unread before disconnecting.
    let body = "alice connects\n\
                alice sends:\n\
                \t<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                \t<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>\n\
                alice receives:\n\
                \t<iq type='result' id='p1' to='${alice's full JID}'/>\n\
                alice disconnects\n";
    let (line, _, message) = step_error(
        run_source(&format!("{ALICE}{body}"), "inline")
            .await
            .unwrap_err(),
    );
    assert_eq!(line, ALICE_LINES + 7);
    assert!(
        message.starts_with("unread input before disconnecting: unexpected: expected silence, got <iq id='p2' to='alice@localhost/r' type='result'/>"),
        "{message}"
    );
}

#[tokio::test]
async fn steps_on_a_client_that_is_not_connected_fail() {
    let body = "alice sends:\n\t<presence/>\n";
    let (line, _, message) = step_error(
        run_source(&format!("{ALICE}{body}"), "inline")
            .await
            .unwrap_err(),
    );
    assert_eq!(line, ALICE_LINES + 1);
    assert_eq!(
        message,
        "alice is not connected (add `alice connects` first)"
    );
    let body = "alice connects\nalice connects\n";
    let (line, _, message) = step_error(
        run_source(&format!("{ALICE}{body}"), "inline")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (line, message.as_str()),
        (ALICE_LINES + 2, "alice is already connected")
    );
}

#[tokio::test]
async fn full_jid_of_a_client_that_never_connected_is_an_error() {
    let source = "[Client] alice\n\tuser: alice\n\tpassword: pw\n\
                  [Client] bob\n\tuser: bob\n\tpassword: pw\n-----\n\
                  alice connects\n\
                  alice sends:\n\
                  \t<message to='${bob's full JID}'/>\n";
    let (line, _, message) = step_error(run_source(source, "inline").await.unwrap_err());
    assert_eq!(line, 9);
    assert_eq!(
        message,
        "line 10: `${bob's full JID}` is unknown: bob has not connected yet"
    );
}

#[tokio::test]
async fn a_missing_file_is_reported() {
    let err = run_script(&scripts_dir().join("no-such-script.scs"))
        .await
        .unwrap_err();
    assert!(matches!(err, ScriptError::Read { .. }), "{err}");
    assert!(err.to_string().contains("no-such-script.scs"), "{err}");
}
