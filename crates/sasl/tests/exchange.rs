//! Round trips and policy checks: -PLUS, downgrade, authzid, PLAIN, unknown users, caching.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod common;

use common::*;
use starling_sasl::client::{ScramClient, plain};
use starling_sasl::{
    ChannelBindingType::{TlsExporter, TlsServerEndPoint},
    ChannelBindings, Mechanism, SaltedPassword, SaslError, SaslFailure, ScramCredential, ScramHash,
    ScramServerError, ServerSession, Step,
};

const NA: Step = Step::Failure(SaslFailure::NotAuthorized);
const MALFORMED: Step = Step::Failure(SaslFailure::MalformedRequest);
const BAD_AUTHZ: Step = Step::Failure(SaslFailure::InvalidAuthzid);

#[test]
fn sha512_round_trip() {
    let mut c = client_with(ScramHash::Sha512, "juliet", "r0m30", None, None);
    let step = run_scram(
        Mechanism::ScramSha512,
        ChannelBindings::none(),
        false,
        &mut c,
        Some(cred(ScramHash::Sha512, "r0m30")),
    );
    assert!(is_scram_success(&step, "juliet"), "{step:?}");
    let Step::Success {
        additional_data: Some(v),
        ..
    } = step
    else {
        unreachable!()
    };
    // v= carries a 64-byte SHA-512 HMAC.
    assert_eq!(b64d(std::str::from_utf8(&v[2..]).unwrap()).len(), 64);
}

#[test]
fn wrong_password_each_hash() {
    for hash in ScramHash::ALL {
        let mut c = client_with(hash, "juliet", "wrong", None, None);
        let step = run_scram(
            Mechanism::scram(hash, false),
            ChannelBindings::none(),
            false,
            &mut c,
            Some(cred(hash, "r0m30")),
        );
        assert_eq!(step, NA, "{hash}");
    }
}

#[test]
fn plus_with_both_binding_types() {
    let b = bindings();
    for hash in ScramHash::ALL {
        for (ty, data) in [
            (TlsExporter, b.tls_exporter.clone().unwrap()),
            (TlsServerEndPoint, b.tls_server_end_point.clone().unwrap()),
        ] {
            let mut c = client_with(hash, "juliet", "pw", Some((ty, data)), None);
            assert_eq!(c.mechanism(), Mechanism::scram(hash, true));
            let first = String::from_utf8(c.client_first()).unwrap();
            assert!(first.starts_with(&format!("p={},,n=juliet,r=", ty.name())));
            let step = run_scram(
                Mechanism::scram(hash, true),
                b.clone(),
                true,
                &mut c,
                Some(cred(hash, "pw")),
            );
            assert!(is_scram_success(&step, "juliet"), "{hash} {ty}: {step:?}");
        }
    }
}

#[test]
fn plus_wrong_cb_data_fails() {
    for ty in [TlsExporter, TlsServerEndPoint] {
        let mut c = client_with(
            ScramHash::Sha256,
            "juliet",
            "pw",
            Some((ty, vec![7; 32])),
            None,
        );
        let step = run_scram(
            Mechanism::ScramSha256Plus,
            bindings(),
            true,
            &mut c,
            Some(cred(ScramHash::Sha256, "pw")),
        );
        assert_eq!(step, NA, "{ty}");
    }
}

/// RFC 5802 §7: a channel-binding type this connection does not offer, whether unknown
/// (`tls-unique`, which TLS 1.3 does not define) or known but unavailable here, fails with
/// `malformed-request` and `e=unsupported-channel-binding-type`, before any credential lookup,
/// and is no rejected password.
#[test]
fn plus_unavailable_or_unknown_cb_type_is_unsupported() {
    let only_exporter = ChannelBindings {
        tls_exporter: Some(vec![1; 32]),
        tls_server_end_point: None,
    };
    let cases = [
        (only_exporter, "p=tls-server-end-point,,n=juliet,r=abcdef"),
        (bindings(), "p=tls-unique,,n=juliet,r=abcdef"),
        (bindings(), "p=x,,n=juliet,r=abcdef"),
    ];
    for (offered, first) in cases {
        let (s, step) = ServerSession::start(
            Mechanism::ScramSha256Plus,
            DOMAIN,
            offered,
            true,
            Some(first.as_bytes()),
        );
        assert_eq!(step, MALFORMED, "{first}");
        assert_eq!(
            s.server_error(),
            Some(ScramServerError::UnsupportedChannelBindingType),
            "{first}"
        );
        assert_eq!(
            s.server_error().map(|e| e.server_final()).as_deref(),
            Some("e=unsupported-channel-binding-type")
        );
        assert!(!s.credentials_rejected(), "{first}");
    }
    // Syntactically invalid cb-name: malformed, with nothing to tell in e=.
    let (s, step) = ServerSession::start(
        Mechanism::ScramSha256Plus,
        DOMAIN,
        bindings(),
        true,
        Some(b"p=tls_exporter,,n=juliet,r=abcdef"),
    );
    assert_eq!(step, MALFORMED);
    assert_eq!(s.server_error(), None);
}

/// COMPAT(poezio): poezio on slixmpp 1.8.3 tries SCRAM-SHA-1-PLUS with `tls-unique` and a nonce of decimal
/// digits (`str(random.random())[2:]`), no authzid. Its exact client-first message.
#[test]
fn poezio_tls_unique_client_first() {
    let (s, step) = ServerSession::start(
        Mechanism::ScramSha1Plus,
        DOMAIN,
        bindings(),
        true,
        Some(b"p=tls-unique,,n=user,r=8419250731941614"),
    );
    assert_eq!(step, MALFORMED);
    assert_eq!(
        s.server_error(),
        Some(ScramServerError::UnsupportedChannelBindingType)
    );
    assert!(!s.credentials_rejected());
}

/// Only a wrong proof or password, or an unknown user, is a rejected credential; every other
/// failure is not (they are not password guesses).
#[test]
fn only_wrong_credentials_are_rejected_credentials() {
    // Wrong SCRAM proof, each hash.
    for hash in ScramHash::ALL {
        let mut c = client_with(hash, "juliet", "wrong", None, None);
        let (mut s, _) = ServerSession::start(
            Mechanism::scram(hash, false),
            DOMAIN,
            ChannelBindings::none(),
            false,
            Some(&c.client_first()),
        );
        let sf = challenge(s.provide_credentials(Some(cred(hash, "r0m30"))));
        let cf = c.handle_server_first(&sf).unwrap();
        assert_eq!(s.step(&cf), NA);
        assert!(s.credentials_rejected(), "{hash}");
        assert_eq!(s.server_error(), None);
    }
    // Unknown user over SCRAM.
    let mut c = client_with(ScramHash::Sha256, "nobody", "pw", None, None);
    let (mut s, _) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(&c.client_first()),
    );
    let sf = challenge(s.provide_credentials(None));
    let cf = c.handle_server_first(&sf).unwrap();
    assert_eq!(s.step(&cf), NA);
    assert!(s.credentials_rejected());
    // PLAIN: wrong password and unknown user.
    for (user, stored) in [
        ("juliet", Some(cred(ScramHash::Sha256, "r0m30"))),
        ("nobody", None),
    ] {
        let (mut s, step) = ServerSession::start(
            Mechanism::Plain,
            DOMAIN,
            ChannelBindings::none(),
            false,
            Some(&plain(None, user, "wrong")),
        );
        assert!(matches!(step, Step::NeedCredentials { .. }));
        assert_eq!(s.provide_credentials(stored), NA);
        assert!(s.credentials_rejected(), "{user}");
    }
    // Not password guesses: a tampered nonce, a downgrade, malformed input, an abort.
    let (mut s, _, cf) = to_final(ScramHash::Sha256);
    assert_eq!(s.step(cf.replacen(",r=", ",r=X", 1).as_bytes()), NA);
    assert!(!s.credentials_rejected());
    let (s, step) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        bindings(),
        true,
        Some(b"y,,n=juliet,r=abc"),
    );
    assert_eq!(step, NA);
    assert!(!s.credentials_rejected());
    let (s, step) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(b"n,,n=juliet"),
    );
    assert_eq!(step, MALFORMED);
    assert!(!s.credentials_rejected());
    let (mut s, _) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        None,
    );
    assert_eq!(s.abort(), Step::Failure(SaslFailure::Aborted));
    assert!(!s.credentials_rejected());
}

#[test]
fn gs2_flag_must_match_mechanism() {
    let cases: [(Mechanism, &str, Step); 6] = [
        (Mechanism::ScramSha256, "p=tls-exporter", MALFORMED),
        (Mechanism::ScramSha256Plus, "n", MALFORMED),
        (Mechanism::ScramSha256Plus, "y", MALFORMED),
        (
            Mechanism::ScramSha256,
            "n",
            Step::NeedCredentials {
                username: "juliet".into(),
                hash: ScramHash::Sha256,
            },
        ),
        (Mechanism::ScramSha256, "x", MALFORMED),
        (Mechanism::ScramSha256, "", MALFORMED),
    ];
    for (mech, flag, expected) in cases {
        let first = format!("{flag},,n=juliet,r=abcdef");
        let (_, step) =
            ServerSession::start(mech, DOMAIN, bindings(), true, Some(first.as_bytes()));
        assert_eq!(step, expected, "{mech} {flag}");
    }
}

#[test]
fn downgrade_detected() {
    // Client supports binding but saw no -PLUS: "y". If we did advertise -PLUS → downgrade.
    let mut c =
        client_with(ScramHash::Sha256, "juliet", "pw", None, None).with_binding_support_claimed();
    assert!(c.client_first().starts_with(b"y,,"));
    assert_eq!(
        run_scram(
            Mechanism::ScramSha256,
            bindings(),
            true,
            &mut c,
            Some(cred(ScramHash::Sha256, "pw"))
        ),
        NA
    );
    // Not advertised (e.g. no TLS): "y" is fine.
    let mut c =
        client_with(ScramHash::Sha256, "juliet", "pw", None, None).with_binding_support_claimed();
    let step = run_scram(
        Mechanism::ScramSha256,
        ChannelBindings::none(),
        false,
        &mut c,
        Some(cred(ScramHash::Sha256, "pw")),
    );
    assert!(is_scram_success(&step, "juliet"), "{step:?}");
    // "n" with -PLUS advertised: client just doesn't do binding.
    let mut c = client_with(ScramHash::Sha256, "juliet", "pw", None, None);
    let step = run_scram(
        Mechanism::ScramSha256,
        bindings(),
        true,
        &mut c,
        Some(cred(ScramHash::Sha256, "pw")),
    );
    assert!(is_scram_success(&step, "juliet"), "{step:?}");
}

#[test]
fn gs2_header_tampering_detected_in_c() {
    // Client sent "y" in the first message but its c= claims "n,,": mismatch.
    let (mut s, _) = ServerSession::start(
        Mechanism::ScramSha1,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(b"y,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
    );
    let salt = b64d("QSXCR+Q6sek8bf92");
    let sf = challenge(s.provide_credentials(Some(
        ScramCredential::derive(ScramHash::Sha1, "pencil", &salt, 4096).unwrap(),
    )));
    let nonce = std::str::from_utf8(&sf)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let cf = format!("c=biws,{nonce},p={}", b64e(&[0; 20]));
    assert_eq!(s.step(cf.as_bytes()), NA);
}

#[test]
fn scram_authzid() {
    let ok = ["juliet@example.com", "juliet@EXAMPLE.COM"];
    for a in ok {
        let mut c = client_with(ScramHash::Sha256, "juliet", "pw", None, Some(a));
        let step = run_scram(
            Mechanism::ScramSha256,
            ChannelBindings::none(),
            false,
            &mut c,
            Some(cred(ScramHash::Sha256, "pw")),
        );
        assert!(is_scram_success(&step, "juliet"), "{a}: {step:?}");
    }
    for a in [
        "romeo@example.com",
        "juliet@example.org",
        "juliet@example.com/balcony",
        "juliet",
    ] {
        let mut c = client_with(ScramHash::Sha256, "juliet", "pw", None, Some(a));
        let step = run_scram(
            Mechanism::ScramSha256,
            ChannelBindings::none(),
            false,
            &mut c,
            Some(cred(ScramHash::Sha256, "pw")),
        );
        assert_eq!(step, BAD_AUTHZ, "{a}");
    }
    // Empty "a=" is a syntax error (saslname is 1*char).
    let (_, step) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(b"n,a=,n=juliet,r=abc"),
    );
    assert_eq!(step, MALFORMED);
}

#[test]
fn scram_username_escapes_decoded() {
    let (_, step) = ServerSession::start(
        Mechanism::ScramSha1,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(b"n,,n=a=2Cb=3Dc,r=abc"),
    );
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "a,b=c".into(),
            hash: ScramHash::Sha1
        }
    );
    let mut c = client_with(ScramHash::Sha1, "a,b=c", "pw", None, None);
    assert!(c.client_first().starts_with(b"n,,n=a=2Cb=3Dc,r="));
    let step = run_scram(
        Mechanism::ScramSha1,
        ChannelBindings::none(),
        false,
        &mut c,
        Some(cred(ScramHash::Sha1, "pw")),
    );
    assert!(is_scram_success(&step, "a,b=c"), "{step:?}");
    for bad in [&b"n,,n=a=2c,r=abc"[..], b"n,,n=a=,r=abc", b"n,,n=,r=abc"] {
        let (_, step) = ServerSession::start(
            Mechanism::ScramSha1,
            DOMAIN,
            ChannelBindings::none(),
            false,
            Some(bad),
        );
        assert_eq!(step, MALFORMED, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn scram_username_saslprep() {
    // U+00AD maps to nothing (RFC 4013 §2.1); a control character is prohibited.
    let (_, step) = ServerSession::start(
        Mechanism::ScramSha1,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some("n,,n=ju\u{AD}liet,r=abc".as_bytes()),
    );
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "juliet".into(),
            hash: ScramHash::Sha1
        }
    );
    let (_, step) = ServerSession::start(
        Mechanism::ScramSha1,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some("n,,n=ju\u{7}liet,r=abc".as_bytes()),
    );
    assert_eq!(step, NA);
}

#[test]
fn mandatory_extension_and_syntax() {
    let cases: [&[u8]; 9] = [
        b"n,,m=foo,n=juliet,r=abc",
        b"n,,n=juliet",
        b"n,,n=juliet,r=",
        b"n,,n=juliet,r=a b",
        b"n,,r=abc,n=juliet",
        b"n,,n=juliet,r=abc,1=x",
        b"n,n=juliet,r=abc",
        b"n,,n=juliet,r=abc\xff",
        b"\xff,,n=juliet,r=abc",
    ];
    for msg in cases {
        let (_, step) = ServerSession::start(
            Mechanism::ScramSha256,
            DOMAIN,
            ChannelBindings::none(),
            false,
            Some(msg),
        );
        assert_eq!(step, MALFORMED, "{}", String::from_utf8_lossy(msg));
    }
    // Optional extensions are ignored.
    let (_, step) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(b"n,,n=juliet,r=abc,x=whatever"),
    );
    assert!(matches!(step, Step::NeedCredentials { .. }));
}

/// Drives a session to the point where the client-final is expected; returns the session,
/// the server-first string and a matching correct client-final.
fn to_final(hash: ScramHash) -> (ServerSession, String, String) {
    let mut c = client_with(hash, "juliet", "pw", None, None);
    let (mut s, _) = ServerSession::start(
        Mechanism::scram(hash, false),
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(&c.client_first()),
    );
    let sf = challenge(s.provide_credentials(Some(cred(hash, "pw"))));
    let cf = String::from_utf8(c.handle_server_first(&sf).unwrap()).unwrap();
    (s, String::from_utf8(sf).unwrap(), cf)
}

#[test]
fn client_final_checks() {
    // Sanity: the unmodified message succeeds.
    let (mut s, _, cf) = to_final(ScramHash::Sha256);
    assert!(is_scram_success(&s.step(cf.as_bytes()), "juliet"));

    // Nonce changed.
    let (mut s, _, cf) = to_final(ScramHash::Sha256);
    let tampered = cf.replacen(",r=", ",r=X", 1);
    assert_eq!(s.step(tampered.as_bytes()), NA);

    // Proof flipped.
    let (mut s, _, cf) = to_final(ScramHash::Sha256);
    let (head, proof) = cf.rsplit_once(",p=").unwrap();
    let mut p = b64d(proof);
    p[5] ^= 0x80;
    assert_eq!(s.step(format!("{head},p={}", b64e(&p)).as_bytes()), NA);

    // Proof of the wrong length.
    let (mut s, _, cf) = to_final(ScramHash::Sha256);
    let (head, _) = cf.rsplit_once(",p=").unwrap();
    assert_eq!(
        s.step(format!("{head},p={}", b64e(&[0; 20])).as_bytes()),
        NA
    );

    // Missing proof / bad base64 / missing c=.
    for bad in [
        "c=biws,r=abc",
        "c=biws,r=abc,p=!!!",
        "r=abc,p=AAAA",
        "c=biws,p=AAAA",
    ] {
        let (mut s, _, _) = to_final(ScramHash::Sha256);
        assert_eq!(s.step(bad.as_bytes()), MALFORMED, "{bad}");
    }

    // Optional extension between r= and p= is ignored but part of AuthMessage: the client's
    // proof no longer matches.
    let (mut s, _, cf) = to_final(ScramHash::Sha256);
    let tampered = cf.replacen(",p=", ",x=1,p=", 1);
    assert_eq!(s.step(tampered.as_bytes()), NA);
}

#[test]
fn unknown_user_is_indistinguishable() {
    let server_first = |user: &str, cred: Option<ScramCredential>| {
        let c = client_with(ScramHash::Sha256, user, "pw", None, None);
        let (mut s, _) = ServerSession::start(
            Mechanism::ScramSha256,
            DOMAIN,
            ChannelBindings::none(),
            false,
            Some(&c.client_first()),
        );
        let sf = String::from_utf8(challenge(s.provide_credentials(cred))).unwrap();
        let parts: Vec<String> = sf.split(',').map(str::to_owned).collect();
        assert_eq!(parts.len(), 3, "{sf}");
        (parts[0].len(), b64d(&parts[1][2..]), parts[2].clone())
    };
    let real = ScramCredential::derive(ScramHash::Sha256, "pw", &[9; 16], 4096).unwrap();
    let (real_nonce_len, real_salt, real_i) = server_first("juliet", Some(real));
    let (ghost_nonce_len, ghost_salt, ghost_i) = server_first("ghost", None);
    assert_eq!(real_nonce_len, ghost_nonce_len);
    assert_eq!(real_salt.len(), ghost_salt.len());
    assert_eq!(ghost_salt.len(), 16);
    assert_eq!(real_i, "i=4096");
    assert_eq!(ghost_i, "i=4096");
    // Stable salt per username, different between usernames and hashes.
    assert_eq!(server_first("ghost", None).1, ghost_salt);
    assert_ne!(server_first("ghost2", None).1, ghost_salt);

    // And the exchange fails at the end with NotAuthorized, not earlier.
    let mut c = client_with(ScramHash::Sha256, "ghost", "pw", None, None);
    assert_eq!(
        run_scram(
            Mechanism::ScramSha256,
            ChannelBindings::none(),
            false,
            &mut c,
            None
        ),
        NA
    );

    // Configurable iteration count for unknown users.
    let c = client_with(ScramHash::Sha1, "ghost", "pw", None, None);
    let (mut s, _) = ServerSession::start(
        Mechanism::ScramSha1,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(&c.client_first()),
    );
    s.set_unknown_user_iterations(10000);
    let sf = String::from_utf8(challenge(s.provide_credentials(None))).unwrap();
    assert!(sf.ends_with(",i=10000"), "{sf}");
}

#[test]
fn bad_stored_credentials_and_misuse() {
    // Credential of the wrong hash is a server-side error.
    let c = client_with(ScramHash::Sha256, "juliet", "pw", None, None);
    let (mut s, _) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(&c.client_first()),
    );
    assert_eq!(
        s.provide_credentials(Some(cred(ScramHash::Sha1, "pw"))),
        Step::Failure(SaslFailure::TemporaryAuthFailure)
    );
    // Truncated keys.
    let (mut s, _) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(&c.client_first()),
    );
    let mut bad = cred(ScramHash::Sha256, "pw");
    bad.stored_key.pop();
    assert_eq!(
        s.provide_credentials(Some(bad)),
        Step::Failure(SaslFailure::TemporaryAuthFailure)
    );
    // provide_credentials when not asked.
    let (mut s, step) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        None,
    );
    assert_eq!(step, Step::Challenge(vec![]));
    assert_eq!(
        s.provide_credentials(None),
        Step::Failure(SaslFailure::TemporaryAuthFailure)
    );
    // step while waiting for credentials.
    let (mut s, _) = ServerSession::start(
        Mechanism::ScramSha256,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(&c.client_first()),
    );
    assert_eq!(
        s.step(b"c=biws"),
        Step::Failure(SaslFailure::TemporaryAuthFailure)
    );
    // abort.
    let (mut s, _) = ServerSession::start(
        Mechanism::Plain,
        DOMAIN,
        ChannelBindings::none(),
        false,
        None,
    );
    assert_eq!(s.abort(), Step::Failure(SaslFailure::Aborted));
    assert!(s.is_done());
}

#[test]
fn empty_initial_response_means_challenge_first() {
    // ANONYMOUS is the exception: `anonymous_*` below.
    for mech in Mechanism::ALL
        .into_iter()
        .filter(|m| *m != Mechanism::Anonymous)
    {
        let (mut s, step) = ServerSession::start(mech, DOMAIN, bindings(), true, Some(b""));
        assert_eq!(step, Step::Challenge(vec![]), "{mech}");
        // An empty response to the empty challenge is malformed (no endless loop).
        assert_eq!(s.step(b""), MALFORMED, "{mech}");
    }
}

// ---- PLAIN --------------------------------------------------------------------------------

fn plain_run(msg: &[u8], stored: Option<ScramCredential>) -> Step {
    let (mut s, step) = ServerSession::start(
        Mechanism::Plain,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(msg),
    );
    match step {
        Step::NeedCredentials { hash, .. } => {
            assert_eq!(hash, ScramHash::Sha256);
            s.provide_credentials(stored)
        }
        other => other,
    }
}

#[test]
fn plain_cases() {
    let stored = || Some(cred(ScramHash::Sha256, "r0m30"));
    assert_eq!(
        plain_run(&plain(None, "juliet", "r0m30"), stored()),
        success("juliet")
    );
    assert_eq!(plain_run(&plain(None, "juliet", "wrong"), stored()), NA);
    assert_eq!(plain_run(&plain(None, "nobody", "r0m30"), None), NA);
    assert_eq!(
        plain_run(
            &plain(Some("juliet@example.com"), "juliet", "r0m30"),
            stored()
        ),
        success("juliet")
    );
    assert_eq!(
        plain_run(
            &plain(Some("romeo@example.com"), "juliet", "r0m30"),
            stored()
        ),
        BAD_AUTHZ
    );
    assert_eq!(
        plain_run(
            &plain(Some("juliet@example.com/r"), "juliet", "r0m30"),
            stored()
        ),
        BAD_AUTHZ
    );
    // Any stored hash works for PLAIN.
    for hash in ScramHash::ALL {
        assert_eq!(
            plain_run(&plain(None, "juliet", "r0m30"), Some(cred(hash, "r0m30"))),
            success("juliet"),
            "{hash}"
        );
    }
    // SASLprep on the password (U+00AD maps to nothing).
    assert_eq!(
        plain_run(&plain(None, "juliet", "r0\u{AD}m30"), stored()),
        success("juliet")
    );
    // Malformed.
    for bad in [
        &b"juliet"[..],
        b"\0juliet",
        b"\0juliet\0",
        b"\0\0pw",
        b"a\0b\0c\0d",
        b"\0jul\xffiet\0pw",
    ] {
        assert_eq!(plain_run(bad, stored()), MALFORMED, "{bad:?}");
    }
    // Broken stored credential.
    let mut broken = cred(ScramHash::Sha256, "r0m30");
    broken.iterations = 0;
    assert_eq!(
        plain_run(&plain(None, "juliet", "r0m30"), Some(broken)),
        Step::Failure(SaslFailure::TemporaryAuthFailure)
    );
}

#[test]
fn plain_without_initial_response() {
    let (mut s, step) = ServerSession::start(
        Mechanism::Plain,
        DOMAIN,
        ChannelBindings::none(),
        false,
        None,
    );
    assert_eq!(step, Step::Challenge(vec![]));
    assert_eq!(
        s.step(&plain(None, "juliet", "r0m30")),
        Step::NeedCredentials {
            username: "juliet".into(),
            hash: ScramHash::Sha256
        }
    );
    assert_eq!(
        s.provide_credentials(Some(cred(ScramHash::Sha1, "r0m30"))),
        success("juliet")
    );
    assert_eq!(plain(Some("a"), "b", "c"), b"a\0b\0c");
}

// ---- client ------------------------------------------------------------------------------

#[test]
fn cached_salted_password_is_used() {
    let salt = b"0123456789abcdef";
    let good = SaltedPassword::derive(ScramHash::Sha256, "pw", salt, 16).unwrap();
    let other = SaltedPassword::derive(ScramHash::Sha256, "not-pw", salt, 16).unwrap();

    // A matching cache entry is used instead of PBKDF2: feeding one derived from another
    // password makes the login fail, which proves the cache was consulted.
    let mut c =
        client_with(ScramHash::Sha256, "juliet", "pw", None, None).with_salted_password(other);
    assert_eq!(
        run_scram(
            Mechanism::ScramSha256,
            ChannelBindings::none(),
            false,
            &mut c,
            Some(cred(ScramHash::Sha256, "pw"))
        ),
        NA
    );
    let mut c = client_with(ScramHash::Sha256, "juliet", "pw", None, None)
        .with_salted_password(good.clone());
    let step = run_scram(
        Mechanism::ScramSha256,
        ChannelBindings::none(),
        false,
        &mut c,
        Some(cred(ScramHash::Sha256, "pw")),
    );
    assert!(is_scram_success(&step, "juliet"));
    assert_eq!(c.salted_password(), Some(&good));

    // A cache entry for other parameters is ignored and replaced.
    let stale = SaltedPassword::derive(ScramHash::Sha256, "not-pw", salt, 17).unwrap();
    let mut c =
        client_with(ScramHash::Sha256, "juliet", "pw", None, None).with_salted_password(stale);
    let step = run_scram(
        Mechanism::ScramSha256,
        ChannelBindings::none(),
        false,
        &mut c,
        Some(cred(ScramHash::Sha256, "pw")),
    );
    assert!(is_scram_success(&step, "juliet"));
    assert_eq!(c.salted_password(), Some(&good));
    // The cached value reproduces the server's stored credential.
    assert_eq!(
        ScramCredential::from_salted_password(&good),
        cred(ScramHash::Sha256, "pw")
    );
}

#[test]
fn client_rejects_bad_server_messages() {
    let new = || {
        ScramClient::new(ScramHash::Sha1, "user", "pencil", None, None)
            .unwrap()
            .with_client_nonce("abc")
            .unwrap()
    };
    let cases: [(&str, SaslError); 9] = [
        ("r=abcdef,s=QSXCR+Q6sek8bf92,i=0", SaslError::ZeroIterations),
        (
            "r=abcdef,s=QSXCR+Q6sek8bf92,i=1000001",
            SaslError::TooManyIterations(1_000_001),
        ),
        ("r=xyzdef,s=QSXCR+Q6sek8bf92,i=1", SaslError::NonceMismatch),
        ("r=abc,s=QSXCR+Q6sek8bf92,i=1", SaslError::NonceMismatch),
        (
            "m=x,r=abcdef,s=QSXCR+Q6sek8bf92,i=1",
            SaslError::UnsupportedExtension,
        ),
        (
            "r=abcdef,s=!,i=1",
            SaslError::MalformedServerMessage("missing or invalid s="),
        ),
        (
            "r=abcdef,s=QSXCR+Q6sek8bf92,i=-1",
            SaslError::MalformedServerMessage("missing or invalid i="),
        ),
        (
            "r=abcdef,s=QSXCR+Q6sek8bf92,i=99999999999",
            SaslError::MalformedServerMessage("missing or invalid i="),
        ),
        (
            "s=QSXCR+Q6sek8bf92",
            SaslError::MalformedServerMessage("missing r="),
        ),
    ];
    for (msg, err) in cases {
        assert_eq!(new().handle_server_first(msg.as_bytes()), Err(err), "{msg}");
    }
    let mut c = new().with_max_iterations(10);
    assert_eq!(
        c.handle_server_first(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=11"),
        Err(SaslError::TooManyIterations(11))
    );
    // Out of order.
    let mut c = new();
    assert_eq!(
        c.verify_server_final(b"v=AAAA"),
        Err(SaslError::InvalidState)
    );
    let mut c = new();
    c.handle_server_first(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=1")
        .unwrap();
    assert_eq!(
        c.handle_server_first(b"r=abcdef,s=QSXCR+Q6sek8bf92,i=1"),
        Err(SaslError::InvalidState)
    );
    assert_eq!(
        c.verify_server_final(b"e=invalid-proof"),
        Err(SaslError::ServerError("invalid-proof".into()))
    );
    assert_eq!(
        new().with_client_nonce("a,b").map(|_| ()),
        Err(SaslError::InvalidNonce)
    );
    assert_eq!(
        ScramClient::new(ScramHash::Sha1, "", "pw", None, None).map(|_| ()),
        Err(SaslError::Saslprep)
    );
}

// ---- ANONYMOUS (RFC 4505) -----------------------------------------------------------------

fn anonymous(initial: Option<&[u8]>) -> (ServerSession, Step) {
    ServerSession::start(
        Mechanism::Anonymous,
        DOMAIN,
        ChannelBindings::none(),
        false,
        initial,
    )
}

const ANONYMOUS_SUCCESS: Step = Step::Success {
    username: String::new(),
    additional_data: None,
};

/// RFC 4505 §2–§3: one message from the client, optional trace information (an e-mail address
/// or an opaque token), and the exchange is over; the trace names nobody.
#[test]
fn anonymous_is_one_message_with_optional_trace() {
    // An empty initial response (`=` on the wire) is the whole exchange.
    let (s, step) = anonymous(Some(b""));
    assert_eq!(step, ANONYMOUS_SUCCESS);
    assert_eq!(s.anonymous_trace(), None);
    assert!(s.is_done());
    // A token.
    let (s, step) = anonymous(Some("sirhc-räber".as_bytes()));
    assert_eq!(step, ANONYMOUS_SUCCESS);
    assert_eq!(s.anonymous_trace(), Some("sirhc-räber"));
    // An e-mail address.
    let (s, step) = anonymous(Some(b"juliet@example.org"));
    assert_eq!(step, ANONYMOUS_SUCCESS);
    assert_eq!(s.anonymous_trace(), Some("juliet@example.org"));
    // No initial response: an empty challenge (RFC 6120 §6.4.2), then the message.
    let (mut s, step) = anonymous(None);
    assert_eq!(step, Step::Challenge(vec![]));
    assert_eq!(s.step(b""), ANONYMOUS_SUCCESS);
    // Nothing after the end.
    assert_eq!(s.step(b"more"), MALFORMED);
}

/// RFC 4505 §3: `token = 1*255TCHAR` (an e-mail address is held to 255 characters too), UTF-8,
/// and no control characters (the "trace" stringprep profile prohibits them).
#[test]
fn anonymous_trace_is_limited() {
    let longest = "é".repeat(starling_sasl::MAX_TRACE_CHARS);
    let (s, step) = anonymous(Some(longest.as_bytes()));
    assert_eq!(step, ANONYMOUS_SUCCESS);
    assert_eq!(s.anonymous_trace(), Some(longest.as_str()));
    let too_long = "a".repeat(starling_sasl::MAX_TRACE_CHARS + 1);
    for bad in [too_long.as_bytes(), b"\xff\xfe", b"tab\there", b"nul\0"] {
        let (s, step) = anonymous(Some(bad));
        assert_eq!(step, MALFORMED, "{bad:?}");
        assert_eq!(s.anonymous_trace(), None);
    }
}

#[test]
fn anonymous_name_round_trips() {
    assert_eq!(
        Mechanism::from_name("ANONYMOUS"),
        Some(Mechanism::Anonymous)
    );
    assert_eq!(Mechanism::Anonymous.hash(), None);
    assert!(!Mechanism::Anonymous.is_plus());
}
