//! `Decoder::set_limits`: XEP-0388 SASL2 succeeds without a stream restart, so the limits after
//! authentication must apply from the next stanza on the same decoder.
#![allow(clippy::unwrap_used)]

use starling_stream::{Decoder, Frame, Limits};

fn frames(d: &mut Decoder, mut input: &[u8]) -> Vec<Result<Frame, String>> {
    let mut out = Vec::new();
    loop {
        match d.next_frame(&mut input) {
            Ok(Some(f)) => out.push(Ok(f)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e.to_string()));
                return out;
            }
        }
    }
}

#[test]
fn larger_limits_apply_from_the_next_stanza() {
    let big = format!("<message><body>{}</body></message>", "x".repeat(12 * 1024));
    let header = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

    // Before: 8 KiB per stanza refuses it.
    let mut d = Decoder::new(Limits::PREAUTH);
    assert!(matches!(frames(&mut d, header)[..], [Ok(Frame::Header(_))]));
    let got = frames(&mut d, big.as_bytes());
    assert!(matches!(got.last(), Some(Err(_))), "{got:?}");

    // After set_limits between frames: the same stanza passes, in one piece or in two.
    for split in [big.len(), 100, 9000] {
        let mut d = Decoder::new(Limits::PREAUTH);
        assert!(matches!(frames(&mut d, header)[..], [Ok(Frame::Header(_))]));
        assert!(matches!(
            frames(
                &mut d,
                b"<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'/>"
            )[..],
            [Ok(Frame::Element(_))]
        ));
        d.set_limits(Limits::DEFAULT);
        let (a, b) = big.as_bytes().split_at(split);
        let mut got = frames(&mut d, a);
        got.extend(frames(&mut d, b));
        assert!(
            matches!(&got[..], [Ok(Frame::Element(e))] if e.name() == "message"),
            "split {split}: {got:?}"
        );
    }
}
