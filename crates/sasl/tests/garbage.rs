//! Random and mutated input at every step must never panic, and must never authenticate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may unwrap

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};
use starling_sasl::client::{ScramClient, plain};
use starling_sasl::{ChannelBindings, Mechanism, ScramHash, ServerSession, Step};

const ALPHABET: &[u8] = b"nyp=,a@rcisvem0123456789+/ABCxyz\0\xff\xc3=2C=3D-.";

fn random_bytes(rng: &mut StdRng) -> Vec<u8> {
    let len = rng.random_range(0..64);
    (0..len)
        .map(|_| {
            if rng.random_bool(0.5) {
                ALPHABET[rng.random_range(0..ALPHABET.len())]
            } else {
                rng.random::<u8>()
            }
        })
        .collect()
}

/// Mutates a valid message: flip, delete, insert, duplicate or truncate.
fn mutate(rng: &mut StdRng, msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for _ in 0..rng.random_range(1..4) {
        let pos = if m.is_empty() {
            0
        } else {
            rng.random_range(0..m.len())
        };
        match rng.random_range(0..5) {
            0 if !m.is_empty() => m[pos] ^= 1 << rng.random_range(0..8),
            1 if !m.is_empty() => {
                m.remove(pos);
            }
            2 => m.insert(pos, ALPHABET[rng.random_range(0..ALPHABET.len())]),
            3 => {
                let tail = m[pos..].to_vec();
                m.extend_from_slice(&tail);
            }
            _ => m.truncate(pos),
        }
    }
    m
}

fn input(rng: &mut StdRng, valid: &[u8]) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 => random_bytes(rng),
        1 => valid.to_vec(),
        _ => mutate(rng, valid),
    }
}

fn not_success(step: &Step) -> bool {
    !matches!(step, Step::Success { .. })
}

#[test]
fn server_never_panics_on_garbage() {
    let mut rng = StdRng::seed_from_u64(0x5a51);
    let (mut reached_final, mut successes) = (0, 0);
    // ANONYMOUS accepts almost anything by design: `anonymous_never_panics_on_garbage`.
    let mechs: Vec<Mechanism> = Mechanism::ALL
        .into_iter()
        .filter(|m| *m != Mechanism::Anonymous)
        .collect();
    for round in 0..3000 {
        let mech = mechs[round % mechs.len()];
        let plus_advertised = rng.random_bool(0.5);
        let b = if rng.random_bool(0.7) {
            bindings()
        } else {
            ChannelBindings::none()
        };
        let hash = mech.hash().unwrap_or(ScramHash::Sha256);
        let binding = mech.is_plus().then(|| {
            (
                starling_sasl::ChannelBindingType::TlsExporter,
                vec![0xE1; 32],
            )
        });
        let mut client = ScramClient::new(hash, "juliet", "pw", binding, None).unwrap();
        let valid_first = if mech == Mechanism::Plain {
            plain(None, "juliet", "pw")
        } else {
            client.client_first()
        };
        let first = input(&mut rng, &valid_first);
        let tampered_first = first != valid_first;
        let initial = rng.random_bool(0.5).then_some(first.as_slice());
        let (mut s, mut step) = ServerSession::start(mech, DOMAIN, b, plus_advertised, initial);
        s.set_unknown_user_iterations(16); // PBKDF2 cost is not what this test is about
        if initial.is_none() {
            assert_eq!(step, Step::Challenge(vec![]));
            step = s.step(&first);
        }
        let Step::NeedCredentials { .. } = step else {
            assert!(not_success(&step));
            continue;
        };
        let known = rng.random_bool(0.7);
        step = s.provide_credentials(known.then(|| cred(hash, "pw")));
        let Step::Challenge(server_first) = step else {
            continue;
        };
        // Client final: valid if we can compute it, then maybe mangled.
        let valid_final = if tampered_first {
            Vec::new()
        } else {
            client
                .handle_server_first(&server_first)
                .unwrap_or_default()
        };
        let fin = input(&mut rng, &valid_final);
        let step = s.step(&fin);
        reached_final += 1;
        successes += usize::from(!not_success(&step));
        if !known || fin != valid_final || valid_final.is_empty() {
            assert!(not_success(&step), "{mech}: {step:?}");
        }
        // Further input after the end is refused.
        assert!(not_success(&s.step(&random_bytes(&mut rng))));
        assert!(not_success(&s.provide_credentials(None)));
    }
    // The generator must actually exercise the later steps, including valid exchanges
    // (expected ≈ 1100 and ≈ 90; nonces are random so the count varies).
    eprintln!("reached final: {reached_final}, successes: {successes}");
    assert!(reached_final > 600, "{reached_final}");
    assert!(successes > 40, "{successes}");
}

/// RFC 4505 §3: whatever arrives, the exchange ends at once, with success exactly for UTF-8 of
/// at most 255 characters without control characters.
#[test]
fn anonymous_never_panics_on_garbage() {
    let mut rng = StdRng::seed_from_u64(0xa707);
    for _ in 0..2000 {
        let msg = random_bytes(&mut rng);
        let (mut s, step) =
            ServerSession::start(Mechanism::Anonymous, DOMAIN, bindings(), false, Some(&msg));
        let valid = std::str::from_utf8(&msg)
            .is_ok_and(|t| t.chars().count() <= 255 && !t.chars().any(char::is_control));
        assert_eq!(!not_success(&step), valid, "{msg:?}");
        assert!(s.is_done());
        assert!(not_success(&s.step(&msg)));
    }
}

#[test]
fn client_never_panics_on_garbage() {
    let mut rng = StdRng::seed_from_u64(0xc11e);
    for _ in 0..2000 {
        let mut c = ScramClient::new(ScramHash::Sha1, "user", "pencil", None, None)
            .unwrap()
            .with_client_nonce("abc")
            .unwrap()
            .with_max_iterations(64);
        let sf = input(&mut rng, b"r=abcdef,s=QSXCR+Q6sek8bf92,i=8");
        if c.handle_server_first(&sf).is_ok() {
            let v = input(&mut rng, b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
            let _ = c.verify_server_final(&v);
        }
    }
}
