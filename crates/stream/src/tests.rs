use super::*;
use starling_proto::ns;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>";

fn decode_all(dec: &mut Decoder, chunks: &[&[u8]]) -> Result<Vec<Frame>, DecodeError> {
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        while let Some(f) = dec.next_frame(&mut input)? {
            out.push(f);
        }
        assert!(input.is_empty());
    }
    Ok(out)
}

fn decode(doc: &str) -> Result<Vec<Frame>, DecodeError> {
    decode_all(&mut Decoder::new(Limits::DEFAULT), &[doc.as_bytes()])
}

fn stanza_xml(f: &Frame) -> String {
    match f {
        Frame::Element(e) => {
            let mut s = String::new();
            e.write_in_stream(ns::CLIENT, &mut s);
            s
        }
        other => panic!("not an element: {other:?}"),
    }
}

#[test]
fn header_stanzas_and_close() {
    let doc = format!(
        "{HEADER}<message to='b@localhost' type='chat' id='1'><body>hi &amp; bye</body>\
         <request xmlns='urn:xmpp:receipts'/></message>  \n<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"
    );
    let frames = decode(&doc).unwrap();
    assert_eq!(frames.len(), 4);
    assert_eq!(
        frames[0],
        Frame::Header(StreamHeader {
            to: Some("localhost".into()),
            from: None,
            id: None,
            version: Some("1.0".into()),
            lang: Some("en".into()),
        })
    );
    assert_eq!(
        stanza_xml(&frames[1]),
        "<message to='b@localhost' type='chat' id='1'><body>hi &amp; bye</body><request xmlns='urn:xmpp:receipts'/></message>"
    );
    assert_eq!(
        stanza_xml(&frames[2]),
        "<iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>"
    );
    assert_eq!(frames[3], Frame::Close);
}

#[test]
fn split_at_every_offset_gives_the_same_frames() {
    let doc = format!(
        "{HEADER}<message to='b@localhost' xml:lang='de'><body>Grüße — ünïcödé &lt;/message&gt;</body>\
         <x xmlns='vcard-temp:x:update'><photo>abc</photo></x></message>\
         <presence><show>away</show><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>\
         <iq type='set' id='a'><query xmlns='jabber:iq:roster'><item jid='x@y' name='&apos;q&quot;'><group>Friends</group></item></query></iq>\
         </stream:stream>"
    );
    let bytes = doc.as_bytes();
    let whole = decode_all(&mut Decoder::new(Limits::DEFAULT), &[bytes]).unwrap();
    assert_eq!(whole.len(), 5);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        let split = decode_all(&mut Decoder::new(Limits::DEFAULT), &[a, b]).unwrap();
        assert_eq!(split, whole, "split at {i}");
    }
    // And byte by byte.
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        decode_all(&mut Decoder::new(Limits::DEFAULT), &chunks).unwrap(),
        whole
    );
}

#[test]
fn next_frame_stops_after_each_frame() {
    let doc = format!("{HEADER}<a xmlns='urn:x'/><b xmlns='urn:x'/>");
    let mut dec = Decoder::new(Limits::DEFAULT);
    let mut input = doc.as_bytes();
    assert!(matches!(
        dec.next_frame(&mut input),
        Ok(Some(Frame::Header(_)))
    ));
    assert!(matches!(
        dec.next_frame(&mut input),
        Ok(Some(Frame::Element(_)))
    ));
    // The second element is still in the input, untouched.
    assert_eq!(input, b"<b xmlns='urn:x'/>");
}

#[test]
fn escaped_markup_in_body_never_becomes_a_stanza() {
    let doc = format!(
        "{HEADER}<message><body>&lt;/body&gt;&lt;/message&gt;&lt;message to='evil'&gt;</body></message>\
         <message><body><![CDATA[</message><message to='x'>]]></body></message>"
    );
    let frames = decode(&doc).unwrap();
    assert_eq!(frames.len(), 3);
    let first = stanza_xml(&frames[1]);
    assert_eq!(
        first,
        "<message><body>&lt;/body>&lt;/message>&lt;message to='evil'></body></message>"
    );
    assert_eq!(
        stanza_xml(&frames[2]),
        "<message><body>&lt;/message>&lt;message to='x'></body></message>"
    );
}

#[test]
fn parse_serialise_parse_is_a_fixpoint() {
    let doc = format!(
        "{HEADER}<message to='a@b' id='x&apos;y'><body xml:lang='fr'>a\r\nb\t&amp;&lt;&gt;\"'</body>\
         <thing xmlns='urn:q' xmlns:p='urn:p' p:attr='v&#10;w'><p:inner>t</p:inner></thing></message>"
    );
    let frames = decode(&doc).unwrap();
    let once = stanza_xml(&frames[1]);
    let again = decode(&format!("{HEADER}{once}")).unwrap();
    assert_eq!(frames[1], again[1]);
    assert_eq!(stanza_xml(&again[1]), once);
}

#[test]
fn nested_stream_element_is_just_an_element() {
    let doc = format!("{HEADER}<message><stream:stream/></message><stream:stream to='x'>");
    let mut dec = Decoder::new(Limits::DEFAULT);
    let frames = decode_all(&mut dec, &[doc.as_bytes()]).unwrap();
    // The nested one is payload of the message; the top-level one has not ended and is an element
    // being built, never a new stream header.
    assert_eq!(frames.len(), 2);
    assert_eq!(
        stanza_xml(&frames[1]),
        "<message><stream:stream/></message>"
    );
    assert!(dec.in_stanza());
}

#[test]
fn endless_unclosed_element_is_cut_at_the_limit() {
    let limits = Limits {
        max_stanza_bytes: 4096,
        ..Limits::DEFAULT
    };
    let mut dec = Decoder::new(limits);
    let mut input = HEADER.as_bytes();
    assert!(matches!(
        dec.next_frame(&mut input),
        Ok(Some(Frame::Header(_)))
    ));
    let mut input: &[u8] = b"<message><body>";
    assert_eq!(dec.next_frame(&mut input), Ok(None));
    let chunk = [b'a'; 512];
    let mut fed = 0;
    let err = loop {
        let mut input = &chunk[..];
        match dec.next_frame(&mut input) {
            Ok(None) => fed += chunk.len(),
            Ok(Some(f)) => panic!("unexpected frame {f:?}"),
            Err(e) => break e,
        }
        assert!(fed < 64 * 1024, "limit never enforced");
    };
    assert_eq!(err, DecodeError::StanzaTooBig(4096));
    // Bounded: cut within one token (the token size is bounded by the stanza limit here).
    assert!(fed <= 4096 + 4096, "fed {fed}");
    assert_eq!(
        err.to_stream_error().condition,
        StreamErrorCondition::PolicyViolation
    );
    // Poisoned afterwards.
    let mut input: &[u8] = b"</body></message>";
    assert_eq!(dec.next_frame(&mut input), Err(err));
}

#[test]
fn big_attribute_is_cut() {
    let mut dec = Decoder::new(Limits::PREAUTH);
    let doc = format!("{HEADER}<auth xmlns='x' a='{}'/>", "v".repeat(20_000));
    let err = decode_all(&mut dec, &[doc.as_bytes()]).unwrap_err();
    assert!(
        matches!(err, DecodeError::Policy(_) | DecodeError::StanzaTooBig(_)),
        "{err:?}"
    );
}

#[test]
fn long_tokens_grow_the_token_buffer_up_to_its_limit() {
    // A value as long as rxml's token limit, arriving in pieces, comes out whole, twice in a row
    // (the parser is parked between stanzas), and one byte over the 16 KiB limit is refused.
    let value = "v".repeat(16 * 1024);
    let mut dec = Decoder::new(Limits::DEFAULT);
    let doc = format!("{HEADER}<m xmlns='u' a='{value}'/><m xmlns='u' a='{value}'/>");
    let chunks: Vec<&[u8]> = doc.as_bytes().chunks(100).collect();
    let frames = decode_all(&mut dec, &chunks).unwrap();
    let values: Vec<usize> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Element(e) => e.attr("a").map(str::len),
            _ => None,
        })
        .collect();
    assert_eq!(values, [16 * 1024, 16 * 1024]);

    let mut dec = Decoder::new(Limits::DEFAULT);
    let doc = format!("{HEADER}<m xmlns='u' a='{value}v'/>");
    let err = decode_all(&mut dec, &[doc.as_bytes()]).unwrap_err();
    // A size limit, not a forbidden XML feature: RFC 6120 §4.9.3.14 <policy-violation/>.
    assert_eq!(
        err,
        DecodeError::Policy("a name or attribute value is longer than 16384 bytes".into())
    );
    assert_eq!(
        err.to_stream_error().condition,
        StreamErrorCondition::PolicyViolation
    );
}

#[test]
fn stanza_exactly_at_limit_passes_and_one_more_fails() {
    let base = HEADER.to_string();
    let body = |n: usize| format!("<m xmlns='u'>{}</m>", "x".repeat(n));
    let overhead = body(0).len();
    let limits = Limits {
        max_stanza_bytes: 1000,
        ..Limits::DEFAULT
    };
    let ok = format!("{base}{}", body(1000 - overhead));
    assert_eq!(
        decode_all(&mut Decoder::new(limits), &[ok.as_bytes()])
            .unwrap()
            .len(),
        2
    );
    let bad = format!("{base}{}", body(1001 - overhead));
    assert_eq!(
        decode_all(&mut Decoder::new(limits), &[bad.as_bytes()]),
        Err(DecodeError::StanzaTooBig(1000))
    );
}

#[test]
fn whitespace_between_stanzas_does_not_accumulate() {
    let limits = Limits {
        max_stanza_bytes: 300,
        ..Limits::DEFAULT
    };
    let mut dec = Decoder::new(limits);
    let mut chunks: Vec<Vec<u8>> = vec![HEADER.as_bytes().to_vec()];
    for _ in 0..100 {
        chunks.push(b"  \n ".to_vec());
        chunks.push(b"<r xmlns='urn:x'>0123456789</r>".to_vec());
    }
    let refs: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    assert_eq!(decode_all(&mut dec, &refs).unwrap().len(), 101);
}

#[test]
fn endless_element_head_is_cut_at_the_limit() {
    let limits = Limits {
        max_stanza_bytes: 4096,
        max_attributes_per_element: usize::MAX,
        max_attributes: usize::MAX,
        ..Limits::DEFAULT
    };
    let mut dec = Decoder::new(limits);
    let mut input = HEADER.as_bytes();
    assert!(matches!(
        dec.next_frame(&mut input),
        Ok(Some(Frame::Header(_)))
    ));
    let mut input: &[u8] = b"<message";
    assert_eq!(dec.next_frame(&mut input), Ok(None));
    let mut n = 0;
    let err = loop {
        let attr = format!(" a{n}='x'");
        n += 1;
        let mut input = attr.as_bytes();
        match dec.next_frame(&mut input) {
            Ok(None) => {}
            Ok(Some(f)) => panic!("unexpected frame {f:?}"),
            Err(e) => break e,
        }
        assert!(n < 10_000, "limit never enforced");
    };
    assert_eq!(err, DecodeError::StanzaTooBig(4096));
    assert!(n * 8 <= 4096 + 64, "cut late: {n} attributes");
}

#[test]
fn oversized_header_is_cut() {
    let mut dec = Decoder::new(Limits {
        max_attributes_per_element: usize::MAX,
        ..Limits::PREAUTH
    });
    let doc = format!(
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'{}",
        (0..2000).map(|i| format!(" a{i}='x'")).collect::<String>()
    );
    assert_eq!(
        decode_all(&mut dec, &[doc.as_bytes()]),
        Err(DecodeError::Policy(format!(
            "stream header longer than {MAX_HEADER_BYTES} bytes"
        )))
    );
}

#[test]
fn element_count_and_depth_limits() {
    let many = format!("{HEADER}<m xmlns='u'>{}</m>", "<a/>".repeat(32));
    assert_eq!(
        decode_all(&mut Decoder::new(Limits::PREAUTH), &[many.as_bytes()]),
        Err(DecodeError::TooManyElements(32))
    );
    let fine = format!("{HEADER}<m xmlns='u'>{}</m>", "<a/>".repeat(31));
    assert!(decode_all(&mut Decoder::new(Limits::PREAUTH), &[fine.as_bytes()]).is_ok());
    let deep = format!("{HEADER}<m xmlns='u'>{}", "<a>".repeat(200));
    assert_eq!(
        decode_all(&mut Decoder::new(Limits::DEFAULT), &[deep.as_bytes()]),
        Err(DecodeError::TooDeep(100))
    );
}

fn first_error(doc: &str) -> StreamErrorCondition {
    decode(doc).unwrap_err().to_stream_error().condition
}

#[test]
fn restricted_xml_is_rejected() {
    use StreamErrorCondition::*;
    let dtd = "<?xml version='1.0'?><!DOCTYPE lol [<!ENTITY lol 'lol'>]><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>";
    // RFC 6120 §11.1: a document type declaration is restricted XML, not merely malformed.
    assert_eq!(first_error(dtd), RestrictedXml);
    let xxe = format!("{HEADER}<!DOCTYPE m SYSTEM 'file:///etc/passwd'><message/>");
    assert_eq!(first_error(&xxe), RestrictedXml);
    let entity = format!("{HEADER}<message><body>&lol;</body></message>");
    assert_eq!(first_error(&entity), RestrictedXml);
    let comment = format!("{HEADER}<!-- hi --><message/>");
    assert_eq!(first_error(&comment), RestrictedXml);
    let pi = format!("{HEADER}<?evil stuff?><message/>");
    assert_eq!(first_error(&pi), RestrictedXml);
    let mut bad_utf8 = format!("{HEADER}<message><body>").into_bytes();
    bad_utf8.extend_from_slice(&[b'a', 0xff, 0xfe, b'b']);
    bad_utf8.extend_from_slice(b"</body></message>");
    let err = decode_all(&mut Decoder::new(Limits::DEFAULT), &[&bad_utf8]).unwrap_err();
    assert_eq!(err.to_stream_error().condition, NotWellFormed);
    let mismatched = format!("{HEADER}<message></iq>");
    assert_eq!(first_error(&mismatched), NotWellFormed);
    let text = format!("{HEADER}hello<message/>");
    assert_eq!(first_error(&text), BadFormat);
}

/// XML 1.0 §2.8: whitespace (`Misc`) may precede the document element. go-sendxmpp sends a line
/// break after `</auth>`, which reaches the decoder made for the restarted stream first.
#[test]
fn whitespace_before_the_header_is_skipped() {
    let doc = format!("\n \r\n{HEADER}<message/>");
    let frames = decode(&doc).unwrap();
    assert!(matches!(frames[0], Frame::Header(_)));
    assert_eq!(frames.len(), 2);
    let frames = decode_all(
        &mut Decoder::new(Limits::DEFAULT),
        &[b"\n", b"  ", HEADER.as_bytes()],
    )
    .unwrap();
    assert!(matches!(frames[0], Frame::Header(_)));
    // Anything else before the header is still an error.
    assert!(decode(&format!("x{HEADER}")).is_err());
}

/// Namespaces in XML §3: the XML namespace is never the default namespace, and `xmlns:xml` may
/// only repeat its fixed binding (which is then not written again).
#[test]
fn reserved_namespaces_cannot_be_rebound() {
    use StreamErrorCondition::*;
    let xml_default = format!("{HEADER}<message><foo xmlns='{}'/></message>", ns::XML);
    assert_eq!(first_error(&xml_default), NotWellFormed);
    let xml_other = format!("{HEADER}<message xmlns:xml='urn:x'/>");
    assert_eq!(first_error(&xml_other), NotWellFormed);
    let redundant = format!(
        "{HEADER}<message xmlns:xml='{}'><xml:foo/></message>",
        ns::XML
    );
    let frames = decode(&redundant).unwrap();
    assert_eq!(stanza_xml(&frames[1]), "<message><xml:foo/></message>");
}

/// Per-stanza limits other than bytes: each a <policy-violation/> (RFC 6120 §4.9.3.14).
#[test]
fn attribute_and_declaration_limits() {
    let limits = Limits {
        max_attributes_per_element: 3,
        max_attributes: 5,
        max_namespace_declarations: 2,
        ..Limits::DEFAULT
    };
    let run = |doc: String| decode_all(&mut Decoder::new(limits), &[doc.as_bytes()]);
    assert!(run(format!("{HEADER}<m a='' b='' c=''/>")).is_ok());
    assert_eq!(
        run(format!("{HEADER}<m a='' b='' c='' d=''/>")),
        Err(DecodeError::Policy(
            "an element has more than 3 attributes".into()
        ))
    );
    assert_eq!(
        run(format!(
            "{HEADER}<m a='' b=''><n a='' b=''/><n a='' b=''/></m>"
        )),
        Err(DecodeError::Policy(
            "stanza has more than 5 attributes".into()
        ))
    );
    // Repeating the inherited default namespace is free; changing it counts.
    assert!(run(format!("{HEADER}<m xmlns='jabber:client'><n xmlns='jabber:client'/><n xmlns='jabber:client'/></m>")).is_ok());
    assert_eq!(
        run(format!(
            "{HEADER}<m xmlns:a='u' xmlns:b='v'><n xmlns='w'/></m>"
        )),
        Err(DecodeError::Policy(
            "stanza has more than 2 namespace declarations".into()
        ))
    );
    let err = run(format!("{HEADER}<m a='' b='' c='' d=''/>")).unwrap_err();
    assert_eq!(
        err.to_stream_error().condition,
        StreamErrorCondition::PolicyViolation
    );
}

/// A prefixed element may declare a default namespace it does not use itself, for its children:
/// that declaration is written once, on it, not on every child (found by the round-trip
/// property test: 396 bytes in, 714 out; with a 16 KB namespace and 2,000 children it would be
/// the 1,140x amplification again).
#[test]
fn a_default_namespace_declared_on_a_prefixed_element_is_written_once() {
    let long = format!("urn:{}", "l".repeat(1000));
    let stanza = format!(
        "<message><p:x xmlns:p='urn:a' xmlns='{long}'>{}</p:x></message>",
        "<a/>".repeat(100)
    );
    let frames = decode(&format!("{HEADER}{stanza}")).unwrap();
    assert_eq!(stanza_xml(&frames[1]), stanza);
    let Frame::Element(e) = &frames[1] else {
        panic!()
    };
    let x = e.children().next().unwrap();
    assert!(x.children().all(|a| a.is("a", &long)));
    assert_eq!(parse_stored(&e.to_xml()).unwrap(), *e);
}

/// An element written with a default namespace that a long prefix in scope is also bound to is
/// written back with the default declaration, not with the (longer) prefix (found by the stream
/// fuzzer: 390 bytes in, 435 out).
#[test]
fn a_default_declaration_is_not_traded_for_a_longer_prefix() {
    let p = "p".repeat(200);
    let stanza = format!("<message xmlns:{p}='urn:n'><x xmlns='urn:n' id='1'/><{p}:y/></message>");
    let frames = decode(&format!("{HEADER}{stanza}")).unwrap();
    assert_eq!(stanza_xml(&frames[1]), stanza);
}

/// A prefix the stream header declared and a stanza uses is declared again on the stanza, so
/// that it means the same wherever the stanza is written (offline storage, another stream).
#[test]
fn header_prefixes_travel_with_the_stanza() {
    let header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
        xmlns:h='urn:h' to='localhost' version='1.0'>";
    let frames = decode(&format!("{header}<message><h:x h:a='1'/><h:y/></message>")).unwrap();
    assert_eq!(
        stanza_xml(&frames[1]),
        "<message xmlns:h='urn:h'><h:x h:a='1'/><h:y/></message>"
    );
    let Frame::Element(e) = &frames[1] else {
        panic!()
    };
    assert_eq!(parse_stored(&e.to_xml()).unwrap(), *e);
}

#[test]
fn stream_header_checks() {
    use StreamErrorCondition::*;
    assert_eq!(
        first_error("<stream xmlns='jabber:client'>"),
        InvalidNamespace
    );
    assert_eq!(
        first_error("<stream:foo xmlns:stream='http://etherx.jabber.org/streams'>"),
        BadFormat
    );
    assert_eq!(first_error("<stream:stream>"), BadNamespacePrefix);
    let frames =
        decode("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server'><message/>")
            .unwrap();
    assert!(matches!(&frames[1], Frame::Element(e) if e.ns() == "jabber:server"));
}

#[test]
fn nothing_after_close() {
    let doc = format!("{HEADER}</stream:stream>  <message/>");
    assert_eq!(first_error(&doc), StreamErrorCondition::NotWellFormed);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512), split in 0usize..512) {
        let mut dec = Decoder::new(Limits::PREAUTH);
        let mut input = HEADER.as_bytes();
        let _ = dec.next_frame(&mut input);
        let split = split.min(data.len());
        for part in [&data[..split], &data[split..]] {
            let mut input = part;
            while let Ok(Some(_)) = dec.next_frame(&mut input) {}
        }
    }
}

#[test]
fn stored_stanzas_round_trip() {
    let el = Element::new("presence", ns::CLIENT)
        .with_attr("type", "subscribe")
        .with_attr("from", "a@b")
        .with_child(
            Element::new("x", "vcard-temp:x:update")
                .with_child(Element::new("photo", "vcard-temp:x:update").with_text("<&>")),
        );
    let back = parse_stored(&el.to_xml()).unwrap();
    assert_eq!(back, el);
    assert!(parse_stored("<presence/><presence/>").is_err());
    assert!(parse_stored("<presence>").is_err());
    assert!(parse_stored("<!DOCTYPE x><presence/>").is_err());
}

#[test]
fn buffered_bytes_follow_partial_stanzas() {
    let mut dec = Decoder::new(Limits::DEFAULT);
    let first = format!("{HEADER}<message to='b@localhost'><body>one</body></message>");
    let frames = decode_all(&mut dec, &[first.as_bytes()]).unwrap();
    assert_eq!(frames.len(), 2);
    // Between stanzas nothing is held.
    assert_eq!(dec.buffered_bytes(), 0);
    let frames = decode_all(
        &mut dec,
        &[
            b" <message to='c@localhost'><body>two</bo",
            b"dy></message>",
        ],
    )
    .unwrap();
    assert_eq!(
        frames.iter().map(stanza_xml).collect::<Vec<_>>(),
        ["<message to='c@localhost'><body>two</body></message>"]
    );
    // In the middle of a stanza the bytes are accounted for.
    let mut input: &[u8] = b"<iq type='get' id='3'><ping xmlns='urn:xmpp:ping'/>";
    assert_eq!(dec.next_frame(&mut input).unwrap(), None);
    assert!(dec.buffered_bytes() >= 40, "{}", dec.buffered_bytes());
    let frames = decode_all(&mut dec, &[b"</iq>"]).unwrap();
    assert_eq!(
        frames.iter().map(stanza_xml).collect::<Vec<_>>(),
        ["<iq type='get' id='3'><ping xmlns='urn:xmpp:ping'/></iq>"]
    );
    assert_eq!(dec.buffered_bytes(), 0);
}

/// Between stanzas a stream parks its parser in the thread's pool and holds none; streams
/// interleaved on one thread take each other's parsers and still frame exactly what each sent.
#[test]
fn parsers_are_parked_between_stanzas_and_shared() {
    let mut a = Decoder::new(Limits::DEFAULT);
    let mut b = Decoder::new(Limits::DEFAULT);
    let (fa, fb) = (
        decode_all(&mut a, &[HEADER.as_bytes()]).unwrap(),
        decode_all(&mut b, &[HEADER.as_bytes()]).unwrap(),
    );
    assert_eq!((fa.len(), fb.len()), (1, 1));
    assert!(
        a.parser.is_none() && b.parser.is_none(),
        "idle streams hold no parser"
    );
    let mut out = Vec::new();
    for i in 0..20 {
        // A stanza split across two reads on each stream, interleaved.
        let sa = format!("<message id='a{i}'><body>from a</body></message>");
        let sb = format!("<message id='b{i}'><body>from b &amp; more</body></message>");
        let (a1, a2) = sa.as_bytes().split_at(7 + i % 9);
        let (b1, b2) = sb.as_bytes().split_at(3 + i % 13);
        out.extend(decode_all(&mut a, &[a1]).unwrap());
        out.extend(decode_all(&mut b, &[b1]).unwrap());
        assert!(a.parser.is_some(), "a stream mid-stanza keeps its parser");
        out.extend(decode_all(&mut b, &[b2]).unwrap());
        out.extend(decode_all(&mut a, &[a2, b"  "]).unwrap());
        assert!(a.parser.is_none() && b.parser.is_none());
    }
    let ids: Vec<String> = out
        .iter()
        .map(|f| match f {
            Frame::Element(e) => format!(
                "{}:{}",
                e.attr("id").unwrap(),
                e.get_child("body", ns::CLIENT).unwrap().text()
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected: Vec<String> = (0..20)
        .flat_map(|i| [format!("b{i}:from b & more"), format!("a{i}:from a")])
        .collect();
    assert_eq!(ids, expected);
    // The end tag of the root a pooled parser read is the stream's.
    assert_eq!(
        decode_all(&mut a, &[b"</stream:stream>"]).unwrap(),
        vec![Frame::Close]
    );
    // A root written with another prefix is never pooled: its own end tag closes it.
    let other = "<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' \
        to='localhost' version='1.0'><message/></s:stream>";
    let frames = decode(other).unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2], Frame::Close);
}
