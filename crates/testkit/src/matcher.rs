//! Exact stanza matching, in the spirit of Prosody's scansion.
//!
//! Expected stanzas are written as XML in the `jabber:client` default namespace (the `stream:`
//! prefix is declared, for `<stream:error/>` and `<stream:features/>`) and parsed by
//! [`parse_xml`]. [`matches()`] then compares them with what was received:
//!
//! - name and namespace must be equal;
//! - every attribute of `expected` must be present in `actual` (same namespace, same name) with the
//!   same value, except that the value `{*}` matches any value; an attribute of `actual` that
//!   `expected` does not list is a mismatch (write `id='{*}'` for a value the test cannot know);
//! - text nodes that are only whitespace are ignored (indentation in the expected XML); the other
//!   child nodes (elements and text) must match in order and count, recursively, and text must be
//!   equal exactly;
//! - an expected element whose only content is the text `{*}` matches any text (also none), but no
//!   child elements.

use starling_proto::{Attr, Element, Node, ns};
use starling_stream::{Decoder, Frame, Limits};

/// The wildcard for attribute values and text.
pub const WILDCARD: &str = "{*}";

/// The synthetic stream header [`parse_xml`] puts in front of the element.
const HEADER: &str =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Decoder limits that never stop a test: 16 MiB per element, any element count, deep nesting.
pub(crate) const TEST_LIMITS: Limits = Limits {
    max_stanza_bytes: 16 * 1024 * 1024,
    max_elements: usize::MAX,
    max_depth: 1024,
    max_attributes_per_element: usize::MAX,
    max_attributes: usize::MAX,
    max_namespace_declarations: usize::MAX,
};

/// Parses one element written in the `jabber:client` default namespace (`stream:` prefix allowed).
/// Leading and trailing whitespace is allowed; anything else around the element is an error.
pub fn try_parse_xml(xml: &str) -> Result<Element, String> {
    let mut dec = Decoder::new(TEST_LIMITS);
    let doc = format!("{HEADER}{xml}");
    let mut input = doc.as_bytes();
    let err = |e: starling_stream::DecodeError| format!("cannot parse {xml:?}: {e}");
    match dec.next_frame(&mut input).map_err(err)? {
        Some(Frame::Header(_)) => {}
        other => return Err(format!("cannot parse {xml:?}: unexpected {other:?}")),
    }
    let el = match dec.next_frame(&mut input).map_err(err)? {
        Some(Frame::Element(el)) => el,
        Some(other) => return Err(format!("cannot parse {xml:?}: unexpected {other:?}")),
        None => return Err(format!("cannot parse {xml:?}: incomplete element")),
    };
    if !input.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "cannot parse {xml:?}: more than one element (or text after it)"
        ));
    }
    Ok(el)
}

/// Like [`try_parse_xml`], but panics on invalid XML (the test itself is wrong then).
pub fn parse_xml(xml: &str) -> Element {
    match try_parse_xml(xml) {
        Ok(el) => el,
        Err(e) => panic!("{e}"),
    }
}

/// Serialises `el` as it appears on a `jabber:client` stream.
pub fn to_stream_xml(el: &Element) -> String {
    let mut s = String::new();
    el.write_in_stream(ns::CLIENT, &mut s);
    s
}

/// Checks `actual` against `expected` (see the module documentation). The error names the first
/// difference and its path, and shows both elements serialised.
pub fn matches(expected: &Element, actual: &Element) -> Result<(), String> {
    let mut path = String::new();
    match_element(expected, actual, &mut path).map_err(|why| {
        format!(
            "stanza mismatch at {path}: {why}\nexpected: {}\n  actual: {}",
            to_stream_xml(expected),
            to_stream_xml(actual)
        )
    })
}

/// Parses `expected` and panics with the message of [`matches()`] if `actual` does not match.
pub fn assert_matches(expected: &str, actual: &Element) {
    if let Err(e) = matches(&parse_xml(expected), actual) {
        panic!("{e}");
    }
}

fn attr_name(a: &Attr) -> String {
    match a.namespace() {
        None => a.name.to_string(),
        Some(ns::XML) => format!("xml:{}", a.name),
        Some(other) => format!("{{{other}}}{}", a.name),
    }
}

/// Text nodes that are not whitespace only, and elements.
fn significant(el: &Element) -> Vec<&Node> {
    el.nodes()
        .iter()
        .filter(|n| match n {
            Node::Text(t) => !t.chars().all(char::is_whitespace),
            Node::Element(_) | Node::Raw(_) => true,
        })
        .collect()
}

fn describe(n: &Node) -> String {
    match n {
        Node::Text(t) => format!("text {t:?}"),
        Node::Element(e) => format!("<{}/> ({})", e.name(), e.ns()),
        // Never parsed from the wire: only the server builds it.
        Node::Raw(xml) => format!("serialised {xml:?}"),
    }
}

/// Compares one element; `path` is extended on the way down and left pointing at the mismatch.
fn match_element(expected: &Element, actual: &Element, path: &mut String) -> Result<(), String> {
    path.push('/');
    path.push_str(expected.name());
    if expected.name() != actual.name() || expected.ns() != actual.ns() {
        return Err(format!(
            "expected <{}/> in {:?}, got <{}/> in {:?}",
            expected.name(),
            expected.ns(),
            actual.name(),
            actual.ns()
        ));
    }
    for ea in expected.attrs() {
        let found = actual
            .attrs()
            .iter()
            .find(|a| a.ns == ea.ns && a.name == ea.name);
        match found {
            None => return Err(format!("attribute {} missing", attr_name(ea))),
            Some(aa) if ea.value != WILDCARD && aa.value != ea.value => {
                return Err(format!(
                    "attribute {}: expected {:?}, got {:?}",
                    attr_name(ea),
                    ea.value,
                    aa.value
                ));
            }
            Some(_) => {}
        }
    }
    for aa in actual.attrs() {
        if !expected
            .attrs()
            .iter()
            .any(|a| a.ns == aa.ns && a.name == aa.name)
        {
            return Err(format!(
                "unexpected attribute {}={:?}",
                attr_name(aa),
                aa.value
            ));
        }
    }

    let exp = significant(expected);
    let act = significant(actual);
    if let [Node::Text(t)] = exp.as_slice()
        && t.trim() == WILDCARD
    {
        // Any text, but no elements.
        return match act.iter().find(|n| matches!(n, Node::Element(_))) {
            Some(n) => Err(format!("expected only text, got {}", describe(n))),
            None => Ok(()),
        };
    }
    for (i, (e, a)) in exp.iter().zip(act.iter()).enumerate() {
        match (e, a) {
            (Node::Element(e), Node::Element(a)) => {
                let len = path.len();
                match_element(e, a, path)?;
                path.truncate(len);
            }
            (Node::Text(e), Node::Text(a)) => {
                if e != a {
                    return Err(format!("text differs: expected {e:?}, got {a:?}"));
                }
            }
            (e, a) => {
                return Err(format!(
                    "child {i}: expected {}, got {}",
                    describe(e),
                    describe(a)
                ));
            }
        }
    }
    match exp.len().cmp(&act.len()) {
        std::cmp::Ordering::Less => Err(format!(
            "unexpected child {}: {}",
            exp.len(),
            describe(act[exp.len()])
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "missing child {}: {}",
            act.len(),
            describe(exp[act.len()])
        )),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn check(expected: &str, actual: &str) -> Result<(), String> {
        matches(&parse_xml(expected), &parse_xml(actual))
    }

    #[test]
    fn parse_uses_client_namespace_and_stream_prefix() {
        let e = parse_xml("<message to='a@b'><body>hi</body></message>");
        assert_eq!(e.name(), "message");
        assert_eq!(e.ns(), ns::CLIENT);
        assert_eq!(e.attr("to"), Some("a@b"));
        assert_eq!(e.get_child("body", ns::CLIENT).unwrap().text(), "hi");

        let e = parse_xml(
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        );
        assert!(e.is("error", ns::STREAM));
        assert!(e.has_child("conflict", ns::STREAMS));
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(try_parse_xml("<a>").is_err());
        assert!(try_parse_xml("<a/><b/>").is_err());
        assert!(try_parse_xml("<a/>text").is_err());
        assert!(try_parse_xml("<x:a/>").is_err());
        assert!(try_parse_xml("  <a/>\n").is_ok());
    }

    #[test]
    #[should_panic(expected = "cannot parse")]
    fn parse_xml_panics_on_bad_input() {
        parse_xml("<a></b>");
    }

    #[test]
    fn identical_elements_match() {
        let x = "<iq type='result' id='1'><query xmlns='jabber:iq:roster'><item jid='a@b' \
                 subscription='both'><group>G</group></item></query></iq>";
        assert_eq!(check(x, x), Ok(()));
    }

    #[test]
    fn attribute_order_and_indentation_do_not_matter() {
        assert_eq!(
            check(
                "<iq id='1' type='get'>\n  <ping xmlns='urn:xmpp:ping'/>\n</iq>",
                "<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
            ),
            Ok(())
        );
    }

    #[test]
    fn name_and_namespace_must_be_equal() {
        let err = check("<message/>", "<presence/>").unwrap_err();
        assert!(
            err.starts_with("stanza mismatch at /message: expected <message/>"),
            "{err}"
        );
        let err = check(
            "<iq><ping xmlns='urn:xmpp:ping'/></iq>",
            "<iq><ping xmlns='urn:xmpp:pong'/></iq>",
        )
        .unwrap_err();
        assert!(err.starts_with("stanza mismatch at /iq/ping:"), "{err}");
    }

    #[test]
    fn attribute_values_must_be_equal() {
        let err = check("<iq type='get'/>", "<iq type='set'/>").unwrap_err();
        assert_eq!(
            err,
            "stanza mismatch at /iq: attribute type: expected \"get\", got \"set\"\n\
             expected: <iq type='get'/>\n  actual: <iq type='set'/>"
        );
    }

    #[test]
    fn missing_and_extra_attributes_fail() {
        let err = check("<iq type='get' id='1'/>", "<iq type='get'/>").unwrap_err();
        assert!(err.contains("attribute id missing"), "{err}");
        let err = check("<iq type='get'/>", "<iq type='get' id='x'/>").unwrap_err();
        assert!(err.contains("unexpected attribute id=\"x\""), "{err}");
    }

    #[test]
    fn attribute_wildcard() {
        assert_eq!(check("<iq id='{*}'/>", "<iq id='abc'/>"), Ok(()));
        assert_eq!(check("<iq id='{*}'/>", "<iq id=''/>"), Ok(()));
        // The wildcard still requires the attribute.
        assert!(check("<iq id='{*}'/>", "<iq/>").is_err());
    }

    #[test]
    fn xml_lang_is_namespaced() {
        assert_eq!(
            check(
                "<body xml:lang='en'>x</body>",
                "<body xml:lang='en'>x</body>"
            ),
            Ok(())
        );
        let err = check("<body>x</body>", "<body xml:lang='en'>x</body>").unwrap_err();
        assert!(
            err.contains("unexpected attribute xml:lang=\"en\""),
            "{err}"
        );
        // `lang` without the prefix is a different attribute.
        assert!(check("<body lang='en'>x</body>", "<body xml:lang='en'>x</body>").is_err());
    }

    #[test]
    fn children_in_order_and_count() {
        let two = "<message><body>a</body><thread>t</thread></message>";
        assert_eq!(check(two, two), Ok(()));
        let err = check(two, "<message><thread>t</thread><body>a</body></message>").unwrap_err();
        assert!(
            err.starts_with("stanza mismatch at /message/body:"),
            "{err}"
        );
        let err = check(two, "<message><body>a</body></message>").unwrap_err();
        assert!(err.contains("missing child 1: <thread/>"), "{err}");
        let err = check(
            two,
            "<message><body>a</body><thread>t</thread><x xmlns='y'/></message>",
        )
        .unwrap_err();
        assert!(err.contains("unexpected child 2: <x/> (y)"), "{err}");
    }

    #[test]
    fn nested_mismatch_path() {
        let err = check(
            "<iq><query xmlns='q'><item jid='a'/><item jid='b'/></query></iq>",
            "<iq><query xmlns='q'><item jid='a'/><item jid='c'/></query></iq>",
        )
        .unwrap_err();
        assert!(
            err.starts_with("stanza mismatch at /iq/query/item: attribute jid"),
            "{err}"
        );
    }

    #[test]
    fn text_must_be_equal() {
        assert_eq!(check("<body>hi</body>", "<body>hi</body>"), Ok(()));
        let err = check("<body>hi</body>", "<body>ho</body>").unwrap_err();
        assert!(
            err.contains("text differs: expected \"hi\", got \"ho\""),
            "{err}"
        );
        // Non-whitespace text is compared exactly, surrounding spaces included.
        assert!(check("<body>hi</body>", "<body> hi</body>").is_err());
        assert!(check("<body>hi</body>", "<body/>").is_err());
        assert!(check("<body/>", "<body>hi</body>").is_err());
        // Whitespace-only text is ignored on both sides.
        assert_eq!(check("<body/>", "<body>  \n </body>"), Ok(()));
    }

    #[test]
    fn text_versus_element() {
        let err = check("<a><b/></a>", "<a>b</a>").unwrap_err();
        assert!(
            err.contains("child 0: expected <b/> (jabber:client), got text \"b\""),
            "{err}"
        );
    }

    #[test]
    fn text_wildcard() {
        assert_eq!(check("<body>{*}</body>", "<body>anything</body>"), Ok(()));
        assert_eq!(check("<body>{*}</body>", "<body/>"), Ok(()));
        assert_eq!(check("<body> {*} </body>", "<body>x</body>"), Ok(()));
        let err = check("<body>{*}</body>", "<body>a<b/></body>").unwrap_err();
        assert!(err.contains("expected only text, got <b/>"), "{err}");
        // `{*}` inside other text is literal.
        assert!(check("<body>a{*}</body>", "<body>ab</body>").is_err());
    }

    #[test]
    fn stream_error_matches() {
        let actual = parse_xml(
            "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>nope</text></stream:error>",
        );
        let exp = "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                   <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{*}</text></stream:error>";
        assert_matches(exp, &actual);
        let err = matches(
            &parse_xml(
                "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            ),
            &actual,
        )
        .unwrap_err();
        assert!(
            err.starts_with("stanza mismatch at /error/conflict:"),
            "{err}"
        );
        assert!(
            err.contains("\n  actual: <stream:error><not-authorized"),
            "{err}"
        );
    }

    #[test]
    #[should_panic(expected = "stanza mismatch at /message")]
    fn assert_matches_panics() {
        assert_matches("<message/>", &parse_xml("<message type='chat'/>"));
    }
}
