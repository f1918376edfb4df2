//! RFC 5802 §5 and RFC 7677 §3 test vectors, server and client side.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod common;

use common::*;
use starling_sasl::client::ScramClient;
use starling_sasl::{ChannelBindings, Mechanism, ScramCredential, ScramHash, ServerSession, Step};

struct Vector {
    mech: Mechanism,
    client_nonce: &'static str,
    server_nonce: &'static str,
    salt: &'static str,
    client_first: &'static str,
    server_first: &'static str,
    client_final: &'static str,
    server_final: &'static str,
}

const RFC5802: Vector = Vector {
    mech: Mechanism::ScramSha1,
    client_nonce: "fyko+d2lbbFgONRv9qkxdawL",
    server_nonce: "3rfcNHYJY1ZVvWVs7j",
    salt: "QSXCR+Q6sek8bf92",
    client_first: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    client_final: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    server_final: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

const RFC7677: Vector = Vector {
    mech: Mechanism::ScramSha256,
    client_nonce: "rOprNGfwEbeRWgbNEkqO",
    server_nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
    client_first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

fn vector_cred(v: &Vector) -> ScramCredential {
    ScramCredential::derive(v.mech.hash().unwrap(), "pencil", &b64d(v.salt), 4096).unwrap()
}

fn server_side(v: &Vector, initial_in_auth: bool) {
    let hash = v.mech.hash().unwrap();
    let initial = initial_in_auth.then_some(v.client_first.as_bytes());
    let (mut s, step) = ServerSession::start_with_server_nonce(
        v.mech,
        DOMAIN,
        ChannelBindings::none(),
        false,
        initial,
        v.server_nonce,
    );
    let step = if initial_in_auth {
        step
    } else {
        assert_eq!(step, Step::Challenge(Vec::new()));
        s.step(v.client_first.as_bytes())
    };
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "user".into(),
            hash
        }
    );
    assert_eq!(
        s.provide_credentials(Some(vector_cred(v))),
        Step::Challenge(v.server_first.as_bytes().to_vec())
    );
    assert_eq!(
        s.step(v.client_final.as_bytes()),
        Step::Success {
            username: "user".into(),
            additional_data: Some(v.server_final.as_bytes().to_vec()),
        }
    );
    assert!(s.is_done());
    // Nothing more is accepted after success.
    assert_eq!(
        s.step(v.client_final.as_bytes()),
        Step::Failure(starling_sasl::SaslFailure::MalformedRequest)
    );
}

fn client_side(v: &Vector) {
    let hash = v.mech.hash().unwrap();
    let mut c = ScramClient::new(hash, "user", "pencil", None, None)
        .unwrap()
        .with_client_nonce(v.client_nonce)
        .unwrap();
    assert_eq!(c.mechanism(), v.mech);
    assert_eq!(c.client_first(), v.client_first.as_bytes());
    assert_eq!(
        c.handle_server_first(v.server_first.as_bytes()).unwrap(),
        v.client_final.as_bytes()
    );
    c.verify_server_final(v.server_final.as_bytes()).unwrap();

    // A wrong server signature is rejected.
    let mut c = ScramClient::new(hash, "user", "pencil", None, None)
        .unwrap()
        .with_client_nonce(v.client_nonce)
        .unwrap();
    c.handle_server_first(v.server_first.as_bytes()).unwrap();
    let mut bad = b64d(&v.server_final[2..]);
    bad[0] ^= 1;
    assert_eq!(
        c.verify_server_final(format!("v={}", b64e(&bad)).as_bytes()),
        Err(starling_sasl::SaslError::ServerSignatureMismatch)
    );
}

#[test]
fn rfc5802_sha1_server() {
    server_side(&RFC5802, true);
    server_side(&RFC5802, false);
}

#[test]
fn rfc5802_sha1_client() {
    client_side(&RFC5802);
}

#[test]
fn rfc7677_sha256_server() {
    server_side(&RFC7677, true);
    server_side(&RFC7677, false);
}

#[test]
fn rfc7677_sha256_client() {
    client_side(&RFC7677);
}

#[test]
fn rfc5802_wrong_password_fails() {
    let v = &RFC5802;
    let (mut s, _) = ServerSession::start_with_server_nonce(
        v.mech,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(v.client_first.as_bytes()),
        v.server_nonce,
    );
    let cred = ScramCredential::derive(ScramHash::Sha1, "pencil2", &b64d(v.salt), 4096).unwrap();
    s.provide_credentials(Some(cred));
    assert_eq!(
        s.step(v.client_final.as_bytes()),
        Step::Failure(starling_sasl::SaslFailure::NotAuthorized)
    );
}

#[test]
fn invalid_fixed_nonce_falls_back_to_random() {
    let (mut s, _) = ServerSession::start_with_server_nonce(
        Mechanism::ScramSha1,
        DOMAIN,
        ChannelBindings::none(),
        false,
        Some(RFC5802.client_first.as_bytes()),
        "bad,nonce",
    );
    let sf = String::from_utf8(challenge(
        s.provide_credentials(Some(vector_cred(&RFC5802))),
    ))
    .unwrap();
    let nonce = sf.split(',').next().unwrap();
    assert!(nonce.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
    assert_eq!(nonce.len(), "r=fyko+d2lbbFgONRv9qkxdawL".len() + 24);
}
