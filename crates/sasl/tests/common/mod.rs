#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use starling_sasl::client::ScramClient;
use starling_sasl::{
    ChannelBindingType, ChannelBindings, Mechanism, ScramCredential, ScramHash, ServerSession, Step,
};

pub const DOMAIN: &str = "example.com";

pub fn b64d(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

pub fn b64e(d: &[u8]) -> String {
    STANDARD.encode(d)
}

pub fn bindings() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![0xE1; 32]),
        tls_server_end_point: Some(vec![0x5E; 32]),
    }
}

/// Cheap credential (few iterations) for tests that are not about PBKDF2.
pub fn cred(hash: ScramHash, password: &str) -> ScramCredential {
    ScramCredential::derive(hash, password, b"0123456789abcdef", 16).unwrap()
}

pub fn challenge(step: Step) -> Vec<u8> {
    match step {
        Step::Challenge(c) => c,
        other => panic!("expected challenge, got {other:?}"),
    }
}

/// Runs a full SCRAM exchange; returns the server's last step (and the client's verdict on
/// server-final if it was a success).
pub fn run_scram(
    mech: Mechanism,
    bindings: ChannelBindings,
    plus_advertised: bool,
    client: &mut ScramClient,
    server_cred: Option<ScramCredential>,
) -> Step {
    let (mut server, step) = ServerSession::start(
        mech,
        DOMAIN,
        bindings,
        plus_advertised,
        Some(&client.client_first()),
    );
    let Step::NeedCredentials { hash, .. } = &step else {
        return step;
    };
    assert_eq!(Some(*hash), mech.hash());
    let server_first = match server.provide_credentials(server_cred) {
        Step::Challenge(c) => c,
        other => return other,
    };
    let client_final = client.handle_server_first(&server_first).unwrap();
    let step = server.step(&client_final);
    if let Step::Success {
        additional_data: Some(v),
        ..
    } = &step
    {
        client.verify_server_final(v).unwrap();
    }
    step
}

pub fn success(user: &str) -> Step {
    Step::Success {
        username: user.to_owned(),
        additional_data: None,
    }
}

pub fn is_scram_success(step: &Step, user: &str) -> bool {
    matches!(step, Step::Success { username, additional_data: Some(v) }
        if username == user && v.starts_with(b"v="))
}

pub fn client_with(
    hash: ScramHash,
    user: &str,
    pass: &str,
    binding: Option<(ChannelBindingType, Vec<u8>)>,
    authzid: Option<&str>,
) -> ScramClient {
    ScramClient::new(hash, user, pass, binding, authzid).unwrap()
}
