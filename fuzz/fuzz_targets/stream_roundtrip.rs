//! The stream decoder on arbitrary bytes, split into chunks at fuzzer-chosen points.
//!
//! Input: one control byte `c`; the next `c % 8` bytes are chunk lengths (each + 1, used in turn,
//! over and over); the rest is what a client sends after a fixed valid stream header. With `c % 8 ==
//! 0` the whole input is fed at once (seeds start with `0`, so they stay readable text).
//!
//! Checked for every top-level element the decoder returns:
//! - parse → serialise → parse is a fixpoint, for both serialisations: `to_xml` (what storage
//!   keeps) and `write_in_stream` (what a recipient reads on a `jabber:client` stream whose header
//!   declared `stream:`). A stanza that would read back differently is a smuggling or corruption bug.
//! - the size invariant: the in-stream serialisation is at most the element's wire bytes + 512
//!   (hardening.md: no amplification, e.g. by a short prefix bound to a long namespace).
//!
//! And for the decoder itself: `Ok(None)` consumes all input; after an error every later call
//! returns the same error; and frames do not depend on how the bytes were split (the same input
//! fed whole gives the same frames until either run stops with an error).
//!
//! Decode errors are normal results, never failures of the target.

#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_proto::{Element, ns};
use starling_stream::{DecodeError, Decoder, Frame, Limits, parse_stored};

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

/// Slack allowed between an element's wire bytes and its re-serialisation (hardening.md: "serialized
/// size ≤ wire size + a constant"). With declarations kept where they were written and escaping
/// no longer than any sender must use, an unmodified stanza never grows.
const SIZE_SLACK: usize = 0;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(control % 8).min(rest.len());
    let (lens, body) = rest.split_at(n);
    let mut wire = Vec::with_capacity(HEADER.len() + body.len());
    wire.extend_from_slice(HEADER);
    wire.extend_from_slice(body);

    let chunked = decode(&wire, lens, true);
    if !lens.is_empty() {
        // Framing must not depend on where the reads split the bytes.
        let whole = decode(&wire, &[], false);
        let common = chunked.frames.len().min(whole.frames.len());
        assert_eq!(
            chunked.frames[..common],
            whole.frames[..common],
            "frames differ between chunked and whole input"
        );
        if chunked.error.is_none() && whole.error.is_none() {
            assert_eq!(
                chunked.frames.len(),
                whole.frames.len(),
                "chunked and whole input give a different number of frames"
            );
        }
    }
});

struct Decoded {
    frames: Vec<Frame>,
    error: Option<DecodeError>,
}

/// Feeds `wire` to a fresh decoder in chunks of `lens[i] + 1` bytes (all at once if `lens` is
/// empty), checking each element when `check` is set.
fn decode(wire: &[u8], lens: &[u8], check: bool) -> Decoded {
    let mut dec = Decoder::new(Limits::DEFAULT);
    let mut frames = Vec::new();
    // Offset in `wire` of the first byte not yet consumed, and where the current frame began.
    let mut pos = 0usize;
    let mut frame_start = 0usize;
    let mut i = 0usize;
    while pos < wire.len() {
        let len = if lens.is_empty() {
            wire.len()
        } else {
            usize::from(lens[i % lens.len()]) + 1
        };
        i += 1;
        let end = pos.saturating_add(len).min(wire.len());
        let mut input = &wire[pos..end];
        loop {
            let before = input.len();
            let result = dec.next_frame(&mut input);
            pos += before - input.len();
            match result {
                Ok(Some(frame)) => {
                    if check && let Frame::Element(e) = &frame {
                        check_element(e, &wire[frame_start..pos]);
                    }
                    frames.push(frame);
                    frame_start = pos;
                    if input.is_empty() {
                        break;
                    }
                }
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) left input unconsumed");
                    break;
                }
                Err(e) => {
                    let mut more: &[u8] = b"<a/>";
                    assert_eq!(
                        dec.next_frame(&mut more).err().as_ref(),
                        Some(&e),
                        "the decoder forgot its error"
                    );
                    return Decoded {
                        frames,
                        error: Some(e),
                    };
                }
            }
        }
    }
    Decoded {
        frames,
        error: None,
    }
}

/// One element read after the fixed header, as the server's peer reads what it is sent.
fn parse_in_stream(xml: &str) -> Result<Element, DecodeError> {
    let mut dec = Decoder::new(Limits::DEFAULT);
    let mut input = HEADER;
    dec.next_frame(&mut input)?;
    let mut input = xml.as_bytes();
    match dec.next_frame(&mut input)? {
        Some(Frame::Element(e)) if input.is_empty() => Ok(e),
        other => Err(DecodeError::BadFormat(format!(
            "not one element: {other:?}"
        ))),
    }
}

fn check_element(e: &Element, wire: &[u8]) {
    // Whitespace keepalives before the element were consumed with it, but are not part of it.
    let wire_len = wire.len() - wire.iter().take_while(|b| b.is_ascii_whitespace()).count();

    let mut in_stream = String::new();
    e.write_in_stream(ns::CLIENT, &mut in_stream);
    let stored = e.to_xml();

    match parse_stored(&stored) {
        Ok(again) => assert_eq!(&again, e, "to_xml does not read back the same: {stored}"),
        Err(err) => panic!("to_xml output does not parse ({err}): {stored}"),
    }
    // The in-stream form must mean the same on a stream with the same header.
    match parse_in_stream(&in_stream) {
        Ok(again) => assert_eq!(
            &again, e,
            "write_in_stream does not read back the same: {in_stream}"
        ),
        Err(err) => panic!("write_in_stream output does not parse ({err}): {in_stream}"),
    }

    assert!(
        in_stream.len() <= wire_len + SIZE_SLACK,
        "serialisation amplifies: {} bytes on the wire, {} re-serialised",
        wire_len,
        in_stream.len()
    );
}
